//! The apps hold no store's admin keys. On the shop:
//! - the apps' PostgreSQL role is no superuser: `COPY ... TO PROGRAM` and
//!   `ALTER SYSTEM` are refused, while it still owns its tables;
//! - the apps' Redis user gets NOPERM for CONFIG, FLUSHALL, KEYS, SHUTDOWN
//!   and ACL, and can still SET, GET and EXPIRE;
//! - no component is wired to an administrator's Secret;
//! - the shop serves its session and cart through all of it.

use anyhow::{Result, bail};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::{appstack, shop, stores};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, ListParams};

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let stack = appstack::deploy_shop(ctx, |_| {}).await?;
    let (token, cart) = shop::seed(&stack.shop, "ada").await?;
    ctx.step(format!("logged in as ada, cart {cart:?}"));

    postgres(ctx, &format!("{}-0", stack.postgres())).await?;
    redis(ctx, &format!("{}-0", stack.redis())).await?;

    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), &ctx.ns)
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={}", stack.name)))
        .await?;
    for d in &deployments.items {
        let template = serde_json::to_string(&d.spec.as_ref().map(|s| &s.template))?;
        if template.contains("-admin\"") {
            bail!(
                "Deployment {:?} is wired to an administrator's Secret",
                d.metadata.name
            );
        }
    }
    ctx.step(format!(
        "{} component Deployment(s): none wired to an administrator's Secret",
        deployments.items.len()
    ));

    let (after, _) = stack.shop.cart(&token).await?;
    if after != cart {
        bail!("the cart changed: {cart:?} -> {after:?}");
    }
    stack.shop.add_item(&token, "lp-probe", 1).await?;
    ctx.step("the shop serves ada's session and cart, and takes a new item");
    Ok(())
}

async fn postgres(ctx: &mut Ctx, pod: &str) -> Result<()> {
    // As the apps log in: the apps' Secret is in the store container's
    // environment as APP_USER / APP_PASSWORD.
    let (ok, out) = stores::psql_as_app(
        ctx,
        pod,
        "select rolsuper, rolcreaterole from pg_roles where rolname = current_user",
    )
    .await?;
    if !ok || out.trim() != "f|f" {
        bail!(
            "expected the apps' role to be neither superuser nor able to create roles, psql said: {out}"
        );
    }
    ctx.step("PostgreSQL: the apps' role has rolsuper = f, rolcreaterole = f");
    for (what, sql) in [
        (
            "COPY ... TO PROGRAM (a shell in the store's pod)",
            "COPY (select 1) TO PROGRAM 'id'",
        ),
        (
            "ALTER SYSTEM SET fsync = off",
            "ALTER SYSTEM SET fsync = off",
        ),
        ("CREATE ROLE", "CREATE ROLE intruder SUPERUSER"),
    ] {
        let (ok, out) = stores::psql_as_app(ctx, pod, sql).await?;
        if ok
            || !(out.contains("permission denied")
                || out.contains("must be superuser")
                || out.contains("privileges of"))
        {
            bail!("expected {what} to be refused to the apps' role, psql said: {out}");
        }
        ctx.step(format!(
            "PostgreSQL refuses {what}: {}",
            stores::first_line(&out)
        ));
    }
    let (ok, out) = stores::psql_as_app(
        ctx,
        pod,
        "CREATE TABLE lp_probe (x int); INSERT INTO lp_probe VALUES (1); DROP TABLE lp_probe",
    )
    .await?;
    if !ok {
        bail!("the apps' role could not create a table in its database: {out}");
    }
    ctx.step("the apps' role still creates, fills and drops its own tables");
    Ok(())
}

async fn redis(ctx: &mut Ctx, pod: &str) -> Result<()> {
    for command in [
        "CONFIG GET maxmemory",
        "FLUSHALL",
        "KEYS *",
        "SHUTDOWN",
        "ACL LIST",
    ] {
        let (_, out) = stores::redis_as_app(ctx, pod, command).await?;
        if !out.contains("NOPERM") {
            bail!("expected NOPERM for {command} as the apps' user, redis-cli said: {out}");
        }
    }
    ctx.step("Redis: the apps' user gets NOPERM for CONFIG, FLUSHALL, KEYS, SHUTDOWN and ACL");
    let mut answers = Vec::new();
    for command in ["SET lp:probe v EX 60", "GET lp:probe", "EXPIRE lp:probe 30"] {
        answers.push(
            stores::redis_as_app(ctx, pod, command)
                .await?
                .1
                .trim()
                .to_string(),
        );
    }
    if answers != ["OK", "v", "1"] {
        bail!(
            "expected SET, GET and EXPIRE to work for the apps' user, redis-cli said: {answers:?}"
        );
    }
    ctx.step("the apps' user still SETs, GETs and EXPIREs");
    Ok(())
}
