//! Phase one: every read of a reconcile, before any write, into one value.
//! Caches first; the API server only for what they do not hold (Secrets'
//! data, a store's pod, backup Jobs and pods). What a read must see of this
//! reconcile's own writes (a child's readiness) is seen by the next one,
//! which the watch brings.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::api::Api;
use kube::{Resource, ResourceExt};
use tracing::warn;

use super::super::backups;
use super::super::certificates::{self, Ca};
use super::super::children::{ChildKind, Finding, Owner};
use super::super::context::Context;
use super::super::credentials::{self, Resolved};
use super::super::user_secrets::{self, Found};
use super::super::{instances, migrations, ownership, redis_pods, restored};
use crate::api::gateway::HttpRoute;
use crate::api::{AppStack, StoreKind};
use crate::build::{self, Access, Inputs, migration, names, stores, tls};
use crate::error::{Error, Result};
use crate::status;

/// What one reconcile read.
pub struct World {
    pub owner: Owner,
    /// The builders' inputs as read or made: credentials, CA, certificates.
    pub inputs: Inputs,
    /// Secrets whose material was made just now: created before anything
    /// else is applied.
    pub generated: Vec<String>,
    /// Secrets read, at the resourceVersion read: their applies name it, so
    /// an edit made meanwhile is never written over.
    pub read_at: BTreeMap<String, Option<String>>,
    /// Secret names held by an object this stack does not control.
    pub held: Vec<Finding>,
    /// Secrets that get a new certificate, and why.
    pub issued: Vec<(String, String)>,
    pub seen: Seen,
    /// Per backed-up store: its backup pods, or why they could not be listed.
    pub backups: BTreeMap<StoreKind, Result<Vec<Pod>, String>>,
    /// Per failed migration Job: the last lines its newest failed pod printed.
    pub migration_logs: BTreeMap<String, String>,
    pub now: Time,
    /// The user's Secrets the stack reads (external stores, existingSecret),
    /// and whether each carries the watch label (missing: false).
    pub user_secrets: BTreeMap<String, bool>,
    /// What keeps a user's Secret from serving, naming the field, the
    /// Secret and the key: nothing is applied while there is any.
    pub secret_problems: Vec<String>,
    /// A replicated PostgreSQL store's instances, or why they could not be
    /// read.
    pub instances: Option<Result<instances::Seen, String>>,
    /// With Redis replicas: its pods and what they say of the master.
    pub redis_roles: Option<super::redis_roles::RolesSeen>,
}

/// What the caches show of the stack's children, and what it records of
/// its restores: no API request.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    /// The components' Deployments, by name.
    pub deployments: BTreeMap<String, Arc<Deployment>>,
    /// The components' current migration Jobs that this stack controls, by name.
    pub jobs: BTreeMap<String, Arc<Job>>,
    /// The scheduled jobs' CronJobs that this stack controls, by name.
    pub cron_jobs: BTreeMap<String, Arc<CronJob>>,
    /// Per store of the spec: its StatefulSet, and its pod when read.
    pub stores: BTreeMap<StoreKind, StoreSeen>,
    /// Stores whose StatefulSet records them restored, and from where.
    pub recorded: BTreeMap<StoreKind, String>,
    /// Stores only the status says were restored: written so by an older
    /// operator (read for compatibility; the next apply records them), or
    /// the StatefulSet was made again since.
    pub legacy: BTreeMap<StoreKind, String>,
    /// Per routed component (its child name): the load-balancer address its
    /// Ingress reports, when the stack's own Ingress reports one.
    pub route_addresses: BTreeMap<String, String>,
    /// Kinds the stack wants whose API the cluster does not serve, and what
    /// to install (an HTTPRoute without the Gateway API CRDs).
    pub unserved: Vec<(&'static str, &'static str)>,
}

#[derive(Clone, Debug, Default)]
pub struct StoreSeen {
    pub stateful_set: Option<Arc<StatefulSet>>,
    /// Its pod (`<statefulset>-0`), read when the store does not serve (to
    /// say why) or has just been restored (to quote the restore).
    pub pod: Option<Pod>,
}

