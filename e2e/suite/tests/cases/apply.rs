//! deploy/examples/shop.yaml applied in a fresh namespace: every child exists
//! with the expected spec, the AppStack is Ready for its generation, and a
//! second reconcile writes nothing.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use appstack_e2e::appstack::{self, Stack};
use appstack_e2e::children;
use appstack_e2e::operator;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Pending, Ready};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, PodTemplateSpec, Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let stack = appstack::deploy_shop(ctx, |_| {}).await?;
    let obj = appstack::api(&ctx.client, &ctx.ns).get(&stack.name).await?;
    ctx.step(format!(
        "status: observedGeneration {:?} = generation {:?}; {}",
        appstack::observed_generation(&obj),
        obj.metadata.generation,
        appstack::conditions(&obj)
    ));

    let problems = check_children(ctx, &stack, &appstack::uid(&obj)).await?;
    if !problems.is_empty() {
        bail!(
            "{} problem(s) with the children of AppStack {}:\n      {}",
            problems.len(),
            stack.name,
            problems.join("\n      ")
        );
    }
    ctx.step("every child exists with the expected spec, labels and owner");

    second_reconcile_writes_nothing(ctx, &stack).await
}

/// Touches the AppStack (an annotation: no spec change), waits until the
/// leader has reconciled again, and checks that nothing was written.
async fn second_reconcile_writes_nothing(ctx: &mut Ctx, stack: &Stack) -> Result<()> {
    let http = ctx.http().await?;
    let leader = operator::wait_leader(&ctx.client, &[], Duration::from_secs(30)).await?;
    // The status reports ready replicas: let it catch up with the settled
    // Deployment, so that nothing the operator watches is still moving.
    let aps = appstack::api(&ctx.client, &ctx.ns);
    wait::until(
        "the AppStack status to show every web replica ready",
        Duration::from_secs(30),
        async || {
            let obj = aps.get(&stack.name).await?;
            let c = &obj.data["status"]["components"][0];
            Ok(
                if c["readyReplicas"].as_i64().is_some()
                    && c["readyReplicas"] == c["desiredReplicas"]
                {
                    Ready(())
                } else {
                    Pending(format!("status.components[0]: {c}"))
                },
            )
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = children::snapshot(&ctx.client, &ctx.ns, &stack.name).await?;
    let count = operator::reconciles(&http, &leader).await?;
    appstack::annotate(
        &ctx.client,
        &ctx.ns,
        &stack.name,
        "e2e.appstack.dev/touched",
        "1",
    )
    .await?;
    let touched = appstack::api(&ctx.client, &ctx.ns).get(&stack.name).await?;
    ctx.step(format!(
        "annotated the AppStack; {} children recorded; leader {} had run {count} reconciles",
        before.len(),
        leader.name_any()
    ));
    let after_count = wait::until(
        &format!(
            "the leader {} to reconcile again after the annotation",
            leader.name_any()
        ),
        Duration::from_secs(30),
        async || {
            let n = operator::reconciles(&http, &leader).await?;
            Ok(if n > count {
                Ready(n)
            } else {
                Pending(format!("appstack_reconciles_total {n}"))
            })
        },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = children::snapshot(&ctx.client, &ctx.ns, &stack.name).await?;
    children::ensure_unchanged(&before, &after, "on a reconcile without spec changes")?;
    let status_only = before.other_writes(&after);
    let again = appstack::api(&ctx.client, &ctx.ns).get(&stack.name).await?;
    if again.resource_version() != touched.resource_version() {
        bail!(
            "expected the reconcile to leave the AppStack alone (its status unchanged), but its resourceVersion went {:?} -> {:?}:\n      status before: {}\n      status after:  {}",
            touched.resource_version(),
            again.resource_version(),
            touched.data["status"],
            again.data["status"]
        );
    }
    ctx.step(format!(
        "reconciled again (reconciles {count} -> {after_count}): no child and no status written{}",
        if status_only.is_empty() {
            String::new()
        } else {
            format!(" (written by others meanwhile: {})", status_only.join(", "))
        }
    ));
    Ok(())
}

async fn get<K>(client: &Client, ns: &str, name: &str, problems: &mut Vec<String>) -> Option<K>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    match Api::<K>::namespaced(client.clone(), ns).get_opt(name).await {
        Ok(Some(obj)) => Some(obj),
        Ok(None) => {
            problems.push(format!("{}/{name} does not exist", K::kind(&())));
            None
        }
        Err(e) => {
            problems.push(format!("{}/{name}: {e}", K::kind(&())));
            None
        }
    }
}

/// Owner reference to the AppStack (controller) and the five standard labels.
fn check_meta(
    key: &str,
    meta: &ObjectMeta,
    stack: &str,
    stack_uid: &str,
    problems: &mut Vec<String>,
) {
    check_meta_owner(key, meta, stack, stack_uid, true, problems)
}

/// `owner_required` false: no owner reference is fine (a Secret kept with
/// the data it unlocks), but any owner must be this AppStack.
fn check_meta_owner(
    key: &str,
    meta: &ObjectMeta,
    stack: &str,
    stack_uid: &str,
    owner_required: bool,
    problems: &mut Vec<String>,
) {
    let owners = meta.owner_references.clone().unwrap_or_default();
    let owned = owners.iter().any(|o| {
        o.kind == "AppStack" && o.name == stack && o.uid == stack_uid && o.controller == Some(true)
    });
    if !owned && (owner_required || !owners.is_empty()) {
        problems.push(format!(
            "{key}: expected a controller ownerReference to AppStack {stack}, saw {:?}",
            meta.owner_references
        ));
    }
    let labels = meta.labels.clone().unwrap_or_default();
    let want = [
        ("app.kubernetes.io/instance", Some(stack)),
        ("app.kubernetes.io/part-of", Some("appstack")),
        ("app.kubernetes.io/managed-by", Some("appstack-operator")),
        ("app.kubernetes.io/name", None),
        ("app.kubernetes.io/component", None),
    ];
    for (label, value) in want {
        match (labels.get(label), value) {
            (None, _) => problems.push(format!("{key}: label {label} missing")),
            (Some(v), Some(want)) if v != want => {
                problems.push(format!("{key}: label {label}={v}, expected {want}"))
            }
            (Some(v), None) if v.is_empty() => {
                problems.push(format!("{key}: label {label} is empty"))
            }
            _ => {}
        }
    }
}

/// No literal password in a pod template; password variables by secretKeyRef.
fn check_no_literal_secrets(
    key: &str,
    template: &PodTemplateSpec,
    passwords: &[String],
    problems: &mut Vec<String>,
) {
    let text = serde_json::to_string(template).unwrap_or_default();
    for p in passwords.iter().filter(|p| !p.is_empty()) {
        if text.contains(p.as_str()) {
            problems.push(format!(
                "{key}: a store password appears literally in the pod template"
            ));
        }
    }
    let containers = template.spec.iter().flat_map(|s| {
        s.containers
            .iter()
            .chain(s.init_containers.iter().flatten())
    });
    for c in containers {
        for e in c.env.iter().flatten() {
            if e.name.contains("PASSWORD") {
                let by_ref = e
                    .value_from
                    .as_ref()
                    .and_then(|v| v.secret_key_ref.as_ref())
                    .is_some();
                if !by_ref || e.value.is_some() {
                    problems.push(format!(
                        "{key}: env {} of container {} is not a secretKeyRef",
                        e.name, c.name
                    ));
                }
            }
        }
    }
}

fn env_names(template: &PodTemplateSpec) -> Vec<String> {
    template
        .spec
        .iter()
        .flat_map(|s| s.containers.iter())
        .flat_map(|c| c.env.iter().flatten().map(|e| e.name.clone()))
        .collect()
}

async fn check_children(ctx: &Ctx, stack: &Stack, uid: &str) -> Result<Vec<String>> {
    let (c, ns, s) = (&ctx.client, ctx.ns.as_str(), stack.name.as_str());
    let mut p = Vec::new();
    let component = &stack.manifest["spec"]["components"][0];
    let web = stack.web();

    // Secrets first: their passwords must not appear anywhere else.
    let secrets = children::secret_data(c, ns, s).await?;
    let mut passwords = Vec::new();
    for (name, keys) in [
        (stack.redis(), &["password", "host", "port", "url"][..]),
        (
            stack.postgres(),
            &["username", "password", "database", "host", "port", "url"][..],
        ),
    ] {
        if let Some(secret) = get::<Secret>(c, ns, &name, &mut p).await {
            // With retainDataOnDelete the credentials may outlive the stack
            // together with the volumes they unlock.
            let retain = stack.manifest["spec"]["retainDataOnDelete"].as_bool() != Some(false);
            check_meta_owner(
                &format!("Secret/{name}"),
                &secret.metadata,
                s,
                uid,
                !retain,
                &mut p,
            );
        }
        match secrets.get(&name) {
            Some(data) => {
                for k in keys {
                    if data.get(*k).is_none_or(|v| v.is_empty()) {
                        p.push(format!("Secret/{name}: key {k} missing or empty"));
                    }
                }
                passwords.extend(data.get("password").cloned());
            }
            None => p.push(format!("Secret/{name} not found by the children's labels")),
        }
    }

    // web: Deployment, Service, HPA, PDB.
    if let Some(d) = get::<Deployment>(c, ns, &web, &mut p).await {
        let key = format!("Deployment/{web}");
        check_meta(&key, &d.metadata, s, uid, &mut p);
        let spec = d.spec.clone().unwrap_or_default();
        let container = spec
            .template
            .spec
            .as_ref()
            .and_then(|ps| ps.containers.first().cloned());
        match container {
            Some(k) => {
                if k.image.as_deref() != component["image"].as_str() {
                    p.push(format!(
                        "{key}: image {:?}, expected {}",
                        k.image, component["image"]
                    ));
                }
                let port = k.ports.iter().flatten().any(|cp| cp.container_port == 8080);
                if !port {
                    p.push(format!("{key}: no containerPort 8080"));
                }
                if k.readiness_probe.is_none() {
                    p.push(format!("{key}: no readinessProbe"));
                }
                let cpu = k
                    .resources
                    .as_ref()
                    .and_then(|r| r.requests.as_ref())
                    .and_then(|r| r.get("cpu"));
                if cpu.map(|q| q.0.as_str()) != Some("100m") {
                    p.push(format!("{key}: cpu request {cpu:?}, expected 100m"));
                }
            }
            None => p.push(format!("{key}: no container")),
        }
        let env = env_names(&spec.template);
        for want in ["REDIS_URL", "DATABASE_URL"] {
            if !env.iter().any(|e| e == want) {
                p.push(format!("{key}: env {want} missing (has {env:?})"));
            }
        }
        check_no_literal_secrets(&key, &spec.template, &passwords, &mut p);
        let pod_labels = spec
            .template
            .metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        if let Some(svc) = get::<Service>(c, ns, &web, &mut p).await {
            let key = format!("Service/{web}");
            check_meta(&key, &svc.metadata, s, uid, &mut p);
            let sspec = svc.spec.unwrap_or_default();
            let selects = sspec.selector.as_ref().is_some_and(|sel| {
                !sel.is_empty() && sel.iter().all(|(k, v)| pod_labels.get(k) == Some(v))
            });
            if !selects {
                p.push(format!(
                    "{key}: selector {:?} does not select the web pods",
                    sspec.selector
                ));
            }
            if !sspec.ports.iter().flatten().any(|sp| sp.port == 8080) {
                p.push(format!("{key}: no port 8080"));
            }
        }
        if let Some(pdb) = get::<PodDisruptionBudget>(c, ns, &web, &mut p).await {
            let key = format!("PodDisruptionBudget/{web}");
            check_meta(&key, &pdb.metadata, s, uid, &mut p);
            let pspec = pdb.spec.unwrap_or_default();
            if pspec.min_available.is_none() && pspec.max_unavailable.is_none() {
                p.push(format!("{key}: neither minAvailable nor maxUnavailable"));
            }
            let matches = pspec
                .selector
                .and_then(|sel| sel.match_labels)
                .is_some_and(|m| m.iter().all(|(k, v)| pod_labels.get(k) == Some(v)));
            if !matches {
                p.push(format!("{key}: selector does not match the web pods"));
            }
        }
    }
    if let Some(hpa) = get::<HorizontalPodAutoscaler>(c, ns, &web, &mut p).await {
        let key = format!("HorizontalPodAutoscaler/{web}");
        check_meta(&key, &hpa.metadata, s, uid, &mut p);
        let h = hpa.spec.unwrap_or_default();
        let auto = &component["autoscaling"];
        if h.min_replicas.map(i64::from) != auto["minReplicas"].as_i64()
            || Some(h.max_replicas as i64) != auto["maxReplicas"].as_i64()
        {
            p.push(format!(
                "{key}: replicas {:?}..{}, expected {}..{}",
                h.min_replicas, h.max_replicas, auto["minReplicas"], auto["maxReplicas"]
            ));
        }
        if h.scale_target_ref.kind != "Deployment" || h.scale_target_ref.name != web {
            p.push(format!(
                "{key}: targets {} {}",
                h.scale_target_ref.kind, h.scale_target_ref.name
            ));
        }
        let cpu = h.metrics.iter().flatten().find_map(|m| {
            m.resource
                .as_ref()
                .filter(|r| r.name == "cpu")
                .and_then(|r| r.target.average_utilization)
        });
        if cpu.map(i64::from) != auto["targetCPUUtilizationPercentage"].as_i64() {
            p.push(format!(
                "{key}: CPU target {cpu:?}, expected {}",
                auto["targetCPUUtilizationPercentage"]
            ));
        }
    }

    // Stores: StatefulSet, Service, headless Service.
    for (name, port, image) in [
        (
            stack.redis(),
            6379,
            &stack.manifest["spec"]["redis"]["image"],
        ),
        (
            stack.postgres(),
            5432,
            &stack.manifest["spec"]["postgres"]["image"],
        ),
    ] {
        let headless = format!("{name}-headless");
        if let Some(sts) = get::<StatefulSet>(c, ns, &name, &mut p).await {
            let key = format!("StatefulSet/{name}");
            check_meta(&key, &sts.metadata, s, uid, &mut p);
            let spec = sts.spec.unwrap_or_default();
            if spec.service_name.as_deref() != Some(headless.as_str()) {
                p.push(format!(
                    "{key}: serviceName {:?}, expected {headless}",
                    spec.service_name
                ));
            }
            let image_seen = spec
                .template
                .spec
                .as_ref()
                .and_then(|ps| ps.containers.first())
                .and_then(|k| k.image.clone());
            if image_seen.as_deref() != image.as_str() {
                p.push(format!("{key}: image {image_seen:?}, expected {image}"));
            }
            let retention = spec
                .persistent_volume_claim_retention_policy
                .unwrap_or_default();
            if retention.when_deleted.as_deref() != Some("Retain") {
                p.push(format!(
                    "{key}: PVC retention whenDeleted {:?}, expected Retain",
                    retention.when_deleted
                ));
            }
            let size = spec.volume_claim_templates.iter().flatten().find_map(|t| {
                t.spec
                    .as_ref()?
                    .resources
                    .as_ref()?
                    .requests
                    .as_ref()?
                    .get("storage")
                    .cloned()
            });
            if size.as_ref().map(|q| q.0.as_str()) != Some("1Gi") {
                p.push(format!(
                    "{key}: volumeClaimTemplate storage {size:?}, expected 1Gi"
                ));
            }
            check_no_literal_secrets(&key, &spec.template, &passwords, &mut p);
        }
        for (svc_name, want_headless) in [(name.clone(), false), (headless, true)] {
            if let Some(svc) = get::<Service>(c, ns, &svc_name, &mut p).await {
                let key = format!("Service/{svc_name}");
                check_meta(&key, &svc.metadata, s, uid, &mut p);
                let sspec = svc.spec.unwrap_or_default();
                let is_headless = sspec.cluster_ip.as_deref() == Some("None");
                if is_headless != want_headless {
                    p.push(format!(
                        "{key}: clusterIP {:?} (headless expected: {want_headless})",
                        sspec.cluster_ip
                    ));
                }
                if !sspec.ports.iter().flatten().any(|sp| sp.port == port) {
                    p.push(format!("{key}: no port {port}"));
                }
            }
        }
    }

    // The stores' volumes are bound.
    let pvcs = Api::<PersistentVolumeClaim>::namespaced(c.clone(), ns)
        .list(&ListParams::default())
        .await
        .context("listing PVCs")?;
    for store in [stack.redis(), stack.postgres()] {
        let bound = pvcs.iter().any(|v| {
            v.name_any().ends_with(&format!("{store}-0"))
                && v.status.as_ref().and_then(|st| st.phase.as_deref()) == Some("Bound")
        });
        if !bound {
            p.push(format!(
                "no Bound PVC for {store}-0 (PVCs: {})",
                pvcs.iter()
                    .map(|v| v.name_any())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    Ok(p)
}
