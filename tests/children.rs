//! Properties every child must have, checked on whole stacks through the
//! public builder API: ownership, labels, fitness for Server-Side Apply,
//! defaults, and which children exist for which spec.

mod common;

use appstack::api::{AppStack, StoreKind};
use appstack::build::{self, BuildError, Children, Inputs, labels, names};
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use serde_json::Value;

const UID: &str = "3f1c2b4a-0000-4000-8000-000000000001";

fn stack(name: &str, spec_yaml: &str) -> AppStack {
    let spec = serde_yaml::from_str(spec_yaml).unwrap();
    let mut s = AppStack::new(name, spec);
    s.metadata.namespace = Some("team-a".into());
    s.metadata.uid = Some(UID.into());
    s
}

fn inputs(s: &AppStack) -> Inputs {
    common::inputs(s, |kind| match kind {
        StoreKind::Redis => "r3d1s",
        StoreKind::Postgres => "p0stgr3s",
    })
}

fn build(s: &AppStack) -> Children {
    build::children(s, &inputs(s)).unwrap()
}

/// Every child as JSON, the way the applier sends it.
fn all_json(c: &Children) -> Vec<Value> {
    c.to_json().unwrap()
}

const FULL: &str = "
components:
- {name: web, image: i, port: 8080, autoscaling: {minReplicas: 2, maxReplicas: 5}}
- {name: worker, image: i, port: 9000, replicas: 3, uses: [postgres]}
- {name: static, image: i, port: 80, uses: []}
redis: {}
postgres: {}
";

#[test]
fn every_child_is_owned_labelled_and_namespaced() {
    let c = build(&stack("shop", FULL));
    let objects = all_json(&c);
    // 3 Deployments, 3 + 4 Services, 2 StatefulSets, 2 + 2 + 2 + 2 + 2 + 2
    // Secrets (apps', administrators', monitoring users', servers' TLS, the
    // operator's passwords, the CA and its key), 1 HPA, 2 PDBs, 3 + 2
    // NetworkPolicies.
    assert_eq!(objects.len(), 32);
    for o in &objects {
        let name = o["metadata"]["name"].as_str().unwrap();
        assert_eq!(o["metadata"]["namespace"], "team-a", "{name}");
        let owners = o["metadata"]["ownerReferences"].as_array().unwrap();
        assert_eq!(owners.len(), 1, "{name}");
        let owner = &owners[0];
        assert_eq!(owner["apiVersion"], "appstack.dev/v1alpha1");
        assert_eq!(owner["kind"], "AppStack");
        assert_eq!(owner["name"], "shop");
        assert_eq!(owner["uid"], UID);
        assert_eq!(owner["controller"], true);
        assert_eq!(owner["blockOwnerDeletion"], true);
        let l = &o["metadata"]["labels"];
        assert_eq!(l["app.kubernetes.io/instance"], "shop", "{name}");
        assert_eq!(
            l["app.kubernetes.io/managed-by"],
            labels::MANAGED_BY,
            "{name}"
        );
        assert_eq!(l["app.kubernetes.io/part-of"], "appstack", "{name}");
        assert!(l["app.kubernetes.io/name"].is_string(), "{name}");
        assert!(l["app.kubernetes.io/component"].is_string(), "{name}");
    }
}

#[test]
fn children_are_fit_for_server_side_apply() {
    for o in all_json(&build(&stack("shop", FULL))) {
        let name = o["metadata"]["name"].as_str().unwrap();
        assert!(
            o["apiVersion"].is_string() && o["kind"].is_string(),
            "{name}"
        );
        assert!(o.get("status").is_none(), "{name} carries a status");
        for server_owned in [
            "resourceVersion",
            "uid",
            "creationTimestamp",
            "managedFields",
        ] {
            assert!(
                o["metadata"].get(server_owned).is_none(),
                "{name}: {server_owned}"
            );
        }
    }
}

#[test]
fn the_stack_selector_matches_every_child() {
    let selector = labels::stack_selector("shop");
    for o in all_json(&build(&stack("shop", FULL))) {
        for pair in selector.split(',') {
            let (k, v) = pair.split_once('=').unwrap();
            assert_eq!(o["metadata"]["labels"][k], v);
        }
    }
}

