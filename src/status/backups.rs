//! A store's backups, from what its backup pods said when they ended.

use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use kube::ResourceExt;

use super::pods::last_lines;
use crate::api::{BackupStatus, BackupSummary};
use crate::redact::Known;

/// The backups of one store, from its backup pods (those of the CronJob's
/// Jobs that still exist): the newest pod that succeeded gives what the
/// backups hold (its termination message, JSON); a pod that failed after
/// it gives the failure, without the passwords in `known`. Pods still
/// running count for nothing yet.
pub fn backup(pods: &[Pod], known: &Known) -> BackupStatus {
    // (succeeded, what its last container to end said): the main
    // container on success; on failure, whichever container failed (with
    // S3, the backup runs in an init container before the upload).
    let finished = |p: &Pod| {
        let status = p.status.as_ref()?;
        let succeeded = match status.phase.as_deref()? {
            "Succeeded" => true,
            "Failed" => false,
            _ => return None,
        };
        let ended = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten())
            .filter_map(|c| c.state.as_ref()?.terminated.clone());
        let mut ended = ended.rev();
        let terminated = if succeeded {
            ended.next()
        } else {
            ended.find(|t| t.exit_code != 0)
        }?;
        Some((succeeded, terminated))
    };
    let mut done: Vec<(&Pod, bool, ContainerStateTerminated)> = pods
        .iter()
        .filter_map(|p| finished(p).map(|(ok, t)| (p, ok, t)))
        .collect();
    done.sort_by(|a, b| {
        let at = |t: &ContainerStateTerminated| t.finished_at.as_ref().map(|f| f.0);
        at(&a.2).cmp(&at(&b.2))
    });
    let mut status = BackupStatus::default();
    let last_ok = done.iter().rposition(|(_, ok, _)| *ok);
    if let Some(i) = last_ok {
        let (pod, _, terminated) = &done[i];
        summarise(&mut status, pod, terminated.message.as_deref(), known);
    }
    if let Some((pod, false, t)) = done.last() {
        let why = last_lines(t, known).unwrap_or_else(|| format!("exit code {}", t.exit_code));
        status.last_failure = Some(format!("backup pod {} failed: {why}", pod.name_any()));
    }
    status
}

/// What a successful backup pod's termination message (the agent's
/// [`BackupSummary`], JSON) says of the backups, into `status`. The one
/// place that reads the summary; its contract with the agent is the type.
/// A message that is no summary is a failure (BackupFailing), never
/// silence: the backup may be whole, but status cannot say what the
/// backups hold.
fn summarise(status: &mut BackupStatus, pod: &Pod, message: Option<&str>, known: &Known) {
    match BackupSummary::parse(message.unwrap_or_default()) {
        Ok(s) => {
            status.last_successful = Some(s.label);
            status.last_successful_time = Some(s.completed);
            status.last_size_bytes = Some(i64::try_from(s.size_bytes).unwrap_or(i64::MAX));
            status.count = Some(i32::try_from(s.count).unwrap_or(i32::MAX));
            status.total_bytes = Some(i64::try_from(s.total_bytes).unwrap_or(i64::MAX));
            status.first_recoverable_time = Some(s.first_recoverable);
            status.last_recoverable_time = Some(s.last_recoverable);
        }
        Err(error) => {
            let pod = pod.name_any();
            tracing::warn!(%pod, %error, "a backup pod's summary does not read");
            status.last_failure = Some(format!(
                "backup pod {pod} succeeded, but its termination message is no backup summary this operator reads: {}",
                crate::error::cut(&known.redact(&error.to_string()), 300)
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{SUMMARY, backup_pod};
    use super::*;

    #[test]
    fn backup_status_comes_from_the_newest_pods_termination_messages() {
        let ok = backup_pod("b-1", "Succeeded", "2026-12-02T03:00:10Z", 0, SUMMARY);
        let s = backup(std::slice::from_ref(&ok), &Known::default());
        assert_eq!(s.last_successful.as_deref(), Some("20261202T030000Z"));
        assert_eq!(s.count, Some(2));
        assert_eq!(
            s.first_recoverable_time.as_deref(),
            Some("2026-12-01T03:00:08Z")
        );
        assert_eq!(s.last_failure, None);

        // A failure after it is reported, and the last good backup kept.
        let failed = backup_pod(
            "b-2",
            "Failed",
            "2026-12-02T04:00:10Z",
            1,
            "pg_basebackup failed: no replication",
        );
        let s = backup(&[failed.clone(), ok.clone()], &Known::default());
        assert_eq!(s.last_successful.as_deref(), Some("20261202T030000Z"));
        assert!(
            s.last_failure
                .as_deref()
                .unwrap()
                .contains("b-2 failed: pg_basebackup failed")
        );

        // A success after the failure clears it; running pods count for nothing.
        let again = backup_pod("b-3", "Succeeded", "2026-12-02T05:00:10Z", 0, SUMMARY);
        let running: Pod = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "b-4"}, "status": {"phase": "Running"}}),
        )
        .unwrap();
        let s = backup(&[again, failed, running], &Known::default());
        assert_eq!(s.last_failure, None);
    }

    #[test]
    fn a_summary_that_does_not_read_is_a_failure_not_silence() {
        // A script that renamed a field, and one that printed prose.
        for (message, expected) in [
            (
                SUMMARY.replace("sizeBytes", "size_bytes"),
                "missing field `sizeBytes`",
            ),
            ("backup done".to_string(), "not the summary's JSON"),
        ] {
            let ok = backup_pod("b-1", "Succeeded", "2026-12-02T03:00:10Z", 0, &message);
            let s = backup(std::slice::from_ref(&ok), &Known::default());
            assert_eq!(s.last_successful, None);
            let failure = s.last_failure.expect("the mismatch is reported");
            assert!(
                failure.contains("backup pod b-1 succeeded") && failure.contains(expected),
                "{failure}"
            );
        }
    }
}
