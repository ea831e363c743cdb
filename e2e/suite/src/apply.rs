//! Server-Side Apply of YAML or JSON objects, the way `kubectl apply
//! --server-side` does it: the kind is resolved through discovery.

use anyhow::{Context, Result, anyhow};
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::GroupVersionKind;
use kube::discovery::{self, Scope};
use kube::{Client, ResourceExt};
use serde_json::Value;

pub const FIELD_MANAGER: &str = "appstack-e2e";

/// Applies every document of a (multi-document) YAML text into `namespace`
/// (for namespaced kinds).
pub async fn yaml(client: &Client, namespace: &str, text: &str) -> Result<Vec<DynamicObject>> {
    let mut applied = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value: Value = serde::Deserialize::deserialize(doc).context("parsing YAML")?;
        if value.is_null() {
            continue;
        }
        applied.push(object(client, namespace, value).await?);
    }
    Ok(applied)
}

/// Applies one object; `force` takes over fields another manager owns, as a
/// user re-applying their manifest does.
pub async fn object(client: &Client, namespace: &str, value: Value) -> Result<DynamicObject> {
    let (api, name) = api_for(client, namespace, &value).await?;
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&value),
    )
    .await
    .with_context(|| format!("server-side apply of {}", describe(&value)))
}

/// The dynamic Api for the object's kind, and its name.
pub async fn api_for(
    client: &Client,
    namespace: &str,
    value: &Value,
) -> Result<(Api<DynamicObject>, String)> {
    let api_version = value["apiVersion"]
        .as_str()
        .ok_or_else(|| anyhow!("object without apiVersion: {value}"))?;
    let kind = value["kind"]
        .as_str()
        .ok_or_else(|| anyhow!("object without kind: {value}"))?;
    let name = value["metadata"]["name"]
        .as_str()
        .ok_or_else(|| anyhow!("{kind} without metadata.name"))?
        .to_string();
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let (resource, caps) = discovery::pinned_kind(client, &gvk)
        .await
        .with_context(|| format!("discovering {api_version} {kind} (is its CRD installed?)"))?;
    let api = match caps.scope {
        Scope::Namespaced => Api::namespaced_with(client.clone(), namespace, &resource),
        Scope::Cluster => Api::all_with(client.clone(), &resource),
    };
    Ok((api, name))
}

fn describe(value: &Value) -> String {
    format!(
        "{} {}",
        value["kind"].as_str().unwrap_or("?"),
        value["metadata"]["name"].as_str().unwrap_or("?")
    )
}

/// "kind/name" of a dynamic object, for messages.
pub fn key(obj: &DynamicObject) -> String {
    let kind = obj.types.as_ref().map(|t| t.kind.as_str()).unwrap_or("?");
    format!("{kind}/{}", obj.name_any())
}
