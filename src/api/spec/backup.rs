//! Scheduled backups of a store and where they go.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

use super::StorageSpec;

/// Scheduled backups of a store, to a volume of the stack's own.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// When to take a backup (PostgreSQL: a base backup; Redis: an RDB
    /// snapshot), in cron syntax, UTC. Default "0 3 * * *". PostgreSQL also
    /// archives its WAL continuously, so any moment since the oldest kept
    /// base backup can be restored. Run one now with
    /// `kubectl create job --from=cronjob/<stack>-<store>-backup <name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 7, max = 64))]
    #[x_kube(validation = Rule::new("self.split(' ').filter(f, f != '').size() == 5 || self in ['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly']").message("backup.schedule: must be a cron schedule of five fields such as '0 3 * * *', or a macro such as @hourly"))]
    pub schedule: Option<String>,
    /// Which backups to keep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionSpec>,
    /// Where backups go. Default: a 10Gi volume of the default StorageClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<BackupTargetSpec>,
}

/// Backups to keep: the newest `count`, less those older than `maxAge`,
/// but never the newest one.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// How many backups to keep. Default 7.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub count: Option<i32>,
    /// How old a kept backup may be, in hours or days, e.g. 48h or 30d.
    /// Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8), regex(pattern = r"^[1-9][0-9]{0,4}[hd]$"))]
    pub max_age: Option<String>,
}

/// Where backups are written.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupTargetSpec {
    /// A PersistentVolumeClaim `<stack>-<store>-backup`, never the data
    /// volume, kept when the stack is deleted. It guards against deletion
    /// and bad writes, not against losing the node it lives on. Fixed once
    /// made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<StorageSpec>,
    /// S3-compatible object storage as well: every backup (and, for
    /// PostgreSQL, every archived WAL file, within seconds) is copied to
    /// `<prefix>/<stack>/<store>/` in the bucket, with the volume's
    /// retention, so the backups survive the loss of the node or cluster.
    /// The volume stays the first copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Spec>,
}

/// A bucket of an S3-compatible object store, and the Secret holding its keys.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct S3Spec {
    /// The bucket (it must exist).
    #[schemars(
        length(min = 3, max = 63),
        regex(pattern = r"^[a-z0-9][a-z0-9.-]*[a-z0-9]$")
    )]
    pub bucket: String,
    /// The server, e.g. https://s3.eu-west-1.amazonaws.com or
    /// http://minio.storage.svc:9000 (path-style requests).
    /// The port, when given, is a number from 1 to 65535 (the store's
    /// NetworkPolicy opens it).
    #[schemars(length(max = 253), regex(pattern = r"^https?://[^/?#@ ]+$"))]
    #[x_kube(validation = Rule::new("!self.matches(':[0-9]*$') || (self.matches(':[0-9]{1,5}$') && int(self.substring(self.lastIndexOf(':') + 1)) >= 1 && int(self.substring(self.lastIndexOf(':') + 1)) <= 65535)").message("s3.endpoint: the port must be a number from 1 to 65535"))]
    #[x_kube(validation = Rule::new(r"self.matches('^https?://([^]/?#@ :[]+|[[][0-9A-Fa-f:.]+[]])(:[0-9]*)?$')").message("s3.endpoint: must be http(s)://host[:port], the host a name, an IPv4 address or an IPv6 address in brackets"))]
    pub endpoint: String,
    /// Default us-east-1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), regex(pattern = r"^[a-z0-9-]+$"))]
    pub region: Option<String>,
    /// Key prefix, inside the stack's namespace: the keys are
    /// `<namespace>/<prefix>/<stack>/<store>/...` (without a prefix,
    /// `<namespace>/<stack>/<store>/...`), so keys shared by several
    /// namespaces never make one namespace the reader of another's backups.
    /// Segments of letters, digits and `!_.*'()-` separated by '/'; no `.` or
    /// `..` segment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 200),
        regex(pattern = r"^[A-Za-z0-9!_.*'()-]+(/[A-Za-z0-9!_.*'()-]+)*$")
    )]
    #[x_kube(validation = Rule::new("!self.split('/').exists(s, s == '.' || s == '..')").message("s3.prefix: no '.' or '..' segment: the prefix always stays inside the stack's namespace"))]
    pub prefix: Option<String>,
    /// A Secret in the stack's namespace with AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY, and optionally AWS_SESSION_TOKEN (temporary
    /// credentials) and ca.crt (PEM certificates trusted for the endpoint).
    /// Give each namespace keys that reach only `<namespace>/` in the
    /// bucket: whoever holds them can read the backups.
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: String,
}
