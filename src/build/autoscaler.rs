//! A component's HorizontalPodAutoscaler (autoscaling/v2, CPU and/or memory
//! utilization).

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};

use super::meta::StackRef;
use super::{labels, names};
use crate::api::{Autoscaling, Component};

const DEFAULT_TARGET_CPU: i32 = 80;

/// Only when the component asks for autoscaling.
pub fn build(ctx: &StackRef, c: &Component) -> Option<HorizontalPodAutoscaler> {
    let a = c.autoscaling.as_ref()?;
    let name = names::component(&ctx.name, &c.name);
    Some(HorizontalPodAutoscaler {
        metadata: ctx.object_meta(name.clone(), &c.name, labels::ROLE_APP),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name,
            },
            min_replicas: Some(a.min_replicas),
            max_replicas: a.max_replicas,
            metrics: Some(metrics(a)),
            behavior: a.behavior.clone(),
        }),
        ..HorizontalPodAutoscaler::default()
    })
}

/// CPU (default 80 %) unless only a memory target is given, plus memory when
/// it is.
fn metrics(a: &Autoscaling) -> Vec<MetricSpec> {
    let memory = a.target_memory_utilization_percentage;
    let cpu = match (a.target_cpu_utilization_percentage, memory) {
        (Some(cpu), _) => Some(cpu),
        (None, None) => Some(DEFAULT_TARGET_CPU),
        (None, Some(_)) => None,
    };
    [("cpu", cpu), ("memory", memory)]
        .into_iter()
        .filter_map(|(resource, target)| target.map(|t| utilization(resource, t)))
        .collect()
}

fn utilization(resource: &str, percent: i32) -> MetricSpec {
    MetricSpec {
        type_: "Resource".into(),
        resource: Some(ResourceMetricSource {
            name: resource.into(),
            target: MetricTarget {
                type_: "Utilization".into(),
                average_utilization: Some(percent),
                ..MetricTarget::default()
            },
        }),
        ..MetricSpec::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(yaml: &str) -> Vec<(String, i32)> {
        let a: Autoscaling = serde_yaml::from_str(yaml).unwrap();
        metrics(&a)
            .into_iter()
            .map(|m| {
                let r = m.resource.unwrap();
                (r.name, r.target.average_utilization.unwrap())
            })
            .collect()
    }

    #[test]
    fn cpu_is_the_default_and_memory_is_added_when_asked() {
        let t = |n: &str, p| (n.to_string(), p);
        let base = "{minReplicas: 1, maxReplicas: 3";
        assert_eq!(targets(&format!("{base}}}")), [t("cpu", 80)]);
        assert_eq!(
            targets(&format!("{base}, targetCPUUtilizationPercentage: 60}}")),
            [t("cpu", 60)]
        );
        assert_eq!(
            targets(&format!("{base}, targetMemoryUtilizationPercentage: 75}}")),
            [t("memory", 75)]
        );
        assert_eq!(
            targets(&format!(
                "{base}, targetCPUUtilizationPercentage: 60, targetMemoryUtilizationPercentage: 75}}"
            )),
            [t("cpu", 60), t("memory", 75)]
        );
    }
}