impl Seen {
    /// Every restored store and its source: recorded on its StatefulSet,
    /// remembered by an older operator's status, or serving now under
    /// `spec.restore` (its restore is done, and this reconcile records it).
    pub fn restored(&self, stack: &AppStack) -> BTreeMap<StoreKind, String> {
        let mut all = self.legacy.clone();
        all.extend(self.recorded.clone());
        for kind in self.newly_restored(stack) {
            if let Some(r) = &stack.spec.restore {
                all.insert(kind, r.from.clone());
            }
        }
        all
    }

    /// The stores that serve under `spec.restore` and are not recorded as
    /// restored yet.
    pub fn newly_restored(&self, stack: &AppStack) -> Vec<StoreKind> {
        self.stores
            .iter()
            .filter(|(kind, _)| {
                !self.recorded.contains_key(kind) && !self.legacy.contains_key(kind)
            })
            .filter(|(kind, _)| restoring(stack, **kind))
            .filter(|(_, s)| {
                s.stateful_set
                    .as_deref()
                    .is_some_and(status::stateful_set_ready)
            })
            .map(|(kind, _)| *kind)
            .collect()
    }
}

/// Whether `spec.restore` names the store (all stores by default).
pub fn restoring(stack: &AppStack, kind: StoreKind) -> bool {
    stack
        .spec
        .restore
        .as_ref()
        .is_some_and(|r| r.stores.as_ref().is_none_or(|s| s.contains(&kind)))
}

pub async fn observe(ctx: &Context, stack: &AppStack) -> Result<World> {
    let namespace = stack.namespace().ok_or(Error::MissingNamespace)?;
    let owner = Owner {
        uid: stack.uid().unwrap_or_default(),
        name: stack.name_any(),
        namespace,
    };
    let secrets = Api::namespaced(ctx.client.clone(), &owner.namespace);
    let mut material = credentials(stack, &owner, &secrets).await?;
    external_stores(stack, &secrets, &mut material).await?;
    if stack.spec.tls_enabled() && stores::of(&stack.spec).next().is_some() {
        let now = time::OffsetDateTime::now_utc();
        match certificates(stack, &owner, &secrets, now).await? {
            Tls::Held(finding) => material.held.push(finding),
            Tls::Ready(tls) => {
                material.generated.extend(tls.generated);
                material.issued.extend(tls.issued);
                for (kind, server) in tls.servers {
                    material.inputs.set_server_certificate(kind, server);
                }
                material.inputs.set_ca(tls.ca);
            }
        }
    }
    material
        .inputs
        .set_route_controllers(ctx.route_controllers.clone());
    material
        .inputs
        .set_operator_peer(instances::operator_peer());
    material
        .inputs
        .set_metrics_scrapers(ctx.metrics_scrapers.clone());
    let mut world = World {
        inputs: material.inputs,
        generated: material.generated,
        read_at: material.read_at,
        held: material.held,
        issued: material.issued,
        seen: seen(ctx, stack),
        backups: BTreeMap::new(),
        migration_logs: BTreeMap::new(),
        now: Time(k8s_openapi::jiff::Timestamp::now()),
        owner,
        user_secrets: material.user_secrets,
        secret_problems: material.secret_problems,
        instances: None,
        redis_roles: None,
    };
    world.redis_roles = redis_roles(ctx, stack, &world).await;
    for (name, job) in &world.seen.jobs {
        if migrations::failure(job).is_some()
            && let Some(said) = migrations::last_words(ctx, &world.owner.namespace, job).await
        {
            world.migration_logs.insert(name.clone(), said);
        }
    }
    store_pods(ctx, stack, &mut world.seen).await;
    world.instances = replicated(ctx, stack, &world).await;
    for engine in stores::of(&stack.spec) {
        if engine.backup(&stack.spec).is_some() {
            let pods = backups::pods(ctx, stack, engine).await.map_err(|error| {
                warn!(%error, "could not list the backup pods");
                error.to_string()
            });
            world.backups.insert(engine.kind(), pods);
        }
    }
    Ok(world)
}

