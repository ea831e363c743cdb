//! Runs scenarios, each in its own namespace with a time bound, and prints
//! the summary table. Those that install the operator run first; those that
//! restart, reinstall or measure the shared operator (or cut it off) run
//! alone at the end; the rest run side by side, `E2E_PARALLEL` at a time
//! (default 4): most of a scenario's time is spent waiting for pods.

use std::future::Future;
use std::pin::Pin;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use futures::StreamExt;
use futures::stream::FuturesUnordered;
use k8s_openapi::api::core::v1::Pod;
use kube::Client;

use crate::env::TestEnv;
use crate::http::Http;
use crate::{client, namespace, table};

pub type ScenarioFuture<'a> = Pin<Box<dyn Future<Output = Result<()>> + 'a>>;
pub type ScenarioFn = for<'a> fn(&'a mut Ctx) -> ScenarioFuture<'a>;

pub struct Scenario {
    pub name: &'static str,
    pub run: ScenarioFn,
    /// Runs only once the operator is installed (the helm-install scenario).
    pub needs_operator: bool,
    /// This scenario installs the operator; selected automatically when a
    /// selected scenario needs it.
    pub installs_operator: bool,
    /// Restarts, reinstalls or measures the operator every scenario shares,
    /// or the node: runs with no other scenario beside it.
    pub alone: bool,
    pub timeout: Duration,
}

/// What a scenario gets: the environment, an admin client, its namespace,
/// and places to record recovery times and notes for the summary.
pub struct Ctx {
    pub name: &'static str,
    pub env: Arc<TestEnv>,
    pub client: Client,
    pub ns: String,
    pub recovery: Vec<(String, Duration)>,
    pub notes: Vec<String>,
    started: Instant,
    helper: Option<Http>,
}

impl Ctx {
    /// Prints a progress line with the time since the scenario started.
    /// Names the scenario: lines of scenarios run side by side interleave.
    pub fn step(&self, message: impl AsRef<str>) {
        println!(
            "    [{} {:>5.1}s] {}",
            self.name,
            self.started.elapsed().as_secs_f64(),
            message.as_ref()
        );
    }

    /// Records a recovery time (e.g. pod kill to serving again).
    pub fn recovered(&mut self, what: &str, took: Duration) {
        self.step(format!("recovery time, {what}: {:.1}s", took.as_secs_f64()));
        self.recovery.push((what.to_string(), took));
    }

    pub fn note(&mut self, note: impl Into<String>) {
        let note = note.into();
        self.step(&note);
        self.notes.push(note);
    }

    /// How this scenario reaches cluster addresses: straight from this host on
    /// the local cluster, else through a helper pod in its namespace.
    pub async fn http(&mut self) -> Result<Http> {
        if let Some(h) = &self.helper {
            return Ok(h.clone());
        }
        let http = if self.env.is_local() {
            Http::Host
        } else {
            let pod = crate::pods::run_sleeper(self, "e2e-http-client").await?;
            Http::Pod {
                env: self.env.clone(),
                namespace: self.ns.clone(),
                pod,
            }
        };
        self.helper = Some(http.clone());
        Ok(http)
    }

    pub fn pods(&self) -> kube::Api<Pod> {
        kube::Api::namespaced(self.client.clone(), &self.ns)
    }
}

enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

struct Row {
    name: &'static str,
    outcome: Outcome,
    seconds: f64,
    recovery: String,
    notes: Vec<String>,
}

/// The test binary's main: `scenarios [FILTER...]` runs the scenarios whose
/// name contains any FILTER (all without one); libtest flags are ignored.
pub fn main(scenarios: Vec<Scenario>) -> ExitCode {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("e2e: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run_all(scenarios, &filters)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("e2e: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn select<'a>(scenarios: &'a [Scenario], filters: &[String]) -> Vec<&'a Scenario> {
    // A filter naming a scenario exactly selects that one; otherwise every
    // scenario whose name contains it.
    let exact = |f: &String| scenarios.iter().any(|s| s.name == f.as_str());
    let wanted = |s: &Scenario| {
        filters.is_empty()
            || filters.iter().any(|f| {
                if exact(f) {
                    s.name == f.as_str()
                } else {
                    s.name.contains(f.as_str())
                }
            })
    };
    // E2E_NO_INSTALL=1: use the operator as installed (quicker iterations).
    let reuse = std::env::var("E2E_NO_INSTALL").is_ok_and(|v| v == "1");
    let needs_install = !reuse && scenarios.iter().any(|s| wanted(s) && s.needs_operator);
    scenarios
        .iter()
        .filter(|s| wanted(s) || (s.installs_operator && needs_install))
        .collect()
}

