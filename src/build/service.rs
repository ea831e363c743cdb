//! Services: one per component, and a ClusterIP plus a headless one per store.

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::engine::Engine;
use super::meta::StackRef;
use super::{labels, names};
use crate::api::{Component, ServiceType};

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
/// store can be reached while it starts).
pub fn store(ctx: &StackRef, engine: &dyn Engine) -> [Service; 2] {
    let (part, store_port) = (engine.part(), engine.port());
    let name = engine.secret_name(&ctx.name);
    let client = Service {
        metadata: ctx.object_meta(name.clone(), part, labels::ROLE_STORE),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(ctx.selector(part)),
            ports: Some(vec![port(part, store_port)]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
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
    [client, headless]
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
