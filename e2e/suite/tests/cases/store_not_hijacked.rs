//! A stack never wires a component to a store it does not own. A Service
//! `hij-redis` exists (made by hand here; another stack's child would do the
//! same) when AppStack `hij` (component web, Redis) is applied: the stack
//! reports the name as taken and does not create its web Deployment, whose
//! REDIS_URL and password would otherwise point at whatever that Service
//! selects. Once the Service is gone, the stack converges.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::{apply, appstack, children};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

const STACK: &str = "hij";
const SERVICE: &str = "hij-redis";
const DEPLOYMENT: &str = "hij-web";

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let services = Api::<Service>::namespaced(ctx.client.clone(), &ctx.ns);
    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), &ctx.ns);
    let foreign: Service = serde_json::from_value(json!({
        "metadata": {"name": SERVICE},
        "spec": {"selector": {"app": "somebody-else"}, "ports": [{"port": 6379}]}
    }))?;
    services
        .create(&PostParams::default(), &foreign)
        .await
        .context("creating the Service that holds the store's name")?;
    ctx.step(format!("Service {SERVICE} exists and is not the stack's"));

    let image = ctx.env.tools_image.clone();
    let redis_image = appstack::shop_manifest(ctx)?["spec"]["redis"]["image"].clone();
    apply::object(
        &ctx.client,
        &ctx.ns,
        json!({
            "apiVersion": "appstack.dev/v1alpha1",
            "kind": "AppStack",
            "metadata": {"name": STACK},
            "spec": {
                "components": [{"name": "web", "image": image, "port": 8080, "replicas": 0}],
                "redis": {"image": redis_image},
                "retainDataOnDelete": false
            }
        }),
    )
    .await?;
    let message = appstack::wait_condition_mentioning(
        &ctx.client,
        &ctx.ns,
        STACK,
        ("Degraded", "True", "NameConflict"),
        &format!("{DEPLOYMENT} not applied"),
        Duration::from_secs(60),
    )
    .await?;
    ctx.step(format!("Degraded=True (NameConflict): {message}"));
    if deployments.get_opt(DEPLOYMENT).await?.is_some() {
        bail!(
            "Deployment {DEPLOYMENT} exists: it is wired to a Redis Service the stack does not own"
        );
    }
    children::untouched(&format!("Service {SERVICE}"), &services.get(SERVICE).await?)?;
    ctx.step(format!(
        "no Deployment {DEPLOYMENT} (its credentials never reach the foreign Service); Service untouched"
    ));

    services
        .delete(SERVICE, &DeleteParams::default())
        .await
        .context("deleting the foreign Service")?;
    let start = Instant::now();
    appstack::wait_ready(&ctx.client, &ctx.ns, STACK, Duration::from_secs(120)).await?;
    let took = start.elapsed();
    let d = deployments.get(DEPLOYMENT).await?;
    if !children::controlled_by(&d, STACK) {
        bail!("Deployment {DEPLOYMENT} is not AppStack {STACK}'s");
    }
    ctx.step(format!(
        "Service deleted; AppStack {STACK} Ready {:.1}s later with its own {SERVICE} and {DEPLOYMENT}",
        took.as_secs_f64()
    ));
    ctx.recovered("store name freed", took);
    Ok(())
}
