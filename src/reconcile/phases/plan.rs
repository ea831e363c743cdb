//! Phase two, pure: from the spec and the observed world, the children to
//! apply and the Secrets to create, or why nothing may be applied (a
//! precondition fails: a Secret's name is someone else's, or the spec
//! cannot be realised).

use k8s_openapi::api::core::v1::Secret;

use kube::ResourceExt;

use super::super::children::Finding;
use super::super::migrations::{self, Stage};
use super::super::restored;
use super::failover;
use super::observe::World;
use super::report::Done;
use crate::api::AppStack;
use crate::api::gateway::HttpRoute;
use crate::build::migration::{MIGRATED, Migration};
use crate::build::{self, Children, stores};
use crate::status::{self, Problem};

#[derive(Debug)]
pub enum Plan {
    /// Nothing is applied or pruned; the report says why.
    Stop(Done),
    Apply(Box<Desired>),
}

#[derive(Debug)]
pub struct Desired {
    /// What the child set applies (and prunes around).
    pub children: Children,
    /// Secrets whose material was made this round: created whole, once,
    /// before the rest; the child set leaves them be.
    pub create: Vec<Secret>,
    /// Children left out because the cluster does not serve their kind:
    /// reported as refused, while everything else is applied.
    pub unserved: Vec<Finding>,
    /// Children left as they are (not applied, not pruned): Deployments
    /// whose migration has not succeeded, and migration Jobs that exist.
    pub keep: Kept,
    /// Each migration and where it stands.
    pub migrations: Vec<(Migration, Stage)>,
    /// A replicated store's labels, fencing and promotion, done before
    /// the children are applied.
    pub failover: Option<failover::Decision>,
    /// With Redis replicas: the label changes that point the write
    /// Service at the master (see redis_roles).
    pub relabel: Option<super::redis_roles::Relabel>,
}

/// Names of children left as they are, by kind.
#[derive(Debug, Default)]
pub struct Kept {
    pub deployments: Vec<String>,
    pub jobs: Vec<String>,
}

