//! Backups and restores of the stores. For each store whose spec has
//! `backup`: a volume of the stack's own (`<stack>-<store>-backup`, made
//! once and never owned by the stack, so deleting the stack keeps it), a
//! CronJob that takes a backup into it with the store's own tools and a
//! least-privilege user, and the scripts, in a ConfigMap. PostgreSQL also
//! archives its WAL into the volume as it writes it. With `spec.restore`,
//! a store whose data volume is empty is first filled from the backups of
//! the stack named there.
//!
//! The scripts are shell, run by the store's own image (pg_basebackup,
//! pg_verifybackup, redis-cli --rdb, redis-check-rdb), and end with the
//! result as their container's termination message, which the operator
//! reads into status. With an S3 target, the operator's own binary (the
//! backup agent) copies the volume to the bucket, from a sidecar beside
//! PostgreSQL (WAL) and as the backup Job's last step; a restore from S3
//! fetches into a volume of the pod's own first.

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMap, ConfigMapVolumeSource, Container, EmptyDirVolumeSource, EnvVar,
    PersistentVolumeClaim, PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource,
    PodAffinity, PodAffinityTerm, PodSpec, PodTemplateSpec, ResourceRequirements, SecurityContext,
    Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::meta::StackRef;
use super::stores::Engine;
use super::{BuildError, labels, scripts, security, tls, wiring};
use crate::api::{AppStack, AppStackSpec, BackupSpec, S3Spec, StoreKind};

/// The stack's backup volume, in the store pod and the backup pods.
pub const MOUNT: &str = "/var/lib/appstack/backup";
/// The restore source's backup volume, read-only, while a store restores.
pub const RESTORE_MOUNT: &str = "/var/lib/appstack/restore";
/// The scripts (the ConfigMap), executable.
pub const SCRIPTS: &str = "/etc/appstack/backup";

const VOLUME: &str = "backup";
const RESTORE_VOLUME: &str = "restore";
const SCRIPTS_VOLUME: &str = "backup-scripts";

/// The backup user of a store, a generated Secret's username.
pub const USER: &str = "backup";

/// The init container that fills an empty data volume from a backup.
pub const RESTORE_CONTAINER: &str = "restore";

/// A base backup's (or snapshot's) default schedule: daily, at night (UTC).
const DEFAULT_SCHEDULE: &str = "0 3 * * *";
const DEFAULT_COUNT: i32 = 7;
const DEFAULT_SIZE: &str = "10Gi";

/// WAL is archived at least this often (seconds) while anything is written:
/// the bound on what a lost volume can take with it.
pub const ARCHIVE_TIMEOUT: u32 = 60;

/// The label key on a backup volume naming its stack. The volume has no
/// `app.kubernetes.io/instance` label, so selecting the stack's volumes by
/// it (to delete them) leaves the backups.
pub const BACKUP_OF: &str = "appstack.dev/backup-of";

/// `<stack>-<store>-backup`: the backup volume, CronJob, Secret (the
/// backup user's credentials) and the backup pods' NetworkPolicy.
pub fn name(stack: &str, engine: &dyn Engine) -> String {
    format!("{stack}-{}-backup", engine.part())
}

/// The backup pods' `app.kubernetes.io/name`.
pub fn part(engine: &dyn Engine) -> String {
    format!("{}-backup", engine.part())
}

/// The script a store's backup pod runs, and its restore init container.
fn scripts_of(kind: StoreKind) -> (&'static str, &'static str) {
    match kind {
        StoreKind::Postgres => ("pg-base-backup", "pg-restore"),
        StoreKind::Redis => ("redis-snapshot", "redis-restore"),
    }
}

/// Whether the stack needs the scripts: a store backs up or restores.
pub fn any(spec: &AppStackSpec) -> bool {
    spec.restore.is_some()
        || [StoreKind::Redis, StoreKind::Postgres]
            .into_iter()
            .any(|k| spec.backup(k).is_some())
}

pub fn scripts_name(stack: &str) -> String {
    format!("{stack}-backup-scripts")
}

