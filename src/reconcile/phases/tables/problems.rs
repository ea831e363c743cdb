//! Every problem status can show, and when the stack is looked at again.

use serde_json::json;

use super::super::Next;
use super::super::report::Done;
use super::*;
use crate::reconcile::children::Guard;
use crate::status::Problem;

/// One row: what apply found, the Degraded reason (or none), a piece of its
/// message, Ready's status and the next wake-up. The world serves.
struct Row {
    findings: Vec<Finding>,
    reason: Option<&'static str>,
    says: &'static str,
    ready: &'static str,
    next: Next,
}

#[test]
fn each_finding_gives_its_problem_ready_and_next_wake_up() {
    let rejected = Finding::Rejected {
        kind: "StatefulSet",
        name: "shop-redis".into(),
        message: "Forbidden: updates to statefulset spec".into(),
    };
    let unguarded = |guard| Finding::Unguarded {
        kind: "StatefulSet",
        name: "shop-redis".into(),
        guard,
    };
    let rows = [
        Row {
            findings: vec![],
            reason: None,
            says: "no problem found",
            ready: "True",
            next: Next::Resync,
        },
        Row {
            findings: vec![conflict("Deployment", "shop-web")],
            reason: Some("NameConflict"),
            says: "child names already taken: Deployment shop-web belongs to AppStack other",
            ready: "False",
            next: Next::Soon,
        },
        Row {
            findings: vec![
                conflict("Service", "shop-web"),
                refused("Deployment", "shop-x", "quota"),
            ],
            reason: Some("NameConflict"),
            says: ". Also: Deployment shop-x: quota",
            ready: "False",
            next: Next::Soon,
        },
        Row {
            findings: vec![unguarded(Guard::NotCreated)],
            reason: Some("GuardRefused"),
            says: "not created: no pod of it runs before its NetworkPolicy shop-redis exists",
            ready: "False",
            next: Next::Resync,
        },
        Row {
            findings: vec![unguarded(Guard::Stopped)],
            reason: Some("GuardRefused"),
            says: "scaled to 0",
            ready: "False",
            next: Next::Resync,
        },
        Row {
            findings: vec![unguarded(Guard::Held)],
            reason: Some("GuardRefused"),
            says: "not updated",
            ready: "False",
            next: Next::Resync,
        },
        Row {
            findings: vec![rejected.clone()],
            reason: Some("ChangeRejected"),
            says: "StatefulSet shop-redis: Forbidden",
            // What runs keeps serving.
            ready: "True",
            next: Next::Resync,
        },
        Row {
            findings: vec![rejected, refused("Service", "shop-web", "quota")],
            reason: Some("ChangeRejected"),
            says: "; Service shop-web: quota",
            ready: "True",
            next: Next::Backoff,
        },
        Row {
            findings: vec![refused(
                "Deployment",
                "shop-web",
                "admission webhook denied",
            )],
            reason: Some("ReconcileFailed"),
            says: "Deployment shop-web: admission webhook denied",
            ready: "True",
            next: Next::Backoff,
        },
        Row {
            findings: vec![Finding::Blocked {
                kind: "Deployment",
                name: "shop-web".into(),
                on: vec!["shop-redis".into()],
            }],
            reason: Some("ReconcileFailed"),
            says: "wired to shop-redis, which this stack does not own",
            ready: "True",
            next: Next::Resync,
        },
        Row {
            findings: vec![Finding::Outdated {
                kind: "Secret",
                name: "shop-redis".into(),
            }],
            reason: None,
            says: "no problem found",
            ready: "True",
            next: Next::Soon,
        },
        Row {
            // Waiting for a name beats backing off.
            findings: vec![
                Finding::Outdated {
                    kind: "Secret",
                    name: "shop-redis".into(),
                },
                refused("Service", "shop-web", "quota"),
            ],
            reason: Some("ReconcileFailed"),
            says: "Service shop-web: quota",
            ready: "True",
            next: Next::Soon,
        },
    ];
    let stack = stack(web_and(json!(null)));
    for (i, row) in rows.into_iter().enumerate() {
        let r = run(&stack, &web_serving(), &applied(row.findings));
        let (degraded, reason, message) = condition(&r, "Degraded");
        match row.reason {
            Some(expected) => assert_eq!(
                (degraded.as_str(), reason.as_str()),
                ("True", expected),
                "row {i}"
            ),
            None => assert_eq!(degraded, "False", "row {i}: {message}"),
        }
        assert!(message.contains(row.says), "row {i}: {message}");
        assert_eq!(condition(&r, "Ready").0, row.ready, "row {i}");
        assert_eq!(r.next, row.next, "row {i}");
        // A problem's Warning is published when it first appears.
        let warned = r.notices.iter().any(|n| n.warning);
        assert_eq!(warned, row.reason.is_some(), "row {i}");
    }
}

