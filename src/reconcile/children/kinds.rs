//! The child kinds, one declaration each: what the watch cache keeps of it,
//! where the builders put it, and its hooks. [`KINDS`] is the apply order
//! (pruning runs it backwards); watching, applying, pruning and waking stacks
//! all loop over it, so adding a kind is its builder plus one declaration here.

use std::marker::PhantomData;

use futures::future::BoxFuture;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::{ConfigMap, ObjectReference, PodTemplateSpec, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, IngressStatus, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use super::cache::{self, CacheMap, ChildEvents};
use super::handoff;
use super::kind::{ChildKind, Meta};
use super::memo::hash_of;
use super::set::ChildSet;
use super::stamp::Version;
use crate::api::gateway::HttpRoute;
use crate::build::Children;
use crate::build::rotation;
use crate::lean;
use crate::reconcile::migrations;
use crate::reconcile::restored;

/// Metadata only: the watch never carries a Secret's data (anyone may label
/// a Secret as ours, at any size), and credentials are read by a GET of the
/// stack's own Secrets when a reconcile needs them.
impl ChildKind for Secret {
    type Cached = Meta<Secret>;
    fn desired(children: &Children) -> &[Self] {
        &children.secrets
    }
}

/// The backup scripts.
impl ChildKind for ConfigMap {
    type Cached = Meta<ConfigMap>;
    fn desired(children: &Children) -> &[Self] {
        &children.config_maps
    }
}

/// Backups and scheduled jobs. Cached with the times of their last runs
/// (what status shows of a scheduled job), nothing else of spec or status:
/// its status changes when a Job starts or ends, which wakes the stack, and
/// the stack reads what a backup said from the backup pods.
impl ChildKind for CronJob {
    type Cached = CronJob;
    fn trim(c: &mut CronJob) {
        lean::keep(&mut c.metadata);
        c.spec = None;
        c.status = c.status.take().map(|s| CronJobStatus {
            last_schedule_time: s.last_schedule_time,
            last_successful_time: s.last_successful_time,
            // Whether a Job of it runs (a rotation waits for it): at most a
            // few references, names only.
            active: s.active.map(|a| {
                a.into_iter()
                    .take(4)
                    .map(|r| ObjectReference {
                        name: r.name.filter(|n| n.len() <= 253),
                        ..ObjectReference::default()
                    })
                    .collect()
            }),
        });
    }
    fn versioning(_desired: &Self) -> Version {
        Version::Generation { annotations: false }
    }
    const GUARDED: bool = true;
    fn desired(children: &Children) -> &[Self] {
        &children.cron_jobs
    }
}

/// The components' migrations: created once, never updated (a Job's pod
/// template cannot change; a new migration is a new Job), kept while it is
/// the component's current one. Cached with the counts and conditions of
/// its status, which order the component's rollout after it.
impl ChildKind for Job {
    type Cached = Job;
    fn desired(children: &Children) -> &[Self] {
        &children.jobs
    }
    fn trim(j: &mut Job) {
        lean::keep(&mut j.metadata);
        j.spec = None;
        j.status = j.status.take().map(migrations::trim_status);
    }
}

impl ChildKind for Service {
    type Cached = Meta<Service>;
    fn desired(children: &Children) -> &[Self] {
        &children.services
    }
}

impl ChildKind for StatefulSet {
    type Cached = StatefulSet;
    const GUARDED: bool = true;
    fn versioning(_desired: &Self) -> Version {
        Version::Generation { annotations: false }
    }
    /// A store: scaled to 0 (its volumes stay). The next apply once its
    /// policy exists takes the count back, as the count is ours.
    fn stop<'a>(
        api: &'a Api<Self>,
        cached: &'a StatefulSet,
    ) -> BoxFuture<'a, Result<bool, kube::Error>> {
        Box::pin(async move {
            if cached.spec.as_ref().and_then(|s| s.replicas) == Some(0) {
                return Ok(true);
            }
            let params = PatchParams {
                field_manager: Some(GUARD_MANAGER.into()),
                ..PatchParams::default()
            };
            let zero = Patch::Merge(json!({"spec": {"replicas": 0}}));
            api.patch(&cached.name_any(), &params, &zero).await?;
            Ok(true)
        })
    }
    fn desired(children: &Children) -> &[Self] {
        &children.stateful_sets
    }
    /// Status reads the replica count and the status; observe the restore
    /// record (kept beside the stamp, both bounded).
    fn trim(s: &mut StatefulSet) {
        let record = restored::own(s.metadata.annotations.as_ref());
        lean::keep(&mut s.metadata);
        // Beside the stamp, which `keep` kept.
        if let Some(record) = record {
            s.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .extend(record);
        }
        s.spec = s.spec.as_ref().map(|spec| StatefulSetSpec {
            replicas: spec.replicas,
            ..StatefulSetSpec::default()
        });
    }
    fn in_place_advice(name: &str) -> Option<String> {
        Some(format!(
            "StatefulSet fields such as volumeClaimTemplates (storage size, class) cannot change in place: \
             revert the change, or delete the StatefulSet with `kubectl delete statefulset {name} --cascade=orphan` \
             to have it recreated (its PVCs and data are kept, but existing PVCs are not resized)"
        ))
    }
}

