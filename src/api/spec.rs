//! The AppStack spec: what a team writes. Doc comments become the CRD's
//! descriptions (`kubectl explain appstack.spec...`); x_kube rules become CEL
//! validations the API server enforces at admission.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior;
use k8s_openapi::api::core::v1::{
    EnvVar, PodSecurityContext, Probe, ResourceRequirements, SecurityContext,
};
use k8s_openapi::api::networking::v1::{NetworkPolicyEgressRule, NetworkPolicyPeer};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::status::AppStackStatus;

/// Pod Security baseline on seLinuxOptions: no custom user or role, and only
/// the container types.
const SELINUX_BASELINE: &str = "!has(self.seLinuxOptions) || ((!has(self.seLinuxOptions.user) || self.seLinuxOptions.user == '') && (!has(self.seLinuxOptions.role) || self.seLinuxOptions.role == '') && (!has(self.seLinuxOptions.type) || self.seLinuxOptions.type in ['', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t']))";

/// Pod Security baseline on probes: a probe may not name another host, which
/// would also let a component make the kubelet call any address.
const PROBE_NO_HOST: &str = "(!has(self.httpGet) || !has(self.httpGet.host) || self.httpGet.host == '') && (!has(self.tcpSocket) || !has(self.tcpSocket.host) || self.tcpSocket.host == '')";

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
    validation = Rule::new("self.spec.components.all(c, size(self.metadata.name) + size(c.name) <= 62)").message("metadata.name + spec.components[].name: together at most 62 characters, so that <name>-<component> is a valid object name")
)]
#[x_kube(validation = Rule::new("!has(self.postgres) || !has(self.postgres.backup) || !has(self.tls) || !has(self.tls.enabled) || self.tls.enabled").message("spec.postgres.backup: needs TLS (spec.tls.enabled: true): a base backup streams every row over the network"))]
#[x_kube(validation = Rule::new("self.components.all(c, !has(c.uses) || c.uses.all(u, (u == 'redis' && has(self.redis)) || (u == 'postgres' && has(self.postgres))))").message("spec.components[].uses: names a store this stack does not have; add the redis or postgres section, or remove it from uses"))]
#[serde(rename_all = "camelCase")]
pub struct AppStackSpec {
    /// The stateless components: each becomes a Deployment (with a Service, a
    /// PodDisruptionBudget and, when autoscaling is set, an HPA). Any replica
    /// must be able to serve any request: keep state in the stores.
    #[schemars(length(min = 1, max = 20))]
    #[x_kube(validation = Rule::new("self.all(x, self.exists_one(y, y.name == x.name))").message("spec.components: component names must be unique"))]
    pub components: Vec<Component>,

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
}

/// Where a new stack's stores take their data from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSpec {
    /// The stack whose backups to restore, in this namespace (it may have
    /// been deleted: its backup volumes are kept).
    #[schemars(
        length(min = 1, max = 43),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub from: String,
    /// Restore to this moment (RFC 3339, e.g. 2026-12-01T10:00:00Z):
    /// PostgreSQL replays its archived WAL up to it, Redis takes the newest
    /// snapshot made before it. Default: the latest point the backups hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 40),
        regex(
            pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
        )
    )]
    pub point_in_time: Option<String>,
    /// Which stores to restore. Default: every store of this stack (each
    /// then needs a backup of the source); one left out starts empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2))]
    #[x_kube(validation = Rule::new("self.all(x, self.exists_one(y, y == x))").message("spec.restore.stores: each store at most once"))]
    pub stores: Option<Vec<StoreKind>>,
    /// Take the backups from this bucket (where spec.<store>.backup.target.s3
    /// of the stack `from` put them) instead of the stack's backup volumes:
    /// a restore into another cluster, or after the volumes were lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Spec>,
}

/// Scheduled backups of a store, to a volume of the stack's own.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// When to take a backup (PostgreSQL: a base backup; Redis: an RDB
    /// snapshot), in cron syntax, UTC. Default "0 3 * * *". PostgreSQL also
    /// archives its WAL continuously, so any moment since the oldest kept
    /// base backup can be restored. Run one now with
    /// `kubectl create job --from=cronjob/<stack>-<store>-backup <name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 7, max = 64))]
    #[x_kube(validation = Rule::new("self.split(' ').filter(f, f != '').size() == 5 || self in ['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly']").message("backup.schedule: must be a cron schedule of five fields such as '0 3 * * *', or a macro such as @hourly"))]
    pub schedule: Option<String>,
    /// Which backups to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionSpec>,
    /// Where backups go. Default: a 10Gi volume of the default StorageClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<BackupTargetSpec>,
}

