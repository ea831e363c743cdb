//! The controller against a mocked API: kube's Client over tower-test, as
//! kube-rs/controller-rs does. Each test fills the watch caches with what the
//! watches would have shown, scripts the API server's answers that matter to
//! it, runs one reconcile and asserts on the requests it sent and on the
//! status it wrote. No cluster is needed. These cover the wiring (what is
//! read, written and published, in which order); what the pure phases
//! decide is tested over tables of observed worlds in `phases::tables`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use http::{Request, Response};
use kube::client::Body;
use kube::{Client, Resource};
use serde_json::{Value, json};

use super::children::fixture::Filled;
use super::context::Context;
use super::phases::{self, Next};
use crate::api::{AppStack, StoredAppStack};
use crate::error::Error;
use crate::telemetry::Metrics;

mod guard;
mod migration;
mod user_secrets;
mod wiring;

const NS: &str = "team-a";
const UID: &str = "uid-shop";

/// One request the controller sent.
#[derive(Clone, Debug)]
struct Call {
    method: String,
    path: String,
    query: String,
    body: Value,
    /// What the mocked API server answered.
    answer: Value,
}

impl Call {
    fn is_write(&self) -> bool {
        self.method != "GET"
    }
    fn is_event(&self) -> bool {
        self.path.contains("/events")
    }
    /// A create of a generated Secret: an apply that names a resourceVersion
    /// no object has.
    fn is_create(&self) -> bool {
        self.method == "PATCH"
            && self.path.contains("/secrets/")
            && self.body["metadata"]["resourceVersion"] == "9223372036854775807"
    }
    /// `PATCH deployments/shop-web`, `POST secrets/shop-redis`, ...
    fn short(&self) -> String {
        let parts: Vec<&str> = self.path.split('/').collect();
        let mut tail = match parts.iter().position(|p| *p == "namespaces") {
            Some(i) => parts[i + 2..].join("/"),
            None => self.path.clone(),
        };
        if let Some(name) = self.body["metadata"]["name"]
            .as_str()
            .filter(|_| self.method == "POST")
        {
            tail = format!("{tail}/{name}");
        }
        format!("{} {tail}", self.method)
    }
}

/// An answer the test scripts: for requests whose method is `method` and
/// whose path ends with `path`.
struct Rule {
    method: &'static str,
    path: String,
    code: u16,
    body: Value,
}

#[derive(Default)]
struct Server {
    calls: Vec<Call>,
    rules: Vec<Rule>,
    version: u64,
    /// What was written at each object path, like the API server's store.
    objects: BTreeMap<String, Value>,
}

struct Harness {
    filled: Filled,
    ctx: Arc<Context>,
    server: Arc<Mutex<Server>>,
    stack: AppStack,
}

/// RFC 7386, as the API server applies a merge patch.
fn json_patch_merge(into: &mut Value, patch: &Value) {
    match (into, patch) {
        (Value::Object(into), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    into.remove(key);
                } else {
                    json_patch_merge(into.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (into, patch) => *into = patch.clone(),
    }
}

fn status_body(code: u16, reason: &str, message: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason, "code": code})
}

impl Server {
    /// Keeps successful child writes (not events or status) for later GETs.
    fn remember(&mut self, call: &Call, code: u16, answer: &Value) {
        if code >= 300 || call.is_event() || call.path.ends_with("/status") {
            return;
        }
        match call.method.as_str() {
            "PATCH" => {
                self.objects.insert(call.path.clone(), answer.clone());
            }
            "POST" => {
                if let Some(name) = answer["metadata"]["name"].as_str() {
                    self.objects
                        .insert(format!("{}/{name}", call.path), answer.clone());
                }
            }
            "DELETE" => {
                self.objects.remove(&call.path);
            }
            _ => {}
        }
    }

    fn answer(&mut self, call: &Call, stack: &Value) -> (u16, Value) {
        // A POST's rule names the object it creates.
        let object = match call.body["metadata"]["name"].as_str() {
            Some(name) if call.method == "POST" => format!("{}/{name}", call.path),
            _ => call.path.clone(),
        };
        if let Some(rule) = self
            .rules
            .iter()
            .find(|r| r.method == call.method && object.ends_with(&r.path))
        {
            return (rule.code, rule.body.clone());
        }
        self.version += 1;
        let version = self.version.to_string();
        match call.method.as_str() {
            // What was written there last, like the API server's store.
            "GET" => match self.objects.get(&call.path) {
                Some(object) => (200, object.clone()),
                None => (404, status_body(404, "NotFound", "not found")),
            },
            "DELETE" => (
                200,
                json!({"kind": "Status", "apiVersion": "v1", "status": "Success"}),
            ),
            _ if call.path.ends_with("/status") => {
                let mut answer = stack.clone();
                answer["status"] = call.body["status"].clone();
                (200, answer)
            }
            _ => {
                let name = call.body["metadata"]["name"].as_str().unwrap_or_default();
                let path = match call.method.as_str() {
                    "POST" => format!("{}/{name}", call.path),
                    _ => call.path.clone(),
                };
                let stored = self.objects.get(&path);
                // What a GET finds exists: made before, or by someone else.
                let planted = self
                    .rules
                    .iter()
                    .any(|r| r.method == "GET" && r.code == 200 && path.ends_with(&r.path));
                if call.method == "POST" && (stored.is_some() || planted) {
                    return (409, status_body(409, "AlreadyExists", "already exists"));
                }
                let mut answer = match (stored, call.body.get("kind")) {
                    // A merge patch (of metadata): onto what is stored.
                    (Some(stored), None) => {
                        let mut merged = stored.clone();
                        json_patch_merge(&mut merged, &call.body);
                        merged
                    }
                    _ => call.body.clone(),
                };
                // Kinds with a generation count changes to their spec.
                if [
                    "deployments",
                    "statefulsets",
                    "cronjobs",
                    "horizontalpodautoscalers",
                    "poddisruptionbudgets",
                    "networkpolicies",
                ]
                .iter()
                .any(|kind| path.contains(&format!("/{kind}/")))
                {
                    let before = stored.and_then(|s| s["metadata"]["generation"].as_i64());
                    // A Deployment's counts its annotations too.
                    let annotations = |o: &Value| {
                        path.contains("/deployments/")
                            .then(|| o["metadata"]["annotations"].clone())
                    };
                    let same = stored.is_some_and(|s| {
                        s["spec"] == answer["spec"] && annotations(s) == annotations(&answer)
                    });
                    let generation = before.unwrap_or(0) + i64::from(!same);
                    answer["metadata"]["generation"] = generation.into();
                }
                answer["metadata"]["resourceVersion"] = version.into();
                (if call.method == "POST" { 201 } else { 200 }, answer)
            }
        }
    }
}

