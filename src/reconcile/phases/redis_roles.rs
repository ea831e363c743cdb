//! Which pod of a Redis store with replicas the write Service selects
//! (pure; observe asks the pods, apply patches their labels).
//!
//! The master label (`appstack.dev/role: master`) goes only to a pod that a
//! majority of the store's Sentinels name the master AND whose Redis itself
//! answers `ROLE master`; a pod that is labelled the master and no longer is
//! (gone, a replica, or another pod is the majority's master) loses the
//! label first, and apply sets a new label only after every removal
//! succeeded. In doubt (no majority, or the pod named does not say it is
//! the master) no pod gets the label: the write URL is refused for a while
//! rather than sent to a second master.

use k8s_openapi::jiff::Timestamp;

use super::report::Notice;
use crate::api::{FailoverStatus, LINK_UP, ReplicaStatus, ReplicationStatus};
use crate::build::labels;

/// A replica's link to its master, as its ROLE says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    Up,
    Syncing,
    Down,
}

/// What a pod's Redis answered to ROLE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Role {
    Master,
    Replica(Link),
}

/// One pod of the store's own StatefulSet, as observe saw it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodSeen {
    pub name: String,
    /// Its `appstack.dev/role` label.
    pub label: Option<String>,
    /// Being deleted, or not running with an address.
    pub gone: bool,
    /// The pod its Sentinel names the master (only a pod of the store
    /// counts); None when it did not answer.
    pub sentinel_says: Option<String>,
    /// What its Redis answered to ROLE; None when it did not answer.
    pub role: Option<Role>,
}

/// The store's pods, and how many it should have (the majority is of those).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RolesSeen {
    pub pods: Vec<PodSeen>,
    pub instances: i32,
    /// Pods that carry the store's labels and the master label but are not
    /// the StatefulSet's (someone made them): the label is removed, as the
    /// write Service would select them too.
    pub foreign_masters: Vec<String>,
}

/// The label changes, in the order apply makes them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Relabel {
    /// Pods whose master label is removed, first.
    pub unlabel: Vec<String>,
    /// The pod labelled the master then, unless a removal failed.
    pub master: Option<String>,
    /// Pods labelled replicas (informational; the write Service ignores them).
    pub replicas: Vec<String>,
    /// The master once the changes are made: the pod the write Service
    /// then selects.
    pub after: Option<String>,
}

impl Relabel {
    pub fn is_empty(&self) -> bool {
        self.unlabel.is_empty() && self.master.is_none() && self.replicas.is_empty()
    }
}

fn is_master_label(p: &PodSeen) -> bool {
    p.label.as_deref() == Some(labels::REDIS_MASTER)
}

/// The pod a majority of the store's Sentinels name the master.
fn majority(seen: &RolesSeen) -> Option<&str> {
    let needed = seen.instances / 2 + 1;
    seen.pods
        .iter()
        .filter_map(|p| p.sentinel_says.as_deref())
        .find(|candidate| {
            let votes = seen
                .pods
                .iter()
                .filter(|p| p.sentinel_says.as_deref() == Some(*candidate))
                .count();
            i32::try_from(votes).unwrap_or(0) >= needed
        })
}

pub fn decide(seen: &RolesSeen) -> Relabel {
    let named = majority(seen);
    let agreed = named.and_then(|name| {
        seen.pods
            .iter()
            .find(|p| p.name == name && !p.gone && p.role == Some(Role::Master))
    });
    // A labelled master keeps its label when it is the agreed one, or, with
    // no majority anywhere (the Sentinels did not answer), while it still
    // says it is the master and is alone in being labelled so.
    let labelled: Vec<&PodSeen> = seen.pods.iter().filter(|p| is_master_label(p)).collect();
    let keeps = |p: &PodSeen| match (agreed, named) {
        (Some(a), _) => a.name == p.name,
        (None, Some(_)) => false,
        (None, None) => !p.gone && p.role == Some(Role::Master) && labelled.len() == 1,
    };
    let unlabel: Vec<String> = seen
        .foreign_masters
        .iter()
        .cloned()
        .chain(
            labelled
                .iter()
                .filter(|p| !keeps(p))
                .map(|p| p.name.clone()),
        )
        .collect();
    let kept = labelled.iter().find(|p| keeps(p)).map(|p| p.name.clone());
    let master = agreed
        .filter(|a| !is_master_label(a))
        .map(|a| a.name.clone());
    let after = master.clone().or(kept);
    let replicas = seen
        .pods
        .iter()
        .filter(|p| !p.gone && matches!(p.role, Some(Role::Replica(_))))
        .filter(|p| p.label.as_deref() != Some(labels::REPLICA))
        .filter(|p| !is_master_label(p) || unlabel.contains(&p.name))
        .filter(|p| Some(&p.name) != after.as_ref())
        .map(|p| p.name.clone())
        .collect();
    Relabel {
        unlabel,
        master,
        replicas,
        after,
    }
}