#[test]
fn a_name_held_is_waited_for_and_nothing_else() {
    let r = run(
        &stack(web_and(json!(null))),
        &web_serving(),
        &applied(vec![
            conflict("Deployment", "shop-web"),
            refused("Service", "s", "x"),
        ]),
    );
    assert_eq!(r.waiting_for, ["shop-web"]);
}

#[test]
fn an_invalid_spec_is_degraded_and_not_progressing() {
    let done = Done {
        invalid: Some(Problem::InvalidSpec("spec.components: at least one".into())),
        ..Done::default()
    };
    let r = run(&stack(web_and(json!(null))), &web_serving(), &done);
    assert_eq!(condition(&r, "Degraded").1, "InvalidSpec");
    assert_eq!(condition(&r, "Ready").0, "False");
    assert_eq!(
        condition(&r, "Progressing"),
        (
            "False".into(),
            "InvalidSpec".into(),
            "fix the spec to continue".into()
        )
    );
    assert_eq!(reasons(&r), ["InvalidSpec"]);
    assert_eq!(r.next, Next::Resync);
}

fn unready_redis(pod: Pod) -> World {
    let mut w = with_credentials(world());
    serving(&mut w, &[(StoreKind::Redis, "shop-redis", false)]);
    if let Some(s) = w.seen.stores.get_mut(&StoreKind::Redis) {
        s.pod = Some(pod);
    }
    w
}

#[test]
fn a_crash_looping_store_is_store_failing_without_its_password() {
    let said = format!("Error in user declaration '>{PASSWORD}'");
    let pod = store_pod(
        "shop-redis",
        json!([crash_looping("redis", &said)]),
        json!([]),
    );
    let r = run(
        &stack(web_and(json!({"redis": {}}))),
        &unready_redis(pod),
        &applied(vec![]),
    );
    let (_, reason, message) = condition(&r, "Degraded");
    assert_eq!(reason, "StoreFailing");
    assert!(
        message.contains("keeps failing: Error in user declaration '>[redacted]'"),
        "{message}"
    );
    assert!(!format!("{r:?}").contains(PASSWORD));
    // A crash loop changes no StatefulSet: the pod is read again soon.
    assert_eq!(r.next, Next::Soon);
}

#[test]
fn a_store_refusing_its_secret_is_credentials_out_of_sync() {
    let pod = store_pod(
        "shop-redis",
        json!([
            container("redis", json!({"running": {}})),
            crash_looping(
                "credentials",
                "the apps' password in Secret shop-redis is refused"
            )
        ]),
        json!([]),
    );
    let r = run(
        &stack(web_and(json!({"redis": {}}))),
        &unready_redis(pod),
        &applied(vec![]),
    );
    let (_, reason, message) = condition(&r, "Degraded");
    assert_eq!(reason, "CredentialsOutOfSync");
    assert!(message.starts_with("redis: "), "{message}");
}

#[test]
fn a_failing_server_explains_more_than_credentials_and_both_are_said() {
    let mut w = unready_redis(store_pod(
        "shop-redis",
        json!([crash_looping("credentials", "refused")]),
        json!([]),
    ));
    serving(&mut w, &[(StoreKind::Postgres, "shop-postgres", false)]);
    if let Some(s) = w.seen.stores.get_mut(&StoreKind::Postgres) {
        s.pod = Some(store_pod(
            "shop-postgres",
            json!([crash_looping("postgres", "FATAL: data")]),
            json!([]),
        ));
    }
    let spec = web_and(json!({"redis": {}, "postgres": {}}));
    let r = run(&stack(spec), &w, &applied(vec![]));
    let (_, reason, message) = condition(&r, "Degraded");
    assert_eq!(reason, "StoreFailing");
    assert!(
        message.contains("FATAL: data") && message.contains("redis: refused"),
        "{message}"
    );
}

#[test]
fn a_pod_the_store_does_not_control_says_nothing() {
    let mut pod = store_pod(
        "shop-redis",
        json!([crash_looping("redis", "planted")]),
        json!([]),
    );
    pod.metadata.owner_references = None;
    let r = run(
        &stack(web_and(json!({"redis": {}}))),
        &unready_redis(pod),
        &applied(vec![]),
    );
    assert_eq!(condition(&r, "Degraded").0, "False");
    assert_eq!(condition(&r, "Ready").2, "waiting for redis");
    assert_eq!(r.next, Next::Soon);
}

#[test]
fn a_problem_already_in_status_is_not_warned_again() {
    let stack = stack(web_and(json!(null)));
    let first = run(
        &stack,
        &web_serving(),
        &applied(vec![conflict("Deployment", "shop-web")]),
    );
    assert_eq!(reasons(&first), ["NameConflict"]);
    let mut again = stack.clone();
    again.status = Some(first.status.clone());
    let second = run(
        &again,
        &web_serving(),
        &applied(vec![conflict("Deployment", "shop-web")]),
    );
    assert!(second.notices.is_empty(), "{:?}", second.notices);
    // The same status: nothing to write either.
    assert_eq!(Some(&second.status), again.status.as_ref());
}