/// With Redis replicas: what the store's own pods say of the master (see
/// redis_pods).
async fn redis_roles(
    ctx: &Context,
    stack: &AppStack,
    world: &World,
) -> Option<super::redis_roles::RolesSeen> {
    let engine = stores::by_kind(StoreKind::Redis)?;
    if !engine.in_cluster(&stack.spec) || engine.writer_label(&stack.spec).is_none() {
        return None;
    }
    let sts = world
        .seen
        .stores
        .get(&StoreKind::Redis)?
        .stateful_set
        .clone()?;
    let admin = world.inputs.admin(StoreKind::Redis)?;
    let ca = stack
        .spec
        .tls_enabled()
        .then(|| world.inputs.tls().ca.as_ref().map(|c| c.cert.clone()))
        .flatten();
    if stack.spec.tls_enabled() && ca.is_none() {
        return None;
    }
    let access = redis_pods::Access {
        stack: world.owner.name.clone(),
        namespace: world.owner.namespace.clone(),
        stack_uid: world.owner.uid.clone(),
        admin_password: admin.password.clone(),
        ca,
        instances: engine.instances(&stack.spec),
    };
    redis_pods::observe(&ctx.client, &sts, &access).await
}

/// The children as the caches show them, and the stack's restore records.
pub fn seen(ctx: &Context, stack: &AppStack) -> Seen {
    let namespace = stack.namespace().unwrap_or_default();
    let name = stack.name_any();
    let deployments = stack
        .spec
        .components
        .iter()
        .map(|c| names::component(&name, &c.name))
        .filter_map(|n| Some((n.clone(), ctx.caches.get(&namespace, &n)?)))
        .collect();
    let uid = stack.uid().unwrap_or_default();
    let ours = |meta: &ObjectMeta| ownership::foreign_holder(meta, &uid).is_none();
    let jobs = stack
        .spec
        .components
        .iter()
        .filter_map(|c| {
            let m = c.migrate.as_ref()?;
            Some(migration::job_name(&name, &c.name, &migration::hash(c, m)))
        })
        .filter_map(|n| Some((n.clone(), ctx.caches.get::<Job>(&namespace, &n)?)))
        .filter(|(_, j)| ours(j.meta()))
        .collect();
    let cron_jobs = stack
        .spec
        .jobs
        .iter()
        .map(|j| names::component(&name, &j.name))
        .filter_map(|n| Some((n.clone(), ctx.caches.get::<CronJob>(&namespace, &n)?)))
        .filter(|(_, j)| ours(j.meta()))
        .collect();
    let stores: BTreeMap<StoreKind, StoreSeen> = stores::of(&stack.spec)
        .map(|e| {
            let stateful_set = ctx.caches.get(&namespace, &e.secret_name(&name));
            (
                e.kind(),
                StoreSeen {
                    stateful_set,
                    pod: None,
                },
            )
        })
        .collect();
    // Only a StatefulSet this stack controls speaks for its store.
    let recorded: BTreeMap<StoreKind, String> = stores
        .iter()
        .filter_map(|(kind, s): (&StoreKind, &StoreSeen)| {
            let meta = s.stateful_set.as_ref()?.meta();
            if ownership::foreign_holder(meta, &uid).is_some() {
                return None;
            }
            Some((*kind, restored::from(meta)?.to_string()))
        })
        .collect();
    let legacy = stores::of(&stack.spec)
        .filter(|e| !recorded.contains_key(&e.kind()))
        .filter_map(|e| {
            let from = e.status(stack.status.as_ref()?)?.restored_from.clone()?;
            Some((e.kind(), from))
        })
        .collect();
    let routed = || stack.spec.components.iter().filter(|c| c.route.is_some());
    let route_addresses = routed()
        .filter_map(|c| {
            let child = names::component(&name, &c.name);
            let ingress: Arc<Ingress> = ctx.caches.get(&namespace, &child)?;
            if ownership::foreign_holder(ingress.meta(), &uid).is_some() {
                return None;
            }
            let point = ingress
                .status
                .as_ref()?
                .load_balancer
                .as_ref()?
                .ingress
                .as_ref()?
                .first()?
                .clone();
            Some((child, point.ip.or(point.hostname)?))
        })
        .collect();
    let mut unserved = Vec::new();
    if routed().any(|c| c.route.as_ref().is_some_and(|r| r.gateway.is_some()))
        && !ctx.caches.served::<HttpRoute>()
    {
        unserved.push((
            <HttpRoute as k8s_openapi::Resource>::KIND,
            <HttpRoute as ChildKind>::OPTIONAL.unwrap_or("its CRD"),
        ));
    }
    Seen {
        deployments,
        jobs,
        cron_jobs,
        stores,
        recorded,
        legacy,
        route_addresses,
        unserved,
    }
}

