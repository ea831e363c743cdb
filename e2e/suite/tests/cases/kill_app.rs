//! Kill every web pod, gracefully and with kill -9: the same session and cart
//! are served by the replacements. Nothing lived in the pods.
//! On the older majors (Redis 7, PostgreSQL 15), which the suite keeps covering.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use appstack_e2e::appstack::{self, Stack};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::shop::{self, Cart};
use appstack_e2e::wait::{self, Pending, Ready};
use appstack_e2e::{node, pods};
use kube::ResourceExt;
use kube::api::DeleteParams;

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let stack = appstack::deploy_shop(ctx, appstack::on_older_majors).await?;
    let (token, cart) = shop::seed(&stack.shop, "ada").await?;
    let served = stack.shop.expect_me(&token, "ada").await?;
    ctx.step(format!(
        "logged in as ada, cart {cart:?}; GET /me served by {served}"
    ));

    graceful(ctx, &stack, &token, &cart).await?;
    if ctx.env.is_local() {
        sigkill(ctx, &stack, &token, &cart).await?;
    } else {
        ctx.note("kill -9 skipped: it needs the node's containerd (CLUSTER=local)");
    }
    Ok(())
}

async fn graceful(ctx: &mut Ctx, stack: &Stack, token: &str, cart: &Cart) -> Result<()> {
    let old = stack
        .web_settled(ctx, None, Duration::from_secs(120))
        .await?;
    let old_names: Vec<String> = old.iter().map(|p| p.name_any()).collect();
    let start = Instant::now();
    for name in &old_names {
        ctx.pods().delete(name, &DeleteParams::default()).await?;
    }
    ctx.step(format!(
        "deleted every web pod (graceful): {}",
        old_names.join(", ")
    ));
    let (mut tries, mut failed) = (0, 0);
    let by = wait::until_every(
        "the old session to be served by a new web pod",
        Duration::from_secs(180),
        Duration::from_millis(200),
        async || {
            tries += 1;
            let r = stack.shop.me(token).await.inspect_err(|_| failed += 1)?;
            if r.status != 200 {
                failed += 1;
            }
            let by = r.served_by.clone().unwrap_or_default();
            Ok(if r.status == 200 && !old_names.contains(&by) {
                Ready(by)
            } else {
                Pending(r.summary())
            })
        },
    )
    .await?;
    ctx.recovered("delete all", start.elapsed());
    ctx.step(format!(
        "meanwhile {failed} of {tries} GET /me failed (the others were served by the terminating pods)"
    ));
    check_state(ctx, stack, token, cart, &by).await?;
    let new = stack
        .web_settled(ctx, None, Duration::from_secs(180))
        .await?;
    if new.iter().any(|p| old_names.contains(&p.name_any())) {
        bail!(
            "expected only new web pods after the deletion, saw {}",
            pods::describe(&new)
        );
    }
    // Several requests, all from the new pods.
    for _ in 0..6 {
        let by = stack.shop.expect_me(token, "ada").await?;
        if old_names.contains(&by) {
            bail!("GET /me was served by the deleted pod {by}");
        }
    }
    ctx.step(format!(
        "served only by the new pods: {}",
        pods::describe(&new)
    ));
    Ok(())
}

async fn sigkill(ctx: &mut Ctx, stack: &Stack, token: &str, cart: &Cart) -> Result<()> {
    let running = stack
        .web_settled(ctx, None, Duration::from_secs(120))
        .await?;
    let before: Vec<(String, i32)> = running
        .iter()
        .map(|p| (p.name_any(), node::restart_count(p)))
        .collect();
    let mut ids = Vec::new();
    for pod in &running {
        ids.push((pod.name_any(), node::container_id(pod, None)?));
    }
    let start = Instant::now();
    for (pod, id) in &ids {
        let how = node::sigkill(&ctx.env, id).await?;
        ctx.step(format!(
            "kill -9 of {pod}'s container {} ({how})",
            &id[..12.min(id.len())]
        ));
    }
    let mut tries = 0;
    let by = wait::until_every(
        "the old session to be served again after kill -9 of every web container",
        Duration::from_secs(180),
        Duration::from_millis(200),
        async || {
            tries += 1;
            let r = stack.shop.me(token).await?;
            Ok(if r.status == 200 {
                Ready(r.served_by.unwrap_or_default())
            } else {
                Pending(r.summary())
            })
        },
    )
    .await?;
    ctx.recovered("kill -9 all", start.elapsed());
    ctx.step(format!(
        "first GET /me 200 at try {tries} (requests fail until a container is back)"
    ));
    // Every container restarted in place (same pods, new processes).
    let names: Vec<String> = before.iter().map(|(n, _)| n.clone()).collect();
    wait::until(
        "every killed web container to be restarted and ready",
        Duration::from_secs(180),
        async || {
            let now = pods::of_deployment(&ctx.client, &ctx.ns, &stack.web()).await?;
            let restarted = before.iter().all(|(name, count)| {
                now.iter()
                    .find(|p| &p.name_any() == name)
                    .is_some_and(|p| node::restart_count(p) > *count && pods::is_ready(p))
            });
            Ok(if restarted {
                Ready(())
            } else {
                Pending(format!(
                    "restart counts before {before:?}, now {:?}",
                    now.iter()
                        .map(|p| (p.name_any(), node::restart_count(p), pods::is_ready(p)))
                        .collect::<Vec<_>>()
                ))
            })
        },
    )
    .await?;
    if !names.contains(&by) {
        ctx.step(format!("(served by {by}, a pod that was not killed)"));
    }
    check_state(ctx, stack, token, cart, &by).await?;
    ctx.step(
        "containers restarted in place by the kubelet; the session and cart were never in them",
    );
    Ok(())
}

/// The cart is served again (kube-proxy may still route to a container that
/// is restarting: those attempts are retried) and is the same one.
async fn check_state(ctx: &Ctx, stack: &Stack, token: &str, cart: &Cart, by: &str) -> Result<()> {
    let (now, r) = wait::until(
        "GET /cart to answer 200 again",
        Duration::from_secs(30),
        async || match stack.shop.cart(token).await {
            Ok(answer) => Ok(Ready(answer)),
            Err(e) => Ok(Pending(format!("{e:#}"))),
        },
    )
    .await?;
    if &now != cart {
        bail!(
            "expected the cart {cart:?} to survive, GET /cart returned {now:?} ({})",
            r.summary()
        );
    }
    ctx.step(format!(
        "same token: GET /me 200 from {by}; same cart from {}",
        r.served_by.unwrap_or_default()
    ));
    Ok(())
}
