//! The cluster itself works (what `e2e/cluster.sh status` checks), through
//! the API: the node is Ready, a pod runs, cluster DNS resolves a Service
//! from another pod and the Service answers, a PVC's data survives its pod,
//! and metrics-server reports the pod's CPU.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use appstack_e2e::pods;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Pending, Ready};
use k8s_openapi::api::core::v1::{Node, PersistentVolumeClaim, Service};
use kube::ResourceExt;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::GroupVersionKind;
use serde_json::json;

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let nodes = Api::<Node>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await
        .context("listing nodes")?;
    let ready: Vec<String> = nodes
        .iter()
        .filter(|n| {
            n.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        })
        .map(|n| n.name_any())
        .collect();
    if ready.is_empty() {
        bail!(
            "expected a Ready node, saw {} node(s), none Ready",
            nodes.items.len()
        );
    }
    ctx.step(format!("Ready node(s): {}", ready.join(", ")));

    // A pod runs (a web server), and a Service in front of it.
    let page = format!("smoke-page-{}", ctx.ns);
    pods::run_daemon(
        ctx,
        "smoke-web",
        &format!("mkdir -p /tmp/www && echo {page} > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www"),
    )
    .await?;
    ctx.step("a pod from the tools image runs (httpd)");
    let svc: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "smoke-web"},
        "spec": {"selector": {"app": "smoke-web"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))?;
    let svc = Api::<Service>::namespaced(ctx.client.clone(), &ctx.ns)
        .create(&PostParams::default(), &svc)
        .await
        .context("creating Service smoke-web")?;
    let ip = svc
        .spec
        .and_then(|s| s.cluster_ip)
        .context("Service smoke-web got no ClusterIP")?;

    // DNS and the Service from another pod.
    let fqdn = format!("smoke-web.{}.svc.cluster.local", ctx.ns);
    let out = pods::run_script(
        ctx,
        "smoke-client",
        // The Service's DNS record and endpoints appear a moment after it.
        // (`timeout`, not wget -T: busybox 1.35's static wget segfaults with -T.)
        &format!(
            "for i in $(seq 30); do nslookup {fqdn} && timeout 5 wget -qO- http://{fqdn}/ && exit 0; sleep 1; done; exit 1"
        ),
        json!([]),
        json!([]),
        Duration::from_secs(90),
    )
    .await?;
    if !out.contains(&ip) || !out.contains(&page) {
        bail!(
            "expected `nslookup {fqdn}` to answer {ip} and the Service to serve {page:?}; the client printed:\n{out}"
        );
    }
    ctx.step(format!(
        "from another pod, DNS resolves {fqdn} to {ip} and the Service answers"
    ));

    // A PVC's data outlives the pod that wrote it.
    let pvc: PersistentVolumeClaim = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": "smoke-data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "16Mi"}}}
    }))?;
    Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &ctx.ns)
        .create(&PostParams::default(), &pvc)
        .await
        .context("creating PVC smoke-data (is there a default StorageClass?)")?;
    let volumes = json!([{"name": "data", "persistentVolumeClaim": {"claimName": "smoke-data"}}]);
    let mounts = json!([{"name": "data", "mountPath": "/data"}]);
    let proof = format!("written-by-{}", ctx.ns);
    pods::run_script(
        ctx,
        "smoke-writer",
        &format!("echo {proof} > /data/proof && sync"),
        volumes.clone(),
        mounts.clone(),
        Duration::from_secs(120),
    )
    .await?;
    ctx.pods()
        .delete("smoke-writer", &DeleteParams::default())
        .await
        .context("deleting pod smoke-writer")?;
    let read = pods::run_script(
        ctx,
        "smoke-reader",
        "cat /data/proof",
        volumes,
        mounts,
        Duration::from_secs(120),
    )
    .await?;
    if read.trim() != proof {
        bail!(
            "expected the new pod to read {proof:?} from the PVC, it read {:?}",
            read.trim()
        );
    }
    ctx.step("data written to a PVC by one pod is read by the next");

    // metrics-server reports the pod's CPU (what the HPA reads).
    let pod_metrics = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "PodMetrics"),
        "pods",
    );
    let api = Api::<DynamicObject>::namespaced_with(ctx.client.clone(), &ctx.ns, &pod_metrics);
    let usage = wait::until(
        "metrics.k8s.io to report the CPU of pod smoke-web",
        Duration::from_secs(120),
        async || {
            Ok(match api.get_opt("smoke-web").await? {
                Some(m) => match m.data["containers"][0]["usage"]["cpu"].as_str() {
                    Some(cpu) => Ready(cpu.to_string()),
                    None => Pending(format!("PodMetrics without CPU: {}", m.data)),
                },
                None => Pending("no PodMetrics for smoke-web yet".into()),
            })
        },
    )
    .await?;
    ctx.step(format!("metrics available: pod smoke-web uses {usage} CPU"));
    Ok(())
}
