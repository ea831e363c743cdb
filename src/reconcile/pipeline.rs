//! One reconcile of one AppStack, forward only: credentials, build, apply,
//! prune, status.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::events::{Event, EventType};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::backups;
use super::certificates::{self, Ca};
use super::children::{ChildSet, Finding, Guard, KINDS, Owner};
use super::context::Context;
use super::credentials::{self, Resolved};
use crate::api::{AppStack, AppStackStatus, StoredAppStack};
use crate::build::{self, Access, FIELD_MANAGER, Inputs, stores, tls};
use crate::error::{Error, Result, cut};
use crate::lean::Slim;
use crate::redact::Known;
use crate::status::{self, DEGRADED, Observed, Problem};

/// When to look at a reconciled stack again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// At the periodic resync (watches bring every change before that).
    Resync,
    /// Shortly: waiting on something no watch of ours reports.
    Soon,
    /// After the stack's backoff: the API server refused a child.
    Backoff,
}

pub async fn reconcile(stack: &AppStack, ctx: &Context) -> Result<Next> {
    let namespace = stack.namespace().ok_or(Error::MissingNamespace)?;
    let name = stack.name_any();
    // Being deleted: the garbage collector removes the children; applying
    // them again would only race it (and fail in a terminating namespace).
    if stack.meta().deletion_timestamp.is_some() {
        ctx.forget_stack(&namespace, &name);
        return Ok(Next::Resync);
    }
    let owner = Owner {
        uid: stack.uid().unwrap_or_default(),
        namespace,
        name,
    };

    // Credentials first: builders receive them, they never make them.
    let secrets = Api::namespaced(ctx.client.clone(), &owner.namespace);
    let mut inputs = Inputs::default();
    let mut generated = Vec::new();
    let mut held = Vec::new();
    let mut read_at = std::collections::BTreeMap::new();
    for store in stores::of(&stack.spec) {
        let mut all = vec![
            (Access::App, store.secret_name(&owner.name), store.user()),
            (
                Access::Admin,
                store.admin_secret_name(&owner.name),
                store.admin_user(),
            ),
        ];
        if stack.spec.backup(store.kind()).is_some() {
            all.push((
                Access::Backup,
                build::backup::name(&owner.name, store),
                build::backup::USER,
            ));
        }
        for (access, secret, user) in all {
            let resolved = credentials::resolve(&secrets, &owner.uid, &secret, user).await?;
            let mut creds = match resolved {
                Resolved::Existing(c, version) => {
                    read_at.insert(secret.clone(), version);
                    c
                }
                Resolved::Generated(c) => {
                    generated.push(secret);
                    c
                }
                Resolved::Held(holder) => {
                    held.push(Finding::Conflict {
                        kind: "Secret",
                        name: secret,
                        holder,
                    });
                    continue;
                }
            };
            match access {
                Access::App => {
                    creds.username = store.app_user(&creds.username);
                    inputs.set(store.kind(), creds);
                }
                Access::Admin => inputs.set_admin(store.kind(), creds),
                Access::Backup => inputs.set_backup(store.kind(), creds),
            }
        }
    }
    let mut issued = Vec::new();
    if stack.spec.tls_enabled() && stores::of(&stack.spec).next().is_some() {
        issued = certificates(
            stack,
            &owner,
            &secrets,
            &mut inputs,
            &mut generated,
            &mut held,
        )
        .await?;
    }
    // Whatever pods say is quoted without these.
    let known = Known::new(inputs.passwords());
    if !held.is_empty() {
        return conclude(ctx, stack, &held, None, &known).await;
    }

    for store in stores::of(&stack.spec) {
        let restored = stack.status.as_ref().and_then(|s| s.store(store.kind()));
        if restored.is_some_and(|s| s.restored_from.is_some()) {
            inputs.set_restored(store.kind());
        }
    }

    inputs.set_agent_image(ctx.agent_image.clone());

    let mut children = match build::children(stack, &inputs) {
        Ok(children) => children,
        Err(error) => {
            let problem = Problem::InvalidSpec(error.to_string());
            warn!(message = %problem.message(), "spec cannot be realised");
            return conclude(ctx, stack, &[], Some(problem), &known).await;
        }
    };
    // The Secrets whose credentials were read are applied only over the
    // version read: a password edited since is never written back over.
    for secret in &mut children.secrets {
        if let Some(version) = secret.metadata.name.as_ref().and_then(|n| read_at.get(n)) {
            secret.metadata.resource_version = version.clone();
        }
    }
    for secret in children.secrets.iter().filter(|s| {
        generated
            .iter()
            .any(|g| s.metadata.name.as_ref() == Some(g))
    }) {
        credentials::create(&secrets, secret).await?;
        let secret_name = secret.name_any();
        info!(secret = %secret_name, "generated credentials");
        let event = Event {
            type_: EventType::Normal,
            reason: "CredentialsGenerated".into(),
            note: Some(format!(
                "Secret {secret_name} created with a generated password; it is kept for the life of the stack"
            )),
            action: "CreateSecret".into(),
            // Names the Secret, which also keeps the stores' events apart
            // (the recorder folds events with equal keys).
            secondary: Some(credentials::reference(secret)),
        };
        ctx.publish(stack, event).await;
    }

    for (secret, why) in issued {
        info!(%secret, %why, "issued a certificate");
        let event = Event {
            type_: EventType::Normal,
            reason: "CertificateIssued".into(),
            note: Some(format!("Secret {secret}: {why}")),
            action: "IssueCertificate".into(),
            secondary: None,
        };
        ctx.publish(stack, event).await;
    }

    // Before the stores that mount them.
    let mut findings = backups::ensure_volumes(
        &ctx.client,
        &owner.namespace,
        &owner.name,
        &children.backup_volumes,
    )
    .await;
    let mut set = ChildSet::new(ctx.tools(), owner, &children);
    for kind in KINDS {
        kind.apply(&mut set).await;
    }
    // Backwards: components go before the stores and Secrets they use.
    for kind in KINDS.iter().rev() {
        kind.prune(&mut set).await;
    }
    for pruned in set.pruned() {
        let event = Event {
            type_: EventType::Normal,
            reason: "Deleted".into(),
            note: Some(format!(
                "{} {} is no longer in the spec",
                pruned.kind, pruned.name
            )),
            action: "Prune".into(),
            secondary: None,
        };
        ctx.publish(stack, event).await;
    }
    findings.extend(set.finish());
    conclude(ctx, stack, &findings, None, &known).await
}

