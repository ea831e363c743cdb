//! Watches of the AppStacks and of every child kind, each feeding a reflector
//! store that the reconciler reads instead of the API server. Children are
//! watched through the managed-by label only, and each kind's declaration
//! says whether its cache keeps whole objects or metadata (see `kinds`).

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::batch::v1::Job;
use kube::api::Api;
use kube::core::NamespaceResourceScope;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};

use super::kind::{Cacheable, ChildKind, LIST_PAGE};
use crate::api::{AppStack, StoredAppStack};
use crate::build::labels;
use crate::lean::Slim;

/// A child's watch event, as much of it as wakes stacks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Touched {
    pub namespace: String,
    pub name: String,
    /// The AppStack that controls the child, if one does.
    pub controller: Option<String>,
}

impl Touched {
    fn of<C: Resource>(child: &C) -> Self {
        let controller = child
            .owner_references()
            .iter()
            .find(|r| r.controller == Some(true) && r.kind == AppStack::kind(&()))
            .map(|r| r.name.clone());
        Self {
            namespace: child.namespace().unwrap_or_default(),
            name: child.name_any(),
            controller,
        }
    }
}

pub type ChildEvents = futures::stream::BoxStream<'static, Result<Touched, watcher::Error>>;
pub type StackEvents = futures::stream::BoxStream<'static, Result<StoredAppStack, watcher::Error>>;

/// The child caches, one per cached type, filled by their watches.
#[derive(Default)]
pub struct CacheMap {
    stores: HashMap<TypeId, Box<dyn Any + Send + Sync>>,
    listed: Arc<AtomicUsize>,
    /// Per optional kind (see [`ChildKind::OPTIONAL`]): whether the cluster
    /// serves its API, as its watch last found.
    served: HashMap<TypeId, Arc<AtomicBool>>,
}

impl CacheMap {
    fn insert<C: Cacheable>(&mut self, store: Store<C>) {
        self.stores.insert(TypeId::of::<C>(), Box::new(store));
    }

    /// What counts the watches that have listed.
    pub(super) fn listed(&self) -> &Arc<AtomicUsize> {
        &self.listed
    }
}

/// What the reconciler knows of the cluster, kept current by watches.
#[derive(Clone)]
pub struct Caches {
    pub stacks: Store<StoredAppStack>,
    children: Arc<CacheMap>,
    /// How many watches there are (every child kind and the stacks).
    watches: usize,
}

impl Caches {
    /// The caches of `watches` watches: the stacks' and every child's.
    pub(super) fn new(stacks: Store<StoredAppStack>, children: CacheMap, watches: usize) -> Self {
        Self {
            stacks,
            children: Arc::new(children),
            watches,
        }
    }

    /// The cache of one cached type; `None` only for a type no kind declares.
    pub fn store<C: Cacheable>(&self) -> Option<&Store<C>> {
        self.children
            .stores
            .get(&TypeId::of::<C>())
            .and_then(|s| s.downcast_ref::<Store<C>>())
    }

    /// Whether the cluster serves the API of kind `K`: always for a kind
    /// that is not optional; for an optional one, as its watch last found
    /// (false until it has listed once).
    pub fn served<K: ChildKind>(&self) -> bool {
        self.children
            .served
            .get(&TypeId::of::<K>())
            .is_none_or(|s| s.load(Ordering::Relaxed))
    }

    /// One object from the cache of its type.
    pub fn get<C: Cacheable>(&self, namespace: &str, name: &str) -> Option<Arc<C>> {
        self.store::<C>()?
            .get(&ObjectRef::new(name).within(namespace))
    }

