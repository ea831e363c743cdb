//! The operator tells a cluster that enforces the stacks' NetworkPolicies
//! from one where a store is open anyway. Two stacks with Redis start side
//! by side; a NetworkPolicy that admits everyone to `open`'s Redis exists
//! before them (as a careless extra policy, or a CNI that enforces nothing,
//! would leave it):
//! - `open` gets the Warning Event NetworkPolicyNotEnforced: the operator
//!   reached its store although the stack's policy does not admit it;
//! - `closed`, probed the same way at the same time, gets none.

use std::time::{Duration, Instant};

use anyhow::Result;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Pending, Ready};
use appstack_e2e::{apply, appstack};
use serde_json::{Value, json};

const REASON: &str = "NetworkPolicyNotEnforced";

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

fn stack(ctx: &Ctx, name: &str) -> Result<Value> {
    let shop = appstack::shop_manifest(ctx)?;
    Ok(json!({
        "apiVersion": "appstack.dev/v1alpha1",
        "kind": "AppStack",
        "metadata": {"name": name},
        "spec": {
            "components": [{
                "name": "web",
                "image": ctx.env.tools_image,
                "command": ["sh", "-c", "while true; do echo ok | nc -l -p 8080; done"],
                "port": 8080,
                "replicas": 1,
                "podSecurityContext": {"runAsUser": 65534, "runAsGroup": 65534}
            }],
            "redis": {"image": shop["spec"]["redis"]["image"]},
            "retainDataOnDelete": false
        }
    }))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    if !ctx.env.is_local() {
        ctx.note("skipped: it needs a cluster that enforces NetworkPolicy (the local one runs kube-router)");
        return Ok(());
    }
    let allow_all = json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": {"name": "allow-all-to-open-redis"},
        "spec": {
            "podSelector": {"matchLabels": {"app.kubernetes.io/instance": "open", "app.kubernetes.io/name": "redis"}},
            "policyTypes": ["Ingress"],
            "ingress": [{}]
        }
    });
    apply::object(&ctx.client, &ctx.ns, allow_all).await?;
    ctx.step("NetworkPolicy allow-all-to-open-redis admits everyone to stack open's Redis");
    for name in ["open", "closed"] {
        apply::object(&ctx.client, &ctx.ns, stack(ctx, name)?).await?;
    }
    let start = Instant::now();
    for name in ["open", "closed"] {
        appstack::wait_ready(&ctx.client, &ctx.ns, name, Duration::from_secs(180)).await?;
    }
    ctx.step(format!(
        "stacks open and closed Ready after {:.1}s",
        start.elapsed().as_secs_f64()
    ));
    let message = wait::until(
        &format!("a {REASON} Event on AppStack open"),
        Duration::from_secs(120),
        async || {
            let events = appstack::events(&ctx.client, &ctx.ns, "open").await?;
            Ok(
                match events.into_iter().find(|(_, reason, _)| reason == REASON) {
                    Some((_, _, message)) => Ready(message),
                    None => Pending("none yet".into()),
                },
            )
        },
    )
    .await?;
    ctx.step(format!(
        "open: Warning {REASON} after {:.1}s: {message}",
        start.elapsed().as_secs_f64()
    ));
    // Both stacks were probed alike; give closed's probe the same time.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let closed = appstack::events(&ctx.client, &ctx.ns, "closed").await?;
    if let Some((_, _, message)) = closed.iter().find(|(_, reason, _)| reason == REASON) {
        anyhow::bail!("closed, whose store the policy keeps shut, got {REASON}: {message}");
    }
    ctx.step(format!(
        "closed: no {REASON} (its Redis stayed shut to the operator)"
    ));
    Ok(())
}
