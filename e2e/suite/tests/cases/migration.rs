//! Migrations before rollouts, under a steady load on the web Service:
//! a new revision whose web needs a new column (SHOP_SCHEMA=2 refuses to
//! start without it) comes with a migrate step; the migration's pod is
//! killed mid-run and retried; no new web pod starts before the column
//! exists (none ever restarted). Then a failing migration: the old revision
//! keeps serving, status names the failure with its log line, a Warning
//! Event says it; fixed, the rollout proceeds. No request fails throughout.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use appstack_e2e::load::{Load, LoadSpec};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Poll::*};
use appstack_e2e::{apply, appstack, pods};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::{Value, json};

const REPLICAS: i32 = 2;
const FAILURE: &str = "cannot add column gift: the disk is on fire";

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let stack = appstack::deploy_shop(ctx, |m| {
        appstack::fixed_web_replicas(m, REPLICAS);
    })
    .await?;
    let token = stack.shop.login("ada").await?;
    let spec = LoadSpec {
        path: "/me".into(),
        bearer: Some(token),
        rate: 10,
        duration: Duration::from_secs(600),
        timeout: Duration::from_secs(2),
    };
    ctx.step(format!("load: GET /me at 10 req/s through {}", stack.web()));
    let load = Load::start(stack.shop.http.clone(), stack.shop.addr, spec)?;
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let jobs: Api<Job> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let migrate_pods = format!(
        "app.kubernetes.io/instance={},app.kubernetes.io/name=web-migrate",
        stack.name
    );

    // Revision 2: the web needs the column, the migration adds it (slowly,
    // so that its pod can be killed while it runs).
    let started = Instant::now();
    let v2 = revision(
        &stack.manifest,
        &[("SHOP_SCHEMA", "2")],
        &[("MIGRATE_SLEEP_SECONDS", "12")],
        None,
    );
    apply::object(&ctx.client, &ctx.ns, v2.clone()).await?;
    ctx.step("applied revision 2: web with SHOP_SCHEMA=2 and a migrate step");
    let victim = wait::until(
        "the migration's pod to run",
        Duration::from_secs(90),
        async || {
            let running = pods::list(&ctx.client, &ctx.ns, &migrate_pods)
                .await?
                .into_iter()
                .find(|p| pods::phase(p) == "Running");
            Ok(match running {
                Some(p) => Ready(p.name_any()),
                None => Pending("no migration pod runs".to_string()),
            })
        },
    )
    .await?;
    let env = template_env(&deployments.get(&stack.web()).await?);
    if env.contains("SHOP_SCHEMA") {
        bail!("the Deployment took the new template while its migration runs: {env}");
    }
    ctx.step(format!(
        "migration pod {victim} runs; the Deployment keeps the old template"
    ));
    ctx.pods().delete(&victim, &DeleteParams::default()).await?;
    ctx.step(format!("killed the migration pod {victim} mid-run"));
    wait_rolled(ctx, &deployments, &stack.web(), "SHOP_SCHEMA").await?;
    let took = started.elapsed();
    // The killed pod is gone; its Job counts it failed and retried.
    let (failed, succeeded) = jobs
        .list(&ListParams::default().labels(&migrate_pods))
        .await?
        .items
        .iter()
        .filter_map(|j| j.status.as_ref())
        .map(|s| (s.failed.unwrap_or(0), s.succeeded.unwrap_or(0)))
        .fold((0, 0), |(f, s), (f1, s1)| (f + f1, s + s1));
    if failed < 1 || succeeded != 1 {
        bail!(
            "expected the killed migration pod to be retried: the Job counts {failed} failed and {succeeded} succeeded pods"
        );
    }
    let web = pods::of_deployment(&ctx.client, &ctx.ns, &stack.web()).await?;
    let restarted: Vec<String> = web
        .iter()
        .filter(|p| restarts(p) > 0)
        .map(|p| p.name_any())
        .collect();
    if !restarted.is_empty() {
        bail!(
            "web pods of revision 2 restarted (started before the column existed): {restarted:?}"
        );
    }
    ctx.step(format!(
        "revision 2 rolled out after its migration ({failed} pod killed and retried), no web pod restarted"
    ));
    ctx.recovered("revision 2 with a retried migration rolled out", took);
    let status = appstack::api(&ctx.client, &ctx.ns).get(&stack.name).await?;
    let phase = status.data["status"]["migrations"][0]["phase"].clone();
    if phase != json!("Succeeded") {
        bail!("status.migrations[0].phase is {phase}, expected Succeeded");
    }

    // Revision 3 with a migration that fails: the old revision keeps serving.
    let v3 = revision(
        &stack.manifest,
        &[("SHOP_SCHEMA", "2"), ("SHOP_REVISION", "3")],
        &[("MIGRATE_FAIL", FAILURE)],
        Some(0),
    );
    apply::object(&ctx.client, &ctx.ns, v3).await?;
    ctx.step("applied revision 3 with a failing migration");
    let message = appstack::wait_condition_mentioning(
        &ctx.client,
        &ctx.ns,
        &stack.name,
        ("Degraded", "True", "MigrationFailed"),
        FAILURE,
        Duration::from_secs(90),
    )
    .await?;
    ctx.step(format!("Degraded=True (MigrationFailed): {message}"));
    let env = template_env(&deployments.get(&stack.web()).await?);
    if env.contains("SHOP_REVISION") {
        bail!("the Deployment rolled to revision 3 although its migration failed: {env}");
    }
    let warned = wait::until(
        "a Warning Event MigrationFailed",
        Duration::from_secs(30),
        async || {
            let events = appstack::events(&ctx.client, &ctx.ns, &stack.name).await?;
            Ok(
                match events
                    .into_iter()
                    .find(|(t, r, _)| t == "Warning" && r == "MigrationFailed")
                {
                    Some((_, _, m)) => Ready(m),
                    None => Pending("no such Event yet".to_string()),
                },
            )
        },
    )
    .await?;
    ctx.step(format!("Event Warning MigrationFailed: {warned}"));
    let failed_job = jobs
        .list(&ListParams::default().labels(&migrate_pods))
        .await?
        .items
        .into_iter()
        .find(|j| {
            j.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Failed" && c.status == "True"))
        })
        .map(|j| j.name_any())
        .context("the failed migration's Job")?;

    // Fixed: the rollout proceeds, and the failed Job is cleaned up.
    let started = Instant::now();
    let v4 = revision(
        &stack.manifest,
        &[("SHOP_SCHEMA", "2"), ("SHOP_REVISION", "3")],
        &[],
        None,
    );
    apply::object(&ctx.client, &ctx.ns, v4).await?;
    ctx.step("fixed the migration");
    wait_rolled(ctx, &deployments, &stack.web(), "SHOP_REVISION").await?;
    ctx.recovered(
        "revision 3 rolled out after its migration was fixed",
        started.elapsed(),
    );
    wait::until(
        &format!("the failed Job {failed_job} to be deleted"),
        Duration::from_secs(60),
        async || {
            Ok(match jobs.get_opt(&failed_job).await? {
                None => Ready(()),
                Some(_) => Pending("still there".to_string()),
            })
        },
    )
    .await?;
    ctx.step(format!("the failed Job {failed_job} was cleaned up"));

    let report = load.stop().await?;
    ctx.step(format!("load done: {}", report.summary()));
    ctx.note(format!(
        "{} of {} requests failed across three revisions and three migrations",
        report.failed, report.sent
    ));
    if report.ok == 0 || report.failed > 0 {
        bail!(
            "expected every request to succeed; {} of {} failed, e.g. {}",
            report.failed,
            report.sent,
            report.failures.join("; ")
        );
    }
    Ok(())
}

