//! One reconcile of one AppStack: credentials, build, apply, prune, status.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;
use kube::core::NamespaceResourceScope;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::{info, warn};

use super::apply::{Child, is_invalid};
use super::context::Context;
use super::credentials::{self, POSTGRES_USER, REDIS_USER};
use super::handoff;
use super::ownership;
use super::prune;
use super::status::{self, Observed, Problem};
use crate::api::AppStack;
use crate::build::{self, Children, Inputs, names};
use crate::error::{Error, Result};

/// When to look at a reconciled stack again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Next {
    /// At the periodic resync (watches bring every change before that).
    Resync,
    /// Shortly: waiting on something no watch of ours reports.
    Soon,
}

pub(super) async fn reconcile(stack: &AppStack, ctx: &Context) -> Result<Next> {
    // Being deleted: the garbage collector removes the children; applying
    // them again would only race it (and fail in a terminating namespace).
    if stack.meta().deletion_timestamp.is_some() {
        ctx.waiting.set(
            &stack.namespace().unwrap_or_default(),
            &stack.name_any(),
            &[],
        );
        return Ok(Next::Resync);
    }
    let namespace = stack.namespace().ok_or(Error::MissingNamespace)?;
    let name = stack.name_any();
    let uid = stack.uid().unwrap_or_default();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);

    // Credentials first: builders receive them, they never make them. A
    // Secret name held by someone else stops everything: no store may start
    // on credentials that are not the stack's.
    let mut conflicts = Vec::new();
    let mut resolve = async |secret_name: String, user: &str| {
        let resolved = credentials::resolve(
            &secrets,
            &ctx.caches.secrets,
            &uid,
            &namespace,
            &secret_name,
            user,
        )
        .await;
        conflict(resolved, &mut conflicts).map(|r| r.map(|r| (secret_name, r)))
    };
    let redis = match stack.spec.redis {
        Some(_) => resolve(names::redis(&name), REDIS_USER).await?,
        None => None,
    };
    let postgres = match stack.spec.postgres {
        Some(_) => resolve(names::postgres(&name), POSTGRES_USER).await?,
        None => None,
    };
    if !conflicts.is_empty() {
        return conclude(ctx, stack, &namespace, Outcome::Conflicts(conflicts)).await;
    }
    let inputs = Inputs {
        redis: redis.as_ref().map(|(_, r)| r.credentials.clone()),
        postgres: postgres.as_ref().map(|(_, r)| r.credentials.clone()),
    };

    let children = match build::children(stack, &inputs) {
        Ok(children) => children,
        Err(error) => {
            let message = error.to_string();
            warn!(%message, "spec cannot be realised");
            return conclude(ctx, stack, &namespace, Outcome::InvalidSpec(message)).await;
        }
    };

    for (secret_name, resolved) in [redis, postgres].into_iter().flatten() {
        if resolved.generated {
            create_generated_secret(ctx, stack, &secrets, &children, &secret_name).await?;
        }
    }

    let outcome = apply_children(ctx, stack, &namespace, &children).await?;
    prune_children(ctx, stack, &namespace, &children).await?;
    conclude(ctx, stack, &namespace, outcome).await
}

/// A child's name that someone else holds.
struct Conflict {
    kind: &'static str,
    name: String,
    holder: String,
}

/// Where a reconcile that did not fail left the stack.
enum Outcome {
    /// Every child applied; status tells how far they have come.
    Applied,
    /// The spec cannot be built (status says why; nothing was applied).
    InvalidSpec(String),
    /// The API server refused a StatefulSet change: why, and what to do.
    Rejected(String),
    /// Names held by someone else; everything else was applied.
    Conflicts(Vec<Conflict>),
}

impl Outcome {
    fn problem(&self) -> Option<Problem> {
        match self {
            Outcome::Applied => None,
            Outcome::InvalidSpec(m) => Some(Problem::InvalidSpec(m.clone())),
            Outcome::Rejected(m) => Some(Problem::ChangeRejected(m.clone())),
            Outcome::Conflicts(c) => Some(name_conflict(c)),
        }
    }

