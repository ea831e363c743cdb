//! What the CRD's CEL rules refuse at admission, checked again before
//! building: an AppStack stored before a rule existed (or under an older
//! CRD) gets a status error that names the field, never a child that loosens
//! the pod's confinement or a NetworkPolicy the API server refuses (which
//! would leave its store open).

use std::net::IpAddr;

use k8s_openapi::api::core::v1::{PodSecurityContext, SecurityContext};
use k8s_openapi::api::networking::v1::{NetworkPolicyPeer, NetworkPolicyPort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::error::BuildError;
use super::{backup, security, stores};
use crate::api::{AppStackSpec, Component, ExtraContainer, PodVolume};

/// Pod annotations that set a container's AppArmor profile.
pub const APPARMOR_ANNOTATION: &str = "container.apparmor.security.beta.kubernetes.io/";
/// Pod annotations that set the pod's or a container's seccomp profile.
pub const SECCOMP_ANNOTATIONS: [&str; 2] = [
    "seccomp.security.alpha.kubernetes.io/pod",
    "container.seccomp.security.alpha.kubernetes.io/",
];

fn refused(field: String, message: impl Into<String>) -> BuildError {
    BuildError::NotAdmitted {
        field,
        message: message.into(),
    }
}

/// Everything about one component that admission refuses.
pub fn component(index: usize, c: &Component) -> Result<(), BuildError> {
    let at = |field: &str| format!("spec.components[{index}].{field}");
    if let Some(sc) = &c.security_context {
        container_security(sc)
            .map_err(|(field, m)| refused(at(&format!("securityContext.{field}")), m))?;
    }
    if let Some(sc) = &c.pod_security_context {
        pod_security(sc)
            .map_err(|(field, m)| refused(at(&format!("podSecurityContext.{field}")), m))?;
    }
    if let Some(annotations) = &c.pod_annotations {
        for (key, value) in annotations {
            if let Some(m) = loosening_annotation(key, value) {
                return Err(refused(at(&format!("podAnnotations[{key}]")), m));
            }
        }
    }
    if c.port.is_none() {
        let needs_port = "needs port: a component without a port (a worker) gets no Service and admits no connection";
        if c.service_type.is_some() {
            return Err(refused(at("serviceType"), needs_port));
        }
        if c.ingress_from.is_some() {
            return Err(refused(at("ingressFrom"), needs_port));
        }
    }
    let volumes = c.volumes.as_deref().unwrap_or_default();
    pod_volumes(&at("volumes"), volumes)?;
    secret_refs(&at(""), &c.env, c.env_from.as_deref())?;
    mounts(&at("volumeMounts"), c.volume_mounts.as_deref(), volumes)?;
    if let Some(m) = c.volume_mounts.iter().flatten().position(|m| {
        m.mount_path.trim_end_matches('/') == "/etc/appstack"
            || m.mount_path.starts_with("/etc/appstack/")
    }) {
        return Err(refused(
            at(&format!("volumeMounts[{m}].mountPath")),
            "/etc/appstack is the operator's (the stores' CA)",
        ));
    }
    let lists = [
        (
            "initContainers",
            c.init_containers.as_deref().unwrap_or_default(),
        ),
        ("sidecars", c.sidecars.as_deref().unwrap_or_default()),
    ];
    let mut names = vec![c.name.as_str()];
    for (list, containers) in lists {
        for (j, x) in containers.iter().enumerate() {
            let here = at(&format!("{list}[{j}]"));
            if names.contains(&x.name.as_str()) || x.name.starts_with("wait-for-") {
                return Err(refused(
                    format!("{here}.name"),
                    format!(
                        "{:?} is taken: container names must be unique in the pod, differ from the component's name and not start with wait-for- (the operator's)",
                        x.name
                    ),
                ));
            }
            names.push(&x.name);
            if list == "initContainers" && x.has_probes() {
                return Err(refused(
                    here,
                    "probes are for sidecars; an init container runs to completion",
                ));
            }
            extra_container(&here, x, volumes)?;
        }
    }
    for (i, peer) in c.ingress_from.iter().flatten().enumerate() {
        check_peer(peer)
            .map_err(|(field, m)| refused(at(&format!("ingressFrom[{i}]{field}")), m))?;
    }
    for (r, rule) in c.egress_to.iter().flatten().enumerate() {
        for (i, peer) in rule.to.iter().flatten().enumerate() {
            check_peer(peer)
                .map_err(|(field, m)| refused(at(&format!("egressTo[{r}].to[{i}]{field}")), m))?;
        }
        for (i, port) in rule.ports.iter().flatten().enumerate() {
            check_port(port).map_err(|(field, m)| {
                refused(at(&format!("egressTo[{r}].ports[{i}]{field}")), m)
            })?;
        }
    }
    Ok(())
}

/// An init container or sidecar at `field` (e.g.
/// `spec.components[0].sidecars[1]`): the same Pod Security limits as the
/// component's container, and mounts of the pod's `volumes` only.
pub fn extra_container(
    field: &str,
    x: &ExtraContainer,
    volumes: &[PodVolume],
) -> Result<(), BuildError> {
    if let Some(sc) = &x.security_context {
        container_security(sc)
            .map_err(|(f, m)| refused(format!("{field}.securityContext.{f}"), m))?;
    }
    secret_refs(&format!("{field}."), &x.env, x.env_from.as_deref())?;
    mounts(
        &format!("{field}.volumeMounts"),
        x.volume_mounts.as_deref(),
        volumes,
    )
}

/// Volumes at `field`: one allowed kind each, unique names, none of the
/// operator's.
pub fn pod_volumes(field: &str, volumes: &[PodVolume]) -> Result<(), BuildError> {
    for (i, v) in volumes.iter().enumerate() {
        let here = format!("{field}[{i}]");
        if v.persistent_volume_claim.is_some() {
            return Err(refused(
                format!("{here}.persistentVolumeClaim"),
                "not allowed: a component is stateless (any replica serves any request); state belongs in spec.redis / spec.postgres, which keep it on their own volumes and back it up",
            ));
        }
        if v.host_path.is_some() {
            return Err(refused(
                format!("{here}.hostPath"),
                "not allowed: it exposes the node's files (Pod Security baseline)",
            ));
        }
        let sources = [
            v.empty_dir.is_some(),
            v.config_map.is_some(),
            v.secret.is_some(),
            v.projected.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() != 1 {
            return Err(refused(
                here,
                "needs exactly one of emptyDir, configMap, secret or projected (other volume kinds are not allowed)",
            ));
        }
        if let Some(name) = v
            .secret
            .as_ref()
            .and_then(|s| s.secret_name.as_deref())
            .filter(|n| withheld_secret(n))
        {
            return Err(withheld(format!("{here}.secret.secretName"), name));
        }
        let projected = v.projected.iter().flat_map(|p| p.sources.iter().flatten());
        for (j, source) in projected.enumerate() {
            if let Some(secret) = source.secret.as_ref().filter(|s| withheld_secret(&s.name)) {
                return Err(withheld(
                    format!("{here}.projected.sources[{j}].secret.name"),
                    &secret.name,
                ));
            }
        }
        if v.name.starts_with("appstack-") || volumes[..i].iter().any(|o| o.name == v.name) {
            return Err(refused(
                format!("{here}.name"),
                format!(
                    "{:?} is taken: volume names must be unique and not start with appstack- (the operator's)",
                    v.name
                ),
            ));
        }
    }
    Ok(())
}

/// Secrets the operator keeps from the apps, in any stack: the stores'
/// administrators', backup users' and monitoring users' credentials, their
/// TLS keys and the CA's key. A component gets the apps' user only (least privilege), so it
/// may not name them in env, envFrom or volumes.
pub fn withheld_secret(name: &str) -> bool {
    name.ends_with("-ca-key")
        || stores::ENGINES.iter().any(|e| {
            ["admin", "backup", "tls", "monitor"]
                .iter()
                .any(|kind| name.ends_with(&format!("-{}-{kind}", e.part())))
        })
}

fn withheld(field: String, name: &str) -> BuildError {
    refused(
        field,
        format!(
            "{name:?} is a Secret the operator keeps from the apps (a store's administrator, backup or monitoring user or TLS key, or the CA's key); components get the apps' credentials only"
        ),
    )
}

/// `prefix` ends with '.' (or is empty-ended `spec.components[i].`).
fn secret_refs(
    prefix: &str,
    env: &[k8s_openapi::api::core::v1::EnvVar],
    env_from: Option<&[k8s_openapi::api::core::v1::EnvFromSource]>,
) -> Result<(), BuildError> {
    for (i, e) in env.iter().enumerate() {
        let name = e
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .map(|r| r.name.as_str());
        if let Some(name) = name.filter(|n| withheld_secret(n)) {
            return Err(withheld(
                format!("{prefix}env[{i}].valueFrom.secretKeyRef.name"),
                name,
            ));
        }
    }
    for (i, e) in env_from.unwrap_or_default().iter().enumerate() {
        if let Some(r) = e.secret_ref.as_ref().filter(|r| withheld_secret(&r.name)) {
            return Err(withheld(
                format!("{prefix}envFrom[{i}].secretRef.name"),
                &r.name,
            ));
        }
    }
    Ok(())
}

fn mounts(
    field: &str,
    mounts: Option<&[k8s_openapi::api::core::v1::VolumeMount]>,
    volumes: &[PodVolume],
) -> Result<(), BuildError> {
    for (i, m) in mounts.unwrap_or_default().iter().enumerate() {
        if !volumes.iter().any(|v| v.name == m.name) {
            return Err(refused(
                format!("{field}[{i}].name"),
                format!("{:?} is not one of the component's volumes", m.name),
            ));
        }
    }
    Ok(())
}

/// Every S3 endpoint of the spec has a port the NetworkPolicies can name.
pub fn endpoints(spec: &AppStackSpec) -> Result<(), BuildError> {
    let targets = stores::ENGINES.map(|engine| {
        (
            format!("spec.{}.backup.target.s3.endpoint", engine.part()),
            backup::s3_target(spec, engine),
        )
    });
    let restore = (
        "spec.restore.s3.endpoint".to_string(),
        spec.restore.as_ref().and_then(|r| r.s3.as_ref()),
    );
    for (field, s3) in targets.into_iter().chain([restore]) {
        if let Some(s3) = s3 {
            backup::endpoint_port(&s3.endpoint)
                .map_err(|reason| refused(field, format!("{:?}: {reason}", s3.endpoint)))?;
        }
    }
    Ok(())
}

type Problem = (&'static str, String);

fn container_security(sc: &SecurityContext) -> Result<(), Problem> {
    let added = sc.capabilities.as_ref().and_then(|c| c.add.as_ref());
    if let Some(cap) = added
        .into_iter()
        .flatten()
        .find(|c| c.as_str() != security::ADDABLE_CAPABILITY)
    {
        return Err((
            "capabilities.add",
            format!(
                "{cap:?} may not be added; only {} may (Pod Security restricted)",
                security::ADDABLE_CAPABILITY
            ),
        ));
    }
    if sc.privileged == Some(true) {
        return Err((
            "privileged",
            "must be false or unset (Pod Security baseline)".into(),
        ));
    }
    unconfined(
        sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
        sc.app_armor_profile.as_ref().map(|p| p.type_.as_str()),
    )
}

fn pod_security(sc: &PodSecurityContext) -> Result<(), Problem> {
    unconfined(
        sc.seccomp_profile.as_ref().map(|p| p.type_.as_str()),
        sc.app_armor_profile.as_ref().map(|p| p.type_.as_str()),
    )
}

fn unconfined(seccomp: Option<&str>, apparmor: Option<&str>) -> Result<(), Problem> {
    let message = || "Unconfined is not allowed (Pod Security baseline)".to_string();
    if seccomp == Some("Unconfined") {
        return Err(("seccompProfile.type", message()));
    }
    if apparmor == Some("Unconfined") {
        return Err(("appArmorProfile.type", message()));
    }
    Ok(())
}

/// The message for an AppArmor or seccomp annotation that loosens the pod's
/// confinement, or that its pods would be refused for.
pub fn loosening_annotation(key: &str, value: &str) -> Option<String> {
    if key.starts_with(APPARMOR_ANNOTATION) {
        let ok = value == "runtime/default" || value.starts_with("localhost/");
        return (!ok).then(|| {
            format!("AppArmor profile {value:?} is not allowed: use runtime/default or localhost/<profile> (Pod Security baseline)")
        });
    }
    if SECCOMP_ANNOTATIONS.iter().any(|p| key.starts_with(p)) {
        // The pods always carry a RuntimeDefault seccompProfile field (or
        // the user's), and the API server refuses an annotation that
        // disagrees with it: a Localhost profile goes in the field.
        let ok = ["runtime/default", "docker/default"].contains(&value);
        return (!ok).then(|| {
            format!("seccomp profile {value:?} is not allowed: only runtime/default (Pod Security baseline; a Localhost profile goes in seccompProfile)")
        });
    }
    None
}

/// A NetworkPolicy peer as the API server validates it.
fn check_peer(peer: &NetworkPolicyPeer) -> Result<(), Problem> {
    let Some(block) = &peer.ip_block else {
        if peer.pod_selector.is_none() && peer.namespace_selector.is_none() {
            return Err((
                "",
                "a peer needs podSelector, namespaceSelector or ipBlock".into(),
            ));
        }
        return Ok(());
    };
    if peer.pod_selector.is_some() || peer.namespace_selector.is_some() {
        return Err((
            "",
            "ipBlock cannot be combined with podSelector or namespaceSelector in one peer".into(),
        ));
    }
    let Some(cidr) = Cidr::parse(&block.cidr) else {
        return Err((".ipBlock.cidr", not_a_cidr(&block.cidr)));
    };
    for except in block.except.iter().flatten() {
        match Cidr::parse(except) {
            None => return Err((".ipBlock.except", not_a_cidr(except))),
            Some(e) if !cidr.strictly_contains(&e) => {
                return Err((
                    ".ipBlock.except",
                    format!(
                        "{except:?} is not strictly inside ipBlock.cidr {:?}",
                        block.cidr
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

fn not_a_cidr(value: &str) -> String {
    format!(
        "{value:?} is not a CIDR such as 10.0.0.0/8 or 2001:db8::/64 (no bits set after the prefix)"
    )
}

/// A NetworkPolicy port as the API server validates it.
fn check_port(port: &NetworkPolicyPort) -> Result<(), Problem> {
    if let Some(p) = &port.protocol
        && !["TCP", "UDP", "SCTP"].contains(&p.as_str())
    {
        return Err((".protocol", format!("{p:?} is not TCP, UDP or SCTP")));
    }
    let number = match &port.port {
        None => None,
        Some(IntOrString::Int(n)) => {
            if !(1..=65535).contains(n) {
                return Err((".port", format!("{n} is outside 1-65535")));
            }
            Some(*n)
        }
        Some(IntOrString::String(name)) => {
            if !is_port_name(name) {
                return Err((
                    ".port",
                    format!(
                        "{name:?} is neither a port number nor a port name (at most 15 of a-z, 0-9 and '-', with a letter)"
                    ),
                ));
            }
            None
        }
    };
    if let Some(end) = port.end_port {
        match number {
            Some(start) if (start..=65535).contains(&end) => {}
            Some(start) => {
                return Err((".endPort", format!("{end} is outside {start}-65535")));
            }
            None => {
                return Err((".endPort", "needs a numeric port".into()));
            }
        }
    }
    Ok(())
}

/// An IANA service name, as Kubernetes takes it for a named port.
fn is_port_name(name: &str) -> bool {
    let b = name.as_bytes();
    (1..=15).contains(&b.len())
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b.iter().any(u8::is_ascii_lowercase)
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
        && !name.contains("--")
}

/// A CIDR as the CEL library's isCIDR takes it, in canonical form.
#[derive(Debug, PartialEq, Eq)]
struct Cidr {
    bits: u128,
    prefix: u8,
    v4: bool,
}

impl Cidr {
    fn parse(text: &str) -> Option<Self> {
        let (ip, prefix) = text.split_once('/')?;
        let ip: IpAddr = ip.parse().ok()?;
        // Like Go's netip: digits only, no leading zero.
        let digits = !prefix.is_empty()
            && prefix.len() <= 3
            && prefix.bytes().all(|b| b.is_ascii_digit())
            && (prefix == "0" || !prefix.starts_with('0'));
        if !digits {
            return None;
        }
        let prefix: u8 = prefix.parse().ok()?;
        let (bits, v4, width) = match ip {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), true, 32),
            // The CEL library refuses IPv4-mapped IPv6 addresses.
            IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some() => return None,
            IpAddr::V6(v6) => (u128::from(v6), false, 128),
        };
        if prefix > width {
            return None;
        }
        let cidr = Cidr { bits, prefix, v4 };
        (cidr.network(prefix) == bits).then_some(cidr)
    }

    /// The address with only the first `prefix` bits kept.
    fn network(&self, prefix: u8) -> u128 {
        let width = if self.v4 { 32 } else { 128 };
        let host = width - u32::from(prefix);
        if host >= 128 {
            0
        } else {
            (self.bits >> host) << host
        }
    }

    fn strictly_contains(&self, other: &Cidr) -> bool {
        self.v4 == other.v4 && other.prefix > self.prefix && other.network(self.prefix) == self.bits
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn component(extra: serde_json::Value) -> Component {
        let mut c = json!({"name": "web", "image": "i", "port": 8080});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        serde_json::from_value(c).unwrap()
    }

    fn error(extra: serde_json::Value) -> String {
        super::component(3, &component(extra))
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn only_net_bind_service_may_be_added() {
        let ok = component(
            json!({"securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE"], "drop": ["NET_RAW"]}}}),
        );
        assert_eq!(super::component(0, &ok), Ok(()));
        for cap in ["NET_RAW", "SYS_ADMIN", "ALL"] {
            let e = error(
                json!({"securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE", cap]}}}),
            );
            assert!(
                e.starts_with("spec.components[3].securityContext.capabilities.add: ")
                    && e.contains(cap),
                "{e}"
            );
        }
    }

    #[test]
    fn loosened_confinement_is_refused_with_its_field() {
        let cases = [
            (
                json!({"securityContext": {"privileged": true}}),
                "securityContext.privileged",
            ),
            (
                json!({"securityContext": {"seccompProfile": {"type": "Unconfined"}}}),
                "securityContext.seccompProfile.type",
            ),
            (
                json!({"podSecurityContext": {"appArmorProfile": {"type": "Unconfined"}}}),
                "podSecurityContext.appArmorProfile.type",
            ),
            (
                json!({"podAnnotations": {"container.apparmor.security.beta.kubernetes.io/web": "unconfined"}}),
                "podAnnotations[container.apparmor.security.beta.kubernetes.io/web]",
            ),
            (
                json!({"podAnnotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}}),
                "podAnnotations[seccomp.security.alpha.kubernetes.io/pod]",
            ),
            (
                json!({"podAnnotations": {"container.seccomp.security.alpha.kubernetes.io/web": "unconfined"}}),
                "podAnnotations[container.seccomp.security.alpha.kubernetes.io/web]",
            ),
        ];
        for (extra, field) in cases {
            let e = error(extra.clone());
            assert!(
                e.starts_with(&format!("spec.components[3].{field}: ")),
                "{extra}: {e}"
            );
        }
        let fine = component(json!({"podAnnotations": {
            "container.apparmor.security.beta.kubernetes.io/web": "localhost/web",
            "seccomp.security.alpha.kubernetes.io/pod": "runtime/default",
            "prometheus.io/scrape": "true"
        }}));
        assert_eq!(super::component(0, &fine), Ok(()));
        // A Localhost profile by annotation would disagree with the field.
        let e = error(
            json!({"podAnnotations": {"seccomp.security.alpha.kubernetes.io/pod": "localhost/p.json"}}),
        );
        assert!(e.contains("seccompProfile"), "{e}");
    }

    #[test]
    fn workers_and_pod_settings_name_the_field() {
        let worker = |extra: serde_json::Value| {
            let mut c = component(extra);
            c.port = None;
            super::component(3, &c)
        };
        let cases = [
            (json!({"serviceType": "NodePort"}), "serviceType"),
            (
                json!({"ingressFrom": [{"namespaceSelector": {}}]}),
                "ingressFrom",
            ),
            (
                json!({"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "c"}}]}),
                "volumes[0].persistentVolumeClaim",
            ),
            (
                json!({"volumes": [{"name": "root", "hostPath": {"path": "/"}}]}),
                "volumes[0].hostPath",
            ),
            (json!({"volumes": [{"name": "none"}]}), "volumes[0]"),
            (
                json!({"volumes": [{"name": "appstack-tls", "emptyDir": {}}]}),
                "volumes[0].name",
            ),
            (
                json!({"volumeMounts": [{"name": "nope", "mountPath": "/x"}]}),
                "volumeMounts[0].name",
            ),
            (
                json!({"volumes": [{"name": "v", "emptyDir": {}}], "volumeMounts": [{"name": "v", "mountPath": "/etc/appstack/tls"}]}),
                "volumeMounts[0].mountPath",
            ),
            (
                json!({"sidecars": [{"name": "p", "securityContext": {"privileged": true}}]}),
                "sidecars[0].securityContext.privileged",
            ),
            (
                json!({"initContainers": [{"name": "i", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}]}),
                "initContainers[0].securityContext.capabilities.add",
            ),
            (
                json!({"initContainers": [{"name": "i", "readinessProbe": {"exec": {"command": ["true"]}}}]}),
                "initContainers[0]",
            ),
            (
                json!({"initContainers": [{"name": "web"}]}),
                "initContainers[0].name",
            ),
            (
                json!({"initContainers": [{"name": "a"}], "sidecars": [{"name": "a"}]}),
                "sidecars[0].name",
            ),
            (
                json!({"sidecars": [{"name": "wait-for-redis"}]}),
                "sidecars[0].name",
            ),
            (
                json!({"sidecars": [{"name": "s", "volumeMounts": [{"name": "x", "mountPath": "/x"}]}]}),
                "sidecars[0].volumeMounts[0].name",
            ),
            (
                json!({"envFrom": [{"secretRef": {"name": "shop-postgres-admin"}}]}),
                "envFrom[0].secretRef.name",
            ),
            (
                json!({"env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "other-ca-key", "key": "tls.key"}}}]}),
                "env[0].valueFrom.secretKeyRef.name",
            ),
            (
                json!({"volumes": [{"name": "k", "secret": {"secretName": "shop-redis-tls"}}]}),
                "volumes[0].secret.secretName",
            ),
            (
                json!({"volumes": [{"name": "k", "projected": {"sources": [{"configMap": {"name": "c"}}, {"secret": {"name": "shop-redis-backup"}}]}}]}),
                "volumes[0].projected.sources[1].secret.name",
            ),
            (
                json!({"sidecars": [{"name": "s", "envFrom": [{"secretRef": {"name": "shop-redis-admin"}}]}]}),
                "sidecars[0].envFrom[0].secretRef.name",
            ),
            (
                json!({"env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "shop-postgres-monitor", "key": "password"}}}]}),
                "env[0].valueFrom.secretKeyRef.name",
            ),
            (
                json!({"volumes": [{"name": "k", "secret": {"secretName": "other-redis-monitor"}}]}),
                "volumes[0].secret.secretName",
            ),
        ];
        for (extra, field) in cases {
            let e = worker(extra.clone()).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("spec.components[3].{field}: ")),
                "{extra}: {e}"
            );
        }
        let fine = json!({
            "volumes": [{"name": "scratch", "emptyDir": {}}, {"name": "conf", "configMap": {"name": "c"}}],
            "volumeMounts": [{"name": "conf", "mountPath": "/etc/shop"}],
            "initContainers": [{"name": "seed", "volumeMounts": [{"name": "scratch", "mountPath": "/s"}]}],
            "sidecars": [{"name": "proxy", "readinessProbe": {"tcpSocket": {"port": 9}},
                          "securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE"]}}}]
        });
        assert_eq!(worker(fine), Ok(()));
    }

    #[test]
    fn cidrs_as_the_api_server_takes_them() {
        for good in [
            "10.0.0.0/8",
            "0.0.0.0/0",
            "192.168.1.7/32",
            "2001:db8::/64",
            "::/0",
        ] {
            assert!(Cidr::parse(good).is_some(), "{good}");
        }
        for bad in [
            "10.0.0.1/8",
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0.0/08",
            "010.0.0.0/8",
            "10.0.0.0/",
            "::ffff:10.0.0.0/104",
            "2001:db8::1/64",
            "not-a-cidr",
            "10.0.0.0/8 ",
        ] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
        let outer = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(outer.strictly_contains(&Cidr::parse("10.1.0.0/16").unwrap()));
        assert!(!outer.strictly_contains(&Cidr::parse("10.0.0.0/8").unwrap()));
        assert!(!outer.strictly_contains(&Cidr::parse("11.0.0.0/16").unwrap()));
        assert!(!outer.strictly_contains(&Cidr::parse("::/64").unwrap()));
    }

    #[test]
    fn network_policy_fields_name_the_field() {
        let cases = [
            (
                json!({"ingressFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}}, {"ipBlock": {"cidr": "everywhere"}}]}),
                "ingressFrom[1].ipBlock.cidr",
            ),
            (
                json!({"ingressFrom": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]}}]}),
                "ingressFrom[0].ipBlock.except",
            ),
            (
                json!({"ingressFrom": [{"ipBlock": {"cidr": "10.0.0.0/8"}, "podSelector": {}}]}),
                "ingressFrom[0]",
            ),
            (json!({"ingressFrom": [{}]}), "ingressFrom[0]"),
            (
                json!({"egressTo": [{"ports": [{"port": 443}, {"port": 99999}]}]}),
                "egressTo[0].ports[1].port",
            ),
            (
                json!({"egressTo": [{"ports": [{"port": 0}]}]}),
                "egressTo[0].ports[0].port",
            ),
            (
                json!({"egressTo": [{"ports": [{"port": "8080"}]}]}),
                "egressTo[0].ports[0].port",
            ),
            (
                json!({"egressTo": [{"ports": [{"port": 8000, "endPort": 7000}]}]}),
                "egressTo[0].ports[0].endPort",
            ),
            (
                json!({"egressTo": [{"ports": [{"port": "https", "endPort": 9000}]}]}),
                "egressTo[0].ports[0].endPort",
            ),
            (
                json!({"egressTo": [{"ports": [{"port": 53, "protocol": "ICMP"}]}]}),
                "egressTo[0].ports[0].protocol",
            ),
            (
                json!({"egressTo": [{"to": [{"ipBlock": {"cidr": "10.0.0.1/8"}}]}]}),
                "egressTo[0].to[0].ipBlock.cidr",
            ),
        ];
        for (extra, field) in cases {
            let e = error(extra.clone());
            assert!(
                e.starts_with(&format!("spec.components[3].{field}: ")),
                "{extra}: {e}"
            );
        }
        let fine = component(json!({
            "ingressFrom": [{"namespaceSelector": {}}, {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}],
            "egressTo": [{"to": [{"ipBlock": {"cidr": "2001:db8::/32"}}], "ports": [{"port": "https"}, {"port": 8000, "endPort": 8100, "protocol": "UDP"}]}]
        }));
        assert_eq!(super::component(0, &fine), Ok(()));
    }

    #[test]
    fn endpoint_ports_in_range_or_a_clear_error() {
        let cases = [
            ("https://s3.eu-west-1.amazonaws.com", Ok(443)),
            ("http://minio.storage.svc", Ok(80)),
            ("http://minio.storage.svc:9000", Ok(9000)),
            ("http://10.0.0.1:65535", Ok(65535)),
            ("http://[fd00::1]:9000", Ok(9000)),
            ("https://[fd00::1]", Ok(443)),
        ];
        for (endpoint, port) in cases {
            assert_eq!(backup::endpoint_port(endpoint), port, "{endpoint}");
        }
        for bad in [
            "http://minio:99999",
            "http://minio:0",
            "http://minio:",
            "http://minio:-1",
            "http://minio:4294967376",
            "http://minio:9000:1",
            "http://[fd00::1]x",
            "http://[fd00::1",
            "ftp://minio",
        ] {
            assert!(backup::endpoint_port(bad).is_err(), "{bad}");
        }
        let spec: AppStackSpec = serde_json::from_value(json!({
            "components": [{"name": "web", "image": "i", "port": 8080}],
            "postgres": {"backup": {"target": {"s3": {"bucket": "b", "endpoint": "http://minio:99999", "secretName": "k"}}}}
        }))
        .unwrap();
        let e = endpoints(&spec).unwrap_err().to_string();
        assert!(
            e.starts_with("spec.postgres.backup.target.s3.endpoint: \"http://minio:99999\""),
            "{e}"
        );
        let spec: AppStackSpec = serde_json::from_value(json!({
            "components": [{"name": "web", "image": "i", "port": 8080}],
            "redis": {},
            "restore": {"from": "old", "s3": {"bucket": "b", "endpoint": "https://s3:0", "secretName": "k"}}
        }))
        .unwrap();
        let e = endpoints(&spec).unwrap_err().to_string();
        assert!(e.starts_with("spec.restore.s3.endpoint: "), "{e}");
    }
}
