//! Anyone who may create Secrets in a namespace can label them
//! `app.kubernetes.io/managed-by: appstack-operator` and so put them in the
//! operator's watch. 100 such Secrets of 650 KB each must leave the leader's
//! resident memory within 10 % of what it was without them (its cache keeps
//! only a Secret's username/password, and only up to 4096 bytes). The leader
//! does not restart, and a change to a stack with a store in the same
//! namespace is still reconciled. RSS is read from the node's /proc, so this
//! runs only on the local cluster (e2e/hostile-secrets.sh measures a locally
//! run binary).

use std::io::Read;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use appstack_e2e::operator::{self, NAMESPACE};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::{apply, appstack, node};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};
use tokio::task::JoinSet;

const COUNT: usize = 100;
/// Raw bytes per Secret: 650 KiB once base64-encoded, as stored and watched
/// (the same size as e2e/hostile-secrets.sh).
const RAW_BYTES: usize = 650 * 1024 * 3 / 4;
const CONCURRENT_CREATES: usize = 8;
/// Marks the Secrets this scenario made, for deleting them (the stack's own
/// Secrets carry managed-by too).
const MARK: &str = "e2e.appstack.dev/hostile";
/// How much the RSS may grow: the bound.
const MAX_RATIO: f64 = 1.10;
const STACK: &str = "steady";

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    if !ctx.env.is_local() {
        ctx.note("skipped: the operator's RSS is read from the node's /proc (CLUSTER=local)");
        return Ok(());
    }
    // A stack with a store first: the leader has then run its reconcile and
    // credential paths (as any operator in use has), so the baseline is not
    // a cold process that would grow on its first work anyway; and its
    // password Secret sits among the hostile ones.
    let redis_image = appstack::shop_manifest(ctx)?["spec"]["redis"]["image"].clone();
    let image = ctx.env.tools_image.clone();
    apply::object(&ctx.client, &ctx.ns, stack(&image, &redis_image, "1")).await?;
    let took = appstack::wait_ready(&ctx.client, &ctx.ns, STACK, Duration::from_secs(120)).await?;
    ctx.step(format!(
        "AppStack {STACK} (web + Redis) Ready in {:.1}s",
        took.as_secs_f64()
    ));

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
    // Nothing the operator exposes tells when its watch has delivered them;
    // they arrive within seconds of creation, so a fixed, bounded wait.
    tokio::time::sleep(Duration::from_secs(20)).await;

    // A restarted or replaced leader would make the comparison meaningless,
    // and a crash is what this guards against.
    let pod = pods.get(&leader).await?;
    let now = node::restart_count(&pod);
    if now != restarts {
        bail!(
            "the leader {leader} restarted ({restarts} -> {now} restarts) after {COUNT} hostile Secrets appeared"
        );
    }
    let holder = operator::holder(&ctx.client).await?;
    if holder.as_deref() != Some(leader.as_str()) {
        bail!(
            "the leader changed from {leader} to {holder:?} after {COUNT} hostile Secrets appeared"
        );
    }

    let with = rss_max(&id, 3).await?;
    let ratio = with as f64 / baseline as f64;
    ctx.note(format!(
        "leader RSS {} without, {} with {COUNT} hostile Secrets of 650 KB: x{ratio:.3} (bound x{MAX_RATIO:.2})",
        mib(baseline),
        mib(with)
    ));
    if ratio > MAX_RATIO {
        bail!(
            "the leader's RSS grew from {} to {} (x{ratio:.3}) with {COUNT} Secrets of 650 KB labelled managed-by=appstack-operator; expected at most x{MAX_RATIO:.2}",
            mib(baseline),
            mib(with)
        );
    }

    // The operator still does its job among them: a change to the stack is
    // reconciled (Ready for the new generation).
    apply::object(&ctx.client, &ctx.ns, stack(&image, &redis_image, "2")).await?;
    let took = appstack::wait_ready(&ctx.client, &ctx.ns, STACK, Duration::from_secs(60)).await?;
    ctx.step(format!(
        "a change to AppStack {STACK} reconciled (Ready) {:.1}s after it was applied",
        took.as_secs_f64()
    ));

    Api::<Secret>::namespaced(ctx.client.clone(), &ctx.ns)
        .delete_collection(
            &DeleteParams::default(),
            &ListParams::default().labels(&format!("{MARK}=true")),
        )
        .await
        .context("deleting the hostile Secrets")?;
    ctx.step(format!("deleted the {COUNT} hostile Secrets"));
    Ok(())
}

/// Web with no replicas (nothing to wait for but the operator) and a Redis;
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
            "redis": {"image": redis_image},
            "retainDataOnDelete": false
        }
    })
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