/// Whether the store needs looking at again shortly (every 2 s): no
/// master, the Sentinels and the labels disagree, a pod is missing, gone or
/// silent, or a replica does not follow the master yet. Otherwise it is
/// settled: the watches of its pods (their role labels) and StatefulSet
/// (pods that stop being ready) wake the stack when that changes, and
/// [`SETTLED`] is the safety net for a master Sentinel moved while every pod
/// stayed ready.
pub fn unsettled(seen: &RolesSeen, relabel: &Relabel) -> bool {
    relabel.after.is_none()
        || !relabel.is_empty()
        || i32::try_from(seen.pods.len()).unwrap_or(0) < seen.instances
        || seen.pods.iter().any(|p| {
            p.gone
                || p.sentinel_says.is_none()
                || !matches!(p.role, Some(Role::Master | Role::Replica(Link::Up)))
        })
}

/// How often a settled store is asked anyway (see [`unsettled`]).
pub const SETTLED: std::time::Duration = std::time::Duration::from_secs(10);

/// status.redis.replication after this round: `master` the pod the write
/// Service selects now (None when the relabel failed or none is).
pub fn status(
    seen: &RolesSeen,
    master: Option<&str>,
    previous: Option<&ReplicationStatus>,
    now: Timestamp,
) -> ReplicationStatus {
    let replicas = seen
        .pods
        .iter()
        .filter(|p| Some(p.name.as_str()) != master)
        .take(8)
        .map(|p| ReplicaStatus {
            pod: p.name.clone(),
            link: match (&p.role, p.gone) {
                (_, true) | (None, _) => "unknown",
                (Some(Role::Replica(Link::Up)), _) => LINK_UP,
                (Some(Role::Replica(Link::Syncing)), _) => "syncing",
                (Some(Role::Replica(Link::Down)), _) => "down",
                (Some(Role::Master), _) => "master",
            }
            .to_string(),
            lag_bytes: None,
        })
        .collect();
    let before = previous.and_then(|p| p.primary.clone());
    let mut out = ReplicationStatus {
        primary: master.map(String::from),
        replicas,
        last_failover: previous.and_then(|p| p.last_failover.clone()),
        ..ReplicationStatus::default()
    };
    let now_ms = now.as_millisecond();
    match master {
        None => {
            out.failover_started = previous.and_then(|p| p.failover_started).or(Some(now_ms));
            out.former_primary = before.or_else(|| previous.and_then(|p| p.former_primary.clone()));
        }
        Some(m) => {
            let former = before
                .clone()
                .or_else(|| previous.and_then(|p| p.former_primary.clone()));
            if let Some(from) = former.filter(|f| f != m) {
                let lost = previous.and_then(|p| p.failover_started);
                out.last_failover = Some(FailoverStatus {
                    from: Some(from),
                    to: m.to_string(),
                    time: now.to_string(),
                    at: now_ms,
                    without_primary_ms: Some(lost.map_or(0, |l| (now_ms - l).max(0))),
                });
            }
        }
    }
    out
}

