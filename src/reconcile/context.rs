//! State shared by every reconcile: the client, caches, metrics, the event
//! recorder, the applier's memo, the names stacks wait for and per-stack
//! error backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, Recorder, Reporter};
use kube::{Client, Resource};
use tracing::debug;

use super::children::{Caches, Memo, Tools};
use super::ownership::Waiting;
use crate::api::AppStack;
use crate::telemetry::Metrics;

const BACKOFF_BASE: Duration = Duration::from_secs(2);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

pub struct Context {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub(super) memo: Memo,
    pub(super) caches: Caches,
    pub(super) waiting: Waiting,
    pub(super) probes: super::enforcement::Probes,
    recorder: Recorder,
    /// The backup agent's image (see [`super::Shared::agent_image`]).
    pub agent_image: Option<String>,
    /// The ingress controllers' NetworkPolicy peers (see
    /// [`super::Shared::route_controllers`]).
    pub route_controllers: Vec<k8s_openapi::api::networking::v1::NetworkPolicyPeer>,
    /// Who may scrape the stores' exporters (see
    /// [`super::Shared::metrics_scrapers`]).
    pub metrics_scrapers: Vec<k8s_openapi::api::networking::v1::NetworkPolicyPeer>,
    /// Consecutive failed reconciles per stack (namespace, name).
    failures: Mutex<HashMap<(String, String), u32>>,
}

impl Context {
    pub(super) fn new(
        client: Client,
        caches: Caches,
        metrics: Arc<Metrics>,
        instance: Option<String>,
        agent_image: Option<String>,
    ) -> Self {
        let reporter = Reporter {
            controller: crate::build::FIELD_MANAGER.into(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            memo: Memo::default(),
            caches,
            waiting: Waiting::default(),
            probes: super::enforcement::Probes::default(),
            failures: Mutex::new(HashMap::new()),
            agent_image,
            route_controllers: Vec::new(),
            metrics_scrapers: Vec::new(),
        }
    }

    /// What the child machinery needs of this context.
    pub(super) fn tools(&self) -> Tools<'_> {
        Tools {
            client: &self.client,
            caches: &self.caches,
            memo: &self.memo,
            metrics: &self.metrics,
        }
    }

    pub(super) async fn publish(&self, stack: &AppStack, event: Event) {
        self.publish_on(&stack.object_ref(&()), event).await;
    }

    pub(super) async fn publish_on(&self, reference: &ObjectReference, event: Event) {
        if let Err(error) = self.recorder.publish(&event, reference).await {
            debug!(%error, reason = %event.reason, "could not publish event");
        }
    }

    /// Tries once whether the cluster enforces `stack`'s NetworkPolicies,
    /// by connecting a while from now to one of its stores: the ClusterIP of
    /// `service` (which the stack must control then) on `port`.
    pub(super) fn probe_network_policy(&self, stack: &AppStack, service: String, port: u16) {
        let target = super::enforcement::Target {
            namespace: stack.meta().namespace.clone().unwrap_or_default(),
            stack: stack.meta().name.clone().unwrap_or_default(),
            uid: stack.meta().uid.clone().unwrap_or_default(),
            service,
            port,
        };
        self.probes.start(
            target,
            self.client.clone(),
            self.recorder.clone(),
            stack.object_ref(&()),
        );
    }

    /// Exponential backoff per stack for failed reconciles: 2s, 4s, ... 5m.
    pub(super) fn next_backoff(&self, namespace: &str, name: &str) -> Duration {
        let mut failures = self.failures();
        let n = failures
            .entry((namespace.to_string(), name.to_string()))
            .or_insert(0);
        *n = n.saturating_add(1);
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
        BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX)
    }

    pub(super) fn reset_backoff(&self, namespace: &str, name: &str) {
        self.failures()
            .remove(&(namespace.to_string(), name.to_string()));
    }

    /// Forgets everything kept about a stack that no longer exists: the names
    /// it waited for, its backoff, the memo of its children, its
    /// NetworkPolicy probe and its backup gauges.
    pub(super) fn forget_stack(&self, namespace: &str, name: &str) {
        self.waiting.set(namespace, name, &[]);
        self.probes.forget(namespace, name);
        self.reset_backoff(namespace, name);
        self.memo.forget_stack(namespace, name);
        let mut certificates = vec!["ca"];
        for engine in crate::build::stores::ENGINES {
            let labels = crate::telemetry::StoreLabels {
                namespace: namespace.to_string(),
                stack: name.to_string(),
                store: engine.part().to_string(),
            };
            self.metrics.backups.forget(&labels);
            certificates.push(engine.part());
            self.metrics.stores.forget(&labels, &certificates);
        }
    }

    /// A counter map is sound whatever panicked while it was held.
    fn failures(&self) -> MutexGuard<'_, HashMap<(String, String), u32>> {
        self.failures.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
