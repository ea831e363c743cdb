//! `kubectl appstack` on the shop, run as a user would run it:
//! - `status` prints the conditions, the components, the stores, the
//!   backups and the Events;
//! - as a tenant (a ServiceAccount that may exec into pods and read the
//!   apps' Secrets, not the administrators'), `psql` and `redis-cli` run
//!   as the apps' user, and `--admin` is refused naming the Secret;
//! - `backup` (as the tenant) takes both stores' backups and status shows
//!   them; `clone` prints an AppStack the API server takes (dry run), and
//!   applied, restores a row written before the backup; `logs` reads the
//!   store's log.
//!
//! The plugin binary is the one `make build` (cargo build --release)
//! made: `E2E_PLUGIN`, else the newer of `$CARGO_TARGET_DIR/{release,debug}/kubectl-appstack`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::{apply, appstack, backups, cmd};
use serde_json::{Value, json};

use super::backup_restore::backed_up;

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

const TENANT: &str = "tenant";

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let plugin = binary(ctx)?;
    ctx.step(format!("plugin: {}", plugin.display()));
    let stack = appstack::deploy_shop(ctx, backed_up).await?;
    let name = stack.name.clone();

    // status, with the suite's own (administrator's) kubeconfig.
    let out = run_ok(ctx, &plugin, None, &["status", &name]).await?;
    for (what, expected) in [
        (
            "the header",
            format!("AppStack {name} in namespace {}", ctx.ns),
        ),
        ("the Ready condition", "Ready ".into()),
        ("the components", "Components:".into()),
        ("the web component ready", "web   2/2".into()),
        ("the stores", "Stores:".into()),
        ("the backups", "Backups:".into()),
        ("the events", "Events:".into()),
    ] {
        if !out.contains(&expected) {
            bail!(
                "`status` does not show {what} ({expected:?}):\n{}",
                cmd::indent(&out)
            );
        }
    }
    let ready_line = out
        .lines()
        .find(|l| l.trim_start().starts_with("Ready "))
        .unwrap_or_default();
    if !ready_line.contains("True") {
        bail!(
            "`status` shows Ready not True: {ready_line:?}\n{}",
            cmd::indent(&out)
        );
    }
    for store in ["redis", "postgres"] {
        let line = out
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{store} ")) && l.contains("-0 ("))
            .with_context(|| format!("no {store} line with its pod in:\n{out}"))?;
        if !line.contains(" yes ") || !line.contains("Running, ready") {
            bail!("`status` shows {store} not serving: {line:?}");
        }
    }
    ctx.step(format!(
        "`status` shows Ready True, web 2/2, both stores ready with their pods, backups and events ({} lines)",
        out.lines().count()
    ));

    // A tenant: exec and the apps' Secrets, not the administrators'.
    let kubeconfig = tenant(ctx, &name).await?;
    let tenant = Some(kubeconfig.as_path());
    let out = run_ok(
        ctx,
        &plugin,
        tenant,
        &["psql", &name, "--", "-At", "-c", "select session_user"],
    )
    .await?;
    if out.trim() != "app" {
        bail!("psql as the tenant: expected the apps' user `app`, got {out:?}");
    }
    let pong = run_ok(ctx, &plugin, tenant, &["redis-cli", &name, "--", "PING"]).await?;
    let whoami = run_ok(
        ctx,
        &plugin,
        tenant,
        &["redis-cli", &name, "--", "ACL", "WHOAMI"],
    )
    .await?;
    if pong.trim() != "PONG" || whoami.trim() != "app" {
        bail!("redis-cli as the tenant: PING said {pong:?}, ACL WHOAMI said {whoami:?}");
    }
    ctx.step(
        "as the tenant: psql's session_user (the role that logged in) is app; redis-cli PING -> PONG, ACL WHOAMI -> app",
    );
    for (client, admin_secret) in [("psql", "postgres-admin"), ("redis-cli", "redis-admin")] {
        let out = plugin_run(
            ctx,
            &plugin,
            tenant,
            &[client, &name, "--admin", "--", "-c", "select 1"],
        )
        .await?;
        let secret = format!("{name}-{admin_secret}");
        if out.success || !out.stderr.contains("--admin refused") || !out.stderr.contains(&secret) {
            bail!(
                "`{client} --admin` as the tenant should be refused naming {secret}, got (exit {:?}):\n{}",
                out.code,
                cmd::indent(&out.text())
            );
        }
    }
    ctx.step("as the tenant: psql --admin and redis-cli --admin refused, naming the administrator's Secret");

    // backup, as the tenant.
    let (ok, out) = appstack_e2e::stores::psql_as_app(
        ctx,
        &format!("{}-0", stack.postgres()),
        "create table plugin_marker (note text); insert into plugin_marker values ('before the backup')",
    )
    .await?;
    if !ok {
        bail!("writing the marker row: {out}");
    }
    let started = Instant::now();
    let out = run_ok(ctx, &plugin, tenant, &["backup", &name]).await?;
    for store in ["redis", "postgres"] {
        if !out.contains(&format!("{store}: backup succeeded")) {
            bail!(
                "`backup` did not report {store}'s success:\n{}",
                cmd::indent(&out)
            );
        }
        let status = backups::status(ctx, &name, store).await?;
        if status["lastSuccessful"].as_str().is_none() {
            bail!("status.{store}.backup has no lastSuccessful after `backup`: {status}");
        }
    }
    ctx.recovered("backup of both stores (plugin)", started.elapsed());
    ctx.step(format!(
        "`backup` as the tenant: both stores backed up in {:.1}s, status shows them",
        started.elapsed().as_secs_f64()
    ));

    // clone: printed, dry-run, then applied and restored.
    let clone = format!("{name}-clone");
    let yaml = run_ok(ctx, &plugin, None, &["clone", &name, "--to", &clone]).await?;
    let manifest: Value = serde_yaml::from_str(&yaml).context("parsing the printed clone")?;
    if manifest["spec"]["restore"]["from"] != json!(name)
        || manifest["metadata"]["name"] != json!(clone)
    {
        bail!("the printed clone does not restore {name} into {clone}:\n{yaml}");
    }
    run_ok(
        ctx,
        &plugin,
        None,
        &["clone", &name, "--to", &clone, "--apply", "--dry-run"],
    )
    .await?;
    ctx.step("`clone` prints an AppStack restoring the stack; a server-side dry run takes it; --apply creates it");
    let started = Instant::now();
    run_ok(
        ctx,
        &plugin,
        None,
        &["clone", &name, "--to", &clone, "--apply"],
    )
    .await?;
    appstack::wait_ready(&ctx.client, &ctx.ns, &clone, Duration::from_secs(240)).await?;
    let took = started.elapsed();
    let row = run_ok(
        ctx,
        &plugin,
        None,
        &[
            "psql",
            &clone,
            "--",
            "-At",
            "-c",
            "select note from plugin_marker",
        ],
    )
    .await?;
    if row.trim() != "before the backup" {
        bail!("the clone does not hold the row written before the backup: {row:?}");
    }
    ctx.recovered("clone until Ready", took);
    ctx.step(format!(
        "the clone was Ready after {:.1}s and holds the row written before the backup",
        took.as_secs_f64()
    ));

    let logs = run_ok(
        ctx,
        &plugin,
        None,
        &["logs", &name, "postgres", "--tail", "5"],
    )
    .await?;
    let prefix = format!("[{}-0/postgres]", stack.postgres());
    if !logs.contains(&prefix) {
        bail!(
            "`logs {name} postgres` has no line of {prefix}:\n{}",
            cmd::indent(&logs)
        );
    }
    ctx.step("`logs` reads the store's log, each line prefixed with its pod and container");
    Ok(())
}

