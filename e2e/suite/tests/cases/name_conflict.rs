//! Two AppStacks whose names add up to the same child name ("shop" with
//! component "api-web", "shop-api" with component "web": both want
//! Deployment shop-api-web). The second is told so in its status and an
//! Event, the first keeps its children; once the first is deleted, the
//! second converges on its own (the freed Deployment's deletion event wakes
//! it, so it does not wait for a requeue). kstatus, which Flux and kpt wait
//! with, reads each state as a user would: Current, then Failed (Stalled)
//! for the conflict, then Current.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Pending, Ready};
use appstack_e2e::{apply, appstack};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DeleteParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const FIRST: &str = "shop";
const SECOND: &str = "shop-api";
const TAKEN: &str = "shop-api-web";

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

/// A stack of one component with no replicas: the names are what matter.
fn stack(name: &str, component: &str, image: &str) -> Value {
    json!({
        "apiVersion": "appstack.dev/v1alpha1",
        "kind": "AppStack",
        "metadata": {"name": name},
        "spec": {"components": [{"name": component, "image": image, "port": 8080, "replicas": 0}]}
    })
}

/// Name of the controller that owns Deployment TAKEN.
async fn owner_of_taken(client: &Client, ns: &str) -> Result<String> {
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(TAKEN)
        .await
        .with_context(|| format!("getting Deployment {TAKEN}"))?;
    Ok(d.owner_references()
        .iter()
        .find(|r| r.controller == Some(true))
        .map(|r| format!("{} {}", r.kind, r.name))
        .unwrap_or_else(|| "nobody".into()))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let image = ctx.env.tools_image.clone();
    apply::object(&ctx.client, &ctx.ns, stack(FIRST, "api-web", &image)).await?;
    appstack::wait_ready(&ctx.client, &ctx.ns, FIRST, Duration::from_secs(60)).await?;
    ctx.step(format!(
        "AppStack {FIRST} (component api-web) Ready: it owns Deployment {TAKEN}"
    ));
    expect_kstatus(ctx, FIRST, "Current").await?;

    apply::object(&ctx.client, &ctx.ns, stack(SECOND, "web", &image)).await?;
    let message = appstack::wait_condition(
        &ctx.client,
        &ctx.ns,
        SECOND,
        ("Degraded", "True", "NameConflict"),
        Duration::from_secs(60),
    )
    .await?;
    ctx.step(format!(
        "AppStack {SECOND}: Degraded=True (NameConflict): {message}"
    ));
    for needle in [TAKEN, &format!("AppStack {FIRST}"), "rename"] {
        if !message.contains(needle) {
            bail!("the NameConflict message does not mention {needle:?}: {message}");
        }
    }
    let ready = appstack::condition(
        &appstack::api(&ctx.client, &ctx.ns).get(SECOND).await?,
        "Ready",
    );
    if ready.as_ref().is_none_or(|(s, _, _)| s != "False") {
        bail!(
            "AppStack {SECOND} must not be Ready while its Deployment is another stack's: {ready:?}"
        );
    }
    let owner = owner_of_taken(&ctx.client, &ctx.ns).await?;
    if owner != format!("AppStack {FIRST}") {
        bail!("Deployment {TAKEN} changed hands: its controller is now {owner}");
    }
    let events = appstack::events(&ctx.client, &ctx.ns, SECOND).await?;
    if !events
        .iter()
        .any(|(t, r, _)| t == "Warning" && r == "NameConflict")
    {
        bail!("no Warning Event with reason NameConflict on AppStack {SECOND}; events: {events:?}");
    }
    ctx.step(format!(
        "Deployment {TAKEN} still belongs to AppStack {FIRST}; a Warning Event says why"
    ));
    let (_, said) = expect_kstatus(ctx, SECOND, "Failed").await?;
    if !said.contains(TAKEN) {
        bail!("kstatus' message for {SECOND} does not name {TAKEN}: {said}");
    }

    appstack::api(&ctx.client, &ctx.ns)
        .delete(FIRST, &DeleteParams::default())
        .await
        .with_context(|| format!("deleting AppStack {FIRST}"))?;
    let start = Instant::now();
    ctx.step(format!(
        "deleted AppStack {FIRST}; waiting for {SECOND} to take the name"
    ));
    appstack::wait_ready(&ctx.client, &ctx.ns, SECOND, Duration::from_secs(120)).await?;
    let owner = wait::until(
        &format!("Deployment {TAKEN} to belong to AppStack {SECOND}"),
        Duration::from_secs(30),
        async || {
            let owner = owner_of_taken(&ctx.client, &ctx.ns).await?;
            Ok(if owner == format!("AppStack {SECOND}") {
                Ready(owner)
            } else {
                Pending(format!("controller {owner}"))
            })
        },
    )
    .await?;
    ctx.step(format!(
        "AppStack {SECOND} Ready {:.1}s later; Deployment {TAKEN} belongs to {owner}",
        start.elapsed().as_secs_f64()
    ));
    ctx.recovered("conflict resolved", start.elapsed());
    expect_kstatus(ctx, SECOND, "Current").await?;
    Ok(())
}

/// kstatus' verdict on the stack must be `want` (its status and message).
async fn expect_kstatus(ctx: &mut Ctx, name: &str, want: &str) -> Result<(String, String)> {
    let (status, message) = appstack::kstatus(&ctx.env, &ctx.ns, name).await?;
    if status != want {
        bail!("kstatus says {status} ({message}) for AppStack {name}; want {want}");
    }
    ctx.step(format!("kstatus (Flux, kpt): {name} {status}: {message}"));
    Ok((status, message))
}
