//! What every child shares: namespace, labels and the owner reference.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use super::error::BuildError;
use super::labels;
use crate::api::AppStack;

/// The owning stack, as every builder needs it.
pub struct StackRef {
    pub name: String,
    pub namespace: String,
    owner: OwnerReference,
}

impl StackRef {
    pub fn new(stack: &AppStack) -> Result<Self, BuildError> {
        let name = stack
            .meta()
            .name
            .clone()
            .ok_or(BuildError::MissingMetadata("name"))?;
        let namespace = stack
            .namespace()
            .ok_or(BuildError::MissingMetadata("namespace"))?;
        let uid = stack.uid().ok_or(BuildError::MissingMetadata("uid"))?;
        let owner = OwnerReference {
            api_version: AppStack::api_version(&()).into_owned(),
            kind: AppStack::kind(&()).into_owned(),
            name: name.clone(),
            uid,
            controller: Some(true),
            block_owner_deletion: Some(true),
        };
        Ok(Self {
            name,
            namespace,
            owner,
        })
    }

    /// Metadata of a child named `name` that belongs to `part` (a component's
    /// name, or redis / postgres).
    pub fn object_meta(&self, name: String, part: &str, role: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels::common(&self.name, part, role)),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }

    /// Labels selecting the pods of `part`; they never change, because a
    /// Deployment's or StatefulSet's selector is immutable.
    pub fn selector(&self, part: &str) -> BTreeMap<String, String> {
        labels::selector(&self.name, part)
    }
}
