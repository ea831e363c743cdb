//! Bring your own store: the shop wired to a PostgreSQL and a Redis the
//! user runs (plain Deployments of the local images in the namespace),
//! through Secrets the user owns (PostgreSQL by `url`, Redis by fields).
//! - Applied before the Secrets exist: Degraded (UserSecretUnusable) naming
//!   the Secret, and no component is started; creating the (labelled)
//!   Secrets brings the stack up without a reapply.
//! - The operator runs nothing for them: no StatefulSet, Service, PVC or
//!   admin Secret of either store, and it never writes to the user's Secrets.
//! - The shop works (log in, cart, /me); the stores' pods deleted, it
//!   recovers by itself (the wait init containers and the app's reconnects).
//! - The password changed on the servers and then in the user's Secrets:
//!   the components roll (a new credentials hash) and work on the new one.

use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use appstack_e2e::appstack::{self, READY_BOUND};
use appstack_e2e::external::{self, UserStore};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::shop::{self, Shop};
use appstack_e2e::wait::{self, Pending, Ready};
use appstack_e2e::{apply, children, pods, stores};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret, Service};
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;

const FIRST: &str = "first-p@ss:1";
const SECOND: &str = "second/p@ss#2";

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

fn pg_url(ctx: &Ctx, pg: &UserStore, password: &str) -> String {
    let encoded: String = url_encode(password);
    format!(
        "postgresql://shop:{encoded}@{}:{}/shop",
        pg.host(ctx),
        pg.port
    )
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    refused_at_admission(ctx).await?;
    let started = Instant::now();
    let (pg, redis) = tokio::try_join!(
        external::run_postgres(ctx, "their-postgres", "shop", FIRST, "shop"),
        external::run_redis(ctx, "their-redis", FIRST),
    )?;
    ctx.step(format!(
        "the user's PostgreSQL and Redis run ({:.1}s)",
        started.elapsed().as_secs_f64()
    ));

    let mut manifest = appstack::shop_manifest(ctx)?;
    manifest["spec"]["redis"] = json!({
        "image": "appstack.local/redis:7",
        "external": {"secretName": "shop-cache"},
    });
    manifest["spec"]["postgres"] = json!({
        "image": "appstack.local/postgres:15",
        "external": {"secretName": "shop-db"},
    });
    let name = appstack::name_of(&manifest)?;
    apply::object(&ctx.client, &ctx.ns, manifest.clone()).await?;
    let message = appstack::wait_condition_mentioning(
        &ctx.client,
        &ctx.ns,
        &name,
        ("Degraded", "True", "UserSecretUnusable"),
        "Secret shop-",
        Duration::from_secs(60),
    )
    .await?;
    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), &ctx.ns);
    ensure!(
        deployments.get_opt(&format!("{name}-web")).await?.is_none(),
        "the web Deployment exists although its stores' Secrets do not"
    );
    ctx.step(format!(
        "without the user's Secrets: Degraded UserSecretUnusable ({message}), no component started"
    ));

    let db = external::user_secret(
        ctx,
        "shop-db",
        json!({"url": pg_url(ctx, &pg, FIRST)}),
        true,
    )
    .await?;
    let cache = external::user_secret(
        ctx,
        "shop-cache",
        json!({"host": redis.host(ctx), "port": "6379", "password": FIRST}),
        true,
    )
    .await?;
    let created = Instant::now();
    let took = appstack::wait_ready(&ctx.client, &ctx.ns, &name, READY_BOUND).await?;
    ctx.step(format!(
        "the user's Secrets created (labelled {}): Ready {:.1}s later, no reapply",
        external::WATCH_LABEL,
        took.as_secs_f64()
    ));
    ctx.recovered("user's Secrets created to Ready", created.elapsed());
    nothing_run_for_the_stores(ctx, &name).await?;

    let web = format!("{name}-web");
    pods::wait_deployment_settled(
        &ctx.client,
        &ctx.ns,
        &web,
        Some(2),
        Duration::from_secs(120),
    )
    .await?;
    let shop = appstack::shop_client(ctx, &web).await?;
    let (token, cart) = shop::seed(&shop, "grace").await?;
    shop.expect_me(&token, "grace").await?;
    ctx.step(format!(
        "logged in as grace on the user's Redis, cart {cart:?} in the user's PostgreSQL"
    ));

    // The stores' pods go (a node drain, an upgrade): the shop recovers.
    tokio::time::sleep(Duration::from_secs(2)).await; // Redis' fsync, every second
    let killed = Instant::now();
    let (pg_back, redis_back) = tokio::try_join!(pg.kill(ctx), redis.kill(ctx))?;
    ctx.step(format!(
        "deleted the user's store pods: PostgreSQL back in {:.1}s, Redis in {:.1}s",
        pg_back.as_secs_f64(),
        redis_back.as_secs_f64()
    ));
    let recovered = serving(&shop, &token, "grace", Duration::from_secs(120)).await?;
    ctx.recovered(
        "user's store pods deleted to the shop serving the same session and cart",
        killed.elapsed(),
    );
    ctx.step(format!(
        "the shop serves grace again, cart {recovered:?}, without a reapply"
    ));

    // A new password: set on the servers, then in the user's Secrets.
    let old_hash = external::template_hash(ctx, &web).await?;
    let sql = format!("ALTER USER shop PASSWORD '{SECOND}'");
    let (ok, said) = stores::exec(
        ctx,
        &pg.pod(ctx).await?,
        &pg.name,
        &format!("PGPASSWORD='{FIRST}' psql -h 127.0.0.1 -U shop -d shop -Atc \"{sql}\""),
    )
    .await?;
    ensure!(ok, "ALTER USER on the user's PostgreSQL failed: {said}");
    let (ok, said) = stores::exec(
        ctx,
        &redis.pod(ctx).await?,
        &redis.name,
        &format!("REDISCLI_AUTH='{FIRST}' redis-cli CONFIG SET requirepass '{SECOND}'"),
    )
    .await?;
    ensure!(
        ok && said.contains("OK"),
        "CONFIG SET requirepass failed: {said}"
    );
    let edited = Instant::now();
    external::user_secret(
        ctx,
        "shop-db",
        json!({"url": pg_url(ctx, &pg, SECOND)}),
        true,
    )
    .await?;
    external::user_secret(
        ctx,
        "shop-cache",
        json!({"host": redis.host(ctx), "port": "6379", "password": SECOND}),
        true,
    )
    .await?;
    let rolled =
        external::wait_rolled(ctx, &web, &old_hash, Some(2), Duration::from_secs(180)).await?;
    ctx.recovered("user's Secrets edited to web rolled", edited.elapsed());
    ctx.step(format!(
        "passwords changed on the servers and in the user's Secrets: web rolled in {:.1}s ({})",
        edited.elapsed().as_secs_f64(),
        pods::describe(&rolled)
    ));
    let ours = children::secret_data(&ctx.client, &ctx.ns, &name).await?;
    for secret in [format!("{name}-postgres"), format!("{name}-redis")] {
        let password = ours.get(&secret).and_then(|d| d.get("password")).cloned();
        ensure!(
            password.as_deref() == Some(SECOND),
            "the operator's Secret {secret} does not hold the new password"
        );
    }
    let token2 = shop.login("hopper").await?;
    shop.add_item(&token2, "byo-store", 1).await?;
    let (cart2, _) = shop.cart(&token2).await?;
    ensure!(!cart2.is_empty(), "a new cart after the roll is empty");
    shop.expect_me(&token2, "hopper").await?;
    serving(&shop, &token, "grace", Duration::from_secs(30)).await?;
    ctx.step("on the new passwords: hopper logs in and fills a cart, grace's session and cart are still there");

    // Edited by the test since (so their resourceVersions moved): no field,
    // or owner of the operator.
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &ctx.ns);
    for secret in [&db, &cache] {
        let now = secrets.get(&secret.name_any()).await?;
        external::not_taken_over(&now)?;
    }
    ctx.step("the user's Secrets carry no field or owner of the operator");
    Ok(())
}

