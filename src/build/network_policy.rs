//! NetworkPolicies drawn from the `uses` graph: a store admits only the pods
//! of the components that use it, on its one port, and may itself reach
//! nothing but DNS; a component admits its own port (from whom
//! `ingressFrom` says, default anyone) and, when `egressTo` is set, reaches
//! only DNS, the stores it uses and those rules. A store's backup pods may
//! reach it, and nothing else but DNS. Nobody else in the cluster
//! knows who the clients of a store are; AppStack does.

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::engine::Engine;
use super::meta::StackRef;
use super::stores;
use super::{backup, labels, migration, names, scheduled};
use crate::api::{AppStackSpec, Component};

const DNS_PORT: i32 = 53;

/// One per store and one per component, unless the spec switches them off.
/// `route_controllers` are the ingress controllers' peers, admitted to a
/// routed component whose `ingressFrom` would otherwise keep them out.
/// `operator` is who the operator's pods are, admitted by a replicated
/// store (it reads its instances).
pub fn build(
    ctx: &StackRef,
    spec: &AppStackSpec,
    route_controllers: &[NetworkPolicyPeer],
    operator: Option<&NetworkPolicyPeer>,
) -> Vec<NetworkPolicy> {
    if !spec.network_policies_enabled() {
        return Vec::new();
    }
    let stores = stores::of(spec).map(|e| store(ctx, spec, e, operator));
    let components = spec
        .components
        .iter()
        .map(|c| component(ctx, spec, c, route_controllers));
    let backups = stores::of(spec)
        .filter(|e| e.backup(spec).is_some())
        .map(|e| backup_pods(ctx, spec, e));
    let migrations = spec
        .components
        .iter()
        .filter(|c| c.migrate.is_some())
        .map(|c| {
            run_to_completion(
                ctx,
                spec,
                c,
                &migration::part(&c.name),
                labels::ROLE_MIGRATE,
            )
        });
    let jobs = spec.jobs.iter().enumerate().filter_map(|(i, j)| {
        let c = scheduled::as_component(i, j).ok()?;
        Some(run_to_completion(ctx, spec, &c, &j.name, labels::ROLE_JOB))
    });
    stores
        .chain(components)
        .chain(backups)
        .chain(migrations)
        .chain(jobs)
        .collect()
}

/// The pods of a migration or a scheduled job (`part`), wired as component
/// `c`: nothing may connect to them, and with `egressTo` they reach what
/// the component may.
fn run_to_completion(
    ctx: &StackRef,
    spec: &AppStackSpec,
    c: &Component,
    part: &str,
    role: &str,
) -> NetworkPolicy {
    // No ingress at all, so the route controllers are not needed.
    let mut policy = component(ctx, spec, c, &[]);
    policy.metadata = ctx.object_meta(names::component(&ctx.name, part), part, role);
    if let Some(p) = policy.spec.as_mut() {
        p.pod_selector = Some(selector(ctx.selector(part)));
        p.ingress = Some(Vec::new());
    }
    policy
}

/// The parts whose pods are `engine`'s clients: the components that use
/// it, their migrations and the scheduled jobs that use it.
fn clients(spec: &AppStackSpec, engine: &dyn Engine) -> Vec<String> {
    let mut clients: Vec<String> = spec
        .components
        .iter()
        .filter(|c| engine.used_by(spec, c))
        .map(|c| c.name.clone())
        .collect();
    clients.extend(
        spec.components
            .iter()
            .filter(|c| c.migrate.is_some() && engine.used_by(spec, c))
            .map(|c| migration::part(&c.name)),
    );
    clients.extend(spec.jobs.iter().enumerate().filter_map(|(i, j)| {
        let c = scheduled::as_component(i, j).ok()?;
        engine.used_by(spec, &c).then(|| j.name.clone())
    }));
    clients
}

