//! What to look at when a scenario fails: the namespace's objects, the
//! AppStacks' status, recent events, and the operator leader's last logs.

use std::time::Duration;

use crate::cmd;
use crate::env::TestEnv;
use crate::operator;

/// Printed in one piece: scenarios run side by side, and their progress
/// lines must not cut through another's diagnostics.
pub async fn print(env: &TestEnv, namespace: &str) {
    use std::fmt::Write as _;
    let mut out = String::new();
    let _ = writeln!(out, "    --- diagnostics for namespace {namespace} ---");
    let t = Duration::from_secs(20);
    let runs: [(&str, Vec<&str>); 3] = [
        (
            "objects",
            vec![
                "get",
                "deploy,sts,svc,hpa,pdb,pods,pvc",
                "-n",
                namespace,
                "-o",
                "wide",
            ],
        ),
        (
            "AppStack status",
            vec![
                "get",
                "appstacks",
                "-n",
                namespace,
                "-o",
                "jsonpath={range .items[*]}{.metadata.name}: {.status}{\"\\n\"}{end}",
            ],
        ),
        (
            "recent events",
            vec!["get", "events", "-n", namespace, "--sort-by=.lastTimestamp"],
        ),
    ];
    for (what, args) in runs {
        match cmd::run(env, "kubectl", &args, None, t).await {
            Ok(o) => writeln!(out, "    {what}:\n{}", cmd::indent(&tail(&o.text(), 25))),
            Err(e) => writeln!(out, "    {what}: {e:#}"),
        }
        .ok();
    }
    let logs = [
        "logs",
        "-n",
        operator::NAMESPACE,
        "-l",
        operator::POD_SELECTOR,
        "--tail=15",
        "--prefix",
        "--max-log-requests=4",
    ];
    match cmd::run(env, "kubectl", &logs, None, t).await {
        Ok(o) => writeln!(
            out,
            "    operator logs:\n{}",
            cmd::indent(&clip_lines(&o.text(), 400))
        ),
        Err(e) => writeln!(out, "    operator logs: {e:#}"),
    }
    .ok();
    println!("{out}    --- end of diagnostics ---");
}

/// Long (JSON) log lines cut to `width` characters.
fn clip_lines(text: &str, width: usize) -> String {
    text.lines()
        .map(|l| match l.char_indices().nth(width) {
            Some((i, _)) => format!("{}...", &l[..i]),
            None => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
