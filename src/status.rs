//! The AppStack's status, computed (purely) from the spec, what the watch
//! caches show of its children and the problem the reconcile found. The
//! controller writes it only when it differs from what is stored.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{Resource, ResourceExt};

use crate::api::{
    AppStack, AppStackStatus, BackupStatus, BackupSummary, ComponentStatus, StoreKind, StoreStatus,
};
use crate::build::names;
use crate::build::stores::{self, Engine};
use crate::build::{CREDENTIALS_CONTAINER, USERS_CONTAINER};
use crate::redact::Known;

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
/// True while the newest backup of a store failed (only with backups).
pub const BACKUP_FAILING: &str = "BackupFailing";

/// Something that keeps the stack from converging, found while reconciling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The spec cannot be realised; nothing was applied.
    InvalidSpec(String),
    /// The API server refused a change to a child (e.g. a StatefulSet's
    /// volumeClaimTemplates, which cannot change in place).
    ChangeRejected(String),
    /// A child's name is held by an object this stack does not control:
    /// another stack's child (their names add up to the same name), or an
    /// object made outside AppStack.
    NameConflict(String),
    /// The reconcile failed (API errors, a child the API server refused as
    /// invalid); it is retried with backoff.
    ReconcileFailed(String),
    /// A store's server keeps failing (crash loop, image, scheduling); the
    /// message carries what its pod says.
    StoreFailing(String),
    /// A store refuses the credentials its Secret holds, so the apps cannot
    /// connect; the message says why and what to do.
    CredentialsOutOfSync(String),
    /// A NetworkPolicy the API server refused is missing, so what it guards
    /// is not applied (a store is stopped): the message names the policy,
    /// the refusal and what was held back.
    GuardRefused(String),
}

impl Problem {
    pub fn reason(&self) -> &'static str {
        match self {
            Problem::InvalidSpec(_) => "InvalidSpec",
            Problem::ChangeRejected(_) => "ChangeRejected",
            Problem::NameConflict(_) => "NameConflict",
            Problem::ReconcileFailed(_) => "ReconcileFailed",
            Problem::StoreFailing(_) => "StoreFailing",
            Problem::CredentialsOutOfSync(_) => "CredentialsOutOfSync",
            Problem::GuardRefused(_) => "GuardRefused",
        }
    }

    /// The same problem with its message cut to what a condition holds.
    pub fn bounded(self) -> Self {
        self.map(|m| crate::error::cut(&m, crate::error::CONDITION_MESSAGE_MAX))
    }

    /// The same problem with the stack's passwords taken out of its message
    /// (before it is cut, or a cut could leave a piece unrecognised).
    pub fn redacted(self, known: &Known) -> Self {
        self.map(|m| known.redact(&m))
    }

    fn map(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            Problem::InvalidSpec(m) => Problem::InvalidSpec(f(m)),
            Problem::ChangeRejected(m) => Problem::ChangeRejected(f(m)),
            Problem::NameConflict(m) => Problem::NameConflict(f(m)),
            Problem::ReconcileFailed(m) => Problem::ReconcileFailed(f(m)),
            Problem::StoreFailing(m) => Problem::StoreFailing(f(m)),
            Problem::CredentialsOutOfSync(m) => Problem::CredentialsOutOfSync(f(m)),
            Problem::GuardRefused(m) => Problem::GuardRefused(f(m)),
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Problem::InvalidSpec(m)
            | Problem::ChangeRejected(m)
            | Problem::NameConflict(m)
            | Problem::ReconcileFailed(m)
            | Problem::StoreFailing(m)
            | Problem::CredentialsOutOfSync(m)
            | Problem::GuardRefused(m) => m,
        }
    }
}

/// The children as the caches show them: lookups by name in the stack's
/// namespace.
pub struct Observed<D, S> {
    pub deployment: D,
    pub stateful_set: S,
    /// What the backup pods of each backed-up store say (see [`backup`]).
    pub backups: std::collections::BTreeMap<StoreKind, BackupStatus>,
}

