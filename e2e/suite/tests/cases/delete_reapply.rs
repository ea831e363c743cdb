//! Delete the AppStack: its children are garbage-collected, its PVCs kept.
//! Apply it again: the old session and cart are back. Runs Valkey 8 as the
//! stack's Redis (its AOF and ACL file survive the same way).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use appstack_e2e::appstack;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::shop;
use appstack_e2e::wait::{self, Pending, Ready};
use appstack_e2e::{apply, children, pods};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn pvcs(ctx: &Ctx) -> Result<BTreeMap<String, (String, bool)>> {
    Ok(
        Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &ctx.ns)
            .list(&ListParams::default())
            .await?
            .into_iter()
            .map(|v| {
                let terminating = v.metadata.deletion_timestamp.is_some();
                (v.name_any(), (v.uid().unwrap_or_default(), terminating))
            })
            .collect(),
    )
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let stack = appstack::deploy_shop(ctx, appstack::on_valkey).await?;
    let (token, cart) = shop::seed(&stack.shop, "barbara").await?;
    ctx.step(format!("logged in as barbara, cart {cart:?}"));
    tokio::time::sleep(Duration::from_secs(2)).await; // Redis' everysec fsync
    let volumes = pvcs(ctx).await?;
    if volumes.len() < 2 {
        bail!(
            "expected the Redis and PostgreSQL PVCs, saw {:?}",
            volumes.keys()
        );
    }
    let before = children::snapshot(&ctx.client, &ctx.ns, &stack.name).await?;

    let start = Instant::now();
    appstack::api(&ctx.client, &ctx.ns)
        .delete(&stack.name, &DeleteParams::default())
        .await?;
    ctx.step(format!(
        "deleted AppStack {} ({} children)",
        stack.name,
        before.len()
    ));
    let aps = appstack::api(&ctx.client, &ctx.ns);
    let selector = format!("app.kubernetes.io/instance={}", stack.name);
    wait::until(
        "the AppStack, its children and their pods to be gone",
        Duration::from_secs(180),
        async || {
            let stack_left = aps.get_opt(&stack.name).await?.is_some();
            let mut left = children::snapshot(&ctx.client, &ctx.ns, &stack.name).await?;
            // The stores' Secrets may stay with the volumes they unlock.
            left.0.retain(|k, _| !k.starts_with("Secret/"));
            let pods_left = pods::list(&ctx.client, &ctx.ns, &selector).await?;
            Ok(if !stack_left && left.is_empty() && pods_left.is_empty() {
                Ready(())
            } else {
                Pending(format!(
                    "AppStack present: {stack_left}; children: [{}]; pods: {}",
                    left.keys(),
                    pods::describe(&pods_left)
                ))
            })
        },
    )
    .await?;
    ctx.step(format!(
        "children garbage-collected in {:.1}s",
        start.elapsed().as_secs_f64()
    ));
    let kept = pvcs(ctx).await?;
    for (name, (uid, _)) in &volumes {
        match kept.get(name) {
            Some((u, false)) if u == uid => {}
            other => bail!(
                "expected PVC {name} to be kept after the AppStack was deleted, saw {other:?}"
            ),
        }
    }
    ctx.step(format!(
        "PVCs kept: {}",
        kept.keys().cloned().collect::<Vec<_>>().join(", ")
    ));

    let start = Instant::now();
    apply::object(&ctx.client, &ctx.ns, stack.manifest.clone()).await?;
    appstack::wait_ready(&ctx.client, &ctx.ns, &stack.name, Duration::from_secs(300)).await?;
    ctx.step("applied the same manifest again: Ready");
    let shop = appstack::shop_client(ctx, &stack.web()).await?;
    let by = wait::until(
        "the old session to be valid on the re-created stack",
        Duration::from_secs(60),
        async || {
            let r = shop.me(&token).await?;
            Ok(if r.status == 200 {
                Ready(r.served_by.unwrap_or_default())
            } else {
                Pending(r.summary())
            })
        },
    )
    .await?;
    shop.expect_me(&token, "barbara").await?;
    let (now, _) = shop.cart(&token).await?;
    if now != cart {
        bail!("expected the old cart {cart:?} after re-applying, GET /cart returned {now:?}");
    }
    ctx.recovered("re-apply to old session", start.elapsed());
    ctx.step(format!(
        "old token valid (GET /me from {by}) and the cart is back: {now:?}"
    ));
    let after = pvcs(ctx).await?;
    for (name, (uid, _)) in &volumes {
        if after.get(name).map(|(u, _)| u) != Some(uid) {
            bail!(
                "expected the re-created stack to reuse PVC {name} (uid {uid}), saw {:?}",
                after.get(name)
            );
        }
    }
    Ok(())
}