/// Reads the pod of each store that does not serve (why, for status) or
/// that serves restored and is not recorded so yet (what the restore said,
/// before this reconcile's apply rolls the pod without its restore
/// container).
/// A pod that cannot be read is left out: status then says less.
async fn store_pods(ctx: &Context, stack: &AppStack, seen: &mut Seen) {
    let pods = Api::<Pod>::namespaced(ctx.client.clone(), &stack.namespace().unwrap_or_default());
    let newly = seen.newly_restored(stack);
    for (kind, store) in &mut seen.stores {
        let Some(sts) = &store.stateful_set else {
            continue;
        };
        if status::stateful_set_ready(sts) && !newly.contains(kind) {
            continue;
        }
        let pod_name = format!("{}-0", sts.name_any());
        match pods.get_opt(&pod_name).await {
            Ok(pod) => store.pod = pod,
            Err(error) => warn!(%error, pod = %pod_name, "could not read the store's pod"),
        }
    }
}

/// The instances of a replicated PostgreSQL store, read when its
/// StatefulSet exists (none with one instance).
async fn replicated(
    ctx: &Context,
    stack: &AppStack,
    world: &World,
) -> Option<Result<instances::Seen, String>> {
    let engine = stores::by_kind(StoreKind::Postgres)?;
    if !engine.in_cluster(&stack.spec) || engine.instances(&stack.spec) < 2 {
        return None;
    }
    let sts = world
        .seen
        .stores
        .get(&StoreKind::Postgres)?
        .stateful_set
        .clone()?;
    let (Some(admin), Some(replication), Some(ca)) = (
        world.inputs.admin(StoreKind::Postgres),
        world.inputs.replication(StoreKind::Postgres),
        world.inputs.tls().ca.as_ref(),
    ) else {
        return Some(Err("the store's credentials or CA are not there yet".into()));
    };
    let pods = Api::namespaced(ctx.client.clone(), &world.owner.namespace);
    let access = instances::Access {
        namespace: world.owner.namespace.clone(),
        stack_uid: world.owner.uid.clone(),
        stateful_set: (*sts).clone(),
        admin: admin.clone(),
        replication: replication.clone(),
        ca: ca.cert.clone(),
        port: u16::try_from(engine.port()).unwrap_or(5432),
        selector: crate::build::labels::selector(&world.owner.name, engine.part())
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    };
    let seen = instances::observe(&pods, access).await;
    if let Err(error) = &seen {
        tracing::warn!(%error, "the PostgreSQL instances could not be read");
    }
    Some(seen)
}

/// The stores' credentials and TLS material, as read or made (see the
/// fields of [`World`] of the same names).
#[derive(Default)]
struct Material {
    inputs: Inputs,
    generated: Vec<String>,
    read_at: BTreeMap<String, Option<String>>,
    held: Vec<Finding>,
    issued: Vec<(String, String)>,
    user_secrets: BTreeMap<String, bool>,
    secret_problems: Vec<String>,
}

