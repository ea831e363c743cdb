//! The spec's checks that need no child: names, ports, autoscaling,
//! `uses`, and what admission refuses, for stacks stored before a rule.

use kube::ResourceExt;

use super::error::BuildError;
use super::{admission, migration, names, stores};
use crate::api::{AppStack, AppStackSpec};

/// What CEL checks at admission, checked again: objects that bypassed
/// admission (or an older CRD) must still never produce invalid children.
pub(super) fn stack(stack: &AppStack) -> Result<(), BuildError> {
    let spec = &stack.spec;
    if spec.components.is_empty() {
        return Err(BuildError::NoComponents);
    }
    let stack_name = stack.name_any();
    names::check_stack(&stack_name)?;
    let parts = stores::parts();
    for (index, c) in spec.components.iter().enumerate() {
        names::check_component(&stack_name, index, &c.name, &parts)?;
        if spec.components[..index].iter().any(|o| o.name == c.name) {
            return Err(BuildError::ComponentName {
                index,
                message: format!("{:?} is used by another component", c.name),
            });
        }
        let duplicate = c
            .env
            .iter()
            .enumerate()
            .find(|(n, e)| c.env[..*n].iter().any(|o| o.name == e.name));
        if let Some((_, e)) = duplicate {
            return Err(BuildError::DuplicateEnv {
                index,
                name: e.name.clone(),
            });
        }
        if let Some(port) = c.port
            && !(1..=65535).contains(&port)
        {
            return Err(BuildError::Port { index, port });
        }
        if let Some(a) = &c.autoscaling
            && a.min_replicas > a.max_replicas
        {
            return Err(BuildError::Autoscaling {
                index,
                min: a.min_replicas,
                max: a.max_replicas,
            });
        }
        admission::component(index, c)?;
        for engine in stores::ENGINES {
            let kind = engine.kind();
            if !engine.runs(spec) && c.uses.as_ref().is_some_and(|u| u.contains(&kind)) {
                return Err(BuildError::MissingStore {
                    index,
                    store: engine.part(),
                });
            }
        }
    }
    if stores::of(spec).next().is_some() {
        names::check_stack_with_stores(&stack_name)?;
    }
    for engine in stores::of(spec).filter(|e| e.backup(spec).is_some()) {
        if let Some(why) = engine.backup_needs_tls().filter(|_| !spec.tls_enabled()) {
            return Err(BuildError::BackupWithoutTls {
                store: engine.part(),
                why,
            });
        }
    }
    admission::endpoints(spec)?;
    jobs(&stack_name, spec, &parts)?;
    Ok(())
}

/// Longest CronJob name: its Jobs get 11 more characters, within 63.
const CRON_JOB_NAME_MAX: usize = 52;

/// The scheduled jobs and the migrations: names that do not collide with
/// the components', each other's or the stores', CronJob names that fit,
/// a schedule, and stores the stack has.
fn jobs(stack_name: &str, spec: &AppStackSpec, parts: &[&str]) -> Result<(), BuildError> {
    let refused = |field: String, message: String| BuildError::NotAdmitted { field, message };
    for (index, c) in spec.components.iter().enumerate() {
        if c.migrate.is_none() {
            continue;
        }
        let part = migration::part(&c.name);
        let taken = spec.components.iter().any(|o| o.name == part)
            || spec.jobs.iter().any(|j| j.name == part);
        if taken {
            return Err(refused(
                format!("spec.components[{index}].migrate"),
                format!(
                    "{part:?} is the name of another component or job, and the name of this migration's pods"
                ),
            ));
        }
        let policy = migration::policy_name(stack_name, &c.name);
        if policy.len() > 63 {
            return Err(refused(
                format!("spec.components[{index}].name"),
                format!(
                    "{policy:?} (the migration's NetworkPolicy) would be longer than 63 characters"
                ),
            ));
        }
    }
    for (index, j) in spec.jobs.iter().enumerate() {
        // The same rules as a component's name.
        names::check_component(stack_name, index, &j.name, parts).map_err(|e| {
            let message = e.to_string();
            let message = message
                .split_once(": ")
                .map_or(message.clone(), |(_, m)| m.to_string());
            refused(format!("spec.jobs[{index}].name"), message)
        })?;
        let name = |field: &str| format!("spec.jobs[{index}].{field}");
        if spec.components.iter().any(|c| c.name == j.name) {
            return Err(refused(
                name("name"),
                format!(
                    "{:?} is the name of a component; components and jobs share the names of their NetworkPolicies",
                    j.name
                ),
            ));
        }
        if spec.jobs[..index].iter().any(|o| o.name == j.name) {
            return Err(refused(
                name("name"),
                format!("{:?} is used by another job", j.name),
            ));
        }
        let full = names::component(stack_name, &j.name);
        if full.len() > CRON_JOB_NAME_MAX {
            return Err(refused(
                name("name"),
                format!(
                    "the CronJob {full:?} would be {} characters; at most {CRON_JOB_NAME_MAX}",
                    full.len()
                ),
            ));
        }
        if j.schedule.trim().is_empty() {
            return Err(refused(name("schedule"), "must not be empty".into()));
        }
        if j.image.trim().is_empty() {
            return Err(refused(name("image"), "must not be empty".into()));
        }
        for engine in stores::ENGINES {
            if !engine.runs(spec) && j.uses.as_ref().is_some_and(|u| u.contains(&engine.kind())) {
                return Err(refused(
                    name("uses"),
                    format!(
                        "{} is not in this stack; add spec.{} or remove it from uses",
                        engine.part(),
                        engine.part()
                    ),
                ));
            }
        }
        if let Some((_, e)) = j
            .env
            .iter()
            .enumerate()
            .find(|(n, e)| j.env[..*n].iter().any(|o| o.name == e.name))
        {
            return Err(refused(
                name("env"),
                format!(
                    "{} is set twice; Server-Side Apply refuses duplicate names",
                    e.name
                ),
            ));
        }
    }
    Ok(())
}