#[test]
fn a_missing_uid_or_namespace_is_an_error_not_an_orphan() {
    let mut s = stack("shop", FULL);
    s.metadata.uid = None;
    let err = build::children(&s, &inputs(&s)).unwrap_err();
    assert_eq!(err, BuildError::MissingMetadata("uid"));
    let mut s = stack("shop", FULL);
    s.metadata.namespace = None;
    let err = build::children(&s, &inputs(&s)).unwrap_err();
    assert!(err.to_string().starts_with("metadata.namespace"), "{err}");
}

#[test]
fn disruption_budgets_only_where_more_than_one_replica_runs() {
    let c = build(&stack("shop", FULL));
    let pdbs: Vec<String> = c.disruption_budgets.iter().map(|p| p.name_any()).collect();
    // web: minReplicas 2; worker: 3 replicas; static: the default single replica.
    assert_eq!(pdbs, ["shop-web", "shop-worker"]);
    let spec = c.disruption_budgets[0].spec.as_ref().unwrap();
    assert_eq!(
        serde_json::to_value(&spec.max_unavailable).unwrap(),
        serde_json::json!(1)
    );
    let single = build(&stack(
        "s",
        "components: [{name: a, image: i, port: 1, autoscaling: {minReplicas: 1, maxReplicas: 4}}]",
    ));
    assert!(single.disruption_budgets.is_empty());
}

#[test]
fn autoscaler_targets_the_deployment_with_a_default_cpu_target() {
    let c = build(&stack("shop", FULL));
    assert_eq!(c.autoscalers.len(), 1);
    let hpa = serde_json::to_value(&c.autoscalers[0]).unwrap();
    assert_eq!(hpa["apiVersion"], "autoscaling/v2");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["kind"], "Deployment");
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], "shop-web");
    assert_eq!(hpa["spec"]["minReplicas"], 2);
    assert_eq!(hpa["spec"]["maxReplicas"], 5);
    let target = &hpa["spec"]["metrics"][0]["resource"];
    assert_eq!(target["name"], "cpu");
    assert_eq!(target["target"]["averageUtilization"], 80);
}

#[test]
fn replicas_default_to_one_without_autoscaling() {
    let c = build(&stack("shop", FULL));
    let static_ = c
        .deployments
        .iter()
        .find(|d| d.name_any() == "shop-static")
        .unwrap();
    assert_eq!(static_.spec.as_ref().unwrap().replicas, Some(1));
}