pub fn scripts(ctx: &StackRef) -> ConfigMap {
    ConfigMap {
        metadata: ctx.object_meta(scripts_name(&ctx.name), "backup", labels::ROLE_BACKUP),
        data: Some(
            scripts::BACKUP
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        ..ConfigMap::default()
    }
}

/// The backup volume, created once by the reconciler (never applied again:
/// a claim's size and class are fixed) and never owned by the stack.
pub fn volume_claim(
    ctx: &StackRef,
    engine: &dyn Engine,
    backup: &BackupSpec,
) -> PersistentVolumeClaim {
    let volume = backup.target.as_ref().and_then(|t| t.volume.as_ref());
    let size = volume
        .and_then(|v| v.size.clone())
        .unwrap_or_else(|| DEFAULT_SIZE.to_string());
    let mut meta_labels = BTreeMap::from([
        (labels::NAME.to_string(), part(engine)),
        (
            labels::COMPONENT.to_string(),
            labels::ROLE_BACKUP.to_string(),
        ),
        (labels::PART_OF.to_string(), "appstack".to_string()),
        (
            labels::MANAGED_BY_KEY.to_string(),
            labels::MANAGED_BY.to_string(),
        ),
    ]);
    meta_labels.insert(BACKUP_OF.to_string(), ctx.name.clone());
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name(&ctx.name, engine)),
            namespace: Some(ctx.namespace.clone()),
            labels: Some(meta_labels),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: volume.and_then(|v| v.storage_class_name.clone()),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([("storage".to_string(), Quantity(size))])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        ..PersistentVolumeClaim::default()
    }
}

/// Seconds in a retention maxAge such as 48h or 30d.
fn max_age_seconds(max_age: &str) -> Option<u64> {
    let (number, unit) = max_age.split_at(max_age.len().checked_sub(1)?);
    let n: u64 = number.parse().ok()?;
    match unit {
        "h" => Some(n * 3600),
        "d" => Some(n * 86400),
        _ => None,
    }
}

