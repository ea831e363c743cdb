//! The generic child machinery, at the bottom of the reconciler: watch
//! caches, the kinds, the memo, and the child set that applies and prunes.
//! It takes only what it needs (a client, the caches, the memo, metrics),
//! never the controller's whole context, and depends on nothing above it.

mod cache;
mod created;
mod findings;
mod handoff;
mod holder;
mod kind;
mod kinds;
mod memo;
mod set;
mod stamp;
mod tools;
mod watches;
mod write;

pub use cache::{Caches, Touched};
pub use holder::foreign_holder;
pub use kind::{ChildKind, Meta};
pub use kinds::KINDS;
pub use memo::Memo;
pub use set::{ChildSet, Finding, Guard, Owner, Pruned, Tools};
#[cfg(test)]
pub use watches::fixture;
pub use watches::watch;
pub use write::{remember_created, stamped_new};