/// Backups to keep: the newest `count`, less those older than `maxAge`,
/// but never the newest one.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// How many backups to keep. Default 7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub count: Option<i32>,
    /// How old a kept backup may be, in hours or days, e.g. 48h or 30d.
    /// Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8), regex(pattern = r"^[1-9][0-9]{0,4}[hd]$"))]
    pub max_age: Option<String>,
}

/// Where backups are written.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupTargetSpec {
    /// A PersistentVolumeClaim `<stack>-<store>-backup`, never the data
    /// volume, kept when the stack is deleted. It guards against deletion
    /// and bad writes, not against losing the node it lives on. Fixed once
    /// made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<StorageSpec>,
    /// S3-compatible object storage as well: every backup (and, for
    /// PostgreSQL, every archived WAL file, within seconds) is copied to
    /// `<prefix>/<stack>/<store>/` in the bucket, with the volume's
    /// retention, so the backups survive the loss of the node or cluster.
    /// The volume stays the first copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Spec>,
}

/// A bucket of an S3-compatible object store, and the Secret holding its keys.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct S3Spec {
    /// The bucket (it must exist).
    #[schemars(
        length(min = 3, max = 63),
        regex(pattern = r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
    )]
    pub bucket: String,
    /// The server, e.g. https://s3.eu-west-1.amazonaws.com or
    /// http://minio.storage.svc:9000 (path-style requests).
    /// The port, when given, is a number from 1 to 65535 (the store's
    /// NetworkPolicy opens it).
    #[schemars(length(max = 253), regex(pattern = r"^https?://[^/?#@ ]+$"))]
    #[x_kube(validation = Rule::new("!self.matches(':[0-9]*$') || (self.matches(':[0-9]{1,5}$') && int(self.substring(self.lastIndexOf(':') + 1)) >= 1 && int(self.substring(self.lastIndexOf(':') + 1)) <= 65535)").message("s3.endpoint: the port must be a number from 1 to 65535"))]
    #[x_kube(validation = Rule::new(r"self.matches('^https?://([^]/?#@ :[]+|[[][0-9A-Fa-f:.]+[]])(:[0-9]*)?$')").message("s3.endpoint: must be http(s)://host[:port], the host a name, an IPv4 address or an IPv6 address in brackets"))]
    pub endpoint: String,
    /// Default us-east-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = r"^[a-z0-9-]+$"))]
    pub region: Option<String>,
    /// Key prefix, inside the stack's namespace: the keys are
    /// `<namespace>/<prefix>/<stack>/<store>/...` (without a prefix,
    /// `<namespace>/<stack>/<store>/...`), so keys shared by several
    /// namespaces never make one namespace the reader of another's backups.
    /// Segments of letters, digits and `!_.*'()-` separated by '/'; no `.` or
    /// `..` segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 200),
        regex(pattern = r"^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$")
    )]
    #[x_kube(validation = Rule::new("!self.split('/').exists(s, s == '.' || s == '..')").message("s3.prefix: no '.' or '..' segment: the prefix always stays inside the stack's namespace"))]
    pub prefix: Option<String>,
    /// A Secret in the stack's namespace with AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY. Give each namespace keys that reach only
    /// `<namespace>/` in the bucket: whoever holds them can read the backups.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
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

