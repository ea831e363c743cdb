//! `report`: status, Events (each once), backups, restores, the probe.

use serde_json::json;

use super::super::Next;
use super::super::report::{Done, failed};
use super::*;
use crate::reconcile::children::Pruned;
use crate::status::fixtures::backup_pod;

const SUMMARY: &str = r#"{"label":"20261202T030000Z","completed":"2026-12-02T03:00:09Z","sizeBytes":4,"count":1,"totalBytes":4,"firstRecoverable":"2026-12-02T03:00:09Z","lastRecoverable":"2026-12-02T03:00:09Z"}"#;

#[test]
fn a_stack_whose_children_all_serve_is_ready_and_resyncs() {
    let r = run(
        &stack(web_and(json!(null))),
        &web_serving(),
        &applied(vec![]),
    );
    assert_eq!(condition(&r, "Ready").0, "True");
    assert_eq!(condition(&r, "Progressing").1, "Complete");
    assert_eq!(r.next, Next::Resync);
    assert!(r.notices.is_empty() && r.waiting_for.is_empty());
    assert_eq!(r.status.components_ready.as_deref(), Some("1/1"));
}

#[test]
fn a_stack_not_yet_rolled_out_says_what_it_waits_for() {
    let mut w = world();
    serving(&mut w, &[(StoreKind::Redis, "shop-redis", false)]);
    w.seen.deployments.clear();
    let r = run(&stack(web_and(json!({"redis": {}}))), &w, &applied(vec![]));
    assert_eq!(
        condition(&r, "Ready"),
        (
            "False".into(),
            "NotReady".into(),
            "waiting for component web (0/0 ready), redis".into()
        )
    );
    assert_eq!(condition(&r, "Progressing").1, "RollingOut");
    // An unready store is looked at again soon (a crash loop moves nothing).
    assert_eq!(r.next, Next::Soon);
}

#[test]
fn every_condition_carries_the_generation_and_keeps_its_transition_time() {
    let stack = stack(web_and(json!(null)));
    let r = run(&stack, &web_serving(), &applied(vec![]));
    assert!(
        r.status
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(2))
    );
    assert_eq!(r.status.observed_generation, Some(2));
    let mut later = web_serving();
    later.now = Time(k8s_openapi::jiff::Timestamp::from_second(1_000_000).unwrap_or_default());
    let mut again = stack.clone();
    again.status = Some(r.status.clone());
    let r2 = run(&again, &later, &applied(vec![]));
    assert_eq!(r2.status, r.status, "nothing moved, not even a time");
}

#[test]
fn generated_credentials_and_issued_certificates_are_announced_once_applied() {
    let mut w = web_serving();
    w.issued.push(("shop-ca-key".into(), "new CA".into()));
    let done = Done {
        created: vec!["shop-redis".into()],
        ..applied(vec![])
    };
    let r = run(&stack(web_and(json!(null))), &w, &done);
    assert_eq!(reasons(&r), ["CredentialsGenerated", "CertificateIssued"]);
    let about = r.notices[0].about.as_ref().and_then(|a| a.name.clone());
    assert_eq!(about.as_deref(), Some("shop-redis"));
    assert_eq!(r.notices[1].note, "Secret shop-ca-key: new CA");
    // Nothing applied (a name held): no certificate is announced.
    let stopped = Done {
        findings: vec![conflict("Secret", "shop-ca-key")],
        ..Done::default()
    };
    let r = run(&stack(web_and(json!(null))), &w, &stopped);
    assert_eq!(reasons(&r), ["NameConflict"]);
}

#[test]
fn each_child_pruned_is_announced() {
    let done = Done {
        pruned: vec![
            Pruned {
                kind: "Deployment",
                name: "shop-old".into(),
            },
            Pruned {
                kind: "Service",
                name: "shop-old".into(),
            },
        ],
        ..applied(vec![])
    };
    let r = run(&stack(web_and(json!(null))), &web_serving(), &done);
    let notes: Vec<&str> = r.notices.iter().map(|n| n.note.as_str()).collect();
    assert_eq!(
        notes,
        [
            "Deployment shop-old is no longer in the spec",
            "Service shop-old is no longer in the spec"
        ]
    );
    assert!(
        r.notices
            .iter()
            .all(|n| n.reason == "Deleted" && !n.warning)
    );
}

fn backed_up() -> (AppStack, World) {
    let spec = web_and(json!({"redis": {"backup": {}}}));
    let mut w = with_credentials(world());
    serving(&mut w, &[(StoreKind::Redis, "shop-redis", true)]);
    (stack(spec), w)
}