/// What an external store cannot have is refused by the API server (a
/// server-side dry run), with the field named.
async fn refused_at_admission(ctx: &Ctx) -> Result<()> {
    let base = appstack::shop_manifest(ctx)?;
    let external = json!({"secretName": "x"});
    let cases = [
        (
            "postgres",
            json!({"external": external, "storage": {"size": "1Gi"}}),
            "spec.postgres.storage",
        ),
        (
            "redis",
            json!({"external": external, "resources": {"limits": {"memory": "1Gi"}}}),
            "spec.redis.resources",
        ),
        (
            "postgres",
            json!({"external": external, "database": "shop"}),
            "spec.postgres.database",
        ),
        (
            "postgres",
            json!({"external": external, "existingSecret": "y"}),
            "spec.postgres.existingSecret",
        ),
        (
            "redis",
            json!({"external": {"secretName": "team-y/their-secret"}}),
            "secretName",
        ),
        (
            "postgres",
            json!({"external": external, "backup": {"schedule": "@daily"}}),
            "spec.postgres.backup",
        ),
    ];
    let count = cases.len();
    let api = appstack::api(&ctx.client, &ctx.ns);
    let params = PatchParams::apply(apply::FIELD_MANAGER).dry_run();
    for (store, section, field) in cases {
        let mut m = base.clone();
        m["spec"][store] = section.clone();
        let name = appstack::name_of(&m)?;
        match api.patch(&name, &params, &Patch::Apply(&m)).await {
            Ok(_) => bail!("spec.{store} {section} was admitted"),
            Err(e) => {
                let said = e.to_string();
                ensure!(
                    said.contains(field),
                    "spec.{store} {section}: refused without naming {field}: {said}"
                );
            }
        }
    }
    ctx.step(format!(
        "{} manifests refused at admission with the field named (storage, resources, database, existingSecret, backup with external; a namespaced secretName)",
        count
    ));
    Ok(())
}

