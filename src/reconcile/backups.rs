//! The backup side of a reconcile: backup volumes made once (they are no
//! child of the stack, so they outlive it), and what the backup pods said,
//! for status.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt::Debug;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, PostParams};
use kube::core::NamespaceResourceScope;
use kube::{Client, Resource, ResourceExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use kube::runtime::events::{Event, EventType};

use super::children::{Finding, Meta};
use super::context::Context;
use crate::api::{AppStack, BackupStatus};
use crate::build::stores::Engine;
use crate::build::{FIELD_MANAGER, backup, labels, stores};
use crate::error::brief;
use crate::lean::LeanMeta;
use crate::redact::Known;
use crate::status;

/// Creates each backup volume that does not exist. One that exists is used
/// when AppStack made it for this stack's name (a stack deleted and made
/// again finds its backups); any other claim of that name is reported.
pub async fn ensure_volumes(
    client: &Client,
    namespace: &str,
    stack: &str,
    claims: &[PersistentVolumeClaim],
) -> Vec<Finding> {
    let api: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let mut findings = Vec::new();
    for claim in claims {
        let name = claim.name_any();
        let refused = |message: String| Finding::Refused {
            kind: "PersistentVolumeClaim",
            name: name.clone(),
            message,
        };
        match api.get_metadata_opt(&name).await {
            Ok(Some(found)) => {
                let labels = found.labels();
                let ours = labels.get(backup::BACKUP_OF) == Some(&stack.to_string())
                    && labels.get(labels::MANAGED_BY_KEY).map(String::as_str)
                        == Some(labels::MANAGED_BY);
                if !ours {
                    findings.push(Finding::Conflict {
                        kind: "PersistentVolumeClaim",
                        name,
                        holder: "was not created by AppStack as this stack's backup volume, which \
                                 never takes over an object it did not create (delete it or rename \
                                 it if nothing needs it)"
                            .into(),
                    });
                }
            }
            Ok(None) => {
                let params = PostParams {
                    field_manager: Some(FIELD_MANAGER.to_string()),
                    ..PostParams::default()
                };
                match api.create(&params, claim).await {
                    Ok(_) => tracing::info!(claim = %name, "created backup volume"),
                    // Made meanwhile (another reconcile): checked next time.
                    Err(kube::Error::Api(s)) if s.code == 409 => {}
                    Err(e) => findings.push(refused(format!("creating it: {}", brief(&e)))),
                }
            }
            Err(e) => findings.push(refused(format!("reading it: {}", brief(&e)))),
        }
    }
    findings
}

/// Objects per page when listing a store's backup Jobs and pods, and the
/// most objects one lookup reads. Anyone can make Jobs and pods that carry
/// the labels these lists select by, with about 1.5 MB of labels each, and a
/// page arrives whole (and is copied once more) before anything is trimmed:
/// one object a page bounds what a lookup holds to one object's size,
/// whatever their number. The operator's own are few (a CronJob keeps a few
/// Jobs, a Job retries a few pods), so a lookup stays short unless a tenant
/// plants more than MAX_OBJECTS in its own namespace, which then hides only
/// its own stack's backup status (and is logged).
pub(super) const PAGE: u32 = 1;
pub(super) const MAX_OBJECTS: usize = 60;

/// The label the Job controller puts on the pods of a Job: the Job's uid.
/// It narrows the list only; anyone can copy it, so the pods' controller
/// reference decides.
const JOB_UID: &str = "batch.kubernetes.io/controller-uid";

/// What each backed-up store's backup pods say (without the passwords in
/// `known`), and whether one is still running (its result is then worth a
/// look soon).
pub async fn observe(
    ctx: &Context,
    stack: &AppStack,
    known: &Known,
) -> (BTreeMap<crate::api::StoreKind, BackupStatus>, bool) {
    let mut out = BTreeMap::new();
    let mut running = false;
    for engine in stores::of(&stack.spec) {
        if stack.spec.backup(engine.kind()).is_none() {
            continue;
        }
        match backup_pods(ctx, stack, engine).await {
            Ok(pods) => {
                running |= pods.iter().any(|p| {
                    matches!(
                        p.status.as_ref().and_then(|s| s.phase.as_deref()),
                        Some("Pending" | "Running")
                    )
                });
                out.insert(engine.kind(), status::backup(&pods, known));
            }
            Err(error) => {
                tracing::warn!(%error, "could not list the backup pods");
                // Keep what status said rather than forget it.
                let old = stack
                    .status
                    .as_ref()
                    .and_then(|s| s.store(engine.kind()))
                    .and_then(|s| s.backup.clone())
                    .unwrap_or_default();
                out.insert(engine.kind(), old);
            }
        }
    }
    (out, running)
}

/// A store's backup pods, found through what the operator made: its backup
/// CronJob (cached, and controlled by this stack), the Jobs that CronJob
/// controls, and the pods those Jobs control. Labels only narrow the lists:
/// a Job or pod anyone made with the same labels is controlled by neither
/// and is ignored.
async fn backup_pods(
    ctx: &Context,
    stack: &AppStack,
    engine: &dyn Engine,
) -> Result<Vec<Pod>, kube::Error> {
    let namespace = stack.namespace().unwrap_or_default();
    let name = stack.name_any();
    let stack_uid = stack.uid().unwrap_or_default();
    let cron = ctx
        .caches
        .get::<Meta<CronJob>>(&namespace, &backup::name(&name, engine))
        .filter(|c| controller_uid(c.meta()) == Some(stack_uid.as_str()))
        .and_then(|c| c.uid());
    let Some(cron) = cron else {
        return Ok(Vec::new());
    };
    let selector = format!(
        "{},{}={}",
        labels::stack_selector(&name),
        labels::NAME,
        backup::part(engine)
    );
    let jobs: Api<Meta<Job>> = Api::namespaced(ctx.client.clone(), &namespace);
    let jobs: Vec<String> = controlled(&jobs, &selector, &[cron])
        .await?
        .iter()
        .filter_map(|j| j.uid())
        .collect();
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let selector = format!("{JOB_UID} in ({})", jobs.join(","));
    let pods: Api<BackupPod> = Api::namespaced(ctx.client.clone(), &namespace);
    let pods = controlled(&pods, &selector, &jobs).await?;
    Ok(pods
        .into_iter()
        .map(|p| Pod {
            metadata: p.metadata,
            status: p.status,
            ..Pod::default()
        })
        .collect())
}

/// A pod as the backup lookup decodes it: its metadata lean (a pod anyone
/// made with the backup pods' labels and 1 MB more is skipped unread, see
/// `lean`) and its status, which only the kubelet and scheduler write.
#[derive(Clone, Debug)]
struct BackupPod {
    metadata: ObjectMeta,
    status: Option<PodStatus>,
}

impl<'de> Deserialize<'de> for BackupPod {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(default)]
            metadata: LeanMeta,
            status: Option<PodStatus>,
        }
        let wire = Wire::deserialize(deserializer)?;
        Ok(Self {
            metadata: wire.metadata.into(),
            status: wire.status,
        })
    }
}

