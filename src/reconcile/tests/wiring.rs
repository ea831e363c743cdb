//! The wiring of the four phases: reads before writes, a generated Secret
//! in one request, the restore record on the store's StatefulSet. What the
//! pure phases decide is tested over tables in `phases::tables`.

use serde_json::{Value, json};

use super::{Call, Harness, Next, SHOP, ours, spec, status_body};
use crate::reconcile::restored;

const REDIS_RESTORED: &str = r#"{"components": [{"name": "web", "image": "shop:1", "port": 8080, "uses": ["redis"]}],
  "redis": {}, "tls": {"enabled": false}, "restore": {"from": "old-shop"}}"#;

#[tokio::test]
async fn a_generated_secret_is_one_create_carrying_all_an_apply_would() {
    let mut h = Harness::new(spec(SHOP));
    h.reconcile().await.unwrap();
    let calls = h.calls();
    let created: Vec<&Call> = calls.iter().filter(|c| c.is_create()).collect();
    assert_eq!(created.len(), 7);
    // Every Secret written once, the generated ones by their create.
    let mut writes = h.child_writes();
    writes.retain(|w| w.starts_with("PATCH secrets/"));
    let mut unique = writes.clone();
    unique.dedup();
    assert_eq!(writes, unique);
    for c in &created {
        let name = c.body["metadata"]["name"].as_str().unwrap_or_default();
        // An apply under the one field manager, like every later one.
        assert!(
            c.query.contains("fieldManager=appstack-operator") && c.query.contains("force=true"),
            "{}",
            c.query
        );
        assert_eq!(
            c.body["metadata"]["ownerReferences"][0]["uid"], "uid-shop",
            "{name}"
        );
        assert_eq!(
            c.body["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "appstack-operator"
        );
    }
}

#[tokio::test]
async fn a_generated_secrets_name_taken_meanwhile_is_a_name_conflict() {
    let mut h = Harness::new(spec(SHOP));
    h.answer(
        "PATCH",
        "/secrets/shop-ca-key",
        409,
        status_body(409, "Conflict", "the object has been modified"),
    );
    assert_eq!(h.reconcile().await.unwrap(), Next::Soon);
    // Nothing but the creates: no store starts on credentials not its own.
    let creates = h.calls().iter().filter(|c| c.is_create()).count();
    assert_eq!(h.child_writes().len(), creates, "{:?}", h.child_writes());
    let message = h.degraded("NameConflict");
    assert!(
        message.contains("Secret shop-ca-key was created by someone else"),
        "{message}"
    );
}

/// A store's StatefulSet as the cache shows it, with its pod as a GET finds it.
fn cached_store(h: &mut Harness, name: &str, ready: bool, annotations: Value, init: Value) {
    let mut sts = ours("StatefulSet", "apps/v1", name, "5");
    sts["metadata"]["uid"] = json!(format!("{name}-uid"));
    sts["metadata"]["generation"] = json!(1);
    sts["metadata"]["annotations"] = annotations;
    sts["spec"] = json!({"replicas": 1, "selector": {}, "serviceName": "", "template": {}});
    sts["status"] = json!({"observedGeneration": 1, "replicas": 1, "readyReplicas": i32::from(ready),
                           "currentRevision": "a", "updateRevision": "a"});
    h.filled.put(&sts);
    h.answer(
        "GET",
        &format!("/pods/{name}-0"),
        200,
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": format!("{name}-0"), "namespace": "team-a",
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name,
                                                 "uid": format!("{name}-uid"), "controller": true}]},
               "status": {"phase": "Running", "initContainerStatuses": init}}),
    );
}

/// What was sent for a store's StatefulSet: applied when it exists, created
/// (one POST) when the cache shows none.
fn applied_store(h: &Harness, name: &str) -> Value {
    h.calls()
        .into_iter()
        .find(|c| {
            (c.method == "PATCH" && c.path.ends_with(&format!("/statefulsets/{name}")))
                || (c.method == "POST"
                    && c.path.ends_with("/statefulsets")
                    && c.body["metadata"]["name"] == name)
        })
        .map(|c| c.body)
        .unwrap_or_else(|| panic!("{name} not applied: {:?}", h.child_writes()))
}

fn restores(sts: &Value) -> bool {
    sts["spec"]["template"]["spec"]["initContainers"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["name"] == "restore"))
}

