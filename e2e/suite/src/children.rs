//! The operator's children of one AppStack, and what changed between two
//! looks at them.
//!
//! A child's resourceVersion (and a Deployment's generation) also moves when
//! someone else writes it: a built-in controller updating status, the HPA
//! setting the replica count. So "the operator wrote nothing" is judged per
//! child by the operator's own managedFields entry (the API server stamps it
//! on every write of that manager that changes the object; no-op applies are
//! not written at all), and for kinds nobody else writes (Secrets, Services)
//! by the resourceVersion itself. Other writers are reported, not failed.

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
    /// managedFields: "manager operation subresource" -> time and fields.
    pub managers: BTreeMap<String, String>,
    /// Whether only the operator (and users) write this kind at all.
    pub rv_is_strict: bool,
}

impl Fingerprint {
    fn operator(&self) -> Vec<&String> {
        self.managers
            .iter()
            .filter(|(k, _)| k.split(' ').next() == Some(OPERATOR_MANAGER))
            .map(|(_, v)| v)
            .collect()
    }
}

/// "Kind/name" -> fingerprint.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Snapshot(pub BTreeMap<String, Fingerprint>);

pub fn selector(stack: &str) -> String {
    format!("app.kubernetes.io/instance={stack},app.kubernetes.io/managed-by=appstack-operator")
}

fn fingerprint(meta: &ObjectMeta, rv_is_strict: bool) -> Fingerprint {
    let managers = meta
        .managed_fields
        .iter()
        .flatten()
        .map(|m| {
            let key = format!(
                "{} {} {}",
                m.manager.as_deref().unwrap_or("?"),
                m.operation.as_deref().unwrap_or("?"),
                m.subresource.as_deref().unwrap_or("")
            );
            (key, serde_json::to_string(m).unwrap_or_default())
        })
        .collect();
    Fingerprint {
        resource_version: meta.resource_version.clone().unwrap_or_default(),
        managers,
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
    /// Writes by the operator (or to kinds only it writes) between the two
    /// snapshots; empty when none.
    pub fn diff(&self, later: &Snapshot) -> Vec<String> {
        let mut out = Vec::new();
        for (key, a) in &self.0 {
            let Some(b) = later.0.get(key) else {
                out.push(format!("{key} disappeared"));
                continue;
            };
            if a.operator() != b.operator() {
                out.push(format!(
                    "{key} was written by {OPERATOR_MANAGER} (its managedFields entry changed; resourceVersion {} -> {})",
                    a.resource_version, b.resource_version
                ));
            } else if a.rv_is_strict && a.resource_version != b.resource_version {
                out.push(format!(
                    "{key} changed (resourceVersion {} -> {}; writers: {})",
                    a.resource_version,
                    b.resource_version,
                    changed_managers(a, b).join(", ")
                ));
            }
        }
        for key in later.0.keys().filter(|k| !self.0.contains_key(*k)) {
            out.push(format!("{key} appeared"));
        }
        out
    }

    /// Children written by others than the operator in between (status
    /// updates, the HPA's replica count): reported, not a failure.
    pub fn other_writes(&self, later: &Snapshot) -> Vec<String> {
        self.0
            .iter()
            .filter_map(|(key, a)| {
                let b = later.0.get(key)?;
                (!a.rv_is_strict
                    && a.resource_version != b.resource_version
                    && a.operator() == b.operator())
                .then(|| format!("{key} by {}", changed_managers(a, b).join("+")))
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

/// Managers whose managedFields entries differ between two fingerprints.
fn changed_managers(a: &Fingerprint, b: &Fingerprint) -> Vec<String> {
    let mut keys: Vec<&String> = a.managers.keys().chain(b.managers.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.managers.get(*k) != b.managers.get(*k))
        .map(|k| k.trim().to_string())
        .collect()
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
        .map(|s| (s.name_any(), decoded(&s)))
        .collect())
}

/// A Secret's data, decoded: key -> value.
pub fn decoded(secret: &Secret) -> BTreeMap<String, String> {
    secret
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
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

/// True when the AppStack `stack` is `obj`'s controller.
pub fn controlled_by<K: Resource>(obj: &K, stack: &str) -> bool {
    obj.owner_references()
        .iter()
        .any(|r| r.controller == Some(true) && r.name == stack)
}

/// Fails unless the operator left an object it did not create alone: no
/// owner reference, no label, and no field managed by any of its field
/// managers. (The resourceVersion is no proof: controllers write status.)
pub fn untouched<K: Resource>(what: &str, obj: &K) -> Result<()> {
    let managers: Vec<String> = obj
        .managed_fields()
        .iter()
        .filter_map(|f| f.manager.clone())
        .collect();
    let ours = managers.iter().any(|m| m.starts_with("appstack"));
    if ours || !obj.owner_references().is_empty() || !obj.labels().is_empty() {
        anyhow::bail!(
            "{what} was taken over: field managers {managers:?}, owners {:?}, labels {:?}",
            obj.owner_references()
                .iter()
                .map(|r| format!("{} {}", r.kind, r.name))
                .collect::<Vec<_>>(),
            obj.labels()
        );
    }
    Ok(())
}