/// A stateless component: a Deployment any of whose replicas can serve any request.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Component {
    /// Name of the component, unique in the stack: a DNS-1123 label (lower-case
    /// letters, digits and '-', starting with a letter). Children are named
    /// <stack>-<name>. redis, postgres, redis-headless and postgres-headless
    /// are taken by the stores' Services, and a name ending in one of them
    /// (e.g. b-redis) could give another stack's store name (stack a-b).
    #[x_kube(validation = Rule::new("!(self in ['redis', 'postgres', 'redis-headless', 'postgres-headless', 'redis-backup', 'postgres-backup'])").message("spec.components[].name: redis, postgres, redis-headless, postgres-headless, redis-backup and postgres-backup are reserved for the stores and their backups"))]
    #[x_kube(validation = Rule::new("!['-redis', '-postgres', '-redis-headless', '-postgres-headless', '-redis-backup', '-postgres-backup'].exists(s, self.endsWith(s))").message("spec.components[].name: must not end in -redis, -postgres, -redis-headless, -postgres-headless, -redis-backup or -postgres-backup: <stack>-<name> would be the name of another stack's store or backups"))]
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// Container image of the component, e.g. ghcr.io/acme/shop:1.4.
    #[x_kube(validation = Rule::new("self.trim() != ''").message("spec.components[].image: must not be empty"))]
    #[schemars(length(min = 1, max = 512))]
    pub image: String,

    /// When the kubelet pulls the image: Always, IfNotPresent or Never.
    /// Default: Kubernetes' own (Always for :latest, IfNotPresent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(Always|IfNotPresent|Never)$"))]
    pub image_pull_policy: Option<String>,

    /// The port the component listens on; its Service exposes the same port.
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("spec.components[].port: must be between 1 and 65535"))]
    pub port: i32,

    /// Replicas when autoscaling is absent (default 1). With autoscaling the
    /// HorizontalPodAutoscaler owns the replica count and this is ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,

    /// Scale on CPU with a HorizontalPodAutoscaler (autoscaling/v2) of the
    /// same name as the Deployment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,

    /// Extra environment variables, passed through as they are; names must be
    /// unique. The store connection variables (REDIS_URL, DATABASE_URL, PG*)
    /// are added by the operator and win over variables of the same name here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(max = 100))]
    pub env: Vec<EnvVar>,

    /// CPU and memory requests and limits of the component's container. Set a
    /// CPU request when autoscaling: the HPA's target is a share of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resources_schema")]
    pub resources: Option<ResourceRequirements>,

    /// The stores this component is wired to: redis, postgres. Default: every
    /// store the stack has. An empty list wires none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub uses: Option<Vec<StoreKind>>,

    /// Overrides the image's entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,

    /// Arguments to the entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,

    /// When a replica may receive traffic. Default: a TCP check of the port.
    /// An HTTP check of an endpoint that also checks the stores is better.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(PROBE_NO_HOST).message("spec.components[].readinessProbe: httpGet.host and tcpSocket.host must be unset: a probe checks its own pod (Pod Security baseline)"))]
    pub readiness_probe: Option<Probe>,

    /// When the kubelet restarts a replica's container. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(PROBE_NO_HOST).message("spec.components[].livenessProbe: httpGet.host and tcpSocket.host must be unset: a probe checks its own pod (Pod Security baseline)"))]
    pub liveness_probe: Option<Probe>,

    /// Annotations added to the component's pods. None may loosen the pods'
    /// confinement: AppArmor annotations
    /// (container.apparmor.security.beta.kubernetes.io/*) must be
    /// runtime/default or localhost/<profile>, seccomp annotations
    /// (seccomp.security.alpha.kubernetes.io/pod,
    /// container.seccomp.security.alpha.kubernetes.io/*) runtime/default
    /// (a Localhost profile goes in the seccompProfile fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('container.apparmor.security.beta.kubernetes.io/') || self[k] == 'runtime/default' || self[k].startsWith('localhost/'))").message("spec.components[].podAnnotations: an AppArmor annotation (container.apparmor.security.beta.kubernetes.io/*) must be runtime/default or localhost/<profile>; unconfined is not allowed (Pod Security baseline)"))]
    #[x_kube(validation = Rule::new("self.all(k, !(k.startsWith('seccomp.security.alpha.kubernetes.io/') || k.startsWith('container.seccomp.security.alpha.kubernetes.io/')) || self[k] in ['runtime/default', 'docker/default'])").message("spec.components[].podAnnotations: a seccomp annotation (seccomp.security.alpha.kubernetes.io/pod, container.seccomp.security.alpha.kubernetes.io/*) may only be runtime/default: unconfined is not allowed (Pod Security baseline), and for a Localhost profile set securityContext.seccompProfile or podSecurityContext.seccompProfile (an annotation that disagrees with those fields makes the API server refuse the pods)"))]
    pub pod_annotations: Option<BTreeMap<String, String>>,

    /// Type of the component's Service: ClusterIP (default), NodePort or LoadBalancer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_type: Option<ServiceType>,

    /// Security settings of the component's container, laid over the defaults
    /// of the restricted Pod Security Standard (runAsNonRoot: true,
    /// allowPrivilegeEscalation: false, capabilities drop ALL, seccompProfile
    /// RuntimeDefault): each field set here replaces the default of the same
    /// name, e.g. readOnlyRootFilesystem: true or runAsUser: 1000.
    ///
    /// Nothing beyond the baseline Pod Security Standard is admitted: no
    /// privileged, no added capability but NET_BIND_SERVICE, no unmasked
    /// /proc, no Unconfined seccomp or AppArmor, no custom SELinux user or
    /// role, no Windows host process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("!has(self.privileged) || !self.privileged").field_path(".privileged").message("spec.components[].securityContext.privileged: must be false or unset (Pod Security baseline); a component cannot run privileged"))]
    #[x_kube(validation = Rule::new("!has(self.capabilities) || !has(self.capabilities.add) || self.capabilities.add.all(c, c == 'NET_BIND_SERVICE')").field_path(".capabilities.add").message("spec.components[].securityContext.capabilities.add: only NET_BIND_SERVICE may be added"))]
    #[x_kube(validation = Rule::new("!has(self.procMount) || self.procMount == 'Default'").field_path(".procMount").message("spec.components[].securityContext.procMount: must be Default or unset (Pod Security baseline)"))]
    #[x_kube(validation = Rule::new(SELINUX_BASELINE).field_path(".seLinuxOptions").message("spec.components[].securityContext.seLinuxOptions: user and role must be unset and type one of container_t, container_init_t, container_kvm_t, container_engine_t (Pod Security baseline)"))]
    #[x_kube(validation = Rule::new("!has(self.seccompProfile) || self.seccompProfile.type != 'Unconfined'").field_path(".seccompProfile.type").message("spec.components[].securityContext.seccompProfile.type: Unconfined is not allowed (Pod Security baseline); use RuntimeDefault or Localhost"))]
    #[x_kube(validation = Rule::new("!has(self.appArmorProfile) || self.appArmorProfile.type != 'Unconfined'").field_path(".appArmorProfile.type").message("spec.components[].securityContext.appArmorProfile.type: Unconfined is not allowed (Pod Security baseline)"))]
    #[x_kube(validation = Rule::new("!has(self.windowsOptions) || !has(self.windowsOptions.hostProcess) || !self.windowsOptions.hostProcess").field_path(".windowsOptions.hostProcess").message("spec.components[].securityContext.windowsOptions.hostProcess: must be false or unset (Pod Security baseline)"))]
    pub security_context: Option<SecurityContext>,

    /// Security settings of the component's pods, laid over the defaults
    /// (runAsNonRoot: true, seccompProfile RuntimeDefault): each field set here
    /// replaces the default of the same name, e.g. runAsUser for an image whose
    /// USER is a name rather than a numeric uid, or fsGroup.
    /// The same baseline limits hold here, and only the sysctls Kubernetes
    /// calls safe may be set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(SELINUX_BASELINE).field_path(".seLinuxOptions").message("spec.components[].podSecurityContext.seLinuxOptions: user and role must be unset and type one of container_t, container_init_t, container_kvm_t, container_engine_t (Pod Security baseline)"))]
    #[x_kube(validation = Rule::new("!has(self.seccompProfile) || self.seccompProfile.type != 'Unconfined'").field_path(".seccompProfile.type").message("spec.components[].podSecurityContext.seccompProfile.type: Unconfined is not allowed (Pod Security baseline); use RuntimeDefault or Localhost"))]
    #[x_kube(validation = Rule::new("!has(self.appArmorProfile) || self.appArmorProfile.type != 'Unconfined'").field_path(".appArmorProfile.type").message("spec.components[].podSecurityContext.appArmorProfile.type: Unconfined is not allowed (Pod Security baseline)"))]
    #[x_kube(validation = Rule::new("!has(self.windowsOptions) || !has(self.windowsOptions.hostProcess) || !self.windowsOptions.hostProcess").field_path(".windowsOptions.hostProcess").message("spec.components[].podSecurityContext.windowsOptions.hostProcess: must be false or unset (Pod Security baseline)"))]
    #[x_kube(validation = Rule::new("!has(self.sysctls) || self.sysctls.all(s, s.name in ['kernel.shm_rmid_forced', 'net.ipv4.ip_local_port_range', 'net.ipv4.ip_unprivileged_port_start', 'net.ipv4.tcp_syncookies', 'net.ipv4.ping_group_range', 'net.ipv4.ip_local_reserved_ports', 'net.ipv4.tcp_keepalive_time', 'net.ipv4.tcp_fin_timeout', 'net.ipv4.tcp_keepalive_intvl', 'net.ipv4.tcp_keepalive_probes'])").field_path(".sysctls").message("spec.components[].podSecurityContext.sysctls: only the sysctls Kubernetes calls safe are allowed (Pod Security baseline)"))]
    pub pod_security_context: Option<PodSecurityContext>,

    /// Who may connect to the component's port (NetworkPolicy peers), e.g.
    /// only an ingress controller's namespace: `[{namespaceSelector:
    /// {matchLabels: {kubernetes.io/metadata.name: ingress-nginx}}}]`.
    /// Default: anyone, on that port only. Checked as the API server checks
    /// a NetworkPolicy (an ipBlock's cidr and except are CIDRs, at most 8
    /// exceptions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::network_rules::ingress_from_schema")]
    pub ingress_from: Option<Vec<NetworkPolicyPeer>>,

    /// Where the component may connect besides DNS and the stores it uses
    /// (NetworkPolicy egress rules). Default: anywhere (no egress policy);
    /// `[]` allows only DNS and its stores. Checked as the API server checks
    /// a NetworkPolicy (ports 1-65535 or a name, CIDRs); at most 16 rules of
    /// 8 peers each, and 8 exceptions an ipBlock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "super::network_rules::egress_to_schema")]
    pub egress_to: Option<Vec<NetworkPolicyEgressRule>>,
}

