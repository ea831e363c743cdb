//! A worker: a component without a port, beside the web component of the
//! shop. As a user sees it:
//! - the worker has no Service, and its NetworkPolicy admits nothing;
//! - the stack's status counts it (componentsReady 2/2, its ready replica);
//! - an order the web accepts (POST /orders pushes it onto a Redis list,
//!   over the same TLS and ACL user as the sessions) is taken off the list
//!   by the worker (BLMOVE) and shown as processed by a worker pod;
//! - admission refuses, naming the field: a PersistentVolumeClaim volume
//!   (saying where state belongs), a hostPath volume, a privileged sidecar
//!   and ingressFrom on a component without a port (server-side dry runs).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use appstack_e2e::appstack;
use appstack_e2e::cmd;
use appstack_e2e::http::Call;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Pending, Ready};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::Api;
use serde_json::{Value, json};

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

fn worker(web: &Value) -> Value {
    json!({
        "name": "worker",
        "image": web["image"],
        "args": ["worker"],
        "uses": ["redis"],
        "replicas": 1,
        "resources": {"requests": {"cpu": "20m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
    })
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let stack = appstack::deploy_shop(ctx, |m| {
        let web = &mut m["spec"]["components"][0];
        // One web replica is enough here.
        web["autoscaling"] = json!({"minReplicas": 1, "maxReplicas": 2});
        let worker = worker(web);
        if let Some(c) = m["spec"]["components"].as_array_mut() {
            c.push(worker);
        }
    })
    .await?;
    let worker_name = format!("{}-worker", stack.name);

    let services = Api::<Service>::namespaced(ctx.client.clone(), &ctx.ns);
    if let Some(s) = services.get_opt(&worker_name).await? {
        bail!(
            "expected no Service for the worker, found {:?}",
            s.metadata.name
        );
    }
    ctx.step(format!(
        "no Service {worker_name} (the web has {})",
        stack.web()
    ));
    let policy = Api::<NetworkPolicy>::namespaced(ctx.client.clone(), &ctx.ns)
        .get(&worker_name)
        .await
        .with_context(|| format!("getting NetworkPolicy {worker_name}"))?;
    // The API server leaves an empty list out: no rule at all.
    let spec = policy.spec.clone().unwrap_or_default();
    let isolated = spec
        .policy_types
        .as_ref()
        .is_some_and(|t| t.iter().any(|t| t == "Ingress"));
    if !isolated || spec.ingress.as_ref().is_some_and(|i| !i.is_empty()) {
        bail!(
            "expected the worker's NetworkPolicy to admit nothing (Ingress, no rule), it has types {:?}, ingress {:?}",
            spec.policy_types,
            spec.ingress
        );
    }
    ctx.step("the worker's NetworkPolicy admits no connection (Ingress, no rule)");

    let obj = appstack::api(&ctx.client, &ctx.ns).get(&stack.name).await?;
    let counted = obj.data["status"]["components"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == "worker"))
        .map(|c| c["readyReplicas"].as_i64().unwrap_or(0));
    let ready = obj.data["status"]["componentsReady"].as_str().unwrap_or("");
    if counted != Some(1) || ready != "2/2" {
        bail!(
            "expected the status to count the worker (componentsReady 2/2, worker readyReplicas 1), saw componentsReady {ready:?}, worker {counted:?}"
        );
    }
    ctx.step("status: componentsReady 2/2, the worker's replica ready");

    // An order through the web, processed by the worker.
    let body = json!({"item": "teapot"});
    let placed = stack.shop.send(Call::post("/orders", &body)).await?;
    if placed.status != 202 {
        bail!("POST /orders: expected 202, got {}", placed.summary());
    }
    let id = placed.json()?["id"]
        .as_str()
        .context("POST /orders: no id")?
        .to_string();
    ctx.step(format!(
        "the web accepted order {id} (202, queued in Redis)"
    ));
    let path = format!("/orders/{id}");
    let prefix = format!("{worker_name}-");
    let by = wait::until(
        &format!("order {id} to be processed by a worker pod"),
        Duration::from_secs(60),
        async || {
            let r = stack.shop.send(Call::get(&path)).await?;
            let v = r.json().unwrap_or_default();
            Ok(match (v["status"].as_str(), v["by"].as_str()) {
                (Some("processed"), Some(by)) if by.starts_with(&prefix) => Ready(by.to_string()),
                (Some("processed"), by) => {
                    return Err(anyhow::anyhow!(
                        "order {id} processed by {by:?}, not a pod of {worker_name}"
                    ));
                }
                _ => Pending(r.summary()),
            })
        },
    )
    .await?;
    ctx.step(format!("order {id} processed by worker pod {by}"));

    refusals(ctx).await
}

/// Server-side dry runs of broken stacks: each refused, naming the field.
async fn refusals(ctx: &mut Ctx) -> Result<()> {
    let base = || {
        json!({
            "apiVersion": "appstack.dev/v1alpha1", "kind": "AppStack",
            "metadata": {"name": "refused"},
            "spec": {"components": [{"name": "web", "image": "i", "port": 8080}], "redis": {}}
        })
    };
    type Break = fn(&mut Value);
    let cases: [(&str, Break, &[&str]); 4] = [
        (
            "a PersistentVolumeClaim volume",
            |m| {
                m["spec"]["components"][0]["volumes"] =
                    json!([{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]);
            },
            &[
                "spec.components[0].volumes[0].persistentVolumeClaim",
                "spec.redis / spec.postgres",
            ],
        ),
        (
            "a hostPath volume",
            |m| {
                m["spec"]["components"][0]["volumes"] =
                    json!([{"name": "root", "hostPath": {"path": "/"}}]);
            },
            &["spec.components[0].volumes[0].hostPath"],
        ),
        (
            "a privileged sidecar",
            |m| {
                m["spec"]["components"][0]["sidecars"] =
                    json!([{"name": "proxy", "securityContext": {"privileged": true}}]);
            },
            &["spec.components[0].sidecars[0].securityContext.privileged"],
        ),
        (
            "ingressFrom on a worker (no port)",
            |m| {
                let c = &mut m["spec"]["components"][0];
                if let Some(o) = c.as_object_mut() {
                    o.remove("port");
                }
                c["ingressFrom"] = json!([{"namespaceSelector": {}}]);
            },
            &["spec.components[0].ingressFrom"],
        ),
    ];
    let ok = dry_run(ctx, &base()).await?;
    if !ok.success {
        bail!("the unbroken stack was refused: {}", ok.text());
    }
    for (case, breaks, fields) in cases {
        let mut m = base();
        breaks(&mut m);
        let out = dry_run(ctx, &m).await?;
        let message = out.text().replace('\n', " ");
        if out.success {
            bail!("{case}: accepted by the API server");
        }
        if let Some(missing) = fields.iter().find(|f| !message.contains(**f)) {
            bail!("{case}: refused, but the message lacks {missing:?}: {message}");
        }
        ctx.step(format!("refused at admission, {case}: names {}", fields[0]));
    }
    Ok(())
}

async fn dry_run(ctx: &Ctx, manifest: &Value) -> Result<cmd::Output> {
    let yaml = serde_yaml::to_string(manifest)?;
    cmd::run(
        &ctx.env,
        "kubectl",
        &["apply", "--dry-run=server", "-n", &ctx.ns, "-f", "-"],
        Some(&yaml),
        Duration::from_secs(30),
    )
    .await
}
