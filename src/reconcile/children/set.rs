//! One reconcile's children: everything handed to [`ChildSet::add`] is
//! written, everything of the stack's that was not is pruned, and what went
//! wrong on the way is collected as [`Finding`]s instead of stopping the
//! rest. Like Stackable's `ClusterResources`, with two rules of ours on top:
//! an object this stack does not control is never written (no adoption), and
//! a child whose stamp shows it unchanged is not sent at all (see `stamp`).

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::findings::refused;
pub use super::findings::{Finding, Guard};
use super::holder::foreign_holder;
use super::kind::{ChildKind, Meta};
use super::memo::Key;
pub use super::tools::{Owner, Tools};
use super::write;
use crate::build::{Children, labels};
use crate::error::brief;

/// A child deleted because the spec no longer has it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pruned {
    pub kind: &'static str,
    pub name: String,
}

pub struct ChildSet<'a> {
    tools: Tools<'a>,
    children: &'a Children,
    owner: Owner,
    /// Names handed to `add`, per kind: what prune keeps.
    handed: HashMap<&'static str, BTreeSet<String>>,
    findings: Vec<Finding>,
    pruned: Vec<Pruned>,
}

impl<'a> ChildSet<'a> {
    pub fn new(tools: Tools<'a>, owner: Owner, children: &'a Children) -> Self {
        Self {
            tools,
            children,
            owner,
            handed: HashMap::new(),
            findings: Vec::new(),
            pruned: Vec::new(),
        }
    }

    /// What this set applies.
    pub fn children(&self) -> &'a Children {
        self.children
    }

    /// Keeps a child made this round by other means (a generated Secret,
    /// created whole and stamped by `stamped_new`) from the prune, without
    /// writing it.
    pub fn keep<K: ChildKind>(&mut self, name: &str) {
        self.handed
            .entry(K::KIND)
            .or_default()
            .insert(name.to_string());
    }

    /// Writes `object` unless its name is someone else's, it is wired to a
    /// child whose name is, or its stamp shows it unchanged. Whatever goes
    /// wrong is kept as a finding.
    pub async fn add<K: ChildKind>(&mut self, object: &K) {
        let name = object.name_any();
        self.handed.entry(K::KIND).or_default().insert(name.clone());
        // Fail closed: never wire a component to a store's Service, Secret
        // or StatefulSet that another stack (or a user) holds.
        let held: Vec<String> = self
            .children
            .needs
            .get(&name)
            .into_iter()
            .flatten()
            .filter(|needed| {
                self.findings
                    .iter()
                    .any(|f| matches!(f, Finding::Conflict { .. }) && f.name() == needed.as_str())
            })
            .cloned()
            .collect();
        let result = if !held.is_empty() {
            Err(Finding::Blocked {
                kind: K::KIND,
                name,
                on: held,
            })
        } else if let Some(unguarded) = self.unguarded::<K>(&name).await {
            Err(unguarded)
        } else {
            write::write(self.tools, &self.owner, object, name).await
        };
        if let Err(finding) = result {
            self.findings.push(finding);
        }
    }

    /// Fail closed on a missing guard: a workload whose NetworkPolicy (the
    /// one of its name, applied before it) was refused this round, and does
    /// not stand from an earlier round, is not applied; an existing one is
    /// stopped when its kind says how. A refused update of a policy that
    /// exists keeps the old policy in force, so the workload goes ahead.
    async fn unguarded<K: ChildKind>(&self, name: &str) -> Option<Finding> {
        if !K::GUARDED
            || !self
                .children
                .network_policies
                .iter()
                .any(|p| p.metadata.name.as_deref() == Some(name))
        {
            return None;
        }
        let failed = self.findings.iter().find(|f| {
            f.kind() == <NetworkPolicy as k8s_openapi::Resource>::KIND && f.name() == name
        })?;
        let namespace = &self.owner.namespace;
        let caches = self.tools.caches;
        let standing = !matches!(failed, Finding::Conflict { .. })
            && caches
                .get::<Meta<NetworkPolicy>>(namespace, name)
                .is_some_and(|p| foreign_holder(p.meta(), &self.owner.uid).is_none());
        if standing {
            return None;
        }
        let cached = caches.get::<K::Cached>(namespace, name);
        // A name someone else holds is reported by the write's own check.
        let ours = cached
            .as_ref()
            .filter(|c| foreign_holder(c.meta(), &self.owner.uid).is_none());
        let guard = match ours {
            None if cached.is_some() => return None,
            None => Guard::NotCreated,
            Some(existing) => {
                let api: Api<K> = Api::namespaced(self.tools.client.clone(), namespace);
                match K::stop(&api, existing).await {
                    Ok(true) => {
                        warn!(kind = K::KIND, %name, "stopped: its NetworkPolicy is missing");
                        Guard::Stopped
                    }
                    Ok(false) => Guard::Held,
                    Err(error) => {
                        return Some(refused::<K>(
                            name,
                            format!(
                                "stopping it while its NetworkPolicy is missing: {}",
                                brief(&error)
                            ),
                        ));
                    }
                }
            }
        };
        Some(Finding::Unguarded {
            kind: K::KIND,
            name: name.to_string(),
            guard,
        })
    }

    /// Deletes this stack's children of kind `K` that were not handed to
    /// `add`. Candidates carry the stack's instance label and its controller
    /// reference, so nothing the operator did not create is touched. PVCs
    /// are never deleted here: the StatefulSet's retention policy decides.
    pub async fn prune<K: ChildKind>(&mut self) {
        let Some(store) = self.tools.caches.store::<K::Cached>() else {
            return;
        };
        let handed = self.handed.get(K::KIND);
        let owner = &self.owner;
        let mut orphans: Vec<String> = store
            .state()
            .iter()
            .filter(|o| o.namespace().as_deref() == Some(owner.namespace.as_str()))
            .filter(|o| o.labels().get(labels::INSTANCE) == Some(&owner.name))
            .filter(|o| {
                o.owner_references()
                    .iter()
                    .any(|r| r.controller == Some(true) && r.uid == owner.uid)
            })
            .map(|o| o.name_any())
            .filter(|name| handed.is_none_or(|h| !h.contains(name)))
            .collect();
        orphans.sort();
        for orphan in orphans {
            match self.delete::<K>(orphan).await {
                Ok(pruned) => self.pruned.push(pruned),
                Err(finding) => self.findings.push(finding),
            }
        }
    }

    async fn delete<K: ChildKind>(&self, name: String) -> Result<Pruned, Finding> {
        let api: Api<K> = Api::namespaced(self.tools.client.clone(), &self.owner.namespace);
        // Background propagation: pods, ReplicaSets and so on follow through
        // the garbage collector.
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(refused::<K>(&name, format!("deleting it: {}", brief(&e)))),
        }
        info!(kind = K::KIND, %name, "deleted child that is no longer desired");
        self.tools.memo.forget(&Key {
            kind: K::KIND,
            namespace: self.owner.namespace.clone(),
            name: name.clone(),
        });
        Ok(Pruned {
            kind: K::KIND,
            name,
        })
    }

    /// The children pruned so far, in the order they were deleted.
    pub fn pruned(&self) -> &[Pruned] {
        &self.pruned
    }

    /// What went wrong, in the order it happened.
    pub fn finish(self) -> Vec<Finding> {
        self.findings
    }
}
