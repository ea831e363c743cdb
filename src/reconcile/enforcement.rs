//! Whether the cluster enforces the stacks' NetworkPolicies, tried rather
//! than guessed from which network plugin seems installed: a while after a
//! stack with policies is ready, the operator (which no store's policy
//! admits) opens a TCP connection to one of its stores. If it connects,
//! nothing enforces the policy (or another policy opens the store), and a
//! Warning Event on the stack says so.
//!
//! The store's Service is in a namespace whose tenants can edit it, so the
//! probe trusts no name: just before connecting it reads the Service, and
//! connects only to the ClusterIP of one this stack controls (never through
//! DNS, never to an ExternalName), within a few seconds.
//! Tried once per stack and operator run, a few at a time; a deleted stack
//! is forgotten.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use k8s_openapi::api::core::v1::{ObjectReference, Service};
use kube::api::Api;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Client, ResourceExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tracing::{debug, warn};

/// Time for the network plugin to program a new stack's policies.
const SETTLE: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// Reading the Service is bounded too: a slow API server holds no slot.
const READ_TIMEOUT: Duration = Duration::from_secs(10);
const AT_ONCE: usize = 4;

/// What a probe found.
#[derive(Debug, PartialEq, Eq)]
pub enum Found {
    /// The connection was made: the policy did not stop it.
    NotEnforced,
    /// Refused, dropped or timed out: enforced (or the store went away).
    Stopped,
}

/// One store to probe: its Service and port, and the stack that must
/// control that Service.
pub struct Target {
    pub namespace: String,
    pub stack: String,
    pub uid: String,
    pub service: String,
    pub port: u16,
}

pub struct Probes {
    /// Per stack (namespace, name): the uid tried. A stack re-created under
    /// the same name is tried again; a deleted one is forgotten.
    tried: Mutex<HashMap<(String, String), String>>,
    slots: Arc<Semaphore>,
}

impl Default for Probes {
    fn default() -> Self {
        Self {
            tried: Mutex::new(HashMap::new()),
            slots: Arc::new(Semaphore::new(AT_ONCE)),
        }
    }
}