async fn run_all(scenarios: Vec<Scenario>, filters: &[String]) -> Result<bool> {
    let env = Arc::new(TestEnv::load()?);
    let client = client::admin(&env).await?;
    let version = client
        .apiserver_version()
        .await
        .context("the API server does not answer: is the cluster up? (`make cluster-up`, then `e2e/cluster.sh status`)")?;
    let selected = select(&scenarios, filters);
    if selected.is_empty() {
        anyhow::bail!(
            "no scenario matches {filters:?}; scenarios: {}",
            names(&scenarios)
        );
    }
    println!(
        "e2e: {} scenario(s) on {:?} cluster (Kubernetes {}.{}){}",
        selected.len(),
        env.cluster,
        version.major,
        version.minor,
        if env.keep {
            ", keeping namespaces (E2E_KEEP=1)"
        } else {
            ""
        }
    );
    let old = namespace::delete_leftovers(&client).await?;
    if !old.is_empty() {
        println!(
            "e2e: deleting namespaces of earlier runs: {}",
            old.join(", ")
        );
    }

    let parallel = parallelism();
    let started = Instant::now();
    let total = selected.len();
    let mut rows: Vec<Option<Row>> = (0..total).map(|_| None).collect();
    let indexed: Vec<(usize, &Scenario)> = selected.iter().copied().enumerate().collect();
    let (first, rest): (Vec<_>, Vec<_>) = indexed.into_iter().partition(|(_, s)| !s.needs_operator);
    let (alone, shared): (Vec<_>, Vec<_>) = rest.into_iter().partition(|(_, s)| s.alone);

    let mut operator_ok = true;
    for (i, scenario) in first {
        println!("\n==> [{}/{total}] {}", i + 1, scenario.name);
        let row = run_one(&env, &client, scenario).await;
        if scenario.installs_operator && !matches!(row.outcome, Outcome::Pass) {
            operator_ok = false;
        }
        rows[i] = Some(row);
    }
    if !shared.is_empty() && operator_ok {
        println!(
            "\ne2e: {} scenario(s) side by side, {parallel} at a time",
            shared.len()
        );
    }
    let mut queue = shared.into_iter();
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < parallel {
            let Some((i, scenario)) = queue.next() else {
                break;
            };
            if !operator_ok {
                rows[i] = Some(skipped(scenario));
                continue;
            }
            println!("\n==> [{}/{total}] {}", i + 1, scenario.name);
            let (env, client) = (&env, &client);
            running.push(async move { (i, run_one(env, client, scenario).await) });
        }
        match running.next().await {
            Some((i, row)) => rows[i] = Some(row),
            None => break,
        }
    }
    for (i, scenario) in alone {
        if !operator_ok {
            rows[i] = Some(skipped(scenario));
            continue;
        }
        println!("\n==> [{}/{total}] {} (alone)", i + 1, scenario.name);
        rows[i] = Some(run_one(&env, &client, scenario).await);
    }
    let rows: Vec<Row> = rows.into_iter().flatten().collect();
    print_summary(&rows);
    println!(
        "e2e: {total} scenario(s) in {:.0}s ({parallel} side by side)",
        started.elapsed().as_secs_f64()
    );
    Ok(rows.iter().all(|r| !matches!(r.outcome, Outcome::Fail(_))))
}

/// `E2E_PARALLEL`: how many scenarios run side by side (1 runs them one
/// after another).
fn parallelism() -> usize {
    std::env::var("E2E_PARALLEL")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(4)
}

fn skipped(scenario: &Scenario) -> Row {
    println!(
        "\n==> {}: skipped, the operator is not installed (helm-install failed)",
        scenario.name
    );
    Row {
        name: scenario.name,
        outcome: Outcome::Skip("operator not installed".into()),
        seconds: 0.0,
        recovery: String::new(),
        notes: vec![],
    }
}

