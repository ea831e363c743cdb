//! Every watch at once: the AppStacks', each declared kind's, the backup
//! Jobs' and the store pods' roles. Above the kinds, as it loops over them.

use kube::Client;

use super::cache::{self, CacheMap, Caches, ChildEvents, StackEvents};
use super::kinds::KINDS;

/// Starts every watch: the AppStacks', each declared kind's, and the
/// backup Jobs'.
pub fn watch(client: &Client, namespace: Option<&str>) -> (Caches, StackEvents, Vec<ChildEvents>) {
    let mut map = CacheMap::default();
    let (stacks, stack_events) = cache::watch_stacks(client, namespace, map.listed());
    let mut children: Vec<ChildEvents> = KINDS
        .iter()
        .map(|kind| kind.watch(client, namespace, &mut map))
        .collect();
    children.push(cache::watch_backup_jobs(client, namespace));
    children.push(cache::watch_user_secrets(client, namespace));
    children.push(cache::watch_store_pods(client, namespace));
    let caches = Caches::new(stacks, map, KINDS.len() + 1);
    (caches, stack_events, children)
}

/// Caches filled by hand instead of by watches: the controller's unit tests
/// put in them what the watches would have delivered.
#[cfg(test)]
pub mod fixture {
    use std::sync::atomic::Ordering;

    use kube::runtime::reflector::{self, store::Writer};
    use kube::runtime::watcher;

    use super::cache::fixture::Fill;
    use super::*;
    use crate::api::StoredAppStack;

    /// Caches plus a way to put objects into them.
    pub struct Filled {
        pub caches: Caches,
        stacks: Writer<StoredAppStack>,
        fills: Vec<Fill>,
    }

    impl Filled {
        pub fn new() -> Self {
            let mut map = CacheMap::default();
            let fills = KINDS.iter().map(|k| k.cache_by_hand(&mut map)).collect();
            map.listed().store(KINDS.len() + 1, Ordering::Relaxed);
            let (stacks, writer) = reflector::store();
            Self {
                caches: Caches::new(stacks, map, KINDS.len() + 1),
                stacks: writer,
                fills,
            }
        }

        /// Puts an object (as JSON, with apiVersion and kind) into its cache.
        pub fn put(&mut self, value: &serde_json::Value) {
            self.event(value, false);
        }

        /// Removes an object from its cache, as a deletion event would.
        pub fn remove(&mut self, value: &serde_json::Value) {
            self.event(value, true);
        }

        fn event(&mut self, value: &serde_json::Value, delete: bool) {
            if value["kind"] == "AppStack" {
                let stack: StoredAppStack =
                    serde_json::from_value(value.clone()).expect("an AppStack");
                self.stacks.apply_watcher_event(&if delete {
                    watcher::Event::Delete(stack)
                } else {
                    watcher::Event::Apply(stack)
                });
                return;
            }
            let put = self.fills.iter_mut().any(|fill| fill(value, delete));
            assert!(put, "no cache for kind {}", value["kind"]);
        }
    }
}
