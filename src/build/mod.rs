//! Pure builders: an AppStack plus its inputs in, the child objects out. No
//! client, no clock, no randomness: the same inputs give the same objects, so
//! applying them again changes nothing.
//!
//! The modules depend on each other in one direction only (no cycle):
//! - at the bottom, pieces every builder uses: `names`, `labels`, `meta`,
//!   `security`, `env`, `pod`, `pod_settings` (the user's pod settings laid
//!   over any workload's pod), `credentials`, `error`, and `scripts` (the
//!   shell scripts the store images run and their `APPSTACK_*` variables);
//! - the contract of a store, `engine` (the `Engine` trait);
//! - the generic builders over any engine: `tls`, `secret`, `service`,
//!   `store` (the StatefulSet), `backup`; `inputs`;
//! - the engines, `stores/` (one file per store kind, and the registry);
//! - what iterates the stack's stores: `wiring`, `component`,
//!   `network_policy`, `admission`, `validate`;
//! - on top, `children` here.

mod admission;
mod autoscaler;
pub mod backup;
mod component;
mod credentials;
mod disruption_budget;
mod engine;
mod env;
mod error;
pub mod external;
mod inputs;
mod job_pod;
pub mod labels;
pub mod meta;
pub mod metrics;
pub mod migration;
pub mod names;
mod network_policy;
mod pod;
pub mod pod_settings;
pub mod rotation;
mod route;
mod scheduled;
mod scripts;
mod secret;
mod security;
mod service;
mod store;
pub mod stores;
pub mod tls;
mod validate;
mod wiring;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Secret, Service};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use serde_json::Value;
use std::collections::BTreeMap;

use crate::api::AppStack;
use crate::api::gateway::HttpRoute;

/// The one field manager for every Server-Side Apply the operator sends.
pub const FIELD_MANAGER: &str = "appstack-operator";

pub use credentials::{Access, StoreCredentials};
pub use error::BuildError;
pub use inputs::Inputs;
pub use store::{CREDENTIALS_CONTAINER, USERS_CONTAINER};

/// Every object an AppStack owns, by kind.
#[derive(Clone, Debug, Default)]
pub struct Children {
    pub secrets: Vec<Secret>,
    pub services: Vec<Service>,
    pub stateful_sets: Vec<StatefulSet>,
    pub deployments: Vec<Deployment>,
    pub autoscalers: Vec<HorizontalPodAutoscaler>,
    pub disruption_budgets: Vec<PodDisruptionBudget>,
    pub network_policies: Vec<NetworkPolicy>,
    pub config_maps: Vec<ConfigMap>,
    pub cron_jobs: Vec<CronJob>,
    /// The components' routes: Ingresses, and HTTPRoutes when a route names
    /// Gateways.
    pub ingresses: Vec<Ingress>,
    pub http_routes: Vec<HttpRoute>,
    /// The components' migrations: run before their Deployments are
    /// applied (the reconcile's plan orders them, see `migrations`).
    pub jobs: Vec<Job>,
    /// Per component with a migration: what orders it before the rollout.
    pub migrations: Vec<migration::Migration>,
    /// Backup volumes: created once when missing, never owned by the stack
    /// (so never applied, pruned or collected with it).
    pub backup_volumes: Vec<PersistentVolumeClaim>,
    /// For a child that is wired to others (a component's Deployment to its
    /// stores' Secret, Services and StatefulSet): their names. It must not
    /// be applied while one of them is not the stack's own.
    pub needs: BTreeMap<String, Vec<String>>,
}

impl Children {
    /// Every child as JSON, the way it is sent, in apply order.
    pub fn to_json(&self) -> Result<Vec<Value>, serde_json::Error> {
        fn all<K: serde::Serialize>(out: &mut Vec<Value>, objects: &[K]) -> serde_json::Result<()> {
            for o in objects {
                out.push(serde_json::to_value(o)?);
            }
            Ok(())
        }
        let mut out = Vec::new();
        all(&mut out, &self.secrets)?;
        all(&mut out, &self.config_maps)?;
        all(&mut out, &self.network_policies)?;
        all(&mut out, &self.services)?;
        all(&mut out, &self.stateful_sets)?;
        all(&mut out, &self.deployments)?;
        all(&mut out, &self.autoscalers)?;
        all(&mut out, &self.disruption_budgets)?;
        all(&mut out, &self.cron_jobs)?;
        all(&mut out, &self.ingresses)?;
        all(&mut out, &self.http_routes)?;
        all(&mut out, &self.jobs)?;
        all(&mut out, &self.backup_volumes)?;
        Ok(out)
    }
}

