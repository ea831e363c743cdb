//! No password the stack's Secrets hold is where someone without those
//! Secrets can read it. On one stack with Redis (backed up, so it has its
//! backup user too) and PostgreSQL:
//! - no process of any container of the store pods has a password on its
//!   command line (/proc/*/cmdline, read a few times over some seconds), and
//!   the pods' specs hold none, nor a $(VAR) the kubelet would expand into
//!   one;
//! - Redis takes its users from a file on a memory volume, which holds
//!   hashes only and which Redis cannot write back (ACL SAVE fails);
//! - Redis made to quote passwords in its own log (a line of its AOF
//!   manifest it cannot read, holding the apps' and the administrator's
//!   passwords): its crash loop is Degraded StoreFailing with Redis' words,
//!   but neither the stack's status nor its Events hold a password.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::{apply, appstack, children, pods};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use serde_json::json;

const STACK: &str = "sealed";
const REDIS_POD: &str = "sealed-redis-0";
const POSTGRES_POD: &str = "sealed-postgres-0";
const USERS_FILE: &str = "/var/run/appstack/users/users.acl";

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let shop = appstack::shop_manifest(ctx)?;
    apply::object(
        &ctx.client,
        &ctx.ns,
        json!({
            "apiVersion": "appstack.dev/v1alpha1",
            "kind": "AppStack",
            "metadata": {"name": STACK},
            "spec": {
                "components": [{"name": "web", "image": ctx.env.tools_image, "port": 8080, "replicas": 0}],
                "redis": {
                    "image": shop["spec"]["redis"]["image"],
                    "backup": {"target": {"volume": {"size": "64Mi"}}}
                },
                "postgres": {"image": shop["spec"]["postgres"]["image"]},
                "retainDataOnDelete": false
            }
        }),
    )
    .await?;
    let took = appstack::wait_ready(&ctx.client, &ctx.ns, STACK, Duration::from_secs(180)).await?;
    ctx.step(format!(
        "AppStack {STACK} Ready in {:.1}s (Redis with backups, PostgreSQL)",
        took.as_secs_f64()
    ));
    let passwords = passwords(ctx).await?;
    ensure!(
        passwords.len() == 8,
        "expected the passwords of 8 Secrets (apps', administrators', Redis' backup user, PostgreSQL's login roles, the exporters' monitoring users), found {:?}",
        passwords.keys().collect::<Vec<_>>()
    );

    for pod in [REDIS_POD, POSTGRES_POD] {
        no_password_in_processes(ctx, pod, &passwords).await?;
        no_password_in_pod_spec(ctx, pod, &passwords).await?;
    }
    redis_users_file(ctx, &passwords).await?;
    redis_quotes_passwords(ctx, &passwords).await
}

/// Secret name -> password, of the stack's Secrets that hold one.
async fn passwords(ctx: &Ctx) -> Result<BTreeMap<String, String>> {
    Ok(children::secret_data(&ctx.client, &ctx.ns, STACK)
        .await?
        .into_iter()
        .filter_map(|(name, data)| Some((name, data.get("password")?.clone())))
        .collect())
}

/// The first Secret whose password `text` holds.
fn leaked<'a>(text: &str, passwords: &'a BTreeMap<String, String>) -> Option<&'a str> {
    passwords
        .iter()
        .find(|(_, p)| text.contains(p.as_str()))
        .map(|(name, _)| name.as_str())
}

