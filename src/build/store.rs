//! A store's StatefulSet, whatever its engine: one replica, a stable name
//! through the headless Service, one PersistentVolumeClaim whose fate follows
//! retainDataOnDelete, the stores' uid, and a credentials hash that restarts
//! the store when its password changes.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Affinity, Container, DownwardAPIVolumeFile, DownwardAPIVolumeSource, EmptyDirVolumeSource,
    ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinityTerm,
    PodAntiAffinity, PodSpec, PodTemplateSpec, ResourceRequirements, Volume, VolumeMount,
    VolumeResourceRequirements, WeightedPodAffinityTerm,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::credentials::StoreCredentials;
use super::engine::Engine;
use super::error::BuildError;
use super::meta::StackRef;
use super::pod::{DATA, PODINFO, SOCKET, USERS_DIR, data_mount, socket_mount};
use super::{backup, env, labels, metrics, names, rotation, scripts, security, tls, wiring};
use crate::api::AppStack;

/// The store pod's container that checks the server's credentials against
/// the Secret (see [`Engine::credentials_script`]).
pub const CREDENTIALS_CONTAINER: &str = "credentials";
/// The store pod's init container that writes the server's users (see
/// [`Engine::users_script`]).
pub const USERS_CONTAINER: &str = "users";
const USERS: &str = "users";

/// A store's credentials: the apps', the administrator's, and the backup
/// user's when the store is backed up.
pub struct Credentials<'a> {
    pub app: &'a StoreCredentials,
    pub admin: &'a StoreCredentials,
    pub backup: Option<&'a StoreCredentials>,
    /// The monitoring user's, when the store runs an exporter.
    pub monitor: Option<&'a StoreCredentials>,
}

/// `restoring`: with spec.restore, whether the store may still need the
/// restore source (false once status says it was restored).
pub fn stateful_set(
    ctx: &StackRef,
    stack: &AppStack,
    engine: &dyn Engine,
    creds: Credentials<'_>,
    restoring: bool,
    agent: Option<&str>,
) -> Result<StatefulSet, BuildError> {
    let part = engine.part();
    let name = engine.secret_name(&ctx.name);
    let policy = if stack.spec.retain_data() {
        "Retain"
    } else {
        "Delete"
    };
    let storage = engine.storage(&stack.spec);
    let size = storage
        .and_then(|s| s.size.clone())
        .unwrap_or_else(|| engine.default_size().to_string());
    let claim = PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(DATA.into()),
            labels: Some(ctx.selector(part)),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: storage.and_then(|s| s.storage_class_name.clone()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(size))])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    };
    let (containers, backups) = containers(ctx, stack, engine, restoring, agent)?;
    // A store that takes the apps' passwords live (see `rotation`) does not
    // restart for a new one: only a new user name restarts it.
    let hashed_app = if engine.alternates_logins() {
        StoreCredentials {
            username: String::new(),
            password: String::new(),
        }
    } else if engine.keeps_passwords() {
        StoreCredentials {
            username: creds.app.username.clone(),
            password: String::new(),
        }
    } else {
        creds.app.clone()
    };
    let instances = engine.instances(&stack.spec);
    Ok(StatefulSet {
        metadata: ctx.object_meta(name.clone(), part, labels::ROLE_STORE),
        spec: Some(StatefulSetSpec {
            replicas: Some(instances),
            service_name: Some(names::headless(&name)),
            selector: LabelSelector {
                match_labels: Some(ctx.selector(part)),
                ..LabelSelector::default()
            },
            persistent_volume_claim_retention_policy: Some(
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(policy.into()),
                    when_scaled: Some(policy.into()),
                },
            ),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels::common(&ctx.name, part, labels::ROLE_STORE)),
                    annotations: Some(BTreeMap::from([(
                        wiring::CREDENTIALS_HASH.to_string(),
                        wiring::store_hash(
                            part,
                            &[
                                Some(&hashed_app),
                                Some(creds.admin),
                                creds.backup,
                                creds.monitor,
                            ]
                            .into_iter()
                            .flatten()
                            .collect::<Vec<_>>(),
                        ),
                    )])),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    init_containers: Some(backups.init).filter(|i| !i.is_empty()),
                    containers,
                    volumes: volumes(ctx, stack, engine, backups.volumes),
                    security_context: Some(security::store_pod()),
                    affinity: spread(ctx, stack, engine),
                    termination_grace_period_seconds: Some(60),
                    enable_service_links: Some(false),
                    automount_service_account_token: Some(false),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: Some(vec![claim]),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    })
}

