//! Cut the leader off from the API server while it keeps running (an iptables
//! rule on the node drops its packets to the API server): it cannot renew the
//! Lease, so it has to stop by itself before the Lease runs out, and only
//! then may the standby take the Lease. The container's log (when it stopped)
//! and the Lease (when the standby acquired it) show there was never a moment
//! with two writers. A change made during the cut is reconciled by the new
//! leader; once the cut is healed the old pod comes back as a standby.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use appstack_e2e::appstack;
use appstack_e2e::operator::{self, NAMESPACE};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Pending, Ready, secs};
use appstack_e2e::{apply, node};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ContainerStateTerminated, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams, LogParams};
use kube::{Client, ResourceExt};

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

/// The Lease's duration as the operator writes it.
const LEASE_SECONDS: i64 = 15;
/// Tags the scenario's iptables rules, so leftovers can be found and removed.
const TAG: &str = "appstack-e2e-cut";
/// The iptables table of the cut (see `Cut`).
const TABLE: &str = "mangle";
/// A cut lasts about 20 s; its rule expires after this in any case.
const CUT_EXPIRES_SECONDS: i64 = 300;
const STOPPED: &str = "stopping at once: leadership lost";
const STANDING_BY: &str = "another replica leads; standing by";

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    if !ctx.env.is_local() {
        ctx.note(
            "skipped: it cuts the leader off with an iptables rule on the node, which only the local cluster lets it add",
        );
        return Ok(());
    }
    // A run killed before its guard could run leaves its rule behind.
    let stale = remove_tagged_rules(&ctx.env.path)?;
    if stale > 0 {
        ctx.step(format!(
            "removed {stale} iptables rule(s) tagged {TAG} left by an earlier run"
        ));
    }
    let stack = appstack::deploy_shop(ctx, |_| {}).await?;
    stack.web_settled(ctx, None, secs(120)).await?;
    operator::wait_available(&ctx.client, secs(120)).await?;

    let pods = Api::<Pod>::namespaced(ctx.client.clone(), NAMESPACE);
    let Some(old) = operator::holder(&ctx.client).await? else {
        bail!("the operator's Lease names no holder");
    };
    let old_pod = pods.get(&old).await?;
    let old_container = node::container_id(&old_pod, None)?;
    let standby = operator::operator_pods(&ctx.client)
        .await?
        .into_iter()
        .find(|p| p.name_any() != old)
        .context("no standby operator pod besides the leader")?;
    let http = ctx.http().await?;
    // A standby reconciles nothing; the count shows when it starts to.
    let standby_reconciles = operator::reconciles(&http, &standby).await?;
    let api_server = api_server_endpoint(&ctx.client).await?;

    let cut = Cut::add(&ctx.env.path, &old_pod, api_server)?;
    let t_cut = Timestamp::now();
    let start = Instant::now();
    ctx.step(format!(
        "cut the leader {old} off from the API server: iptables -t {TABLE} -I {}",
        cut.rule.join(" ")
    ));

    // A user's change during the cut: only a leader that holds the Lease
    // may reconcile it.
    let (manifest, max) = stack.with_more_max_replicas();
    apply::object(&ctx.client, &ctx.ns, manifest).await?;
    ctx.step(format!("applied maxReplicas {max} during the cut"));

    let (last_renewal, t_acq, new) = wait_takeover(&ctx.client, &old).await?;
    ctx.recovered("cut -> new leader", between(t_cut, t_acq));
    let leader = operator::wait_leader(&ctx.client, std::slice::from_ref(&old), secs(30)).await?;
    ensure!(
        leader.name_any() == new,
        "the Lease moved on from {new} to {}",
        leader.name_any()
    );
    ctx.step(format!("{new} acquired the Lease at {t_acq}"));

    let hpas = Api::<HorizontalPodAutoscaler>::namespaced(ctx.client.clone(), &ctx.ns);
    wait::until_every(
        &format!("HPA {} to get maxReplicas {max} from {new}", stack.web()),
        secs(60),
        Duration::from_millis(200),
        async || {
            let seen = hpas.get(&stack.web()).await?.spec.map(|s| s.max_replicas);
            Ok(if seen.map(i64::from) == Some(max) {
                Ready(())
            } else {
                Pending(format!("maxReplicas {seen:?}"))
            })
        },
    )
    .await?;
    ctx.recovered("cut -> change reconciled", start.elapsed());
    // The counter counts finished reconciles: the one that applied the
    // change may still be reporting status.
    let reconciles = wait::until(
        &format!("the new leader {new} to count a finished reconcile"),
        secs(30),
        async || {
            let n = operator::reconciles(&http, &leader).await?;
            Ok(if n > standby_reconciles {
                Ready(n)
            } else {
                Pending(format!("appstack_reconciles_total {n}"))
            })
        },
    )
    .await
    .with_context(|| {
        format!("expected the new leader {new} to reconcile (appstack_reconciles_total {standby_reconciles} as standby)")
    })?;
    ctx.step(format!("the new leader counts {reconciles} reconciles"));

    // Still cut off: the old leader's container has to end by itself.
    let ended = wait::until(
        &format!("the cut-off leader {old} to stop (its container {old_container} to exit)"),
        secs(60),
        async || {
            let pod = pods.get(&old).await?;
            Ok(match terminated(&pod, &old_container) {
                Some(t) => Ready(t),
                None => Pending(format!("restarts {}", node::restart_count(&pod))),
            })
        },
    )
    .await?;
    ensure!(
        ended.exit_code != 0,
        "expected the cut-off leader to exit with an error (so that it restarts), it exited with {}",
        ended.exit_code
    );

    cut.heal()?;
    let healed = Instant::now();
    ctx.step(format!(
        "{old} exited with code {} ({}); healed the cut",
        ended.exit_code,
        ended.reason.as_deref().unwrap_or("-")
    ));

    // The container that ran during the cut is now the pod's previous one.
    let restarted = wait::until(
        &format!("{old} to run a new container, ready"),
        secs(180),
        async || {
            let pod = pods.get(&old).await?;
            let current = node::container_id(&pod, None).unwrap_or_default();
            let replaced = current != old_container && terminated(&pod, &old_container).is_some();
            Ok(if replaced && appstack_e2e::pods::is_ready(&pod) {
                Ready(pod)
            } else {
                Pending(appstack_e2e::pods::describe(std::slice::from_ref(&pod)))
            })
        },
    )
    .await?;
    let previous = pods
        .logs(
            &old,
            &LogParams {
                previous: true,
                timestamps: true,
                ..LogParams::default()
            },
        )
        .await
        .with_context(|| format!("reading the previous log of {old}"))?;
    let Some(t_stop) = logged_at(&previous, STOPPED) else {
        bail!(
            "expected the cut-off leader's log to say {STOPPED:?}; its last lines:\n{}",
            tail(&previous)
        );
    };

    // Never two writers: the old leader stopped before the Lease it last
    // renewed ran out, and before the standby acquired it. Both clocks are
    // this one node's.
    let exited = ended.finished_at.map(|t| t.0);
    ctx.recovered("cut -> old leader stopped", between(t_cut, t_stop));
    let s = |a, b| between(a, b).as_secs_f64();
    println!(
        "    cut at {t_cut}; {old} last renewed at {last_renewal}, logged \"leadership lost\" at {t_stop}, exited at {}",
        exited.map_or("?".into(), |t| t.to_string())
    );
    println!(
        "    cut -> old leader stopped {:.1}s; cut -> {new} acquired {:.1}s; {:.1}s with no leader (last renewal -> stop {:.1}s, lease {LEASE_SECONDS}s)",
        s(t_cut, t_stop),
        s(t_cut, t_acq),
        s(t_stop, t_acq),
        s(last_renewal, t_stop),
    );
    ensure!(
        t_stop < t_acq,
        "two writers: {old} stopped at {t_stop}, after {new} acquired the Lease at {t_acq}"
    );
    let expiry = last_renewal + SignedDuration::from_secs(LEASE_SECONDS);
    ensure!(
        t_stop < expiry,
        "{old} stopped at {t_stop}, after the Lease it last renewed at {last_renewal} ran out ({expiry})"
    );
    // finishedAt has whole seconds: the exit was before the next one.
    if let Some(exited) = exited {
        let by = exited + SignedDuration::from_secs(1);
        ensure!(
            by <= t_acq,
            "{old}'s container exited at {exited} (before {by}), not before {new} acquired the Lease at {t_acq}"
        );
    }

    // Back as a standby: it says so, reconciles nothing, and the Lease stays.
    wait::until(
        &format!("{old} to log {STANDING_BY:?}"),
        secs(60),
        async || {
            let log = pods
                .logs(
                    &old,
                    &LogParams {
                        timestamps: true,
                        ..LogParams::default()
                    },
                )
                .await?;
            Ok(if log.contains(STANDING_BY) {
                Ready(())
            } else {
                Pending(tail(&log))
            })
        },
    )
    .await?;
    let old_reconciles = operator::reconciles(&http, &restarted).await?;
    ensure!(
        old_reconciles == 0.0,
        "expected {old} to reconcile nothing as a standby, it shows appstack_reconciles_total {old_reconciles}"
    );
    operator::wait_available(&ctx.client, secs(120)).await?;
    let spec = operator::lease(&ctx.client)
        .await?
        .and_then(|l| l.spec)
        .context("the operator's Lease is gone")?;
    let acquired = spec.acquire_time.map(|t| t.0);
    ensure!(
        spec.holder_identity.as_deref() == Some(new.as_str()) && acquired == Some(t_acq),
        "expected {new} to keep the Lease it acquired at {t_acq}; the Lease names {:?} since {acquired:?}",
        spec.holder_identity
    );
    ctx.step(format!(
        "{old} is back as a standby {:.1}s after the heal; {new} still leads",
        healed.elapsed().as_secs_f64()
    ));
    appstack::wait_ready(&ctx.client, &ctx.ns, &stack.name, secs(60)).await?;

    Ok(())
}

