//! Redis with two replicas and Sentinel: the master pod is deleted (grace
//! 1 s) under a writer (one shop login, a session written to Redis through
//! the write URL, every 100 ms). Writes resume within 15 s, the write
//! Service never lists two ready addresses (sampled every 200 ms), the old
//! master comes back as a replica, every pod is Ready, and the writer's
//! acknowledged sessions that the promoted master does not have are
//! counted (replication is asynchronous).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use appstack_e2e::appstack;
use appstack_e2e::endpoints::{ReadySampler, Sampled};
use appstack_e2e::pods;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Pending, Ready};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::DeleteParams;

pub(super) const ROLE: &str = "appstack.dev/role";
const RESUME_BOUND: Duration = Duration::from_secs(15);

/// A write the writer started, and the session token when it was acknowledged.
type Write = (Instant, Option<String>);

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let stack = appstack::deploy_shop(ctx, |m| {
        m["spec"]["redis"]["replicas"] = 2.into();
    })
    .await?;
    let sts = stack.redis();
    let pods_api = ctx.pods();
    let master = wait_master(ctx, &sts, 3).await?;
    ctx.step(format!("master {master}, all three Redis pods Ready"));

    // The writer: one login (a session written to Redis) every 100 ms.
    let stop = Arc::new(AtomicBool::new(false));
    let log: Arc<Mutex<Vec<Write>>> = Arc::default();
    let writer = {
        let shop = stack.shop.clone();
        let (stop, log) = (stop.clone(), log.clone());
        tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let token =
                    tokio::time::timeout(Duration::from_secs(2), shop.login(&format!("writer{i}")))
                        .await
                        .ok()
                        .and_then(Result::ok);
                log.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push((started, token));
                i += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    // The sampler: ready addresses behind the write Service every 200 ms.
    let sampler = ReadySampler::start(&ctx.client, &ctx.ns, &sts, Duration::from_millis(200));
    tokio::time::sleep(Duration::from_secs(3)).await;

    let old = pods_api.get(&master).await?;
    let old_uid = old.uid().unwrap_or_default();
    let deleted = Instant::now();
    pods_api
        .delete(&master, &DeleteParams::default().grace_period(1))
        .await?;
    ctx.step(format!("deleted the master {master} (grace 1 s)"));

    let new_master = wait_master_not(ctx, &sts, &master, &old_uid).await?;
    let labelled_at = Instant::now();
    ctx.step(format!(
        "{new_master} labelled master {:.1}s after the delete; waiting for {master} to return",
        deleted.elapsed().as_secs_f64()
    ));
    wait::until(
        &format!("{master} back (new pod) and Ready"),
        Duration::from_secs(120),
        async || {
            Ok(match pods_api.get_opt(&master).await? {
                Some(p) if p.uid().as_deref() != Some(old_uid.as_str()) && pods::is_ready(&p) => {
                    Ready(())
                }
                Some(p) => Pending(format!("{} ready={}", pods::phase(&p), pods::is_ready(&p))),
                None => Pending("no pod".into()),
            })
        },
    )
    .await?;
    // Back before the Sentinels finished the failover, it may start as the
    // master they still named; they turn it into a replica once they
    // agree on the new one (it is never labelled meanwhile: they do not
    // name it). Bounded: it must not stay a master.
    let back = Instant::now();
    let ns = ctx.ns.clone();
    wait::until_every(
        &format!("{master} to answer ROLE slave"),
        Duration::from_secs(45),
        Duration::from_secs(1),
        async || {
            let role = pods::exec(
                ctx,
                &ns,
                &master,
                Some("redis"),
                "redis-cli ${REDIS_TLS_CA_FILE:+--tls --cacert \"$REDIS_TLS_CA_FILE\"} -p \"$APPSTACK_PORT\" role | head -n 1",
                Duration::from_secs(20),
            )
            .await?;
            let said = role.stdout.trim().to_string();
            Ok(if said == "slave" {
                Ready(())
            } else {
                Pending(format!("the old master {master} answers ROLE {said:?}"))
            })
        },
    )
    .await?;
    ctx.step(format!(
        "{master} is back as a replica (ROLE slave), {:.1}s after it was Ready again",
        back.elapsed().as_secs_f64()
    ));
    let master_now = wait_master(ctx, &sts, 3).await?;
    ensure!(
        master_now == new_master,
        "the master moved again, {new_master} -> {master_now}"
    );
    // The writer runs on until a write started after the new label is
    // acknowledged (the apps' client may take a while to reconnect), or the
    // bound is past; the time it then still had none counts too.
    let _ = wait::until_every(
        "a write acknowledged by the new master",
        (deleted + RESUME_BOUND + Duration::from_secs(5)).saturating_duration_since(Instant::now()),
        Duration::from_millis(200),
        async || {
            let log = log.lock().unwrap_or_else(PoisonError::into_inner);
            Ok(
                if log.iter().any(|(t, tok)| *t > labelled_at && tok.is_some()) {
                    Ready(())
                } else {
                    Pending("none yet".into())
                },
            )
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.context("the writer")?;
    let stopped = Instant::now();
    let log = std::mem::take(&mut *log.lock().unwrap_or_else(PoisonError::into_inner));
    let Sampled { samples, most } = sampler.finish().await?;

    // The longest time without an acknowledged write since the delete.
    let acked: Vec<(Instant, &String)> = log
        .iter()
        .filter_map(|(t, token)| token.as_ref().map(|tok| (*t, tok)))
        .collect();
    ensure!(
        acked.iter().any(|(t, _)| *t < deleted) && acked.iter().any(|(t, _)| *t > deleted),
        "the writer needs acknowledged writes before and after the delete"
    );
    let trailing = acked.last().map_or(Duration::ZERO, |(t, _)| {
        stopped
            .duration_since(*t)
            .saturating_sub(Duration::from_secs(3))
    });
    let gap = acked
        .windows(2)
        .filter(|w| w[1].0 > deleted)
        .map(|w| w[1].0.duration_since(w[0].0))
        .chain([trailing])
        .max()
        .unwrap_or_default();
    ctx.recovered("redis writes resumed after the master was deleted", gap);
    let failed = log.iter().filter(|(_, t)| t.is_none()).count();
    ctx.note(format!(
        "writer: {} logins, {} acknowledged, {failed} failed",
        log.len(),
        acked.len()
    ));

    // Every acknowledged session: still there?
    let mut lost = 0usize;
    for (_, token) in &acked {
        let me = stack.shop.me(token).await?;
        match me.status {
            200 => {}
            401 => lost += 1,
            other => bail!(
                "GET /me answered {other} after the failover: {}",
                me.summary()
            ),
        }
    }
    ctx.note(format!(
        "acknowledged writes lost in the failover: {lost} of {} (asynchronous replication)",
        acked.len()
    ));
    ctx.note(format!(
        "the write Service's ready addresses: at most {most} in {samples} samples (200 ms)"
    ));
    ensure!(
        most <= 1,
        "the write Service listed {most} ready addresses at once"
    );
    ensure!(
        gap <= RESUME_BOUND,
        "writes resumed {:.1}s after the master was deleted (bound {}s)",
        gap.as_secs_f64(),
        RESUME_BOUND.as_secs()
    );
    let status = appstack::api(&ctx.client, &ctx.ns).get(&stack.name).await?;
    let replication = &status.data["status"]["redis"]["replication"];
    ctx.step(format!("status.redis.replication: {replication}"));
    ensure!(
        replication["primary"].as_str() == Some(new_master.as_str()),
        "status.redis.replication.primary is {}, expected {new_master}",
        replication["primary"]
    );
    Ok(())
}

/// The pods of the store, with their role labels.
pub(super) async fn store_pods(ctx: &Ctx, sts: &str) -> Result<Vec<Pod>> {
    pods::of_stateful_set(&ctx.client, &ctx.ns, sts).await
}

pub(super) fn labelled_master(pods: &[Pod]) -> Vec<String> {
    pods.iter()
        .filter(|p| p.labels().get(ROLE).map(String::as_str) == Some("master"))
        .map(|p| p.name_any())
        .collect()
}

/// The one pod labelled master, once `count` pods are Ready.
pub(super) async fn wait_master(ctx: &Ctx, sts: &str, count: usize) -> Result<String> {
    wait::until(
        "one Redis pod labelled master and every pod Ready",
        Duration::from_secs(240),
        async || {
            let pods = store_pods(ctx, sts).await?;
            let masters = labelled_master(&pods);
            let ready = pods.iter().filter(|p| pods::is_ready(p)).count();
            Ok(match masters.as_slice() {
                [one] if ready == count => Ready(one.clone()),
                _ => Pending(format!(
                    "masters {masters:?}, {ready}/{count} ready: {}",
                    pods::describe(&pods)
                )),
            })
        },
    )
    .await
}

/// Another pod than `old` (or `old` as a new pod) labelled master.
pub(super) async fn wait_master_not(
    ctx: &Ctx,
    sts: &str,
    old: &str,
    old_uid: &str,
) -> Result<String> {
    wait::until_every(
        "another pod labelled master",
        Duration::from_secs(60),
        Duration::from_millis(200),
        async || {
            let pods = store_pods(ctx, sts).await?;
            let masters: Vec<&Pod> = pods
                .iter()
                .filter(|p| p.labels().get(ROLE).map(String::as_str) == Some("master"))
                .collect();
            Ok(match masters.as_slice() {
                [one] if one.name_any() != old || one.uid().as_deref() != Some(old_uid) => {
                    Ready(one.name_any())
                }
                _ => Pending(format!("masters {:?}", labelled_master(&pods))),
            })
        },
    )
    .await
}
