//! A steady, bounded client load: `rate` requests per second for at most
//! `duration`, each on its own connection with its own timeout.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::task::JoinHandle;

use crate::cmd;
use crate::http::{Call, Http, ensure_cluster_address};

#[derive(Clone, Debug)]
pub struct LoadSpec {
    pub path: String,
    pub bearer: Option<String>,
    pub rate: u32,
    pub duration: Duration,
    pub timeout: Duration,
}

#[derive(Debug, Default)]
pub struct LoadReport {
    pub sent: usize,
    pub ok: usize,
    /// The first few failures, as seen.
    pub failures: Vec<String>,
    pub failed: usize,
    pub served_by: BTreeMap<String, usize>,
    pub elapsed: Duration,
}

impl LoadReport {
    pub fn summary(&self) -> String {
        format!(
            "{} requests in {:.1}s: {} ok, {} failed; served by {:?}",
            self.sent,
            self.elapsed.as_secs_f64(),
            self.ok,
            self.failed,
            self.served_by
        )
    }
}

pub struct Load {
    stop: Arc<AtomicBool>,
    task: JoinHandle<Result<LoadReport>>,
}

impl Load {
    pub fn start(http: Http, addr: SocketAddr, spec: LoadSpec) -> Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let task = match http {
            Http::Host => {
                ensure_cluster_address(addr.ip())?;
                tokio::spawn(from_host(addr, spec, stop.clone()))
            }
            Http::Pod {
                env,
                namespace,
                pod,
            } => tokio::spawn(async move { from_pod(&env, &namespace, &pod, addr, spec).await }),
        };
        Ok(Self { stop, task })
    }

    /// Stops sending new requests and waits for those in flight.
    pub async fn stop(self) -> Result<LoadReport> {
        self.stop.store(true, Ordering::Relaxed);
        self.wait().await
    }

    /// Waits until the load has run its course.
    pub async fn wait(self) -> Result<LoadReport> {
        self.task.await.context("the load task panicked")?
    }
}

async fn from_host(addr: SocketAddr, spec: LoadSpec, stop: Arc<AtomicBool>) -> Result<LoadReport> {
    let start = Instant::now();
    let total = (spec.rate as f64 * spec.duration.as_secs_f64()).ceil() as usize;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / spec.rate.max(1) as f64));
    // A stalled tick must not turn into a burst.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut inflight = Vec::with_capacity(total);
    for _ in 0..total {
        tick.tick().await;
        if stop.load(Ordering::Relaxed) || start.elapsed() >= spec.duration {
            break;
        }
        let spec = spec.clone();
        inflight.push(tokio::spawn(async move {
            let mut call = Call::get(&spec.path).timeout(spec.timeout);
            if let Some(token) = &spec.bearer {
                call = call.bearer(token);
            }
            let at = start.elapsed();
            (at, Http::Host.send(addr, call).await)
        }));
    }
    let mut report = LoadReport {
        sent: inflight.len(),
        ..Default::default()
    };
    for handle in inflight {
        let (at, result) = handle.await.context("a load request panicked")?;
        match result {
            Ok(r) if r.status == 200 => {
                report.ok += 1;
                *report
                    .served_by
                    .entry(r.served_by.unwrap_or_default())
                    .or_default() += 1;
            }
            other => {
                report.failed += 1;
                if report.failures.len() < 5 {
                    let what = match other {
                        Ok(r) => r.summary(),
                        Err(e) => format!("{e:#}"),
                    };
                    report
                        .failures
                        .push(format!("at {:.1}s: {what}", at.as_secs_f64()));
                }
            }
        }
    }
    report.elapsed = start.elapsed();
    Ok(report)
}

/// The same load from a helper pod: a shell loop of busybox wget, one line
/// per request ("ok <pod>" or "fail"). `timeout` bounds each request:
/// Debian's static busybox 1.35 wget segfaults with its own -T.
async fn from_pod(
    env: &crate::env::TestEnv,
    namespace: &str,
    pod: &str,
    addr: SocketAddr,
    spec: LoadSpec,
) -> Result<LoadReport> {
    let start = Instant::now();
    let total = (spec.rate as f64 * spec.duration.as_secs_f64()).ceil() as usize;
    let pause = 1.0 / spec.rate.max(1) as f64;
    let auth = spec
        .bearer
        .as_ref()
        .map(|t| format!("--header 'Authorization: Bearer {t}'"))
        .unwrap_or_default();
    let script = format!(
        "i=0; while [ $i -lt {total} ]; do \
           (h=$(timeout {t} wget -S -q -O /dev/null {auth} 'http://{addr}{path}' 2>&1) \
             && echo \"ok $(echo \"$h\" | sed -n 's/^ *x-served-by: *//Ip' | tr -d '\\r')\" || echo fail) & \
           sleep {pause}; i=$((i+1)); done; wait",
        t = spec.timeout.as_secs().max(1),
        path = spec.path,
    );
    let out = cmd::run(
        env,
        "kubectl",
        &["exec", "-n", namespace, pod, "--", "sh", "-c", &script],
        None,
        spec.duration + spec.timeout + Duration::from_secs(60),
    )
    .await?;
    let mut report = LoadReport::default();
    for line in out.stdout.lines() {
        report.sent += 1;
        if let Some(server) = line.strip_prefix("ok") {
            report.ok += 1;
            *report
                .served_by
                .entry(server.trim().to_string())
                .or_default() += 1;
        } else {
            report.failed += 1;
        }
    }
    report.elapsed = start.elapsed();
    Ok(report)
}