#[tokio::test]
async fn a_store_restored_is_read_before_it_rolls_and_recorded_with_the_roll() {
    let mut h = Harness::new(spec(REDIS_RESTORED));
    let said = json!([{"name": "restore", "ready": false, "restartCount": 0, "image": "i", "imageID": "",
                       "state": {"terminated": {"exitCode": 0, "message": "restored snapshot 20261202T030000Z"}}}]);
    cached_store(&mut h, "shop-redis", true, json!({}), said);
    h.reconcile().await.unwrap();
    let calls = h.calls();
    let read = calls
        .iter()
        .position(|c| c.path.ends_with("/pods/shop-redis-0"));
    let rolled = calls
        .iter()
        .position(|c| c.method == "PATCH" && c.path.ends_with("/statefulsets/shop-redis"));
    assert!(
        read < rolled && read.is_some(),
        "the pod is read before the roll"
    );
    let sts = applied_store(&h, "shop-redis");
    assert!(!restores(&sts));
    assert_eq!(sts["metadata"]["annotations"][restored::KEY], "old-shop");
    let event = h.events().into_iter().find(|e| e["reason"] == "Restored");
    let note = event.map(|e| e["note"].clone()).unwrap_or_default();
    assert_eq!(note, "redis: restored snapshot 20261202T030000Z");
    let from = h
        .stack
        .status
        .as_ref()
        .and_then(|s| s.redis.clone())
        .and_then(|r| r.restored_from);
    assert_eq!(from.as_deref(), Some("old-shop"));

    // Rolling (not ready) with the record: still restored, said once.
    h.clear();
    let record = json!({restored::KEY: "old-shop", "note": "anyone's"});
    cached_store(&mut h, "shop-redis", false, record, json!([]));
    h.reconcile().await.unwrap();
    assert!(
        h.events().iter().all(|e| e["reason"] != "Restored"),
        "{:?}",
        h.events()
    );
    let from = h
        .stack
        .status
        .as_ref()
        .and_then(|s| s.redis.clone())
        .and_then(|r| r.restored_from);
    assert_eq!(from.as_deref(), Some("old-shop"));
    // Whatever is applied of the store restores nothing again.
    let again = h
        .calls()
        .into_iter()
        .filter(|c| c.method == "PATCH" && c.path.ends_with("/statefulsets/shop-redis"));
    assert!(again.into_iter().all(|c| !restores(&c.body)));
}

#[tokio::test]
async fn a_restore_an_older_operator_kept_in_status_is_recorded_on_upgrade() {
    let mut h = Harness::new(spec(REDIS_RESTORED));
    h.stack.status = serde_json::from_value(json!({
        "redis": {"ready": true, "endpoint": "e", "secretName": "shop-redis", "restoredFrom": "old-shop"}
    }))
    .ok();
    h.reconcile().await.unwrap();
    let sts = applied_store(&h, "shop-redis");
    assert!(!restores(&sts), "no restore again");
    assert_eq!(sts["metadata"]["annotations"][restored::KEY], "old-shop");
    assert!(h.events().iter().all(|e| e["reason"] != "Restored"));
}

#[tokio::test]
async fn a_new_restoring_store_restores() {
    let mut h = Harness::new(spec(REDIS_RESTORED));
    h.reconcile().await.unwrap();
    let sts = applied_store(&h, "shop-redis");
    assert!(restores(&sts));
    assert!(sts["metadata"]["annotations"].get(restored::KEY).is_none());
}

#[tokio::test]
async fn every_read_of_pods_and_backups_comes_before_the_first_write() {
    let mut h = Harness::new(spec(
        r#"{"components": [{"name": "web", "image": "shop:1", "port": 8080}], "redis": {"backup": {}}}"#,
    ));
    let mut cron = ours("CronJob", "batch/v1", "shop-redis-backup", "1");
    cron["metadata"]["uid"] = json!("cron-uid");
    h.filled.put(&cron);
    h.answer(
        "GET",
        "/jobs",
        200,
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {}, "items": []}),
    );
    cached_store(&mut h, "shop-redis", false, json!({}), json!([]));
    h.reconcile().await.unwrap();
    let calls = h.calls();
    let first_write = calls
        .iter()
        .position(|c| c.is_write() && !c.is_event())
        .expect("something written");
    let reads: Vec<usize> = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| c.path.ends_with("/pods/shop-redis-0") || c.path.ends_with("/jobs"))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(
        reads.len(),
        2,
        "the store's pod and the backup Jobs were read"
    );
    assert!(
        reads.iter().all(|r| *r < first_write),
        "{reads:?} after {first_write}"
    );
}
