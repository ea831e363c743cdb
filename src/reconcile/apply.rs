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

/// A child object as the applier sends it: namespaced, serializable, and read
/// back from the API server's answer.
pub trait Child:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + Serialize
    + DeserializeOwned
    + Clone
    + Debug
{
}

impl<K> Child for K where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug
{
}

/// A child `plan` found to need sending: its key and the hash to remember.
pub struct Pending {
    key: Key,
    hash: u64,
}

#[derive(Default)]
pub struct Applier {
    last: Mutex<HashMap<Key, Applied>>,
}

impl Applier {
    /// Applies `object` unless the cache proves it is unchanged since our last
    /// apply. `cached_version` is the child's resourceVersion in the watch cache.
    pub async fn apply<K: Child>(
        &self,
        client: &Client,
        metrics: &Metrics,
        namespace: &str,
        object: &K,
        cached_version: Option<String>,
    ) -> Result<()> {
        match self.plan(metrics, namespace, object, cached_version)? {
            Some(pending) => self.send(client, metrics, namespace, object, pending).await,
            None => Ok(()),
        }
    }

    /// Whether `object` must be sent: `None` when the cache proves it unchanged
    /// since our last apply (counted as skipped), otherwise what `send` needs.
    pub fn plan<K: Child>(
        &self,
        metrics: &Metrics,
        namespace: &str,
        object: &K,
        cached_version: Option<String>,
    ) -> Result<Option<Pending>> {
        let (key, hash) = key_and_hash(namespace, object)?;
        let unchanged = matches!(
            (cached_version, self.get(&key)),
            (Some(version), Some(last)) if last.hash == hash && last.resource_version == version
        );
        if unchanged {
            metrics.applies_skipped.inc();
            return Ok(None);
        }
        Ok(Some(Pending { key, hash }))
    }

    /// Sends `object` (Server-Side Apply, forced) and remembers the answer.
    pub async fn send<K: Child>(
        &self,
        client: &Client,
        metrics: &Metrics,
        namespace: &str,
        object: &K,
        Pending { key, hash }: Pending,
    ) -> Result<()> {
        metrics.applies.inc();
        let api: Api<K> = Api::namespaced(client.clone(), namespace);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        let applied = api
            .patch(&key.name, &params, &Patch::Apply(object))
            .await
            .map_err(|source| Error::Apply {
                kind: key.kind,
                name: key.name.clone(),
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

fn key_and_hash<K>(namespace: &str, object: &K) -> Result<(Key, u64)>
where
    K: Resource<DynamicType = ()> + Serialize,
{
    let kind = static_kind_of(&K::kind(&()));
    let hash = hash_of(object).map_err(|e| Error::Serialize(kind, e))?;
    let key = Key {
        kind,
        namespace: namespace.to_string(),
        name: object.name_any(),
    };
    Ok((key, hash))
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
