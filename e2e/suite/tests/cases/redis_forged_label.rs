//! A tenant with `edit` in the namespace tries to make the write Service of
//! a Redis store with two replicas select a second pod, and to move the
//! master through what the apps' Secret gives them:
//! - labelling a replica `appstack.dev/role: master`, removing the master's
//!   label, or creating a pod of the store's labels with it: refused by the
//!   chart's admission policy (only the operator sets that label);
//! - the label set on a replica anyway (as the operator's own account, the
//!   one the policy lets through): the operator removes it at once (its
//!   watch of the store's pods), measured, and the write Service's ready
//!   addresses are sampled every 100 ms meanwhile;
//! - a replica refuses writes (READONLY), and the apps' user may not make
//!   Sentinel fail over, reconfigure or forget the master (NOPERM).

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail, ensure};
use appstack_e2e::endpoints::{ReadySampler, Sampled};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Pending, Ready};
use appstack_e2e::{apply, appstack, client, operator, stores};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use super::redis_failover::{ROLE, labelled_master, store_pods, wait_master};

const TENANT: &str = "e2e-redis-tenant";
/// The operator removes a forged label within this (a watch event and one
/// reconcile).
const REMOVED_BOUND: Duration = Duration::from_secs(3);

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let stack = appstack::deploy_shop(ctx, |m| {
        m["spec"]["redis"]["replicas"] = 2.into();
    })
    .await?;
    let sts = stack.redis();
    let master = wait_master(ctx, &sts, 3).await?;
    let replica = store_pods(ctx, &sts)
        .await?
        .iter()
        .map(|p| p.name_any())
        .find(|p| *p != master)
        .context("no replica")?;
    ctx.step(format!("master {master}, replica {replica}"));

    // The tenant: the built-in `edit` role in this namespace.
    apply::object(
        &ctx.client,
        &ctx.ns,
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "tenant-edit"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": TENANT}],
        }),
    )
    .await?;
    let tenant = client::impersonating(&ctx.env, TENANT).await?;
    let as_tenant: Api<Pod> = Api::namespaced(tenant, &ctx.ns);
    let label = |value: Option<&str>| json!({"metadata": {"labels": {ROLE: value}}});
    for (what, pod, value) in [
        ("label a replica master", &replica, Some("master")),
        ("remove the master's label", &master, None),
    ] {
        let tried = as_tenant
            .patch(pod, &PatchParams::default(), &Patch::Merge(&label(value)))
            .await;
        refused(what, tried.map(|_| ()))?;
    }
    let mut forged: Pod = serde_json::from_value(json!({
        "metadata": {"name": "forged-master", "labels": {
            "app.kubernetes.io/name": "redis", "app.kubernetes.io/instance": stack.name, ROLE: "master"}},
        "spec": {
            "securityContext": {"runAsNonRoot": true, "runAsUser": 999, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "c", "image": ctx.env.tools_image, "command": ["sleep", "60"],
                "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}}}],
        },
    }))?;
    forged.metadata.namespace = Some(ctx.ns.clone());
    refused(
        "create a pod of the store's labels labelled master",
        as_tenant
            .create(&PostParams::default(), &forged)
            .await
            .map(|_| ()),
    )?;
    ctx.step("the tenant's three label forgeries were refused by the admission policy");

    // The label set anyway, by an account the policy lets through.
    let sampler = ReadySampler::start(&ctx.client, &ctx.ns, &sts, Duration::from_millis(100));
    let operator_sa = format!(
        "system:serviceaccount:{}:{}",
        operator::NAMESPACE,
        operator::FULLNAME
    );
    let as_operator: Api<Pod> = Api::namespaced(
        client::impersonating(&ctx.env, &operator_sa).await?,
        &ctx.ns,
    );
    as_operator
        .patch(
            &replica,
            &PatchParams::default(),
            &Patch::Merge(&label(Some("master"))),
        )
        .await
        .context("labelling the replica master as the operator's account")?;
    let forged_at = Instant::now();
    let api = ctx.pods();
    wait::until_every(
        &format!("the operator to remove the master label from {replica}"),
        Duration::from_secs(30),
        Duration::from_millis(100),
        async || {
            let p = api.get(&replica).await?;
            Ok(match p.labels().get(ROLE).map(String::as_str) {
                Some("master") => Pending("still labelled master".into()),
                other => Ready(other.map(String::from)),
            })
        },
    )
    .await?;
    let took = forged_at.elapsed();
    let Sampled { samples, most } = sampler.finish().await?;
    ctx.recovered("forged master label removed", took);
    ctx.note(format!(
        "a master label set on {replica} was removed after {:.2}s; the write Service's ready addresses meanwhile: at most {most} in {samples} samples (100 ms)",
        took.as_secs_f64()
    ));
    ensure!(
        took <= REMOVED_BOUND,
        "the forged master label stayed {:.1}s (bound {}s)",
        took.as_secs_f64(),
        REMOVED_BOUND.as_secs()
    );
    let labelled = labelled_master(&store_pods(ctx, &sts).await?);
    ensure!(
        labelled == [master.clone()],
        "after the forgery the pods labelled master are {labelled:?}, expected [{master}]"
    );

    // A replica takes no write; the apps' user cannot steer Sentinel.
    let (_, said) =
        stores::redis_as_app(ctx, &replica, "-p \"$APPSTACK_PORT\" set forged x").await?;
    ensure!(
        said.contains("READONLY"),
        "a write to the replica {replica} answered {said:?}, expected READONLY"
    );
    let name = &sts;
    for command in [
        format!("sentinel failover {name}"),
        format!("sentinel set {name} quorum 1"),
        format!("sentinel remove {name}"),
        "sentinel monitor other 10.0.0.1 6379 1".to_string(),
    ] {
        let (_, said) = stores::redis_as_app(
            ctx,
            &replica,
            &format!("-p \"$APPSTACK_SENTINEL_PORT\" {command}"),
        )
        .await?;
        ensure!(
            said.contains("NOPERM"),
            "the apps' user ran `{command}` on Sentinel: {said:?}, expected NOPERM"
        );
    }
    ctx.step("a replica refuses writes (READONLY); the apps' user may not steer Sentinel (NOPERM)");
    Ok(())
}

/// The tenant's attempt was refused, by the admission policy.
fn refused(what: &str, tried: kube::Result<()>) -> Result<()> {
    match tried {
        Ok(()) => bail!("the tenant could {what}"),
        Err(kube::Error::Api(e)) if e.message.contains("appstack.dev/role") => Ok(()),
        Err(e) => bail!("the tenant's attempt to {what} failed otherwise than by the policy: {e}"),
    }
}
