//! TLS material: the stack's CA, read from its Secret or made once, and
//! each store's server certificate, read from its Secret and issued again
//! when it is missing, not the CA's, for other names, or near its end.
//!
//! Like the passwords, the CA is made only when its Secret does not exist
//! and then created with a create that a racing writer makes fail, not
//! overwrite (`credentials::create`). A server certificate is only ever replaced by one the CA
//! signs: the apply that writes it changes nothing at steady state.

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SerialNumber,
};
use time::{Duration, OffsetDateTime};
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::X509Certificate;

use super::ownership;
use crate::build::tls::CertifiedKey;
use crate::error::{Error, Result};

/// A CA lives ten years; it is replaced (and every client rolled) when less
/// than a server certificate's life is left.
const CA_LIFE: Duration = Duration::days(3650);
/// Server certificates live a year and are renewed four months before
/// their end; the stores load the new one without a restart.
const SERVER_LIFE: Duration = Duration::days(365);
const RENEW_BEFORE: Duration = Duration::days(120);
/// Backdated, so that a node whose clock is a little behind accepts it.
const BACKDATE: Duration = Duration::hours(1);

/// The stack's CA as found.
#[derive(Debug)]
pub enum Ca {
    Existing(CertifiedKey),
    /// Made just now: its Secret must be created before anything is applied.
    Generated(CertifiedKey),
    /// The Secret is there but the CA must be replaced (said why): the apply
    /// writes the new one.
    Replaced(CertifiedKey, String),
    /// The name is held by an object this stack does not control.
    Held(String),
}

pub async fn resolve_ca(
    api: &Api<Secret>,
    uid: &str,
    name: &str,
    subject: &str,
    now: OffsetDateTime,
) -> Result<Ca> {
    let secret = read(api, name).await?;
    if let Some(holder) = secret
        .as_ref()
        .and_then(|s| ownership::foreign_holder(&s.metadata, uid))
    {
        return Ok(Ca::Held(holder));
    }
    let Some(secret) = secret else {
        return Ok(Ca::Generated(new_ca(subject, now)?));
    };
    let found = CertifiedKey {
        cert: key_of(&secret, name, "tls.crt")?,
        key: key_of(&secret, name, "tls.key")?,
    };
    match ca_problem(&found, now) {
        None => Ok(Ca::Existing(found)),
        Some(why) => Ok(Ca::Replaced(new_ca(subject, now)?, why)),
    }
}

/// A store's server certificate: the one in its Secret while it is good,
/// else a new one, with the reason.
pub async fn resolve_server(
    api: &Api<Secret>,
    uid: &str,
    name: &str,
    ca: &CertifiedKey,
    names: &[String],
    now: OffsetDateTime,
) -> Result<(CertifiedKey, Option<String>)> {
    // A Secret the stack does not control is never read: the apply reports
    // the name as taken.
    let found = read(api, name)
        .await?
        .filter(|s| ownership::foreign_holder(&s.metadata, uid).is_none());
    let found = found.and_then(|s| {
        Some(CertifiedKey {
            cert: key_of(&s, name, "tls.crt").ok()?,
            key: key_of(&s, name, "tls.key").ok()?,
        })
    });
    let why = match &found {
        None => "new".to_string(),
        Some(found) => match server_problem(found, ca, names, now) {
            None => return Ok((found.clone(), None)),
            Some(why) => why,
        },
    };
    Ok((issue(ca, names, now)?, Some(why)))
}

async fn read(api: &Api<Secret>, name: &str) -> Result<Option<Secret>> {
    api.get_opt(name).await.map_err(|source| Error::Read {
        kind: "Secret",
        name: name.to_string(),
        source,
    })
}

fn key_of(secret: &Secret, name: &str, key: &'static str) -> Result<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
        .filter(|v| !v.is_empty() && v.len() <= 16 * 1024)
        .ok_or_else(|| Error::MalformedSecret {
            name: name.to_string(),
            key,
        })
}

