//! What the builders take besides the spec: credentials, certificates and
//! what the reconciler learnt, gathered by the reconciler.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::NetworkPolicyPeer;

use super::credentials::{Access, StoreCredentials};
use super::external::UserSecret;
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
    /// The operator's pods (its namespace), when known: admitted to the
    /// pods of a store it must ask who the master is (Redis replicas).
    operator: Option<NetworkPolicyPeer>,
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

    pub fn backup(&self, store: StoreKind) -> Option<&StoreCredentials> {
        self.credentials.get(&(store, Access::Backup))
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

    pub fn route_controllers(&self) -> &[NetworkPolicyPeer] {
        &self.route_controllers
    }

    pub fn set_operator(&mut self, peer: Option<NetworkPolicyPeer>) {
        self.operator = peer;
    }

    pub fn operator(&self) -> Option<&NetworkPolicyPeer> {
        self.operator.as_ref()
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
