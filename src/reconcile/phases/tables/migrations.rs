//! Migrations before rollouts, over observed worlds: `plan` holds the
//! Deployment until the migration of what the spec asks succeeded, creates
//! the Job only once its stores serve and never writes it again; `report`
//! says where it stands and why it failed, with a Warning once.

use std::sync::Arc;

use k8s_openapi::api::batch::v1::Job;
use serde_json::{Value, json};

use super::super::plan::{Desired, Plan, plan};
use super::*;
use crate::build::migration::{self, MIGRATED};
use crate::status::Stage;

fn spec() -> Value {
    json!({
        "components": [{"name": "web", "image": "shop:2", "port": 8080,
                        "env": [{"name": "SHOP_SCHEMA", "value": "2"}],
                        "migrate": {"command": ["/appstack-shop", "migrate"]}}],
        "postgres": {},
        "tls": {"enabled": false},
        "networkPolicy": {"enabled": false},
    })
}

/// The hash and Job name of the spec's migration.
fn current(stack: &AppStack) -> (String, String) {
    let c = &stack.spec.components[0];
    let hash = migration::hash(c, c.migrate.as_ref().unwrap());
    let job = migration::job_name("shop", "web", &hash);
    (hash, job)
}

fn job(name: &str, conditions: Value) -> Arc<Job> {
    Arc::new(
        serde_json::from_value(json!({
            "metadata": {"name": name, "uid": "uid-job"},
            "status": {"conditions": conditions}
        }))
        .unwrap(),
    )
}

/// The web Deployment, serving, recording the migration `hash`.
fn web_recording(world: &mut World, hash: &str) {
    let mut d = (*deployment("shop-web", 1)).clone();
    d.metadata.annotations = Some([(MIGRATED.to_string(), hash.to_string())].into());
    world
        .seen
        .deployments
        .insert("shop-web".into(), Arc::new(d));
}

fn postgres(world: &mut World, ready: bool) {
    world.seen.stores.insert(
        StoreKind::Postgres,
        StoreSeen {
            stateful_set: Some(sts("shop-postgres", ready)),
            pod: None,
        },
    );
}

fn desired(plan: Plan) -> Desired {
    match plan {
        Plan::Apply(d) => *d,
        Plan::Stop(done) => panic!("stopped: {done:?}"),
    }
}

fn names<K: kube::Resource>(objects: &[K]) -> Vec<String> {
    objects
        .iter()
        .filter_map(|o| o.meta().name.clone())
        .collect()
}

/// (Jobs applied, Deployments applied, Jobs kept, Deployments kept, stage)
type Planned = (Vec<String>, Vec<String>, Vec<String>, Vec<String>, Stage);

fn planned(stack: &AppStack, world: &World) -> Planned {
    let d = desired(plan(stack, world, None));
    let stage = d.migrations[0].1.clone();
    (
        names(&d.children.jobs),
        names(&d.children.deployments),
        d.keep.jobs,
        d.keep.deployments,
        stage,
    )
}

