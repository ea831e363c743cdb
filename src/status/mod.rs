//! The AppStack's status, computed (purely) from the spec, what the watch
//! caches show of its children and the problem the reconcile found. The
//! controller writes it only when it differs from what is stored.
//!
//! By concern: the problem a reconcile found (`problem`), the conditions
//! it gives (`conditions`), the children's readiness (`children`), why a
//! store's pod does not serve (`pods`) and what the backup pods said
//! (`backups`). This file puts them together.

mod backups;
mod children;
mod conditions;
#[cfg(test)]
pub(crate) mod fixtures;
mod jobs;
mod pods;
mod problem;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::{Resource, ResourceExt};

use crate::api::{AppStack, AppStackStatus, BackupStatus, ComponentStatus, StoreKind, StoreStatus};
use crate::build::names;
use crate::build::stores::{self, Engine};
pub use backups::backup;
pub use children::stateful_set_ready;
use children::{component_status, deployment_complete};
pub use conditions::undecodable;
use conditions::{conditions, timed};
pub use jobs::{Stage, migration, scheduled_jobs};
pub use pods::store_trouble;
pub use problem::Problem;

pub const READY: &str = "Ready";
pub const PROGRESSING: &str = "Progressing";
pub const DEGRADED: &str = "Degraded";
/// True while the newest backup of a store failed (only with backups).
pub const BACKUP_FAILING: &str = "BackupFailing";

/// The children as the caches show them: lookups by name in the stack's
/// namespace.
pub struct Observed<D, S> {
    pub deployment: D,
    pub stateful_set: S,
    /// What the backup pods of each backed-up store say (see [`backup`]).
    pub backups: BTreeMap<StoreKind, BackupStatus>,
    /// The restored stores, and the stack each was restored from: recorded
    /// on their StatefulSets, said by an older status, or serving now under
    /// `spec.restore`.
    pub restored: BTreeMap<StoreKind, String>,
    /// Per routed component (its child name): its Ingress's load-balancer
    /// address, when reported.
    pub route_addresses: BTreeMap<String, String>,
    /// Components whose migration has not succeeded yet: not rolled out,
    /// whatever their old revision's pods say.
    pub migrating: Vec<String>,
}

