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

use k8s_openapi::api::core::v1::{Container, ContainerPort, EnvVar, Volume, VolumeMount};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicyPort,
};
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
        resources: Some(crate::build::pod::sidecar_resources("32Mi", "128Mi")),
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
    use crate::api::StoreKind;
    use crate::build::{Inputs, StoreCredentials, children};

    fn stack(yaml: &str) -> AppStack {
        let mut s = AppStack::new("shop", serde_yaml::from_str(yaml).unwrap());
        s.metadata.namespace = Some("ns".into());
        s.metadata.uid = Some("uid-1".into());
        s
    }

    fn inputs(peers: &str) -> Inputs {
        let mut inputs = Inputs::default();
        let creds = |u: &str| StoreCredentials {
            username: u.into(),
            password: format!("{u}-password"),
        };
        for kind in [StoreKind::Redis, StoreKind::Postgres] {
            inputs.set(kind, creds("app"));
            inputs.set_admin(kind, creds("admin"));
            inputs.set_monitor(kind, creds(MONITOR_USER));
            inputs.set_server_certificate(kind, tls::CertifiedKey::placeholder());
        }
        inputs.set_ca(tls::CertifiedKey::placeholder());
        inputs.set_metrics_scrapers(scrapers(Some(peers)).unwrap());
        inputs
    }

    const BOTH: &str = "
components: [{name: web, image: i, port: 80}]
redis: {}
postgres: {}
";

    /// The exporter mounts the CA alone (not the data, the socket or the
    /// server's key), runs read-only and unprivileged, and logs in with
    /// the monitoring Secret, which no other container of the pod names
    /// but the store's own (that creates the user).
    #[test]
    fn the_exporter_holds_the_ca_and_its_own_secret_only() {
        let out = children(&stack(BOTH), &inputs("")).unwrap();
        for sts in &out.stateful_sets {
            let pod = sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
            let exporter = pod.containers.iter().find(|c| c.name == CONTAINER).unwrap();
            let mounts: Vec<&str> = exporter
                .volume_mounts
                .iter()
                .flatten()
                .map(|m| m.name.as_str())
                .collect();
            assert_eq!(mounts, [CA_VOLUME]);
            let ca = pod
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == CA_VOLUME)
                .and_then(|v| v.secret.as_ref())
                .unwrap();
            assert_eq!(ca.secret_name.as_deref(), Some("shop-ca"));
            let sc = exporter.security_context.as_ref().unwrap();
            assert_eq!(sc.read_only_root_filesystem, Some(true));
            assert_eq!(sc.allow_privilege_escalation, Some(false));
            let env = serde_json::to_string(&exporter.env).unwrap();
            assert!(env.contains("-monitor\""), "{env}");
            assert!(!env.contains("-admin\"") && !env.contains("APP_"), "{env}");
        }
        let secrets: Vec<String> = out
            .secrets
            .iter()
            .filter_map(|s| s.metadata.name.clone())
            .filter(|n| n.ends_with("-monitor"))
            .collect();
        assert_eq!(secrets, ["shop-redis-monitor", "shop-postgres-monitor"]);
        for d in &out.deployments {
            let template = serde_json::to_string(&d.spec.as_ref().unwrap().template).unwrap();
            assert!(
                !template.contains("-monitor"),
                "a component holds a monitoring Secret"
            );
        }
    }

    /// The scrapers reach the exporter's port and nothing else; without
    /// scrapers the port admits nobody.
    #[test]
    fn only_the_scrapers_reach_the_exporters_port() {
        let rules = |scrapers: &str, store: &str| {
            let out = children(&stack(BOTH), &inputs(scrapers)).unwrap();
            let policy = out
                .network_policies
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(store))
                .cloned()
                .unwrap();
            policy.spec.unwrap().ingress.unwrap()
        };
        for (store, port) in [("shop-redis", 9121), ("shop-postgres", 9187)] {
            let with = rules(
                r#"[{"namespaceSelector":{"matchLabels":{"m":"x"}}}]"#,
                store,
            );
            let exporter: Vec<_> = with
                .iter()
                .filter(|r| {
                    serde_json::to_string(&r.ports)
                        .unwrap()
                        .contains(&port.to_string())
                })
                .collect();
            assert_eq!(exporter.len(), 1, "{with:?}");
            let rule = serde_json::to_value(exporter[0]).unwrap();
            assert_eq!(
                rule["from"],
                serde_json::json!([{"namespaceSelector": {"matchLabels": {"m": "x"}}}])
            );
            assert_eq!(
                rule["ports"],
                serde_json::json!([{"port": port, "protocol": "TCP"}])
            );
            let without = rules("[]", store);
            assert!(
                !serde_json::to_string(&without)
                    .unwrap()
                    .contains(&port.to_string())
            );
        }
    }

    #[test]
    fn metrics_off_runs_no_exporter_and_makes_no_user() {
        let off = "
components: [{name: web, image: i, port: 80}]
redis: {metrics: {enabled: false}}
postgres: {metrics: {enabled: false}}
";
        let out = children(
            &stack(off),
            &inputs(r#"[{"ipBlock":{"cidr":"10.0.0.0/8"}}]"#),
        )
        .unwrap();
        let all = serde_json::to_string(&out.to_json().unwrap()).unwrap();
        // (The scripts name the user's variables whatever the spec says.)
        for absent in [
            "\"shop-redis-monitor\"",
            "\"shop-postgres-monitor\"",
            "\"name\":\"MONITOR_USER\"",
            "9121",
            "9187",
            "\"name\":\"metrics\"",
        ] {
            assert!(!all.contains(absent), "{absent}");
        }
        let image = "
components: [{name: web, image: i, port: 80}]
postgres: {metrics: {image: my/exporter:1}}
";
        let out = children(&stack(image), &inputs("")).unwrap();
        let all = serde_json::to_string(&out.stateful_sets).unwrap();
        assert!(all.contains("\"my/exporter:1\""));
    }

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