async fn run_one(env: &Arc<TestEnv>, client: &Client, scenario: &Scenario) -> Row {
    let started = Instant::now();
    let ns = match namespace::create(client, scenario.name, &env.pod_security).await {
        Ok(ns) => ns,
        Err(e) => {
            return Row {
                name: scenario.name,
                outcome: Outcome::Fail(format!("{e:#}")),
                seconds: 0.0,
                recovery: String::new(),
                notes: vec![],
            };
        }
    };
    println!("    [{}] namespace {ns}", scenario.name);
    let mut ctx = Ctx {
        name: scenario.name,
        env: env.clone(),
        client: client.clone(),
        ns: ns.clone(),
        recovery: vec![],
        notes: vec![],
        started,
        helper: None,
    };
    let result = match tokio::time::timeout(scenario.timeout, (scenario.run)(&mut ctx)).await {
        Ok(r) => r,
        Err(_) => Err(anyhow::anyhow!(
            "the scenario did not finish within its bound of {}s",
            scenario.timeout.as_secs()
        )),
    };
    let seconds = started.elapsed().as_secs_f64();
    let outcome = match result {
        Ok(()) => {
            println!("<== {}: PASS ({seconds:.1}s)", scenario.name);
            Outcome::Pass
        }
        Err(e) => {
            println!("<== {}: FAIL ({seconds:.1}s)\n    {e:#}", scenario.name);
            crate::diagnose::print(env, &ns).await;
            Outcome::Fail(format!("{e:#}"))
        }
    };
    if env.keep {
        println!("    kept namespace {ns} (E2E_KEEP=1)");
    } else if let Err(e) = namespace::delete(client, &ns).await {
        println!("    could not delete namespace {ns}: {e:#}");
    }
    let recovery = ctx
        .recovery
        .iter()
        .map(|(what, d)| format!("{what} {:.1}s", d.as_secs_f64()))
        .collect::<Vec<_>>()
        .join(", ");
    Row {
        name: scenario.name,
        outcome,
        seconds,
        recovery,
        notes: ctx.notes,
    }
}

fn print_summary(rows: &[Row]) {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let result = match &r.outcome {
                Outcome::Pass => "PASS",
                Outcome::Fail(_) => "FAIL",
                Outcome::Skip(_) => "SKIP",
            };
            vec![
                r.name.to_string(),
                result.to_string(),
                format!("{:.1}", r.seconds),
                if r.recovery.is_empty() {
                    "-".into()
                } else {
                    r.recovery.clone()
                },
            ]
        })
        .collect();
    println!(
        "\nSummary\n{}",
        table::render(&["scenario", "result", "seconds", "recovery time"], &cells)
    );
    println!("  (recovery time: from the kill or deletion to serving, or leading, again)");
    for r in rows {
        for note in &r.notes {
            println!("  {}: {note}", r.name);
        }
        match &r.outcome {
            Outcome::Fail(why) => println!("  {} FAILED: {}", r.name, first_line(why)),
            Outcome::Skip(why) => println!("  {} skipped: {why}", r.name),
            Outcome::Pass => {}
        }
    }
    let count = |f: fn(&Outcome) -> bool| rows.iter().filter(|r| f(&r.outcome)).count();
    let passed = count(|o| matches!(o, Outcome::Pass));
    let failed = count(|o| matches!(o, Outcome::Fail(_)));
    let skipped = count(|o| matches!(o, Outcome::Skip(_)));
    // The plain closing line CI reads.
    if skipped > 0 {
        println!("\n{passed} passed, {failed} failed, {skipped} skipped");
    } else {
        println!("\n{passed} passed, {failed} failed");
    }
}

/// The gist of a failure for the summary: its first lines, joined and cut.
fn first_line(text: &str) -> String {
    let mut gist = text
        .lines()
        .take(3)
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    if let Some((i, _)) = gist.char_indices().nth(300) {
        gist.truncate(i);
        gist.push_str("...");
    }
    gist
}

fn names(scenarios: &[Scenario]) -> String {
    scenarios
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}