pub fn compute<D, S>(
    stack: &AppStack,
    observed: &Observed<D, S>,
    problem: Option<&Problem>,
    now: &Time,
) -> AppStackStatus
where
    D: Fn(&str) -> Option<Arc<Deployment>>,
    S: Fn(&str) -> Option<Arc<StatefulSet>>,
{
    let stack_name = stack.name_any();
    let namespace = stack.namespace().unwrap_or_default();
    let spec = &stack.spec;

    // (status, whether its Deployment exists and has every replica ready and updated)
    let components: Vec<(ComponentStatus, bool)> = spec
        .components
        .iter()
        .map(|c| {
            let name = names::component(&stack_name, &c.name);
            let deployment = (observed.deployment)(&name);
            let mut status = component_status(&c.name, deployment.as_deref());
            if let Some(route) = &c.route {
                status.url = route.urls().into_iter().next();
                status.route_address = observed.route_addresses.get(&name).cloned();
            }
            // The HPA raises a new Deployment to minReplicas only after its
            // first sync; until then the stack is not what was asked for.
            if let Some(a) = &c.autoscaling {
                status.desired_replicas = status.desired_replicas.max(a.min_replicas);
            }
            let done = deployment.as_deref().is_some_and(deployment_complete)
                && status.ready_replicas >= status.desired_replicas
                && !observed.migrating.contains(&c.name);
            (status, done)
        })
        .collect();
    let components_total = components.len();
    let components_ready = components.iter().filter(|(_, done)| *done).count();

    let stores: Vec<(&'static dyn Engine, StoreStatus)> = stores::of(spec)
        .map(|e| {
            let name = e.secret_name(&stack_name);
            let sts = (observed.stateful_set)(&name);
            let ready = sts.as_deref().is_some_and(stateful_set_ready);
            // Which stores are restored is observed (see `Observed::restored`).
            let restored_from = observed.restored.get(&e.kind()).cloned();
            let status = StoreStatus {
                ready,
                endpoint: format!("{name}.{namespace}.svc:{}", e.port()),
                secret_name: name,
                backup: observed.backups.get(&e.kind()).cloned(),
                restored_from,
                replication: None,
            };
            (e, status)
        })
        .collect();

    let mut waiting: Vec<String> = components
        .iter()
        .filter(|(_, done)| !done)
        .map(|(c, _)| {
            if observed.migrating.contains(&c.name) {
                return format!("component {} (its migration)", c.name);
            }
            format!(
                "component {} ({}/{} ready)",
                c.name, c.ready_replicas, c.desired_replicas
            )
        })
        .collect();
    for (e, s) in &stores {
        if !s.ready {
            waiting.push(e.part().to_string());
        }
    }
    let all_ready = waiting.is_empty();

    let generation = stack.meta().generation;
    let mut conds = conditions(problem, all_ready, &waiting);
    if !observed.backups.is_empty() {
        let failing: Vec<String> = stores
            .iter()
            .filter_map(|(e, s)| {
                let failure = s.backup.as_ref()?.last_failure.as_ref()?;
                Some(format!("{}: {failure}", e.part()))
            })
            .collect();
        conds.push(if failing.is_empty() {
            (
                BACKUP_FAILING,
                false,
                "BackupsSucceed",
                "the newest backup of every store succeeded, or none finished yet".into(),
            )
        } else {
            (BACKUP_FAILING, true, "BackupFailed", failing.join("; "))
        });
    }
    let conditions = timed(stack.status.as_ref(), conds, generation, now);

    let mut status = AppStackStatus {
        observed_generation: generation,
        conditions,
        components: components.into_iter().map(|(c, _)| c).collect(),
        components_ready: Some(format!("{components_ready}/{components_total}")),
        ..AppStackStatus::default()
    };
    for (e, s) in stores {
        *e.status_mut(&mut status) = Some(s);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::fixtures::{backup_pod, container, pod};
    use super::*;
    use crate::redact::Known;
    use k8s_openapi::api::core::v1::Pod;

    /// The apps' password, rotated by hand to one a URL must encode.
    const PASSWORD: &str = "P@ss:w/rd#1%x";
    const ENCODED: &str = "P%40ss%3Aw%2Frd%231%25x";

    fn known() -> Known {
        Known::new([PASSWORD, "admin-password-0123456789"])
    }

    fn shop() -> AppStack {
        let spec = serde_json::from_value(serde_json::json!({
            "components": [{"name": "web", "image": "i", "port": 80}],
            "redis": {"backup": {}}
        }))
        .unwrap();
        let mut stack = AppStack::new("shop", spec);
        stack.metadata.namespace = Some("team-a".into());
        stack
    }

    fn compute_with(
        problem: Option<&Problem>,
        backups: BTreeMap<StoreKind, BackupStatus>,
    ) -> AppStackStatus {
        let observed = Observed {
            deployment: |_: &str| None,
            stateful_set: |_: &str| None,
            backups,
            restored: BTreeMap::new(),
            route_addresses: BTreeMap::new(),
            migrating: Vec::new(),
        };
        let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        compute(&shop(), &observed, problem, &now)
    }

    #[test]
    fn a_routed_component_shows_its_url_and_the_controllers_address() {
        let mut stack = shop();
        stack.spec.components[0].route = Some(
            serde_json::from_value(serde_json::json!({
                "host": "shop.example.com", "tls": {"secretName": "t"},
                "paths": [{"path": "/app"}, {"path": "/api"}]
            }))
            .unwrap(),
        );
        let observed = Observed {
            deployment: |_: &str| None,
            stateful_set: |_: &str| None,
            backups: BTreeMap::new(),
            restored: BTreeMap::new(),
            route_addresses: BTreeMap::from([("shop-web".to_string(), "203.0.113.7".to_string())]),
            migrating: Vec::new(),
        };
        let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
        let status = compute(&stack, &observed, None, &now);
        let web = &status.components[0];
        assert_eq!(web.url.as_deref(), Some("https://shop.example.com/app"));
        assert_eq!(web.route_address.as_deref(), Some("203.0.113.7"));
        // Without a route: neither.
        let plain = compute(&shop(), &observed, None, &now);
        assert_eq!(
            (
                plain.components[0].url.as_ref(),
                plain.components[0].route_address.as_ref()
            ),
            (None, None)
        );
    }

    fn assert_no_password(status: &AppStackStatus) {
        let all = serde_json::to_string(status).unwrap();
        for p in [PASSWORD, ENCODED, "admin-password-0123456789"] {
            assert!(!all.contains(p), "{p} in status: {all}");
        }
    }

    #[test]
    fn a_password_in_a_failing_stores_log_never_reaches_the_conditions() {
        // What a Redis that refuses a user line prints (its log's tail, as
        // the kubelet keeps it), and a client that quotes its URL.
        let log = format!(
            "*** FATAL CONFIG FILE ERROR (Redis 7.4.1) ***\nReading the configuration file, at line 2\n>>> 'user app on >{PASSWORD} ~* &* +@all'\nError in user declaration '>{PASSWORD}': Syntax error\nconnecting to redis://app:{ENCODED}@shop-redis:6379/0\n"
        );
        let mut c = container(
            "redis",
            serde_json::json!({"waiting": {"reason": "CrashLoopBackOff"}}),
        );
        c["lastState"] = serde_json::json!({"terminated": {"exitCode": 1, "message": log}});
        let p = pod(serde_json::json!([c]), serde_json::json!([]));
        let problem = store_trouble("redis", &p, &known())
            .expect("a failing store")
            .redacted(&known())
            .bounded();
        let status = compute_with(Some(&problem), Default::default());
        let degraded = status
            .conditions
            .iter()
            .find(|c| c.type_ == DEGRADED)
            .unwrap();
        assert_eq!(degraded.reason, "StoreFailing");
        assert!(
            degraded.message.contains(
                "Error in user declaration '>[redacted]': Syntax error | connecting to redis://app:[redacted]@shop-redis"
            ),
            "{}",
            degraded.message
        );
        assert_no_password(&status);
    }

    #[test]
    fn a_password_in_what_init_and_backup_containers_say_is_redacted() {
        let said = format!("wrote user app with password {PASSWORD}");
        let p: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "shop-redis-0"},
            "status": {"initContainerStatuses": [container(
                "users",
                serde_json::json!({"terminated": {"exitCode": 1, "message": said}})
            )]}
        }))
        .unwrap();
        let Some(Problem::StoreFailing(m)) = store_trouble("redis", &p, &known()) else {
            panic!("expected StoreFailing");
        };
        assert!(
            m.contains("cannot take the users of its Secrets: users: wrote user app with password [redacted];"),
            "{m}"
        );

        let failed = backup_pod(
            "shop-redis-backup-1",
            "Failed",
            "2026-12-02T04:00:10Z",
            1,
            &format!(
                "AUTH failed for admin-password-0123456789\nredis-cli --rdb failed: {ENCODED}"
            ),
        );
        let b = backup(&[failed], &known());
        let status = compute_with(None, [(StoreKind::Redis, b)].into());
        let failing = status
            .conditions
            .iter()
            .find(|c| c.type_ == BACKUP_FAILING)
            .unwrap();
        assert!(
            failing
                .message
                .contains("AUTH failed for [redacted] | redis-cli --rdb failed: [redacted]"),
            "{}",
            failing.message
        );
        assert_no_password(&status);
    }
}
