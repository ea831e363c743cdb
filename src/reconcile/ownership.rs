//! Who holds a child's name. The operator writes an object only when it does
//! not exist yet or when this stack is its controller: Server-Side Apply with
//! force would otherwise take over another stack's child, or an object a user
//! made by hand (which would then be deleted along with the stack).
//!
//! A stack that finds its name taken waits. [`Waiting`] remembers which names
//! it waits for, so the watch event of that name's object (deleted by its
//! owner, or handed over) wakes it at once; objects made outside AppStack are
//! not watched, and the stack looks again on its short requeue.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::ObjectRef;

use super::caches::Touched;
use crate::api::StoredAppStack;

/// How an existing object's holder reads in a message, when it is not the
/// stack with `uid`; `None` when that stack controls it.
pub fn foreign_holder(meta: &ObjectMeta, uid: &str) -> Option<String> {
    let controller = meta
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true));
    match controller {
        Some(r) if r.uid == uid => None,
        Some(r) => Some(format!("belongs to {} {}", r.kind, r.name)),
        None => Some(
            "was not created by AppStack, which never takes over an object it did not create \
             (delete it if nothing needs it)"
                .to_string(),
        ),
    }
}

type NameKey = (String, String);

/// Names that stacks are waiting for, per namespace.
#[derive(Default)]
pub struct Waiting {
    names: Mutex<HashMap<NameKey, BTreeSet<String>>>,
}

impl Waiting {
    /// Records that `stack` waits for exactly `names` (none: it waits for nothing).
    pub fn set(&self, namespace: &str, stack: &str, names: &[String]) {
        let mut map = self.lock();
        map.retain(|(ns, name), stacks| {
            if ns == namespace && !names.contains(name) {
                stacks.remove(stack);
            }
            !stacks.is_empty()
        });
        for name in names {
            map.entry((namespace.to_string(), name.clone()))
                .or_default()
                .insert(stack.to_string());
        }
    }

    /// The stacks a child's watch event concerns: the AppStack that controls
    /// it, and every stack waiting for its name.
    pub fn stacks_to_wake(&self, child: &Touched) -> Vec<ObjectRef<StoredAppStack>> {
        let key = (child.namespace.clone(), child.name.clone());
        let waiting = self.lock().get(&key).cloned().into_iter().flatten();
        child
            .controller
            .clone()
            .into_iter()
            .chain(waiting)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|stack| ObjectRef::new(&stack).within(&child.namespace))
            .collect()
    }

    /// Entries are replaced whole, so a panic elsewhere cannot leave one
    /// half-written: the map is still sound after a poisoning.
    fn lock(&self) -> MutexGuard<'_, HashMap<NameKey, BTreeSet<String>>> {
        self.names.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn owned_by(uid: &str, controller: bool) -> ObjectMeta {
        ObjectMeta {
            name: Some("shop-web".into()),
            namespace: Some("ns".into()),
            owner_references: Some(vec![OwnerReference {
                kind: "AppStack".into(),
                name: "other".into(),
                uid: uid.into(),
                controller: Some(controller),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn only_our_controller_reference_makes_a_child_ours() {
        assert_eq!(foreign_holder(&owned_by("ours", true), "ours"), None);
        assert_eq!(
            foreign_holder(&owned_by("theirs", true), "ours").as_deref(),
            Some("belongs to AppStack other")
        );
        // A plain owner reference (not controller) and no owner at all both
        // mean somebody else made it.
        for meta in [owned_by("ours", false), ObjectMeta::default()] {
            let holder = foreign_holder(&meta, "ours").unwrap();
            assert!(holder.contains("not created by AppStack"), "{holder}");
        }
    }

    #[test]
    fn a_child_event_wakes_its_owner_and_the_stacks_waiting_for_its_name() {
        let waiting = Waiting::default();
        waiting.set("ns", "b", &["shop-web".into()]);
        waiting.set("ns", "c", &["shop-web".into(), "shop-redis".into()]);
        let web = Touched {
            namespace: "ns".into(),
            name: "shop-web".into(),
            controller: None,
        };
        let names = |w: &Waiting, t: &Touched| -> Vec<String> {
            w.stacks_to_wake(t).into_iter().map(|r| r.name).collect()
        };
        assert_eq!(names(&waiting, &web), ["b", "c"]);
        waiting.set("ns", "b", &[]);
        assert_eq!(names(&waiting, &web), ["c"]);
        let elsewhere = Touched {
            namespace: "other".into(),
            ..web.clone()
        };
        assert!(names(&waiting, &elsewhere).is_empty());
        waiting.set("ns", "c", &["shop-redis".into()]);
        assert!(names(&waiting, &web).is_empty());
        // Its controlling stack is woken too, whether or not anyone waits.
        let owned = Touched {
            controller: Some("a".into()),
            ..web
        };
        assert_eq!(names(&waiting, &owned), ["a"]);
    }
}