impl Material {
    /// Reads a user's Secret for `field`: its data when it can serve,
    /// else the problem recorded.
    async fn user_secret(
        &mut self,
        secrets: &Api<Secret>,
        field: String,
        name: &str,
    ) -> Result<Option<build::external::UserSecret>> {
        let found = user_secrets::read(secrets, name).await?;
        let labelled = matches!(found, Found::Read(_, true));
        self.user_secrets.insert(name.to_string(), labelled);
        if let Some(problem) = user_secrets::problem(&field, name, &found) {
            self.secret_problems.push(problem);
        }
        Ok(match found {
            Found::Read(user, _) => Some(user),
            _ => None,
        })
    }
}

/// The external stores' Secrets, as their users made them.
async fn external_stores(
    stack: &AppStack,
    secrets: &Api<Secret>,
    found: &mut Material,
) -> Result<()> {
    for store in stores::external(&stack.spec) {
        let Some(external) = store.external(&stack.spec) else {
            continue;
        };
        let field = format!("spec.{}.external.secretName", store.part());
        if let Some(user) = found
            .user_secret(secrets, field, &external.secret_name)
            .await?
        {
            found.inputs.set_external(store.kind(), user);
        }
    }
    Ok(())
}

/// `existingSecret`: the apps' credentials (`password`, optional
/// `username`) and optionally the administrator's password
/// (`admin-password`) from the user's Secret, over what the stack's own
/// Secrets hold; the apply then writes them there and into the store.
async fn existing_secret(
    stack: &AppStack,
    store: &'static dyn build::stores::Engine,
    secrets: &Api<Secret>,
    found: &mut Material,
) -> Result<()> {
    let Some(name) = store.existing_secret(&stack.spec) else {
        return Ok(());
    };
    let field = format!("spec.{}.existingSecret", store.part());
    let Some(user) = found.user_secret(secrets, field.clone(), name).await? else {
        return Ok(());
    };
    let value = |key: &str| {
        user.get(key)
            .filter(|v| v.len() <= credentials::MAX_VALUE)
            .map(str::to_string)
    };
    let Some(password) = value("password") else {
        found.secret_problems.push(format!(
            "{field}: Secret {name} has no key `password` (the apps' password); the components wait until it does"
        ));
        return Ok(());
    };
    let username = value("username").unwrap_or_else(|| store.user().to_string());
    if username == store.admin_user() {
        found.secret_problems.push(format!(
            "{field}: Secret {name}: username {username} is the store's administrator; the apps need a user of their own"
        ));
        return Ok(());
    }
    found
        .inputs
        .set(store.kind(), build::StoreCredentials { username, password });
    if let (Some(admin), Some(mut creds)) = (
        value("admin-password"),
        found.inputs.admin(store.kind()).cloned(),
    ) {
        creds.password = admin;
        found.inputs.set_admin(store.kind(), creds);
    }
    Ok(())
}

/// Each store's credentials, read from the stack's Secrets or made.
async fn credentials(stack: &AppStack, owner: &Owner, secrets: &Api<Secret>) -> Result<Material> {
    let mut found = Material::default();
    for store in stores::of(&stack.spec) {
        let mut all = vec![
            (Access::App, store.secret_name(&owner.name), store.user()),
            (
                Access::Admin,
                store.admin_secret_name(&owner.name),
                store.admin_user(),
            ),
        ];
        if store.backup(&stack.spec).is_some() {
            all.push((
                Access::Backup,
                build::backup::name(&owner.name, store),
                build::backup::USER,
            ));
        }
        if store.replication_user(&stack.spec) {
            all.push((
                Access::Replication,
                store.replication_secret_name(&owner.name),
                "replicator",
            ));
        }
        if build::metrics::enabled(stack, store) {
            all.push((
                Access::Monitor,
                build::metrics::secret_name(&owner.name, store),
                store.exporter().user,
            ));
        }
        for (access, secret, user) in all {
            let mut creds = match credentials::resolve(secrets, &owner.uid, &secret, user).await? {
                Resolved::Existing(c, version) => {
                    found.read_at.insert(secret, version);
                    c
                }
                Resolved::Generated(c) => {
                    found.generated.push(secret);
                    c
                }
                Resolved::Held(holder) => {
                    found.held.push(Finding::Conflict {
                        kind: "Secret",
                        name: secret,
                        holder,
                    });
                    continue;
                }
            };
            match access {
                Access::App => {
                    creds.username = store.app_user(&creds.username);
                    found.inputs.set(store.kind(), creds);
                }
                Access::Admin => found.inputs.set_admin(store.kind(), creds),
                Access::Backup => found.inputs.set_backup(store.kind(), creds),
                Access::Replication => found.inputs.set_replication(store.kind(), creds),
                Access::Monitor => found.inputs.set_monitor(store.kind(), creds),
            }
        }
        existing_secret(stack, store, secrets, &mut found).await?;
        if store.keeps_passwords() || store.alternates_logins() {
            let name = build::rotation::secret_name(&owner.name, store);
            let data = operator_secret(secrets, &owner.uid, &name).await?;
            if store.keeps_passwords() {
                let hashes = data
                    .get(build::rotation::KEY)
                    .map(|v| build::rotation::parse(&String::from_utf8_lossy(&v.0)))
                    .unwrap_or_default();
                found.inputs.set_accepted(store.kind(), hashes);
            }
            if let Some(logins) = build::rotation::parse_logins(&data)
                && store.alternates_logins()
            {
                found.inputs.set_logins(store.kind(), logins);
            }
        }
    }
    Ok(found)
}

