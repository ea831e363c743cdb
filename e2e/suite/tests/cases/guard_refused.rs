//! A refused guard blocks what it guards. A ValidatingAdmissionPolicy refuses
//! every NetworkPolicy in this scenario's namespace (as a platform's policy,
//! or a value the API server rejects, would), then stack `guard` with Redis
//! and one component is applied:
//! - no StatefulSet, no store pod and no component Deployment is created;
//! - status says Ready=False (GuardRefused) naming the policy and the API
//!   server's words, and a Warning Event GuardRefused is recorded;
//! - once the admission policy is removed the stack converges by itself:
//!   each NetworkPolicy exists before the workload it guards.
//!
//! The admission policy and its binding are removed in every path.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Pending, Ready};
use appstack_e2e::{apply, appstack};
use k8s_openapi::api::admissionregistration::v1::{
    ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const STACK: &str = "guard";
const STORE: &str = "guard-redis";
const COMPONENT: &str = "guard-web";
const REFUSAL: &str = "e2e guard-refused: no NetworkPolicy in this namespace";

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

fn stack(ctx: &Ctx) -> Result<Value> {
    let shop = appstack::shop_manifest(ctx)?;
    Ok(json!({
        "apiVersion": "appstack.dev/v1alpha1",
        "kind": "AppStack",
        "metadata": {"name": STACK},
        "spec": {
            "components": [{
                "name": "web",
                "image": ctx.env.tools_image,
                "command": ["sh", "-c", "while true; do echo ok | nc -l -p 8080; done"],
                "port": 8080,
                "replicas": 1,
                "uses": ["redis"],
                "podSecurityContext": {"runAsUser": 65534, "runAsGroup": 65534}
            }],
            "redis": {"image": shop["spec"]["redis"]["image"]},
            "retainDataOnDelete": false
        }
    }))
}

/// The admission policy (cluster-scoped, so named for the namespace) and its
/// binding to this namespace only.
fn admission(name: &str, ns: &str) -> [Value; 2] {
    [
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {"resourceRules": [{
                    "apiGroups": ["networking.k8s.io"], "apiVersions": ["v1"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["networkpolicies"]
                }]},
                "validations": [{"expression": "false", "message": REFUSAL}]
            }
        }),
        json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": name},
            "spec": {
                "policyName": name,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": ns}
                }}
            }
        }),
    ]
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let name = format!("e2e-{}", ctx.ns);
    let result = refused_then_admitted(ctx, &name).await;
    let removed = remove_admission(&ctx.client, &name).await;
    match (result, removed) {
        (Err(e), _) => Err(e),
        (Ok(()), Err(e)) => Err(e.context("removing the admission policy")),
        (Ok(()), Ok(())) => Ok(()),
    }
}

async fn remove_admission(client: &Client, name: &str) -> Result<()> {
    let gone = |r: Result<_, kube::Error>| match r {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e),
    };
    gone(
        Api::<ValidatingAdmissionPolicyBinding>::all(client.clone())
            .delete(name, &DeleteParams::default())
            .await
            .map(|_| ()),
    )?;
    gone(
        Api::<ValidatingAdmissionPolicy>::all(client.clone())
            .delete(name, &DeleteParams::default())
            .await
            .map(|_| ()),
    )?;
    Ok(())
}