/// The stack's CA and its stores' server certificates into `inputs`: the
/// CA Secret to create goes to `generated`, a taken name to `held`. Returns
/// the Secrets that get a new certificate and why.
async fn certificates(
    stack: &AppStack,
    owner: &Owner,
    secrets: &Api<Secret>,
    inputs: &mut Inputs,
    generated: &mut Vec<String>,
    held: &mut Vec<Finding>,
) -> Result<Vec<(String, String)>> {
    let now = time::OffsetDateTime::now_utc();
    let ctx = build::meta::StackRef::new(stack).map_err(|e| Error::Tls {
        step: "naming the certificates",
        message: e.to_string(),
    })?;
    let key_secret = tls::ca_key_secret_name(&owner.name);
    let subject = format!("AppStack CA {}/{}", owner.namespace, owner.name);
    let mut issued = Vec::new();
    let ca = match certificates::resolve_ca(secrets, &owner.uid, &key_secret, &subject, now).await?
    {
        Ca::Existing(ca) => ca,
        Ca::Generated(ca) => {
            generated.push(key_secret.clone());
            issued.push((key_secret, "new CA".to_string()));
            ca
        }
        Ca::Replaced(ca, why) => {
            issued.push((
                key_secret,
                format!("new CA: the old one was replaced, {why}"),
            ));
            ca
        }
        Ca::Held(holder) => {
            held.push(Finding::Conflict {
                kind: "Secret",
                name: key_secret,
                holder,
            });
            return Ok(issued);
        }
    };
    for store in stores::of(&stack.spec) {
        let name = tls::server_secret_name(store, &owner.name);
        let names = tls::server_names(&ctx, store);
        let (server, why) =
            certificates::resolve_server(secrets, &owner.uid, &name, &ca, &names, now).await?;
        if let Some(why) = why {
            issued.push((name, format!("new server certificate: {why}")));
        }
        inputs.set_server_certificate(store.kind(), server);
    }
    inputs.set_ca(ca);
    Ok(issued)
}

