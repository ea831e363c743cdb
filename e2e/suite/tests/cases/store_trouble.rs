//! A store that does not serve says why in the AppStack's status, not only
//! in a crash loop. On one stack with both stores:
//! - PostgreSQL's password changed by hand inside the server is set back
//!   from the Secret, and the apps' login keeps working;
//! - a PostgreSQL role the apps cannot log in with (its password expired)
//!   is Degraded CredentialsOutOfSync, with an Event; fixed, it recovers;
//! - Redis' password changed inside Redis (CONFIG SET requirepass) is
//!   CredentialsOutOfSync, and the fix the message names (delete the pod)
//!   works;
//! - an unreadable AOF is Degraded StoreFailing with Redis' own words.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::{apply, appstack, pods};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use serde_json::json;

const STACK: &str = "trouble";
const REDIS_POD: &str = "trouble-redis-0";
const POSTGRES_POD: &str = "trouble-postgres-0";

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let shop = appstack::shop_manifest(ctx)?;
    apply::object(
        &ctx.client,
        &ctx.ns,
        json!({
            "apiVersion": "appstack.dev/v1alpha1",
            "kind": "AppStack",
            "metadata": {"name": STACK},
            "spec": {
                "components": [{"name": "web", "image": ctx.env.tools_image, "port": 8080, "replicas": 0}],
                "redis": {"image": shop["spec"]["redis"]["image"]},
                "postgres": {"image": shop["spec"]["postgres"]["image"]},
                "retainDataOnDelete": false
            }
        }),
    )
    .await?;
    appstack::wait_ready(&ctx.client, &ctx.ns, STACK, Duration::from_secs(240)).await?;
    ctx.step(format!("AppStack {STACK} Ready (Redis and PostgreSQL)"));

    postgres_password_healed(ctx).await?;
    postgres_login_refused(ctx).await?;
    redis_password_changed(ctx).await?;
    redis_aof_unreadable(ctx).await?;
    Ok(())
}

/// `kubectl exec` in a store pod's store container; the output, or an error
/// with what it said.
async fn exec(ctx: &Ctx, pod: &str, container: &str, script: &str) -> Result<String> {
    let out = pods::exec(
        ctx,
        &ctx.ns,
        pod,
        Some(container),
        script,
        Duration::from_secs(30),
    )
    .await?;
    if !out.success {
        bail!("{script} in {pod}: {}", out.text());
    }
    Ok(out.stdout.trim().to_string())
}

/// The apps' login, as they make it: over TCP with the Secret's password
/// (the store container has the apps' Secret in its environment as
/// APP_USER / APP_PASSWORD).
const APP_LOGIN: &str = "PGPASSWORD=\"$APP_PASSWORD\" psql -h 127.0.0.1 -U \"$APP_USER\" -d \"$POSTGRES_DB\" -Atqc 'select 1'";

async fn postgres_password_healed(ctx: &mut Ctx) -> Result<()> {
    // In one exec, so the credentials container cannot mend it in between.
    let after = exec(
        ctx,
        POSTGRES_POD,
        "postgres",
        &format!(
            "psql -h /var/run/postgresql -U \"$POSTGRES_USER\" -d postgres -qc \"ALTER ROLE \\\"$APP_USER\\\" PASSWORD 'changed-by-hand'\" && if {APP_LOGIN} >/dev/null 2>&1; then echo accepted; else echo refused; fi"
        ),
    )
    .await?;
    if after != "refused" {
        bail!(
            "the apps' login still worked right after the password was changed in the server ({after})"
        );
    }
    ctx.step("changed the role's password inside PostgreSQL: the apps' login fails");
    let start = Instant::now();
    appstack_e2e::wait::until(
        "the apps' login to work again",
        Duration::from_secs(60),
        async || {
            Ok(match exec(ctx, POSTGRES_POD, "postgres", APP_LOGIN).await {
                Ok(_) => appstack_e2e::wait::Ready(()),
                Err(e) => appstack_e2e::wait::Pending(format!("{e:#}")),
            })
        },
    )
    .await?;
    ctx.step(format!(
        "the password was set back from the Secret {:.1}s later; the apps log in",
        start.elapsed().as_secs_f64()
    ));
    appstack::wait_ready(&ctx.client, &ctx.ns, STACK, Duration::from_secs(60)).await?;
    Ok(())
}