fn tls_error(step: &'static str) -> impl Fn(rcgen::Error) -> Error {
    move |e| Error::Tls {
        step,
        message: e.to_string(),
    }
}

/// A random positive serial number (RFC 5280: at most 20 octets).
fn serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    bytes[0] &= 0x7f;
    Ok(SerialNumber::from_slice(&bytes))
}

/// A new CA (ECDSA P-256), allowed to sign server certificates only.
pub fn new_ca(subject: &str, now: OffsetDateTime) -> Result<CertifiedKey> {
    let key = KeyPair::generate().map_err(tls_error("generating the CA key"))?;
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, "AppStack");
    dn.push(DnType::CommonName, subject);
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = now - BACKDATE;
    params.not_after = now + CA_LIFE;
    params.serial_number = Some(serial()?);
    let cert = params
        .self_signed(&key)
        .map_err(tls_error("signing the CA certificate"))?;
    Ok(CertifiedKey {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// A server certificate for `names`, signed by `ca`.
pub fn issue(ca: &CertifiedKey, names: &[String], now: OffsetDateTime) -> Result<CertifiedKey> {
    let ca_key = KeyPair::from_pem(&ca.key).map_err(tls_error("reading the CA key"))?;
    let issuer = Issuer::from_ca_cert_pem(&ca.cert, ca_key).map_err(tls_error("reading the CA"))?;
    let mut params =
        CertificateParams::new(names.to_vec()).map_err(tls_error("naming the certificate"))?;
    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        names.first().cloned().unwrap_or_default(),
    );
    params.distinguished_name = dn;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - BACKDATE;
    params.not_after = now + SERVER_LIFE;
    params.serial_number = Some(serial()?);
    let key = KeyPair::generate().map_err(tls_error("generating a server key"))?;
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(tls_error("signing a server certificate"))?;
    Ok(CertifiedKey {
        cert: cert.pem(),
        key: key.serialize_pem(),
    })
}

/// When the first certificate of a PEM string ends (seconds since the
/// epoch), for the expiry gauge.
pub fn not_after(pem: &str) -> Option<i64> {
    with_cert(pem, |cert| cert.validity().not_after.timestamp())
}

/// Parses the first certificate of a PEM string and hands it to `f`.
fn with_cert<T>(pem: &str, f: impl FnOnce(&X509Certificate) -> T) -> Option<T> {
    let pem = der_of(pem)?;
    let cert = pem.parse_x509().ok()?;
    Some(f(&cert))
}

fn der_of(pem: &str) -> Option<x509_parser::pem::Pem> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .ok()
        .map(|(_, pem)| pem)
}

/// Whether `key` (PEM) is the private key of `cert`.
fn key_matches(cert: &X509Certificate, key: &str) -> bool {
    KeyPair::from_pem(key)
        .map(|k| k.subject_public_key_info() == cert.public_key().raw)
        .unwrap_or(false)
}

fn ends_in(cert: &X509Certificate, now: OffsetDateTime) -> Duration {
    Duration::seconds(cert.validity().not_after.timestamp() - now.unix_timestamp())
}

/// Why the CA cannot stay, if it cannot.
fn ca_problem(ca: &CertifiedKey, now: OffsetDateTime) -> Option<String> {
    with_cert(&ca.cert, |cert| {
        let is_ca = cert
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|b| b.value.ca);
        if !is_ca {
            Some("its certificate is not a CA".to_string())
        } else if !key_matches(cert, &ca.key) {
            Some("its key does not match its certificate".to_string())
        } else if ends_in(cert, now) < SERVER_LIFE {
            Some(format!(
                "it expires at {}",
                cert.validity().not_after.to_datetime()
            ))
        } else {
            None
        }
    })
    .unwrap_or_else(|| Some("its certificate does not parse".to_string()))
}

