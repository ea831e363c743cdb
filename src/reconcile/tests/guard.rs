//! A refused NetworkPolicy blocks what it guards: no store pod runs before
//! its policy exists, and status says why.

use serde_json::json;

use super::{Harness, Next, SHOP, ours, spec};

const DENIED: &str = "networkpolicies.networking.k8s.io \"shop-redis\" is forbidden: ValidatingAdmissionPolicy 'no-netpol' with binding 'no-netpol' denied request: no NetworkPolicies here";

fn refuse_redis_policy(h: &Harness) {
    h.refuse_writes("/networkpolicies/shop-redis", 403, DENIED);
}

#[tokio::test]
async fn a_refused_store_policy_keeps_the_store_from_being_created() {
    let mut h = Harness::new(spec(SHOP));
    refuse_redis_policy(&h);
    assert_eq!(h.reconcile().await.unwrap(), Next::Backoff);
    assert!(
        !h.wrote_to("statefulsets/shop-redis"),
        "{:?}",
        h.child_writes()
    );
    // The other store and the components are not held back.
    assert!(h.wrote_to("statefulsets/shop-postgres"));
    assert!(h.wrote_to("deployments/shop-web"));
    // Nor the Service: it leads nowhere without the store's pods.
    assert!(h.wrote_to("services/shop-redis"));
    let message = h.degraded("GuardRefused");
    assert!(
        message.contains("NetworkPolicy shop-redis: ")
            && message.contains("no NetworkPolicies here"),
        "names the policy and the API server's words: {message}"
    );
    assert!(
        message.contains("StatefulSet shop-redis not created"),
        "{message}"
    );
    let (ready, reason, _) = h.condition("Ready");
    assert_eq!((ready.as_str(), reason.as_str()), ("False", "GuardRefused"));
    assert!(
        h.events()
            .iter()
            .any(|e| e["reason"] == "GuardRefused" && e["type"] == "Warning"),
        "a Warning Event: {:?}",
        h.events()
    );
}

#[tokio::test]
async fn once_the_policy_is_admitted_the_store_follows_it() {
    let mut h = Harness::new(spec(SHOP));
    refuse_redis_policy(&h);
    h.reconcile().await.unwrap();
    h.sync_caches();
    h.clear();
    h.lift_refusals();
    h.reconcile().await.unwrap();
    let writes = h.child_writes();
    let policy = writes
        .iter()
        .position(|w| w.ends_with(" networkpolicies/shop-redis"));
    let store = writes
        .iter()
        .position(|w| w.ends_with(" statefulsets/shop-redis"));
    assert!(
        policy.is_some() && store.is_some() && policy < store,
        "the policy first, then the store: {writes:?}"
    );
    let (degraded, _, message) = h.condition("Degraded");
    assert_eq!(degraded, "False", "{message}");
}

#[tokio::test]
async fn a_refused_update_of_a_policy_that_stands_holds_nothing_back() {
    let mut h = Harness::new(spec(SHOP));
    // The policy of an earlier round is in force.
    h.filled.put(&ours(
        "NetworkPolicy",
        "networking.k8s.io/v1",
        "shop-redis",
        "3",
    ));
    h.refuse_writes(
        "/networkpolicies/shop-redis",
        422,
        "NetworkPolicy.networking.k8s.io \"shop-redis\" is invalid: spec.egress[1].ports[0].port: Invalid value: 99999",
    );
    assert_eq!(h.reconcile().await.unwrap(), Next::Backoff);
    assert!(h.wrote_to("statefulsets/shop-redis"));
    let message = h.degraded("ReconcileFailed");
    assert!(message.contains("99999"), "{message}");
}

#[tokio::test]
async fn a_store_whose_policy_is_gone_and_refused_is_scaled_to_zero() {
    let mut h = Harness::new(spec(SHOP));
    let mut running = ours("StatefulSet", "apps/v1", "shop-redis", "5");
    running["spec"] = json!({"replicas": 1});
    h.filled.put(&running);
    refuse_redis_policy(&h);
    h.reconcile().await.unwrap();
    let patches: Vec<super::Call> = h
        .calls()
        .into_iter()
        .filter(|c| c.method == "PATCH" && c.path.ends_with("/statefulsets/shop-redis"))
        .collect();
    assert_eq!(patches.len(), 1, "only the scale to 0: {patches:?}");
    assert_eq!(patches[0].body, json!({"spec": {"replicas": 0}}));
    assert!(
        patches[0]
            .query
            .contains("fieldManager=appstack-operator-guard"),
        "{}",
        patches[0].query
    );
    let message = h.degraded("GuardRefused");
    assert!(message.contains("scaled to 0"), "{message}");
    assert_eq!(h.condition("Ready").0, "False");
}

#[tokio::test]
async fn a_store_already_stopped_is_not_written_again() {
    let mut h = Harness::new(spec(SHOP));
    let mut stopped = ours("StatefulSet", "apps/v1", "shop-redis", "5");
    stopped["spec"] = json!({"replicas": 0});
    h.filled.put(&stopped);
    refuse_redis_policy(&h);
    h.reconcile().await.unwrap();
    assert!(
        !h.wrote_to("statefulsets/shop-redis"),
        "{:?}",
        h.child_writes()
    );
    h.degraded("GuardRefused");
}

#[tokio::test]
async fn a_component_whose_policy_is_refused_is_not_created() {
    let mut h = Harness::new(spec(SHOP));
    h.refuse_writes(
        "/networkpolicies/shop-worker",
        403,
        "denied: no NetworkPolicies here",
    );
    h.reconcile().await.unwrap();
    assert!(!h.wrote_to("deployments/shop-worker"));
    assert!(h.wrote_to("deployments/shop-web"));
    let message = h.degraded("GuardRefused");
    assert!(
        message.contains("Deployment shop-worker not created"),
        "{message}"
    );
}

#[tokio::test]
async fn a_policy_name_someone_else_holds_guards_nothing() {
    let mut h = Harness::new(spec(SHOP));
    h.filled.put(&super::held_by_other(
        "NetworkPolicy",
        "networking.k8s.io/v1",
        "shop-redis",
    ));
    h.reconcile().await.unwrap();
    assert!(!h.wrote_to("networkpolicies/shop-redis"));
    assert!(!h.wrote_to("statefulsets/shop-redis"));
    let message = h.degraded("NameConflict");
    assert!(
        message.contains("StatefulSet shop-redis not created"),
        "{message}"
    );
}

#[tokio::test]
async fn without_policies_nothing_waits_for_one() {
    let mut off = spec(SHOP);
    off["networkPolicy"] = json!({"enabled": false});
    let mut h = Harness::new(off);
    refuse_redis_policy(&h);
    h.reconcile().await.unwrap();
    assert!(h.wrote_to("statefulsets/shop-redis"));
}

#[tokio::test]
async fn a_running_component_whose_policy_is_gone_and_refused_is_held_not_stopped() {
    let mut h = Harness::new(spec(SHOP));
    h.filled
        .put(&ours("Deployment", "apps/v1", "shop-worker", "4"));
    h.refuse_writes(
        "/networkpolicies/shop-worker",
        403,
        "denied: no NetworkPolicies here",
    );
    h.reconcile().await.unwrap();
    assert!(
        !h.wrote_to("deployments/shop-worker"),
        "neither updated nor scaled: {:?}",
        h.child_writes()
    );
    let message = h.degraded("GuardRefused");
    assert!(
        message.contains("Deployment shop-worker not updated"),
        "{message}"
    );
}
