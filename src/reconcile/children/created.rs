//! Taking over the fields of a child the operator created.
//!
//! A create (POST) records its fields under an Update entry of the
//! operator's field manager, and Server-Side Apply keeps Update and Apply
//! entries apart: a field the apply later stops sending would stay, owned by
//! the Update entry. So before the first apply, that entry becomes an Apply
//! entry (merged into the existing one, if an apply already made one), as
//! kubectl does when it moves from client-side to server-side apply. This
//! costs two requests, once in a child's life, and only if it ever changes.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry, ObjectMeta};
use kube::Resource;
use kube::api::{Api, Patch, PatchParams};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::build::FIELD_MANAGER;

/// Turns the create's Update entry of `name` into an Apply entry; nothing
/// when it has none. The resourceVersion read is the patch's precondition,
/// so an entry written meanwhile is never lost (the apply then fails as
/// outdated and the next reconcile tries again).
pub async fn convert<K>(api: &Api<K>, name: &str) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    match api.get_metadata_opt(name).await? {
        Some(meta) => convert_read(api, name, meta.metadata).await,
        None => Ok(()),
    }
}

/// [`convert`] with the metadata already read.
pub async fn convert_read<K>(api: &Api<K>, name: &str, meta: ObjectMeta) -> Result<(), kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let entries = meta.managed_fields.unwrap_or_default();
    let Some(entries) = converted(entries) else {
        return Ok(());
    };
    let patch = json!({"metadata": {
        "managedFields": entries,
        "resourceVersion": meta.resource_version,
    }});
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..PatchParams::default()
    };
    api.patch_metadata(name, &params, &Patch::Merge(&patch))
        .await?;
    Ok(())
}

fn ours(entry: &ManagedFieldsEntry, operation: &str) -> bool {
    entry.manager.as_deref() == Some(FIELD_MANAGER)
        && entry.operation.as_deref() == Some(operation)
        && entry.subresource.as_deref().unwrap_or_default().is_empty()
}

/// The entries with the operator's Update entry made an Apply entry;
/// `None` when there is no such Update entry.
pub fn converted(mut entries: Vec<ManagedFieldsEntry>) -> Option<Vec<ManagedFieldsEntry>> {
    let update = entries.iter().position(|e| ours(e, "Update"))?;
    match entries.iter().position(|e| ours(e, "Apply")) {
        Some(apply) => {
            let fields = entries[update].fields_v1.take();
            let target = &mut entries[apply].fields_v1;
            let mut merged = target.take().map(|f| f.0).unwrap_or(Value::Null);
            union(&mut merged, fields.map(|f| f.0).unwrap_or(Value::Null));
            *target = Some(FieldsV1(merged));
            entries.remove(update);
        }
        None => entries[update].operation = Some("Apply".into()),
    }
    Some(entries)
}

/// Field sets are tries of JSON objects: their union is a deep merge.
fn union(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(into), Value::Object(from)) => {
            for (key, value) in from {
                union(into.entry(key).or_insert(Value::Null), value);
            }
        }
        (into @ Value::Null, from) => *into = from,
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(manager: &str, operation: &str, fields: Value) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            fields_v1: Some(FieldsV1(fields)),
            ..ManagedFieldsEntry::default()
        }
    }

    #[test]
    fn the_creates_entry_becomes_an_apply_entry() {
        let status = ManagedFieldsEntry {
            subresource: Some("status".into()),
            ..entry(FIELD_MANAGER, "Update", json!({"f:status": {}}))
        };
        let entries = vec![
            entry(
                "kube-controller-manager",
                "Update",
                json!({"f:metadata": {}}),
            ),
            entry(FIELD_MANAGER, "Update", json!({"f:spec": {"f:a": {}}})),
            status.clone(),
        ];
        let out = converted(entries).unwrap();
        assert_eq!(out.len(), 3);
        assert_eq!(out[1].operation.as_deref(), Some("Apply"));
        assert_eq!(out[2], status, "a subresource's entry is not the create's");
    }

    #[test]
    fn merged_into_an_existing_apply_entry() {
        let entries = vec![
            entry(
                FIELD_MANAGER,
                "Apply",
                json!({"f:spec": {"f:a": {}, "f:b": {"f:c": {}}}}),
            ),
            entry(
                FIELD_MANAGER,
                "Update",
                json!({"f:spec": {"f:b": {"f:d": {}}, "f:e": {}}}),
            ),
        ];
        let out = converted(entries).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            out[0].fields_v1.as_ref().unwrap().0,
            json!({"f:spec": {"f:a": {}, "f:b": {"f:c": {}, "f:d": {}}, "f:e": {}}})
        );
    }

    #[test]
    fn nothing_to_do_without_the_creates_entry() {
        assert!(converted(vec![entry(FIELD_MANAGER, "Apply", json!({}))]).is_none());
        assert!(converted(vec![entry("kubectl", "Update", json!({}))]).is_none());
    }
}
