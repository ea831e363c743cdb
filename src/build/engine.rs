//! The contract between the builders and a store: everything that differs
//! from one store kind to another is a method of [`Engine`], so that the
//! generic builders (StatefulSet, Services, Secrets, TLS, backups, wiring,
//! NetworkPolicies, status) never ask which store they hold.
//!
//! Engines are unit structs behind `&'static dyn Engine` (see
//! `stores::ENGINES`) rather than one enum: an enum would need a `match`
//! in every method, which is the very thing this module keeps out of the
//! generic code; a trait object lets a new store be one new file.

use k8s_openapi::api::core::v1::{Container, EnvVar, Service, Volume};

use super::credentials::StoreCredentials;
use super::error::BuildError;
use super::external::UserSecret;
use super::meta::StackRef;
use super::metrics::Exporter;
use super::names;
use crate::api::{
    AppStack, AppStackSpec, AppStackStatus, BackupSpec, Component, ExternalStore, MetricsSpec,
    StorageSpec, StoreKind, StoreStatus,
};
use crate::backup_agent::Layout;

/// A store kind (Redis, PostgreSQL, ...): how it runs, is wired, keeps its
/// credentials, is backed up and restored.
///
/// A new engine is one file under `build/stores/` implementing every
/// required method, listed in `stores::ENGINES`, plus its tests. It needs
/// - its own [`StoreKind`] variant and section in the spec (`spec.<part>`)
///   and status (`status.<part>`): [`Engine::runs`], [`Engine::image`],
///   [`Engine::storage`], [`Engine::backup`], [`Engine::status`] and
///   [`Engine::status_mut`] map the kind to those fields;
/// - its server: [`Engine::container`] (port, probes, data mount),
///   [`Engine::credentials_script`] (keeps the server's users in line with
///   the Secrets) and, where the server reads users from a file,
///   [`Engine::users_script`];
/// - its clients: [`Engine::connection`] (the Secret's entries),
///   [`Engine::client_env`] and [`Engine::wait_script`];
/// - its backups: [`Engine::backup_scripts`] (the `.sh` files and which
///   of them back up and restore), [`Engine::backup_env`], [`Engine::data_dir`],
///   [`Engine::layout`] (for the S3 agent) and, for a server that archives
///   a log between backups, [`Engine::log_archiving`].
///
/// The CRD's CEL rules name the stores too (reserved component names,
/// `uses`): a test in `stores` checks they agree with the engines.
pub trait Engine: Sync {
    fn kind(&self) -> StoreKind;
    /// The store's part of child names, its `app.kubernetes.io/name` and
    /// its spec and status field (`spec.<part>`).
    fn part(&self) -> &'static str;
    fn port(&self) -> i32;

