//! Memory that does not depend on what tenants write. Anyone who may create
//! objects in a namespace can label them `app.kubernetes.io/managed-by:
//! appstack-operator` (so put them in the operator's watches), give them
//! about 1 MB of labels, copy the labels of the operator's backup pods, or
//! annotate an AppStack up to the API server's 256 KiB. All at once, in the
//! namespace of a running stack whose Redis has taken a backup:
//!   - 100 Secrets of 650 KB of data;
//!   - 60 Secrets with about 1 MB of labels besides managed-by;
//!   - 20 Pods (Pending: their nodeSelector matches no node) carrying the
//!     labels of the stack's backup pod, its Job's uid included, and about
//!     1 MB more;
//!   - 30 AppStacks (one component, no replicas) with 240 KiB of annotations.
//!
//! The 30 AppStacks are ordinary stacks besides their annotations, so they
//! add what any 30 stacks add (their children in the caches, their
//! reconciles). That is small and is counted against the bound, the same
//! count as before: on a private API server 30 such stacks grew the leader
//! by 0.7 and 1.5 MiB with their annotations (two runs) and 1.4 MiB without,
//! so the annotations cost nothing that can be told apart, and a leak
//! through them (a stack cached whole is 245 KiB, 7 MiB for 30) would show.
//!
//! The leader's resident memory grows by at most 10 MiB, it does not
//! restart or lose its lease, the 30 stacks are reconciled, and a change to
//! the first stack still reaches its Deployment, while its backup status
//! keeps its own backup and takes nothing from the planted pods. RSS is read
//! from the node's /proc, so this runs only on the local cluster
//! (e2e/hostile-secrets.sh measures a locally run binary).

use std::collections::BTreeMap;
use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use appstack_e2e::operator::{self, NAMESPACE};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::{apply, appstack, backups, node};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::task::JoinSet;

