//! `kubectl appstack backup`: a backup now, as `kubectl create job
//! --from=cronjob/<stack>-<store>-backup` does (the CronJob's template,
//! the CronJob as the Job's controller, so the operator reads its result
//! into status like a scheduled one's), then waits and prints the result.

use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::PostParams;
use kube::{Resource, ResourceExt};

use super::{PluginError, Result, Target, pods};
use crate::api::BackupStatus;
use crate::build::backup;
use crate::build::stores::{self, Engine};

/// Longest name of a Job (it becomes the `job-name` label of its pods).
const MAX_JOB_NAME: usize = 63;
/// generateName's random suffix.
const SUFFIX: usize = 5;

pub async fn run(target: &Target, store: Option<&str>, timeout: Duration) -> Result<i32> {
    let stack = target.stack().await?;
    let spec = &stack.typed.spec;
    let backed_up: Vec<&dyn Engine> = stores::of(spec)
        .filter(|e| e.backup(spec).is_some())
        .collect();
    let chosen: Vec<&dyn Engine> = match store {
        Some(part) => {
            let engine = stores::by_part(part).ok_or_else(|| {
                PluginError::Refused(format!(
                    "--store {part}: one of {}",
                    stores::parts().join(", ")
                ))
            })?;
            if !backed_up.iter().any(|e| e.part() == part) {
                return Err(no_backup(target, part));
            }
            vec![engine]
        }
        None if backed_up.is_empty() => return Err(no_backup(target, "any store")),
        None => backed_up,
    };
    let mut failed = 0;
    for engine in chosen {
        if !one(target, engine, stack.typed.uid().as_deref(), timeout).await? {
            failed += 1;
        }
    }
    Ok(if failed == 0 { 0 } else { 1 })
}

fn no_backup(target: &Target, what: &str) -> PluginError {
    PluginError::Refused(format!(
        "AppStack {} has no backups configured for {what}: add `backup: {{}}` under spec.redis or spec.postgres (README: \"Backups, point-in-time restore and clones\")",
        target.name
    ))
}

/// One store's backup: true when it succeeded.
async fn one(
    target: &Target,
    engine: &dyn Engine,
    stack_uid: Option<&str>,
    timeout: Duration,
) -> Result<bool> {
    let cron_name = backup::name(&target.name, engine);
    let cron = target.api::<CronJob>().get(&cron_name).await.map_err(|e| match &e {
        kube::Error::Api(s) if s.code == 404 => PluginError::Refused(format!(
            "the backup CronJob {cron_name} does not exist yet: the operator makes it once the store runs; `kubectl appstack status {}` says where the stack stands",
            target.name
        )),
        _ => PluginError::api(format!("reading CronJob {cron_name}"), &target.ns, e),
    })?;
    // The stack's own CronJob, not one of that name someone else made.
    let stack_kind = <crate::api::AppStack as Resource>::kind(&());
    if !pods::controlled_by(
        cron.metadata.owner_references.as_ref(),
        &stack_kind,
        &target.name,
        stack_uid,
    ) {
        return Err(PluginError::Refused(format!(
            "the CronJob {cron_name} is not AppStack {}'s (the stack is not its controller): no backup is started from it",
            target.name
        )));
    }
    let before = last_backup(target, engine).await?;
    let job = job_from(&cron).ok_or_else(|| {
        PluginError::Refused(format!("CronJob {cron_name} has no uid or job template"))
    })?;
    let started = Instant::now();
    let job = target
        .api::<Job>()
        .create(&PostParams::default(), &job)
        .await
        .map_err(|e| {
            PluginError::api(
                format!("creating a Job from CronJob {cron_name} (needs `create jobs`)"),
                &target.ns,
                e,
            )
        })?;
    let name = job.name_any();
    println!(
        "{}: Job {name} started from CronJob {cron_name}",
        engine.part()
    );
    let outcome = loop {
        if started.elapsed() > timeout {
            return Err(PluginError::Refused(format!(
                "Job {name} did not finish within {}s; it keeps running: `kubectl get job {name} -n {}` and `kubectl appstack logs {} {}-backup` follow it",
                timeout.as_secs(),
                target.ns,
                target.name,
                engine.part()
            )));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        let job = target
            .api::<Job>()
            .get(&name)
            .await
            .map_err(|e| PluginError::api(format!("reading Job {name}"), &target.ns, e))?;
        if let Some(done) = finished(&job) {
            break done;
        }
    };
    let took = started.elapsed().as_secs_f64();
    match outcome {
        Ok(()) => {
            println!("{}: backup succeeded in {took:.1}s", engine.part());
            // The operator reads the Job's summary into status shortly after.
            let deadline = Instant::now() + Duration::from_secs(30);
            let mut now = last_backup(target, engine).await?;
            while now.as_ref().and_then(|b| b.last_successful.as_ref())
                == before.as_ref().and_then(|b| b.last_successful.as_ref())
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_secs(2)).await;
                now = last_backup(target, engine).await?;
            }
            match now {
                Some(b) => println!("{}", describe(engine.part(), &b)),
                None => println!(
                    "{}: status.{}.backup does not show it yet",
                    engine.part(),
                    engine.part()
                ),
            }
            Ok(true)
        }
        Err(reason) => {
            let why = pod_message(target, &name).await;
            eprintln!(
                "{}: backup failed after {took:.1}s: {reason}{}\n  `kubectl logs -n {} job/{name}` shows the whole log",
                engine.part(),
                why.map(|w| format!("\n  the backup pod said: {w}"))
                    .unwrap_or_default(),
                target.ns
            );
            Ok(false)
        }
    }
}

