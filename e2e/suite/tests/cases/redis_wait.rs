//! Redis with two replicas and `minReplicasToWrite: 1`:
//! - both replicas frozen (their Redis containers paused through the node's
//!   containerd, as SIGSTOP would): the isolated master refuses writes with
//!   NOREPLICAS once its replicas' last acknowledgement is older than the
//!   10 s lag bound (bound here 15 s), and takes them again once they are
//!   thawed;
//! - a writer through the write Service that counts a write only when
//!   `WAIT 1 1000` says a replica has it, while the master is deleted
//!   (grace 1 s): every such write is on the promoted master afterwards.

use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, ensure};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::wait::{self, Pending, Ready};
use appstack_e2e::{appstack, node, pods};
use kube::ResourceExt;
use kube::api::DeleteParams;

use super::redis_failover::{store_pods, wait_master, wait_master_not};

/// The lag bound the operator gives min-replicas-max-lag, plus Redis' one
/// second of replica pings and some slack.
const NOREPLICAS_BOUND: Duration = Duration::from_secs(15);
/// How long the WAIT writer runs; the master is deleted 5 s in.
const WRITER_SECONDS: u64 = 30;

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let stack = appstack::deploy_shop(ctx, |m| {
        m["spec"]["redis"]["replicas"] = 2.into();
        m["spec"]["redis"]["minReplicasToWrite"] = 1.into();
    })
    .await?;
    let sts = stack.redis();
    let master = wait_master(ctx, &sts, 3).await?;
    let replicas: Vec<String> = store_pods(ctx, &sts)
        .await?
        .iter()
        .map(|p| p.name_any())
        .filter(|p| *p != master)
        .collect();
    ctx.step(format!("master {master}, replicas {replicas:?}"));

    if ctx.env.is_local() {
        isolated_master_refuses(ctx, &sts, &master, &replicas).await?;
    } else {
        ctx.note("NOREPLICAS part skipped: it freezes containers through the node's containerd");
    }
    let master = wait_master(ctx, &sts, 3).await?;
    waited_writes_survive(ctx, &sts, &master).await
}

/// `SET` on the master as the administrator, from inside its pod: Redis'
/// answer.
async fn set_on(ctx: &Ctx, pod: &str, key: &str) -> Result<String> {
    let out = pods::exec(
        ctx,
        &ctx.ns,
        pod,
        Some("redis"),
        &format!("{} -p \"$APPSTACK_PORT\" set {key} x 2>&1", pods::REDIS_CLI),
        Duration::from_secs(10),
    )
    .await?;
    Ok(out.stdout.trim().to_string())
}

async fn isolated_master_refuses(
    ctx: &mut Ctx,
    sts: &str,
    master: &str,
    replicas: &[String],
) -> Result<()> {
    ensure!(
        set_on(ctx, master, "before-freeze").await? == "OK",
        "the master refused a write before its replicas were frozen"
    );
    let api = ctx.pods();
    let mut ids = Vec::new();
    for r in replicas {
        ids.push(node::container_id(&api.get(r).await?, Some("redis"))?);
    }
    for id in &ids {
        node::freeze(&ctx.env, id, false).await?;
    }
    let frozen = Instant::now();
    ctx.step(format!("froze the Redis containers of {replicas:?}"));
    let refused = wait::until_every(
        "the master to refuse writes with NOREPLICAS",
        Duration::from_secs(40),
        Duration::from_millis(500),
        async || {
            let said = set_on(ctx, master, "while-frozen").await?;
            Ok(if said.contains("NOREPLICAS") {
                Ready(said)
            } else {
                Pending(said)
            })
        },
    )
    .await;
    let took = frozen.elapsed();
    // Thawed in every path: a frozen container holds the namespace's deletion.
    for id in &ids {
        node::freeze(&ctx.env, id, true).await?;
    }
    let refused = refused?;
    ctx.recovered("isolated master refuses writes (NOREPLICAS)", took);
    ctx.step(format!(
        "{:.1}s after the freeze the master answered: {refused}",
        took.as_secs_f64()
    ));
    ensure!(
        took <= NOREPLICAS_BOUND,
        "the isolated master refused writes only {:.1}s after its replicas froze (bound {}s)",
        took.as_secs_f64(),
        NOREPLICAS_BOUND.as_secs()
    );
    let thawed = Instant::now();
    wait::until_every(
        "the master to take writes again",
        Duration::from_secs(60),
        Duration::from_millis(500),
        async || {
            let said = set_on(ctx, master, "after-thaw").await?;
            Ok(if said == "OK" {
                Ready(())
            } else {
                Pending(said)
            })
        },
    )
    .await?;
    ctx.step(format!(
        "writes taken again {:.1}s after the thaw",
        thawed.elapsed().as_secs_f64()
    ));
    let labelled = super::redis_failover::labelled_master(&store_pods(ctx, sts).await?);
    ensure!(
        labelled == [master.to_string()],
        "the master label moved while the replicas were frozen: {labelled:?}"
    );
    Ok(())
}

