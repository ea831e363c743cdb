//! A component's PodDisruptionBudget: voluntary disruptions (node drains,
//! evictions) take at most one replica at a time.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::engine::Engine;
use super::meta::StackRef;
use super::{labels, names};
use crate::api::{AppStackSpec, Component};

/// A store with several pods: at most one of them down by choice (a
/// drain waits for the others).
pub fn store(
    ctx: &StackRef,
    spec: &AppStackSpec,
    engine: &dyn Engine,
) -> Option<PodDisruptionBudget> {
    if engine.instances(spec) < 2 {
        return None;
    }
    Some(PodDisruptionBudget {
        metadata: ctx.object_meta(
            engine.secret_name(&ctx.name),
            engine.part(),
            labels::ROLE_STORE,
        ),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(ctx.selector(engine.part())),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}

/// Only for components that run more than one replica: with one, a budget
/// would either block every drain or protect nothing.
pub fn build(ctx: &StackRef, c: &Component) -> Option<PodDisruptionBudget> {
    let fewest = match &c.autoscaling {
        Some(a) => a.min_replicas,
        None => c.replicas.unwrap_or(1),
    };
    if fewest < 2 {
        return None;
    }
    Some(PodDisruptionBudget {
        metadata: ctx.object_meta(
            names::component(&ctx.name, &c.name),
            &c.name,
            labels::ROLE_APP,
        ),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(ctx.selector(&c.name)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    })
}
