//! A component's HorizontalPodAutoscaler (autoscaling/v2, CPU utilization).

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};

use super::meta::StackRef;
use super::{labels, names};
use crate::api::Component;

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
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(
                            a.target_cpu_utilization_percentage
                                .unwrap_or(DEFAULT_TARGET_CPU),
                        ),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            behavior: a.behavior.clone(),
        }),
        ..HorizontalPodAutoscaler::default()
    })
}
