//! What status says of the migrations and the scheduled jobs.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::batch::v1::CronJob;
use kube::ResourceExt;

use crate::api::{AppStack, MigrationStatus, ScheduledJobStatus};
use crate::build::migration::Migration;
use crate::build::names;

/// Where a component's migration stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stage {
    /// Succeeded (its Job says so, or the Deployment records it): the
    /// component rolls out.
    Done,
    /// Its stores do not serve yet: nothing runs.
    Waiting,
    /// To be created now.
    Start,
    /// Its Job runs (or retries a pod).
    Running,
    /// Its Job failed: the reason the Job gives.
    Failed(String),
}

pub fn migration(m: &Migration, stage: &Stage) -> MigrationStatus {
    let phase = match stage {
        Stage::Done => "Succeeded",
        Stage::Waiting => "Waiting",
        Stage::Start | Stage::Running => "Running",
        Stage::Failed(_) => "Failed",
    };
    MigrationStatus {
        component: m.component.clone(),
        job: m.job.clone(),
        phase: phase.into(),
    }
}

/// Each scheduled job, with the last runs its CronJob's status gives.
pub fn scheduled_jobs(
    stack: &AppStack,
    cron_jobs: &BTreeMap<String, Arc<CronJob>>,
) -> Vec<ScheduledJobStatus> {
    let stack_name = stack.name_any();
    stack
        .spec
        .jobs
        .iter()
        .map(|j| {
            let status = cron_jobs
                .get(&names::component(&stack_name, &j.name))
                .and_then(|c| c.status.clone())
                .unwrap_or_default();
            ScheduledJobStatus {
                name: j.name.clone(),
                last_schedule_time: status.last_schedule_time.map(|t| t.0.to_string()),
                last_successful_time: status.last_successful_time.map(|t| t.0.to_string()),
            }
        })
        .collect()
}
