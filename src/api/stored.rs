//! An AppStack as the watch delivers it: decoded, or, when it does not decode
//! (a value the API server admitted but the types refuse, say an integer out
//! of range in an object stored before the CRD bounded it), its metadata and
//! the reason. One such object must never fail the list of every stack: it
//! is reported on itself, and the others are reconciled as usual.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::core::NamespaceResourceScope;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::{AppStack, AppStackStatus};
use crate::lean::{self, LeanMeta};

#[derive(Clone, Debug)]
pub struct StoredAppStack {
    metadata: ObjectMeta,
    /// The decoded stack, or where and why it did not decode.
    pub decoded: Result<AppStack, String>,
    /// The status, decoded on its own (the operator wrote it).
    pub status: Option<AppStackStatus>,
}

impl StoredAppStack {
    pub fn decoded(stack: AppStack) -> Self {
        Self {
            metadata: stack.metadata.clone(),
            status: stack.status.clone(),
            decoded: Ok(stack),
        }
    }

    /// Trims the metadata to what the reconcile reads (see `lean`): a
    /// decoded stack is already trimmed; this keeps a stack made by hand so.
    pub fn strip(&mut self) {
        lean::keep(&mut self.metadata);
        if let Ok(stack) = &mut self.decoded {
            lean::keep(&mut stack.metadata);
        }
    }
}

impl<'de> Deserialize<'de> for StoredAppStack {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut value = Value::deserialize(deserializer)?;
        // Of the metadata only what the reconcile reads, before anything is
        // copied: a stack's annotations (up to 256 KiB), labels and
        // managedFields are anyone's to write and never read.
        let metadata: ObjectMeta = value
            .get_mut("metadata")
            .map(Value::take)
            .map(serde_json::from_value::<LeanMeta>)
            .transpose()
            .map_err(serde::de::Error::custom)?
            .map(ObjectMeta::from)
            .unwrap_or_default();
        if let Some(object) = value.as_object_mut() {
            let lean = serde_json::to_value(&metadata).map_err(serde::de::Error::custom)?;
            object.insert("metadata".into(), lean);
        }
        let decoded = serde_path_to_error::deserialize::<_, AppStack>(&value).map_err(|e| {
            let path = e.path().to_string();
            // serde's message names the value and the type, never the object.
            let reason = crate::error::cut(&e.into_inner().to_string(), 300);
            format!("{path}: {reason}")
        });
        let status = value
            .get("status")
            .and_then(|s| serde_json::from_value(s.clone()).ok());
        Ok(Self {
            metadata,
            decoded,
            status,
        })
    }
}

impl Resource for StoredAppStack {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        AppStack::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        AppStack::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        AppStack::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        AppStack::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_object_that_does_not_decode_keeps_its_name_and_says_where() {
        let stored: StoredAppStack = serde_json::from_value(json!({
            "apiVersion": "appstack.dev/v1alpha1", "kind": "AppStack",
            "metadata": {"name": "bad", "namespace": "t", "uid": "u"},
            "spec": {"components": [{"name": "web", "image": "i", "port": 80,
                     "livenessProbe": {"periodSeconds": 4294967296_u64}}]}
        }))
        .unwrap();
        assert_eq!(stored.meta().name.as_deref(), Some("bad"));
        let reason = stored.decoded.unwrap_err();
        assert!(
            reason.starts_with("spec.components[0].livenessProbe.periodSeconds:"),
            "{reason}"
        );
        assert!(reason.contains("4294967296"), "{reason}");
    }

    #[test]
    fn a_stack_keeps_none_of_its_annotations_and_labels() {
        let mut metadata = json!({
            "name": "big", "namespace": "t", "uid": "u", "generation": 3,
            "annotations": {"note": "x".repeat(255 * 1024)},
            "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
        });
        metadata["labels"] = Value::Object(crate::lean::tests::megabyte_of_labels());
        let stored: StoredAppStack = serde_json::from_value(json!({
            "apiVersion": "appstack.dev/v1alpha1", "kind": "AppStack", "metadata": metadata,
            "spec": {"components": [{"name": "web", "image": "i", "port": 80}]}
        }))
        .unwrap();
        let stack = stored.decoded.as_ref().unwrap();
        for meta in [stored.meta(), &stack.metadata] {
            assert_eq!(meta.name.as_deref(), Some("big"));
            assert_eq!(meta.generation, Some(3));
            let size = serde_json::to_vec(meta).unwrap().len();
            assert!(size < 256, "kept {size} bytes of metadata");
        }
        assert_eq!(stack.spec.components[0].name, "web");
    }

    #[test]
    fn a_list_with_one_bad_object_still_decodes_the_others() {
        let list: Vec<StoredAppStack> = serde_json::from_value(json!([
            {"metadata": {"name": "bad"}, "spec": {"components": "nope"}},
            {"apiVersion": "appstack.dev/v1alpha1", "kind": "AppStack",
             "metadata": {"name": "good"}, "spec": {"components": [{"name": "web", "image": "i", "port": 80}]}}
        ]))
        .unwrap();
        assert!(list[0].decoded.is_err());
        assert!(list[1].decoded.is_ok());
    }
}