/// A store's backup pods: nothing may connect to them, and they reach only
/// DNS and their store.
fn backup_pods(ctx: &StackRef, spec: &AppStackSpec, engine: &dyn Engine) -> NetworkPolicy {
    let part = backup::part(engine);
    NetworkPolicy {
        metadata: ctx.object_meta(backup::name(&ctx.name, engine), &part, labels::ROLE_BACKUP),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(ctx.selector(&part))),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(Vec::new()),
            egress: Some(
                [
                    dns(),
                    NetworkPolicyEgressRule {
                        to: Some(vec![NetworkPolicyPeer {
                            pod_selector: Some(selector(ctx.selector(engine.part()))),
                            ..NetworkPolicyPeer::default()
                        }]),
                        ports: Some(vec![tcp(engine.port())]),
                    },
                ]
                .into_iter()
                .chain(backup::s3_target(spec, engine).and_then(|s| object_store(&s.endpoint)))
                .collect(),
            ),
        }),
    }
}

fn store(
    ctx: &StackRef,
    spec: &AppStackSpec,
    engine: &dyn Engine,
    operator: Option<&NetworkPolicyPeer>,
) -> NetworkPolicy {
    let mut clients = clients(spec, engine);
    // Its backup pods take their backups over the network too.
    if engine.backup(spec).is_some() {
        clients.push(backup::part(engine));
    }
    // No client, no ingress rule: nothing may connect.
    let ingress = (!clients.is_empty()).then(|| {
        vec![NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                pod_selector: Some(components_selector(ctx, clients)),
                ..NetworkPolicyPeer::default()
            }]),
            ports: Some(
                std::iter::once(engine.port())
                    .chain(engine.client_ports(spec))
                    .map(tcp)
                    .collect(),
            ),
        }]
    });
    // With replicas, its pods replicate from each other (PostgreSQL's
    // streaming and rewind, Redis's replication and Sentinels): both ways,
    // on those ports only; the operator reaches them on the same ports (WAL
    // positions and the promotion, who the master is).
    let peer_ports = engine.peer_ports(spec);
    let peers = (!peer_ports.is_empty()).then(|| {
        (
            NetworkPolicyPeer {
                pod_selector: Some(selector(ctx.selector(engine.part()))),
                ..NetworkPolicyPeer::default()
            },
            peer_ports.into_iter().map(tcp).collect::<Vec<_>>(),
        )
    });
    let mut ingress = ingress.unwrap_or_default();
    let mut egress: Vec<NetworkPolicyEgressRule> = std::iter::once(dns())
        .chain(object_stores(backup::store_endpoints(spec, engine)))
        .collect();
    if let Some((peer, ports)) = peers {
        ingress.push(NetworkPolicyIngressRule {
            from: Some(
                std::iter::once(peer.clone())
                    .chain(operator.cloned())
                    .collect(),
            ),
            ports: Some(ports.clone()),
        });
        egress.push(NetworkPolicyEgressRule {
            to: Some(vec![peer]),
            ports: Some(ports),
        });
    }
    NetworkPolicy {
        metadata: ctx.object_meta(
            engine.secret_name(&ctx.name),
            engine.part(),
            labels::ROLE_STORE,
        ),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(ctx.selector(engine.part()))),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ingress: Some(ingress),
            egress: Some(egress),
        }),
    }
}

