//! Logs (tracing, text or JSON) and Prometheus metrics.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tracing_subscriber::EnvFilter;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber; RUST_LOG filters (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub error: String,
}

/// One store of one stack, for the backup gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    pub namespace: String,
    pub stack: String,
    pub store: String,
}

/// One certificate of one stack: `ca`, or the store whose server
/// certificate it is.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CertificateLabels {
    pub namespace: String,
    pub stack: String,
    pub certificate: String,
}

/// What the alerts on stores need besides the backups: whether each store
/// serves, and when each certificate ends (a stack's series go when it is
/// deleted; one series per store or certificate, so a few per stack).
#[derive(Default)]
pub struct StoreGauges {
    pub ready: Family<StoreLabels, Gauge>,
    pub certificate_expiry: Family<CertificateLabels, Gauge>,
}

impl StoreGauges {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "store_ready",
            "1 while the store serves (status.<store>.ready)",
            self.ready.clone(),
        );
        registry.register(
            "certificate_expiry_timestamp_seconds",
            "When a stack's CA or a store's server certificate ends (notAfter)",
            self.certificate_expiry.clone(),
        );
    }

    /// Forgets every series of a stack, of the certificates named.
    pub fn forget(&self, store: &StoreLabels, certificates: &[&str]) {
        self.ready.remove(store);
        for c in certificates {
            self.certificate_expiry.remove(&CertificateLabels {
                namespace: store.namespace.clone(),
                stack: store.stack.clone(),
                certificate: (*c).to_string(),
            });
        }
    }
}

/// What status says of a store's backups, as gauges (a stack's series go
/// when it is deleted).
#[derive(Default)]
pub struct BackupGauges {
    pub last_success: Family<StoreLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub first_recoverable: Family<StoreLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub last_recoverable: Family<StoreLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    pub size: Family<StoreLabels, Gauge>,
    pub total: Family<StoreLabels, Gauge>,
    pub count: Family<StoreLabels, Gauge>,
    pub failing: Family<StoreLabels, Gauge>,
    /// The longest wait between two scheduled backups (from the spec).
    pub interval: Family<StoreLabels, Gauge>,
}

impl BackupGauges {
    /// Sets a store's gauges from its backup status (None: no backups).
    pub fn set(&self, labels: &StoreLabels, status: Option<&crate::api::BackupStatus>) {
        let Some(s) = status else {
            self.forget(labels);
            return;
        };
        let seconds = |t: &Option<String>| {
            t.as_deref()
                .and_then(|t| t.parse::<k8s_openapi::jiff::Timestamp>().ok())
                .map(|t| t.as_millisecond() as f64 / 1000.0)
        };
        if let Some(v) = seconds(&s.last_successful_time) {
            self.last_success.get_or_create(labels).set(v);
        }
        if let Some(v) = seconds(&s.first_recoverable_time) {
            self.first_recoverable.get_or_create(labels).set(v);
        }
        if let Some(v) = seconds(&s.last_recoverable_time) {
            self.last_recoverable.get_or_create(labels).set(v);
        }
        if let Some(v) = s.last_size_bytes {
            self.size.get_or_create(labels).set(v);
        }
        if let Some(v) = s.total_bytes {
            self.total.get_or_create(labels).set(v);
        }
        if let Some(v) = s.count {
            self.count.get_or_create(labels).set(i64::from(v));
        }
        self.failing
            .get_or_create(labels)
            .set(i64::from(s.last_failure.is_some()));
    }

    pub fn forget(&self, labels: &StoreLabels) {
        self.last_success.remove(labels);
        self.first_recoverable.remove(labels);
        self.last_recoverable.remove(labels);
        self.size.remove(labels);
        self.total.remove(labels);
        self.count.remove(labels);
        self.failing.remove(labels);
        self.interval.remove(labels);
    }

    /// The longest wait between two runs of the store's backup schedule
    /// (None: no backups, or a schedule without runs).
    pub fn set_interval(&self, labels: &StoreLabels, seconds: Option<i64>) {
        match seconds {
            Some(s) => {
                self.interval.get_or_create(labels).set(s);
            }
            None => {
                self.interval.remove(labels);
            }
        }
    }

