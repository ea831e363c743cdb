//! What a child kind is: how its cache holds it and the hooks the child set
//! calls. The kinds themselves are declared in `kinds`.

use std::fmt::Debug;

use futures::future::BoxFuture;
use kube::api::Api;
use kube::core::NamespaceResourceScope;
use kube::{Client, Resource};
use serde::de::DeserializeOwned;

use super::stamp::Version;
use crate::build::Children;
use crate::lean::{self, Slim};

/// What a watch cache can hold: a whole child or its metadata only.
pub trait Cacheable:
    Resource<Scope = NamespaceResourceScope, DynamicType = ()>
    + DeserializeOwned
    + Clone
    + Debug
    + Send
    + Sync
    + 'static
{
}

impl<C> Cacheable for C where
    C: Resource<Scope = NamespaceResourceScope, DynamicType = ()>
        + DeserializeOwned
        + Clone
        + Debug
        + Send
        + Sync
        + 'static
{
}

/// A child as the applier sends it: cacheable, with a static kind name,
/// and serializable.
pub trait Child: Cacheable + k8s_openapi::Resource + serde::Serialize {}

impl<K: Cacheable + k8s_openapi::Resource + serde::Serialize> Child for K {}

/// One kind of child object.
pub trait ChildKind: Child {
    /// What the watch cache keeps: `Self` when the reconcile reads the
    /// object's spec or status, [`Meta<Self>`] when names and owners suffice.
    type Cached: Cacheable;

    /// The built objects of this kind.
    fn desired(children: &Children) -> &[Self];

    /// Trims a watched copy before it is cached, to what the reconcile
    /// reads: names, the operator's own labels and the controller, plus
    /// what a kind's hooks and status need. Anyone may label an object
    /// `managed-by: appstack-operator`, so what the caches keep of it must
    /// not depend on how large it is (see `lean`).
    fn trim(cached: &mut Self::Cached) {
        lean::keep(cached.meta_mut());
    }

    /// Runs before `desired` is sent (never when it is skipped as unchanged),
    /// with the cached copy when there is one.
    fn before_apply<'a>(
        _client: &'a Client,
        _desired: &'a Self,
        _cached: Option<&'a Self::Cached>,
    ) -> BoxFuture<'a, Result<(), kube::Error>> {
        Box::pin(async { Ok(()) })
    }

    /// How a write to `desired` shows in the cache (see [`Version`]): by
    /// default not at all; kinds whose spec the API server counts in
    /// `metadata.generation` say so, so that anyone's edit shows there.
    fn versioning(_desired: &Self) -> Version {
        Version::None
    }

    /// What stands for the version in a cached copy.
    fn observed(cached: &Self::Cached) -> Option<i64> {
        cached.meta().generation
    }

    /// What stands for the version in a write's answer.
    fn written(object: &Self) -> Option<i64> {
        object.meta().generation
    }

    /// For a kind of an API the cluster may not serve (a CRD of someone
    /// else's): what to install. Its watch then counts as listed when the
    /// API is missing (or forbidden), so the other kinds still reconcile,
    /// and [`super::Caches::served`] tells whether it is there.
    const OPTIONAL: Option<&'static str> = None;

    /// Whether its objects run pods that the NetworkPolicy of the same name
    /// guards: such an object is applied only once that policy exists.
    const GUARDED: bool = false;

    /// Makes an existing object of a guarded kind run no pods while its
    /// policy is missing. True when none runs now; false when the kind is
    /// only held (left as it is, not updated).
    fn stop<'a>(
        _api: &'a Api<Self>,
        _cached: &'a Self::Cached,
    ) -> BoxFuture<'a, Result<bool, kube::Error>> {
        Box::pin(async { Ok(false) })
    }

    /// What to do when the API server forbids changing an existing object of
    /// this kind in place; `None` when nothing more than its message helps.
    fn in_place_advice(_name: &str) -> Option<String> {
        None
    }
}

/// A child cached as metadata, trimmed while it is decoded.
pub type Meta<K> = Slim<K>;

/// Objects per page of every watch's list (at start and after a re-list).
/// A page arrives whole, before anything is trimmed, and anyone can label an
/// object of about 1.5 MB as ours (labels are metadata too): 10 of the
/// largest objects the API server stores stay well within the operator's
/// memory, so such objects cannot make a leader's start-up spike it.
pub const LIST_PAGE: u32 = 10;
