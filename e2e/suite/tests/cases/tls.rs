//! TLS to the stores, switched on for a stack that ran without it (as every
//! stack made before TLS did), then a certificate replaced under a running
//! store:
//! - before: plain URLs, and PostgreSQL's pg_stat_ssl shows the shop's
//!   connections unencrypted;
//! - `tls` on: the stores restart with TLS, the shop rolls; ada's session
//!   and cart are intact; the Secrets carry `rediss://` and
//!   `sslmode=verify-full`; pg_stat_ssl shows every connection of the shop
//!   encrypted; Redis refuses a plain connection and PostgreSQL refuses one
//!   from the network; a client that checks names accepts the store's DNS
//!   name and refuses its bare IP;
//! - the stores' certificate Secrets deleted: the operator issues new ones
//!   (Event CertificateIssued), the stores load them without a restart, and
//!   the shop keeps serving.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Pending, Ready};
use appstack_e2e::{appstack, children, cmd, pods, shop, stores};
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams};
use serde_json::json;

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

const CA: &str = "/etc/appstack/tls/ca.crt";

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let stack = appstack::deploy_shop(ctx, |m| {
        m["spec"]["tls"] = json!({"enabled": false});
    })
    .await?;
    let (token, cart) = shop::seed(&stack.shop, "ada").await?;
    ctx.step(format!("without TLS: logged in as ada, cart {cart:?}"));
    let url = secret_value(ctx, &stack.redis(), "url").await?;
    if !url.starts_with("redis://") {
        bail!("expected a plain redis:// URL without TLS, got {url}");
    }
    let plain = stores::app_connections_ssl(ctx, &format!("{}-0", stack.postgres())).await?;
    if plain.is_empty() || plain.iter().any(|ssl| ssl.starts_with("true|")) {
        bail!("expected the shop's PostgreSQL connections unencrypted, pg_stat_ssl says {plain:?}");
    }
    ctx.step(format!(
        "without TLS: redis:// URL; pg_stat_ssl shows {} plain connection(s) of the shop",
        plain.len()
    ));

    let start = Instant::now();
    appstack::patch_spec(&ctx.client, &ctx.ns, &stack.name, json!({"tls": null})).await?;
    ctx.step("spec.tls removed: TLS is on by default");
    appstack::wait_ready(&ctx.client, &ctx.ns, &stack.name, Duration::from_secs(180)).await?;
    let settled = stack
        .web_settled(ctx, Some(2), Duration::from_secs(240))
        .await?;
    ctx.step(format!(
        "Ready and the shop rolled after {:.1}s: {}",
        start.elapsed().as_secs_f64(),
        pods::describe(&settled)
    ));
    let (after, _) = stack.shop.cart(&token).await?;
    if after != cart {
        bail!("the cart changed across the switch: {cart:?} -> {after:?}");
    }
    stack.shop.expect_me(&token, "ada").await?;
    stack.shop.add_item(&token, "tls-probe", 1).await?;
    ctx.step("ada's session and cart are intact; a new item is taken");

    let redis_url = secret_value(ctx, &stack.redis(), "url").await?;
    let pg_url = secret_value(ctx, &stack.postgres(), "url").await?;
    if !redis_url.starts_with("rediss://") || !pg_url.contains("sslmode=verify-full") {
        bail!("expected rediss:// and sslmode=verify-full, got {redis_url} and {pg_url}");
    }
    ctx.step(
        "the Secrets carry rediss:// and sslmode=verify-full&sslrootcert=/etc/appstack/tls/ca.crt",
    );

    let ssl =
        stores::wait_app_connections_encrypted(ctx, &format!("{}-0", stack.postgres())).await?;
    ctx.step(format!("pg_stat_ssl: the shop's connections {ssl:?}"));

    refusals(ctx, &stack).await?;
    renewal(ctx, &stack, &token, &cart).await
}

