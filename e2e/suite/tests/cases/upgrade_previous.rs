//! A stack made by the previous release (e2e/images/operator-previous: the
//! apps on PostgreSQL's superuser and Redis' default user, no TLS, no
//! NetworkPolicy) upgrades in place when the current operator takes over:
//! - under the previous release: the apps' role is a superuser and the
//!   Redis Secret names `default` (what the upgrade must change);
//! - after: the apps' role is no superuser, the apps' Redis user gets
//!   NOPERM for CONFIG, every connection of the shop is TLS, the stack has
//!   its NetworkPolicies, the apps' passwords are the ones they had;
//! - and ada is still logged in with the same cart (session in Redis,
//!   rows in PostgreSQL): nothing lost.
//!
//! The operator is put back to the current release whatever happens.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use appstack_e2e::appstack::{self, Stack};
use appstack_e2e::operator;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Pending, Ready};
use appstack_e2e::{children, shop, stores};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let result = upgrade(ctx).await;
    if result.is_err() {
        // Never leave the previous release running for the next scenario.
        if let Err(e) = install(ctx, &[]).await {
            ctx.step(format!("could not put the current operator back: {e:#}"));
        }
    }
    result
}

/// Installs the operator (with `extra` helm flags) and waits for a leader
/// among the new pods.
async fn install(ctx: &mut Ctx, extra: &[String]) -> Result<()> {
    let old: Vec<String> = operator::operator_pods(&ctx.client)
        .await?
        .iter()
        .map(|p| p.name_any())
        .collect();
    operator::helm_upgrade_install(&ctx.env, extra).await?;
    let leader = operator::wait_leader(&ctx.client, &old, Duration::from_secs(180)).await?;
    ctx.step(format!("operator {} leads", leader.name_any()));
    Ok(())
}

async fn upgrade(ctx: &mut Ctx) -> Result<()> {
    let previous = [
        "--set-string".to_string(),
        "image.tag=previous".to_string(),
        "--set-string".to_string(),
        "podAnnotations.e2e\\.appstack\\.dev/release=previous".to_string(),
    ];
    install(ctx, &previous)
        .await
        .context("installing the previous release (build it: make images-previous)")?;
    ctx.step("the previous release's operator runs");

    // On the default PostgreSQL (17): the previous release made the apps'
    // role the bootstrap superuser, which PostgreSQL 16 and later keep a
    // superuser; the upgrade hands its objects to the apps' owner role and
    // renames it (appstack_bootstrap, NOLOGIN).
    let stack = appstack::deploy_shop(ctx, |_| {}).await?;
    let (token, cart) = shop::seed(&stack.shop, "ada").await?;
    ctx.step(format!(
        "under the previous release: ada logged in, cart {cart:?}"
    ));
    let before = app_secrets(ctx, &stack).await?;
    if before.0.get("username").map(String::as_str) != Some("default") {
        bail!(
            "expected the previous release's Redis Secret to name `default`: {:?}",
            before.0.get("username")
        );
    }
    let pg = format!("{}-0", stack.postgres());
    let (_, superuser) = stores::exec(
        ctx,
        &pg,
        "postgres",
        "PGPASSWORD=\"$POSTGRES_PASSWORD\" psql -h 127.0.0.1 -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" -Atc 'select rolsuper from pg_roles where rolname = current_user'",
    )
    .await?;
    if superuser.trim() != "t" {
        bail!(
            "expected the previous release's apps' role to be the superuser, psql said: {superuser}"
        );
    }
    ctx.step("under the previous release: the apps use Redis' default user and PostgreSQL's superuser, in plain text");

    let old_web: Vec<String> = stack
        .web_settled(ctx, Some(2), Duration::from_secs(60))
        .await?
        .iter()
        .map(|p| p.name_any())
        .collect();
    let start = Instant::now();
    install(ctx, &[]).await?;
    ctx.step("the current operator took over");
    wait::until(
        "the apps' Secrets to be rewired (user app, rediss://, sslmode=verify-full)",
        Duration::from_secs(120),
        async || {
            let (redis, pg) = app_secrets(ctx, &stack).await?;
            let url = redis.get("url").cloned().unwrap_or_default();
            let pg_url = pg.get("url").cloned().unwrap_or_default();
            Ok(
                if url.starts_with("rediss://app:") && pg_url.contains("sslmode=verify-full") {
                    Ready(())
                } else {
                    Pending(format!("{url} / {pg_url}"))
                },
            )
        },
    )
    .await?;
    // The rewired pods replace every pod of the previous release.
    let web = wait::until(
        "every web pod to be replaced by one of the current wiring",
        Duration::from_secs(300),
        async || {
            let pods = stack
                .web_settled(ctx, Some(2), Duration::from_secs(60))
                .await?;
            let stale: Vec<String> = pods
                .iter()
                .map(|p| p.name_any())
                .filter(|n| old_web.contains(n))
                .collect();
            Ok(if stale.is_empty() {
                Ready(pods)
            } else {
                Pending(format!("still running: {}", stale.join(", ")))
            })
        },
    )
    .await?;
    appstack::wait_ready(&ctx.client, &ctx.ns, &stack.name, Duration::from_secs(180)).await?;
    ctx.step(format!(
        "upgraded and Ready after {:.1}s: {}",
        start.elapsed().as_secs_f64(),
        appstack_e2e::pods::describe(&web)
    ));

    checks(ctx, &stack, &before, &token, &cart).await
}