    fn waiting_for(&self) -> Vec<String> {
        match self {
            Outcome::Conflicts(c) => c.iter().map(|c| c.name.clone()).collect(),
            _ => Vec::new(),
        }
    }
}

/// Reports the outcome (a Warning Event when a problem first appears) and
/// remembers which names the stack waits for: the watch event that frees one
/// wakes it, and for objects no watch of ours sees it looks again soon.
async fn conclude(
    ctx: &Context,
    stack: &AppStack,
    namespace: &str,
    outcome: Outcome,
) -> Result<Next> {
    let waiting_for = outcome.waiting_for();
    ctx.waiting.set(namespace, &stack.name_any(), &waiting_for);
    let problem = outcome.problem();
    if let Some(p) = &problem
        && !already_reported(stack, p.reason(), p.message())
    {
        ctx.publish(stack, warning(p.reason(), p.message())).await;
    }
    report(ctx, stack, problem).await?;
    Ok(if waiting_for.is_empty() {
        Next::Resync
    } else {
        Next::Soon
    })
}

fn name_conflict(conflicts: &[Conflict]) -> Problem {
    let list: Vec<String> = conflicts
        .iter()
        .map(|c| format!("{} {} {}", c.kind, c.name, c.holder))
        .collect();
    Problem::NameConflict(format!(
        "child names already taken: {}; rename the component or the stack so that their children's names differ",
        list.join("; ")
    ))
}

async fn create_generated_secret(
    ctx: &Context,
    stack: &AppStack,
    secrets: &Api<Secret>,
    children: &Children,
    secret_name: &str,
) -> Result<()> {
    let Some(secret) = children
        .secrets
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(secret_name))
    else {
        return Ok(());
    };
    credentials::create(secrets, secret).await?;
    info!(secret = %secret_name, "generated credentials");
    ctx.publish(
        stack,
        Event {
            type_: EventType::Normal,
            reason: "CredentialsGenerated".into(),
            note: Some(format!(
                "Secret {secret_name} created with a generated password; it is kept for the life of the stack"
            )),
            action: "CreateSecret".into(),
            // Names the Secret, which also keeps the Redis and PostgreSQL
            // events apart (the recorder folds events with equal keys).
            secondary: Some(secret_reference(secret)),
        },
    )
    .await;
    Ok(())
}

/// Applies every child, in dependency order. A StatefulSet change the API
/// server refuses (422), or a child name someone else holds, is reported as
/// a problem instead of failing the whole reconcile: what runs keeps serving
/// and the rest converges.
async fn apply_children(
    ctx: &Context,
    stack: &AppStack,
    namespace: &str,
    children: &Children,
) -> Result<Outcome> {
    let caches = &ctx.caches;
    let uid = stack.uid().unwrap_or_default();
    let mut conflicts = Vec::new();
    let mut rejected = None;
    apply_all(
        ctx,
        &uid,
        namespace,
        &children.secrets,
        &caches.secrets,
        &mut conflicts,
    )
    .await?;
    apply_all(
        ctx,
        &uid,
        namespace,
        &children.services,
        &caches.services,
        &mut conflicts,
    )
    .await?;
    for o in &children.stateful_sets {
        match apply(ctx, &uid, namespace, o, &caches.stateful_sets).await {
            Err(error) if is_invalid(&error) => {
                rejected = Some(format!(
                    "{error}. StatefulSet fields such as volumeClaimTemplates (storage size, class) cannot change in place: \
                     revert the change, or delete the StatefulSet with `kubectl delete statefulset {} --cascade=orphan` \
                     to have it recreated (its PVCs and data are kept, but existing PVCs are not resized)",
                    o.name_any()
                ));
            }
            other => {
                conflict(other, &mut conflicts)?;
            }
        }
    }
    for o in &children.deployments {
        conflict(
            apply_deployment(ctx, &uid, namespace, o).await,
            &mut conflicts,
        )?;
    }
    apply_all(
        ctx,
        &uid,
        namespace,
        &children.autoscalers,
        &caches.autoscalers,
        &mut conflicts,
    )
    .await?;
    apply_all(
        ctx,
        &uid,
        namespace,
        &children.disruption_budgets,
        &caches.disruption_budgets,
        &mut conflicts,
    )
    .await?;
    Ok(match rejected {
        _ if !conflicts.is_empty() => Outcome::Conflicts(conflicts),
        Some(message) => Outcome::Rejected(message),
        None => Outcome::Applied,
    })
}