/// CPU-based autoscaling of a component.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.minReplicas <= self.maxReplicas").message("autoscaling.minReplicas: must not exceed maxReplicas"))]
pub struct Autoscaling {
    /// Fewest replicas, at least 1 (2 or more survive the loss of one pod).
    #[schemars(range(min = 1, max = 1000))]
    pub min_replicas: i32,
    /// Most replicas.
    #[schemars(range(min = 1, max = 1000))]
    pub max_replicas: i32,
    /// Average CPU use, as a percentage of the CPU request, that the HPA aims
    /// for. Default 80, unless only a memory target is set.
    #[serde(
        default,
        rename = "targetCPUUtilizationPercentage",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 1000))]
    pub target_cpu_utilization_percentage: Option<i32>,
    /// Average memory use, as a percentage of the memory request, that the
    /// HPA aims for (set a memory request). With a CPU target too, the HPA
    /// scales to whichever asks for more replicas. Default: no memory target.
    #[serde(
        default,
        rename = "targetMemoryUtilizationPercentage",
        skip_serializing_if = "Option::is_none"
    )]
    #[schemars(range(min = 1, max = 1000))]
    pub target_memory_utilization_percentage: Option<i32>,
    /// How fast the HPA scales up and down (autoscaling/v2 behavior: scaleUp
    /// and scaleDown policies and stabilizationWindowSeconds), passed through.
    /// Default: Kubernetes' own, which waits 300 s of lower load before
    /// scaling down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub behavior: Option<HorizontalPodAutoscalerBehavior>,
}