impl Resource for BackupPod {
    type DynamicType = ();
    type Scope = NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        Pod::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        Pod::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        Pod::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        Pod::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

/// The objects a label selector finds that one of `owners` (uids) controls,
/// listed a page at a time; each page is dropped but for those.
async fn controlled<K>(
    api: &Api<K>,
    selector: &str,
    owners: &[String],
) -> Result<Vec<K>, kube::Error>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let mut params = ListParams::default().labels(selector).limit(PAGE);
    let mut kept = Vec::new();
    for _ in 0..MAX_OBJECTS.div_ceil(PAGE as usize) {
        let page = api.list(&params).await?;
        kept.extend(page.items.into_iter().filter(|o| {
            controller_uid(o.meta()).is_some_and(|uid| owners.iter().any(|u| u == uid))
        }));
        match page.metadata.continue_.filter(|token| !token.is_empty()) {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(kept),
        }
    }
    tracing::warn!(
        kind = %K::kind(&()),
        %selector,
        "stopped after {MAX_OBJECTS} objects: more carry these labels than backups make"
    );
    Ok(kept)
}

/// The uid of an object's controller, if it has one.
fn controller_uid(meta: &ObjectMeta) -> Option<&str> {
    meta.owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true))
        .map(|r| r.uid.as_str())
}

/// A Normal Event saying what a restored store was restored from: the
/// restore container's own account (which backup, which were skipped),
/// read from the pod before the next reconcile rolls it without that
/// container, without the passwords in `known`.
pub async fn report_restore(ctx: &Context, stack: &AppStack, engine: &dyn Engine, known: &Known) {
    let namespace = stack.namespace().unwrap_or_default();
    let pod_name = format!("{}-0", engine.secret_name(&stack.name_any()));
    let said = match Api::<Pod>::namespaced(ctx.client.clone(), &namespace)
        .get_opt(&pod_name)
        .await
    {
        Ok(pod) => pod
            .and_then(|p| p.status)
            .and_then(|s| s.init_container_statuses)
            .into_iter()
            .flatten()
            .find(|c| c.name == backup::RESTORE_CONTAINER)
            .and_then(|c| c.state?.terminated?.message)
            .map(|m| known.redact(m.trim())),
        Err(error) => {
            tracing::warn!(%error, pod = %pod_name, "could not read the restored store's pod");
            None
        }
    };
    let from = stack
        .spec
        .restore
        .as_ref()
        .map(|r| r.from.as_str())
        .unwrap_or_default();
    let note = format!(
        "{}: {}",
        engine.part(),
        said.unwrap_or_else(|| format!("restored from the backups of stack {from}"))
    );
    tracing::info!(%note, "store restored");
    let event = Event {
        type_: EventType::Normal,
        reason: "Restored".into(),
        note: Some(crate::error::cut(&note, 1000)),
        action: "Restore".into(),
        // Names the store's StatefulSet, which also keeps the stores'
        // events apart (the recorder folds events with equal keys).
        secondary: Some(k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("apps/v1".into()),
            kind: Some("StatefulSet".into()),
            name: Some(engine.secret_name(&stack.name_any())),
            namespace: Some(namespace.clone()),
            ..Default::default()
        }),
    };
    ctx.publish(stack, event).await;
}