pub fn compute<D, S>(
    stack: &AppStack,
    observed: &Observed<D, S>,
    problem: Option<&Problem>,
    now: &Time,
) -> AppStackStatus
where
    D: Fn(&str) -> Option<Arc<Deployment>>,
    S: Fn(&str) -> Option<Arc<StatefulSet>>,
{
    let stack_name = stack.name_any();
    let namespace = stack.namespace().unwrap_or_default();
    let spec = &stack.spec;

    // (status, whether its Deployment exists and has every replica ready and updated)
    let components: Vec<(ComponentStatus, bool)> = spec
        .components
        .iter()
        .map(|c| {
            let name = names::component(&stack_name, &c.name);
            let deployment = (observed.deployment)(&name);
            let mut status = component_status(&c.name, deployment.as_deref());
            // The HPA raises a new Deployment to minReplicas only after its
            // first sync; until then the stack is not what was asked for.
            if let Some(a) = &c.autoscaling {
                status.desired_replicas = status.desired_replicas.max(a.min_replicas);
            }
            let done = deployment.as_deref().is_some_and(deployment_complete)
                && status.ready_replicas >= status.desired_replicas;
            (status, done)
        })
        .collect();
    let components_total = components.len();
    let components_ready = components.iter().filter(|(_, done)| *done).count();

    let stores: Vec<(&'static dyn Engine, StoreStatus)> = stores::of(spec)
        .map(|e| {
            let name = e.secret_name(&stack_name);
            let sts = (observed.stateful_set)(&name);
            let ready = sts.as_deref().is_some_and(stateful_set_ready);
            // Restored once ready under spec.restore; said from then on.
            let restored_from = stack
                .status
                .as_ref()
                .and_then(|s| e.status(s))
                .and_then(|s| s.restored_from.clone())
                .or_else(|| {
                    // Only a store the restore names (all by default).
                    spec.restore
                        .as_ref()
                        .filter(|r| r.stores.as_ref().is_none_or(|s| s.contains(&e.kind())))
                        .filter(|_| ready)
                        .map(|r| r.from.clone())
                });
            let status = StoreStatus {
                ready,
                endpoint: format!("{name}.{namespace}.svc:{}", e.port()),
                secret_name: name,
                backup: observed.backups.get(&e.kind()).cloned(),
                restored_from,
            };
            (e, status)
        })
        .collect();

    let mut waiting: Vec<String> = components
        .iter()
        .filter(|(_, done)| !done)
        .map(|(c, _)| {
            format!(
                "component {} ({}/{} ready)",
                c.name, c.ready_replicas, c.desired_replicas
            )
        })
        .collect();
    for (e, s) in &stores {
        if !s.ready {
            waiting.push(e.part().to_string());
        }
    }
    let all_ready = waiting.is_empty();

    let generation = stack.meta().generation;
    let mut conds = conditions(problem, all_ready, &waiting);
    if !observed.backups.is_empty() {
        let failing: Vec<String> = stores
            .iter()
            .filter_map(|(e, s)| {
                let failure = s.backup.as_ref()?.last_failure.as_ref()?;
                Some(format!("{}: {failure}", e.part()))
            })
            .collect();
        conds.push(if failing.is_empty() {
            (
                BACKUP_FAILING,
                false,
                "BackupsSucceed",
                "the newest backup of every store succeeded, or none finished yet".into(),
            )
        } else {
            (BACKUP_FAILING, true, "BackupFailed", failing.join("; "))
        });
    }
    let conditions = timed(stack.status.as_ref(), conds, generation, now);

    let mut status = AppStackStatus {
        observed_generation: generation,
        conditions,
        components: components.into_iter().map(|(c, _)| c).collect(),
        components_ready: Some(format!("{components_ready}/{components_total}")),
        ..AppStackStatus::default()
    };
    for (e, s) in stores {
        *e.status_mut(&mut status) = Some(s);
    }
    status
}

type Cond = (&'static str, bool, &'static str, String);

fn conditions(problem: Option<&Problem>, all_ready: bool, waiting: &[String]) -> Vec<Cond> {
    let waiting_msg = format!("waiting for {}", waiting.join(", "));
    match problem {
        Some(Problem::InvalidSpec(msg)) => vec![
            (READY, false, "InvalidSpec", msg.clone()),
            (
                PROGRESSING,
                false,
                "InvalidSpec",
                "fix the spec to continue".into(),
            ),
            (DEGRADED, true, "InvalidSpec", msg.clone()),
        ],
        // Some of "our" children are someone else's: what the caches show
        // under those names says nothing about this stack.
        Some(Problem::NameConflict(msg)) => vec![
            (READY, false, "NameConflict", msg.clone()),
            (PROGRESSING, false, "NameConflict", msg.clone()),
            (DEGRADED, true, "NameConflict", msg.clone()),
        ],
        // Something is held back or stopped for want of its guard: never
        // Ready, even when what still runs is (a store scaled to 0 is).
        Some(Problem::GuardRefused(msg)) => vec![
            (READY, false, "GuardRefused", msg.clone()),
            (PROGRESSING, false, "GuardRefused", msg.clone()),
            (DEGRADED, true, "GuardRefused", msg.clone()),
        ],
        // What already runs keeps serving: Ready follows the children.
        Some(
            p @ (Problem::ChangeRejected(msg)
            | Problem::ReconcileFailed(msg)
            | Problem::StoreFailing(msg)
            | Problem::CredentialsOutOfSync(msg)),
        ) => vec![
            if all_ready {
                (
                    READY,
                    true,
                    "AllReady",
                    "the running children serve; see Degraded".into(),
                )
            } else {
                (READY, false, p.reason(), msg.clone())
            },
            (PROGRESSING, false, p.reason(), msg.clone()),
            (DEGRADED, true, p.reason(), msg.clone()),
        ],
        None if all_ready => vec![
            (
                READY,
                true,
                "AllReady",
                "every component and store is ready".into(),
            ),
            (
                PROGRESSING,
                false,
                "Complete",
                "every child is rolled out".into(),
            ),
            (DEGRADED, false, "AsExpected", "no problem found".into()),
        ],
        None => vec![
            (READY, false, "NotReady", waiting_msg.clone()),
            (PROGRESSING, true, "RollingOut", waiting_msg),
            (DEGRADED, false, "AsExpected", "no problem found".into()),
        ],
    }
}

/// Why a store's pod does not serve, from what the kubelet reports: the
/// store container failing first (its last log lines, kept as termination
/// message), then the credentials check's verdict, then a pod that cannot
/// be scheduled. None while it merely starts. What the pod's containers
/// said is quoted without the passwords in `known`.
pub fn store_trouble(part: &str, pod: &Pod, known: &Known) -> Option<Problem> {
    // A pod on its way out stops its containers: that is no failure.
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let status = pod.status.as_ref()?;
    let statuses = status.container_statuses.as_deref().unwrap_or_default();
    let container = |c: &str| statuses.iter().find(|s| s.name == c);
    let fails = |c: &ContainerStatus| failing(c, known);
    if let Some(failure) = container(part).and_then(fails) {
        return Some(Problem::StoreFailing(format!(
            "{part} (pod {name}) keeps failing: {failure}; see kubectl logs {name} -c {part} --previous"
        )));
    }
    // The init containers (the server's users; fetch from S3, restore):
    // the first that fails, or cannot start (a missing Secret of S3 keys).
    let init = status
        .init_container_statuses
        .as_deref()
        .unwrap_or_default();
    if let Some((container, failure)) = init
        .iter()
        .find_map(|s| fails(s).map(|f| (s.name.as_str(), f)))
    {
        let what = if container == USERS_CONTAINER {
            "cannot take the users of its Secrets"
        } else {
            "cannot be restored"
        };
        return Some(Problem::StoreFailing(format!(
            "{part} (pod {name}) {what}: {container}: {failure}; see kubectl logs {name} -c {container}"
        )));
    }
    if let Some(failure) = container(CREDENTIALS_CONTAINER).and_then(fails) {
        return Some(Problem::CredentialsOutOfSync(format!("{part}: {failure}")));
    }
    let unschedulable = status
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        });
    unschedulable.map(|c| {
        Problem::StoreFailing(format!(
            "{part} (pod {name}) cannot be scheduled: {}",
            c.message.as_deref().unwrap_or("no reason given")
        ))
    })
}

