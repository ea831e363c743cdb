//! The children's readiness, as their controllers report it.

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};

use crate::api::ComponentStatus;

pub(super) fn component_status(name: &str, deployment: Option<&Deployment>) -> ComponentStatus {
    let desired = deployment
        .and_then(|d| d.spec.as_ref())
        .and_then(|s| s.replicas)
        .unwrap_or(0);
    let ready = deployment
        .and_then(|d| d.status.as_ref())
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0);
    ComponentStatus {
        name: name.to_string(),
        desired_replicas: desired,
        ready_replicas: ready,
        ..ComponentStatus::default()
    }
}

/// The Deployment controller has seen the latest spec and every replica is
/// updated and available.
pub(super) fn deployment_complete(d: &Deployment) -> bool {
    let Some(status) = d.status.as_ref() else {
        return false;
    };
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    status.observed_generation >= d.metadata.generation
        && status.updated_replicas.unwrap_or(0) >= desired
        && status.available_replicas.unwrap_or(0) >= desired
        && status.replicas.unwrap_or(0) == desired
}

pub fn stateful_set_ready(s: &StatefulSet) -> bool {
    let Some(status) = s.status.as_ref() else {
        return false;
    };
    let desired = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    status.observed_generation >= s.metadata.generation
        && status.ready_replicas.unwrap_or(0) >= desired
        && status.update_revision == status.current_revision
}
