//! The controller: reads an AppStack and what exists, calls the builders,
//! applies, prunes and reports (the four phases are in `phases`). It builds
//! nothing itself.

mod backups;
mod certificates;
mod children;
mod context;
mod credentials;
mod enforcement;
mod instances;
mod migrations;
mod ownership;
mod phases;
mod redis_pods;
mod restored;
#[cfg(test)]
mod tests;
mod user_secrets;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::runtime::Controller;
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::{Client, ResourceExt};
use tracing::{debug, info, instrument, warn};

use crate::api::StoredAppStack;
use crate::error::{CONDITION_MESSAGE_MAX, Error, Result, cut};
pub use crate::status::{DEGRADED, PROGRESSING, READY};
use crate::telemetry::Metrics;
use context::Context;

/// How often a converged stack is looked at again without any event. Watches
/// already catch every change; this is a safety net, and with the applier's
/// memory it costs no API writes.
const RESYNC: Duration = Duration::from_secs(15 * 60);

/// How soon a stack waiting on something no watch reports (a name held by an
/// object made outside AppStack) is looked at again.
const SOON: Duration = Duration::from_secs(10);

/// How often a stack that reads a user's Secret without the watch label
/// (`appstack.dev/store-secret`) looks at it again: no watch reports it.
const POLL: Duration = Duration::from_secs(60);
/// How often a stack with a replicated store is looked at: no watch
/// reports a primary that stopped answering, or a master Sentinel moved.
const SHORTLY: Duration = Duration::from_secs(2);
/// See `Next::Steady`.
const STEADY: Duration = Duration::from_secs(5);

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
    /// The image whose binary moves backups to and from S3 (the operator's
    /// own), when configured.
    pub agent_image: Option<String>,
    /// NetworkPolicy peers of the ingress controllers: admitted to routed
    /// components whose `ingressFrom` would keep them out.
    pub route_controllers: Vec<k8s_openapi::api::networking::v1::NetworkPolicyPeer>,
    /// NetworkPolicy peers admitted to the stores' exporters.
    pub metrics_scrapers: Vec<k8s_openapi::api::networking::v1::NetworkPolicyPeer>,
}

/// Runs the controller for one namespace (or all) until `shutdown` resolves.
pub async fn run(
    shared: Shared,
    namespace: Option<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (caches, stack_events, child_events) =
        children::watch(&shared.client, namespace.as_deref());
    let mut context = Context::new(
        shared.client.clone(),
        caches.clone(),
        shared.metrics.clone(),
        shared.instance.clone(),
        shared.agent_image.clone(),
    );
    context.route_controllers = shared.route_controllers.clone();
    context.metrics_scrapers = shared.metrics_scrapers.clone();
    let ctx = Arc::new(context);
    let synced = shared.synced.clone();
    let watched = caches.clone();
    tokio::spawn(async move {
        watched.wait_ready().await;
        synced.store(true, Ordering::Relaxed);
        info!(
            namespace = namespace.as_deref().unwrap_or("*"),
            "caches synced"
        );
    });
    // A child's event wakes its stack, and any stack waiting for its name.
    // A failing child watch is retried with backoff by its watcher; its error
    // is logged briefly (a decode error would otherwise carry whole objects).
    let waker = ctx.clone();
    let wake = futures::stream::select_all(child_events).flat_map(move |event| {
        let stacks = match event {
            Ok(child) => waker.waiting.stacks_to_wake(&child),
            Err(error) => {
                warn!(error = %cut(&error.to_string(), 300), "child watch");
                Vec::new()
            }
        };
        futures::stream::iter(stacks)
    });
    let after = ctx.clone();
    Controller::for_stream(stack_events, caches.stacks.clone())
        .reconcile_on(wake)
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
                    after.forget_stack(namespace, &stack.name);
                }
                Err(error) => warn!(error = %cut(&error.to_string(), 300), "controller"),
            }
            std::future::ready(())
        })
        .await;
}

#[instrument(skip_all, fields(stack = %stored.name_any(), namespace = stored.namespace().unwrap_or_default()))]
async fn reconcile(stored: Arc<StoredAppStack>, ctx: Arc<Context>) -> Result<Action> {
    // Until every child watch has listed, a missing child may only be missing
    // from the cache: reconciling then would read each one from the API server.
    ctx.caches.wait_ready().await;
    let started = Instant::now();
    let namespace = stored.namespace().unwrap_or_default();
    let name = stored.name_any();
    let stack = match &stored.decoded {
        Ok(stack) => stack,
        Err(reason) => {
            let result = phases::report_undecodable(&ctx, &stored, reason).await;
            ctx.metrics.observe(started.elapsed(), Some("Undecodable"));
            return result.map(|()| Action::requeue(RESYNC));
        }
    };
    let result = phases::reconcile(stack, &ctx).await;
    let label = match &result {
        Ok(phases::Next::Backoff) => Some("ChildRefused"),
        Ok(_) => None,
        Err(error) => Some(error.metric_label()),
    };
    ctx.metrics.observe(started.elapsed(), label);
    match result {
        Ok(phases::Next::Resync) => {
            ctx.reset_backoff(&namespace, &name);
            Ok(Action::requeue(jittered(RESYNC, &stored)))
        }
        Ok(phases::Next::Soon) => {
            ctx.reset_backoff(&namespace, &name);
            Ok(Action::requeue(SOON))
        }
        Ok(phases::Next::Poll) => {
            ctx.reset_backoff(&namespace, &name);
            Ok(Action::requeue(POLL))
        }
        Ok(phases::Next::Shortly) => {
            ctx.reset_backoff(&namespace, &name);
            Ok(Action::requeue(SHORTLY))
        }
        Ok(phases::Next::Settled) => {
            ctx.reset_backoff(&namespace, &name);
            Ok(Action::requeue(phases::redis_roles::SETTLED))
        }
        Ok(phases::Next::Steady) => {
            ctx.reset_backoff(&namespace, &name);
            Ok(Action::requeue(STEADY))
        }
        Ok(phases::Next::Backoff) => Ok(Action::requeue(ctx.next_backoff(&namespace, &name))),
        Err(error) => {
            warn!(%error, "reconcile failed");
            let message = cut(&error.to_string(), CONDITION_MESSAGE_MAX);
            phases::report_failure(&ctx, stack, &error, message).await;
            Err(error)
        }
    }
}

fn error_policy(stored: Arc<StoredAppStack>, _error: &Error, ctx: Arc<Context>) -> Action {
    let namespace = stored.namespace().unwrap_or_default();
    Action::requeue(ctx.next_backoff(&namespace, &stored.name_any()))
}

/// Spreads periodic resyncs of many stacks over time instead of in a burst.
fn jittered(base: Duration, stack: &StoredAppStack) -> Duration {
    let seed = stack
        .uid()
        .unwrap_or_default()
        .bytes()
        .fold(0u64, |acc, b| {
            acc.wrapping_mul(31).wrapping_add(u64::from(b))
        });
    base + Duration::from_secs(seed % (base.as_secs() / 5).max(1))
}
