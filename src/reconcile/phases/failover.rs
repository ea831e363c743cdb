//! Pure: which instance of a replicated store is primary, and what the
//! operator does about it (label, fence, promote), from what observe saw
//! of each instance and what the last status recorded.
//!
//! A failover takes two rounds, as CloudNativePG does: first the old
//! primary loses its label (the write Service drops it) and its pod is
//! deleted with no grace (fenced: nothing it still runs accepts a write);
//! then, once [`FENCE_WAIT`] has passed, the most advanced replica is
//! promoted and labelled. A replica that was not streaming, or lagged more
//! than [`MAX_LAG`] behind, when the primary was last seen is never
//! promoted: the store then waits for the old primary, and status says so.

use crate::api::{FailoverStatus, LINK_UP, ReplicaStatus, ReplicationStatus};

/// Bytes of WAL a replica may miss and still be promoted.
pub const MAX_LAG: i64 = 16 * 1024 * 1024;
/// Milliseconds between fencing the old primary and promoting another
/// (besides its pod being gone, or deleted with no grace).
pub const FENCE_WAIT: i64 = 2_000;
/// Milliseconds a primary that is Ready (its own probe passes) but does
/// not answer the operator is waited for before it is fenced.
pub const LEASE: i64 = 10_000;
/// Milliseconds a fenced pod may take to stop before it is deleted with
/// no grace (its kubelet did not confirm).
pub const FORCE_AFTER: i64 = 10_000;
/// Milliseconds a replica may stay on an older timeline than the primary,
/// not streaming, before its pod is restarted (it is rewound as it starts).
pub const DIVERGED_AFTER: i64 = 20_000;

/// The role label the operator sets on an instance's pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Primary,
    Replica,
}

/// What the server of one instance answered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Server {
    /// Not in recovery.
    pub primary: bool,
    pub timeline: i64,
    /// Primary: its current WAL position; replica: the furthest it
    /// received or replayed (bytes from 0/0).
    pub lsn: i64,
    /// A replica's WAL receiver streams.
    pub streaming: bool,
    /// The replicas' login role exists (read on the primary).
    pub replication_role: bool,
    /// The database system identifier (pg_control_system()).
    pub system: String,
    /// Its synchronous_standby_names.
    pub synchronous: String,
}

/// One pod of the store's StatefulSet, as observe saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    pub pod: String,
    pub role: Option<Role>,
    pub terminating: bool,
    pub ready: bool,
    /// None: the server did not answer.
    pub server: Option<Server>,
}

/// What the operator does to an instance, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Label(String, Role),
    Unlabel(String),
    /// Delete the pod with a grace of one second (its kubelet kills it
    /// and confirms by removing it).
    Fence(String),
    /// Delete the pod with no grace (its kubelet did not confirm).
    Kill(String),
    /// pg_promote(); the labels that follow are applied only if it succeeds.
    Promote(String),
    /// Delete the pod (its normal grace): a replica that cannot follow.
    Restart(String),
    /// Create the replicas' login role on the primary.
    ReplicationRole(String),
    /// Set synchronous_standby_names on the primary (and reload).
    Synchronous(String, String),
}

/// spec.postgres.synchronous: replicas that confirm each commit, and
/// whether commits wait for them even while fewer stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Synchronous {
    pub number: i32,
    pub required: bool,
}

/// The primary's synchronous_standby_names for `wish` while `streaming`
/// replicas stream: `required` waits for `number` of any standby whatever
/// streams; `preferred` for as many as stream, up to `number`.
pub fn synchronous_names(wish: Option<Synchronous>, streaming: usize) -> String {
    let n = match wish {
        None => 0,
        Some(w) if w.required => w.number.max(0),
        Some(w) => w
            .number
            .min(i32::try_from(streaming).unwrap_or(i32::MAX))
            .max(0),
    };
    if n == 0 {
        String::new()
    } else {
        format!("ANY {n} (*)")
    }
}

