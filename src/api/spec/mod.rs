//! The AppStack spec: what a team writes. Doc comments become the CRD's
//! descriptions (`kubectl explain appstack.spec...`); x_kube rules become CEL
//! validations the API server enforces at admission.
//!
//! One file per sub-tree: the stack (here), its components, its stores,
//! their backups and the restore of a new stack.

mod backup;
mod component;
mod jobs;
mod metrics;
mod pod;
mod restore;
mod route;
mod stores;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

pub use backup::{BackupSpec, S3Spec};
pub use component::{Autoscaling, Component, ServiceType};
pub use jobs::{ConcurrencyPolicy, Migrate, ScheduledJob};
pub use metrics::MetricsSpec;
pub use pod::{ExtraContainer, PodDefaults, PodVolume};
pub use restore::RestoreSpec;
pub use route::{PathType, Route};
pub use stores::{
    DataDurability, ExternalStore, PostgresSpec, RedisSpec, StorageSpec, StoreKind, SynchronousSpec,
};

use super::status::AppStackStatus;

/// An application whose servers are cattle: stateless components that any
/// replica can serve, and the state they need in Redis and PostgreSQL, wired
/// together by the operator.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "appstack.dev",
    version = "v1alpha1",
    kind = "AppStack",
    plural = "appstacks",
    shortname = "aps",
    namespaced,
    status = "AppStackStatus",
    derive = "PartialEq",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Components","type":"string","jsonPath":".status.componentsReady"}"#,
    printcolumn = r#"{"name":"Redis","type":"boolean","jsonPath":".status.redis.ready"}"#,
    printcolumn = r#"{"name":"Postgres","type":"boolean","jsonPath":".status.postgres.ready"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#,
    validation = Rule::new("self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("metadata.name: must be a DNS-1035 label (lower-case letters, digits and '-', starting with a letter, no '.'), because it prefixes Service names"),
    validation = Rule::new("!(has(self.spec.redis) || has(self.spec.postgres)) || size(self.metadata.name) <= 43").message("metadata.name: at most 43 characters when the stack has a store, so that <name>-postgres-headless and the StatefulSet's pod names stay valid"),
    validation = Rule::new("self.spec.components.all(c, size(self.metadata.name) + size(c.name) <= 62)").message("metadata.name + spec.components[].name: together at most 62 characters, so that <name>-<component> is a valid object name"),
    validation = Rule::new("self.spec.components.all(c, !has(c.migrate) || size(self.metadata.name) + size(c.name) <= 54)").message("metadata.name + spec.components[].name: together at most 54 characters for a component with migrate, so that <name>-<component>-migrate is a valid object name"),
    validation = Rule::new("!has(self.spec.jobs) || self.spec.jobs.all(j, size(self.metadata.name) + size(j.name) <= 51)").message("metadata.name + spec.jobs[].name: together at most 51 characters, so that the CronJob <name>-<job> fits in 52")
)]
#[x_kube(validation = Rule::new("!has(self.postgres) || !has(self.postgres.backup) || !has(self.tls) || !has(self.tls.enabled) || self.tls.enabled").message("spec.postgres.backup: needs TLS (spec.tls.enabled: true): a base backup streams every row over the network"))]
#[x_kube(validation = Rule::new("self.components.all(c, !has(c.uses) || c.uses.all(u, (u == 'redis' && has(self.redis)) || (u == 'postgres' && has(self.postgres))))").message("spec.components[].uses: names a store this stack does not have; add the redis or postgres section, or remove it from uses"))]
#[x_kube(validation = Rule::new("!has(self.restore) || ((!has(self.postgres) || !has(self.postgres.external) || (has(self.restore.stores) && !self.restore.stores.exists(s, s == 'postgres'))) && (!has(self.redis) || !has(self.redis.external) || (has(self.restore.stores) && !self.restore.stores.exists(s, s == 'redis'))))").message("spec.restore.stores: names an external store (spec.<store>.external); the operator restores only the stores it runs, so list the others in spec.restore.stores"))]
#[x_kube(validation = Rule::new("!has(self.jobs) || self.jobs.all(j, !has(j.uses) || j.uses.all(u, (u == 'redis' && has(self.redis)) || (u == 'postgres' && has(self.postgres))))").message("spec.jobs[].uses: names a store this stack does not have; add the redis or postgres section, or remove it from uses"))]
#[x_kube(validation = Rule::new("!has(self.jobs) || self.jobs.all(j, !self.components.exists(c, c.name == j.name))").message("spec.jobs[].name: a component has that name; components and jobs share the names of their NetworkPolicies (<stack>-<name>)"))]
#[x_kube(validation = Rule::new("self.components.all(c, !has(c.migrate) || (!self.components.exists(d, d.name == c.name + '-migrate') && (!has(self.jobs) || !self.jobs.exists(j, j.name == c.name + '-migrate'))))").message("spec.components[].name: <component>-migrate is taken by the migration of the component of that name"))]
#[serde(rename_all = "camelCase")]
pub struct AppStackSpec {
    /// The stateless components: each becomes a Deployment (with a Service, a
    /// PodDisruptionBudget and, when autoscaling is set, an HPA). Any replica
    /// must be able to serve any request: keep state in the stores.
    #[schemars(length(min = 1, max = 20))]
    #[x_kube(validation = Rule::new("self.all(x, self.exists_one(y, y.name == x.name))").message("spec.components: component names must be unique"))]
    pub components: Vec<Component>,

