//! The one problem status shows, from what apply found or what the stores'
//! pods say. Pure.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use super::observe::StoreSeen;
use crate::api::StoreKind;
use crate::build::migration::Migration;
use crate::build::stores;
use crate::reconcile::children::{Finding, Guard};
use crate::reconcile::migrations::Stage;
use crate::redact::Known;
use crate::status::{self, Problem};

/// The one problem status shows: names taken first (nothing under them is
/// this stack's), then what is held back for want of its NetworkPolicy,
/// then forbidden changes, then refusals; its message lists every finding.
pub fn of_findings(findings: &[Finding]) -> Option<Problem> {
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

/// The stores whose StatefulSet exists but is not ready.
pub fn unready(stores: &BTreeMap<StoreKind, StoreSeen>) -> Vec<StoreKind> {
    stores
        .iter()
        .filter(|(_, s)| {
            s.stateful_set
                .as_deref()
                .is_some_and(|sts| !status::stateful_set_ready(sts))
        })
        .map(|(k, _)| *k)
        .collect()
}

/// Why unready stores do not serve, from their pods (the one pod a store's
/// StatefulSet runs, when that StatefulSet controls it). A failing server
/// explains more than credentials it cannot check.
pub fn trouble(
    stores: &BTreeMap<StoreKind, StoreSeen>,
    unready: &[StoreKind],
    known: &Known,
) -> Option<Problem> {
    let mut found: Vec<Problem> = unready
        .iter()
        .filter_map(|kind| {
            let seen = stores.get(kind)?;
            let pod = seen.pod.as_ref()?;
            let sts_uid = seen.stateful_set.as_ref()?.metadata.uid.as_ref();
            if !controlled(pod, sts_uid) {
                return None;
            }
            let part = stores::ENGINES.iter().find(|e| e.kind() == *kind)?.part();
            status::store_trouble(part, pod, known)
        })
        .collect();
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

fn controlled(pod: &Pod, owner_uid: Option<&String>) -> bool {
    pod.owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && Some(&o.uid) == owner_uid)
}

/// The first failed migration, with the Job's reason and what its newest
/// failed pod printed last: the rollout of its component waits for it.
pub fn migration_failed(
    migrations: &[(Migration, Stage)],
    logs: &BTreeMap<String, String>,
) -> Option<Problem> {
    let failed: Vec<String> = migrations
        .iter()
        .filter_map(|(m, stage)| {
            let Stage::Failed(why) = stage else {
                return None;
            };
            let said = logs
                .get(&m.job)
                .map(|l| format!("; its last log lines: {l}"))
                .unwrap_or_default();
            Some(format!(
                "component {}: migration Job {} failed ({why}){said}; the old revision keeps serving and the new one waits; fix migrate (a change runs it again as a new Job) or delete the Job to run it again",
                m.component, m.job
            ))
        })
        .collect();
    (!failed.is_empty()).then(|| Problem::MigrationFailed(failed.join(". ")))
}
