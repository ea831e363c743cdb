//! A component with a fixed count gains autoscaling: its replicas are handed
//! over to the HPA without dropping below minReplicas (Server-Side Apply
//! would otherwise reset the count to 1). Then CPU load through GET /burn
//! scales web above minReplicas through its HPA (metrics-server), and without
//! load it comes back down.
//!
//! The scale-down waits out the HPA's scale-down stabilization window as the
//! AppStack configures it (spec.components[].autoscaling.behavior, 30 s here;
//! Kubernetes' default is 300 s): the suite does not patch the HPA behind the
//! operator's back, a user would not either.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use appstack_e2e::load::{Load, LoadSpec};
use appstack_e2e::pods;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Pending, Ready};
use appstack_e2e::{apply, appstack};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::api::Api;
use serde_json::{Value, json};

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

fn hpa_state(h: &HorizontalPodAutoscaler) -> (i32, i32, Option<i32>) {
    let st = h.status.clone().unwrap_or_default();
    let cpu = st.current_metrics.iter().flatten().find_map(|m| {
        m.resource
            .as_ref()
            .filter(|r| r.name == "cpu")
            .and_then(|r| r.current.average_utilization)
    });
    (
        st.current_replicas.unwrap_or_default(),
        st.desired_replicas,
        cpu,
    )
}