/// What a container that is not running says of itself: waiting to be
/// restarted after a failure (its last termination message), or unable to
/// start at all (image, config). None when running or merely starting.
fn failing(c: &ContainerStatus, known: &Known) -> Option<String> {
    let state = c.state.as_ref()?;
    if let Some(waiting) = &state.waiting {
        let reason = waiting.reason.as_deref().unwrap_or_default();
        if CANNOT_START.contains(&reason) {
            let message = known.redact(waiting.message.as_deref().unwrap_or_default());
            return Some(
                format!("{reason}: {message}")
                    .trim_end_matches([' ', ':'])
                    .to_string(),
            );
        }
        if reason != "CrashLoopBackOff" {
            return None;
        }
    } else if state.running.is_some() {
        return None;
    }
    // Terminated now (a failure only with a non-zero exit), or waiting to be
    // restarted after the failure the last state records.
    let terminated = match &state.terminated {
        Some(t) if t.exit_code == 0 => return None,
        Some(t) => t,
        None => c.last_state.as_ref().and_then(|s| s.terminated.as_ref())?,
    };
    Some(last_lines(terminated, known).unwrap_or_else(|| {
        format!(
            "exit code {}{}",
            terminated.exit_code,
            terminated
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )
    }))
}

/// What a terminated container said: the last lines of its message (which
/// may be the log's tail, FallbackToLogsOnError), joined, without the
/// passwords in `known`; None when empty. Redacted whole, before the lines
/// are cut: the message's own ends are where a password may be cut short.
fn last_lines(
    terminated: &k8s_openapi::api::core::v1::ContainerStateTerminated,
    known: &Known,
) -> Option<String> {
    let message = known.redact(terminated.message.as_deref().unwrap_or_default());
    let said: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let n = said.len();
    (n > 0).then(|| said[n.saturating_sub(LAST_LINES)..].join(" | "))
}