impl Harness {
    fn new(spec: Value) -> Self {
        let stack: AppStack = serde_json::from_value(json!({
            "apiVersion": "appstack.dev/v1alpha1",
            "kind": "AppStack",
            "metadata": {"name": "shop", "namespace": NS, "uid": UID, "generation": 1},
            "spec": spec,
        }))
        .expect("a valid AppStack");
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        let server = Arc::new(Mutex::new(Server::default()));
        let answering = server.clone();
        let stack_json = serde_json::to_value(&stack).expect("serializable");
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let (parts, body) = request.into_parts();
                let bytes = body.collect_bytes().await.unwrap_or_default();
                let call = Call {
                    method: parts.method.to_string(),
                    path: parts.uri.path().to_string(),
                    query: parts.uri.query().unwrap_or_default().to_string(),
                    body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
                    answer: Value::Null,
                };
                let (code, answer) = {
                    let mut server = answering.lock().expect("server lock");
                    let (code, answer) = server.answer(&call, &stack_json);
                    server.remember(&call, code, &answer);
                    server.calls.push(Call {
                        answer: answer.clone(),
                        ..call
                    });
                    (code, answer)
                };
                let response = Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&answer).expect("json")))
                    .expect("response");
                send.send_response(response);
            }
        });
        let client = Client::new(service, NS);
        let filled = Filled::new();
        let ctx = Arc::new(Context::new(
            client,
            filled.caches.clone(),
            Arc::new(Metrics::default()),
            Some("test".into()),
            Some("agent:test".into()),
        ));
        Self {
            filled,
            ctx,
            server,
            stack,
        }
    }

    /// The API server answers `method` requests on paths ending in `path`.
    fn answer(&self, method: &'static str, path: &str, code: u16, body: Value) {
        self.server.lock().expect("lock").rules.push(Rule {
            method,
            path: path.to_string(),
            code,
            body,
        });
    }

    fn refuse(&self, method: &'static str, path: &str, code: u16, message: &str) {
        self.answer(method, path, code, status_body(code, "Invalid", message));
    }

    /// The API server stops answering as scripted: every request succeeds.
    fn lift_refusals(&self) {
        self.server.lock().expect("lock").rules.clear();
    }

    async fn reconcile(&mut self) -> Result<Next, Error> {
        let result = phases::reconcile(&self.stack, &self.ctx).await;
        // The status the controller wrote is what the next reconcile sees.
        if let Some(status) = self
            .calls()
            .iter()
            .rev()
            .find(|c| c.path.ends_with("/status"))
        {
            self.stack.status = serde_json::from_value(status.body["status"].clone()).ok();
        }
        result
    }

    fn calls(&self) -> Vec<Call> {
        self.server.lock().expect("lock").calls.clone()
    }

    fn clear(&self) {
        self.server.lock().expect("lock").calls.clear();
    }

    /// Writes to children (events and status left out), as `METHOD kind/name`.
    fn child_writes(&self) -> Vec<String> {
        self.calls()
            .iter()
            .filter(|c| c.is_write() && !c.is_event() && !c.path.ends_with("/status"))
            .map(Call::short)
            .collect()
    }

    fn events(&self) -> Vec<Value> {
        self.calls()
            .iter()
            .filter(|c| c.is_event() && c.method == "POST")
            .map(|c| c.body.clone())
            .collect()
    }

    /// Whether the controller sent this write, e.g. `PATCH services/shop-web`.
    fn wrote(&self, write: &str) -> bool {
        self.child_writes().iter().any(|w| w == write)
    }

    /// Whether the controller created or applied this object, e.g.
    /// `services/shop-web`.
    fn wrote_to(&self, object: &str) -> bool {
        self.wrote(&format!("POST {object}")) || self.wrote(&format!("PATCH {object}"))
    }

    /// Refuses creating and applying the object at `path`.
    fn refuse_writes(&self, path: &str, code: u16, message: &str) {
        self.refuse("POST", path, code, message);
        self.refuse("PATCH", path, code, message);
    }

    /// Edits the object the API server holds at a path ending with `path`,
    /// as a user's write would, and delivers it to the caches as its watch.
    fn edit_on_server(&mut self, path: &str, edit: impl FnOnce(&mut Value)) {
        let object = {
            let mut server = self.server.lock().expect("lock");
            server.version += 1;
            let version = server.version.to_string();
            let (_, object) = server
                .objects
                .iter_mut()
                .find(|(k, _)| k.ends_with(path))
                .expect("an object there");
            edit(object);
            object["metadata"]["resourceVersion"] = version.into();
            object.clone()
        };
        self.filled.put(&object);
    }

    /// Deletes the object the API server holds at a path ending with `path`,
    /// and from the caches.
    fn delete_on_server(&mut self, path: &str) {
        let object = {
            let mut server = self.server.lock().expect("lock");
            let key = server
                .objects
                .keys()
                .find(|k| k.ends_with(path))
                .cloned()
                .expect("an object there");
            server.objects.remove(&key).expect("an object there")
        };
        self.filled.remove(&object);
    }

    /// Puts every object the controller applied or created into the caches,
    /// as the API server answered it, the way the watches deliver them.
    fn sync_caches(&mut self) {
        let answers: Vec<Value> = self
            .calls()
            .into_iter()
            .filter(|c| {
                (c.method == "PATCH" || c.method == "POST")
                    && !c.is_event()
                    && !c.path.ends_with("/status")
                    && c.answer["kind"].is_string()
                    && c.answer["kind"] != "Status"
            })
            .map(|c| c.answer)
            .collect();
        for o in answers {
            self.filled.put(&o);
        }
    }

    /// The Degraded condition's message, once it says True for `reason`.
    fn degraded(&self, reason: &str) -> String {
        let (status, actual, message) = self.condition("Degraded");
        assert_eq!(
            (status.as_str(), actual.as_str()),
            ("True", reason),
            "{message}"
        );
        message
    }

    fn condition(&self, type_: &str) -> (String, String, String) {
        let c = self
            .stack
            .status
            .as_ref()
            .and_then(|s| s.conditions.iter().find(|c| c.type_ == type_))
            .unwrap_or_else(|| panic!("no {type_} condition"));
        (c.status.clone(), c.reason.clone(), c.message.clone())
    }
}

const SHOP: &str = r#"{
  "components": [
    {"name": "web", "image": "shop:1", "port": 8080, "autoscaling": {"minReplicas": 2, "maxReplicas": 4}},
    {"name": "worker", "image": "shop:1", "port": 9000, "uses": ["postgres"]}
  ],
  "redis": {},
  "postgres": {}
}"#;

const WEB_ONLY: &str = r#"{"components": [{"name": "web", "image": "shop:1", "port": 8080}]}"#;

fn spec(text: &str) -> Value {
    serde_json::from_str(text).expect("json")
}

