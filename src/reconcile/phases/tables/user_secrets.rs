//! Users' Secrets (external stores, existingSecret): missing, lacking a
//! key, refused; what plan and report make of them.

use serde_json::json;

use super::super::plan::{Plan, plan};
use super::super::report::Done;
use super::*;
use crate::build::external::UserSecret;
use crate::reconcile::phases::Next;
use crate::status::Problem;

fn external_pg() -> Value {
    web_and(json!({"postgres": {"external": {"secretName": "db-conn"}}}))
}

fn user(name: &str, data: &[(&str, &str)]) -> UserSecret {
    UserSecret {
        name: name.into(),
        data: data
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

fn stopped(plan: Plan) -> Done {
    match plan {
        Plan::Stop(done) => done,
        Plan::Apply(d) => panic!("applied: {:?}", d.children.deployments.len()),
    }
}

/// Missing or refused Secrets are found by observe: nothing is applied,
/// and status names the field and the Secret.
#[test]
fn a_missing_secret_stops_everything_and_names_field_and_secret() {
    let mut w = world();
    w.user_secrets.insert("db-conn".into(), false);
    w.secret_problems.push(
        "spec.postgres.external.secretName: Secret db-conn does not exist in this namespace; the components wait until it does".into(),
    );
    let stack = stack(external_pg());
    let done = stopped(plan(&stack, &w, None));
    let Some(Problem::UserSecret(message)) = &done.invalid else {
        panic!("not UserSecret: {done:?}");
    };
    assert!(
        message.contains("spec.postgres.external.secretName"),
        "{message}"
    );
    assert!(message.contains("Secret db-conn"), "{message}");
    let r = compute(&stack, &w, &done);
    let ready = r
        .status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "UserSecretUnusable")
    );
    // No watch reports an unlabelled (or missing) Secret: look again soon.
    assert_eq!(r.next, Next::Poll);
    assert_eq!(r.user_secrets, ["db-conn"]);
}

/// A key missing from a Secret that exists is found by the builder.
#[test]
fn a_missing_key_stops_everything_and_names_the_key() {
    for (data, key) in [
        (
            vec![("host", "db"), ("username", "u"), ("database", "d")],
            "`password`",
        ),
        (
            vec![("password", "p"), ("username", "u"), ("database", "d")],
            "`host`",
        ),
        (vec![("url", "postgresql://u:p@db/")], "`database`"),
    ] {
        let mut w = world();
        w.user_secrets.insert("db-conn".into(), true);
        w.inputs
            .set_external(StoreKind::Postgres, user("db-conn", &data));
        let done = stopped(plan(&stack(external_pg()), &w, None));
        let Some(Problem::UserSecret(message)) = &done.invalid else {
            panic!("not UserSecret: {done:?}");
        };
        assert!(
            message.starts_with("spec.postgres.external.secretName: Secret db-conn: key"),
            "{message}"
        );
        assert!(message.contains(key), "{key}: {message}");
    }
}

/// A usable Secret: the operator's own Secret and the components, no
/// StatefulSet; a labelled Secret needs no polling.
#[test]
fn a_usable_secret_gives_the_stores_secret_and_no_statefulset() {
    let mut w = world();
    w.user_secrets.insert("db-conn".into(), true);
    w.inputs.set_external(
        StoreKind::Postgres,
        user(
            "db-conn",
            &[("url", "postgres://shop:pw@db.example:5433/shop")],
        ),
    );
    let stack = stack(external_pg());
    let Plan::Apply(d) = plan(&stack, &w, None) else {
        panic!("stopped");
    };
    assert!(d.children.stateful_sets.is_empty());
    assert!(
        d.create.is_empty(),
        "nothing generated for an external store"
    );
    let names: Vec<_> = d
        .children
        .secrets
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    assert_eq!(names, ["shop-postgres"]);
    assert_eq!(d.children.deployments.len(), 1);
    let done = Done {
        went_ahead: true,
        ..Done::default()
    };
    assert_eq!(compute(&stack, &w, &done).next, Next::Resync);
}

/// A password only in the user's Secret is never quoted in status.
#[test]
fn an_external_password_is_redacted_from_status() {
    let mut w = world();
    w.user_secrets.insert("db-conn".into(), true);
    w.inputs.set_external(
        StoreKind::Postgres,
        user(
            "db-conn",
            &[("url", "postgres://shop:Sup3r-s3cret@db/shop")],
        ),
    );
    w.secret_problems
        .push("spec.postgres.external.secretName: Sup3r-s3cret leaked".into());
    let stack = stack(external_pg());
    let done = stopped(plan(&stack, &w, None));
    let r = compute(&stack, &w, &done);
    let text = serde_json::to_string(&r.status).unwrap();
    assert!(!text.contains("Sup3r-s3cret"), "{text}");
}
