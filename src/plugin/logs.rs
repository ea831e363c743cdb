//! `kubectl appstack logs`: the logs of a stack's pods, found by the
//! operator's labels (a component, a store, its backups, or all of them),
//! each line prefixed with its pod and container.

use futures::{AsyncBufReadExt, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::LogParams;

use super::{PluginError, Result, Target, pods};

pub struct Options<'a> {
    /// A component, a store (`redis`, `postgres`), `<store>-backup`, or
    /// None: every pod of the stack.
    pub part: Option<&'a str>,
    pub follow: bool,
    pub tail: Option<i64>,
    pub since_seconds: Option<i64>,
}

pub async fn run(target: &Target, options: &Options<'_>) -> Result<()> {
    let found = pods::list(target, &pods::selector(&target.name, options.part)).await?;
    if found.is_empty() {
        let stack = target.stack().await?;
        return Err(PluginError::Refused(format!(
            "no pod of AppStack {}{} found; parts: {}",
            target.name,
            options
                .part
                .map(|p| format!(" labelled {p}"))
                .unwrap_or_default(),
            parts(&stack.typed).join(", ")
        )));
    }
    let streams = found
        .iter()
        .flat_map(|p| containers(p).into_iter().map(move |c| (p.name_any(), c)));
    let mut tasks = Vec::new();
    for (pod, container) in streams {
        let api = target.api::<Pod>();
        let params = LogParams {
            container: Some(container.clone()),
            follow: options.follow,
            tail_lines: options.tail,
            since_seconds: options.since_seconds,
            ..LogParams::default()
        };
        let ns = target.ns.clone();
        tasks.push(tokio::spawn(async move {
            let prefix = format!("[{pod}/{container}]");
            match api.log_stream(&pod, &params).await {
                Ok(stream) => {
                    let mut lines = stream.lines();
                    while let Some(Ok(line)) = lines.next().await {
                        println!("{prefix} {line}");
                    }
                }
                Err(e) => eprintln!(
                    "{prefix} {}",
                    PluginError::api("reading logs (needs `get pods/log`)", &ns, e)
                ),
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    Ok(())
}

/// The containers whose logs are worth reading: the pod's own and its
/// sidecars (init containers that keep running), not the ones that ran
/// once before it started, unless one of them is what failed.
pub fn containers(pod: &Pod) -> Vec<String> {
    let Some(spec) = pod.spec.as_ref() else {
        return Vec::new();
    };
    let failed_init: Vec<String> = pod
        .status
        .as_ref()
        .and_then(|s| s.init_container_statuses.as_ref())
        .map(|cs| {
            cs.iter()
                .filter(|c| {
                    c.state
                        .as_ref()
                        .and_then(|s| s.terminated.as_ref())
                        .is_some_and(|t| t.exit_code != 0)
                        || c.last_state
                            .as_ref()
                            .and_then(|s| s.terminated.as_ref())
                            .is_some_and(|t| t.exit_code != 0)
                })
                .map(|c| c.name.clone())
                .collect()
        })
        .unwrap_or_default();
    let init =
        spec.init_containers.iter().flatten().filter(|c| {
            c.restart_policy.as_deref() == Some("Always") || failed_init.contains(&c.name)
        });
    init.chain(&spec.containers)
        .map(|c| c.name.clone())
        .collect()
}

/// What `logs` accepts as a part of this stack.
fn parts(stack: &crate::api::AppStack) -> Vec<String> {
    let mut parts: Vec<String> = stack
        .spec
        .components
        .iter()
        .map(|c| c.name.clone())
        .collect();
    for e in crate::build::stores::of(&stack.spec) {
        parts.push(e.part().to_string());
        if e.backup(&stack.spec).is_some() {
            parts.push(crate::build::backup::part(e));
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn logs_come_from_the_containers_and_sidecars_and_a_failed_init() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "shop-postgres-0"},
            "spec": {
                "initContainers": [
                    {"name": "restore"}, {"name": "wait"},
                    {"name": "agent", "restartPolicy": "Always"}
                ],
                "containers": [{"name": "postgres"}, {"name": "credentials"}]
            },
            "status": {"initContainerStatuses": [
                {"name": "restore", "ready": false, "restartCount": 1, "image": "", "imageID": "",
                 "lastState": {"terminated": {"exitCode": 1}}},
                {"name": "wait", "ready": true, "restartCount": 0, "image": "", "imageID": "",
                 "state": {"terminated": {"exitCode": 0}}}
            ]}
        }))
        .unwrap();
        assert_eq!(
            containers(&pod),
            ["restore", "agent", "postgres", "credentials"]
        );
    }
}
