//! The operator as installed by its Helm chart: release, pods, Lease, metrics.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::{Client, ResourceExt};

use crate::cmd;
use crate::env::TestEnv;
use crate::http::{Call, Http};
use crate::pods;
use crate::wait::{self, Pending, Ready};

pub const RELEASE: &str = "appstack-operator";
pub const NAMESPACE: &str = "appstack-system";
pub const CHART: &str = "charts/appstack-operator";
/// The chart's full name for release "appstack-operator": Deployment,
/// ServiceAccount, ClusterRole and Lease are all named so.
pub const FULLNAME: &str = "appstack-operator";
pub const POD_SELECTOR: &str =
    "app.kubernetes.io/name=appstack-operator,app.kubernetes.io/instance=appstack-operator";
pub const REPLICAS: i32 = 2;
pub const CRD: &str = "appstacks.appstack.dev";

/// `helm upgrade --install` of the chart with the local cluster's values;
/// `extra` are more helm flags. Returns helm's output (with the NOTES).
///
/// Helm installs a chart's crds/ only when the CRD is absent and never
/// upgrades it; like a user upgrading, the suite applies the chart's CRD
/// itself when it is already installed, so a rerun tests the current one.
pub async fn helm_upgrade_install(env: &TestEnv, extra: &[String]) -> Result<String> {
    let t = Duration::from_secs(60);
    let crd = cmd::run(env, "kubectl", &["get", "crd", CRD], None, t).await?;
    if crd.success {
        let dir = format!("{CHART}/crds/");
        cmd::run_ok(
            env,
            "kubectl",
            &["apply", "--server-side", "--force-conflicts", "-f", &dir],
            None,
            t,
        )
        .await?;
    }
    let mut args: Vec<String> = [
        "upgrade",
        "--install",
        RELEASE,
        CHART,
        "-n",
        NAMESPACE,
        "--create-namespace",
        "--wait",
        "--timeout",
        "240s",
    ]
    .map(String::from)
    .to_vec();
    if env.is_local() {
        args.extend(["-f".into(), "charts/values-local-cluster.yaml".into()]);
        // The dev image is rebuilt under the same tag: naming its digest in a
        // pod annotation rolls the pods when (and only when) it changed.
        if let Some(digest) = local_image_digest(env).await? {
            args.extend([
                "--set-string".into(),
                format!("podAnnotations.e2e\\.appstack\\.dev/image-digest={digest}"),
            ]);
        }
    } else {
        // There the suite reads /metrics from a helper pod in a scenario's
        // namespace, which the chart's NetworkPolicy would keep out.
        args.extend([
            "--set-json".into(),
            format!(
                "networkPolicy.metricsFrom=[{{\"namespaceSelector\":{{\"matchLabels\":{{\"{}\":\"true\"}}}}}}]",
                crate::namespace::LABEL
            ),
        ]);
    }
    args.extend(extra.iter().cloned());
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    cmd::run_ok(env, "helm", &refs, None, Duration::from_secs(300)).await
}

/// The digest of appstack.local/appstack-operator:dev in the local
/// containerd, if ctr can tell.
pub async fn local_image_digest(env: &TestEnv) -> Result<Option<String>> {
    let image = "appstack.local/appstack-operator:dev";
    let out = cmd::run(
        env,
        "ctr",
        &[
            "-n",
            "k8s.io",
            "--address",
            &env.containerd_address,
            "images",
            "ls",
            &format!("name=={image}"),
        ],
        None,
        Duration::from_secs(20),
    )
    .await;
    let Ok(out) = out else { return Ok(None) };
    if !out.success {
        return Ok(None);
    }
    let digest = out
        .stdout
        .lines()
        .filter(|l| l.starts_with(image))
        .find_map(|l| l.split_whitespace().nth(2).map(str::to_string));
    if digest.is_none() {
        bail!(
            "image {image} is not in the cluster's containerd; build it: e2e/images/build.sh operator"
        );
    }
    Ok(digest)
}

pub async fn operator_pods(client: &Client) -> Result<Vec<Pod>> {
    pods::list(client, NAMESPACE, POD_SELECTOR).await
}