fn component(
    ctx: &StackRef,
    spec: &AppStackSpec,
    c: &Component,
    route_controllers: &[NetworkPolicyPeer],
) -> NetworkPolicy {
    // None admits anyone already; a list gets the controllers added, so the
    // route works whoever else `ingressFrom` names.
    let from = c.ingress_from.clone().map(|mut peers| {
        if c.route.is_some() {
            peers.extend(route_controllers.iter().cloned());
        }
        peers
    });
    let mut types = vec!["Ingress".to_string()];
    let egress = c.egress_to.as_ref().map(|rules| {
        types.push("Egress".into());
        let mut egress = vec![dns()];
        // Only the stores the stack runs: an external store's address is
        // the user's to allow, in egressTo.
        egress.extend(
            stores::used_by(spec, c)
                .filter(|e| e.in_cluster(spec))
                .map(|e| NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        pod_selector: Some(selector(ctx.selector(e.part()))),
                        ..NetworkPolicyPeer::default()
                    }]),
                    ports: Some(
                        std::iter::once(e.port())
                            .chain(e.client_ports(spec))
                            .map(tcp)
                            .collect(),
                    ),
                }),
        );
        egress.extend(rules.iter().cloned());
        egress
    });
    NetworkPolicy {
        metadata: ctx.object_meta(
            names::component(&ctx.name, &c.name),
            &c.name,
            labels::ROLE_APP,
        ),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(selector(ctx.selector(&c.name))),
            policy_types: Some(types),
            // A worker (no port) admits nothing; otherwise its port, from
            // anywhere (None) or the peers of `ingressFrom` (plus the route
            // controllers').
            ingress: Some(
                c.port
                    .map(|port| NetworkPolicyIngressRule {
                        from,
                        ports: Some(vec![tcp(port)]),
                    })
                    .into_iter()
                    .collect(),
            ),
            egress,
        }),
    }
}

/// The pods of these components of the stack.
fn components_selector(ctx: &StackRef, components: Vec<String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(
            labels::INSTANCE.to_string(),
            ctx.name.clone(),
        )])),
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: labels::NAME.into(),
            operator: "In".into(),
            values: Some(components),
        }]),
    }
}

fn selector(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        ..LabelSelector::default()
    }
}

fn tcp(port: i32) -> NetworkPolicyPort {
    NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..NetworkPolicyPort::default()
    }
}

/// An S3 endpoint, by its port: where it runs (in the cluster, or outside)
/// is not known here, so any address on that port. An endpoint without a
/// valid port gets no rule (the build refused it before this runs).
fn object_store(endpoint: &str) -> Option<NetworkPolicyEgressRule> {
    Some(NetworkPolicyEgressRule {
        to: None,
        ports: Some(vec![tcp(backup::endpoint_port(endpoint).ok()?)]),
    })
}

/// One rule per port of these S3 endpoints.
fn object_stores(endpoints: Vec<&str>) -> Vec<NetworkPolicyEgressRule> {
    let mut ports: Vec<i32> = endpoints
        .into_iter()
        .filter_map(|e| backup::endpoint_port(e).ok())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
        .into_iter()
        .map(|port| NetworkPolicyEgressRule {
            to: None,
            ports: Some(vec![tcp(port)]),
        })
        .collect()
}

