//! Configuration: only what the operator injects.

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{0} is not set; the AppStack operator injects it into components that use the store")]
    Missing(&'static str),
    #[error("PORT={0:?} is not a port number")]
    Port(String),
}

pub struct Config {
    pub redis_url: String,
    pub database_url: String,
    pub port: u16,
    /// The pod's name (HOSTNAME in Kubernetes), sent back in x-served-by.
    pub pod: String,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let var = |name: &'static str| std::env::var(name).map_err(|_| ConfigError::Missing(name));
        let port = match std::env::var("PORT") {
            Ok(p) => p.parse().map_err(|_| ConfigError::Port(p))?,
            Err(_) => 8080,
        };
        Ok(Self {
            redis_url: var("REDIS_URL")?,
            database_url: var("DATABASE_URL")?,
            port,
            pod: std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".into()),
        })
    }
}
