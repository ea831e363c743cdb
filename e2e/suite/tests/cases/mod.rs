//! One module per scenario. Those without the operator run first; then the
//! shared ones side by side, started in the order listed (longest first, so
//! the short ones fill the gaps at the end); then the `alone` ones in order.

use std::time::Duration;

use appstack_e2e::runner::Scenario;

mod apply;
mod backup_clone;
mod backup_restore;
mod backup_restore_again;
mod backup_s3;
mod backup_s3_namespaces;
mod backup_schedule;
mod bad_manifests;
mod capabilities;
mod child_refused;
mod delete_reapply;
mod drift;
mod existing_secret;
mod external_stores;
mod guard_refused;
mod helm_install;
mod helm_upgrade;
mod hostile_memory;
mod hpa;
mod kill_app;
mod kill_stores;
mod kubectl_plugin;
mod leader_cut_off;
mod least_privilege;
mod migration;
mod name_conflict;
mod network_policy;
mod not_adopted;
mod operator_metrics_policy;
mod operator_restart;
mod password_rotation;
mod pod_placement;
mod poisoned_upgrade;
mod policy_probe;
mod postgres_failover;
mod postgres_fence;
mod postgres_lagging_replica;
mod postgres_synchronous;
mod redis_failover;
mod redis_forged_label;
mod redis_operator_down;
mod redis_rotation;
mod redis_wait;
mod rotation_without_failures;
mod routes;
mod scheduled_job;
mod secrets_in_the_open;
mod smoke;
mod store_change_refused;
mod store_metrics;
mod store_not_hijacked;
mod store_trouble;
mod tls;
mod upgrade_previous;
mod worker;
mod zero_downtime;

fn scenario(name: &'static str, run: appstack_e2e::runner::ScenarioFn, minutes: u64) -> Scenario {
    Scenario {
        name,
        run,
        needs_operator: true,
        installs_operator: false,
        alone: false,
        timeout: Duration::from_secs(minutes * 60),
    }
}

fn alone(name: &'static str, run: appstack_e2e::runner::ScenarioFn, minutes: u64) -> Scenario {
    Scenario {
        alone: true,
        ..scenario(name, run, minutes)
    }
}

pub fn all() -> Vec<Scenario> {
    vec![
        Scenario {
            needs_operator: false,
            ..scenario("smoke", smoke::run, 5)
        },
        Scenario {
            needs_operator: false,
            installs_operator: true,
            ..scenario("helm-install", helm_install::run, 7)
        },
        // Side by side, longest first (seconds from the last CI run).
        scenario("backup-schedule-and-retention", backup_schedule::run, 15),
        scenario("backup-to-s3-and-restore", backup_s3::run, 15),
        scenario("backup-restore-again", backup_restore_again::run, 15),
        scenario("hpa", hpa::run, 12),
        scenario("backup-restore-to-a-point-in-time", backup_restore::run, 15),
        scenario("tls", tls::run, 12),
        scenario("backup-killed-then-clone", backup_clone::run, 15),
        scenario("kubectl-plugin", kubectl_plugin::run, 8),
        scenario("backup-s3-namespaces", backup_s3_namespaces::run, 12),
        scenario("secrets-not-in-the-open", secrets_in_the_open::run, 6),
        scenario("store-trouble", store_trouble::run, 10),
        scenario("password-rotation", password_rotation::run, 10),
        scenario(
            "rotation-without-failures",
            rotation_without_failures::run,
            10,
        ),
        scenario("external-stores", external_stores::run, 8),
        scenario("existing-secret", existing_secret::run, 8),
        scenario("zero-downtime", zero_downtime::run, 7),
        scenario("migration", migration::run, 8),
        scenario("scheduled-job", scheduled_job::run, 6),
        scenario("network-policy-probe", policy_probe::run, 6),
        scenario("delete-and-reapply", delete_reapply::run, 10),
        scenario("guard-refused", guard_refused::run, 6),
        scenario("network-policy", network_policy::run, 8),
        scenario("kill-stores", kill_stores::run, 8),
        scenario("postgres-failover", postgres_failover::run, 8),
        scenario("postgres-lagging-replica", postgres_lagging_replica::run, 8),
        scenario("postgres-synchronous", postgres_synchronous::run, 8),
        scenario("postgres-fence", postgres_fence::run, 8),
        scenario("redis-failover", redis_failover::run, 6),
        scenario("redis-wait-and-noreplicas", redis_wait::run, 6),
        scenario("redis-forged-master-label", redis_forged_label::run, 5),
        scenario("rotation-with-redis-replicas", redis_rotation::run, 10),
        scenario("kill-app-pods", kill_app::run, 8),
        scenario("apply", apply::run, 7),
        scenario("drift", drift::run, 6),
        scenario("least-privilege", least_privilege::run, 8),
        scenario("store-metrics", store_metrics::run, 5),
        scenario("store-change-refused", store_change_refused::run, 6),
        scenario("not-adopted", not_adopted::run, 4),
        scenario("capabilities", capabilities::run, 4),
        scenario("store-not-hijacked", store_not_hijacked::run, 4),
        scenario("bad-manifests", bad_manifests::run, 3),
        scenario("name-conflict", name_conflict::run, 5),
        scenario("child-refused", child_refused::run, 4),
        scenario("worker", worker::run, 6),
        // Starts Traefik (e2e/ingress.sh) when it does not run: a cold build
        // of it takes minutes, hence the bound.
        scenario("routes", routes::run, 15),
        // Alone: they restart, reinstall, measure or cut off the operator.
        alone("operator-restart", operator_restart::run, 8),
        alone("upgrade-from-previous-release", upgrade_previous::run, 15),
        alone("hostile-input-memory", hostile_memory::run, 8),
        alone("poisoned-upgrade", poisoned_upgrade::run, 10),
        alone("leader-cut-off", leader_cut_off::run, 8),
        alone("operator-metrics-policy", operator_metrics_policy::run, 4),
        alone("helm-upgrade-uninstall", helm_upgrade::run, 10),
        // Scales the operator to 0 while Sentinel fails a master over.
        alone("redis-failover-operator-down", redis_operator_down::run, 6),
        // Labels and taints the node.
        alone("pod-placement", pod_placement::run, 4),
    ]
}
