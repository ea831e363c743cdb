//! existingSecret: the shop's in-cluster Redis and PostgreSQL take the
//! apps' password from a Secret the user owns (as External Secrets or a
//! vault would make it), labelled so the operator watches it.
//! - The apps' password in the operator's Secrets (what the components are
//!   wired to) equals the user's, and the stores accept it.
//! - The user changes it in their Secret only: the stores take it and the
//!   components roll (a new credentials hash) and keep working: the same
//!   session and cart, new logins.
//! - The operator never writes to the user's Secret (its resourceVersion
//!   stays where the user left it; no field manager or owner of ours).

use std::time::{Duration, Instant};

use anyhow::{Result, ensure};
use appstack_e2e::appstack;
use appstack_e2e::external;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::shop::{self, Shop};
use appstack_e2e::wait::{self, Pending, Ready};
use appstack_e2e::{children, pods, stores};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::json;

const SECRET: &str = "shop-credentials";
const FIRST: &str = "vault-made:p@ss/1";
const SECOND: &str = "rotated#by%the-vault 2";

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    external::user_secret(ctx, SECRET, json!({"password": FIRST}), true).await?;
    let stack = appstack::deploy_shop(ctx, |m| {
        m["spec"]["redis"]["existingSecret"] = json!(SECRET);
        m["spec"]["postgres"]["existingSecret"] = json!(SECRET);
    })
    .await?;
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &ctx.ns);
    let users = secrets.get(SECRET).await?;
    same_password(ctx, &stack.name, FIRST).await?;
    stores_accept(ctx, &stack.name).await?;
    ctx.step(format!(
        "both stores' apps' password is the one in Secret {SECRET}, and the stores accept it"
    ));
    let (token, cart) = shop::seed(&stack.shop, "barbara").await?;
    stack.shop.expect_me(&token, "barbara").await?;
    ctx.step(format!("logged in as barbara, cart {cart:?}"));

    let old_hash = external::template_hash(ctx, &stack.web()).await?;
    let edited = Instant::now();
    let before_edit = external::user_secret(ctx, SECRET, json!({"password": SECOND}), true).await?;
    ensure!(
        before_edit.metadata.resource_version != users.metadata.resource_version,
        "the edit did not change Secret {SECRET}"
    );
    let web = external::wait_rolled(
        ctx,
        &stack.web(),
        &old_hash,
        Some(2),
        Duration::from_secs(300),
    )
    .await?;
    appstack::wait_ready(&ctx.client, &ctx.ns, &stack.name, Duration::from_secs(300)).await?;
    ctx.recovered(
        "existingSecret edited to web rolled and Ready",
        edited.elapsed(),
    );
    ctx.step(format!(
        "Secret {SECRET} edited: web rolled and the stack Ready in {:.1}s ({})",
        edited.elapsed().as_secs_f64(),
        pods::describe(&web)
    ));
    same_password(ctx, &stack.name, SECOND).await?;
    stores_accept(ctx, &stack.name).await?;
    serving(&stack.shop, &token, "barbara").await?;
    let token2 = stack.shop.login("edsger").await?;
    stack.shop.add_item(&token2, "vault", 1).await?;
    stack.shop.expect_me(&token2, "edsger").await?;
    ctx.step("on the new password: barbara's session and cart are there, edsger logs in and fills a cart");

    let after = secrets.get(SECRET).await?;
    external::unchanged(&before_edit, &after)?;
    ctx.step(format!(
        "Secret {SECRET} is as the user left it: same resourceVersion, no field or owner of the operator"
    ));
    Ok(())
}

/// The operator's Secrets of both stores hold `password` as the apps'.
async fn same_password(ctx: &Ctx, stack: &str, password: &str) -> Result<()> {
    let ours = children::secret_data(&ctx.client, &ctx.ns, stack).await?;
    for part in ["redis", "postgres"] {
        let secret = format!("{stack}-{part}");
        let got = ours.get(&secret).and_then(|d| d.get("password"));
        ensure!(
            got.map(String::as_str) == Some(password),
            "Secret {secret} does not hold the password of Secret {SECRET}"
        );
    }
    Ok(())
}

/// The stores accept the apps' credentials of their pods' environment.
async fn stores_accept(ctx: &Ctx, stack: &str) -> Result<()> {
    let pg = format!("{stack}-postgres-0");
    let redis = format!("{stack}-redis-0");
    wait::until(
        "both stores to accept the apps' password",
        Duration::from_secs(60),
        async || {
            let (pg_ok, pg_said) = stores::psql_as_app(ctx, &pg, "select 1").await?;
            let (r_ok, r_said) = stores::redis_as_app(ctx, &redis, "ping").await?;
            Ok(if pg_ok && r_ok && r_said.contains("PONG") {
                Ready(())
            } else {
                Pending(format!("psql: {pg_said}; redis-cli: {r_said}"))
            })
        },
    )
    .await
}

async fn serving(shop: &Shop, token: &str, user: &str) -> Result<()> {
    wait::until(
        &format!("the shop to serve {user}'s session and cart"),
        Duration::from_secs(60),
        async || {
            if let Err(e) = shop.expect_me(token, user).await {
                return Ok(Pending(format!("/me: {e:#}")));
            }
            let (cart, r) = shop.cart(token).await?;
            Ok(if cart.is_empty() {
                Pending(format!("cart empty: {}", r.summary()))
            } else {
                Ready(())
            })
        },
    )
    .await
}
