//! A component's migration: the Job that runs it, named by a hash of what
//! it runs, and the record on the Deployment of the hash it rolled out
//! after.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{Job, JobSpec};
use sha2::{Digest, Sha256};

use super::inputs::Inputs;
use super::meta::StackRef;
use super::{component, job_pod, labels, names, stores, wiring};
use crate::api::{AppStack, Component, Migrate};

/// The annotation on a component's Deployment: the hash of the migration
/// that succeeded before it was applied. Read back after a restart, so a
/// migration that succeeded is not run again.
pub const MIGRATED: &str = "appstack.dev/migrated";
/// The annotation on a migration's Job: the full hash of what it runs.
pub const HASH: &str = "appstack.dev/migration";

/// Longest Job name: the Job controller puts it in a label of its pods.
const JOB_NAME_MAX: usize = 63;
/// Hash characters in a Job's name.
const NAME_HASH: usize = 10;

/// What the reconcile needs to order a component's migration before its
/// rollout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Migration {
    pub component: String,
    /// The component's Deployment.
    pub deployment: String,
    pub job: String,
    pub hash: String,
    /// The StatefulSets of the stores it uses: it runs once they serve.
    pub stores: Vec<String>,
}

/// The part (pod name label) of a component's migration pods.
pub fn part(component: &str) -> String {
    format!("{component}-migrate")
}

/// `<stack>-<component>-migrate`: its NetworkPolicy.
pub fn policy_name(stack: &str, component: &str) -> String {
    names::component(stack, &part(component))
}

/// The component as its migration runs it: the migration's image, command,
/// args, env and resources over the component's.
fn as_run(c: &Component, m: &Migrate) -> Component {
    let mut run = c.clone();
    run.image = m.image.clone().unwrap_or_else(|| c.image.clone());
    run.command = m.command.clone();
    run.args = m.args.clone();
    run.env = wiring::merged_env(&c.env, m.env.clone());
    if m.resources.is_some() {
        run.resources = m.resources.clone();
    }
    run
}

/// sha256 over what the migration runs (image, command, args, env, and the
/// component it migrates): a change to any of them runs it again.
pub fn hash(c: &Component, m: &Migrate) -> String {
    let run = as_run(c, m);
    let mut h = Sha256::new();
    let parts = serde_json::json!([c.name, run.image, run.command, run.args, run.env]);
    h.update(parts.to_string().as_bytes());
    hex::encode(h.finalize())
}

/// `<stack>-<component>-migrate-<hash>`, cut to 63 characters (the name
/// part first: the hash keeps names of different runs apart).
pub fn job_name(stack: &str, component: &str, hash: &str) -> String {
    let short = &hash[..NAME_HASH.min(hash.len())];
    let mut base = policy_name(stack, component);
    base.truncate(JOB_NAME_MAX - NAME_HASH - 1);
    let base = base.trim_end_matches('-');
    format!("{base}-{short}")
}

/// The migration of `c`, when it has one.
pub fn of(ctx: &StackRef, stack: &AppStack, c: &Component) -> Option<Migration> {
    let m = c.migrate.as_ref()?;
    let hash = hash(c, m);
    Some(Migration {
        component: c.name.clone(),
        deployment: names::component(&ctx.name, &c.name),
        job: job_name(&ctx.name, &c.name, &hash),
        stores: stores::used_by(&stack.spec, c)
            .map(|e| e.secret_name(&ctx.name))
            .collect(),
        hash,
    })
}

/// The Job that runs `c`'s migration: the component's pod, built by the
/// component's builder, running the migration instead of the server.
pub fn job(ctx: &StackRef, stack: &AppStack, c: &Component, inputs: &Inputs) -> Option<Job> {
    let m = c.migrate.as_ref()?;
    let hash = hash(c, m);
    let run = as_run(c, m);
    let template = component::deployment(ctx, stack, &run, inputs)
        .spec
        .map(|s| s.template)
        .unwrap_or_default();
    let part = part(&c.name);
    let template = job_pod::run_to_completion(ctx, template, &c.name, &part, labels::ROLE_MIGRATE);
    let mut metadata = ctx.object_meta(
        job_name(&ctx.name, &c.name, &hash),
        &part,
        labels::ROLE_MIGRATE,
    );
    metadata.annotations = Some([(HASH.to_string(), hash)].into());
    Some(Job {
        metadata,
        spec: Some(JobSpec {
            backoff_limit: Some(m.backoff_limit()),
            active_deadline_seconds: Some(m.active_deadline_seconds()),
            template,
            ..JobSpec::default()
        }),
        ..Job::default()
    })
}

/// Records on the Deployment the migration it is applied after.
pub fn record(deployment: &mut Deployment, hash: &str) {
    deployment
        .metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(MIGRATED.to_string(), hash.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_names_fit_a_label_and_keep_the_hash() {
        let hash = "0123456789abcdef";
        assert_eq!(job_name("shop", "web", hash), "shop-web-migrate-0123456789");
        let long = job_name(&"s".repeat(43), &"c".repeat(11), hash);
        assert!(long.len() <= 63, "{long}");
        assert!(long.ends_with("-0123456789"), "{long}");
        let cut = job_name(&"s".repeat(43), "c-d-e-f-g-h", hash);
        assert!(!cut.contains("--"), "{cut}");
    }
}