/// A child of ours as the caches would show it (made by an operator that
/// stamped nothing).
fn ours(kind: &str, api_version: &str, name: &str, version: &str) -> Value {
    let generation = [
        "Deployment",
        "StatefulSet",
        "CronJob",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "NetworkPolicy",
    ]
    .contains(&kind)
    .then_some(1);
    json!({
        "apiVersion": api_version, "kind": kind,
        "metadata": {
            "name": name, "namespace": NS, "resourceVersion": version, "generation": generation,
            "labels": {"app.kubernetes.io/instance": "shop", "app.kubernetes.io/managed-by": "appstack-operator"},
            "ownerReferences": [{"apiVersion": "appstack.dev/v1alpha1", "kind": "AppStack",
                                 "name": "shop", "uid": UID, "controller": true}]
        }
    })
}

fn held_by_other(kind: &str, api_version: &str, name: &str) -> Value {
    let mut o = ours(kind, api_version, name, "7");
    o["metadata"]["ownerReferences"][0]["name"] = "other".into();
    o["metadata"]["ownerReferences"][0]["uid"] = "uid-other".into();
    o
}

#[tokio::test]
async fn the_first_reconcile_creates_every_child_in_dependency_order() {
    let mut h = Harness::new(spec(SHOP));
    assert_eq!(h.reconcile().await.unwrap(), Next::Resync);
    // The apply phase creates the Secrets observe generated, stamped, in one
    // request each; the set leaves them be. Every other child is created in
    // one request.
    assert_eq!(
        h.child_writes(),
        [
            // Generated: created (see `is_create`) in one request each.
            "PATCH secrets/shop-ca-key",
            "PATCH secrets/shop-redis",
            "PATCH secrets/shop-redis-admin",
            "PATCH secrets/shop-redis-monitor",
            "PATCH secrets/shop-postgres",
            "PATCH secrets/shop-postgres-admin",
            "PATCH secrets/shop-postgres-monitor",
            // The rest: created by the set in one request each.
            "POST secrets/shop-ca",
            "POST secrets/shop-redis-tls",
            "POST secrets/shop-redis-passwords",
            "POST secrets/shop-postgres-tls",
            "POST secrets/shop-postgres-passwords",
            "POST networkpolicies/shop-redis",
            "POST networkpolicies/shop-postgres",
            "POST networkpolicies/shop-web",
            "POST networkpolicies/shop-worker",
            "POST services/shop-redis",
            "POST services/shop-redis-headless",
            "POST services/shop-postgres",
            "POST services/shop-postgres-headless",
            "POST services/shop-web",
            "POST services/shop-worker",
            "POST statefulsets/shop-redis",
            "POST statefulsets/shop-postgres",
            "POST deployments/shop-web",
            "POST deployments/shop-worker",
            "POST horizontalpodautoscalers/shop-web",
            "POST poddisruptionbudgets/shop-web",
        ]
    );
}

#[tokio::test]
async fn every_apply_is_server_side_with_one_field_manager_and_force() {
    let mut h = Harness::new(spec(WEB_ONLY));
    h.reconcile().await.unwrap();
    let patches: Vec<Call> = h
        .calls()
        .into_iter()
        .filter(|c| c.method == "PATCH")
        .collect();
    assert!(!patches.is_empty());
    for p in patches {
        assert!(
            p.query.contains("fieldManager=appstack-operator") && p.query.contains("force=true"),
            "{} {}",
            p.short(),
            p.query
        );
    }
}

#[tokio::test]
async fn a_new_child_costs_one_request_and_a_cached_one_none() {
    let mut h = Harness::new(spec(WEB_ONLY));
    h.reconcile().await.unwrap();
    let reads = |h: &Harness| {
        h.calls()
            .iter()
            .filter(|c| c.method == "GET")
            .map(Call::short)
            .collect::<Vec<_>>()
    };
    assert!(reads(&h).is_empty(), "{:?}", reads(&h));
    assert_eq!(
        h.child_writes(),
        [
            "POST networkpolicies/shop-web",
            "POST services/shop-web",
            "POST deployments/shop-web",
        ]
    );
    let create = h.calls().into_iter().find(|c| c.method == "POST").unwrap();
    assert!(
        create.query.contains("fieldManager=appstack-operator"),
        "{}",
        create.query
    );
    h.sync_caches();
    h.clear();
    h.reconcile().await.unwrap();
    assert!(reads(&h).is_empty(), "{:?}", reads(&h));
}

#[tokio::test]
async fn a_second_reconcile_writes_nothing() {
    let mut h = Harness::new(spec(SHOP));
    h.reconcile().await.unwrap();
    // The watches deliver what was applied: the caches show every child at
    // the resourceVersion the apply answered with.
    h.sync_caches();
    h.clear();
    h.reconcile().await.unwrap();
    assert!(
        h.child_writes().is_empty(),
        "children rewritten: {:?}",
        h.child_writes()
    );
    // The status may have moved once the caches showed the children; after
    // that, nothing is written at all.
    h.clear();
    h.reconcile().await.unwrap();
    let writes: Vec<String> = h
        .calls()
        .iter()
        .filter(|c| c.is_write())
        .map(Call::short)
        .collect();
    assert!(writes.is_empty(), "steady state wrote: {writes:?}");
    assert!(h.ctx.metrics.applies_skipped.get() > 0);
}

#[tokio::test]
async fn credentials_are_generated_once_and_then_only_read() {
    let mut h = Harness::new(spec(SHOP));
    h.reconcile().await.unwrap();
    let created: Vec<Call> = h.calls().into_iter().filter(Call::is_create).collect();
    // Each carries the stamp the set reads (so no second write follows).
    for c in &created {
        assert!(
            c.body["metadata"]["annotations"][crate::lean::STAMP].is_string(),
            "{}",
            c.body
        );
    }
    // The CA's, and the apps', the administrator's and the monitoring
    // user's of each store.
    assert_eq!(created.len(), 7);
    let names: Vec<&str> = created
        .iter()
        .filter_map(|c| c.body["metadata"]["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "shop-ca-key",
            "shop-redis",
            "shop-redis-admin",
            "shop-redis-monitor",
            "shop-postgres",
            "shop-postgres-admin",
            "shop-postgres-monitor"
        ]
    );
    for c in &created[1..] {
        let password = c.body["data"]["password"].as_str().unwrap_or_default();
        assert!(password.len() > 40, "a long generated password: {password}");
    }
    assert!(
        h.events()
            .iter()
            .any(|e| e["reason"] == "CredentialsGenerated"),
        "an Event says the credentials were generated"
    );
    h.sync_caches();
    h.clear();
    h.reconcile().await.unwrap();
    assert!(!h.calls().iter().any(Call::is_create), "no second Secret");
}

