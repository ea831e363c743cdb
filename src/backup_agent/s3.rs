//! A small S3 client: PUT, GET, DELETE and ListObjectsV2 with Signature
//! Version 4 (path-style addresses, so any S3-compatible server works), over
//! the hyper and rustls already in the operator. Bodies are streamed from and
//! to files and sent UNSIGNED-PAYLOAD: integrity is checked end to end by the
//! backup's own checksums (manifests, .sha256 files), not by the transport.

use std::path::Path;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client as Http;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use k8s_openapi::jiff::Timestamp;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use ring::{digest, hmac};
use tokio::io::AsyncWriteExt;
use tokio_util::io::ReaderStream;

/// What S3 leaves unencoded in a path segment or query value.
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

#[derive(Debug, thiserror::Error)]
pub enum S3Error {
    #[error("S3 endpoint {0:?}: must be http(s)://host[:port]")]
    Endpoint(String),
    #[error("{method} {key}: {status}: {body}")]
    Status {
        method: &'static str,
        key: String,
        status: StatusCode,
        body: String,
    },
    #[error("{0}: {1}")]
    Transport(String, String),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
}

type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, std::io::Error>;

/// One bucket at one endpoint, with one key pair.
pub struct Bucket {
    http: Http<hyper_rustls::HttpsConnector<HttpConnector>, Body>,
    /// scheme://host[:port], no trailing slash.
    endpoint: String,
    host: String,
    region: String,
    bucket: String,
    access_key: String,
    secret_key: String,
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

impl Bucket {
    pub fn new(
        endpoint: &str,
        region: &str,
        bucket: &str,
        access_key: &str,
        secret_key: &str,
    ) -> Result<Self, S3Error> {
        let endpoint = endpoint.trim_end_matches('/').to_string();
        let host = endpoint
            .strip_prefix("https://")
            .or_else(|| endpoint.strip_prefix("http://"))
            .filter(|h| !h.is_empty() && !h.contains('/'))
            .ok_or_else(|| S3Error::Endpoint(endpoint.clone()))?
            .to_string();
        let tls = rustls_platform_verifier::BuilderVerifierExt::with_platform_verifier(
            rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| S3Error::Transport("TLS".into(), e.to_string()))?,
        )
        .map_err(|e| S3Error::Transport("TLS roots".into(), e.to_string()))?
        .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Self {
            http: Http::builder(TokioExecutor::new()).build(connector),
            endpoint,
            host,
            region: region.to_string(),
            bucket: bucket.to_string(),
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
        })
    }

    /// Uploads a file as `key`.
    pub async fn put_file(&self, key: &str, path: &Path) -> Result<(), S3Error> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| S3Error::Io(path.display().to_string(), e))?;
        let len = file
            .metadata()
            .await
            .map_err(|e| S3Error::Io(path.display().to_string(), e))?
            .len();
        let stream = futures::StreamExt::map(ReaderStream::new(file), |r| r.map(Frame::data));
        let body = BodyExt::boxed_unsync(StreamBody::new(stream));
        self.send(Method::PUT, key, &[], body, Some(len)).await?;
        Ok(())
    }

    /// Uploads bytes as `key`.
    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), S3Error> {
        let len = bytes.len() as u64;
        let body = BodyExt::boxed_unsync(Full::new(Bytes::from(bytes)).map_err(|e| match e {}));
        self.send(Method::PUT, key, &[], body, Some(len)).await?;
        Ok(())
    }

    /// Downloads `key` into `path`: written to a fresh file beside it (an
    /// existing one, or a symlink planted there, is removed, never followed),
    /// then renamed over `path` (which replaces a symlink, not its target).
    pub async fn get_file(&self, key: &str, path: &Path) -> Result<(), S3Error> {
        let response = self.send(Method::GET, key, &[], empty(), None).await?;
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
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            let frame =
                frame.map_err(|e| S3Error::Transport(format!("GET {key}"), e.to_string()))?;
            if let Ok(data) = frame.into_data() {
                file.write_all(&data).await.map_err(io)?;
            }
        }
        file.sync_all().await.map_err(io)?;
        tokio::fs::rename(&tmp, path)
            .await
            .map_err(|e| S3Error::Io(path.display().to_string(), e))
    }

    /// Downloads `key` into memory.
    pub async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, S3Error> {
        let response = self.send(Method::GET, key, &[], empty(), None).await?;
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| S3Error::Transport(format!("GET {key}"), e.to_string()))?
            .to_bytes();
        Ok(bytes.to_vec())
    }

    pub async fn delete(&self, key: &str) -> Result<(), S3Error> {
        self.send(Method::DELETE, key, &[], empty(), None).await?;
        Ok(())
    }

    /// Every object under `prefix` (ListObjectsV2, all pages).
    pub async fn list(&self, prefix: &str) -> Result<Vec<Object>, S3Error> {
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![
                ("list-type".to_string(), "2".to_string()),
                ("prefix".to_string(), prefix.to_string()),
            ];
            if let Some(t) = &token {
                query.push(("continuation-token".to_string(), t.clone()));
            }
            let xml = self.list_xml(&query).await?;
            let (objects, truncated) = parse_listing(&xml);
            out.extend(objects);
            token = elements(&xml, "NextContinuationToken").next().map(unescape);
            if !truncated || token.is_none() {
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
        let query = vec![
            ("list-type".to_string(), "2".to_string()),
            ("prefix".to_string(), prefix.to_string()),
            ("start-after".to_string(), start_after.to_string()),
            ("max-keys".to_string(), max_keys.to_string()),
        ];
        let xml = self.list_xml(&query).await?;
        let (objects, truncated) = parse_listing(&xml);
        Ok(Page { objects, truncated })
    }

    async fn list_xml(&self, query: &[(String, String)]) -> Result<String, S3Error> {
        let response = self.send(Method::GET, "", query, empty(), None).await?;
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| S3Error::Transport("list".into(), e.to_string()))?
            .to_bytes();
        Ok(String::from_utf8_lossy(&body).into_owned())
    }

    async fn send(
        &self,
        method: Method,
        key: &str,
        query: &[(String, String)],
        body: Body,
        length: Option<u64>,
    ) -> Result<hyper::Response<hyper::body::Incoming>, S3Error> {
        let mut path = format!("/{}", encode(&self.bucket));
        if !key.is_empty() {
            path.push('/');
            path.push_str(&key.split('/').map(encode).collect::<Vec<_>>().join("/"));
        }
        let mut pairs: Vec<(String, String)> =
            query.iter().map(|(k, v)| (encode(k), encode(v))).collect();
        pairs.sort();
        let canonical_query = pairs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&");
        let now = Timestamp::now();
        let amz_date = now.strftime("%Y%m%dT%H%M%SZ").to_string();
        let date = &amz_date[..8];
        let payload = "UNSIGNED-PAYLOAD";
        let canonical_request = format!(
            "{method}\n{path}\n{canonical_query}\nhost:{}\nx-amz-content-sha256:{payload}\nx-amz-date:{amz_date}\n\nhost;x-amz-content-sha256;x-amz-date\n{payload}",
            self.host
        );
        let scope = format!("{date}/{}/s3/aws4_request", self.region);
        let to_sign = format!(
            "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
            hex::encode(digest::digest(
                &digest::SHA256,
                canonical_request.as_bytes()
            ))
        );
        let mut signing = hmac::Key::new(
            hmac::HMAC_SHA256,
            format!("AWS4{}", self.secret_key).as_bytes(),
        );
        for part in [date, self.region.as_str(), "s3", "aws4_request"] {
            signing = hmac::Key::new(
                hmac::HMAC_SHA256,
                hmac::sign(&signing, part.as_bytes()).as_ref(),
            );
        }
        let signature = hex::encode(hmac::sign(&signing, to_sign.as_bytes()));
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={}/{scope}, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature={signature}",
            self.access_key
        );
        let uri = if canonical_query.is_empty() {
            format!("{}{path}", self.endpoint)
        } else {
            format!("{}{path}?{canonical_query}", self.endpoint)
        };
        let mut request = Request::builder()
            .method(method.clone())
            .uri(&uri)
            .header("host", &self.host)
            .header("x-amz-content-sha256", payload)
            .header("x-amz-date", &amz_date)
            .header("authorization", authorization);
        if let Some(len) = length {
            request = request.header("content-length", len);
        }
        let what = format!("{method} {}", if key.is_empty() { "(list)" } else { key });
        let request = request
            .body(body)
            .map_err(|e| S3Error::Transport(what.clone(), e.to_string()))?;
        let response = self
            .http
            .request(request)
            .await
            .map_err(|e| S3Error::Transport(what.clone(), format!("{e:?}")))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map(|b| {
                String::from_utf8_lossy(&b.to_bytes())
                    .chars()
                    .take(300)
                    .collect()
            })
            .unwrap_or_default();
        Err(S3Error::Status {
            method: match method {
                Method::PUT => "PUT",
                Method::DELETE => "DELETE",
                _ => "GET",
            },
            key: key.to_string(),
            status,
            body,
        })
    }
}

