//! PostgreSQL with three instances under a writer that records every
//! acknowledged write (one cart row each, through the shop and the write
//! URL): the primary's pod is deleted with a grace period of 1 s. Writes
//! resume within 10 s, the write Service's EndpointSlices never list two
//! ready addresses at any 200 ms sample, the three instances are Ready
//! within 60 s with a new primary, the old one back as a replica, and every
//! acknowledged write is read back (asynchronous replication may lose the
//! last few: counted and reported).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use appstack_e2e::appstack;
use appstack_e2e::pods;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::shop;
use appstack_e2e::wait::{self, Pending, Ready};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::json;
use tokio::sync::Mutex;

const ROLE: &str = "appstack.dev/role";

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let stack = appstack::deploy_shop(ctx, |m| {
        m["spec"]["postgres"]["instances"] = json!(3);
    })
    .await?;
    let sts = stack.postgres();
    let pods_api = ctx.pods();
    let primary = wait::until(
        "three instances ready, one labelled primary",
        Duration::from_secs(240),
        async || {
            let all = pods::of_stateful_set(&ctx.client, &ctx.ns, &sts).await?;
            let ready = all.iter().filter(|p| pods::is_ready(p)).count();
            let primaries: Vec<String> = all
                .iter()
                .filter(|p| p.labels().get(ROLE).map(String::as_str) == Some("primary"))
                .map(|p| p.name_any())
                .collect();
            let replicas = all
                .iter()
                .filter(|p| p.labels().get(ROLE).map(String::as_str) == Some("replica"))
                .count();
            Ok(match primaries.as_slice() {
                [one] if ready == 3 && replicas == 2 => Ready(one.clone()),
                _ => Pending(format!(
                    "{ready}/3 ready, primary {primaries:?}, {replicas} replicas"
                )),
            })
        },
    )
    .await?;
    ctx.step(format!("primary {primary}, two replicas"));
    let (token, _) = shop::seed(&stack.shop, "writer").await?;

    // The writer: one new row per acknowledged write.
    let acked = Arc::new(Mutex::new(Vec::<(String, Instant)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let failed = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (shop, token, acked, stop, failed) = (
            stack.shop.clone(),
            token.clone(),
            acked.clone(),
            stop.clone(),
            failed.clone(),
        );
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let sku = format!("w{i}");
                i += 1;
                match tokio::time::timeout(Duration::from_secs(3), shop.add_item(&token, &sku, 1))
                    .await
                {
                    Ok(Ok(())) => acked.lock().await.push((sku, Instant::now())),
                    _ => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        })
    };
    // The sampler: ready addresses behind the write Service, every 200 ms.
    let most = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (slices, most, stop, service) = (
            Api::<EndpointSlice>::namespaced(ctx.client.clone(), &ctx.ns),
            most.clone(),
            stop.clone(),
            sts.clone(),
        );
        tokio::spawn(async move {
            let params =
                ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
            while !stop.load(Ordering::Relaxed) {
                if let Ok(list) = slices.list(&params).await {
                    let ready = list
                        .items
                        .iter()
                        .flat_map(|s| s.endpoints.iter())
                        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false))
                        .count();
                    most.fetch_max(ready, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = acked.lock().await.len();
    if before == 0 {
        bail!("the writer had no write acknowledged before the failover");
    }
    let deleted = Instant::now();
    pods_api
        .delete(
            &primary,
            &DeleteParams {
                grace_period_seconds: Some(1),
                ..DeleteParams::default()
            },
        )
        .await?;
    ctx.step(format!(
        "deleted primary {primary} (grace 1 s) after {before} acknowledged writes"
    ));
    let new_primary = wait::until(
        "a new primary, and all three instances ready, the old one a replica",
        Duration::from_secs(60),
        async || {
            let all = pods::of_stateful_set(&ctx.client, &ctx.ns, &sts).await?;
            let ready = all.iter().filter(|p| pods::is_ready(p)).count();
            let role = |name: &str| {
                all.iter()
                    .find(|p| p.name_any() == name)
                    .and_then(|p| p.labels().get(ROLE).cloned())
            };
            let new = all
                .iter()
                .find(|p| p.labels().get(ROLE).map(String::as_str) == Some("primary"))
                .map(|p| p.name_any());
            Ok(match new {
                Some(new)
                    if new != primary
                        && ready == 3
                        && role(&primary).as_deref() == Some("replica") =>
                {
                    Ready(new)
                }
                other => Pending(format!(
                    "{ready}/3 ready, primary {other:?}, {primary} is {:?}",
                    role(&primary)
                )),
            })
        },
    )
    .await?;
    let settled = deleted.elapsed();
    ctx.step(format!(
        "new primary {new_primary}; all ready, {primary} a replica, {:.1}s after the delete",
        settled.as_secs_f64()
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await?;
    sampler.await?;

    let acked = acked.lock().await.clone();
    // The longest pause between acknowledged writes from the delete on.
    let mut gap = Duration::ZERO;
    let mut last = deleted;
    for (_, at) in acked.iter().filter(|(_, at)| *at >= deleted) {
        gap = gap.max(at.duration_since(last));
        last = *at;
    }
    let (cart, _) = stack.shop.cart(&token).await?;
    let lost: Vec<&String> = acked
        .iter()
        .map(|(sku, _)| sku)
        .filter(|sku| !cart.iter().any(|(s, _)| s == *sku))
        .collect();
    let most = most.load(Ordering::Relaxed);
    ctx.step(format!(
        "figures: writes resumed after {:.1}s; {} acknowledged, {} failed attempts, {} lost ({lost:?}); at most {most} ready address(es) behind the write Service",
        gap.as_secs_f64(),
        acked.len(),
        failed.load(Ordering::Relaxed),
        lost.len()
    ));
    ctx.recovered("postgres failover (writes resumed)", gap);
    if gap > Duration::from_secs(10) {
        bail!(
            "writes resumed only after {:.1}s (at most 10 s)",
            gap.as_secs_f64()
        );
    }
    if most > 1 {
        bail!("the write Service listed {most} ready addresses at once");
    }
    if settled > Duration::from_secs(60) {
        bail!(
            "the instances took {:.1}s to be ready again",
            settled.as_secs_f64()
        );
    }
    Ok(())
}
