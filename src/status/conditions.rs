//! The metav1-style conditions: which ones a problem and the children's
//! readiness give, and their transition times carried over.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::{DEGRADED, PROGRESSING, Problem, READY, RECONCILING, STALLED};
use crate::api::AppStackStatus;

pub(super) type Cond = (&'static str, bool, &'static str, String);

pub(super) fn conditions(
    problem: Option<&Problem>,
    all_ready: bool,
    waiting: &[String],
) -> Vec<Cond> {
    let mut conds = ours(problem, all_ready, waiting);
    conds.extend(kstatus(problem, &conds));
    conds
}

/// Reconciling and Stalled, read from ours the way kstatus wants them: a
/// stack rolling out, or retrying a failed reconcile, is still reconciling;
/// any other problem waits for the user (Stalled, kstatus' Failed), so a
/// GitOps tool stops waiting and says why.
fn kstatus(problem: Option<&Problem>, ours: &[Cond]) -> [Cond; 2] {
    let progressing = ours.iter().find(|c| c.0 == PROGRESSING);
    let (rolling, reason, message) = match (problem, progressing) {
        (Some(p @ Problem::ReconcileFailed(m)), _) => (true, p.reason(), m.clone()),
        (_, Some(c)) => (c.1, c.2, c.3.clone()),
        (_, None) => (false, "Complete", String::new()),
    };
    let stalled = match problem {
        None | Some(Problem::ReconcileFailed(_)) => {
            (STALLED, false, "AsExpected", "no problem found".into())
        }
        Some(p) => (STALLED, true, p.reason(), p.message().to_string()),
    };
    [(RECONCILING, rolling, reason, message), stalled]
}

fn ours(problem: Option<&Problem>, all_ready: bool, waiting: &[String]) -> Vec<Cond> {
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
        // The wiring cannot be drawn: nothing is applied until the user's
        // Secret serves.
        Some(p @ Problem::UserSecret(msg)) => vec![
            (READY, false, p.reason(), msg.clone()),
            (PROGRESSING, false, p.reason(), msg.clone()),
            (DEGRADED, true, p.reason(), msg.clone()),
        ],
        // What already runs keeps serving: Ready follows the children.
        Some(
            p @ (Problem::ChangeRejected(msg)
            | Problem::ReconcileFailed(msg)
            | Problem::StoreFailing(msg)
            | Problem::CredentialsOutOfSync(msg)
            | Problem::MigrationFailed(msg)),
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
pub(super) fn timed(
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
    fn kstatus_sees_a_rollout_or_a_retry_as_reconciling_and_a_problem_for_the_user_as_stalled() {
        let rolling = conditions(None, false, &["web".into()]);
        assert!(find(&rolling, RECONCILING).1);
        assert!(!find(&rolling, STALLED).1);
        let done = conditions(None, true, &[]);
        assert!(!find(&done, RECONCILING).1);
        assert!(!find(&done, STALLED).1);
        let retry = conditions(Some(&Problem::ReconcileFailed("timeout".into())), true, &[]);
        assert!(find(&retry, RECONCILING).1);
        assert!(!find(&retry, STALLED).1);
        let p = Problem::MigrationFailed("Job shop-web-migrate-1 failed".into());
        let stuck = conditions(Some(&p), true, &[]);
        assert!(!find(&stuck, RECONCILING).1);
        assert_eq!(
            find(&stuck, STALLED),
            &(STALLED, true, "MigrationFailed", p.message().to_string())
        );
    }

    #[test]
    fn waiting_names_what_is_not_ready() {
        let conds = conditions(None, false, &["redis".into()]);
        assert_eq!(find(&conds, READY).3, "waiting for redis");
        assert!(find(&conds, PROGRESSING).1);
        assert!(!find(&conds, DEGRADED).1);
    }
}
