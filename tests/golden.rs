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
    common::inputs(stack, |kind| match kind {
        StoreKind::Redis => REDIS_PASSWORD,
        StoreKind::Postgres => POSTGRES_PASSWORD,
    })
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
    let children = build::children(&stack, &inputs(&stack)).unwrap();
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
fn backed_up_and_restored_children_match_golden_files() {
    check("restored-clone");
}

#[test]
fn s3_backups_and_restore_match_golden_files() {
    check("s3-restored");
}

#[test]
fn a_migration_matches_golden_files() {
    check("migrate");
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
        "cache-only.yaml",
        "restored-clone.yaml",
        "s3-restored.yaml",
    ] {
        let stack = fixture(name);
        let children = build::children(&stack, &inputs(&stack)).unwrap();
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
    }
}
