//! What writing a child needs: the controller's tools and the stack.

use kube::Client;

use super::cache::Caches;
use super::memo::Memo;
use crate::telemetry::Metrics;

/// What the child machinery needs of the controller, and nothing more.
#[derive(Clone, Copy)]
pub struct Tools<'a> {
    pub client: &'a Client,
    pub caches: &'a Caches,
    pub memo: &'a Memo,
    pub metrics: &'a Metrics,
}

/// The stack a set belongs to.
pub struct Owner {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}