/// Applies each object in turn; name conflicts are collected, not fatal.
async fn apply_all<K, C>(
    ctx: &Context,
    uid: &str,
    namespace: &str,
    objects: &[K],
    cache: &Store<C>,
    conflicts: &mut Vec<Conflict>,
) -> Result<()>
where
    K: Child,
    C: Resource<DynamicType = ()> + Clone + 'static,
{
    for o in objects {
        conflict(apply(ctx, uid, namespace, o, cache).await, conflicts)?;
    }
    Ok(())
}

/// Keeps a name conflict and goes on (`None`); other errors stop the reconcile.
fn conflict<T>(result: Result<T>, conflicts: &mut Vec<Conflict>) -> Result<Option<T>> {
    match result {
        Err(Error::NameConflict { kind, name, holder }) => {
            conflicts.push(Conflict { kind, name, holder });
            Ok(None)
        }
        other => other.map(Some),
    }
}

/// Applies a child unless its name is someone else's (see `ownership`).
async fn apply<K, C>(
    ctx: &Context,
    uid: &str,
    namespace: &str,
    object: &K,
    cache: &Store<C>,
) -> Result<()>
where
    K: Child,
    C: Resource<DynamicType = ()> + Clone + 'static,
{
    let version = cached_if_ours(ctx, uid, namespace, object, cache)
        .await?
        .and_then(|c| c.resource_version());
    ctx.applier
        .apply(&ctx.client, &ctx.metrics, namespace, object, version)
        .await
}

/// A Deployment is applied like any child, except that when it is about to be
/// sent without a replica count, the count our manager still owns is first
/// handed over to the autoscaler (see `handoff`).
async fn apply_deployment(
    ctx: &Context,
    uid: &str,
    namespace: &str,
    object: &Deployment,
) -> Result<()> {
    let cached = cached_if_ours(ctx, uid, namespace, object, &ctx.caches.deployments).await?;
    let version = cached.as_ref().and_then(|c| c.resource_version());
    let Some(pending) = ctx.applier.plan(&ctx.metrics, namespace, object, version)? else {
        return Ok(());
    };
    if let Some(cached) = &cached {
        handoff::replicas_to_autoscaler(&ctx.client, namespace, object, cached).await?;
    }
    ctx.applier
        .send(&ctx.client, &ctx.metrics, namespace, object, pending)
        .await
}

/// The child's copy in the watch cache, once its name has been found free or
/// this stack's (`NameConflict` otherwise, see `ownership`).
async fn cached_if_ours<K, C>(
    ctx: &Context,
    uid: &str,
    namespace: &str,
    object: &K,
    cache: &Store<C>,
) -> Result<Option<Arc<C>>>
where
    K: Child,
    C: Resource<DynamicType = ()> + Clone + 'static,
{
    let cached = cache.get(&ObjectRef::new(&object.name_any()).within(namespace));
    ownership::check(&ctx.client, uid, namespace, object, cached.as_deref()).await?;
    Ok(cached)
}

