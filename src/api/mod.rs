//! The AppStack resource: spec, status, and the CRD generated from them.

mod crd;
mod spec;
mod status;
mod stored;

pub use crd::crd_yaml;
pub use spec::{
    AppStack, AppStackSpec, Autoscaling, Component, PostgresSpec, RedisSpec, ServiceType,
    StorageSpec, StoreKind,
};
pub use status::{AppStackStatus, ComponentStatus, StoreStatus};
pub use stored::StoredAppStack;