/// Polls the Lease until another pod holds it; returns the old holder's last
/// renewal, the new holder's acquireTime and the new holder.
async fn wait_takeover(client: &Client, old: &str) -> Result<(Timestamp, Timestamp, String)> {
    let mut last_renewal = None;
    let (acquired, holder) = wait::until_every(
        &format!("another pod to acquire the Lease held by {old}"),
        secs(LEASE_SECONDS as u64 * 3),
        Duration::from_millis(200),
        async || {
            let spec = operator::lease(client)
                .await?
                .and_then(|l| l.spec)
                .context("the operator's Lease is gone")?;
            let holder = spec.holder_identity.unwrap_or_default();
            if holder == old || holder.is_empty() {
                if holder == old {
                    last_renewal = spec.renew_time.map(|t| t.0);
                }
                return Ok(Pending(format!(
                    "holder {holder:?}, renewed {last_renewal:?}"
                )));
            }
            let acquired = spec
                .acquire_time
                .with_context(|| format!("the Lease held by {holder} has no acquireTime"))?;
            Ok(Ready((acquired.0, holder)))
        },
    )
    .await?;
    let last_renewal = last_renewal.with_context(|| {
        format!("never saw the Lease held by {old}: {holder} took it at {acquired}")
    })?;
    Ok((last_renewal, acquired, holder))
}

