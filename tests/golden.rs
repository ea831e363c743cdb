//! Golden files: every child the builders make for the fixtures in
//! tests/fixtures, one YAML file per object, plus each component's wiring.
//! A change in any output shows up in review as a diff of tests/golden/.
//! Regenerate with `UPDATE_GOLDEN=1 cargo test --test golden`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use appstack::api::{AppStack, StoreKind};
use appstack::build::{self, Children, Inputs};
use kube::ResourceExt;

const REDIS_PASSWORD: &str = "redis-password-for-golden-tests";
const POSTGRES_PASSWORD: &str = "postgres-password-for-golden-tests";

fn fixture(name: &str) -> AppStack {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn inputs(stack: &AppStack) -> Inputs {
    let mut inputs = common::inputs(stack, |kind| match kind {
        StoreKind::Redis => REDIS_PASSWORD,
        StoreKind::Postgres => POSTGRES_PASSWORD,
    });
    // The operator's default ingress controllers (routes.yaml shows them).
    inputs.set_route_controllers(appstack::operator::route_controllers(None).unwrap());
    inputs
}

/// `inputs` plus the user's Secrets of `<fixture>.secrets.yaml`, if any.
fn inputs_of(fixture_name: &str, stack: &AppStack) -> Inputs {
    let mut inputs = inputs(stack);
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("{fixture_name}.secrets.yaml"));
    let Ok(text) = std::fs::read_to_string(&path) else {
        return inputs;
    };
    let secrets: BTreeMap<String, BTreeMap<String, String>> = serde_yaml::from_str(&text).unwrap();
    for e in build::stores::external(&stack.spec) {
        let name = e.external(&stack.spec).unwrap().secret_name.clone();
        let data = secrets[&name].clone();
        inputs.set_external(e.kind(), build::external::UserSecret { name, data });
    }
    inputs
}

fn objects(children: &Children) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for o in children.to_json().unwrap() {
        let file = format!(
            "{}-{}.yaml",
            o["kind"].as_str().unwrap().to_lowercase(),
            o["metadata"]["name"].as_str().unwrap()
        );
        out.insert(file, serde_yaml::to_string(&o).unwrap());
    }
    // The wiring on its own: which variables each component gets, from where.
    let wiring: BTreeMap<String, serde_json::Value> = children
        .deployments
        .iter()
        .map(|d| {
            let pod = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
            let value = serde_json::json!({
                "env": pod.containers[0].env,
                "initContainers": pod.init_containers.as_ref().map(|i| i.iter().map(|c| c.name.clone()).collect::<Vec<_>>()),
                "credentialsHash": d.spec.as_ref().unwrap().template.metadata.as_ref().and_then(|m| m.annotations.as_ref()).and_then(|a| a.get("appstack.dev/credentials-hash")),
            });
            (d.name_any(), value)
        })
        .collect();
    out.insert(
        "wiring.yaml".into(),
        serde_yaml::to_string(&wiring).unwrap(),
    );
    out
}

fn check(fixture_name: &str) {
    let stack = fixture(&format!("{fixture_name}.yaml"));
    let children = build::children(&stack, &inputs_of(fixture_name, &stack)).unwrap();
    let dir: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(fixture_name);
    let actual = objects(&children);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (file, yaml) in &actual {
            std::fs::write(dir.join(file), yaml).unwrap();
        }
        return;
    }
    let mut expected = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run UPDATE_GOLDEN=1 cargo test --test golden",
            dir.display()
        )
    }) {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        expected.insert(file, std::fs::read_to_string(&path).unwrap());
    }
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        actual.keys().collect::<Vec<_>>(),
        "the set of children changed for {fixture_name}; if intended, run UPDATE_GOLDEN=1 cargo test --test golden"
    );
    for (file, yaml) in &actual {
        pretty_assertions::assert_eq!(
            &expected[file],
            yaml,
            "{fixture_name}/{file} differs from its golden file"
        );
    }
}

#[test]
fn shop_children_match_golden_files() {
    check("shop");
}

#[test]
fn cache_only_children_match_golden_files() {
    check("cache-only");
}

#[test]
fn redis_replicas_match_golden_files() {
    check("redis-replicas");
}

#[test]
fn backed_up_and_restored_children_match_golden_files() {
    check("restored-clone");
}

#[test]
fn s3_backups_and_restore_match_golden_files() {
    check("s3-restored");
}

#[test]
fn a_worker_matches_golden_files() {
    check("worker");
}

#[test]
fn pod_settings_match_golden_files() {
    check("pod-settings");
}

#[test]
fn external_stores_by_fields_match_golden_files() {
    check("external-fields");
}

#[test]
fn external_postgres_by_url_beside_an_in_cluster_redis_matches_golden_files() {
    check("external-url");
}

#[test]
fn external_redis_over_tls_matches_golden_files() {
    check("external-redis-tls");
}

#[test]
fn routes_match_golden_files() {
    check("routes");
}

#[test]
fn a_migration_matches_golden_files() {
    check("migrate");
}

#[test]
fn a_replicated_postgres_matches_golden_files() {
    check("replicated");
}

#[test]
fn scheduled_jobs_match_golden_files() {
    check("jobs");
}

#[test]
fn no_password_appears_literally_in_any_workload() {
    for name in [
        "migrate.yaml",
        "jobs.yaml",
        "shop.yaml",
        "worker.yaml",
        "pod-settings.yaml",
        "cache-only.yaml",
        "restored-clone.yaml",
        "s3-restored.yaml",
        "external-fields.yaml",
        "external-url.yaml",
        "external-redis-tls.yaml",
        "replicated.yaml",
    ] {
        let stack = fixture(name);
        let inputs = inputs_of(name.trim_end_matches(".yaml"), &stack);
        let children = build::children(&stack, &inputs).unwrap();
        let workloads = serde_json::to_string(&(
            &children.deployments,
            &children.stateful_sets,
            &children.cron_jobs,
            &children.config_maps,
            &children.jobs,
        ))
        .unwrap();
        assert!(
            !workloads.contains(REDIS_PASSWORD),
            "{name}: Redis password in a pod spec"
        );
        assert!(
            !workloads.contains(POSTGRES_PASSWORD),
            "{name}: PostgreSQL password in a pod spec"
        );
        for external in ["p@ss:w/rd#1%x", "db-password-for-golden-tests", "s3cret"] {
            assert!(
                !workloads.contains(external),
                "{name}: an external store's password in a pod spec"
            );
        }
    }
}