async fn prune_children(
    ctx: &Context,
    stack: &AppStack,
    namespace: &str,
    children: &Children,
) -> Result<()> {
    let Some(uid) = stack.uid() else {
        return Ok(());
    };
    let caches = &ctx.caches;
    // Deployments and autoscalers first, stores last, Secrets at the very end:
    // nothing is left running that needs what was removed before it.
    prune_kind(
        ctx,
        stack,
        namespace,
        &uid,
        &caches.autoscalers,
        &children.autoscalers,
    )
    .await?;
    prune_kind(
        ctx,
        stack,
        namespace,
        &uid,
        &caches.disruption_budgets,
        &children.disruption_budgets,
    )
    .await?;
    prune_kind(
        ctx,
        stack,
        namespace,
        &uid,
        &caches.deployments,
        &children.deployments,
    )
    .await?;
    prune_kind(
        ctx,
        stack,
        namespace,
        &uid,
        &caches.stateful_sets,
        &children.stateful_sets,
    )
    .await?;
    prune_kind(
        ctx,
        stack,
        namespace,
        &uid,
        &caches.services,
        &children.services,
    )
    .await?;
    prune_kind(
        ctx,
        stack,
        namespace,
        &uid,
        &caches.secrets,
        &children.secrets,
    )
    .await
}

/// Deletes this stack's children of one kind that `desired` no longer lists.
async fn prune_kind<K, C>(
    ctx: &Context,
    stack: &AppStack,
    namespace: &str,
    uid: &str,
    cache: &Store<C>,
    desired: &[K],
) -> Result<()>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug,
    C: Resource<DynamicType = ()> + Clone + 'static,
{
    let desired: BTreeSet<String> = desired
        .iter()
        .filter_map(|o| o.meta().name.clone())
        .collect();
    let kind = K::kind(&()).into_owned();
    for orphan in prune::orphans(cache, namespace, &stack.name_any(), uid, &desired) {
        prune::delete::<K>(&ctx.client, namespace, &orphan).await?;
        ctx.applier
            .forget_child(super::apply::static_kind_of(&kind), namespace, &orphan);
        ctx.publish(
            stack,
            Event {
                type_: EventType::Normal,
                reason: "Deleted".into(),
                note: Some(format!("{kind} {orphan} is no longer in the spec")),
                action: "Prune".into(),
                secondary: None,
            },
        )
        .await;
    }
    Ok(())
}

/// Puts a failed reconcile into status (Degraded=True, ReconcileFailed) so
/// that `kubectl get aps` and `kubectl describe` show it, not only the logs.
pub(super) async fn report_failure(ctx: &Context, stack: &AppStack, message: String) {
    if stack.meta().deletion_timestamp.is_some() {
        return;
    }
    if let Err(error) = report(ctx, stack, Some(Problem::ReconcileFailed(message))).await {
        warn!(%error, "could not record the failure in status");
    }
}

async fn report(ctx: &Context, stack: &AppStack, problem: Option<Problem>) -> Result<()> {
    let observed = Observed {
        deployments: &ctx.caches.deployments,
        stateful_sets: &ctx.caches.stateful_sets,
    };
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let computed = status::compute(stack, &observed, problem.as_ref(), &now);
    let namespace = stack.namespace().unwrap_or_default();
    let api: Api<AppStack> = Api::namespaced(ctx.client.clone(), &namespace);
    status::write(&api, stack, computed).await?;
    Ok(())
}

/// True when the stack's Ready condition already carries this reason and
/// message, so the Warning Event was published when it first appeared.
fn already_reported(stack: &AppStack, reason: &str, message: &str) -> bool {
    stack.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == status::DEGRADED && c.reason == reason && c.message == message)
    })
}

fn secret_reference(secret: &Secret) -> k8s_openapi::api::core::v1::ObjectReference {
    k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Secret".into()),
        name: secret.metadata.name.clone(),
        namespace: secret.metadata.namespace.clone(),
        ..Default::default()
    }
}

pub(super) fn warning(reason: &str, message: &str) -> Event {
    Event {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(message.chars().take(1000).collect()),
        action: "Reconcile".into(),
        secondary: None,
    }
}
