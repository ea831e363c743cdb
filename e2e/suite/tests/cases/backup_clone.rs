//! A backup pod killed mid-backup: the Job's next attempt succeeds and
//! the half-written backup is never kept. A backup damaged on the volume:
//! a restore skips it. A clone: a second stack restored from the running
//! stack's backups serves the same carts and sessions while the first
//! keeps running, and the two never share a store.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use appstack_e2e::appstack;
use appstack_e2e::backups;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::shop;
use appstack_e2e::stores;
use appstack_e2e::wait::{self, Pending, Ready};
use appstack_e2e::{apply, pods};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use serde_json::json;

use super::backup_restore::backed_up;

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

const BASE: &str = "/var/lib/appstack/backup/postgres/base";

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let stack = appstack::deploy_shop(ctx, backed_up).await?;
    let pg = format!("{}-0", stack.postgres());
    let (token, cart) = shop::seed(&stack.shop, "grace").await?;
    ctx.step(format!("logged in as grace, cart {cart:?}"));
    // Enough data that a base backup takes a few seconds.
    let (ok, out) = stores::psql_as_app(
        ctx,
        &pg,
        "create table bulk as select g, repeat(md5(g::text), 8) as filler from generate_series(1, 400000) g",
    )
    .await?;
    if !ok {
        bail!("creating the bulk table: {out}");
    }
    ctx.step(format!("bulk table: {} rows", rows(ctx, pg.clone()).await?));

    // Kill the backup pod while its backup is half-written.
    backups::start(ctx, &format!("{}-postgres-backup", stack.name), "pg-killed").await?;
    let partial = wait::until_every(
        "the backup to be half-written (<label>.partial)",
        Duration::from_secs(120),
        Duration::from_millis(200),
        async || {
            let entries =
                backups::list(ctx, &pg, "postgres", &format!("{BASE} 2>/dev/null; true")).await?;
            Ok(match entries.iter().find(|e| e.ends_with(".partial")) {
                Some(p) => Ready(p.clone()),
                None => Pending(format!("{entries:?}")),
            })
        },
    )
    .await?;
    let running = pods::list(&ctx.client, &ctx.ns, "job-name=pg-killed").await?;
    let victim = running
        .iter()
        .find(|p| pods::phase(p) == "Running")
        .context("no running pod of Job pg-killed")?
        .name_any();
    ctx.pods()
        .delete(
            &victim,
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..DeleteParams::default()
            },
        )
        .await?;
    ctx.step(format!(
        "killed backup pod {victim} while {partial} was being written"
    ));
    backups::wait_complete(ctx, "pg-killed", Duration::from_secs(300)).await?;
    let entries = backups::list(ctx, &pg, "postgres", BASE).await?;
    let complete: Vec<&String> = entries.iter().filter(|e| is_label(e)).collect();
    if entries.iter().any(|e| e.ends_with(".partial")) || complete.len() != 1 {
        bail!(
            "expected exactly one complete backup and no half-written one after the retry, saw {entries:?}"
        );
    }
    if complete[0] == partial.trim_end_matches(".partial") {
        bail!("the killed backup {partial} was kept as complete: {entries:?}");
    }
    let status =
        backups::wait_status(ctx, &stack.name, "postgres", None, Duration::from_secs(60)).await?;
    if status["lastSuccessful"].as_str() != Some(complete[0].as_str()) {
        bail!(
            "status.postgres.backup.lastSuccessful is {}, the volume holds {:?}",
            status["lastSuccessful"],
            complete
        );
    }
    ctx.step(format!(
        "the Job's next attempt backed up {}; the half-written one is gone",
        complete[0]
    ));
    let good = complete[0].clone();

    // A second backup, then damage it on the volume.
    tokio::time::sleep(Duration::from_secs(1)).await;
    backups::take(ctx, &stack.name, "postgres", "pg-2").await?;
    backups::take(ctx, &stack.name, "redis", "redis-1").await?;
    let entries = backups::list(ctx, &pg, "postgres", BASE).await?;
    let newest = entries
        .iter()
        .filter(|e| is_label(e))
        .max()
        .context("no backup")?
        .clone();
    let (ok, out) = stores::exec(
        ctx,
        &pg,
        "postgres",
        &format!("f={BASE}/{newest}/global/pg_control; printf 'XXXX' | dd of=$f bs=1 seek=64 conv=notrunc 2>&1"),
    )
    .await?;
    if !ok {
        bail!("damaging backup {newest}: {out}");
    }
    ctx.step(format!(
        "damaged backup {newest} on the volume (4 bytes of global/pg_control)"
    ));
    // Rows after both backups: the clone gets them from the archived WAL.
    stores::psql_as_app(
        ctx,
        &pg,
        "create table late (n int); insert into late values (42)",
    )
    .await?;
    backups::archive_now(ctx, &pg).await?;

    // The clone, from the running stack, to the latest point.
    let clone_name = format!("{}-preview", stack.name);
    let mut manifest = stack.manifest.clone();
    manifest["metadata"]["name"] = json!(clone_name);
    manifest["spec"]["restore"] = json!({"from": stack.name});
    manifest["spec"]["postgres"]
        .as_object_mut()
        .map(|p| p.remove("backup"));
    manifest["spec"]["redis"]
        .as_object_mut()
        .map(|p| p.remove("backup"));
    let start = Instant::now();
    apply::object(&ctx.client, &ctx.ns, manifest).await?;
    appstack::wait_ready(&ctx.client, &ctx.ns, &clone_name, Duration::from_secs(420)).await?;
    ctx.recovered("clone until Ready", start.elapsed());
    let clone_pg = format!("{clone_name}-postgres-0");
    let restored = wait::until(
        "an Event saying what the clone's PostgreSQL was restored from",
        Duration::from_secs(30),
        async || {
            let events = appstack::events(&ctx.client, &ctx.ns, &clone_name).await?;
            Ok(
                match events
                    .into_iter()
                    .find(|(_, r, m)| r == "Restored" && m.starts_with("postgres"))
                {
                    Some((_, _, m)) => Ready(m),
                    None => Pending("no Restored Event for postgres".into()),
                },
            )
        },
    )
    .await?;
    if !restored.contains(&format!("restored base backup {good}")) || !restored.contains(&newest) {
        bail!(
            "expected the clone's restore to skip damaged backup {newest} and use {good}; the Event says: {restored}"
        );
    }
    ctx.step(format!("Event Restored: {restored}"));
    let (a, b) = (
        rows(ctx, pg.clone()).await?,
        rows(ctx, clone_pg.clone()).await?,
    );
    let late = stores::psql_as_app(ctx, &clone_pg, "select n from late").await?;
    if a != b || late.1.trim() != "42" {
        bail!(
            "the clone holds {b} bulk rows and late={:?}; the origin {a} rows and late=42",
            late.1.trim()
        );
    }
    let clone_shop = appstack::shop_client(ctx, &format!("{clone_name}-web")).await?;
    clone_shop.expect_me(&token, "grace").await?;
    let (clone_cart, _) = clone_shop.cart(&token).await?;
    if clone_cart != cart {
        bail!("the clone serves cart {clone_cart:?}, the origin {cart:?}");
    }
    ctx.step(format!("the clone serves grace's session and cart {clone_cart:?}, {b} bulk rows, and the row written after both backups"));

    // Two stacks, two sets of stores.
    clone_shop.add_item(&token, "clone-only", 1).await?;
    let (origin_cart, _) = stack.shop.cart(&token).await?;
    if origin_cart != cart {
        bail!("an item added in the clone shows in the origin: {origin_cart:?}");
    }
    let secrets: Api<k8s_openapi::api::core::v1::Secret> =
        Api::namespaced(ctx.client.clone(), &ctx.ns);
    let host = |s: k8s_openapi::api::core::v1::Secret| {
        s.data
            .and_then(|d| {
                d.get("host")
                    .map(|h| String::from_utf8_lossy(&h.0).to_string())
            })
            .unwrap_or_default()
    };
    let origin_host = host(secrets.get(&stack.postgres()).await?);
    let clone_host = host(secrets.get(&format!("{clone_name}-postgres")).await?);
    let origin_pw = stores::exec(ctx, &pg, "postgres", "echo $APP_PASSWORD")
        .await?
        .1;
    let clone_pw = stores::exec(ctx, &clone_pg, "postgres", "echo $APP_PASSWORD")
        .await?
        .1;
    if origin_host == clone_host || origin_pw == clone_pw {
        bail!(
            "the clone shares the origin's store or password: hosts {origin_host} / {clone_host}"
        );
    }
    ctx.step(format!(
        "an item added in the clone stays there; the origin ({origin_host}) still serves {origin_cart:?}; the clone has its own store ({clone_host}) and password"
    ));
    Ok(())
}

async fn rows(ctx: &Ctx, pod: String) -> Result<String> {
    let (_, out) = stores::psql_as_app(ctx, &pod, "select count(*) from bulk").await?;
    Ok(out.trim().to_string())
}

fn is_label(name: &str) -> bool {
    name.len() == 16 && name.ends_with('Z') && name.as_bytes()[8] == b'T'
}