/// The actions that bring the primary's setting in line with `wish`, once
/// `decision` found a primary that answers. `required` is first set once
/// `number` replicas stream (before, the store's first commits, its roles,
/// would wait for replicas that copy the primary only once it is Ready);
/// a replica about to be promoted gets it before its promotion, so no
/// commit of the new primary goes unconfirmed.
pub fn synchronous_actions(
    instances: &[Instance],
    decision: &mut Decision,
    wish: Option<Synchronous>,
) {
    let promoted = decision
        .actions
        .iter()
        .position(|a| matches!(a, Action::Promote(_)));
    if let (Some(at), Some(w)) = (promoted, wish)
        && w.required
        && let Action::Promote(pod) = &decision.actions[at]
    {
        let set = Action::Synchronous(pod.clone(), synchronous_names(wish, 0));
        decision.actions.insert(at, set);
        return;
    }
    let Some(primary) = decision.status.primary.as_deref() else {
        return;
    };
    let Some(server) = instances
        .iter()
        .find(|i| i.pod == primary && !i.terminating)
        .and_then(|i| i.server.as_ref())
        .filter(|s| s.primary)
    else {
        return;
    };
    let streaming = decision
        .status
        .replicas
        .iter()
        .filter(|r| r.is_up())
        .count();
    let want = synchronous_names(wish, streaming);
    let first = server.synchronous.is_empty()
        && decision.status.last_failover.is_none()
        && wish.is_some_and(|w| i32::try_from(streaming).unwrap_or(i32::MAX) < w.number);
    if server.synchronous != want && !first {
        decision
            .actions
            .push(Action::Synchronous(primary.to_string(), want));
        decision.busy = true;
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Decision {
    pub actions: Vec<Action>,
    pub status: ReplicationStatus,
    /// Something is under way: look again within seconds.
    pub busy: bool,
}

/// `now` in milliseconds since the epoch; `known` is the last status.
pub fn decide(instances: &[Instance], known: &ReplicationStatus, now: i64) -> Decision {
    let mut status = known.clone();
    status.blocked = None;
    let mut actions = Vec::new();
    // Another database than the store's (a volume lost and initialised
    // again): as good as silent, and never labelled (see `steady`).
    let foreign: Vec<&Instance> = instances
        .iter()
        .filter(|i| {
            known
                .system_identifier
                .as_ref()
                .is_some_and(|id| i.server.as_ref().is_some_and(|s| &s.system != id))
        })
        .collect();
    let own: Vec<Instance> = instances
        .iter()
        .map(|i| Instance {
            server: i
                .server
                .clone()
                .filter(|_| !foreign.iter().any(|f| f.pod == i.pod)),
            ..i.clone()
        })
        .collect();
    let instances = own.as_slice();
    let primaries: Vec<&Instance> = instances
        .iter()
        .filter(|i| !i.terminating && i.server.as_ref().is_some_and(|s| s.primary))
        .collect();
    let keep = match primaries.as_slice() {
        [] => None,
        [one] => Some(*one),
        many => {
            // Never two: the one status names (else the furthest) stays.
            let keep = many
                .iter()
                .find(|i| known.primary.as_deref() == Some(i.pod.as_str()))
                .or_else(|| many.iter().max_by_key(|i| position(i)))
                .copied();
            for other in many
                .iter()
                .filter(|i| Some(i.pod.as_str()) != keep.map(|k| k.pod.as_str()))
            {
                actions.push(Action::Unlabel(other.pod.clone()));
                actions.push(Action::Fence(other.pod.clone()));
            }
            keep
        }
    };
    if let Some(primary) = keep {
        let mut decision = steady(instances, primary, status, actions, now);
        // A foreign instance copies the primary's data as it restarts.
        for i in foreign.iter().filter(|i| !i.terminating) {
            if i.role.is_some() && i.role != Some(Role::Primary) {
                decision.actions.push(Action::Unlabel(i.pod.clone()));
            }
            decision.actions.push(Action::Restart(i.pod.clone()));
            decision.busy = true;
        }
        return decision;
    }
    // No primary answers. A labelled one that is gone or failing is
    // fenced first; one that is ready but silent is waited for, at most
    // LEASE (cut off from the operator, it may still serve its clients).
    let mut fenced = false;
    for i in instances.iter().filter(|i| i.role == Some(Role::Primary)) {
        let replica = i.server.as_ref().is_some_and(|s| !s.primary);
        if replica {
            // Labelled primary but a standby (it started as one): it is a
            // candidate like any other.
            continue;
        }
        // The store's first primary still starting.
        if known.primary.is_none() && !i.terminating {
            status.blocked = Some(format!("waiting for primary {} to answer", i.pod));
            return Decision {
                actions,
                status,
                busy: true,
            };
        }
        if i.ready && !i.terminating {
            let since = *status.failover_started.get_or_insert(now);
            if now - since < LEASE {
                status.blocked = Some(format!(
                    "primary {} does not answer (fenced after {} s)",
                    i.pod,
                    LEASE / 1000
                ));
                return Decision {
                    actions,
                    status,
                    busy: true,
                };
            }
        }
        actions.push(Action::Unlabel(i.pod.clone()));
        actions.push(Action::Fence(i.pod.clone()));
        status.fenced_at = Some(now);
        fenced = true;
    }
    let answering: Vec<&Instance> = instances
        .iter()
        .filter(|i| !i.terminating && i.server.is_some())
        .collect();
    if answering.is_empty() && known.primary.is_none() {
        // The store's first start: the first pod initialises the data by
        // itself (pg-instance.sh) and is labelled once it answers.
        status.failover_started = None;
        return Decision {
            actions,
            status,
            busy: true,
        };
    }
    let started = *status.failover_started.get_or_insert(now);
    if fenced || now - status.fenced_at.unwrap_or(started) < FENCE_WAIT {
        return Decision {
            actions,
            status,
            busy: true,
        };
    }
    // The fenced pod's kubelet confirms its containers stopped by removing
    // it: only then is another promoted. A kubelet that does not (its node
    // is cut off) has it deleted with no grace after FORCE_AFTER.
    if let Some(old) = instances
        .iter()
        .find(|i| i.terminating && known.primary.as_deref() == Some(i.pod.as_str()))
    {
        let since = status.fenced_at.unwrap_or(started);
        if now - since >= FORCE_AFTER {
            actions.push(Action::Kill(old.pod.clone()));
            status.fenced_at = Some(now);
        }
        status.blocked = Some(format!("waiting for {} to stop", old.pod));
        return Decision {
            actions,
            status,
            busy: true,
        };
    }
    match candidate(&answering, known) {
        Ok(chosen) => {
            actions.push(Action::Promote(chosen.pod.clone()));
            // The old label goes before the new one is set.
            for i in instances
                .iter()
                .filter(|i| i.role == Some(Role::Primary) && i.pod != chosen.pod)
            {
                actions.push(Action::Unlabel(i.pod.clone()));
            }
            actions.push(Action::Label(chosen.pod.clone(), Role::Primary));
        }
        Err(why) => status.blocked = Some(why),
    }
    Decision {
        actions,
        status,
        busy: true,
    }
}

/// The most advanced replica fit to be promoted, or why there is none.
fn candidate<'a>(
    answering: &[&'a Instance],
    known: &ReplicationStatus,
) -> Result<&'a Instance, String> {
    let mut unfit = Vec::new();
    let fit: Vec<&Instance> = answering
        .iter()
        .copied()
        .filter(|i| {
            let lsn = i.server.as_ref().map_or(0, |s| s.lsn);
            // Seen when the primary was last up (a store's first primary
            // has no record: every replica is fit).
            let record = known.replicas.iter().find(|r| r.pod == i.pod);
            let why = if known.primary.is_none() {
                None
            } else if record.is_some_and(|r| !r.is_up()) {
                Some("was not streaming")
            } else if record
                .and_then(|r| r.lag_bytes)
                .is_some_and(|lag| lag > MAX_LAG)
                || known.primary_lsn.is_some_and(|p| p - lsn > MAX_LAG)
            {
                Some("lagged too far behind")
            } else {
                None
            };
            if let Some(why) = why {
                unfit.push(format!("{} {why}", i.pod));
            }
            why.is_none()
        })
        .collect();
    // The old primary, back as a standby, only when nothing else fits:
    // its WAL may have gone further than the replicas received.
    let old = known.primary.as_deref();
    let others = fit.iter().any(|i| Some(i.pod.as_str()) != old);
    fit.into_iter()
        .filter(|i| !others || Some(i.pod.as_str()) != old)
        .max_by(|a, b| {
            position(a)
                .cmp(&position(b))
                .then(ordinal(&b.pod).cmp(&ordinal(&a.pod)))
        })
        .ok_or_else(|| {
            if unfit.is_empty() {
                "no replica answers".to_string()
            } else {
                format!("no replica fit to be promoted: {}", unfit.join(", "))
            }
        })
}

/// A primary answers: labels follow it, and status records each replica.
fn steady(
    instances: &[Instance],
    primary: &Instance,
    mut status: ReplicationStatus,
    mut actions: Vec<Action>,
    now: i64,
) -> Decision {
    let server = primary.server.clone().unwrap_or(Server {
        primary: true,
        timeline: 0,
        lsn: 0,
        streaming: false,
        replication_role: true,
        system: String::new(),
        synchronous: String::new(),
    });
    if !server.replication_role {
        actions.push(Action::ReplicationRole(primary.pod.clone()));
    }
    for i in instances
        .iter()
        .filter(|i| i.pod != primary.pod && i.role == Some(Role::Primary))
    {
        actions.push(Action::Unlabel(i.pod.clone()));
    }
    if primary.role != Some(Role::Primary) {
        actions.push(Action::Label(primary.pod.clone(), Role::Primary));
    }
    let mut replicas = Vec::new();
    for i in instances.iter().filter(|i| i.pod != primary.pod) {
        let answer = i.server.as_ref().filter(|s| !s.primary);
        if answer.is_some() && i.role != Some(Role::Replica) && !i.terminating {
            actions.push(Action::Label(i.pod.clone(), Role::Replica));
        }
        let diverged = answer.is_some_and(|s| !s.streaming && s.timeline < server.timeline);
        let settled = status
            .last_failover
            .as_ref()
            .is_none_or(|f| now - f.at > DIVERGED_AFTER);
        if diverged && settled && i.ready && !i.terminating {
            actions.push(Action::Restart(i.pod.clone()));
        }
        replicas.push(ReplicaStatus {
            pod: i.pod.clone(),
            link: match answer {
                Some(s) if s.streaming => LINK_UP,
                Some(_) => "down",
                None => "unknown",
            }
            .to_string(),
            lag_bytes: answer.map(|s| coarse((server.lsn - s.lsn).max(0))),
        });
    }
    status.fenced_at = None;
    if let Some(started) = status.failover_started.take()
        && status.primary.as_deref() != Some(primary.pod.as_str())
    {
        status.last_failover = Some(FailoverStatus {
            from: status.primary.clone(),
            to: primary.pod.clone(),
            time: k8s_openapi::jiff::Timestamp::from_millisecond(now)
                .map(|t| t.to_string())
                .unwrap_or_default(),
            at: now,
            without_primary_ms: Some(now - started),
        });
    }
    let busy = !actions.is_empty()
        || replicas.iter().any(|r| !r.is_up())
        || replicas.len() + 1 < instances.len();
    status.primary = Some(primary.pod.clone());
    if status.system_identifier.is_none() && !server.system.is_empty() {
        status.system_identifier = Some(server.system.clone());
    }
    status.timeline = Some(server.timeline);
    status.primary_lsn = Some(coarse(server.lsn));
    status.replicas = replicas;
    Decision {
        actions,
        status,
        busy,
    }
}

/// Rounded down to the MiB: status changes (one write) only when the WAL
/// moved that far, not at every commit.
fn coarse(bytes: i64) -> i64 {
    bytes - bytes.rem_euclid(1 << 20)
}

fn position(i: &Instance) -> (i64, i64) {
    i.server.as_ref().map_or((0, 0), |s| (s.timeline, s.lsn))
}

/// A StatefulSet pod's ordinal (the number after its last '-').
fn ordinal(pod: &str) -> u32 {
    pod.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(
        pod: &str,
        role: Option<Role>,
        primary: bool,
        tl: i64,
        lsn: i64,
        streaming: bool,
    ) -> Instance {
        Instance {
            pod: pod.into(),
            role,
            terminating: false,
            ready: true,
            server: Some(Server {
                primary,
                timeline: tl,
                lsn,
                streaming,
                replication_role: true,
                system: "7".into(),
                synchronous: String::new(),
            }),
        }
    }

    fn gone(pod: &str, role: Option<Role>, terminating: bool) -> Instance {
        Instance {
            pod: pod.into(),
            role,
            terminating,
            ready: false,
            server: None,
        }
    }

    fn known(primary: &str, lsn: i64, replicas: &[(&str, bool, i64)]) -> ReplicationStatus {
        ReplicationStatus {
            primary: Some(primary.into()),
            timeline: Some(1),
            primary_lsn: Some(lsn),
            replicas: replicas
                .iter()
                .map(|(pod, streaming, lag)| ReplicaStatus {
                    pod: pod.to_string(),
                    link: if *streaming { LINK_UP } else { "down" }.to_string(),
                    lag_bytes: Some(*lag),
                })
                .collect(),
            ..ReplicationStatus::default()
        }
    }

    const P: Option<Role> = Some(Role::Primary);
    const R: Option<Role> = Some(Role::Replica);

    /// Name, instances, last status, now, the actions expected.
    type Case = (
        &'static str,
        Vec<Instance>,
        ReplicationStatus,
        i64,
        Vec<Action>,
    );

    #[test]
    fn the_tables() {
        let healthy = known("s-0", 1000, &[("s-1", true, 0), ("s-2", true, 0)]);
        let cases: Vec<Case> = vec![
            (
                "steady: nothing to do",
                vec![
                    up("s-0", P, true, 1, 1000, false),
                    up("s-1", R, false, 1, 1000, true),
                    up("s-2", R, false, 1, 990, true),
                ],
                healthy.clone(),
                10_000,
                vec![],
            ),
            (
                "first start: nothing is labelled before the first pod answers",
                vec![gone("s-0", None, false), gone("s-1", None, false)],
                ReplicationStatus::default(),
                10_000,
                vec![],
            ),
            (
                "first start: the first pod answers as primary and is labelled",
                vec![
                    up("s-0", None, true, 1, 100, false),
                    gone("s-1", None, false),
                ],
                ReplicationStatus::default(),
                10_000,
                vec![Action::Label("s-0".into(), Role::Primary)],
            ),
            (
                "first start: the labelled pod is waited for while it initialises",
                vec![gone("s-0", P, false), gone("s-1", None, false)],
                ReplicationStatus::default(),
                10_000,
                vec![],
            ),
            (
                "a new replica is labelled",
                vec![
                    up("s-0", P, true, 1, 1000, false),
                    up("s-1", None, false, 1, 1000, true),
                ],
                healthy.clone(),
                10_000,
                vec![Action::Label("s-1".into(), Role::Replica)],
            ),
            (
                "the primary deleted: unlabel and fence, promote nothing yet",
                vec![
                    gone("s-0", P, true),
                    up("s-1", R, false, 1, 1000, false),
                    up("s-2", R, false, 1, 900, false),
                ],
                healthy.clone(),
                10_000,
                vec![Action::Unlabel("s-0".into()), Action::Fence("s-0".into())],
            ),
            (
                "fenced long enough: the most advanced replica is promoted",
                vec![
                    gone("s-0", None, false),
                    up("s-1", R, false, 1, 900, false),
                    up("s-2", R, false, 1, 1000, false),
                ],
                ReplicationStatus {
                    failover_started: Some(10_000),
                    ..healthy.clone()
                },
                12_500,
                vec![
                    Action::Promote("s-2".into()),
                    Action::Label("s-2".into(), Role::Primary),
                ],
            ),
            (
                "fenced too recently: wait",
                vec![
                    gone("s-0", None, false),
                    up("s-1", R, false, 1, 1000, false),
                ],
                ReplicationStatus {
                    failover_started: Some(10_000),
                    ..healthy.clone()
                },
                11_000,
                vec![],
            ),
            (
                "a replica that was not streaming is never promoted",
                vec![
                    gone("s-0", None, false),
                    up("s-1", R, false, 1, 2000, false),
                    up("s-2", R, false, 1, 1000, false),
                ],
                ReplicationStatus {
                    failover_started: Some(0),
                    ..known("s-0", 1000, &[("s-1", false, 0), ("s-2", true, 0)])
                },
                10_000,
                vec![
                    Action::Promote("s-2".into()),
                    Action::Label("s-2".into(), Role::Primary),
                ],
            ),
            (
                "the old primary back as a standby waits behind the replicas",
                vec![
                    up("s-0", None, false, 1, 2000, false),
                    up("s-1", R, false, 1, 1000, false),
                ],
                ReplicationStatus {
                    failover_started: Some(0),
                    ..known("s-0", 1000, &[("s-1", true, 0)])
                },
                10_000,
                vec![
                    Action::Promote("s-1".into()),
                    Action::Label("s-1".into(), Role::Primary),
                ],
            ),
            (
                "a lagging replica is never promoted, even alone",
                vec![gone("s-0", None, false), up("s-1", R, false, 1, 0, false)],
                ReplicationStatus {
                    failover_started: Some(0),
                    ..known("s-0", MAX_LAG + 1, &[("s-1", true, MAX_LAG + 1)])
                },
                10_000,
                vec![],
            ),
            (
                "a primary that is ready but did not answer is waited for",
                vec![
                    Instance {
                        server: None,
                        ..up("s-0", P, true, 1, 0, false)
                    },
                    up("s-1", R, false, 1, 1000, true),
                ],
                healthy.clone(),
                10_000,
                vec![],
            ),
            (
                "two primaries: the one status names stays, the other is fenced",
                vec![
                    up("s-0", None, true, 1, 5000, false),
                    up("s-1", P, true, 2, 1000, false),
                ],
                known("s-1", 1000, &[]),
                10_000,
                vec![Action::Unlabel("s-0".into()), Action::Fence("s-0".into())],
            ),
            (
                "the new primary answers: the old label is gone, the returning one is a replica",
                vec![
                    up("s-0", None, false, 2, 1000, true),
                    up("s-1", P, true, 2, 1000, false),
                    up("s-2", R, false, 2, 1000, true),
                ],
                known("s-1", 1000, &[]),
                10_000,
                vec![Action::Label("s-0".into(), Role::Replica)],
            ),
            (
                "a replica left on the old timeline is restarted (rewound)",
                vec![
                    up("s-0", R, false, 1, 5000, false),
                    up("s-1", P, true, 2, 1000, false),
                ],
                known("s-1", 1000, &[]),
                100_000,
                vec![Action::Restart("s-0".into())],
            ),
        ];
        for (name, instances, known, now, want) in cases {
            let got = decide(&instances, &known, now);
            assert_eq!(got.actions, want, "{name}");
        }
    }

    #[test]
    fn another_database_is_never_followed() {
        let known = ReplicationStatus {
            system_identifier: Some("7".into()),
            ..known("s-1", 1000, &[("s-0", true, 0)])
        };
        let mut fresh = up("s-0", R, true, 1, 9000, false);
        if let Some(s) = fresh.server.as_mut() {
            s.system = "8".into();
        }
        // The store's primary answers: the other database is restarted
        // (it copies the primary's data), never labelled.
        let d = decide(
            &[fresh.clone(), up("s-1", P, true, 2, 1000, false)],
            &known,
            100_000,
        );
        assert_eq!(
            d.actions,
            vec![Action::Unlabel("s-0".into()), Action::Restart("s-0".into())]
        );
        // No primary of the store answers: it is not promoted nor labelled.
        let d = decide(
            &[fresh, gone("s-1", None, false)],
            &ReplicationStatus {
                failover_started: Some(0),
                ..known
            },
            100_000,
        );
        assert!(
            !d.actions
                .iter()
                .any(|a| matches!(a, Action::Promote(_) | Action::Label(..))),
            "{:?}",
            d.actions
        );
    }

    #[test]
    fn a_silent_primary_is_fenced_after_the_lease_and_must_stop_first() {
        let healthy = known("s-0", 1000, &[("s-1", true, 0)]);
        let silent = Instance {
            server: None,
            ..up("s-0", P, true, 1, 0, false)
        };
        let replica = up("s-1", R, false, 1, 1000, false);
        // Ready but silent: waited for, the lease starts.
        let d = decide(&[silent.clone(), replica.clone()], &healthy, 10_000);
        assert_eq!(d.actions, vec![]);
        assert_eq!(d.status.failover_started, Some(10_000));
        // Past the lease: fenced.
        let d = decide(&[silent, replica.clone()], &d.status, 10_000 + LEASE);
        assert_eq!(
            d.actions,
            vec![Action::Unlabel("s-0".into()), Action::Fence("s-0".into())]
        );
        assert_eq!(d.status.fenced_at, Some(10_000 + LEASE));
        // Still terminating: nothing is promoted.
        let stopping = gone("s-0", None, true);
        let t = 10_000 + LEASE + FENCE_WAIT;
        let d2 = decide(&[stopping.clone(), replica.clone()], &d.status, t);
        assert_eq!(d2.actions, vec![]);
        // Its kubelet never confirms: deleted with no grace, then promoted.
        let d3 = decide(
            &[stopping, replica.clone()],
            &d2.status,
            10_000 + LEASE + FORCE_AFTER,
        );
        assert_eq!(d3.actions, vec![Action::Kill("s-0".into())]);
        let d4 = decide(
            &[replica],
            &d3.status,
            10_000 + LEASE + FORCE_AFTER + FENCE_WAIT,
        );
        assert_eq!(
            d4.actions,
            vec![
                Action::Promote("s-1".into()),
                Action::Label("s-1".into(), Role::Primary)
            ]
        );
    }

    #[test]
    fn synchronous_replicas() {
        let required = Some(Synchronous {
            number: 1,
            required: true,
        });
        let preferred = Some(Synchronous {
            number: 2,
            required: false,
        });
        assert_eq!(synchronous_names(None, 2), "");
        assert_eq!(synchronous_names(required, 0), "ANY 1 (*)");
        assert_eq!(synchronous_names(preferred, 2), "ANY 2 (*)");
        assert_eq!(synchronous_names(preferred, 1), "ANY 1 (*)");
        assert_eq!(synchronous_names(preferred, 0), "");
        let instances = [
            up("s-0", P, true, 1, 1000, false),
            up("s-1", R, false, 1, 1000, true),
        ];
        let known = known("s-0", 1000, &[("s-1", true, 0)]);
        let with = |instances: &[Instance], known: &ReplicationStatus, wish| {
            let mut d = decide(instances, known, 100_000);
            synchronous_actions(instances, &mut d, wish);
            d.actions
        };
        assert_eq!(
            with(&instances, &known, required),
            vec![Action::Synchronous("s-0".into(), "ANY 1 (*)".into())]
        );
        assert_eq!(with(&instances, &known, None), vec![]);
        // Required: not before a replica streams (the first start).
        let copying = [up("s-0", P, true, 1, 1000, false), gone("s-1", None, false)];
        assert_eq!(with(&copying, &known, required), vec![]);
        // A replica promoted gets the setting first.
        let failing = ReplicationStatus {
            failover_started: Some(0),
            ..known.clone()
        };
        assert_eq!(
            with(
                &[gone("s-0", None, false), instances[1].clone()],
                &failing,
                required
            ),
            vec![
                Action::Synchronous("s-1".into(), "ANY 1 (*)".into()),
                Action::Promote("s-1".into()),
                Action::Label("s-1".into(), Role::Primary)
            ]
        );
    }

    #[test]
    fn the_first_primary_records_the_system() {
        let d = decide(
            &[up("s-0", None, true, 1, 100, false)],
            &ReplicationStatus::default(),
            1,
        );
        assert_eq!(d.status.system_identifier.as_deref(), Some("7"));
    }

    #[test]
    fn a_failover_is_timed_and_recorded() {
        let known = ReplicationStatus {
            failover_started: Some(10_000),
            ..known("s-0", 1000, &[])
        };
        let d = decide(
            &[up("s-1", P, true, 2, 1000, false), gone("s-0", None, false)],
            &known,
            14_000,
        );
        assert_eq!(d.status.primary.as_deref(), Some("s-1"));
        assert_eq!(
            d.status
                .last_failover
                .as_ref()
                .and_then(|f| f.without_primary_ms),
            Some(4_000)
        );
        assert_eq!(d.status.failover_started, None);
        assert_eq!(d.status.timeline, Some(2));
    }

    #[test]
    fn blocked_says_why() {
        let d = decide(
            &[gone("s-0", None, false), up("s-1", R, false, 1, 0, false)],
            &ReplicationStatus {
                failover_started: Some(0),
                ..known("s-0", 1000, &[("s-1", false, 0)])
            },
            10_000,
        );
        assert_eq!(
            d.status.blocked.as_deref(),
            Some("no replica fit to be promoted: s-1 was not streaming")
        );
    }
}
