//! The backup side of a reconcile: backup volumes made once (they are no
//! child of the stack, so they outlive it), and what the backup pods said,
//! for status.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};

use kube::runtime::events::{Event, EventType};

use super::child_set::Finding;
use super::context::Context;
use crate::api::{AppStack, BackupStatus};
use crate::build::stores::Engine;
use crate::build::{FIELD_MANAGER, backup, labels, stores};
use crate::error::brief;
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

/// What each backed-up store's backup pods say (without the passwords in
/// `known`), and whether one is still running (its result is then worth a
/// look soon).
pub async fn observe(
    client: &Client,
    stack: &AppStack,
    known: &Known,
) -> (BTreeMap<crate::api::StoreKind, BackupStatus>, bool) {
    let namespace = stack.namespace().unwrap_or_default();
    let name = stack.name_any();
    let api: Api<Pod> = Api::namespaced(client.clone(), &namespace);
    let mut out = BTreeMap::new();
    let mut running = false;
    for engine in stores::of(&stack.spec) {
        if stack.spec.backup(engine.kind()).is_none() {
            continue;
        }
        let selector = format!(
            "{},{}={}",
            labels::stack_selector(&name),
            labels::NAME,
            backup::part(engine)
        );
        match api.list(&ListParams::default().labels(&selector)).await {
            Ok(pods) => {
                running |= pods.items.iter().any(|p| {
                    matches!(
                        p.status.as_ref().and_then(|s| s.phase.as_deref()),
                        Some("Pending" | "Running")
                    )
                });
                out.insert(engine.kind(), status::backup(&pods.items, known));
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
