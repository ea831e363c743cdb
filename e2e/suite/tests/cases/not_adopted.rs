//! Objects a user made by hand are never taken over. A Secret `legacy-redis`
//! and a Deployment `legacy-web` exist, with no owner, when AppStack `legacy`
//! (component web, Redis) is applied. Server-Side Apply would happily adopt
//! them (and the stack's deletion would then delete them); instead the stack
//! reports each name as taken, no Redis starts on the hand-made password, and
//! both objects stay exactly as they were. Deleting them lets it converge.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Pending, Ready};
use appstack_e2e::{apply, appstack, children};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const STACK: &str = "legacy";
const SECRET: &str = "legacy-redis";
const DEPLOYMENT: &str = "legacy-web";
const HANDMADE_PASSWORD: &str = "made-by-hand";

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

/// One component with no replicas, and Redis (on the image the shop example
/// uses, which the local cluster has).
fn stack(image: &str, redis_image: &Value) -> Value {
    json!({
        "apiVersion": "appstack.dev/v1alpha1",
        "kind": "AppStack",
        "metadata": {"name": STACK},
        "spec": {
            "components": [{"name": "web", "image": image, "port": 8080, "replicas": 0}],
            "redis": {"image": redis_image}
        }
    })
}

async fn create_by_hand(client: &Client, ns: &str, image: &str) -> Result<()> {
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": SECRET},
        "stringData": {"password": HANDMADE_PASSWORD}
    }))?;
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": DEPLOYMENT},
        "spec": {
            "replicas": 0,
            "selector": {"matchLabels": {"app": "legacy"}},
            "template": {
                "metadata": {"labels": {"app": "legacy"}},
                "spec": {"containers": [{"name": "main", "image": image}]}
            }
        }
    }))?;
    let pp = PostParams::default();
    Api::<Secret>::namespaced(client.clone(), ns)
        .create(&pp, &secret)
        .await
        .context("creating the hand-made Secret")?;
    Api::<Deployment>::namespaced(client.clone(), ns)
        .create(&pp, &deployment)
        .await
        .context("creating the hand-made Deployment")?;
    Ok(())
}

/// Waits for the stack's NameConflict condition to name `object`.
async fn wait_conflict_on(ctx: &Ctx, object: &str) -> Result<String> {
    appstack::wait_condition_mentioning(
        &ctx.client,
        &ctx.ns,
        STACK,
        ("Degraded", "True", "NameConflict"),
        object,
        Duration::from_secs(60),
    )
    .await
}

/// The Secret's `password` key, as text.
fn password(secret: Secret) -> Option<String> {
    secret
        .data?
        .get("password")
        .map(|p| String::from_utf8_lossy(&p.0).into_owned())
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let image = ctx.env.tools_image.clone();
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &ctx.ns);
    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), &ctx.ns);
    create_by_hand(&ctx.client, &ctx.ns, &image).await?;
    ctx.step(format!(
        "created by hand, no owner: Secret {SECRET}, Deployment {DEPLOYMENT}"
    ));

    let redis_image = appstack::shop_manifest(ctx)?["spec"]["redis"]["image"].clone();
    apply::object(&ctx.client, &ctx.ns, stack(&image, &redis_image)).await?;
    let message = wait_conflict_on(ctx, &format!("Secret {SECRET}")).await?;
    ctx.step(format!(
        "AppStack {STACK}: Degraded=True (NameConflict): {message}"
    ));
    for needle in ["not created by AppStack", "delete"] {
        if !message.contains(needle) {
            bail!("the NameConflict message does not mention {needle:?}: {message}");
        }
    }
    let secret = secrets.get(SECRET).await?;
    children::untouched(&format!("Secret {SECRET}"), &secret)?;
    if password(secret).as_deref() != Some(HANDMADE_PASSWORD) {
        bail!("Secret {SECRET} no longer holds the hand-made password");
    }
    let sts = Api::<StatefulSet>::namespaced(ctx.client.clone(), &ctx.ns);
    if sts.get_opt(SECRET).await?.is_some() {
        bail!("StatefulSet {SECRET} exists: Redis was started on the hand-made Secret's password");
    }
    ctx.step(format!(
        "Secret {SECRET} untouched (no owner, label or field of the operator's); no Redis started on its password"
    ));

    secrets
        .delete(SECRET, &DeleteParams::default())
        .await
        .context("deleting the hand-made Secret")?;
    let message = wait_conflict_on(ctx, &format!("Deployment {DEPLOYMENT}")).await?;
    ctx.step(format!("Secret deleted; now: {message}"));
    children::untouched(
        &format!("Deployment {DEPLOYMENT}"),
        &deployments.get(DEPLOYMENT).await?,
    )?;
    ctx.step(format!("Deployment {DEPLOYMENT} untouched"));

    deployments
        .delete(DEPLOYMENT, &DeleteParams::default())
        .await
        .context("deleting the hand-made Deployment")?;
    let start = Instant::now();
    // The hand-made Deployment is not watched: the stack finds the name free
    // on its short requeue.
    appstack::wait_ready(&ctx.client, &ctx.ns, STACK, Duration::from_secs(120)).await?;
    let took = start.elapsed();
    let d = wait::until(
        &format!("Deployment {DEPLOYMENT} to be AppStack {STACK}'s"),
        Duration::from_secs(30),
        async || {
            let d = deployments.get(DEPLOYMENT).await?;
            Ok(if children::controlled_by(&d, STACK) {
                Ready(d)
            } else {
                Pending("no owner yet".into())
            })
        },
    )
    .await?;
    let password = password(secrets.get(SECRET).await?).unwrap_or_default();
    if password == HANDMADE_PASSWORD || password.len() < 32 {
        bail!(
            "Secret {SECRET} after the hand-made one was deleted holds {password:?}, not a generated password"
        );
    }
    ctx.step(format!(
        "Deployment deleted; AppStack {STACK} Ready {:.1}s later, Deployment {} now its own, Secret {SECRET} generated",
        took.as_secs_f64(),
        d.name_any()
    ));
    ctx.recovered("hand-made object removed", took);
    Ok(())
}
