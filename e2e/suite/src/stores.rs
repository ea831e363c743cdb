//! Looking inside a stack's stores the way an operator of them would: psql
//! and redis-cli in the store's own container, as the apps' user (from the
//! Secrets in that container's environment) or as the administrator.

use std::time::Duration;

use anyhow::Result;

use crate::pods;
use crate::runner::Ctx;
use crate::wait::{self, Pending, Ready};

/// `sh -c script` in `container` of `pod`: (success, what it printed).
pub async fn exec(ctx: &Ctx, pod: &str, container: &str, script: &str) -> Result<(bool, String)> {
    let out = pods::exec(
        ctx,
        &ctx.ns,
        pod,
        Some(container),
        script,
        Duration::from_secs(30),
    )
    .await?;
    Ok((out.success, out.text()))
}

/// `sql` as the apps' role over loopback TCP, in the stack's database.
pub async fn psql_as_app(ctx: &Ctx, pod: &str, sql: &str) -> Result<(bool, String)> {
    let script = format!(
        "PGPASSWORD=\"$APP_PASSWORD\" psql -h 127.0.0.1 -U \"$APP_USER\" -d \"$POSTGRES_DB\" -v ON_ERROR_STOP=1 -Atc \"{sql}\""
    );
    exec(ctx, pod, "postgres", &script).await
}

/// `args` as the apps' Redis user (over TLS when the stack has it).
pub async fn redis_as_app(ctx: &Ctx, pod: &str, args: &str) -> Result<(bool, String)> {
    let script = format!(
        "REDISCLI_AUTH=\"$APP_PASSWORD\" {} --user \"$APP_USER\" {args}",
        pods::REDIS_CLI
    );
    exec(ctx, pod, "redis", &script).await
}

/// `ssl|version` (`true|TLSv1.3`) of every connection of the apps' role from outside the
/// store's pod, as pg_stat_ssl shows them (read as the administrator).
pub async fn app_connections_ssl(ctx: &Ctx, pod: &str) -> Result<Vec<String>> {
    let (_, out) = exec(
        ctx,
        pod,
        "postgres",
        "psql -h /var/run/postgresql -U \"$POSTGRES_USER\" -d postgres -Atc \"select s.ssl || '|' || coalesce(s.version, '') from pg_stat_ssl s join pg_stat_activity a using (pid) where a.usename = '$APP_USER' and a.client_addr is not null and a.client_addr <> '127.0.0.1'\"",
    )
    .await?;
    Ok(out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(String::from)
        .collect())
}

/// Waits until pg_stat_ssl shows the apps' connections, every one of them
/// encrypted (connections from before a switch to TLS take a moment to go);
/// returns what it showed.
pub async fn wait_app_connections_encrypted(ctx: &Ctx, pod: &str) -> Result<Vec<String>> {
    wait::until(
        "pg_stat_ssl to show the apps' connections, all encrypted",
        Duration::from_secs(60),
        async || {
            let ssl = app_connections_ssl(ctx, pod).await?;
            Ok(
                if !ssl.is_empty() && ssl.iter().all(|s| s.starts_with("true|")) {
                    Ready(ssl)
                } else {
                    Pending(format!("{ssl:?}"))
                },
            )
        },
    )
    .await
}

pub fn first_line(s: &str) -> &str {
    s.lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
}
