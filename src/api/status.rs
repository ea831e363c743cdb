//! What the operator reports on an AppStack.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Observed state of an AppStack, written by the operator.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppStackStatus {
    /// The metadata.generation this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (every component and store serves), Progressing (a rollout is
    /// under way) and Degraded (the spec or a change to it cannot be realised);
    /// Reconciling and Stalled say the same for kstatus (Flux, kpt).
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Replicas of each stateless component.
    #[serde(default)]
    pub components: Vec<ComponentStatus>,
    /// Components fully rolled out and ready, out of all, e.g. "2/2".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub components_ready: Option<String>,
    /// The Redis store, when the stack has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redis: Option<StoreStatus>,
    /// The PostgreSQL store, when the stack has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postgres: Option<StoreStatus>,
    /// The components' migrations (spec.components[].migrate).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub migrations: Vec<MigrationStatus>,
    /// The scheduled jobs (spec.jobs), with their last runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub jobs: Vec<ScheduledJobStatus>,
}

/// Where a component's migration stands.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MigrationStatus {
    /// The component it migrates.
    pub component: String,
    /// The Job that runs it (named after a hash of what it runs).
    pub job: String,
    /// Waiting (for its stores), Running, Succeeded or Failed. The
    /// component rolls to its new revision only once it Succeeded.
    pub phase: String,
}

/// A scheduled job's CronJob and its last runs.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledJobStatus {
    /// The job's name (its CronJob is <stack>-<name>).
    pub name: String,
    /// When a run was last scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_schedule_time: Option<String>,
    /// When a run last succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<String>,
}

/// Replicas of one component's Deployment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ComponentStatus {
    /// The component's name.
    pub name: String,
    /// Replicas the Deployment wants (set by the HPA when autoscaling).
    pub desired_replicas: i32,
    /// Replicas that pass their readiness probe.
    pub ready_replicas: i32,
    /// Where its route answers, from the spec: http(s)://<host><first path>.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The address its Ingress's controller reports (status.loadBalancer),
    /// once it reports one: where the route's host name should resolve.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_address: Option<String>,
}

/// One store (Redis or PostgreSQL).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StoreStatus {
    /// The store's pod is running and accepts connections.
    pub ready: bool,
    /// In-cluster address, host:port.
    pub endpoint: String,
    /// The Secret holding its credentials and connection URL.
    pub secret_name: String,
    /// The stack whose backup the store was restored from (spec.restore),
    /// once it served after the restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restored_from: Option<String>,
    /// Its backups, when spec.<store>.backup is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupStatus>,
    /// With replicas (PostgreSQL instances > 1, Redis replicas > 0): which
    /// pod is the primary, each replica's link and lag, the last failover.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<ReplicationStatus>,
}

/// A store with replicas, as the operator last saw it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationStatus {
    /// The pod the write Service selects: PostgreSQL's primary, or the Redis
    /// master a majority of Sentinels name and that answers ROLE master.
    /// None while no pod is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<String>,
    /// PostgreSQL: the primary's timeline (one more after each promotion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<i64>,
    /// PostgreSQL: the primary's WAL position when last seen (bytes from
    /// 0/0, rounded down to the MiB): a replica that received far less is
    /// not promoted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_lsn: Option<i64>,
    /// Every other pod and its replication link.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    pub replicas: Vec<ReplicaStatus>,
    /// When the operator found the primary gone, while no new one serves
    /// (milliseconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover_started: Option<i64>,
    /// When the operator fenced the old primary (deleted its pod), while no
    /// new one serves (milliseconds since the epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fenced_at: Option<i64>,
    /// The primary before, while no pod is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub former_primary: Option<String>,
    /// The last change of primary the operator made or followed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failover: Option<FailoverStatus>,
    /// Why no replica can be promoted, while none can.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<String>,
    /// PostgreSQL: the store's database system identifier, as its first
    /// primary answered: an instance with another one (a volume lost and
    /// initialised again) is never labelled, promoted or written to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    pub system_identifier: Option<String>,
}

/// One replica.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaStatus {
    pub pod: String,
    /// `up` (streaming from the primary), `syncing`, `down` (not connected
    /// to the primary) or `unknown` (the pod did not answer).
    pub link: String,
    /// PostgreSQL: bytes of WAL the primary wrote that this replica has not
    /// received, rounded down to the MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lag_bytes: Option<i64>,
}

impl ReplicaStatus {
    /// Whether the replica follows the primary now.
    pub fn is_up(&self) -> bool {
        self.link == LINK_UP
    }
}

/// `ReplicaStatus::link` of a replica that follows the primary.
pub const LINK_UP: &str = "up";

/// One change of primary.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FailoverStatus {
    /// The primary before, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    pub to: String,
    /// When the write Service was pointed at the new primary (RFC 3339).
    pub time: String,
    /// The same, in milliseconds since the epoch.
    pub at: i64,
    /// How long no pod served as the primary, from the moment the operator
    /// saw the old one go, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub without_primary_ms: Option<i64>,
}

/// What the backups of one store hold, as the newest finished backup Job
/// found them.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// The newest backup that completed and verified (its label).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful: Option<String>,
    /// When it completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_time: Option<String>,
    /// Its size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_size_bytes: Option<i64>,
    /// Backups kept on the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i32>,
    /// Bytes on the target (backups and, for PostgreSQL, archived WAL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<i64>,
    /// The earliest moment a restore can reach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_recoverable_time: Option<String>,
    /// The latest moment a restore could reach when the last backup ran
    /// (PostgreSQL: the newest archived WAL; WAL archived since adds to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_recoverable_time: Option<String>,
    /// Why the newest backup failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failure: Option<String>,
}
