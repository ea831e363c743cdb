//! Configuration: only what the operator injects.

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set; the AppStack operator injects it into components that use the store")]
    Missing(&'static str),
    #[error("PORT={0:?} is not a port number")]
    Port(String),
}

pub struct Config {
    /// redis:// (plaintext) or rediss:// (TLS).
    pub redis_url: String,
    /// REDIS_TLS_CA_FILE: the CA bundle trusted for rediss://.
    pub redis_tls_ca_file: Option<String>,
    /// libpq-style; sslmode and sslrootcert are honoured.
    pub database_url: String,
    /// PGSSLROOTCERT: the CA bundle when DATABASE_URL has no sslrootcert.
    pub pg_ssl_root_cert: Option<String>,
    pub port: u16,
    /// The pod's name (HOSTNAME in Kubernetes), sent back in x-served-by.
    pub pod: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let var = |name: &'static str| std::env::var(name).map_err(|_| ConfigError::Missing(name));
        // Set but empty counts as unset.
        let optional = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let port = match std::env::var("PORT") {
            Ok(p) => p.parse().map_err(|_| ConfigError::Port(p))?,
            Err(_) => 8080,
        };
        Ok(Self {
            redis_url: var("REDIS_URL")?,
            redis_tls_ca_file: optional("REDIS_TLS_CA_FILE"),
            database_url: var("DATABASE_URL")?,
            pg_ssl_root_cert: optional("PGSSLROOTCERT"),
            port,
            pod: std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".into()),
        })
    }
}