/// With several pods: preferably one per node (preferred, so that one node
/// still runs them all).
fn spread(ctx: &StackRef, stack: &AppStack, engine: &dyn Engine) -> Option<Affinity> {
    (engine.instances(&stack.spec) > 1).then(|| Affinity {
        pod_anti_affinity: Some(PodAntiAffinity {
            preferred_during_scheduling_ignored_during_execution: Some(vec![
                WeightedPodAffinityTerm {
                    weight: 100,
                    pod_affinity_term: PodAffinityTerm {
                        label_selector: Some(LabelSelector {
                            match_labels: Some(ctx.selector(engine.part())),
                            ..LabelSelector::default()
                        }),
                        topology_key: "kubernetes.io/hostname".into(),
                        ..PodAffinityTerm::default()
                    },
                },
            ]),
            ..PodAntiAffinity::default()
        }),
        ..Affinity::default()
    })
}

/// The socket's and the users' emptyDirs, the TLS Secret, and the backup
/// volumes, where the store has them.
fn volumes(
    ctx: &StackRef,
    stack: &AppStack,
    engine: &dyn Engine,
    backups: Vec<Volume>,
) -> Option<Vec<Volume>> {
    let mut volumes = Vec::new();
    if engine.socket_dir().is_some() {
        volumes.push(Volume {
            name: SOCKET.into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
    }
    if engine.users_script().is_some() {
        volumes.push(Volume {
            name: USERS.into(),
            empty_dir: Some(EmptyDirVolumeSource {
                medium: Some("Memory".into()),
                size_limit: Some(Quantity("1Mi".into())),
            }),
            ..Volume::default()
        });
    }
    if stack.spec.tls_enabled() {
        volumes.push(tls::store_volume(ctx, engine));
    }
    if engine.keeps_passwords() || engine.alternates_logins() {
        volumes.push(rotation::volume(ctx, engine));
    }
    if engine.instances(&stack.spec) > 1 {
        volumes.push(podinfo());
    }
    volumes.extend(backups);
    volumes.extend(metrics::volume(ctx, stack, engine));
    Some(volumes).filter(|v| !v.is_empty())
}

/// The store's container, whose last log lines become its termination
/// message when it fails (a corrupt file, a data directory of another
/// version): the operator shows them in status. Then the credentials check,
/// with the store container's environment and socket, and where the engine
/// has one, the init container that writes the server's users. Also what
/// backups and a restore add to the pod.
fn containers(
    ctx: &StackRef,
    stack: &AppStack,
    engine: &dyn Engine,
    restoring: bool,
    agent: Option<&str>,
) -> Result<(Vec<Container>, backup::StorePod), BuildError> {
    let tls = stack.spec.tls_enabled();
    let mut store = engine.container(ctx, stack, tls);
    store.termination_message_policy = Some("FallbackToLogsOnError".into());
    if tls {
        store
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .push(tls::mount());
    }
    if engine.backup(&stack.spec).is_some() {
        let secret = backup::name(&ctx.name, engine);
        let env = store.env.get_or_insert_with(Vec::new);
        env.push(env::secret_env("BACKUP_USER", &secret, "username"));
        env.push(env::secret_env("BACKUP_PASSWORD", &secret, "password"));
    }
    store
        .env
        .get_or_insert_with(Vec::new)
        .extend(metrics::user_env(ctx, stack, engine));
    let users = engine.users_script_for(&stack.spec).map(|script| {
        store
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .push(VolumeMount {
                name: USERS.into(),
                mount_path: USERS_DIR.into(),
                // The server cannot write its users back (ACL SAVE): a restart
                // takes them from the Secrets again.
                read_only: Some(true),
                ..VolumeMount::default()
            });
        script_container(
            USERS_CONTAINER,
            &store,
            script,
            vec![VolumeMount {
                name: USERS.into(),
                mount_path: USERS_DIR.into(),
                ..VolumeMount::default()
            }],
            &engine.secret_name(&ctx.name),
        )
    });
    let mut backups = backup::store_pod(
        ctx,
        stack,
        engine,
        restoring,
        agent,
        store.env.as_deref().unwrap_or_default(),
        store
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == DATA)
            .cloned()
            .unwrap_or_else(|| data_mount("/data")),
    )?;
    store
        .volume_mounts
        .get_or_insert_with(Vec::new)
        .append(&mut backups.mounts);
    store
        .env
        .get_or_insert_with(Vec::new)
        .append(&mut backups.env);
    if !backups.server_args.is_empty() {
        store
            .args
            .get_or_insert_with(Vec::new)
            .append(&mut backups.server_args);
    }
    let mut mounts: Vec<VolumeMount> = engine.socket_dir().map(socket_mount).into_iter().collect();
    if tls {
        mounts.push(tls::mount());
    }
    if engine.keeps_passwords() || engine.alternates_logins() {
        mounts.push(rotation::mount());
    }
    if engine.alternates_logins() {
        // Its readiness probe logs in as the apps do now.
        store
            .volume_mounts
            .get_or_insert_with(Vec::new)
            .push(rotation::mount());
    }
    let mut check = script_container(
        CREDENTIALS_CONTAINER,
        &store,
        engine.credentials_script(),
        mounts,
        &engine.secret_name(&ctx.name),
    );
    if engine.keeps_passwords() {
        check.env.get_or_insert_with(Vec::new).push(env::plain_env(
            rotation::FILE_ENV,
            &format!("{}/{}", rotation::DIR, rotation::KEY),
        ));
    }
    if engine.alternates_logins() {
        check
            .env
            .get_or_insert_with(Vec::new)
            .push(env::plain_env(rotation::LOGINS_ENV, rotation::DIR));
    }
    // The users first: a Secret the server cannot take says so at once,
    // not after a long restore.
    backups.init.splice(0..0, users);
    let (mut sidecars, mut sidecar_volumes) = engine.sidecars(ctx, stack, tls);
    backups.volumes.append(&mut sidecar_volumes);
    let mut all = vec![store, check];
    all.append(&mut sidecars);
    all.append(&mut backups.sidecars);
    all.extend(metrics::container(ctx, stack, engine));
    Ok((all, backups))
}

/// A small container of the store's image running `script` (after the
/// scripts' library, whose `fail` ends it with the reason as its
/// termination message) with the store container's environment and the
/// store's Secret named in APPSTACK_SECRET.
fn script_container(
    name: &str,
    store: &Container,
    script: &str,
    mounts: Vec<VolumeMount>,
    secret: &str,
) -> Container {
    let mut env = store.env.clone().unwrap_or_default();
    env.push(env::plain_env("APPSTACK_SECRET", secret));
    Container {
        name: name.into(),
        image: store.image.clone(),
        command: Some(vec!["sh".into(), "-c".into(), scripts::with_lib(script)]),
        env: Some(env),
        volume_mounts: Some(mounts).filter(|m| !m.is_empty()),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("5m".into())),
                ("memory".to_string(), Quantity("16Mi".into())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity("64Mi".into()),
            )])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(security::container()),
        ..Container::default()
    }
}

/// The pod's own labels as a file (see [`PODINFO`]).
fn podinfo() -> Volume {
    Volume {
        name: PODINFO.into(),
        downward_api: Some(DownwardAPIVolumeSource {
            items: Some(vec![DownwardAPIVolumeFile {
                path: "labels".into(),
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.labels".into(),
                    ..ObjectFieldSelector::default()
                }),
                ..DownwardAPIVolumeFile::default()
            }]),
            ..DownwardAPIVolumeSource::default()
        }),
        ..Volume::default()
    }
}