/// The CronJob that backs the store up on the spec's schedule; run it now
/// with `kubectl create job --from=cronjob/<name> <job>`.
pub fn cron_job(
    ctx: &StackRef,
    stack: &AppStack,
    engine: &dyn Engine,
    backup: &BackupSpec,
    agent: Option<&str>,
) -> Result<CronJob, BuildError> {
    let tls = stack.spec.tls_enabled();
    let s3 = backup.target.as_ref().and_then(|t| t.s3.as_ref());
    let name = name(&ctx.name, engine);
    let secret = name.clone();
    let store = engine.secret_name(&ctx.name);
    let (script, _) = scripts_of(engine.kind());
    let retention = backup.retention.as_ref();
    let mut env = vec![
        wiring::plain_env(scripts::BACKUP_DIR, &format!("{MOUNT}/{}", engine.part())),
        wiring::plain_env(
            "RETAIN_COUNT",
            &retention
                .and_then(|r| r.count)
                .unwrap_or(DEFAULT_COUNT)
                .to_string(),
        ),
        wiring::plain_env(
            "RETAIN_MAX_AGE",
            &retention
                .and_then(|r| r.max_age.as_deref())
                .and_then(max_age_seconds)
                .map(|s| s.to_string())
                .unwrap_or_default(),
        ),
    ];
    // The store's own pod by its stable name, which its certificate names.
    let host = format!(
        "{store}-0.{}.{}.svc",
        super::names::headless(&store),
        ctx.namespace
    );
    match engine.kind() {
        StoreKind::Postgres => {
            env.extend([
                wiring::plain_env("PGHOST", &host),
                wiring::plain_env("PGPORT", &engine.port().to_string()),
                wiring::secret_env("PGUSER", &secret, "username"),
                wiring::secret_env("PGPASSWORD", &secret, "password"),
                wiring::plain_env("PGCONNECT_TIMEOUT", "10"),
            ]);
            if tls {
                env.extend([
                    wiring::plain_env("PGSSLMODE", "verify-full"),
                    wiring::plain_env("PGSSLROOTCERT", tls::CA_FILE),
                ]);
            }
        }
        StoreKind::Redis => {
            env.extend([
                wiring::plain_env("REDIS_HOST", &host),
                wiring::plain_env("REDIS_PORT", &engine.port().to_string()),
                wiring::secret_env("REDIS_USER", &secret, "username"),
                wiring::secret_env("REDISCLI_AUTH", &secret, "password"),
            ]);
            if tls {
                env.push(wiring::plain_env("REDIS_TLS_CA_FILE", tls::CA_FILE));
            }
        }
    }
    let mut mounts = vec![own_mount(), scripts_mount()];
    let mut volumes = vec![own_volume(ctx, engine), scripts_volume(ctx)];
    if tls {
        mounts.push(tls::mount());
        volumes.push(tls::component_volume(ctx));
    }
    // PostgreSQL's volume is also mounted by its server (archive_command):
    // a ReadWriteOnce volume needs the backup pod on the server's node.
    let affinity = (engine.kind() == StoreKind::Postgres).then(|| Affinity {
        pod_affinity: Some(PodAffinity {
            required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                label_selector: Some(LabelSelector {
                    match_labels: Some(ctx.selector(engine.part())),
                    ..LabelSelector::default()
                }),
                topology_key: "kubernetes.io/hostname".into(),
                ..PodAffinityTerm::default()
            }]),
            ..PodAffinity::default()
        }),
        ..Affinity::default()
    });
    let container = Container {
        name: "backup".into(),
        image: Some(engine.image(&stack.spec)),
        command: Some(vec![format!("{SCRIPTS}/{script}")]),
        env: Some(env),
        volume_mounts: Some(mounts),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("50m".into())),
                ("memory".to_string(), Quantity("64Mi".into())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity("512Mi".into()),
            )])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(security::container()),
        ..Container::default()
    };
    let pod_labels = labels::common(&ctx.name, &part(engine), labels::ROLE_BACKUP);
    // With S3, the backup is taken first (an init container), then the
    // agent copies the volume to the bucket and reports the backup.
    let (init, containers) = match s3 {
        None => (None, vec![container]),
        Some(s3) => {
            let agent = agent.ok_or(BuildError::NoAgentImage {
                field: "backup.target.s3",
            })?;
            let root = format!("{MOUNT}/{}", engine.part());
            let upload = agent_container(
                "upload",
                agent,
                vec![
                    "backup-sync".into(),
                    "--store".into(),
                    engine.part().into(),
                    "--root".into(),
                    root.clone(),
                    "--summary".into(),
                    format!("{root}/.summary.json"),
                ],
                s3_env(ctx, s3, &ctx.name, engine, backup_prefix_field(engine))?,
                vec![own_mount()],
            );
            (Some(vec![container]), vec![upload])
        }
    };
    Ok(CronJob {
        metadata: ctx.object_meta(name, &part(engine), labels::ROLE_BACKUP),
        spec: Some(CronJobSpec {
            schedule: backup
                .schedule
                .clone()
                .unwrap_or_else(|| DEFAULT_SCHEDULE.to_string()),
            time_zone: Some("Etc/UTC".into()),
            concurrency_policy: Some("Forbid".into()),
            starting_deadline_seconds: Some(600),
            successful_jobs_history_limit: Some(3),
            failed_jobs_history_limit: Some(3),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels.clone()),
                    ..ObjectMeta::default()
                }),
                spec: Some(JobSpec {
                    // A killed backup is taken again (a fresh label); the
                    // half-written one is never used and removed.
                    backoff_limit: Some(2),
                    active_deadline_seconds: Some(6 * 3600),
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(pod_labels),
                            ..ObjectMeta::default()
                        }),
                        spec: Some(PodSpec {
                            init_containers: init,
                            containers,
                            volumes: Some(volumes),
                            affinity,
                            restart_policy: Some("Never".into()),
                            security_context: Some(security::store_pod()),
                            enable_service_links: Some(false),
                            automount_service_account_token: Some(false),
                            ..PodSpec::default()
                        }),
                    },
                    ..JobSpec::default()
                }),
            },
            ..CronJobSpec::default()
        }),
        ..CronJob::default()
    })
}

/// The S3 target of a store's backups, when it has one.
pub fn s3_target<'a>(spec: &'a AppStackSpec, engine: &dyn Engine) -> Option<&'a S3Spec> {
    spec.backup(engine.kind())?.target.as_ref()?.s3.as_ref()
}

/// The bucket a store restores from, when its restore reads S3.
fn s3_source(spec: &AppStackSpec) -> Option<&S3Spec> {
    spec.restore.as_ref()?.s3.as_ref()
}

/// The S3 endpoints a store's pod talks to (its WAL copy, its restore).
pub fn store_endpoints<'a>(spec: &'a AppStackSpec, engine: &dyn Engine) -> Vec<&'a str> {
    let copies_wal = engine.kind() == StoreKind::Postgres;
    s3_target(spec, engine)
        .filter(|_| copies_wal)
        .into_iter()
        .chain(s3_source(spec))
        .map(|s| s.endpoint.as_str())
        .collect()
}

