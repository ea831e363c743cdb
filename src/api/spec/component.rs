//! A stateless component: its Deployment, Service, autoscaling, wiring and
//! what Pod Security baseline admits of it.

use std::collections::BTreeMap;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscalerBehavior;
use k8s_openapi::api::core::v1::{
    Affinity, EnvFromSource, EnvVar, LocalObjectReference, PodSecurityContext, Probe,
    ResourceRequirements, SecurityContext, Toleration, TopologySpreadConstraint, VolumeMount,
};
use k8s_openapi::api::networking::v1::{NetworkPolicyEgressRule, NetworkPolicyPeer};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::StoreKind;
use super::jobs::Migrate;
use super::pod::{ExtraContainer, PodDefaults, PodVolume};
use super::stores::resources_schema;

/// Pod Security baseline on seLinuxOptions: no custom user or role, and only
/// the container types.
pub(super) const SELINUX_BASELINE: &str = "!has(self.seLinuxOptions) || ((!has(self.seLinuxOptions.user) || self.seLinuxOptions.user == '') && (!has(self.seLinuxOptions.role) || self.seLinuxOptions.role == '') && (!has(self.seLinuxOptions.type) || self.seLinuxOptions.type in ['', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t']))";

/// Pod Security baseline on probes: a probe may not name another host, which
/// would also let a component make the kubelet call any address.
pub(super) const PROBE_NO_HOST: &str = "(!has(self.httpGet) || !has(self.httpGet.host) || self.httpGet.host == '') && (!has(self.tcpSocket) || !has(self.tcpSocket.host) || self.tcpSocket.host == '')";

