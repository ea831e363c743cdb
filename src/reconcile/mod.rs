//! The controller: reads an AppStack and what exists, calls the builders,
//! applies, prunes and reports. It builds nothing itself.

mod apply;
mod caches;
mod context;
mod credentials;
mod handoff;
mod ownership;
mod pipeline;
mod prune;
mod status;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::runtime::Controller;
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, ResourceExt};
use tracing::{debug, info, instrument, warn};

use crate::api::AppStack;
use crate::error::{Error, Result};
use crate::telemetry::Metrics;
use context::Context;
pub use status::{DEGRADED, PROGRESSING, READY};

/// How often a converged stack is looked at again without any event. Watches
/// already catch every change; this is a safety net, and with the applier's
/// memory it costs no API writes.
const RESYNC: Duration = Duration::from_secs(15 * 60);

/// How soon a stack waiting on something no watch reports (a name held by an
/// object made outside AppStack) is looked at again.
const SOON: Duration = Duration::from_secs(10);

/// What the binary hands every controller it runs.
#[derive(Clone)]
pub struct Shared {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    /// Set once this controller's caches have listed everything (/readyz).
    pub synced: Arc<AtomicBool>,
    /// This replica's name, reported in Events.
    pub instance: Option<String>,
    pub concurrency: u16,
}

/// Runs the controller for one namespace (or all) until `shutdown` resolves.
pub async fn run(
    shared: Shared,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (caches, triggers) = caches::watch(&shared.client, namespace.as_deref());
    let ctx = Arc::new(Context::new(
        shared.client.clone(),
        caches.clone(),
        shared.metrics.clone(),
        shared.instance.clone(),
    ));
    let synced = shared.synced.clone();
    let watched = caches.clone();
    tokio::spawn(async move {
        caches::wait_ready(&watched).await;
        synced.store(true, Ordering::Relaxed);
        info!(
            namespace = namespace.as_deref().unwrap_or("*"),
            "caches synced"
        );
    });
    let after = ctx.clone();
    // A child's event wakes its stack, and any stack waiting for its name.
    Controller::for_stream(triggers.stacks, caches.stacks.clone())
        .watches_stream(triggers.deployments, wake(&ctx))
        .watches_stream(triggers.stateful_sets, wake(&ctx))
        .watches_stream(triggers.secrets, wake(&ctx))
        .watches_stream(triggers.services, wake(&ctx))
        .watches_stream(triggers.autoscalers, wake(&ctx))
        .watches_stream(triggers.disruption_budgets, wake(&ctx))
        .with_config(ControllerConfig::default().concurrency(shared.concurrency))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            // Watch failures (RBAC, a CRD missing) surface here; reconcile
            // failures are logged where they happen. A wake-up for a stack
            // deleted meanwhile (its children's deletions) is expected; it
            // also ends whatever that stack was waiting for.
            match result {
                Err(kube::runtime::controller::Error::ReconcilerFailed(..)) | Ok(_) => {}
                Err(kube::runtime::controller::Error::ObjectNotFound(stack)) => {
                    debug!(%stack, "woken for a stack that no longer exists");
                    let namespace = stack.namespace.as_deref().unwrap_or_default();
                    after.waiting.set(namespace, &stack.name, &[]);
                }
                Err(error) => warn!(%error, "controller"),
            }
            std::future::ready(())
        })
        .await;
}

fn wake<K: kube::Resource>(
    ctx: &Arc<Context>,
) -> impl Fn(K) -> Vec<ObjectRef<AppStack>> + Send + Sync + 'static {
    let ctx = ctx.clone();
    move |child| ctx.waiting.stacks_to_wake(&child)
}

#[instrument(skip_all, fields(stack = %stack.name_any(), namespace = stack.namespace().unwrap_or_default()))]
async fn reconcile(stack: Arc<AppStack>, ctx: Arc<Context>) -> Result<Action> {
    // Until every child watch has listed, a missing child may only be missing
    // from the cache: reconciling then would read each one from the API server.
    caches::wait_ready(&ctx.caches).await;
    let started = Instant::now();
    let result = pipeline::reconcile(&stack, &ctx).await;
    ctx.metrics.observe(
        started.elapsed(),
        result.as_ref().err().map(Error::metric_label),
    );
    match &result {
        Ok(_) => ctx.reset_backoff(&stack),
        Err(error) => {
            warn!(%error, "reconcile failed");
            let message = truncate(&error.to_string(), 1000);
            ctx.publish(&stack, pipeline::warning("ReconcileFailed", &message))
                .await;
            // A failed status write would only fail again here.
            if !matches!(error, Error::Status(_)) {
                pipeline::report_failure(&ctx, &stack, message).await;
            }
        }
    }
    result.map(|next| match next {
        pipeline::Next::Resync => Action::requeue(jittered(RESYNC, &stack)),
        pipeline::Next::Soon => Action::requeue(SOON),
    })
}

fn error_policy(stack: Arc<AppStack>, _error: &Error, ctx: Arc<Context>) -> Action {
    Action::requeue(ctx.next_backoff(&stack))
}

/// Spreads periodic resyncs of many stacks over time instead of in a burst.
fn jittered(base: Duration, stack: &AppStack) -> Duration {
    let seed = stack
        .uid()
        .unwrap_or_default()
        .bytes()
        .fold(0u64, |acc, b| {
            acc.wrapping_mul(31).wrapping_add(u64::from(b))
        });
    base + Duration::from_secs(seed % (base.as_secs() / 5).max(1))
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
