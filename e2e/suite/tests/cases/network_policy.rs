//! The stores behind locked doors, on a cluster that enforces NetworkPolicy
//! (the local cluster runs kube-router's firewall). Stack `np`: component
//! `web` uses Redis and PostgreSQL, component `cache` only Redis.
//! - every component reaches the stores it uses; `cache` cannot reach
//!   PostgreSQL;
//! - a pod that is no component, in the namespace or in another one, reaches
//!   neither store, but does reach the components' ports;
//! - `ingressFrom` narrows who reaches a component;
//! - `networkPolicy.enabled: false` removes the policies (and the doors open).

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Pending, Ready};
use appstack_e2e::{apply, appstack, pods};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::{Value, json};

const STACK: &str = "np";

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

/// A component that answers on 8080 (busybox nc), as an unprivileged user.
fn component(ctx: &Ctx, name: &str, uses: &[&str]) -> Value {
    json!({
        "name": name,
        "image": ctx.env.tools_image,
        "command": ["sh", "-c", "while true; do echo ok | nc -l -p 8080; done"],
        "port": 8080,
        "replicas": 1,
        "uses": uses,
        "podSecurityContext": {"runAsUser": 65534, "runAsGroup": 65534}
    })
}

fn manifest(ctx: &Ctx, tweak: impl FnOnce(&mut Value)) -> Result<Value> {
    let shop = appstack::shop_manifest(ctx)?;
    let mut m = json!({
        "apiVersion": "appstack.dev/v1alpha1",
        "kind": "AppStack",
        "metadata": {"name": STACK},
        "spec": {
            "components": [component(ctx, "web", &["redis", "postgres"]), component(ctx, "cache", &["redis"])],
            "redis": {"image": shop["spec"]["redis"]["image"]},
            "postgres": {"image": shop["spec"]["postgres"]["image"]},
            "retainDataOnDelete": false
        }
    });
    tweak(&mut m);
    Ok(m)
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    if !ctx.env.is_local() {
        ctx.note("skipped: it needs a cluster that enforces NetworkPolicy (the local one runs kube-router)");
        return Ok(());
    }
    apply::object(&ctx.client, &ctx.ns, manifest(ctx, |_| {})?).await?;
    appstack::wait_ready(&ctx.client, &ctx.ns, STACK, Duration::from_secs(240)).await?;
    let policies = Api::<NetworkPolicy>::namespaced(ctx.client.clone(), &ctx.ns)
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={STACK}")))
        .await?;
    let mut names: Vec<String> = policies
        .items
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    names.sort();
    if names != ["np-cache", "np-postgres", "np-redis", "np-web"] {
        bail!("expected one NetworkPolicy per store and component, found {names:?}");
    }
    ctx.step(format!(
        "AppStack {STACK} Ready with NetworkPolicies {}",
        names.join(", ")
    ));

    let web = component_pod(ctx, "np-web").await?;
    let cache = component_pod(ctx, "np-cache").await?;
    let stranger = pods::run_sleeper(ctx, "stranger").await?;
    let other_ns = format!("{}-other", ctx.ns);
    let outsider = outsider(ctx, &other_ns).await?;
    let result = doors(ctx, &web, &cache, &stranger, (&other_ns, &outsider)).await;
    Api::<Namespace>::all(ctx.client.clone())
        .delete(&other_ns, &DeleteParams::default())
        .await
        .ok();
    result
}

async fn doors(
    ctx: &mut Ctx,
    web: &str,
    cache: &str,
    stranger: &str,
    (other_ns, outsider): (&str, &str),
) -> Result<()> {
    let ns = ctx.ns.clone();
    let redis = format!("np-redis.{ns}.svc:6379");
    let postgres = format!("np-postgres.{ns}.svc:5432");
    let web_port = format!("np-web.{ns}.svc:8080");
    let checks: Vec<(&str, &str, &str, bool)> = vec![
        (&ns, web, &redis, true),
        (&ns, web, &postgres, true),
        (&ns, cache, &redis, true),
        (&ns, cache, &postgres, false),
        (&ns, stranger, &redis, false),
        (&ns, stranger, &postgres, false),
        (&ns, stranger, &web_port, true),
        (other_ns, outsider, &redis, false),
        (other_ns, outsider, &postgres, false),
        (other_ns, outsider, &web_port, true),
    ];
    for (pod_ns, pod, target, open) in checks {
        expect(ctx, pod_ns, pod, target, open).await?;
    }

    // Only pods of the namespace `team: edge` may reach web now.
    apply::object(
        &ctx.client,
        &ctx.ns,
        manifest(ctx, |m| {
            m["spec"]["components"][0]["ingressFrom"] =
                json!([{"namespaceSelector": {"matchLabels": {"team": "edge"}}}]);
        })?,
    )
    .await?;
    expect(ctx, &ns, stranger, &web_port, false).await?;
    expect(ctx, &ns, cache, &redis, true).await?;

    apply::object(
        &ctx.client,
        &ctx.ns,
        manifest(ctx, |m| {
            m["spec"]["networkPolicy"] = json!({"enabled": false})
        })?,
    )
    .await?;
    let api = Api::<NetworkPolicy>::namespaced(ctx.client.clone(), &ctx.ns);
    wait::until(
        "the stack's NetworkPolicies to be deleted",
        Duration::from_secs(60),
        async || {
            let left = api.list(&ListParams::default()).await?.items.len();
            Ok(if left == 0 {
                Ready(())
            } else {
                Pending(format!("{left} left"))
            })
        },
    )
    .await?;
    ctx.step("networkPolicy.enabled: false deleted the stack's NetworkPolicies");
    expect(ctx, &ns, stranger, &redis, true).await?;
    Ok(())
}

/// Waits until a TCP connection from `pod` to `target` succeeds (`open`) or
/// is refused; the policy engine needs a moment after a change.
async fn expect(ctx: &Ctx, ns: &str, pod: &str, target: &str, open: bool) -> Result<()> {
    let (host, port) = target.rsplit_once(':').context("host:port")?;
    let script =
        format!("nc -w 3 {host} {port} </dev/null >/dev/null 2>&1 && echo open || echo closed");
    let want = if open { "open" } else { "closed" };
    let start = Instant::now();
    wait::until(
        &format!("{pod} -> {target} to be {want}"),
        Duration::from_secs(45),
        async || {
            let out = pods::exec(ctx, ns, pod, None, &script, Duration::from_secs(20)).await?;
            let got = out.stdout.trim().to_string();
            Ok(if got == want {
                Ready(())
            } else {
                Pending(format!("{got} {}", out.stderr.trim()))
            })
        },
    )
    .await?;
    ctx.step(format!(
        "{ns}/{pod} -> {target}: {want} ({:.1}s)",
        start.elapsed().as_secs_f64()
    ));
    Ok(())
}

async fn component_pod(ctx: &Ctx, deployment: &str) -> Result<String> {
    let list = pods::of_deployment(&ctx.client, &ctx.ns, deployment).await?;
    list.iter()
        .find(|p| pods::is_ready(p))
        .and_then(|p| p.metadata.name.clone())
        .with_context(|| format!("no ready pod of {deployment}"))
}

/// A sleeping pod in another namespace, as unprivileged as the suite's own.
async fn outsider(ctx: &Ctx, ns: &str) -> Result<String> {
    pods::run_sleeper_in(ctx, ns, json!({}), "outsider").await
}