/// Reports what the reconcile found (a Warning Event when a problem first
/// appears), and remembers which names the stack waits for: the watch event
/// that frees one wakes it, and for objects no watch of ours sees it looks
/// again soon. Nothing it reports holds a password in `known`.
async fn conclude(
    ctx: &Context,
    stack: &AppStack,
    findings: &[Finding],
    invalid: Option<Problem>,
    known: &Known,
) -> Result<Next> {
    let namespace = stack.namespace().unwrap_or_default();
    let waiting_for: Vec<String> = findings
        .iter()
        .filter(|f| matches!(f, Finding::Conflict { .. }))
        .map(|f| f.name().to_string())
        .collect();
    ctx.waiting.set(&namespace, &stack.name_any(), &waiting_for);
    let unready = unready_stores(ctx, stack);
    let mut problem = invalid.or_else(|| problem(findings));
    if problem.is_none() && !unready.is_empty() {
        problem = store_trouble(ctx, &namespace, &unready, known).await;
    }
    let problem = problem.map(|p| p.redacted(known).bounded());
    // A ready store behind a policy the operator is not admitted by.
    if problem.is_none()
        && stack.spec.network_policies_enabled()
        && let Some(store) = stores::of(&stack.spec).next()
        && let Ok(port) = u16::try_from(store.port())
    {
        let name = store.secret_name(&stack.name_any());
        let sts: Option<Arc<StatefulSet>> = ctx.caches.get(&namespace, &name);
        if sts.is_some_and(|s| status::stateful_set_ready(&s)) {
            ctx.probe_network_policy(stack, name, port);
        }
    }
    if let Some(p) = &problem
        && !already_reported(stack, p)
    {
        ctx.publish(stack, warning(p.reason(), p.message())).await;
    }
    let (backups, backing_up) = backups::observe(ctx, stack, known).await;
    let failing = |s: &AppStackStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == status::BACKUP_FAILING && c.status == "True")
            .map(|c| c.message.clone())
    };
    let computed = write_status(ctx, stack, problem.as_ref(), backups).await?;
    if let Some(message) = failing(&computed)
        && stack.status.as_ref().and_then(failing).as_ref() != Some(&message)
    {
        ctx.publish(stack, warning("BackupFailed", &message)).await;
    }
    for store in stores::ENGINES {
        let labels = crate::telemetry::StoreLabels {
            namespace: namespace.clone(),
            stack: stack.name_any(),
            store: store.part().to_string(),
        };
        let backup = computed.store(store.kind()).and_then(|s| s.backup.as_ref());
        ctx.metrics.backups.set(&labels, backup);
    }
    for store in stores::of(&stack.spec) {
        let restored = |s: Option<&AppStackStatus>| {
            s.and_then(|s| s.store(store.kind()))
                .and_then(|s| s.restored_from.clone())
        };
        if restored(Some(&computed)).is_some() && restored(stack.status.as_ref()).is_none() {
            backups::report_restore(ctx, stack, store, known).await;
        }
    }
    let outdated = findings
        .iter()
        .any(|f| matches!(f, Finding::Outdated { .. }));
    Ok(if !waiting_for.is_empty() || outdated {
        Next::Soon
    } else if findings
        .iter()
        .any(|f| matches!(f, Finding::Refused { .. }))
    {
        Next::Backoff
    } else if !unready.is_empty() || backing_up {
        // A crash loop changes no StatefulSet status: look at the pod
        // again. A backup's result is in its pod: read it when it ends.
        Next::Soon
    } else {
        Next::Resync
    })
}

/// The stack's stores whose StatefulSet exists but is not ready: the part
/// and the StatefulSet.
fn unready_stores(ctx: &Context, stack: &AppStack) -> Vec<(&'static str, Arc<StatefulSet>)> {
    let namespace = stack.namespace().unwrap_or_default();
    let name = stack.name_any();
    stores::of(&stack.spec)
        .filter_map(|e| {
            let sts: Arc<StatefulSet> = ctx.caches.get(&namespace, &e.secret_name(&name))?;
            (!status::stateful_set_ready(&sts)).then_some((e.part(), sts))
        })
        .collect()
}

/// Why unready stores do not serve, read from their pods (the one pod a
/// store's StatefulSet runs, when that StatefulSet controls it). A pod that
/// cannot be read is left out: status then says only that the store is not
/// ready.
async fn store_trouble(
    ctx: &Context,
    namespace: &str,
    unready: &[(&'static str, Arc<StatefulSet>)],
    known: &Known,
) -> Option<Problem> {
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), namespace);
    let mut found: Vec<Problem> = Vec::new();
    for (part, sts) in unready {
        let pod_name = format!("{}-0", sts.name_any());
        let pod = match pods.get_opt(&pod_name).await {
            Ok(Some(pod)) => pod,
            Ok(None) => continue,
            Err(error) => {
                warn!(%error, pod = %pod_name, "could not read the store's pod");
                continue;
            }
        };
        let controlled = pod
            .owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && Some(&o.uid) == sts.metadata.uid.as_ref());
        if let Some(p) = controlled
            .then(|| status::store_trouble(part, &pod, known))
            .flatten()
        {
            found.push(p);
        }
    }
    // A failing server explains more than credentials it cannot check.
    found.sort_by_key(|p| !matches!(p, Problem::StoreFailing(_)));
    let first = found.first()?.clone();
    let message = found
        .iter()
        .map(Problem::message)
        .collect::<Vec<_>>()
        .join("; ");
    Some(match first {
        Problem::StoreFailing(_) => Problem::StoreFailing(message),
        _ => Problem::CredentialsOutOfSync(message),
    })
}