#[test]
fn the_migration_orders_the_rollout() {
    let stack = stack(spec());
    let (hash, name) = current(&stack);
    let none: Vec<String> = Vec::new();
    let web = vec!["shop-web".to_string()];
    let the_job = vec![name.clone()];
    let complete = json!([{"type": "Complete", "status": "True"}]);
    let failed = json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]);
    // (what the world shows, what is planned)
    type Setup = Box<dyn Fn(&mut World)>;
    let cases: Vec<(&str, Setup, Planned)> = vec![
        (
            "new stack, store not serving: nothing runs, no Deployment",
            Box::new(|w| postgres(w, false)),
            (
                none.clone(),
                none.clone(),
                none.clone(),
                none.clone(),
                Stage::Waiting,
            ),
        ),
        (
            "new stack, store serving: the Job is created, still no Deployment",
            Box::new(|w| postgres(w, true)),
            (
                the_job.clone(),
                none.clone(),
                none.clone(),
                none.clone(),
                Stage::Start,
            ),
        ),
        (
            "a new revision: the old Deployment is kept as it is while the Job runs",
            Box::new({
                let name = name.clone();
                move |w| {
                    postgres(w, true);
                    web_recording(w, "old");
                    w.seen.jobs.insert(name.clone(), job(&name, json!([])));
                }
            }),
            (
                none.clone(),
                none.clone(),
                the_job.clone(),
                web.clone(),
                Stage::Running,
            ),
        ),
        (
            "failed: the old Deployment is still kept, the Job too (not run again)",
            Box::new({
                let (name, failed) = (name.clone(), failed.clone());
                move |w| {
                    postgres(w, true);
                    web_recording(w, "old");
                    w.seen.jobs.insert(name.clone(), job(&name, failed.clone()));
                }
            }),
            (
                none.clone(),
                none.clone(),
                the_job.clone(),
                web.clone(),
                Stage::Failed("BackoffLimitExceeded".into()),
            ),
        ),
        (
            "succeeded: the Deployment rolls, the Job is kept",
            Box::new({
                let name = name.clone();
                move |w| {
                    postgres(w, true);
                    web_recording(w, "old");
                    w.seen
                        .jobs
                        .insert(name.clone(), job(&name, complete.clone()));
                }
            }),
            (
                none.clone(),
                web.clone(),
                the_job.clone(),
                none.clone(),
                Stage::Done,
            ),
        ),
        (
            "recorded on the Deployment, Job gone (a restart, a cleanup): not run again",
            Box::new({
                let hash = hash.clone();
                move |w| {
                    postgres(w, false);
                    web_recording(w, &hash);
                }
            }),
            (
                none.clone(),
                web.clone(),
                none.clone(),
                none.clone(),
                Stage::Done,
            ),
        ),
    ];
    for (what, setup, expected) in cases {
        let mut w = with_credentials(world());
        setup(&mut w);
        assert_eq!(planned(&stack, &w), expected, "{what}");
    }
}

#[test]
fn the_rolled_deployment_records_its_migration() {
    let stack = stack(spec());
    let (hash, name) = current(&stack);
    let mut w = with_credentials(world());
    postgres(&mut w, true);
    w.seen.jobs.insert(
        name.clone(),
        job(&name, json!([{"type": "Complete", "status": "True"}])),
    );
    let d = desired(plan(&stack, &w, None));
    let recorded = d.children.deployments[0]
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(MIGRATED).cloned());
    assert_eq!(recorded, Some(hash));
}

fn done_with(stack: &AppStack, world: &World) -> Done {
    let d = desired(plan(stack, world, None));
    Done {
        went_ahead: true,
        migrations: d.migrations,
        ..Done::default()
    }
}

#[test]
fn a_failed_migration_is_degraded_with_its_log_and_warned_once() {
    let stack = stack(spec());
    let (_, name) = current(&stack);
    let mut w = with_credentials(world());
    postgres(&mut w, true);
    web_recording(&mut w, "old");
    let failed = json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                         "message": "Job has reached the specified backoff limit"}]);
    w.seen.jobs.insert(name.clone(), job(&name, failed));
    w.migration_logs.insert(
        name.clone(),
        "ERROR migration failed: column gift: disk on fire".into(),
    );
    let report = run(&stack, &w, &done_with(&stack, &w));
    let (status, reason, message) = condition(&report, "Degraded");
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "MigrationFailed")
    );
    assert!(message.contains(&name), "{message}");
    assert!(message.contains("BackoffLimitExceeded"), "{message}");
    assert!(message.contains("disk on fire"), "{message}");
    assert_eq!(condition(&report, "Ready").0, "False");
    assert_eq!(report.status.migrations[0].phase, "Failed");
    assert_eq!(reasons(&report), ["MigrationFailed"]);
    // The next reconcile finds it reported: no second Warning.
    let again = AppStack {
        status: Some(report.status.clone()),
        ..stack.clone()
    };
    let report = run(&again, &w, &done_with(&again, &w));
    assert!(reasons(&report).is_empty(), "{:?}", reasons(&report));
}

#[test]
fn a_running_migration_keeps_the_stack_progressing() {
    let stack = stack(spec());
    let (_, name) = current(&stack);
    let mut w = with_credentials(world());
    postgres(&mut w, true);
    web_recording(&mut w, "old");
    w.seen.jobs.insert(name.clone(), job(&name, json!([])));
    let report = run(&stack, &w, &done_with(&stack, &w));
    let (status, reason, message) = condition(&report, "Progressing");
    assert_eq!((status.as_str(), reason.as_str()), ("True", "RollingOut"));
    assert!(
        message.contains("component web (its migration)"),
        "{message}"
    );
    assert_eq!(report.status.migrations[0].phase, "Running");
    assert_eq!(report.status.migrations[0].job, name);
}
