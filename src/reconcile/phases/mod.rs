//! One reconcile of one AppStack in four phases, forward only:
//!
//! - [`observe`]: every read (caches first, then the API server) into one
//!   [`World`](observe::World);
//! - [`plan`] (pure): the children to apply, or the precondition that
//!   stops it;
//! - [`apply`]: create what was generated, apply, prune; it returns what
//!   happened and publishes nothing;
//! - [`report`] (pure): status, Events and the next wake-up.
//!
//! This file is the entry point and the thin shell around `report` that
//! writes status (when it differs) and publishes the Events.

mod apply;
pub(crate) mod failover;
mod observe;
mod plan;
mod problems;
pub(super) mod redis_roles;
mod report;
mod rollout;
#[cfg(test)]
mod tables;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::context::Context;
use crate::api::{AppStack, StoredAppStack};
use crate::build::{FIELD_MANAGER, stores};
use crate::error::{Error, Result};
use crate::lean::Slim;
use crate::status::{self, Problem};
use plan::Plan;
use report::{Notice, Report};

/// When to look at a reconciled stack again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// At the periodic resync (watches bring every change before that).
    Resync,
    /// Shortly: waiting on something no watch of ours reports.
    Soon,
    /// After the stack's backoff: the API server refused a child.
    Backoff,
    /// In a minute: the stack reads a user's Secret no watch reports (it
    /// lacks the watch label, or does not exist yet).
    Poll,
    /// In two seconds: a replicated store's primary is watched by asking
    /// it, or a store with replicas has no agreed master yet (or its labels
    /// are changing), and no watch says when it has.
    Shortly,
    /// In ten seconds: a Redis store with replicas whose master, labels and
    /// replicas are in order (redis_roles::SETTLED; the watches of its pods
    /// and StatefulSet report most changes before that).
    Settled,
    /// In five seconds: a replicated PostgreSQL store that is settled (its
    /// primary answers, every replica streams) is still asked, less often.
    Steady,
}

pub async fn reconcile(stack: &AppStack, ctx: &Context) -> Result<Next> {
    let namespace = stack.namespace().ok_or(Error::MissingNamespace)?;
    // Being deleted: the garbage collector removes the children; applying
    // them again would only race it (and fail in a terminating namespace).
    if stack.meta().deletion_timestamp.is_some() {
        ctx.forget_stack(&namespace, &stack.name_any());
        return Ok(Next::Resync);
    }
    let world = observe::observe(ctx, stack).await?;
    certificate_gauges(ctx, stack, &world);
    let done = match plan::plan(stack, &world, ctx.agent_image.clone()) {
        Plan::Stop(done) => done,
        Plan::Apply(desired) => apply::apply(ctx, &world, &desired).await?,
    };
    let report = report::report(stack, &world, &done);
    conclude(ctx, stack, report).await
}

/// Carries a report out: the names the stack waits for, the policy probe,
/// the Events, the status (when it differs) and the backup gauges.
async fn conclude(ctx: &Context, stack: &AppStack, report: Report) -> Result<Next> {
    let namespace = stack.namespace().unwrap_or_default();
    let name = stack.name_any();
    // A user's Secret the stack reads wakes it like a name it waits for.
    let names: Vec<String> = report
        .waiting_for
        .iter()
        .chain(&report.user_secrets)
        .cloned()
        .collect();
    ctx.waiting.set(&namespace, &name, &names);
    if let Some((service, port)) = report.probe {
        ctx.probe_network_policy(stack, service, port);
    }
    for notice in report.notices {
        publish(ctx, stack, notice).await;
    }
    if stack.status.as_ref() != Some(&report.status) {
        patch_status(ctx, stack, json!(report.status)).await?;
    }
    for store in stores::ENGINES {
        let labels = crate::telemetry::StoreLabels {
            namespace: namespace.clone(),
            stack: name.clone(),
            store: store.part().to_string(),
        };
        let backup = store.status(&report.status).and_then(|s| s.backup.as_ref());
        ctx.metrics.backups.set(&labels, backup);
        let schedule = store.backup(&stack.spec).map(|b| {
            b.schedule
                .as_deref()
                .unwrap_or(crate::build::backup::DEFAULT_SCHEDULE)
        });
        ctx.metrics
            .backups
            .set_interval(&labels, schedule.and_then(crate::cron::longest_gap_seconds));
        match store.status(&report.status) {
            Some(s) if store.in_cluster(&stack.spec) => {
                ctx.metrics
                    .stores
                    .ready
                    .get_or_create(&labels)
                    .set(i64::from(s.ready));
            }
            _ => {
                ctx.metrics.stores.ready.remove(&labels);
            }
        }
    }
    Ok(report.next)
}