/// A store a component can use.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Redis,
    Postgres,
}

/// Type of a component's Service.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceType {
    ClusterIP,
    NodePort,
    LoadBalancer,
}

/// The Redis store.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RedisSpec {
    /// Redis image. Default: the official redis:7.4. Any image whose
    /// entrypoint runs `redis-server` with the arguments given works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.trim() != ''").message("spec.redis.image: must not be empty"))]
    pub image: Option<String>,
    /// The volume for Redis' append-only file. Default 1Gi of the default StorageClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// CPU and memory requests and limits of the Redis container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resources_schema")]
    pub resources: Option<ResourceRequirements>,
    /// RDB snapshots on a schedule (the append-only file stays as it is). Omit for no backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,
}

/// The PostgreSQL store.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("(has(self.image) ? self.image : 'postgres:17').contains('@') || (has(oldSelf.image) ? oldSelf.image : 'postgres:17').contains('@') || (has(self.image) ? self.image : 'postgres:17').substring((has(self.image) ? self.image : 'postgres:17').lastIndexOf(':') + 1).split('.')[0].split('-')[0] == (has(oldSelf.image) ? oldSelf.image : 'postgres:17').substring((has(oldSelf.image) ? oldSelf.image : 'postgres:17').lastIndexOf(':') + 1).split('.')[0].split('-')[0]").message("spec.postgres.image: a new PostgreSQL major version cannot start on the existing data directory (the image's tag gives the major version); keep it (e.g. 17 -> 17.6), or dump the data (pg_dumpall), create a new stack on the new image and restore into it"))]
#[x_kube(validation = Rule::new("has(self.database) == has(oldSelf.database) && (!has(self.database) || self.database == oldSelf.database)").message("spec.postgres.database: cannot change once the store exists (the data directory keeps the database it was created with); to move, create the new database yourself (CREATE DATABASE ... TEMPLATE old, or a dump and restore), or delete the postgres section with retainDataOnDelete: false and add it again"))]
#[serde(rename_all = "camelCase")]
pub struct PostgresSpec {
    /// PostgreSQL image. Default: the official postgres:17. Any image that
    /// follows its contract (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB,
    /// PGDATA, uid 999) works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.trim() != ''").message("spec.postgres.image: must not be empty"))]
    pub image: Option<String>,
    /// Name of the database to create. Default: the stack's name with '-'
    /// turned into '_'. Fixed once the store exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z_][a-z0-9_]*$"))]
    pub database: Option<String>,
    /// The volume for the data directory. Default 5Gi of the default StorageClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// CPU and memory requests and limits of the PostgreSQL container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resources_schema")]
    pub resources: Option<ResourceRequirements>,
    /// Base backups on a schedule plus continuous WAL archiving: point-in-time recovery. Omit for no backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,
}

