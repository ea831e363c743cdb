//! Starts the pieces of a running operator: the HTTP endpoint, leader
//! election, and one controller per watched namespace (or one for all).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::join_all;
use kube::Client;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::http::{self, Health};
use crate::leader::{Elector, LeaseConfig};
use crate::reconcile::{self, Shared};
use crate::telemetry::Metrics;

pub struct RunConfig {
    pub namespaces: Vec<String>,
    pub http_addr: SocketAddr,
    pub leader_election: bool,
    pub lease_name: String,
    pub lease_namespace: Option<String>,
    pub identity: String,
    pub concurrency: u16,
    pub agent_image: Option<String>,
    /// The ingress controllers' NetworkPolicy peers (see [`route_controllers`]).
    pub route_controllers: Vec<k8s_openapi::api::networking::v1::NetworkPolicyPeer>,
    /// Who may scrape the stores' exporters (see `build::metrics::scrapers`).
    pub metrics_scrapers: Vec<k8s_openapi::api::networking::v1::NetworkPolicyPeer>,
}

/// Where ingress controllers usually run when nobody says: the namespaces
/// their own install guides use (ingress-nginx, Traefik, Envoy Gateway,
/// NGINX Gateway Fabric, Istio's ingress gateway).
pub const DEFAULT_ROUTE_CONTROLLERS: &str = r#"[{"namespaceSelector":{"matchExpressions":[{"key":"kubernetes.io/metadata.name","operator":"In","values":["ingress-nginx","traefik","envoy-gateway-system","nginx-gateway","istio-ingress"]}]}}]"#;

