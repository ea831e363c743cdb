//! Running the tools a user would run (kubectl, helm, ctr) with a time bound.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tokio::io::AsyncWriteExt;

use crate::env::TestEnv;

pub struct Output {
    pub success: bool,
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// stdout and stderr together, trimmed, for messages.
    pub fn text(&self) -> String {
        format!("{}\n{}", self.stdout.trim(), self.stderr.trim())
            .trim()
            .to_string()
    }
}

/// Runs `program args...` with optional stdin; a non-zero exit is returned,
/// not an error (callers that expect refusal need it).
pub async fn run(
    env: &TestEnv,
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
    timeout: Duration,
) -> Result<Output> {
    let shown = format!("{program} {}", args.join(" "));
    let mut cmd = env.command(program);
    cmd.args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("starting `{shown}` (is {program} on PATH?)"))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input.as_bytes()).await?;
        drop(pipe);
    }
    let out = tokio::time::timeout(timeout, child.wait_with_output())
        .await
        .with_context(|| format!("`{shown}` did not finish within {}s", timeout.as_secs()))?
        .with_context(|| format!("waiting for `{shown}`"))?;
    Ok(Output {
        success: out.status.success(),
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

/// Like [`run`], but a non-zero exit is an error carrying the tool's output.
pub async fn run_ok(
    env: &TestEnv,
    program: &str,
    args: &[&str],
    stdin: Option<&str>,
    timeout: Duration,
) -> Result<String> {
    let out = run(env, program, args, stdin, timeout).await?;
    if !out.success {
        bail!(
            "`{program} {}` failed (exit {:?}):\n{}",
            args.join(" "),
            out.code,
            indent(&out.text())
        );
    }
    Ok(out.stdout)
}

pub fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("      {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
