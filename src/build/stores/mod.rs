//! The store engines, one file each (postgres.rs, redis.rs), and the
//! registry the generic builders iterate: nothing outside these files
//! names a store kind.

#[cfg(test)]
mod external_tests;
mod postgres;
mod redis;
pub mod redis_ha;

pub use super::engine::{BackupScripts, Engine};
pub use super::env::userinfo;
use crate::api::{AppStackSpec, Component, StoreKind};

/// Every engine, in the order their children are built.
pub static ENGINES: [&dyn Engine; 2] = [&redis::Redis, &postgres::Postgres];

/// The stores this stack runs (in the cluster, not external).
pub fn of(spec: &AppStackSpec) -> impl Iterator<Item = &'static dyn Engine> + '_ {
    ENGINES.iter().copied().filter(|e| e.in_cluster(spec))
}

/// The external stores of the stack: servers the operator does not run.
pub fn external(spec: &AppStackSpec) -> impl Iterator<Item = &'static dyn Engine> + '_ {
    ENGINES
        .iter()
        .copied()
        .filter(|e| e.runs(spec) && e.external(spec).is_some())
}

/// The stores `component` is wired to, in the cluster or external.
pub fn used_by<'a>(
    spec: &'a AppStackSpec,
    component: &'a Component,
) -> impl Iterator<Item = &'static dyn Engine> + 'a {
    ENGINES
        .iter()
        .copied()
        .filter(|e| e.used_by(spec, component))
}

/// The engine of a store kind.
pub fn by_kind(kind: StoreKind) -> Option<&'static dyn Engine> {
    ENGINES.iter().copied().find(|e| e.kind() == kind)
}

/// The engine whose part (`redis`, `postgres`) is `part`: how the backup
/// agent is told which store it serves.
pub fn by_part(part: &str) -> Option<&'static dyn Engine> {
    ENGINES.iter().copied().find(|e| e.part() == part)
}

/// The part of every engine, in order.
pub fn parts() -> Vec<&'static str> {
    ENGINES.iter().map(|e| e.part()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::AppStack;
    use kube::CustomResourceExt;

    #[test]
    fn every_kind_has_one_engine_and_one_part() {
        for e in ENGINES {
            assert!(by_kind(e.kind()).is_some_and(|f| f.part() == e.part()));
            assert!(by_part(e.part()).is_some_and(|f| f.kind() == e.kind()));
            let kind = serde_json::to_value(e.kind()).unwrap();
            assert_eq!(kind, e.part(), "spec.<part> and uses: [<part>] agree");
        }
    }

    /// The longest stack name the CRD admits with a store must give every
    /// engine valid names: its StatefulSet's pods and its headless Service.
    #[test]
    fn every_engine_fits_the_longest_stack_name() {
        use crate::build::names;
        let stack = "a".repeat(names::MAX_STACK_WITH_STORES);
        for e in ENGINES {
            let name = e.secret_name(&stack);
            assert!(names::headless(&name).len() <= 63, "{}", e.part());
            assert!(name.len() + 11 <= 63, "{}", e.part());
            assert!(format!("{}-backup", name).len() <= 63, "{}", e.part());
        }
    }

    /// The CRD's CEL rules list the reserved component names and the
    /// stores `uses` may name: they must be the engines' own.
    #[test]
    fn the_crd_reserves_exactly_the_engines_names() {
        let crd = serde_json::to_string(&AppStack::crd()).unwrap();
        let reserved = crate::build::names::reserved(&parts());
        let quoted: Vec<String> = reserved.iter().map(|r| format!("'{r}'")).collect();
        assert!(
            crd.contains(&format!("!(self in [{}])", quoted.join(", "))),
            "{quoted:?}"
        );
        let suffixes: Vec<String> = reserved.iter().map(|r| format!("'-{r}'")).collect();
        assert!(
            crd.contains(&format!("[{}].exists(s", suffixes.join(", "))),
            "{suffixes:?}"
        );
        for e in ENGINES {
            let part = e.part();
            assert!(crd.contains(&format!("(u == '{part}' && has(self.{part}))")));
        }
    }

    /// Artifact Hub lists the images a chart runs: the chart names the
    /// operator's at its appVersion, every engine's default and then every
    /// engine's default exporter.
    #[test]
    fn the_chart_lists_the_operator_image_and_every_default_store_image() {
        let chart: serde_yaml::Value =
            serde_yaml::from_str(include_str!("../../../charts/appstack-operator/Chart.yaml"))
                .unwrap();
        let listed: serde_yaml::Value = serde_yaml::from_str(
            chart["annotations"]["artifacthub.io/images"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        let images: Vec<&str> = listed
            .as_sequence()
            .unwrap()
            .iter()
            .map(|i| i["image"].as_str().unwrap())
            .collect();
        let app_version = chart["appVersion"].as_str().unwrap();
        let mut want = vec![format!(
            "ghcr.io/appstack-dev/appstack-operator:{app_version}"
        )];
        let spec: AppStackSpec = serde_json::from_value(serde_json::json!({
            "components": [{"name": "web", "image": "web:1", "port": 8080}],
        }))
        .unwrap();
        want.extend(ENGINES.iter().map(|e| e.image(&spec)));
        want.extend(
            ENGINES
                .iter()
                .map(|e| e.exporter().default_image.to_string()),
        );
        assert_eq!(images, want);
    }
}
