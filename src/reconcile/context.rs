//! State shared by every reconcile: the client, caches, metrics, the event
//! recorder, the applier's memory, the names stacks wait for and per-stack
//! error backoff.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::runtime::events::{Event, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use tracing::debug;

use super::apply::Applier;
use super::caches::Caches;
use super::ownership::Waiting;
use crate::api::AppStack;
use crate::telemetry::Metrics;

const BACKOFF_BASE: Duration = Duration::from_secs(2);
const BACKOFF_MAX: Duration = Duration::from_secs(300);

pub struct Context {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub(super) applier: Applier,
    pub(super) caches: Caches,
    pub(super) waiting: Waiting,
    recorder: Recorder,
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub(super) fn new(
        client: Client,
        caches: Caches,
        metrics: Arc<Metrics>,
        instance: Option<String>,
    ) -> Self {
        let reporter = Reporter {
            controller: crate::build::FIELD_MANAGER.into(),
            instance,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            applier: Applier::default(),
            caches,
            waiting: Waiting::default(),
            failures: Mutex::new(HashMap::new()),
        }
    }

    pub(super) async fn publish(&self, stack: &AppStack, event: Event) {
        let reference = stack.object_ref(&());
        if let Err(error) = self.recorder.publish(&event, &reference).await {
            debug!(%error, reason = %event.reason, "could not publish event");
        }
    }

    /// Exponential backoff per stack for failed reconciles: 2s, 4s, ... 5m.
    pub(super) fn next_backoff(&self, stack: &AppStack) -> Duration {
        let Ok(mut failures) = self.failures.lock() else {
            return BACKOFF_MAX;
        };
        let n = failures.entry(key(stack)).or_insert(0);
        *n = n.saturating_add(1);
        let factor = 2u32.saturating_pow(n.saturating_sub(1).min(16));
        BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX)
    }

    pub(super) fn reset_backoff(&self, stack: &AppStack) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&key(stack));
        }
    }
}

fn key(stack: &AppStack) -> String {
    format!(
        "{}/{}",
        stack.namespace().unwrap_or_default(),
        stack.name_any()
    )
}
