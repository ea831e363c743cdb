//! Pod settings: where a component's pods run and what else they carry
//! (volumes, init containers, sidecars). The placement settings can be set
//! once for the whole stack in `spec.podDefaults`; a component's own value
//! replaces the default field by field.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, ConfigMapVolumeSource, EmptyDirVolumeSource, EnvFromSource, EnvVar,
    HostPathVolumeSource, LocalObjectReference, PersistentVolumeClaimVolumeSource, Probe,
    ProjectedVolumeSource, ResourceRequirements, SecretVolumeSource, SecurityContext, Toleration,
    TopologySpreadConstraint, VolumeMount,
};
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::component::{PROBE_NO_HOST, SELINUX_BASELINE};
use super::stores::resources_schema;

/// Where the pods of every component run and what they may use, unless a
/// component sets the field itself (its value then replaces this one whole).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PodDefaults {
    /// Secrets of this namespace holding registry credentials, for private
    /// images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8))]
    pub image_pull_secrets: Option<Vec<LocalObjectReference>>,

    /// A ServiceAccount of this namespace the pods run as; its token is
    /// then mounted. Default: the namespace's default account, with no
    /// token mounted (the pods cannot call the Kubernetes API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub service_account_name: Option<String>,

    /// Node labels the pods' nodes must have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub node_selector: Option<BTreeMap<String, String>>,

    /// Taints the pods tolerate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub tolerations: Option<Vec<Toleration>>,

    /// Node affinity and pod (anti-)affinity, passed through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,

    /// How the pods spread over topology domains. Default: replicas spread
    /// over nodes (kubernetes.io/hostname, maxSkew 1, ScheduleAnyway:
    /// preferred, never blocking); `[]` for no constraint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8))]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,

    /// PriorityClass of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub priority_class_name: Option<String>,
}

/// A volume of a component's pods: only kinds that hold no state of their
/// own (state belongs in spec.redis and spec.postgres, which back it up).
/// Exactly one source.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.persistentVolumeClaim)").field_path(".persistentVolumeClaim").message("volumes[].persistentVolumeClaim: not allowed: a component is stateless (any replica serves any request); state belongs in spec.redis / spec.postgres, which keep it on their own volumes and back it up"))]
#[x_kube(validation = Rule::new("!has(self.hostPath)").field_path(".hostPath").message("volumes[].hostPath: not allowed: it exposes the node's files (Pod Security baseline)"))]
#[x_kube(validation = Rule::new("(has(self.emptyDir) ? 1 : 0) + (has(self.configMap) ? 1 : 0) + (has(self.secret) ? 1 : 0) + (has(self.projected) ? 1 : 0) == 1").message("volumes[]: needs exactly one of emptyDir, configMap, secret or projected (other volume kinds are not allowed)"))]
pub struct PodVolume {
    /// Name of the volume, referenced by volumeMounts. Names starting with
    /// appstack- are the operator's.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    #[x_kube(validation = Rule::new("!self.startsWith('appstack-')").message("volumes[].name: names starting with appstack- are the operator's own volumes"))]
    pub name: String,
    /// Scratch space that lives as long as the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub empty_dir: Option<EmptyDirVolumeSource>,
    /// A ConfigMap of this namespace, as files.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map: Option<ConfigMapVolumeSource>,
    /// A Secret of this namespace, as files; not one the operator keeps
    /// from the apps (a store's administrator, backup user or TLS key, the
    /// CA's key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("!has(self.secretName) || !(self.secretName.endsWith('-ca-key') || self.secretName.matches('-(redis|postgres)-(admin|backup|tls)$'))").field_path(".secretName").message("volumes[].secret.secretName: a Secret the operator keeps from the apps (a store's administrator, backup user or TLS key, or the CA's key); components get the apps' credentials only"))]
    pub secret: Option<SecretVolumeSource>,
    /// Several sources in one directory (ConfigMaps, Secrets, downward API,
    /// a ServiceAccount token with an audience).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projected: Option<ProjectedVolumeSource>,
    /// Refused: named here only so that admission can say why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_volume_claim: Option<PersistentVolumeClaimVolumeSource>,
    /// Refused: named here only so that admission can say why.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_path: Option<HostPathVolumeSource>,
}

