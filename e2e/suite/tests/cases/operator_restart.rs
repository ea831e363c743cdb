//! Kill the operator (both pods): the new leader changes no child and keeps
//! the passwords. Then delete only the leader: the standby takes the Lease
//! and reconciles a change; the takeover time is printed. Last, freeze the
//! leader (a hung process never releases its Lease): the standby takes over
//! once the Lease expires, within the lease duration.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use appstack_e2e::appstack::{self, Stack};
use appstack_e2e::operator::{self, NAMESPACE};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Pending, Ready};
use appstack_e2e::{apply, children, node};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let stack = appstack::deploy_shop(ctx, |_| {}).await?;
    stack
        .web_settled(ctx, None, Duration::from_secs(120))
        .await?;
    restart_all(ctx, &stack).await?;
    takeover(ctx, &stack).await?;
    if ctx.env.is_local() {
        hung_leader(ctx).await?;
    } else {
        ctx.note(
            "hung-leader takeover skipped: it freezes a container through the node's containerd",
        );
    }
    Ok(())
}

/// The Lease's duration as the operator writes it (15 s by default).
const LEASE_SECONDS: u64 = 15;

async fn hung_leader(ctx: &mut Ctx) -> Result<()> {
    let Some(old) = operator::holder(&ctx.client).await? else {
        bail!("the operator's Lease names no holder");
    };
    let api = Api::<Pod>::namespaced(ctx.client.clone(), NAMESPACE);
    let id = node::container_id(&api.get(&old).await?, None)?;
    node::freeze(&ctx.env, &id, false).await?;
    let start = Instant::now();
    ctx.step(format!(
        "froze the leader {old} (ctr task pause): it can no longer renew the Lease"
    ));
    let taken = operator::wait_leader(
        &ctx.client,
        std::slice::from_ref(&old),
        Duration::from_secs(LEASE_SECONDS * 3),
    )
    .await;
    let took = start.elapsed();
    // Thaw it in any case; it finds the Lease lost and stands down.
    node::freeze(&ctx.env, &id, true).await?;
    let leader = taken?;
    ctx.recovered("hung-leader takeover", took);
    println!(
        "    hung-leader takeover: {old} -> {} in {:.1}s (lease duration {LEASE_SECONDS}s)",
        leader.name_any(),
        took.as_secs_f64()
    );
    if took > Duration::from_secs(LEASE_SECONDS + 5) {
        bail!(
            "expected the standby to take over within the lease duration ({LEASE_SECONDS}s, +5s for its retry period), it took {:.1}s",
            took.as_secs_f64()
        );
    }
    operator::wait_available(&ctx.client, Duration::from_secs(120)).await?;
    let holder = operator::holder(&ctx.client).await?;
    if holder.as_deref() != Some(leader.name_any().as_str()) {
        bail!(
            "expected {} to stay leader after {old} thawed, the Lease names {holder:?}",
            leader.name_any()
        );
    }
    ctx.step(format!(
        "{old} thawed and stood down; {} still leads",
        leader.name_any()
    ));
    Ok(())
}

async fn restart_all(ctx: &mut Ctx, stack: &Stack) -> Result<()> {
    let before = children::snapshot(&ctx.client, &ctx.ns, &stack.name).await?;
    let secrets = children::secret_data(&ctx.client, &ctx.ns, &stack.name).await?;
    let leader = operator::restart_all(ctx, Duration::from_secs(120)).await?;

    // The new leader's first pass over every AppStack has to have happened
    // for "it changed nothing" to mean anything.
    operator::leader_changed_nothing(
        ctx,
        &stack.name,
        &before,
        &leader,
        "when the operator restarts",
    )
    .await?;
    let secrets_after = children::secret_data(&ctx.client, &ctx.ns, &stack.name).await?;
    if secrets != secrets_after {
        bail!(
            "expected the stores' Secrets (passwords) to be unchanged after the operator restarted; they differ"
        );
    }
    ctx.step(format!(
        "no child written ({} checked) and the passwords are unchanged",
        before.len()
    ));
    operator::wait_available(&ctx.client, Duration::from_secs(120)).await?;
    Ok(())
}

async fn takeover(ctx: &mut Ctx, stack: &Stack) -> Result<()> {
    let Some(old) = operator::holder(&ctx.client).await? else {
        bail!("the operator's Lease names no holder");
    };
    let api = Api::<Pod>::namespaced(ctx.client.clone(), NAMESPACE);
    let start = Instant::now();
    api.delete(&old, &DeleteParams::default()).await?;
    ctx.step(format!("deleted only the leader pod {old}"));
    let leader = operator::wait_leader(
        &ctx.client,
        std::slice::from_ref(&old),
        Duration::from_secs(60),
    )
    .await?;
    let took = start.elapsed();
    ctx.recovered("takeover", took);
    println!(
        "    leader takeover: {old} -> {} in {:.1}s",
        leader.name_any(),
        took.as_secs_f64()
    );

    // A change a user makes now is reconciled by the new leader.
    let (manifest, max) = stack.with_more_max_replicas();
    apply::object(&ctx.client, &ctx.ns, manifest).await?;
    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(ctx.client.clone(), &ctx.ns);
    wait::until_every(
        &format!(
            "HPA {} to get maxReplicas {max} from the new leader",
            stack.web()
        ),
        Duration::from_secs(60),
        Duration::from_millis(200),
        async || {
            let h = hpas.get(&stack.web()).await?;
            let seen = h.spec.map(|s| s.max_replicas).unwrap_or_default();
            Ok(if i64::from(seen) == max {
                Ready(())
            } else {
                Pending(format!("maxReplicas {seen}"))
            })
        },
    )
    .await?;
    ctx.recovered("change reconciled", start.elapsed());
    appstack::wait_ready(&ctx.client, &ctx.ns, &stack.name, Duration::from_secs(60)).await?;
    operator::wait_available(&ctx.client, Duration::from_secs(120)).await?;
    Ok(())
}