#[test]
fn a_failed_backup_is_backup_failing_and_warned_once() {
    let (stack, mut w) = backed_up();
    let ok = backup_pod("b-1", "Succeeded", "2026-12-02T03:00:10Z", 0, SUMMARY);
    let said = format!("AUTH failed for {PASSWORD}");
    let failed = backup_pod("b-2", "Failed", "2026-12-02T04:00:10Z", 1, &said);
    w.backups.insert(StoreKind::Redis, Ok(vec![ok, failed]));
    let r = run(&stack, &w, &applied(vec![]));
    let (status, reason, message) = condition(&r, "BackupFailing");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "BackupFailed"));
    assert!(message.contains("AUTH failed for [redacted]"), "{message}");
    assert_eq!(reasons(&r), ["BackupFailed"]);
    let backup = store(&r.status, StoreKind::Redis)
        .and_then(|s| s.backup.clone())
        .unwrap_or_default();
    assert_eq!(backup.last_successful.as_deref(), Some("20261202T030000Z"));
    // The stack stays Ready: its store serves.
    assert_eq!(condition(&r, "Ready").0, "True");

    let mut again = stack.clone();
    again.status = Some(r.status.clone());
    assert!(run(&again, &w, &applied(vec![])).notices.is_empty());
}

#[test]
fn backups_that_succeed_say_so() {
    let (stack, mut w) = backed_up();
    let ok = backup_pod("b-1", "Succeeded", "2026-12-02T03:00:10Z", 0, SUMMARY);
    w.backups.insert(StoreKind::Redis, Ok(vec![ok]));
    let r = run(&stack, &w, &applied(vec![]));
    assert_eq!(condition(&r, "BackupFailing").1, "BackupsSucceed");
    assert_eq!(r.next, Next::Resync);
}

#[test]
fn a_running_backup_is_looked_at_again_soon() {
    let (stack, mut w) = backed_up();
    let running: Pod = serde_json::from_value(
        json!({"metadata": {"name": "b-3"}, "status": {"phase": "Running"}}),
    )
    .unwrap_or_default();
    w.backups.insert(StoreKind::Redis, Ok(vec![running]));
    assert_eq!(run(&stack, &w, &applied(vec![])).next, Next::Soon);
}

#[test]
fn backups_that_cannot_be_listed_keep_what_status_said() {
    let (stack, mut w) = backed_up();
    let ok = backup_pod("b-1", "Succeeded", "2026-12-02T03:00:10Z", 0, SUMMARY);
    w.backups.insert(StoreKind::Redis, Ok(vec![ok]));
    let before = run(&stack, &w, &applied(vec![])).status;
    let mut again = stack.clone();
    again.status = Some(before.clone());
    w.backups.insert(StoreKind::Redis, Err("forbidden".into()));
    let r = run(&again, &w, &applied(vec![]));
    assert_eq!(
        store(&r.status, StoreKind::Redis),
        store(&before, StoreKind::Redis)
    );
}

fn restoring() -> (AppStack, World) {
    let spec = web_and(
        json!({"redis": {}, "postgres": {}, "restore": {"from": "old-shop", "stores": ["redis"]}}),
    );
    let mut w = with_credentials(world());
    serving(
        &mut w,
        &[
            (StoreKind::Redis, "shop-redis", true),
            (StoreKind::Postgres, "shop-postgres", true),
        ],
    );
    (stack(spec), w)
}

#[test]
fn a_store_serving_under_a_restore_is_restored_and_announced_once() {
    let (stack, mut w) = restoring();
    let said = json!([container(
        "restore",
        json!({"terminated": {"exitCode": 0,
        "message": format!("restored backup 20261202 (password {PASSWORD})\n")}})
    )]);
    if let Some(s) = w.seen.stores.get_mut(&StoreKind::Redis) {
        s.pod = Some(store_pod("shop-redis", json!([]), said));
    }
    let r = run(&stack, &w, &applied(vec![]));
    let from = |r: &Report, kind| store(&r.status, kind).and_then(|s| s.restored_from.clone());
    assert_eq!(from(&r, StoreKind::Redis).as_deref(), Some("old-shop"));
    // Only the stores the restore names.
    assert_eq!(from(&r, StoreKind::Postgres), None);
    assert_eq!(reasons(&r), ["Restored"]);
    assert_eq!(
        r.notices[0].note,
        "redis: restored backup 20261202 (password [redacted])"
    );

    // Recorded (on its StatefulSet, by the apply): not announced again.
    w.seen.recorded.insert(StoreKind::Redis, "old-shop".into());
    let mut again = stack.clone();
    again.status = Some(r.status.clone());
    let r2 = run(&again, &w, &applied(vec![]));
    assert!(r2.notices.is_empty());
    assert_eq!(from(&r2, StoreKind::Redis).as_deref(), Some("old-shop"));
}

#[test]
fn a_restore_only_an_older_operators_status_remembers_is_not_announced_again() {
    let (stack, mut w) = restoring();
    w.seen.legacy.insert(StoreKind::Redis, "old-shop".into());
    let r = run(&stack, &w, &applied(vec![]));
    assert!(r.notices.is_empty(), "{:?}", r.notices);
    assert_eq!(
        store(&r.status, StoreKind::Redis)
            .and_then(|s| s.restored_from.clone())
            .as_deref(),
        Some("old-shop")
    );
}

