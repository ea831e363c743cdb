//! One reconcile's children: everything handed to [`ChildSet::add`] is
//! applied, everything of the stack's that was not is pruned, and what went
//! wrong on the way is collected as [`Finding`]s instead of stopping the
//! rest. Like Stackable's `ClusterResources`, with two rules of ours on top:
//! an object this stack does not control is never written (no adoption), and
//! a child the memo proves unchanged is not sent at all.

use std::collections::{BTreeSet, HashMap};

use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::apply::{Key, hash_of};
use super::context::Context;
use super::kinds::{ChildKind, Meta};
use super::ownership::foreign_holder;
use crate::build::{Children, FIELD_MANAGER, labels};
use crate::error::brief;

/// What kept one child from being what the spec says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// Its name is held by an object this stack does not control.
    Conflict {
        kind: &'static str,
        name: String,
        holder: String,
    },
    /// The API server forbids this change to an existing object in place.
    Rejected {
        kind: &'static str,
        name: String,
        message: String,
    },
    /// The API server refused the request, or could not be reached.
    Refused {
        kind: &'static str,
        name: String,
        message: String,
    },
    /// Not applied: it changed after this reconcile read it (the apply named
    /// the version read). The change brings another reconcile.
    Outdated { kind: &'static str, name: String },
    /// Not applied: it is wired to children whose names are someone else's,
    /// and would send its credentials or traffic there.
    Blocked {
        kind: &'static str,
        name: String,
        on: Vec<String>,
    },
    /// Runs pods that its NetworkPolicy (of the same name) guards, and that
    /// policy does not exist: the API server refused it, or its name is
    /// someone else's. Not applied; see [`Guard`] for what runs meanwhile.
    Unguarded {
        kind: &'static str,
        name: String,
        guard: Guard,
    },
}

/// What an unguarded workload does while its NetworkPolicy is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    /// It does not exist, and is not created.
    NotCreated,
    /// It existed and was scaled to 0 (a store: no store pod runs open to
    /// every namespace).
    Stopped,
    /// It exists and keeps running as it was, unchanged (a component or a
    /// backup schedule: stopping it would be an outage nobody asked for).
    Held,
}

impl Finding {
    pub fn name(&self) -> &str {
        match self {
            Finding::Conflict { name, .. }
            | Finding::Rejected { name, .. }
            | Finding::Refused { name, .. }
            | Finding::Outdated { name, .. }
            | Finding::Blocked { name, .. }
            | Finding::Unguarded { name, .. } => name,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Finding::Conflict { kind, .. }
            | Finding::Rejected { kind, .. }
            | Finding::Refused { kind, .. }
            | Finding::Outdated { kind, .. }
            | Finding::Blocked { kind, .. }
            | Finding::Unguarded { kind, .. } => kind,
        }
    }
}

/// The stack a set belongs to.
pub struct Owner {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

pub struct ChildSet<'a> {
    ctx: &'a Context,
    children: &'a Children,
    owner: Owner,
    /// Names handed to `add`, per kind: what prune keeps.
    handed: HashMap<&'static str, BTreeSet<String>>,
    findings: Vec<Finding>,
    /// Children deleted by the prune (kind, name), for the report.
    pruned: Vec<(&'static str, String)>,
}

impl<'a> ChildSet<'a> {
    pub fn new(ctx: &'a Context, owner: Owner, children: &'a Children) -> Self {
        Self {
            ctx,
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

    /// Keeps a child made this round by other means (a Secret created
    /// whole) from the prune, without applying it.
    pub fn keep<K: ChildKind>(&mut self, name: &str) {
        self.handed
            .entry(K::KIND)
            .or_default()
            .insert(name.to_string());
    }

    /// Applies `object` unless its name is someone else's, it is wired to a
    /// child whose name is, or the memo proves it unchanged. Whatever goes
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
            self.apply(object, name).await
        };
        if let Err(finding) = result {
            self.findings.push(finding);
        }
    }

