//! The backup agent's bucket: object_store's S3 backend (SigV4, path-style
//! addresses so any S3-compatible server works, retries with backoff,
//! timeouts, multipart uploads, session tokens), configured here. What it
//! leaves to us: which keys, how files meet objects (a download goes to a
//! fresh file renamed into place, never through a symlink), and memory
//! bounds (a small file is one PUT from memory, a large one parts of
//! `PART` bytes, at most `PARTS_IN_FLIGHT` at once).

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path as Key;
use object_store::{
    BackoffConfig, Certificate, ClientOptions, ObjectStoreExt, PutPayload, RetryConfig,
    WriteMultipart,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A connection that does not open within this is given up (and retried).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A response that sends nothing for this long is given up (and retried):
/// what keeps the WAL copy from hanging on a server that stopped answering.
const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// One request, body included: a part, a listing page, or the download of
/// one file (PostgreSQL's are at most 1 GiB; a download cut short resumes
/// where it stopped when the server gave the object's ETag).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Retries of a failed request (connection refused or reset, timeouts, 5xx,
/// throttling), with exponential backoff, all within `RETRY_WINDOW`.
const RETRIES: usize = 6;
const RETRY_WINDOW: Duration = Duration::from_secs(120);
/// Files up to this size go as one PUT, read into memory (so that a retry
/// can send them again); larger ones as a multipart upload of such parts.
pub const PART: usize = 8 * 1024 * 1024;
/// Parts of one upload sent at the same time.
const PARTS_IN_FLIGHT: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("S3 endpoint {0:?}: must be http(s)://host[:port]")]
    Endpoint(String),
    #[error("S3 endpoint's CA (ca.crt in the S3 Secret): {0}")]
    Ca(String),
    /// The bucket lists a key object_store will not take as a path ('.',
    /// '..' or empty segments, control characters): named, never fetched.
    #[error("key {key:?}: {why}")]
    BadKey { key: String, why: String },
    #[error("{what} (S3 at {endpoint}): {source}")]
    Store {
        what: String,
        endpoint: String,
        source: object_store::Error,
    },
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

/// Where and as whom: what the agent is given by its environment.
#[derive(Clone, Debug, Default)]
pub struct Config {
    /// http(s)://host[:port]
    pub endpoint: String,
    pub region: String,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    /// AWS_SESSION_TOKEN: temporary credentials (STS).
    pub session_token: Option<String>,
    /// PEM certificates trusted for the endpoint, beside the system's.
    pub ca_pem: Option<String>,
}

/// One bucket at one endpoint, with one set of credentials.
pub struct Bucket {
    store: AmazonS3,
    endpoint: String,
}

/// An object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Object {
    pub key: String,
    pub size: u64,
}

/// One page of a listing, and whether more follow.
#[derive(Debug, Default)]
pub struct Page {
    pub objects: Vec<Object>,
    pub truncated: bool,
}

/// The TLS of reqwest (under object_store) takes the process's rustls
/// provider: ring, already in the operator, rather than aws-lc's C build.
fn install_ring() {
    // Err only when a provider is already installed, which is as good.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// The endpoint without its trailing '/', if it is http(s)://host[:port].
fn endpoint_of(endpoint: &str) -> Option<&str> {
    let endpoint = endpoint.trim_end_matches('/');
    let host = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))?;
    (!host.is_empty() && !host.contains(['/', '?', '#', '@'])).then_some(endpoint)
}

/// The client's options: timeouts, plain HTTP only for an http:// endpoint,
/// and the endpoint's CA when one is given.
fn client_options(endpoint: &str, ca_pem: Option<&str>) -> Result<ClientOptions, S3Error> {
    let mut options = ClientOptions::new()
        .with_allow_http(endpoint.starts_with("http://"))
        .with_connect_timeout(CONNECT_TIMEOUT)
        .with_read_timeout(READ_TIMEOUT)
        .with_timeout(REQUEST_TIMEOUT);
    if let Some(pem) = ca_pem.map(str::trim).filter(|p| !p.is_empty()) {
        let certificates =
            Certificate::from_pem_bundle(pem.as_bytes()).map_err(|e| S3Error::Ca(e.to_string()))?;
        if certificates.is_empty() {
            return Err(S3Error::Ca("holds no PEM certificate".into()));
        }
        for certificate in certificates {
            options = options.with_root_certificate(certificate);
        }
    }
    Ok(options)
}

fn retry() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(20),
            base: 2.0,
        },
        max_retries: RETRIES,
        retry_timeout: RETRY_WINDOW,
    }
}

