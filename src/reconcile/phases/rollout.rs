//! Pure: whether every pod that uses a store runs on its current
//! credentials, so that the store may stop accepting the apps' old
//! passwords (see `build::rotation`).
//!
//! "Rolled" is decided from what the caches show, on the safe side (a
//! wrong "no" keeps an old password a little longer; a wrong "yes" fails
//! requests):
//! - a Deployment has rolled when its pod template carries the current
//!   credentials hash, its controller has seen that template
//!   (observedGeneration), and all its pods are of it and available:
//!   `updatedReplicas == replicas == availableReplicas == spec.replicas`
//!   (`replicas` counts the old ReplicaSets' pods too). A Deployment the
//!   cache does not show has not (it may be being made, on any password).
//! - a migration Job has rolled when it runs no pod (`active` 0): its pods
//!   read the Secret when they start, and a finished one holds nothing.
//! - a CronJob has rolled when it runs no Job: its template takes the
//!   password from the Secret, so only Jobs started before the edit may
//!   hold the old one, and the CronJob's status does not say when each
//!   started.
//!
//! Pods that are terminating are no longer counted by `replicas`; they keep
//! their open connections (neither Redis nor PostgreSQL drops a session
//! whose password changes) and open no new ones once unready.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::{CronJob, Job};

use super::observe::Seen;
use crate::build::rotation::{HASH_ANNOTATION, Users};

pub fn rolled(users: &Users, seen: &Seen) -> bool {
    users.deployments.iter().all(|(name, hash)| {
        seen.deployments
            .get(name)
            .is_some_and(|d| deployment_rolled(d, hash))
    }) && users
        .jobs
        .iter()
        .all(|name| seen.jobs.get(name).is_none_or(|j| job_idle(j)))
        && users
            .cron_jobs
            .iter()
            .all(|name| seen.cron_jobs.get(name).is_none_or(|c| cron_job_idle(c)))
}

/// Whether all of the Deployment's pods are of a template with `hash`,
/// and available.
pub fn deployment_rolled(d: &Deployment, hash: &str) -> bool {
    let template = d
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get(HASH_ANNOTATION));
    let Some(status) = &d.status else {
        return false;
    };
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let seen_generation = match (status.observed_generation, d.metadata.generation) {
        (Some(observed), Some(generation)) => observed >= generation,
        _ => false,
    };
    template.map(String::as_str) == Some(hash)
        && seen_generation
        && status.replicas.unwrap_or(0) == wanted
        && status.updated_replicas.unwrap_or(0) == wanted
        && status.available_replicas.unwrap_or(0) == wanted
}

fn job_idle(j: &Job) -> bool {
    j.status.as_ref().is_none_or(|s| s.active.unwrap_or(0) == 0)
}

fn cron_job_idle(c: &CronJob) -> bool {
    c.status
        .as_ref()
        .and_then(|s| s.active.as_ref())
        .is_none_or(Vec::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use k8s_openapi::api::batch::v1::{CronJobStatus, JobStatus};
    use k8s_openapi::api::core::v1::{ObjectReference, PodTemplateSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use std::sync::Arc;

    /// A Deployment of `template` hash at `generation`, and its status:
    /// (observedGeneration, replicas, updated, available); spec 2 replicas.
    fn deployment(
        template: &str,
        generation: i64,
        status: Option<(i64, i32, i32, i32)>,
    ) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                generation: Some(generation),
                ..ObjectMeta::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(2),
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        annotations: Some(
                            [(HASH_ANNOTATION.to_string(), template.to_string())].into(),
                        ),
                        ..ObjectMeta::default()
                    }),
                    spec: None,
                },
                ..DeploymentSpec::default()
            }),
            status: status.map(
                |(observed, replicas, updated, available)| DeploymentStatus {
                    observed_generation: Some(observed),
                    replicas: Some(replicas),
                    updated_replicas: Some(updated),
                    available_replicas: Some(available),
                    ..DeploymentStatus::default()
                },
            ),
        }
    }

    #[test]
    fn a_deployment_has_rolled_when_all_its_pods_are_new_and_available() {
        for (d, expected, why) in [
            (deployment("new", 2, Some((2, 2, 2, 2))), true, "complete"),
            (
                deployment("old", 2, Some((2, 2, 2, 2))),
                false,
                "template not applied yet",
            ),
            (
                deployment("new", 3, Some((2, 2, 2, 2))),
                false,
                "controller has not seen the template",
            ),
            (
                deployment("new", 3, Some((3, 3, 1, 2))),
                false,
                "surge: an old pod still runs",
            ),
            (
                deployment("new", 3, Some((3, 2, 1, 2))),
                false,
                "one old, one new",
            ),
            (
                deployment("new", 3, Some((3, 2, 2, 1))),
                false,
                "a new pod not available yet",
            ),
            (
                deployment("new", 3, Some((3, 3, 2, 3))),
                false,
                "old pod still counted",
            ),
            (deployment("new", 3, None), false, "no status"),
        ] {
            assert_eq!(deployment_rolled(&d, "new"), expected, "{why}");
        }
        let mut zero = deployment("new", 1, Some((1, 0, 0, 0)));
        zero.spec.as_mut().unwrap().replicas = Some(0);
        assert!(
            deployment_rolled(&zero, "new"),
            "scaled to zero: no pod holds anything"
        );
    }

    #[test]
    fn every_workload_that_uses_the_store_must_have_rolled() {
        let users = Users {
            deployments: vec![("s-web".into(), "new".into())],
            jobs: vec!["s-web-migrate-1".into()],
            cron_jobs: vec!["s-nightly".into()],
        };
        let done = || {
            let mut seen = Seen::default();
            seen.deployments.insert(
                "s-web".into(),
                Arc::new(deployment("new", 2, Some((2, 2, 2, 2)))),
            );
            seen
        };
        assert!(
            rolled(&users, &done()),
            "finished jobs and crons are not there"
        );
        assert!(
            !rolled(&users, &Seen::default()),
            "the Deployment is not seen"
        );

        let mut running_job = done();
        running_job.jobs.insert(
            "s-web-migrate-1".into(),
            Arc::new(Job {
                status: Some(JobStatus {
                    active: Some(1),
                    ..JobStatus::default()
                }),
                ..Job::default()
            }),
        );
        assert!(!rolled(&users, &running_job), "a migration pod runs");
        let mut finished_job = done();
        finished_job.jobs.insert(
            "s-web-migrate-1".into(),
            Arc::new(Job {
                status: Some(JobStatus {
                    succeeded: Some(1),
                    ..JobStatus::default()
                }),
                ..Job::default()
            }),
        );
        assert!(rolled(&users, &finished_job), "the migration finished");

        let mut running_cron = done();
        running_cron.cron_jobs.insert(
            "s-nightly".into(),
            Arc::new(CronJob {
                status: Some(CronJobStatus {
                    active: Some(vec![ObjectReference::default()]),
                    ..CronJobStatus::default()
                }),
                ..CronJob::default()
            }),
        );
        assert!(!rolled(&users, &running_cron), "a scheduled job runs");

        assert!(
            rolled(&Users::default(), &Seen::default()),
            "nothing uses the store"
        );
    }
}
