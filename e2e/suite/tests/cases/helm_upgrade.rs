//! `helm upgrade` rolls the operator and leaves running AppStacks alone;
//! `helm uninstall` removes the operator only: the CRD, the AppStacks, their
//! workloads and their data stay (Helm's convention, and the chart's NOTES
//! say so). The operator is installed again at the end, and adopts the stack
//! without changing it.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use appstack_e2e::appstack;
use appstack_e2e::operator::{self, NAMESPACE, RELEASE};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::shop;
use appstack_e2e::wait::{self, Pending, Ready};
use appstack_e2e::{children, cmd, pods};
use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::ResourceExt;
use kube::api::{Api, ListParams};

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let stack = appstack::deploy_shop(ctx, |_| {}).await?;
    let (token, cart) = shop::seed(&stack.shop, "margaret").await?;
    stack
        .web_settled(ctx, None, Duration::from_secs(120))
        .await?;
    let before = children::snapshot(&ctx.client, &ctx.ns, &stack.name).await?;
    let t = Duration::from_secs(60);

    // Upgrade: a new pod template (as a new version brings) rolls the pods.
    let old: Vec<String> = operator::operator_pods(&ctx.client)
        .await?
        .iter()
        .map(|p| p.name_any())
        .collect();
    let stamp = format!("podAnnotations.e2e\\.appstack\\.dev/upgraded={}", ctx.ns);
    let out = operator::helm_upgrade_install(&ctx.env, &["--set-string".into(), stamp]).await?;
    let revision = out
        .lines()
        .find(|l| l.starts_with("REVISION:"))
        .unwrap_or("REVISION: ?");
    ctx.step(format!("helm upgrade: {revision}"));
    let new = operator::wait_available(&ctx.client, Duration::from_secs(180)).await?;
    if let Some(p) = new.iter().find(|p| old.contains(&p.name_any())) {
        bail!(
            "expected helm upgrade to replace the operator pods, {} is still there",
            p.name_any()
        );
    }
    let leader = operator::wait_leader(&ctx.client, &old, Duration::from_secs(60)).await?;
    operator::leader_changed_nothing(ctx, &stack.name, &before, &leader, "across helm upgrade")
        .await?;
    stack.shop.expect_me(&token, "margaret").await?;
    ctx.step(format!(
        "upgraded: operator pods {} replaced by {} (leader {}); the stack was not touched and serves",
        old.join(", "),
        new.iter().map(|p| p.name_any()).collect::<Vec<_>>().join(", "),
        leader.name_any()
    ));

    // The chart tells users what uninstall keeps.
    let notes = cmd::run_ok(
        &ctx.env,
        "helm",
        &["get", "notes", RELEASE, "-n", NAMESPACE],
        None,
        t,
    )
    .await?;
    if !(notes.contains("CRD") && notes.to_lowercase().contains("uninstall")) {
        bail!(
            "expected the chart's NOTES to say that `helm uninstall` keeps the CRD and the data; they say:\n{}",
            cmd::indent(&notes)
        );
    }
    let out = cmd::run_ok(
        &ctx.env,
        "helm",
        &[
            "uninstall",
            RELEASE,
            "-n",
            NAMESPACE,
            "--wait",
            "--timeout",
            "120s",
        ],
        None,
        Duration::from_secs(150),
    )
    .await?;
    ctx.step(format!("helm uninstall: {}", out.trim()));
    wait::until(
        "the operator pods to be gone",
        Duration::from_secs(120),
        async || {
            let left = operator::operator_pods(&ctx.client).await?;
            Ok(if left.is_empty() {
                Ready(())
            } else {
                Pending(pods::describe(&left))
            })
        },
    )
    .await?;
    Api::<CustomResourceDefinition>::all(ctx.client.clone())
        .get("appstacks.appstack.dev")
        .await
        .context("expected the AppStack CRD to stay after helm uninstall")?;
    appstack::api(&ctx.client, &ctx.ns)
        .get(&stack.name)
        .await
        .context("expected the AppStack to stay after helm uninstall")?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = children::snapshot(&ctx.client, &ctx.ns, &stack.name).await?;
    children::ensure_unchanged(&before, &after, "after helm uninstall")?;
    let pvcs = Api::<PersistentVolumeClaim>::namespaced(ctx.client.clone(), &ctx.ns)
        .list(&ListParams::default())
        .await?;
    if pvcs.items.len() < 2 {
        bail!(
            "expected the stores' PVCs to stay after helm uninstall, saw {}",
            pvcs.items.len()
        );
    }
    let (now, _) = stack.shop.cart(&token).await?;
    if now != cart {
        bail!("expected the cart {cart:?} after helm uninstall, got {now:?}");
    }
    stack.shop.expect_me(&token, "margaret").await?;
    ctx.step(format!(
        "after uninstall: CRD, AppStack, {} children and {} PVCs are in place; the shop still serves the session and cart",
        after.len(),
        pvcs.items.len()
    ));

    // Leave the cluster as found: install again; it adopts the stack as is.
    operator::helm_upgrade_install(&ctx.env, &[]).await?;
    operator::wait_available(&ctx.client, Duration::from_secs(180)).await?;
    let leader = operator::wait_leader(&ctx.client, &[], Duration::from_secs(60)).await?;
    operator::leader_changed_nothing(
        ctx,
        &stack.name,
        &before,
        &leader,
        "when the operator is installed again",
    )
    .await?;
    appstack::wait_ready(&ctx.client, &ctx.ns, &stack.name, Duration::from_secs(60)).await?;
    ctx.step("installed again: the new operator adopted the stack without changing it");
    Ok(())
}