    /// Pod settings every component inherits unless it sets the field itself
    /// (imagePullSecrets, serviceAccountName, nodeSelector, tolerations,
    /// affinity, topologySpreadConstraints, priorityClassName): e.g. a
    /// private registry's pull Secret or a node pool, said once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_defaults: Option<PodDefaults>,

    /// Redis for sessions and caches: a one-replica StatefulSet with the
    /// append-only file on a PersistentVolumeClaim and a generated password.
    /// Omit the section for no Redis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisSpec>,

    /// PostgreSQL for durable data: a one-replica StatefulSet on a
    /// PersistentVolumeClaim with a generated password. Omit the section for
    /// no PostgreSQL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<PostgresSpec>,

    /// Keep the stores' PersistentVolumeClaims (your data) when the AppStack is
    /// deleted or a store section is removed. Default true; set false to have
    /// them deleted with their StatefulSet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain_data_on_delete: Option<bool>,

    /// NetworkPolicies drawn from `uses`, on by default: each store admits
    /// only the pods of the components that use it, and reaches nothing but
    /// DNS; each component admits its port (see `ingressFrom`, `egressTo`).
    /// They take effect only where the cluster's network plugin enforces
    /// NetworkPolicy (Calico, Cilium, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySpec>,

    /// TLS between the components and the stores, on by default: the
    /// operator keeps a CA per stack and a server certificate per store
    /// (renewed before expiry); the stores accept only TLS from the network,
    /// and components get `rediss://` and `sslmode=verify-full` URLs with
    /// the CA mounted at /etc/appstack/tls/ca.crt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,

    /// Bootstrap the stores of a new stack from the backups of a stack in
    /// this namespace: this one after it was deleted, or another one (a
    /// clone). Used only while a store's volume is empty; the components
    /// start when the restored stores serve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.restore: cannot change once the stack exists (a restore happens only into empty volumes); create a new AppStack to restore again"))]
    pub restore: Option<RestoreSpec>,

    /// Jobs on a schedule: each becomes a CronJob <stack>-<name> whose pods
    /// are wired to the stores like a component's.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 20))]
    #[x_kube(validation = Rule::new("self.all(x, self.exists_one(y, y.name == x.name))").message("spec.jobs: job names must be unique"))]
    pub jobs: Vec<ScheduledJob>,
}

/// TLS to the stores.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// Default true. Set false only for clients that cannot speak TLS: the
    /// stores then accept plain connections and the stack's TLS Secrets are
    /// deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

/// The stack's NetworkPolicies.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Default true. Set false where you manage NetworkPolicies yourself:
    /// the stack's policies are then deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
}

impl AppStackSpec {
    /// retainDataOnDelete, default true: data is never lost by accident.
    pub fn retain_data(&self) -> bool {
        self.retain_data_on_delete.unwrap_or(true)
    }

    /// networkPolicy.enabled, default true.
    pub fn network_policies_enabled(&self) -> bool {
        self.network_policy
            .as_ref()
            .and_then(|n| n.enabled)
            .unwrap_or(true)
    }

    /// tls.enabled, default true.
    pub fn tls_enabled(&self) -> bool {
        self.tls.as_ref().and_then(|t| t.enabled).unwrap_or(true)
    }
}
