//! Bad AppStacks are refused by the API server (CRD schema, CEL rules,
//! strict field validation) with a message that names the field: among
//! them what would loosen a pod's confinement (capabilities, AppArmor and
//! seccomp annotations) and what would make a NetworkPolicy the API server
//! refuses (S3 endpoint ports, ipBlock CIDRs, egress ports).

use std::time::Duration;

use anyhow::{Result, bail};
use appstack_e2e::appstack;
use appstack_e2e::cmd;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use kube::api::ListParams;
use serde_json::{Value, json};

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

fn valid() -> Value {
    json!({
        "apiVersion": "appstack.dev/v1alpha1",
        "kind": "AppStack",
        "metadata": {"name": "bad"},
        "spec": {
            "components": [{
                "name": "web",
                "image": "appstack.local/appstack-shop:dev",
                "port": 8080,
                "autoscaling": {"minReplicas": 2, "maxReplicas": 5, "targetCPUUtilizationPercentage": 60},
                // int64 fields once refused every value (a maximum of 2^63).
                "securityContext": {"runAsUser": 1000, "runAsGroup": 1000},
                "podSecurityContext": {"fsGroup": 1000}
            }],
            "redis": {"storage": {"size": "1Gi"}},
            "postgres": {"storage": {"size": "1Gi"}}
        }
    })
}

/// A bucket at `endpoint`, otherwise valid.
fn s3(endpoint: &str) -> Value {
    json!({"bucket": "backups", "endpoint": endpoint, "secretName": "s3-keys"})
}

