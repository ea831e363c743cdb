//! Watches of the AppStacks and of every child kind, each feeding a reflector
//! store that the reconciler reads instead of the API server. Children are
//! watched through the managed-by label only; Services, autoscalers and
//! disruption budgets as metadata only. managedFields are stripped everywhere,
//! which is most of an object's size after an apply.

use std::fmt::Debug;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, PartialObjectMeta};
use kube::core::NamespaceResourceScope;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::handoff;
use crate::api::AppStack;
use crate::build::labels;

pub type Meta<K> = PartialObjectMeta<K>;

/// What the reconciler knows of the cluster, kept current by watches.
#[derive(Clone)]
pub struct Caches {
    pub stacks: Store<AppStack>,
    pub deployments: Store<Deployment>,
    pub stateful_sets: Store<StatefulSet>,
    pub secrets: Store<Secret>,
    pub services: Store<Meta<Service>>,
    pub autoscalers: Store<Meta<HorizontalPodAutoscaler>>,
    pub disruption_budgets: Store<Meta<PodDisruptionBudget>>,
    /// How many of the watches above have completed their first list.
    listed: Arc<AtomicUsize>,
}

const WATCHES: usize = 7;

pub type Trigger<K> = futures::stream::BoxStream<'static, Result<K, watcher::Error>>;

/// The streams that drive the controller; polling them fills [`Caches`].
pub struct Triggers {
    pub stacks: Trigger<AppStack>,
    pub deployments: Trigger<Deployment>,
    pub stateful_sets: Trigger<StatefulSet>,
    pub secrets: Trigger<Secret>,
    pub services: Trigger<Meta<Service>>,
    pub autoscalers: Trigger<Meta<HorizontalPodAutoscaler>>,
    pub disruption_budgets: Trigger<Meta<PodDisruptionBudget>>,
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

fn children_config() -> watcher::Config {
    watcher::Config::default().labels(&format!(
        "app.kubernetes.io/managed-by={}",
        labels::MANAGED_BY
    ))
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

/// What the caches keep of managedFields: nothing.
fn strip<K: Resource>(o: &mut K) {
    o.managed_fields_mut().clear();
}

fn full<K>(
    client: &Client,
    ns: Option<&str>,
    config: watcher::Config,
    listed: &Arc<AtomicUsize>,
    trim: fn(&mut K),
) -> (Store<K>, Trigger<K>)
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api::<K>(client, ns), config)
        .default_backoff()
        .modify(trim)
        .reflect(writer)
        .inspect_ok(count_first_list(listed))
        .touched_objects()
        .boxed();
    (reader, stream)
}

fn metadata<K>(
    client: &Client,
    ns: Option<&str>,
    listed: &Arc<AtomicUsize>,
) -> (Store<Meta<K>>, Trigger<Meta<K>>)
where
    K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api::<Meta<K>>(client, ns), children_config())
        .default_backoff()
        .modify(|o: &mut Meta<K>| o.managed_fields_mut().clear())
        .reflect(writer)
        .inspect_ok(count_first_list(listed))
        .touched_objects()
        .boxed();
    (reader, stream)
}

pub fn watch(client: &Client, namespace: Option<&str>) -> (Caches, Triggers) {
    let listed = Arc::new(AtomicUsize::new(0));
    let (stacks, writer) = reflector::store();
    let stacks_t = watcher(
        api::<AppStack>(client, namespace),
        watcher::Config::default(),
    )
    .default_backoff()
    .modify(|o: &mut AppStack| o.managed_fields_mut().clear())
    .reflect(writer)
    .inspect_ok(count_first_list(&listed))
    .applied_objects()
    .boxed();
    let (deployments, deployments_t) = full::<Deployment>(
        client,
        namespace,
        children_config(),
        &listed,
        handoff::mark_and_strip,
    );
    let (stateful_sets, stateful_sets_t) =
        full::<StatefulSet>(client, namespace, children_config(), &listed, strip);
    let (secrets, secrets_t) = full::<Secret>(client, namespace, children_config(), &listed, strip);
    let (services, services_t) = metadata::<Service>(client, namespace, &listed);
    let (autoscalers, autoscalers_t) =
        metadata::<HorizontalPodAutoscaler>(client, namespace, &listed);
    let (disruption_budgets, disruption_budgets_t) =
        metadata::<PodDisruptionBudget>(client, namespace, &listed);
    (
        Caches {
            stacks,
            deployments,
            stateful_sets,
            secrets,
            services,
            autoscalers,
            disruption_budgets,
            listed,
        },
        Triggers {
            stacks: stacks_t,
            deployments: deployments_t,
            stateful_sets: stateful_sets_t,
            secrets: secrets_t,
            services: services_t,
            autoscalers: autoscalers_t,
            disruption_budgets: disruption_budgets_t,
        },
    )
}

/// Resolves once every watch has listed its objects into its store.
pub async fn wait_ready(caches: &Caches) {
    while caches.listed.load(Ordering::Relaxed) < WATCHES {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