impl ChildKind for Deployment {
    type Cached = Deployment;
    /// A Deployment's generation moves with its annotations too.
    fn versioning(_desired: &Self) -> Version {
        Version::Generation { annotations: true }
    }
    const GUARDED: bool = true;
    fn desired(children: &Children) -> &[Self] {
        &children.deployments
    }
    /// Status reads the replica count and the status; the hand-off our
    /// manager's claim on the count.
    fn trim(d: &mut Deployment) {
        let claim = handoff::our_claim(d.managed_fields());
        let migrated = migrations::own(d.metadata.annotations.as_ref());
        lean::keep(&mut d.metadata);
        d.metadata.managed_fields = claim;
        // Beside the stamp: the migration it was applied after.
        if let Some(migrated) = migrated {
            d.metadata
                .annotations
                .get_or_insert_with(Default::default)
                .extend(migrated);
        }
        // Of the pod template, only its credentials hash: whether the
        // rollout reached the current credentials (see `rollout`).
        let hash = d
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(rotation::HASH_ANNOTATION))
            .filter(|h| h.len() <= 64)
            .cloned();
        d.spec = d.spec.as_ref().map(|spec| DeploymentSpec {
            replicas: spec.replicas,
            template: PodTemplateSpec {
                metadata: hash.map(|h| ObjectMeta {
                    annotations: Some([(rotation::HASH_ANNOTATION.to_string(), h)].into()),
                    ..ObjectMeta::default()
                }),
                spec: None,
            },
            ..DeploymentSpec::default()
        });
    }
    fn before_apply<'a>(
        client: &'a Client,
        desired: &'a Self,
        cached: Option<&'a Deployment>,
    ) -> BoxFuture<'a, Result<(), kube::Error>> {
        Box::pin(handoff::replicas_to_autoscaler(client, desired, cached))
    }
}

/// Cached with its spec (when of a sane size), not its status: it has no
/// generation, and its controller keeps writing its status, so what stands
/// for its version is a hash of its spec.
impl ChildKind for HorizontalPodAutoscaler {
    type Cached = HorizontalPodAutoscaler;
    fn desired(children: &Children) -> &[Self] {
        &children.autoscalers
    }
    fn trim(h: &mut HorizontalPodAutoscaler) {
        lean::keep(&mut h.metadata);
        h.status = None;
        let size = serde_json::to_vec(&h.spec).map_or(usize::MAX, |s| s.len());
        if size > SPEC_MAX {
            h.spec = None;
        }
    }
    fn versioning(desired: &Self) -> Version {
        spec_hash(&desired.spec).map_or(Version::None, Version::Spec)
    }
    fn observed(cached: &Self) -> Option<i64> {
        spec_hash(&cached.spec)
    }
    fn written(object: &Self) -> Option<i64> {
        spec_hash(&object.spec)
    }
}

