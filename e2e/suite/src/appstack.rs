//! AppStacks as a user handles them: the example manifest, applied with
//! Server-Side Apply, and its status conditions.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, ApiResource, DynamicObject};
use kube::core::GroupVersionKind;
use kube::{Client, ResourceExt};
use serde_json::Value;

use crate::apply;
use crate::cmd;
use crate::env::TestEnv;
use crate::runner::Ctx;
use crate::shop::Shop;
use crate::wait::{self, Pending, Ready};

pub const GROUP: &str = "appstack.dev";
pub const VERSION: &str = "v1alpha1";
pub const KIND: &str = "AppStack";
/// How long a fresh shop (web, Redis, PostgreSQL from local images) may take
/// to become Ready.
pub const READY_BOUND: Duration = Duration::from_secs(240);

pub fn resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, VERSION, KIND), "appstacks")
}

pub fn api(client: &Client, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), ns, &resource())
}

/// deploy/examples/shop.yaml as JSON, with the suite's store images (see
/// `TestEnv::redis_image`), to be tweaked per scenario.
pub fn shop_manifest(ctx: &Ctx) -> Result<Value> {
    let path = ctx.env.repo.join("deploy/examples/shop.yaml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut manifest: Value =
        serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    if let Some(image) = &ctx.env.redis_image {
        manifest["spec"]["redis"]["image"] = image.as_str().into();
    }
    if let Some(image) = &ctx.env.postgres_image {
        manifest["spec"]["postgres"]["image"] = image.as_str().into();
    }
    Ok(manifest)
}

/// The older majors the suite keeps covering in a few scenarios (the local
/// images from Debian bookworm).
pub const OLDER_REDIS_IMAGE: &str = "appstack.local/redis:7";
pub const OLDER_POSTGRES_IMAGE: &str = "appstack.local/postgres:15";
/// Valkey, the BSD-licensed Redis-compatible server, in the redis slot.
pub const VALKEY_IMAGE: &str = "appstack.local/valkey:8";

/// A `deploy_shop` tweak: Redis 7 and PostgreSQL 15 instead of the defaults.
pub fn on_older_majors(manifest: &mut Value) {
    manifest["spec"]["redis"]["image"] = OLDER_REDIS_IMAGE.into();
    manifest["spec"]["postgres"]["image"] = OLDER_POSTGRES_IMAGE.into();
}

/// A `deploy_shop` tweak: the web component at a fixed replica count, with
/// no HPA deciding otherwise during the test.
pub fn fixed_web_replicas(manifest: &mut Value, replicas: i32) {
    let web = &mut manifest["spec"]["components"][0];
    if let Some(obj) = web.as_object_mut() {
        obj.remove("autoscaling");
    }
    web["replicas"] = replicas.into();
}

/// A `deploy_shop` tweak: Valkey 8 as the stack's Redis.
pub fn on_valkey(manifest: &mut Value) {
    manifest["spec"]["redis"]["image"] = VALKEY_IMAGE.into();
}

pub fn name_of(manifest: &Value) -> Result<String> {
    manifest["metadata"]["name"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| anyhow!("manifest without metadata.name"))
}

/// (status, reason, message) of a status condition.
pub fn condition(obj: &DynamicObject, type_: &str) -> Option<(String, String, String)> {
    obj.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find_map(|c| {
            (c["type"].as_str() == Some(type_)).then(|| {
                let s = |k: &str| c[k].as_str().unwrap_or_default().to_string();
                (s("status"), s("reason"), s("message"))
            })
        })
}

/// Every condition as "Type=Status (Reason: message)", for messages.
pub fn conditions(obj: &DynamicObject) -> String {
    match obj.data["status"]["conditions"].as_array() {
        Some(cs) if !cs.is_empty() => cs
            .iter()
            .map(|c| {
                format!(
                    "{}={} ({}: {})",
                    c["type"].as_str().unwrap_or("?"),
                    c["status"].as_str().unwrap_or("?"),
                    c["reason"].as_str().unwrap_or(""),
                    c["message"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => "no status conditions yet".into(),
    }
}

pub fn observed_generation(obj: &DynamicObject) -> Option<i64> {
    obj.data["status"]["observedGeneration"].as_i64()
}

/// Waits until Ready=True for the current generation; returns how long it took.
pub async fn wait_ready(
    client: &Client,
    ns: &str,
    name: &str,
    timeout: Duration,
) -> Result<Duration> {
    let api = api(client, ns);
    let start = Instant::now();
    wait::until(
        &format!("AppStack {name} to be Ready"),
        timeout,
        async || {
            let obj = api.get(name).await?;
            let ready = condition(&obj, "Ready").is_some_and(|(s, _, _)| s == "True");
            let current = observed_generation(&obj) == obj.metadata.generation;
            Ok(if ready && current {
                Ready(())
            } else {
                Pending(format!(
                    "generation {:?}, observedGeneration {:?}; {}",
                    obj.metadata.generation,
                    observed_generation(&obj),
                    conditions(&obj)
                ))
            })
        },
    )
    .await?;
    Ok(start.elapsed())
}

/// A Service's ClusterIP and first port.
pub async fn service_addr(client: &Client, ns: &str, name: &str) -> Result<SocketAddr> {
    let svc = Api::<Service>::namespaced(client.clone(), ns)
        .get(name)
        .await
        .with_context(|| format!("getting Service {name}"))?;
    let spec = svc.spec.context("Service without spec")?;
    let ip: IpAddr = spec
        .cluster_ip
        .as_deref()
        .filter(|ip| *ip != "None")
        .with_context(|| format!("Service {name} has no ClusterIP"))?
        .parse()
        .with_context(|| format!("Service {name}: bad ClusterIP"))?;
    let port = spec
        .ports
        .and_then(|p| p.first().map(|p| p.port))
        .with_context(|| format!("Service {name} has no port"))?;
    Ok(SocketAddr::new(ip, u16::try_from(port)?))
}

/// A running shop: the AppStack's name, its manifest and a client for it.
pub struct Stack {
    pub name: String,
    pub manifest: Value,
    pub shop: Shop,
}

impl Stack {
    /// The stack's manifest with its first component's maxReplicas one
    /// higher: a change only a leading operator reconciles (into the HPA).
    pub fn with_more_max_replicas(&self) -> (Value, i64) {
        let mut manifest = self.manifest.clone();
        let autoscaling = &mut manifest["spec"]["components"][0]["autoscaling"];
        let max = autoscaling["maxReplicas"].as_i64().unwrap_or(5) + 1;
        autoscaling["maxReplicas"] = max.into();
        (manifest, max)
    }

    pub fn web(&self) -> String {
        format!("{}-web", self.name)
    }
    pub fn redis(&self) -> String {
        format!("{}-redis", self.name)
    }
    pub fn postgres(&self) -> String {
        format!("{}-postgres", self.name)
    }

    /// The web pods once its Deployment has settled (see
    /// `pods::wait_deployment_settled`).
    pub async fn web_settled(
        &self,
        ctx: &Ctx,
        replicas: Option<i32>,
        timeout: Duration,
    ) -> Result<Vec<k8s_openapi::api::core::v1::Pod>> {
        crate::pods::wait_deployment_settled(&ctx.client, &ctx.ns, &self.web(), replicas, timeout)
            .await
    }
}

/// Applies the shop example (after `tweak`) in the scenario's namespace,
/// waits until it is Ready and its web Service answers /readyz.
pub async fn deploy_shop(ctx: &mut Ctx, tweak: impl FnOnce(&mut Value)) -> Result<Stack> {
    let mut manifest = shop_manifest(ctx)?;
    tweak(&mut manifest);
    let name = name_of(&manifest)?;
    let image = |store: &str| {
        manifest["spec"][store]["image"]
            .as_str()
            .unwrap_or("default")
            .to_string()
    };
    ctx.step(format!(
        "applying AppStack {name} (server-side; redis {}, postgres {})",
        image("redis"),
        image("postgres")
    ));
    apply::object(&ctx.client, &ctx.ns, manifest.clone()).await?;
    let took = wait_ready(&ctx.client, &ctx.ns, &name, READY_BOUND).await?;
    ctx.step(format!(
        "AppStack {name} Ready after {:.1}s",
        took.as_secs_f64()
    ));
    // Start every scenario from a settled stack: with autoscaling the
    // Deployment begins at one replica until the HPA's first sync.
    let web = &manifest["spec"]["components"][0];
    let replicas = web["autoscaling"]["minReplicas"]
        .as_i64()
        .or(web["replicas"].as_i64())
        .unwrap_or(1);
    let pods = crate::pods::wait_deployment_settled(
        &ctx.client,
        &ctx.ns,
        &format!("{name}-web"),
        Some(i32::try_from(replicas)?),
        Duration::from_secs(120),
    )
    .await?;
    ctx.step(format!("web settled: {}", crate::pods::describe(&pods)));
    let shop = shop_client(ctx, &format!("{name}-web")).await?;
    Ok(Stack {
        name,
        manifest,
        shop,
    })
}

/// A client for the shop's web Service, once it answers /readyz.
pub async fn shop_client(ctx: &mut Ctx, service: &str) -> Result<Shop> {
    let addr = service_addr(&ctx.client, &ctx.ns, service).await?;
    let shop = Shop::new(ctx.http().await?, addr);
    answers_ready(
        &shop,
        &format!("Service {service} ({addr}) to answer GET /readyz with 200"),
    )
    .await?;
    Ok(shop)
}

/// Waits up to 60 s until `shop` answers GET /readyz with 200.
pub async fn answers_ready(shop: &Shop, what: &str) -> Result<()> {
    wait::until(what, Duration::from_secs(60), async || {
        let r = shop.ready().await?;
        Ok(if r.status == 200 {
            Ready(())
        } else {
            Pending(r.summary())
        })
    })
    .await
}

/// Sets metadata.annotations[key] with a merge patch: a metadata-only change
/// (no generation bump) that still wakes the controller.
pub async fn annotate(client: &Client, ns: &str, name: &str, key: &str, value: &str) -> Result<()> {
    let patch = serde_json::json!({"metadata": {"annotations": {key: value}}});
    merge_patch(client, ns, name, &patch)
        .await
        .with_context(|| format!("annotating AppStack {name}"))?;
    Ok(())
}

/// Merge-patches the AppStack's spec, as `kubectl patch --type merge` does.
pub async fn patch_spec(
    client: &Client,
    ns: &str,
    name: &str,
    spec: Value,
) -> Result<DynamicObject> {
    merge_patch(client, ns, name, &serde_json::json!({ "spec": spec }))
        .await
        .with_context(|| format!("patching AppStack {name}"))
}

async fn merge_patch(
    client: &Client,
    ns: &str,
    name: &str,
    patch: &Value,
) -> kube::Result<DynamicObject> {
    api(client, ns)
        .patch(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(patch),
        )
        .await
}

pub fn uid(obj: &DynamicObject) -> String {
    obj.uid().unwrap_or_default()
}

/// (type, reason, message) of the Events recorded about an AppStack, as
/// `kubectl describe appstack` lists them.
pub async fn events(
    client: &Client,
    ns: &str,
    name: &str,
) -> Result<Vec<(String, String, String)>> {
    use k8s_openapi::api::core::v1::Event;
    let selector = format!("involvedObject.kind={KIND},involvedObject.name={name}");
    let list = Api::<Event>::namespaced(client.clone(), ns)
        .list(&kube::api::ListParams::default().fields(&selector))
        .await
        .with_context(|| format!("listing the Events of AppStack {name}"))?;
    Ok(list
        .items
        .into_iter()
        .map(|e| {
            (
                e.type_.unwrap_or_default(),
                e.reason.unwrap_or_default(),
                e.message.unwrap_or_default(),
            )
        })
        .collect())
}

/// Waits until the AppStack's current generation shows condition `type_` with
/// `status` and `reason`; returns its message.
pub async fn wait_condition(
    client: &Client,
    ns: &str,
    name: &str,
    condition: (&str, &str, &str),
    timeout: Duration,
) -> Result<String> {
    wait_condition_mentioning(client, ns, name, condition, "", timeout).await
}

/// Like `wait_condition`, until the condition's message also contains `needle`.
pub async fn wait_condition_mentioning(
    client: &Client,
    ns: &str,
    name: &str,
    (type_, status, reason): (&str, &str, &str),
    needle: &str,
    timeout: Duration,
) -> Result<String> {
    let api = api(client, ns);
    let mentioning = if needle.is_empty() {
        String::new()
    } else {
        format!(" mentioning {needle:?}")
    };
    wait::until(
        &format!("AppStack {name} to show {type_}={status} ({reason}){mentioning}"),
        timeout,
        async || {
            let obj = api.get(name).await?;
            let current = observed_generation(&obj) == obj.metadata.generation;
            Ok(match condition(&obj, type_) {
                Some((s, r, m)) if current && s == status && r == reason && m.contains(needle) => {
                    Ready(m)
                }
                _ => Pending(conditions(&obj)),
            })
        },
    )
    .await
}

/// What kstatus (sigs.k8s.io/cli-utils: how Flux and kpt wait for a
/// resource) computes for the live AppStack: (status, message). The checker
/// (e2e/kstatus) is built on first use, into the tools cache.
pub async fn kstatus(env: &TestEnv, ns: &str, name: &str) -> Result<(String, String)> {
    let script = format!(
        r#"set -euo pipefail; source e2e/lib/tools.sh; build_tools kstatus-check
kubectl get appstacks.appstack.dev -n {ns} {name} -o json | "$(tool_bin_dir kstatus-check)/kstatus-check""#
    );
    let out = cmd::run(
        env,
        "bash",
        &["-c", &script],
        None,
        Duration::from_secs(600),
    )
    .await?;
    if !out.success {
        bail!(
            "kstatus-check on AppStack {ns}/{name} failed: {}",
            out.text()
        );
    }
    let line = out.stdout.trim();
    let rest = line
        .strip_prefix(&format!("{ns}/{name} "))
        .ok_or_else(|| anyhow!("kstatus-check printed {line:?}"))?;
    let (status, message) = rest.split_once(' ').unwrap_or((rest, ""));
    Ok((status.to_string(), message.to_string()))
}
