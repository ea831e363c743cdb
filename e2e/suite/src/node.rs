//! kill -9 of a container's main process from the node (this host), the way
//! an OOM kill or a crash ends it: no SIGTERM, no preStop, no goodbye. Also
//! a container's resident memory as the node sees it.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use crate::cmd;
use crate::env::TestEnv;

/// The containerd id of the pod's container `name` (or its first one).
pub fn container_id(pod: &Pod, name: Option<&str>) -> Result<String> {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .with_context(|| format!("pod {} has no container statuses", pod.name_any()))?;
    let status = statuses
        .iter()
        .find(|c| name.is_none_or(|n| c.name == n))
        .with_context(|| format!("pod {} has no container {name:?}", pod.name_any()))?;
    let id = status.container_id.as_deref().with_context(|| {
        format!(
            "container {} of {} has no id yet",
            status.name,
            pod.name_any()
        )
    })?;
    Ok(id.rsplit("://").next().unwrap_or(id).to_string())
}

pub fn restart_count(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).sum())
        .unwrap_or(0)
}

/// SIGKILLs the container's task through the cluster's containerd; falls
/// back to finding its process in /proc by cgroup. Returns how it was done.
pub async fn sigkill(env: &TestEnv, container_id: &str) -> Result<String> {
    let args = ctr_task(env, &["kill", "-s", "SIGKILL", container_id]);
    let ctr = cmd::run(env, "ctr", &args, None, Duration::from_secs(20)).await;
    match ctr {
        Ok(out) if out.success => return Ok("ctr task kill -s SIGKILL".into()),
        Ok(out) => println!(
            "    ctr task kill failed ({}); looking in /proc",
            out.text()
        ),
        Err(e) => println!("    ctr unavailable ({e:#}); looking in /proc"),
    }
    let pids = pids_in_cgroup(container_id)?;
    if pids.is_empty() {
        bail!("no process of container {container_id} found in /proc");
    }
    for pid in &pids {
        cmd::run_ok(
            env,
            "kill",
            &["-9", &pid.to_string()],
            None,
            Duration::from_secs(5),
        )
        .await?;
    }
    Ok(format!("kill -9 {pids:?} (found in /proc)"))
}

/// Freezes (`pause`) or thaws (`resume`) a container's processes through the
/// cluster's containerd: a hung process, alive but doing nothing.
pub async fn freeze(env: &TestEnv, container_id: &str, thaw: bool) -> Result<()> {
    let verb = if thaw { "resume" } else { "pause" };
    let args = ctr_task(env, &[verb, container_id]);
    cmd::run_ok(env, "ctr", &args, None, Duration::from_secs(20)).await?;
    Ok(())
}

/// Resident memory (VmRSS) of the container's processes, summed, in KiB, as
/// the node's /proc reports it: for a one-process container, its process's.
pub fn rss_kib(container_id: &str) -> Result<u64> {
    let pids = pids_in_cgroup(container_id)?;
    if pids.is_empty() {
        bail!("no process of container {container_id} found in /proc");
    }
    let mut total = 0;
    for pid in pids {
        let path = format!("/proc/{pid}/status");
        let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no VmRSS in {path}"))?;
        total += kib;
    }
    Ok(total)
}

/// Processes whose cgroup path names the container id (cgroup v1 and v2).
fn pids_in_cgroup(container_id: &str) -> Result<Vec<u32>> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").context("reading /proc")? {
        let entry = entry?;
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if let Ok(cgroup) = std::fs::read_to_string(entry.path().join("cgroup"))
            && cgroup.contains(container_id)
        {
            pids.push(pid);
        }
    }
    Ok(pids)
}

/// `ctr` arguments for a task command in the kubelet's containerd namespace.
fn ctr_task<'a>(env: &'a TestEnv, command: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["-n", "k8s.io", "--address", &env.containerd_address, "task"];
    args.extend_from_slice(command);
    args
}