    async fn apply<K: ChildKind>(&self, object: &K, name: String) -> Result<(), Finding> {
        let ctx = self.ctx;
        let namespace = &self.owner.namespace;
        let cached = ctx.caches.get::<K::Cached>(namespace, &name);
        let holder = match &cached {
            Some(c) => foreign_holder(c.meta(), &self.owner.uid),
            None => self.holder_of_uncached::<K>(&name).await?,
        };
        if let Some(holder) = holder {
            return Err(Finding::Conflict {
                kind: K::KIND,
                name,
                holder,
            });
        }
        let hash = hash_of(object).map_err(|e| refused::<K>(&name, e.to_string()))?;
        let version = cached.as_ref().and_then(|c| c.resource_version());
        let key = Key {
            kind: K::KIND,
            namespace: namespace.clone(),
            name,
        };
        if ctx.memo.unchanged(&key, hash, version.as_deref()) {
            ctx.metrics.applies_skipped.inc();
            return Ok(());
        }
        K::before_apply(&ctx.client, object, cached.as_deref())
            .await
            .map_err(|e| refused::<K>(&key.name, brief(&e)))?;
        ctx.metrics.applies.inc();
        let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
        let params = PatchParams::apply(FIELD_MANAGER).force();
        match api.patch(&key.name, &params, &Patch::Apply(object)).await {
            Ok(applied) => {
                ctx.memo
                    .remember(key, &self.owner.name, hash, applied.resource_version());
                Ok(())
            }
            Err(error) => {
                ctx.memo.forget(&key);
                Err(classify::<K>(&key.name, &error, cached.is_some()))
            }
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
        let standing = !matches!(failed, Finding::Conflict { .. })
            && self
                .ctx
                .caches
                .get::<Meta<NetworkPolicy>>(namespace, name)
                .is_some_and(|p| foreign_holder(p.meta(), &self.owner.uid).is_none());
        if standing {
            return None;
        }
        let cached = self.ctx.caches.get::<K::Cached>(namespace, name);
        // A name someone else holds is reported by the apply's own check.
        let ours = cached
            .as_ref()
            .filter(|c| foreign_holder(c.meta(), &self.owner.uid).is_none());
        let guard = match ours {
            None if cached.is_some() => return None,
            None => Guard::NotCreated,
            Some(existing) => {
                let api: Api<K> = Api::namespaced(self.ctx.client.clone(), namespace);
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

    /// Who holds a name the cache does not show: nobody, or an object the
    /// label-filtered watches do not see (made outside AppStack). Costs one
    /// metadata read, only when a child is about to be created.
    async fn holder_of_uncached<K: ChildKind>(
        &self,
        name: &str,
    ) -> Result<Option<String>, Finding> {
        let api: Api<K> = Api::namespaced(self.ctx.client.clone(), &self.owner.namespace);
        let meta = api
            .get_metadata_opt(name)
            .await
            .map_err(|e| refused::<K>(name, format!("reading it: {}", brief(&e))))?;
        Ok(meta.and_then(|m| foreign_holder(&m.metadata, &self.owner.uid)))
    }

    /// Deletes this stack's children of kind `K` that were not handed to
    /// `add`. Candidates carry the stack's instance label and its controller
    /// reference, so nothing the operator did not create is touched. PVCs
    /// are never deleted here: the StatefulSet's retention policy decides.
    pub async fn prune<K: ChildKind>(&mut self) {
        let Some(store) = self.ctx.caches.store::<K::Cached>() else {
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
            match self.delete::<K>(orphan.clone()).await {
                Ok(()) => self.pruned.push((K::KIND, orphan)),
                Err(finding) => self.findings.push(finding),
            }
        }
    }

    async fn delete<K: ChildKind>(&self, name: String) -> Result<(), Finding> {
        let api: Api<K> = Api::namespaced(self.ctx.client.clone(), &self.owner.namespace);
        // Background propagation: pods, ReplicaSets and so on follow through
        // the garbage collector.
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(refused::<K>(&name, format!("deleting it: {}", brief(&e)))),
        }
        info!(kind = K::KIND, %name, "deleted child that is no longer desired");
        self.ctx.memo.forget(&Key {
            kind: K::KIND,
            namespace: self.owner.namespace.clone(),
            name: name.clone(),
        });
        Ok(())
    }

    /// The children the prune deleted (kind, name), in that order.
    pub fn pruned(&self) -> &[(&'static str, String)] {
        &self.pruned
    }

    /// What went wrong, in the order it happened.
    pub fn finish(self) -> Vec<Finding> {
        self.findings
    }
}

fn refused<K: ChildKind>(name: &str, message: String) -> Finding {
    Finding::Refused {
        kind: K::KIND,
        name: name.to_string(),
        message,
    }
}

/// A refused apply: a change Kubernetes forbids on an existing object (with
/// the kind's advice), or any other refusal in the API server's own words.
fn classify<K: ChildKind>(name: &str, error: &kube::Error, existed: bool) -> Finding {
    match error {
        kube::Error::Api(s) if s.code == 422 && existed && forbids_in_place(&s.message) => {
            let advice = K::in_place_advice(name)
                .map(|a| format!(". {a}"))
                .unwrap_or_default();
            Finding::Rejected {
                kind: K::KIND,
                name: name.to_string(),
                message: format!("{}{advice}", brief(error)),
            }
        }
        // Only an apply that names a resourceVersion meets this (the
        // operator's applies force ownership).
        kube::Error::Api(s) if s.code == 409 => Finding::Outdated {
            kind: K::KIND,
            name: name.to_string(),
        },
        _ => refused::<K>(name, brief(error)),
    }
}

/// The API server's words for a field that cannot change once set.
fn forbids_in_place(message: &str) -> bool {
    message.contains("field is immutable") || message.contains("Forbidden: updates to")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_immutable_fields_read_as_a_forbidden_change() {
        assert!(forbids_in_place(
            "StatefulSet.apps \"s-postgres\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas' are forbidden"
        ));
        assert!(forbids_in_place(
            "Deployment.apps \"s-web\" is invalid: spec.selector: Invalid value: ...: field is immutable"
        ));
        assert!(!forbids_in_place(
            "StatefulSet.apps \"s-postgres\" is invalid: spec.volumeClaimTemplates[0].spec.storageClassName: Invalid value: \"Bad\""
        ));
    }
}