#[tokio::test]
async fn a_child_another_stack_holds_is_reported_while_the_rest_is_applied() {
    let mut h = Harness::new(spec(SHOP));
    h.filled
        .put(&held_by_other("Deployment", "apps/v1", "shop-worker"));
    assert_eq!(h.reconcile().await.unwrap(), Next::Soon);
    assert!(!h.wrote_to("deployments/shop-worker"));
    assert!(!h.wrote_to("deployments/shop-worker"));
    assert!(h.wrote_to("deployments/shop-web"));
    assert!(h.wrote_to("poddisruptionbudgets/shop-web"));
    let message = h.degraded("NameConflict");
    assert!(
        message.contains("Deployment shop-worker belongs to AppStack other"),
        "{message}"
    );
    assert_eq!(h.condition("Ready").0, "False");
    assert!(
        h.events()
            .iter()
            .any(|e| e["reason"] == "NameConflict" && e["type"] == "Warning")
    );
}

#[tokio::test]
async fn a_stack_waiting_for_a_name_is_woken_when_it_is_freed() {
    let mut h = Harness::new(spec(WEB_ONLY));
    h.filled.put(&held_by_other("Service", "v1", "shop-web"));
    h.reconcile().await.unwrap();
    let freed = super::children::Touched {
        namespace: NS.into(),
        name: "shop-web".into(),
        controller: Some("other".into()),
    };
    let woken: Vec<String> = h
        .ctx
        .waiting
        .stacks_to_wake(&freed)
        .into_iter()
        .map(|r| r.name)
        .collect();
    assert_eq!(woken, ["other", "shop"]);
}

#[tokio::test]
async fn an_object_made_by_hand_is_never_adopted() {
    let mut h = Harness::new(spec(WEB_ONLY));
    h.answer(
        "GET",
        "/services/shop-web",
        200,
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "shop-web", "namespace": NS}}),
    );
    h.reconcile().await.unwrap();
    // Its create was refused as a name taken; nothing else was tried.
    assert!(!h.wrote("PATCH services/shop-web"));
    assert!(h.wrote_to("deployments/shop-web"));
    let message = h.degraded("NameConflict");
    assert!(message.contains("was not created by AppStack"), "{message}");
}

#[tokio::test]
async fn a_secret_name_held_by_someone_else_stops_everything() {
    let mut h = Harness::new(spec(SHOP));
    h.answer(
        "GET",
        "/secrets/shop-redis",
        200,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "shop-redis", "namespace": NS},
               "data": {"password": "c2VjcmV0"}}),
    );
    assert_eq!(h.reconcile().await.unwrap(), Next::Soon);
    assert!(h.child_writes().is_empty(), "{:?}", h.child_writes());
    let message = h.degraded("NameConflict");
    assert!(message.contains("Secret shop-redis"), "{message}");
}

#[tokio::test]
async fn a_refused_deployment_does_not_stop_the_others_or_the_prune() {
    let mut h = Harness::new(spec(SHOP));
    h.refuse(
        "POST",
        "/deployments/shop-web",
        422,
        "Deployment.apps \"shop-web\" is invalid: spec.template.spec.containers[0].env[0].valueFrom.fieldRef.fieldPath: Unsupported value: \"spec.nope\"",
    );
    h.filled
        .put(&ours("Deployment", "apps/v1", "shop-old", "3"));
    assert_eq!(h.reconcile().await.unwrap(), Next::Backoff);
    for expected in [
        "POST deployments/shop-worker",
        "POST horizontalpodautoscalers/shop-web",
        "POST poddisruptionbudgets/shop-web",
        "DELETE deployments/shop-old",
    ] {
        assert!(
            h.wrote(expected),
            "{expected} missing from {:?}",
            h.child_writes()
        );
    }
    let message = h.degraded("ReconcileFailed");
    assert!(
        message.contains("Deployment shop-web") && message.contains("fieldPath"),
        "{message}"
    );
}

#[tokio::test]
async fn each_refusal_is_reported_with_its_own_cause() {
    let mut h = Harness::new(spec(SHOP));
    h.refuse("POST", "/deployments/shop-web", 422, "web is bad");
    h.refuse(
        "POST",
        "/deployments/shop-worker",
        403,
        "exceeded quota: pods",
    );
    h.reconcile().await.unwrap();
    let message = h.degraded("ReconcileFailed");
    assert!(
        message.contains("Deployment shop-web: web is bad (422)"),
        "{message}"
    );
    assert!(
        message.contains("Deployment shop-worker: exceeded quota: pods (403)"),
        "{message}"
    );
}

#[tokio::test]
async fn a_forbidden_change_to_an_existing_store_is_change_rejected_with_advice() {
    let mut h = Harness::new(spec(SHOP));
    h.filled
        .put(&ours("StatefulSet", "apps/v1", "shop-postgres", "5"));
    h.refuse(
        "PATCH",
        "/statefulsets/shop-postgres",
        422,
        "StatefulSet.apps \"shop-postgres\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas' are forbidden",
    );
    // Not retried with backoff: it cannot succeed until the user acts.
    assert_ne!(h.reconcile().await.unwrap(), Next::Backoff);
    let message = h.degraded("ChangeRejected");
    assert!(message.contains("--cascade=orphan"), "{message}");
    assert!(h.wrote_to("deployments/shop-web"));
}

#[tokio::test]
async fn a_new_store_the_api_server_refuses_is_not_a_forbidden_change() {
    let mut h = Harness::new(spec(SHOP));
    h.refuse(
        "POST",
        "/statefulsets/shop-redis",
        422,
        "StatefulSet.apps \"shop-redis\" is invalid: spec.volumeClaimTemplates[0].spec.storageClassName: Invalid value: \"Fast_SSD\"",
    );
    h.reconcile().await.unwrap();
    let message = h.degraded("ReconcileFailed");
    assert!(message.contains("storageClassName"), "{message}");
    assert!(!message.contains("--cascade=orphan"), "{message}");
}

#[tokio::test]
async fn prune_deletes_only_this_stacks_orphans() {
    let mut h = Harness::new(spec(WEB_ONLY));
    h.filled
        .put(&ours("Deployment", "apps/v1", "shop-old", "3"));
    h.filled.put(&ours("Service", "v1", "shop-old", "4"));
    // Another stack's child, and one that only carries our labels.
    h.filled
        .put(&held_by_other("Deployment", "apps/v1", "shop-b-old"));
    let mut labelled = ours("Deployment", "apps/v1", "shop-lookalike", "5");
    labelled["metadata"]["ownerReferences"] = json!([]);
    h.filled.put(&labelled);
    h.reconcile().await.unwrap();
    let deletes: Vec<String> = h
        .child_writes()
        .into_iter()
        .filter(|w| w.starts_with("DELETE"))
        .collect();
    assert_eq!(
        deletes,
        ["DELETE deployments/shop-old", "DELETE services/shop-old"]
    );
    assert!(h.events().iter().any(|e| e["reason"] == "Deleted"));
}

