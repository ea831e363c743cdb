//! A spec the CRD accepts but Kubernetes refuses in a child (here an env var
//! whose fieldRef names a field pods do not have) shows in the AppStack's
//! status with the API server's own words, not only in the operator's logs;
//! fixing the spec clears it.

use std::time::Duration;

use anyhow::{Result, bail};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::{apply, appstack};
use serde_json::{Value, json};

const NAME: &str = "refused";

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

fn stack(image: &str, env: Value) -> Value {
    json!({
        "apiVersion": "appstack.dev/v1alpha1",
        "kind": "AppStack",
        "metadata": {"name": NAME},
        "spec": {"components": [{
            "name": "web", "image": image, "port": 8080, "replicas": 0, "env": env
        }]}
    })
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let image = ctx.env.tools_image.clone();
    let bad = json!([{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nope"}}}]);
    apply::object(&ctx.client, &ctx.ns, stack(&image, bad)).await?;
    let message = appstack::wait_condition(
        &ctx.client,
        &ctx.ns,
        NAME,
        ("Degraded", "True", "ReconcileFailed"),
        Duration::from_secs(60),
    )
    .await?;
    ctx.step(format!("Degraded=True (ReconcileFailed): {message}"));
    for needle in ["Deployment", "refused-web", "fieldPath"] {
        if !message.contains(needle) {
            bail!("the ReconcileFailed message does not mention {needle:?}: {message}");
        }
    }

    let good = json!([{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]);
    apply::object(&ctx.client, &ctx.ns, stack(&image, good)).await?;
    appstack::wait_ready(&ctx.client, &ctx.ns, NAME, Duration::from_secs(90)).await?;
    let obj = appstack::api(&ctx.client, &ctx.ns).get(NAME).await?;
    if appstack::condition(&obj, "Degraded").is_none_or(|(s, _, _)| s != "False") {
        bail!(
            "Degraded should be False once fixed: {}",
            appstack::conditions(&obj)
        );
    }
    ctx.step("fixed the fieldPath: Ready, Degraded=False");
    Ok(())
}
