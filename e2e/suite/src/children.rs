//! The operator's children of one AppStack, and what changed between two
//! looks at them.
//!
//! A child's resourceVersion also moves when a built-in controller updates
//! its status (an HPA's current utilization, a Deployment's ready count), so
//! "the operator wrote nothing" is judged per child by: the operator's own
//! managedFields entry (SSA stamps its time on every write that changes
//! something), metadata.generation (any spec change), and for kinds without a
//! status writer (Secrets, Services) the resourceVersion itself.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

pub const OPERATOR_MANAGER: &str = "appstack-operator";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fingerprint {
    pub resource_version: String,
    pub generation: Option<i64>,
    /// The operator's managedFields entries (time and fields), serialized.
    pub operator_fields: String,
    /// Whether only the operator (and users) write this kind at all.
    pub rv_is_strict: bool,
}

/// "Kind/name" -> fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Snapshot(pub BTreeMap<String, Fingerprint>);

pub fn selector(stack: &str) -> String {
    format!("app.kubernetes.io/instance={stack},app.kubernetes.io/managed-by=appstack-operator")
}

fn fingerprint(meta: &ObjectMeta, rv_is_strict: bool) -> Fingerprint {
    let operator_fields = meta
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| m.manager.as_deref() == Some(OPERATOR_MANAGER))
        .map(|m| serde_json::to_string(m).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n");
    Fingerprint {
        resource_version: meta.resource_version.clone().unwrap_or_default(),
        generation: meta.generation,
        operator_fields,
        rv_is_strict,
    }
}

async fn collect<K>(
    client: &Client,
    ns: &str,
    stack: &str,
    rv_is_strict: bool,
    out: &mut BTreeMap<String, Fingerprint>,
) -> Result<()>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let list = Api::<K>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&selector(stack)))
        .await
        .with_context(|| format!("listing {} of {stack}", K::kind(&())))?;
    for obj in list {
        out.insert(
            format!("{}/{}", K::kind(&()), obj.name_any()),
            fingerprint(obj.meta(), rv_is_strict),
        );
    }
    Ok(())
}

pub async fn snapshot(client: &Client, ns: &str, stack: &str) -> Result<Snapshot> {
    let mut all = BTreeMap::new();
    collect::<Deployment>(client, ns, stack, false, &mut all).await?;
    collect::<StatefulSet>(client, ns, stack, false, &mut all).await?;
    collect::<Service>(client, ns, stack, true, &mut all).await?;
    collect::<Secret>(client, ns, stack, true, &mut all).await?;
    collect::<HorizontalPodAutoscaler>(client, ns, stack, false, &mut all).await?;
    collect::<PodDisruptionBudget>(client, ns, stack, false, &mut all).await?;
    Ok(Snapshot(all))
}

impl Snapshot {
    /// Writes to children between the two snapshots, empty when none.
    pub fn diff(&self, later: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        for (key, a) in &self.0 {
            let Some(b) = later.0.get(key) else {
                out.push(format!("{key} disappeared"));
                continue;
            };
            if a.operator_fields != b.operator_fields {
                out.push(format!(
                    "{key} was written by {OPERATOR_MANAGER} (its managedFields entry changed; resourceVersion {} -> {})",
                    a.resource_version, b.resource_version
                ));
            } else if a.generation != b.generation {
                out.push(format!(
                    "{key} spec changed (generation {:?} -> {:?})",
                    a.generation, b.generation
                ));
            } else if a.rv_is_strict && a.resource_version != b.resource_version {
                out.push(format!(
                    "{key} changed (resourceVersion {} -> {})",
                    a.resource_version, b.resource_version
                ));
            }
        }
        for key in later.0.keys().filter(|k| !self.0.contains_key(*k)) {
            out.push(format!("{key} appeared"));
        }
        out
    }

    /// Children whose resourceVersion moved only through status updates by
    /// other controllers (reported, not a failure).
    pub fn status_only_changes(&self, later: &Snapshot) -> Vec<String> {
        self.0
            .iter()
            .filter_map(|(key, a)| {
                let b = later.0.get(key)?;
                (!a.rv_is_strict
                    && a.resource_version != b.resource_version
                    && a.operator_fields == b.operator_fields
                    && a.generation == b.generation)
                    .then(|| key.clone())
            })
            .collect()
    }

    pub fn keys(&self) -> String {
        self.0.keys().cloned().collect::<Vec<_>>().join(", ")
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Every key of the stack's Secrets, decoded: Secret name -> key -> value.
pub async fn secret_data(
    client: &Client,
    ns: &str,
    stack: &str,
) -> Result<BTreeMap<String, BTreeMap<String, String>>> {
    let list = Api::<Secret>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels(&selector(stack)))
        .await
        .context("listing the stack's Secrets")?;
    Ok(list
        .into_iter()
        .map(|s| {
            let data = s
                .data
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                .collect();
            (s.name_any(), data)
        })
        .collect())
}

/// Fails listing every write when `later` shows the operator changed children.
pub fn ensure_unchanged(before: &Snapshot, later: &Snapshot, when: &str) -> Result<()> {
    let diff = before.diff(later);
    if !diff.is_empty() {
        anyhow::bail!(
            "expected no child of the AppStack to change {when}, but:\n      {}",
            diff.join("\n      ")
        );
    }
    Ok(())
}
