//! Server-Side Apply of child objects, with one field manager.
//!
//! Every reconcile computes every child, but it only sends those that could
//! differ from what is in the cluster: the applier remembers, per child, a hash
//! of what it last applied and the resourceVersion the API server answered
//! with. When the watch cache still shows that resourceVersion and the desired
//! object hashes the same, nobody has touched the child since, so the request
//! is skipped. Any other writer (a user's edit, a deletion, a status update)
//! moves the resourceVersion and the child is applied again. After a restart
//! the memory is empty and each child is applied once; an apply that changes
//! nothing does not move its resourceVersion.

use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;

use kube::api::{Api, Patch, PatchParams};
use kube::core::NamespaceResourceScope;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::build::FIELD_MANAGER;
use crate::error::{Error, Result};
use crate::telemetry::Metrics;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    kind: &'static str,
    namespace: String,
    name: String,
}

#[derive(Clone, Debug)]
struct Applied {
    hash: u64,
    resource_version: String,
}

#[derive(Default)]
pub struct Applier {
    last: Mutex<HashMap<Key, Applied>>,
}

impl Applier {
    /// Applies `object` unless the cache proves it is unchanged since our last
    /// apply. `cached_version` is the child's resourceVersion in the watch cache.
    pub async fn apply<K>(
        &self,
        client: &Client,
        metrics: &Metrics,
        namespace: &str,
        object: &K,
        cached_version: Option<String>,
    ) -> Result<()>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
            + Serialize
            + DeserializeOwned
            + Clone
            + Debug,
    {
        let kind = K::kind(&()).into_owned();
        let kind: &'static str = static_kind_of(&kind);
        let name = object.name_any();
        let key = Key {
            kind,
            namespace: namespace.to_string(),
            name: name.clone(),
        };
        let hash = hash_of(object).map_err(|e| Error::Serialize(kind, e))?;
        if let (Some(version), Some(last)) = (cached_version, self.get(&key))
            && last.hash == hash
            && last.resource_version == version
        {
            metrics.applies_skipped.inc();
            return Ok(());
        }

        metrics.applies.inc();
        let api: Api<K> = Api::namespaced(client.clone(), namespace);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let applied = api
            .patch(&name, &params, &Patch::Apply(object))
            .await
            .map_err(|source| Error::Apply {
                kind,
                name: name.clone(),
                source,
            })?;
        match applied.resource_version() {
            Some(resource_version) => self.put(
                key,
                Applied {
                    hash,
                    resource_version,
                },
            ),
            None => self.forget(&key),
        }
        Ok(())
    }

    /// Drops what we remember of a child (after deleting it).
    pub fn forget_child(&self, kind: &'static str, namespace: &str, name: &str) {
        self.forget(&Key {
            kind,
            namespace: namespace.to_string(),
            name: name.to_string(),
        });
    }

    fn get(&self, key: &Key) -> Option<Applied> {
        self.last.lock().ok().and_then(|m| m.get(key).cloned())
    }

    fn put(&self, key: Key, applied: Applied) {
        if let Ok(mut m) = self.last.lock() {
            m.insert(key, applied);
        }
    }

    fn forget(&self, key: &Key) {
        if let Ok(mut m) = self.last.lock() {
            m.remove(key);
        }
    }
}

fn hash_of<K: Serialize>(object: &K) -> Result<u64, serde_json::Error> {
    let bytes = serde_json::to_vec(object)?;
    let mut hasher = DefaultHasher::new();
    bytes.hash(&mut hasher);
    Ok(hasher.finish())
}

/// Child kinds are a fixed set; map them to static names for keys and errors.
pub fn static_kind_of(kind: &str) -> &'static str {
    match kind {
        "Deployment" => "Deployment",
        "StatefulSet" => "StatefulSet",
        "Service" => "Service",
        "Secret" => "Secret",
        "HorizontalPodAutoscaler" => "HorizontalPodAutoscaler",
        "PodDisruptionBudget" => "PodDisruptionBudget",
        _ => "Object",
    }
}

/// True when the API server refused the object as invalid (HTTP 422), e.g. a
/// change to a field it forbids changing in place.
pub fn is_invalid(error: &Error) -> bool {
    matches!(error, Error::Apply { source: kube::Error::Api(status), .. } if status.code == 422)
}
