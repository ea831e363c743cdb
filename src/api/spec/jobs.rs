//! What runs to completion rather than serving: a component's migration
//! before it rolls out, and the stack's scheduled jobs (CronJobs).

use k8s_openapi::api::core::v1::{EnvVar, ResourceRequirements};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::StoreKind;
use super::stores::resources_schema;

/// Retries of a migration's pod when none is set.
pub const MIGRATE_BACKOFF_LIMIT: i32 = 2;
/// How long a migration may run when nothing is set: 30 minutes.
pub const MIGRATE_DEADLINE_SECONDS: i64 = 1800;

/// A step run as a Job, once per change of what it runs (image, command,
/// args, env), before the component rolls to a new revision: the old
/// revision keeps serving until it succeeds. Wired like the component
/// (same stores, same connection variables, same CA, same security).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Migrate {
    /// Image of the migration. Default: the component's image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.trim() != ''").message("spec.components[].migrate.image: must not be empty when set"))]
    #[schemars(length(min = 1, max = 512))]
    pub image: Option<String>,

    /// Overrides the image's entrypoint, e.g. [/app/shop, migrate].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub command: Option<Vec<String>>,

    /// Arguments to the entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub args: Option<Vec<String>>,

    /// Variables laid over the component's own `env` (same name: this one
    /// wins); the store connection variables win over both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(max = 100))]
    pub env: Vec<EnvVar>,

    /// CPU and memory of the migration's container. Default: the component's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resources_schema")]
    pub resources: Option<ResourceRequirements>,

    /// Retries of a failed (or killed) pod before the migration counts as
    /// failed. Default 2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 10))]
    pub backoff_limit: Option<i32>,

    /// Seconds the migration may run in all before it is stopped and counts
    /// as failed. Default 1800.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub active_deadline_seconds: Option<i64>,
}

impl Migrate {
    pub fn backoff_limit(&self) -> i32 {
        self.backoff_limit.unwrap_or(MIGRATE_BACKOFF_LIMIT)
    }

    pub fn active_deadline_seconds(&self) -> i64 {
        self.active_deadline_seconds
            .unwrap_or(MIGRATE_DEADLINE_SECONDS)
    }
}

/// A job on a schedule: a CronJob `<stack>-<name>` whose pods are wired like
/// a component's (stores, connection variables, CA, wait-for-store init
/// containers, NetworkPolicy, restricted security).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ScheduledJob {
    /// Name of the job, a DNS-1123 label unique among the components and
    /// jobs (they share NetworkPolicy names <stack>-<name>). The stores'
    /// names and their backups' are reserved, as for components.
    #[x_kube(validation = Rule::new("!(self in ['redis', 'postgres', 'redis-headless', 'postgres-headless', 'redis-backup', 'postgres-backup'])").message("spec.jobs[].name: redis, postgres, redis-headless, postgres-headless, redis-backup and postgres-backup are reserved for the stores and their backups"))]
    #[x_kube(validation = Rule::new("!['-redis', '-postgres', '-redis-headless', '-postgres-headless', '-redis-backup', '-postgres-backup'].exists(s, self.endsWith(s))").message("spec.jobs[].name: must not end in -redis, -postgres, -redis-headless, -postgres-headless, -redis-backup or -postgres-backup: <stack>-<name> would be the name of another stack's store or backups"))]
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// When it runs, in cron syntax (five fields, e.g. "*/5 * * * *") or a
    /// macro such as @hourly or @daily; the time zone is `timeZone`'s.
    #[x_kube(validation = Rule::new(SCHEDULE).message("spec.jobs[].schedule: must be five cron fields (minute hour day-of-month month day-of-week, e.g. \"*/5 * * * *\") or one of @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly; set the time zone in timeZone, not in the schedule"))]
    #[schemars(length(min = 1, max = 100))]
    pub schedule: String,

    /// Container image, e.g. ghcr.io/acme/shop:1.4.
    #[x_kube(validation = Rule::new("self.trim() != ''").message("spec.jobs[].image: must not be empty"))]
    #[schemars(length(min = 1, max = 512))]
    pub image: String,

    /// Overrides the image's entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub command: Option<Vec<String>>,

    /// Arguments to the entrypoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub args: Option<Vec<String>>,

    /// Extra environment variables; the store connection variables win
    /// over variables of the same name here.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    #[schemars(length(max = 100))]
    pub env: Vec<EnvVar>,

    /// The stores the job is wired to: redis, postgres. Default: every
    /// store the stack has. An empty list wires none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 2))]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub uses: Option<Vec<StoreKind>>,

    /// CPU and memory requests and limits of the job's container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resources_schema")]
    pub resources: Option<ResourceRequirements>,

    /// What to do when a run is due while the previous one still runs:
    /// Forbid (default: skip it), Allow (run both) or Replace (stop the old).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency_policy: Option<ConcurrencyPolicy>,

    /// Finished successful runs kept (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 20))]
    pub successful_jobs_history_limit: Option<i32>,

    /// Failed runs kept, with their pods' logs (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 20))]
    pub failed_jobs_history_limit: Option<i32>,

    /// Stops scheduling new runs (runs under way go on). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspend: Option<bool>,

    /// A run that could not start within this many seconds of its time
    /// (the controller was down, say) is skipped. Default: no deadline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 86400))]
    pub starting_deadline_seconds: Option<i64>,

    /// The time zone of the schedule, an IANA name such as Europe/Paris.
    /// Default: the kube-controller-manager's (usually UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 64),
        regex(pattern = r"^[A-Za-z][A-Za-z0-9_+/-]*$")
    )]
    pub time_zone: Option<String>,
}

/// Five cron fields or a macro; no TZ= prefix (the API server refuses it).
const SCHEDULE: &str = r"self.matches('^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[0-9A-Za-z*?/,#-]+( +[0-9A-Za-z*?/,#-]+){4})$')";

/// What a CronJob does with a run due while one runs.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConcurrencyPolicy {
    Allow,
    #[default]
    Forbid,
    Replace,
}

impl ConcurrencyPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ConcurrencyPolicy::Allow => "Allow",
            ConcurrencyPolicy::Forbid => "Forbid",
            ConcurrencyPolicy::Replace => "Replace",
        }
    }
}

impl ScheduledJob {
    /// Whether `uses` names the store (no list: every store of the stack).
    pub fn wants(&self, kind: StoreKind) -> bool {
        self.uses.as_ref().is_none_or(|uses| uses.contains(&kind))
    }
}