/// Waits until the operator's Deployment has rolled out completely.
pub async fn wait_available(client: &Client, timeout: Duration) -> Result<Vec<Pod>> {
    pods::wait_deployment_settled(client, NAMESPACE, FULLNAME, Some(REPLICAS), timeout).await
}

pub async fn lease(client: &Client) -> Result<Option<Lease>> {
    Api::<Lease>::namespaced(client.clone(), NAMESPACE)
        .get_opt(FULLNAME)
        .await
        .context("reading the operator's Lease")
}

pub async fn holder(client: &Client) -> Result<Option<String>> {
    Ok(lease(client)
        .await?
        .and_then(|l| l.spec)
        .and_then(|s| s.holder_identity)
        .filter(|h| !h.is_empty()))
}

/// Waits until the Lease names a live, ready operator pod that is not one of
/// `not`; returns that pod.
pub async fn wait_leader(client: &Client, not: &[String], timeout: Duration) -> Result<Pod> {
    wait::until_every(
        "the Lease to name a new, ready operator pod as leader",
        timeout,
        Duration::from_millis(200),
        async || {
            let holder = holder(client).await?;
            let pods = operator_pods(client).await?;
            let leader = holder.as_ref().and_then(|h| {
                pods.iter()
                    .find(|p| &p.name_any() == h && !not.contains(h) && pods::is_ready(p))
            });
            Ok(match leader {
                Some(p) => Ready(p.clone()),
                None => Pending(format!(
                    "holder {holder:?}; pods: {}",
                    pods::describe(&pods)
                )),
            })
        },
    )
    .await
}

pub fn pod_ip(pod: &Pod) -> Result<IpAddr> {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .with_context(|| format!("pod {} has no IP", pod.name_any()))?
        .parse()
        .context("bad pod IP")
}

/// appstack_reconciles_total of one operator pod, from its /metrics.
pub async fn reconciles(http: &Http, pod: &Pod) -> Result<f64> {
    let addr = SocketAddr::new(pod_ip(pod)?, 8080);
    let r = http.send(addr, Call::get("/metrics")).await?;
    if r.status != 200 {
        bail!("GET /metrics of {}: {}", pod.name_any(), r.summary());
    }
    r.body
        .lines()
        .find_map(|l| l.strip_prefix("appstack_reconciles_total "))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| {
            format!(
                "no appstack_reconciles_total in /metrics of {}",
                pod.name_any()
            )
        })
}

/// Waits for the leader's first reconcile, and 5 s more for whatever it would
/// write to land, then checks that the stack's children did not change.
pub async fn leader_changed_nothing(
    ctx: &mut crate::runner::Ctx,
    stack: &str,
    before: &crate::children::Snapshot,
    leader: &Pod,
    when: &str,
) -> Result<()> {
    let http = ctx.http().await?;
    wait::until(
        &format!("the leader {} to reconcile", leader.name_any()),
        Duration::from_secs(60),
        async || {
            let n = reconciles(&http, leader).await?;
            Ok(if n > 0.0 {
                Ready(())
            } else {
                Pending("appstack_reconciles_total 0".into())
            })
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = crate::children::snapshot(&ctx.client, &ctx.ns, stack).await?;
    crate::children::ensure_unchanged(before, &after, when)
}

/// Deletes every operator pod and waits (up to `timeout`) for a new leader;
/// reports the time to it as the "new leader" recovery.
pub async fn restart_all(ctx: &mut crate::runner::Ctx, timeout: Duration) -> Result<Pod> {
    let old: Vec<String> = operator_pods(&ctx.client)
        .await?
        .iter()
        .map(|p| p.name_any())
        .collect();
    let api = Api::<Pod>::namespaced(ctx.client.clone(), NAMESPACE);
    let start = std::time::Instant::now();
    for name in &old {
        api.delete(name, &kube::api::DeleteParams::default())
            .await?;
    }
    ctx.step(format!("deleted the operator pods: {}", old.join(", ")));
    let leader = wait_leader(&ctx.client, &old, timeout).await?;
    ctx.recovered("new leader", start.elapsed());
    ctx.step(format!("new leader {}", leader.name_any()));
    Ok(leader)
}
