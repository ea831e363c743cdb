//! Bounded waits that say what they waited for and what they saw last.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};

/// One look at the world: done with a value, or not yet with what was seen.
pub enum Poll<T> {
    Ready(T),
    Pending(String),
}

pub use Poll::{Pending, Ready};

/// Calls `check` every 500 ms until it is ready, for at most `timeout`.
/// An error from `check` counts as "not yet" (API servers hiccup); the last
/// thing seen goes into the failure message.
pub async fn until<T>(
    what: &str,
    timeout: Duration,
    check: impl AsyncFnMut() -> Result<Poll<T>>,
) -> Result<T> {
    until_every(what, timeout, Duration::from_millis(500), check).await
}

pub async fn until_every<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: impl AsyncFnMut() -> Result<Poll<T>>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        let last = match check().await {
            Ok(Ready(value)) => return Ok(value),
            Ok(Pending(seen)) => seen,
            Err(error) => format!("error: {error:#}"),
        };
        if start.elapsed() >= timeout {
            bail!(
                "timed out after {}s waiting for {what}; last seen: {last}",
                timeout.as_secs()
            );
        }
        tokio::time::sleep(every).await;
    }
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