pub fn plan(stack: &AppStack, world: &World, agent_image: Option<String>) -> Plan {
    // No store may start on credentials that are not its own.
    if !world.held.is_empty() {
        return Plan::Stop(Done {
            findings: world.held.clone(),
            ..Done::default()
        });
    }
    // A user's Secret that cannot serve: nothing starts on broken wiring.
    if !world.secret_problems.is_empty() {
        return Plan::Stop(Done {
            invalid: Some(Problem::UserSecret(world.secret_problems.join("; "))),
            ..Done::default()
        });
    }
    let mut inputs = world.inputs.clone();
    // A restored store's pods no longer need the restore source.
    let restored = world.seen.restored(stack);
    for kind in restored.keys() {
        inputs.set_restored(*kind);
    }
    inputs.set_agent_image(agent_image);
    // A store that keeps the apps' old passwords keeps them until every
    // pod that uses it runs on the current ones.
    // Apps that alternate login roles use the one the rotation chose.
    for engine in stores::of(&stack.spec).filter(|e| e.alternates_logins()) {
        if let Some(mut creds) = inputs.get(engine.kind()).cloned() {
            let logins = build::rotation::logins(
                &creds.username,
                &creds.password,
                inputs.logins(engine.kind()),
                false,
            );
            creds.username = logins.login;
            inputs.set(engine.kind(), creds);
        }
    }
    for engine in stores::of(&stack.spec).filter(|e| e.keeps_passwords() || e.alternates_logins()) {
        if super::rollout::rolled(&build::rotation::users(stack, engine, &inputs), &world.seen) {
            inputs.set_rolled(engine.kind());
        }
    }
    let mut children = match build::children(stack, &inputs) {
        Ok(children) => children,
        Err(error) => {
            let problem = match error {
                build::BuildError::UserSecret { .. } => Problem::UserSecret(error.to_string()),
                _ => Problem::InvalidSpec(error.to_string()),
            };
            return Plan::Stop(Done {
                invalid: Some(problem),
                ..Done::default()
            });
        }
    };
    // The Secrets whose credentials were read are applied only over the
    // version read: a password edited since is never written back over.
    for secret in &mut children.secrets {
        if let Some(version) = secret
            .metadata
            .name
            .as_ref()
            .and_then(|n| world.read_at.get(n))
        {
            secret.metadata.resource_version = version.clone();
        }
    }
    // The record goes with the apply that takes the restore container out.
    for engine in stores::of(&stack.spec) {
        let name = engine.secret_name(&stack.name_any());
        let sts = children
            .stateful_sets
            .iter_mut()
            .find(|s| s.metadata.name.as_deref() == Some(name.as_str()));
        if let (Some(sts), Some(source)) = (sts, restored.get(&engine.kind())) {
            restored::record(&mut sts.metadata, source);
        }
    }
    let (create, apply) = std::mem::take(&mut children.secrets)
        .into_iter()
        .partition(|s| {
            s.metadata
                .name
                .as_ref()
                .is_some_and(|n| world.generated.contains(n))
        });
    children.secrets = apply;
    // Without the Gateway API's CRDs an HTTPRoute cannot be applied: the
    // rest of the stack converges, and status says what to install.
    let mut unserved = Vec::new();
    for (kind, install) in &world.seen.unserved {
        if *kind == <HttpRoute as k8s_openapi::Resource>::KIND {
            for route in std::mem::take(&mut children.http_routes) {
                unserved.push(Finding::Refused {
                    kind,
                    name: route.metadata.name.unwrap_or_default(),
                    message: format!(
                        "this cluster does not serve gateway.networking.k8s.io/v1 HTTPRoute (or the operator may not list it): install {install}; or route through an Ingress (remove route.gateway)"
                    ),
                });
            }
        }
    }
    let (keep, migrations) = order_migrations(world, &mut children);
    let failover = match &world.instances {
        Some(Ok(seen)) => {
            let known = stack
                .status
                .as_ref()
                .and_then(|s| s.postgres.as_ref())
                .and_then(|p| p.replication.clone())
                .unwrap_or_default();
            let mut decision =
                failover::decide(&seen.instances, &known, world.now.0.as_millisecond());
            let wish = stack
                .spec
                .postgres
                .as_ref()
                .and_then(|p| p.synchronous.as_ref())
                .map(|s| failover::Synchronous {
                    number: s.number,
                    required: s.data_durability.unwrap_or_default()
                        == crate::api::DataDurability::Required,
                });
            failover::synchronous_actions(&seen.instances, &mut decision, wish);
            Some(decision)
        }
        _ => None,
    };
    let relabel = world.redis_roles.as_ref().map(super::redis_roles::decide);
    Plan::Apply(Box::new(Desired {
        children,
        create,
        unserved,
        keep,
        migrations,
        failover,
        relabel,
    }))
}

/// Orders each component's migration before its rollout: its Deployment is
/// applied only once the migration of what the spec asks succeeded (until
/// then the Deployment that exists stays as it is: the old revision keeps
/// serving); its Job is created once the stores it uses serve, and never
/// written again (a Job's pod template cannot change).
fn order_migrations(world: &World, children: &mut Children) -> (Kept, Vec<(Migration, Stage)>) {
    let mut keep = Kept::default();
    let mut stages = Vec::new();
    for m in std::mem::take(&mut children.migrations) {
        let seen = &world.seen;
        let recorded = seen
            .deployments
            .get(&m.deployment)
            .and_then(|d| d.annotations().get(MIGRATED).cloned());
        let job = seen.jobs.get(&m.job).map(|j| j.as_ref());
        let stores_ready = m.stores.iter().all(|name| {
            seen.stores.values().any(|s| {
                s.stateful_set.as_deref().is_some_and(|sts| {
                    sts.metadata.name.as_deref() == Some(name.as_str())
                        && status::stateful_set_ready(sts)
                })
            })
        });
        let stage = migrations::stage(&m, recorded.as_deref(), job, stores_ready);
        // A Job that exists is kept as it is; one is created only to start.
        if job.is_some() {
            keep.jobs.push(m.job.clone());
        }
        if stage != Stage::Start {
            children
                .jobs
                .retain(|j| j.metadata.name.as_deref() != Some(m.job.as_str()));
        }
        if stage != Stage::Done {
            children
                .deployments
                .retain(|d| d.metadata.name.as_deref() != Some(m.deployment.as_str()));
            if seen.deployments.contains_key(&m.deployment) {
                keep.deployments.push(m.deployment.clone());
            }
        }
        children.migrations.push(m.clone());
        stages.push((m, stage));
    }
    (keep, stages)
}