/// A store's PersistentVolumeClaim. Fixed once the store exists: Kubernetes
/// cannot change a StatefulSet's volumeClaimTemplates in place.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Requested size, a quantity such as 1Gi or 500Mi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("storage.size: must be a positive quantity such as 1Gi or 500Mi"))]
    #[schemars(length(max = 32))]
    pub size: Option<String>,
    /// StorageClass of the claim. Default: the cluster's default StorageClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// Kubernetes' own schema for container resources, plus what lets the API
/// server refuse a malformed quantity at admission instead of the operator
/// meeting it when it applies the child: a CEL rule over requests and limits,
/// and bounds that keep the rule's cost within the CRD's budget.
fn resources_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<Option<ResourceRequirements>>();
    for map in ["requests", "limits"] {
        let Some(property) = schema
            .get_mut("properties")
            .and_then(|p| p.get_mut(map))
            .and_then(|m| m.as_object_mut())
        else {
            continue;
        };
        property.insert("maxProperties".into(), 16.into());
        if let Some(values) = property
            .get_mut("additionalProperties")
            .and_then(|v| v.as_object_mut())
        {
            values.insert("maxLength".into(), 64.into());
        }
        property.insert(
            "x-kubernetes-validations".into(),
            serde_json::json!([{
                "rule": "self.all(k, isQuantity(string(self[k])))",
                "message": format!("resources.{map}: every value must be a quantity such as 100m, 0.5, 2 or 128Mi"),
            }]),
        );
    }
    schema
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

impl AppStackSpec {
    /// The store's backup section, when the stack has the store and backs it up.
    pub fn backup(&self, kind: StoreKind) -> Option<&BackupSpec> {
        match kind {
            StoreKind::Redis => self.redis.as_ref().and_then(|r| r.backup.as_ref()),
            StoreKind::Postgres => self.postgres.as_ref().and_then(|p| p.backup.as_ref()),
        }
    }

    /// Whether the stack runs this store.
    pub fn has_store(&self, kind: StoreKind) -> bool {
        match kind {
            StoreKind::Redis => self.redis.is_some(),
            StoreKind::Postgres => self.postgres.is_some(),
        }
    }
}

impl Component {
    /// Whether this component is wired to the store (default: every store
    /// the stack has).
    pub fn uses(&self, spec: &AppStackSpec, kind: StoreKind) -> bool {
        spec.has_store(kind) && self.uses.as_ref().is_none_or(|uses| uses.contains(&kind))
    }
}
