//! A team that restored once must be able to restore again. A stack is
//! restored to a moment T1 (a clone of the origin); once it has promoted its
//! server holds none of that restore's settings. A backup taken while an
//! older release's leftover target is still in postgresql.auto.conf is
//! refused with the reason (BackupFailing), and restarting the store mends
//! it. Then the restored stack writes and backs up, and is restored again:
//! to its latest point and to a moment T2 after the first restore, each a
//! clone of a clone.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use appstack_e2e::apply;
use appstack_e2e::appstack;
use appstack_e2e::backups;
use appstack_e2e::pods;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::stores;
use appstack_e2e::wait::{self, Pending, Ready};
use kube::api::DeleteParams;
use serde_json::{Value, json};

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

/// PostgreSQL backed up on a schedule that does not fire during the
/// scenario; Redis without backups (only PostgreSQL is restored). One web
/// replica: the scenario runs five stacks on a small node.
fn postgres_backed_up(manifest: &mut Value) {
    manifest["spec"]["postgres"]["backup"] =
        json!({"schedule": "0 3 1 1 *", "target": {"volume": {"size": "1Gi"}}});
    let web = &mut manifest["spec"]["components"][0];
    if let Some(w) = web.as_object_mut() {
        w.remove("autoscaling");
    }
    web["replicas"] = json!(1);
}

async fn delete_stack(ctx: &Ctx, name: &str) -> Result<()> {
    appstack::api(&ctx.client, &ctx.ns)
        .delete(name, &DeleteParams::default())
        .await?;
    ctx.step(format!("deleted AppStack {name} (its backup volume stays)"));
    Ok(())
}

/// Recovery settings PostgreSQL would read from its configuration files.
const RECOVERY_SETTINGS: &str = "select count(*) from pg_file_settings where name = 'restore_command' or name like 'recovery_target%'";

const LEDGER: &str = "select string_agg(note, ',' order by note) from ledger";

async fn insert(ctx: &Ctx, pod: &str, note: &str) -> Result<()> {
    let (ok, out) =
        stores::psql_as_app(ctx, pod, &format!("insert into ledger values ('{note}')")).await?;
    if !ok {
        bail!("insert into ledger in {pod}: {out}");
    }
    Ok(())
}

/// The current moment as the server sees it, in RFC 3339 (UTC).
async fn now(ctx: &Ctx, pod: &str) -> Result<String> {
    backups::psql_as_admin(
        ctx,
        pod,
        "select replace(to_char(now() at time zone 'utc', 'YYYY-MM-DD HH24:MI:SS.US'), ' ', 'T') || 'Z'",
    )
    .await
}

/// The manifest of a clone `name` of `origin`, restored to `at` (or its
/// latest point), backed up itself.
fn clone_of(origin: &Value, name: &str, from: &str, at: Option<&str>) -> Value {
    let mut manifest = origin.clone();
    manifest["metadata"]["name"] = json!(name);
    let mut restore = json!({"from": from, "stores": ["postgres"]});
    if let Some(at) = at {
        restore["pointInTime"] = json!(at);
    }
    manifest["spec"]["restore"] = restore;
    manifest
}

async fn expect_rows(ctx: &Ctx, pod: &str, want: &[&str]) -> Result<()> {
    let (ok, out) = stores::psql_as_app(ctx, pod, LEDGER).await?;
    let want = want.join(",");
    if !ok || out.trim() != want {
        bail!("{pod}: expected ledger rows {want:?}, saw {:?}", out.trim());
    }
    ctx.step(format!("{pod}: ledger holds exactly {want}"));
    Ok(())
}

/// Waits until the restored store has restarted without its restore source
/// (the operator rolls it once the restore is done) and serves again.
async fn wait_restore_source_gone(ctx: &Ctx, pod: &str) -> Result<()> {
    wait::until(
        &format!("{pod} to run without the restore init container"),
        Duration::from_secs(180),
        async || {
            let p = ctx.pods().get(pod).await?;
            let restoring = p
                .spec
                .as_ref()
                .and_then(|s| s.init_containers.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.name == "restore"));
            let ready = pods::is_ready(&p) && p.metadata.deletion_timestamp.is_none();
            Ok(if !restoring && ready {
                Ready(())
            } else {
                Pending(format!(
                    "restore init container: {restoring}, ready: {ready}"
                ))
            })
        },
    )
    .await
}

/// Waits until the server of `pod` reads no recovery setting from its files.
async fn wait_recovery_settings_gone(ctx: &Ctx, pod: &str) -> Result<()> {
    wait::until(
        &format!("{pod} to hold no recovery settings once promoted"),
        Duration::from_secs(90),
        async || {
            let n = backups::psql_as_admin(ctx, pod, RECOVERY_SETTINGS).await?;
            Ok(if n == "0" {
                Ready(())
            } else {
                Pending(format!("{n} recovery settings in its configuration files"))
            })
        },
    )
    .await
}

