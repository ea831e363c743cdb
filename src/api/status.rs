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
    /// under way) and Degraded (the spec or a change to it cannot be realised).
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
}

impl AppStackStatus {
    /// The status field of one store.
    pub fn store_mut(&mut self, kind: super::StoreKind) -> &mut Option<StoreStatus> {
        match kind {
            super::StoreKind::Redis => &mut self.redis,
            super::StoreKind::Postgres => &mut self.postgres,
        }
    }
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
}
