//! `plan` and `report` as pure functions over tables of observed worlds:
//! no API, no caches, no clock.

mod migrations;
mod plan;
mod problems;
mod report;
mod user_secrets;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStatus, StatefulSet, StatefulSetSpec, StatefulSetStatus,
};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::{Value, json};

use super::observe::{Seen, StoreSeen, World};
use super::report::{Done, Report, report as compute};
use crate::api::{AppStack, AppStackStatus, StoreKind, StoreStatus};
use crate::build::StoreCredentials;
use crate::reconcile::children::{Finding, Owner};

pub const PASSWORD: &str = "P@ss:w/rd#1%x";

/// A stack named shop in team-a, as the API server would hand it over.
pub fn stack(spec: Value) -> AppStack {
    with_status(spec, Value::Null)
}

pub fn with_status(spec: Value, status: Value) -> AppStack {
    let mut stack = json!({
        "apiVersion": "appstack.dev/v1alpha1", "kind": "AppStack",
        "metadata": {"name": "shop", "namespace": "team-a", "uid": "uid-shop", "generation": 2},
        "spec": spec,
    });
    if !status.is_null() {
        stack["status"] = status;
    }
    serde_json::from_value(stack).expect("a valid AppStack")
}

/// One component, and a Redis with or without more.
pub fn web_and(stores: Value) -> Value {
    let mut spec = json!({
        "components": [{"name": "web", "image": "shop:1", "port": 8080}],
        "tls": {"enabled": false},
        "networkPolicy": {"enabled": false},
    });
    if let Value::Object(stores) = stores {
        spec.as_object_mut().expect("an object").extend(stores);
    }
    spec
}

/// A world where nothing exists yet and nothing was read.
pub fn world() -> World {
    World {
        owner: Owner {
            namespace: "team-a".into(),
            name: "shop".into(),
            uid: "uid-shop".into(),
        },
        inputs: Default::default(),
        generated: Vec::new(),
        read_at: BTreeMap::new(),
        held: Vec::new(),
        issued: Vec::new(),
        seen: Seen::default(),
        backups: BTreeMap::new(),
        migration_logs: BTreeMap::new(),
        now: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
        user_secrets: BTreeMap::new(),
        secret_problems: Vec::new(),
        instances: None,
        redis_roles: None,
    }
}

/// Every store's credentials read from their Secrets, with `PASSWORD` the
/// apps' password of Redis.
pub fn with_credentials(mut world: World) -> World {
    for kind in [StoreKind::Redis, StoreKind::Postgres] {
        let creds = |user: &str, password: &str| StoreCredentials {
            username: user.into(),
            password: password.into(),
        };
        let app = if kind == StoreKind::Redis {
            PASSWORD
        } else {
            "pg-app-password-0123456789"
        };
        world.inputs.set(kind, creds("app", app));
        world
            .inputs
            .set_admin(kind, creds("admin", "admin-password-0123456789"));
        world
            .inputs
            .set_backup(kind, creds("backup", "backup-password-0123456789"));
        world.inputs.set_monitor(
            kind,
            creds("appstack_monitor", "monitor-password-0123456789"),
        );
    }
    world
}

/// The status of one store, as its engine reads it.
pub fn store(status: &AppStackStatus, kind: StoreKind) -> Option<&StoreStatus> {
    crate::build::stores::by_kind(kind)?.status(status)
}

pub fn sts(name: &str, ready: bool) -> Arc<StatefulSet> {
    Arc::new(StatefulSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            generation: Some(1),
            ..ObjectMeta::default()
        },
        spec: Some(StatefulSetSpec {
            replicas: Some(1),
            ..StatefulSetSpec::default()
        }),
        status: Some(StatefulSetStatus {
            observed_generation: Some(1),
            ready_replicas: Some(i32::from(ready)),
            replicas: 1,
            current_revision: Some("r1".into()),
            update_revision: Some("r1".into()),
            ..StatefulSetStatus::default()
        }),
    })
}

pub fn deployment(name: &str, ready: i32) -> Arc<Deployment> {
    Arc::new(Deployment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            generation: Some(1),
            ..ObjectMeta::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            ..DeploymentSpec::default()
        }),
        status: Some(DeploymentStatus {
            observed_generation: Some(1),
            ready_replicas: Some(ready),
            updated_replicas: Some(ready),
            available_replicas: Some(ready),
            replicas: Some(1),
            ..DeploymentStatus::default()
        }),
    })
}

/// The pod a store's StatefulSet runs, its containers in the given states.
pub fn store_pod(sts: &str, containers: Value, init: Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": format!("{sts}-0"), "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "StatefulSet", "name": sts,
            "uid": format!("uid-{sts}"), "controller": true}]},
        "status": {"containerStatuses": containers, "initContainerStatuses": init}
    }))
    .expect("a pod")
}

pub fn container(name: &str, state: Value) -> Value {
    json!({"name": name, "ready": false, "restartCount": 3, "image": "i", "imageID": "", "state": state})
}

pub fn crash_looping(name: &str, said: &str) -> Value {
    let mut c = container(name, json!({"waiting": {"reason": "CrashLoopBackOff"}}));
    c["lastState"] = json!({"terminated": {"exitCode": 1, "message": said}});
    c
}

/// The web component ready and, for each store, its StatefulSet.
pub fn serving(world: &mut World, stores: &[(StoreKind, &str, bool)]) {
    world
        .seen
        .deployments
        .insert("shop-web".into(), deployment("shop-web", 1));
    for (kind, name, ready) in stores {
        world.seen.stores.insert(
            *kind,
            StoreSeen {
                stateful_set: Some(sts(name, *ready)),
                pod: None,
            },
        );
    }
}

/// A world where everything of a web-only stack serves.
pub fn web_serving() -> World {
    let mut w = world();
    serving(&mut w, &[]);
    w
}

/// What apply did when it went ahead and found `findings`.
pub fn applied(findings: Vec<Finding>) -> Done {
    Done {
        went_ahead: true,
        findings,
        ..Done::default()
    }
}

pub fn run(stack: &AppStack, world: &World, done: &Done) -> Report {
    compute(stack, world, done)
}

/// A condition as (status, reason, message).
pub fn condition(report: &Report, type_: &str) -> (String, String, String) {
    let c = report
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition"));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

pub fn reasons(report: &Report) -> Vec<&str> {
    report.notices.iter().map(|n| n.reason.as_str()).collect()
}

pub fn conflict(kind: &'static str, name: &str) -> Finding {
    Finding::Conflict {
        kind,
        name: name.into(),
        holder: "belongs to AppStack other".into(),
    }
}

pub fn refused(kind: &'static str, name: &str, message: &str) -> Finding {
    Finding::Refused {
        kind,
        name: name.into(),
        message: message.into(),
    }
}