/// The backups of one store, from its backup pods (those of the CronJob's
/// Jobs that still exist): the newest pod that succeeded gives what the
/// backups hold (its termination message, JSON); a pod that failed after
/// it gives the failure, without the passwords in `known`. Pods still
/// running count for nothing yet.
pub fn backup(pods: &[Pod], known: &Known) -> BackupStatus {
    // (succeeded, what its last container to end said): the main
    // container on success; on failure, whichever container failed (with
    // S3, the backup runs in an init container before the upload).
    let finished = |p: &Pod| {
        let status = p.status.as_ref()?;
        let succeeded = match status.phase.as_deref()? {
            "Succeeded" => true,
            "Failed" => false,
            _ => return None,
        };
        let ended = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten())
            .filter_map(|c| c.state.as_ref()?.terminated.clone());
        let mut ended = ended.rev();
        let terminated = if succeeded {
            ended.next()
        } else {
            ended.find(|t| t.exit_code != 0)
        }?;
        Some((succeeded, terminated))
    };
    let mut done: Vec<(
        &Pod,
        bool,
        k8s_openapi::api::core::v1::ContainerStateTerminated,
    )> = pods
        .iter()
        .filter_map(|p| finished(p).map(|(ok, t)| (p, ok, t)))
        .collect();
    done.sort_by(|a, b| {
        let at = |t: &k8s_openapi::api::core::v1::ContainerStateTerminated| {
            t.finished_at.as_ref().map(|f| f.0)
        };
        at(&a.2).cmp(&at(&b.2))
    });
    let mut status = BackupStatus::default();
    let last_ok = done.iter().rposition(|(_, ok, _)| *ok);
    if let Some(i) = last_ok {
        let (pod, _, terminated) = &done[i];
        let message = terminated.message.as_deref().unwrap_or_default();
        match BackupSummary::parse(message) {
            Ok(s) => {
                status.last_successful = Some(s.label);
                status.last_successful_time = Some(s.completed);
                status.last_size_bytes = Some(i64::try_from(s.size_bytes).unwrap_or(i64::MAX));
                status.count = Some(i32::try_from(s.count).unwrap_or(i32::MAX));
                status.total_bytes = Some(i64::try_from(s.total_bytes).unwrap_or(i64::MAX));
                status.first_recoverable_time = Some(s.first_recoverable);
                status.last_recoverable_time = Some(s.last_recoverable);
            }
            // The backup may be whole, but status cannot say what the
            // backups hold: a failure (BackupFailing), never silence.
            Err(error) => {
                let pod = pod.name_any();
                tracing::warn!(%pod, %error, "a backup pod's summary does not read");
                status.last_failure = Some(format!(
                    "backup pod {pod} succeeded, but its termination message is no backup summary this operator reads: {}",
                    crate::error::cut(&known.redact(&error.to_string()), 300)
                ));
            }
        }
    }
    if let Some((pod, false, t)) = done.last() {
        let why = last_lines(t, known).unwrap_or_else(|| format!("exit code {}", t.exit_code));
        status.last_failure = Some(format!("backup pod {} failed: {why}", pod.name_any()));
    }
    status
}

