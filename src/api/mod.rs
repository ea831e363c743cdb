//! The AppStack resource: spec, status, and the CRD generated from them.

mod crd;
mod network_rules;
mod spec;
mod status;
mod stored;

pub use crd::crd_yaml;
pub use spec::{
    AppStack, AppStackSpec, Autoscaling, BackupSpec, Component, PostgresSpec, RedisSpec,
    RestoreSpec, S3Spec, ServiceType, StorageSpec, StoreKind,
};
pub use status::{AppStackStatus, BackupStatus, ComponentStatus, StoreStatus};
pub use stored::StoredAppStack;