/// Name lookups, wherever the cluster's DNS runs.
fn dns() -> NetworkPolicyEgressRule {
    NetworkPolicyEgressRule {
        to: None,
        ports: Some(
            ["UDP", "TCP"]
                .map(|protocol| NetworkPolicyPort {
                    port: Some(IntOrString::Int(DNS_PORT)),
                    protocol: Some(protocol.into()),
                    ..NetworkPolicyPort::default()
                })
                .to_vec(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::AppStack;
    use serde_json::json;

    fn policies(spec: serde_json::Value) -> Vec<NetworkPolicy> {
        policies_with(spec, Vec::new())
    }

    fn policies_with(
        spec: serde_json::Value,
        controllers: Vec<NetworkPolicyPeer>,
    ) -> Vec<NetworkPolicy> {
        let stack: AppStack = serde_json::from_value(json!({
            "apiVersion": "appstack.dev/v1alpha1", "kind": "AppStack",
            "metadata": {"name": "s", "namespace": "n", "uid": "u"},
            "spec": spec,
        }))
        .unwrap();
        let mut inputs = crate::build::Inputs::default();
        for kind in crate::build::stores::ENGINES.map(|e| e.kind()) {
            let creds = crate::build::StoreCredentials {
                username: "u".into(),
                password: "p".into(),
            };
            inputs.set(kind, creds.clone());
            inputs.set_admin(kind, creds.clone());
            inputs.set_monitor(kind, creds);
            inputs.set_server_certificate(kind, crate::build::tls::CertifiedKey::placeholder());
        }
        inputs.set_ca(crate::build::tls::CertifiedKey::placeholder());
        inputs.set_route_controllers(controllers);
        crate::build::children(&stack, &inputs)
            .unwrap()
            .network_policies
    }

    fn named<'a>(all: &'a [NetworkPolicy], name: &str) -> &'a NetworkPolicySpec {
        all.iter()
            .find(|p| p.metadata.name.as_deref() == Some(name))
            .and_then(|p| p.spec.as_ref())
            .unwrap()
    }

    #[test]
    fn a_store_no_component_uses_admits_nobody() {
        let all = policies(json!({
            "components": [{"name": "web", "image": "i", "port": 80, "uses": ["redis"]}],
            "redis": {}, "postgres": {}
        }));
        let pg = named(&all, "s-postgres");
        assert_eq!(pg.ingress.as_deref(), Some(&[][..]));
        let redis = named(&all, "s-redis");
        let from = redis.ingress.as_ref().unwrap()[0].from.as_ref().unwrap();
        let clients = from[0]
            .pod_selector
            .as_ref()
            .unwrap()
            .match_expressions
            .as_ref()
            .unwrap();
        assert_eq!(clients[0].values.as_deref(), Some(&["web".to_string()][..]));
    }

    #[test]
    fn egress_to_limits_a_component_to_dns_its_stores_and_the_rules() {
        let all = policies(json!({
            "components": [{"name": "web", "image": "i", "port": 80, "uses": ["postgres"],
                            "egressTo": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"}}]}],
                            "ingressFrom": [{"namespaceSelector": {"matchLabels": {"team": "edge"}}}]}],
            "redis": {}, "postgres": {}
        }));
        let web = named(&all, "s-web");
        assert_eq!(
            web.policy_types.as_deref(),
            Some(&["Ingress".to_string(), "Egress".to_string()][..])
        );
        let egress = web.egress.as_ref().unwrap();
        assert_eq!(egress.len(), 3, "DNS, postgres (not redis), the rule");
        assert_eq!(
            egress[1].ports.as_ref().unwrap()[0].port,
            Some(IntOrString::Int(5432))
        );
        assert!(
            web.ingress.as_ref().unwrap()[0].from.as_ref().unwrap()[0]
                .namespace_selector
                .is_some()
        );
    }

    #[test]
    fn switched_off_there_are_none() {
        let all = policies(json!({
            "components": [{"name": "web", "image": "i", "port": 80}],
            "redis": {}, "networkPolicy": {"enabled": false}
        }));
        assert!(all.is_empty());
    }

    #[test]
    fn a_routed_component_admits_the_ingress_controllers_besides_ingress_from() {
        let controllers: Vec<NetworkPolicyPeer> = serde_json::from_value(json!([
            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "traefik"}}}
        ]))
        .unwrap();
        let only_edge = json!([{"namespaceSelector": {"matchLabels": {"team": "edge"}}}]);
        let all = policies_with(
            json!({"components": [
                {"name": "web", "image": "i", "port": 80, "ingressFrom": only_edge, "route": {"host": "a.example"}},
                {"name": "api", "image": "i", "port": 81, "ingressFrom": only_edge},
                {"name": "open", "image": "i", "port": 82, "route": {"host": "b.example"}}
            ]}),
            controllers.clone(),
        );
        let from = |name: &str| named(&all, name).ingress.as_ref().unwrap()[0].from.clone();
        let web = from("s-web").unwrap();
        assert_eq!(web.len(), 2);
        assert_eq!(web[1], controllers[0]);
        // Not routed: ingressFrom alone.
        assert_eq!(from("s-api").unwrap().len(), 1);
        // No ingressFrom: anyone already, the controllers included.
        assert_eq!(from("s-open"), None);
    }
}
