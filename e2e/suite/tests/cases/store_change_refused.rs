//! A change Kubernetes cannot make in place (a store's storage size lives in
//! the StatefulSet's volumeClaimTemplates) is refused without harm: the
//! AppStack reports Degraded=True (ChangeRejected) with what to do, a Warning
//! Event says the same, the store keeps running on its data, and reverting
//! the change clears the condition.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use appstack_e2e::appstack;
use appstack_e2e::pods;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::ResourceExt;
use kube::api::Api;
use serde_json::json;

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let stack = appstack::deploy_shop(ctx, |_| {}).await?;
    let redis = stack.redis();
    let size = stack.manifest["spec"]["redis"]["storage"]["size"]
        .as_str()
        .context("the example's redis has no storage.size")?
        .to_string();
    let token = stack.shop.login("ada").await?;
    let sets = Api::<StatefulSet>::namespaced(ctx.client.clone(), &ctx.ns);
    let before = sets.get(&redis).await?;
    let pod_before = pods::of_stateful_set(&ctx.client, &ctx.ns, &redis).await?;

    ctx.step(format!("changing spec.redis.storage.size {size} -> 3Gi"));
    appstack::patch_spec(
        &ctx.client,
        &ctx.ns,
        &stack.name,
        json!({"redis": {"storage": {"size": "3Gi"}}}),
    )
    .await?;
    let message = appstack::wait_condition(
        &ctx.client,
        &ctx.ns,
        &stack.name,
        ("Degraded", "True", "ChangeRejected"),
        Duration::from_secs(60),
    )
    .await?;
    ctx.step(format!("Degraded=True (ChangeRejected): {message}"));
    for needle in [redis.as_str(), "revert", "--cascade=orphan"] {
        if !message.contains(needle) {
            bail!("the ChangeRejected message does not mention {needle:?}: {message}");
        }
    }
    let events = appstack::events(&ctx.client, &ctx.ns, &stack.name).await?;
    if !events
        .iter()
        .any(|(t, r, _)| t == "Warning" && r == "ChangeRejected")
    {
        bail!("no Warning Event with reason ChangeRejected; events: {events:?}");
    }
    let obj = appstack::api(&ctx.client, &ctx.ns).get(&stack.name).await?;
    if appstack::condition(&obj, "Ready").is_none_or(|(s, _, _)| s != "True") {
        bail!(
            "the running stack should stay Ready while the change is refused: {}",
            appstack::conditions(&obj)
        );
    }

    // Nothing about the store moved: same StatefulSet spec, same pod, same data.
    let after = sets.get(&redis).await?;
    if after.metadata.generation != before.metadata.generation {
        bail!(
            "StatefulSet {redis} changed (generation {:?} -> {:?})",
            before.metadata.generation,
            after.metadata.generation
        );
    }
    let pod_after = pods::of_stateful_set(&ctx.client, &ctx.ns, &redis).await?;
    let uids =
        |p: &[k8s_openapi::api::core::v1::Pod]| p.iter().map(|p| p.uid()).collect::<Vec<_>>();
    if uids(&pod_before) != uids(&pod_after) {
        bail!(
            "the Redis pod was replaced: {} -> {}",
            pods::describe(&pod_before),
            pods::describe(&pod_after)
        );
    }
    stack.shop.expect_me(&token, "ada").await?;
    ctx.step(format!(
        "StatefulSet {redis} untouched, its pod still the same, the session still valid; a Warning Event says what to do"
    ));

    appstack::patch_spec(
        &ctx.client,
        &ctx.ns,
        &stack.name,
        json!({"redis": {"storage": {"size": size}}}),
    )
    .await?;
    appstack::wait_condition(
        &ctx.client,
        &ctx.ns,
        &stack.name,
        ("Degraded", "False", "AsExpected"),
        Duration::from_secs(60),
    )
    .await?;
    ctx.step(format!("size reverted to {size}: Degraded=False again"));
    Ok(())
}