/// Where the `kubernetes` Service sends pods: the API server's address as
/// its EndpointSlice names it (kube-proxy DNATs 10.96.0.1:443 to it).
async fn api_server_endpoint(client: &Client) -> Result<SocketAddr> {
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), "default")
        .list(&ListParams::default().labels("kubernetes.io/service-name=kubernetes"))
        .await
        .context("listing the kubernetes Service's EndpointSlices")?;
    let slice = slices
        .items
        .first()
        .context("the kubernetes Service has no EndpointSlice")?;
    let ip = slice
        .endpoints
        .iter()
        .flat_map(|e| e.addresses.iter())
        .next()
        .context("the kubernetes Service's EndpointSlice has no address")?;
    let port = slice
        .ports
        .iter()
        .flatten()
        .find_map(|p| p.port)
        .context("the kubernetes Service's EndpointSlice has no port")?;
    Ok(SocketAddr::new(
        ip.parse().context("bad API server address")?,
        u16::try_from(port)?,
    ))
}

/// The terminated state of the pod's container `id`, current or last.
fn terminated(pod: &Pod, id: &str) -> Option<ContainerStateTerminated> {
    let status = pod.status.as_ref()?.container_statuses.as_ref()?.first()?;
    [&status.state, &status.last_state]
        .into_iter()
        .flatten()
        .filter_map(|s| s.terminated.clone())
        .find(|t| {
            t.container_id
                .as_deref()
                .is_some_and(|c| c.rsplit("://").next() == Some(id))
        })
}

