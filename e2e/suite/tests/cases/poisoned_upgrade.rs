//! An AppStack stored before the CRD bounded its integers (applied under a
//! CRD without bounds, then the bounded CRD installed, as an upgrade would)
//! does not stop the operator: across an operator restart every other stack
//! still reconciles, and the poisoned one is reported on itself (Degraded,
//! InvalidSpec, naming the field, and a Warning Event), also when its status
//! is written under the bounded CRD. The operator's logs carry no object.
//! Today the same stack is refused at admission.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use appstack_e2e::env::TestEnv;
use appstack_e2e::http::Call;
use appstack_e2e::operator::{self, CRD, NAMESPACE};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Pending, Ready};
use appstack_e2e::{apply, appstack, pods};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionSpec,
};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, LogParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const HEALTHY: &str = "healthy";
const POISONED: &str = "poisoned";
/// Where the poisoned value sits; both the refusal and the report name it.
const FIELD: &str = "spec.components[0].livenessProbe.periodSeconds";
/// 2^32: beyond int32, so the operator's types cannot hold it.
const TOO_BIG: u64 = 4_294_967_296;

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

/// One component, the shop image without stores: it runs as non-root and
/// listens on 8080 once REDIS_URL and DATABASE_URL are set (it connects in
/// the background, and the default readiness probe is TCP), so it is Ready
/// in seconds. `env` carries markers that must never reach the operator's
/// logs.
fn stack(
    ctx: &Ctx,
    name: &str,
    replicas: i32,
    env: Value,
    liveness: Option<Value>,
) -> Result<Value> {
    let image = appstack::shop_manifest(ctx)?["spec"]["components"][0]["image"].clone();
    let mut env = env;
    if let Some(vars) = env.as_array_mut() {
        vars.push(json!({"name": "REDIS_URL", "value": "redis://127.0.0.1:6379"}));
        vars.push(
            json!({"name": "DATABASE_URL", "value": "postgres://shop:shop@127.0.0.1:5432/shop"}),
        );
    }
    let mut component = json!({
        "name": "web",
        "image": image,
        "imagePullPolicy": ctx.env.pull_policy(),
        "port": 8080,
        "replicas": replicas,
        "env": env
    });
    if let Some(probe) = liveness {
        component["livenessProbe"] = probe;
    }
    Ok(json!({
        "apiVersion": "appstack.dev/v1alpha1",
        "kind": "AppStack",
        "metadata": {"name": name},
        "spec": {"components": [component]}
    }))
}

fn poisoned(ctx: &Ctx, name: &str, marker: &str) -> Result<Value> {
    stack(
        ctx,
        name,
        0,
        json!([{"name": "MARKER", "value": marker}]),
        Some(json!({"tcpSocket": {"port": 8080}, "periodSeconds": TOO_BIG})),
    )
}