/// Lines of a failed container's message that status keeps.
const LAST_LINES: usize = 4;

/// Waiting reasons of a container the kubelet cannot start at all.
const CANNOT_START: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// The conditions of a stored stack that does not decode (nothing of it is
/// known but its metadata and the status it had).
pub fn undecodable(
    current: Option<&AppStackStatus>,
    problem: &Problem,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    timed(
        current,
        conditions(Some(problem), false, &[]),
        generation,
        now,
    )
}

/// Conditions with their observedGeneration and the lastTransitionTime the
/// current status gives them.
fn timed(
    current: Option<&AppStackStatus>,
    conds: Vec<Cond>,
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let current = current.map(|s| s.conditions.as_slice()).unwrap_or_default();
    conds
        .into_iter()
        .map(|(type_, status, reason, message)| {
            carry_transition(current, type_, status, reason, message, generation, now)
        })
        .collect()
}

/// Builds a condition, keeping the old lastTransitionTime unless its status flips.
fn carry_transition(
    current: &[Condition],
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: &Time,
) -> Condition {
    let status = if status { "True" } else { "False" }.to_string();
    let last_transition_time = current
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| now.clone());
    Condition {
        type_: type_.to_string(),
        status,
        reason: reason.to_string(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

fn component_status(name: &str, deployment: Option<&Deployment>) -> ComponentStatus {
    let desired = deployment
        .and_then(|d| d.spec.as_ref())
        .and_then(|s| s.replicas)
        .unwrap_or(0);
    let ready = deployment
        .and_then(|d| d.status.as_ref())
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    ComponentStatus {
        name: name.to_string(),
        desired_replicas: desired,
        ready_replicas: ready,
    }
}

/// The Deployment controller has seen the latest spec and every replica is
/// updated and available.
fn deployment_complete(d: &Deployment) -> bool {
    let Some(status) = d.status.as_ref() else {
        return false;
    };
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    status.observed_generation >= d.metadata.generation
        && status.updated_replicas.unwrap_or(0) >= desired
        && status.available_replicas.unwrap_or(0) >= desired
        && status.replicas.unwrap_or(0) == desired
}

pub fn stateful_set_ready(s: &StatefulSet) -> bool {
    let Some(status) = s.status.as_ref() else {
        return false;
    };
    let desired = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    status.observed_generation >= s.metadata.generation
        && status.ready_replicas.unwrap_or(0) >= desired
        && status.update_revision == status.current_revision
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find<'a>(conds: &'a [Cond], type_: &str) -> &'a Cond {
        conds
            .iter()
            .find(|c| c.0 == type_)
            .expect("condition present")
    }

    #[test]
    fn a_name_conflict_is_never_ready_even_if_the_other_stacks_children_are() {
        let p = Problem::NameConflict("Deployment a-b-web already exists".into());
        let conds = conditions(Some(&p), true, &[]);
        assert!(!find(&conds, READY).1);
        assert!(find(&conds, DEGRADED).1);
        assert_eq!(find(&conds, DEGRADED).2, "NameConflict");
        assert_eq!(find(&conds, DEGRADED).3, p.message());
    }

    #[test]
    fn a_rejected_change_keeps_a_serving_stack_ready() {
        let p = Problem::ChangeRejected("volumeClaimTemplates".into());
        let conds = conditions(Some(&p), true, &[]);
        assert!(find(&conds, READY).1);
        assert_eq!(find(&conds, DEGRADED).2, "ChangeRejected");
        assert!(!find(&conds, PROGRESSING).1);
    }

    #[test]
    fn waiting_names_what_is_not_ready() {
        let conds = conditions(None, false, &["redis".into()]);
        assert_eq!(find(&conds, READY).3, "waiting for redis");
        assert!(find(&conds, PROGRESSING).1);
        assert!(!find(&conds, DEGRADED).1);
    }

    fn pod(containers: serde_json::Value, conditions: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "shop-redis-0"},
            "status": {"containerStatuses": containers, "conditions": conditions}
        }))
        .expect("a pod")
    }

    fn container(name: &str, state: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"name": name, "ready": false, "restartCount": 0, "image": "i",
                           "imageID": "", "state": state})
    }

    #[test]
    fn a_store_that_starts_or_runs_has_no_trouble() {
        let creating = serde_json::json!({"waiting": {"reason": "ContainerCreating"}});
        let running = serde_json::json!({"running": {}});
        for state in [creating, running] {
            let p = pod(
                serde_json::json!([
                    container("redis", state.clone()),
                    container("credentials", state)
                ]),
                serde_json::json!([]),
            );
            assert_eq!(store_trouble("redis", &p, &Known::default()), None);
        }
    }

    #[test]
    fn an_image_that_cannot_be_pulled_is_store_failing() {
        let p = pod(
            serde_json::json!([container(
                "redis",
                serde_json::json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"redis:nope\""}})
            )]),
            serde_json::json!([]),
        );
        let Some(Problem::StoreFailing(m)) = store_trouble("redis", &p, &Known::default()) else {
            panic!("expected StoreFailing");
        };
        assert!(
            m.contains("ImagePullBackOff: Back-off pulling image"),
            "{m}"
        );
    }

    #[test]
    fn a_store_pod_that_cannot_be_scheduled_says_why() {
        let p = pod(
            serde_json::json!([]),
            serde_json::json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                "message": "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims"}]),
        );
        let Some(Problem::StoreFailing(m)) = store_trouble("redis", &p, &Known::default()) else {
            panic!("expected StoreFailing");
        };
        assert!(m.contains("cannot be scheduled: 0/1 nodes"), "{m}");
    }

    #[test]
    fn a_failed_store_without_a_message_gives_its_exit_code() {
        let p = pod(
            serde_json::json!([container(
                "redis",
                serde_json::json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}})
            )]),
            serde_json::json!([]),
        );
        let Some(Problem::StoreFailing(m)) = store_trouble("redis", &p, &Known::default()) else {
            panic!("expected StoreFailing");
        };
        assert!(m.contains("exit code 137 (OOMKilled)"), "{m}");
    }

    #[test]
    fn a_crash_loop_keeps_the_last_lines_of_the_log() {
        let log = "Redis is starting\n\nServer initialized\n*** FATAL AOF MANIFEST FILE ERROR ***\n\nReading the manifest file, at line 2\n>>> 'garbage line'\nInvalid AOF manifest file format\n";
        let p = pod(
            serde_json::json!([container(
                "redis",
                serde_json::json!({"waiting": {"reason": "CrashLoopBackOff"}})
            )
            .as_object()
            .cloned()
            .map(|mut c| {
                c.insert(
                    "lastState".into(),
                    serde_json::json!({"terminated": {"exitCode": 1, "message": log}}),
                );
                c
            })]),
            serde_json::json!([]),
        );
        let Some(Problem::StoreFailing(m)) = store_trouble("redis", &p, &Known::default()) else {
            panic!("expected StoreFailing");
        };
        assert!(
            m.contains("keeps failing: *** FATAL AOF MANIFEST FILE ERROR *** | Reading the manifest file, at line 2 | >>> 'garbage line' | Invalid AOF manifest file format;"),
            "{m}"
        );
        assert!(!m.contains("Redis is starting"), "{m}");
    }

    #[test]
    fn a_store_pod_being_deleted_or_stopped_cleanly_has_no_trouble() {
        let stopped = serde_json::json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
        let p = pod(
            serde_json::json!([container("credentials", stopped)]),
            serde_json::json!([]),
        );
        assert_eq!(store_trouble("postgres", &p, &Known::default()), None);

        let mut deleting = pod(
            serde_json::json!([container(
                "credentials",
                serde_json::json!({"terminated": {"exitCode": 130}})
            )]),
            serde_json::json!([]),
        );
        assert!(store_trouble("postgres", &deleting, &Known::default()).is_some());
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert_eq!(
            store_trouble("postgres", &deleting, &Known::default()),
            None
        );
    }

    fn backup_pod(name: &str, phase: &str, at: &str, exit: i32, message: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "status": {"phase": phase, "containerStatuses": [{
                "name": "backup", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"terminated": {"exitCode": exit, "finishedAt": at, "message": message}}
            }]}
        }))
        .unwrap()
    }

    const SUMMARY: &str = r#"{"label":"20261202T030000Z","completed":"2026-12-02T03:00:09Z","sizeBytes":48006139,"count":2,"totalBytes":96000000,"firstRecoverable":"2026-12-01T03:00:08Z","lastRecoverable":"2026-12-02T03:00:09Z"}"#;

    #[test]
    fn backup_status_comes_from_the_newest_pods_termination_messages() {
        let ok = backup_pod("b-1", "Succeeded", "2026-12-02T03:00:10Z", 0, SUMMARY);
        let s = backup(std::slice::from_ref(&ok), &Known::default());
        assert_eq!(s.last_successful.as_deref(), Some("20261202T030000Z"));
        assert_eq!(s.count, Some(2));
        assert_eq!(
            s.first_recoverable_time.as_deref(),
            Some("2026-12-01T03:00:08Z")
        );
        assert_eq!(s.last_failure, None);

        // A failure after it is reported, and the last good backup kept.
        let failed = backup_pod(
            "b-2",
            "Failed",
            "2026-12-02T04:00:10Z",
            1,
            "pg_basebackup failed: no replication",
        );
        let s = backup(&[failed.clone(), ok.clone()], &Known::default());
        assert_eq!(s.last_successful.as_deref(), Some("20261202T030000Z"));
        assert!(
            s.last_failure
                .as_deref()
                .unwrap()
                .contains("b-2 failed: pg_basebackup failed")
        );

        // A success after the failure clears it; running pods count for nothing.
        let again = backup_pod("b-3", "Succeeded", "2026-12-02T05:00:10Z", 0, SUMMARY);
        let running: Pod = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "b-4"}, "status": {"phase": "Running"}}),
        )
        .unwrap();
        let s = backup(&[again, failed, running], &Known::default());
        assert_eq!(s.last_failure, None);
    }

    #[test]
    fn a_summary_that_does_not_read_is_a_failure_not_silence() {
        // A script that renamed a field, and one that printed prose.
        for (message, expected) in [
            (
                SUMMARY.replace("sizeBytes", "size_bytes"),
                "missing field `sizeBytes`",
            ),
            ("backup done".to_string(), "not the summary's JSON"),
        ] {
            let ok = backup_pod("b-1", "Succeeded", "2026-12-02T03:00:10Z", 0, &message);
            let s = backup(std::slice::from_ref(&ok), &Known::default());
            assert_eq!(s.last_successful, None);
            let failure = s.last_failure.expect("the mismatch is reported");
            assert!(
                failure.contains("backup pod b-1 succeeded") && failure.contains(expected),
                "{failure}"
            );
        }
    }

    /// The apps' password, rotated by hand to one a URL must encode.
    const PASSWORD: &str = "P@ss:w/rd#1%x";
    const ENCODED: &str = "P%40ss%3Aw%2Frd%231%25x";

    fn known() -> Known {
        Known::new([PASSWORD, "admin-password-0123456789"])
    }

    fn shop() -> AppStack {
        let spec = serde_json::from_value(serde_json::json!({
            "components": [{"name": "web", "image": "i", "port": 80}],
            "redis": {"backup": {}}
        }))
        .unwrap();
        let mut stack = AppStack::new("shop", spec);
        stack.metadata.namespace = Some("team-a".into());
        stack
    }

    fn compute_with(
        problem: Option<&Problem>,
        backups: std::collections::BTreeMap<StoreKind, BackupStatus>,
    ) -> AppStackStatus {
        let observed = Observed {
            deployment: |_: &str| None,
            stateful_set: |_: &str| None,
            backups,
        };
        let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        compute(&shop(), &observed, problem, &now)
    }

    fn assert_no_password(status: &AppStackStatus) {
        let all = serde_json::to_string(status).unwrap();
        for p in [PASSWORD, ENCODED, "admin-password-0123456789"] {
            assert!(!all.contains(p), "{p} in status: {all}");
        }
    }

    #[test]
    fn a_password_in_a_failing_stores_log_never_reaches_the_conditions() {
        // What a Redis that refuses a user line prints (its log's tail, as
        // the kubelet keeps it), and a client that quotes its URL.
        let log = format!(
            "*** FATAL CONFIG FILE ERROR (Redis 7.4.1) ***\nReading the configuration file, at line 2\n>>> 'user app on >{PASSWORD} ~* &* +@all'\nError in user declaration '>{PASSWORD}': Syntax error\nconnecting to redis://app:{ENCODED}@shop-redis:6379/0\n"
        );
        let mut c = container(
            "redis",
            serde_json::json!({"waiting": {"reason": "CrashLoopBackOff"}}),
        );
        c["lastState"] = serde_json::json!({"terminated": {"exitCode": 1, "message": log}});
        let p = pod(serde_json::json!([c]), serde_json::json!([]));
        let problem = store_trouble("redis", &p, &known())
            .expect("a failing store")
            .redacted(&known())
            .bounded();
        let status = compute_with(Some(&problem), Default::default());
        let degraded = status
            .conditions
            .iter()
            .find(|c| c.type_ == DEGRADED)
            .unwrap();
        assert_eq!(degraded.reason, "StoreFailing");
        assert!(
            degraded.message.contains(
                "Error in user declaration '>[redacted]': Syntax error | connecting to redis://app:[redacted]@shop-redis"
            ),
            "{}",
            degraded.message
        );
        assert_no_password(&status);
    }

    #[test]
    fn a_password_in_what_init_and_backup_containers_say_is_redacted() {
        let said = format!("wrote user app with password {PASSWORD}");
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "shop-redis-0"},
            "status": {"initContainerStatuses": [container(
                "users",
                serde_json::json!({"terminated": {"exitCode": 1, "message": said}})
            )]}
        }))
        .unwrap();
        let Some(Problem::StoreFailing(m)) = store_trouble("redis", &p, &known()) else {
            panic!("expected StoreFailing");
        };
        assert!(
            m.contains("cannot take the users of its Secrets: users: wrote user app with password [redacted];"),
            "{m}"
        );

        let failed = backup_pod(
            "shop-redis-backup-1",
            "Failed",
            "2026-12-02T04:00:10Z",
            1,
            &format!(
                "AUTH failed for admin-password-0123456789\nredis-cli --rdb failed: {ENCODED}"
            ),
        );
        let b = backup(&[failed], &known());
        let status = compute_with(None, [(StoreKind::Redis, b)].into());
        let failing = status
            .conditions
            .iter()
            .find(|c| c.type_ == BACKUP_FAILING)
            .unwrap();
        assert!(
            failing
                .message
                .contains("AUTH failed for [redacted] | redis-cli --rdb failed: [redacted]"),
            "{}",
            failing.message
        );
        assert_no_password(&status);
    }
}
