//! The ready addresses behind a Service, sampled while a fault runs: what a
//! client of the Service could have reached at each moment (a failover
//! scenario requires never more than one behind a write Service).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, ListParams};
use tokio::task::JoinHandle;

/// A running sampler of one Service's EndpointSlices.
pub struct ReadySampler {
    stop: Arc<AtomicBool>,
    most: Arc<AtomicUsize>,
    task: JoinHandle<u32>,
}

/// What a sampler saw.
#[derive(Debug, Clone, Copy)]
pub struct Sampled {
    pub samples: u32,
    /// The most ready addresses in any one sample.
    pub most: usize,
}

impl ReadySampler {
    /// Lists `service`'s EndpointSlices every `every` until [`Self::finish`].
    pub fn start(client: &Client, namespace: &str, service: &str, every: Duration) -> Self {
        let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), namespace);
        let params = ListParams::default().labels(&format!("kubernetes.io/service-name={service}"));
        let stop = Arc::new(AtomicBool::new(false));
        let most = Arc::new(AtomicUsize::new(0));
        let task = {
            let (stop, most) = (stop.clone(), most.clone());
            tokio::spawn(async move {
                let mut samples = 0u32;
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(list) = slices.list(&params).await {
                        let ready: BTreeSet<String> = list
                            .items
                            .iter()
                            .flat_map(|s| s.endpoints.iter())
                            .filter(|e| e.conditions.as_ref().and_then(|c| c.ready) == Some(true))
                            .flat_map(|e| e.addresses.iter().cloned())
                            .collect();
                        most.fetch_max(ready.len(), Ordering::Relaxed);
                        samples += 1;
                    }
                    tokio::time::sleep(every).await;
                }
                samples
            })
        };
        Self { stop, most, task }
    }

    /// Stops sampling and says what was seen.
    pub async fn finish(self) -> Result<Sampled> {
        self.stop.store(true, Ordering::Relaxed);
        let samples = self.task.await.context("the endpoint sampler")?;
        Ok(Sampled {
            samples,
            most: self.most.load(Ordering::Relaxed),
        })
    }
}
