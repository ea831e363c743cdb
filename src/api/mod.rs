//! The AppStack resource: spec, status, and the CRD generated from them.

pub mod backup_summary;
mod crd;
pub mod gateway;
mod network_rules;
mod spec;
mod status;
mod stored;

pub use backup_summary::{BackupSummary, SummaryError};
pub use crd::crd_yaml;
pub use spec::{
    AppStack, AppStackSpec, Autoscaling, BackupSpec, Component, ConcurrencyPolicy, ExternalStore,
    ExtraContainer, MetricsSpec, Migrate, PathType, PodDefaults, PodVolume, PostgresSpec,
    RedisSpec, RestoreSpec, Route, S3Spec, ScheduledJob, ServiceType, StorageSpec, StoreKind,
};
pub use spec::{DataDurability, SynchronousSpec};
pub use status::{
    AppStackStatus, BackupStatus, ComponentStatus, FailoverStatus, LINK_UP, MigrationStatus,
    ReplicaStatus, ReplicationStatus, ScheduledJobStatus, StoreStatus,
};
pub use stored::StoredAppStack;
