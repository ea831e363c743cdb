//! The scripts as the images run them: each parses under sh (and dash,
//! Debian's sh, where installed), and the decisions they make are run with
//! stub tools on PATH.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{LIB, all, backup};
use crate::api::BackupSummary;

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("appstack-scripts-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write_exec(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
    std::fs::set_permissions(path, mode).unwrap();
}

fn has(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn every_script_is_listed_and_parses() {
    // A script added beside the others is checked too.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/build");
    for dir in ["scripts", "backup"] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().to_string();
            if name.ends_with(".sh") {
                assert!(
                    all().iter().any(|(n, _)| *n == name),
                    "{dir}/{name} is not in scripts::all()"
                );
            }
        }
    }
    let dir = scratch("parse");
    let shells: Vec<&str> = ["sh", "dash"].into_iter().filter(|s| has(s)).collect();
    assert!(shells.contains(&"sh"));
    for (name, text) in all() {
        let path = dir.join(&name);
        std::fs::write(&path, text).unwrap();
        for shell in &shells {
            let out = Command::new(shell).arg("-n").arg(&path).output().unwrap();
            assert!(
                out.status.success(),
                "{shell} -n {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn scripts_take_ports_and_paths_from_the_environment() {
    for (name, text) in all() {
        for literal in [
            "5432",
            "6379",
            "/var/lib/appstack",
            "/var/run/postgresql",
            "/var/run/appstack",
            "/etc/appstack",
            "/data",
        ] {
            assert!(!text.contains(literal), "{name} names {literal}");
        }
    }
    // One library: nothing else defines what it defines.
    for (name, text) in all().iter().filter(|(n, _)| *n != "lib.sh") {
        for function in ["fail()", "finish()", "iso()", "label_epoch()", "summary()"] {
            assert!(!text.contains(function), "{name} defines {function}");
        }
    }
}

/// What these tests run as the ConfigMap (`backup()`) is what the builder
/// puts there from the engines: the library and each engine's scripts,
/// every one run by the engine that lists it.
#[test]
fn the_configmap_holds_the_library_and_every_engines_scripts() {
    use crate::build::{backup, meta::StackRef, stores::ENGINES};
    let mut stack = crate::api::AppStack::new(
        "shop",
        serde_yaml::from_str("components: [{name: web, image: i, port: 80}]").unwrap(),
    );
    stack.metadata.namespace = Some("ns".into());
    stack.metadata.uid = Some("uid-1".into());
    let built = backup::scripts(&StackRef::new(&stack).unwrap(), &ENGINES)
        .data
        .unwrap();
    let expected: std::collections::BTreeMap<String, String> = backup()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(built, expected);
    for engine in ENGINES {
        let scripts = engine.backup_scripts();
        for key in [scripts.backup, scripts.restore] {
            assert!(scripts.files.iter().any(|(k, _)| *k == key), "{key}");
        }
    }
}

/// A scripts volume as the ConfigMap mounts it (keys without `.sh`), stub
/// tools, and what a run said.
struct Pod {
    dir: PathBuf,
}

struct Ran {
    ok: bool,
    /// The termination message.
    said: String,
    stderr: String,
}

impl Pod {
    fn new(name: &str, stubs: &[(&str, &str)]) -> Self {
        let dir = scratch(name);
        std::fs::create_dir_all(dir.join("scripts")).unwrap();
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        // As the ConfigMap mounts them: by key, without `.sh`.
        for (key, text) in backup() {
            write_exec(&dir.join("scripts").join(key), text);
        }
        for (tool, body) in stubs {
            write_exec(&dir.join("bin").join(tool), &format!("#!/bin/sh\n{body}\n"));
        }
        Self { dir }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    fn run(&self, script: &str, env: &[(&str, String)]) -> Ran {
        let path = format!(
            "{}:{}",
            self.path("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let log = self.path("termination-log");
        let _ = std::fs::remove_file(&log);
        let out = Command::new("sh")
            .arg(self.path("scripts").join(script))
            .env_clear()
            .env("PATH", path)
            .env("TMPDIR", self.path("tmp"))
            .env("APPSTACK_TERMINATION_LOG", &log)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap();
        Ran {
            ok: out.status.success(),
            said: std::fs::read_to_string(&log).unwrap_or_default(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn epoch(rfc3339: &str) -> i64 {
    rfc3339
        .parse::<k8s_openapi::jiff::Timestamp>()
        .unwrap()
        .as_second()
}

#[test]
fn a_restore_takes_the_newest_backup_before_the_target_that_verifies() {
    // 20261202 is damaged (it does not verify); 20261203 ended after the target.
    let pod = Pod::new(
        "pg-restore",
        &[(
            "pg_verifybackup",
            r#"case "$2" in *20261202T000000Z) echo "checksum mismatch for file base/1/1259" >&2; exit 1 ;; esac"#,
        )],
    );
    let base = pod.path("restore/postgres/base");
    for (label, ended) in [
        ("20261201T000000Z", "2026-12-01T00:00:05Z"),
        ("20261202T000000Z", "2026-12-02T00:00:05Z"),
        ("20261203T000000Z", "2026-12-03T00:00:05Z"),
    ] {
        std::fs::create_dir_all(base.join(label)).unwrap();
        std::fs::write(base.join(label).join("PG_VERSION"), "17\n").unwrap();
        std::fs::write(
            base.join(label).join("postgresql.conf"),
            "max_connections = 100\narchive_command = 'touch /tmp/owned'\n",
        )
        .unwrap();
        std::fs::write(base.join(format!("{label}.end")), epoch(ended).to_string()).unwrap();
    }
    std::fs::create_dir_all(pod.path("data")).unwrap();
    let pgdata = pod.path("data/pgdata");
    let ran = pod.run(
        "pg-restore",
        &[
            (
                "APPSTACK_RESTORE_DIR",
                pod.path("restore/postgres").display().to_string(),
            ),
            ("PGDATA", pgdata.display().to_string()),
            ("RESTORE_FROM", "shop".into()),
            ("RESTORE_VOLUME", "shop-postgres-backup".into()),
            ("RESTORE_TARGET", "2026-12-02T12:00:00Z".into()),
        ],
    );
    assert!(ran.ok, "{}{}", ran.said, ran.stderr);
    assert!(
        ran.said
            .starts_with("restored base backup 20261201T000000Z of stack shop")
            && ran
                .said
                .contains("skipped, as they fail verification: 20261202T000000Z"),
        "{}",
        ran.said
    );
    assert!(ran.stderr.contains("checksum mismatch"), "{}", ran.stderr);
    assert_eq!(
        std::fs::read_to_string(pgdata.join("PG_VERSION")).unwrap(),
        "17\n"
    );
    let auto = std::fs::read_to_string(pgdata.join("postgresql.auto.conf")).unwrap();
    let restore_wal = pod.path("scripts/pg-restore-wal");
    assert!(
        auto.contains(&format!(
            "restore_command = '{} %f %p'",
            restore_wal.display()
        )) && auto.contains("recovery_target_time = '2026-12-02 12:00:00.000000000+00'"),
        "{auto}"
    );
    let conf = std::fs::read_to_string(pgdata.join("postgresql.conf")).unwrap();
    assert!(
        conf.contains("max_connections = 100") && !conf.contains("archive_command"),
        "{conf}"
    );
    assert!(pgdata.join("recovery.signal").exists());

    // Run again (the container restarted): the data is there, nothing is done.
    let again = pod.run(
        "pg-restore",
        &[
            (
                "APPSTACK_RESTORE_DIR",
                pod.path("restore/postgres").display().to_string(),
            ),
            ("PGDATA", pgdata.display().to_string()),
        ],
    );
    assert!(
        again.ok && again.said.contains("a restore is under way"),
        "{}",
        again.said
    );
}

/// Stub tools for pg-base-backup: the server answers, pg_basebackup writes
/// a backup whose postgresql.auto.conf holds $AUTO_CONF.
const BASE_BACKUP_STUBS: [(&str, &str); 4] = [
    ("pg_isready", "exit 0"),
    (
        "pg_basebackup",
        r#"mkdir -p "$2" && printf 'START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n' > "$2/backup_label" && printf '%s\n' "$AUTO_CONF" > "$2/postgresql.auto.conf""#,
    ),
    ("pg_verifybackup", "exit 0"),
    ("pg_archivecleanup", "exit 0"),
];

fn base_backup(pod: &Pod, auto_conf: &str) -> Ran {
    pod.run(
        "pg-base-backup",
        &[
            (
                "APPSTACK_BACKUP_DIR",
                pod.path("backup/postgres").display().to_string(),
            ),
            (
                "PGHOST",
                "shop-postgres-0.shop-postgres-headless.team-a.svc".into(),
            ),
            ("PGUSER", "backup".into()),
            ("RETAIN_COUNT", "7".into()),
            ("RETAIN_MAX_AGE", String::new()),
            ("AUTO_CONF", auto_conf.into()),
        ],
    )
}

#[test]
fn a_base_backup_holding_a_restores_recovery_settings_is_refused() {
    let pod = Pod::new("pg-refused", &BASE_BACKUP_STUBS);
    let ran = base_backup(
        &pod,
        "restore_command = '/etc/appstack/backup/pg-restore-wal %f %p'",
    );
    assert!(!ran.ok);
    assert!(
        ran.said
            .starts_with("refused: the server's postgresql.auto.conf still holds")
            && ran.said.contains("restore_command"),
        "{}",
        ran.said
    );
    let left: Vec<_> = std::fs::read_dir(pod.path("backup/postgres/base"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        left.is_empty(),
        "nothing of the refused backup is kept: {left:?}"
    );
}

#[test]
fn a_base_backups_summary_is_what_the_operator_reads() {
    let pod = Pod::new("pg-summary", &BASE_BACKUP_STUBS);
    let ran = base_backup(&pod, "# Do not edit this file manually!");
    assert!(ran.ok, "{}{}", ran.said, ran.stderr);
    let summary = BackupSummary::parse(&ran.said).expect("the termination message reads");
    assert_eq!(summary.count, 1);
    assert!(
        pod.path("backup/postgres/base")
            .join(&summary.label)
            .is_dir()
    );
    assert_eq!(summary.first_recoverable, summary.completed);
    let file = std::fs::read_to_string(pod.path("backup/postgres/.summary.json")).unwrap();
    assert_eq!(
        BackupSummary::parse(&file).unwrap(),
        summary,
        "what the agent re-checks"
    );
}

#[test]
fn the_librarys_summary_and_the_rust_type_agree() {
    let dir = scratch("lib-summary");
    let out = Command::new("sh")
        .args([
            "-c",
            &format!(
                "{LIB}\nsummary \"$1\" 20261202T030000Z {} 48006139 2 96000000 {} {}",
                epoch("2026-12-02T03:00:09Z"),
                epoch("2026-12-01T03:00:08Z"),
                epoch("2026-12-02T03:00:09Z")
            ),
            "sh",
        ])
        .arg(dir.join("summary.json"))
        .env("APPSTACK_TERMINATION_LOG", dir.join("termination-log"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let written = std::fs::read_to_string(dir.join("summary.json")).unwrap();
    let summary = BackupSummary::parse(&written).unwrap();
    // Rust writes what shell writes, byte for byte.
    assert_eq!(format!("{}\n", summary.to_json()), written);
    assert_eq!(
        std::fs::read_to_string(dir.join("termination-log")).unwrap(),
        written
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_redis_restore_takes_the_newest_snapshot_before_the_target_that_checks() {
    use sha2::{Digest, Sha256};
    // The stubs: 20261202 does not read whole; the private server writes
    // the append-only file from the snapshot it was given.
    let pod = Pod::new(
        "redis-restore",
        &[
            (
                "redis-check-rdb",
                r#"case "$1" in *20261202T000000Z.rdb) echo "unexpected EOF" >&2; exit 1 ;; esac"#,
            ),
            (
                "redis-server",
                r#"mkdir -p "$2/appendonlydir" && cp "$2/dump.rdb" "$2/appendonlydir/appendonly.aof.1.base.rdb"; sleep 1"#,
            ),
            (
                "redis-cli",
                r#"case "$*" in
  *ping) echo PONG ;;
  *"config set"*) echo OK ;;
  *"info persistence") printf 'aof_rewrite_in_progress:0\r\naof_rewrite_scheduled:0\r\naof_last_bgrewrite_status:ok\r\naof_rewrites:1\r\n' ;;
esac"#,
            ),
        ],
    );
    let src = pod.path("restore/redis");
    std::fs::create_dir_all(&src).unwrap();
    for label in [
        "20261201T000000Z",
        "20261202T000000Z",
        "20261203T000000Z",
        "20261204T000000Z",
    ] {
        let rdb = format!("REDIS0011 snapshot {label}");
        std::fs::write(src.join(format!("{label}.rdb")), &rdb).unwrap();
        // 20261203's checksum does not match what the volume holds.
        let sum = match label {
            "20261203T000000Z" => hex::encode(Sha256::digest(b"another file")),
            _ => hex::encode(Sha256::digest(rdb.as_bytes())),
        };
        std::fs::write(src.join(format!("{label}.rdb.sha256")), sum).unwrap();
    }
    std::fs::write(src.join("20261205T000000Z.rdb.partial"), "half").unwrap();
    let data = pod.path("data");
    std::fs::create_dir_all(&data).unwrap();
    let env = [
        ("APPSTACK_RESTORE_DIR", src.display().to_string()),
        ("APPSTACK_DATA_DIR", data.display().to_string()),
        ("RESTORE_FROM", "shop".to_string()),
        ("RESTORE_VOLUME", "shop-redis-backup".to_string()),
        ("RESTORE_TARGET", "2026-12-03T12:00:00Z".to_string()),
    ];
    let ran = pod.run("redis-restore", &env);
    assert!(ran.ok, "{}{}", ran.said, ran.stderr);
    assert_eq!(
        ran.said.trim(),
        "restored snapshot 20261201T000000Z of stack shop (skipped, as they fail their checks: 20261203T000000Z 20261202T000000Z)"
    );
    assert_eq!(
        std::fs::read_to_string(data.join("appendonlydir/appendonly.aof.1.base.rdb")).unwrap(),
        "REDIS0011 snapshot 20261201T000000Z"
    );
    assert!(!data.join("restoring").exists(), "the stage is removed");
    // The container again: the data is there and stays as it is.
    let again = pod.run("redis-restore", &env);
    assert!(
        again.ok && again.said.contains("holds a dataset: nothing restored"),
        "{}",
        again.said
    );
}

#[test]
fn a_script_without_its_paths_stops_and_names_the_variable() {
    // A pod made before the scripts had their variables, mounting the new
    // ConfigMap: it stops at once rather than write somewhere else.
    let pod = Pod::new("no-env", &BASE_BACKUP_STUBS);
    for script in [
        "pg-base-backup",
        "redis-snapshot",
        "pg-restore",
        "redis-restore",
    ] {
        let ran = pod.run(script, &[]);
        assert!(!ran.ok, "{script}");
        assert!(
            ran.stderr.contains("APPSTACK_BACKUP_DIR")
                || ran.stderr.contains("APPSTACK_RESTORE_DIR"),
            "{script}: {}",
            ran.stderr
        );
    }
    // The server's restore_command stops recovery (126) rather than say
    // "not archived" (1), which would promote early.
    let out = Command::new("sh")
        .arg(pod.path("scripts/pg-restore-wal"))
        .args(["000000010000000000000001", "pg_wal/RECOVERYXLOG"])
        .env_remove("APPSTACK_RESTORE_DIR")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(126));
}