fn secret_value(s: &Secret, key: &str) -> String {
    String::from_utf8(s.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

#[test]
fn secrets_hold_what_clients_need_to_connect() {
    let c = build(&stack("my-shop", FULL));
    let redis = c
        .secrets
        .iter()
        .find(|s| s.name_any() == "my-shop-redis")
        .unwrap();
    assert_eq!(secret_value(redis, "host"), "my-shop-redis.team-a.svc");
    assert_eq!(secret_value(redis, "port"), "6379");
    assert_eq!(secret_value(redis, "password"), "r3d1s");
    assert_eq!(
        secret_value(redis, "url"),
        "rediss://app:r3d1s@my-shop-redis.team-a.svc:6379/0"
    );
    assert_eq!(secret_value(redis, "ca_file"), "/etc/appstack/tls/ca.crt");
    // The administrators' Secrets hold their credentials only, and no
    // component is wired to them.
    for name in ["my-shop-redis-admin", "my-shop-postgres-admin"] {
        let admin = c.secrets.iter().find(|s| s.name_any() == name).unwrap();
        let keys: Vec<&String> = admin.data.as_ref().unwrap().keys().collect();
        assert_eq!(keys, ["password", "username"], "{name}");
        let wired = serde_json::to_string(&c.deployments).unwrap();
        assert!(!wired.contains(name), "{name} is wired to a component");
    }
    let pg = c
        .secrets
        .iter()
        .find(|s| s.name_any() == "my-shop-postgres")
        .unwrap();
    // The default database is the stack's name as a plain identifier.
    assert_eq!(secret_value(pg, "database"), "my_shop");
    assert_eq!(secret_value(pg, "username"), "app");
    assert_eq!(
        secret_value(pg, "url"),
        "postgresql://app:p0stgr3s@my-shop-postgres.team-a.svc:5432/my_shop?sslmode=verify-full&sslrootcert=/etc/appstack/tls/ca.crt"
    );
    assert_eq!(secret_value(pg, "sslmode"), "verify-full");
    for s in &c.secrets {
        let tls = s.name_any().ends_with("-tls") || s.name_any().ends_with("-ca-key");
        let want = if tls { "kubernetes.io/tls" } else { "Opaque" };
        assert_eq!(s.type_.as_deref(), Some(want), "{}", s.name_any());
    }
}

#[test]
fn without_tls_the_stores_take_plain_connections_and_no_tls_secret_is_made() {
    let c = build(&stack("shop", &format!("{FULL}tls: {{enabled: false}}\n")));
    let names: Vec<String> = c.secrets.iter().map(|s| s.name_any()).collect();
    assert_eq!(
        names,
        [
            "shop-redis",
            "shop-redis-admin",
            "shop-redis-passwords",
            "shop-redis-monitor",
            "shop-postgres",
            "shop-postgres-admin",
            "shop-postgres-passwords",
            "shop-postgres-monitor"
        ]
    );
    let redis = &c.secrets[0];
    assert_eq!(
        secret_value(redis, "url"),
        "redis://app:r3d1s@shop-redis.team-a.svc:6379/0"
    );
    let all = serde_json::to_string(&c.stateful_sets).unwrap()
        + &serde_json::to_string(&c.deployments).unwrap();
    // (The exporter says sslmode=disable: its driver would require TLS.)
    for absent in [
        "tls-port",
        "ssl=on",
        "sslmode=verify",
        "PGSSLMODE",
        "appstack-tls",
    ] {
        assert!(!all.contains(absent), "{absent} without TLS");
    }
}

#[test]
fn with_tls_components_mount_only_the_ca_and_stores_their_own_certificate() {
    let c = build(&stack("shop", FULL));
    let volumes = |spec: &Option<k8s_openapi::api::core::v1::PodSpec>| {
        let v = serde_json::to_value(spec.as_ref().unwrap().volumes.clone()).unwrap();
        v.as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["name"] == "appstack-tls")
            .map(|v| v["secret"].clone())
            .collect::<Vec<_>>()
    };
    for d in &c.deployments {
        let pod = &d.spec.as_ref().unwrap().template.spec;
        let tls = volumes(pod);
        if d.name_any() == "shop-static" {
            assert!(tls.is_empty(), "a component wired to no store needs no CA");
            continue;
        }
        assert_eq!(tls.len(), 1, "{}", d.name_any());
        assert_eq!(tls[0]["secretName"], "shop-ca");
        assert_eq!(tls[0]["items"][0]["key"], "ca.crt");
    }
    for s in &c.stateful_sets {
        let tls = volumes(&s.spec.as_ref().unwrap().template.spec);
        assert_eq!(tls[0]["secretName"], format!("{}-tls", s.name_any()));
    }
    // The CA's key is in one Secret, mounted nowhere.
    let pods = serde_json::to_string(&c.deployments).unwrap()
        + &serde_json::to_string(&c.stateful_sets).unwrap();
    assert!(!pods.contains("shop-ca-key"));
}

#[test]
fn stores_default_to_official_images_and_sizes() {
    let c = build(&stack("shop", FULL));
    for (sts, image, size) in [
        ("shop-redis", "redis:7.4", "1Gi"),
        ("shop-postgres", "postgres:17", "5Gi"),
    ] {
        let v = serde_json::to_value(
            c.stateful_sets
                .iter()
                .find(|s| s.name_any() == sts)
                .unwrap(),
        )
        .unwrap();
        let spec = &v["spec"];
        assert_eq!(spec["replicas"], 1, "{sts}");
        assert_eq!(spec["serviceName"], names::headless(sts), "{sts}");
        assert_eq!(spec["template"]["spec"]["containers"][0]["image"], image);
        let claim = &spec["volumeClaimTemplates"][0]["spec"];
        assert_eq!(claim["resources"]["requests"]["storage"], size, "{sts}");
        assert!(claim.get("storageClassName").is_none(), "{sts}");
        let pod = &spec["template"]["spec"]["securityContext"];
        assert_eq!(pod["runAsUser"], 999);
        assert_eq!(pod["fsGroup"], 999);
        assert_eq!(pod["runAsNonRoot"], true);
    }
}

#[test]
fn headless_services_publish_not_ready_pods() {
    let c = build(&stack("shop", FULL));
    for name in ["shop-redis-headless", "shop-postgres-headless"] {
        let svc = c.services.iter().find(|s| s.name_any() == name).unwrap();
        let spec = svc.spec.as_ref().unwrap();
        assert_eq!(spec.cluster_ip.as_deref(), Some("None"), "{name}");
        assert_eq!(spec.publish_not_ready_addresses, Some(true), "{name}");
    }
    let client = c
        .services
        .iter()
        .find(|s| s.name_any() == "shop-redis")
        .unwrap();
    assert_eq!(
        client.spec.as_ref().unwrap().type_.as_deref(),
        Some("ClusterIP")
    );
}

#[test]
fn a_component_without_stores_gets_no_wiring() {
    let c = build(&stack("shop", FULL));
    let d = c
        .deployments
        .iter()
        .find(|d| d.name_any() == "shop-static")
        .unwrap();
    let template = &d.spec.as_ref().unwrap().template;
    let pod = template.spec.as_ref().unwrap();
    assert!(pod.init_containers.is_none());
    assert!(pod.containers[0].env.is_none());
    let annotations = template
        .metadata
        .as_ref()
        .and_then(|m| m.annotations.clone());
    assert!(annotations.is_none_or(|a| !a.contains_key("appstack.dev/credentials-hash")));
}

#[test]
fn wiring_comes_after_user_env_and_replaces_same_names() {
    let s = stack(
        "shop",
        "
components:
- name: web
  image: i
  port: 8080
  env: [{name: A, value: '1'}, {name: DATABASE_URL, value: literal}]
postgres: {}
",
    );
    let c = build(&s);
    let env = c.deployments[0]
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .env
        .clone()
        .unwrap();
    let names: Vec<&str> = env.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "A",
            "DATABASE_URL",
            "PGHOST",
            "PGPORT",
            "PGDATABASE",
            "PGUSER",
            "PGPASSWORD",
            "PGSSLMODE",
            "PGSSLROOTCERT"
        ]
    );
    let url = env.iter().find(|e| e.name == "DATABASE_URL").unwrap();
    assert!(url.value.is_none(), "credentials only by secretKeyRef");
    let key_ref = url
        .value_from
        .as_ref()
        .unwrap()
        .secret_key_ref
        .as_ref()
        .unwrap();
    assert_eq!(
        (key_ref.name.as_str(), key_ref.key.as_str()),
        ("shop-postgres", "url")
    );
}