/// A value no log line has by chance.
fn marker(what: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{what}-marker-{nanos:x}")
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let healthy_marker = marker("healthy");
    let poisoned_marker = marker("poisoned");
    let healthy_env = json!([{"name": "MARKER", "value": healthy_marker}]);
    apply::object(
        &ctx.client,
        &ctx.ns,
        stack(ctx, HEALTHY, 1, healthy_env.clone(), None)?,
    )
    .await?;
    let took =
        appstack::wait_ready(&ctx.client, &ctx.ns, HEALTHY, Duration::from_secs(120)).await?;
    pods::wait_deployment_settled(
        &ctx.client,
        &ctx.ns,
        &format!("{HEALTHY}-web"),
        Some(1),
        Duration::from_secs(120),
    )
    .await?;
    ctx.step(format!(
        "AppStack {HEALTHY} Ready after {:.1}s, web settled",
        took.as_secs_f64()
    ));

    // Today the API server refuses the value outright.
    match apply::object(
        &ctx.client,
        &ctx.ns,
        poisoned(ctx, POISONED, &poisoned_marker)?,
    )
    .await
    {
        Ok(_) => bail!("AppStack {POISONED} with periodSeconds {TOO_BIG} was accepted"),
        Err(e) if format!("{e:#}").contains(FIELD) => {
            ctx.step(format!("refused under the current CRD, naming {FIELD}"));
        }
        Err(e) => bail!("AppStack {POISONED} was refused, but without naming {FIELD}: {e:#}"),
    }

    store_under_old_crd(ctx, &poisoned_marker).await?;
    let leader = operator::restart_all(ctx, Duration::from_secs(180)).await?;

    // The new leader's first list carried the poisoned stack: it was read
    // and skipped, not a reason to fail the list.
    let http = ctx.http().await?;
    let addr = std::net::SocketAddr::new(operator::pod_ip(&leader)?, 8080);
    let undecodable = wait::until(
        &format!(
            "the leader {} to count the poisoned stack as Undecodable",
            leader.name_any()
        ),
        Duration::from_secs(90),
        async || {
            let r = http.send(addr, Call::get("/metrics")).await?;
            let n = r
                .body
                .lines()
                .find_map(|l| {
                    l.strip_prefix("appstack_reconcile_errors_total{error=\"Undecodable\"} ")
                })
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0);
            Ok(if n > 0.0 {
                Ready(n)
            } else {
                Pending(format!("HTTP {}, no Undecodable reconcile yet", r.status))
            })
        },
    )
    .await?;
    ctx.step(format!(
        "new leader: appstack_reconcile_errors_total{{error=\"Undecodable\"}} {undecodable}"
    ));

    healthy_follows(ctx, healthy_env).await?;
    reported(ctx).await?;

    // After a real upgrade no operator has reported the stack yet, so the
    // first status write happens under the bounded CRD. Clear the status
    // and see the new leader write it again there (its log line about it is
    // checked below).
    let cleared = appstack::api(&ctx.client, &ctx.ns)
        .patch_status(
            POISONED,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": null})),
        )
        .await
        .context("clearing the poisoned stack's status (a status write under the bounded CRD)")?;
    if !cleared.data["status"].is_null() {
        bail!(
            "the poisoned stack's status was not cleared: {}",
            cleared.data["status"]
        );
    }
    ctx.step("cleared the poisoned stack's status under the bounded CRD");
    reported(ctx).await?;

    no_object_in_logs(ctx, &[&healthy_marker, &poisoned_marker]).await?;

    // A user can fix it (the API server takes the corrected value) ...
    let mut fixed = poisoned(ctx, POISONED, &poisoned_marker)?;
    fixed["spec"]["components"][0]["livenessProbe"]["periodSeconds"] = json!(10);
    let (api, _) = apply::api_for(&ctx.client, &ctx.ns, &fixed).await?;
    api.patch(
        POISONED,
        &PatchParams::apply(apply::FIELD_MANAGER).force().dry_run(),
        &Patch::Apply(&fixed),
    )
    .await
    .context("a server dry run of the corrected poisoned stack")?;
    ctx.step("the corrected stack passes a server dry run");
    // ... or delete it.
    let stacks = appstack::api(&ctx.client, &ctx.ns);
    stacks
        .delete(POISONED, &DeleteParams::default())
        .await
        .context("deleting the poisoned stack")?;
    wait::until(
        &format!("AppStack {POISONED} to be gone"),
        Duration::from_secs(60),
        async || {
            Ok(match stacks.get_opt(POISONED).await? {
                None => Ready(()),
                Some(o) => Pending(format!("still there, {}", appstack::conditions(&o))),
            })
        },
    )
    .await?;
    ctx.step(format!("AppStack {POISONED} deleted"));
    Ok(())
}

/// Stores the poisoned stack as an old release could: the CRD's integer
/// bounds removed, the stack created, the original CRD put back.
async fn store_under_old_crd(ctx: &mut Ctx, marker: &str) -> Result<()> {
    let mut crd = LooseCrd::loosen(ctx).await?;
    let start = Instant::now();
    // The API server rebuilds its validator a moment after the CRD changes.
    let created = wait::until(
        &format!("the API server to accept AppStack {POISONED} under the loosened CRD"),
        Duration::from_secs(60),
        async || {
            apply::object(&ctx.client, &ctx.ns, poisoned(ctx, POISONED, marker)?).await?;
            Ok(Ready(()))
        },
    )
    .await;
    let restored = crd.restore(&ctx.client).await;
    created?;
    restored?;
    ctx.step(format!(
        "AppStack {POISONED} stored under the loosened CRD; original CRD back after {:.1}s",
        start.elapsed().as_secs_f64()
    ));
    // The bounds are in force again before anything else runs.
    let probe = poisoned(ctx, &format!("{POISONED}-probe"), marker)?;
    wait::until(
        "the API server to refuse the value again under the restored CRD",
        Duration::from_secs(60),
        async || {
            let (api, name) = apply::api_for(&ctx.client, &ctx.ns, &probe).await?;
            let dry = PatchParams::apply(apply::FIELD_MANAGER).force().dry_run();
            Ok(match api.patch(&name, &dry, &Patch::Apply(&probe)).await {
                Err(e) if e.to_string().contains(FIELD) => Ready(()),
                Err(e) => Pending(format!("refused otherwise: {e}")),
                Ok(_) => Pending("still accepted".into()),
            })
        },
    )
    .await?;
    let stored = appstack::api(&ctx.client, &ctx.ns).get(POISONED).await?;
    let period = &stored.data["spec"]["components"][0]["livenessProbe"]["periodSeconds"];
    if period.as_u64() != Some(TOO_BIG) {
        bail!("the stored AppStack {POISONED} has periodSeconds {period}, expected {TOO_BIG}");
    }
    ctx.step(format!(
        "the restored CRD refuses the value again; the stored stack keeps periodSeconds {TOO_BIG}"
    ));
    Ok(())
}

