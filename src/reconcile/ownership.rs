//! Who waits for a child's name (who holds one is `children::foreign_holder`).
//!
//! A stack that finds its name taken waits. [`Waiting`] remembers which names
//! it waits for, so the watch event of that name's object (deleted by its
//! owner, or handed over) wakes it at once; objects made outside AppStack are
//! not watched, and the stack looks again on its short requeue.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use kube::runtime::reflector::ObjectRef;

use super::children::Touched;
pub use super::children::foreign_holder;
use crate::api::StoredAppStack;

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