#[test]
fn app_pods_meet_the_restricted_profile_and_drain_gracefully() {
    let c = build(&stack("shop", FULL));
    for d in &c.deployments {
        let v = serde_json::to_value(d).unwrap();
        let spec = &v["spec"];
        assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
        assert_eq!(spec["strategy"]["rollingUpdate"]["maxSurge"], 1);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
        assert_eq!(
            pod["securityContext"]["seccompProfile"]["type"],
            "RuntimeDefault"
        );
        assert_eq!(pod["terminationGracePeriodSeconds"], 30);
        let all = pod["containers"]
            .as_array()
            .unwrap()
            .iter()
            .chain(pod["initContainers"].as_array().into_iter().flatten());
        for container in all {
            let sc = &container["securityContext"];
            assert_eq!(
                sc["allowPrivilegeEscalation"], false,
                "{}",
                container["name"]
            );
            assert_eq!(sc["capabilities"]["drop"][0], "ALL");
            assert_eq!(sc["runAsNonRoot"], true);
        }
        let app = &pod["containers"][0];
        assert_eq!(app["lifecycle"]["preStop"]["sleep"]["seconds"], 5);
        assert_eq!(app["ports"][0]["name"], "http");
        assert!(
            app["readinessProbe"].is_object(),
            "a default readiness probe"
        );
    }
}

/// The store pods' containers and init containers of a stack, by name.
fn store_containers(c: &Children, sts: &str) -> Vec<k8s_openapi::api::core::v1::Container> {
    let pod = c
        .stateful_sets
        .iter()
        .find(|s| s.name_any() == sts)
        .unwrap()
        .spec
        .clone()
        .unwrap()
        .template
        .spec
        .unwrap();
    pod.init_containers
        .into_iter()
        .flatten()
        .chain(pod.containers)
        .collect()
}

