//! Pods: helper pods from the tools image, readiness, and the pods behind a
//! Deployment or StatefulSet.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, ListParams, LogParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::runner::Ctx;
use crate::wait::{self, Pending, Ready};

/// redis-cli in a store pod: over TLS with the CA the pod mounts when the
/// stack has TLS (Redis then serves no plain port), plain otherwise.
pub const REDIS_CLI: &str = "redis-cli ${REDIS_TLS_CA_FILE:+--tls --cacert $REDIS_TLS_CA_FILE}";

pub fn is_ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

pub fn phase(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_else(|| "Pending".into())
}

/// "name (phase, ready|not ready)" for messages.
pub fn describe(pods: &[Pod]) -> String {
    if pods.is_empty() {
        return "no pods".into();
    }
    pods.iter()
        .map(|p| {
            let state = if p.metadata.deletion_timestamp.is_some() {
                "terminating".to_string()
            } else if is_ready(p) {
                "ready".to_string()
            } else {
                format!("{}, not ready", phase(p))
            };
            format!("{} ({state})", p.name_any())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn selector_string(selector: &LabelSelector) -> String {
    selector
        .match_labels
        .as_ref()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

pub async fn list(client: &Client, ns: &str, selector: &str) -> Result<Vec<Pod>> {
    let mut pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(selector))
        .await
        .with_context(|| format!("listing pods {selector} in {ns}"))?
        .items;
    pods.sort_by_key(|p| p.name_any());
    Ok(pods)
}

/// The pods a Deployment selects (terminating ones included).
pub async fn of_deployment(client: &Client, ns: &str, name: &str) -> Result<Vec<Pod>> {
    let d = Api::<Deployment>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .with_context(|| format!("getting Deployment {name}"))?;
    let selector = d
        .spec
        .map(|s| selector_string(&s.selector))
        .unwrap_or_default();
    list(client, ns, &selector).await
}

pub async fn of_stateful_set(client: &Client, ns: &str, name: &str) -> Result<Vec<Pod>> {
    let s = Api::<StatefulSet>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .with_context(|| format!("getting StatefulSet {name}"))?;
    let selector = s
        .spec
        .map(|s| selector_string(&s.selector))
        .unwrap_or_default();
    list(client, ns, &selector).await
}

/// Waits until the Deployment has rolled out: `want` (or spec.replicas)
/// ready, updated pods and no terminating or extra ones. Returns the pods.
pub async fn wait_deployment_settled(
    client: &Client,
    ns: &str,
    name: &str,
    want: Option<i32>,
    timeout: Duration,
) -> Result<Vec<Pod>> {
    let api = Api::<Deployment>::namespaced(client.clone(), ns);
    wait::until(
        &format!("Deployment {name} to settle with every replica ready"),
        timeout,
        async || {
            let d = api.get(name).await?;
            let spec_replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let want = want.unwrap_or(spec_replicas);
            let st = d.status.clone().unwrap_or_default();
            let pods = of_deployment(client, ns, name).await?;
            let ready = pods.iter().filter(|p| is_ready(p)).count() as i32;
            let settled = spec_replicas == want
                && st.observed_generation >= d.metadata.generation
                && st.updated_replicas == Some(want)
                && st.ready_replicas == Some(want)
                && st.replicas == Some(want)
                && pods.len() as i32 == want
                && ready == want;
            Ok(if settled {
                Ready(pods)
            } else {
                Pending(format!(
                    "spec.replicas {spec_replicas} (want {want}), status {:?} updated / {:?} ready / {:?} total; pods: {}",
                    st.updated_replicas,
                    st.ready_replicas,
                    st.replicas,
                    describe(&pods)
                ))
            })
        },
    )
    .await
}

/// A helper pod from the tools image that passes the "restricted" Pod
/// Security level (the suite's namespaces enforce it).
fn tools_pod(ctx: &Ctx, name: &str, command: Value, volumes: Value, mounts: Value) -> Result<Pod> {
    let pod = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "appstack-e2e", "app": name}},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "securityContext": {
                "runAsNonRoot": true, "runAsUser": 999, "runAsGroup": 999, "fsGroup": 999,
                "seccompProfile": {"type": "RuntimeDefault"}
            },
            "containers": [{
                "name": "tools",
                "image": ctx.env.tools_image,
                "imagePullPolicy": ctx.env.pull_policy(),
                "command": command,
                "volumeMounts": mounts,
                "securityContext": {
                    "allowPrivilegeEscalation": false,
                    "capabilities": {"drop": ["ALL"]}
                }
            }],
            "volumes": volumes
        }
    });
    serde_json::from_value(pod).context("building a helper pod")
}

