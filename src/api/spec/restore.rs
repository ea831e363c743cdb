//! Where a new stack's stores take their data from.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::{S3Spec, StoreKind};

/// Where a new stack's stores take their data from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestoreSpec {
    /// The stack whose backups to restore, in this namespace (it may have
    /// been deleted: its backup volumes are kept).
    #[schemars(
        length(min = 1, max = 43),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub from: String,
    /// Restore to this moment (RFC 3339, e.g. 2026-12-01T10:00:00Z):
    /// PostgreSQL replays its archived WAL up to it, Redis takes the newest
    /// snapshot made before it. Default: the latest point the backups hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 40),
        regex(
            pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
        )
    )]
    pub point_in_time: Option<String>,
    /// Which stores to restore. Default: every store of this stack (each
    /// then needs a backup of the source); one left out starts empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 2))]
    #[x_kube(validation = Rule::new("self.all(x, self.exists_one(y, y == x))").message("spec.restore.stores: each store at most once"))]
    pub stores: Option<Vec<StoreKind>>,
    /// Take the backups from this bucket (where spec.<store>.backup.target.s3
    /// of the stack `from` put them) instead of the stack's backup volumes:
    /// a restore into another cluster, or after the volumes were lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Spec>,
}