/// A stateless component: a Deployment any of whose replicas can serve any
/// request. Without `port` it is a worker: no Service, and no connection
/// admitted to its pods.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.port) || !has(self.serviceType)").field_path(".serviceType").message("spec.components[].serviceType: needs port: a component without a port (a worker) gets no Service"))]
#[x_kube(validation = Rule::new("has(self.port) || !has(self.ingressFrom)").field_path(".ingressFrom").message("spec.components[].ingressFrom: needs port: a component without a port (a worker) admits no connection"))]
#[x_kube(validation = Rule::new("!has(self.volumes) || self.volumes.all(v, self.volumes.exists_one(w, w.name == v.name))").field_path(".volumes").message("spec.components[].volumes: volume names must be unique"))]
#[x_kube(validation = Rule::new("!has(self.volumeMounts) || self.volumeMounts.all(m, has(self.volumes) && self.volumes.exists(v, v.name == m.name))").field_path(".volumeMounts").message("spec.components[].volumeMounts: every name must be one of the component's volumes"))]
#[x_kube(validation = Rule::new("!has(self.initContainers) || self.initContainers.all(c, !has(c.volumeMounts) || c.volumeMounts.all(m, has(self.volumes) && self.volumes.exists(v, v.name == m.name)))").field_path(".initContainers").message("spec.components[].initContainers[].volumeMounts: every name must be one of the component's volumes"))]
#[x_kube(validation = Rule::new("!has(self.sidecars) || self.sidecars.all(c, !has(c.volumeMounts) || c.volumeMounts.all(m, has(self.volumes) && self.volumes.exists(v, v.name == m.name)))").field_path(".sidecars").message("spec.components[].sidecars[].volumeMounts: every name must be one of the component's volumes"))]
#[x_kube(validation = Rule::new("!has(self.initContainers) || self.initContainers.all(c, c.name != self.name && self.initContainers.exists_one(d, d.name == c.name) && (!has(self.sidecars) || !self.sidecars.exists(d, d.name == c.name)))").field_path(".initContainers").message("spec.components[].initContainers[].name: container names must be unique in the pod (sidecars included) and differ from the component's name"))]
#[x_kube(validation = Rule::new("!has(self.sidecars) || self.sidecars.all(c, c.name != self.name && self.sidecars.exists_one(d, d.name == c.name))").field_path(".sidecars").message("spec.components[].sidecars[].name: container names must be unique in the pod and differ from the component's name"))]
#[x_kube(validation = Rule::new("!has(self.initContainers) || self.initContainers.all(c, !has(c.readinessProbe) && !has(c.livenessProbe) && !has(c.startupProbe))").field_path(".initContainers").message("spec.components[].initContainers[]: probes are for sidecars; an init container runs to completion"))]
#[x_kube(validation = Rule::new("!has(self.route) || has(self.port)").message("spec.components[].route: needs the component's port (the route sends traffic to its Service)"))]
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
    /// Omit it for a worker (a queue consumer, say): no Service, no default
    /// readiness check, and its NetworkPolicy admits no connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self >= 1 && self <= 65535").message("spec.components[].port: must be between 1 and 65535"))]
    pub port: Option<i32>,

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

    /// When a replica may receive traffic. Default: a TCP check of the port
    /// (none for a worker: Ready once its container runs). An HTTP check of
    /// an endpoint that also checks the stores is better.
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

    /// Holds the readiness and liveness checks until it succeeds, for a
    /// component that starts slowly. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(PROBE_NO_HOST).message("spec.components[].startupProbe: httpGet.host and tcpSocket.host must be unset: a probe checks its own pod (Pod Security baseline)"))]
    pub startup_probe: Option<Probe>,

    /// Type of the component's Service: ClusterIP (default), NodePort or
    /// LoadBalancer. Needs port.
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
    #[schemars(schema_with = "crate::api::network_rules::ingress_from_schema")]
    pub ingress_from: Option<Vec<NetworkPolicyPeer>>,

    /// Where the component may connect besides DNS and the stores it uses
    /// (NetworkPolicy egress rules). Default: anywhere (no egress policy);
    /// `[]` allows only DNS and its stores. Checked as the API server checks
    /// a NetworkPolicy (ports 1-65535 or a name, CIDRs); at most 16 rules of
    /// 8 peers each, and 8 exceptions an ipBlock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::api::network_rules::egress_to_schema")]
    pub egress_to: Option<Vec<NetworkPolicyEgressRule>>,

    /// Seconds between SIGTERM and SIGKILL when a pod stops. Default 30.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 3600))]
    pub termination_grace_period_seconds: Option<i64>,

    /// Variables from ConfigMaps and Secrets of this namespace (configMapRef,
    /// secretRef, prefix). `env` and the store variables win over these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.all(e, !has(e.secretRef) || !(e.secretRef.name.endsWith('-ca-key') || e.secretRef.name.matches('-(redis|postgres)-(admin|backup|tls)$')))").message("spec.components[].envFrom[].secretRef.name: a Secret the operator keeps from the apps (a store's administrator, backup user or TLS key, or the CA's key); components get the apps' credentials only"))]
    pub env_from: Option<Vec<EnvFromSource>>,

    /// Volumes of the component's pods: emptyDir, configMap, secret or
    /// projected only. A persistentVolumeClaim is refused: state belongs in
    /// spec.redis / spec.postgres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub volumes: Option<Vec<PodVolume>>,

    /// Mounts of `volumes` in the component's container. Paths under
    /// /etc/appstack are the operator's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.all(m, m.mountPath != '/etc/appstack' && !m.mountPath.startsWith('/etc/appstack/'))").message("spec.components[].volumeMounts[].mountPath: /etc/appstack is the operator's (the stores' CA)"))]
    pub volume_mounts: Option<Vec<VolumeMount>>,

    /// Containers that run to completion, one after the other, before the
    /// component's container starts, and after the operator's own that wait
    /// for the stores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8))]
    pub init_containers: Option<Vec<ExtraContainer>>,

    /// Containers that run beside the component's (native sidecars: init
    /// containers with restartPolicy Always). They start after the
    /// operator's wait for the stores and before `initContainers`, and stop
    /// after the component's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8))]
    pub sidecars: Option<Vec<ExtraContainer>>,

    /// Secrets holding registry credentials (replaces spec.podDefaults').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8))]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,

    /// A ServiceAccount of this namespace the pods run as, with its token
    /// mounted (replaces spec.podDefaults'). Default: none mounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub service_account_name: Option<String>,

    /// Node labels the pods' nodes must have (replaces spec.podDefaults').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub node_selector: Option<BTreeMap<String, String>>,

    /// Taints the pods tolerate (replaces spec.podDefaults').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub tolerations: Option<Vec<Toleration>>,

    /// Node affinity and pod (anti-)affinity (replaces spec.podDefaults').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// How the pods spread (replaces spec.podDefaults'). Default: replicas
    /// spread over nodes (kubernetes.io/hostname, maxSkew 1,
    /// ScheduleAnyway); `[]` for no constraint. A constraint without
    /// labelSelector selects the component's pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8))]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,

    /// PriorityClass of the pods (replaces spec.podDefaults').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub priority_class_name: Option<String>,
    /// A route from outside the cluster to the component's port: an Ingress
    /// `<stack>-<component>` (or, with `gateway`, an HTTPRoute) whose only
    /// backend is the component's Service. With `ingressFrom` set, the
    /// component's NetworkPolicy also admits the ingress controller (the
    /// operator's route-controller setting). The URL shows in status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<super::Route>,
    /// A migration run as a Job before the component rolls to a new
    /// revision, once per change of its image, command, args or env: the
    /// old revision keeps serving while it runs, and a failed one blocks
    /// the rollout (status says why, with its last log lines). Its pods are
    /// named after the component plus -migrate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migrate: Option<Migrate>,
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

/// Type of a component's Service.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceType {
    ClusterIP,
    NodePort,
    LoadBalancer,
}

impl Component {
    /// The pod settings `spec.podDefaults` also has: the component's own
    /// where set, the default's otherwise (each field replaced whole).
    pub fn pod_settings(&self, defaults: Option<&PodDefaults>) -> PodDefaults {
        let d = defaults.cloned().unwrap_or_default();
        PodDefaults {
            image_pull_secrets: self.image_pull_secrets.clone().or(d.image_pull_secrets),
            service_account_name: self.service_account_name.clone().or(d.service_account_name),
            node_selector: self.node_selector.clone().or(d.node_selector),
            tolerations: self.tolerations.clone().or(d.tolerations),
            affinity: self.affinity.clone().or(d.affinity),
            topology_spread_constraints: self
                .topology_spread_constraints
                .clone()
                .or(d.topology_spread_constraints),
            priority_class_name: self.priority_class_name.clone().or(d.priority_class_name),
        }
    }

    /// Whether `uses` names the store (no list: every store of the stack).
    pub fn wants(&self, kind: StoreKind) -> bool {
        self.uses.as_ref().is_none_or(|uses| uses.contains(&kind))
    }
}