/// The expiry gauges of the stack's CA and of its stores' certificates,
/// as observe read them (a certificate the stack no longer has goes).
fn certificate_gauges(ctx: &Context, stack: &AppStack, world: &observe::World) {
    let tls = world.inputs.tls();
    let parts = std::iter::once(("ca", tls.ca.as_ref())).chain(
        stores::ENGINES
            .iter()
            .map(|e| (e.part(), tls.servers.get(&e.kind()))),
    );
    for (certificate, key) in parts {
        let labels = crate::telemetry::CertificateLabels {
            namespace: stack.namespace().unwrap_or_default(),
            stack: stack.name_any(),
            certificate: certificate.to_string(),
        };
        let gauges = &ctx.metrics.stores.certificate_expiry;
        match key.and_then(|k| crate::reconcile::certificates::not_after(&k.cert)) {
            Some(t) if stack.spec.tls_enabled() => {
                gauges.get_or_create(&labels).set(t);
            }
            _ => {
                gauges.remove(&labels);
            }
        }
    }
}

/// Publishes an Event on the stack, and logs it (what a person is told,
/// the logs say too).
async fn publish(ctx: &Context, stack: &AppStack, notice: Notice) {
    if notice.warning {
        warn!(reason = %notice.reason, note = %notice.note, "event");
    } else {
        info!(reason = %notice.reason, note = %notice.note, "event");
    }
    ctx.publish(stack, notice.event()).await;
}

/// Puts a failed reconcile into status (Degraded=True, ReconcileFailed) so
/// that `kubectl get aps` and `kubectl describe` show it, not only the
/// logs, and publishes its Warning.
pub async fn report_failure(ctx: &Context, stack: &AppStack, error: &Error, message: String) {
    if stack.meta().deletion_timestamp.is_some() {
        return;
    }
    let seen = observe::seen(ctx, stack);
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let (status, notice) = report::failed(stack, &seen, &message, &now);
    publish(ctx, stack, notice).await;
    // A failed status write would only fail again here.
    if matches!(error, Error::Status(_)) || stack.status.as_ref() == Some(&status) {
        return;
    }
    if let Err(error) = patch_status(ctx, stack, json!(status)).await {
        warn!(%error, "could not record the failure in status");
    }
}

/// A stored AppStack that does not decode: Degraded (InvalidSpec) with the
/// field and the reason, and a Warning Event once; nothing is applied or
/// pruned for it. Written through a metadata-only view, since the object
/// itself cannot be read back.
pub async fn report_undecodable(
    ctx: &Context,
    stored: &StoredAppStack,
    reason: &str,
) -> Result<()> {
    let message = format!(
        "the stored AppStack does not decode ({reason}); fix that field with kubectl edit or apply (the CRD now refuses such values)"
    );
    let problem = Problem::InvalidSpec(message).bounded();
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let generation = stored.meta().generation;
    let conditions = status::undecodable(stored.status.as_ref(), &problem, generation, &now);
    let reported = stored
        .status
        .as_ref()
        .is_some_and(|s| s.observed_generation == generation && s.conditions == conditions);
    if reported {
        return Ok(());
    }
    warn!(stack = %stored.name_any(), %reason, "stored AppStack does not decode");
    let status = json!({"observedGeneration": generation, "conditions": conditions});
    patch_status(ctx, stored, status).await?;
    let notice = Notice::warning(problem.reason(), problem.message());
    ctx.publish_on(&stored.object_ref(&()), notice.event())
        .await;
    Ok(())
}

/// Server-Side Apply of `status` on the stack's status subresource. The
/// answer is read as lean metadata only (its annotations skipped unread): a
/// stack that does not decode is written the same way, and nothing of the
/// answer is used.
async fn patch_status(
    ctx: &Context,
    stack: &impl Resource,
    status: serde_json::Value,
) -> Result<()> {
    let patch = json!({
        "apiVersion": AppStack::api_version(&()),
        "kind": AppStack::kind(&()),
        "status": status,
    });
    let namespace = stack.meta().namespace.clone().unwrap_or_default();
    let name = stack.meta().name.clone().unwrap_or_default();
    Api::<Slim<AppStack>>::namespaced(ctx.client.clone(), &namespace)
        .patch_status(
            &name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(&patch),
        )
        .await
        .map_err(Error::Status)?;
    Ok(())
}
