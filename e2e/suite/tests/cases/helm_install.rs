//! `helm upgrade --install` of charts/appstack-operator: two replicas under
//! the chart's ServiceAccount, one leader; the RBAC is enough and no more
//! (requests impersonating the ServiceAccount are allowed or forbidden).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use appstack_e2e::operator::{self, FULLNAME, NAMESPACE};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::{client, cmd};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, ServiceAccount};
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let version = cmd::run_ok(
        &ctx.env,
        "helm",
        &["version", "--short"],
        None,
        Duration::from_secs(20),
    )
    .await?;
    ctx.step(format!(
        "helm {}: upgrade --install {} into {NAMESPACE}",
        version.trim(),
        operator::CHART
    ));
    let out = operator::helm_upgrade_install(&ctx.env, &[]).await?;
    for line in out
        .lines()
        .filter(|l| l.starts_with("STATUS:") || l.starts_with("REVISION:"))
    {
        ctx.step(format!("helm: {line}"));
    }
    let pods = operator::wait_available(&ctx.client, Duration::from_secs(240)).await?;
    ctx.step(format!(
        "operator Deployment available: {}",
        pods.iter()
            .map(|p| p.name_any())
            .collect::<Vec<_>>()
            .join(", ")
    ));

    // Every operator pod runs under the chart's ServiceAccount.
    let sa = Api::<ServiceAccount>::namespaced(ctx.client.clone(), NAMESPACE)
        .get(FULLNAME)
        .await
        .with_context(|| format!("expected the chart's ServiceAccount {NAMESPACE}/{FULLNAME}"))?;
    let helm_managed = sa
        .labels()
        .get("app.kubernetes.io/managed-by")
        .map(String::as_str)
        == Some("Helm");
    if !helm_managed {
        bail!(
            "ServiceAccount {FULLNAME} is not labelled managed-by=Helm: {:?}",
            sa.labels()
        );
    }
    for pod in &pods {
        let used = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone());
        if used.as_deref() != Some(FULLNAME) {
            bail!(
                "expected pod {} to run as ServiceAccount {FULLNAME}, it runs as {used:?}",
                pod.name_any()
            );
        }
    }
    ctx.step(format!(
        "both pods run as ServiceAccount {NAMESPACE}/{FULLNAME} (created by the chart)"
    ));

    let leader = operator::wait_leader(&ctx.client, &[], Duration::from_secs(60)).await?;
    ctx.step(format!(
        "Lease {NAMESPACE}/{FULLNAME} names the leader: {}",
        leader.name_any()
    ));

    rbac(ctx).await
}

const SA_USER: &str = "system:serviceaccount:appstack-system:appstack-operator";

/// (verb, group, resource, subresource, namespace?, expected allowed)
type Access = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
    bool,
);