/// Builds every child of `stack`.
pub fn children(stack: &AppStack, inputs: &Inputs) -> Result<Children, BuildError> {
    let ctx = meta::StackRef::new(stack)?;
    validate::stack(stack)?;
    for engine in stores::of(&stack.spec) {
        engine.validate(&ctx, &stack.spec)?;
    }
    let mut out = Children::default();

    let tls = stack.spec.tls_enabled() && stores::of(&stack.spec).next().is_some();
    let ca = inputs.tls().ca.as_ref().filter(|_| tls);
    if let Some(ca) = ca {
        out.secrets.push(tls::ca_key_secret(&ctx, ca));
        out.secrets.push(tls::ca_secret(&ctx, ca));
    }
    for engine in stores::of(&stack.spec) {
        if tls {
            let missing = BuildError::MissingCertificates {
                store: engine.part(),
            };
            let server = inputs
                .tls()
                .servers
                .get(&engine.kind())
                .ok_or(missing.clone())?;
            out.secrets
                .push(tls::server_secret(&ctx, engine, server, ca.ok_or(missing)?));
        }
        let missing = BuildError::MissingCredentials {
            store: engine.part(),
        };
        let creds = inputs.get(engine.kind()).ok_or(missing.clone())?;
        let admin = inputs.admin(engine.kind()).ok_or(missing)?;
        out.secrets
            .push(secret::store(&ctx, &stack.spec, engine, creds));
        out.secrets.push(secret::admin(&ctx, engine, admin));
        if engine.keeps_passwords() {
            let hashes = rotation::accepted(
                &rotation::digest(&creds.password),
                inputs.accepted(engine.kind()),
                inputs.rolled(engine.kind()),
            );
            out.secrets.push(rotation::secret(&ctx, engine, &hashes));
        }
        if engine.alternates_logins() {
            let logins = rotation::logins(
                &creds.username,
                &creds.password,
                inputs.logins(engine.kind()),
                inputs.rolled(engine.kind()),
            );
            out.secrets
                .push(rotation::logins_secret(&ctx, engine, &logins));
        }
        let backup_creds = match engine.backup(&stack.spec) {
            Some(spec) => {
                let creds = inputs
                    .backup(engine.kind())
                    .ok_or(BuildError::MissingCredentials {
                        store: engine.part(),
                    })?;
                out.secrets.push(secret::backup(&ctx, engine, creds));
                out.cron_jobs.push(backup::cron_job(
                    &ctx,
                    stack,
                    engine,
                    spec,
                    inputs.agent_image(),
                )?);
                out.backup_volumes
                    .push(backup::volume_claim(&ctx, engine, spec));
                Some(creds)
            }
            None => None,
        };
        let monitor_creds = if metrics::enabled(stack, engine) {
            let creds = inputs
                .monitor(engine.kind())
                .ok_or(BuildError::MissingCredentials {
                    store: engine.part(),
                })?;
            out.secrets.push(secret::monitor(&ctx, engine, creds));
            Some(creds)
        } else {
            None
        };
        if engine.replication_user(&stack.spec) {
            let creds =
                inputs
                    .replication(engine.kind())
                    .ok_or(BuildError::MissingCredentials {
                        store: engine.part(),
                    })?;
            out.secrets.push(secret::replication(&ctx, engine, creds));
        }
        out.services
            .extend(service::store(&ctx, &stack.spec, engine));
        out.services
            .extend(engine.extra_services(&ctx, &stack.spec));
        out.disruption_budgets
            .extend(disruption_budget::store(&ctx, &stack.spec, engine));
        out.stateful_sets.push(store::stateful_set(
            &ctx,
            stack,
            engine,
            store::Credentials {
                app: creds,
                admin,
                backup: backup_creds,
                monitor: monitor_creds,
            },
            !inputs.restored(engine.kind()),
            inputs.agent_image(),
        )?);
    }
    // External stores: the operator's own Secret, drawn from the user's.
    for engine in stores::external(&stack.spec) {
        let user = inputs
            .external(engine.kind())
            .ok_or(BuildError::MissingCredentials {
                store: engine.part(),
            })?;
        let entries = engine.external_connection(user)?;
        out.secrets.push(secret::external(&ctx, engine, entries));
    }
    // The scripts, when a store backs up or restores.
    let backs_up = stores::of(&stack.spec).any(|e| e.backup(&stack.spec).is_some());
    let restores = stack.spec.restore.is_some() && stores::of(&stack.spec).next().is_some();
    if backs_up || restores {
        out.config_maps
            .push(backup::scripts(&ctx, &stores::ENGINES));
    }
    let wired_to = |c: &crate::api::Component| {
        let mut wired: Vec<String> = stores::used_by(&stack.spec, c)
            .flat_map(|e| {
                let name = e.secret_name(&ctx.name);
                // An external store: only its Secret is ours.
                let headless = e.in_cluster(&stack.spec).then(|| names::headless(&name));
                headless.into_iter().chain([name])
            })
            .collect();
        if ca.is_some() && wiring::uses_stack_ca(stack, c) {
            wired.push(tls::ca_secret_name(&ctx.name));
        }
        wired
    };
    for c in &stack.spec.components {
        let wired = wired_to(c);
        if !wired.is_empty() {
            out.needs
                .insert(names::component(&ctx.name, &c.name), wired.clone());
        }
        let mut deployment = component::deployment(&ctx, stack, c, inputs);
        if let Some(m) = migration::of(&ctx, stack, c) {
            migration::record(&mut deployment, &m.hash);
            if !wired.is_empty() {
                out.needs.insert(m.job.clone(), wired);
            }
            out.migrations.push(m);
        }
        out.jobs.extend(migration::job(&ctx, stack, c, inputs));
        out.deployments.push(deployment);
        out.services.extend(service::component(&ctx, c));
        if let Some(hpa) = autoscaler::build(&ctx, c) {
            out.autoscalers.push(hpa);
        }
        if let Some(pdb) = disruption_budget::build(&ctx, c) {
            out.disruption_budgets.push(pdb);
        }
        out.ingresses.extend(route::ingress(&ctx, c));
        out.http_routes.extend(route::http_route(&ctx, c));
    }
    for (index, j) in stack.spec.jobs.iter().enumerate() {
        let wired = wired_to(&scheduled::as_component(index, j)?);
        if !wired.is_empty() {
            out.needs
                .insert(names::component(&ctx.name, &j.name), wired);
        }
        out.cron_jobs
            .push(scheduled::cron_job(&ctx, stack, index, j, inputs)?);
    }
    out.network_policies = network_policy::build(
        &ctx,
        &stack.spec,
        inputs.route_controllers(),
        inputs.operator_peer(),
    );
    metrics::admit_scrapers(
        &mut out.network_policies,
        &ctx,
        stack,
        inputs.metrics_scrapers(),
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{AppStackSpec, StoreKind};

    fn stack(yaml: &str) -> AppStack {
        let spec: AppStackSpec = serde_yaml::from_str(yaml).unwrap();
        let mut s = AppStack::new("shop", spec);
        s.metadata.namespace = Some("ns".into());
        s.metadata.uid = Some("uid-1".into());
        s
    }

    fn creds(pw: &str) -> StoreCredentials {
        StoreCredentials {
            username: "u".into(),
            password: pw.into(),
        }
    }

    const BOTH: &str = "
components:
- {name: web, image: i, port: 80, autoscaling: {minReplicas: 2, maxReplicas: 4}}
- {name: job, image: i, port: 81, replicas: 3, uses: [redis]}
redis: {}
postgres: {}
";

    fn inputs(redis: &str, pg: &str) -> Inputs {
        let mut inputs = Inputs::default();
        inputs.set(StoreKind::Redis, creds(redis));
        inputs.set(StoreKind::Postgres, creds(pg));
        inputs.set_admin(StoreKind::Redis, creds("redis-admin"));
        inputs.set_admin(StoreKind::Postgres, creds("postgres-admin"));
        tls_placeholders(&mut inputs);
        inputs
    }

    /// The CA and certificates, and the monitoring users (every test
    /// stack's stores run an exporter).
    fn tls_placeholders(inputs: &mut Inputs) {
        inputs.set_ca(tls::CertifiedKey::placeholder());
        for e in stores::ENGINES {
            inputs.set_monitor(e.kind(), creds("monitor"));
            inputs.set_server_certificate(e.kind(), tls::CertifiedKey::placeholder());
        }
    }

    fn hash(children: &Children, name: &str) -> String {
        let d = children
            .deployments
            .iter()
            .find(|d| d.metadata.name.as_deref() == Some(name))
            .unwrap();
        let meta = d.spec.as_ref().unwrap().template.metadata.as_ref().unwrap();
        meta.annotations.as_ref().unwrap()[wiring::CREDENTIALS_HASH].clone()
    }

    #[test]
    fn replicas_are_left_to_the_autoscaler() {
        let c = children(&stack(BOTH), &inputs("a", "b")).unwrap();
        let replicas: Vec<Option<i32>> = c
            .deployments
            .iter()
            .map(|d| d.spec.as_ref().unwrap().replicas)
            .collect();
        assert_eq!(replicas, vec![None, Some(3)]);
        assert_eq!(c.autoscalers.len(), 1);
    }

    #[test]
    fn a_password_change_rolls_exactly_the_pods_that_use_it() {
        let s = stack(BOTH);
        let before = children(&s, &inputs("a", "b")).unwrap();
        let pg_changed = children(&s, &inputs("a", "c")).unwrap();
        assert_ne!(hash(&before, "shop-web"), hash(&pg_changed, "shop-web"));
        // `job` uses only Redis: a PostgreSQL password change leaves it alone.
        assert_eq!(hash(&before, "shop-job"), hash(&pg_changed, "shop-job"));
        let redis_changed = children(&s, &inputs("z", "b")).unwrap();
        assert_ne!(hash(&before, "shop-job"), hash(&redis_changed, "shop-job"));
    }

    #[test]
    fn building_twice_gives_identical_objects() {
        let s = stack(BOTH);
        let a = children(&s, &inputs("a", "b")).unwrap();
        let b = children(&s, &inputs("a", "b")).unwrap();
        assert_eq!(format!("{a:?}"), format!("{b:?}"));
    }

    #[test]
    fn uses_defaults_to_every_store_of_the_stack() {
        let s = stack(BOTH);
        let web = &s.spec.components[0];
        let job = &s.spec.components[1];
        let uses = |c, kind| stores::by_kind(kind).unwrap().used_by(&s.spec, c);
        assert!(uses(web, StoreKind::Redis) && uses(web, StoreKind::Postgres));
        assert!(uses(job, StoreKind::Redis) && !uses(job, StoreKind::Postgres));
    }

    #[test]
    fn invalid_specs_name_the_field() {
        let cases = [
            (
                "components: [{name: a, image: i, port: 1}, {name: a, image: i, port: 2}]",
                "spec.components[1].name",
            ),
            (
                "components: [{name: a, image: i, port: 0}]",
                "spec.components[0].port",
            ),
            (
                "components: [{name: a, image: i, port: 1, autoscaling: {minReplicas: 3, maxReplicas: 2}}]",
                "spec.components[0].autoscaling",
            ),
            (
                "components: [{name: a, image: i, port: 1, uses: [postgres]}]\nredis: {}",
                "spec.components[0].uses",
            ),
            (
                "components: [{name: a, image: i, port: 1}]\npostgres: {database: Bad-Name}",
                "spec.postgres.database",
            ),
            ("components: []", "spec.components"),
            (
                "components: [{name: redis, image: i, port: 1}]\nredis: {}",
                "spec.components[0].name",
            ),
            (
                "components: [{name: a, image: i, port: 1, env: [{name: X, value: '1'}, {name: X}]}]",
                "spec.components[0].env",
            ),
            // Stored before admission refused them.
            (
                "components: [{name: a, image: i, port: 1, securityContext: {capabilities: {add: [NET_RAW]}}}]",
                "spec.components[0].securityContext.capabilities.add",
            ),
            (
                "components: [{name: a, image: i, port: 1}]\npostgres: {backup: {target: {s3: {bucket: b, endpoint: 'http://m:99999', secretName: k}}}}",
                "spec.postgres.backup.target.s3.endpoint",
            ),
            (
                "components: [{name: a, image: i, port: 1}]\njobs: [{name: a, schedule: '* * * * *', image: i}]",
                "spec.jobs[0].name",
            ),
            (
                "components: [{name: a, image: i, port: 1}]\njobs: [{name: postgres-backup, schedule: '@daily', image: i}]",
                "spec.jobs[0].name",
            ),
            (
                "components: [{name: a, image: i, port: 1}]\njobs: [{name: b, schedule: '@daily', image: i}, {name: b, schedule: '@daily', image: i}]",
                "spec.jobs[1].name",
            ),
            (
                "components: [{name: a, image: i, port: 1}]\njobs: [{name: b, schedule: ' ', image: i}]",
                "spec.jobs[0].schedule",
            ),
            (
                "components: [{name: a, image: i, port: 1}]\njobs: [{name: b, schedule: '@daily', image: i, uses: [redis]}]",
                "spec.jobs[0].uses",
            ),
            (
                "components: [{name: a, image: i, port: 1, migrate: {}}, {name: a-migrate, image: i, port: 2}]",
                "spec.components[0].migrate",
            ),
        ];
        for (yaml, field) in cases {
            let s = stack(yaml);
            let mut inputs = Inputs::default();
            for e in stores::of(&s.spec) {
                inputs.set(e.kind(), creds("a"));
                inputs.set_admin(e.kind(), creds("admin"));
            }
            tls_placeholders(&mut inputs);
            let err = children(&s, &inputs).unwrap_err().to_string();
            assert!(err.starts_with(field), "{yaml}: {err}");
        }
    }

    #[test]
    fn retention_follows_retain_data_on_delete() {
        let policy = |yaml: &str| {
            let c = children(&stack(yaml), &inputs("a", "b")).unwrap();
            let sts = c.stateful_sets[0].spec.clone().unwrap();
            sts.persistent_volume_claim_retention_policy
                .unwrap()
                .when_deleted
                .unwrap()
        };
        assert_eq!(policy(BOTH), "Retain");
        assert_eq!(
            policy(&format!("{BOTH}retainDataOnDelete: false")),
            "Delete"
        );
    }

    #[test]
    fn a_restore_touches_only_the_stores_it_names() {
        let init = |yaml: &str, store: &str| {
            let mut inputs = inputs("a", "b");
            inputs.set_backup(StoreKind::Postgres, creds("backup"));
            let c = children(&stack(yaml), &inputs).unwrap();
            let sts = c
                .stateful_sets
                .iter()
                .find(|s| s.metadata.name.as_deref() == Some(store))
                .unwrap()
                .clone();
            let pod = sts.spec.unwrap().template.spec.unwrap();
            pod.init_containers
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.name)
                .collect::<Vec<_>>()
        };
        // Redis always writes its users first.
        let all = format!("{BOTH}restore: {{from: old}}");
        assert_eq!(init(&all, "shop-redis"), vec!["users", "restore"]);
        assert_eq!(init(&all, "shop-postgres"), vec!["restore"]);
        let only_pg = format!("{BOTH}restore: {{from: old, stores: [postgres]}}");
        assert_eq!(init(&only_pg, "shop-redis"), vec!["users"]);
        assert_eq!(init(&only_pg, "shop-postgres"), vec!["restore"]);
        assert!(init(BOTH, "shop-postgres").is_empty());
    }
}