/// Secrets of 650 KB of data.
const COUNT: usize = 100;
/// Raw bytes per Secret: 650 KiB once base64-encoded, as stored and watched
/// (the same size as e2e/hostile-secrets.sh).
const RAW_BYTES: usize = 650 * 1024 * 3 / 4;
/// Secrets, and Pods, with about LABEL_BYTES of labels each.
const LABELLED_SECRETS: usize = 60;
const PODS: usize = 20;
/// About 1 MB of labels, as JSON: with the managedFields the API server adds
/// (one entry per key), the object stays under its 1.5 MiB limit.
const LABEL_BYTES: usize = 1_000_000;
/// AppStacks annotated up to the API server's limit (256 KiB in all):
/// 200 values of 1200 bytes plus their keys.
const ANNOTATED_STACKS: usize = 30;
const ANNOTATIONS: usize = 200;
const ANNOTATION_BYTES: usize = 1200;
const CONCURRENT_CREATES: usize = 8;
/// Marks what this scenario made, for deleting it (the stack's own Secrets
/// carry managed-by too).
const MARK: &str = "e2e.appstack.dev/hostile";
/// How much the leader's RSS may grow, in KiB: the bound.
const MAX_GROWTH_KIB: u64 = 10 * 1024;
const STACK: &str = "steady";
const BACKUP_JOB: &str = "steady-backup-1";

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    if !ctx.env.is_local() {
        ctx.note("skipped: the operator's RSS is read from the node's /proc (CLUSTER=local)");
        return Ok(());
    }
    // A stack with a backed-up store first: the leader has then run its
    // reconcile, credential and backup-lookup paths (as any operator in use
    // has), so the baseline is not a cold process that would grow on its
    // first work anyway; and its own Secrets and backup pod sit among the
    // hostile ones.
    let redis_image = appstack::shop_manifest(ctx)?["spec"]["redis"]["image"].clone();
    let image = ctx.env.tools_image.clone();
    apply::object(&ctx.client, &ctx.ns, stack(&image, &redis_image, "1")).await?;
    let took = appstack::wait_ready(&ctx.client, &ctx.ns, STACK, Duration::from_secs(180)).await?;
    ctx.step(format!(
        "AppStack {STACK} (web + Redis, backed up) Ready in {:.1}s",
        took.as_secs_f64()
    ));
    backups::take(ctx, STACK, "redis", BACKUP_JOB).await?;
    let backup = backups::wait_status(ctx, STACK, "redis", None, Duration::from_secs(60)).await?;
    let label = backup["lastSuccessful"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    ctx.step(format!("status.redis.backup shows backup {label}"));
    let copied = backup_pod_labels(&ctx.client, &ctx.ns).await?;

    let pods = Api::<Pod>::namespaced(ctx.client.clone(), NAMESPACE);
    let Some(leader) = operator::holder(&ctx.client).await? else {
        bail!("the operator's Lease names no holder");
    };
    let pod = pods.get(&leader).await?;
    let id = node::container_id(&pod, Some("operator"))?;
    let restarts = node::restart_count(&pod);
    ctx.step(format!("leader {leader}"));

    let baseline = steady_rss(&id).await?;
    ctx.step(format!("baseline RSS {} (steady)", mib(baseline)));

    let start = Instant::now();
    create_secrets(&ctx.client, &ctx.ns).await?;
    ctx.step(format!(
        "created {COUNT} Secrets of 650 KB labelled managed-by=appstack-operator in {:.1}s",
        start.elapsed().as_secs_f64()
    ));
    let start = Instant::now();
    create_labelled(&ctx.client, &ctx.ns, &copied, &image).await?;
    ctx.step(format!(
        "created {LABELLED_SECRETS} Secrets labelled managed-by=appstack-operator and {PODS} Pending Pods \
         with the labels of {STACK}'s backup pod, each with about {} KB more labels, in {:.1}s",
        LABEL_BYTES / 1000,
        start.elapsed().as_secs_f64()
    ));
    let start = Instant::now();
    create_annotated(&ctx.client, &ctx.ns, &image).await?;
    ctx.step(format!(
        "created {ANNOTATED_STACKS} AppStacks with {} KiB of annotations each in {:.1}s",
        ANNOTATIONS * ANNOTATION_BYTES / 1024,
        start.elapsed().as_secs_f64()
    ));
    // Every annotated stack reconciled: the leader has read each of them
    // (and they cost what any stack costs, well within the bound).
    let start = Instant::now();
    for i in 0..ANNOTATED_STACKS {
        let left = Duration::from_secs(180).saturating_sub(start.elapsed());
        appstack::wait_ready(
            &ctx.client,
            &ctx.ns,
            &annotated(i),
            left.max(Duration::from_secs(5)),
        )
        .await?;
    }
    ctx.step(format!(
        "the {ANNOTATED_STACKS} annotated AppStacks Ready within {:.1}s",
        start.elapsed().as_secs_f64()
    ));
    // Nothing the operator exposes tells when its watches have delivered the
    // Secrets; they arrive within seconds of creation, so a bounded wait.
    tokio::time::sleep(Duration::from_secs(15)).await;

    // A restarted or replaced leader would make the comparison meaningless,
    // and a crash is what this guards against.
    let pod = pods.get(&leader).await?;
    let now = node::restart_count(&pod);
    if now != restarts {
        bail!(
            "the leader {leader} restarted ({restarts} -> {now} restarts) among the hostile objects"
        );
    }
    let holder = operator::holder(&ctx.client).await?;
    if holder.as_deref() != Some(leader.as_str()) {
        bail!("the leader changed from {leader} to {holder:?} among the hostile objects");
    }

    // The operator still does its job among them: a change to the stack is
    // reconciled (Ready for the new generation, and in its Deployment). Its
    // reconcile looks up the backup pods, with the planted ones in the way.
    apply::object(&ctx.client, &ctx.ns, stack(&image, &redis_image, "2")).await?;
    let took = appstack::wait_ready(&ctx.client, &ctx.ns, STACK, Duration::from_secs(60)).await?;
    let web = Api::<Deployment>::namespaced(ctx.client.clone(), &ctx.ns)
        .get(&format!("{STACK}-web"))
        .await?;
    let revision = web
        .spec
        .and_then(|s| s.template.spec)
        .and_then(|p| p.containers.into_iter().next())
        .and_then(|c| c.env)
        .into_iter()
        .flatten()
        .find(|e| e.name == "REVISION")
        .and_then(|e| e.value);
    if revision.as_deref() != Some("2") {
        bail!("{STACK}-web has REVISION={revision:?} after the stack was changed to 2");
    }
    ctx.step(format!(
        "a change to AppStack {STACK} reconciled (Ready, in {STACK}-web) {:.1}s after it was applied",
        took.as_secs_f64()
    ));
    let after = backups::status(ctx, STACK, "redis").await?;
    // (A scheduled backup may have run meanwhile; a planted pod is never
    // taken for a backup of the stack's, failed or not.)
    if after["lastSuccessful"].as_str().is_none() || !after["lastFailure"].is_null() {
        bail!("status.redis.backup changed among the planted pods: {backup} -> {after}");
    }

    let with = rss_max(&id, 3).await?;
    let growth = with.saturating_sub(baseline);
    ctx.note(format!(
        "leader RSS {} without, {} with the hostile objects: +{} (bound +{})",
        mib(baseline),
        mib(with),
        mib(growth),
        mib(MAX_GROWTH_KIB)
    ));
    if growth > MAX_GROWTH_KIB {
        bail!(
            "the leader's RSS grew from {} to {} (+{}) among {COUNT} Secrets of 650 KB, {LABELLED_SECRETS} Secrets \
             and {PODS} Pods with 1 MB of labels, and {ANNOTATED_STACKS} annotated AppStacks; expected at most +{}",
            mib(baseline),
            mib(with),
            mib(growth),
            mib(MAX_GROWTH_KIB)
        );
    }

    clean_up(ctx).await
}

