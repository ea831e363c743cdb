//! A store's metrics: the exporter sidecar its pod runs.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// The store's Prometheus exporter: a sidecar in the store's pod
/// (postgres_exporter, redis_exporter) that logs in as a monitoring user of
/// its own and serves `/metrics` on its port, which the stack's
/// NetworkPolicy admits only from the scrapers the operator is told of
/// (the chart's `metrics.scrapeFrom`). On unless `enabled: false`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MetricsSpec {
    /// Run the exporter. Default true.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// The exporter's image. Default: the upstream exporter of the version
    /// Debian trixie ships (quay.io/prometheuscommunity/postgres-exporter,
    /// oliver006/redis_exporter); its entrypoint must be the exporter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 512))]
    #[x_kube(validation = Rule::new("self.trim() != ''").message("metrics.image: must not be empty"))]
    pub image: Option<String>,
}

impl MetricsSpec {
    pub fn enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }
}
