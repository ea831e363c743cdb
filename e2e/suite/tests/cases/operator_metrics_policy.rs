//! The operator's /metrics names every tenant's stacks, so the chart closes
//! the operator's port to all pods but those of the namespaces
//! `networkPolicy.metricsNamespaces` names (default `monitoring`):
//! - the chart's NetworkPolicy is installed;
//! - a pod in this scenario's namespace cannot connect to an operator pod's
//!   port (8080: /metrics, /healthz, /readyz);
//! - the node still reads /metrics (this host on the local cluster, as the
//!   kubelet's probes do);
//! - once the value names this namespace (helm upgrade), the same pod reads
//!   /metrics. The chart's default is put back in every path.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use appstack_e2e::http::Http;
use appstack_e2e::operator;
use appstack_e2e::pods;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Pending, Ready};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::ResourceExt;
use kube::api::Api;

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    if !ctx.env.is_local() {
        ctx.note("skipped: it needs a cluster that enforces NetworkPolicy (the local one runs kube-router)");
        return Ok(());
    }
    let result = closed_then_opened(ctx).await;
    // Whatever happened: the chart's own values again.
    let restored = operator::helm_upgrade_install(&ctx.env, &[]).await;
    match (result, restored) {
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) => Err(e.context("putting the chart's default values back")),
        (Ok(()), Ok(_)) => Ok(()),
    }
}

async fn closed_then_opened(ctx: &mut Ctx) -> Result<()> {
    let policy = Api::<NetworkPolicy>::namespaced(ctx.client.clone(), operator::NAMESPACE)
        .get_opt(operator::FULLNAME)
        .await?
        .with_context(|| {
            format!(
                "the chart's NetworkPolicy {}/{} is not installed",
                operator::NAMESPACE,
                operator::FULLNAME
            )
        })?;
    ctx.step(format!(
        "NetworkPolicy {}/{} installed",
        operator::NAMESPACE,
        policy.name_any()
    ));
    let pod = operator::operator_pods(&ctx.client)
        .await?
        .into_iter()
        .find(pods::is_ready)
        .context("no ready operator pod")?;
    let ip = operator::pod_ip(&pod)?;
    let reader = pods::run_sleeper(ctx, "metrics-reader").await?;

    expect(ctx, &reader, ip, false).await?;
    let total = operator::reconciles(&Http::Host, &pod).await?;
    ctx.step(format!(
        "the node reads /metrics of {}: appstack_reconciles_total {total}",
        pod.name_any()
    ));

    let named = format!(
        "networkPolicy.metricsNamespaces=[\"monitoring\",\"{}\"]",
        ctx.ns
    );
    operator::helm_upgrade_install(&ctx.env, &["--set-json".into(), named]).await?;
    ctx.step(format!("helm upgrade: metricsNamespaces names {}", ctx.ns));
    expect(ctx, &reader, ip, true).await?;
    Ok(())
}

/// Waits until `reader` can (`open`) or cannot GET /metrics of the operator
/// pod at `ip`; the policy engine needs a moment after a change. Closed
/// means the connection attempt fails within its 5 s; the open case checks
/// the body, so the same port is known to serve.
async fn expect(ctx: &Ctx, reader: &str, ip: IpAddr, open: bool) -> Result<()> {
    let script = format!(
        "if timeout 5 wget -q -O - http://{ip}:8080/metrics 2>/dev/null | grep -q '^appstack_reconciles_total '; then echo open; else echo closed; fi"
    );
    let want = if open { "open" } else { "closed" };
    let start = Instant::now();
    wait::until(
        &format!("{reader} -> {ip}:8080/metrics to be {want}"),
        Duration::from_secs(60),
        async || {
            let out =
                pods::exec(ctx, &ctx.ns, reader, None, &script, Duration::from_secs(20)).await?;
            let got = out.stdout.trim().to_string();
            Ok(if got == want {
                Ready(())
            } else {
                Pending(format!("{got} {}", out.stderr.trim()))
            })
        },
    )
    .await?;
    if !open {
        // Still closed a little later: not a moment's hiccup.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let out = pods::exec(ctx, &ctx.ns, reader, None, &script, Duration::from_secs(20)).await?;
        if out.stdout.trim() != "closed" {
            bail!(
                "{reader} reached /metrics of {ip} after all: {}",
                out.stdout.trim()
            );
        }
    }
    ctx.step(format!(
        "{}/{reader} -> {ip}:8080/metrics: {want} ({:.1}s)",
        ctx.ns,
        start.elapsed().as_secs_f64()
    ));
    Ok(())
}
