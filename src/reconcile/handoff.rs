//! Handing a Deployment's replica count over to its HorizontalPodAutoscaler.
//!
//! An autoscaled component's Deployment is applied without `spec.replicas`,
//! so that the HPA owns the count. But when a component that had a fixed count
//! gains autoscaling, our field manager still owns `spec.replicas`; applying
//! without it would remove the field, and the API server would default it to
//! 1: a component running 4 replicas would drop to 1 until the HPA reacts.
//! Server-Side Apply's documented way out is a hand-off: a second manager
//! applies the current value (sharing ownership, no conflict), and our next
//! apply then releases the field without resetting it.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::info;

use crate::build::FIELD_MANAGER;
use crate::error::{Error, Result};

/// The manager that keeps the count while the HPA takes over.
pub const HANDOFF_MANAGER: &str = "appstack-replicas-handoff";

/// Before applying `desired` (which has no replica count): if the live
/// Deployment's count is still ours, hand it off. Only called when the
/// applier is about to send the Deployment anyway, so it costs nothing at
/// steady state.
pub async fn replicas_to_autoscaler(
    client: &Client,
    namespace: &str,
    desired: &Deployment,
) -> Result<()> {
    if desired.spec.as_ref().and_then(|s| s.replicas).is_some() {
        return Ok(());
    }
    let name = desired.name_any();
    let api: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let live = api.get_opt(&name).await.map_err(|source| Error::Apply {
        kind: "Deployment",
        name: name.clone(),
        source,
    })?;
    let Some(live) = live else {
        return Ok(());
    };
    let Some(replicas) = live.spec.as_ref().and_then(|s| s.replicas) else {
        return Ok(());
    };
    if !owns_replicas(live.metadata.managed_fields.as_deref().unwrap_or_default()) {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas},
    });
    api.patch(
        &name,
        &PatchParams::apply(HANDOFF_MANAGER),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| Error::Apply {
        kind: "Deployment",
        name: name.clone(),
        source,
    })?;
    info!(deployment = %name, replicas, "replica count handed over to the autoscaler");
    Ok(())
}

/// True when our field manager's apply owns `spec.replicas`.
fn owns_replicas(entries: &[ManagedFieldsEntry]) -> bool {
    entries.iter().any(|e| {
        e.manager.as_deref() == Some(FIELD_MANAGER)
            && e.operation.as_deref() == Some("Apply")
            && e.subresource.is_none()
            && e.fields_v1
                .as_ref()
                .and_then(|f| f.0.get("f:spec"))
                .and_then(|spec| spec.get("f:replicas"))
                .is_some()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1;

    fn entry(manager: &str, operation: &str, fields: serde_json::Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            fields_v1: Some(FieldsV1(fields)),
            ..ManagedFieldsEntry::default()
        }
    }

    #[test]
    fn ours_when_our_apply_lists_spec_replicas() {
        let fields = json!({"f:spec": {"f:replicas": {}, "f:template": {}}});
        assert!(owns_replicas(&[entry(FIELD_MANAGER, "Apply", fields)]));
    }

    #[test]
    fn not_ours_once_released_or_owned_by_others() {
        let without = json!({"f:spec": {"f:template": {}}});
        let with = json!({"f:spec": {"f:replicas": {}}});
        assert!(!owns_replicas(&[entry(FIELD_MANAGER, "Apply", without)]));
        assert!(!owns_replicas(&[entry(
            HANDOFF_MANAGER,
            "Apply",
            with.clone()
        )]));
        assert!(!owns_replicas(&[entry(
            "kube-controller-manager",
            "Update",
            with
        )]));
        assert!(!owns_replicas(&[]));
    }
}
