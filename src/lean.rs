//! What the operator keeps in memory of an object anyone may write. Anyone
//! with `edit` in a namespace can label an object `managed-by:
//! appstack-operator` (so put it in the operator's watches) and give it about
//! 1.5 MB of labels, annotations, owner references or finalizers. The
//! reconcile reads none of that: of labels only the operator's own keys
//! ([`labels::OWN`]), of owner references only the controller. So that is
//! all any cache keeps, whatever the object carries.
//!
//! Objects cached as metadata ([`Slim`]) are trimmed while they are decoded:
//! the labels a tenant added are skipped in the text and never become
//! strings, so even a page of them in flight costs only its text. Objects
//! cached whole are trimmed by [`keep`] as they arrive.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::Resource;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use crate::build::labels;

/// The annotation stamped on every child the operator writes (see
/// `reconcile::children::stamp`): the only annotation the caches keep (but
/// for a StatefulSet's restore record, `reconcile::restored`).
pub const STAMP: &str = "appstack.dev/applied";

/// The longest stamp kept: a real one is about 30 characters.
const STAMP_MAX: usize = 64;

/// The longest string kept of a controller reference (a name's limit): a
/// reference the API server let through with a longer one is cut.
const REFERENCE_MAX: usize = 253;

/// Trims metadata to what the reconcile reads: names, uid, versions,
/// timestamps, the operator's own labels, its stamp and the controller
/// reference. No other annotations, no managedFields or finalizers.
pub fn keep(meta: &mut ObjectMeta) {
    let stamp = meta
        .annotations
        .take()
        .and_then(|mut a| a.remove(STAMP))
        .filter(|s| s.len() <= STAMP_MAX);
    meta.annotations = stamp.map(|s| BTreeMap::from([(STAMP.to_string(), s)]));
    meta.managed_fields = None;
    meta.finalizers = None;
    meta.generate_name = None;
    if let Some(labels) = &mut meta.labels {
        labels.retain(|key, _| labels::OWN.contains(&key.as_str()));
    }
    let controller = meta
        .owner_references
        .take()
        .into_iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(bounded);
    meta.owner_references = controller.map(|r| vec![r]);
}

fn bounded(mut reference: OwnerReference) -> OwnerReference {
    for field in [
        &mut reference.api_version,
        &mut reference.kind,
        &mut reference.name,
        &mut reference.uid,
    ] {
        if field.len() > REFERENCE_MAX {
            let end = (0..=REFERENCE_MAX)
                .rev()
                .find(|i| field.is_char_boundary(*i))
                .unwrap_or(0);
            field.truncate(end);
        }
    }
    reference
}

/// An object's metadata as the caches keep it, decoded from an object or a
/// PartialObjectMetadata: what [`keep`] leaves, and nothing else is ever
/// allocated.
#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeanMeta {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
    #[serde(default, deserialize_with = "own_labels")]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "own_labels")]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default, deserialize_with = "controller_only")]
    owner_references: Option<Vec<OwnerReference>>,
}

impl From<LeanMeta> for ObjectMeta {
    fn from(lean: LeanMeta) -> Self {
        let mut meta = ObjectMeta {
            name: lean.name,
            namespace: lean.namespace,
            uid: lean.uid,
            resource_version: lean.resource_version,
            generation: lean.generation,
            creation_timestamp: lean.creation_timestamp,
            deletion_timestamp: lean.deletion_timestamp,
            labels: lean.labels,
            annotations: lean.annotations,
            owner_references: lean.owner_references,
            ..ObjectMeta::default()
        };
        keep(&mut meta);
        meta
    }
}

/// A child cached as metadata only: listed and watched as
/// PartialObjectMetadata (no Secret data or specs cross the wire), and
/// decoded lean (see [`LeanMeta`]).
pub struct Slim<K> {
    metadata: ObjectMeta,
    kind: PhantomData<fn() -> K>,
}

impl<K> Slim<K> {
    pub fn new(mut metadata: ObjectMeta) -> Self {
        keep(&mut metadata);
        Self {
            metadata,
            kind: PhantomData,
        }
    }
}

