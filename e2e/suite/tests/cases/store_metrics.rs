//! The stores' exporters, scraped the way a Prometheus in a monitoring
//! namespace would. On the shop (both stores, TLS on):
//! - from a pod of a namespace labelled `appstack.dev/scrape-stores=true`
//!   (the operator's default scrapers), each exporter's /metrics says
//!   `pg_up 1` / `redis_up 1` and real figures: pg_stat_database rows of
//!   the shop's database, Redis' connected_clients;
//! - from a pod of the stack's own namespace and of an unlabelled one the
//!   exporters' ports are closed (the store NetworkPolicy);
//! - the monitoring users read no data: PostgreSQL refuses it a SELECT on
//!   the shop's table, Redis answers NOPERM to GET (and to CONFIG);
//! - no component is wired to the monitoring Secrets.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Pending, Ready};
use appstack_e2e::{appstack, children, pods, shop, stores};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, ListParams};
use serde_json::json;

const PG_PORT: u16 = 9187;
const REDIS_PORT: u16 = 9121;
const SCRAPE_LABEL: &str = "appstack.dev/scrape-stores";

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    if !ctx.env.is_local() {
        ctx.note("skipped: it needs the exporter images and NetworkPolicy enforcement of the local cluster");
        return Ok(());
    }
    let stack = appstack::deploy_shop(ctx, |_| {}).await?;
    let (_token, cart) = shop::seed(&stack.shop, "ada").await?;
    ctx.step(format!("logged in as ada, cart {cart:?}"));
    let scrape_ns = format!("{}-scrape", ctx.ns);
    let other_ns = format!("{}-other", ctx.ns);
    let result = async {
        let scraper = sleeper_in(ctx, &scrape_ns, true).await?;
        let outsider = sleeper_in(ctx, &other_ns, false).await?;
        let neighbour = pods::run_sleeper(ctx, "neighbour").await?;
        checks(
            ctx,
            &stack,
            (&scrape_ns, &scraper),
            (&other_ns, &outsider),
            &neighbour,
        )
        .await
    }
    .await;
    let namespaces = Api::<Namespace>::all(ctx.client.clone());
    for ns in [&scrape_ns, &other_ns] {
        namespaces.delete(ns, &DeleteParams::default()).await.ok();
    }
    result
}

async fn checks(
    ctx: &mut Ctx,
    stack: &appstack::Stack,
    (scrape_ns, scraper): (&str, &str),
    (other_ns, outsider): (&str, &str),
    neighbour: &str,
) -> Result<()> {
    let pg_pod = format!("{}-0", stack.postgres());
    let redis_pod = format!("{}-0", stack.redis());
    let pg_ip = pod_ip(ctx, &pg_pod).await?;
    let redis_ip = pod_ip(ctx, &redis_pod).await?;
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &ctx.ns);
    let app = children::decoded(&secrets.get(&stack.postgres()).await?);
    let database = app
        .get("database")
        .context("the apps' Secret has no database")?;

    let t = Instant::now();
    let pg = scrape(ctx, scrape_ns, scraper, &pg_ip, PG_PORT, "pg_up 1").await?;
    let rows = pg
        .lines()
        .filter(|l| {
            l.starts_with("pg_stat_database_") && l.contains(&format!("datname=\"{database}\""))
        })
        .count();
    if rows == 0 {
        bail!(
            "no pg_stat_database series of database {database} in:\n{}",
            head(&pg)
        );
    }
    ctx.step(format!(
        "{scrape_ns}/{scraper} scraped {pg_pod}:{PG_PORT}: pg_up 1, {rows} pg_stat_database series of {database}, {} lines ({:.1}s)",
        pg.lines().count(),
        t.elapsed().as_secs_f64()
    ));
    let t = Instant::now();
    let redis = scrape(ctx, scrape_ns, scraper, &redis_ip, REDIS_PORT, "redis_up 1").await?;
    let clients = redis
        .lines()
        .find_map(|l| l.strip_prefix("redis_connected_clients "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .context("no redis_connected_clients")?;
    if clients < 1.0 {
        bail!("redis_connected_clients {clients}: the shop and the exporter are connected");
    }
    let memory = redis
        .lines()
        .any(|l| l.starts_with("redis_memory_used_bytes "));
    let commands = redis
        .lines()
        .filter(|l| l.starts_with("redis_commands_total{"))
        .count();
    if !memory || commands == 0 {
        bail!(
            "redis_memory_used_bytes or redis_commands_total missing:\n{}",
            head(&redis)
        );
    }
    ctx.step(format!(
        "{scrape_ns}/{scraper} scraped {redis_pod}:{REDIS_PORT}: redis_up 1, redis_connected_clients {clients}, {commands} redis_commands_total series ({:.1}s)",
        t.elapsed().as_secs_f64()
    ));

    let ns = ctx.ns.clone();
    for (pod_ns, pod) in [(ns.as_str(), neighbour), (other_ns, outsider)] {
        for (ip, port) in [(&pg_ip, PG_PORT), (&redis_ip, REDIS_PORT)] {
            closed(ctx, pod_ns, pod, ip, port).await?;
        }
    }

    // The monitoring users, with their own Secrets' passwords.
    let monitor = |name: &str| {
        let secrets = secrets.clone();
        let name = name.to_string();
        async move {
            let s = children::decoded(&secrets.get(&format!("{name}-monitor")).await?);
            let user = s.get("username").cloned().context("no username")?;
            let password = s.get("password").cloned().context("no password")?;
            anyhow::Ok((user, password))
        }
    };
    let quote = |v: &str| format!("'{}'", v.replace('\'', "'\\''"));
    let (user, password) = monitor(&stack.postgres()).await?;
    let psql = |sql: &str| {
        format!(
            "PGPASSWORD={} psql -h 127.0.0.1 -U {} -d \"$POSTGRES_DB\" -Atc {}",
            quote(&password),
            quote(&user),
            quote(sql)
        )
    };
    let (ok, out) = stores::exec(
        ctx,
        &pg_pod,
        "postgres",
        &psql("select count(*) from cart_items"),
    )
    .await?;
    if ok || !out.contains("permission denied") {
        bail!("expected {user} to be refused the shop's cart_items, psql said: {out}");
    }
    ctx.step(format!(
        "PostgreSQL refuses {user} a SELECT on cart_items: {}",
        stores::first_line(&out)
    ));
    let (ok, out) = stores::exec(
        ctx,
        &pg_pod,
        "postgres",
        &psql("select rolsuper, rolreplication, pg_has_role(current_user, 'pg_monitor', 'member') from pg_roles where rolname = current_user"),
    )
    .await?;
    if !ok || out.trim() != "f|f|t" {
        bail!("expected {user} to be a plain member of pg_monitor, psql said: {out}");
    }
    ctx.step(format!(
        "{user}: no superuser, no replication, member of pg_monitor"
    ));

    let (user, password) = monitor(&stack.redis()).await?;
    for command in [
        "GET anything",
        "CONFIG GET maxmemory",
        "KEYS *",
        "SLOWLOG GET 1",
    ] {
        let script = format!(
            "REDISCLI_AUTH={} {} --user {} {command}",
            quote(&password),
            pods::REDIS_CLI,
            quote(&user)
        );
        let (_, out) = stores::exec(ctx, &redis_pod, "redis", &script).await?;
        if !out.contains("NOPERM") {
            bail!("expected NOPERM for {command} as {user}, redis-cli said: {out}");
        }
    }
    ctx.step(format!(
        "Redis answers {user} NOPERM for GET, CONFIG, KEYS and SLOWLOG GET"
    ));

    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), &ctx.ns)
        .list(&ListParams::default().labels(&format!("app.kubernetes.io/instance={}", stack.name)))
        .await?;
    for d in &deployments.items {
        let template = serde_json::to_string(&d.spec.as_ref().map(|s| &s.template))?;
        if template.contains("-monitor\"") {
            bail!(
                "Deployment {:?} is wired to a monitoring Secret",
                d.metadata.name
            );
        }
    }
    ctx.step("no component is wired to a monitoring Secret");

    Ok(())
}

