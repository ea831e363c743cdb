//! Deletes children that are no longer desired (a component removed, a store
//! section dropped). Candidates are found in the watch caches by the stack's
//! labels and must carry this stack's controller owner reference, so nothing
//! the operator did not create is touched. PVCs are never deleted here: the
//! StatefulSet's persistentVolumeClaimRetentionPolicy decides.

use std::collections::BTreeSet;
use std::fmt::Debug;

use kube::api::{Api, DeleteParams};
use kube::core::NamespaceResourceScope;
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tracing::info;

use crate::error::{Error, Result};

const INSTANCE: &str = "app.kubernetes.io/instance";

/// Names of the children of one kind that exist but are not desired.
pub fn orphans<C>(
    cache: &Store<C>,
    namespace: &str,
    stack: &str,
    uid: &str,
    desired: &BTreeSet<String>,
) -> Vec<String>
where
    C: Resource + Clone + 'static,
    C::DynamicType: Eq + std::hash::Hash + Clone,
{
    let mut names: Vec<String> = cache
        .state()
        .iter()
        .filter(|o| o.namespace().as_deref() == Some(namespace))
        .filter(|o| o.labels().get(INSTANCE).map(String::as_str) == Some(stack))
        .filter(|o| {
            o.owner_references()
                .iter()
                .any(|r| r.controller == Some(true) && r.uid == uid)
        })
        .map(|o| o.name_any())
        .filter(|name| !desired.contains(name))
        .collect();
    names.sort();
    names
}

/// Deletes one child by name (background propagation: its pods, ReplicaSets
/// and so on are collected by the garbage collector).
pub async fn delete<K>(client: &Client, namespace: &str, name: &str) -> Result<()>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let kind = K::kind(&()).into_owned();
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => {
            info!(%kind, %name, "deleted child that is no longer desired");
            Ok(())
        }
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(Error::Prune {
            kind: super::apply::static_kind_of(&kind),
            name: name.to_string(),
            source,
        }),
    }
}