impl<K> Clone for Slim<K> {
    fn clone(&self) -> Self {
        Self {
            metadata: self.metadata.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> fmt::Debug for Slim<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slim")
            .field("metadata", &self.metadata)
            .finish()
    }
}

impl<'de, K> Deserialize<'de> for Slim<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(default)]
            metadata: LeanMeta,
        }
        let wire = Wire::deserialize(deserializer)?;
        Ok(Self::new(wire.metadata.into()))
    }
}

/// As PartialObjectMetadata, for tests and logs.
impl<K: Resource<DynamicType = ()>> Serialize for Slim<K> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "metadata": self.metadata,
        })
        .serialize(serializer)
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Slim<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
    /// Lists, watches and GETs ask for metadata only.
    fn metadata_api() -> bool {
        true
    }
}

/// The operator's own labels (or its stamp, of annotations); every other key
/// is skipped unread.
fn own_labels<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    struct Own;
    impl<'de> Visitor<'de> for Own {
        type Value = BTreeMap<String, String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a map of labels")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut kept = BTreeMap::new();
            while let Some(OwnKey(key)) = map.next_key()? {
                match key {
                    Some(key) => {
                        kept.insert(key.to_string(), map.next_value::<String>()?);
                    }
                    None => {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
            }
            Ok(kept)
        }
    }
    struct Labels(BTreeMap<String, String>);
    impl<'de> Deserialize<'de> for Labels {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_map(Own).map(Labels)
        }
    }
    Ok(Option::<Labels>::deserialize(deserializer)?.map(|l| l.0))
}

/// A label or annotation key, as one of the operator's own or none:
/// compared where it lies in the text, never copied. (`keep` then drops a
/// label key among annotations, or the stamp among labels.)
struct OwnKey(Option<&'static str>);

impl<'de> Deserialize<'de> for OwnKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Key;
        impl Visitor<'_> for Key {
            type Value = OwnKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a label key")
            }
            fn visit_str<E: serde::de::Error>(self, key: &str) -> Result<OwnKey, E> {
                let own = labels::OWN.iter().chain([&STAMP]).copied();
                Ok(OwnKey(own.into_iter().find(|own| *own == key)))
            }
        }
        deserializer.deserialize_str(Key)
    }
}