/// The Event of a change of master, from the status before and after this
/// round: a Warning when the write Service lost its master, a Normal one
/// when a (new) master is labelled after a failover.
pub fn notice(before: Option<&ReplicationStatus>, after: &ReplicationStatus) -> Option<Notice> {
    let event = |warning, reason: &str, note: String| Notice {
        warning,
        reason: reason.into(),
        note,
        action: "Failover",
        about: None,
    };
    let was = before.and_then(|b| b.primary.as_deref());
    match (&after.primary, &after.last_failover) {
        (None, _) => was.map(|old| {
            event(
                true,
                "MasterLost",
                format!("redis: {old} is no longer the master a majority of Sentinels name and that says ROLE master; the write Service selects no pod until one is"),
            )
        }),
        (Some(_), Some(f)) if before.and_then(|b| b.last_failover.as_ref()) != Some(f) => {
            Some(event(
                false,
                "MasterChanged",
                format!(
                    "redis: {} is the master (was {}), {:.1} s without one",
                    f.to,
                    f.from.as_deref().unwrap_or("none"),
                    f.without_primary_ms.unwrap_or(0) as f64 / 1000.0
                ),
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, label: Option<&str>, says: Option<&str>, role: Option<Role>) -> PodSeen {
        PodSeen {
            name: name.into(),
            label: label.map(String::from),
            gone: false,
            sentinel_says: says.map(String::from),
            role,
        }
    }
    const M: Option<&str> = Some(labels::REDIS_MASTER);
    const R: Option<&str> = Some(labels::REPLICA);
    fn up() -> Option<Role> {
        Some(Role::Replica(Link::Up))
    }
    fn master() -> Option<Role> {
        Some(Role::Master)
    }
    fn seen(pods: Vec<PodSeen>) -> RolesSeen {
        RolesSeen {
            pods,
            instances: 3,
            foreign_masters: Vec::new(),
        }
    }
    fn relabel(
        unlabel: &[&str],
        master: Option<&str>,
        replicas: &[&str],
        after: Option<&str>,
    ) -> Relabel {
        Relabel {
            unlabel: unlabel.iter().map(|s| s.to_string()).collect(),
            master: master.map(String::from),
            replicas: replicas.iter().map(|s| s.to_string()).collect(),
            after: after.map(String::from),
        }
    }

    #[test]
    fn the_label_follows_a_majority_and_the_pods_own_role() {
        let cases = [
            (
                "fresh store: all agree on r-0, which says master",
                vec![
                    pod("r-0", None, Some("r-0"), master()),
                    pod("r-1", None, Some("r-0"), up()),
                    pod("r-2", None, Some("r-0"), up()),
                ],
                relabel(&[], Some("r-0"), &["r-1", "r-2"], Some("r-0")),
            ),
            (
                "steady: nothing to do",
                vec![
                    pod("r-0", M, Some("r-0"), master()),
                    pod("r-1", R, Some("r-0"), up()),
                    pod("r-2", R, Some("r-0"), up()),
                ],
                relabel(&[], None, &[], Some("r-0")),
            ),
            (
                "failover: the old master is gone, two Sentinels name r-1 which says master; unlabel first",
                vec![
                    PodSeen {
                        gone: true,
                        ..pod("r-0", M, None, None)
                    },
                    pod("r-1", R, Some("r-1"), master()),
                    pod("r-2", R, Some("r-1"), up()),
                ],
                relabel(&["r-0"], Some("r-1"), &[], Some("r-1")),
            ),
            (
                "only one Sentinel of three names r-1: no majority, no new label",
                vec![
                    PodSeen {
                        gone: true,
                        ..pod("r-0", M, None, None)
                    },
                    pod("r-1", R, Some("r-1"), master()),
                    pod("r-2", R, Some("r-0"), up()),
                ],
                relabel(&["r-0"], None, &[], None),
            ),
            (
                "majority names r-1 but r-1 still says replica: in doubt, no label",
                vec![
                    PodSeen {
                        gone: true,
                        ..pod("r-0", M, None, None)
                    },
                    pod("r-1", R, Some("r-1"), up()),
                    pod("r-2", R, Some("r-1"), up()),
                ],
                relabel(&["r-0"], None, &[], None),
            ),
            (
                "the old master came back as master beside the promoted one: it loses the label",
                vec![
                    pod("r-0", M, Some("r-1"), master()),
                    pod("r-1", R, Some("r-1"), master()),
                    pod("r-2", R, Some("r-1"), up()),
                ],
                relabel(&["r-0"], Some("r-1"), &[], Some("r-1")),
            ),
            (
                "the labelled master says replica and no Sentinel answers: unlabelled",
                vec![
                    pod("r-0", M, None, up()),
                    pod("r-1", R, None, up()),
                    pod("r-2", R, None, up()),
                ],
                relabel(&["r-0"], None, &["r-0"], None),
            ),
            (
                "no Sentinel answers the operator, the labelled master still says master: kept",
                vec![
                    pod("r-0", M, None, master()),
                    pod("r-1", R, None, up()),
                    pod("r-2", R, None, None),
                ],
                relabel(&[], None, &[], Some("r-0")),
            ),
            (
                "two labelled masters and no majority: neither kept",
                vec![
                    pod("r-0", M, None, master()),
                    pod("r-1", M, None, master()),
                    pod("r-2", R, None, None),
                ],
                relabel(&["r-0", "r-1"], None, &[], None),
            ),
            (
                "the majority's master is being deleted: no label",
                vec![
                    PodSeen {
                        gone: true,
                        ..pod("r-0", None, Some("r-0"), master())
                    },
                    pod("r-1", R, Some("r-0"), up()),
                    pod("r-2", R, Some("r-0"), up()),
                ],
                relabel(&[], None, &[], None),
            ),
        ];
        for (why, pods, want) in cases {
            assert_eq!(decide(&seen(pods)), want, "{why}");
        }
    }

    #[test]
    fn a_pod_not_of_the_statefulset_loses_a_master_label() {
        let mut world = seen(vec![
            pod("r-0", M, Some("r-0"), master()),
            pod("r-1", R, Some("r-0"), up()),
            pod("r-2", R, Some("r-0"), up()),
        ]);
        world.foreign_masters = vec!["forged".into()];
        let out = decide(&world);
        assert_eq!(out, relabel(&["forged"], None, &[], Some("r-0")));
        assert!(unsettled(&world, &out));
    }

    #[test]
    fn only_a_store_in_order_is_settled() {
        let steady = seen(vec![
            pod("r-0", M, Some("r-0"), master()),
            pod("r-1", R, Some("r-0"), up()),
            pod("r-2", R, Some("r-0"), up()),
        ]);
        assert!(!unsettled(&steady, &decide(&steady)));
        type Change = fn(&mut RolesSeen);
        let variants: [(&str, Change); 5] = [
            ("a replica syncing", |w| {
                w.pods[1].role = Some(Role::Replica(Link::Syncing));
            }),
            ("a Sentinel silent", |w| w.pods[2].sentinel_says = None),
            ("a Redis silent", |w| w.pods[2].role = None),
            ("a pod missing", |w| {
                w.pods.pop();
            }),
            ("a forged master label", |w| {
                w.pods[1].label = M.map(String::from);
            }),
        ];
        for (why, change) in variants {
            let mut world = steady.clone();
            change(&mut world);
            assert!(unsettled(&world, &decide(&world)), "{why}");
        }
    }

    #[test]
    fn a_majority_is_of_the_pods_the_store_should_have() {
        // Two of five Sentinels are not a majority, even when the others are gone.
        let pods = vec![
            pod("r-1", None, Some("r-1"), master()),
            pod("r-2", None, Some("r-1"), up()),
        ];
        let out = decide(&RolesSeen {
            pods,
            instances: 5,
            foreign_masters: Vec::new(),
        });
        assert_eq!(out.master, None);
    }

    #[test]
    fn status_records_the_failover_and_how_long_no_pod_was_the_master() {
        let pods = seen(vec![
            pod("r-0", None, None, None),
            pod("r-1", M, Some("r-1"), master()),
            pod("r-2", R, Some("r-1"), Some(Role::Replica(Link::Syncing))),
        ]);
        let at = |ms| Timestamp::from_millisecond(ms).unwrap();
        let first = status(&pods, Some("r-0"), None, at(0));
        assert_eq!(first.last_failover, None);
        let lost = status(&pods, None, Some(&first), at(1_000));
        assert_eq!(lost.failover_started, Some(1_000));
        assert_eq!(lost.former_primary.as_deref(), Some("r-0"));
        let still = status(&pods, None, Some(&lost), at(3_000));
        assert_eq!(still.failover_started, Some(1_000));
        let back = status(&pods, Some("r-1"), Some(&still), at(5_200));
        let failover = back.last_failover.clone().unwrap();
        assert_eq!(
            (failover.from.as_deref(), failover.to.as_str()),
            (Some("r-0"), "r-1")
        );
        assert_eq!(failover.without_primary_ms, Some(4200));
        assert_eq!(back.failover_started, None);
        assert_eq!(
            back.replicas,
            vec![
                ReplicaStatus {
                    pod: "r-0".into(),
                    link: "unknown".into(),
                    lag_bytes: None,
                },
                ReplicaStatus {
                    pod: "r-2".into(),
                    link: "syncing".into(),
                    lag_bytes: None,
                },
            ]
        );
        // Steady afterwards: the failover stays recorded, nothing new.
        assert_eq!(status(&pods, Some("r-1"), Some(&back), at(9_000)), back);

        // One Warning when the master is lost, one Normal when one is back.
        let reasons = |before: Option<&ReplicationStatus>, after: &ReplicationStatus| {
            notice(before, after).map(|n| (n.warning, n.reason, n.note))
        };
        assert_eq!(reasons(None, &first), None);
        assert!(matches!(reasons(Some(&first), &lost), Some((true, r, _)) if r == "MasterLost"));
        assert_eq!(reasons(Some(&lost), &still), None);
        assert_eq!(
            reasons(Some(&still), &back),
            Some((
                false,
                "MasterChanged".into(),
                "redis: r-1 is the master (was r-0), 4.2 s without one".into()
            ))
        );
        assert_eq!(reasons(Some(&back), &back), None);
    }
}