#[tokio::test]
async fn a_removed_store_goes_after_the_components_and_its_secret_last() {
    let mut h = Harness::new(spec(WEB_ONLY));
    h.filled.put(&ours("Secret", "v1", "shop-redis", "1"));
    h.filled.put(&ours("Service", "v1", "shop-redis", "2"));
    h.filled
        .put(&ours("StatefulSet", "apps/v1", "shop-redis", "3"));
    h.filled
        .put(&ours("Deployment", "apps/v1", "shop-worker", "4"));
    h.reconcile().await.unwrap();
    let deletes: Vec<String> = h
        .child_writes()
        .into_iter()
        .filter(|w| w.starts_with("DELETE"))
        .collect();
    assert_eq!(
        deletes,
        [
            "DELETE deployments/shop-worker",
            "DELETE statefulsets/shop-redis",
            "DELETE services/shop-redis",
            "DELETE secrets/shop-redis",
        ]
    );
}

#[tokio::test]
async fn a_failed_delete_is_reported_and_the_rest_still_pruned() {
    let mut h = Harness::new(spec(WEB_ONLY));
    h.filled
        .put(&ours("Deployment", "apps/v1", "shop-old", "3"));
    h.filled.put(&ours("Service", "v1", "shop-old", "4"));
    h.refuse(
        "DELETE",
        "/deployments/shop-old",
        403,
        "forbidden by policy",
    );
    assert_eq!(h.reconcile().await.unwrap(), Next::Backoff);
    assert!(h.wrote("DELETE services/shop-old"));
    let message = h.degraded("ReconcileFailed");
    assert!(
        message.contains("deleting it: forbidden by policy"),
        "{message}"
    );
}

#[tokio::test]
async fn an_invalid_spec_applies_and_prunes_nothing() {
    let mut h = Harness::new(spec(
        r#"{"components": [{"name": "web", "image": "i", "port": 1}, {"name": "web", "image": "i", "port": 2}]}"#,
    ));
    h.filled
        .put(&ours("Deployment", "apps/v1", "shop-web", "3"));
    h.reconcile().await.unwrap();
    assert!(h.child_writes().is_empty(), "{:?}", h.child_writes());
    let message = h.degraded("InvalidSpec");
    assert!(message.starts_with("spec.components[1].name"), "{message}");
}

#[tokio::test]
async fn status_turns_ready_when_the_children_are() {
    let mut h = Harness::new(spec(
        r#"{"components": [{"name": "web", "image": "i", "port": 1, "replicas": 2}], "redis": {}}"#,
    ));
    h.reconcile().await.unwrap();
    let mut web = ours("Deployment", "apps/v1", "shop-web", "9");
    web["metadata"]["generation"] = 1.into();
    web["spec"] = json!({"replicas": 2, "selector": {}, "template": {}});
    web["status"] = json!({"observedGeneration": 1, "replicas": 2, "readyReplicas": 2, "updatedReplicas": 2, "availableReplicas": 2});
    let mut redis = ours("StatefulSet", "apps/v1", "shop-redis", "9");
    redis["metadata"]["generation"] = 1.into();
    redis["spec"] = json!({"replicas": 1, "selector": {}, "template": {}, "serviceName": "x"});
    redis["status"] = json!({"observedGeneration": 1, "replicas": 1, "readyReplicas": 1, "currentRevision": "a", "updateRevision": "a"});
    h.filled.put(&web);
    h.filled.put(&redis);
    h.reconcile().await.unwrap();
    let (status, reason, _) = h.condition("Ready");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "AllReady"));
    let s = h.stack.status.clone().unwrap();
    assert_eq!(s.components_ready.as_deref(), Some("1/1"));
    assert!(s.redis.is_some_and(|r| r.ready));
}

#[tokio::test]
async fn a_child_someone_edited_is_applied_again() {
    let mut h = Harness::new(spec(WEB_ONLY));
    h.reconcile().await.unwrap();
    h.sync_caches();
    h.clear();
    // A user's edit of the spec moves its generation.
    h.edit_on_server("/deployments/shop-web", |d| {
        d["spec"]["template"]["spec"]["containers"][0]["image"] = "evil:1".into();
        d["metadata"]["generation"] = 2.into();
    });
    h.reconcile().await.unwrap();
    // Reverted, in one write: spec and stamp move the generation once.
    assert_eq!(h.child_writes(), ["PATCH deployments/shop-web"]);
    let calls = h.calls();
    let last = calls
        .iter()
        .rev()
        .find(|c| c.method == "PATCH" && c.path.ends_with("/deployments/shop-web"))
        .unwrap();
    assert_eq!(
        last.body["spec"]["template"]["spec"]["containers"][0]["image"],
        "shop:1"
    );
    assert!(
        last.body["metadata"]["annotations"][crate::lean::STAMP]
            .as_str()
            .unwrap()
            .ends_with(" g3")
    );
    // And then left alone.
    h.sync_caches();
    h.clear();
    h.reconcile().await.unwrap();
    assert!(h.child_writes().is_empty(), "{:?}", h.child_writes());
}

#[tokio::test]
async fn status_written_by_others_and_labels_changed_by_hand() {
    let mut h = Harness::new(spec(WEB_ONLY));
    h.reconcile().await.unwrap();
    h.sync_caches();
    h.clear();
    // The controller manager writes the status: resourceVersion moves,
    // the generation does not.
    h.edit_on_server("/deployments/shop-web", |d| {
        d["status"] = json!({"observedGeneration": 1, "replicas": 1});
    });
    h.reconcile().await.unwrap();
    assert!(h.child_writes().is_empty(), "{:?}", h.child_writes());
    // A label of ours removed by hand: applied again, and nothing else.
    h.edit_on_server("/services/shop-web", |s| {
        s["metadata"]["labels"]
            .as_object_mut()
            .unwrap()
            .remove("app.kubernetes.io/instance");
    });
    h.reconcile().await.unwrap();
    assert_eq!(h.child_writes(), ["PATCH services/shop-web"]);
}

#[tokio::test]
async fn a_restarted_operator_writes_nothing_that_is_as_stamped() {
    let mut h = Harness::new(spec(WEB_ONLY));
    h.reconcile().await.unwrap();
    h.sync_caches();
    // A new operator: same caches, nothing remembered.
    h.ctx.forget_stack(NS, "shop");
    h.clear();
    h.reconcile().await.unwrap();
    assert!(h.child_writes().is_empty(), "{:?}", h.child_writes());
    // What it checked it now remembers: a Service written since is applied.
    h.edit_on_server("/services/shop-web", |s| {
        s["spec"]["ports"][0]["port"] = 1.into();
    });
    h.reconcile().await.unwrap();
    assert_eq!(h.child_writes(), ["PATCH services/shop-web"]);
}

#[tokio::test]
async fn a_child_deleted_by_someone_is_recreated() {
    let mut h = Harness::new(spec(WEB_ONLY));
    h.reconcile().await.unwrap();
    h.sync_caches();
    h.clear();
    h.delete_on_server("/services/shop-web");
    h.reconcile().await.unwrap();
    assert_eq!(h.child_writes(), ["POST services/shop-web"]);
}