/// The controller reference only, decoded one reference at a time.
fn controller_only<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Vec<OwnerReference>>, D::Error> {
    struct First;
    impl<'de> Visitor<'de> for First {
        type Value = Option<OwnerReference>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of owner references")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut controller = None;
            while let Some(reference) = seq.next_element::<OwnerReference>()? {
                if controller.is_none() && reference.controller == Some(true) {
                    controller = Some(bounded(reference));
                }
            }
            Ok(controller)
        }
    }
    struct Controller(Option<OwnerReference>);
    impl<'de> Deserialize<'de> for Controller {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_seq(First).map(Controller)
        }
    }
    Ok(Option::<Controller>::deserialize(deserializer)?
        .and_then(|c| c.0)
        .map(|r| vec![r]))
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::{Pod, Secret};
    use serde_json::{Value, json};

    /// About 1 MB of labels as a tenant can write them: many keys of 63
    /// characters with a prefix, each with a 63-character value.
    pub fn megabyte_of_labels() -> serde_json::Map<String, Value> {
        (0..7600)
            .map(|i| {
                (
                    format!("tenant.example.com/{i:05}-{}", "k".repeat(57)),
                    Value::String("v".repeat(63)),
                )
            })
            .collect()
    }

    fn hostile_metadata(name: &str) -> Value {
        let mut labels = megabyte_of_labels();
        // Keys sorting before and after the operator's, in the text.
        labels.insert("a.example/x".into(), json!("before"));
        labels.insert(labels::MANAGED_BY_KEY.into(), json!(labels::MANAGED_BY));
        labels.insert(labels::INSTANCE.into(), json!("shop"));
        let references: Vec<Value> = (0..2000)
            .map(|i| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": format!("c{i}"), "uid": format!("u{i}")}))
            .chain([json!({"apiVersion": "appstack.dev/v1alpha1", "kind": "AppStack", "name": "shop",
                           "uid": "uid-shop", "controller": true})])
            .collect();
        json!({
            "name": name, "namespace": "t", "uid": "u-1", "resourceVersion": "7",
            "labels": labels,
            "annotations": {"note": "x".repeat(250 * 1024)},
            "finalizers": (0..1000).map(|i| format!("example.com/f{i}")).collect::<Vec<_>>(),
            "ownerReferences": references,
            "managedFields": [{"manager": "kubectl", "operation": "Apply", "fieldsType": "FieldsV1",
                               "fieldsV1": {"f:metadata": {"f:labels": {}}}}],
        })
    }

    fn size(meta: &ObjectMeta) -> usize {
        serde_json::to_vec(meta).unwrap().len()
    }

    fn assert_lean(meta: &ObjectMeta) {
        let labels = meta.labels.clone().unwrap_or_default();
        assert_eq!(
            labels,
            BTreeMap::from([
                (labels::INSTANCE.to_string(), "shop".to_string()),
                (
                    labels::MANAGED_BY_KEY.to_string(),
                    labels::MANAGED_BY.to_string()
                ),
            ])
        );
        let references = meta.owner_references.clone().unwrap_or_default();
        assert_eq!(references.len(), 1);
        assert_eq!(references[0].uid, "uid-shop");
        assert_eq!(meta.name.as_deref(), Some("junk"));
        assert_eq!(meta.resource_version.as_deref(), Some("7"));
        assert!(size(meta) < 1024, "kept {} bytes", size(meta));
    }

    #[test]
    fn a_secret_with_a_megabyte_of_labels_decodes_to_the_operators_keys() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
                            "metadata": hostile_metadata("junk"),
                            "data": {"blob": "eA==".repeat(100_000)}});
        let text = serde_json::to_string(&secret).unwrap();
        assert!(text.len() > 1_000_000, "{} bytes", text.len());
        let slim: Slim<Secret> = serde_json::from_str(&text).unwrap();
        assert_lean(slim.meta());
        // The same from a value (the controller's tests fill caches so).
        let slim: Slim<Secret> = serde_json::from_value(secret).unwrap();
        assert_lean(slim.meta());
    }

    #[test]
    fn objects_cached_whole_keep_the_operators_keys_only() {
        let mut pod: Pod = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": hostile_metadata("junk")
        }))
        .unwrap();
        keep(&mut pod.metadata);
        assert_lean(&pod.metadata);
        let mut deployment: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": hostile_metadata("junk")
        }))
        .unwrap();
        keep(&mut deployment.metadata);
        assert_lean(&deployment.metadata);
    }

    #[test]
    fn of_annotations_only_a_stamp_of_sane_size_is_kept() {
        let decoded = |stamp: &str| -> Option<BTreeMap<String, String>> {
            let slim: Slim<Secret> = serde_json::from_value(json!({"metadata": {"name": "s",
                "annotations": {"note": "x", STAMP: stamp, labels::INSTANCE: "shop"}}}))
            .unwrap();
            slim.meta().annotations.clone()
        };
        let kept = decoded("00000000000000ab g2");
        assert_eq!(kept.unwrap()[STAMP], "00000000000000ab g2");
        assert_eq!(decoded(&"0".repeat(1000)), None);
    }

    #[test]
    fn a_controller_reference_is_kept_bounded() {
        let mut meta = ObjectMeta {
            owner_references: Some(vec![
                OwnerReference {
                    name: "not-controller".into(),
                    ..OwnerReference::default()
                },
                OwnerReference {
                    name: "é".repeat(100_000),
                    kind: "AppStack".into(),
                    controller: Some(true),
                    ..OwnerReference::default()
                },
            ]),
            ..ObjectMeta::default()
        };
        keep(&mut meta);
        let references = meta.owner_references.unwrap();
        assert_eq!(references.len(), 1);
        assert!(references[0].name.len() <= REFERENCE_MAX);
        assert_eq!(references[0].kind, "AppStack");
    }

    #[test]
    fn absent_or_null_labels_and_references_decode() {
        let slim: Slim<Secret> = serde_json::from_value(
            json!({"metadata": {"name": "s", "labels": null, "ownerReferences": null}}),
        )
        .unwrap();
        assert_eq!(slim.meta().labels, None);
        assert_eq!(slim.meta().owner_references, None);
        let slim: Slim<Secret> =
            serde_json::from_value(json!({"metadata": {"name": "s"}})).unwrap();
        assert_eq!(slim.meta().name.as_deref(), Some("s"));
    }
}