/// A key we build (prefix and a relative path already checked by
/// `unsafe_path`), as object_store takes it: unchanged, never re-encoded.
fn key(key: &str) -> Result<Key, S3Error> {
    Key::parse(key).map_err(|e| S3Error::BadKey {
        key: key.to_string(),
        why: e.to_string(),
    })
}

impl Bucket {
    pub fn new(config: &Config) -> Result<Self, S3Error> {
        install_ring();
        let endpoint = endpoint_of(&config.endpoint)
            .ok_or_else(|| S3Error::Endpoint(config.endpoint.clone()))?
            .to_string();
        let mut builder = AmazonS3Builder::new()
            .with_endpoint(&endpoint)
            .with_region(&config.region)
            .with_bucket_name(&config.bucket)
            .with_access_key_id(&config.access_key)
            .with_secret_access_key(&config.secret_key)
            // Path-style (`<endpoint>/<bucket>/<key>`): what every
            // S3-compatible server answers, AWS included.
            .with_virtual_hosted_style_request(false)
            .with_allow_http(endpoint.starts_with("http://"))
            .with_client_options(client_options(&endpoint, config.ca_pem.as_deref())?)
            .with_retry(retry());
        if let Some(token) = config.session_token.as_deref().filter(|t| !t.is_empty()) {
            builder = builder.with_token(token);
        }
        let store = builder.build().map_err(|source| S3Error::Store {
            what: "configuring the client".into(),
            endpoint: endpoint.clone(),
            source,
        })?;
        Ok(Self { store, endpoint })
    }

    fn failed(&self, what: impl Into<String>) -> impl FnOnce(object_store::Error) -> S3Error {
        let endpoint = self.endpoint.clone();
        let what = what.into();
        move |source| match source {
            // A listed key object_store will not take as a path: named.
            object_store::Error::InvalidPath { source } => S3Error::BadKey {
                key: bad_key(&source),
                why: source.to_string(),
            },
            source => S3Error::Store {
                what,
                endpoint,
                source,
            },
        }
    }

    /// Uploads a file as `key`: one PUT up to `PART` bytes, else a
    /// multipart upload (S3's 5 GiB limit of a PUT does not apply), aborted
    /// when a part fails for good.
    pub async fn put_file(&self, key_: &str, path: &Path) -> Result<(), S3Error> {
        let io = |e| S3Error::Io(path.display().to_string(), e);
        let mut file = tokio::fs::File::open(path).await.map_err(io)?;
        let len = file.metadata().await.map_err(io)?.len();
        let location = key(key_)?;
        if len <= PART as u64 {
            let mut data = Vec::with_capacity(len as usize);
            file.read_to_end(&mut data).await.map_err(io)?;
            self.store
                .put(&location, PutPayload::from(Bytes::from(data)))
                .await
                .map_err(self.failed(format!("PUT {key_}")))?;
            return Ok(());
        }
        let upload = self
            .store
            .put_multipart(&location)
            .await
            .map_err(self.failed(format!("PUT {key_} (multipart)")))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
        let mut buf = vec![0u8; 1024 * 1024];
        let sent: Result<(), S3Error> = async {
            loop {
                let n = file.read(&mut buf).await.map_err(io)?;
                if n == 0 {
                    return Ok(());
                }
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(self.failed(format!("PUT {key_} (part)")))?;
                writer.write(&buf[..n]);
            }
        }
        .await;
        match sent {
            Ok(()) => {
                writer
                    .finish()
                    .await
                    .map_err(self.failed(format!("PUT {key_} (completing)")))?;
                Ok(())
            }
            Err(error) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(key = key_, error = %abort, "aborting the multipart upload");
                }
                Err(error)
            }
        }
    }

    /// Uploads bytes as `key`.
    pub async fn put_bytes(&self, key_: &str, bytes: Vec<u8>) -> Result<(), S3Error> {
        self.store
            .put(&key(key_)?, PutPayload::from(Bytes::from(bytes)))
            .await
            .map_err(self.failed(format!("PUT {key_}")))?;
        Ok(())
    }

    /// Downloads `key` into `path`: written to a fresh file beside it (an
    /// existing one, or a symlink planted there, is removed, never followed),
    /// then renamed over `path` (which replaces a symlink, not its target).
    pub async fn get_file(&self, key_: &str, path: &Path) -> Result<(), S3Error> {
        let response = self
            .store
            .get(&key(key_)?)
            .await
            .map_err(self.failed(format!("GET {key_}")))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.download"));
        let io = |e| S3Error::Io(tmp.display().to_string(), e);
        match tokio::fs::remove_file(&tmp).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            _ => {}
        }
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .await
            .map_err(io)?;
        let mut body = response.into_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(self.failed(format!("GET {key_}")))?;
            file.write_all(&chunk).await.map_err(io)?;
        }
        file.sync_all().await.map_err(io)?;
        tokio::fs::rename(&tmp, path)
            .await
            .map_err(|e| S3Error::Io(path.display().to_string(), e))
    }

    /// Downloads `key` into memory.
    pub async fn get_bytes(&self, key_: &str) -> Result<Vec<u8>, S3Error> {
        let response = self
            .store
            .get(&key(key_)?)
            .await
            .map_err(self.failed(format!("GET {key_}")))?;
        let bytes = response
            .bytes()
            .await
            .map_err(self.failed(format!("GET {key_}")))?;
        Ok(bytes.to_vec())
    }

    pub async fn delete(&self, key_: &str) -> Result<(), S3Error> {
        self.store
            .delete(&key(key_)?)
            .await
            .map_err(self.failed(format!("DELETE {key_}")))
    }

    /// Every object under `prefix` (ListObjectsV2, all pages).
    pub async fn list(&self, prefix: &str) -> Result<Vec<Object>, S3Error> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .store
                .list_paginated(
                    Some(prefix),
                    PaginatedListOptions {
                        page_token: token,
                        ..Default::default()
                    },
                )
                .await
                .map_err(self.failed(format!("listing {prefix}")))?;
            out.extend(objects(page.result.objects));
            token = page.page_token;
            if token.is_none() {
                return Ok(out);
            }
        }
    }

    /// One page of at most `max_keys` objects under `prefix` whose keys sort
    /// after `start_after` (ListObjectsV2 `start-after`): what a caller that
    /// remembers where it stopped lists, never the whole prefix.
    pub async fn list_page(
        &self,
        prefix: &str,
        start_after: &str,
        max_keys: usize,
    ) -> Result<Page, S3Error> {
        let page = self
            .store
            .list_paginated(
                Some(prefix),
                PaginatedListOptions {
                    offset: Some(start_after.to_string()),
                    max_keys: Some(max_keys),
                    ..Default::default()
                },
            )
            .await
            .map_err(self.failed(format!("listing {prefix} after {start_after}")))?;
        Ok(Page {
            objects: objects(page.result.objects),
            truncated: page.page_token.is_some(),
        })
    }
}

