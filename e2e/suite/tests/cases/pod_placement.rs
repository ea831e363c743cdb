//! Pods land where the AppStack's pod settings say. On the local node,
//! labelled and tainted (NoSchedule) with keys unique to this run:
//! - a stack whose component has the matching nodeSelector and toleration
//!   (one from spec.podDefaults, one its own) runs on that node, with the
//!   default spread over nodes and no ServiceAccount token mounted;
//! - a stack whose component has the nodeSelector but not the toleration
//!   stays Pending, the scheduler's reason (an untolerated taint) on its
//!   pod, and the stack is not Ready.
//!
//! Alone: the taint would keep every other scenario's new pods off the
//! node. The label and taint are removed at the end whatever happens (a
//! guard that runs on failure, timeout and panic too).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use appstack_e2e::env::TestEnv;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Pending, Ready};
use appstack_e2e::{apply, appstack, cmd, pods};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use serde_json::{Value, json};

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

/// Removes the node's label and taint when dropped: on success, on an
/// error, and when the runner's timeout drops the scenario mid-way.
struct NodeGuard {
    env: TestEnv,
    node: String,
    key: String,
}

impl NodeGuard {
    fn kubectl(&self, args: &[&str]) -> bool {
        let mut cmd = std::process::Command::new("kubectl");
        cmd.current_dir(&self.env.repo)
            .env("PATH", &self.env.path)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        if let Some(k) = &self.env.kubeconfig {
            cmd.env("KUBECONFIG", k);
        }
        cmd.status().is_ok_and(|s| s.success())
    }
}

impl Drop for NodeGuard {
    fn drop(&mut self) {
        let taint = format!("{}:NoSchedule-", self.key);
        let label = format!("{}-", self.key);
        let untainted = self.kubectl(&["taint", "node", &self.node, &taint]);
        let unlabelled = self.kubectl(&["label", "node", &self.node, &label]);
        println!(
            "    [pod-placement] node {}: taint {} removed: {untainted}, label removed: {unlabelled}",
            self.node, self.key
        );
    }
}

fn stack(ctx: &Ctx, name: &str, key: &str, tolerate: bool) -> Value {
    let component = json!({
        "name": "app",
        "image": ctx.env.tools_image,
        "imagePullPolicy": ctx.env.pull_policy(),
        "command": ["sh", "-c", "exec sleep 3600"],
        "replicas": 1,
        "podSecurityContext": {"runAsUser": 999, "runAsGroup": 999},
        "terminationGracePeriodSeconds": 1,
        "nodeSelector": {key: "yes"},
    });
    let mut spec = json!({"components": [component]});
    if tolerate {
        // The toleration from the stack's defaults, the selector its own.
        spec["podDefaults"] = json!({"tolerations": [
            {"key": key, "operator": "Equal", "value": "yes", "effect": "NoSchedule"}
        ]});
    }
    json!({
        "apiVersion": "appstack.dev/v1alpha1", "kind": "AppStack",
        "metadata": {"name": name},
        "spec": spec,
    })
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let nodes = Api::<Node>::all(ctx.client.clone());
    let node = nodes
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .next()
        .context("no node")?
        .name_any();
    // Unique to this run: the namespace's name is.
    let key = format!("e2e.appstack.dev/{}", ctx.ns);
    let _guard = NodeGuard {
        env: (*ctx.env).clone(),
        node: node.clone(),
        key: key.clone(),
    };
    let run = |args: Vec<String>| {
        let env = ctx.env.clone();
        async move {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            cmd::run_ok(&env, "kubectl", &args, None, Duration::from_secs(30)).await
        }
    };
    run(vec![
        "label".into(),
        "node".into(),
        node.clone(),
        format!("{key}=yes"),
    ])
    .await?;
    run(vec![
        "taint".into(),
        "node".into(),
        node.clone(),
        format!("{key}=yes:NoSchedule"),
    ])
    .await?;
    ctx.step(format!(
        "node {node} labelled and tainted {key}=yes:NoSchedule"
    ));

    // Tolerates the taint: runs on the node.
    apply::object(&ctx.client, &ctx.ns, stack(ctx, "placed", &key, true)).await?;
    let took =
        appstack::wait_ready(&ctx.client, &ctx.ns, "placed", Duration::from_secs(120)).await?;
    let placed = pods::of_deployment(&ctx.client, &ctx.ns, "placed-app").await?;
    let pod = placed.first().context("no pod of placed-app")?;
    let spec = pod.spec.as_ref().context("pod without spec")?;
    if spec.node_name.as_deref() != Some(node.as_str()) {
        bail!(
            "expected placed-app on {node}, it is on {:?}",
            spec.node_name
        );
    }
    let tolerated = spec
        .tolerations
        .iter()
        .flatten()
        .any(|t| t.key.as_deref() == Some(key.as_str()));
    let spread = spec.topology_spread_constraints.iter().flatten().any(|t| {
        t.topology_key == "kubernetes.io/hostname" && t.when_unsatisfiable == "ScheduleAnyway"
    });
    if !tolerated || !spread || spec.automount_service_account_token != Some(false) {
        bail!(
            "pod {}: expected the toleration from podDefaults ({tolerated}), the default spread ({spread}) and no token mounted ({:?})",
            pod.name_any(),
            spec.automount_service_account_token
        );
    }
    ctx.step(format!(
        "stack placed Ready after {:.1}s; pod {} runs on {node} (nodeSelector, toleration from podDefaults, spread over nodes, no token)",
        took.as_secs_f64(),
        pod.name_any()
    ));

    // Without the toleration: Pending, with the scheduler's reason.
    apply::object(&ctx.client, &ctx.ns, stack(ctx, "stranded", &key, false)).await?;
    let api = ctx.pods();
    let selector = "app.kubernetes.io/instance=stranded";
    let reason = wait::until(
        "the stranded pod to be Unschedulable",
        Duration::from_secs(60),
        async || {
            let list: Vec<Pod> = api
                .list(&ListParams::default().labels(selector))
                .await?
                .items;
            let Some(p) = list.first() else {
                return Ok(Pending("no pod yet".into()));
            };
            let cond = p
                .status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .and_then(|cs| cs.iter().find(|c| c.type_ == "PodScheduled").cloned());
            Ok(match cond {
                Some(c) if c.status == "False" && c.reason.as_deref() == Some("Unschedulable") => {
                    Ready(c.message.unwrap_or_default())
                }
                other => Pending(format!("phase {}, PodScheduled {other:?}", pods::phase(p))),
            })
        },
    )
    .await?;
    // The scheduler says "untolerated taint(s)" without naming them (1.34).
    if !reason.contains("untolerated taint") {
        bail!(
            "expected the scheduler's reason to be the untolerated taint {key}, it says: {reason}"
        );
    }
    ctx.step(format!("stranded stays Pending: {reason}"));
    let obj = appstack::api(&ctx.client, &ctx.ns).get("stranded").await?;
    if appstack::condition(&obj, "Ready").is_some_and(|(s, _, _)| s == "True") {
        bail!("stack stranded is Ready with its only pod Pending");
    }
    ctx.step(format!(
        "stack stranded not Ready: {}",
        appstack::conditions(&obj)
    ));
    Ok(())
}
