//! A stateless component's Deployment.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Lifecycle, LifecycleHandler, PodSpec, PodTemplateSpec, Probe,
    SleepAction, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::inputs::Inputs;
use super::meta::StackRef;
use super::pod_settings::{self, PodSettings};
use super::{labels, names, security, tls, wiring};
use crate::api::{AppStack, Component};

/// Seconds a terminating pod keeps serving after it was taken out of the
/// Service's endpoints, so that in-flight and just-routed requests finish.
const PRE_STOP_SLEEP: i64 = 5;

pub fn deployment(ctx: &StackRef, stack: &AppStack, c: &Component, inputs: &Inputs) -> Deployment {
    let name = names::component(&ctx.name, &c.name);
    let mut annotations: BTreeMap<String, String> = c.pod_annotations.clone().unwrap_or_default();
    let wired = wiring::connection_env(ctx, stack, c);
    if !wired.is_empty() {
        annotations.insert(
            wiring::CREDENTIALS_HASH.to_string(),
            wiring::credentials_hash(stack, c, inputs),
        );
    }
    let init = wiring::wait_for_stores(ctx, stack, c);
    // The CA to verify the stores with, for components wired to one; an
    // external store's CA (if its Secret gave one) at a path of its own.
    let tls = wiring::uses_stack_ca(stack, c);
    let (external_volumes, external_mounts) = wiring::external_ca(ctx, stack, c);
    let settings = PodSettings::of_component(stack, c, ctx.selector(&c.name));
    let mut mounts: Vec<_> = tls.then(tls::mount).into_iter().collect();
    mounts.extend(external_mounts);
    mounts.extend(c.volume_mounts.iter().flatten().cloned());
    let container = Container {
        name: c.name.clone(),
        image: Some(c.image.clone()),
        image_pull_policy: c.image_pull_policy.clone(),
        command: c.command.clone(),
        args: c.args.clone(),
        ports: c.port.map(|port| {
            vec![ContainerPort {
                name: Some("http".into()),
                container_port: port,
                protocol: Some("TCP".into()),
                ..ContainerPort::default()
            }]
        }),
        env: Some(wiring::merged_env(&c.env, wired)).filter(|e| !e.is_empty()),
        env_from: c.env_from.clone().filter(|e| !e.is_empty()),
        volume_mounts: Some(mounts).filter(|m| !m.is_empty()),
        resources: c.resources.clone(),
        // A worker has no port to check: Ready once it runs, unless told.
        readiness_probe: c.readiness_probe.clone().or_else(|| c.port.map(tcp_probe)),
        liveness_probe: c.liveness_probe.clone(),
        startup_probe: c.startup_probe.clone(),
        // Only a component behind a Service needs to outlast its removal
        // from the endpoints; the sleep must fit in the grace period.
        lifecycle: c
            .port
            .map(|_| PRE_STOP_SLEEP.min(settings.grace_period()))
            .filter(|s| *s > 0)
            .map(|seconds| Lifecycle {
                pre_stop: Some(LifecycleHandler {
                    sleep: Some(SleepAction { seconds }),
                    ..LifecycleHandler::default()
                }),
                ..Lifecycle::default()
            }),
        security_context: Some(security::app_container(c.security_context.as_ref())),
        ..Container::default()
    };
    let mut pod = PodSpec {
        init_containers: Some(init).filter(|i| !i.is_empty()),
        containers: vec![container],
        volumes: Some(
            tls.then(|| tls::component_volume(ctx))
                .into_iter()
                .chain(external_volumes)
                .collect::<Vec<_>>(),
        )
        .filter(|v| !v.is_empty()),
        security_context: Some(security::app_pod_with(c.pod_security_context.as_ref())),
        // Apps get their wiring explicitly; Docker-link variables
        // for every Service in the namespace are noise.
        enable_service_links: Some(false),
        ..PodSpec::default()
    };
    pod_settings::apply(&settings, &mut pod);
    Deployment {
        metadata: ctx.object_meta(name, &c.name, labels::ROLE_APP),
        spec: Some(DeploymentSpec {
            // With autoscaling the HPA owns the count: leaving the field out of
            // the applied object leaves it to the HPA (the controller hands the
            // current count over first, see reconcile/handoff.rs).
            replicas: match c.autoscaling {
                Some(_) => None,
                None => Some(c.replicas.unwrap_or(1)),
            },
            selector: LabelSelector {
                match_labels: Some(ctx.selector(&c.name)),
                ..LabelSelector::default()
            },
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".into()),
                // Never fewer ready pods than wanted during a rollout.
                rolling_update: Some(RollingUpdateDeployment {
                    max_unavailable: Some(IntOrString::Int(0)),
                    max_surge: Some(IntOrString::Int(1)),
                }),
            }),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels::common(&ctx.name, &c.name, labels::ROLE_APP)),
                    annotations: Some(annotations).filter(|a| !a.is_empty()),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    }
}

fn tcp_probe(port: i32) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(port),
            ..TCPSocketAction::default()
        }),
        period_seconds: Some(5),
        ..Probe::default()
    }
}
