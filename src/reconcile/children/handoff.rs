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
//!
//! Whether our manager still owns the count is read from managedFields as the
//! watch delivers them: the Deployment cache keeps of them only our own
//! manager's claim on spec.replicas (see `our_claim`), so no GET precedes an apply.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use crate::build::FIELD_MANAGER;

/// The manager that keeps the count while the HPA takes over.
pub const HANDOFF_MANAGER: &str = "appstack-replicas-handoff";

/// What the Deployment cache keeps of managedFields: only our manager's
/// claim on spec.replicas, when it has one.
pub fn our_claim(entries: &[ManagedFieldsEntry]) -> Option<Vec<ManagedFieldsEntry>> {
    owns_replicas(entries).then(|| {
        vec![ManagedFieldsEntry {
            manager: Some(FIELD_MANAGER.into()),
            operation: Some("Apply".into()),
            fields_type: Some("FieldsV1".into()),
            fields_v1: Some(FieldsV1(json!({"f:spec": {"f:replicas": {}}}))),
            ..ManagedFieldsEntry::default()
        }]
    })
}

/// Before applying `desired` without a replica count: if the cached
/// Deployment shows our manager still owns its count, hand it off at its
/// current value. Nothing to do (and no request) otherwise.
pub async fn replicas_to_autoscaler(
    client: &Client,
    desired: &Deployment,
    cached: Option<&Deployment>,
) -> Result<(), kube::Error> {
    let Some(cached) = cached else {
        return Ok(());
    };
    if desired.spec.as_ref().and_then(|s| s.replicas).is_some()
        || !owns_replicas(cached.managed_fields())
    {
        return Ok(());
    }
    let Some(replicas) = cached.spec.as_ref().and_then(|s| s.replicas) else {
        return Ok(());
    };
    let name = desired.name_any();
    let patch = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {"replicas": replicas},
    });
    let namespace = desired.namespace().unwrap_or_default();
    let api: Api<Deployment> = Api::namespaced(client.clone(), &namespace);
    // Not forced: if someone else set another count meanwhile, they own it
    // and releasing ours cannot reset it.
    match api
        .patch(
            &name,
            &PatchParams::apply(HANDOFF_MANAGER),
            &Patch::Apply(&patch),
        )
        .await
    {
        Ok(_) => {
            info!(deployment = %name, replicas, "replica count handed over to the autoscaler");
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            warn!(deployment = %name, message = %status.message, "replica count already owned by another manager");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// True when our field manager owns `spec.replicas`: by an apply, or by the
/// create, whose entry becomes an apply's before the next apply (see
/// `created`).
fn owns_replicas(entries: &[ManagedFieldsEntry]) -> bool {
    entries.iter().any(|e| {
        e.manager.as_deref() == Some(FIELD_MANAGER)
            && matches!(e.operation.as_deref(), Some("Apply" | "Update"))
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
            with.clone()
        )]));
        assert!(owns_replicas(&[entry(FIELD_MANAGER, "Update", with)]));
        assert!(!owns_replicas(&[]));
    }

    #[test]
    fn the_cache_keeps_only_our_claim_on_the_count() {
        let mut d = Deployment::default();
        d.metadata.managed_fields = Some(vec![
            entry(
                FIELD_MANAGER,
                "Apply",
                json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {}}}}),
            ),
            entry("kube-controller-manager", "Update", json!({"f:status": {}})),
        ]);
        let kept = our_claim(d.managed_fields()).unwrap_or_default();
        assert_eq!(kept.len(), 1);
        assert!(owns_replicas(&kept));

        let mut released = Deployment::default();
        released.metadata.managed_fields = Some(vec![entry(
            FIELD_MANAGER,
            "Apply",
            json!({"f:spec": {"f:template": {}}}),
        )]);
        assert!(our_claim(released.managed_fields()).is_none());
    }
}
