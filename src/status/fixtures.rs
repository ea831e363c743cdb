//! Pods as the kubelet reports them, for the tests of status.

use k8s_openapi::api::core::v1::Pod;

pub fn pod(containers: serde_json::Value, conditions: serde_json::Value) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": "shop-redis-0"},
        "status": {"containerStatuses": containers, "conditions": conditions}
    }))
    .expect("a pod")
}

pub fn container(name: &str, state: serde_json::Value) -> serde_json::Value {
    serde_json::json!({"name": name, "ready": false, "restartCount": 0, "image": "i",
                       "imageID": "", "state": state})
}

pub fn backup_pod(name: &str, phase: &str, at: &str, exit: i32, message: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "status": {"phase": phase, "containerStatuses": [{
            "name": "backup", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
            "state": {"terminated": {"exitCode": exit, "finishedAt": at, "message": message}}
        }]}
    }))
    .unwrap()
}

pub const SUMMARY: &str = r#"{"label":"20261202T030000Z","completed":"2026-12-02T03:00:09Z","sizeBytes":48006139,"count":2,"totalBytes":96000000,"firstRecoverable":"2026-12-01T03:00:08Z","lastRecoverable":"2026-12-02T03:00:09Z"}"#;
