//! Rotation without failed requests: the shop under a steady load (GET
//! /cart, which reads the session from Redis and the rows from
//! PostgreSQL, through the web Service, 2 fixed replicas) while a user
//! rotates both stores' apps' passwords with kubectl patch. The stores keep
//! the old passwords (Redis: a second ACL password; PostgreSQL: the other
//! login role of the pair) until every web pod runs on the new ones, then
//! drop them. Asserts: zero failed requests from the edit until the old
//! passwords are refused; the store pods are not restarted; the old
//! passwords are refused by the servers after the rollout and the new ones
//! accepted; the cart and session survive and new writes go through.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use appstack_e2e::appstack;
use appstack_e2e::load::{Load, LoadSpec};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::{pods, shop};
use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;

use super::password_rotation::{self as rotation, HASH};

const REPLICAS: i32 = 2;
const RATE: u32 = 10;

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    under_load(ctx, |_| {}).await.map(|_| ())
}

/// The rotation under load on the shop after `tweak` (e.g. stores with
/// replicas); returns the stack once every check passed.
pub(super) async fn under_load(
    ctx: &mut Ctx,
    tweak: impl FnOnce(&mut serde_json::Value),
) -> Result<appstack::Stack> {
    let stack = appstack::deploy_shop(ctx, |m| {
        appstack::fixed_web_replicas(m, REPLICAS);
        tweak(m);
    })
    .await?;
    let (token, cart) = shop::seed(&stack.shop, "grace").await?;
    let [redis, postgres] = rotation::rotations(ctx, &stack).await?;
    let old_web: Vec<String> = stack
        .web_settled(ctx, Some(REPLICAS), Duration::from_secs(180))
        .await?
        .iter()
        .map(|p| p.name_any())
        .collect();
    let old_web_hash = rotation::template_hash::<Deployment>(ctx, &stack.web()).await?;
    let mut old_store = Vec::new();
    for name in [stack.redis(), stack.postgres()] {
        let pod = ctx.pods().get(&format!("{name}-0")).await?;
        old_store.push((
            pod.uid().unwrap_or_default(),
            rotation::annotation(&pod, HASH),
        ));
    }
    ctx.step(format!(
        "grace logged in, cart {cart:?}; web {}",
        old_web.join(", ")
    ));

    let spec = LoadSpec {
        path: "/cart".into(),
        bearer: Some(token.clone()),
        rate: RATE,
        duration: Duration::from_secs(600),
        timeout: Duration::from_secs(2),
    };
    let load = Load::start(stack.shop.http.clone(), stack.shop.addr, spec)?;
    ctx.step(format!(
        "load: GET /cart at {RATE} req/s through Service {}",
        stack.web()
    ));
    tokio::time::sleep(Duration::from_secs(3)).await;

    let edited = Instant::now();
    let outcome = async {
        rotation::edit(ctx, &redis, &postgres).await?;
        let web = rotation::wait_rolled(
            ctx,
            &stack,
            [&redis, &postgres],
            &old_store,
            &old_web,
            &old_web_hash,
        )
        .await?;
        let rolled = edited.elapsed();
        ctx.step(format!(
            "rolled {:.1}s after the edit, the same store pods: web {}",
            rolled.as_secs_f64(),
            pods::describe(&web)
        ));
        // The load runs on until both old passwords are refused: a pod
        // that still held one would fail now.
        rotation::check_server(ctx, &redis).await?;
        rotation::check_server(ctx, &postgres).await?;
        let retired = edited.elapsed();
        tokio::time::sleep(Duration::from_secs(3)).await;
        anyhow::Ok((web, rolled, retired))
    }
    .await;
    let report = load.stop().await?;
    ctx.step(format!("load from the edit on: {}", report.summary()));
    for f in report.failures.iter().take(10) {
        ctx.step(format!("  failed {f}"));
    }
    let (web, rolled, retired) = outcome?;
    rotation::check_secrets(ctx, [&redis, &postgres]).await?;
    rotation::check_web_pods(ctx, &stack, &web).await?;
    rotation::check_shop(ctx, &stack, "grace", &token, &cart).await?;

    ctx.recovered("secret edit to every web pod rolled", rolled);
    ctx.recovered("secret edit to both old passwords refused", retired);
    ctx.note(format!(
        "{} of {} GET /cart failed from the password edit until the old passwords were refused",
        report.failed, report.sent
    ));
    if report.sent == 0 || report.ok == 0 {
        bail!(
            "the load sent {} requests and {} succeeded: nothing was measured",
            report.sent,
            report.ok
        );
    }
    if report.failed > 0 {
        bail!(
            "expected 0 failed requests during the rotation; {} of {} failed, e.g. {}",
            report.failed,
            report.sent,
            report.failures.join("; ")
        );
    }
    Ok(stack)
}