/// A ServiceAccount with a namespace's day-to-day rights on the stack but
/// no read of its administrators' Secrets, and a kubeconfig with its token.
async fn tenant(ctx: &mut Ctx, stack: &str) -> Result<PathBuf> {
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": TENANT},
        "rules": [
            {"apiGroups": ["appstack.dev"], "resources": ["appstacks"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["pods", "events"], "verbs": ["get", "list"]},
            {"apiGroups": [""], "resources": ["pods/exec"], "verbs": ["get", "create"]},
            {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"],
             "resourceNames": [format!("{stack}-postgres"), format!("{stack}-redis")]},
            {"apiGroups": ["apps"], "resources": ["statefulsets"], "verbs": ["get"]},
            {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": ["get"]},
            {"apiGroups": ["batch"], "resources": ["jobs"], "verbs": ["get", "create"]},
        ]
    });
    let account =
        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": TENANT}});
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": TENANT},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": TENANT},
        "subjects": [{"kind": "ServiceAccount", "name": TENANT, "namespace": ctx.ns}]
    });
    for object in [account, role, binding] {
        apply::object(&ctx.client, &ctx.ns, object).await?;
    }
    let token = cmd::run_ok(
        &ctx.env,
        "kubectl",
        &["create", "token", TENANT, "-n", &ctx.ns, "--duration", "1h"],
        None,
        Duration::from_secs(30),
    )
    .await?;
    let admin = cmd::run_ok(
        &ctx.env,
        "kubectl",
        &["config", "view", "--raw", "--minify", "-o", "json"],
        None,
        Duration::from_secs(30),
    )
    .await?;
    let admin: Value = serde_json::from_str(&admin)?;
    let cluster = admin["clusters"][0].clone();
    let kubeconfig = json!({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": TENANT, "user": {"token": token.trim()}}],
        "contexts": [{"name": TENANT, "context": {"cluster": cluster["name"], "user": TENANT, "namespace": ctx.ns}}],
        "current-context": TENANT,
    });
    let path = std::env::temp_dir().join(format!("{}-{TENANT}.kubeconfig", ctx.ns));
    std::fs::write(&path, serde_json::to_string(&kubeconfig)?)?;
    ctx.step(format!(
        "ServiceAccount {TENANT}: pods/exec and the apps' Secrets {stack}-postgres, {stack}-redis; no administrator's Secret"
    ));
    Ok(path)
}