/// What the stores refuse: plain connections, and a name their
/// certificate does not carry.
async fn refusals(ctx: &mut Ctx, stack: &appstack::Stack) -> Result<()> {
    let redis_pod = format!("{}-0", stack.redis());
    let (_, out) = stores::exec(ctx, &redis_pod, "redis", "redis-cli -h 127.0.0.1 ping").await?;
    if out.contains("PONG") {
        bail!("Redis answered a plain connection: {out}");
    }
    let (_, out) = stores::exec(
        ctx,
        &redis_pod,
        "redis",
        &format!("redis-cli --tls --cacert {CA} -h 127.0.0.1 ping"),
    )
    .await?;
    if !out.contains("PONG") {
        bail!("Redis did not answer over TLS with the stack's CA: {out}");
    }
    ctx.step("Redis: a plain connection gets no answer; TLS with the stack's CA gets PONG");

    let pg_pod = format!("{}-0", stack.postgres());
    let headless = format!("{pg_pod}.{}-headless.{}.svc", stack.postgres(), ctx.ns);
    // From the pod to its own address (not loopback): what the network sees.
    // The apps' login role runs as the owner role (SET role): back to the
    // session (login) role, which may read its own row of pg_stat_ssl.
    let login = |conninfo: String| {
        format!(
            "ip=$(hostname -i | cut -d' ' -f1); PGPASSWORD=\"$APP_PASSWORD\" PGCONNECT_TIMEOUT=5 psql \"{conninfo} user=$APP_USER dbname=$POSTGRES_DB\" -qAtc 'set role none; select ssl from pg_stat_ssl where pid = pg_backend_pid()' 2>&1"
        )
    };
    let (_, out) = stores::exec(
        ctx,
        &pg_pod,
        "postgres",
        &login("host=$ip sslmode=disable".into()),
    )
    .await?;
    if !out.contains("no encryption") {
        bail!(
            "expected PostgreSQL to refuse a plain connection from the network, psql said: {out}"
        );
    }
    ctx.step(format!(
        "PostgreSQL refuses a plain connection from the network: {}",
        stores::first_line(&out)
    ));
    let (_, out) = stores::exec(
        ctx,
        &pg_pod,
        "postgres",
        &login(format!("host=$ip sslmode=verify-full sslrootcert={CA}")),
    )
    .await?;
    if !out.contains("does not match host name") {
        bail!("expected verify-full to refuse the pod's bare IP, psql said: {out}");
    }
    ctx.step(format!(
        "verify-full refuses the bare IP: {}",
        stores::first_line(&out)
    ));
    let (_, out) = stores::exec(
        ctx,
        &pg_pod,
        "postgres",
        &login(format!(
            "host={headless} sslmode=verify-full sslrootcert={CA}"
        )),
    )
    .await?;
    if out.trim() != "t" {
        bail!("expected verify-full to accept {headless}, psql said: {out}");
    }
    ctx.step(format!("verify-full accepts {headless}, encrypted"));
    Ok(())
}

/// The stores' certificate Secrets deleted: new ones issued, loaded by the
/// running stores.
async fn renewal(
    ctx: &mut Ctx,
    stack: &appstack::Stack,
    token: &str,
    cart: &shop::Cart,
) -> Result<()> {
    let stores = [
        (stack.redis(), format!("{}-0", stack.redis())),
        (stack.postgres(), format!("{}-0", stack.postgres())),
    ];
    let pods_api = Api::<Pod>::namespaced(ctx.client.clone(), &ctx.ns);
    let mut before = Vec::new();
    for (_, pod) in &stores {
        before.push(pods_api.get(pod).await?.metadata.uid);
    }
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &ctx.ns);
    let start = Instant::now();
    for (store, _) in &stores {
        secrets
            .delete(&format!("{store}-tls"), &DeleteParams::default())
            .await?;
    }
    ctx.step("deleted both stores' certificate Secrets");
    for (store, pod) in &stores {
        wait::until(
            &format!("{pod} to load its new certificate"),
            Duration::from_secs(240),
            async || {
                let out = logs(ctx, pod, "credentials").await?;
                Ok(if out.contains("loaded the renewed server certificate") {
                    Ready(())
                } else {
                    Pending(format!("{store}: not yet"))
                })
            },
        )
        .await?;
        ctx.step(format!(
            "{pod} loaded its new certificate {:.1}s after the deletion",
            start.elapsed().as_secs_f64()
        ));
    }
    for ((_, pod), uid) in stores.iter().zip(before) {
        if pods_api.get(pod).await?.metadata.uid != uid {
            bail!("{pod} was replaced; the new certificate should load without a restart");
        }
    }
    let events = appstack::events(&ctx.client, &ctx.ns, &stack.name).await?;
    if !events
        .iter()
        .any(|(_, reason, _)| reason == "CertificateIssued")
    {
        bail!("no CertificateIssued Event: {events:?}");
    }
    let (after, _) = stack.shop.cart(token).await?;
    if !cart.iter().all(|item| after.contains(item)) {
        bail!("the cart lost items: {cart:?} -> {after:?}");
    }
    stack.shop.add_item(token, "tls-renewed", 1).await?;
    ctx.step(
        "both stores kept their pods; Event CertificateIssued; the shop serves and takes an item",
    );
    Ok(())
}

async fn logs(ctx: &Ctx, pod: &str, container: &str) -> Result<String> {
    let args = ["logs", "-n", &ctx.ns, pod, "-c", container];
    let out = cmd::run(&ctx.env, "kubectl", &args, None, Duration::from_secs(30)).await?;
    Ok(out.text())
}

async fn secret_value(ctx: &Ctx, name: &str, key: &str) -> Result<String> {
    let secret = Api::<Secret>::namespaced(ctx.client.clone(), &ctx.ns)
        .get(name)
        .await?;
    Ok(children::decoded(&secret).remove(key).unwrap_or_default())
}
