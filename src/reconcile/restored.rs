//! Which stores were restored, and from which stack: an annotation the
//! operator sets on the store's StatefulSet, `appstack.dev/restored-from`.
//!
//! Why there: the record rides along with the very apply that takes the
//! restore container out of the store's pod, so the two cannot disagree,
//! and it costs no request of its own (nor any right over the AppStack,
//! which the operator only reads). The status is a report, not memory: an
//! older operator kept this in `status.<store>.restoredFrom`, which is
//! still read for compatibility (and covers a StatefulSet deleted by hand;
//! without either, the restore container would find the volume full and
//! restore nothing).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

pub const KEY: &str = "appstack.dev/restored-from";

/// The longest source name kept (a stack name's limit): the caches keep
/// this annotation of a StatefulSet, and no more than this of it.
const VALUE_MAX: usize = 253;

/// The stack a StatefulSet's store was restored from, if it says so.
pub fn from(meta: &ObjectMeta) -> Option<&str> {
    meta.annotations.as_ref()?.get(KEY).map(String::as_str)
}

/// Of `annotations`, only the record (bounded): what the caches keep.
pub fn own(annotations: Option<&BTreeMap<String, String>>) -> Option<BTreeMap<String, String>> {
    let value = annotations?.get(KEY).filter(|v| v.len() <= VALUE_MAX)?;
    Some(BTreeMap::from([(KEY.to_string(), value.clone())]))
}

/// Records on `meta` that its store was restored from `source`.
pub fn record(meta: &mut ObjectMeta, source: &str) {
    meta.annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(KEY.to_string(), source.to_string());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_record_is_kept_and_read_back() {
        let mut meta = ObjectMeta::default();
        record(&mut meta, "old-shop");
        let mut all = meta.annotations.clone().unwrap_or_default();
        all.insert("note".into(), "x".repeat(1000));
        let kept = ObjectMeta {
            annotations: own(Some(&all)),
            ..ObjectMeta::default()
        };
        assert_eq!(kept.annotations.as_ref().map(BTreeMap::len), Some(1));
        assert_eq!(from(&kept), Some("old-shop"));
        let long = BTreeMap::from([(KEY.to_string(), "y".repeat(300))]);
        assert_eq!(own(Some(&long)), None);
    }
}