/// A container of the component's pods besides its own: an init container
/// (runs to completion before the component starts) or a sidecar (starts
/// before it and runs beside it). It gets the same restricted security
/// defaults and limits as the component's container, and no store wiring.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExtraContainer {
    /// Container name, unique in the pod; not the component's name and not
    /// starting with wait-for- (the operator's init containers).
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    #[x_kube(validation = Rule::new("!self.startsWith('wait-for-')").message("name: names starting with wait-for- are the operator's init containers"))]
    pub name: String,

    /// Container image. Default: the component's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// Always, IfNotPresent or Never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(Always|IfNotPresent|Never)$"))]
    pub image_pull_policy: Option<String>,

    /// Overrides the image's entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,

    /// Arguments to the entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,

    /// Environment variables, passed through; names must be unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(max = 100))]
    pub env: Vec<EnvVar>,

    /// Variables from ConfigMaps and Secrets of this namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.all(e, !has(e.secretRef) || !(e.secretRef.name.endsWith('-ca-key') || e.secretRef.name.matches('-(redis|postgres)-(admin|backup|tls)$')))").message("envFrom[].secretRef.name: a Secret the operator keeps from the apps (a store's administrator, backup user or TLS key, or the CA's key); components get the apps' credentials only"))]
    pub env_from: Option<Vec<EnvFromSource>>,

    /// CPU and memory requests and limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resources_schema")]
    pub resources: Option<ResourceRequirements>,

    /// Mounts of the component's `volumes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    pub volume_mounts: Option<Vec<VolumeMount>>,

    /// Laid over the restricted defaults as the component's own is, with
    /// the same Pod Security baseline limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("!has(self.privileged) || !self.privileged").field_path(".privileged").message("securityContext.privileged: must be false or unset (Pod Security baseline)"))]
    #[x_kube(validation = Rule::new("!has(self.capabilities) || !has(self.capabilities.add) || self.capabilities.add.all(c, c == 'NET_BIND_SERVICE')").field_path(".capabilities.add").message("securityContext.capabilities.add: only NET_BIND_SERVICE may be added"))]
    #[x_kube(validation = Rule::new("!has(self.procMount) || self.procMount == 'Default'").field_path(".procMount").message("securityContext.procMount: must be Default or unset (Pod Security baseline)"))]
    #[x_kube(validation = Rule::new(SELINUX_BASELINE).field_path(".seLinuxOptions").message("securityContext.seLinuxOptions: user and role must be unset and type one of container_t, container_init_t, container_kvm_t, container_engine_t (Pod Security baseline)"))]
    #[x_kube(validation = Rule::new("!has(self.seccompProfile) || self.seccompProfile.type != 'Unconfined'").field_path(".seccompProfile.type").message("securityContext.seccompProfile.type: Unconfined is not allowed (Pod Security baseline)"))]
    #[x_kube(validation = Rule::new("!has(self.appArmorProfile) || self.appArmorProfile.type != 'Unconfined'").field_path(".appArmorProfile.type").message("securityContext.appArmorProfile.type: Unconfined is not allowed (Pod Security baseline)"))]
    #[x_kube(validation = Rule::new("!has(self.windowsOptions) || !has(self.windowsOptions.hostProcess) || !self.windowsOptions.hostProcess").field_path(".windowsOptions.hostProcess").message("securityContext.windowsOptions.hostProcess: must be false or unset (Pod Security baseline)"))]
    pub security_context: Option<SecurityContext>,

    /// Sidecars only: when the sidecar counts as ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(PROBE_NO_HOST).message("readinessProbe: httpGet.host and tcpSocket.host must be unset: a probe checks its own pod (Pod Security baseline)"))]
    pub readiness_probe: Option<Probe>,

    /// Sidecars only: when the kubelet restarts the sidecar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(PROBE_NO_HOST).message("livenessProbe: httpGet.host and tcpSocket.host must be unset: a probe checks its own pod (Pod Security baseline)"))]
    pub liveness_probe: Option<Probe>,

    /// Sidecars only: holds the other probes until the sidecar has started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new(PROBE_NO_HOST).message("startupProbe: httpGet.host and tcpSocket.host must be unset: a probe checks its own pod (Pod Security baseline)"))]
    pub startup_probe: Option<Probe>,
}

impl ExtraContainer {
    /// Whether any probe is set (an init container may have none).
    pub fn has_probes(&self) -> bool {
        self.readiness_probe.is_some()
            || self.liveness_probe.is_some()
            || self.startup_probe.is_some()
    }
}
