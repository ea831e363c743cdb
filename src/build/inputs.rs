//! What the builders take besides the spec: credentials, certificates and
//! what the reconciler learnt, gathered by the reconciler.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::NetworkPolicyPeer;

use super::credentials::{Access, StoreCredentials};
use super::external::UserSecret;
use super::rotation::Logins;
use super::tls;
use crate::api::StoreKind;

/// What the builders need besides the spec: each store's credentials, and
/// with TLS the stack's CA and the stores' certificates.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    credentials: BTreeMap<(StoreKind, Access), StoreCredentials>,
    tls: tls::TlsInputs,
    /// Stores status says were restored: their pods no longer need the
    /// restore source.
    restored: BTreeSet<StoreKind>,
    /// The backup agent's image (the operator's own), for S3 targets.
    agent_image: Option<String>,
    /// External stores: the user's Secret each is reached through.
    external: BTreeMap<StoreKind, UserSecret>,
    /// Who the ingress controllers are (the operator's setting): admitted
    /// by the NetworkPolicy of a routed component that sets `ingressFrom`.
    route_controllers: Vec<NetworkPolicyPeer>,
    /// Who may scrape the stores' exporters (the operator's setting).
    metrics_scrapers: Vec<NetworkPolicyPeer>,
    /// Per store that keeps passwords: the hashes its apps' user accepts
    /// now, as the operator's passwords Secret holds them (see `rotation`).
    accepted: BTreeMap<StoreKind, Vec<String>>,
    /// Stores every workload of which runs on the current credentials.
    rolled: BTreeSet<StoreKind>,
    /// Per store whose apps alternate login roles: the roles as the
    /// operator's passwords Secret held them.
    logins: BTreeMap<StoreKind, Logins>,
    /// Who the operator's pods are: admitted by a replicated store.
    operator_peer: Option<NetworkPolicyPeer>,
}

impl Inputs {
    /// The apps' credentials of a store.
    pub fn set(&mut self, store: StoreKind, credentials: StoreCredentials) {
        self.credentials.insert((store, Access::App), credentials);
    }

    pub fn set_admin(&mut self, store: StoreKind, credentials: StoreCredentials) {
        self.credentials.insert((store, Access::Admin), credentials);
    }

    pub fn get(&self, store: StoreKind) -> Option<&StoreCredentials> {
        self.credentials.get(&(store, Access::App))
    }

    pub fn admin(&self, store: StoreKind) -> Option<&StoreCredentials> {
        self.credentials.get(&(store, Access::Admin))
    }

    pub fn set_backup(&mut self, store: StoreKind, credentials: StoreCredentials) {
        self.credentials
            .insert((store, Access::Backup), credentials);
    }

    pub fn set_replication(&mut self, store: StoreKind, credentials: StoreCredentials) {
        self.credentials
            .insert((store, Access::Replication), credentials);
    }

    pub fn replication(&self, store: StoreKind) -> Option<&StoreCredentials> {
        self.credentials.get(&(store, Access::Replication))
    }

    pub fn backup(&self, store: StoreKind) -> Option<&StoreCredentials> {
        self.credentials.get(&(store, Access::Backup))
    }

    pub fn set_monitor(&mut self, store: StoreKind, credentials: StoreCredentials) {
        self.credentials
            .insert((store, Access::Monitor), credentials);
    }

    pub fn monitor(&self, store: StoreKind) -> Option<&StoreCredentials> {
        self.credentials.get(&(store, Access::Monitor))
    }

    /// Every password held, of every store and user: what status and Events
    /// must never quote.
    pub fn passwords(&self) -> impl Iterator<Item = &str> {
        let external = self
            .external
            .values()
            .flat_map(|s| {
                [
                    s.get("password"),
                    s.get("url").and_then(super::external::url_password),
                ]
            })
            .flatten();
        self.credentials
            .values()
            .map(|c| c.password.as_str())
            .chain(external)
    }

    pub fn set_external(&mut self, store: StoreKind, secret: UserSecret) {
        self.external.insert(store, secret);
    }

    pub fn external(&self, store: StoreKind) -> Option<&UserSecret> {
        self.external.get(&store)
    }

    pub fn set_restored(&mut self, store: StoreKind) {
        self.restored.insert(store);
    }

    pub fn restored(&self, store: StoreKind) -> bool {
        self.restored.contains(&store)
    }

    pub fn set_agent_image(&mut self, image: Option<String>) {
        self.agent_image = image;
    }

    pub fn agent_image(&self) -> Option<&str> {
        self.agent_image.as_deref()
    }

    pub fn set_route_controllers(&mut self, peers: Vec<NetworkPolicyPeer>) {
        self.route_controllers = peers;
    }

    pub fn set_operator_peer(&mut self, peer: Option<NetworkPolicyPeer>) {
        self.operator_peer = peer;
    }

    pub fn operator_peer(&self) -> Option<&NetworkPolicyPeer> {
        self.operator_peer.as_ref()
    }

    pub fn route_controllers(&self) -> &[NetworkPolicyPeer] {
        &self.route_controllers
    }

    pub fn set_metrics_scrapers(&mut self, peers: Vec<NetworkPolicyPeer>) {
        self.metrics_scrapers = peers;
    }

    pub fn metrics_scrapers(&self) -> &[NetworkPolicyPeer] {
        &self.metrics_scrapers
    }

    pub fn set_accepted(&mut self, store: StoreKind, hashes: Vec<String>) {
        self.accepted.insert(store, hashes);
    }

    /// The hashes the store's apps' user accepted until now.
    pub fn accepted(&self, store: StoreKind) -> &[String] {
        self.accepted.get(&store).map_or(&[], Vec::as_slice)
    }

    pub fn set_rolled(&mut self, store: StoreKind) {
        self.rolled.insert(store);
    }

    /// Whether every pod that uses the store runs on its current
    /// credentials (decided by the reconciler from the workloads' rollouts).
    pub fn rolled(&self, store: StoreKind) -> bool {
        self.rolled.contains(&store)
    }

    pub fn set_logins(&mut self, store: StoreKind, logins: Logins) {
        self.logins.insert(store, logins);
    }

    pub fn logins(&self, store: StoreKind) -> Option<&Logins> {
        self.logins.get(&store)
    }

    pub fn set_ca(&mut self, ca: tls::CertifiedKey) {
        self.tls.ca = Some(ca);
    }

    pub fn set_server_certificate(&mut self, store: StoreKind, cert: tls::CertifiedKey) {
        self.tls.servers.insert(store, cert);
    }

    pub fn tls(&self) -> &tls::TlsInputs {
        &self.tls
    }
}