    fn register(&self, registry: &mut Registry) {
        registry.register(
            "backup_last_success_timestamp_seconds",
            "When the newest successful backup of a store completed",
            self.last_success.clone(),
        );
        registry.register(
            "backup_first_recoverable_timestamp_seconds",
            "The earliest moment a restore of the store can reach",
            self.first_recoverable.clone(),
        );
        registry.register(
            "backup_last_recoverable_timestamp_seconds",
            "The latest moment a restore could reach when the last backup ran",
            self.last_recoverable.clone(),
        );
        registry.register(
            "backup_last_size_bytes",
            "Size of the newest successful backup",
            self.size.clone(),
        );
        registry.register(
            "backup_target_bytes",
            "Bytes the store's backups take on the backup volume",
            self.total.clone(),
        );
        registry.register("backups", "Backups of the store kept", self.count.clone());
        registry.register(
            "backup_failing",
            "1 while the newest backup of the store failed",
            self.failing.clone(),
        );
        registry.register(
            "backup_schedule_interval_seconds",
            "The longest wait between two runs of the store's backup schedule",
            self.interval.clone(),
        );
    }
}

/// The operator's metrics, registered once and shared by the controller.
pub struct Metrics {
    pub reconciles: Counter,
    pub failures: Family<ErrorLabels, Counter>,
    pub duration: Histogram,
    pub applies: Counter,
    pub applies_skipped: Counter,
    pub leader: Gauge,
    pub backups: BackupGauges,
    pub stores: StoreGauges,
    registry: Registry,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("appstack");
        let reconciles = Counter::default();
        let failures = Family::<ErrorLabels, Counter>::default();
        let duration = Histogram::new([
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ]);
        let applies = Counter::default();
        let applies_skipped = Counter::default();
        let leader = Gauge::default();
        registry.register("reconciles", "Reconciles run", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed, by error",
            failures.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time one reconcile took",
            duration.clone(),
        );
        registry.register(
            "applies",
            "Server-Side Apply requests sent for child objects",
            applies.clone(),
        );
        registry.register(
            "applies_skipped",
            "Child applies skipped because the object is unchanged since the operator last applied it",
            applies_skipped.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader lease (or runs without leader election)",
            leader.clone(),
        );
        let backups = BackupGauges::default();
        backups.register(&mut registry);
        let stores = StoreGauges::default();
        stores.register(&mut registry);
        Self {
            reconciles,
            failures,
            duration,
            applies,
            applies_skipped,
            leader,
            backups,
            stores,
            registry,
        }
    }
}

impl Metrics {
    pub fn observe(&self, elapsed: Duration, error: Option<&'static str>) {
        self.reconciles.inc();
        self.duration.observe(elapsed.as_secs_f64());
        if let Some(error) = error {
            self.failures
                .get_or_create(&ErrorLabels {
                    error: error.to_string(),
                })
                .inc();
        }
    }

    /// The text exposition format served on /metrics.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gauges the stores' alerts read are exported with the stack's
    /// labels, and go with the stack.
    #[test]
    fn store_gauges_are_exported_and_forgotten() {
        let m = Metrics::default();
        let store = StoreLabels {
            namespace: "team-a".into(),
            stack: "shop".into(),
            store: "postgres".into(),
        };
        m.stores.ready.get_or_create(&store).set(1);
        m.stores
            .certificate_expiry
            .get_or_create(&CertificateLabels {
                namespace: "team-a".into(),
                stack: "shop".into(),
                certificate: "postgres".into(),
            })
            .set(1_800_000_000);
        m.backups.set_interval(&store, Some(86_400));
        let text = m.encode().unwrap();
        for want in [
            r#"appstack_store_ready{namespace="team-a",stack="shop",store="postgres"} 1"#,
            r#"appstack_certificate_expiry_timestamp_seconds{namespace="team-a",stack="shop",certificate="postgres"} 1800000000"#,
            r#"appstack_backup_schedule_interval_seconds{namespace="team-a",stack="shop",store="postgres"} 86400"#,
        ] {
            assert!(text.contains(want), "{want} in\n{text}");
        }
        m.backups.forget(&store);
        m.stores.forget(&store, &["ca", "postgres"]);
        let text = m.encode().unwrap();
        assert!(!text.contains("team-a"), "{text}");
    }
}