#[test]
fn a_store_not_yet_serving_is_not_restored_yet() {
    let (stack, mut w) = restoring();
    serving(&mut w, &[(StoreKind::Redis, "shop-redis", false)]);
    let r = run(&stack, &w, &applied(vec![]));
    assert!(r.notices.is_empty());
    assert_eq!(
        store(&r.status, StoreKind::Redis).and_then(|s| s.restored_from.clone()),
        None
    );
}

#[test]
fn the_policy_probe_runs_only_for_a_serving_store_without_a_problem() {
    let mut spec = web_and(json!({"redis": {}}));
    spec["networkPolicy"] = json!({"enabled": true});
    let mut w = with_credentials(world());
    serving(&mut w, &[(StoreKind::Redis, "shop-redis", true)]);
    let r = run(&stack(spec.clone()), &w, &applied(vec![]));
    assert_eq!(r.probe, Some(("shop-redis".into(), 6379)));
    let r = run(
        &stack(spec.clone()),
        &w,
        &applied(vec![conflict("Service", "shop-web")]),
    );
    assert_eq!(r.probe, None);
    serving(&mut w, &[(StoreKind::Redis, "shop-redis", false)]);
    assert_eq!(run(&stack(spec), &w, &applied(vec![])).probe, None);
    // Switched off: never.
    let (stack, w) = backed_up();
    assert_eq!(run(&stack, &w, &applied(vec![])).probe, None);
}

#[test]
fn a_failed_reconcile_is_degraded_keeps_the_backups_and_warns() {
    let (stack, mut w) = backed_up();
    let ok = backup_pod("b-1", "Succeeded", "2026-12-02T03:00:10Z", 0, SUMMARY);
    w.backups.insert(StoreKind::Redis, Ok(vec![ok]));
    let before = run(&stack, &w, &applied(vec![])).status;
    let mut again = stack.clone();
    again.status = Some(before.clone());
    let (status, notice) = failed(
        &again,
        &w.seen,
        "reading Secret shop-redis: timeout",
        &w.now,
    );
    let degraded = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .map(|c| c.reason.clone());
    assert_eq!(degraded.as_deref(), Some("ReconcileFailed"));
    assert_eq!(
        store(&status, StoreKind::Redis).map(|s| &s.backup),
        store(&before, StoreKind::Redis).map(|s| &s.backup)
    );
    assert!(notice.warning && notice.reason == "ReconcileFailed");
}

#[test]
fn a_new_secret_whose_name_was_taken_stops_the_rest_and_its_certificate_is_not_announced() {
    let mut w = web_serving();
    w.issued.push(("shop-ca-key".into(), "new CA".into()));
    // What apply returns when one create met a name taken meanwhile.
    let done = Done {
        went_ahead: false,
        findings: vec![conflict("Secret", "shop-ca-key")],
        created: vec!["shop-redis".into()],
        ..Done::default()
    };
    let r = run(&stack(web_and(json!(null))), &w, &done);
    assert_eq!(reasons(&r), ["CredentialsGenerated", "NameConflict"]);
    assert_eq!(r.next, Next::Soon);
    assert_eq!(r.waiting_for, ["shop-ca-key"]);
}

#[test]
fn a_settled_redis_with_replicas_is_asked_every_ten_seconds_and_a_new_master_is_an_event() {
    use super::super::redis_roles::{Link, PodSeen, Role, RolesSeen};
    use super::super::report::RedisDone;
    let pod = |name: &str, label: &str, role: Role| PodSeen {
        name: name.into(),
        label: Some(label.into()),
        gone: false,
        sentinel_says: Some("shop-redis-1".into()),
        role: Some(role),
    };
    let mut w = world();
    serving(&mut w, &[(StoreKind::Redis, "shop-redis", true)]);
    w.redis_roles = Some(RolesSeen {
        pods: vec![
            pod("shop-redis-0", "replica", Role::Replica(Link::Up)),
            pod("shop-redis-1", "master", Role::Master),
            pod("shop-redis-2", "replica", Role::Replica(Link::Up)),
        ],
        instances: 3,
        foreign_masters: Vec::new(),
    });
    let spec = web_and(json!({"redis": {"replicas": 2}}));
    let before = json!({"redis": {"ready": true, "endpoint": "e", "secretName": "shop-redis",
        "replication": {"primary": "shop-redis-0"}}});
    let done = |unsettled| Done {
        redis: Some(RedisDone {
            master: Some("shop-redis-1".into()),
            unsettled,
        }),
        ..applied(vec![])
    };
    let r = run(&with_status(spec.clone(), before), &w, &done(false));
    assert_eq!(r.next, Next::Settled);
    assert!(reasons(&r).contains(&"MasterChanged"), "{:?}", reasons(&r));
    let r = run(&stack(spec), &w, &done(true));
    assert_eq!(r.next, Next::Shortly);
}