async fn restore(ctx: &mut Ctx, manifest: Value, what: &str) -> Result<String> {
    let name = appstack::name_of(&manifest)?;
    let start = Instant::now();
    apply::object(&ctx.client, &ctx.ns, manifest).await?;
    appstack::wait_ready(&ctx.client, &ctx.ns, &name, Duration::from_secs(420)).await?;
    ctx.recovered(what, start.elapsed());
    let pod = format!("{name}-postgres-0");
    wait_restore_source_gone(ctx, &pod).await?;
    Ok(pod)
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let stack = appstack::deploy_shop(ctx, postgres_backed_up).await?;
    let pg = format!("{}-0", stack.postgres());
    stores::psql_as_app(ctx, &pg, "create table ledger (note text primary key)").await?;
    insert(ctx, &pg, "a-before-backup").await?;
    backups::take(ctx, &stack.name, "postgres", "origin-1").await?;
    insert(ctx, &pg, "b-before-t1").await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t1 = now(ctx, &pg).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    insert(ctx, &pg, "x-after-t1").await?;
    backups::archive_now(ctx, &pg).await?;
    ctx.step(format!(
        "origin: rows before and after T1 = {t1}, WAL archived"
    ));

    // The first restore: a clone of the origin at T1.
    let first = format!("{}-r1", stack.name);
    let first_pg = restore(
        ctx,
        clone_of(&stack.manifest, &first, &stack.name, Some(&t1)),
        "first restore (to T1) until Ready",
    )
    .await?;
    expect_rows(ctx, &first_pg, &["a-before-backup", "b-before-t1"]).await?;
    delete_stack(ctx, &stack.name).await?;
    wait_recovery_settings_gone(ctx, &first_pg).await?;
    ctx.step("the restored server holds no recovery settings once it has promoted");

    // What an earlier release left behind: the old target in the settings.
    // A backup of it would stop every later restore there: it is refused.
    backups::psql_as_admin(
        ctx,
        &first_pg,
        // In the form the restore wrote it (PostgreSQL takes no `T` or `Z`).
        &format!(
            "alter system set recovery_target_time = '{}'",
            t1.replace('T', " ").replace('Z', "+00")
        ),
    )
    .await?;
    backups::start(ctx, &format!("{first}-postgres-backup"), "leftover").await?;
    let refused = match backups::wait_complete(ctx, "leftover", Duration::from_secs(300)).await {
        Ok(_) => bail!("a backup was taken although postgresql.auto.conf held a recovery target"),
        Err(e) => e.to_string(),
    };
    if !refused.contains("recovery settings") {
        bail!("the backup failed, but not for the leftover recovery target: {refused}");
    }
    let message = appstack::wait_condition_mentioning(
        &ctx.client,
        &ctx.ns,
        &first,
        ("BackupFailing", "True", "BackupFailed"),
        "recovery_target_time",
        Duration::from_secs(60),
    )
    .await?;
    ctx.step(format!("BackupFailing: {message}"));

    // A restart (as an operator upgrade rolls the store) mends it.
    ctx.pods()
        .delete(&first_pg, &DeleteParams::default())
        .await?;
    appstack::wait_ready(&ctx.client, &ctx.ns, &first, Duration::from_secs(180)).await?;
    wait_recovery_settings_gone(ctx, &first_pg).await?;
    ctx.step("after a restart of the store the leftover target is gone");

    // The restored stack lives on: writes, a backup, more writes, T2.
    insert(ctx, &first_pg, "c-restored-before-backup").await?;
    backups::take(ctx, &first, "postgres", "restored-1").await?;
    insert(ctx, &first_pg, "d-before-t2").await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t2 = now(ctx, &first_pg).await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    insert(ctx, &first_pg, "e-after-t2").await?;
    backups::archive_now(ctx, &first_pg).await?;
    ctx.step(format!(
        "restored stack: a new backup, rows around T2 = {t2}"
    ));

    // Restored again, both at once: to the latest point, and to T2.
    let latest = format!("{}-r2", stack.name);
    let at_t2 = format!("{}-r3", stack.name);
    for (name, at) in [(&latest, None), (&at_t2, Some(t2.as_str()))] {
        apply::object(
            &ctx.client,
            &ctx.ns,
            clone_of(&stack.manifest, name, &first, at),
        )
        .await?;
    }
    let start = Instant::now();
    for name in [&latest, &at_t2] {
        appstack::wait_ready(&ctx.client, &ctx.ns, name, Duration::from_secs(420)).await?;
        wait_restore_source_gone(ctx, &format!("{name}-postgres-0")).await?;
    }
    ctx.recovered(
        "two restores of the restored stack until Ready",
        start.elapsed(),
    );
    let before_t2 = [
        "a-before-backup",
        "b-before-t1",
        "c-restored-before-backup",
        "d-before-t2",
    ];
    expect_rows(ctx, &format!("{at_t2}-postgres-0"), &before_t2).await?;
    delete_stack(ctx, &at_t2).await?;
    delete_stack(ctx, &first).await?;
    let mut all = before_t2.to_vec();
    all.push("e-after-t2");
    let latest_pg = format!("{latest}-postgres-0");
    expect_rows(ctx, &latest_pg, &all).await?;
    wait_recovery_settings_gone(ctx, &latest_pg).await?;

    // The chain goes on: the clone of the clone backs up, and that backup
    // restores too.
    insert(ctx, &latest_pg, "f-in-the-clone").await?;
    backups::take(ctx, &latest, "postgres", "clone-1").await?;
    backups::archive_now(ctx, &latest_pg).await?;
    let third = format!("{}-r4", stack.name);
    let third_pg = restore(
        ctx,
        clone_of(&stack.manifest, &third, &latest, None),
        "a clone of the clone of the restored stack until Ready",
    )
    .await?;
    all.push("f-in-the-clone");
    expect_rows(ctx, &third_pg, &all).await?;
    Ok(())
}
