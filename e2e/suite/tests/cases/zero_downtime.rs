//! Under a steady client load with 3 replicas, delete one web pod: no request
//! fails (readiness probe, preStop delay and PDB make the handover clean).
//! On the older majors (Redis 7, PostgreSQL 15), which the suite keeps covering.

use std::time::Duration;

use anyhow::{Result, bail};
use appstack_e2e::appstack;
use appstack_e2e::load::{Load, LoadSpec};
use appstack_e2e::pods;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};

const REPLICAS: i32 = 3;
const RATE: u32 = 20;
const SECONDS: u64 = 30;

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let stack = appstack::deploy_shop(ctx, |m| {
        appstack::on_older_majors(m);
        appstack::fixed_web_replicas(m, REPLICAS);
    })
    .await?;
    let running = stack
        .web_settled(ctx, Some(REPLICAS), Duration::from_secs(180))
        .await?;
    ctx.step(format!(
        "{REPLICAS} web pods ready: {}",
        pods::describe(&running)
    ));

    // Are the operator's graceful-handover defaults in place?
    let d = Api::<Deployment>::namespaced(ctx.client.clone(), &ctx.ns)
        .get(&stack.web())
        .await?;
    let container = d
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.into_iter().next());
    let readiness = container
        .as_ref()
        .is_some_and(|c| c.readiness_probe.is_some());
    let pre_stop = container
        .as_ref()
        .and_then(|c| c.lifecycle.as_ref())
        .is_some_and(|l| l.pre_stop.is_some());
    let pdb = Api::<PodDisruptionBudget>::namespaced(ctx.client.clone(), &ctx.ns)
        .get_opt(&stack.web())
        .await?
        .is_some();
    let strict = readiness && pre_stop && pdb;
    ctx.step(format!(
        "readinessProbe: {readiness}, preStop: {pre_stop}, PDB: {pdb}"
    ));

    let token = stack.shop.login("linus").await?;
    stack.shop.expect_me(&token, "linus").await?;
    let spec = LoadSpec {
        path: "/me".into(),
        bearer: Some(token),
        rate: RATE,
        duration: Duration::from_secs(SECONDS),
        timeout: Duration::from_secs(2),
    };
    ctx.step(format!(
        "load: GET /me at {RATE} req/s for {SECONDS}s through Service {}",
        stack.web()
    ));
    let load = Load::start(stack.shop.http.clone(), stack.shop.addr, spec)?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let victim = running[0].name_any();
    ctx.pods().delete(&victim, &DeleteParams::default()).await?;
    ctx.step(format!("deleted web pod {victim} (graceful) under load"));
    let report = load.wait().await?;
    ctx.step(format!("load done: {}", report.summary()));
    for f in &report.failures {
        ctx.step(format!("  failed {f}"));
    }
    let settled = stack
        .web_settled(ctx, Some(REPLICAS), Duration::from_secs(120))
        .await?;
    ctx.step(format!("replacement ready: {}", pods::describe(&settled)));

    ctx.note(format!(
        "{} of {} requests failed while a pod was deleted",
        report.failed, report.sent
    ));
    if report.sent == 0 || report.ok == 0 {
        bail!(
            "the load sent {} requests and {} succeeded: nothing was measured",
            report.sent,
            report.ok
        );
    }
    if report.failed > 0 {
        if strict {
            bail!(
                "expected 0 failed requests with readiness probe, preStop and PDB in place; {} of {} failed, e.g. {}",
                report.failed,
                report.sent,
                report.failures.join("; ")
            );
        }
        ctx.note("not enforced: the pod template lacks a readiness probe, preStop or PDB");
    }
    Ok(())
}
