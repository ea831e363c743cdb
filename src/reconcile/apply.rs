//! The applier's memory: what was last applied to each child.
//!
//! Every reconcile computes every child, but only those that could differ
//! from what is in the cluster are sent: the memo keeps, per child, a hash of
//! what was last applied and the resourceVersion the API server answered
//! with. When the watch cache still shows that resourceVersion and the
//! desired object hashes the same, nobody has touched the child since, so the
//! request is skipped. Any other writer (a user's edit, a deletion, a status
//! update) moves the resourceVersion and the child is applied again. After a
//! restart the memo is empty and each child is applied once; an apply that
//! changes nothing does not move its resourceVersion.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::Serialize;

/// One child: kind, namespace, name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Debug)]
struct Applied {
    /// The stack that applied it.
    stack: String,
    hash: u64,
    resource_version: String,
}

#[derive(Default)]
pub struct Memo {
    last: Mutex<HashMap<Key, Applied>>,
}

impl Memo {
    /// True when the child with `key`, desired as `hash`, was last applied
    /// as `hash` and the cache still shows the answer's resourceVersion.
    pub fn unchanged(&self, key: &Key, hash: u64, cached_version: Option<&str>) -> bool {
        let last = self.lock();
        matches!(
            (cached_version, last.get(key)),
            (Some(version), Some(a)) if a.hash == hash && a.resource_version == version
        )
    }

    /// Remembers an apply's answer (forgets the child if it had no version).
    pub fn remember(&self, key: Key, stack: &str, hash: u64, resource_version: Option<String>) {
        let mut last = self.lock();
        match resource_version {
            Some(resource_version) => {
                last.insert(
                    key,
                    Applied {
                        stack: stack.to_string(),
                        hash,
                        resource_version,
                    },
                );
            }
            None => {
                last.remove(&key);
            }
        }
    }

    /// Drops what is remembered of a child (after deleting it).
    pub fn forget(&self, key: &Key) {
        self.lock().remove(key);
    }

    /// Drops everything remembered of a stack's children (it was deleted).
    pub fn forget_stack(&self, namespace: &str, stack: &str) {
        self.lock()
            .retain(|k, a| k.namespace != namespace || a.stack != stack);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// The map is only ever left mid-update by a panic in `HashMap` itself;
    /// its entries are still whole, and a stale entry costs one extra apply.
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Applied>> {
        self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A stable hash of what would be sent, but for the resourceVersion an
/// apply may name as its precondition: the version the cache shows is
/// compared apart, and a precondition alone is no change to send.
pub fn hash_of<K: Serialize>(object: &K) -> Result<u64, serde_json::Error> {
    let mut value = serde_json::to_value(object)?;
    if let Some(meta) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        meta.remove("resourceVersion");
    }
    let bytes = serde_json::to_vec(&value)?;
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    Ok(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> Key {
        Key {
            kind: "Service",
            namespace: "ns".into(),
            name: name.into(),
        }
    }

    #[test]
    fn unchanged_only_when_hash_and_version_both_match() {
        let memo = Memo::default();
        assert!(!memo.unchanged(&key("a"), 1, Some("10")));
        memo.remember(key("a"), "shop", 1, Some("10".into()));
        assert!(memo.unchanged(&key("a"), 1, Some("10")));
        assert!(!memo.unchanged(&key("a"), 2, Some("10")), "spec changed");
        assert!(!memo.unchanged(&key("a"), 1, Some("11")), "someone wrote");
        assert!(!memo.unchanged(&key("a"), 1, None), "deleted");
        memo.forget(&key("a"));
        assert!(!memo.unchanged(&key("a"), 1, Some("10")));
    }

    #[test]
    fn a_deleted_stack_is_forgotten() {
        let memo = Memo::default();
        memo.remember(key("shop-web"), "shop", 1, Some("1".into()));
        memo.remember(key("shop-b-web"), "shop-b", 1, Some("1".into()));
        memo.forget_stack("ns", "shop");
        assert_eq!(memo.len(), 1);
        assert!(memo.unchanged(&key("shop-b-web"), 1, Some("1")));
    }

    #[test]
    fn hashes_follow_content() {
        assert_eq!(hash_of(&"a").unwrap(), hash_of(&"a").unwrap());
        assert_ne!(hash_of(&"a").unwrap(), hash_of(&"b").unwrap());
    }
}
