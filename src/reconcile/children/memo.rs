//! The applier's memory of children whose kind has no generation (Services,
//! Secrets, ConfigMaps): the resourceVersion each had when the operator last
//! wrote or checked it. Nothing but a user writes such an object after it
//! is made (no controller writes their status), so a moved resourceVersion
//! means someone changed it and it is applied again. Kinds with a generation
//! need no memory: the stamp on the object records it (see `stamp`).

use std::collections::HashMap;
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
struct Seen {
    /// The stack it belongs to.
    stack: String,
    resource_version: String,
}

#[derive(Default)]
pub struct Memo {
    last: Mutex<HashMap<Key, Seen>>,
}

impl Memo {
    /// The resourceVersion the child had when last written or checked.
    pub fn version(&self, key: &Key) -> Option<String> {
        self.lock().get(key).map(|s| s.resource_version.clone())
    }

    /// Remembers a child's version (forgets the child if it has none).
    pub fn remember(&self, key: Key, stack: &str, resource_version: Option<String>) {
        let mut last = self.lock();
        match resource_version {
            Some(resource_version) => {
                last.insert(
                    key,
                    Seen {
                        stack: stack.to_string(),
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
            .retain(|k, s| k.namespace != namespace || s.stack != stack);
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// The map is only ever left mid-update by a panic in `HashMap` itself;
    /// its entries are still whole, and a stale entry costs one extra apply.
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Seen>> {
        self.last.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A hash of what would be sent, but for the resourceVersion an apply may
/// name as its precondition (a precondition alone is no change to send).
/// FNV-1a over the JSON: it is written into the children, so it must not
/// change with the compiler (std's `DefaultHasher` may).
pub fn hash_of<K: Serialize>(object: &K) -> Result<u64, serde_json::Error> {
    let mut value = serde_json::to_value(object)?;
    if let Some(meta) = value.get_mut("metadata").and_then(|m| m.as_object_mut()) {
        meta.remove("resourceVersion");
    }
    let bytes = serde_json::to_vec(&value)?;
    Ok(bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    }))
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
    fn remembers_and_forgets_versions() {
        let memo = Memo::default();
        assert_eq!(memo.version(&key("a")), None);
        memo.remember(key("a"), "shop", Some("10".into()));
        assert_eq!(memo.version(&key("a")).as_deref(), Some("10"));
        memo.remember(key("a"), "shop", None);
        assert_eq!(memo.version(&key("a")), None);
        memo.remember(key("a"), "shop", Some("11".into()));
        memo.forget(&key("a"));
        assert_eq!(memo.version(&key("a")), None);
    }

    #[test]
    fn a_deleted_stack_is_forgotten() {
        let memo = Memo::default();
        memo.remember(key("shop-web"), "shop", Some("1".into()));
        memo.remember(key("shop-b-web"), "shop-b", Some("1".into()));
        memo.forget_stack("ns", "shop");
        assert_eq!(memo.len(), 1);
        assert_eq!(memo.version(&key("shop-b-web")).as_deref(), Some("1"));
    }

    #[test]
    fn hashes_follow_content_and_are_stable() {
        assert_eq!(hash_of(&"a").unwrap(), hash_of(&"a").unwrap());
        assert_ne!(hash_of(&"a").unwrap(), hash_of(&"b").unwrap());
        // Written into children: a change here re-applies every child once.
        assert_eq!(hash_of(&"a").unwrap(), 0xd427_2417_d7c7_7eea);
    }
}
