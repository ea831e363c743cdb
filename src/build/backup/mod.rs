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

mod s3;
mod store_pod;
mod volumes;

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Affinity, ConfigMap, Container, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodAffinity,
    PodAffinityTerm, PodSpec, PodTemplateSpec, ResourceRequirements, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::engine::Engine;
use super::error::BuildError;
use super::meta::StackRef;
use super::{env, labels, scripts, security, tls};
use crate::api::{AppStack, BackupSpec};

/// The backup user of a store, a generated Secret's username.
pub const USER: &str = "backup";

/// A base backup's (or snapshot's) default schedule: daily, at night (UTC).
pub const DEFAULT_SCHEDULE: &str = "0 3 * * *";
const DEFAULT_COUNT: i32 = 7;
const DEFAULT_SIZE: &str = "10Gi";

pub use super::labels::BACKUP_OF;
use s3::{agent_container, prefix_field, s3_env};
pub use s3::{endpoint_port, s3_key_prefix, s3_target, store_endpoints};
pub use store_pod::{RESTORE_CONTAINER, StorePod, store_pod};
pub use volumes::{MOUNT, RESTORE_MOUNT, SCRIPTS, name, part, scripts_name};
use volumes::{own_mount, own_volume, scripts_mount, scripts_volume};

/// The scripts of every engine (not only the stack's: a store added later
/// finds its scripts without a change to the ConfigMap), and the library
/// they all source from beside themselves, as `lib`.
pub fn scripts(ctx: &StackRef, engines: &[&dyn Engine]) -> ConfigMap {
    ConfigMap {
        metadata: ctx.object_meta(scripts_name(&ctx.name), "backup", labels::ROLE_BACKUP),
        data: Some(
            std::iter::once(&scripts::BACKUP_LIB)
                .chain(engines.iter().flat_map(|e| e.backup_scripts().files))
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
    let script = engine.backup_scripts().backup;
    let retention = backup.retention.as_ref();
    let mut env = vec![
        env::plain_env(scripts::BACKUP_DIR, &format!("{MOUNT}/{}", engine.part())),
        env::plain_env(
            "RETAIN_COUNT",
            &retention
                .and_then(|r| r.count)
                .unwrap_or(DEFAULT_COUNT)
                .to_string(),
        ),
        env::plain_env(
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
    env.extend(engine.backup_env(&host, &secret, tls));
    let mut mounts = vec![own_mount(), scripts_mount()];
    let mut volumes = vec![own_volume(ctx, engine), scripts_volume(ctx)];
    if tls {
        mounts.push(tls::mount());
        volumes.push(tls::component_volume(ctx));
    }
    // A volume the server archives its log into is mounted by the server
    // too: a ReadWriteOnce volume needs the backup pod on the server's node.
    let affinity = engine.log_archiving().map(|_| Affinity {
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
                field: "backup.target.s3".into(),
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
                s3_env(ctx, s3, &ctx.name, engine, &prefix_field(engine))?,
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
