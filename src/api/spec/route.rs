//! A component's route from outside the cluster: an Ingress, or a Gateway
//! API HTTPRoute when `gateway` is set. Either names only the component's
//! own Service (in the stack's namespace) as its backend.

use std::collections::BTreeMap;

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How the component is reached from outside: `https://<host><path>` (or
/// http without `tls`). Needs the component's `port`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.gateway) || (!has(self.tls) && !has(self.ingressClassName))").message("spec.components[].route: tls and ingressClassName belong to an Ingress; with gateway (an HTTPRoute) TLS is set on the Gateway's listener"))]
pub struct Route {
    /// The host name the route answers for, e.g. shop.example.com (a
    /// DNS-1123 subdomain; a leading `*.` for a wildcard). Required: a
    /// route without a host would take every host the controller serves.
    #[schemars(
        length(min = 1, max = 253),
        regex(
            pattern = r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
        )
    )]
    #[x_kube(validation = Rule::new("self.split('.').all(l, size(l) <= 63)").message("spec.components[].route.host: each label (between dots) is at most 63 characters"))]
    pub host: String,

    /// The paths routed to the component. Default: `[{path: /, pathType:
    /// Prefix}]` (everything under the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 16))]
    pub paths: Option<Vec<RoutePath>>,

    /// Serve HTTPS with the certificate of a `kubernetes.io/tls` Secret of
    /// the stack's namespace (Ingress only). The Secret is the user's (or
    /// cert-manager's): AppStack never writes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<RouteTls>,

    /// The IngressClass to use. Default: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub ingress_class_name: Option<String>,

    /// Annotations of the Ingress (or HTTPRoute), passed as they are, e.g.
    /// cert-manager.io/cluster-issuer. At most 32; keys under appstack.dev/
    /// are the operator's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "annotations_schema")]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('appstack.dev/') && size(k) <= 253)").message("spec.components[].route.annotations: keys are at most 253 characters, and those under appstack.dev/ are reserved for the operator"))]
    pub annotations: Option<BTreeMap<String, String>>,

    /// Make a Gateway API HTTPRoute (gateway.networking.k8s.io/v1) attached
    /// to these Gateways instead of an Ingress. The cluster must serve the
    /// Gateway API CRDs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewayRoute>,
}

/// One path of a route.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RoutePath {
    /// An absolute path, e.g. /api.
    #[schemars(
        length(min = 1, max = 256),
        regex(pattern = r"^/[A-Za-z0-9/._~%!$&'()*+,;=:@-]*$")
    )]
    pub path: String,
    /// Prefix (default: the path and everything below it) or Exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_type: Option<PathType>,
}

/// How a path matches.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathType {
    Prefix,
    Exact,
}

/// HTTPS on an Ingress.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteTls {
    /// A Secret of type kubernetes.io/tls in the stack's namespace.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub secret_name: String,
}

/// The Gateways an HTTPRoute attaches to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GatewayRoute {
    /// The Gateways (or their listeners) to attach to. A Gateway in another
    /// namespace admits the route only if its listener's allowedRoutes says so.
    #[schemars(length(min = 1, max = 8))]
    pub parent_refs: Vec<ParentRef>,
}

/// A Gateway the route attaches to.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ParentRef {
    /// The Gateway's name.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub name: String,
    /// Its namespace. Default: the stack's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub namespace: Option<String>,
    /// One listener of the Gateway, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
    )]
    pub section_name: Option<String>,
}

/// Route annotations: at most 32, keys and values bounded.
fn annotations_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "maxProperties": 32,
        "additionalProperties": {"type": "string", "maxLength": 4096}
    })
}

impl Route {
    /// The paths, defaulted.
    pub fn paths(&self) -> Vec<RoutePath> {
        self.paths.clone().unwrap_or_else(|| {
            vec![RoutePath {
                path: "/".into(),
                path_type: None,
            }]
        })
    }

    /// Where the route is reached: scheme, host and each path.
    pub fn urls(&self) -> Vec<String> {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        self.paths()
            .iter()
            .map(|p| format!("{scheme}://{}{}", self.host, p.path))
            .collect()
    }
}

impl RoutePath {
    pub fn path_type(&self) -> PathType {
        self.path_type.unwrap_or(PathType::Prefix)
    }
}
