//! A scheduled job's CronJob: its pod is a component's pod (built by the
//! component's builder from the job's image, command and wiring) that runs
//! to completion.

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;

use super::error::BuildError;
use super::inputs::Inputs;
use super::meta::StackRef;
use super::{component, job_pod, labels, names};
use crate::api::{AppStack, Component, ScheduledJob};

pub const SUCCESSFUL_HISTORY: i32 = 3;
pub const FAILED_HISTORY: i32 = 1;

/// The job as a component, for the builders that wire one: its pods are
/// wired as a component's with the same fields would be. Built through
/// serde, so fields components gain later take their defaults here.
pub fn as_component(index: usize, j: &ScheduledJob) -> Result<Component, BuildError> {
    let mut value = json!({
        "name": j.name,
        "image": j.image,
        "env": j.env,
    });
    for (key, field) in [
        ("command", serde_json::to_value(&j.command)),
        ("args", serde_json::to_value(&j.args)),
        ("uses", serde_json::to_value(&j.uses)),
        ("resources", serde_json::to_value(&j.resources)),
    ] {
        let field = field.unwrap_or_default();
        if !field.is_null() {
            value[key] = field;
        }
    }
    serde_json::from_value(value).map_err(|e| BuildError::NotAdmitted {
        field: format!("spec.jobs[{index}]"),
        message: e.to_string(),
    })
}

/// The CronJob `<stack>-<name>`.
pub fn cron_job(
    ctx: &StackRef,
    stack: &AppStack,
    index: usize,
    j: &ScheduledJob,
    inputs: &Inputs,
) -> Result<CronJob, BuildError> {
    let c = as_component(index, j)?;
    let template = component::deployment(ctx, stack, &c, inputs)
        .spec
        .map(|s| s.template)
        .unwrap_or_default();
    let template = job_pod::run_to_completion(ctx, template, &c.name, &j.name, labels::ROLE_JOB);
    let job_labels = labels::common(&ctx.name, &j.name, labels::ROLE_JOB);
    Ok(CronJob {
        metadata: ctx.object_meta(
            names::component(&ctx.name, &j.name),
            &j.name,
            labels::ROLE_JOB,
        ),
        spec: Some(CronJobSpec {
            schedule: j.schedule.clone(),
            time_zone: j.time_zone.clone(),
            concurrency_policy: Some(j.concurrency_policy.unwrap_or_default().as_str().into()),
            suspend: j.suspend,
            starting_deadline_seconds: j.starting_deadline_seconds,
            successful_jobs_history_limit: Some(
                j.successful_jobs_history_limit
                    .unwrap_or(SUCCESSFUL_HISTORY),
            ),
            failed_jobs_history_limit: Some(j.failed_jobs_history_limit.unwrap_or(FAILED_HISTORY)),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(job_labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(JobSpec {
                    template,
                    ..JobSpec::default()
                }),
            },
        }),
        ..CronJob::default()
    })
}