/// The largest autoscaler spec the cache keeps (ours are a few hundred
/// bytes; anyone may label a larger one as ours).
const SPEC_MAX: usize = 4096;

/// A spec's hash as a stamp's version (positive, as a generation is).
fn spec_hash<S: serde::Serialize>(spec: &S) -> Option<i64> {
    hash_of(spec)
        .ok()
        .map(|h| i64::try_from(h >> 1).unwrap_or(i64::MAX))
}

impl ChildKind for PodDisruptionBudget {
    type Cached = Meta<PodDisruptionBudget>;
    fn versioning(_desired: &Self) -> Version {
        Version::Generation { annotations: false }
    }
    fn desired(children: &Children) -> &[Self] {
        &children.disruption_budgets
    }
}

impl ChildKind for NetworkPolicy {
    type Cached = Meta<NetworkPolicy>;
    fn versioning(_desired: &Self) -> Version {
        Version::Generation { annotations: false }
    }
    fn desired(children: &Children) -> &[Self] {
        &children.network_policies
    }
}

/// Cached with its status's load-balancer addresses (status shows them),
/// bounded: anyone may write a large status on an Ingress labelled as ours.
impl ChildKind for Ingress {
    type Cached = Ingress;
    fn versioning(_desired: &Self) -> Version {
        Version::Generation { annotations: false }
    }
    fn desired(children: &Children) -> &[Self] {
        &children.ingresses
    }
    fn trim(i: &mut Ingress) {
        lean::keep(&mut i.metadata);
        i.spec = None;
        let balancer = i.status.take().and_then(|s| s.load_balancer);
        i.status = balancer.map(|mut lb| {
            if let Some(points) = &mut lb.ingress {
                points.truncate(ADDRESSES_MAX);
                for p in points.iter_mut() {
                    p.ports = None;
                    p.hostname = p.hostname.take().filter(|h| h.len() <= 253);
                    p.ip = p.ip.take().filter(|h| h.len() <= 64);
                }
            }
            IngressStatus {
                load_balancer: Some(lb),
            }
        });
    }
}

/// The load-balancer addresses of an Ingress that the cache keeps.
const ADDRESSES_MAX: usize = 4;

/// The Gateway API's HTTPRoute: its CRDs may not be installed.
impl ChildKind for HttpRoute {
    type Cached = Meta<HttpRoute>;
    fn versioning(_desired: &Self) -> Version {
        Version::Generation { annotations: false }
    }
    const OPTIONAL: Option<&'static str> = Some(
        "the Gateway API CRDs (standard channel, v1.0 or later: gateway.networking.k8s.io/v1 HTTPRoute), e.g. `kubectl apply -f standard-install.yaml` from a kubernetes-sigs/gateway-api release, and a Gateway controller",
    );
    fn desired(children: &Children) -> &[Self] {
        &children.http_routes
    }
}

/// Who scales a store to 0 while its NetworkPolicy is missing.
const GUARD_MANAGER: &str = "appstack-operator-guard";

/// Every kind, in apply order: credentials, the backup scripts and the
/// NetworkPolicies (so no store ever runs unguarded), then the Services and stores the components
/// wait for, then the components and what scales and guards them, then the
/// backups of the stores, then the routes to the components. Pruning
/// runs backwards, so nothing left running loses what it needs.
pub static KINDS: [&(dyn Kind + Sync); 12] = [
    &Declared::<Secret>(PhantomData),
    &Declared::<ConfigMap>(PhantomData),
    &Declared::<NetworkPolicy>(PhantomData),
    &Declared::<Service>(PhantomData),
    &Declared::<StatefulSet>(PhantomData),
    &Declared::<Deployment>(PhantomData),
    &Declared::<HorizontalPodAutoscaler>(PhantomData),
    &Declared::<PodDisruptionBudget>(PhantomData),
    &Declared::<CronJob>(PhantomData),
    &Declared::<Ingress>(PhantomData),
    &Declared::<HttpRoute>(PhantomData),
    &Declared::<Job>(PhantomData),
];

