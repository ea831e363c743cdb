//! The operator is down while Sentinel fails a Redis master over: the
//! operator's Deployment is scaled to 0, the master pod deleted (grace
//! 1 s), and once a Sentinel majority names a new master that answers
//! ROLE master, the operator is scaled back. Its pods' labels converge on
//! the new master within 5 s of a leader being elected, and the write
//! Service never lists two ready addresses (sampled every 200 ms). The
//! operator is scaled back in every path. Then, settled, the leader's
//! reconciles over 30 s are counted: the store is asked every 10 s, not 2 s.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use appstack_e2e::endpoints::{ReadySampler, Sampled};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Pending, Ready};
use appstack_e2e::{appstack, operator, pods};
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use serde_json::json;

use super::redis_failover::{labelled_master, store_pods, wait_master};

const CONVERGE_BOUND: Duration = Duration::from_secs(5);

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scale(ctx: &Ctx, replicas: i32) -> Result<()> {
    let api: Api<Deployment> = Api::namespaced(ctx.client.clone(), operator::NAMESPACE);
    api.patch(
        operator::FULLNAME,
        &PatchParams::default(),
        &Patch::Merge(&json!({"spec": {"replicas": replicas}})),
    )
    .await
    .with_context(|| format!("scaling the operator to {replicas}"))?;
    Ok(())
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let stack = appstack::deploy_shop(ctx, |m| {
        m["spec"]["redis"]["replicas"] = 2.into();
    })
    .await?;
    let sts = stack.redis();
    let master = wait_master(ctx, &sts, 3).await?;
    ctx.step(format!("master {master}"));

    scale(ctx, 0).await?;
    let outcome = while_down(ctx, &sts, &master).await;
    // Back in every path.
    scale(ctx, operator::REPLICAS).await?;
    let sampler = outcome?;
    let back = Instant::now();
    let leader = operator::wait_leader(&ctx.client, &[], Duration::from_secs(120)).await?;
    let elected = back.elapsed();
    ctx.step(format!(
        "operator scaled back; {} leads after {:.1}s",
        leader.name_any(),
        elected.as_secs_f64()
    ));
    let led = Instant::now();
    let named = sentinel_master(ctx, &sts, &master).await?;
    let labelled = wait::until_every(
        &format!("the master label on {named}"),
        Duration::from_secs(60),
        Duration::from_millis(100),
        async || {
            let masters = labelled_master(&store_pods(ctx, &sts).await?);
            Ok(if masters == [named.clone()] {
                Ready(())
            } else {
                Pending(format!("labelled master: {masters:?}"))
            })
        },
    )
    .await;
    let took = led.elapsed();
    let Sampled { samples, most } = sampler.finish().await?;
    labelled?;
    ctx.recovered("labels converged after the operator's return", took);
    ctx.note(format!(
        "labels on {named} {:.1}s after a leader was elected ({:.1}s after the scale-up); the write Service's ready addresses: at most {most} in {samples} samples",
        took.as_secs_f64(),
        (elected + took).as_secs_f64()
    ));
    ensure!(
        most <= 1,
        "the write Service listed {most} ready addresses at once"
    );
    ensure!(
        took <= CONVERGE_BOUND,
        "the labels converged {:.1}s after the operator's return (bound {}s)",
        took.as_secs_f64(),
        CONVERGE_BOUND.as_secs()
    );
    steady_polling(ctx, &leader).await
}

/// How often the leader reconciles once the store is settled (the
/// scenario runs alone, so mostly this stack): every 10 s rather than 2 s.
async fn steady_polling(ctx: &mut Ctx, leader: &k8s_openapi::api::core::v1::Pod) -> Result<()> {
    // The replicas' links come up and status settles first.
    tokio::time::sleep(Duration::from_secs(15)).await;
    let http = ctx.http().await?;
    let window = Duration::from_secs(30);
    let before = operator::reconciles(&http, leader).await?;
    tokio::time::sleep(window).await;
    let after = operator::reconciles(&http, leader).await?;
    let n = after - before;
    ctx.note(format!(
        "reconciles by the leader in {}s at steady state: {n} (2 s polling: about 15 per replicated stack)",
        window.as_secs()
    ));
    ensure!(
        n <= 8.0,
        "the leader reconciled {n} times in {}s at steady state: the settled store is still polled every 2 s",
        window.as_secs()
    );
    Ok(())
}

/// With the operator gone: the master deleted, and Sentinel's failover
/// awaited. Returns the write Service's sampler, still running.
async fn while_down(ctx: &mut Ctx, sts: &str, master: &str) -> Result<ReadySampler> {
    wait::until(
        "the operator's pods to be gone",
        Duration::from_secs(90),
        async || {
            let left = operator::operator_pods(&ctx.client).await?;
            Ok(if left.is_empty() {
                Ready(())
            } else {
                Pending(pods::describe(&left))
            })
        },
    )
    .await?;
    ctx.step("the operator is scaled to 0");
    let sampler = ReadySampler::start(&ctx.client, &ctx.ns, sts, Duration::from_millis(200));
    ctx.pods()
        .delete(master, &DeleteParams::default().grace_period(1))
        .await?;
    let deleted = Instant::now();
    ctx.step(format!("deleted the master {master} (grace 1 s)"));
    let named = sentinel_master(ctx, sts, master).await?;
    ctx.step(format!(
        "Sentinel promoted {named} {:.1}s after the delete, with no operator",
        deleted.elapsed().as_secs_f64()
    ));
    Ok(sampler)
}

/// The pod other than `old` that a majority of the surviving pods'
/// Sentinels name the master and that answers ROLE master.
async fn sentinel_master(ctx: &Ctx, sts: &str, old: &str) -> Result<String> {
    let pods = [0, 1, 2]
        .map(|i| format!("{sts}-{i}"))
        .into_iter()
        .filter(|p| p != old)
        .collect::<Vec<_>>();
    wait::until_every(
        "a majority of Sentinels to name a new master that says ROLE master",
        Duration::from_secs(60),
        Duration::from_millis(500),
        async || {
            let mut named = Vec::new();
            for p in &pods {
                let out = pods::exec(
                    ctx,
                    &ctx.ns,
                    p,
                    Some("sentinel"),
                    "redis-cli ${REDIS_TLS_CA_FILE:+--tls --cacert \"$REDIS_TLS_CA_FILE\"} -p \"$APPSTACK_SENTINEL_PORT\" sentinel get-master-addr-by-name \"$APPSTACK_MASTER_NAME\" | head -n 1",
                    Duration::from_secs(10),
                )
                .await?;
                named.push(out.stdout.trim().split('.').next().unwrap_or_default().to_string());
            }
            let agreed = named.iter().all(|n| n == &named[0]) && named[0] != old && !named[0].is_empty();
            if !agreed {
                return Ok(Pending(format!("Sentinels name {named:?}")));
            }
            let role = pods::exec(
                ctx,
                &ctx.ns,
                &named[0],
                Some("redis"),
                &format!("{} -p \"$APPSTACK_PORT\" role | head -n 1", pods::REDIS_CLI),
                Duration::from_secs(10),
            )
            .await?;
            Ok(if role.stdout.trim() == "master" {
                Ready(named[0].clone())
            } else {
                Pending(format!("{} answers ROLE {}", named[0], role.stdout.trim()))
            })
        },
    )
    .await
}
