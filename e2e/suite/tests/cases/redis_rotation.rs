//! Password rotation on a stack whose Redis has two replicas: the same run
//! as rotation-without-failures (zero failed GET /cart through the shop
//! from the edit until the old passwords are refused), then every pod's
//! Redis and Sentinel take the new apps' password (each pod's credentials
//! container sets the users of both: ACL users are not replicated) and
//! refuse the old one, and a Sentinel-aware client finds the master.

use std::time::Duration;

use anyhow::{Result, ensure};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Pending, Ready};
use appstack_e2e::{children, pods};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use super::redis_failover::{labelled_master, store_pods};

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ctx.ns);
    let stack = super::rotation_without_failures::under_load(ctx, |m| {
        m["spec"]["redis"]["replicas"] = 2.into();
    })
    .await?;
    let sts = stack.redis();
    let now = children::decoded(&secrets.get(&sts).await?);
    let (user, password) = (
        now.get("username").cloned().unwrap_or_default(),
        now.get("password").cloned().unwrap_or_default(),
    );
    let quote = |v: &str| format!("'{}'", v.replace('\'', "'\\''"));
    let pods_now = store_pods(ctx, &sts).await?;
    let master = labelled_master(&pods_now);
    ensure!(
        master.len() == 1,
        "labelled master after the rotation: {master:?}"
    );
    for pod in pods_now.iter().map(kube::ResourceExt::name_any) {
        for (what, port) in [
            ("Redis", "$APPSTACK_PORT"),
            ("Sentinel", "$APPSTACK_SENTINEL_PORT"),
        ] {
            let ask = if what == "Redis" {
                "ping".to_string()
            } else {
                "sentinel get-master-addr-by-name \"$APPSTACK_MASTER_NAME\"".to_string()
            };
            // The credentials container sets them every 5 s.
            wait::until(
                &format!("{what} of {pod} to take the new apps' password"),
                Duration::from_secs(30),
                async || {
                    let out = pods::exec(
                        ctx,
                        &ctx.ns,
                        &pod,
                        Some("credentials"),
                        &format!(
                            "REDISCLI_AUTH={} {} --user {} -h 127.0.0.1 -p \"{port}\" {ask} 2>&1 | head -n 1",
                            quote(&password),
                            pods::REDIS_CLI,
                            quote(&user)
                        ),
                        Duration::from_secs(10),
                    )
                    .await?;
                    let said = out.stdout.trim().to_string();
                    let ok = if what == "Redis" {
                        said == "PONG"
                    } else {
                        said.starts_with(&format!("{}.", master[0]))
                    };
                    Ok(if ok { Ready(()) } else { Pending(said) })
                },
            )
            .await?;
            // The container's environment keeps the password it started
            // with (the rotation restarts no store pod): the old one.
            let out = pods::exec(
                ctx,
                &ctx.ns,
                &pod,
                Some("credentials"),
                &format!(
                    "REDISCLI_AUTH=\"$APP_PASSWORD\" {} --user {} -h 127.0.0.1 -p \"{port}\" {ask} 2>&1 | head -n 1",
                    pods::REDIS_CLI,
                    quote(&user)
                ),
                Duration::from_secs(10),
            )
            .await?;
            ensure!(
                out.stdout.contains("WRONGPASS") || out.stdout.contains("NOAUTH"),
                "{what} of {pod} still takes the old apps' password: {}",
                out.stdout.trim()
            );
        }
    }
    ctx.step(format!(
        "every pod's Redis and Sentinel take the new apps' password and refuse the old; Sentinel names {}",
        master[0]
    ));
    Ok(())
}
