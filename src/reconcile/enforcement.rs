//! Whether the cluster enforces the stacks' NetworkPolicies, tried rather
//! than guessed from which network plugin seems installed: a while after a
//! stack with policies is ready, the operator (which no store's policy
//! admits) opens a TCP connection to one of its stores. If it connects,
//! nothing enforces the policy (or another policy opens the store), and a
//! Warning Event on the stack says so.
//! Tried once per stack and operator run, a few at a time.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

/// Time for the network plugin to program a new stack's policies.
const SETTLE: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const AT_ONCE: usize = 4;

/// What a probe found.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// The connection was made: the policy did not stop it.
    NotEnforced,
    /// Refused, dropped or timed out: enforced (or the store went away).
    Stopped,
    /// The name did not resolve (e.g. an operator run outside the cluster).
    Unknown,
}

pub struct Probes {
    tried: Mutex<HashSet<String>>,
    slots: Arc<Semaphore>,
}

impl Default for Probes {
    fn default() -> Self {
        Self {
            tried: Mutex::new(HashSet::new()),
            slots: Arc::new(Semaphore::new(AT_ONCE)),
        }
    }
}

impl Probes {
    /// Starts the probe of stack `uid` (at `host:port`, one of its stores)
    /// unless it was tried already in this run.
    pub fn start(
        &self,
        uid: &str,
        host: String,
        port: u16,
        recorder: Recorder,
        stack: ObjectReference,
    ) {
        let first = self
            .tried
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(uid.to_string());
        if !first {
            return;
        }
        let slots = self.slots.clone();
        tokio::spawn(async move {
            tokio::time::sleep(SETTLE).await;
            let Ok(_slot) = slots.acquire().await else {
                return;
            };
            let found = probe(&host, port).await;
            debug!(%host, ?found, "NetworkPolicy probe");
            if found == Found::NotEnforced {
                warn!(%host, "NetworkPolicy not enforced: the operator reached a store its policy closes");
                let event = Event {
                    type_: EventType::Warning,
                    reason: "NetworkPolicyNotEnforced".into(),
                    note: Some(format!(
                        "the operator connected to {host}:{port}, which the stack's NetworkPolicy admits only from its components: the cluster's network plugin does not enforce NetworkPolicy, or another policy opens the store. Use a plugin that enforces it (Calico, Cilium, ...) and check the namespace's other NetworkPolicies"
                    )),
                    action: "ProbeNetworkPolicy".into(),
                    secondary: None,
                };
                if let Err(error) = recorder.publish(&event, &stack).await {
                    debug!(%error, "could not publish event");
                }
            }
        });
    }
}

pub async fn probe(host: &str, port: u16) -> Found {
    let addrs = match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => addrs.collect::<Vec<_>>(),
        Err(_) => return Found::Unknown,
    };
    let Some(addr) = addrs.first() else {
        return Found::Unknown;
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Found::NotEnforced,
        _ => Found::Stopped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_made_means_not_enforced() {
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = open.local_addr().unwrap().port();
        assert_eq!(probe("127.0.0.1", port).await, Found::NotEnforced);
        drop(open);
        assert_eq!(probe("127.0.0.1", port).await, Found::Stopped);
        assert_eq!(probe("no-such-name.invalid", port).await, Found::Unknown);
    }
}