/// The ingress controllers' peers from the setting (a JSON list of
/// NetworkPolicy peers; empty or unset: [`DEFAULT_ROUTE_CONTROLLERS`];
/// `[]`: none, so a routed component admits only its `ingressFrom`).
pub fn route_controllers(
    setting: Option<&str>,
) -> Result<Vec<k8s_openapi::api::networking::v1::NetworkPolicyPeer>, String> {
    let text = setting
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .unwrap_or(DEFAULT_ROUTE_CONTROLLERS);
    let peers: Vec<k8s_openapi::api::networking::v1::NetworkPolicyPeer> =
        serde_json::from_str(text)
            .map_err(|e| format!("--route-controllers: a JSON list of NetworkPolicy peers: {e}"))?;
    if let Some(bad) = peers.iter().position(|p| {
        p.pod_selector.is_none() && p.namespace_selector.is_none() && p.ip_block.is_none()
    }) {
        return Err(format!(
            "--route-controllers[{bad}]: a peer needs podSelector, namespaceSelector or ipBlock"
        ));
    }
    Ok(peers)
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("connecting to the Kubernetes API (set KUBECONFIG or run in a pod): {0}")]
    Client(#[from] kube::Error),
    #[error("leader election needs the Lease's namespace: set --lease-namespace or POD_NAMESPACE")]
    LeaseNamespace,
    #[error(transparent)]
    Lease(#[from] crate::leader::LeaseError),
    #[error("serving HTTP on {0}: {1}")]
    Http(SocketAddr, std::io::Error),
}

pub async fn run(config: RunConfig) -> Result<(), RunError> {
    let client = Client::try_default().await?;
    let metrics = Arc::new(Metrics::default());
    let scopes: Vec<Option<String>> = if config.namespaces.is_empty() {
        vec![None]
    } else {
        config.namespaces.iter().cloned().map(Some).collect()
    };
    let synced: Vec<Arc<AtomicBool>> = scopes.iter().map(|_| Arc::default()).collect();
    let standby = Arc::new(AtomicBool::new(config.leader_election));
    let health = Health {
        metrics: metrics.clone(),
        synced: synced.clone(),
        standby: standby.clone(),
    };
    let addr = config.http_addr;
    let server = tokio::spawn(async move { http::serve(addr, health).await });

    // One channel tells every controller to stop: on SIGTERM/SIGINT or when
    // the lease is lost.
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(signal_stop(stop_tx.clone()));

    let mut elector = None;
    if config.leader_election {
        let namespace = config
            .lease_namespace
            .clone()
            .ok_or(RunError::LeaseNamespace)?;
        let mut e = Elector::new(
            client.clone(),
            LeaseConfig::new(
                config.lease_name.clone(),
                namespace,
                config.identity.clone(),
            ),
        );
        tokio::select! {
            _ = e.acquire() => {}
            _ = wait_stop(stop_rx.clone()) => return Ok(()),
        }
        standby.store(false, Ordering::Relaxed);
        elector = Some(e);
    }
    metrics.leader.set(1);
    info!(namespaces = ?config.namespaces, concurrency = config.concurrency, "starting controllers");

    // Set when the lease is lost: reconciles in flight are then cancelled,
    // not finished, since another replica may already be writing.
    let (lost_tx, lost_rx) = watch::channel(false);
    let holder = elector.map(|mut e| {
        let stop_tx = stop_tx.clone();
        let mut stop_rx = stop_rx.clone();
        tokio::spawn(async move {
            tokio::select! {
                error = e.hold() => {
                    warn!(%error, "stopping at once: leadership lost");
                    let _ = lost_tx.send(true);
                    let _ = stop_tx.send(true);
                }
                _ = stop_rx.changed() => {}
            }
            e
        })
    });

    let controllers = scopes.into_iter().zip(synced).map(|(namespace, synced)| {
        let shared = Shared {
            client: client.clone(),
            metrics: metrics.clone(),
            synced,
            instance: Some(config.identity.clone()),
            concurrency: config.concurrency,
            agent_image: config.agent_image.clone(),
            route_controllers: config.route_controllers.clone(),
            metrics_scrapers: config.metrics_scrapers.clone(),
        };
        reconcile::run(shared, namespace, wait_stop(stop_rx.clone()))
    });
    tokio::select! {
        _ = join_all(controllers) => {}
        // Dropping the controllers' futures cancels their reconciles.
        _ = wait_lost(lost_rx.clone()) => {
            metrics.leader.set(0);
            return Err(crate::leader::LeaseError::Lost(config.lease_name).into());
        }
        result = server => {
            let error = match result {
                Ok(Err(e)) => e,
                _ => std::io::Error::other("HTTP server stopped"),
            };
            return Err(RunError::Http(addr, error));
        }
    }
    metrics.leader.set(0);
    if let Some(holder) = holder
        && let Ok(mut e) = holder.await
    {
        if *lost_rx.borrow() {
            return Err(crate::leader::LeaseError::Lost(config.lease_name).into());
        }
        e.release().await;
    }
    info!("stopped");
    Ok(())
}

async fn signal_stop(stop: watch::Sender<bool>) {
    terminated().await;
    info!("shutting down");
    let _ = stop.send(true);
}

/// Resolves on SIGTERM (what the kubelet sends a container that must stop)
/// or Ctrl-C. A process that is a container's PID 1 has no default action
/// for SIGTERM: without a handler it runs until the grace period's SIGKILL.
pub async fn terminated() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(error) => {
                    warn!(%error, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Resolves when the lease is lost; never without leader election.
async fn wait_lost(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
    }
}

async fn wait_stop(mut rx: watch::Receiver<bool>) {
    while !*rx.borrow() {
        if rx.changed().await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod route_controller_tests {
    use super::*;

    #[test]
    fn the_setting_defaults_and_parses() {
        let default = route_controllers(None).unwrap();
        assert_eq!(default.len(), 1);
        assert!(default[0].namespace_selector.is_some());
        assert_eq!(route_controllers(Some(" ")).unwrap(), default);
        assert!(route_controllers(Some("[]")).unwrap().is_empty());
        let ip = route_controllers(Some(r#"[{"ipBlock":{"cidr":"10.0.0.5/32"}}]"#)).unwrap();
        assert!(ip[0].ip_block.is_some());
        assert!(route_controllers(Some("[{}]")).is_err());
        assert!(route_controllers(Some("nope")).is_err());
    }
}