    /// Resolves once every watch has listed its objects into its store.
    pub async fn wait_ready(&self) {
        while self.children.listed.load(Ordering::Relaxed) < self.watches {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
{
    match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    }
}

/// Counts a watch once, when its first list is in the store. (Waiting on
/// `Store::wait_until_ready` from a second task would race the controller,
/// which waits on the same one-shot signal.)
fn count_first_list<K>(
    listed: &Arc<AtomicUsize>,
) -> impl FnMut(&watcher::Event<K>) + Send + 'static {
    let listed = listed.clone();
    let seen = AtomicBool::new(false);
    move |event| {
        if matches!(event, watcher::Event::InitDone) && !seen.swap(true, Ordering::Relaxed) {
            listed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// One watch into a store: trimmed as it arrives, counted once listed.
/// Returns the store and the watch's events, for the caller to select from.
fn reflected<K: Cacheable>(
    client: &Client,
    namespace: Option<&str>,
    config: watcher::Config,
    trim: fn(&mut K),
    listed: &Arc<AtomicUsize>,
) -> (
    Store<K>,
    impl futures::Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
) {
    let (reader, writer) = reflector::store::<K>();
    let events = watcher(api::<K>(client, namespace), config)
        .default_backoff()
        .modify(trim)
        .reflect(writer)
        .inspect_ok(count_first_list(listed));
    (reader, events)
}

/// Starts the watch of one child kind: its store goes into `caches`, and
/// the returned stream tells which children changed.
pub fn watch_kind<K: ChildKind>(
    client: &Client,
    namespace: Option<&str>,
    caches: &mut CacheMap,
) -> ChildEvents {
    let config = watcher::Config::default()
        .labels(&labels::managed_selector())
        .page_size(LIST_PAGE);
    let Some(install) = K::OPTIONAL else {
        let (reader, events) =
            reflected::<K::Cached>(client, namespace, config, K::trim, &caches.listed);
        caches.insert(reader);
        return events
            .touched_objects()
            .map_ok(|child| Touched::of(&child))
            .boxed();
    };
    // An API the cluster may not serve: a list it refuses (404 without the
    // CRD, 403 without the RBAC) counts as listed, so that every other kind
    // reconciles, and says so in `served`. The watcher keeps retrying with
    // its backoff, so installing the CRD later is picked up; those refusals
    // are expected and logged at debug only.
    let served = Arc::new(AtomicBool::new(false));
    caches.served.insert(TypeId::of::<K>(), served.clone());
    let (reader, writer) = reflector::store::<K::Cached>();
    caches.insert(reader);
    let listed = caches.listed.clone();
    let counted = AtomicBool::new(false);
    let kind = K::KIND;
    watcher(api::<K::Cached>(client, namespace), config)
        .default_backoff()
        .modify(K::trim)
        .reflect(writer)
        .filter_map(move |event| {
            let missing = match &event {
                Ok(watcher::Event::InitDone) => {
                    served.store(true, Ordering::Relaxed);
                    false
                }
                Err(watcher::Error::InitialListFailed(kube::Error::Api(s)))
                | Err(watcher::Error::WatchStartFailed(kube::Error::Api(s)))
                    if s.code == 404 || s.code == 403 =>
                {
                    if served.swap(false, Ordering::Relaxed) || !counted.load(Ordering::Relaxed) {
                        tracing::info!(
                            kind,
                            code = s.code,
                            "this API is not served (or not allowed): install {install}"
                        );
                    }
                    true
                }
                _ => false,
            };
            if (missing || matches!(event, Ok(watcher::Event::InitDone)))
                && !counted.swap(true, Ordering::Relaxed)
            {
                listed.fetch_add(1, Ordering::Relaxed);
            }
            std::future::ready((!missing).then_some(event))
        })
        .touched_objects()
        .map_ok(|child| Touched::of(&child))
        .boxed()
}

/// Backup Jobs wake their stack when they start and end: the CronJob's
/// status tracks only the Jobs it made itself, so one made from it by hand
/// (`kubectl create job --from=cronjob/...`) would otherwise be noticed only
/// by chance. Nothing is cached; each event is decoded lean. A Job counts
/// only when a CronJob controls it, and it can wake only a stack of its own
/// namespace.
pub(super) fn watch_backup_jobs(client: &Client, namespace: Option<&str>) -> ChildEvents {
    let config = watcher::Config::default()
        .labels(&labels::managed_selector())
        .page_size(LIST_PAGE);
    watcher(api::<Slim<Job>>(client, namespace), config)
        .default_backoff()
        .touched_objects()
        .map_ok(|job| {
            let by_cron_job = job
                .owner_references()
                .iter()
                .any(|r| r.controller == Some(true) && r.kind == "CronJob");
            Touched {
                namespace: job.namespace().unwrap_or_default(),
                name: job.name_any(),
                controller: by_cron_job
                    .then(|| job.labels().get(labels::INSTANCE).cloned())
                    .flatten(),
            }
        })
        .boxed()
}

/// Secrets users made for their stacks (an external store's connection,
/// an existingSecret), labelled `appstack.dev/store-secret`: metadata only
/// (PartialObjectMetadata, decoded lean), nothing cached, so a tenant who
/// labels many large Secrets costs events, not memory. An event wakes the
/// stacks of its namespace that read a Secret of that name (see
/// `ownership::Waiting`); none is its controller.
pub(super) fn watch_user_secrets(client: &Client, namespace: Option<&str>) -> ChildEvents {
    let config = watcher::Config::default()
        .labels(crate::build::external::WATCH_LABEL)
        .page_size(LIST_PAGE);
    watcher(
        api::<Slim<k8s_openapi::api::core::v1::Secret>>(client, namespace),
        config,
    )
    .default_backoff()
    .touched_objects()
    .map_ok(|secret| Touched {
        namespace: secret.namespace().unwrap_or_default(),
        name: secret.name_any(),
        controller: None,
    })
    .boxed()
}

/// The pods the operator labels with a store role (`appstack.dev/role`: a
/// replicated store's primary, master or replicas): metadata only, nothing
/// cached. A change of one (a label someone else set or removed, the pod
/// going) wakes the stack its instance label names at once, so a forged
/// role label is gone within a reconcile, and the stack need not be polled
/// often while its store is settled.
pub(super) fn watch_store_pods(client: &Client, namespace: Option<&str>) -> ChildEvents {
    let config = watcher::Config::default()
        .labels(labels::STORE_ROLE)
        .page_size(LIST_PAGE);
    watcher(
        api::<Slim<k8s_openapi::api::core::v1::Pod>>(client, namespace),
        config,
    )
    .default_backoff()
    .touched_objects()
    .map_ok(|pod| Touched {
        namespace: pod.namespace().unwrap_or_default(),
        name: pod.name_any(),
        controller: pod.labels().get(labels::INSTANCE).cloned(),
    })
    .boxed()
}

/// The stacks are watched as stored: one that does not decode is reported
/// on itself instead of failing the list of all of them. They list in small
/// pages too: a stack can carry 256 KiB of annotations (dropped as it is
/// decoded) and a spec of up to about 1.5 MB.
pub(super) fn watch_stacks(
    client: &Client,
    namespace: Option<&str>,
    listed: &Arc<AtomicUsize>,
) -> (Store<StoredAppStack>, StackEvents) {
    let config = watcher::Config::default().page_size(LIST_PAGE);
    let (reader, events) = reflected(client, namespace, config, StoredAppStack::strip, listed);
    (reader, events.applied_objects().boxed())
}

/// Caches filled by hand instead of by watches: the controller's unit tests
/// put in them what the watches would have delivered.
#[cfg(test)]
pub mod fixture {
    use super::*;

    /// Puts (or, with `true`, deletes) an object given as JSON into its
    /// cache; false when the object is not of that cache's kind.
    pub type Fill = Box<dyn FnMut(&serde_json::Value, bool) -> bool + Send>;

    /// A hand-filled cache for the kind `K`, trimmed as its watch would.
    pub fn by_hand<K: ChildKind>(map: &mut CacheMap) -> Fill {
        let (reader, mut writer) = reflector::store::<K::Cached>();
        map.insert(reader);
        Box::new(move |value, delete| {
            if value["kind"].as_str() != Some(K::KIND) {
                return false;
            }
            let mut object: K::Cached =
                serde_json::from_value(value.clone()).expect("a valid object");
            K::trim(&mut object);
            let event = if delete {
                watcher::Event::Delete(object)
            } else {
                watcher::Event::Apply(object)
            };
            writer.apply_watcher_event(&event);
            true
        })
    }
}