/// Deletes what this scenario planted (the namespace goes later; this frees
/// the API server and the node at once).
async fn clean_up(ctx: &Ctx) -> Result<()> {
    let marked = ListParams::default().labels(&format!("{MARK}=true"));
    Api::<Secret>::namespaced(ctx.client.clone(), &ctx.ns)
        .delete_collection(&DeleteParams::default(), &marked)
        .await
        .context("deleting the hostile Secrets")?;
    Api::<Pod>::namespaced(ctx.client.clone(), &ctx.ns)
        .delete_collection(&DeleteParams::default(), &marked)
        .await
        .context("deleting the hostile Pods")?;
    appstack::api(&ctx.client, &ctx.ns)
        .delete_collection(&DeleteParams::default(), &marked)
        .await
        .context("deleting the annotated AppStacks")?;
    ctx.step("deleted the hostile Secrets, Pods and AppStacks");
    Ok(())
}

/// Web with no replicas (nothing to wait for but the operator) and a Redis
/// backed up (to a small volume, daily: the scenario takes its one backup);
/// `revision` is an env value, so changing it is a spec change to reconcile.
fn stack(image: &str, redis_image: &Value, revision: &str) -> Value {
    json!({
        "apiVersion": "appstack.dev/v1alpha1",
        "kind": "AppStack",
        "metadata": {"name": STACK},
        "spec": {
            "components": [{
                "name": "web", "image": image, "port": 8080, "replicas": 0,
                "env": [{"name": "REVISION", "value": revision}]
            }],
            "redis": {
                "image": redis_image,
                "backup": {"schedule": "0 3 * * *", "target": {"volume": {"size": "1Gi"}}}
            },
            "retainDataOnDelete": false
        }
    })
}

fn annotated(i: usize) -> String {
    format!("annotated-{i:02}")
}

