//! A migration through the four phases against the mocked API: no Job
//! before the store serves, then the Job and no Deployment; a failed Job's
//! last log lines (read bounded) in status with one Warning; a succeeded
//! one rolls the Deployment, which records it, so that a restarted
//! operator runs nothing again.

use serde_json::{Value, json};

use super::{Harness, ours, spec};
use crate::build::migration::{self, MIGRATED};

const MIGRATING: &str = r#"{"components": [{"name": "web", "image": "shop:2", "port": 8080,
  "migrate": {"command": ["/appstack-shop", "migrate"]}}],
  "postgres": {}, "tls": {"enabled": false}, "networkPolicy": {"enabled": false}}"#;

fn job_name(h: &Harness) -> String {
    let c = &h.stack.spec.components[0];
    migration::job_name(
        "shop",
        "web",
        &migration::hash(c, c.migrate.as_ref().unwrap()),
    )
}

fn postgres_ready() -> Value {
    let mut pg = ours("StatefulSet", "apps/v1", "shop-postgres", "9");
    pg["spec"] = json!({"replicas": 1, "selector": {}, "template": {}, "serviceName": "x"});
    pg["status"] = json!({"observedGeneration": 1, "replicas": 1, "readyReplicas": 1,
                          "currentRevision": "a", "updateRevision": "a"});
    pg
}

fn job(name: &str, conditions: Value) -> Value {
    let mut j = ours("Job", "batch/v1", name, "11");
    j["metadata"]["uid"] = "uid-job".into();
    j["status"] = json!({"conditions": conditions});
    j
}

#[tokio::test]
async fn a_migration_runs_before_the_rollout_and_once() {
    let mut h = Harness::new(spec(MIGRATING));
    let name = job_name(&h);
    h.reconcile().await.unwrap();
    assert!(
        !h.wrote_to(&format!("jobs/{name}")),
        "{:?}",
        h.child_writes()
    );
    assert!(
        !h.wrote_to("deployments/shop-web"),
        "{:?}",
        h.child_writes()
    );
    h.sync_caches();

    // The store serves: the Job is created, the Deployment still not.
    h.filled.put(&postgres_ready());
    h.clear();
    h.reconcile().await.unwrap();
    assert!(
        h.wrote(&format!("POST jobs/{name}")),
        "{:?}",
        h.child_writes()
    );
    assert!(
        !h.wrote_to("deployments/shop-web"),
        "{:?}",
        h.child_writes()
    );
    let status = h.stack.status.clone().unwrap();
    assert_eq!(status.migrations[0].phase, "Running");

    // Failed: its newest failed pod's log, read bounded, in status; once.
    h.filled.put(&job(
        &name,
        json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]),
    ));
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": "m-1", "namespace": "team-a", "creationTimestamp": "2026-12-06T10:00:00Z",
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name,
                             "uid": "uid-job", "controller": true}]},
        "status": {"phase": "Failed"}});
    h.answer(
        "GET",
        "/pods",
        200,
        json!({"apiVersion": "v1", "kind": "PodList",
                                          "metadata": {}, "items": [pod]}),
    );
    h.answer(
        "GET",
        "/pods/m-1/log",
        200,
        json!("ERROR migration failed: disk on fire"),
    );
    h.clear();
    h.reconcile().await.unwrap();
    let message = h.degraded("MigrationFailed");
    assert!(
        message.contains("disk on fire") && message.contains(&name),
        "{message}"
    );
    let log = h
        .calls()
        .into_iter()
        .find(|c| c.path.ends_with("/log"))
        .expect("the log was read");
    assert!(
        log.query.contains("tailLines=10") && log.query.contains("limitBytes=2048"),
        "{}",
        log.query
    );
    assert!(!h.wrote_to("deployments/shop-web") && !h.wrote_to(&format!("jobs/{name}")));
    let warned = |h: &Harness| {
        h.events()
            .iter()
            .filter(|e| e["reason"] == "MigrationFailed")
            .count()
    };
    assert_eq!(warned(&h), 1);
    h.clear();
    h.reconcile().await.unwrap();
    assert_eq!(warned(&h), 0, "warned again");

    // Succeeded (run again by hand, say): the Deployment rolls and records it.
    h.lift_refusals();
    h.filled
        .put(&job(&name, json!([{"type": "Complete", "status": "True"}])));
    h.clear();
    h.reconcile().await.unwrap();
    let applied = h
        .calls()
        .into_iter()
        .find(|c| {
            c.path.ends_with("/deployments/shop-web")
                || c.body["metadata"]["name"] == "shop-web" && c.path.ends_with("/deployments")
        })
        .expect("the Deployment was applied");
    let hash = migration::hash(
        &h.stack.spec.components[0],
        h.stack.spec.components[0].migrate.as_ref().unwrap(),
    );
    assert_eq!(
        applied.body["metadata"]["annotations"][MIGRATED],
        json!(hash)
    );
    assert!(
        !h.wrote_to(&format!("jobs/{name}")),
        "{:?}",
        h.child_writes()
    );
    h.sync_caches();

    // A restarted operator finds the record and the Job gone: nothing runs.
    h.filled.remove(&job(&name, json!([])));
    h.clear();
    h.reconcile().await.unwrap();
    assert!(
        !h.wrote_to(&format!("jobs/{name}")),
        "{:?}",
        h.child_writes()
    );
    assert_eq!(
        h.stack.status.clone().unwrap().migrations[0].phase,
        "Succeeded"
    );
}