#[tokio::test]
async fn a_stack_being_deleted_is_left_to_the_garbage_collector() {
    let mut h = Harness::new(spec(WEB_ONLY));
    h.stack.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::now()),
    );
    h.filled
        .put(&ours("Deployment", "apps/v1", "shop-old", "3"));
    assert_eq!(h.reconcile().await.unwrap(), Next::Resync);
    assert!(h.calls().is_empty(), "{:?}", h.calls());
}

#[tokio::test]
async fn an_unreachable_api_server_fails_the_reconcile() {
    let mut h = Harness::new(spec(SHOP));
    h.answer(
        "GET",
        "/secrets/shop-redis",
        500,
        status_body(500, "InternalError", "etcd is down"),
    );
    let error = h.reconcile().await.unwrap_err();
    assert_eq!(error.metric_label(), "Read");
    assert!(error.to_string().contains("etcd is down"), "{error}");
}

#[tokio::test]
async fn autoscaling_hands_the_replica_count_over_before_releasing_it() {
    let mut h = Harness::new(spec(SHOP));
    let mut web = ours("Deployment", "apps/v1", "shop-web", "4");
    web["spec"] = json!({"replicas": 4, "selector": {}, "template": {}});
    web["metadata"]["managedFields"] = json!([{
        "manager": "appstack-operator", "operation": "Apply", "apiVersion": "apps/v1",
        "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}, "f:template": {}}}
    }]);
    h.filled.put(&web);
    h.reconcile().await.unwrap();
    let patches: Vec<Call> = h
        .calls()
        .into_iter()
        .filter(|c| c.method == "PATCH" && c.path.ends_with("/deployments/shop-web"))
        .collect();
    assert_eq!(patches.len(), 2, "hand-off, then our apply");
    assert!(
        patches[0]
            .query
            .contains("fieldManager=appstack-replicas-handoff")
    );
    assert_eq!(patches[0].body["spec"]["replicas"], 4);
    assert!(patches[1].body["spec"].get("replicas").is_none());
}

#[tokio::test]
async fn no_hand_off_once_our_manager_released_the_count() {
    let mut h = Harness::new(spec(SHOP));
    let mut web = ours("Deployment", "apps/v1", "shop-web", "4");
    web["spec"] = json!({"replicas": 4, "selector": {}, "template": {}});
    h.filled.put(&web);
    h.reconcile().await.unwrap();
    assert!(
        !h.calls()
            .iter()
            .any(|c| c.query.contains("appstack-replicas-handoff"))
    );
}

#[tokio::test]
async fn the_memo_forgets_a_deleted_stack() {
    let mut h = Harness::new(spec(WEB_ONLY));
    h.reconcile().await.unwrap();
    assert!(h.ctx.memo.len() > 0);
    h.ctx.forget_stack(NS, "shop");
    assert_eq!(h.ctx.memo.len(), 0);
}

#[tokio::test]
async fn status_uses_the_stacks_kind_and_the_status_subresource() {
    let mut h = Harness::new(spec(WEB_ONLY));
    h.reconcile().await.unwrap();
    let status = h
        .calls()
        .into_iter()
        .find(|c| c.path.ends_with("/status"))
        .expect("a status write");
    assert_eq!(status.method, "PATCH");
    assert_eq!(status.body["kind"], AppStack::kind(&()).as_ref());
    assert!(status.query.contains("fieldManager=appstack-operator"));
}

#[tokio::test]
async fn a_component_is_never_wired_to_a_store_another_stack_holds() {
    let mut h = Harness::new(spec(SHOP));
    // Another stack holds the name of this stack's Redis Service.
    h.filled.put(&held_by_other("Service", "v1", "shop-redis"));
    assert_eq!(h.reconcile().await.unwrap(), Next::Soon);
    // web uses Redis: not applied, its password must not reach their pods.
    assert!(!h.wrote_to("deployments/shop-web"));
    // worker uses only PostgreSQL: applied.
    assert!(h.wrote_to("deployments/shop-worker"));
    let message = h.degraded("NameConflict");
    assert!(
        message.contains("Service shop-redis belongs to AppStack other"),
        "{message}"
    );
    assert!(
        message.contains("Deployment shop-web not applied: it would be wired to shop-redis"),
        "{message}"
    );
}

#[tokio::test]
async fn a_stored_stack_that_does_not_decode_is_reported_on_itself_once() {
    let h = Harness::new(spec(WEB_ONLY));
    let mut stored: StoredAppStack = serde_json::from_value(json!({
        "apiVersion": "appstack.dev/v1alpha1", "kind": "AppStack",
        "metadata": {"name": "shop", "namespace": NS, "uid": UID, "generation": 2},
        "spec": {"components": [{"name": "web", "image": "i", "port": 80,
                 "livenessProbe": {"periodSeconds": 4_294_967_296_u64}}]}
    }))
    .expect("decodes as stored");
    let reason = stored.decoded.clone().unwrap_err();
    phases::report_undecodable(&h.ctx, &stored, &reason)
        .await
        .unwrap();
    let status = h
        .calls()
        .into_iter()
        .find(|c| c.path.ends_with("/status"))
        .expect("status written");
    let degraded = status.body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Degraded")
        .cloned()
        .unwrap();
    assert_eq!(degraded["status"], "True");
    assert_eq!(degraded["reason"], "InvalidSpec");
    let message = degraded["message"].as_str().unwrap();
    assert!(
        message.contains("spec.components[0].livenessProbe.periodSeconds"),
        "{message}"
    );
    assert_eq!(status.body["status"]["observedGeneration"], 2);
    assert_eq!(h.events().len(), 1);
    assert!(h.child_writes().is_empty());
    // Once status says so, the next look writes nothing and sends no Event.
    stored.status = serde_json::from_value(status.body["status"].clone()).ok();
    h.clear();
    phases::report_undecodable(&h.ctx, &stored, &reason)
        .await
        .unwrap();
    assert!(h.calls().is_empty(), "{:?}", h.calls());
}

#[tokio::test]
async fn the_caches_keep_nothing_of_a_labelled_secret_but_its_metadata() {
    let mut h = Harness::new(spec(WEB_ONLY));
    let mut big = ours("Secret", "v1", "junk", "1");
    let blob = "x".repeat(600 * 1024);
    let bytes = |s: &str| k8s_openapi::ByteString(s.as_bytes().to_vec());
    let data: std::collections::BTreeMap<String, k8s_openapi::ByteString> = [
        ("blob".to_string(), bytes(&blob)),
        ("password".to_string(), bytes(&blob)),
        ("username".to_string(), bytes("u")),
    ]
    .into();
    big["data"] = serde_json::to_value(data).unwrap();
    big["metadata"]["annotations"] = json!({"note": blob});
    h.filled.put(&big);
    let cached: Arc<super::children::Meta<k8s_openapi::api::core::v1::Secret>> =
        h.ctx.caches.get(NS, "junk").expect("cached");
    let size = serde_json::to_vec(&*cached).unwrap().len();
    assert!(size < 2048, "cached copy is {size} bytes");
}

