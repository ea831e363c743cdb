//! A store's metrics: the exporter sidecar of its pod, the monitoring
//! user's Secret it logs in with, and the NetworkPolicy rule that admits
//! the scrapers (and nobody else) to its port.
//!
//! The exporter reaches the server on loopback as the monitoring user
//! (PostgreSQL: a LOGIN role in pg_monitor; Redis: an ACL user that may run
//! INFO, PING and LATENCY only, no key, no channel), over TLS verified with
//! the stack's CA when the stack has TLS. It mounts neither the data
//! volume, nor the server's socket (trusted: anyone on it is anyone), nor
//! the server's TLS Secret (its key): only the CA certificate.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, ResourceRequirements, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::engine::Engine;
use super::meta::StackRef;
use super::{security, tls};
use crate::api::AppStack;

/// The exporter's container in the store's pod.
pub const CONTAINER: &str = "metrics";
/// Its port's name (the chart's PodMonitor scrapes the port of this name).
pub const PORT_NAME: &str = "metrics";
/// The monitoring user of every store (a PostgreSQL role, a Redis ACL
/// user): none of the server's own names, nor `app` or `backup`.
pub const MONITOR_USER: &str = "appstack_monitor";
/// The CA-only volume of the exporter (never the server's TLS Secret).
const CA_VOLUME: &str = "metrics-ca";

/// What differs between one store's exporter and another's.
pub struct Exporter {
    /// The image when `metrics.image` is not set: upstream's, of the
    /// version Debian trixie ships (the local cluster builds it from that
    /// package under this name).
    pub default_image: &'static str,
    pub port: i32,
    /// The monitoring user's name.
    pub user: &'static str,
    /// The exporter's environment: the server on loopback as the user of
    /// Secret `secret` (keys `username`, `password`), with TLS verified
    /// with `tls::CA_FILE`.
    pub env: fn(secret: &str, tls: bool) -> Vec<EnvVar>,
}

/// The monitoring user's Secret: `<stack>-<part>-monitor`, for the
/// exporter alone (withheld from the apps like the administrator's).
pub fn secret_name(stack: &str, engine: &dyn Engine) -> String {
    format!("{}-monitor", engine.secret_name(stack))
}

/// Whether the store runs an exporter: in the cluster, and `metrics` not
/// turned off.
pub fn enabled(stack: &AppStack, engine: &dyn Engine) -> bool {
    engine.in_cluster(&stack.spec) && engine.metrics(&stack.spec).is_none_or(|m| m.enabled())
}

pub fn image(stack: &AppStack, engine: &dyn Engine) -> String {
    engine
        .metrics(&stack.spec)
        .and_then(|m| m.image.clone())
        .unwrap_or_else(|| engine.exporter().default_image.to_string())
}

/// The exporter sidecar, when the store has one.
pub fn container(ctx: &StackRef, stack: &AppStack, engine: &dyn Engine) -> Option<Container> {
    if !enabled(stack, engine) {
        return None;
    }
    let exporter = engine.exporter();
    let tls = stack.spec.tls_enabled();
    let mut security = security::container();
    security.read_only_root_filesystem = Some(true);
    Some(Container {
        name: CONTAINER.into(),
        image: Some(image(stack, engine)),
        env: Some((exporter.env)(&secret_name(&ctx.name, engine), tls)),
        ports: Some(vec![ContainerPort {
            name: Some(PORT_NAME.into()),
            container_port: exporter.port,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        volume_mounts: tls.then(|| {
            vec![VolumeMount {
                name: CA_VOLUME.into(),
                mount_path: tls::DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            }]
        }),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("10m".into())),
                ("memory".to_string(), Quantity("32Mi".into())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity("128Mi".into()),
            )])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(security),
        ..Container::default()
    })
}

/// The exporter's CA volume (the stack's CA certificate alone), with TLS.
pub fn volume(ctx: &StackRef, stack: &AppStack, engine: &dyn Engine) -> Option<Volume> {
    (enabled(stack, engine) && stack.spec.tls_enabled()).then(|| Volume {
        name: CA_VOLUME.into(),
        ..tls::component_volume(ctx)
    })
}

/// The variables that make the store's server create the monitoring user
/// (its users script or credentials container reads them), from its Secret.
pub fn user_env(ctx: &StackRef, stack: &AppStack, engine: &dyn Engine) -> Vec<EnvVar> {
    if !enabled(stack, engine) {
        return Vec::new();
    }
    let secret = secret_name(&ctx.name, engine);
    vec![
        super::env::secret_env("MONITOR_USER", &secret, "username"),
        super::env::secret_env("MONITOR_PASSWORD", &secret, "password"),
    ]
}

/// Admits `scrapers` (the operator's setting) to the exporter's port of
/// each store that has one, in that store's NetworkPolicy; nobody else:
/// neither the stack's components nor any other namespace. No scraper,
/// no rule (the port then admits nobody).
pub fn admit_scrapers(
    policies: &mut [NetworkPolicy],
    ctx: &StackRef,
    stack: &AppStack,
    scrapers: &[NetworkPolicyPeer],
) {
    if scrapers.is_empty() {
        return;
    }
    for engine in super::stores::of(&stack.spec).filter(|e| enabled(stack, *e)) {
        let name = engine.secret_name(&ctx.name);
        let Some(spec) = policies
            .iter_mut()
            .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))
            .and_then(|p| p.spec.as_mut())
        else {
            continue;
        };
        spec.ingress
            .get_or_insert_with(Vec::new)
            .push(NetworkPolicyIngressRule {
                from: Some(scrapers.to_vec()),
                ports: Some(vec![NetworkPolicyPort {
                    port: Some(IntOrString::Int(engine.exporter().port)),
                    protocol: Some("TCP".into()),
                    ..NetworkPolicyPort::default()
                }]),
            });
    }
}

/// Where scrapers run when nobody says: namespaces labelled
/// `appstack.dev/scrape-stores: "true"` (only who may label namespaces,
/// not a tenant, can add one).
pub const DEFAULT_SCRAPERS: &str =
    r#"[{"namespaceSelector":{"matchLabels":{"appstack.dev/scrape-stores":"true"}}}]"#;

/// The scrapers' peers from the setting (a JSON list of NetworkPolicy
/// peers; empty or unset: [`DEFAULT_SCRAPERS`]; `[]`: nobody).
pub fn scrapers(setting: Option<&str>) -> Result<Vec<NetworkPolicyPeer>, String> {
    let text = setting
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(DEFAULT_SCRAPERS);
    let peers: Vec<NetworkPolicyPeer> = serde_json::from_str(text)
        .map_err(|e| format!("--metrics-scrapers: a JSON list of NetworkPolicy peers: {e}"))?;
    if let Some(bad) = peers.iter().position(|p| {
        p.pod_selector.is_none() && p.namespace_selector.is_none() && p.ip_block.is_none()
    }) {
        return Err(format!(
            "--metrics-scrapers[{bad}]: a peer needs podSelector, namespaceSelector or ipBlock"
        ));
    }
    Ok(peers)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrapers_default_to_labelled_namespaces_and_may_be_none() {
        let default = scrapers(None).unwrap();
        assert_eq!(default.len(), 1);
        assert_eq!(scrapers(Some(" ")).unwrap(), default);
        assert!(scrapers(Some("[]")).unwrap().is_empty());
        assert!(scrapers(Some("[{}]")).is_err());
        assert!(scrapers(Some("nope")).is_err());
    }
}