async fn waited_writes_survive(ctx: &mut Ctx, sts: &str, master: &str) -> Result<()> {
    let writer_pod = store_pods(ctx, sts)
        .await?
        .iter()
        .map(|p| p.name_any())
        .find(|p| p != master)
        .context("no replica to run the writer in")?;
    let host = format!("{sts}.{}.svc", ctx.ns);
    // One connection per write: SET, then WAIT for one replica (1 s at
    // most). A line `<n> OK 1` is a write a replica acknowledged.
    let script = format!(
        "end=$(( $(date +%s) + {WRITER_SECONDS} )); i=0; \
         while [ \"$(date +%s)\" -lt \"$end\" ]; do \
           r=$(printf 'SET wait:%s %s\\nWAIT 1 1000\\n' \"$i\" \"$i\" | timeout 3 {cli} -h {host} -p \"$APPSTACK_PORT\" 2>&1 | tr '\\n' ' '); \
           echo \"$i $r\"; i=$((i + 1)); sleep 0.05; \
         done",
        cli = pods::REDIS_CLI,
    );
    let api = ctx.pods();
    let old = api.get(master).await?;
    let old_uid = old.uid().unwrap_or_default();
    let deleting = async {
        tokio::time::sleep(Duration::from_secs(5)).await;
        api.delete(master, &DeleteParams::default().grace_period(1))
            .await
            .map(|_| Instant::now())
    };
    let writing = pods::exec(
        ctx,
        &ctx.ns,
        &writer_pod,
        Some("redis"),
        &script,
        Duration::from_secs(WRITER_SECONDS + 30),
    );
    let (written, deleted) = tokio::join!(writing, deleting);
    let written = written?;
    deleted?;
    ctx.step(format!(
        "deleted the master {master} 5 s into the writer (in {writer_pod})"
    ));
    let new_master = wait_master_not(ctx, sts, master, &old_uid).await?;
    let lines: Vec<&str> = written.stdout.lines().collect();
    let acked: Vec<&str> = lines
        .iter()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let i = words.next()?;
            let said: Vec<&str> = words.collect();
            (said.first() == Some(&"OK")
                && said
                    .get(1)
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_some_and(|n| n >= 1))
            .then_some(i)
        })
        .collect();
    ensure!(
        !acked.is_empty(),
        "no write was acknowledged by WAIT; the writer said:\n{}",
        written
            .stdout
            .lines()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
    // Which acknowledged keys the promoted master lacks.
    let keys: Vec<String> = acked.iter().map(|i| format!("wait:{i}")).collect();
    let mut lost = Vec::new();
    for chunk in keys.chunks(200) {
        let out = pods::exec(
            ctx,
            &ctx.ns,
            &new_master,
            Some("redis"),
            &format!(
                "for k in {}; do printf '%s ' \"$k\"; {} -p \"$APPSTACK_PORT\" exists \"$k\"; done",
                chunk.join(" "),
                pods::REDIS_CLI
            ),
            Duration::from_secs(60),
        )
        .await?;
        lost.extend(
            out.stdout
                .lines()
                .filter(|l| l.ends_with(" 0"))
                .map(|l| l.split_whitespace().next().unwrap_or_default().to_string()),
        );
    }
    ctx.note(format!(
        "WAIT writer: {} writes, {} acknowledged by a replica, {} of them lost after the failover to {new_master}",
        lines.len(),
        acked.len(),
        lost.len()
    ));
    ensure!(
        lost.is_empty(),
        "writes acknowledged by WAIT 1 were lost in the failover: {lost:?}"
    );
    Ok(())
}