fn objects(listed: Vec<object_store::ObjectMeta>) -> Vec<Object> {
    listed
        .into_iter()
        .map(|o| Object {
            key: o.location.as_ref().to_string(),
            size: o.size,
        })
        .collect()
}

/// The key a path error names.
fn bad_key(error: &object_store::path::Error) -> String {
    use object_store::path::Error;
    match error {
        Error::EmptySegment { path }
        | Error::BadSegment { path, .. }
        | Error::NonUnicode { path, .. } => path.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_scheme_host_and_port() {
        assert_eq!(
            endpoint_of("http://s3.kube-system.svc:9000/"),
            Some("http://s3.kube-system.svc:9000")
        );
        assert_eq!(
            endpoint_of("https://[fd00::1]:9000"),
            Some("https://[fd00::1]:9000")
        );
        for bad in [
            "s3.example",
            "ftp://x",
            "http://",
            "http://h/path",
            "http://u@h",
        ] {
            assert_eq!(endpoint_of(bad), None, "{bad}");
        }
    }

    #[test]
    fn keys_are_taken_as_they_are() {
        // No re-encoding: the key in the bucket is the one built.
        let k = key("team-a/shop/postgres/base/20261201T000000Z/global/pg_control").unwrap();
        assert_eq!(
            k.as_ref(),
            "team-a/shop/postgres/base/20261201T000000Z/global/pg_control"
        );
        assert!(key("team-a/../b").is_err());
        assert!(key("team-a//b").is_err());
    }

    #[test]
    fn a_ca_bundle_must_hold_a_certificate() {
        assert!(client_options("https://s3.example", None).is_ok());
        assert!(client_options("https://s3.example", Some("  ")).is_ok());
        let err = client_options("https://s3.example", Some("not a certificate"))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("ca.crt"), "{err}");
    }

    #[test]
    fn a_client_is_built_for_http_and_https_endpoints() {
        for endpoint in ["http://127.0.0.1:9", "https://s3.eu-west-1.amazonaws.com"] {
            let config = Config {
                endpoint: endpoint.into(),
                region: "eu-west-1".into(),
                bucket: "backups".into(),
                access_key: "k".into(),
                secret_key: "s".into(),
                session_token: Some("t".into()),
                ca_pem: None,
            };
            assert!(Bucket::new(&config).is_ok(), "{endpoint}");
        }
        let bad = Config {
            endpoint: "s3.example".into(),
            ..Config::default()
        };
        assert!(matches!(Bucket::new(&bad), Err(S3Error::Endpoint(_))));
    }
}