#[test]
fn no_store_process_gets_a_password_on_its_command_line() {
    let s = stack(
        "shop",
        "
components: [{name: web, image: i, port: 80}]
redis: {backup: {}}
postgres: {backup: {}}
",
    );
    let c = build(&s);
    for sts in ["shop-redis", "shop-postgres"] {
        for container in store_containers(&c, sts) {
            let words: Vec<String> = container
                .command
                .iter()
                .flatten()
                .chain(container.args.iter().flatten())
                .cloned()
                .collect();
            // The kubelet expands $(VAR) into the process's arguments.
            let secrets = container
                .env
                .iter()
                .flatten()
                .filter(|e| {
                    e.value_from
                        .as_ref()
                        .is_some_and(|v| v.secret_key_ref.is_some())
                })
                .map(|e| format!("$({})", e.name));
            for var in secrets {
                assert!(
                    !words.iter().any(|w| w.contains(&var)),
                    "{sts}/{}: {var} in its arguments",
                    container.name
                );
            }
        }
    }
    // Redis takes every user from a file on a memory volume, which the
    // server cannot write back.
    let redis = store_containers(&c, "shop-redis");
    let users = redis.iter().find(|c| c.name == "users").unwrap();
    let server = redis.iter().find(|c| c.name == "redis").unwrap();
    let args = server.args.clone().unwrap();
    assert!(
        args.windows(2)
            .any(|w| w[0] == "--aclfile" && w[1].starts_with("/var/run/appstack/users/")),
        "{args:?}"
    );
    assert!(!args.iter().any(|a| a == "--user" || a == "--requirepass"));
    let mount = |c: &k8s_openapi::api::core::v1::Container| {
        c.volume_mounts
            .iter()
            .flatten()
            .find(|m| m.name == "users")
            .cloned()
            .unwrap()
    };
    assert_eq!(mount(server).read_only, Some(true));
    assert_eq!(mount(users).read_only, None);
    let env: Vec<&str> = users
        .env
        .iter()
        .flatten()
        .map(|e| e.name.as_str())
        .collect();
    for var in [
        "REDISCLI_AUTH",
        "APP_USER",
        "APP_PASSWORD",
        "BACKUP_USER",
        "BACKUP_PASSWORD",
    ] {
        assert!(env.contains(&var), "{var} missing from {env:?}");
    }
    let pod = c.stateful_sets[0]
        .spec
        .clone()
        .unwrap()
        .template
        .spec
        .unwrap();
    let volume = pod
        .volumes
        .unwrap()
        .into_iter()
        .find(|v| v.name == "users")
        .unwrap();
    assert_eq!(
        volume.empty_dir.and_then(|e| e.medium).as_deref(),
        Some("Memory")
    );
}

#[test]
fn every_redis_password_change_rolls_redis_which_writes_its_users_at_start() {
    let s = stack(
        "shop",
        "
components: [{name: web, image: i, port: 80}]
redis: {backup: {}}
",
    );
    let template = |c: &Children| {
        serde_json::to_value(&c.stateful_sets[0].spec.as_ref().unwrap().template).unwrap()
    };
    let before = template(&build(&s));
    let mut admin = inputs(&s);
    let mut creds = admin.admin(StoreKind::Redis).unwrap().clone();
    creds.password = "new-admin".into();
    admin.set_admin(StoreKind::Redis, creds);
    let mut backup = inputs(&s);
    let mut creds = backup.backup(StoreKind::Redis).unwrap().clone();
    creds.password = "new-backup".into();
    backup.set_backup(StoreKind::Redis, creds);
    let mut monitor = inputs(&s);
    let mut creds = monitor.monitor(StoreKind::Redis).unwrap().clone();
    creds.password = "new-monitor".into();
    monitor.set_monitor(StoreKind::Redis, creds);
    for changed in [admin, backup, monitor] {
        let after = template(&build::children(&s, &changed).unwrap());
        assert_ne!(before, after, "the pod template must change");
    }
}