/// (case, how to break the valid manifest, any of these must be in the message)
type Case = (&'static str, fn(&mut Value), &'static [&'static str]);

fn cases() -> Vec<Case> {
    vec![
        (
            "duplicate component names",
            |m| {
                let first = m["spec"]["components"][0].clone();
                m["spec"]["components"] = json!([first.clone(), first]);
            },
            &["spec.components"],
        ),
        (
            "minReplicas > maxReplicas",
            |m| {
                m["spec"]["components"][0]["autoscaling"] =
                    json!({"minReplicas": 6, "maxReplicas": 2});
            },
            &[
                "spec.components[0].autoscaling",
                "minReplicas",
                "maxReplicas",
            ],
        ),
        (
            "port 0",
            |m| m["spec"]["components"][0]["port"] = json!(0),
            &["spec.components[0].port"],
        ),
        (
            "empty image",
            |m| m["spec"]["components"][0]["image"] = json!(""),
            &["spec.components[0].image"],
        ),
        (
            "bad storage size",
            |m| m["spec"]["redis"]["storage"]["size"] = json!("lots"),
            &["spec.redis.storage.size"],
        ),
        (
            "bad resource quantity",
            |m| m["spec"]["components"][0]["resources"] = json!({"requests": {"cpu": "lots"}}),
            &["spec.components[0].resources.requests"],
        ),
        (
            "bad store resource quantity",
            |m| m["spec"]["postgres"]["resources"] = json!({"limits": {"memory": "1 GB"}}),
            &["spec.postgres.resources.limits"],
        ),
        (
            "unknown field",
            |m| m["spec"]["components"][0]["replicaz"] = json!(2),
            &["spec.components[0].replicaz"],
        ),
        (
            "too-long component name",
            |m| {
                m["spec"]["components"][0]["name"] = json!("w".repeat(64));
            },
            &["spec.components[0].name"],
        ),
        (
            "probe period beyond int32 (once stopped the operator for every stack)",
            |m| {
                m["spec"]["components"][0]["livenessProbe"] =
                    json!({"tcpSocket": {"port": 8080}, "periodSeconds": 4_294_967_296_u64});
            },
            &["spec.components[0].livenessProbe.periodSeconds"],
        ),
        (
            "component name ending in a store suffix (another stack's store name)",
            |m| m["spec"]["components"][0]["name"] = json!("b-redis"),
            &["spec.components[0].name"],
        ),
        (
            "env value beyond the size limit",
            |m| {
                m["spec"]["components"][0]["env"] =
                    json!([{"name": "BIG", "value": "x".repeat(5000)}]);
            },
            &["spec.components[0].env[0].value"],
        ),
        (
            "65 args (lists are bounded)",
            |m| m["spec"]["components"][0]["args"] = json!(vec!["x"; 65]),
            &["spec.components[0].args"],
        ),
        (
            "65 pod annotations (maps are bounded)",
            |m| {
                let many: serde_json::Map<String, Value> =
                    (0..65).map(|i| (format!("a{i}"), json!("v"))).collect();
                m["spec"]["components"][0]["podAnnotations"] = Value::Object(many);
            },
            &["spec.components[0].podAnnotations"],
        ),
        (
            "privileged container (beyond Pod Security baseline)",
            |m| m["spec"]["components"][0]["securityContext"] = json!({"privileged": true}),
            &["spec.components[0].securityContext.privileged"],
        ),
        (
            "added capability SYS_ADMIN",
            |m| {
                m["spec"]["components"][0]["securityContext"] =
                    json!({"capabilities": {"add": ["NET_BIND_SERVICE", "SYS_ADMIN"]}});
            },
            &["spec.components[0].securityContext.capabilities.add"],
        ),
        (
            "added capability NET_RAW (only NET_BIND_SERVICE may be added)",
            |m| {
                m["spec"]["components"][0]["securityContext"] =
                    json!({"capabilities": {"add": ["NET_RAW"]}});
            },
            &["spec.components[0].securityContext.capabilities.add"],
        ),
        (
            "AppArmor unconfined by pod annotation",
            |m| {
                m["spec"]["components"][0]["podAnnotations"] =
                    json!({"container.apparmor.security.beta.kubernetes.io/web": "unconfined"});
            },
            &["spec.components[0].podAnnotations"],
        ),
        (
            "seccomp unconfined by pod annotation",
            |m| {
                m["spec"]["components"][0]["podAnnotations"] =
                    json!({"seccomp.security.alpha.kubernetes.io/pod": "unconfined"});
            },
            &["spec.components[0].podAnnotations"],
        ),
        (
            "seccomp unconfined by container annotation",
            |m| {
                m["spec"]["components"][0]["podAnnotations"] =
                    json!({"container.seccomp.security.alpha.kubernetes.io/web": "unconfined"});
            },
            &["spec.components[0].podAnnotations"],
        ),
        (
            "S3 endpoint with port 99999 (its NetworkPolicy would be refused)",
            |m| {
                m["spec"]["postgres"]["backup"] =
                    json!({"target": {"s3": s3("http://minio.storage.svc:99999")}});
            },
            &["spec.postgres.backup.target.s3.endpoint"],
        ),
        (
            "S3 endpoint with port 0",
            |m| m["spec"]["redis"]["backup"] = json!({"target": {"s3": s3("http://minio:0")}}),
            &["spec.redis.backup.target.s3.endpoint"],
        ),
        (
            "restore from an S3 endpoint with port 70000",
            |m| {
                m["spec"]["restore"] =
                    json!({"from": "old", "s3": s3("https://s3.example.com:70000")});
            },
            &["spec.restore.s3.endpoint"],
        ),
        (
            "ipBlock that is not a CIDR (its NetworkPolicy would be refused)",
            |m| {
                m["spec"]["components"][0]["ingressFrom"] =
                    json!([{"ipBlock": {"cidr": "10.0.0.300/8"}}]);
            },
            &["spec.components[0].ingressFrom[0].ipBlock.cidr"],
        ),
        (
            "ipBlock exception outside its CIDR",
            |m| {
                m["spec"]["components"][0]["egressTo"] = json!([{"to": [
                    {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["192.168.0.0/16"]}}
                ]}]);
            },
            &["spec.components[0].egressTo[0].to[0].ipBlock.except"],
        ),
        (
            "egress port 99999",
            |m| m["spec"]["components"][0]["egressTo"] = json!([{"ports": [{"port": 99999}]}]),
            &["spec.components[0].egressTo[0].ports[0].port"],
        ),
        (
            "Unconfined seccomp on the pod",
            |m| {
                m["spec"]["components"][0]["podSecurityContext"] =
                    json!({"seccompProfile": {"type": "Unconfined"}});
            },
            &["spec.components[0].podSecurityContext.seccompProfile.type"],
        ),
        (
            "unsafe sysctl",
            |m| {
                m["spec"]["components"][0]["podSecurityContext"] =
                    json!({"sysctls": [{"name": "kernel.msgmax", "value": "65536"}]});
            },
            &["spec.components[0].podSecurityContext.sysctls"],
        ),
        (
            "probe aimed at another host (the API server)",
            |m| {
                m["spec"]["components"][0]["readinessProbe"] =
                    json!({"httpGet": {"host": "10.96.0.1", "port": 443, "scheme": "HTTPS"}});
            },
            &["spec.components[0].readinessProbe"],
        ),
        (
            "too-long AppStack name",
            |m| {
                m["metadata"]["name"] = json!(format!("s{}", "x".repeat(61)));
            },
            &["metadata.name"],
        ),
    ]
}

async fn kubectl_apply(ctx: &Ctx, manifest: &Value, extra: &[&str]) -> Result<cmd::Output> {
    let yaml = serde_yaml::to_string(manifest)?;
    let mut args = vec![
        "apply",
        "--validate=strict",
        "-n",
        ctx.ns.as_str(),
        "-f",
        "-",
    ];
    args.extend_from_slice(extra);
    cmd::run(
        &ctx.env,
        "kubectl",
        &args,
        Some(&yaml),
        Duration::from_secs(30),
    )
    .await
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    // The unbroken manifest passes, so each refusal is about the one change.
    let ok = kubectl_apply(ctx, &valid(), &["--dry-run=server"]).await?;
    if !ok.success {
        bail!(
            "expected the valid base manifest to pass a server-side dry run, kubectl said:\n{}",
            cmd::indent(&ok.text())
        );
    }
    ctx.step("the valid base manifest passes `kubectl apply --validate=strict --dry-run=server`");

    let mut wrong = Vec::new();
    for (case, breaks, fields) in cases() {
        let mut m = valid();
        breaks(&mut m);
        let out = kubectl_apply(ctx, &m, &[]).await?;
        let message = out.text().replace('\n', " ");
        let named = fields.iter().any(|f| message.contains(f));
        match (out.success, named) {
            (false, true) => ctx.step(format!("refused, {case}: {}", short(&message))),
            (false, false) => wrong.push(format!(
                "{case}: refused, but the message names none of {fields:?}: {message}"
            )),
            (true, _) => wrong.push(format!("{case}: accepted ({})", short(&message))),
        }
    }
    let left = appstack::api(&ctx.client, &ctx.ns)
        .list(&ListParams::default())
        .await?;
    if !left.items.is_empty() {
        wrong.push(format!("{} bad AppStack(s) were stored", left.items.len()));
    }
    if !wrong.is_empty() {
        bail!(
            "bad manifests not refused as expected:\n      {}",
            wrong.join("\n      ")
        );
    }

    // A transition rule: the database of an existing store cannot change.
    let mut stored = valid();
    stored["spec"]["components"][0] = json!({"name": "web", "image": "appstack.local/appstack-shop:dev", "port": 8080, "replicas": 0});
    stored["spec"]["postgres"]["database"] = json!("shop");
    stored["spec"]["retainDataOnDelete"] = json!(false);
    let created = kubectl_apply(ctx, &stored, &[]).await?;
    if !created.success {
        bail!("could not create the stack to change: {}", created.text());
    }
    // Changes to an existing store that its data directory would not
    // survive: (case, the field, its new value).
    let changes = [
        ("database change", "database", json!("orders")),
        (
            "image 17 -> 18 (a PostgreSQL major version)",
            "image",
            json!("postgres:18"),
        ),
    ];
    for (case, field, value) in changes {
        let mut changed = stored.clone();
        changed["spec"]["postgres"][field] = value;
        let out = kubectl_apply(ctx, &changed, &[]).await?;
        let message = out.text().replace('\n', " ");
        let named = format!("spec.postgres.{field}");
        if out.success || !message.contains(&named) {
            bail!("{case} on an existing store was not refused with {named} named: {message}");
        }
        ctx.step(format!(
            "refused, {case} on an existing store: {}",
            short(&message)
        ));
    }
    stored["spec"]["postgres"]["image"] = json!("postgres:17.6");
    let minor = kubectl_apply(ctx, &stored, &["--dry-run=server"]).await?;
    if !minor.success {
        bail!(
            "a minor version change (17 -> 17.6) was refused: {}",
            minor.text()
        );
    }
    ctx.step("accepted (server dry run), image 17 -> 17.6");
    appstack::api(&ctx.client, &ctx.ns)
        .delete("bad", &Default::default())
        .await?;
    Ok(())
}

fn short(message: &str) -> String {
    let mut m = message.trim().to_string();
    if m.len() > 220 {
        m.truncate(m.char_indices().nth(220).map_or(m.len(), |(i, _)| i));
        m.push_str("...");
    }
    m
}
