//! TLS to the stores: rustls on ring, trusting the CA files the operator mounts.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::ParsedCertificate;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{var}: cannot read the CA file {}: {source}", path.display())]
    CaRead {
        var: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{var}: the CA file {} is not valid PEM: {source}", path.display())]
    CaPem {
        var: &'static str,
        path: PathBuf,
        source: rustls::pki_types::pem::Error,
    },
    #[error("{var}: the CA file {} holds no PEM certificate", path.display())]
    CaEmpty { var: &'static str, path: PathBuf },
    #[error("{var}: the CA file {} holds a certificate that cannot be a trust anchor: {source}", path.display())]
    CaInvalid {
        var: &'static str,
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("sslrootcert=system: no usable certificate in the platform's trust store")]
    NoSystemRoots,
    #[error("TLS client configuration: {0}")]
    Config(#[from] rustls::Error),
}

/// Trust anchors read from a PEM file, with the PEM kept for the redis crate,
/// which takes its roots as PEM bytes.
pub struct Ca {
    pub pem: Vec<u8>,
    pub roots: RootCertStore,
}

/// Reads a CA bundle; `var` names where the path came from, for the error.
pub fn load_ca(var: &'static str, path: &Path) -> Result<Ca, TlsError> {
    let pem = std::fs::read(path).map_err(|source| TlsError::CaRead {
        var,
        path: path.into(),
        source,
    })?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|source| TlsError::CaPem {
            var,
            path: path.into(),
            source,
        })?;
        roots.add(cert).map_err(|source| TlsError::CaInvalid {
            var,
            path: path.into(),
            source,
        })?;
    }
    if roots.is_empty() {
        return Err(TlsError::CaEmpty {
            var,
            path: path.into(),
        });
    }
    Ok(Ca { pem, roots })
}

/// The platform's roots (SSL_CERT_FILE/SSL_CERT_DIR or the OS store), as libpq's sslrootcert=system.
pub fn system_roots() -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if roots.is_empty() {
        return Err(TlsError::NoSystemRoots);
    }
    Ok(roots)
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The redis crate builds its rustls config from the process-wide provider;
/// pin it to ring rather than depend on which rustls features the build unifies.
pub fn install_default_provider() {
    // Err only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// How the server's certificate is checked.
pub enum Verify {
    /// Chain to the roots and host name (libpq verify-full).
    Full(RootCertStore),
    /// Chain to the roots only (libpq verify-ca, and require with a root cert).
    ChainOnly(RootCertStore),
    /// Encryption only (libpq require/prefer without a root cert).
    Nothing,
}

pub fn client_config(verify: Verify) -> Result<ClientConfig, TlsError> {
    let provider = provider();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match verify {
        Verify::Full(roots) => builder.with_root_certificates(roots),
        Verify::ChainOnly(roots) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NameUnchecked {
                roots: Some(roots),
                provider,
            })),
        Verify::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NameUnchecked {
                roots: None,
                provider,
            })),
    };
    Ok(builder.with_no_client_auth())
}

/// A verifier that never checks the host name: with roots, the chain must
/// lead to one of them (libpq verify-ca); without, any certificate is taken
/// (libpq require/prefer without a root cert: encryption only). Either way
/// the handshake signature is checked, so the session keys belong to that
/// certificate.
#[derive(Debug)]
struct NameUnchecked {
    roots: Option<RootCertStore>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NameUnchecked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = ParsedCertificate::try_from(end_entity)?;
            verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rustls::pki_types::PrivateKeyDer;
    use rustls::{ClientConnection, ServerConfig, ServerConnection};

    pub const CA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/testdata/ca.crt");
    pub const OTHER_CA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/testdata/other-ca.crt");
    const SERVER_CERT: &str = include_str!("testdata/server.crt");
    const SERVER_KEY: &str = include_str!("testdata/server.key");
    const SERVER_NAME: &str = "shop-postgres.ns.svc";

