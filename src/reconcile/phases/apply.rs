//! Phase three: the writes. Secrets made this round are created whole (one
//! request each), backup volumes made once, then the child set applies and
//! prunes. It
//! publishes nothing: what happened goes back to the report.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::api::Api;
use tracing::{info, warn};

use super::super::backups;
use super::super::children::{self, ChildSet, Finding, KINDS, Owner};
use super::super::context::Context;
use super::super::credentials::{self, Created};
use super::super::instances;
use super::observe::World;
use super::plan::Desired;
use super::report::{Done, RedisDone};
use crate::error::Result;

pub async fn apply(ctx: &Context, world: &World, desired: &Desired) -> Result<Done> {
    let owner = &world.owner;
    let mut done = Done {
        went_ahead: true,
        migrations: desired.migrations.clone(),
        ..Done::default()
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &owner.namespace);
    for secret in &desired.create {
        let name = secret.name_any();
        // Stamped as the child set stamps what it writes: the set then finds
        // it current and sends nothing more (one request, not a create and
        // then an apply).
        let stamped = children::stamped_new(secret).unwrap_or_else(|_| secret.clone());
        match credentials::create(&secrets, &stamped).await? {
            Created::Made(version) => {
                info!(secret = %name, "generated credentials");
                children::remember_created(ctx.tools(), owner, secret, version);
                done.created.push(name);
            }
            Created::Taken => done.findings.push(Finding::Conflict {
                kind: "Secret",
                name,
                holder: "was created by someone else meanwhile; AppStack never takes over an \
                         object it did not create (delete it if nothing needs it)"
                    .into(),
            }),
        }
    }
    // A store must not start on credentials that are someone else's.
    if !done.findings.is_empty() {
        done.went_ahead = false;
        return Ok(done);
    }
    // Labels before the Services that select them; the fence before the
    // promotion (see failover.rs).
    if let (Some(decision), Some(Ok(seen))) = (&desired.failover, &world.instances) {
        done.replication = Some(Box::new(decision.status.clone()));
        done.busy = decision.busy;
        if !decision.actions.is_empty() {
            let pods = Api::namespaced(ctx.client.clone(), &owner.namespace);
            if let Err(error) = instances::apply(&pods, seen, &decision.actions).await {
                warn!(%error, "a failover step failed");
                done.busy = true;
            }
        }
    }
    // Before the stores that mount them.
    done.findings.extend(
        backups::ensure_volumes(
            &ctx.client,
            &owner.namespace,
            &owner.name,
            &desired.children.backup_volumes,
        )
        .await,
    );
    let owner_ns = owner.namespace.clone();
    let owner = Owner {
        namespace: owner.namespace.clone(),
        name: owner.name.clone(),
        uid: owner.uid.clone(),
    };
    let mut set = ChildSet::new(ctx.tools(), owner, &desired.children);
    // Created above, and not in the cache yet: kept from the prune.
    for name in &done.created {
        set.keep::<Secret>(name);
    }
    // Held for their migrations (see plan::order_migrations).
    for name in &desired.keep.deployments {
        set.keep::<Deployment>(name);
    }
    for name in &desired.keep.jobs {
        set.keep::<Job>(name);
    }

    for kind in KINDS {
        kind.apply(&mut set).await;
    }
    // Backwards: components go before the stores and Secrets they use.
    for kind in KINDS.iter().rev() {
        kind.prune(&mut set).await;
    }
    done.pruned = set.pruned().to_vec();
    if let Some(relabel) = &desired.relabel {
        let master = super::super::redis_pods::relabel(&ctx.client, &owner_ns, relabel).await;
        done.redis = Some(RedisDone {
            master,
            unsettled: world
                .redis_roles
                .as_ref()
                .is_none_or(|seen| super::redis_roles::unsettled(seen, relabel)),
        });
    }
    done.findings.extend(desired.unserved.iter().cloned());
    done.findings.extend(set.finish());
    Ok(done)
}