/// The store's StatefulSet as the cache shows it, not ready, and its pod
/// as the API server answers a GET, controlled by it.
fn unready_store(h: &mut Harness, name: &str, containers: Value) {
    let mut sts = ours("StatefulSet", "apps/v1", name, "5");
    sts["metadata"]["uid"] = json!(format!("{name}-uid"));
    sts["spec"] = json!({"replicas": 1, "selector": {}, "serviceName": "", "template": {}});
    sts["status"] = json!({"replicas": 1, "readyReplicas": 0});
    h.filled.put(&sts);
    h.answer(
        "GET",
        &format!("/pods/{name}-0"),
        200,
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": format!("{name}-0"), "namespace": NS,
                            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": name,
                                                 "uid": format!("{name}-uid"), "controller": true}]},
               "status": {"phase": "Running", "containerStatuses": containers}}),
    );
}

fn crash_looping(name: &str, message: &str) -> Value {
    json!({"name": name, "ready": false, "restartCount": 3, "image": "i", "imageID": "",
           "state": {"waiting": {"reason": "CrashLoopBackOff"}},
           "lastState": {"terminated": {"exitCode": 1, "message": message}}})
}

fn running(name: &str) -> Value {
    json!({"name": name, "ready": false, "restartCount": 0, "image": "i", "imageID": "",
           "state": {"running": {}}})
}

#[tokio::test]
async fn a_store_that_refuses_its_secret_is_credentials_out_of_sync() {
    let mut h = Harness::new(spec(SHOP));
    unready_store(
        &mut h,
        "shop-postgres",
        json!([
            running("postgres"),
            crash_looping(
                "credentials",
                "PostgreSQL refuses the credentials of Secret shop-postgres: role \"app\" is not permitted to log in"
            )
        ]),
    );
    assert_eq!(h.reconcile().await.unwrap(), Next::Soon);
    let message = h.degraded("CredentialsOutOfSync");
    assert!(
        message.starts_with("postgres: PostgreSQL refuses"),
        "{message}"
    );
    assert!(message.contains("not permitted to log in"), "{message}");
    assert!(
        h.calls().iter().any(|c| c.is_event()),
        "a Warning Event says it too"
    );
}

#[tokio::test]
async fn network_policies_switched_off_are_deleted() {
    let mut off = spec(SHOP);
    off["networkPolicy"] = json!({"enabled": false});
    let mut h = Harness::new(off);
    h.filled.put(&ours(
        "NetworkPolicy",
        "networking.k8s.io/v1",
        "shop-redis",
        "3",
    ));
    h.reconcile().await.unwrap();
    assert!(h.wrote("DELETE networkpolicies/shop-redis"));
    assert!(!h.wrote_to("networkpolicies/shop-web"));
}

#[tokio::test]
async fn redis_apps_that_used_the_administrator_move_to_their_own_user() {
    let mut h = Harness::new(spec(SHOP));
    // A Secret of the release before the apps' ACL user: username default.
    let mut legacy = ours("Secret", "v1", "shop-redis", "4");
    legacy["data"] = json!({"username": "ZGVmYXVsdA==", "password": "b2xkLXBhc3N3b3Jk"});
    h.answer("GET", "/secrets/shop-redis", 200, legacy);
    h.reconcile().await.unwrap();
    let applied = h
        .calls()
        .into_iter()
        .find(|c| c.method == "PATCH" && c.path.ends_with("/secrets/shop-redis"))
        .expect("the apps' Secret applied");
    let data = &applied.body["data"];
    let decode = |k: &str| {
        let bytes: k8s_openapi::ByteString = serde_json::from_value(data[k].clone()).unwrap();
        String::from_utf8(bytes.0).unwrap()
    };
    assert_eq!(decode("username"), "app");
    assert_eq!(decode("password"), "old-password", "the password is kept");
    assert_eq!(
        decode("url"),
        format!("rediss://app:old-password@shop-redis.{NS}.svc:6379/0")
    );
}

#[tokio::test]
async fn a_password_edited_during_the_reconcile_is_never_written_back() {
    let mut h = Harness::new(spec(SHOP));
    let mut read = ours("Secret", "v1", "shop-redis", "4");
    read["data"] = json!({"username": "YXBw", "password": "b2xkLXBhc3N3b3Jk"});
    h.answer("GET", "/secrets/shop-redis", 200, read);
    // Someone changed the Secret after the reconcile read it.
    h.answer(
        "PATCH",
        "/secrets/shop-redis",
        409,
        status_body(409, "Conflict", "the object has been modified"),
    );
    assert_eq!(h.reconcile().await.unwrap(), Next::Soon);
    let applied = h
        .calls()
        .into_iter()
        .find(|c| c.method == "PATCH" && c.path.ends_with("/secrets/shop-redis"))
        .expect("the apps' Secret applied");
    assert_eq!(
        applied.body["metadata"]["resourceVersion"], "4",
        "applied only over the version read"
    );
    let (status, reason, _) = h.condition("Degraded");
    assert_eq!((status.as_str(), reason.as_str()), ("False", "AsExpected"));
}

/// A stack whose Redis is backed up, its backup CronJob cached, and the
/// labels the CronJob's Jobs and pods carry (which anyone can copy).
fn backed_up() -> (Harness, Value) {
    let mut h = Harness::new(spec(
        r#"{"components": [{"name": "web", "image": "shop:1", "port": 8080}], "redis": {"backup": {}}}"#,
    ));
    let mut cron = ours("CronJob", "batch/v1", "shop-redis-backup", "1");
    cron["metadata"]["uid"] = json!("cron-uid");
    h.filled.put(&cron);
    let labels = json!({"app.kubernetes.io/instance": "shop", "app.kubernetes.io/name": "redis-backup",
                        "app.kubernetes.io/managed-by": "appstack-operator"});
    (h, labels)
}

/// The Redis backup pods, as observe finds them.
async fn redis_backup_pods(h: &Harness) -> Vec<k8s_openapi::api::core::v1::Pod> {
    let engine = crate::build::stores::ENGINES
        .iter()
        .find(|e| e.kind() == crate::api::StoreKind::Redis)
        .copied()
        .expect("a Redis engine");
    super::backups::pods(&h.ctx, &h.stack, engine)
        .await
        .expect("listed")
}

fn controlled_by(kind: &str, name: &str, uid: &str) -> Value {
    json!([{"apiVersion": "batch/v1", "kind": kind, "name": name, "uid": uid, "controller": true}])
}