async fn rbac(ctx: &mut Ctx) -> Result<()> {
    // What `kubectl auth can-i --as=<sa>` asks: SubjectAccessReviews.
    let checks: [Access; 17] = [
        ("patch", "apps", "deployments", "", true, true),
        ("create", "apps", "statefulsets", "", true, true),
        ("watch", "appstack.dev", "appstacks", "", true, true),
        ("patch", "appstack.dev", "appstacks", "status", true, true),
        ("create", "", "secrets", "", true, true),
        ("create", "events.k8s.io", "events", "", true, true),
        ("delete", "", "persistentvolumeclaims", "", true, false),
        // The backup pods' termination messages, for status: the pods of
        // the Jobs the backup CronJobs control.
        ("list", "", "pods", "", true, true),
        ("list", "batch", "jobs", "", true, true),
        ("watch", "batch", "jobs", "", true, true),
        // The components' migrations are Jobs of the stack's own, and a
        // failed one's last log lines go to status.
        ("create", "batch", "jobs", "", true, true),
        ("get", "", "pods", "log", true, true),
        ("list", "", "persistentvolumeclaims", "", true, false),
        (
            "create",
            "rbac.authorization.k8s.io",
            "clusterroles",
            "",
            false,
            false,
        ),
        ("update", "appstack.dev", "appstacks", "", true, false),
        ("delete", "appstack.dev", "appstacks", "", true, false),
        ("create", "", "pods", "exec", true, false),
    ];
    let mut wrong = Vec::new();
    for (verb, group, resource, sub, namespaced, expected) in checks {
        let allowed = can_i(
            &ctx.client,
            verb,
            group,
            resource,
            sub,
            namespaced.then_some(ctx.ns.as_str()),
        )
        .await?;
        let what = format!(
            "{verb} {resource}{}{}",
            if sub.is_empty() {
                String::new()
            } else {
                format!("/{sub}")
            },
            if group.is_empty() {
                String::new()
            } else {
                format!(".{group}")
            }
        );
        let word = if allowed { "allowed" } else { "forbidden" };
        ctx.step(format!("can-i --as {SA_USER} {what}: {word}"));
        if allowed != expected {
            wrong.push(format!(
                "{what}: {word}, expected {}",
                if expected { "allowed" } else { "forbidden" }
            ));
        }
    }
    if !wrong.is_empty() {
        bail!(
            "the operator's RBAC is not least privilege:\n      {}",
            wrong.join("\n      ")
        );
    }

    // Real requests with impersonation headers.
    let sa = client::impersonating(&ctx.env, SA_USER).await?;
    let probe = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "e2e-rbac-probe"},
        "spec": {"selector": {"matchLabels": {"app": "probe"}},
                 "template": {"metadata": {"labels": {"app": "probe"}},
                              "spec": {"containers": [{"name": "c", "image": ctx.env.tools_image}]}}}
    });
    Api::<Deployment>::namespaced(sa.clone(), &ctx.ns)
        .patch(
            "e2e-rbac-probe",
            &PatchParams::apply("appstack-operator").dry_run(),
            &Patch::Apply(&probe),
        )
        .await
        .context(
            "expected the operator's ServiceAccount to be allowed to apply (patch) a Deployment",
        )?;
    ctx.step("as the ServiceAccount: apply (patch) of a Deployment, dry run: allowed");

    let forbidden = [
        (
            "delete persistentvolumeclaims",
            Api::<PersistentVolumeClaim>::namespaced(sa.clone(), &ctx.ns)
                .delete("e2e-rbac-probe", &DeleteParams::default())
                .await
                .map(|_| ()),
        ),
        (
            "create clusterroles",
            Api::<ClusterRole>::all(sa.clone())
                .create(
                    &PostParams {
                        dry_run: true,
                        field_manager: None,
                    },
                    &serde_json::from_value(
                        json!({"metadata": {"name": "e2e-rbac-probe"}, "rules": []}),
                    )?,
                )
                .await
                .map(|_| ()),
        ),
    ];
    for (what, result) in forbidden {
        match result {
            Err(kube::Error::Api(e)) if e.code == 403 => {
                ctx.step(format!(
                    "as the ServiceAccount: {what}: 403 Forbidden ({})",
                    e.message
                ));
            }
            Err(e) => bail!("expected `{what}` as {SA_USER} to be forbidden (403), got: {e}"),
            Ok(()) => bail!("expected `{what}` as {SA_USER} to be forbidden (403), it was allowed"),
        }
    }
    Ok(())
}

async fn can_i(
    client: &Client,
    verb: &str,
    group: &str,
    resource: &str,
    subresource: &str,
    namespace: Option<&str>,
) -> Result<bool> {
    let review = SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(SA_USER.into()),
            groups: Some(vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{NAMESPACE}"),
                "system:authenticated".into(),
            ]),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource: (!subresource.is_empty()).then(|| subresource.into()),
                namespace: namespace.map(str::to_string),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .context("creating a SubjectAccessReview")?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}
