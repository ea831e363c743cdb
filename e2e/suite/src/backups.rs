//! Backups the way a user takes and checks them: a Job made from the
//! store's backup CronJob (`kubectl create job --from=cronjob/...`), the
//! stack's status, and the backup volume's files as the store pod sees them.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::ResourceExt;
use kube::api::{Api, PostParams};
use serde_json::Value;

use crate::appstack;
use crate::runner::Ctx;
use crate::stores;
use crate::wait::{self, Pending, Ready};

/// `kubectl create job --from=cronjob/<cron> <job>`: the CronJob's job
/// template, owned by the CronJob.
pub async fn start(ctx: &Ctx, cron: &str, job: &str) -> Result<()> {
    let cronjobs: Api<CronJob> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let c = cronjobs
        .get(cron)
        .await
        .with_context(|| format!("reading CronJob {cron}"))?;
    let template = c
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .context("CronJob without spec")?;
    let meta = template.metadata.unwrap_or_default();
    let object = Job {
        metadata: ObjectMeta {
            name: Some(job.to_string()),
            labels: meta.labels,
            annotations: Some(
                [(
                    "cronjob.kubernetes.io/instantiate".to_string(),
                    "manual".to_string(),
                )]
                .into(),
            ),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "CronJob".into(),
                name: cron.to_string(),
                uid: c.uid().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..ObjectMeta::default()
        },
        spec: template.spec,
        ..Job::default()
    };
    Api::<Job>::namespaced(ctx.client.clone(), &ctx.ns)
        .create(&PostParams::default(), &object)
        .await
        .with_context(|| format!("creating Job {job} from CronJob {cron}"))?;
    ctx.step(format!("kubectl create job --from=cronjob/{cron} {job}"));
    Ok(())
}

/// Waits until Job `job` completed; fails when it failed. Returns its duration.
pub async fn wait_complete(ctx: &Ctx, job: &str, timeout: Duration) -> Result<Duration> {
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let start = Instant::now();
    let failed = wait::until(&format!("Job {job} to end"), timeout, async || {
        let j = jobs.get(job).await?;
        let status = j.status.unwrap_or_default();
        let failed = status
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == "Failed" && c.status == "True");
        Ok(if let Some(c) = failed {
            Ready(Some(c.message.clone().unwrap_or_default()))
        } else if status.succeeded.unwrap_or(0) > 0 {
            Ready(None)
        } else {
            Pending(format!(
                "active {:?}, failed {:?}",
                status.active, status.failed
            ))
        })
    })
    .await?;
    if let Some(why) = failed {
        let pods = crate::pods::list(&ctx.client, &ctx.ns, &format!("job-name={job}")).await?;
        let said: Vec<String> = pods
            .iter()
            .filter_map(|p| {
                let s = p.status.as_ref()?.container_statuses.as_ref()?.first()?;
                let t = s.state.as_ref()?.terminated.as_ref()?;
                Some(format!(
                    "{}: {}",
                    p.name_any(),
                    t.message.clone().unwrap_or_default().trim()
                ))
            })
            .collect();
        bail!(
            "Job {job} failed ({why}); its pods said: {}",
            said.join(" / ")
        );
    }
    Ok(start.elapsed())
}

/// Takes a backup of `store` (redis or postgres) of stack `stack` now and
/// waits for it; returns how long it took.
pub async fn take(ctx: &Ctx, stack: &str, store: &str, job: &str) -> Result<Duration> {
    start(ctx, &format!("{stack}-{store}-backup"), job).await?;
    let took = wait_complete(ctx, job, Duration::from_secs(300)).await?;
    ctx.step(format!(
        "backup Job {job} of {stack}'s {store} completed in {:.1}s",
        took.as_secs_f64()
    ));
    Ok(took)
}

/// status.<store>.backup of the stack.
pub async fn status(ctx: &Ctx, stack: &str, store: &str) -> Result<Value> {
    let obj = appstack::api(&ctx.client, &ctx.ns).get(stack).await?;
    Ok(obj.data["status"][store]["backup"].clone())
}