#[tokio::test]
async fn backup_pods_are_those_its_jobs_control_not_any_with_their_labels() {
    let (h, labels) = backed_up();
    let job = |name: &str, uid: &str, owner: &str| {
        json!({"metadata": {"name": name, "namespace": NS, "uid": uid, "labels": labels,
                            "ownerReferences": controlled_by("CronJob", "shop-redis-backup", owner)}})
    };
    h.answer(
        "GET",
        "/jobs",
        200,
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": {},
               "items": [job("shop-redis-backup-1", "job-uid", "cron-uid"), job("copy", "copy-uid", "other")]}),
    );
    let summary = json!({"label": "20260101T000000Z", "completed": "2026-01-01T00:00:00Z", "sizeBytes": 1,
                         "count": 1, "totalBytes": 1, "firstRecoverable": "2026-01-01T00:00:00Z",
                         "lastRecoverable": "2026-01-01T00:00:00Z"});
    let pod = |name: &str, owner: &str, phase: &str, code: i32, message: String| {
        let mut labels = labels.clone();
        // The Job controller's label, copied: the tenant's pod claims our Job.
        labels["batch.kubernetes.io/controller-uid"] = json!("job-uid");
        if owner != "job-uid" {
            let heavy = crate::lean::tests::megabyte_of_labels();
            labels.as_object_mut().expect("labels").extend(heavy);
        }
        json!({"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": name, "namespace": NS, "labels": labels,
                            "ownerReferences": controlled_by("Job", "shop-redis-backup-1", owner)},
               "status": {"phase": phase, "containerStatuses": [{"name": "backup", "ready": false,
                   "restartCount": 0, "image": "i", "imageID": "",
                   "state": {"terminated": {"exitCode": code, "message": message,
                                            "finishedAt": "2026-01-01T00:00:00Z"}}}]}})
    };
    h.answer(
        "GET",
        "/pods",
        200,
        json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [
            pod("shop-redis-backup-1-x", "job-uid", "Succeeded", 0, summary.to_string()),
            pod("planted", "fake-uid", "Failed", 1, "planted failure".into()),
        ]}),
    );
    let pods = redis_backup_pods(&h).await;
    assert_eq!(pods.len(), 1, "{pods:?}");
    let redis = crate::status::backup(&pods, &crate::redact::Known::default());
    assert_eq!(redis.last_successful.as_deref(), Some("20260101T000000Z"));
    assert_eq!(redis.last_failure, None, "{redis:?}");
    let calls = h.calls();
    let pods = calls
        .iter()
        .find(|c| c.path.ends_with("/pods"))
        .expect("pods listed");
    assert!(pods.query.contains("job-uid"), "{}", pods.query);
    assert!(!pods.query.contains("copy-uid"), "{}", pods.query);
    // One object a page: a response never holds more than one planted
    // object of 1.5 MB.
    for list in calls.iter().filter(|c| c.method == "GET") {
        assert!(
            list.query.contains("limit=1&") || list.query.ends_with("limit=1"),
            "{}",
            list.query
        );
    }
}

#[tokio::test]
async fn a_backup_lookup_reads_a_bounded_number_of_pages() {
    let (h, labels) = backed_up();
    let fake = json!({"metadata": {"name": "copy", "namespace": NS, "uid": "copy-uid", "labels": labels,
                                   "ownerReferences": controlled_by("CronJob", "x", "other")}});
    h.answer(
        "GET",
        "/jobs",
        200,
        json!({"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList",
               "metadata": {"continue": "more"}, "items": vec![fake; 10]}),
    );
    assert!(redis_backup_pods(&h).await.is_empty());
    let calls = h.calls();
    let lists = calls.iter().filter(|c| c.path.ends_with("/jobs")).count();
    assert_eq!(lists, super::backups::MAX_OBJECTS);
    assert_eq!(super::backups::PAGE, 1);
    assert!(!calls.iter().any(|c| c.path.ends_with("/pods")));
}

#[tokio::test]
async fn a_cronjob_this_stack_does_not_control_finds_no_backup_pods() {
    let (mut h, _) = backed_up();
    let mut cron = ours("CronJob", "batch/v1", "shop-redis-backup", "2");
    cron["metadata"]["uid"] = json!("cron-uid");
    cron["metadata"]["ownerReferences"] = controlled_by("AppStack", "other", "other-uid");
    h.filled.put(&cron);
    assert!(redis_backup_pods(&h).await.is_empty());
    assert!(h.calls().is_empty(), "{:?}", h.calls());
}
#[tokio::test]
async fn a_password_a_store_quotes_reaches_neither_status_nor_events() {
    let mut h = Harness::new(spec(SHOP));
    let mut secret = ours("Secret", "v1", "shop-redis", "4");
    // username app, password "P@ss:w/rd#1%x"
    secret["data"] = json!({"username": "YXBw", "password": "UEBzczp3L3JkIzElcQ=="});
    h.answer("GET", "/secrets/shop-redis", 200, secret);
    unready_store(
        &mut h,
        "shop-redis",
        json!([
            crash_looping(
                "redis",
                "*** FATAL CONFIG FILE ERROR ***\n>>> 'user app on >P@ss:w/rd#1%q ~*'\nconnecting to rediss://app:P%40ss%3Aw%2Frd%231%25q@shop-redis failed"
            ),
            running("credentials")
        ]),
    );
    h.reconcile().await.unwrap();
    let message = h.degraded("StoreFailing");
    assert!(
        message.contains(">>> 'user app on >[redacted] ~*' | connecting to rediss://app:[redacted]@shop-redis failed"),
        "{message}"
    );
    let written = serde_json::to_string(&(
        h.events(),
        h.calls()
            .iter()
            .filter(|c| c.path.ends_with("/status"))
            .map(|c| c.body.clone())
            .collect::<Vec<_>>(),
    ))
    .unwrap();
    assert!(written.contains("[redacted]"), "{written}");
    for password in ["P@ss:w/rd#1%q", "P%40ss%3Aw%2Frd%231%25q"] {
        assert!(!written.contains(password), "{password} in {written}");
    }
}

#[tokio::test]
async fn a_generated_secret_the_watch_has_not_delivered_is_applied_over_the_version_read() {
    let mut h = Harness::new(spec(SHOP));
    h.reconcile().await.unwrap();
    // No sync_caches: the watch lags, the API server has the Secrets.
    h.clear();
    h.reconcile().await.unwrap();
    let calls = h.calls();
    let posted: Vec<&Call> = calls
        .iter()
        .filter(|c| c.method == "POST" && c.path.ends_with("/secrets"))
        .collect();
    assert!(!posted.is_empty(), "{:?}", h.child_writes());
    for c in &posted {
        assert!(
            c.body["metadata"]["resourceVersion"].is_null(),
            "a POST names no resourceVersion: {}",
            c.body
        );
    }
    // Found taken by this stack: applied, over the version observe read.
    let applied = calls
        .iter()
        .find(|c| c.method == "PATCH" && c.path.ends_with("/secrets/shop-redis"))
        .expect("the Secret applied");
    assert!(applied.body["metadata"]["resourceVersion"].is_string());
    assert!(!calls.iter().any(Call::is_create), "no second create");
}