    /// Servers (pods of the StatefulSet): more than one is a primary and
    /// replicas, labelled by the operator (see [`Engine::writer_label`]).
    fn instances(&self, _spec: &AppStackSpec) -> i32 {
        1
    }
    /// Whether the stack runs this store (its spec section is there).
    fn runs(&self, spec: &AppStackSpec) -> bool;
    /// The store's backup section, when the stack runs it and backs it up.
    fn backup<'a>(&self, spec: &'a AppStackSpec) -> Option<&'a BackupSpec>;
    fn image(&self, spec: &AppStackSpec) -> String;
    fn storage<'a>(&self, spec: &'a AppStackSpec) -> Option<&'a StorageSpec>;
    /// PVC size when the spec gives none.
    fn default_size(&self) -> &'static str;
    /// The store's status, when the stack has it.
    fn status<'a>(&self, status: &'a AppStackStatus) -> Option<&'a StoreStatus>;
    /// The store's status field.
    fn status_mut<'a>(&self, status: &'a mut AppStackStatus) -> &'a mut Option<StoreStatus>;

    /// The store's `external` section: a server the operator does not run.
    fn external<'a>(&self, spec: &'a AppStackSpec) -> Option<&'a ExternalStore>;
    /// The user's Secret the apps' credentials come from (`existingSecret`).
    fn existing_secret<'a>(&self, spec: &'a AppStackSpec) -> Option<&'a str>;
    /// Whether the operator runs the store (StatefulSet, Services, its
    /// Secrets, TLS, backups): in the spec and not external.
    fn in_cluster(&self, spec: &AppStackSpec) -> bool {
        self.runs(spec) && self.external(spec).is_none()
    }
    /// An external store's connection entries for the operator's own
    /// Secret (the same keys as an in-cluster store's, plus `ca.crt` when
    /// the user gave a CA), from the user's Secret; what is missing or
    /// unusable names the Secret and the key.
    fn external_connection(
        &self,
        user: &UserSecret,
    ) -> Result<Vec<(&'static str, String)>, BuildError>;
    /// Keys of [`Engine::client_env`]`(true)` and [`Engine::wait_script`]`(true)`
    /// an external store's Secret may lack (the CA's path, without a CA):
    /// their variables are wired optional.
    fn external_optional_keys(&self) -> &'static [&'static str];

    /// Whether component `c` is wired to this store: the stack runs it and
    /// `c.uses` names it (no list: every store).
    fn used_by(&self, spec: &AppStackSpec, c: &Component) -> bool {
        self.runs(spec) && c.wants(self.kind())
    }

    /// The apps' user a generated Secret names: never the administrator.
    fn user(&self) -> &'static str;
    /// The store's administrator (its admin Secret's user).
    fn admin_user(&self) -> &'static str;
    /// The apps' user name to use for the one an existing Secret holds:
    /// never the administrator. Redis apps of stacks made before the apps'
    /// ACL user used `default`, the administrator now; they move to
    /// [`Engine::user`] with their password.
    fn app_user(&self, found: &str) -> String {
        if found == self.admin_user() {
            self.user().to_string()
        } else {
            found.to_string()
        }
    }

    /// The spec's own checks for this store (fields name themselves).
    fn validate(&self, ctx: &StackRef, spec: &AppStackSpec) -> Result<(), BuildError>;
    /// Secret entries beyond username, password, host and port, such as
    /// `url`; `host` is the client Service's DNS name.
    fn connection(
        &self,
        ctx: &StackRef,
        spec: &AppStackSpec,
        creds: &StoreCredentials,
        host: &str,
        tls: bool,
    ) -> Vec<(&'static str, String)>;
    /// The store's own container (its data and TLS volumes are mounted by
    /// the caller), with both Secrets' credentials in its environment; with
    /// `tls`, serving only TLS to the network from the files in tls::DIR.
    fn container(&self, ctx: &StackRef, stack: &AppStack, tls: bool) -> Container;
    /// The script of an init container (after the scripts' library, which
    /// defines `fail`) that writes the server's users, passwords included, into
    /// `pod::USERS_DIR`, a memory volume the store container mounts
    /// read-only: for a server that would otherwise take them from its
    /// command line. It runs with the store container's environment, which
    /// has BACKUP_USER and BACKUP_PASSWORD when the store is backed up.
    fn users_script(&self) -> Option<&'static str> {
        None
    }
    /// [`Engine::users_script`] for this spec (a store with replicas has
    /// one more user).
    fn users_script_for(&self, _spec: &AppStackSpec) -> Option<&'static str> {
        self.users_script()
    }
    /// Files the store's TLS Secret carries besides the certificates.
    fn tls_files(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// The script of the store pod's credentials container (after the scripts'
    /// library, which defines `fail`), run by the store's image with the store
    /// container's environment: it keeps the server's credentials in line
    /// with the Secrets where it can, and calls `fail` with what is wrong
    /// where it cannot.
    fn credentials_script(&self) -> &'static str;
    /// Whether the server's apps' user takes several passwords at once, so
    /// that a rotation keeps the old ones until the apps rolled (see
    /// `rotation`): the store then takes the apps' new password live from
    /// the operator's passwords Secret instead of restarting.
    fn keeps_passwords(&self) -> bool {
        false
    }
    /// Whether the apps alternate between two login roles of one owner
    /// role (see `rotation::Logins`), which the store takes live from the
    /// operator's passwords Secret.
    fn alternates_logins(&self) -> bool {
        false
    }
    /// A directory (the server's unix socket) the store container shares
    /// with its credentials container.
    fn socket_dir(&self) -> Option<&'static str> {
        None
    }
    /// Environment variables a component that uses the store gets, and the
    /// Secret key each comes from.
    fn client_env(&self, tls: bool) -> Vec<(&'static str, &'static str)>;
    /// The init container's script that waits until the store answers, and
    /// the variables (from the Secret) it needs.
    fn wait_script(&self, tls: bool) -> (&'static str, Vec<(&'static str, &'static str)>);

    /// The backup and restore scripts, run by the store's image from the
    /// stack's scripts ConfigMap (mounted at `backup::SCRIPTS`).
    fn backup_scripts(&self) -> BackupScripts;
    /// How the backup pod reaches the store at `host` as the backup user of
    /// Secret `secret`: the variables its backup script reads.
    fn backup_env(&self, host: &str, secret: &str, tls: bool) -> Vec<EnvVar>;
    /// Where the store container keeps its data (what a restore fills).
    fn data_dir(&self) -> &'static str;
    /// How the backups lie on the volume and in the bucket.
    fn layout(&self) -> Layout;
    /// For a server that archives a log between backups into the backup
    /// volume (PostgreSQL's WAL): the options that make it do so. The
    /// volume is then mounted in the store's pod, the backup pods run on
    /// its node, the log is copied to S3 as it is written, and a restore
    /// mounts its source in the server, which replays the log.
    fn log_archiving(&self) -> Option<Vec<String>> {
        None
    }
    /// Why the store's backups need TLS, when they do (checked again for
    /// stacks stored before admission refused them).
    fn backup_needs_tls(&self) -> Option<&'static str> {
        None
    }

    /// Whether the store's replicas log in as a replication user whose
    /// password the operator keeps (`<stack>-<part>-replication`).
    /// PostgreSQL's do; Redis derives its replicas' password in the pod.
    fn replication_user(&self, _spec: &AppStackSpec) -> bool {
        false
    }
    /// With replicas: the label value (of `labels::STORE_ROLE`) the
    /// operator sets on the one pod that takes writes, which the client
    /// Service then selects (the others are `labels::REPLICA`, which the
    /// read-only Service selects).
    fn writer_label(&self, _spec: &AppStackSpec) -> Option<&'static str> {
        None
    }
    /// Containers that run beside the server in every pod (Sentinel), and
    /// the volumes they need.
    fn sidecars(
        &self,
        _ctx: &StackRef,
        _stack: &AppStack,
        _tls: bool,
    ) -> (Vec<Container>, Vec<Volume>) {
        (Vec::new(), Vec::new())
    }
    /// Ports the store's pods reach each other on (replication, Sentinel).
    fn peer_ports(&self, _spec: &AppStackSpec) -> Vec<i32> {
        Vec::new()
    }
    /// Ports besides [`Engine::port`] the store's clients may reach.
    fn client_ports(&self, _spec: &AppStackSpec) -> Vec<i32> {
        Vec::new()
    }
    /// Services besides the client and headless ones (Sentinel's).
    fn extra_services(&self, _ctx: &StackRef, _spec: &AppStackSpec) -> Vec<Service> {
        Vec::new()
    }
    /// Names the server certificate covers besides [`crate::build::tls::server_names`].
    fn extra_server_names(&self, _ctx: &StackRef, _spec: &AppStackSpec) -> Vec<String> {
        Vec::new()
    }
    /// Client variables (and their Secret keys) besides
    /// [`Engine::client_env`], for what the spec adds (Sentinel's address).
    fn extra_client_env(&self, _spec: &AppStackSpec) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }
    /// The store's `metrics` section (no section: the exporter runs).
    fn metrics<'a>(&self, spec: &'a AppStackSpec) -> Option<&'a MetricsSpec>;
    /// The store's Prometheus exporter (see `metrics`).
    fn exporter(&self) -> Exporter;

    /// Name of the store's Secret, Services (client and headless) and
    /// StatefulSet: `<stack>-<part>`.
    fn secret_name(&self, stack: &str) -> String {
        names::store(stack, self.part())
    }

    /// Name of the replication user's Secret: `<stack>-<part>-replication`.
    fn replication_secret_name(&self, stack: &str) -> String {
        format!("{}-replication", self.secret_name(stack))
    }

    /// Name of the administrator's Secret: `<stack>-<part>-admin`.
    fn admin_secret_name(&self, stack: &str) -> String {
        format!("{}-admin", self.secret_name(stack))
    }
}

/// A store's backup scripts.
pub struct BackupScripts {
    /// Every script its pods run, by file name in the ConfigMap (included
    /// in `scripts`; the library they source, `lib`, is there for all).
    pub files: &'static [(&'static str, &'static str)],
    /// The one the backup CronJob runs.
    pub backup: &'static str,
    /// The one the restore init container runs.
    pub restore: &'static str,
}
