//! Writing one child: created in one request when the cache does not show
//! it, applied when its stamp says it may differ, left alone otherwise.
//!
//! A create is a POST, which fails when the name exists: an object the
//! label-filtered watches do not show (made outside AppStack) is never
//! touched, and reading it first is needed only then, to say who holds it.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};

use super::created;
use super::findings::{Finding, classify, refused};
use super::holder::foreign_holder;
use super::kind::ChildKind;
use super::memo::{Key, hash_of};
use super::stamp::{self, Seen, Stamp, Version, Write};
use super::tools::{Owner, Tools};
use crate::build::{FIELD_MANAGER, labels};
use crate::error::brief;
use crate::lean::STAMP;

pub(super) async fn write<K: ChildKind>(
    tools: Tools<'_>,
    owner: &Owner,
    object: &K,
    name: String,
) -> Result<(), Finding> {
    let cached = tools.caches.get::<K::Cached>(&owner.namespace, &name);
    if let Some(holder) = cached
        .as_ref()
        .and_then(|c| foreign_holder(c.meta(), &owner.uid))
    {
        return Err(Finding::Conflict {
            kind: K::KIND,
            name,
            holder,
        });
    }
    let hash = hash_of(object).map_err(|e| refused::<K>(&name, e.to_string()))?;
    let key = Key {
        kind: K::KIND,
        namespace: owner.namespace.clone(),
        name,
    };
    let remembered = tools.memo.version(&key);
    let seen = cached
        .as_ref()
        .map(|c| seen(object, c.meta(), K::observed(c)));
    let api: Api<K> = Api::namespaced(tools.client.clone(), &owner.namespace);
    let written = match stamp::decide(
        hash,
        K::versioning(object),
        seen.as_ref(),
        remembered.as_deref(),
    ) {
        Write::Skip => {
            tools.metrics.applies_skipped.inc();
            if let Some(seen) = seen.filter(|s| s.generation.is_none()) {
                let version = seen.resource_version.map(str::to_string);
                tools.memo.remember(key, &owner.name, version);
            }
            return Ok(());
        }
        Write::Create(stamp) => create(tools, owner, &api, object, &key.name, stamp).await,
        Write::Apply { stamp, convert } => {
            if convert {
                created::convert(&api, &key.name)
                    .await
                    .map_err(|e| takeover_failed::<K>(&key.name, &e))?;
            }
            K::before_apply(tools.client, object, cached.as_deref())
                .await
                .map_err(|e| refused::<K>(&key.name, brief(&e)))?;
            apply(tools, &api, object, &key.name, stamp).await
        }
    };
    match written {
        // Only kinds without a version are compared by resourceVersion.
        Ok(version) if K::versioning(object) == Version::None => {
            tools.memo.remember(key, &owner.name, version);
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(finding) => {
            tools.memo.forget(&key);
            Err(finding)
        }
    }
}

/// The cached copy as the decision reads it.
fn seen<'a, K: Resource>(desired: &K, cached: &'a ObjectMeta, version: Option<i64>) -> Seen<'a> {
    let own = |l: Option<&BTreeMap<String, String>>| -> BTreeMap<String, String> {
        l.into_iter()
            .flatten()
            .filter(|(k, _)| labels::OWN.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    Seen {
        stamp: cached
            .annotations
            .as_ref()
            .and_then(|a| a.get(STAMP))
            .and_then(|s| Stamp::parse(s)),
        labels_match: own(desired.meta().labels.as_ref()) == own(cached.labels.as_ref()),
        generation: version,
        resource_version: cached.resource_version.as_deref(),
    }
}

fn stamped<K: ChildKind>(object: &K, stamp: Stamp) -> K {
    let mut object = object.clone();
    object
        .meta_mut()
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(STAMP.to_string(), stamp.to_string());
    object
}

/// A child created outside the set in one Server-Side Apply (a generated
/// Secret, see `credentials::create`), stamped as the set stamps what it
/// writes, so that the set finds it current and sends nothing more. Not
/// marked `created`: an apply leaves no Update entry to convert.
pub fn stamped_new<K: ChildKind>(object: &K) -> Result<K, serde_json::Error> {
    let generation = match K::versioning(object) {
        Version::None => None,
        Version::Generation { .. } => Some(1),
        Version::Spec(spec) => Some(spec),
    };
    let stamp = Stamp {
        hash: hash_of(object)?,
        generation,
        created: false,
    };
    Ok(stamped(object, stamp))
}

/// Remembers the resourceVersion such a create answered with, as the set
/// remembers its own writes (kinds compared by resourceVersion only): an
/// edit made before the next reconcile is then seen and undone.
pub fn remember_created<K: ChildKind>(
    tools: Tools<'_>,
    owner: &Owner,
    object: &K,
    version: Option<String>,
) {
    if K::versioning(object) != Version::None {
        return;
    }
    let key = Key {
        kind: K::KIND,
        namespace: owner.namespace.clone(),
        name: object.name_any(),
    };
    tools.memo.remember(key, &owner.name, version);
}

/// Creates it; returns the resourceVersion it got.
async fn create<K: ChildKind>(
    tools: Tools<'_>,
    owner: &Owner,
    api: &Api<K>,
    object: &K,
    name: &str,
    stamp: Stamp,
) -> Result<Option<String>, Finding> {
    tools.metrics.applies.inc();
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.to_string()),
        ..PostParams::default()
    };
    // A POST may name no resourceVersion (the API server refuses it): a
    // Secret applied over the version read names one, and is POSTed only
    // when the watch has not delivered it yet, so the 409 is what tells.
    let mut body = stamped(object, stamp);
    body.meta_mut().resource_version = None;
    match api.create(&params, &body).await {
        Ok(made) => match stamp::correction(stamp, K::written(&made)) {
            // A kind declared with the wrong idea of its generation.
            Some(right) => {
                created::convert(api, name)
                    .await
                    .map_err(|e| takeover_failed::<K>(name, &e))?;
                apply(
                    tools,
                    api,
                    object,
                    name,
                    Stamp {
                        created: false,
                        ..right
                    },
                )
                .await
            }
            None => Ok(made.resource_version()),
        },
        Err(kube::Error::Api(s)) if s.code == 409 => {
            taken(tools, owner, api, object, name, stamp).await
        }
        Err(error) => Err(classify::<K>(name, &error, false)),
    }
}

