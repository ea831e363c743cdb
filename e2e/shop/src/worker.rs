//! `appstack-shop worker`: takes orders off the Redis list the web fills
//! (orders.rs) and records each as processed by this pod. No port, no
//! PostgreSQL: it needs only REDIS_URL (and REDIS_TLS_CA_FILE for TLS).
//!
//! An order is moved atomically from the queue to a "taken" list (BLMOVE),
//! recorded, then dropped from "taken": a worker killed in between leaves
//! it in "taken" rather than losing it.

use std::process::ExitCode;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, Direction};
use tracing::{error, info, warn};

use crate::orders::{DONE, Order, QUEUE, TAKEN};
use crate::redis_url;

/// Seconds BLMOVE blocks for: the connection's response timeout must exceed it.
const BLOCK_SECONDS: f64 = 5.0;

pub async fn run() -> ExitCode {
    let Some(url) = std::env::var("REDIS_URL").ok().filter(|u| !u.is_empty()) else {
        error!(
            "REDIS_URL is not set; the AppStack operator injects it into components that use redis"
        );
        return ExitCode::FAILURE;
    };
    let ca = std::env::var("REDIS_TLS_CA_FILE").ok();
    let pod = std::env::var("HOSTNAME").unwrap_or_else(|_| "unknown".into());
    let target = match redis_url::redis_target(&url, ca.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let config = ConnectionManagerConfig::new()
        .set_response_timeout(Some(Duration::from_secs_f64(BLOCK_SECONDS + 5.0)));
    let mut delay = Duration::from_millis(200);
    let mut redis = loop {
        match ConnectionManager::new_with_config(target.client.clone(), config.clone()).await {
            Ok(c) => break c,
            Err(e) => {
                warn!(error = %e, "Redis not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    };
    info!(redis = %target.transport, %pod, "worker connected; waiting for orders");
    let work = async {
        loop {
            if let Err(e) = take_one(&mut redis, &pod).await {
                warn!(error = %e, "taking an order failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    };
    tokio::select! {
        () = work => {}
        () = crate::shutdown() => {}
    }
    info!("worker stopped");
    ExitCode::SUCCESS
}

async fn take_one(redis: &mut ConnectionManager, pod: &str) -> redis::RedisResult<()> {
    let taken: Option<String> = redis
        .blmove(
            QUEUE,
            TAKEN,
            Direction::Right,
            Direction::Left,
            BLOCK_SECONDS,
        )
        .await?;
    let Some(payload) = taken else {
        return Ok(());
    };
    match serde_json::from_str::<Order>(&payload) {
        Ok(order) => {
            let _: () = redis.hset(DONE, &order.id, pod).await?;
            info!(id = %order.id, item = %order.item, "order processed");
        }
        Err(e) => warn!(error = %e, "dropping an order that is not JSON"),
    }
    let _: () = redis.lrem(TAKEN, 1, &payload).await?;
    Ok(())
}