/// Fetches http://ip:port/metrics from `pod` until it contains `want`.
async fn scrape(ctx: &Ctx, ns: &str, pod: &str, ip: &str, port: u16, want: &str) -> Result<String> {
    // HTTP/1.0 by hand: this busybox's wget crashes with -T, and without
    // it would wait for ever on a port that drops the connection.
    let script = format!(
        "printf 'GET /metrics HTTP/1.0\\r\\nHost: {ip}\\r\\n\\r\\n' | nc -w 10 {ip} {port}"
    );
    wait::until(
        &format!("{ns}/{pod} to scrape {ip}:{port} with {want}"),
        Duration::from_secs(60),
        async || {
            let out = pods::exec(ctx, ns, pod, None, &script, Duration::from_secs(20)).await?;
            Ok(if out.stdout.lines().any(|l| l.trim() == want) {
                Ready(out.stdout)
            } else {
                let up = out
                    .stdout
                    .lines()
                    .find(|l| l.starts_with(want.split(' ').next().unwrap_or(want)))
                    .unwrap_or("")
                    .to_string();
                Pending(format!("{up} {}", out.stderr.trim()))
            })
        },
    )
    .await
}

/// Waits until `pod` cannot connect to ip:port (the policy engine needs a
/// moment after a change; here nothing changes, so it is at once).
async fn closed(ctx: &Ctx, ns: &str, pod: &str, ip: &str, port: u16) -> Result<()> {
    let script =
        format!("nc -w 3 {ip} {port} </dev/null >/dev/null 2>&1 && echo open || echo closed");
    let start = Instant::now();
    wait::until(
        &format!("{ns}/{pod} -> {ip}:{port} to be closed"),
        Duration::from_secs(45),
        async || {
            let out = pods::exec(ctx, ns, pod, None, &script, Duration::from_secs(20)).await?;
            let got = out.stdout.trim().to_string();
            Ok(if got == "closed" {
                Ready(())
            } else {
                Pending(got)
            })
        },
    )
    .await?;
    ctx.step(format!(
        "{ns}/{pod} -> {ip}:{port}: closed ({:.1}s)",
        start.elapsed().as_secs_f64()
    ));
    Ok(())
}

async fn pod_ip(ctx: &Ctx, name: &str) -> Result<String> {
    ctx.pods()
        .get(name)
        .await?
        .status
        .and_then(|s| s.pod_ip)
        .with_context(|| format!("pod {name} has no IP"))
}

fn head(text: &str) -> String {
    text.lines().take(40).collect::<Vec<_>>().join("\n")
}

/// A sleeping pod in namespace `ns` (made here; labelled for scraping when
/// `scrapes`), as unprivileged as the suite's own.
async fn sleeper_in(ctx: &Ctx, ns: &str, scrapes: bool) -> Result<String> {
    let mut labels = json!({});
    if scrapes {
        labels[SCRAPE_LABEL] = "true".into();
    }
    pods::run_sleeper_in(ctx, ns, labels, "sleeper").await
}
