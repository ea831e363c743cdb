//! Kill the Redis pod: sessions survive (append-only file on the PVC). Kill
//! the PostgreSQL pod: cart rows survive.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use appstack_e2e::appstack::{self, Stack};
use appstack_e2e::pods;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::shop::{self, Cart};
use appstack_e2e::wait::{self, Pending, Ready};
use kube::ResourceExt;
use kube::api::DeleteParams;

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let stack = appstack::deploy_shop(ctx, |_| {}).await?;
    let (token, cart) = shop::seed(&stack.shop, "grace").await?;
    ctx.step(format!("logged in as grace, cart {cart:?}"));
    // Redis appends every second (appendfsync everysec): let the last
    // writes reach the file as a real user's would have by now.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let took = restart_store(ctx, &stack, &stack.redis(), &token, &cart).await?;
    ctx.recovered("redis", took);
    let took = restart_store(ctx, &stack, &stack.postgres(), &token, &cart).await?;
    ctx.recovered("postgres", took);
    Ok(())
}

/// Deletes the store's pod; waits until a new one is ready and the session
/// and cart are served again; returns the time from deletion to that.
async fn restart_store(
    ctx: &mut Ctx,
    stack: &Stack,
    sts: &str,
    token: &str,
    cart: &Cart,
) -> Result<Duration> {
    let old = pods::of_stateful_set(&ctx.client, &ctx.ns, sts).await?;
    let Some(old_pod) = old.first() else {
        bail!("StatefulSet {sts} has no pod to delete");
    };
    let (name, old_uid) = (old_pod.name_any(), old_pod.uid().unwrap_or_default());
    let start = Instant::now();
    ctx.pods().delete(&name, &DeleteParams::default()).await?;
    ctx.step(format!("deleted pod {name} (graceful)"));
    let pods_api = ctx.pods();
    wait::until(
        &format!("a new {name} to be ready"),
        Duration::from_secs(180),
        async || {
            let p = pods_api.get_opt(&name).await?;
            Ok(match p {
                Some(p) if p.uid().as_deref() != Some(old_uid.as_str()) && pods::is_ready(&p) => {
                    Ready(())
                }
                Some(p) => Pending(format!(
                    "{} uid {:?} ready={}",
                    pods::phase(&p),
                    p.uid(),
                    pods::is_ready(&p)
                )),
                None => Pending("no pod".into()),
            })
        },
    )
    .await?;
    ctx.step(format!("{name} is back (new pod, same PVC)"));
    wait::until_every(
        &format!("the session and cart to be served again after {name} restarted"),
        Duration::from_secs(120),
        Duration::from_millis(250),
        async || {
            let me = stack.shop.me(token).await?;
            if me.status == 401 {
                // Unknown token: lost, unless the app is still reconnecting;
                // keep looking, and name it if it stays so.
                return Ok(Pending(format!(
                    "session unknown (lost?): {}",
                    me.summary()
                )));
            }
            if me.status != 200 {
                return Ok(Pending(format!("GET /me {}", me.summary())));
            }
            let (now, r) = match stack.shop.cart(token).await {
                Ok(x) => x,
                Err(e) => return Ok(Pending(format!("{e:#}"))),
            };
            Ok(if &now == cart {
                Ready(())
            } else {
                Pending(format!("cart {now:?}, expected {cart:?} ({})", r.summary()))
            })
        },
    )
    .await?;
    let took = start.elapsed();
    ctx.step(format!(
        "after {name} restarted: same session (GET /me 200) and cart {cart:?}"
    ));
    Ok(took)
}