/// No StatefulSet, Service, PVC or administrator's Secret for either store.
async fn nothing_run_for_the_stores(ctx: &Ctx, name: &str) -> Result<()> {
    let sts = Api::<StatefulSet>::namespaced(ctx.client.clone(), &ctx.ns);
    let svc = Api::<Service>::namespaced(ctx.client.clone(), &ctx.ns);
    let pvc = Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &ctx.ns);
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &ctx.ns);
    for part in ["postgres", "redis"] {
        let store = format!("{name}-{part}");
        ensure!(
            sts.get_opt(&store).await?.is_none(),
            "StatefulSet {store} exists"
        );
        ensure!(
            svc.get_opt(&store).await?.is_none(),
            "Service {store} exists"
        );
        ensure!(
            pvc.get_opt(&format!("data-{store}-0")).await?.is_none(),
            "a PVC of {store} exists"
        );
        ensure!(
            secrets.get_opt(&format!("{store}-admin")).await?.is_none(),
            "Secret {store}-admin exists"
        );
    }
    ctx.step("no StatefulSet, Service, PVC or admin Secret for the external stores");
    Ok(())
}

/// Waits until the shop answers /me for `user` and a non-empty cart.
async fn serving(shop: &Shop, token: &str, user: &str, timeout: Duration) -> Result<shop::Cart> {
    wait::until(
        &format!("the shop to serve {user}'s session and cart"),
        timeout,
        async || {
            if let Err(e) = shop.expect_me(token, user).await {
                return Ok(Pending(format!("/me: {e:#}")));
            }
            let (cart, r) = shop.cart(token).await?;
            Ok(if cart.is_empty() {
                Pending(format!("cart empty: {}", r.summary()))
            } else {
                Ready(cart)
            })
        },
    )
    .await
}
