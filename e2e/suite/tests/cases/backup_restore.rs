//! The worst case: the AppStack and its data volumes are deleted. Its
//! backup volumes stay; a new AppStack restored to a moment T has exactly
//! the rows committed before T and none after, the carts of the shop, and
//! the sessions of the latest Redis snapshot. Measures how long WAL takes to
//! be archived without a forced switch (the RPO) and how long the restore
//! takes (the RTO).

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use appstack_e2e::apply;
use appstack_e2e::appstack;
use appstack_e2e::backups;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::shop;
use appstack_e2e::stores;
use appstack_e2e::wait::{self, Pending, Ready};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::json;

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

/// The shop with backups of both stores on a schedule that does not fire
/// during the scenario (backups are taken on demand).
pub fn backed_up(manifest: &mut serde_json::Value) {
    manifest["spec"]["postgres"]["backup"] =
        json!({"schedule": "0 3 1 1 *", "target": {"volume": {"size": "2Gi"}}});
    manifest["spec"]["redis"]["backup"] =
        json!({"schedule": "0 3 1 1 *", "target": {"volume": {"size": "1Gi"}}});
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let stack = appstack::deploy_shop(ctx, backed_up).await?;
    let pg = format!("{}-0", stack.postgres());
    let (token, cart) = shop::seed(&stack.shop, "ada").await?;
    ctx.step(format!("logged in as ada, cart {cart:?}"));
    let sql = |q: &str| q.to_string();
    stores::psql_as_app(
        ctx,
        &pg,
        &sql("create table ledger (note text primary key)"),
    )
    .await?;
    stores::psql_as_app(
        ctx,
        &pg,
        &sql("insert into ledger values ('before-backup')"),
    )
    .await?;

    backups::take(ctx, &stack.name, "postgres", "pg-1").await?;
    backups::take(ctx, &stack.name, "redis", "redis-1").await?;
    let status =
        backups::wait_status(ctx, &stack.name, "postgres", None, Duration::from_secs(60)).await?;
    ctx.step(format!("status.postgres.backup: {status}"));
    let redis_status =
        backups::wait_status(ctx, &stack.name, "redis", None, Duration::from_secs(60)).await?;
    ctx.step(format!("status.redis.backup: {redis_status}"));

    // Rows after the base backup: only the archived WAL has them.
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
    stores::psql_as_app(ctx, &pg, "delete from ledger where note = 'before-backup'").await?;
    ctx.step(
        "wrote after T: row after-t, and deleted row before-backup (the DELETE a restore undoes)",
    );

    // RPO: how long until what was just written is archived, unforced.
    let written = Instant::now();
    let lsn =
        backups::psql_as_admin(ctx, &pg, "select pg_walfile_name(pg_current_wal_lsn())").await?;
    wait::until(
        &format!("WAL segment {lsn} to be archived by archive_timeout"),
        Duration::from_secs(150),
        async || {
            let last = backups::psql_as_admin(
                ctx,
                &pg,
                "select coalesce(last_archived_wal, '') from pg_stat_archiver",
            )
            .await?;
            Ok(if last.len() >= 24 && last[8..] >= lsn[8..] {
                Ready(())
            } else {
                Pending(format!("last archived {last:?}"))
            })
        },
    )
    .await?;
    ctx.recovered(
        "WAL archived after last write (RPO bound)",
        written.elapsed(),
    );

    // The worst case: the stack and its data volumes go.
    let selector = format!("app.kubernetes.io/instance={}", stack.name);
    backups::delete_stack_and_volumes(ctx, &stack.name, &selector).await?;
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let kept: Vec<String> = claims
        .list(&ListParams::default())
        .await?
        .items
        .iter()
        .map(|c| c.name_any())
        .collect();
    ctx.step(format!(
        "deleted AppStack {} and its data volumes (kubectl delete pvc -l {selector}); left: {}",
        stack.name,
        kept.join(", ")
    ));
    for backup in ["postgres", "redis"] {
        let name = format!("{}-{backup}-backup", stack.name);
        if !kept.contains(&name) {
            bail!("backup volume {name} is gone with the stack: {kept:?}");
        }
    }

    // A new stack of the same name, restored to T.
    let mut manifest = stack.manifest.clone();
    manifest["spec"]["restore"] = json!({"from": stack.name, "pointInTime": t});
    let start = Instant::now();
    apply::object(&ctx.client, &ctx.ns, manifest).await?;
    appstack::wait_ready(&ctx.client, &ctx.ns, &stack.name, Duration::from_secs(420)).await?;
    ctx.recovered("restore to T until Ready (RTO, demo data)", start.elapsed());

    let rows = stores::psql_as_app(
        ctx,
        &pg,
        "select string_agg(note, ',' order by note) from ledger",
    )
    .await?;
    if !rows.0 || rows.1.trim() != "after-backup-before-t,before-backup" {
        bail!(
            "expected exactly the rows committed before T (after-backup-before-t, before-backup), saw {:?}",
            rows.1.trim()
        );
    }
    ctx.step(format!("ledger after the restore to T: {}", rows.1.trim()));
    let shop = appstack::shop_client(ctx, &stack.web()).await?;
    shop.expect_me(&token, "ada").await?;
    let (now, _) = shop.cart(&token).await?;
    if now != cart {
        bail!("expected ada's cart {cart:?} after the restore, GET /cart returned {now:?}");
    }
    ctx.step(format!(
        "ada's session (from the Redis snapshot) and cart (PostgreSQL) are back: {now:?}"
    ));
    let obj = appstack::api(&ctx.client, &ctx.ns).get(&stack.name).await?;
    for store in ["postgres", "redis"] {
        let from = obj.data["status"][store]["restoredFrom"].as_str();
        if from != Some(stack.name.as_str()) {
            bail!(
                "status.{store}.restoredFrom: {from:?}, expected {}",
                stack.name
            );
        }
    }
    // The apps' password is the new stack's, not the deleted one's.
    let (ok, out) = stores::psql_as_app(ctx, &pg, "select current_user").await?;
    if !ok {
        bail!("the apps cannot log in with the restored stack's Secret: {out}");
    }
    ctx.step(
        "status says both stores were restored from the stack; the apps log in with the new Secret",
    );
    Ok(())
}