const FIXED: i32 = 3;
const SCALE_DOWN_WINDOW: i64 = 30;

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    // Start with a fixed count; keep the example's autoscaling for later.
    let mut autoscaling = Value::Null;
    let stack = appstack::deploy_shop(ctx, |m| {
        let web = &mut m["spec"]["components"][0];
        if let Some(obj) = web.as_object_mut() {
            autoscaling = obj.remove("autoscaling").unwrap_or_default();
        }
        web["replicas"] = json!(FIXED);
    })
    .await?;
    let web = stack.web();
    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(ctx.client.clone(), &ctx.ns);
    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), &ctx.ns);
    let stacks = appstack::api(&ctx.client, &ctx.ns);

    // Turn autoscaling on, as a user editing the manifest would.
    let min = autoscaling["minReplicas"]
        .as_i64()
        .and_then(|m| i32::try_from(m).ok())
        .context("deploy/examples/shop.yaml: web has no autoscaling.minReplicas")?;
    autoscaling["behavior"] =
        json!({"scaleDown": {"stabilizationWindowSeconds": SCALE_DOWN_WINDOW}});
    let mut manifest = stack.manifest.clone();
    let component = &mut manifest["spec"]["components"][0];
    if let Some(obj) = component.as_object_mut() {
        obj.remove("replicas");
    }
    component["autoscaling"] = autoscaling;
    ctx.step(format!(
        "web runs {FIXED} fixed replicas; applying autoscaling {min}..max (scale-down window {SCALE_DOWN_WINDOW}s)"
    ));
    let generation = apply::object(&ctx.client, &ctx.ns, manifest)
        .await?
        .metadata
        .generation;
    // Watch the count closely until the operator has applied the change and
    // the HPA exists: it must never fall below minReplicas on the way.
    let mut lowest = FIXED;
    wait::until_every(
        &format!("AppStack {} to apply autoscaling (HPA {web} created)", stack.name),
        Duration::from_secs(60),
        Duration::from_millis(100),
        async || {
            let replicas = deployments.get(&web).await?.spec.and_then(|s| s.replicas).unwrap_or(1);
            lowest = lowest.min(replicas);
            let observed = appstack::observed_generation(&stacks.get(&stack.name).await?);
            let hpa = hpas.get_opt(&web).await?.is_some();
            Ok(if observed == generation && hpa {
                Ready(())
            } else {
                Pending(format!("observedGeneration {observed:?} of {generation:?}, HPA exists: {hpa}, replicas {replicas}"))
            })
        },
    )
    .await?;
    if lowest < min {
        bail!(
            "turning autoscaling on dropped Deployment {web} from {FIXED} to {lowest} replicas (below minReplicas {min}): \
             the replica count was not handed over to the HPA"
        );
    }
    ctx.step(format!(
        "autoscaling on: replicas stayed at {lowest} or more while the HPA took over"
    ));
    ctx.note(format!(
        "fixed {FIXED} -> autoscaled: lowest count {lowest}"
    ));

    let h = hpas.get(&web).await?;
    let spec = h.spec.clone().context("HPA without spec")?;
    let window = spec
        .behavior
        .as_ref()
        .and_then(|b| b.scale_down.as_ref())
        .and_then(|s| s.stabilization_window_seconds)
        .unwrap_or(300);
    pods::wait_deployment_settled(
        &ctx.client,
        &ctx.ns,
        &web,
        Some(min),
        Duration::from_secs(120),
    )
    .await?;

    let cpu = wait::until(
        &format!("HPA {web} to see CPU metrics of its pods"),
        Duration::from_secs(180),
        async || {
            let (_, _, cpu) = hpa_state(&hpas.get(&web).await?);
            Ok(match cpu {
                Some(c) => Ready(c),
                None => Pending("no current CPU utilization yet".into()),
            })
        },
    )
    .await?;
    ctx.step(format!(
        "HPA {web}: {min}..{} replicas, idle CPU {cpu}% of request",
        spec.max_replicas
    ));

    // 3 requests/s burning 100 ms each: ~0.3 core over pods that request
    // 0.1 core each, well above the 60% target, and bounded in time.
    let load = Load::start(
        stack.shop.http.clone(),
        stack.shop.addr,
        LoadSpec {
            path: "/burn?ms=100".into(),
            bearer: None,
            rate: 3,
            duration: Duration::from_secs(300),
            timeout: Duration::from_secs(5),
        },
    )?;
    let start = Instant::now();
    ctx.step("load: GET /burn?ms=100 at 3 req/s (stops once scaled up, 300 s at most)");
    let up = wait::until_every(
        &format!("HPA {web} to scale above {min} replicas under load"),
        Duration::from_secs(300),
        Duration::from_secs(2),
        async || {
            let (current, desired, cpu) = hpa_state(&hpas.get(&web).await?);
            let replicas = deployments.get(&web).await?.spec.and_then(|s| s.replicas).unwrap_or_default();
            Ok(if desired > min && replicas > min {
                Ready(replicas)
            } else {
                Pending(format!("cpu {cpu:?}%, current {current}, desired {desired}, Deployment replicas {replicas}"))
            })
        },
    )
    .await;
    let report = load.stop().await?;
    let up = up?;
    ctx.step(format!(
        "scaled up to {up} replicas after {:.0}s; load: {}",
        start.elapsed().as_secs_f64(),
        report.summary()
    ));
    ctx.note(format!(
        "scaled {min} -> {up} under load in {:.0}s",
        start.elapsed().as_secs_f64()
    ));

    let start = Instant::now();
    let bound = Duration::from_secs(window as u64 + 180);
    ctx.step(format!(
        "load stopped; waiting for the scale-down (stabilization window {window}s, bound {}s)",
        bound.as_secs()
    ));
    wait::until_every(
        &format!("HPA {web} to scale back to {min} replicas"),
        bound,
        Duration::from_secs(5),
        async || {
            let (current, desired, cpu) = hpa_state(&hpas.get(&web).await?);
            let replicas = deployments.get(&web).await?.spec.and_then(|s| s.replicas).unwrap_or_default();
            Ok(if replicas == min && desired == min {
                Ready(())
            } else {
                Pending(format!("cpu {cpu:?}%, current {current}, desired {desired}, Deployment replicas {replicas}"))
            })
        },
    )
    .await?;
    ctx.note(format!(
        "back to {min} replicas {:.0}s after the load stopped (window {window}s)",
        start.elapsed().as_secs_f64()
    ));
    Ok(())
}