async fn no_password_in_processes(
    ctx: &Ctx,
    pod: &str,
    passwords: &BTreeMap<String, String>,
) -> Result<()> {
    let spec = ctx.pods().get(pod).await?.spec.unwrap_or_default();
    // Each container has its own process namespace: look from each, a few
    // times, so that short-lived commands (a check's client) are seen too.
    let script = "for i in 1 2 3 4 5; do for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < \"$f\" 2>/dev/null; echo; done; sleep 2; done";
    let mut seen = 0;
    for container in spec.containers.iter().map(|c| c.name.as_str()) {
        let out = pods::exec(
            ctx,
            &ctx.ns,
            pod,
            Some(container),
            script,
            Duration::from_secs(60),
        )
        .await?;
        ensure!(
            out.success,
            "reading /proc in {pod}/{container}: {}",
            out.text()
        );
        if let Some(secret) = leaked(&out.stdout, passwords) {
            bail!(
                "the password of Secret {secret} is on a command line in {pod}/{container}:\n{}",
                out.stdout
                    .lines()
                    .filter(|l| passwords.values().any(|p| l.contains(p.as_str())))
                    .map(|l| l.replace(&passwords[secret], "<PASSWORD>"))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
        seen += out.stdout.lines().filter(|l| !l.trim().is_empty()).count();
    }
    ctx.step(format!(
        "{pod}: no password in the {seen} command lines its containers' processes showed over 10 s"
    ));
    Ok(())
}

async fn no_password_in_pod_spec(
    ctx: &Ctx,
    pod: &str,
    passwords: &BTreeMap<String, String>,
) -> Result<()> {
    let object = ctx.pods().get(pod).await?;
    let yaml = serde_yaml::to_string(&object)?;
    if let Some(secret) = leaked(&yaml, passwords) {
        bail!("the password of Secret {secret} is in pod {pod}'s object (kubectl get pod -o yaml)");
    }
    let spec = object.spec.unwrap_or_default();
    for c in spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
    {
        let words: Vec<&String> = c
            .command
            .iter()
            .flatten()
            .chain(c.args.iter().flatten())
            .collect();
        for var in c.env.iter().flatten().filter(|e| {
            e.value_from
                .as_ref()
                .is_some_and(|v| v.secret_key_ref.is_some())
        }) {
            let reference = format!("$({})", var.name);
            if words.iter().any(|w| w.contains(&reference)) {
                bail!(
                    "{pod}/{}: its arguments name {reference}, which the kubelet replaces with a Secret's value on the process's command line",
                    c.name
                );
            }
        }
    }
    ctx.step(format!(
        "{pod}: its object holds no password, and no argument takes one from a Secret"
    ));
    Ok(())
}

/// `sh -c script` in the Redis container; (success, output).
async fn in_redis(ctx: &Ctx, script: &str) -> Result<(bool, String)> {
    let out = pods::exec(
        ctx,
        &ctx.ns,
        REDIS_POD,
        Some("redis"),
        script,
        Duration::from_secs(30),
    )
    .await?;
    Ok((out.success, out.text()))
}

async fn redis_users_file(ctx: &Ctx, passwords: &BTreeMap<String, String>) -> Result<()> {
    let (ok, file) = in_redis(ctx, &format!("cat {USERS_FILE}")).await?;
    ensure!(ok, "reading {USERS_FILE}: {file}");
    if let Some(secret) = leaked(&file, passwords) {
        bail!("{USERS_FILE} holds the password of Secret {secret} in clear");
    }
    let users: Vec<&str> = file
        .lines()
        .filter_map(|l| l.strip_prefix("user "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    ensure!(
        users.len() == 4 && users[0] == "default" && file.lines().all(|l| l.contains(" #")),
        "expected the administrator, the apps', the backup and the monitoring user, each with a hashed password, in {USERS_FILE}: {users:?}"
    );
    // /var/run is a link to /run in Debian images: the mount shows there.
    let (_, mount) = in_redis(
        ctx,
        "grep -E ' (/var)?/run/appstack/users ' /proc/mounts; true",
    )
    .await?;
    ensure!(
        mount.starts_with("tmpfs ") && mount.contains(" ro,"),
        "expected the users' volume to be memory (tmpfs) mounted read-only in the Redis container: {mount}"
    );
    let (_, saved) = in_redis(ctx, &format!("{} ACL SAVE", pods::REDIS_CLI)).await?;
    ensure!(
        saved.trim() != "OK",
        "ACL SAVE wrote the users file: Redis could keep users the Secrets do not say"
    );
    ctx.step(format!(
        "Redis' users ({}) come from {USERS_FILE} on a read-only tmpfs, with hashed passwords only; ACL SAVE: {}",
        users.join(", "),
        saved.lines().next().unwrap_or_default()
    ));
    Ok(())
}

async fn redis_quotes_passwords(ctx: &Ctx, passwords: &BTreeMap<String, String>) -> Result<()> {
    // A manifest line Redis cannot parse is quoted whole in its log, which
    // the kubelet keeps as the container's termination message
    // (FallbackToLogsOnError); the restart of the server (not the pod)
    // makes it read the file again. AOF is switched off first, as Redis 8
    // writes its own manifest back on shutdown otherwise.
    let (_, out) = in_redis(
        ctx,
        &format!(
            "{cli} config set appendonly no >/dev/null && printf 'file appendonly.aof.1.base.rdb seq 1 type b\\n%s %s\\n' \"$APP_PASSWORD\" \"$REDISCLI_AUTH\" > /data/appendonlydir/appendonly.aof.manifest && ({cli} shutdown nosave || true)",
            cli = pods::REDIS_CLI
        ),
    )
    .await?;
    ctx.step(format!(
        "wrote the apps' and the administrator's passwords into Redis' AOF manifest and shut Redis down ({})",
        out.lines().next().unwrap_or("no output")
    ));
    let start = Instant::now();
    let message = appstack::wait_condition_mentioning(
        &ctx.client,
        &ctx.ns,
        STACK,
        ("Degraded", "True", "StoreFailing"),
        "AOF manifest",
        Duration::from_secs(120),
    )
    .await?;
    ctx.step(format!(
        "Degraded=True (StoreFailing) after {:.1}s: {message}",
        start.elapsed().as_secs_f64()
    ));
    // The premise: Redis did quote them, where the operator read it.
    let pod = Api::<Pod>::namespaced(ctx.client.clone(), &ctx.ns)
        .get(REDIS_POD)
        .await?;
    let said = pod
        .status
        .and_then(|s| s.container_statuses)
        .into_iter()
        .flatten()
        .filter(|c| c.name == "redis")
        .filter_map(|c| c.last_state?.terminated?.message)
        .collect::<String>();
    ensure!(
        leaked(&said, passwords).is_some(),
        "expected Redis' last words (its termination message) to quote a password, they are: {said}"
    );
    ensure!(
        message.contains("[redacted]"),
        "expected the StoreFailing message to say where a password was taken out: {message}"
    );
    let stack = appstack::api(&ctx.client, &ctx.ns).get(STACK).await?;
    let status = serde_json::to_string(&stack.data["status"])?;
    if let Some(secret) = leaked(&status, passwords) {
        bail!("the stack's status holds the password of Secret {secret}");
    }
    let events = appstack::events(&ctx.client, &ctx.ns, STACK).await?;
    ensure!(
        events
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "StoreFailing"),
        "expected a Warning Event StoreFailing, found {events:?}"
    );
    for (_, reason, note) in &events {
        if let Some(secret) = leaked(note, passwords) {
            bail!("Event {reason} of AppStack {STACK} holds the password of Secret {secret}");
        }
    }
    ctx.step(format!(
        "Redis quoted both passwords in its log; the stack's status and its {} Events hold neither",
        events.len()
    ));
    Ok(())
}