async fn checks(
    ctx: &mut Ctx,
    stack: &Stack,
    before: &(Secrets, Secrets),
    token: &str,
    cart: &shop::Cart,
) -> Result<()> {
    stack.shop.expect_me(token, "ada").await?;
    let (now, _) = stack.shop.cart(token).await?;
    if &now != cart {
        bail!("the cart changed across the upgrade: {cart:?} -> {now:?}");
    }
    stack.shop.add_item(token, "upgraded", 1).await?;
    ctx.step("ada is still logged in with the same cart (Redis session, PostgreSQL rows); a new item is taken");

    let after = app_secrets(ctx, stack).await?;
    for (store, b, a) in [
        ("redis", &before.0, &after.0),
        ("postgres", &before.1, &after.1),
    ] {
        if b.get("password") != a.get("password") {
            bail!("the apps' {store} password changed across the upgrade");
        }
    }
    ctx.step("the apps' passwords are the ones they had");

    let pg = format!("{}-0", stack.postgres());
    let (_, roles) = stores::psql_as_app(
        ctx,
        &pg,
        "select rolsuper from pg_roles where rolname = current_user",
    )
    .await?;
    if roles.trim() != "f" {
        bail!("expected the apps' role to be no superuser after the upgrade, psql said: {roles}");
    }
    let (_, copy) = stores::psql_as_app(ctx, &pg, "COPY (select 1) TO PROGRAM 'id'").await?;
    if !copy.contains("permission denied") && !copy.contains("must be superuser") {
        bail!("expected COPY TO PROGRAM to be refused after the upgrade, psql said: {copy}");
    }
    let redis = format!("{}-0", stack.redis());
    let (_, config) = stores::redis_as_app(ctx, &redis, "CONFIG GET maxmemory").await?;
    if !config.contains("NOPERM") {
        bail!("expected NOPERM for CONFIG as the apps' Redis user, redis-cli said: {config}");
    }
    ctx.step("the apps' role is no superuser (COPY TO PROGRAM refused); the apps' Redis user gets NOPERM for CONFIG");

    let ssl = stores::wait_app_connections_encrypted(ctx, &pg).await?;
    let policies = Api::<NetworkPolicy>::namespaced(ctx.client.clone(), &ctx.ns)
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={}", stack.name)))
        .await?;
    let names: Vec<String> = policies.items.iter().map(|p| p.name_any()).collect();
    if names.len() != 3 {
        bail!("expected NetworkPolicies for redis, postgres and web, found {names:?}");
    }
    ctx.step(format!("pg_stat_ssl: {ssl:?}; NetworkPolicies {names:?}"));
    Ok(())
}

type Secrets = std::collections::BTreeMap<String, String>;

/// The apps' Secrets of Redis and PostgreSQL, decoded.
async fn app_secrets(ctx: &Ctx, stack: &Stack) -> Result<(Secrets, Secrets)> {
    let api = Api::<Secret>::namespaced(ctx.client.clone(), &ctx.ns);
    Ok((
        children::decoded(&api.get(&stack.redis()).await?),
        children::decoded(&api.get(&stack.postgres()).await?),
    ))
}
