//! Migrations before rollouts: what the caches keep of a migration's Job
//! and of the Deployment's record, where a migration stands (pure), and
//! the last lines a failed one printed (read from its pod's log).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, LogParams};
use tracing::warn;

use super::backups;
use super::context::Context;
use crate::build::migration::{MIGRATED, Migration};
use crate::error::cut;
pub use crate::status::Stage;

/// Lines and bytes read of a failed migration's log: enough to say why,
/// bounded whatever the pod printed.
pub const LOG_LINES: i64 = 10;
pub const LOG_BYTES: i64 = 2048;

/// The longest record kept of a Deployment (a sha256 in hex is 64).
const RECORD_MAX: usize = 64;
/// Conditions kept of a Job, and the longest message of one.
const CONDITIONS_MAX: usize = 8;
const MESSAGE_MAX: usize = 512;

/// Of `annotations`, only the migration record (bounded): what the
/// Deployment's cache keeps.
pub fn own(annotations: Option<&BTreeMap<String, String>>) -> Option<BTreeMap<String, String>> {
    let value = annotations?
        .get(MIGRATED)
        .filter(|v| v.len() <= RECORD_MAX)?;
    Some(BTreeMap::from([(MIGRATED.to_string(), value.clone())]))
}

/// What the Job's cache keeps of its status: counts and a few conditions.
pub fn trim_status(s: JobStatus) -> JobStatus {
    JobStatus {
        active: s.active,
        succeeded: s.succeeded,
        failed: s.failed,
        conditions: s.conditions.map(|all| {
            all.into_iter()
                .take(CONDITIONS_MAX)
                .map(|c| JobCondition {
                    message: c.message.map(|m| cut(&m, MESSAGE_MAX)),
                    last_probe_time: None,
                    ..c
                })
                .collect()
        }),
        ..JobStatus::default()
    }
}

/// Where `m` stands, from the Deployment's record, its Job (when this
/// stack controls it) and whether the stores it uses serve.
pub fn stage(
    m: &Migration,
    recorded: Option<&str>,
    job: Option<&Job>,
    stores_ready: bool,
) -> Stage {
    if recorded == Some(m.hash.as_str()) {
        return Stage::Done;
    }
    let Some(job) = job else {
        return if stores_ready {
            Stage::Start
        } else {
            Stage::Waiting
        };
    };
    if condition(job, "Complete").is_some() {
        return Stage::Done;
    }
    match failure(job) {
        Some(why) => Stage::Failed(why),
        None => Stage::Running,
    }
}

/// Why the Job failed, when it did: its Failed condition's reason and message.
pub fn failure(job: &Job) -> Option<String> {
    let c = condition(job, "Failed")?;
    Some(
        [c.reason.as_deref(), c.message.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(": "),
    )
}

fn condition<'a>(job: &'a Job, type_: &str) -> Option<&'a JobCondition> {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// What the newest failed pod of a failed migration's Job printed last:
/// its log's last lines (bounded by lines and bytes), or its termination
/// message when the log cannot be read. None when there is nothing to say.
pub async fn last_words(ctx: &Context, namespace: &str, job: &Job) -> Option<String> {
    let uid = job.uid()?;
    let pods = match backups::job_pods(ctx, namespace, &[uid]).await {
        Ok(pods) => pods,
        Err(error) => {
            warn!(%error, job = %job.name_any(), "could not list the migration's pods");
            return None;
        }
    };
    let pod = newest_failed(&pods)?;
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), namespace);
    let params = LogParams {
        tail_lines: Some(LOG_LINES),
        limit_bytes: Some(LOG_BYTES),
        ..LogParams::default()
    };
    match api.logs(&pod.name_any(), &params).await {
        Ok(log) if !log.trim().is_empty() => Some(one_line(&log)),
        Ok(_) => termination_message(pod),
        Err(error) => {
            warn!(%error, pod = %pod.name_any(), "could not read the migration's log");
            termination_message(pod)
        }
    }
}

/// The failed pod created last.
pub fn newest_failed(pods: &[Pod]) -> Option<&Pod> {
    pods.iter()
        .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Failed"))
        .max_by_key(|p| p.creation_timestamp().map(|t| t.0))
}

fn termination_message(pod: &Pod) -> Option<String> {
    let said = pod
        .status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find_map(|c| c.state.as_ref()?.terminated.as_ref()?.message.clone())?;
    Some(one_line(&cut(&said, LOG_BYTES as usize)))
}

/// Lines joined with " | ", as conditions show what pods say, without
/// terminal colour codes and other control characters.
pub fn one_line(log: &str) -> String {
    log.lines()
        .map(|l| plain(l).trim_end().to_string())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// `line` without ANSI escape sequences (ESC [ ... letter) and control
/// characters.
fn plain(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // Up to and including the sequence's final letter.
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else if !c.is_control() || c == '\t' {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn migration() -> Migration {
        Migration {
            component: "web".into(),
            deployment: "shop-web".into(),
            job: "shop-web-migrate-abc".into(),
            hash: "abc123".into(),
            stores: vec!["shop-postgres".into()],
        }
    }

    fn job(conditions: serde_json::Value) -> Job {
        serde_json::from_value(
            json!({"metadata": {"name": "j"}, "status": {"conditions": conditions}}),
        )
        .unwrap()
    }

    #[test]
    fn stages() {
        let m = migration();
        assert_eq!(stage(&m, Some("abc123"), None, false), Stage::Done);
        assert_eq!(stage(&m, Some("old"), None, false), Stage::Waiting);
        assert_eq!(stage(&m, None, None, true), Stage::Start);
        assert_eq!(stage(&m, None, Some(&job(json!([]))), true), Stage::Running);
        let done = job(json!([{"type": "Complete", "status": "True"}]));
        assert_eq!(stage(&m, Some("old"), Some(&done), true), Stage::Done);
        let failed = job(
            json!([{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "Job has reached the specified backoff limit"}]),
        );
        assert_eq!(
            stage(&m, None, Some(&failed), true),
            Stage::Failed(
                "BackoffLimitExceeded: Job has reached the specified backoff limit".into()
            )
        );
    }

    #[test]
    fn the_record_is_kept_bounded() {
        let a = BTreeMap::from([
            (MIGRATED.to_string(), "h".repeat(64)),
            ("x".into(), "y".into()),
        ]);
        assert_eq!(own(Some(&a)).unwrap().len(), 1);
        let long = BTreeMap::from([(MIGRATED.to_string(), "h".repeat(65))]);
        assert!(own(Some(&long)).is_none());
    }

    #[test]
    fn logs_become_one_line() {
        assert_eq!(one_line("a\n\nb  \n"), "a | b");
        assert_eq!(
            one_line("\u{1b}[31mERROR\u{1b}[0m migration failed: x"),
            "ERROR migration failed: x"
        );
    }
}
