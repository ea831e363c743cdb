//! REDIS_URL: redis:// in plaintext, rediss:// over TLS trusting REDIS_TLS_CA_FILE.

use std::path::Path;

use crate::tls::{self, TlsError};

#[derive(Debug, thiserror::Error)]
pub enum RedisUrlError {
    #[error("REDIS_URL is invalid: {0}")]
    Parse(#[from] redis::RedisError),
    #[error("REDIS_URL: #insecure would skip the certificate check; it is not supported")]
    Insecure,
    #[error(transparent)]
    Tls(#[from] TlsError),
}

pub struct RedisTarget {
    pub client: redis::Client,
    /// For the log line at connect.
    pub transport: String,
}

/// rediss:// (and valkeys://, which the redis crate also takes) means TLS.
pub fn is_tls_url(url: &str) -> bool {
    url.split_once("://").is_some_and(|(scheme, _)| {
        scheme.eq_ignore_ascii_case("rediss") || scheme.eq_ignore_ascii_case("valkeys")
    })
}

/// With rediss:// and `ca_file`, only that file's certificates are trusted;
/// without `ca_file`, the platform's roots are (SSL_CERT_FILE/SSL_CERT_DIR or
/// the OS store, as the redis crate loads them). The host name is always checked.
pub fn redis_target(url: &str, ca_file: Option<&str>) -> Result<RedisTarget, RedisUrlError> {
    let ca_file = ca_file.filter(|s| !s.is_empty());
    if !is_tls_url(url) {
        if let Some(path) = ca_file {
            tracing::warn!(
                path,
                "REDIS_TLS_CA_FILE is set but REDIS_URL is not rediss://: connecting without TLS"
            );
        }
        return Ok(RedisTarget {
            client: redis::Client::open(url)?,
            transport: "plaintext".into(),
        });
    }
    if url.split_once('#').is_some_and(|(_, f)| f == "insecure") {
        return Err(RedisUrlError::Insecure);
    }
    tls::install_default_provider();
    Ok(match ca_file {
        Some(path) => {
            // Loaded here too, so a bad file fails at startup with the variable's name.
            let ca = tls::load_ca("REDIS_TLS_CA_FILE", Path::new(path))?;
            let certs = redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(ca.pem),
            };
            RedisTarget {
                client: redis::Client::build_with_tls(url, certs)?,
                transport: format!("TLS (CA {path})"),
            }
        }
        None => RedisTarget {
            client: redis::Client::open(url)?,
            transport: "TLS (platform roots)".into(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::tests::{CA, temp_file};

    #[test]
    fn detects_tls_urls() {
        assert!(is_tls_url("rediss://u:p@h:6379/0"));
        assert!(is_tls_url("REDISS://h"));
        assert!(is_tls_url("valkeys://h"));
        assert!(!is_tls_url("redis://u:p@h:6379/0"));
        assert!(!is_tls_url("redis+unix:///tmp/redis.sock"));
        assert!(!is_tls_url("h:6379"));
    }

    fn is_tls(client: &redis::Client) -> bool {
        matches!(
            client.get_connection_info().addr(),
            redis::ConnectionAddr::TcpTls {
                insecure: false,
                ..
            }
        )
    }

    #[test]
    fn plain_url_works_as_before_and_ignores_the_ca() {
        let t = redis_target("redis://app:pw@shop-redis.ns.svc:6379/0", None).expect("plain");
        assert!(!is_tls(&t.client));
        assert_eq!(t.transport, "plaintext");
        let t = redis_target("redis://h:6379/0", Some("/nonexistent")).expect("plain");
        assert!(!is_tls(&t.client));
    }

    #[test]
    fn rediss_with_ca_file() {
        let t = redis_target("rediss://app:pw@shop-redis.ns.svc:6379/0", Some(CA)).expect("tls");
        assert!(is_tls(&t.client));
        assert!(t.transport.contains(CA), "{}", t.transport);
    }

    #[test]
    fn rediss_without_ca_file_uses_platform_roots() {
        let t = redis_target("rediss://h:6379/0", Some("")).expect("tls");
        assert!(is_tls(&t.client));
        assert_eq!(t.transport, "TLS (platform roots)");
    }

    #[test]
    fn insecure_is_refused() {
        let err = redis_target("rediss://h:6379/0#insecure", Some(CA))
            .err()
            .expect("fails");
        assert!(matches!(err, RedisUrlError::Insecure));
    }

    #[test]
    fn bad_ca_file_names_the_variable_and_path() {
        let err = redis_target("rediss://h:6379/0", Some("/nonexistent/ca.crt"))
            .err()
            .expect("fails");
        let msg = err.to_string();
        assert!(
            msg.starts_with("REDIS_TLS_CA_FILE: cannot read the CA file /nonexistent/ca.crt"),
            "{msg}"
        );
        let path = temp_file("redis-empty.crt", b"");
        let err = redis_target("rediss://h:6379/0", path.to_str())
            .err()
            .expect("fails");
        assert!(
            matches!(err, RedisUrlError::Tls(TlsError::CaEmpty { .. })),
            "{err}"
        );
        let _ = std::fs::remove_file(path);
    }
}
