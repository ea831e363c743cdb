//! The S3 target, and the loss of every volume: backups and WAL go to the
//! local cluster's S3 server (versitygw); the AppStack and all of the
//! namespace's volumes, backup volumes included, are deleted; a new
//! AppStack restored from the bucket to a moment T has exactly the rows
//! committed before T, the carts, and the sessions of the Redis snapshot.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use appstack_e2e::apply;
use appstack_e2e::appstack;
use appstack_e2e::backups;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::s3::{ENDPOINT, S3};
use appstack_e2e::shop;
use appstack_e2e::stores;
use appstack_e2e::wait::{self, Pending, Ready};
use serde_json::json;

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let s3 = S3::local(ctx).await?;
    let bucket = format!("appstack-{}", ctx.ns.rsplit('-').next().unwrap_or("e2e"));
    s3.curl(ctx, "PUT", &format!("/{bucket}"), None).await?;
    s3.keys_secret(ctx, &ctx.ns, "s3-keys").await?;
    ctx.step(format!(
        "bucket {bucket} on the local S3 server ({ENDPOINT}), keys in Secret s3-keys"
    ));
    let target = json!({"bucket": bucket, "endpoint": ENDPOINT, "secretName": "s3-keys"});

    let stack = appstack::deploy_shop(ctx, |m| {
        m["spec"]["postgres"]["backup"] =
            json!({"schedule": "0 3 1 1 *", "target": {"volume": {"size": "2Gi"}, "s3": target}});
        m["spec"]["redis"]["backup"] =
            json!({"schedule": "0 3 1 1 *", "target": {"volume": {"size": "1Gi"}, "s3": target}});
    })
    .await?;
    let pg = format!("{}-0", stack.postgres());
    let (token, cart) = shop::seed(&stack.shop, "hedy").await?;
    ctx.step(format!("logged in as hedy, cart {cart:?}"));
    stores::psql_as_app(ctx, &pg, "create table ledger (note text primary key)").await?;
    stores::psql_as_app(ctx, &pg, "insert into ledger values ('before-backup')").await?;
    backups::take(ctx, &stack.name, "postgres", "pg-1").await?;
    backups::take(ctx, &stack.name, "redis", "redis-1").await?;
    let status =
        backups::wait_status(ctx, &stack.name, "postgres", None, Duration::from_secs(60)).await?;
    let label = status["lastSuccessful"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let prefix = format!("{}/{}", ctx.ns, stack.name);
    let listed = s3
        .list(ctx, &bucket, &format!("{prefix}/postgres/base/{label}.end"))
        .await?;
    if !listed.contains(&format!("{label}.end")) {
        bail!("base backup {label} is not in the bucket: {listed}");
    }
    ctx.step(format!(
        "base backup {label} and the Redis snapshot are in s3://{bucket}/{prefix}/"
    ));

    stores::psql_as_app(
        ctx,
        &pg,
        "insert into ledger values ('after-backup-before-t')",
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = backups::psql_as_admin(ctx, &pg, "select replace(to_char(now() at time zone 'utc', 'YYYY-MM-DD HH24:MI:SS.US'), ' ', 'T') || 'Z'").await?;
    ctx.step(format!("T = {t}"));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stores::psql_as_app(ctx, &pg, "insert into ledger values ('after-t')").await?;
    // From the WAL switch to the segment in the bucket: archiving, then
    // the copy beside PostgreSQL (every 5 s).
    let switched = Instant::now();
    backups::archive_now(ctx, &pg).await?;
    let segment =
        backups::psql_as_admin(ctx, &pg, "select last_archived_wal from pg_stat_archiver").await?;
    wait::until(
        &format!("WAL segment {segment} to reach the bucket"),
        Duration::from_secs(60),
        async || {
            let listed = s3
                .list(
                    ctx,
                    &bucket,
                    &format!("{prefix}/postgres/wal/{segment}.gz.sha256"),
                )
                .await?;
            Ok(if listed.contains(&segment) {
                Ready(())
            } else {
                Pending("not yet".into())
            })
        },
    )
    .await?;
    ctx.recovered("WAL switch to the segment in S3", switched.elapsed());

    // Every volume of the namespace goes: data and backup volumes alike.
    backups::delete_stack_and_volumes(ctx, &stack.name, "").await?;
    ctx.step("deleted the AppStack and every volume, backup volumes included");

    let mut manifest = stack.manifest.clone();
    manifest["spec"]["restore"] = json!({"from": stack.name, "pointInTime": t, "s3": target});
    let start = Instant::now();
    apply::object(&ctx.client, &ctx.ns, manifest).await?;
    appstack::wait_ready(&ctx.client, &ctx.ns, &stack.name, Duration::from_secs(420)).await?;
    ctx.recovered("restore from S3 to T until Ready", start.elapsed());
    let rows = stores::psql_as_app(
        ctx,
        &pg,
        "select string_agg(note, ',' order by note) from ledger",
    )
    .await?;
    if !rows.0 || rows.1.trim() != "after-backup-before-t,before-backup" {
        bail!(
            "expected exactly the rows committed before T, saw {:?}",
            rows.1.trim()
        );
    }
    ctx.step(format!(
        "ledger after the restore from S3 to T: {}",
        rows.1.trim()
    ));
    let shop = appstack::shop_client(ctx, &stack.web()).await?;
    shop.expect_me(&token, "hedy").await?;
    let (now, _) = shop.cart(&token).await?;
    if now != cart {
        bail!("expected hedy's cart {cart:?} after the restore, GET /cart returned {now:?}");
    }
    let events = appstack::events(&ctx.client, &ctx.ns, &stack.name).await?;
    let restored: Vec<String> = events
        .into_iter()
        .filter(|(_, r, _)| r == "Restored")
        .map(|(_, _, m)| m)
        .collect();
    if !restored
        .iter()
        .any(|m| m.contains(&format!("restored base backup {label}")))
    {
        bail!("expected an Event saying base backup {label} was restored, saw {restored:?}");
    }
    ctx.step(format!(
        "hedy's session and cart are back; {}",
        restored.join(" / ")
    ));
    Ok(())
}