fn empty() -> Body {
    BodyExt::boxed_unsync(Empty::new().map_err(|e| match e {}))
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, UNRESERVED).to_string()
}

/// The texts of `<tag>...</tag>` elements, in order (no nesting of `tag`).
fn elements<'a>(xml: &'a str, tag: &str) -> impl Iterator<Item = &'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let mut rest = xml;
    std::iter::from_fn(move || {
        let start = rest.find(&open)? + open.len();
        let end = rest[start..].find(&close)? + start;
        let text = &rest[start..end];
        rest = &rest[end + close.len()..];
        Some(text)
    })
}

/// The objects of a ListObjectsV2 answer, and whether it was truncated.
fn parse_listing(xml: &str) -> (Vec<Object>, bool) {
    let objects = elements(xml, "Contents")
        .filter_map(|contents| {
            let key = elements(contents, "Key").next().map(unescape)?;
            let size = elements(contents, "Size").next()?.parse().ok()?;
            Some(Object { key, size })
        })
        .collect();
    (objects, elements(xml, "IsTruncated").next() == Some("true"))
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&#34;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_are_read_from_the_xml() {
        let xml = "<ListBucketResult><IsTruncated>true</IsTruncated><Contents><Key>a/b&amp;c</Key><Size>12</Size></Contents><Contents><Key>d</Key><Size>0</Size></Contents><NextContinuationToken>t1</NextContinuationToken></ListBucketResult>";
        let (objects, truncated) = parse_listing(xml);
        let keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, vec!["a/b&c", "d"]);
        assert!(truncated);
        assert_eq!(elements(xml, "NextContinuationToken").next(), Some("t1"));
    }

    #[test]
    fn keys_are_encoded_as_s3_signs_them() {
        assert_eq!(encode("base/2026 x+y~_.-"), "base%2F2026%20x%2By~_.-");
    }
}