/// The one problem status shows: names taken first (nothing under them is
/// this stack's), then what is held back for want of its NetworkPolicy,
/// then forbidden changes, then refusals; its message lists every finding.
fn problem(findings: &[Finding]) -> Option<Problem> {
    let mut conflicts = Vec::new();
    let mut others = Vec::new();
    for f in findings {
        match f {
            Finding::Conflict { kind, name, holder } => {
                conflicts.push(format!("{kind} {name} {holder}"));
            }
            Finding::Rejected {
                kind,
                name,
                message,
            }
            | Finding::Refused {
                kind,
                name,
                message,
            } => others.push(format!("{kind} {name}: {message}")),
            // Read again at the next reconcile, which the change brings.
            Finding::Outdated { .. } => {}
            Finding::Blocked { kind, name, on } => others.push(format!(
                "{kind} {name} not applied: it would be wired to {}, which this stack does not own",
                on.join(", ")
            )),
            Finding::Unguarded { kind, name, guard } => others.push(match guard {
                Guard::NotCreated => format!(
                    "{kind} {name} not created: no pod of it runs before its NetworkPolicy {name} exists"
                ),
                Guard::Stopped => format!(
                    "{kind} {name} scaled to 0: its NetworkPolicy {name} is missing and cannot be created, and no store pod runs unguarded"
                ),
                Guard::Held => format!(
                    "{kind} {name} not updated: its NetworkPolicy {name} is missing and cannot be created; what runs is not guarded"
                ),
            }),
        }
    }
    let also = |m: String| {
        if conflicts.is_empty() || others.is_empty() {
            m
        } else {
            format!("{m}. Also: {}", others.join("; "))
        }
    };
    if !conflicts.is_empty() {
        return Some(Problem::NameConflict(also(format!(
            "child names already taken: {}; rename the component or the stack so that their children's names differ",
            conflicts.join("; ")
        ))));
    }
    if findings
        .iter()
        .any(|f| matches!(f, Finding::Unguarded { .. }))
    {
        return Some(Problem::GuardRefused(others.join("; ")));
    }
    let rejected = findings
        .iter()
        .any(|f| matches!(f, Finding::Rejected { .. }));
    match (rejected, others.is_empty()) {
        (_, true) => None,
        (true, false) => Some(Problem::ChangeRejected(others.join("; "))),
        (false, false) => Some(Problem::ReconcileFailed(others.join("; "))),
    }
}

/// Puts a failed reconcile into status (Degraded=True, ReconcileFailed) so
/// that `kubectl get aps` and `kubectl describe` show it, not only the logs.
pub async fn report_failure(ctx: &Context, stack: &AppStack, message: String) {
    if stack.meta().deletion_timestamp.is_some() {
        return;
    }
    let problem = Problem::ReconcileFailed(message).bounded();
    // What the backups held is kept as status last said it.
    let backups = stores::of(&stack.spec)
        .filter(|e| stack.spec.backup(e.kind()).is_some())
        .map(|e| {
            let old = stack.status.as_ref().and_then(|s| s.store(e.kind()));
            (
                e.kind(),
                old.and_then(|s| s.backup.clone()).unwrap_or_default(),
            )
        })
        .collect();
    if let Err(error) = write_status(ctx, stack, Some(&problem), backups).await {
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
    ctx.publish_on(
        &stored.object_ref(&()),
        warning(problem.reason(), problem.message()),
    )
    .await;
    Ok(())
}

/// Computes the status from the caches and writes it (Server-Side Apply on
/// the status subresource) when it differs from the stored one: a steady
/// stack costs no write.
async fn write_status(
    ctx: &Context,
    stack: &AppStack,
    problem: Option<&Problem>,
    backups: std::collections::BTreeMap<crate::api::StoreKind, crate::api::BackupStatus>,
) -> Result<AppStackStatus> {
    let namespace = stack.namespace().unwrap_or_default();
    let caches = &ctx.caches;
    let observed = Observed {
        deployment: |name: &str| caches.get(&namespace, name),
        stateful_set: |name: &str| caches.get(&namespace, name),
        backups,
    };
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let computed: AppStackStatus = status::compute(stack, &observed, problem, &now);
    if stack.status.as_ref() != Some(&computed) {
        patch_status(ctx, stack, json!(computed)).await?;
    }
    Ok(computed)
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

/// True when the stack's Degraded condition already carries this problem,
/// so its Warning Event was published when it first appeared.
fn already_reported(stack: &AppStack, problem: &Problem) -> bool {
    stack.status.as_ref().is_some_and(|s| {
        s.conditions.iter().any(|c| {
            c.type_ == DEGRADED && c.reason == problem.reason() && c.message == problem.message()
        })
    })
}

pub fn warning(reason: &str, message: &str) -> Event {
    Event {
        type_: EventType::Warning,
        reason: reason.into(),
        note: Some(cut(message, crate::error::EVENT_NOTE_MAX)),
        action: "Reconcile".into(),
        secondary: None,
    }
}
