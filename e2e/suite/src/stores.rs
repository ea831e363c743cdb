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

/// `sql` as the apps' role over loopback TCP, in the stack's database: the
/// login role and password the apps use now (the operator's passwords
/// Secret mounted in the pod; the container's environment keeps the ones
/// it started with, which a rotation retires).
pub async fn psql_as_app(ctx: &Ctx, pod: &str, sql: &str) -> Result<(bool, String)> {
    let script = format!(
        "d=/etc/appstack/passwords; u=$APP_USER; p=$APP_PASSWORD; if [ -s $d/login ]; then u=$(cat $d/login); p=$(cat $d/password; printf x); p=${{p%x}}; fi; PGPASSWORD=\"$p\" psql -h 127.0.0.1 -U \"$u\" -d \"$POSTGRES_DB\" -v ON_ERROR_STOP=1 -Atc \"{sql}\""
    );
    exec(ctx, pod, "postgres", &script).await
}

/// `args` as the apps' Redis user (over TLS when the stack has it), with
/// the apps' Secret as it is now (`<pod minus -0>`): the container's
/// environment keeps the password it started with, which a rotation
/// retires. Falls back to that environment when the Secret cannot be read.
pub async fn redis_as_app(ctx: &Ctx, pod: &str, args: &str) -> Result<(bool, String)> {
    let secret = pod.strip_suffix("-0").unwrap_or(pod);
    let api =
        kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(ctx.client.clone(), &ctx.ns);
    let data = match api.get_opt(secret).await {
        Ok(Some(s)) => crate::children::decoded(&s),
        _ => Default::default(),
    };
    let quote = |v: &str| format!("'{}'", v.replace('\'', "'\\''"));
    let (user, password) = match (data.get("username"), data.get("password")) {
        (Some(u), Some(p)) => (quote(u), quote(p)),
        _ => ("\"$APP_USER\"".to_string(), "\"$APP_PASSWORD\"".to_string()),
    };
    let script = format!(
        "REDISCLI_AUTH={password} {} --user {user} {args}",
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
