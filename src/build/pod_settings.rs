//! The user's pod settings laid over a pod the operator built: placement
//! (`spec.podDefaults` merged with the component's own), the service
//! account, pull secrets, volumes, init containers and sidecars. Any
//! workload that runs a component's code (its Deployment, a migration's Job,
//! a scheduled job) can take them through [`PodSettings`] and [`apply`].

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, PodSpec, TopologySpreadConstraint, Volume};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::security;
use crate::api::{AppStack, Component, ExtraContainer, PodDefaults, PodVolume};

/// The node label the default spread is over.
pub const HOSTNAME_TOPOLOGY: &str = "kubernetes.io/hostname";
/// Seconds a stopping pod gets by default.
pub const GRACE_PERIOD: i64 = 30;

/// Everything the user says about a pod beyond its main container.
#[derive(Clone, Debug, Default)]
pub struct PodSettings<'a> {
    /// Placement and identity: the stack's defaults with the workload's
    /// own fields laid over them.
    pub placement: PodDefaults,
    pub volumes: &'a [PodVolume],
    pub init_containers: &'a [ExtraContainer],
    pub sidecars: &'a [ExtraContainer],
    /// Image of an extra container that names none.
    pub default_image: &'a str,
    pub termination_grace_period_seconds: Option<i64>,
    /// The pods' own labels, for the default spread over nodes; `None`
    /// means no default spread (one-off pods such as a Job's).
    pub spread: Option<BTreeMap<String, String>>,
}

impl<'a> PodSettings<'a> {
    /// A component's settings; `selector` are its pods' labels.
    pub fn of_component(
        stack: &AppStack,
        c: &'a Component,
        selector: BTreeMap<String, String>,
    ) -> Self {
        Self {
            placement: c.pod_settings(stack.spec.pod_defaults.as_ref()),
            volumes: c.volumes.as_deref().unwrap_or_default(),
            init_containers: c.init_containers.as_deref().unwrap_or_default(),
            sidecars: c.sidecars.as_deref().unwrap_or_default(),
            default_image: &c.image,
            termination_grace_period_seconds: c.termination_grace_period_seconds,
            spread: Some(selector),
        }
    }

    /// The grace period the pod gets.
    pub fn grace_period(&self) -> i64 {
        self.termination_grace_period_seconds
            .unwrap_or(GRACE_PERIOD)
    }
}

/// Lays `settings` over `pod`. The operator's init containers (already in
/// the pod) stay first; then the sidecars, then the user's init containers.
/// Volumes are added after the operator's.
pub fn apply(settings: &PodSettings, pod: &mut PodSpec) {
    let p = &settings.placement;
    pod.image_pull_secrets = p.image_pull_secrets.clone().filter(|s| !s.is_empty());
    // The token is mounted only for an account the user names: the default
    // account needs no API access, and a token is a credential to steal.
    pod.service_account_name = p.service_account_name.clone();
    pod.automount_service_account_token = Some(p.service_account_name.is_some());
    pod.node_selector = p.node_selector.clone().filter(|s| !s.is_empty());
    pod.tolerations = p.tolerations.clone().filter(|t| !t.is_empty());
    pod.affinity = p.affinity.clone();
    pod.priority_class_name = p.priority_class_name.clone();
    pod.topology_spread_constraints = spread(settings);
    pod.termination_grace_period_seconds = Some(settings.grace_period());

    let mut init = pod.init_containers.take().unwrap_or_default();
    init.extend(
        settings
            .sidecars
            .iter()
            .map(|x| container(x, settings.default_image, true)),
    );
    init.extend(
        settings
            .init_containers
            .iter()
            .map(|x| container(x, settings.default_image, false)),
    );
    pod.init_containers = Some(init).filter(|i| !i.is_empty());

    let mut volumes = pod.volumes.take().unwrap_or_default();
    volumes.extend(settings.volumes.iter().map(volume));
    pod.volumes = Some(volumes).filter(|v| !v.is_empty());
}

/// The user's constraints; without any, the default spread over nodes.
fn spread(settings: &PodSettings) -> Option<Vec<TopologySpreadConstraint>> {
    let selector = |labels: &BTreeMap<String, String>| LabelSelector {
        match_labels: Some(labels.clone()),
        ..LabelSelector::default()
    };
    match (
        &settings.placement.topology_spread_constraints,
        &settings.spread,
    ) {
        (Some(own), labels) => {
            let own: Vec<TopologySpreadConstraint> = own
                .iter()
                .map(|t| {
                    let mut t = t.clone();
                    // A constraint that selects nothing counts nothing.
                    if t.label_selector.is_none() {
                        t.label_selector = labels.as_ref().map(selector);
                    }
                    t
                })
                .collect();
            Some(own).filter(|o| !o.is_empty())
        }
        (None, Some(labels)) => Some(vec![TopologySpreadConstraint {
            max_skew: 1,
            topology_key: HOSTNAME_TOPOLOGY.into(),
            when_unsatisfiable: "ScheduleAnyway".into(),
            label_selector: Some(selector(labels)),
            ..TopologySpreadConstraint::default()
        }]),
        (None, None) => None,
    }
}

