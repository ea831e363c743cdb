//! Connections to the stores. Both reconnect by themselves after a store
//! restarts: Redis through a ConnectionManager, PostgreSQL through a pool that
//! drops broken connections.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use redis::aio::ConnectionManager;
use tokio::sync::OnceCell;
use tracing::{info, warn};

use crate::cart;
use crate::config::Config;
use crate::error::ApiError;
use crate::pg_url::{self, PgTls, PgUrlError};
use crate::redis_url::{self, RedisUrlError};

#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    redis_client: redis::Client,
    redis: OnceCell<ConnectionManager>,
    pool: Pool,
    schema_ready: AtomicBool,
    /// How each store is reached, for the log line at connect.
    redis_transport: String,
    pg_transport: String,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Redis(#[from] RedisUrlError),
    #[error(transparent)]
    Postgres(#[from] PgUrlError),
    #[error("building the PostgreSQL pool: {0}")]
    Pool(#[from] deadpool_postgres::BuildError),
}

impl AppState {
    pub fn new(config: &Config) -> Result<Self, StateError> {
        let redis =
            redis_url::redis_target(&config.redis_url, config.redis_tls_ca_file.as_deref())?;
        let pg = pg_url::pg_target(&config.database_url, config.pg_ssl_root_cert.as_deref())?;
        let manager_config = ManagerConfig {
            recycling_method: RecyclingMethod::Verified,
        };
        let manager = match pg.tls {
            PgTls::Plain => Manager::from_config(pg.config, tokio_postgres::NoTls, manager_config),
            PgTls::Tls(tls) => Manager::from_config(pg.config, *tls, manager_config),
        };
        // Checking an idle connection to a PostgreSQL pod that is gone can
        // hang (no FIN from a vanished address): give up on it after a second
        // and open a new one instead of stalling the request.
        let pool = Pool::builder(manager)
            .max_size(8)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(3)))
            .recycle_timeout(Some(Duration::from_secs(1)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()?;
        Ok(Self {
            inner: Arc::new(Inner {
                redis_client: redis.client,
                redis: OnceCell::new(),
                pool,
                schema_ready: AtomicBool::new(false),
                redis_transport: redis.transport,
                pg_transport: pg.transport,
            }),
        })
    }

    /// Connects to Redis and creates the schema, retrying with backoff until
    /// both stores answer; the server runs meanwhile.
    pub fn connect_in_background(&self) {
        let state = self.clone();
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(200);
            loop {
                let redis_ok = state.redis().await.is_ok();
                let schema_ok = state.ensure_schema().await.is_ok();
                if redis_ok && schema_ok {
                    info!(
                        redis = %state.inner.redis_transport,
                        postgres = %state.inner.pg_transport,
                        "connected to Redis and PostgreSQL"
                    );
                    return;
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        });
    }

    pub async fn redis(&self) -> Result<ConnectionManager, ApiError> {
        let manager = self
            .inner
            .redis
            .get_or_try_init(|| async {
                ConnectionManager::new(self.inner.redis_client.clone())
                    .await
                    .map_err(|e| {
                        warn!(error = %e, "Redis not reachable yet");
                        ApiError::Unavailable("redis")
                    })
            })
            .await?;
        Ok(manager.clone())
    }

    pub async fn pg(&self) -> Result<deadpool_postgres::Object, ApiError> {
        if !self.inner.schema_ready.load(Ordering::Relaxed) {
            self.ensure_schema().await?;
        }
        Ok(self.inner.pool.get().await?)
    }

    async fn ensure_schema(&self) -> Result<(), ApiError> {
        if self.inner.schema_ready.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut client = self.inner.pool.get().await.map_err(|e| {
            warn!(error = %e, "PostgreSQL not reachable yet");
            ApiError::Unavailable("postgres")
        })?;
        cart::create_schema(&mut client).await?;
        self.inner.schema_ready.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// Both stores answer right now.
    pub async fn check(&self) -> Result<(), ApiError> {
        let mut redis = self.redis().await?;
        let _: String = redis::cmd("PING").query_async(&mut redis).await?;
        let client = self.pg().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }
}
