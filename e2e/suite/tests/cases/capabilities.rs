//! A component that adds NET_BIND_SERVICE stays in the restricted Pod
//! Security profile: in a namespace that enforces `restricted`, its pod is
//! admitted and runs with `drop: [ALL]` (plus the user's own drops) and
//! `add: [NET_BIND_SERVICE]`, and the kernel's bounding set of its process
//! holds that one capability. The same pod without `drop: [ALL]` (what a
//! merge that replaces `capabilities` whole produced) is refused by Pod
//! Security, so the check can fail.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::{apply, appstack, pods};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

const STACK: &str = "caps";
/// Bit 10 of the capability sets: CAP_NET_BIND_SERVICE alone.
const NET_BIND_SERVICE_ONLY: &str = "0000000000000400";

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    // Whatever E2E_POD_SECURITY says, this namespace enforces restricted.
    let labels = json!({"metadata": {"labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest"
    }}});
    Api::<Namespace>::all(ctx.client.clone())
        .patch(&ctx.ns, &PatchParams::default(), &Patch::Merge(&labels))
        .await
        .context("labelling the namespace pod-security.kubernetes.io/enforce=restricted")?;
    ctx.step(format!(
        "namespace {} enforces Pod Security restricted",
        ctx.ns
    ));

    let stack = json!({
        "apiVersion": "appstack.dev/v1alpha1",
        "kind": "AppStack",
        "metadata": {"name": STACK},
        "spec": {"components": [{
            "name": "web",
            "image": ctx.env.tools_image,
            "command": ["sh", "-c", "while true; do echo ok | nc -l -p 8080; done"],
            "port": 8080,
            "replicas": 1,
            "podSecurityContext": {"runAsUser": 65534, "runAsGroup": 65534},
            "securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["NET_RAW"]}}
        }]}
    });
    apply::object(&ctx.client, &ctx.ns, stack).await?;
    appstack::wait_ready(&ctx.client, &ctx.ns, STACK, Duration::from_secs(120)).await?;
    let running = pods::wait_deployment_settled(
        &ctx.client,
        &ctx.ns,
        &format!("{STACK}-web"),
        Some(1),
        Duration::from_secs(60),
    )
    .await?;
    let pod = running.first().context("no pod of the component")?;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    ctx.step(format!(
        "AppStack {STACK} Ready; pod {pod_name} admitted and ready"
    ));

    let container = pod
        .spec
        .as_ref()
        .and_then(|s| s.containers.iter().find(|c| c.name == "web"))
        .context("the pod has no container web")?;
    let caps = container
        .security_context
        .as_ref()
        .and_then(|s| s.capabilities.clone())
        .unwrap_or_default();
    let drop = caps.drop.clone().unwrap_or_default();
    let add = caps.add.clone().unwrap_or_default();
    if !drop.iter().any(|d| d == "ALL") || !drop.iter().any(|d| d == "NET_RAW") {
        bail!("expected the container to drop ALL and the user's NET_RAW, it drops {drop:?}");
    }
    if add != ["NET_BIND_SERVICE"] {
        bail!("expected the container to add exactly NET_BIND_SERVICE, it adds {add:?}");
    }
    ctx.step(format!(
        "container web: capabilities drop {drop:?}, add {add:?}"
    ));

    let out = pods::exec(
        ctx,
        &ctx.ns,
        &pod_name,
        Some("web"),
        "grep -E '^Cap(Bnd|Eff)' /proc/1/status",
        Duration::from_secs(30),
    )
    .await?;
    let text = out.text();
    let bounding = text
        .lines()
        .find_map(|l| l.strip_prefix("CapBnd:"))
        .map(str::trim);
    if !out.success || bounding != Some(NET_BIND_SERVICE_ONLY) {
        bail!(
            "expected the process's bounding set to be {NET_BIND_SERVICE_ONLY} (NET_BIND_SERVICE only), /proc/1/status says: {text}"
        );
    }
    ctx.step(format!(
        "in the container: CapBnd {NET_BIND_SERVICE_ONLY} (NET_BIND_SERVICE only)"
    ));

    refused_without_drop_all(ctx, pod).await
}

/// The running pod's spec without `drop: [ALL]`, as a server-side dry run:
/// Pod Security must refuse it, or the namespace would not be checking what
/// this scenario claims.
async fn refused_without_drop_all(ctx: &mut Ctx, pod: &Pod) -> Result<()> {
    let mut spec = pod.spec.clone().context("pod without spec")?;
    // What admission set on the running pod would be refused on a new one.
    spec.node_name = None;
    spec.priority = None;
    spec.preemption_policy = None;
    for c in &mut spec.containers {
        if let Some(caps) = c
            .security_context
            .as_mut()
            .and_then(|s| s.capabilities.as_mut())
        {
            caps.drop = None;
        }
    }
    let probe = Pod {
        metadata: kube::api::ObjectMeta {
            name: Some("caps-without-drop-all".into()),
            ..Default::default()
        },
        spec: Some(spec),
        ..Default::default()
    };
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    match Api::<Pod>::namespaced(ctx.client.clone(), &ctx.ns)
        .create(&params, &probe)
        .await
    {
        Err(kube::Error::Api(e)) if e.code == 403 && e.message.contains("restricted") => {
            ctx.step(format!(
                "the same pod without drop [ALL] is refused (dry run): {}",
                e.message
            ));
            Ok(())
        }
        Err(e) => bail!("expected Pod Security to refuse the pod without drop [ALL], got: {e}"),
        Ok(_) => bail!(
            "the pod without drop [ALL] was admitted: the namespace does not enforce restricted"
        ),
    }
}