/// An init container or sidecar, with the restricted defaults under the
/// user's security settings.
pub fn container(x: &ExtraContainer, default_image: &str, sidecar: bool) -> Container {
    Container {
        name: x.name.clone(),
        image: Some(x.image.clone().unwrap_or_else(|| default_image.to_string())),
        image_pull_policy: x.image_pull_policy.clone(),
        command: x.command.clone(),
        args: x.args.clone(),
        env: Some(x.env.clone()).filter(|e| !e.is_empty()),
        env_from: x.env_from.clone().filter(|e| !e.is_empty()),
        resources: x.resources.clone(),
        volume_mounts: x.volume_mounts.clone().filter(|m| !m.is_empty()),
        security_context: Some(security::app_container(x.security_context.as_ref())),
        readiness_probe: x.readiness_probe.clone(),
        liveness_probe: x.liveness_probe.clone(),
        startup_probe: x.startup_probe.clone(),
        restart_policy: sidecar.then(|| "Always".to_string()),
        ..Container::default()
    }
}

/// A volume of one of the allowed kinds; the refused kinds never reach
/// here (admission and `admission::component` refuse them).
pub fn volume(v: &PodVolume) -> Volume {
    Volume {
        name: v.name.clone(),
        empty_dir: v.empty_dir.clone(),
        config_map: v.config_map.clone(),
        secret: v.secret.clone(),
        projected: v.projected.clone(),
        ..Volume::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::LocalObjectReference;
    use serde_json::json;

    fn pull_secret(name: &str) -> LocalObjectReference {
        LocalObjectReference { name: name.into() }
    }

    fn stack(spec: serde_json::Value) -> AppStack {
        serde_json::from_value(json!({
            "apiVersion": "appstack.dev/v1alpha1", "kind": "AppStack",
            "metadata": {"name": "s", "namespace": "n", "uid": "u"},
            "spec": spec,
        }))
        .unwrap()
    }

    fn built(spec: serde_json::Value) -> PodSpec {
        let s = stack(spec);
        let c = &s.spec.components[0];
        let labels = BTreeMap::from([("app".to_string(), c.name.clone())]);
        let mut pod = PodSpec {
            init_containers: Some(vec![Container {
                name: "wait-for-redis".into(),
                ..Container::default()
            }]),
            ..PodSpec::default()
        };
        apply(&PodSettings::of_component(&s, c, labels), &mut pod);
        pod
    }

    #[test]
    fn defaults_spread_over_nodes_and_mount_no_token() {
        let pod = built(json!({"components": [{"name": "web", "image": "i", "port": 80}]}));
        assert_eq!(pod.automount_service_account_token, Some(false));
        assert_eq!(pod.termination_grace_period_seconds, Some(GRACE_PERIOD));
        let spread = pod.topology_spread_constraints.unwrap();
        assert_eq!(spread.len(), 1);
        assert_eq!(
            (
                spread[0].max_skew,
                spread[0].topology_key.as_str(),
                spread[0].when_unsatisfiable.as_str()
            ),
            (1, HOSTNAME_TOPOLOGY, "ScheduleAnyway")
        );
        assert_eq!(
            spread[0]
                .label_selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap()["app"],
            "web"
        );
        assert!(pod.node_selector.is_none() && pod.tolerations.is_none());
    }

    #[test]
    fn a_components_own_field_replaces_the_default_whole() {
        let pod = built(json!({
            "podDefaults": {
                "nodeSelector": {"pool": "apps"},
                "imagePullSecrets": [{"name": "registry"}],
                "priorityClassName": "low",
                "topologySpreadConstraints": []
            },
            "components": [{"name": "web", "image": "i", "nodeSelector": {"pool": "big"},
                            "serviceAccountName": "reader"}]
        }));
        assert_eq!(
            pod.node_selector.unwrap(),
            BTreeMap::from([("pool".into(), "big".into())])
        );
        assert_eq!(
            pod.image_pull_secrets.unwrap(),
            vec![pull_secret("registry")]
        );
        assert_eq!(pod.priority_class_name.as_deref(), Some("low"));
        // `[]` switches the default spread off.
        assert!(pod.topology_spread_constraints.is_none());
        assert_eq!(pod.service_account_name.as_deref(), Some("reader"));
        assert_eq!(pod.automount_service_account_token, Some(true));
    }

    #[test]
    fn extra_containers_follow_the_operators_and_are_confined() {
        let pod = built(json!({"components": [{
            "name": "web", "image": "shop:1",
            "volumes": [{"name": "scratch", "emptyDir": {}}],
            "initContainers": [{"name": "seed", "command": ["true"]}],
            "sidecars": [{"name": "proxy", "image": "proxy:2",
                          "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}]}]
        }]}));
        let init = pod.init_containers.unwrap();
        let names: Vec<&str> = init.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["wait-for-redis", "proxy", "seed"]);
        assert_eq!(init[1].restart_policy.as_deref(), Some("Always"));
        assert_eq!(init[2].restart_policy, None);
        assert_eq!(init[2].image.as_deref(), Some("shop:1"));
        for c in &init[1..] {
            assert_eq!(c.security_context, Some(security::container()));
        }
        assert_eq!(pod.volumes.unwrap()[0].name, "scratch");
    }

    #[test]
    fn a_constraint_without_selector_selects_the_components_pods() {
        let pod = built(json!({"components": [{"name": "web", "image": "i",
            "topologySpreadConstraints": [{"maxSkew": 2, "topologyKey": "zone", "whenUnsatisfiable": "DoNotSchedule"}]}]}));
        let spread = pod.topology_spread_constraints.unwrap();
        assert_eq!(spread[0].topology_key, "zone");
        assert!(spread[0].label_selector.is_some());
    }
}
