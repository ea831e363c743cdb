//! Users' Secrets against the mocked API: read with a GET in the stack's
//! namespace, never written; their values reach the operator's own Secret.

use serde_json::{Value, json};

use super::{Call, Harness, Next, spec};
use crate::reconcile::children::Touched;

fn b64(s: &str) -> Value {
    serde_json::to_value(k8s_openapi::ByteString(s.as_bytes().to_vec())).unwrap()
}

fn users_secret(name: &str, labels: Value, data: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> =
        data.iter().map(|(k, v)| (k.to_string(), b64(v))).collect();
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": name, "namespace": "team-a", "resourceVersion": "7", "labels": labels},
           "type": "Opaque", "data": data})
}

/// The body of the last write of the operator's Secret `name` (a create
/// is a POST to the collection, an apply a PATCH of the object).
fn written(h: &Harness, name: &str) -> Value {
    h.calls()
        .into_iter()
        .rfind(|c| {
            c.is_write() && c.body["metadata"]["name"] == name && c.path.contains("/secrets")
        })
        .unwrap_or_else(|| panic!("Secret {name} was not written"))
        .body
}

fn no_write_to(h: &Harness, name: &str) {
    let writes: Vec<String> = h
        .calls()
        .iter()
        .filter(|c| c.is_write() && c.path.ends_with(&format!("/secrets/{name}")))
        .map(Call::short)
        .collect();
    assert!(writes.is_empty(), "wrote the user's Secret: {writes:?}");
}

const EXTERNAL: &str = r#"{"components": [{"name": "web", "image": "shop:1", "port": 8080}],
  "postgres": {"external": {"secretName": "db-conn"}}}"#;

#[tokio::test]
async fn an_external_store_is_read_never_written_and_runs_nothing() {
    let mut h = Harness::new(spec(EXTERNAL));
    h.answer(
        "GET",
        "/secrets/db-conn",
        200,
        users_secret(
            "db-conn",
            json!({"appstack.dev/store-secret": "true"}),
            &[
                ("url", "postgresql://shop:pw@db.example/shop"),
                ("other", "x"),
            ],
        ),
    );
    let next = h.reconcile().await.unwrap();
    let calls: Vec<String> = h.calls().iter().map(Call::short).collect();
    assert_eq!(next, Next::Resync, "{calls:?}");
    no_write_to(&h, "db-conn");
    let ours = written(&h, "shop-postgres");
    assert_eq!(ours["data"]["password"], b64("pw"));
    assert_eq!(ours["data"]["host"], b64("db.example"));
    assert!(ours["data"].get("other").is_none(), "an unknown key copied");
    let writes = h.child_writes();
    assert!(
        !writes
            .iter()
            .any(|w| w.contains("statefulsets") || w.contains("services/shop-postgres")),
        "{writes:?}"
    );
    // Its watch event wakes the stack.
    let woken = h.ctx.waiting.stacks_to_wake(&Touched {
        namespace: "team-a".into(),
        name: "db-conn".into(),
        controller: None,
    });
    assert_eq!(woken.len(), 1);
}

#[tokio::test]
async fn a_missing_external_secret_applies_nothing_and_polls() {
    let mut h = Harness::new(spec(EXTERNAL));
    assert_eq!(h.reconcile().await.unwrap(), Next::Poll);
    assert!(h.child_writes().is_empty(), "{:?}", h.child_writes());
    let message = h.degraded("UserSecretUnusable");
    assert!(
        message.contains("spec.postgres.external.secretName: Secret db-conn does not exist"),
        "{message}"
    );
}

#[tokio::test]
async fn another_stacks_admin_secret_is_refused() {
    let mut h = Harness::new(spec(
        r#"{"components": [{"name": "web", "image": "shop:1", "port": 8080}],
            "postgres": {"external": {"secretName": "other-postgres-admin"}}}"#,
    ));
    h.answer(
        "GET",
        "/secrets/other-postgres-admin",
        200,
        users_secret(
            "other-postgres-admin",
            json!({"app.kubernetes.io/managed-by": "appstack-operator"}),
            &[
                ("password", "their-admin-password"),
                ("host", "h"),
                ("username", "postgres"),
                ("database", "d"),
            ],
        ),
    );
    h.reconcile().await.unwrap();
    assert!(h.child_writes().is_empty(), "{:?}", h.child_writes());
    let message = h.degraded("UserSecretUnusable");
    assert!(
        message.contains("one the operator made for a stack"),
        "{message}"
    );
    assert!(!message.contains("their-admin-password"));
}

#[tokio::test]
async fn existing_secret_passwords_go_to_the_operators_secrets_never_back() {
    let mut h = Harness::new(spec(
        r#"{"components": [{"name": "web", "image": "shop:1", "port": 8080}],
            "redis": {"existingSecret": "vault-made"}, "tls": {"enabled": false}}"#,
    ));
    h.answer(
        "GET",
        "/secrets/vault-made",
        200,
        users_secret(
            "vault-made",
            json!({"appstack.dev/store-secret": "true"}),
            &[
                ("password", "from-the-vault"),
                ("admin-password", "admin-from-the-vault"),
            ],
        ),
    );
    h.reconcile().await.unwrap();
    no_write_to(&h, "vault-made");
    assert_eq!(
        written(&h, "shop-redis")["data"]["password"],
        b64("from-the-vault")
    );
    assert_eq!(
        written(&h, "shop-redis-admin")["data"]["password"],
        b64("admin-from-the-vault")
    );
    assert_eq!(written(&h, "shop-redis")["data"]["username"], b64("app"));
}

#[tokio::test]
async fn existing_secret_without_a_password_applies_nothing() {
    let mut h = Harness::new(spec(
        r#"{"components": [{"name": "web", "image": "shop:1", "port": 8080}],
            "redis": {"existingSecret": "vault-made"}, "tls": {"enabled": false}}"#,
    ));
    h.answer(
        "GET",
        "/secrets/vault-made",
        200,
        users_secret("vault-made", json!({}), &[("username", "app")]),
    );
    assert_eq!(h.reconcile().await.unwrap(), Next::Poll);
    let message = h.degraded("UserSecretUnusable");
    assert!(
        message.contains("spec.redis.existingSecret: Secret vault-made has no key `password`"),
        "{message}"
    );
    assert!(
        !h.calls()
            .iter()
            .any(|c| c.is_write() && !c.is_event() && !c.path.ends_with("/status")),
        "wrote something"
    );
}
