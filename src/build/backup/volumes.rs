//! Where backups live: the stack's backup volume, the restore source's,
//! the scripts' ConfigMap, and their names and mounts.

use k8s_openapi::api::core::v1::{
    ConfigMapVolumeSource, PersistentVolumeClaimVolumeSource, Volume, VolumeMount,
};

use crate::build::engine::Engine;
use crate::build::meta::StackRef;

/// The stack's backup volume, in the store pod and the backup pods.
pub const MOUNT: &str = "/var/lib/appstack/backup";
/// The restore source's backup volume, read-only, while a store restores.
pub const RESTORE_MOUNT: &str = "/var/lib/appstack/restore";
/// The scripts (the ConfigMap), executable.
pub const SCRIPTS: &str = "/etc/appstack/backup";

pub(super) const VOLUME: &str = "backup";
pub(super) const RESTORE_VOLUME: &str = "restore";
const SCRIPTS_VOLUME: &str = "backup-scripts";

/// `<stack>-<store>-backup`: the backup volume, CronJob, Secret (the
/// backup user's credentials) and the backup pods' NetworkPolicy.
pub fn name(stack: &str, engine: &dyn Engine) -> String {
    format!("{stack}-{}-backup", engine.part())
}

/// The backup pods' `app.kubernetes.io/name`.
pub fn part(engine: &dyn Engine) -> String {
    format!("{}-backup", engine.part())
}

pub fn scripts_name(stack: &str) -> String {
    format!("{stack}-backup-scripts")
}

pub(super) fn own_volume(ctx: &StackRef, engine: &dyn Engine) -> Volume {
    Volume {
        name: VOLUME.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: name(&ctx.name, engine),
            read_only: None,
        }),
        ..Volume::default()
    }
}

pub(super) fn own_mount() -> VolumeMount {
    VolumeMount {
        name: VOLUME.into(),
        mount_path: MOUNT.into(),
        ..VolumeMount::default()
    }
}

pub(super) fn scripts_volume(ctx: &StackRef) -> Volume {
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

pub(super) fn scripts_mount() -> VolumeMount {
    VolumeMount {
        name: SCRIPTS_VOLUME.into(),
        mount_path: SCRIPTS.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}
