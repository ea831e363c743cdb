//! Phase four, pure: from what was observed and what apply did, the status,
//! the Events to publish and when to look again. The previous status is
//! read here only: for transition times, the problems already reported,
//! and what backups said when they cannot be listed now.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::runtime::events::{Event, EventType};

use super::Next;
use super::observe::{Seen, World};
use super::problems;
use crate::api::{AppStack, AppStackStatus, BackupStatus, StoreKind};
use crate::build::migration::Migration;
use crate::build::{backup, stores};
use crate::error::cut;
use crate::reconcile::children::{Finding, Pruned};
use crate::reconcile::migrations::Stage;
use crate::redact::Known;
use crate::status::{self, BACKUP_FAILING, DEGRADED, Observed, Problem};

/// What plan and apply came to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Done {
    /// Whether the children were applied: no precondition failed, and no
    /// new Secret's name was taken.
    pub went_ahead: bool,
    pub findings: Vec<Finding>,
    /// Set when the spec cannot be realised.
    pub invalid: Option<Problem>,
    /// Secrets created with generated material.
    pub created: Vec<String>,
    /// Children the prune deleted, in that order.
    pub pruned: Vec<Pruned>,
    /// Each component's migration and where it stands.
    pub migrations: Vec<(Migration, Stage)>,
    /// A replicated store's status as the failover decision left it.
    pub replication: Option<Box<crate::api::ReplicationStatus>>,
    /// A failover step is under way or failed: look again shortly.
    pub busy: bool,
    /// With Redis replicas: the master after the relabel.
    pub redis: Option<RedisDone>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedisDone {
    /// The pod the write Service selects now, when one is.
    pub master: Option<String>,
    /// Whether to look again shortly (see redis_roles::unsettled).
    pub unsettled: bool,
}

/// An Event to publish on the stack.
#[derive(Clone, Debug, PartialEq)]
pub struct Notice {
    pub warning: bool,
    pub reason: String,
    pub note: String,
    pub action: &'static str,
    /// The object it is about, which also keeps Events of different objects
    /// apart (the recorder folds events with equal keys).
    pub about: Option<ObjectReference>,
}

impl Notice {
    pub fn warning(reason: &str, message: &str) -> Self {
        Self {
            warning: true,
            reason: reason.into(),
            note: cut(message, crate::error::EVENT_NOTE_MAX),
            action: "Reconcile",
            about: None,
        }
    }

    fn normal(reason: &str, note: String, action: &'static str) -> Self {
        Self {
            warning: false,
            reason: reason.into(),
            note,
            action,
            about: None,
        }
    }

