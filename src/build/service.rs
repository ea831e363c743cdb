//! Services: one per component, and a ClusterIP plus a headless one per store.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::engine::Engine;
use super::meta::StackRef;
use super::{labels, names};
use crate::api::{AppStackSpec, Component, ServiceType};

/// None for a worker (a component without a port).
pub fn component(ctx: &StackRef, c: &Component) -> Option<Service> {
    let number = c.port?;
    let service_type = match c.service_type.unwrap_or(ServiceType::ClusterIP) {
        ServiceType::ClusterIP => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
    };
    Some(Service {
        metadata: ctx.object_meta(
            names::component(&ctx.name, &c.name),
            &c.name,
            labels::ROLE_APP,
        ),
        spec: Some(ServiceSpec {
            type_: Some(service_type.into()),
            selector: Some(ctx.selector(&c.name)),
            ports: Some(vec![port("http", number)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

/// `<stack>-<store>` for clients and `<stack>-<store>-headless` that gives the
/// StatefulSet's pod its stable DNS name (published before it is ready, so the
/// store can be reached while it starts). With more than one instance, the
/// client Service selects only the pod the operator labelled primary, and
/// `<stack>-<store>-ro` the replicas.
pub fn store(ctx: &StackRef, spec: &AppStackSpec, engine: &dyn Engine) -> Vec<Service> {
    let (part, store_port) = (engine.part(), engine.port());
    let name = engine.secret_name(&ctx.name);
    let writer = engine.writer_label(spec);
    let client = |name: String, role: Option<&str>| {
        let mut selector = ctx.selector(part);
        if let Some(role) = role {
            selector.insert(labels::STORE_ROLE.into(), role.into());
        }
        Service {
            metadata: ctx.object_meta(name, part, labels::ROLE_STORE),
            spec: Some(ServiceSpec {
                type_: Some("ClusterIP".into()),
                selector: Some(selector),
                ports: Some(vec![port(part, store_port)]),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    };
    let mut services = vec![client(name.clone(), writer)];
    if writer.is_some() {
        services.push(client(names::read_only(&name), Some(labels::REPLICA)));
    }
    let headless = Service {
        metadata: ctx.object_meta(names::headless(&name), part, labels::ROLE_STORE),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(ctx.selector(part)),
            ports: Some(vec![port(part, store_port)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    services.push(headless);
    services
}

fn port(name: &str, number: i32) -> ServicePort {
    ServicePort {
        name: Some(name.into()),
        port: number,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    }
}