async fn refused_then_admitted(ctx: &mut Ctx, name: &str) -> Result<()> {
    for object in admission(name, &ctx.ns) {
        apply::object(&ctx.client, &ctx.ns, object).await?;
    }
    // The API server loads admission policies a moment after they are made:
    // a dry-run NetworkPolicy tells when this one is in force.
    let policies = Api::<NetworkPolicy>::namespaced(ctx.client.clone(), &ctx.ns);
    let probe: NetworkPolicy = serde_json::from_value(json!({
        "metadata": {"name": "e2e-dry-run"},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}
    }))?;
    let dry = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    wait::until(
        "the admission policy to refuse NetworkPolicies",
        Duration::from_secs(60),
        async || {
            Ok(match policies.create(&dry, &probe).await {
                Err(kube::Error::Api(s)) if s.message.contains(REFUSAL) => Ready(()),
                Err(e) => Pending(format!("{e}")),
                Ok(_) => Pending("a NetworkPolicy was admitted".into()),
            })
        },
    )
    .await?;
    ctx.step(format!(
        "ValidatingAdmissionPolicy {name} refuses NetworkPolicies in the namespace"
    ));

    apply::object(&ctx.client, &ctx.ns, stack(ctx)?).await?;
    let start = Instant::now();
    let message = appstack::wait_condition_mentioning(
        &ctx.client,
        &ctx.ns,
        STACK,
        ("Ready", "False", "GuardRefused"),
        STORE,
        Duration::from_secs(90),
    )
    .await?;
    ctx.step(format!(
        "Ready=False (GuardRefused) after {:.1}s: {message}",
        start.elapsed().as_secs_f64()
    ));
    for needle in [
        format!("NetworkPolicy {STORE}"),
        REFUSAL.to_string(),
        format!("StatefulSet {STORE} not created"),
    ] {
        if !message.contains(&needle) {
            bail!("the GuardRefused message does not say {needle:?}: {message}");
        }
    }
    // Held back, and still held back a while later (reconciles retry).
    for _ in 0..2 {
        nothing_runs(ctx).await?;
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    ctx.step(format!(
        "no StatefulSet {STORE}, no store pod, no Deployment {COMPONENT}"
    ));
    let events = appstack::events(&ctx.client, &ctx.ns, STACK).await?;
    let Some((_, _, event)) = events
        .iter()
        .find(|(t, reason, _)| t == "Warning" && reason == "GuardRefused")
    else {
        bail!("no Warning Event GuardRefused on AppStack {STACK}; events: {events:?}");
    };
    ctx.step(format!("Warning Event GuardRefused: {event}"));

    remove_admission(&ctx.client, name).await?;
    let lifted = Instant::now();
    ctx.step("admission policy removed");
    appstack::wait_ready(&ctx.client, &ctx.ns, STACK, Duration::from_secs(240)).await?;
    ctx.recovered("guard admitted to stack Ready", lifted.elapsed());
    for workload in [STORE, COMPONENT] {
        guarded_first(ctx, workload).await?;
    }
    Ok(())
}

/// Fails when the store's StatefulSet, any of its pods or the component's
/// Deployment exists.
async fn nothing_runs(ctx: &Ctx) -> Result<()> {
    let sts = Api::<StatefulSet>::namespaced(ctx.client.clone(), &ctx.ns);
    if let Some(s) = sts.get_opt(STORE).await? {
        bail!(
            "StatefulSet {STORE} exists although its NetworkPolicy was refused (created {:?})",
            s.metadata.creation_timestamp
        );
    }
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &ctx.ns)
        .list(&ListParams::default().labels(&format!(
            "app.kubernetes.io/instance={STACK},app.kubernetes.io/name=redis"
        )))
        .await?;
    if let Some(p) = pods.items.first() {
        bail!("store pod {} runs without its NetworkPolicy", p.name_any());
    }
    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), &ctx.ns);
    if deployments.get_opt(COMPONENT).await?.is_some() {
        bail!("Deployment {COMPONENT} exists although its NetworkPolicy was refused");
    }
    Ok(())
}

/// The NetworkPolicy named `workload` was created no later than the
/// workload it guards (creation times have a resolution of a second).
async fn guarded_first(ctx: &mut Ctx, workload: &str) -> Result<()> {
    let policy = Api::<NetworkPolicy>::namespaced(ctx.client.clone(), &ctx.ns)
        .get(workload)
        .await
        .with_context(|| format!("NetworkPolicy {workload}"))?;
    let created = if workload == STORE {
        Api::<StatefulSet>::namespaced(ctx.client.clone(), &ctx.ns)
            .get(workload)
            .await?
            .metadata
            .creation_timestamp
    } else {
        Api::<Deployment>::namespaced(ctx.client.clone(), &ctx.ns)
            .get(workload)
            .await?
            .metadata
            .creation_timestamp
    };
    let (Some(guard), Some(guarded)) = (policy.metadata.creation_timestamp, created) else {
        bail!("no creation times on NetworkPolicy and workload {workload}");
    };
    if guard.0 > guarded.0 {
        bail!(
            "{workload} was created at {} before its NetworkPolicy ({})",
            guarded.0,
            guard.0
        );
    }
    ctx.step(format!(
        "NetworkPolicy {workload} ({}) before its workload ({})",
        guard.0, guarded.0
    ));
    Ok(())
}