/// The shop with its web's extra env, and a migrate step with its own env.
fn revision(
    manifest: &Value,
    web_env: &[(&str, &str)],
    migrate_env: &[(&str, &str)],
    backoff_limit: Option<i32>,
) -> Value {
    let mut m = manifest.clone();
    let pairs = |vars: &[(&str, &str)]| -> Value {
        vars.iter()
            .map(|(n, v)| json!({"name": n, "value": v}))
            .collect()
    };
    let web = &mut m["spec"]["components"][0];
    web["env"] = pairs(web_env);
    web["migrate"] = json!({
        "command": ["/appstack-shop", "migrate"],
        "env": pairs(migrate_env),
    });
    if let Some(limit) = backoff_limit {
        web["migrate"]["backoffLimit"] = json!(limit);
    }
    m
}

fn template_env(d: &Deployment) -> String {
    let env = d
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.env.clone())
        .unwrap_or_default();
    env.iter()
        .map(|e| format!("{}={}", e.name, e.value.clone().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",")
}

fn restarts(p: &k8s_openapi::api::core::v1::Pod) -> i32 {
    p.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .into_iter()
        .flatten()
        .map(|c| c.restart_count)
        .sum()
}

/// Until the Deployment's template has `var` and its pods are all of it,
/// ready.
async fn wait_rolled(
    ctx: &Ctx,
    deployments: &Api<Deployment>,
    name: &str,
    var: &str,
) -> Result<()> {
    wait::until(
        &format!("Deployment {name} to take {var}"),
        Duration::from_secs(150),
        async || {
            let d = deployments.get(name).await?;
            Ok(if template_env(&d).contains(var) {
                Ready(())
            } else {
                Pending(template_env(&d))
            })
        },
    )
    .await?;
    pods::wait_deployment_settled(
        &ctx.client,
        &ctx.ns,
        name,
        Some(REPLICAS),
        Duration::from_secs(150),
    )
    .await?;
    Ok(())
}