async fn postgres_login_refused(ctx: &mut Ctx) -> Result<()> {
    // Setting the password again does not lift an expiry: the credentials
    // container cannot mend this one, so it must say so.
    let role = "psql -h /var/run/postgresql -U \"$POSTGRES_USER\" -d postgres -qc \"ALTER ROLE \\\"$APP_USER\\\" VALID UNTIL";
    exec(
        ctx,
        POSTGRES_POD,
        "postgres",
        &format!("{role} '2000-01-01'\""),
    )
    .await?;
    ctx.step("expired the apps' role (VALID UNTIL 2000-01-01)");
    degraded(
        ctx,
        "CredentialsOutOfSync",
        &[
            "postgres: ",
            "Secret trouble-postgres",
            "password authentication failed",
        ],
        Duration::from_secs(90),
    )
    .await?;
    let ready = appstack::condition(
        &appstack::api(&ctx.client, &ctx.ns).get(STACK).await?,
        "Ready",
    );
    if ready.as_ref().is_none_or(|(s, _, _)| s != "False") {
        bail!("expected Ready=False while the apps cannot log in, got {ready:?}");
    }

    exec(
        ctx,
        POSTGRES_POD,
        "postgres",
        &format!("{role} 'infinity'\""),
    )
    .await?;
    let start = Instant::now();
    // The credentials container runs again after the kubelet's back-off.
    appstack::wait_ready(&ctx.client, &ctx.ns, STACK, Duration::from_secs(330)).await?;
    ctx.step(format!(
        "role fixed (VALID UNTIL infinity): Ready again {:.1}s later",
        start.elapsed().as_secs_f64()
    ));
    not_degraded(ctx).await
}

async fn redis_password_changed(ctx: &mut Ctx) -> Result<()> {
    exec(
        ctx,
        REDIS_POD,
        "redis",
        &format!("{} CONFIG SET requirepass changed-by-hand", pods::REDIS_CLI),
    )
    .await?;
    ctx.step("CONFIG SET requirepass inside Redis (what any client with the password may do)");
    degraded(
        ctx,
        "CredentialsOutOfSync",
        &[
            "redis: ",
            "Secret trouble-redis",
            "WRONGPASS",
            "Delete pod trouble-redis-0",
        ],
        Duration::from_secs(60),
    )
    .await?;

    // The fix the message names.
    Api::<Pod>::namespaced(ctx.client.clone(), &ctx.ns)
        .delete(REDIS_POD, &DeleteParams::default())
        .await?;
    let start = Instant::now();
    appstack::wait_ready(&ctx.client, &ctx.ns, STACK, Duration::from_secs(120)).await?;
    ctx.step(format!(
        "deleted {REDIS_POD} as the message says: Ready again {:.1}s later",
        start.elapsed().as_secs_f64()
    ));
    not_degraded(ctx).await
}

async fn redis_aof_unreadable(ctx: &mut Ctx) -> Result<()> {
    // A manifest Redis cannot parse, then a restart of the server (not of
    // the pod): it must read the file again, and cannot. AOF is switched off
    // first, as Redis 8 writes its own manifest back on shutdown otherwise.
    exec(
        ctx,
        REDIS_POD,
        "redis",
        &format!("{cli} config set appendonly no >/dev/null && printf 'file appendonly.aof.1.base.rdb seq 1 type b\\nnot a manifest line\\n' > /data/appendonlydir/appendonly.aof.manifest && ({cli} shutdown nosave || true)", cli = pods::REDIS_CLI),
    )
    .await
    .or_else(|e| {
        // The exec ends with the container it runs in.
        if format!("{e:#}").contains("exit code 137") {
            Ok(String::new())
        } else {
            Err(e)
        }
    })?;
    ctx.step("wrote an unreadable AOF manifest and shut Redis down");
    degraded(
        ctx,
        "StoreFailing",
        &[
            "AOF manifest",
            "kubectl logs trouble-redis-0 -c redis --previous",
        ],
        Duration::from_secs(120),
    )
    .await
}

/// Waits until the stack is Degraded=True for `reason` with a message that
/// says every one of `needles` (the first is waited for, the rest checked),
/// and a Warning Event of that reason was recorded.
async fn degraded(ctx: &Ctx, reason: &str, needles: &[&str], timeout: Duration) -> Result<()> {
    let start = Instant::now();
    let message = appstack::wait_condition_mentioning(
        &ctx.client,
        &ctx.ns,
        STACK,
        ("Degraded", "True", reason),
        needles[0],
        timeout,
    )
    .await?;
    if let Some(missing) = needles.iter().find(|n| !message.contains(*n)) {
        bail!("expected the {reason} message to name {missing:?}: {message}");
    }
    ctx.step(format!(
        "Degraded=True ({reason}) after {:.1}s: {message}",
        start.elapsed().as_secs_f64()
    ));
    expect_event(ctx, reason).await
}

async fn expect_event(ctx: &Ctx, reason: &str) -> Result<()> {
    let events = appstack::events(&ctx.client, &ctx.ns, STACK).await?;
    if !events.iter().any(|(t, r, _)| t == "Warning" && r == reason) {
        bail!("expected a Warning Event {reason} on AppStack {STACK}, found {events:?}");
    }
    Ok(())
}

async fn not_degraded(ctx: &Ctx) -> Result<()> {
    let obj = appstack::api(&ctx.client, &ctx.ns).get(STACK).await?;
    match appstack::condition(&obj, "Degraded") {
        Some((s, _, _)) if s == "False" => Ok(()),
        other => bail!("expected Degraded=False once the store serves again, got {other:?}"),
    }
}