/// The labels of the backup Job's pod, as a tenant reads and copies them:
/// the operator's own and those the Job controller adds (the Job's uid).
async fn backup_pod_labels(client: &Client, ns: &str) -> Result<BTreeMap<String, String>> {
    let pods = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={BACKUP_JOB}")))
        .await
        .context("listing the backup Job's pods")?;
    let labels = pods
        .items
        .first()
        .map(|p| p.labels().clone())
        .with_context(|| format!("no pod of Job {BACKUP_JOB}"))?;
    if !labels.contains_key("batch.kubernetes.io/controller-uid") {
        bail!("the backup pod carries no batch.kubernetes.io/controller-uid label: {labels:?}");
    }
    Ok(labels)
}

/// About LABEL_BYTES of labels: short keys with a prefix, values of 63
/// characters (the longest a label value may be).
fn heavy_labels() -> BTreeMap<String, String> {
    let per_label = "\"x.io/l00000\":\"\",".len() + 63;
    (0..LABEL_BYTES / per_label)
        .map(|i| (format!("x.io/l{i:05}"), format!("{i:05}{}", "v".repeat(58))))
        .collect()
}

/// The Secrets and Pods with heavy labels, a few at a time. The Pods carry
/// `copied` (the backup pod's labels) and a nodeSelector no node has, so
/// they stay Pending and cost the node nothing.
async fn create_labelled(
    client: &Client,
    ns: &str,
    copied: &BTreeMap<String, String>,
    image: &str,
) -> Result<()> {
    let mut labels = heavy_labels();
    labels.insert(MARK.to_string(), "true".to_string());
    let mut secret_labels = labels.clone();
    secret_labels.insert(
        "app.kubernetes.io/managed-by".to_string(),
        "appstack-operator".to_string(),
    );
    let mut pod_labels = labels;
    pod_labels.extend(copied.clone());
    let secret = Arc::new(secret_labels);
    let pod = Arc::new(pod_labels);
    let image = image.to_string();
    let mut workers = JoinSet::new();
    for worker in 0..CONCURRENT_CREATES {
        let secrets = Api::<Secret>::namespaced(client.clone(), ns);
        let pods = Api::<Pod>::namespaced(client.clone(), ns);
        let (secret, pod, image) = (secret.clone(), pod.clone(), image.clone());
        workers.spawn(async move {
            for i in (worker..LABELLED_SECRETS).step_by(CONCURRENT_CREATES) {
                let name = format!("labelled-{i:03}");
                let object = Secret {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        labels: Some((*secret).clone()),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                secrets
                    .create(&PostParams::default(), &object)
                    .await
                    .with_context(|| format!("creating Secret {name}"))?;
            }
            for i in (worker..PODS).step_by(CONCURRENT_CREATES) {
                let name = format!("planted-{i:03}");
                pods.create(&PostParams::default(), &pending_pod(&name, &pod, &image)?)
                    .await
                    .with_context(|| format!("creating Pod {name}"))?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = workers.join_next().await {
        done.context("a creating task panicked")??;
    }
    Ok(())
}

/// A pod that passes the restricted Pod Security profile and is never
/// scheduled.
fn pending_pod(name: &str, labels: &BTreeMap<String, String>, image: &str) -> Result<Pod> {
    let mut pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "nodeSelector": {"e2e.appstack.dev/no-such-node": "true"},
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532,
                                "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "sleep", "image": image, "command": ["sleep", "3600"],
                "securityContext": {"allowPrivilegeEscalation": false,
                                    "capabilities": {"drop": ["ALL"]}}
            }]
        }
    }))?;
    pod.metadata.labels = Some(labels.clone());
    Ok(pod)
}

