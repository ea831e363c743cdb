//! Backups nobody asks for: on a schedule of every minute with retention
//! of two, the third backup removes the first, and status shows the window.
//! A backup that fails (the backup role loses REPLICATION) sets
//! BackupFailing with an Event; the next good one clears it.
//! On the older majors (Redis 7, PostgreSQL 15), which the suite keeps covering.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Result, bail};
use appstack_e2e::appstack;
use appstack_e2e::backups;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Pending, Ready};
use serde_json::json;

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

const BASE: &str = "/var/lib/appstack/backup/postgres/base";

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let stack = appstack::deploy_shop(ctx, |m| {
        appstack::on_older_majors(m);
        m["spec"]["postgres"]["backup"] =
            json!({"schedule": "* * * * *", "retention": {"count": 2}, "target": {"volume": {"size": "1Gi"}}});
        m["spec"]["redis"]["backup"] =
            json!({"schedule": "* * * * *", "retention": {"count": 1}, "target": {"volume": {"size": "1Gi"}}});
    })
    .await?;
    let pg = format!("{}-0", stack.postgres());
    ctx.step("backups every minute, PostgreSQL keeping 2, Redis 1; nobody asks for one");

    let mut seen = BTreeSet::new();
    let status = wait::until_every(
        "three scheduled PostgreSQL backups, the first removed by retention",
        Duration::from_secs(330),
        Duration::from_secs(3),
        async || {
            let s = backups::status(ctx, &stack.name, "postgres").await?;
            if let Some(l) = s["lastSuccessful"].as_str() {
                seen.insert(l.to_string());
            }
            Ok(if seen.len() >= 3 && s["count"].as_i64() == Some(2) {
                Ready(s)
            } else {
                Pending(format!("seen {seen:?}; status.postgres.backup {s}"))
            })
        },
    )
    .await?;
    let on_volume: BTreeSet<String> = backups::list(ctx, &pg, "postgres", BASE)
        .await?
        .into_iter()
        .filter(|e| !e.ends_with(".end"))
        .collect();
    let first = seen.iter().next().cloned().unwrap_or_default();
    if on_volume.len() != 2 || on_volume.contains(&first) {
        bail!(
            "expected the 2 newest backups on the volume and not the first ({first}), saw {on_volume:?}"
        );
    }
    let (from, to) = (
        status["firstRecoverableTime"].as_str().unwrap_or_default(),
        status["lastRecoverableTime"].as_str().unwrap_or_default(),
    );
    if from.is_empty() || to < from {
        bail!("status.postgres.backup shows no window: {status}");
    }
    ctx.step(format!(
        "scheduled backups {seen:?}; kept {on_volume:?}; recoverable from {from} to {to}"
    ));
    let redis = backups::status(ctx, &stack.name, "redis").await?;
    if redis["count"].as_i64() != Some(1) || redis["lastSuccessful"].is_null() {
        bail!("expected one scheduled Redis snapshot kept, status.redis.backup: {redis}");
    }
    ctx.step(format!("status.redis.backup: {redis}"));
    appstack::wait_condition(
        &ctx.client,
        &ctx.ns,
        &stack.name,
        ("BackupFailing", "False", "BackupsSucceed"),
        Duration::from_secs(30),
    )
    .await?;

    // The backup role loses REPLICATION: the next backup fails, visibly.
    backups::psql_as_admin(ctx, &pg, "alter role backup noreplication").await?;
    let message = appstack::wait_condition(
        &ctx.client,
        &ctx.ns,
        &stack.name,
        ("BackupFailing", "True", "BackupFailed"),
        Duration::from_secs(300),
    )
    .await?;
    ctx.step(format!("BackupFailing=True: {message}"));
    let events = appstack::events(&ctx.client, &ctx.ns, &stack.name).await?;
    if !events
        .iter()
        .any(|(t, r, _)| t == "Warning" && r == "BackupFailed")
    {
        bail!("expected a Warning Event BackupFailed, saw {events:?}");
    }
    let ready = appstack::condition(
        &appstack::api(&ctx.client, &ctx.ns).get(&stack.name).await?,
        "Ready",
    );
    if ready.as_ref().map(|(s, _, _)| s.as_str()) != Some("True") {
        bail!("a failing backup must not take the stack out of Ready: {ready:?}");
    }
    backups::psql_as_admin(ctx, &pg, "alter role backup replication").await?;
    appstack::wait_condition(
        &ctx.client,
        &ctx.ns,
        &stack.name,
        ("BackupFailing", "False", "BackupsSucceed"),
        Duration::from_secs(200),
    )
    .await?;
    ctx.step("REPLICATION given back: the next scheduled backup succeeded, BackupFailing=False");
    Ok(())
}
