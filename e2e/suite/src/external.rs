//! Stores a user runs themselves, for the scenarios of external stores and
//! existingSecret: plain PostgreSQL and Redis Deployments (the local images,
//! data on a PVC, restricted pod security) with a Service each, the user's
//! Secrets, and waits for a component to roll.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams};
use serde_json::{Value, json};

use crate::runner::Ctx;
use crate::wait::{self, Pending, Ready};
use crate::{apply, pods};

/// The label that has the operator watch a user's Secret.
pub const WATCH_LABEL: &str = "appstack.dev/store-secret";
/// The pod template annotation whose change rolls a component.
pub const HASH: &str = "appstack.dev/credentials-hash";

/// A store the user runs: a Deployment, its PVC and Service, all `name`.
pub struct UserStore {
    pub name: String,
    pub port: u16,
}

impl UserStore {
    /// The Service's DNS name.
    pub fn host(&self, ctx: &Ctx) -> String {
        format!("{}.{}.svc", self.name, ctx.ns)
    }

    /// Its one running pod's name.
    pub async fn pod(&self, ctx: &Ctx) -> Result<String> {
        let pods = pods::list(&ctx.client, &ctx.ns, &format!("app={}", self.name)).await?;
        pods.iter()
            .find(|p| pods::is_ready(p) && p.metadata.deletion_timestamp.is_none())
            .map(|p| p.name_any())
            .with_context(|| format!("no ready pod of {}: {}", self.name, pods::describe(&pods)))
    }

    /// Deletes its pods (the Deployment makes new ones on the same PVC)
    /// and waits until a new one is ready.
    pub async fn kill(&self, ctx: &Ctx) -> Result<Duration> {
        let started = std::time::Instant::now();
        let old = self.pod(ctx).await?;
        ctx.pods()
            .delete(&old, &DeleteParams::default())
            .await
            .with_context(|| format!("deleting pod {old}"))?;
        wait::until(
            &format!("a new ready pod of {}", self.name),
            Duration::from_secs(150),
            async || {
                let list = pods::list(&ctx.client, &ctx.ns, &format!("app={}", self.name)).await?;
                Ok(
                    match list
                        .iter()
                        .find(|p| p.name_any() != old && pods::is_ready(p))
                    {
                        Some(p) => Ready(p.name_any()),
                        None => Pending(pods::describe(&list)),
                    },
                )
            },
        )
        .await?;
        Ok(started.elapsed())
    }
}

/// A restricted-profile pod running as the images' uid 999.
fn deployment(name: &str, image: &str, args: Value, env: Value, port: u16, mount: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "securityContext": {
                        "runAsNonRoot": true, "runAsUser": 999, "runAsGroup": 999, "fsGroup": 999,
                        "seccompProfile": {"type": "RuntimeDefault"}
                    },
                    "automountServiceAccountToken": false,
                    "containers": [{
                        "name": name, "image": image, "args": args, "env": env,
                        "ports": [{"containerPort": port}],
                        "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 2},
                        "volumeMounts": [{"name": "data", "mountPath": mount}],
                        "securityContext": {
                            "allowPrivilegeEscalation": false,
                            "capabilities": {"drop": ["ALL"]}
                        }
                    }],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": name}}]
                }
            }
        }
    })
}

async fn run(ctx: &Ctx, name: &str, port: u16, deployment: Value) -> Result<UserStore> {
    let pvc = json!({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}
    });
    let service = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name},
        "spec": {"selector": {"app": name}, "ports": [{"port": port, "targetPort": port}]}
    });
    for object in [pvc, service, deployment] {
        apply::object(&ctx.client, &ctx.ns, object).await?;
    }
    let store = UserStore {
        name: name.to_string(),
        port,
    };
    wait::until(
        &format!("the user's {name} to be ready"),
        Duration::from_secs(150),
        async || {
            Ok(match store.pod(ctx).await {
                Ok(pod) => Ready(pod),
                Err(e) => Pending(e.to_string()),
            })
        },
    )
    .await?;
    Ok(store)
}

/// PostgreSQL 15 with superuser `user` / `password` and database `db`.
pub async fn run_postgres(
    ctx: &Ctx,
    name: &str,
    user: &str,
    password: &str,
    db: &str,
) -> Result<UserStore> {
    let env = json!([
        {"name": "POSTGRES_USER", "value": user},
        {"name": "POSTGRES_PASSWORD", "value": password},
        {"name": "POSTGRES_DB", "value": db},
        {"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"},
    ]);
    let d = deployment(
        name,
        "appstack.local/postgres:15",
        json!([]),
        env,
        5432,
        "/var/lib/postgresql/data",
    );
    run(ctx, name, 5432, d).await
}