    pub fn event(self) -> Event {
        Event {
            type_: if self.warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: self.reason,
            note: Some(self.note),
            action: self.action.into(),
            secondary: self.about,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub status: AppStackStatus,
    /// In the order they are published.
    pub notices: Vec<Notice>,
    pub next: Next,
    /// Names held by others that the stack waits for (a watch event that
    /// frees one wakes it).
    pub waiting_for: Vec<String>,
    /// A ready store's Service and port to probe whether NetworkPolicies
    /// are enforced.
    pub probe: Option<(String, u16)>,
    /// The user's Secrets the stack reads: their watch events wake it.
    pub user_secrets: Vec<String>,
}

pub fn report(stack: &AppStack, world: &World, done: &Done) -> Report {
    // Whatever pods say is quoted without these.
    let known = Known::new(world.inputs.passwords());
    let waiting_for: Vec<String> = done
        .findings
        .iter()
        .filter(|f| matches!(f, Finding::Conflict { .. }))
        .map(|f| f.name().to_string())
        .collect();
    let unready = problems::unready(&world.seen.stores);
    let problem = done
        .invalid
        .clone()
        .or_else(|| problems::of_findings(&done.findings))
        .or_else(|| problems::trouble(&world.seen.stores, &unready, &known))
        .or_else(|| problems::migration_failed(&done.migrations, &world.migration_logs))
        .map(|p| p.redacted(&known).bounded());
    let (backups, backing_up) = backups(stack, world, &known);
    let migrating = done
        .migrations
        .iter()
        .filter(|(_, stage)| *stage != Stage::Done)
        .map(|(m, _)| m.component.clone())
        .collect();
    let mut status = compute(
        stack,
        &world.seen,
        problem.as_ref(),
        backups,
        migrating,
        &world.now,
    );
    status.migrations = done
        .migrations
        .iter()
        .map(|(m, stage)| status::migration(m, stage))
        .collect();
    status.jobs = status::scheduled_jobs(stack, &world.seen.cron_jobs);
    if let Some(pg) = status.postgres.as_mut()
        && world.instances.is_some()
    {
        // Kept from the last status when this round decided nothing: the
        // record of the last primary is what a later failover starts from.
        pg.replication = done.replication.as_deref().cloned().or_else(|| {
            stack
                .status
                .as_ref()
                .and_then(|s| s.postgres.as_ref())
                .and_then(|p| p.replication.clone())
        });
    }
    let mut following = false;
    if let (Some(redis), Some(seen)) = (&done.redis, &world.redis_roles) {
        following = redis.unsettled;
        let previous = stack
            .status
            .as_ref()
            .and_then(|s| s.redis.as_ref())
            .and_then(|r| r.replication.as_ref());
        let replication =
            super::redis_roles::status(seen, redis.master.as_deref(), previous, world.now.0);
        if let Some(store) = status.redis.as_mut() {
            store.replication = Some(replication);
        }
    }
    let notices = notices(stack, world, done, problem.as_ref(), &status, &known);
    let next = if following {
        Next::Shortly
    } else if !waiting_for.is_empty() || has(done, |f| matches!(f, Finding::Outdated { .. })) {
        Next::Soon
    } else if has(done, |f| matches!(f, Finding::Refused { .. })) {
        Next::Backoff
    } else if !unready.is_empty() || backing_up {
        // A crash loop changes no StatefulSet status: look at the pod
        // again. A backup's result is in its pod: read it when it ends.
        Next::Soon
    } else if world.user_secrets.values().any(|labelled| !labelled) {
        // No watch reports a change of a Secret without the label.
        Next::Poll
    } else {
        Next::Resync
    };
    // A replicated store's primary is watched by asking it: no watch says
    // it stopped answering (or that Sentinels moved the master).
    let next = match next {
        Next::Backoff => Next::Backoff,
        // A Redis store with replicas that is not settled: see
        // redis_roles::unsettled.
        Next::Shortly => Next::Shortly,
        // Settled PostgreSQL instances (the decision found nothing to do
        // and every replica streaming): less often.
        _ if matches!(world.instances, Some(Ok(_))) && done.replication.is_some() && !done.busy => {
            Next::Steady
        }
        _ if world.instances.is_some() => Next::Shortly,
        // A settled Redis store with replicas.
        Next::Resync | Next::Poll if world.redis_roles.is_some() => Next::Settled,
        other => other,
    };
    Report {
        user_secrets: world.user_secrets.keys().cloned().collect(),
        probe: problem
            .is_none()
            .then(|| probe(stack, &world.seen))
            .flatten(),
        status,
        notices,
        next,
        waiting_for,
    }
}

fn has(done: &Done, what: impl Fn(&Finding) -> bool) -> bool {
    done.findings.iter().any(what)
}

/// What each backed-up store's backup pods say, and whether one still runs
/// (its result is then worth a look soon).
fn backups(
    stack: &AppStack,
    world: &World,
    known: &Known,
) -> (BTreeMap<StoreKind, BackupStatus>, bool) {
    let mut running = false;
    let said = world
        .backups
        .iter()
        .map(|(kind, pods)| {
            let said = match pods {
                Ok(pods) => {
                    running |= pods.iter().any(|p| {
                        matches!(
                            p.status.as_ref().and_then(|s| s.phase.as_deref()),
                            Some("Pending" | "Running")
                        )
                    });
                    status::backup(pods, known)
                }
                // Keep what status said rather than forget it.
                Err(_) => previous_backup(stack, *kind),
            };
            (*kind, said)
        })
        .collect();
    (said, running)
}

/// The Events of this reconcile, in the order they are published: what
/// apply made and deleted, a problem when it first appears, a backup when
/// it first fails, a store when it is first restored.
/// A replicated PostgreSQL store's primary lost, and another serving.
fn failover_notices(
    before: Option<&crate::api::ReplicationStatus>,
    now: Option<&crate::api::ReplicationStatus>,
) -> Vec<Notice> {
    let mut notices = Vec::new();
    let Some(now) = now else {
        return notices;
    };
    if now.failover_started.is_some() && before.is_some_and(|b| b.failover_started.is_none()) {
        notices.push(Notice::warning(
            "PrimaryLost",
            &format!(
                "PostgreSQL primary {} stopped serving: fencing it and promoting the most advanced replica",
                before.and_then(|b| b.primary.as_deref()).unwrap_or("?")
            ),
        ));
    }
    if let Some(f) = &now.last_failover
        && before.and_then(|b| b.last_failover.as_ref()).map(|b| b.at) != Some(f.at)
    {
        notices.push(Notice::warning(
            "FailedOver",
            &format!(
                "PostgreSQL primary is now {} (was {}), after {} ms without one",
                f.to,
                f.from.as_deref().unwrap_or("none"),
                f.without_primary_ms.unwrap_or(0)
            ),
        ));
    }
    notices
}

fn notices(
    stack: &AppStack,
    world: &World,
    done: &Done,
    problem: Option<&Problem>,
    status: &AppStackStatus,
    known: &Known,
) -> Vec<Notice> {
    let namespace = stack.namespace().unwrap_or_default();
    let mut notices = Vec::new();
    notices.extend(done.created.iter().map(|secret| Notice {
            about: Some(reference("v1", "Secret", secret, &namespace)),
            ..Notice::normal(
                "CredentialsGenerated",
                format!("Secret {secret} created with a generated password; it is kept for the life of the stack"),
                "CreateSecret",
            )
    }));
    // Issued certificates are in force only once applied.
    if done.went_ahead {
        notices.extend(world.issued.iter().map(|(secret, why)| {
            Notice::normal(
                "CertificateIssued",
                format!("Secret {secret}: {why}"),
                "IssueCertificate",
            )
        }));
    }
    notices.extend(done.pruned.iter().map(|p| {
        Notice::normal(
            "Deleted",
            format!("{} {} is no longer in the spec", p.kind, p.name),
            "Prune",
        )
    }));
    if let Some(p) = problem
        && !already_reported(stack, p)
    {
        notices.push(Notice::warning(p.reason(), p.message()));
    }
    let failing = |s: &AppStackStatus| {
        s.conditions
            .iter()
            .find(|c| c.type_ == BACKUP_FAILING && c.status == "True")
            .map(|c| c.message.clone())
    };
    if let Some(message) = failing(status)
        && stack.status.as_ref().and_then(failing).as_ref() != Some(&message)
    {
        notices.push(Notice::warning("BackupFailed", &message));
    }
    if let Some(now) = status.redis.as_ref().and_then(|r| r.replication.as_ref()) {
        let before = stack
            .status
            .as_ref()
            .and_then(|s| s.redis.as_ref())
            .and_then(|r| r.replication.as_ref());
        notices.extend(super::redis_roles::notice(before, now));
    }
    notices.extend(failover_notices(
        stack
            .status
            .as_ref()
            .and_then(|s| s.postgres.as_ref())
            .and_then(|p| p.replication.as_ref()),
        status
            .postgres
            .as_ref()
            .and_then(|p| p.replication.as_ref()),
    ));
    let newly = world.seen.newly_restored(stack);
    for engine in stores::of(&stack.spec).filter(|e| newly.contains(&e.kind())) {
        let kind = engine.kind();
        if let Some(from) = engine.status(status).and_then(|s| s.restored_from.clone()) {
            notices.push(restored(stack, world, engine.part(), kind, &from, known));
        }
    }
    notices
}

/// The status and Warning of a reconcile that failed with `message`: what
/// the backups held is kept as status last said it.
pub fn failed(
    stack: &AppStack,
    seen: &Seen,
    message: &str,
    now: &Time,
) -> (AppStackStatus, Notice) {
    let problem = Problem::ReconcileFailed(message.to_string()).bounded();
    let backups = stores::of(&stack.spec)
        .filter(|e| e.backup(&stack.spec).is_some())
        .map(|e| (e.kind(), previous_backup(stack, e.kind())))
        .collect();
    let status = compute(stack, seen, Some(&problem), backups, Vec::new(), now);
    (status, Notice::warning("ReconcileFailed", message))
}

/// The status of the stack from what the caches show.
fn compute(
    stack: &AppStack,
    seen: &Seen,
    problem: Option<&Problem>,
    backups: BTreeMap<StoreKind, BackupStatus>,
    migrating: Vec<String>,
    now: &Time,
) -> AppStackStatus {
    let observed = Observed {
        deployment: |name: &str| seen.deployments.get(name).cloned(),
        stateful_set: |name: &str| {
            stores::of(&stack.spec)
                .find(|e| e.secret_name(&stack.name_any()) == name)
                .and_then(|e| seen.stores.get(&e.kind())?.stateful_set.clone())
        },
        backups,
        restored: seen.restored(stack),
        route_addresses: seen.route_addresses.clone(),
        migrating,
    };
    status::compute(stack, &observed, problem, now)
}

fn previous_backup(stack: &AppStack, kind: StoreKind) -> BackupStatus {
    stack
        .status
        .as_ref()
        .zip(stores::by_kind(kind))
        .and_then(|(s, e)| e.status(s))
        .and_then(|s| s.backup.clone())
        .unwrap_or_default()
}

/// A ready store behind a policy the operator is not admitted by: the
/// first store's Service, when NetworkPolicies are on and it serves.
fn probe(stack: &AppStack, seen: &Seen) -> Option<(String, u16)> {
    if !stack.spec.network_policies_enabled() {
        return None;
    }
    // A replicated store admits the operator (it reads its instances):
    // probing it would prove nothing.
    let store = stores::of(&stack.spec).find(|e| e.instances(&stack.spec) < 2)?;
    let port = u16::try_from(store.port()).ok()?;
    let sts = seen.stores.get(&store.kind())?.stateful_set.as_deref()?;
    status::stateful_set_ready(sts).then(|| (store.secret_name(&stack.name_any()), port))
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

/// What a restored store was restored from: the restore container's own
/// account (which backup, which were skipped), read from the pod before it
/// rolls without that container, without the passwords in `known`.
fn restored(
    stack: &AppStack,
    world: &World,
    part: &str,
    kind: StoreKind,
    from: &str,
    known: &Known,
) -> Notice {
    let said = world
        .seen
        .stores
        .get(&kind)
        .and_then(|s| {
            s.pod
                .as_ref()?
                .status
                .as_ref()?
                .init_container_statuses
                .as_ref()
        })
        .into_iter()
        .flatten()
        .find(|c| c.name == backup::RESTORE_CONTAINER)
        .and_then(|c| c.state.as_ref()?.terminated.as_ref()?.message.as_deref())
        .map(|m| known.redact(m.trim()));
    let note = format!(
        "{part}: {}",
        said.unwrap_or_else(|| format!("restored from the backups of stack {from}"))
    );
    let namespace = stack.namespace().unwrap_or_default();
    let sts = stores::of(&stack.spec)
        .find(|e| e.kind() == kind)
        .map(|e| e.secret_name(&stack.name_any()))
        .unwrap_or_default();
    Notice {
        about: Some(reference("apps/v1", "StatefulSet", &sts, &namespace)),
        ..Notice::normal("Restored", cut(&note, 1000), "Restore")
    }
}

fn reference(api_version: &str, kind: &str, name: &str, namespace: &str) -> ObjectReference {
    ObjectReference {
        api_version: Some(api_version.into()),
        kind: Some(kind.into()),
        name: Some(name.into()),
        namespace: Some(namespace.into()),
        ..ObjectReference::default()
    }
}
