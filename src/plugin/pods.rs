//! Which of a stack's pods a subcommand talks to, by the operator's labels.

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::ResourceExt;
use kube::api::ListParams;

use super::{PluginError, Result, Target};
use crate::build::labels;

/// Label selector of the pods of one part of a stack: a store (`redis`,
/// `postgres`) or a component (its name); every pod of the stack without.
pub fn selector(stack: &str, part: Option<&str>) -> String {
    let mut selector = labels::stack_selector(stack);
    if let Some(part) = part {
        selector.push_str(&format!(",{}={part}", labels::NAME));
    }
    selector
}

/// Label selector of a store's server pods (not its backup pods).
pub fn store_selector(stack: &str, part: &str) -> String {
    format!(
        "{},{}={}",
        selector(stack, Some(part)),
        labels::COMPONENT,
        labels::ROLE_STORE
    )
}

pub fn is_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Unknown")
}

/// A one-word state and the restarts: `Running, ready, 0 restarts`.
pub fn describe(pod: &Pod) -> String {
    let restarts: i32 = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0);
    let state = if pod.metadata.deletion_timestamp.is_some() {
        "Terminating"
    } else {
        phase(pod)
    };
    let ready = if is_ready(pod) { "ready" } else { "not ready" };
    format!("{state}, {ready}, {restarts} restarts")
}

/// The pod a client session runs in: a ready, running pod not being
/// deleted: `prefer` (the primary, when status names one) if it serves,
/// else the first by name (a StatefulSet's `-0` when it serves); None
/// when no pod serves.
pub fn choose<'a>(pods: &'a [Pod], prefer: Option<&str>) -> Option<&'a Pod> {
    let mut serving: Vec<&Pod> = pods
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none() && phase(p) == "Running" && is_ready(p))
        .collect();
    serving.sort_by_key(|p| (Some(p.name_any().as_str()) != prefer, p.name_any()));
    serving.first().copied()
}

/// Whether `owners` name `kind` `name` (and `uid`, when given) as their
/// controller: what makes a pod the store's, or a CronJob the stack's,
/// where labels can be copied by anyone who may create pods.
pub fn controlled_by(
    owners: Option<&Vec<OwnerReference>>,
    kind: &str,
    name: &str,
    uid: Option<&str>,
) -> bool {
    owners.into_iter().flatten().any(|o| {
        o.controller == Some(true)
            && o.kind == kind
            && o.name == name
            && uid.is_none_or(|u| u == o.uid)
    })
}

/// The pods matching `selector`, by name.
pub async fn list(target: &Target, selector: &str) -> Result<Vec<Pod>> {
    let mut pods = target
        .api::<Pod>()
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| PluginError::api("listing pods (needs `list pods`)", &target.ns, e))?
        .items;
    pods.sort_by_key(|p| p.name_any());
    Ok(pods)
}

/// A store's pods: those its StatefulSet `set` controls (anyone may copy
/// the labels), and only that StatefulSet's when its uid is given.
pub async fn of_store(
    target: &Target,
    part: &str,
    set: &str,
    set_uid: Option<&str>,
) -> Result<Vec<Pod>> {
    let selector = store_selector(&target.name, part);
    Ok(list(target, &selector)
        .await?
        .into_iter()
        .filter(|p| {
            controlled_by(
                p.metadata.owner_references.as_ref(),
                "StatefulSet",
                set,
                set_uid,
            )
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(name: &str, phase: &str, ready: bool) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some(name.into());
        p.status = Some(PodStatus {
            phase: Some(phase.into()),
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: if ready { "True" } else { "False" }.into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        });
        p
    }

    #[test]
    fn a_session_runs_in_the_first_serving_pod() {
        let mut leaving = pod("shop-postgres-0", "Running", true);
        leaving.metadata.deletion_timestamp = Some(Time(k8s_openapi::jiff::Timestamp::now()));
        let pods = [
            pod("shop-postgres-2", "Running", true),
            leaving,
            pod("shop-postgres-1", "Running", false),
            pod("shop-postgres-3", "Pending", true),
        ];
        assert_eq!(
            choose(&pods, None).map(|p| p.name_any()).as_deref(),
            Some("shop-postgres-2")
        );
        let two = [
            pod("shop-postgres-0", "Running", true),
            pod("shop-postgres-1", "Running", true),
        ];
        assert_eq!(
            choose(&two, Some("shop-postgres-1"))
                .map(|p| p.name_any())
                .as_deref(),
            Some("shop-postgres-1")
        );
        assert_eq!(
            choose(&two, Some("gone")).map(|p| p.name_any()).as_deref(),
            Some("shop-postgres-0")
        );
        assert!(choose(&pods[1..3], None).is_none());
        assert_eq!(describe(&pods[1]), "Terminating, ready, 0 restarts");
        assert_eq!(describe(&pods[2]), "Running, not ready, 0 restarts");
    }

    #[test]
    fn control_is_the_controller_reference_not_the_labels() {
        let owner = |kind: &str, name: &str, uid: &str, controller: bool| OwnerReference {
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            controller: Some(controller),
            ..OwnerReference::default()
        };
        let owners = vec![owner("StatefulSet", "shop-postgres", "u1", true)];
        assert!(controlled_by(
            Some(&owners),
            "StatefulSet",
            "shop-postgres",
            None
        ));
        assert!(controlled_by(
            Some(&owners),
            "StatefulSet",
            "shop-postgres",
            Some("u1")
        ));
        assert!(!controlled_by(
            Some(&owners),
            "StatefulSet",
            "shop-postgres",
            Some("u2")
        ));
        assert!(!controlled_by(
            Some(&owners),
            "StatefulSet",
            "shop-redis",
            None
        ));
        let not_controller = vec![owner("StatefulSet", "shop-postgres", "u1", false)];
        assert!(!controlled_by(
            Some(&not_controller),
            "StatefulSet",
            "shop-postgres",
            None
        ));
        assert!(!controlled_by(None, "StatefulSet", "shop-postgres", None));
    }

    #[test]
    fn selectors_use_the_operators_labels() {
        assert_eq!(
            store_selector("shop", "redis"),
            "app.kubernetes.io/managed-by=appstack-operator,app.kubernetes.io/instance=shop,app.kubernetes.io/name=redis,app.kubernetes.io/component=store"
        );
        assert_eq!(
            selector("shop", None),
            "app.kubernetes.io/managed-by=appstack-operator,app.kubernetes.io/instance=shop"
        );
    }
}