/// The TCP port of an S3 endpoint (http(s)://host[:port], the host a name,
/// an IPv4 address or an IPv6 address in brackets), or why it has none: an
/// endpoint stored before admission refused it must not put a port the API
/// server refuses into a NetworkPolicy.
pub fn endpoint_port(endpoint: &str) -> Result<i32, &'static str> {
    let (default, authority) = match endpoint.strip_prefix("https://") {
        Some(rest) => (443, rest),
        None => (
            80,
            endpoint
                .strip_prefix("http://")
                .ok_or("must begin with http:// or https://")?,
        ),
    };
    let port = match authority.strip_prefix('[') {
        Some(v6) => {
            let (_, after) = v6.split_once(']').ok_or("an IPv6 address needs its ']'")?;
            match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or("only :port may follow ']'")?),
            }
        }
        None => authority.split_once(':').map(|(_, port)| port),
    };
    let Some(port) = port else {
        return Ok(default);
    };
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the port must be a number from 1 to 65535");
    }
    match port.parse::<i32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n),
        _ => Err("the port must be a number from 1 to 65535"),
    }
}

/// Where a store's backups are in the bucket: always under the stack's
/// namespace, so that keys shared by several namespaces do not let a stack
/// read, overwrite or prune another namespace's backups:
/// `<namespace>/<stack>/<store>/`, or `<namespace>/<prefix>/<stack>/<store>/`
/// with a prefix (admission refuses `.` and `..` segments in it, and the
/// agent refuses them again).
pub fn s3_key_prefix(namespace: &str, prefix: Option<&str>, stack: &str, store: &str) -> String {
    match prefix {
        Some(p) => format!("{namespace}/{p}/{stack}/{store}/"),
        None => format!("{namespace}/{stack}/{store}/"),
    }
}

fn backup_prefix_field(engine: &dyn Engine) -> &'static str {
    match engine.kind() {
        StoreKind::Postgres => "spec.postgres.backup.target.s3.prefix",
        StoreKind::Redis => "spec.redis.backup.target.s3.prefix",
    }
}

fn s3_env(
    ctx: &StackRef,
    s3: &S3Spec,
    stack: &str,
    engine: &dyn Engine,
    field: &'static str,
) -> Result<Vec<EnvVar>, BuildError> {
    // Admission refuses these; a stack stored before that rule is refused here.
    if let Some(p) = &s3.prefix
        && let Some(why) = crate::backup_agent::unsafe_path(p)
    {
        return Err(BuildError::S3Prefix {
            field,
            prefix: p.clone(),
            why,
        });
    }
    let prefix = s3_key_prefix(&ctx.namespace, s3.prefix.as_deref(), stack, engine.part());
    Ok(vec![
        wiring::plain_env("S3_ENDPOINT", &s3.endpoint),
        wiring::plain_env("S3_BUCKET", &s3.bucket),
        wiring::plain_env("S3_REGION", s3.region.as_deref().unwrap_or("us-east-1")),
        wiring::plain_env("S3_PREFIX", &prefix),
        wiring::secret_env("AWS_ACCESS_KEY_ID", &s3.secret_name, "AWS_ACCESS_KEY_ID"),
        wiring::secret_env(
            "AWS_SECRET_ACCESS_KEY",
            &s3.secret_name,
            "AWS_SECRET_ACCESS_KEY",
        ),
    ])
}

/// A container of the backup agent (the operator's binary), as the store's
/// user so that what it writes the store's tools can read.
fn agent_container(
    name: &str,
    image: &str,
    args: Vec<String>,
    env: Vec<EnvVar>,
    mounts: Vec<VolumeMount>,
) -> Container {
    Container {
        name: name.into(),
        image: Some(image.into()),
        args: Some(args),
        env: Some(env),
        volume_mounts: Some(mounts),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        resources: Some(ResourceRequirements {
            requests: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("10m".into())),
                ("memory".to_string(), Quantity("32Mi".into())),
            ])),
            limits: Some(BTreeMap::from([(
                "memory".to_string(),
                Quantity("256Mi".into()),
            )])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            run_as_user: Some(security::STORE_UID),
            run_as_group: Some(security::STORE_UID),
            ..security::container()
        }),
        ..Container::default()
    }
}