/// A Job as `kubectl create job --from=cronjob/...` makes it: the
/// template's metadata and spec, the manual-instantiation annotation and
/// the CronJob as controller.
pub fn job_from(cron: &CronJob) -> Option<Job> {
    let cron_name = cron.name_any();
    let template = cron.spec.as_ref()?.job_template.clone();
    let template_meta = template.metadata.unwrap_or_default();
    let mut annotations = template_meta.annotations.unwrap_or_default();
    annotations.insert("cronjob.kubernetes.io/instantiate".into(), "manual".into());
    let keep = MAX_JOB_NAME - SUFFIX - 1;
    let prefix: String = cron_name.chars().take(keep).collect();
    Some(Job {
        metadata: ObjectMeta {
            generate_name: Some(format!("{prefix}-")),
            namespace: cron.namespace(),
            labels: template_meta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: CronJob::api_version(&()).into_owned(),
                kind: CronJob::kind(&()).into_owned(),
                name: cron_name,
                uid: cron.uid()?,
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        status: None,
    })
}

/// Some(Ok) once the Job completed, Some(Err(reason)) once it failed.
pub fn finished(job: &Job) -> Option<Result<(), String>> {
    let conditions = job.status.as_ref()?.conditions.as_ref()?;
    for c in conditions {
        if c.status != "True" {
            continue;
        }
        match c.type_.as_str() {
            "Complete" => return Some(Ok(())),
            "Failed" => {
                return Some(Err(format!(
                    "{} ({})",
                    c.reason.as_deref().unwrap_or("Failed"),
                    c.message.as_deref().unwrap_or("")
                )));
            }
            _ => {}
        }
    }
    None
}

async fn last_backup(target: &Target, engine: &dyn Engine) -> Result<Option<BackupStatus>> {
    let stack = target.stack().await?;
    Ok(stack
        .typed
        .status
        .as_ref()
        .and_then(|s| engine.status(s))
        .and_then(|s| s.backup.clone()))
}

/// The newest failed pod's termination message (the backup script's words).
async fn pod_message(target: &Target, job: &str) -> Option<String> {
    let found = pods::list(target, &format!("job-name={job}")).await.ok()?;
    found.iter().rev().find_map(|p| {
        p.status
            .as_ref()?
            .container_statuses
            .as_ref()?
            .iter()
            .find_map(|c| {
                let message = c.state.as_ref()?.terminated.as_ref()?.message.clone()?;
                (!message.trim().is_empty()).then(|| message.trim().to_string())
            })
    })
}

/// What status.<store>.backup says, in a line or two.
pub fn describe(part: &str, b: &BackupStatus) -> String {
    let mut text = format!(
        "{part}: status.{part}.backup: last {} at {}",
        b.last_successful.as_deref().unwrap_or("none"),
        b.last_successful_time.as_deref().unwrap_or("-")
    );
    if let Some(size) = b.last_size_bytes {
        text.push_str(&format!(", {}", super::status::bytes(size)));
    }
    if let Some(count) = b.count {
        text.push_str(&format!(", {count} kept"));
    }
    if let (Some(first), Some(last)) = (&b.first_recoverable_time, &b.last_recoverable_time) {
        text.push_str(&format!("\n{part}: recoverable from {first} to {last}"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_job_is_made_as_kubectl_create_job_from_makes_it() {
        let long = format!("{}-postgres-backup", "a".repeat(43));
        let cron: CronJob = serde_json::from_value(json!({
            "metadata": {"name": long, "namespace": "demo", "uid": "u-1"},
            "spec": {"schedule": "0 3 * * *", "jobTemplate": {
                "metadata": {"labels": {"app.kubernetes.io/name": "postgres-backup"}},
                "spec": {"backoffLimit": 2, "template": {"spec": {"containers": [{"name": "backup", "image": "postgres:17"}]}}}
            }}
        }))
        .unwrap();
        let job = job_from(&cron).unwrap();
        let prefix = job.metadata.generate_name.clone().unwrap();
        assert!(prefix.len() + SUFFIX <= MAX_JOB_NAME, "{prefix}");
        assert!(prefix.ends_with('-'));
        let owner = &job.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
            ("CronJob", "u-1", Some(true))
        );
        assert_eq!(
            job.metadata.annotations.unwrap()["cronjob.kubernetes.io/instantiate"],
            "manual"
        );
        assert_eq!(
            job.metadata.labels.unwrap()["app.kubernetes.io/name"],
            "postgres-backup"
        );
        assert_eq!(job.spec.unwrap().backoff_limit, Some(2));
        let short: CronJob = serde_json::from_value(
            json!({"metadata": {"name": "shop-redis-backup", "uid": "u"},
            "spec": {"schedule": "* * * * *", "jobTemplate": {}}}),
        )
        .unwrap();
        assert_eq!(
            job_from(&short).unwrap().metadata.generate_name.as_deref(),
            Some("shop-redis-backup-")
        );
    }

    #[test]
    fn a_job_is_finished_by_its_conditions() {
        let job = |conditions: serde_json::Value| -> Job {
            serde_json::from_value(json!({"metadata": {}, "status": {"conditions": conditions}}))
                .unwrap()
        };
        assert_eq!(finished(&job(json!([]))), None);
        assert_eq!(
            finished(&job(
                json!([{"type": "SuccessCriteriaMet", "status": "True"}, {"type": "Complete", "status": "True"}])
            )),
            Some(Ok(()))
        );
        assert_eq!(
            finished(&job(
                json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}])
            )),
            Some(Err(
                "BackoffLimitExceeded (Job has reached the specified backoff limit)".into()
            ))
        );
    }
}