/// The installed CRD with its integer bounds stripped. Put back with
/// `restore`; dropped without it (an error or the scenario's timeout), it
/// puts the original back synchronously, since other scenarios share the
/// cluster.
struct LooseCrd {
    env: Arc<TestEnv>,
    original: CustomResourceDefinitionSpec,
    restored: bool,
}

impl LooseCrd {
    async fn loosen(ctx: &Ctx) -> Result<Self> {
        let api = Api::<CustomResourceDefinition>::all(ctx.client.clone());
        let mut crd = api.get(CRD).await.context("getting the CRD")?;
        let guard = Self {
            env: ctx.env.clone(),
            original: crd.spec.clone(),
            restored: false,
        };
        let mut spec = serde_json::to_value(&crd.spec)?;
        let mut removed = 0;
        for version in spec["versions"].as_array_mut().into_iter().flatten() {
            removed += strip_bounds(&mut version["schema"]["openAPIV3Schema"]);
        }
        if removed == 0 {
            bail!("the installed CRD has no integer bounds to remove");
        }
        crd.spec = serde_json::from_value(spec)?;
        api.replace(CRD, &PostParams::default(), &crd)
            .await
            .context("replacing the CRD with a loosened copy")?;
        ctx.step(format!(
            "CRD {CRD} loosened as the old release had it: {removed} bounds removed"
        ));
        Ok(guard)
    }

    async fn restore(&mut self, client: &kube::Client) -> Result<()> {
        let api = Api::<CustomResourceDefinition>::all(client.clone());
        let original = &self.original;
        // A fresh GET each try: another writer may have touched it meanwhile.
        wait::until(
            "the original CRD to be put back",
            Duration::from_secs(60),
            async || {
                let mut crd = api.get(CRD).await?;
                crd.spec = original.clone();
                api.replace(CRD, &PostParams::default(), &crd).await?;
                Ok(Ready(()))
            },
        )
        .await?;
        self.restored = true;
        Ok(())
    }
}