/// The apps' password reaches the stores live (Redis through the hashes of
/// the operator's passwords Secret, PostgreSQL through its login roles):
/// neither store restarts for it, and the passwords Secret changes.
#[test]
fn an_apps_password_change_reaches_the_stores_without_restarting_them() {
    let s = stack("shop", FULL);
    let hash = |c: &Children, sts: &str| {
        let s = c
            .stateful_sets
            .iter()
            .find(|s| s.name_any() == sts)
            .unwrap();
        let meta = s.spec.as_ref().unwrap().template.metadata.as_ref().unwrap();
        meta.annotations.as_ref().unwrap()["appstack.dev/credentials-hash"].clone()
    };
    let passwords = |c: &Children, name: &str| {
        c.secrets
            .iter()
            .find(|s| s.name_any() == name)
            .map(|s| serde_json::to_value(&s.data).unwrap())
            .unwrap()
    };
    let before = build(&s);
    let mut changed = inputs(&s);
    for kind in [StoreKind::Redis, StoreKind::Postgres] {
        let mut creds = changed.get(kind).unwrap().clone();
        creds.password = "rotated".into();
        changed.set(kind, creds);
    }
    let after = build::children(&s, &changed).unwrap();
    for store in ["shop-redis", "shop-postgres"] {
        assert_eq!(hash(&before, store), hash(&after, store), "{store}");
        let secret = format!("{store}-passwords");
        assert_ne!(
            passwords(&before, &secret),
            passwords(&after, &secret),
            "{secret}"
        );
    }
}

#[test]
fn removing_a_store_removes_all_its_children() {
    let c = build(&stack(
        "shop",
        "components: [{name: web, image: i, port: 1}]\nredis: {}",
    ));
    let names: Vec<String> = all_json(&c)
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_string())
        .collect();
    assert!(names.iter().all(|n| !n.contains("postgres")), "{names:?}");
    assert!(names.iter().any(|n| n == "shop-redis"));
}

#[test]
fn stack_names_that_cannot_prefix_services_are_refused() {
    for bad in ["shop.v2", "9shop"] {
        let s = stack(bad, "components: [{name: web, image: i, port: 1}]");
        let err = build::children(&s, &inputs(&s)).unwrap_err();
        assert!(
            err.to_string().starts_with("metadata.name:"),
            "{bad}: {err}"
        );
    }
    let long = "s".repeat(44);
    let s = stack(
        &long,
        "components: [{name: web, image: i, port: 1}]\npostgres: {}",
    );
    let err = build::children(&s, &inputs(&s)).unwrap_err();
    assert!(err.to_string().contains("43"), "{err}");
}

/// The S3 key prefix of every store, in the stack's env, by container.
fn s3_prefixes(c: &Children) -> Vec<String> {
    let mut out = Vec::new();
    for o in all_json(c) {
        let text = o.to_string();
        let mut rest = text.as_str();
        let needle = r#""name":"S3_PREFIX","value":""#;
        while let Some(i) = rest.find(needle) {
            rest = &rest[i + needle.len()..];
            let end = rest.find('"').unwrap();
            out.push(rest[..end].to_string());
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn s3_keys_stay_inside_the_namespace() {
    let s3 = "{bucket: b, endpoint: 'http://s3.example:9000', secretName: k}";
    let without = stack(
        "shop",
        &format!(
            "components: [{{name: web, image: i, port: 1}}]\npostgres: {{backup: {{target: {{s3: {s3}}}}}}}\nrestore: {{from: old, s3: {s3}}}"
        ),
    );
    // Backups under the default prefix stay where they always were.
    assert_eq!(
        s3_prefixes(&build(&without)),
        vec!["team-a/old/postgres/", "team-a/shop/postgres/"]
    );
    let with = stack(
        "shop",
        "components: [{name: web, image: i, port: 1}]\npostgres: {backup: {target: {s3: {bucket: b, endpoint: 'http://s3.example:9000', secretName: k, prefix: team-b/x}}}}",
    );
    assert_eq!(
        s3_prefixes(&build(&with)),
        vec!["team-a/team-b/x/shop/postgres/"]
    );
}

#[test]
fn a_stored_s3_prefix_that_leaves_the_namespace_is_refused() {
    for (bad, why) in [
        ("../team-b", "'..'"),
        ("a/./b", "'.'"),
        ("a//b", "empty"),
        ("/team-b", "absolute"),
        ("a\\..\\b", "backslash"),
    ] {
        let s = stack(
            "shop",
            &format!(
                "components: [{{name: web, image: i, port: 1}}]\nredis: {{backup: {{target: {{s3: {{bucket: b, endpoint: 'http://s3.example:9000', secretName: k, prefix: {bad:?}}}}}}}}}"
            ),
        );
        let err = build::children(&s, &inputs(&s)).unwrap_err();
        assert!(matches!(err, BuildError::S3Prefix { .. }), "{bad}: {err}");
        let text = err.to_string();
        assert!(
            text.starts_with("spec.redis.backup.target.s3.prefix:") && text.contains(why),
            "{bad}: {text}"
        );
    }
}