/// Starts a long-running helper pod (sleep) and waits until it runs.
pub async fn run_sleeper(ctx: &Ctx, name: &str) -> Result<String> {
    run_daemon(ctx, name, "exec sleep 3600").await
}

/// Starts a long-running helper pod running `sh -c script`; waits until it runs.
pub async fn run_daemon(ctx: &Ctx, name: &str, script: &str) -> Result<String> {
    let pod = tools_pod(ctx, name, json!(["sh", "-c", script]), json!([]), json!([]))?;
    start(ctx.pods(), name, &pod).await
}

/// Makes namespace `ns` (labelled `labels`, besides the suite's own, so
/// that it is cleaned up with the run) and a sleeping helper pod `name` in
/// it: a client from outside the scenario's namespace.
pub async fn run_sleeper_in(ctx: &Ctx, ns: &str, labels: Value, name: &str) -> Result<String> {
    let mut labels = labels;
    labels["app.kubernetes.io/part-of"] = "appstack-e2e".into();
    Api::<Namespace>::all(ctx.client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns, "labels": labels}}))?,
        )
        .await
        .with_context(|| format!("creating namespace {ns}"))?;
    let pod = tools_pod(
        ctx,
        name,
        json!(["sh", "-c", "exec sleep 3600"]),
        json!([]),
        json!([]),
    )?;
    start(Api::namespaced(ctx.client.clone(), ns), name, &pod).await
}

async fn start(api: Api<Pod>, name: &str, pod: &Pod) -> Result<String> {
    api.create(&PostParams::default(), pod)
        .await
        .with_context(|| format!("creating helper pod {name}"))?;
    wait::until(
        &format!("helper pod {name} to run"),
        Duration::from_secs(90),
        async || {
            let p = api.get(name).await?;
            Ok(if is_ready(&p) {
                Ready(())
            } else {
                Pending(phase(&p))
            })
        },
    )
    .await?;
    Ok(name.to_string())
}

/// Runs `sh -c script` in a helper pod to completion; returns its log.
/// Fails when the pod fails, with the log in the message.
pub async fn run_script(
    ctx: &Ctx,
    name: &str,
    script: &str,
    volumes: Value,
    mounts: Value,
    timeout: Duration,
) -> Result<String> {
    let pod = tools_pod(ctx, name, json!(["sh", "-c", script]), volumes, mounts)?;
    let api = ctx.pods();
    api.create(&PostParams::default(), &pod)
        .await
        .with_context(|| format!("creating pod {name}"))?;
    let phase = wait::until(&format!("pod {name} to finish"), timeout, async || {
        let p = api.get(name).await?;
        let ph = phase(&p);
        Ok(match ph.as_str() {
            "Succeeded" | "Failed" => Ready(ph),
            _ => Pending(format!("phase {ph}")),
        })
    })
    .await?;
    let log = api
        .logs(name, &LogParams::default())
        .await
        .unwrap_or_else(|e| format!("(no log: {e})"));
    if phase != "Succeeded" {
        bail!(
            "pod {name} ran `{script}` and failed; its log:\n{}",
            crate::cmd::indent(&log)
        );
    }
    Ok(log)
}

/// `kubectl exec` of `sh -c script` in a container of a pod (the first when
/// `container` is None), given `timeout`: what it printed and whether it
/// succeeded.
pub async fn exec(
    ctx: &Ctx,
    ns: &str,
    pod: &str,
    container: Option<&str>,
    script: &str,
    timeout: Duration,
) -> Result<crate::cmd::Output> {
    let mut args = vec!["exec", "-n", ns, pod];
    if let Some(c) = container {
        args.extend(["-c", c]);
    }
    args.extend(["--", "sh", "-c", script]);
    crate::cmd::run(&ctx.env, "kubectl", &args, None, timeout).await
}
