//! The Argo CD health script in the chart (charts/appstack-operator/health/
//! argocd.lua), run by a real Lua interpreter on the statuses this module
//! writes: every problem, a stack rolling out, a ready one, and a status
//! older than the spec.

use std::process::Command;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{Value, json};

use super::Problem;
use super::conditions::{conditions, timed};

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/charts/appstack-operator/health/argocd.lua"
);

/// What Argo CD must show for a stack with this problem. Exhaustive, so a
/// new problem cannot be added without deciding its health here.
fn expected(problem: &Problem) -> &'static str {
    match problem {
        Problem::InvalidSpec(_)
        | Problem::ChangeRejected(_)
        | Problem::NameConflict(_)
        | Problem::ReconcileFailed(_)
        | Problem::StoreFailing(_)
        | Problem::CredentialsOutOfSync(_)
        | Problem::GuardRefused(_)
        | Problem::UserSecret(_)
        | Problem::MigrationFailed(_) => "Degraded",
    }
}

fn every_problem() -> Vec<Problem> {
    let m = || "the message".to_string();
    vec![
        Problem::InvalidSpec(m()),
        Problem::ChangeRejected(m()),
        Problem::NameConflict(m()),
        Problem::ReconcileFailed(m()),
        Problem::StoreFailing(m()),
        Problem::CredentialsOutOfSync(m()),
        Problem::GuardRefused(m()),
        Problem::UserSecret(m()),
        Problem::MigrationFailed(m()),
    ]
}

/// An AppStack as Argo CD sees it: generation 3, the status as reported.
fn stack(problem: Option<&Problem>, all_ready: bool, observed: i64) -> Value {
    let now = Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH);
    let conds = timed(
        None,
        conditions(problem, all_ready, &["web".to_string()]),
        Some(observed),
        &now,
    );
    json!({
        "apiVersion": "appstack.dev/v1alpha1",
        "kind": "AppStack",
        "metadata": {"name": "shop", "generation": 3},
        "status": {"observedGeneration": observed, "conditions": conds},
    })
}

/// A JSON value as a Lua table constructor (nulls dropped, as Argo CD does).
fn lua(value: &Value) -> String {
    match value {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            s.bytes().fold(String::from("\""), |mut out, b| {
                if b.is_ascii_alphanumeric() || b == b' ' {
                    out.push(b as char);
                } else {
                    out.push_str(&format!("\\{b:03}"));
                }
                out
            }) + "\""
        }
        Value::Array(items) => format!(
            "{{{}}}",
            items.iter().map(lua).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(fields) => format!(
            "{{{}}}",
            fields
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("[{}] = {}", lua(&Value::String(k.clone())), lua(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Runs the chart's script on `object`: (status, message).
fn health(object: &Value) -> (String, String) {
    let program = format!(
        "obj = {}\nlocal hs = dofile({})\nio.write(hs.status, \"\\n\", hs.message or \"\")",
        lua(object),
        lua(&Value::String(SCRIPT.into()))
    );
    let out = Command::new("lua5.4")
        .args(["-e", &program])
        .output()
        .expect("lua5.4 runs the Argo CD health script (apt-get install lua5.4)");
    assert!(
        out.status.success(),
        "the health script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let (status, message) = text.split_once('\n').expect("status and message");
    (status.to_string(), message.to_string())
}

#[test]
fn every_problem_is_degraded_with_its_reason_even_while_the_children_serve() {
    for problem in every_problem() {
        for all_ready in [false, true] {
            let (status, message) = health(&stack(Some(&problem), all_ready, 3));
            assert_eq!(
                status,
                expected(&problem),
                "{problem:?}, all ready {all_ready}"
            );
            assert_eq!(
                message,
                format!("{}: the message", problem.reason()),
                "{problem:?}"
            );
        }
    }
}

#[test]
fn a_ready_stack_is_healthy_and_one_rolling_out_is_progressing() {
    assert_eq!(
        health(&stack(None, true, 3)),
        (
            "Healthy".into(),
            "every component and store is ready".into()
        )
    );
    assert_eq!(
        health(&stack(None, false, 3)),
        ("Progressing".into(), "waiting for web".into())
    );
}

#[test]
fn a_status_older_than_the_spec_or_none_at_all_is_progressing() {
    let (status, message) = health(&stack(None, true, 2));
    assert_eq!(status, "Progressing");
    assert!(message.contains("generation 3"), "{message}");
    let (status, _) = health(&json!({"metadata": {"name": "shop", "generation": 1}}));
    assert_eq!(status, "Progressing");
}
