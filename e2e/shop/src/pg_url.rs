//! DATABASE_URL with libpq's sslmode and sslrootcert. tokio-postgres' parser
//! rejects verify-ca, verify-full and sslrootcert, so they are taken out here and
//! the rest of the URL is left to it.

use std::fmt;
use std::path::Path;

use tokio_postgres::config::SslMode as WireSslMode;
use tracing::warn;

use crate::tls::{self, TlsError, Verify};

#[derive(Debug, thiserror::Error)]
pub enum PgUrlError {
    #[error("DATABASE_URL is invalid: {0}")]
    Parse(#[from] tokio_postgres::Error),
    #[error(
        "DATABASE_URL: sslmode={0:?} is not one of disable, allow, prefer, require, verify-ca, verify-full"
    )]
    SslMode(String),
    #[error("DATABASE_URL: a query parameter is not valid percent-encoded UTF-8: {0:?}")]
    Encoding(String),
    #[error(
        "DATABASE_URL has sslmode={0} but no CA to verify against: add sslrootcert=<file> to it or set PGSSLROOTCERT"
    )]
    NoRootCert(SslMode),
    #[error("DATABASE_URL: sslrootcert=system needs sslmode=verify-full, as in libpq, not {0}")]
    SystemWeak(SslMode),
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// libpq's sslmode values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(s: &str) -> Result<Self, PgUrlError> {
        Ok(match s {
            "disable" => Self::Disable,
            "allow" => Self::Allow,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => return Err(PgUrlError::SslMode(other.into())),
        })
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Disable => "disable",
            Self::Allow => "allow",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        })
    }
}

/// DATABASE_URL split into what tokio-postgres parses and what is handled here.
#[derive(Debug, PartialEq)]
pub struct SplitUrl {
    /// The URL without sslmode and sslrootcert.
    pub rest: String,
    pub sslmode: Option<SslMode>,
    pub sslrootcert: Option<String>,
}

/// Takes sslmode and sslrootcert out of a postgres:// or postgresql:// URL's
/// query, keeping the other parameters as written. Anything else (libpq's
/// key=value form) is passed through untouched.
pub fn split_url(url: &str) -> Result<SplitUrl, PgUrlError> {
    let is_url = url.starts_with("postgres://") || url.starts_with("postgresql://");
    let (base, query) = match url.split_once('?') {
        Some((base, query)) if is_url => (base, query),
        _ => {
            return Ok(SplitUrl {
                rest: url.into(),
                sslmode: None,
                sslrootcert: None,
            });
        }
    };
    let mut kept = Vec::new();
    let mut sslmode = None;
    let mut sslrootcert = None;
    for param in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = param.split_once('=').unwrap_or((param, ""));
        match percent_decode(key)?.as_str() {
            "sslmode" => sslmode = Some(SslMode::parse(&percent_decode(value)?)?),
            "sslrootcert" => sslrootcert = Some(percent_decode(value)?),
            _ => kept.push(param),
        }
    }
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    Ok(SplitUrl {
        rest,
        sslmode,
        sslrootcert: sslrootcert.filter(|s| !s.is_empty()),
    })
}

