//! Leader election on a coordination.k8s.io/v1 Lease, so that with several
//! replicas exactly one reconciles. Expiry is judged by when this replica last
//! saw the Lease change (as client-go does), not by comparing clocks.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};
use tokio::time::{Instant, sleep, timeout};
use tracing::{info, warn};

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    /// How long a holder that stopped renewing keeps the lease.
    pub duration: Duration,
    /// How often the holder renews and candidates retry.
    pub retry: Duration,
    /// How long one renewal may take: a request that hangs must not keep
    /// this replica reconciling after another one may have taken over.
    pub renew_deadline: Duration,
}

impl LeaseConfig {
    pub fn new(name: String, namespace: String, identity: String) -> Self {
        Self {
            name,
            namespace,
            identity,
            duration: Duration::from_secs(15),
            retry: Duration::from_secs(2),
            renew_deadline: Duration::from_secs(4),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    #[error("lost the lease {0}: another replica holds it or it could not be renewed in time")]
    Lost(String),
}

pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    observed: Option<(String, Instant)>,
}

impl Elector {
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Self {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
        }
    }

    /// Waits until this replica holds the lease.
    pub async fn acquire(&mut self) {
        let mut waiting_logged = false;
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    info!(lease = %self.config.name, identity = %self.config.identity, "became leader");
                    return;
                }
                Ok(false) if !waiting_logged => {
                    info!(lease = %self.config.name, "another replica leads; standing by");
                    waiting_logged = true;
                }
                Ok(false) => {}
                Err(error) => warn!(%error, "leader election: could not read or write the lease"),
            }
            sleep(self.config.retry).await;
        }
    }

    /// Renews the lease until renewal fails for longer than the lease lasts;
    /// returns the error then, and the caller must stop reconciling at once.
    /// Each renewal has a deadline, so a hanging request cannot keep this
    /// replica going past the moment another may take over.
    pub async fn hold(&mut self) -> LeaseError {
        let mut last_renewed = Instant::now();
        loop {
            sleep(self.config.retry).await;
            let renewal = timeout(self.config.renew_deadline, self.try_acquire_or_renew()).await;
            match renewal {
                Ok(Ok(true)) => last_renewed = Instant::now(),
                Ok(Ok(false)) => return LeaseError::Lost(self.config.name.clone()),
                Ok(Err(error)) => warn!(%error, "could not renew the lease"),
                Err(_) => warn!(
                    deadline = ?self.config.renew_deadline,
                    "renewing the lease took too long"
                ),
            }
            // Stop before another replica may take over: the next attempt
            // (a retry plus its deadline away) could come too late.
            let next_attempt = self.config.retry + self.config.renew_deadline;
            if last_renewed.elapsed() + next_attempt >= self.config.duration {
                return LeaseError::Lost(self.config.name.clone());
            }
        }
    }

    /// Gives the lease up so a standby replica takes over at once.
    pub async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(&self.config.identity) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => info!(lease = %self.config.name, "released the lease"),
            Err(error) => {
                warn!(%error, "could not release the lease; a standby takes over when it expires")
            }
        }
    }

    async fn try_acquire_or_renew(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let duration_secs = i32::try_from(self.config.duration.as_secs()).unwrap_or(15);
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(duration_secs),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
                Err(e) => Err(e),
            };
        };

        let version = lease.resource_version().unwrap_or_default();
        let changed = self.observed.as_ref().is_none_or(|(v, _)| *v != version);
        if changed {
            self.observed = Some((version, Instant::now()));
        }
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let mine = holder == self.config.identity;
        let held_for = Duration::from_secs(
            u64::try_from(spec.lease_duration_seconds.unwrap_or(duration_secs)).unwrap_or(15),
        );
        let expired = self
            .observed
            .as_ref()
            .is_some_and(|(_, seen)| seen.elapsed() > held_for);
        if !mine && !holder.is_empty() && !expired {
            return Ok(false);
        }
        if !mine {
            spec.acquire_time = Some(now.clone());
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.config.identity.clone());
        spec.lease_duration_seconds = Some(duration_secs);
        spec.renew_time = Some(now);
        // replace carries the resourceVersion we read: if another replica
        // wrote in between, this fails with 409 and nobody holds it twice.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.observed = Some((
                    updated.resource_version().unwrap_or_default(),
                    Instant::now(),
                ));
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(false),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, Response};
    use kube::client::Body;
    use serde_json::{Value, json};
    use std::sync::{Arc, Mutex};

    /// The lease as the mocked API server keeps it; `hang` makes every
    /// request after the first `answered` ones go unanswered.
    #[derive(Default)]
    struct Server {
        lease: Option<Value>,
        version: u64,
        requests: usize,
        hang_after: Option<usize>,
        conflict_on_replace: bool,
    }

    fn elector(server: Arc<Mutex<Server>>, identity: &str) -> Elector {
        let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
        tokio::spawn(async move {
            while let Some((request, send)) = handle.next_request().await {
                let method = request.method().clone();
                let bytes = request
                    .into_body()
                    .collect_bytes()
                    .await
                    .unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let (code, answer) = {
                    let mut s = server.lock().expect("lock");
                    s.requests += 1;
                    if s.hang_after.is_some_and(|n| s.requests > n) {
                        // Keep the responder alive and never answer.
                        std::mem::forget(send);
                        continue;
                    }
                    s.version += 1;
                    let version = s.version.to_string();
                    let not_found = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404, "reason": "NotFound", "message": "not found"});
                    let conflict = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 409, "reason": "Conflict", "message": "the object has been modified"});
                    match method.as_str() {
                        "GET" => match &s.lease {
                            Some(l) => (200, l.clone()),
                            None => (404, not_found),
                        },
                        "PUT" if s.conflict_on_replace => (409, conflict),
                        _ => {
                            let mut l = body;
                            l["metadata"]["resourceVersion"] = version.into();
                            s.lease = Some(l.clone());
                            (if method == "POST" { 201 } else { 200 }, l)
                        }
                    }
                };
                let response = Response::builder()
                    .status(code)
                    .body(Body::from(serde_json::to_vec(&answer).expect("json")))
                    .expect("response");
                send.send_response(response);
            }
        });
        let client = Client::new(service, "ops");
        Elector::new(
            client,
            LeaseConfig::new("appstack".into(), "ops".into(), identity.into()),
        )
    }

    fn held_by(holder: &str) -> Value {
        json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": "appstack", "namespace": "ops", "resourceVersion": "1"},
               "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15}})
    }

    fn holder(server: &Arc<Mutex<Server>>) -> Option<String> {
        let s = server.lock().expect("lock");
        s.lease
            .as_ref()
            .and_then(|l| l["spec"]["holderIdentity"].as_str().map(String::from))
    }

    #[tokio::test(start_paused = true)]
    async fn a_missing_lease_is_created_and_held() {
        let server = Arc::new(Mutex::new(Server::default()));
        let mut e = elector(server.clone(), "a");
        assert!(e.try_acquire_or_renew().await.unwrap());
        assert_eq!(holder(&server).as_deref(), Some("a"));
        assert!(
            e.try_acquire_or_renew().await.unwrap(),
            "renewing its own lease"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_another_replica_renews_is_not_taken() {
        let server = Arc::new(Mutex::new(Server {
            lease: Some(held_by("b")),
            ..Server::default()
        }));
        let mut e = elector(server.clone(), "a");
        assert!(!e.try_acquire_or_renew().await.unwrap());
        for _ in 0..10 {
            sleep(Duration::from_secs(5)).await;
            // The holder renews: the resourceVersion moves.
            {
                let mut s = server.lock().expect("lock");
                s.version += 1;
                let v = s.version.to_string();
                if let Some(l) = s.lease.as_mut() {
                    l["metadata"]["resourceVersion"] = v.into();
                }
            }
            assert!(!e.try_acquire_or_renew().await.unwrap());
        }
        assert_eq!(holder(&server).as_deref(), Some("b"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_nobody_renews_is_taken_over_after_its_duration() {
        let server = Arc::new(Mutex::new(Server {
            lease: Some(held_by("b")),
            ..Server::default()
        }));
        let mut e = elector(server.clone(), "a");
        assert!(!e.try_acquire_or_renew().await.unwrap());
        sleep(Duration::from_secs(10)).await;
        assert!(!e.try_acquire_or_renew().await.unwrap(), "not yet expired");
        sleep(Duration::from_secs(6)).await;
        assert!(e.try_acquire_or_renew().await.unwrap());
        assert_eq!(holder(&server).as_deref(), Some("a"));
        let s = server.lock().expect("lock");
        assert_eq!(s.lease.as_ref().unwrap()["spec"]["leaseTransitions"], 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_race_lost_on_the_resource_version_is_not_leadership() {
        let server = Arc::new(Mutex::new(Server {
            lease: Some(held_by("")),
            conflict_on_replace: true,
            ..Server::default()
        }));
        let mut e = elector(server, "a");
        assert!(!e.try_acquire_or_renew().await.unwrap());
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_that_hangs_gives_the_lease_up_before_it_expires() {
        let server = Arc::new(Mutex::new(Server::default()));
        let mut e = elector(server.clone(), "a");
        assert!(e.try_acquire_or_renew().await.unwrap());
        let acquired = Instant::now();
        server.lock().expect("lock").hang_after = Some(2);
        let LeaseError::Lost(_) = e.hold().await;
        // Another replica may take over once the lease's duration has passed
        // since the last renewal: this one must have stopped before.
        assert!(
            acquired.elapsed() < e.config.duration,
            "stopped after {:?}",
            acquired.elapsed()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn losing_the_lease_to_another_holder_ends_hold_at_once() {
        let server = Arc::new(Mutex::new(Server::default()));
        let mut e = elector(server.clone(), "a");
        assert!(e.try_acquire_or_renew().await.unwrap());
        server.lock().expect("lock").lease = Some(held_by("b"));
        let started = Instant::now();
        let LeaseError::Lost(_) = e.hold().await;
        assert!(started.elapsed() <= e.config.retry + Duration::from_millis(10));
    }
}