/// Redis 7 with the `default` user's password, append-only file on.
pub async fn run_redis(ctx: &Ctx, name: &str, password: &str) -> Result<UserStore> {
    let env = json!([{"name": "REDIS_PASSWORD", "value": password}]);
    let args = json!([
        "--requirepass",
        "$(REDIS_PASSWORD)",
        "--appendonly",
        "yes",
        "--dir",
        "/data"
    ]);
    let d = deployment(name, "appstack.local/redis:7", args, env, 6379, "/data");
    run(ctx, name, 6379, d).await
}

/// Creates or replaces the user's Secret `name` with `data` (string
/// values), labelled so the operator watches it when `watched`.
pub async fn user_secret(ctx: &Ctx, name: &str, data: Value, watched: bool) -> Result<Secret> {
    let labels = if watched {
        json!({WATCH_LABEL: "true"})
    } else {
        json!({})
    };
    // `data`, base64 (as `kubectl create secret` writes it): an apply of
    // stringData would leave `data`'s ownership to the API server's merge.
    let encoded: serde_json::Map<String, Value> = data
        .as_object()
        .context("the Secret's data is an object")?
        .iter()
        .map(|(k, v)| {
            let bytes = v.as_str().unwrap_or_default().as_bytes().to_vec();
            Ok((k.clone(), serde_json::to_value(ByteString(bytes))?))
        })
        .collect::<Result<_>>()?;
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "labels": labels},
        "type": "Opaque",
        "data": encoded,
    });
    apply::object(&ctx.client, &ctx.ns, secret).await?;
    Api::<Secret>::namespaced(ctx.client.clone(), &ctx.ns)
        .get(name)
        .await
        .with_context(|| format!("reading back Secret {name}"))
}

/// The credentials hash on a Deployment's pod template.
pub async fn template_hash(ctx: &Ctx, deployment: &str) -> Result<String> {
    let d = Api::<Deployment>::namespaced(ctx.client.clone(), &ctx.ns)
        .get(deployment)
        .await?;
    Ok(d.spec
        .and_then(|s| s.template.metadata)
        .and_then(|m| m.annotations)
        .and_then(|a| a.get(HASH).cloned())
        .unwrap_or_default())
}

/// Waits until `deployment`'s template hash differs from `old` and its
/// rollout is done; returns its pods.
pub async fn wait_rolled(
    ctx: &Ctx,
    deployment: &str,
    old: &str,
    replicas: Option<i32>,
    timeout: Duration,
) -> Result<Vec<Pod>> {
    wait::until(
        &format!("{deployment}'s pod template to change (a new credentials hash)"),
        timeout,
        async || {
            let now = template_hash(ctx, deployment).await?;
            Ok(if now != old && !now.is_empty() {
                Ready(())
            } else {
                Pending(format!("hash still {old}"))
            })
        },
    )
    .await?;
    pods::wait_deployment_settled(&ctx.client, &ctx.ns, deployment, replicas, timeout).await
}

/// Fails when the operator wrote to the user's Secret: a field of its
/// manager, or an owner reference.
pub fn not_taken_over(after: &Secret) -> Result<()> {
    let operator: Vec<String> = after
        .managed_fields()
        .iter()
        .filter_map(|f| f.manager.clone())
        .filter(|m| m.starts_with("appstack") && m != apply::FIELD_MANAGER)
        .collect();
    if !operator.is_empty() || !after.owner_references().is_empty() {
        bail!(
            "Secret {} was taken over: field managers {operator:?}, owners {:?}",
            after.name_any(),
            after
                .owner_references()
                .iter()
                .map(|r| format!("{} {}", r.kind, r.name))
                .collect::<Vec<_>>()
        );
    }
    Ok(())
}

/// Fails unless `after` is the user's Secret `before` unchanged: not taken
/// over, and at the same resourceVersion (nobody wrote to it).
pub fn unchanged(before: &Secret, after: &Secret) -> Result<()> {
    not_taken_over(after)?;
    if before.resource_version() != after.resource_version() {
        bail!(
            "Secret {} changed under the operator (resourceVersion {:?} -> {:?})",
            after.name_any(),
            before.resource_version(),
            after.resource_version()
        );
    }
    Ok(())
}