/// From `a` to `b` (zero if `b` is earlier).
fn between(a: Timestamp, b: Timestamp) -> Duration {
    Duration::try_from(b.duration_since(a)).unwrap_or_default()
}

/// The kubelet's timestamp of the first log line containing `needle`.
fn logged_at(log: &str, needle: &str) -> Option<Timestamp> {
    let line = log.lines().find(|l| l.contains(needle))?;
    line.split_once(' ')?.0.parse().ok()
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

/// A DROP rule in the node's INPUT chain for one pod's packets to the API
/// server: after kube-proxy's DNAT they are addressed to this host, so INPUT
/// sees them (established connections included). It goes in the mangle
/// table, which the kernel runs before any filter rule: filter INPUT starts
/// with the NetworkPolicy firewall's (kube-router's) jump, which accepts pod
/// traffic and keeps itself first. Removed by `heal`, or when dropped (an
/// error, a panic, the scenario's time bound).
struct Cut {
    path: String,
    rule: Vec<String>,
    active: bool,
}

impl Cut {
    fn add(path: &str, pod: &Pod, api_server: SocketAddr) -> Result<Cut> {
        let pod_ip = operator::pod_ip(pod)?;
        // Only this cluster's own addresses: the API server has to be on this
        // host, the pod on its pod network (a hostNetwork pod's IP is the
        // node's, and cutting it would cut the kubelet too).
        let local = |ip: IpAddr| UdpSocket::bind(SocketAddr::new(ip, 0)).is_ok();
        ensure!(
            local(api_server.ip()),
            "the API server {api_server} is not on this host; refusing to add iptables rules for it"
        );
        let host_network = pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        ensure!(
            pod_ip.is_ipv4() && !host_network && !pod_ip.is_loopback() && !local(pod_ip),
            "pod {} has IP {pod_ip}, not an IPv4 address of its own; refusing to cut it off",
            pod.name_any()
        );
        // Should this process be killed before it can remove the rule, the
        // rule stops matching by itself (time match, UTC).
        let expires = (Timestamp::now() + SignedDuration::from_secs(CUT_EXPIRES_SECONDS))
            .strftime("%Y-%m-%dT%H:%M:%S")
            .to_string();
        let rule: Vec<String> = [
            "INPUT",
            "-s",
            &pod_ip.to_string(),
            "-d",
            &api_server.ip().to_string(),
            "-p",
            "tcp",
            "--dport",
            &api_server.port().to_string(),
            "-m",
            "time",
            "--datestop",
            &expires,
            "-m",
            "comment",
            "--comment",
            TAG,
            "-j",
            "DROP",
        ]
        .map(String::from)
        .to_vec();
        iptables(path, "-I", &rule)?;
        Ok(Cut {
            path: path.to_string(),
            rule,
            active: true,
        })
    }

    fn heal(mut self) -> Result<()> {
        self.active = false;
        iptables(&self.path, "-D", &self.rule)
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        if self.active
            && let Err(e) = iptables(&self.path, "-D", &self.rule)
        {
            println!(
                "    could not remove the cut ({e:#}); remove it by hand: iptables -t {TABLE} -D {}",
                self.rule.join(" ")
            );
        }
    }
}

/// Removes every INPUT rule tagged `TAG`; returns how many there were.
fn remove_tagged_rules(path: &str) -> Result<usize> {
    let listing = iptables_output(path, &["-t", TABLE, "-S", "INPUT"])?;
    let tagged: Vec<Vec<String>> = listing
        .lines()
        .filter(|l| l.split_whitespace().any(|w| w == TAG))
        .filter_map(|l| l.strip_prefix("-A "))
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    for rule in &tagged {
        iptables(path, "-D", rule)?;
    }
    Ok(tagged.len())
}

/// Runs iptables synchronously: a guard's drop cannot await.
fn iptables(path: &str, op: &str, rule: &[String]) -> Result<()> {
    let mut args = vec!["-w", "5", "-t", TABLE, op];
    args.extend(rule.iter().map(String::as_str));
    iptables_output(path, &args).map(drop)
}

fn iptables_output(path: &str, args: &[&str]) -> Result<String> {
    let out = Command::new("iptables")
        .args(args)
        .env("PATH", path)
        .output()
        .context("running iptables (is it on PATH?)")?;
    ensure!(
        out.status.success(),
        "`iptables {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