impl Probes {
    /// Starts the probe of `target` unless its stack was tried already in
    /// this run.
    pub fn start(
        &self,
        target: Target,
        client: Client,
        recorder: Recorder,
        stack: ObjectReference,
    ) {
        let key = (target.namespace.clone(), target.stack.clone());
        let first = self.tried().insert(key, target.uid.clone()).as_ref() != Some(&target.uid);
        if !first {
            return;
        }
        let slots = self.slots.clone();
        tokio::spawn(async move {
            tokio::time::sleep(SETTLE).await;
            let Ok(_slot) = slots.acquire().await else {
                return;
            };
            let api: Api<Service> = Api::namespaced(client, &target.namespace);
            let service = match tokio::time::timeout(READ_TIMEOUT, api.get_opt(&target.service))
                .await
            {
                Ok(Ok(Some(service))) => service,
                Ok(Ok(None)) => return,
                Ok(Err(error)) => {
                    debug!(%error, service = %target.service, "NetworkPolicy probe: could not read the Service");
                    return;
                }
                Err(_) => {
                    debug!(service = %target.service, "NetworkPolicy probe: reading the Service timed out");
                    return;
                }
            };
            let Some(addr) = address(&service, &target.uid, target.port) else {
                warn!(service = %target.service, "NetworkPolicy probe skipped: the store's Service is not a ClusterIP Service this stack controls");
                return;
            };
            let found = probe(addr).await;
            debug!(%addr, ?found, "NetworkPolicy probe");
            if found == Found::NotEnforced {
                let host = format!("{}.{}.svc", target.service, target.namespace);
                warn!(%host, "NetworkPolicy not enforced: the operator reached a store its policy closes");
                let event = Event {
                    type_: EventType::Warning,
                    reason: "NetworkPolicyNotEnforced".into(),
                    note: Some(format!(
                        "the operator connected to {host}:{} ({addr}), which the stack's NetworkPolicy admits only from its components: the cluster's network plugin does not enforce NetworkPolicy, or another policy opens the store. Use a plugin that enforces it (Calico, Cilium, ...) and check the namespace's other NetworkPolicies",
                        target.port
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

    /// Forgets a stack that no longer exists.
    pub fn forget(&self, namespace: &str, stack: &str) {
        self.tried()
            .remove(&(namespace.to_string(), stack.to_string()));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.tried().len()
    }

    /// A set of names is sound whatever panicked while it was held.
    fn tried(&self) -> MutexGuard<'_, HashMap<(String, String), String>> {
        self.tried.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Where to connect: the ClusterIP of `service` on `port`, only when the
/// stack `uid` controls it and it is a ClusterIP Service with an address
/// (not headless, not ExternalName, not anything a tenant turned it into).
pub fn address(service: &Service, uid: &str, port: u16) -> Option<SocketAddr> {
    let controlled = service
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == uid);
    let spec = service.spec.as_ref()?;
    let cluster_ip = spec.type_.as_deref().is_none_or(|t| t == "ClusterIP");
    let ip: IpAddr = spec.cluster_ip.as_deref()?.parse().ok()?;
    (controlled && cluster_ip && !ip.is_unspecified()).then_some(SocketAddr::new(ip, port))
}

pub async fn probe(addr: SocketAddr) -> Found {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
        Ok(Ok(_)) => Found::NotEnforced,
        _ => Found::Stopped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[tokio::test]
    async fn a_connection_made_means_not_enforced() {
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = open.local_addr().unwrap();
        assert_eq!(probe(addr).await, Found::NotEnforced);
        drop(open);
        assert_eq!(probe(addr).await, Found::Stopped);
    }

    #[tokio::test]
    async fn an_address_that_never_answers_is_given_up_in_seconds() {
        // TEST-NET-1: routed nowhere, so the connect hangs until the timeout
        // (or fails at once where there is no route at all).
        let started = std::time::Instant::now();
        let addr: SocketAddr = "192.0.2.1:6379".parse().unwrap();
        assert_eq!(probe(addr).await, Found::Stopped);
        assert!(started.elapsed() < CONNECT_TIMEOUT + Duration::from_secs(1));
    }

    fn service(uid: &str, spec: serde_json::Value) -> Service {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "shop-redis", "namespace": "team-a",
                "ownerReferences": [{"apiVersion": "appstack.dev/v1alpha1", "kind": "AppStack",
                    "name": "shop", "uid": uid, "controller": true}]},
            "spec": spec,
        }))
        .unwrap()
    }

    #[test]
    fn only_the_cluster_ip_of_a_service_the_stack_controls() {
        let ours = service(
            "uid-shop",
            json!({"type": "ClusterIP", "clusterIP": "10.96.0.12"}),
        );
        assert_eq!(
            address(&ours, "uid-shop", 6379),
            Some("10.96.0.12:6379".parse().unwrap())
        );
        // The type defaults to ClusterIP.
        let untyped = service("uid-shop", json!({"clusterIP": "fd00::12"}));
        assert_eq!(
            address(&untyped, "uid-shop", 6379),
            Some("[fd00::12]:6379".parse().unwrap())
        );
        assert_eq!(address(&ours, "uid-other", 6379), None, "another stack's");
        let mut foreign = ours.clone();
        foreign.metadata.owner_references = None;
        assert_eq!(address(&foreign, "uid-shop", 6379), None, "nobody's");
        for spec in [
            json!({"type": "ExternalName", "externalName": "evil.example.com"}),
            json!({"type": "ExternalName", "externalName": "evil.example.com", "clusterIP": "10.96.0.12"}),
            json!({"type": "ClusterIP", "clusterIP": "None"}),
            json!({"type": "ClusterIP", "clusterIP": ""}),
            json!({"type": "ClusterIP"}),
            json!({"type": "ClusterIP", "clusterIP": "evil.example.com"}),
            json!({"type": "ClusterIP", "clusterIP": "0.0.0.0"}),
            json!({"type": "NodePort", "clusterIP": "10.96.0.12"}),
        ] {
            let flipped = service("uid-shop", spec.clone());
            assert_eq!(address(&flipped, "uid-shop", 6379), None, "{spec}");
        }
    }

    #[test]
    fn a_deleted_stack_is_forgotten_and_a_new_one_tried_again() {
        let probes = Probes::default();
        let key = |n: &str| ("team-a".to_string(), n.to_string());
        probes.tried().insert(key("shop"), "uid-1".into());
        probes.tried().insert(key("shop-b"), "uid-2".into());
        probes.forget("team-a", "shop");
        assert_eq!(probes.len(), 1);
        assert!(!probes.tried().contains_key(&key("shop")));
    }
}
