//! Why a store's pod does not serve, from what the kubelet reports of it.

use k8s_openapi::api::core::v1::{ContainerStateTerminated, ContainerStatus, Pod};

use super::Problem;
use crate::build::{CREDENTIALS_CONTAINER, USERS_CONTAINER};
use crate::redact::Known;

/// Why a store's pod does not serve, from what the kubelet reports: the
/// store container failing first (its last log lines, kept as termination
/// message), then the credentials check's verdict, then a pod that cannot
/// be scheduled. None while it merely starts. What the pod's containers
/// said is quoted without the passwords in `known`.
pub fn store_trouble(part: &str, pod: &Pod, known: &Known) -> Option<Problem> {
    // A pod on its way out stops its containers: that is no failure.
    if pod.metadata.deletion_timestamp.is_some() {
        return None;
    }
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let status = pod.status.as_ref()?;
    let statuses = status.container_statuses.as_deref().unwrap_or_default();
    let container = |c: &str| statuses.iter().find(|s| s.name == c);
    let fails = |c: &ContainerStatus| failing(c, known);
    if let Some(failure) = container(part).and_then(fails) {
        return Some(Problem::StoreFailing(format!(
            "{part} (pod {name}) keeps failing: {failure}; see kubectl logs {name} -c {part} --previous"
        )));
    }
    // The init containers (the server's users; fetch from S3, restore):
    // the first that fails, or cannot start (a missing Secret of S3 keys).
    let init = status
        .init_container_statuses
        .as_deref()
        .unwrap_or_default();
    if let Some((container, failure)) = init
        .iter()
        .find_map(|s| fails(s).map(|f| (s.name.as_str(), f)))
    {
        let what = if container == USERS_CONTAINER {
            "cannot take the users of its Secrets"
        } else {
            "cannot be restored"
        };
        return Some(Problem::StoreFailing(format!(
            "{part} (pod {name}) {what}: {container}: {failure}; see kubectl logs {name} -c {container}"
        )));
    }
    if let Some(failure) = container(CREDENTIALS_CONTAINER).and_then(fails) {
        return Some(Problem::CredentialsOutOfSync(format!("{part}: {failure}")));
    }
    let unschedulable = status
        .conditions
        .as_deref()
        .unwrap_or_default()
        .iter()
        .find(|c| {
            c.type_ == "PodScheduled"
                && c.status == "False"
                && c.reason.as_deref() == Some("Unschedulable")
        });
    unschedulable.map(|c| {
        Problem::StoreFailing(format!(
            "{part} (pod {name}) cannot be scheduled: {}",
            c.message.as_deref().unwrap_or("no reason given")
        ))
    })
}

/// What a container that is not running says of itself: waiting to be
/// restarted after a failure (its last termination message), or unable to
/// start at all (image, config). None when running or merely starting.
fn failing(c: &ContainerStatus, known: &Known) -> Option<String> {
    let state = c.state.as_ref()?;
    if let Some(waiting) = &state.waiting {
        let reason = waiting.reason.as_deref().unwrap_or_default();
        if CANNOT_START.contains(&reason) {
            let message = known.redact(waiting.message.as_deref().unwrap_or_default());
            return Some(
                format!("{reason}: {message}")
                    .trim_end_matches([' ', ':'])
                    .to_string(),
            );
        }
        if reason != "CrashLoopBackOff" {
            return None;
        }
    } else if state.running.is_some() {
        return None;
    }
    // Terminated now (a failure only with a non-zero exit), or waiting to be
    // restarted after the failure the last state records.
    let terminated = match &state.terminated {
        Some(t) if t.exit_code == 0 => return None,
        Some(t) => t,
        None => c.last_state.as_ref().and_then(|s| s.terminated.as_ref())?,
    };
    Some(last_lines(terminated, known).unwrap_or_else(|| {
        format!(
            "exit code {}{}",
            terminated.exit_code,
            terminated
                .reason
                .as_deref()
                .map(|r| format!(" ({r})"))
                .unwrap_or_default()
        )
    }))
}

/// What a terminated container said: the last lines of its message (which
/// may be the log's tail, FallbackToLogsOnError), joined, without the
/// passwords in `known`; None when empty. Redacted whole, before the lines
/// are cut: the message's own ends are where a password may be cut short.
pub(super) fn last_lines(terminated: &ContainerStateTerminated, known: &Known) -> Option<String> {
    let message = known.redact(terminated.message.as_deref().unwrap_or_default());
    let said: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let n = said.len();
    (n > 0).then(|| said[n.saturating_sub(LAST_LINES)..].join(" | "))
}

