//! What backups and restores add to a store's pod: the backup volume and
//! the log's copy to S3 for a server that archives its log, and the
//! restore init container (fed from a volume or fetched from S3).

use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, PersistentVolumeClaimVolumeSource, Volume, VolumeMount,
};

use super::s3::{agent_container, prefix_field, s3_env, s3_field, s3_source, s3_target};
use super::volumes::{
    MOUNT, RESTORE_MOUNT, RESTORE_VOLUME, SCRIPTS, VOLUME, name, own_mount, own_volume,
    scripts_mount, scripts_volume,
};
use crate::api::AppStack;
use crate::build::engine::Engine;
use crate::build::error::BuildError;
use crate::build::meta::StackRef;
use crate::build::{env, scripts, security};

/// The init container that fills an empty data volume from a backup.
pub const RESTORE_CONTAINER: &str = "restore";

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
    /// The agent copying the server's archived log to S3.
    pub sidecars: Vec<Container>,
    /// The server's options that make it archive its log.
    pub server_args: Vec<String>,
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
        server_args: Vec::new(),
        env: Vec::new(),
    };
    let backs_up = engine.backup(&stack.spec).is_some();
    let source = restore_source(stack, engine).filter(|_| restoring);
    if !backs_up && source.is_none() {
        return Ok(out);
    }
    out.volumes.push(scripts_volume(ctx));
    out.mounts.push(scripts_mount());
    // Only a server that archives its log writes into the backup volume
    // itself.
    let archiving = engine.log_archiving().filter(|_| backs_up);
    if let Some(args) = &archiving {
        out.volumes.push(own_volume(ctx, engine));
        out.mounts.push(own_mount());
        out.server_args = args.clone();
        out.env.push(env::plain_env(
            scripts::BACKUP_DIR,
            &format!("{MOUNT}/{}", engine.part()),
        ));
        if let (Some(s3), Some(log)) = (s3_target(&stack.spec, engine), engine.layout().log) {
            let agent = agent.ok_or_else(|| BuildError::NoAgentImage {
                field: s3_field(engine),
            })?;
            out.sidecars.push(agent_container(
                "wal-to-s3",
                agent,
                [
                    "backup-sync",
                    "--store",
                    engine.part(),
                    "--root",
                    &format!("{MOUNT}/{}", engine.part()),
                    "--only",
                    log,
                    "--every",
                    "5",
                ]
                .map(String::from)
                .to_vec(),
                s3_env(ctx, s3, &ctx.name, engine, &prefix_field(engine))?,
                vec![own_mount()],
            ));
        }
    }
    if let Some(source) = source {
        let from_s3 = s3_source(&stack.spec);
        let own = from_s3.is_none() && archiving.is_some() && source == name(&ctx.name, engine);
        let volume_name = if own { VOLUME } else { RESTORE_VOLUME };
        if let Some(s3) = from_s3 {
            // Fetched for the restore into a volume of the pod's own.
            let agent = agent.ok_or_else(|| BuildError::NoAgentImage {
                field: "spec.restore.s3".into(),
            })?;
            out.volumes.push(Volume {
                name: RESTORE_VOLUME.into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Volume::default()
            });
            let data = engine.data_dir().to_string();
            let from = stack
                .spec
                .restore
                .as_ref()
                .map(|r| r.from.as_str())
                .unwrap_or_default();
            let mut env = s3_env(ctx, s3, from, engine, "spec.restore.s3.prefix")?;
            env.push(env::plain_env(
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
        let restore_dir = env::plain_env(
            scripts::RESTORE_DIR,
            &format!("{RESTORE_MOUNT}/{}", engine.part()),
        );
        // A server that archives its log replays it while it recovers.
        if engine.log_archiving().is_some() {
            out.mounts.push(restore_mount.clone());
            out.env.push(restore_dir.clone());
        }
        let restore = stack.spec.restore.as_ref();
        let mut env = store_env.to_vec();
        env.extend([
            restore_dir,
            env::plain_env(scripts::DATA_DIR, &data_mount.mount_path),
            env::plain_env(
                "RESTORE_FROM",
                restore.map(|r| r.from.as_str()).unwrap_or(""),
            ),
            env::plain_env(
                "RESTORE_VOLUME",
                &from_s3.map_or(source.clone(), |s| format!("s3://{}", s.bucket)),
            ),
            env::plain_env(
                "RESTORE_TARGET",
                restore
                    .and_then(|r| r.point_in_time.as_deref())
                    .unwrap_or(""),
            ),
        ]);
        let script = engine.backup_scripts().restore;
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