/// A declared kind with its type erased, so that [`KINDS`] can list them.
pub trait Kind {
    #[cfg(test)]
    fn name(&self) -> &'static str;
    /// Starts its watch: fills `caches` and yields its objects' events.
    fn watch(&self, client: &Client, namespace: Option<&str>, caches: &mut CacheMap)
    -> ChildEvents;
    /// Applies this kind's desired children.
    fn apply<'a>(&self, set: &'a mut ChildSet<'_>) -> BoxFuture<'a, ()>;
    /// Deletes this kind's children that were not applied.
    fn prune<'a>(&self, set: &'a mut ChildSet<'_>) -> BoxFuture<'a, ()>;
    /// A cache the controller's unit tests fill by hand.
    #[cfg(test)]
    fn cache_by_hand(&self, caches: &mut CacheMap) -> cache::fixture::Fill;
}

pub struct Declared<K>(PhantomData<fn() -> K>);

impl<K: ChildKind> Kind for Declared<K> {
    #[cfg(test)]
    fn name(&self) -> &'static str {
        K::KIND
    }

    fn watch(
        &self,
        client: &Client,
        namespace: Option<&str>,
        caches: &mut CacheMap,
    ) -> ChildEvents {
        cache::watch_kind::<K>(client, namespace, caches)
    }

    fn apply<'a>(&self, set: &'a mut ChildSet<'_>) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            for object in K::desired(set.children()) {
                set.add(object).await;
            }
        })
    }

    fn prune<'a>(&self, set: &'a mut ChildSet<'_>) -> BoxFuture<'a, ()> {
        Box::pin(set.prune::<K>())
    }

    #[cfg(test)]
    fn cache_by_hand(&self, caches: &mut CacheMap) -> cache::fixture::Fill {
        cache::fixture::by_hand::<K>(caches)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn every_kind_is_declared_once() {
        let names: BTreeSet<&str> = KINDS.iter().map(|k| k.name()).collect();
        assert_eq!(names.len(), KINDS.len());
    }

    #[test]
    fn an_ingress_is_cached_with_a_few_bounded_addresses_only() {
        let points: Vec<serde_json::Value> = (0..50)
            .map(|i| json!({"ip": format!("10.0.0.{i}"), "hostname": "h".repeat(300), "ports": [{"port": 80}]}))
            .collect();
        let mut ingress: Ingress = serde_json::from_value(json!({
            "metadata": {"name": "a", "annotations": {"big": "x".repeat(10_000)}},
            "spec": {"rules": [{"host": "a.example"}]},
            "status": {"loadBalancer": {"ingress": points}}
        }))
        .unwrap();
        <Ingress as ChildKind>::trim(&mut ingress);
        assert!(ingress.spec.is_none() && ingress.metadata.annotations.is_none());
        let kept = ingress
            .status
            .unwrap()
            .load_balancer
            .unwrap()
            .ingress
            .unwrap();
        assert_eq!(kept.len(), ADDRESSES_MAX);
        assert!(
            kept.iter()
                .all(|p| p.hostname.is_none() && p.ports.is_none() && p.ip.is_some())
        );
    }

    #[test]
    fn stores_come_before_the_components_that_wait_for_them() {
        let position = |kind: &str| KINDS.iter().position(|k| k.name() == kind);
        assert!(position("Secret") < position("StatefulSet"));
        assert!(position("Service") < position("Deployment"));
        assert!(position("StatefulSet") < position("Deployment"));
        assert!(position("Deployment") < position("HorizontalPodAutoscaler"));
        // A route is applied once what it sends traffic to exists.
        assert!(position("Service") < position("Ingress"));
        assert!(position("Deployment") < position("HTTPRoute"));
    }
}