/// The plugin binary to test.
fn binary(ctx: &Ctx) -> Result<PathBuf> {
    if let Ok(path) = std::env::var("E2E_PLUGIN") {
        return Ok(PathBuf::from(path));
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| ctx.env.repo.join("target"));
    let built = ["release", "debug"]
        .iter()
        .map(|profile| target.join(profile).join("kubectl-appstack"))
        .filter_map(|p| Some((p.metadata().ok()?.modified().ok()?, p)))
        .max();
    built.map(|(_, p)| p).with_context(|| {
        format!(
            "no kubectl-appstack under {}: build it with `make build` (or set E2E_PLUGIN)",
            target.display()
        )
    })
}

/// Runs the plugin in the scenario's namespace, as the suite's user or with
/// `kubeconfig`.
async fn plugin_run(
    ctx: &Ctx,
    plugin: &Path,
    kubeconfig: Option<&Path>,
    args: &[&str],
) -> Result<cmd::Output> {
    let mut command = ctx.env.command(&plugin.display().to_string());
    // `<subcommand> <stack> -n <ns> ...`: before any `--`, whose rest is the client's.
    let split = args.len().min(2);
    command
        .args(&args[..split])
        .args(["-n", &ctx.ns])
        .args(&args[split..]);
    if let Some(path) = kubeconfig {
        command.env("KUBECONFIG", path);
    }
    command
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let shown = format!("kubectl-appstack {}", args.join(" "));
    let out = tokio::time::timeout(Duration::from_secs(300), command.output())
        .await
        .with_context(|| format!("`{shown}` did not finish within 300s"))?
        .with_context(|| format!("running `{shown}`"))?;
    Ok(cmd::Output {
        success: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

async fn run_ok(
    ctx: &Ctx,
    plugin: &Path,
    kubeconfig: Option<&Path>,
    args: &[&str],
) -> Result<String> {
    let out = plugin_run(ctx, plugin, kubeconfig, args).await?;
    if !out.success {
        bail!(
            "`kubectl-appstack {}` failed (exit {:?}):\n{}",
            args.join(" "),
            out.code,
            cmd::indent(&out.text())
        );
    }
    Ok(out.stdout)
}
