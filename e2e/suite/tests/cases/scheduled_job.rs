//! A scheduled job: a CronJob every minute whose pod, wired like a
//! component, inserts a row into PostgreSQL over the wired TLS URL; the row
//! appears and the stack's status shows the job's last success. Admission
//! refuses (server-side dry run) a job named like a component, a reserved
//! name and a bad schedule, each with the field named.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use appstack_e2e::backups::psql_as_admin;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Poll::*};
use appstack_e2e::{apply, appstack};
use k8s_openapi::api::batch::v1::CronJob;
use kube::api::{Api, Patch, PatchParams};
use serde_json::{Value, json};

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

fn tick_job() -> Value {
    json!({
        "name": "tick",
        "schedule": "* * * * *",
        "image": "appstack.local/appstack-shop:dev",
        "command": ["/appstack-shop", "tick"],
    })
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    refused_at_admission(ctx).await?;
    let started = Instant::now();
    let stack = appstack::deploy_shop(ctx, |m| {
        appstack::fixed_web_replicas(m, 1);
        m["spec"]["jobs"] = json!([tick_job()]);
    })
    .await?;
    let name = format!("{}-tick", stack.name);
    let cron = Api::<CronJob>::namespaced(ctx.client.clone(), &ctx.ns)
        .get(&name)
        .await?;
    let policy = cron
        .spec
        .as_ref()
        .and_then(|s| s.concurrency_policy.clone());
    ctx.step(format!(
        "CronJob {name} exists (concurrencyPolicy {policy:?})"
    ));
    let pg_pod = format!("{}-0", stack.postgres());
    let rows = wait::until_every(
        "a row from the scheduled job in PostgreSQL",
        Duration::from_secs(150),
        Duration::from_secs(5),
        async || {
            let out = psql_as_admin(
                ctx,
                &pg_pod,
                "select count(*) from information_schema.tables where table_name = 'ticks'",
            )
            .await?;
            if out.trim() != "1" {
                return Ok(Pending("no table ticks yet".to_string()));
            }
            let n = psql_as_admin(ctx, &pg_pod, "select count(*) from ticks").await?;
            Ok(match n.trim().parse::<i64>() {
                Ok(n) if n > 0 => Ready(n),
                _ => Pending(format!("{} rows", n.trim())),
            })
        },
    )
    .await?;
    ctx.step(format!(
        "{rows} row(s) in ticks, written by the job over TLS"
    ));
    let success = wait::until(
        "status.jobs[0].lastSuccessfulTime",
        Duration::from_secs(60),
        async || {
            let obj = appstack::api(&ctx.client, &ctx.ns).get(&stack.name).await?;
            let job = &obj.data["status"]["jobs"][0];
            Ok(match job["lastSuccessfulTime"].as_str() {
                Some(t) => Ready(t.to_string()),
                None => Pending(job.to_string()),
            })
        },
    )
    .await?;
    ctx.step(format!("status shows the last success at {success}"));
    ctx.recovered(
        "a scheduled job ran and reached PostgreSQL",
        started.elapsed(),
    );
    Ok(())
}

/// Server-side dry runs of specs admission must refuse, with the field.
async fn refused_at_admission(ctx: &mut Ctx) -> Result<()> {
    let base = appstack::shop_manifest(ctx)?;
    let cases = [
        (
            json!([{"name": "web", "schedule": "* * * * *", "image": "i"}]),
            "spec.jobs[].name",
        ),
        (
            json!([{"name": "postgres-backup", "schedule": "* * * * *", "image": "i"}]),
            "spec.jobs[].name",
        ),
        (
            json!([{"name": "a", "schedule": "every minute", "image": "i"}]),
            "spec.jobs[].schedule",
        ),
        (
            json!([tick_job(), tick_job()]),
            "spec.jobs: job names must be unique",
        ),
    ];
    for (jobs, field) in cases {
        let mut m = base.clone();
        m["spec"]["jobs"] = jobs.clone();
        let (api, name) = apply::api_for(&ctx.client, &ctx.ns, &m).await?;
        let mut params = PatchParams::apply("appstack-e2e").force();
        params.dry_run = true;
        match api.patch(&name, &params, &Patch::Apply(&m)).await {
            Ok(_) => bail!("admitted jobs {jobs}; expected a refusal naming {field}"),
            Err(e) if format!("{e:#}").contains(field) => {
                ctx.step(format!("refused: {field}"));
            }
            Err(e) => bail!("jobs {jobs}: refused without naming {field}: {e:#}"),
        }
    }
    Ok(())
}