/// Why a server certificate must be issued again, if it must.
fn server_problem(
    server: &CertifiedKey,
    ca: &CertifiedKey,
    names: &[String],
    now: OffsetDateTime,
) -> Option<String> {
    let Some(ca_pem) = der_of(&ca.cert) else {
        return Some("the CA does not parse".to_string());
    };
    let Ok(ca_cert) = ca_pem.parse_x509() else {
        return Some("the CA does not parse".to_string());
    };
    with_cert(&server.cert, |cert| {
        let signed = cert.verify_signature(Some(ca_cert.public_key())).is_ok();
        let mut has: Vec<String> = cert
            .subject_alternative_name()
            .ok()
            .flatten()
            .map(|san| {
                san.value
                    .general_names
                    .iter()
                    .filter_map(|n| match n {
                        GeneralName::DNSName(d) => Some(d.to_string()),
                        GeneralName::IPAddress(ip) => ip_text(ip),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        has.sort();
        let mut want = names.to_vec();
        want.sort();
        if !signed {
            Some("it is not signed by the stack's CA".to_string())
        } else if !key_matches(cert, &server.key) {
            Some("its key does not match it".to_string())
        } else if has != want {
            Some(format!("it names {has:?}, not {want:?}"))
        } else if ends_in(cert, now) < RENEW_BEFORE {
            Some(format!(
                "it expires at {}",
                cert.validity().not_after.to_datetime()
            ))
        } else {
            None
        }
    })
    .unwrap_or_else(|| Some("it does not parse".to_string()))
}

fn ip_text(bytes: &[u8]) -> Option<String> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv4Addr::from(b).to_string()),
        16 => <[u8; 16]>::try_from(bytes)
            .ok()
            .map(|b| std::net::Ipv6Addr::from(b).to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec![
            "shop-redis.ns.svc".to_string(),
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ]
    }

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    #[test]
    fn an_issued_certificate_is_kept_until_it_must_be_renewed() {
        let ca = new_ca("AppStack CA ns/shop", now()).unwrap();
        assert_eq!(ca_problem(&ca, now()), None);
        let server = issue(&ca, &names(), now()).unwrap();
        assert_eq!(server_problem(&server, &ca, &names(), now()), None);
        // Eight months on: still good. Nine: within four months of its end.
        let later = now() + Duration::days(240);
        assert_eq!(server_problem(&server, &ca, &names(), later), None);
        let renew = now() + Duration::days(250);
        let why = server_problem(&server, &ca, &names(), renew).unwrap();
        assert!(why.starts_with("it expires at"), "{why}");
        // The CA is replaced once less than a server certificate's life is left.
        assert!(ca_problem(&ca, now() + Duration::days(3400)).is_some());
    }

    #[test]
    fn another_ca_other_names_or_another_key_mean_a_new_certificate() {
        let ca = new_ca("AppStack CA ns/shop", now()).unwrap();
        let server = issue(&ca, &names(), now()).unwrap();
        let other_ca = new_ca("AppStack CA ns/shop", now()).unwrap();
        let why = server_problem(&server, &other_ca, &names(), now()).unwrap();
        assert!(why.contains("not signed"), "{why}");
        let mut fewer = names();
        fewer.pop();
        let why = server_problem(&server, &ca, &fewer, now()).unwrap();
        assert!(why.starts_with("it names"), "{why}");
        let other = issue(&ca, &names(), now()).unwrap();
        let swapped = CertifiedKey {
            cert: server.cert.clone(),
            key: other.key,
        };
        let why = server_problem(&swapped, &ca, &names(), now()).unwrap();
        assert!(why.contains("key does not match"), "{why}");
        let garbage = CertifiedKey {
            cert: "not a certificate".into(),
            key: server.key,
        };
        assert!(server_problem(&garbage, &ca, &names(), now()).is_some());
    }

    #[test]
    fn a_server_certificate_is_no_ca() {
        let ca = new_ca("AppStack CA ns/shop", now()).unwrap();
        let server = issue(&ca, &names(), now()).unwrap();
        let why = ca_problem(&server, now()).unwrap();
        assert!(why.contains("not a CA"), "{why}");
    }
}