impl Drop for LooseCrd {
    fn drop(&mut self) {
        if self.restored {
            return;
        }
        // A merge patch replaces spec.versions whole and needs no
        // resourceVersion; blocking is fine for this rare path. The patch
        // (about 80 kB) goes through stdin, not an argument.
        let patch = json!({"spec": self.original}).to_string();
        let mut cmd = std::process::Command::new("kubectl");
        cmd.current_dir(&self.env.repo)
            .env("PATH", &self.env.path)
            .args([
                "patch",
                "crd",
                CRD,
                "--type=merge",
                "--request-timeout=30s",
                "--patch-file=/dev/stdin",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(kubeconfig) = &self.env.kubeconfig {
            cmd.env("KUBECONFIG", kubeconfig);
        }
        let out = cmd.spawn().and_then(|mut child| {
            if let Some(mut stdin) = child.stdin.take() {
                std::io::Write::write_all(&mut stdin, patch.as_bytes())?;
            }
            child.wait_with_output()
        });
        match out {
            Ok(out) if out.status.success() => eprintln!("    CRD {CRD} restored (on drop)"),
            Ok(out) => eprintln!(
                "    could not restore CRD {CRD}: {}",
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("    could not restore CRD {CRD}: {e}"),
        }
    }
}

/// Removes minimum/maximum (and their exclusive forms) from a schema and
/// every schema under it; returns how many were removed. Keys of
/// `properties` are field names, not keywords, and are left alone.
fn strip_bounds(schema: &mut Value) -> usize {
    let Some(object) = schema.as_object_mut() else {
        return 0;
    };
    let mut removed = ["maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum"]
        .iter()
        .filter(|k| object.remove(**k).is_some())
        .count();
    for (keyword, value) in object.iter_mut() {
        let subschemas: Vec<&mut Value> = match keyword.as_str() {
            "properties" | "patternProperties" | "definitions" => value
                .as_object_mut()
                .into_iter()
                .flat_map(|m| m.values_mut())
                .collect(),
            "allOf" | "anyOf" | "oneOf" => value.as_array_mut().into_iter().flatten().collect(),
            "items" | "additionalProperties" | "not" => vec![value],
            _ => vec![],
        };
        removed += subschemas.into_iter().map(strip_bounds).sum::<usize>();
    }
    removed
}

/// A change to the healthy stack reaches its Deployment after the restart.
async fn healthy_follows(ctx: &mut Ctx, env: Value) -> Result<()> {
    let mut env = env;
    let Some(vars) = env.as_array_mut() else {
        bail!("env is not a list");
    };
    vars.push(json!({"name": "CHANGED", "value": "after-restart"}));
    let start = Instant::now();
    apply::object(&ctx.client, &ctx.ns, stack(ctx, HEALTHY, 1, env, None)?).await?;
    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), &ctx.ns);
    let name = format!("{HEALTHY}-web");
    wait::until(
        &format!("Deployment {name} to get CHANGED=after-restart"),
        Duration::from_secs(120),
        async || {
            let d = deployments.get(&name).await?;
            let env = d
                .spec
                .and_then(|s| s.template.spec)
                .and_then(|s| s.containers.into_iter().next())
                .and_then(|c| c.env)
                .unwrap_or_default();
            let changed = env
                .iter()
                .any(|e| e.name == "CHANGED" && e.value.as_deref() == Some("after-restart"));
            Ok(if changed {
                Ready(())
            } else {
                let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
                Pending(format!("env {names:?}"))
            })
        },
    )
    .await?;
    ctx.recovered("healthy stack change reconciled", start.elapsed());
    appstack::wait_ready(&ctx.client, &ctx.ns, HEALTHY, Duration::from_secs(120)).await?;
    pods::wait_deployment_settled(
        &ctx.client,
        &ctx.ns,
        &name,
        Some(1),
        Duration::from_secs(120),
    )
    .await?;
    ctx.step(format!(
        "AppStack {HEALTHY} Ready again with the change rolled out"
    ));
    Ok(())
}

/// Degraded=True (InvalidSpec) naming the field, and a Warning Event so.
async fn reported(ctx: &mut Ctx) -> Result<()> {
    let message = appstack::wait_condition_mentioning(
        &ctx.client,
        &ctx.ns,
        POISONED,
        ("Degraded", "True", "InvalidSpec"),
        FIELD,
        Duration::from_secs(90),
    )
    .await?;
    ctx.step(format!(
        "{POISONED}: Degraded=True (InvalidSpec): {message}"
    ));
    let event = wait::until(
        &format!("a Warning Event InvalidSpec on AppStack {POISONED} naming {FIELD}"),
        Duration::from_secs(60),
        async || {
            let events = appstack::events(&ctx.client, &ctx.ns, POISONED).await?;
            Ok(
                match events
                    .iter()
                    .find(|(t, r, m)| t == "Warning" && r == "InvalidSpec" && m.contains(FIELD))
                {
                    Some((_, _, m)) => Ready(m.clone()),
                    None => Pending(format!("{events:?}")),
                },
            )
        },
    )
    .await?;
    ctx.step(format!("Warning Event InvalidSpec: {event}"));
    Ok(())
}

/// The operator's logs say which stack and which field, never the object:
/// no env value of either stack appears in them.
async fn no_object_in_logs(ctx: &mut Ctx, markers: &[&str]) -> Result<()> {
    let api = Api::<Pod>::namespaced(ctx.client.clone(), NAMESPACE);
    let mut reported = false;
    for pod in operator::operator_pods(&ctx.client).await? {
        let name = pod.name_any();
        let log = api
            .logs(&name, &LogParams::default())
            .await
            .with_context(|| format!("reading the logs of {name}"))?;
        for marker in markers {
            if let Some(line) = log.lines().find(|l| l.contains(marker)) {
                bail!("the log of {name} carries a stack's env value {marker:?}: {line}");
            }
        }
        reported |= log
            .lines()
            .any(|l| l.contains("does not decode") && l.contains(POISONED));
    }
    // The check looked at the logs that talk about the stack.
    if !reported {
        bail!("no operator log line says that AppStack {POISONED} does not decode");
    }
    ctx.step("the operator's logs name the poisoned stack and carry no env value of either stack");
    Ok(())
}
