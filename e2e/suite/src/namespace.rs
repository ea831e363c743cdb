//! One namespace per scenario, labelled as the suite's so that only the
//! suite's own namespaces are ever cleaned up.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Client, ResourceExt};

pub const LABEL: &str = "e2e.appstack.dev/suite";

/// Creates `e2e-<scenario>-<suffix>`, enforcing the `pod_security` level.
pub async fn create(client: &Client, scenario: &str, pod_security: &str) -> Result<String> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() ^ (d.as_secs() as u32))
        .unwrap_or_default();
    let mut base: String = format!("e2e-{scenario}");
    base.truncate(55);
    let name = format!("{base}-{:05x}", nanos & 0xfffff);
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some(
                [
                    (LABEL.to_string(), "true".to_string()),
                    (
                        "e2e.appstack.dev/scenario".to_string(),
                        scenario.to_string(),
                    ),
                    // Users' namespaces often enforce it: the operator's pods must pass.
                    (
                        "pod-security.kubernetes.io/enforce".to_string(),
                        pod_security.to_string(),
                    ),
                ]
                .into(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .with_context(|| format!("creating namespace {name}"))?;
    Ok(name)
}

/// Starts deleting the namespace and returns; the API server finishes it.
pub async fn delete(client: &Client, name: &str) -> Result<()> {
    match Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 => Ok(()),
        Err(e) => Err(e).with_context(|| format!("deleting namespace {name}")),
    }
}

/// Deletes namespaces left by earlier runs (E2E_KEEP=1 or an interrupted run).
pub async fn delete_leftovers(client: &Client) -> Result<Vec<String>> {
    let api = Api::<Namespace>::all(client.clone());
    let list = api
        .list(&ListParams::default().labels(&format!("{LABEL}=true")))
        .await
        .context("listing the suite's namespaces")?;
    let mut deleted = Vec::new();
    for ns in list {
        if ns.metadata.deletion_timestamp.is_none() {
            delete(client, &ns.name_any()).await?;
            deleted.push(ns.name_any());
        }
    }
    Ok(deleted)
}
