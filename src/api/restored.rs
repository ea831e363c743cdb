//! Which stores of a stack were restored, and from which stack: recorded
//! by the operator in annotations on the AppStack itself,
//! `restored.appstack.dev/<store>: <source stack>`.
//!
//! Why there: the fact belongs to the stack's data, not to one of its
//! children; a StatefulSet deleted and made again (the advice for a
//! rejected change) must not bring the restore back, and the status is a
//! report, not memory (an older operator kept it in `restoredFrom`, which
//! is still read for compatibility). The caches keep these annotations
//! (and no other) of a stack, bounded like its other metadata.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::StoreKind;

/// The annotations' prefix; the store's name follows the slash.
pub const PREFIX: &str = "restored.appstack.dev/";

/// The longest source name kept (a stack name's limit).
const VALUE_MAX: usize = 253;

/// The annotation key for one store.
pub fn key(store: StoreKind) -> String {
    format!("{PREFIX}{}", part(store))
}

fn part(store: StoreKind) -> String {
    serde_json::to_value(store)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The stores `meta` records as restored, with their source.
pub fn recorded(meta: &ObjectMeta) -> BTreeMap<StoreKind, String> {
    meta.annotations
        .iter()
        .flatten()
        .filter_map(|(k, v)| {
            let store = k.strip_prefix(PREFIX)?;
            let kind = serde_json::from_value(serde_json::Value::String(store.into())).ok()?;
            Some((kind, v.clone()))
        })
        .collect()
}

/// Of `annotations`, only the restore records (one per store kind at
/// most, their values bounded): what the caches keep.
pub fn own(annotations: Option<&BTreeMap<String, String>>) -> Option<BTreeMap<String, String>> {
    let kept: BTreeMap<String, String> = annotations
        .into_iter()
        .flatten()
        .filter(|(k, v)| {
            k.strip_prefix(PREFIX)
                .is_some_and(|s| serde_json::from_value::<StoreKind>(s.into()).is_ok())
                && v.len() <= VALUE_MAX
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    (!kept.is_empty()).then_some(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_read_back_and_nothing_else_is_kept() {
        let annotations = BTreeMap::from([
            (key(StoreKind::Postgres), "old-shop".to_string()),
            (format!("{PREFIX}valkey"), "x".to_string()),
            ("note".to_string(), "x".repeat(1000)),
            (key(StoreKind::Redis), "y".repeat(300)),
        ]);
        let meta = ObjectMeta {
            annotations: own(Some(&annotations)),
            ..ObjectMeta::default()
        };
        assert_eq!(
            meta.annotations.as_ref().map(BTreeMap::len),
            Some(1),
            "{meta:?}"
        );
        assert_eq!(
            recorded(&meta),
            BTreeMap::from([(StoreKind::Postgres, "old-shop".to_string())])
        );
        assert_eq!(key(StoreKind::Redis), "restored.appstack.dev/redis");
    }
}