/// A create found the name taken: by someone else (a conflict, reported
/// with who), or by this stack itself since the cache was filled (e.g. a
/// generated Secret created a moment ago, see `stamped_new`, that the
/// watch has not delivered yet), which is then applied.
async fn taken<K: ChildKind>(
    tools: Tools<'_>,
    owner: &Owner,
    api: &Api<K>,
    object: &K,
    name: &str,
    stamp: Stamp,
) -> Result<Option<String>, Finding> {
    let meta = api
        .get_metadata_opt(name)
        .await
        .map_err(|e| refused::<K>(name, format!("reading it: {}", brief(&e))))?;
    // Gone again meanwhile: its deletion wakes the stack.
    let Some(meta) = meta.map(|m| m.metadata) else {
        return Err(Finding::Outdated {
            kind: K::KIND,
            name: name.to_string(),
        });
    };
    if let Some(holder) = foreign_holder(&meta, &owner.uid) {
        return Err(Finding::Conflict {
            kind: K::KIND,
            name: name.to_string(),
            holder,
        });
    }
    // Most likely it is what this stack made a moment ago, so the apply
    // changes nothing but the stamp (a wrong guess costs one more write).
    let generation = match K::versioning(object) {
        Version::None => None,
        Version::Spec(spec) => Some(spec),
        Version::Generation { annotations } => meta.generation.map(|g| g + i64::from(annotations)),
    };
    created::convert_read(api, name, meta)
        .await
        .map_err(|e| takeover_failed::<K>(name, &e))?;
    let stamp = Stamp {
        generation,
        created: false,
        ..stamp
    };
    apply(tools, api, object, name, stamp).await
}

/// Applies it (again with the right stamp when the guessed generation was
/// wrong); returns the resourceVersion it has then.
async fn apply<K: ChildKind>(
    tools: Tools<'_>,
    api: &Api<K>,
    object: &K,
    name: &str,
    stamp: Stamp,
) -> Result<Option<String>, Finding> {
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut stamp = stamp;
    for _ in 0..2 {
        tools.metrics.applies.inc();
        let applied = api
            .patch(name, &params, &Patch::Apply(&stamped(object, stamp)))
            .await
            .map_err(|e| classify::<K>(name, &e, true))?;
        match stamp::correction(stamp, K::written(&applied)) {
            Some(right) => stamp = right,
            None => return Ok(applied.resource_version()),
        }
    }
    // Moved twice: someone else writes it too; the next reconcile looks again.
    Ok(None)
}

/// Taking over a created child's fields failed: it changed since it was read
/// (its change brings another reconcile), or the API server refused.
fn takeover_failed<K: ChildKind>(name: &str, error: &kube::Error) -> Finding {
    match error {
        kube::Error::Api(s) if s.code == 409 => Finding::Outdated {
            kind: K::KIND,
            name: name.to_string(),
        },
        _ => refused::<K>(name, format!("taking over its fields: {}", brief(error))),
    }
}
