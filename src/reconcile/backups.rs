//! The backup side of a reconcile: backup volumes made once (they are no
//! child of the stack, so they outlive it), and the backup pods, whose
//! termination messages status reads.

use std::borrow::Cow;
use std::fmt::Debug;

use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, PostParams};
use kube::core::NamespaceResourceScope;
use kube::{Client, Resource, ResourceExt};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::children::{Finding, Meta};
use super::context::Context;
use crate::api::AppStack;
use crate::build::stores::Engine;
use crate::build::{FIELD_MANAGER, backup, labels};
use crate::error::brief;
use crate::lean::LeanMeta;

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

/// A store's backup pods, found through what the operator made: its backup
/// CronJob (cached, and controlled by this stack), the Jobs that CronJob
/// controls, and the pods those Jobs control. Labels only narrow the lists:
/// a Job or pod anyone made with the same labels is controlled by neither
/// and is ignored.
pub async fn pods(
    ctx: &Context,
    stack: &AppStack,
    engine: &dyn Engine,
) -> Result<Vec<Pod>, kube::Error> {
    let namespace = stack.namespace().unwrap_or_default();
    let name = stack.name_any();
    let stack_uid = stack.uid().unwrap_or_default();
    let cron = ctx
        .caches
        .get::<CronJob>(&namespace, &backup::name(&name, engine))
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

/// The pods these Jobs (uids) control, decoded lean as backup pods are:
/// a migration's pods, whose logs say why it failed.
pub(super) async fn job_pods(
    ctx: &Context,
    namespace: &str,
    jobs: &[String],
) -> Result<Vec<Pod>, kube::Error> {
    let selector = format!("{JOB_UID} in ({})", jobs.join(","));
    let pods: Api<BackupPod> = Api::namespaced(ctx.client.clone(), namespace);
    Ok(controlled(&pods, &selector, jobs)
        .await?
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
