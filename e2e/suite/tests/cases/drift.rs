//! Drift: a child Deployment's image changed by hand and a child Service
//! deleted are both restored by the operator.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use appstack_e2e::appstack;
use appstack_e2e::cmd;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Pending, Ready};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::ResourceExt;
use kube::api::Api;

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let stack = appstack::deploy_shop(ctx, |_| {}).await?;
    let web = stack.web();
    let image = stack.manifest["spec"]["components"][0]["image"]
        .as_str()
        .context("the example has no image")?
        .to_string();
    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), &ctx.ns);
    let services = Api::<Service>::namespaced(ctx.client.clone(), &ctx.ns);
    let container = deployments
        .get(&web)
        .await?
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|s| s.containers.first().map(|c| c.name.clone()))
        .context("the web Deployment has no container")?;
    let old_uid = services.get(&web).await?.uid().unwrap_or_default();

    let t = Duration::from_secs(30);
    let set = format!("{container}={}", ctx.env.tools_image);
    let start = Instant::now();
    cmd::run_ok(
        &ctx.env,
        "kubectl",
        &[
            "-n",
            &ctx.ns,
            "set",
            "image",
            &format!("deployment/{web}"),
            &set,
        ],
        None,
        t,
    )
    .await?;
    cmd::run_ok(
        &ctx.env,
        "kubectl",
        &["-n", &ctx.ns, "delete", "service", &web, "--wait=false"],
        None,
        t,
    )
    .await?;
    ctx.step(format!(
        "by hand: kubectl set image deployment/{web} {set}; kubectl delete service {web}"
    ));

    wait::until_every(
        &format!("the operator to restore Deployment {web}'s image {image} and Service {web}"),
        Duration::from_secs(90),
        Duration::from_millis(250),
        async || {
            let d = deployments.get(&web).await?;
            let seen = d
                .spec
                .and_then(|s| s.template.spec)
                .and_then(|s| s.containers.first().and_then(|c| c.image.clone()))
                .unwrap_or_default();
            let svc = services.get_opt(&web).await?;
            let svc_back = svc.as_ref().is_some_and(|s| {
                s.uid().as_deref() != Some(old_uid.as_str())
                    && s.metadata.deletion_timestamp.is_none()
            });
            Ok(if seen == image && svc_back {
                Ready(())
            } else {
                Pending(format!("image {seen}; Service recreated: {svc_back}"))
            })
        },
    )
    .await?;
    ctx.recovered("restored", start.elapsed());

    // The restored Service routes to the (rolled back) web pods again.
    let shop = appstack::shop_client(ctx, &web).await?;
    let token = shop.login("drift").await?;
    let by = shop.expect_me(&token, "drift").await?;
    ctx.step(format!(
        "the recreated Service {web} serves again (GET /me from {by})"
    ));
    Ok(())
}