/// Lines of a failed container's message that status keeps.
const LAST_LINES: usize = 4;

/// Waiting reasons of a container the kubelet cannot start at all.
const CANNOT_START: &[&str] = &[
    "ErrImagePull",
    "ImagePullBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

#[cfg(test)]
mod tests {
    use super::super::fixtures::{container, pod};
    use super::*;

    #[test]
    fn a_store_that_starts_or_runs_has_no_trouble() {
        let creating = serde_json::json!({"waiting": {"reason": "ContainerCreating"}});
        let running = serde_json::json!({"running": {}});
        for state in [creating, running] {
            let p = pod(
                serde_json::json!([
                    container("redis", state.clone()),
                    container("credentials", state)
                ]),
                serde_json::json!([]),
            );
            assert_eq!(store_trouble("redis", &p, &Known::default()), None);
        }
    }

    #[test]
    fn an_image_that_cannot_be_pulled_is_store_failing() {
        let p = pod(
            serde_json::json!([container(
                "redis",
                serde_json::json!({"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image \"redis:nope\""}})
            )]),
            serde_json::json!([]),
        );
        let Some(Problem::StoreFailing(m)) = store_trouble("redis", &p, &Known::default()) else {
            panic!("expected StoreFailing");
        };
        assert!(
            m.contains("ImagePullBackOff: Back-off pulling image"),
            "{m}"
        );
    }

    #[test]
    fn a_store_pod_that_cannot_be_scheduled_says_why() {
        let p = pod(
            serde_json::json!([]),
            serde_json::json!([{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                "message": "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims"}]),
        );
        let Some(Problem::StoreFailing(m)) = store_trouble("redis", &p, &Known::default()) else {
            panic!("expected StoreFailing");
        };
        assert!(m.contains("cannot be scheduled: 0/1 nodes"), "{m}");
    }

    #[test]
    fn a_failed_store_without_a_message_gives_its_exit_code() {
        let p = pod(
            serde_json::json!([container(
                "redis",
                serde_json::json!({"terminated": {"exitCode": 137, "reason": "OOMKilled"}})
            )]),
            serde_json::json!([]),
        );
        let Some(Problem::StoreFailing(m)) = store_trouble("redis", &p, &Known::default()) else {
            panic!("expected StoreFailing");
        };
        assert!(m.contains("exit code 137 (OOMKilled)"), "{m}");
    }

    #[test]
    fn a_crash_loop_keeps_the_last_lines_of_the_log() {
        let log = "Redis is starting\n\nServer initialized\n*** FATAL AOF MANIFEST FILE ERROR ***\n\nReading the manifest file, at line 2\n>>> 'garbage line'\nInvalid AOF manifest file format\n";
        let p = pod(
            serde_json::json!([container(
                "redis",
                serde_json::json!({"waiting": {"reason": "CrashLoopBackOff"}})
            )
            .as_object()
            .cloned()
            .map(|mut c| {
                c.insert(
                    "lastState".into(),
                    serde_json::json!({"terminated": {"exitCode": 1, "message": log}}),
                );
                c
            })]),
            serde_json::json!([]),
        );
        let Some(Problem::StoreFailing(m)) = store_trouble("redis", &p, &Known::default()) else {
            panic!("expected StoreFailing");
        };
        assert!(
            m.contains("keeps failing: *** FATAL AOF MANIFEST FILE ERROR *** | Reading the manifest file, at line 2 | >>> 'garbage line' | Invalid AOF manifest file format;"),
            "{m}"
        );
        assert!(!m.contains("Redis is starting"), "{m}");
    }

    #[test]
    fn a_store_pod_being_deleted_or_stopped_cleanly_has_no_trouble() {
        let stopped = serde_json::json!({"terminated": {"exitCode": 0, "reason": "Completed"}});
        let p = pod(
            serde_json::json!([container("credentials", stopped)]),
            serde_json::json!([]),
        );
        assert_eq!(store_trouble("postgres", &p, &Known::default()), None);

        let mut deleting = pod(
            serde_json::json!([container(
                "credentials",
                serde_json::json!({"terminated": {"exitCode": 130}})
            )]),
            serde_json::json!([]),
        );
        assert!(store_trouble("postgres", &deleting, &Known::default()).is_some());
        deleting.metadata.deletion_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ));
        assert_eq!(
            store_trouble("postgres", &deleting, &Known::default()),
            None
        );
    }
}
