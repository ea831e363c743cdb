//! `plan`: preconditions, the children, the Secrets to create.

use serde_json::json;

use super::super::plan::{Desired, Plan, plan};
use super::*;
use crate::build::backup::RESTORE_CONTAINER;
use crate::status::Problem;

fn desired(plan: Plan) -> Desired {
    match plan {
        Plan::Apply(desired) => *desired,
        Plan::Stop(done) => panic!("stopped: {done:?}"),
    }
}

fn secret_names(desired: &Desired) -> (Vec<String>, Vec<String>) {
    let names = |s: &[k8s_openapi::api::core::v1::Secret]| {
        s.iter()
            .filter_map(|s| s.metadata.name.clone())
            .collect::<Vec<_>>()
    };
    (names(&desired.create), names(&desired.children.secrets))
}

/// Whether the store's pod template still restores from the source.
fn restores(desired: &Desired, sts: &str) -> bool {
    desired
        .children
        .stateful_sets
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(sts))
        .and_then(|s| {
            s.spec
                .as_ref()?
                .template
                .spec
                .as_ref()?
                .init_containers
                .clone()
        })
        .into_iter()
        .flatten()
        .any(|c| c.name == RESTORE_CONTAINER)
}

#[test]
fn a_held_secret_stops_everything_before_the_builders() {
    let mut w = with_credentials(world());
    w.held.push(conflict("Secret", "shop-redis"));
    let Plan::Stop(done) = plan(&stack(web_and(json!({"redis": {}}))), &w, None) else {
        panic!("applied despite a held Secret");
    };
    assert_eq!(done.findings, [conflict("Secret", "shop-redis")]);
    assert!(!done.went_ahead);
    assert_eq!(done.invalid, None);
}

#[test]
fn a_spec_the_builders_refuse_is_invalid_and_nothing_is_applied() {
    let spec = json!({"components": [{"name": "web", "image": "i", "port": 8080,
                      "autoscaling": {"minReplicas": 5, "maxReplicas": 2}}]});
    let Plan::Stop(done) = plan(&stack(spec), &world(), None) else {
        panic!("applied an invalid spec");
    };
    let Some(Problem::InvalidSpec(message)) = done.invalid else {
        panic!("not InvalidSpec: {done:?}");
    };
    assert!(
        message.contains("minReplicas (5) exceeds maxReplicas (2)"),
        "{message}"
    );
}

#[test]
fn generated_secrets_are_created_whole_and_left_out_of_the_child_set() {
    let mut w = with_credentials(world());
    w.generated = vec!["shop-redis".into(), "shop-redis-admin".into()];
    let d = desired(plan(&stack(web_and(json!({"redis": {}}))), &w, None));
    let (create, apply) = secret_names(&d);
    assert_eq!(create, ["shop-redis", "shop-redis-admin"]);
    assert!(apply.iter().all(|n| !create.contains(n)), "{apply:?}");
    // Created with everything an apply would send: labels, owner, data.
    let made = &d.create[0];
    assert!(made.metadata.owner_references.is_some());
    assert!(made.metadata.labels.is_some());
    assert!(
        made.data
            .as_ref()
            .is_some_and(|d| d.contains_key("password"))
    );
}

#[test]
fn secrets_read_are_applied_over_the_version_read() {
    let mut w = with_credentials(world());
    w.read_at.insert("shop-redis".into(), Some("41".into()));
    let d = desired(plan(&stack(web_and(json!({"redis": {}}))), &w, None));
    let version = |name: &str| {
        d.children
            .secrets
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(name))
            .and_then(|s| s.metadata.resource_version.clone())
    };
    assert_eq!(version("shop-redis"), Some("41".into()));
    assert_eq!(version("shop-redis-admin"), None);
    assert!(d.create.is_empty());
}

/// The restore record on the store's StatefulSet, as planned.
fn record(desired: &Desired, sts: &str) -> Option<String> {
    desired
        .children
        .stateful_sets
        .iter()
        .find(|s| s.metadata.name.as_deref() == Some(sts))
        .and_then(|s| crate::reconcile::restored::from(&s.metadata).map(str::to_string))
}

#[test]
fn a_store_restores_until_it_serves_and_then_records_it_with_the_roll() {
    let spec = web_and(json!({"redis": {}, "restore": {"from": "old-shop"}}));
    let mut w = with_credentials(world());
    serving(&mut w, &[(StoreKind::Redis, "shop-redis", false)]);
    let d = desired(plan(&stack(spec.clone()), &w, None));
    assert!(restores(&d, "shop-redis"));
    assert_eq!(record(&d, "shop-redis"), None);

    // Serving: the apply that drops the restore container records why.
    serving(&mut w, &[(StoreKind::Redis, "shop-redis", true)]);
    let d = desired(plan(&stack(spec), &w, None));
    assert!(!restores(&d, "shop-redis"));
    assert_eq!(record(&d, "shop-redis").as_deref(), Some("old-shop"));
}

#[test]
fn a_recorded_restore_holds_while_the_store_rolls() {
    let spec = web_and(json!({"redis": {}, "restore": {"from": "old-shop"}}));
    let mut w = with_credentials(world());
    serving(&mut w, &[(StoreKind::Redis, "shop-redis", false)]);
    w.seen.recorded.insert(StoreKind::Redis, "old-shop".into());
    let d = desired(plan(&stack(spec), &w, None));
    assert!(!restores(&d, "shop-redis"));
    assert_eq!(record(&d, "shop-redis").as_deref(), Some("old-shop"));
}

#[test]
fn a_restore_an_older_operator_kept_in_status_still_counts_and_is_recorded() {
    let spec = web_and(json!({"redis": {}, "restore": {"from": "old-shop"}}));
    let mut w = with_credentials(world());
    w.seen.legacy.insert(StoreKind::Redis, "old-shop".into());
    let d = desired(plan(&stack(spec), &w, None));
    assert!(!restores(&d, "shop-redis"));
    assert_eq!(record(&d, "shop-redis").as_deref(), Some("old-shop"));
}

#[test]
fn a_store_the_restore_does_not_name_is_neither_restored_nor_recorded() {
    let spec = web_and(json!({"redis": {}, "postgres": {},
                              "restore": {"from": "old-shop", "stores": ["postgres"]}}));
    let mut w = with_credentials(world());
    serving(
        &mut w,
        &[
            (StoreKind::Redis, "shop-redis", true),
            (StoreKind::Postgres, "shop-postgres", false),
        ],
    );
    let d = desired(plan(&stack(spec), &w, None));
    assert!(!restores(&d, "shop-redis") && record(&d, "shop-redis").is_none());
    assert!(restores(&d, "shop-postgres"));
}

#[test]
fn a_stack_without_stores_plans_its_component_and_no_secret() {
    let d = desired(plan(&stack(web_and(json!(null))), &world(), None));
    assert!(d.create.is_empty() && d.children.secrets.is_empty());
    let names: Vec<_> = d
        .children
        .deployments
        .iter()
        .filter_map(|d| d.metadata.name.clone())
        .collect();
    assert_eq!(names, ["shop-web"]);
}