/// The data of an operator's own Secret of this stack (none when it is
/// missing or not this stack's).
async fn operator_secret(
    secrets: &Api<Secret>,
    uid: &str,
    name: &str,
) -> Result<BTreeMap<String, k8s_openapi::ByteString>> {
    let secret = secrets.get_opt(name).await.map_err(|source| Error::Read {
        kind: "Secret",
        name: name.to_string(),
        source,
    })?;
    Ok(secret
        .filter(|s| ownership::foreign_holder(&s.metadata, uid).is_none())
        .and_then(|s| s.data)
        .unwrap_or_default())
}

/// The stack's TLS material, or the finding that its CA's name is taken.
enum Tls {
    Held(Finding),
    Ready(TlsMaterial),
}

struct TlsMaterial {
    ca: build::tls::CertifiedKey,
    servers: Vec<(StoreKind, build::tls::CertifiedKey)>,
    /// The CA Secret, when the CA was made just now.
    generated: Option<String>,
    issued: Vec<(String, String)>,
}

/// The stack's CA and its stores' server certificates.
async fn certificates(
    stack: &AppStack,
    owner: &Owner,
    secrets: &Api<Secret>,
    now: time::OffsetDateTime,
) -> Result<Tls> {
    let names_of = build::meta::StackRef::new(stack).map_err(|e| Error::Tls {
        step: "naming the certificates",
        message: e.to_string(),
    })?;
    let key_secret = tls::ca_key_secret_name(&owner.name);
    let subject = format!("AppStack CA {}/{}", owner.namespace, owner.name);
    let mut issued = Vec::new();
    let mut generated = None;
    let ca = match certificates::resolve_ca(secrets, &owner.uid, &key_secret, &subject, now).await?
    {
        Ca::Existing(ca) => ca,
        Ca::Generated(ca) => {
            issued.push((key_secret.clone(), "new CA".to_string()));
            generated = Some(key_secret);
            ca
        }
        Ca::Replaced(ca, why) => {
            issued.push((
                key_secret,
                format!("new CA: the old one was replaced, {why}"),
            ));
            ca
        }
        Ca::Held(holder) => {
            return Ok(Tls::Held(Finding::Conflict {
                kind: "Secret",
                name: key_secret,
                holder,
            }));
        }
    };
    let mut servers = Vec::new();
    for store in stores::of(&stack.spec) {
        let name = tls::server_secret_name(store, &owner.name);
        let names = tls::server_names_for(&names_of, store, &stack.spec);
        let (server, why) =
            certificates::resolve_server(secrets, &owner.uid, &name, &ca, &names, now).await?;
        if let Some(why) = why {
            issued.push((name, format!("new server certificate: {why}")));
        }
        servers.push((store.kind(), server));
    }
    Ok(Tls::Ready(TlsMaterial {
        ca,
        servers,
        generated,
        issued,
    }))
}