/// AppStacks of one component without replicas, each annotated with
/// ANNOTATIONS values of ANNOTATION_BYTES (just under 256 KiB in all).
async fn create_annotated(client: &Client, ns: &str, image: &str) -> Result<()> {
    let annotations: BTreeMap<String, String> = (0..ANNOTATIONS)
        .map(|i| {
            (
                format!("e2e.appstack.dev/a{i:03}"),
                "a".repeat(ANNOTATION_BYTES),
            )
        })
        .collect();
    let mut workers = JoinSet::new();
    for worker in 0..CONCURRENT_CREATES {
        let (client, ns, image, annotations) = (
            client.clone(),
            ns.to_string(),
            image.to_string(),
            annotations.clone(),
        );
        workers.spawn(async move {
            for i in (worker..ANNOTATED_STACKS).step_by(CONCURRENT_CREATES) {
                let stack = json!({
                    "apiVersion": "appstack.dev/v1alpha1",
                    "kind": "AppStack",
                    "metadata": {"name": annotated(i), "labels": {MARK: "true"},
                                 "annotations": annotations},
                    "spec": {"components": [{"name": "web", "image": image, "port": 8080, "replicas": 0}]}
                });
                apply::object(&client, &ns, stack).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = workers.join_next().await {
        done.context("an AppStack-creating task panicked")??;
    }
    Ok(())
}

/// The leader's RSS once it holds still: samples 2 s apart until five in a
/// row are within 1 % of each other (bounded), then the highest of them.
/// RSS moves a little with periodic work (Lease renewals, resyncs) and more
/// while the process warms up; the bound is against its steady level.
async fn steady_rss(id: &str) -> Result<u64> {
    const WINDOW: usize = 5;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut samples: Vec<u64> = Vec::new();
    loop {
        samples.push(node::rss_kib(id)?);
        let last = &samples[samples.len().saturating_sub(WINDOW)..];
        let min = last.iter().copied().min().unwrap_or_default();
        let max = last.iter().copied().max().unwrap_or_default();
        if last.len() == WINDOW && max as f64 <= min as f64 * 1.01 {
            return Ok(max);
        }
        if Instant::now() >= deadline {
            bail!("the leader's RSS did not settle within 120s (last samples, KiB: {last:?})");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

/// The highest of `n` RSS samples 3 s apart, in KiB.
async fn rss_max(id: &str, n: usize) -> Result<u64> {
    let mut max = 0;
    for i in 0..n {
        if i > 0 {
            tokio::time::sleep(Duration::from_secs(3)).await;
        }
        max = max.max(node::rss_kib(id)?);
    }
    Ok(max)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

/// Creates the Secrets, a few at a time. Each has its own random value; half
/// carry it under `password` (a key the cache keeps, but only when short),
/// half under a key the cache drops.
async fn create_secrets(client: &Client, ns: &str) -> Result<()> {
    let mut workers = JoinSet::new();
    for worker in 0..CONCURRENT_CREATES {
        let api = Api::<Secret>::namespaced(client.clone(), ns);
        workers.spawn(async move {
            for i in (worker..COUNT).step_by(CONCURRENT_CREATES) {
                let key = if i % 2 == 0 { "blob" } else { "password" };
                let secret = Secret {
                    metadata: ObjectMeta {
                        name: Some(format!("hostile-{i:03}")),
                        labels: Some(
                            [
                                (
                                    "app.kubernetes.io/managed-by".to_string(),
                                    "appstack-operator".to_string(),
                                ),
                                (MARK.to_string(), "true".to_string()),
                            ]
                            .into(),
                        ),
                        ..Default::default()
                    },
                    data: Some([(key.to_string(), ByteString(random(RAW_BYTES)?))].into()),
                    ..Default::default()
                };
                api.create(&PostParams::default(), &secret)
                    .await
                    .with_context(|| format!("creating Secret {}", secret.name_any()))?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = workers.join_next().await {
        done.context("a Secret-creating task panicked")??;
    }
    Ok(())
}

fn random(len: usize) -> Result<Vec<u8>> {
    let mut bytes = vec![0; len];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .context("reading /dev/urandom")?;
    Ok(bytes)
}