fn own_volume(ctx: &StackRef, engine: &dyn Engine) -> Volume {
    Volume {
        name: VOLUME.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: name(&ctx.name, engine),
            read_only: None,
        }),
        ..Volume::default()
    }
}

fn own_mount() -> VolumeMount {
    VolumeMount {
        name: VOLUME.into(),
        mount_path: MOUNT.into(),
        ..VolumeMount::default()
    }
}

fn scripts_volume(ctx: &StackRef) -> Volume {
    Volume {
        name: SCRIPTS_VOLUME.into(),
        config_map: Some(ConfigMapVolumeSource {
            name: scripts_name(&ctx.name),
            default_mode: Some(0o555),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }
}

fn scripts_mount() -> VolumeMount {
    VolumeMount {
        name: SCRIPTS_VOLUME.into(),
        mount_path: SCRIPTS.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}

/// Where a restoring store reads from: the backup volume of
/// `spec.restore.from`. When that is the stack itself (restored after its
/// deletion) it is the volume the store also backs up into.
fn restore_source(stack: &AppStack, engine: &dyn Engine) -> Option<String> {
    let restore = stack.spec.restore.as_ref()?;
    let chosen = restore
        .stores
        .as_ref()
        .is_none_or(|s| s.contains(&engine.kind()));
    chosen.then(|| name(&restore.from, engine))
}

/// What a store pod gains from backups and restores: volumes, mounts of
/// the store container, and the restore init container. `restoring` is
/// false once status says the store was restored: the source's volume is
/// then no longer needed (nor held).
pub struct StorePod {
    pub volumes: Vec<Volume>,
    pub mounts: Vec<VolumeMount>,
    pub init: Vec<Container>,
    /// The agent copying PostgreSQL's archived WAL to S3.
    pub sidecars: Vec<Container>,
    /// PostgreSQL settings (`-c` options) for WAL archiving.
    pub settings: Vec<String>,
    /// The store container's environment for the scripts its server runs
    /// (archive_command, restore_command).
    pub env: Vec<EnvVar>,
}

pub fn store_pod(
    ctx: &StackRef,
    stack: &AppStack,
    engine: &dyn Engine,
    restoring: bool,
    agent: Option<&str>,
    store_env: &[EnvVar],
    data_mount: VolumeMount,
) -> Result<StorePod, BuildError> {
    let mut out = StorePod {
        volumes: Vec::new(),
        mounts: Vec::new(),
        init: Vec::new(),
        sidecars: Vec::new(),
        settings: Vec::new(),
        env: Vec::new(),
    };
    let backs_up = stack.spec.backup(engine.kind()).is_some();
    let source = restore_source(stack, engine).filter(|_| restoring);
    if !backs_up && source.is_none() {
        return Ok(out);
    }
    out.volumes.push(scripts_volume(ctx));
    out.mounts.push(scripts_mount());
    // Only PostgreSQL's server writes into the backup volume itself.
    if backs_up && engine.kind() == StoreKind::Postgres {
        out.volumes.push(own_volume(ctx, engine));
        out.mounts.push(own_mount());
        out.settings = vec![
            "archive_mode=on".into(),
            format!("archive_command={SCRIPTS}/pg-archive-wal %p %f"),
            format!("archive_timeout={ARCHIVE_TIMEOUT}"),
        ];
        out.env.push(wiring::plain_env(
            scripts::BACKUP_DIR,
            &format!("{MOUNT}/{}", engine.part()),
        ));
        if let Some(s3) = s3_target(&stack.spec, engine) {
            let agent = agent.ok_or(BuildError::NoAgentImage {
                field: "spec.postgres.backup.target.s3",
            })?;
            out.sidecars.push(agent_container(
                "wal-to-s3",
                agent,
                [
                    "backup-sync",
                    "--store",
                    "postgres",
                    "--root",
                    &format!("{MOUNT}/postgres"),
                    "--only",
                    "wal/",
                    "--every",
                    "5",
                ]
                .map(String::from)
                .to_vec(),
                s3_env(
                    ctx,
                    s3,
                    &ctx.name,
                    engine,
                    "spec.postgres.backup.target.s3.prefix",
                )?,
                vec![own_mount()],
            ));
        }
    }
    if let Some(source) = source {
        let from_s3 = s3_source(&stack.spec);
        let own = from_s3.is_none()
            && backs_up
            && engine.kind() == StoreKind::Postgres
            && source == name(&ctx.name, engine);
        let volume_name = if own { VOLUME } else { RESTORE_VOLUME };
        if let Some(s3) = from_s3 {
            // Fetched for the restore into a volume of the pod's own.
            let agent = agent.ok_or(BuildError::NoAgentImage {
                field: "spec.restore.s3",
            })?;
            out.volumes.push(Volume {
                name: RESTORE_VOLUME.into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            });
            let data = match engine.kind() {
                StoreKind::Postgres => store_env
                    .iter()
                    .find(|e| e.name == "PGDATA")
                    .and_then(|e| e.value.clone())
                    .unwrap_or_default(),
                StoreKind::Redis => data_mount.mount_path.clone(),
            };
            let from = stack
                .spec
                .restore
                .as_ref()
                .map(|r| r.from.as_str())
                .unwrap_or_default();
            let mut env = s3_env(ctx, s3, from, engine, "spec.restore.s3.prefix")?;
            env.push(wiring::plain_env(
                "RESTORE_TARGET",
                stack
                    .spec
                    .restore
                    .as_ref()
                    .and_then(|r| r.point_in_time.as_deref())
                    .unwrap_or(""),
            ));
            out.init.push(agent_container(
                "fetch",
                agent,
                vec![
                    "backup-fetch".into(),
                    "--store".into(),
                    engine.part().into(),
                    "--into".into(),
                    format!("{RESTORE_MOUNT}/{}", engine.part()),
                    "--data".into(),
                    data,
                ],
                env,
                vec![
                    data_mount.clone(),
                    VolumeMount {
                        name: RESTORE_VOLUME.into(),
                        mount_path: RESTORE_MOUNT.into(),
                        ..VolumeMount::default()
                    },
                ],
            ));
        } else if !own {
            out.volumes.push(Volume {
                name: RESTORE_VOLUME.into(),
                persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                    claim_name: source.clone(),
                    read_only: Some(true),
                }),
                ..Volume::default()
            });
        }
        let restore_mount = VolumeMount {
            name: volume_name.into(),
            mount_path: RESTORE_MOUNT.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        };
        let restore_dir = wiring::plain_env(
            scripts::RESTORE_DIR,
            &format!("{RESTORE_MOUNT}/{}", engine.part()),
        );
        // PostgreSQL's server reads the archived WAL while it recovers.
        if engine.kind() == StoreKind::Postgres {
            out.mounts.push(restore_mount.clone());
            out.env.push(restore_dir.clone());
        }
        let restore = stack.spec.restore.as_ref();
        let mut env = store_env.to_vec();
        env.extend([
            restore_dir,
            wiring::plain_env(scripts::DATA_DIR, &data_mount.mount_path),
            wiring::plain_env(
                "RESTORE_FROM",
                restore.map(|r| r.from.as_str()).unwrap_or(""),
            ),
            wiring::plain_env(
                "RESTORE_VOLUME",
                &from_s3.map_or(source.clone(), |s| format!("s3://{}", s.bucket)),
            ),
            wiring::plain_env(
                "RESTORE_TARGET",
                restore
                    .and_then(|r| r.point_in_time.as_deref())
                    .unwrap_or(""),
            ),
        ]);
        let (_, script) = scripts_of(engine.kind());
        out.init.push(Container {
            name: RESTORE_CONTAINER.into(),
            image: Some(engine.image(&stack.spec)),
            command: Some(vec![format!("{SCRIPTS}/{script}")]),
            env: Some(env),
            volume_mounts: Some(vec![data_mount, scripts_mount(), restore_mount]),
            termination_message_policy: Some("FallbackToLogsOnError".into()),
            security_context: Some(security::container()),
            ..Container::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_begin_with_the_namespace() {
        // The default is what it always was: existing backups stay found.
        assert_eq!(
            s3_key_prefix("team-a", None, "shop", "postgres"),
            "team-a/shop/postgres/"
        );
        // A prefix goes inside the namespace, whatever it names.
        assert_eq!(
            s3_key_prefix("team-a", Some("team-b"), "shop", "redis"),
            "team-a/team-b/shop/redis/"
        );
    }
}