    /// A unique path under the system temp directory.
    pub fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
        let path =
            std::env::temp_dir().join(format!("appstack-shop-test-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).expect("write temp file");
        path
    }

    #[test]
    fn loads_a_ca_bundle() {
        let ca = load_ca("X", Path::new(CA)).expect("CA loads");
        assert_eq!(ca.roots.len(), 1);
        let both = [
            std::fs::read(CA).expect("read"),
            std::fs::read(OTHER_CA).expect("read"),
        ]
        .concat();
        let path = temp_file("bundle.crt", &both);
        let bundle = load_ca("X", &path).expect("bundle loads");
        assert_eq!(bundle.roots.len(), 2);
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn missing_ca_file_names_variable_and_path() {
        let err = load_ca("REDIS_TLS_CA_FILE", Path::new("/nonexistent/ca.crt"))
            .err()
            .expect("fails");
        assert!(matches!(err, TlsError::CaRead { .. }));
        let msg = err.to_string();
        assert!(msg.starts_with("REDIS_TLS_CA_FILE: cannot read the CA file /nonexistent/ca.crt"));
    }

    #[test]
    fn ca_file_without_certificate_is_refused() {
        let path = temp_file("empty.crt", b"not a certificate\n");
        let err = load_ca("PGSSLROOTCERT", &path).err().expect("fails");
        assert!(matches!(err, TlsError::CaEmpty { .. }), "{err}");
        assert!(err.to_string().contains("PGSSLROOTCERT"));
        assert!(err.to_string().contains(&path.display().to_string()));
        // A private key alone is no certificate either.
        std::fs::write(&path, SERVER_KEY).expect("write");
        let err = load_ca("PGSSLROOTCERT", &path).err().expect("fails");
        assert!(matches!(err, TlsError::CaEmpty { .. }), "{err}");
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn broken_pem_is_refused() {
        let path = temp_file(
            "broken.crt",
            b"-----BEGIN CERTIFICATE-----\n@@@@\n-----END CERTIFICATE-----\n",
        );
        let err = load_ca("X", &path).err().expect("fails");
        assert!(matches!(err, TlsError::CaPem { .. }), "{err}");
        let path2 = temp_file(
            "garbage.crt",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let err = load_ca("X", &path2).err().expect("fails");
        assert!(matches!(err, TlsError::CaInvalid { .. }), "{err}");
        let _ = std::fs::remove_file(path);
        let _ = std::fs::remove_file(path2);
    }

    /// Runs a TLS handshake in memory against a server holding the test certificate.
    fn handshake(verify: Verify, name: &str) -> Result<(), rustls::Error> {
        let certs = CertificateDer::pem_slice_iter(SERVER_CERT.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .expect("server cert");
        let key = PrivateKeyDer::from_pem_slice(SERVER_KEY.as_bytes()).expect("server key");
        let server_config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(certs, key)?;
        let mut server = ServerConnection::new(Arc::new(server_config))?;
        let name = ServerName::try_from(name.to_owned()).expect("name");
        let mut client =
            ClientConnection::new(Arc::new(client_config(verify).expect("config")), name)?;
        let mut buf = Vec::new();
        while client.is_handshaking() || server.is_handshaking() {
            buf.clear();
            client.write_tls(&mut buf).expect("write");
            let mut rd = &buf[..];
            while !rd.is_empty() {
                server.read_tls(&mut rd).expect("read");
            }
            server.process_new_packets()?;
            buf.clear();
            server.write_tls(&mut buf).expect("write");
            let mut rd = &buf[..];
            while !rd.is_empty() {
                client.read_tls(&mut rd).expect("read");
            }
            client.process_new_packets()?;
        }
        Ok(())
    }

    fn roots(path: &str) -> RootCertStore {
        load_ca("X", Path::new(path)).expect("CA").roots
    }

    #[test]
    fn verify_full_checks_chain_and_name() {
        handshake(Verify::Full(roots(CA)), SERVER_NAME).expect("right name");
        let err = handshake(Verify::Full(roots(CA)), "other.ns.svc").expect_err("wrong name");
        assert!(err.to_string().contains("not valid for name"), "{err}");
        handshake(Verify::Full(roots(OTHER_CA)), SERVER_NAME).expect_err("wrong CA");
    }

    #[test]
    fn chain_only_ignores_the_name_but_not_the_ca() {
        handshake(Verify::ChainOnly(roots(CA)), "other.ns.svc").expect("any name");
        handshake(Verify::ChainOnly(roots(OTHER_CA)), SERVER_NAME).expect_err("wrong CA");
    }

    #[test]
    fn nothing_accepts_any_certificate() {
        handshake(Verify::Nothing, "other.ns.svc").expect("no check");
    }
}