fn percent_decode(s: &str) -> Result<String, PgUrlError> {
    let bad = || PgUrlError::Encoding(s.into());
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// How the shop reaches PostgreSQL.
pub enum PgTls {
    Plain,
    Tls(Box<tokio_postgres_rustls::MakeRustlsConnect>),
}

pub struct PgTarget {
    pub config: tokio_postgres::Config,
    pub tls: PgTls,
    /// For the log line at connect.
    pub transport: String,
}

/// Builds the connection settings from DATABASE_URL and PGSSLROOTCERT
/// (used when the URL has no sslrootcert).
pub fn pg_target(url: &str, env_root_cert: Option<&str>) -> Result<PgTarget, PgUrlError> {
    let split = split_url(url)?;
    let mut config: tokio_postgres::Config = split.rest.parse()?;
    let root = match (&split.sslrootcert, env_root_cert.filter(|s| !s.is_empty())) {
        (Some(path), _) => Some(("DATABASE_URL sslrootcert", path.as_str())),
        (None, Some(path)) => Some(("PGSSLROOTCERT", path)),
        (None, None) => None,
    };
    let Some(mode) = split.sslmode else {
        // No sslmode: plaintext, as before TLS was supported.
        if split.sslrootcert.is_some() {
            warn!("DATABASE_URL has sslrootcert but no sslmode: connecting without TLS");
        }
        return Ok(PgTarget {
            config,
            tls: PgTls::Plain,
            transport: "plaintext".into(),
        });
    };
    if mode == SslMode::Disable {
        return Ok(PgTarget {
            config,
            tls: PgTls::Plain,
            transport: "plaintext (sslmode=disable)".into(),
        });
    }
    let (verify, transport) = match root {
        Some((_, "system")) if mode != SslMode::VerifyFull => {
            return Err(PgUrlError::SystemWeak(mode));
        }
        Some((_, "system")) => (
            Verify::Full(tls::system_roots()?),
            format!("TLS (sslmode={mode}, platform roots)"),
        ),
        Some((var, path)) => {
            let roots = tls::load_ca(var, Path::new(path))?.roots;
            let verify = if mode == SslMode::VerifyFull {
                Verify::Full(roots)
            } else {
                // libpq: with a root cert, require (and prefer) check the chain as verify-ca does.
                Verify::ChainOnly(roots)
            };
            (verify, format!("TLS (sslmode={mode}, CA {path})"))
        }
        None if matches!(mode, SslMode::VerifyCa | SslMode::VerifyFull) => {
            return Err(PgUrlError::NoRootCert(mode));
        }
        None => {
            warn!(sslmode = %mode, "PostgreSQL TLS without a root certificate: the server's certificate is not checked");
            (
                Verify::Nothing,
                format!("TLS (sslmode={mode}, certificate not checked)"),
            )
        }
    };
    // allow and prefer fall back to plaintext if the server has no TLS; tokio-postgres has no allow.
    let (wire, transport) = match mode {
        SslMode::Allow | SslMode::Prefer => (
            WireSslMode::Prefer,
            format!("{transport}, plaintext if the server has no TLS"),
        ),
        _ => (WireSslMode::Require, transport),
    };
    config.ssl_mode(wire);
    let connector = tokio_postgres_rustls::MakeRustlsConnect::new(tls::client_config(verify)?);
    Ok(PgTarget {
        config,
        tls: PgTls::Tls(Box::new(connector)),
        transport,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::tests::{CA, temp_file};

    const BASE: &str = "postgresql://app:pw@shop-postgres.ns.svc:5432/shop";

    fn split(url: &str) -> SplitUrl {
        split_url(url).expect("splits")
    }

    #[test]
    fn takes_out_sslmode_and_sslrootcert_keeps_the_rest() {
        let s = split(&format!(
            "{BASE}?application_name=shop&sslmode=verify-full&connect_timeout=5&sslrootcert=/etc/appstack/tls/ca.crt"
        ));
        assert_eq!(
            s,
            SplitUrl {
                rest: format!("{BASE}?application_name=shop&connect_timeout=5"),
                sslmode: Some(SslMode::VerifyFull),
                sslrootcert: Some("/etc/appstack/tls/ca.crt".into()),
            }
        );
    }

    #[test]
    fn query_with_only_tls_parameters_is_dropped() {
        let s = split(&format!(
            "{BASE}?sslmode=verify-ca&sslrootcert=%2Fetc%2Fca%20dir%2Fca.crt"
        ));
        assert_eq!(s.rest, BASE);
        assert_eq!(s.sslmode, Some(SslMode::VerifyCa));
        assert_eq!(s.sslrootcert.as_deref(), Some("/etc/ca dir/ca.crt"));
    }

    #[test]
    fn urls_without_tls_parameters_are_unchanged() {
        for url in [
            BASE.to_owned(),
            "postgres://app:pw@h/shop?application_name=x".to_owned(),
            "host=h user=app sslmode=require".to_owned(),
        ] {
            let s = split(&url);
            assert_eq!(s.rest, url);
            assert_eq!(s.sslmode, None);
            assert_eq!(s.sslrootcert, None);
        }
    }

    #[test]
    fn every_libpq_sslmode_parses() {
        for (text, mode) in [
            ("disable", SslMode::Disable),
            ("allow", SslMode::Allow),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::VerifyCa),
            ("verify-full", SslMode::VerifyFull),
        ] {
            assert_eq!(split(&format!("{BASE}?sslmode={text}")).sslmode, Some(mode));
            assert_eq!(mode.to_string(), text);
        }
        let err = split_url(&format!("{BASE}?sslmode=verify")).expect_err("unknown");
        assert!(err.to_string().contains("sslmode=\"verify\""), "{err}");
    }

    #[test]
    fn bad_percent_encoding_is_an_error() {
        assert!(matches!(
            split_url(&format!("{BASE}?sslrootcert=%2")),
            Err(PgUrlError::Encoding(_))
        ));
        assert!(matches!(
            split_url(&format!("{BASE}?sslrootcert=%ff")),
            Err(PgUrlError::Encoding(_))
        ));
    }

    fn target(url: &str, env: Option<&str>) -> Result<PgTarget, PgUrlError> {
        pg_target(url, env)
    }

    #[test]
    fn no_sslmode_is_plaintext_as_before() {
        let t = target(BASE, Some(CA)).expect("target");
        assert!(matches!(t.tls, PgTls::Plain));
        assert_eq!(t.config.get_hosts().len(), 1);
        assert_eq!(t.config.get_dbname(), Some("shop"));
        let t = target(&format!("{BASE}?sslmode=disable"), None).expect("target");
        assert!(matches!(t.tls, PgTls::Plain));
    }

    #[test]
    fn verify_full_with_root_cert_from_url_or_env() {
        let t = target(
            &format!("{BASE}?sslmode=verify-full&sslrootcert={CA}"),
            Some("/nonexistent"),
        )
        .expect("URL's sslrootcert wins over PGSSLROOTCERT");
        assert!(matches!(t.tls, PgTls::Tls(_)));
        assert_eq!(t.config.get_ssl_mode(), WireSslMode::Require);
        assert!(t.transport.contains("verify-full"), "{}", t.transport);
        let t = target(&format!("{BASE}?sslmode=verify-full"), Some(CA)).expect("env");
        assert!(matches!(t.tls, PgTls::Tls(_)));
    }

    #[test]
    fn verify_modes_need_a_root_cert() {
        for mode in ["verify-ca", "verify-full"] {
            let err = target(&format!("{BASE}?sslmode={mode}"), None)
                .err()
                .expect("fails");
            assert!(matches!(err, PgUrlError::NoRootCert(_)), "{err}");
            assert!(err.to_string().contains("PGSSLROOTCERT"));
            // Set but empty counts as unset.
            assert!(target(&format!("{BASE}?sslmode={mode}"), Some("")).is_err());
        }
    }

    #[test]
    fn missing_root_cert_file_names_its_source() {
        let err = target(
            &format!("{BASE}?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt"),
            None,
        )
        .err()
        .expect("fails");
        let msg = err.to_string();
        assert!(msg.contains("DATABASE_URL sslrootcert"), "{msg}");
        assert!(msg.contains("/nonexistent/ca.crt"), "{msg}");
        let err = target(
            &format!("{BASE}?sslmode=verify-ca"),
            Some("/nonexistent/x.crt"),
        )
        .err()
        .expect("fails");
        assert!(err.to_string().starts_with("PGSSLROOTCERT:"), "{err}");
        let bad = temp_file("pg-bad.crt", b"nothing here");
        let err = target(&format!("{BASE}?sslmode=require"), bad.to_str())
            .err()
            .expect("a bad root cert fails even for require");
        assert!(
            matches!(err, PgUrlError::Tls(TlsError::CaEmpty { .. })),
            "{err}"
        );
        let _ = std::fs::remove_file(bad);
    }

    #[test]
    fn require_and_prefer_map_to_the_wire_modes() {
        let t = target(&format!("{BASE}?sslmode=require"), None).expect("target");
        assert_eq!(t.config.get_ssl_mode(), WireSslMode::Require);
        assert!(t.transport.contains("not checked"), "{}", t.transport);
        let t = target(&format!("{BASE}?sslmode=require"), Some(CA)).expect("target");
        assert!(t.transport.contains("CA"), "{}", t.transport);
        for mode in ["allow", "prefer"] {
            let t = target(&format!("{BASE}?sslmode={mode}"), None).expect("target");
            assert_eq!(t.config.get_ssl_mode(), WireSslMode::Prefer);
            assert!(t.transport.contains("plaintext if"), "{}", t.transport);
        }
    }

    #[test]
    fn system_roots_only_with_verify_full() {
        let err = target(
            &format!("{BASE}?sslmode=verify-ca&sslrootcert=system"),
            None,
        )
        .err()
        .expect("fails");
        assert!(matches!(err, PgUrlError::SystemWeak(SslMode::VerifyCa)));
    }

    #[test]
    fn other_parameters_still_reach_tokio_postgres() {
        let t = target(
            &format!("{BASE}?sslmode=verify-full&sslrootcert={CA}&application_name=shop"),
            None,
        )
        .expect("target");
        assert_eq!(t.config.get_application_name(), Some("shop"));
        let err = target(&format!("{BASE}?sslmode=require&bogus=1"), None)
            .err()
            .expect("unknown option still rejected");
        assert!(matches!(err, PgUrlError::Parse(_)));
    }
}
