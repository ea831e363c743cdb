//! The AppStack resource: spec, status, and the CRD generated from them.

pub mod backup_summary;
mod crd;
mod network_rules;
mod spec;
mod status;
mod stored;

pub use backup_summary::{BackupSummary, SummaryError};
pub use crd::crd_yaml;
pub use spec::{
    AppStack, AppStackSpec, Autoscaling, BackupSpec, Component, ConcurrencyPolicy, Migrate,
    PostgresSpec, RedisSpec, RestoreSpec, S3Spec, ScheduledJob, ServiceType, StorageSpec,
    StoreKind,
};
pub use status::{
    AppStackStatus, BackupStatus, ComponentStatus, MigrationStatus, ScheduledJobStatus, StoreStatus,
};
pub use stored::StoredAppStack;
