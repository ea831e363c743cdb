//! Schema 2 of the shop, and the migration that makes it: `appstack-shop
//! migrate` adds the column `cart_items.gift`; the web server started with
//! SHOP_SCHEMA=2 refuses to start without it (so a pod that started before
//! its migration shows as a restart). `appstack-shop tick` is a scheduled
//! job's work. For the e2e suite, MIGRATE_FAIL makes the migration fail
//! with that message, and MIGRATE_SLEEP_SECONDS makes it wait first (a pod
//! to kill mid-run).

use std::process::ExitCode;
use std::time::Duration;

use tracing::{error, info};

use crate::error::ApiError;
use crate::state::AppState;

/// What schema 2 adds. Idempotent: a migration run twice changes nothing.
const MIGRATION: &str = "SELECT pg_advisory_xact_lock(4242);
     ALTER TABLE cart_items ADD COLUMN IF NOT EXISTS gift boolean NOT NULL DEFAULT false;";

/// `appstack-shop migrate`.
pub async fn run(state: &AppState) -> ExitCode {
    if let Some(seconds) = std::env::var("MIGRATE_SLEEP_SECONDS")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        info!(seconds, "waiting before migrating");
        tokio::time::sleep(Duration::from_secs(seconds)).await;
    }
    if let Ok(message) = std::env::var("MIGRATE_FAIL") {
        error!("migration failed: {message}");
        return ExitCode::FAILURE;
    }
    match migrate(state).await {
        Ok(()) => {
            info!("migrated to schema 2: cart_items.gift exists");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!("migration failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn migrate(state: &AppState) -> Result<(), ApiError> {
    // pg() creates schema 1 first (cart_items) when it is missing.
    let mut client = state.pg().await?;
    let tx = client.transaction().await?;
    tx.batch_execute(MIGRATION).await?;
    tx.commit().await?;
    Ok(())
}

/// With SHOP_SCHEMA=2, the web server needs the column: it waits for
/// PostgreSQL (a minute at most), then refuses to start without it.
pub async fn require(state: &AppState) -> Result<(), String> {
    if std::env::var("SHOP_SCHEMA").ok().as_deref() != Some("2") {
        return Ok(());
    }
    let mut last = String::new();
    for _ in 0..60 {
        match state.pg().await {
            Ok(client) => {
                return match client
                    .simple_query("SELECT gift FROM cart_items LIMIT 0")
                    .await
                {
                    Ok(_) => {
                        info!("schema 2: cart_items.gift exists");
                        Ok(())
                    }
                    Err(e) => Err(format!(
                        "SHOP_SCHEMA=2 needs the column cart_items.gift (run `appstack-shop migrate`): {e}"
                    )),
                };
            }
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    Err(format!("SHOP_SCHEMA=2: PostgreSQL not reachable: {last}"))
}

/// `appstack-shop tick`, a scheduled job's work: one row into `ticks`,
/// over the same wired (TLS) URL the web server uses.
pub async fn tick(state: &AppState) -> ExitCode {
    let result = async {
        let client = state.pg().await?;
        client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS ticks (at timestamptz NOT NULL DEFAULT now());
                 INSERT INTO ticks DEFAULT VALUES;",
            )
            .await?;
        Ok::<_, ApiError>(())
    }
    .await;
    match result {
        Ok(()) => {
            info!("tick recorded");
            ExitCode::SUCCESS
        }
        Err(e) => {
            error!("tick failed: {e}");
            ExitCode::FAILURE
        }
    }
}