/// Waits until status.<store>.backup.lastSuccessful is `label` (any label
/// but `not` when `label` is empty); returns the backup status.
pub async fn wait_status(
    ctx: &Ctx,
    stack: &str,
    store: &str,
    not: Option<&str>,
    timeout: Duration,
) -> Result<Value> {
    wait::until(
        &format!("status.{store}.backup of {stack} to show a new successful backup"),
        timeout,
        async || {
            let s = status(ctx, stack, store).await?;
            let last = s["lastSuccessful"].as_str();
            Ok(match last {
                Some(l) if Some(l) != not => Ready(s),
                _ => Pending(format!("status.{store}.backup: {s}")),
            })
        },
    )
    .await
}

/// `sql` as the administrator over the pod's own socket.
pub async fn psql_as_admin(ctx: &Ctx, pod: &str, sql: &str) -> Result<String> {
    let script = format!(
        "psql -h /var/run/postgresql -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" -v ON_ERROR_STOP=1 -Atc \"{sql}\""
    );
    let (ok, out) = stores::exec(ctx, pod, "postgres", &script).await?;
    if !ok {
        bail!("psql as the administrator in {pod}: {sql}: {out}");
    }
    Ok(out.trim().to_string())
}

/// Forces a WAL switch and waits until the segment holding everything
/// written so far is archived; returns how long archiving took.
pub async fn archive_now(ctx: &Ctx, pod: &str) -> Result<Duration> {
    let start = Instant::now();
    // A committed transaction first: PostgreSQL 17 does not switch a segment
    // that holds nothing since the last switch (after a base backup, say),
    // and the name pg_switch_wal then gives is of a segment still open.
    psql_as_admin(ctx, pod, "select txid_current()").await?;
    let segment = psql_as_admin(ctx, pod, "select pg_walfile_name(pg_switch_wal())").await?;
    wait::until(
        &format!("WAL segment {segment} to be archived"),
        Duration::from_secs(120),
        async || {
            let last = psql_as_admin(
                ctx,
                pod,
                "select coalesce(last_archived_wal, '') || '|' || failed_count || '|' || coalesce(last_failed_wal, '') from pg_stat_archiver",
            )
            .await?;
            let archived = last.split('|').next().unwrap_or_default();
            Ok(if archived.len() >= 24 && archived[8..] >= segment[8..] {
                Ready(())
            } else {
                Pending(format!("pg_stat_archiver: {last}"))
            })
        },
    )
    .await?;
    Ok(start.elapsed())
}

/// The entries of a directory of the backup volume, as the store's pod
/// (PostgreSQL) or a pod mounting it sees them.
pub async fn list(ctx: &Ctx, pod: &str, container: &str, dir: &str) -> Result<Vec<String>> {
    let (ok, out) = stores::exec(ctx, pod, container, &format!("ls -1 {dir}")).await?;
    if !ok {
        bail!("ls {dir} in {pod}: {out}");
    }
    Ok(out.lines().map(str::to_string).collect())
}

/// The worst case: deletes the AppStack, waits until its pods are gone,
/// then deletes the namespace's volumes that `volumes` selects (a label
/// selector; empty: every volume) and waits until they are gone.
pub async fn delete_stack_and_volumes(ctx: &Ctx, stack: &str, volumes: &str) -> Result<()> {
    use k8s_openapi::api::core::v1::PersistentVolumeClaim;
    use kube::api::{DeleteParams, ListParams};
    appstack::api(&ctx.client, &ctx.ns)
        .delete(stack, &DeleteParams::default())
        .await?;
    let pods = format!("app.kubernetes.io/instance={stack}");
    wait::until(
        "the stack's pods to be gone",
        Duration::from_secs(180),
        async || {
            let left = crate::pods::list(&ctx.client, &ctx.ns, &pods).await?;
            Ok(if left.is_empty() {
                Ready(())
            } else {
                Pending(crate::pods::describe(&left))
            })
        },
    )
    .await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let selected = ListParams::default().labels(volumes);
    claims
        .delete_collection(&DeleteParams::default(), &selected)
        .await?;
    wait::until(
        "the volumes to be gone",
        Duration::from_secs(120),
        async || {
            let left = claims.list(&selected).await?;
            Ok(if left.items.is_empty() {
                Ready(())
            } else {
                Pending(
                    left.items
                        .iter()
                        .map(|c| c.name_any())
                        .collect::<Vec<_>>()
                        .join(", "),
                )
            })
        },
    )
    .await
}
