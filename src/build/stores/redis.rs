//! Redis: append-only file on the volume, password required, TLS only
//! (unless the stack turns TLS off).

use k8s_openapi::api::core::v1::{Container, EnvVar, Service, Volume};

use crate::api::{
    AppStack, AppStackSpec, AppStackStatus, BackupSpec, ExternalStore, MetricsSpec, StorageSpec,
    StoreKind, StoreStatus,
};
use crate::backup_agent::Layout;
use crate::build::credentials::StoreCredentials;
use crate::build::engine::{BackupScripts, Engine};
use crate::build::error::BuildError;
use crate::build::external::{self, UserSecret};
use crate::build::meta::StackRef;
use crate::build::metrics::{self, Exporter};
use crate::build::{env, labels, pod, scripts, security, tls};

use super::redis_ha;

pub const PORT: i32 = 6379;
pub const DEFAULT_IMAGE: &str = "redis:7.4";
/// redis_exporter, the version Debian trixie packages (the local cluster
/// builds this name from that package).
pub const EXPORTER_IMAGE: &str = "oliver006/redis_exporter:v1.69.0";
pub const EXPORTER_PORT: i32 = 9121;

/// Redis takes its users from the file [`USERS`] writes at every start of
/// the pod (the `default` user is the administrator, the apps' ACL user may
/// run every data command but none of `@admin` or `@dangerous`), so they
/// differ from the Secrets only when someone changed them inside Redis
/// (CONFIG SET requirepass, ACL SETUSER; ACL SAVE cannot write the file,
/// mounted read-only). The credentials container checks both every few
/// seconds and, when Redis refuses one, exits with the reason as its
/// termination message (Degraded CredentialsOutOfSync on the stack). A Redis
/// that is down or loading is not a credentials problem. When the server
/// certificate in the mounted Secret changes (the operator renewed it), it
/// has Redis load it.
/// (The script: src/build/scripts/redis-credentials.sh, after the library.)
const CREDENTIALS: &str = scripts::REDIS_CREDENTIALS;

/// The ACL file Redis reads its users from, on the pod's memory volume.
const ACL_FILE: &str = "/var/run/appstack/users/users.acl";

/// The users init container's script: every user Redis has, in its ACL
/// file, from the Secrets in the environment, so that no password is ever
/// an argument of a process (readable in /proc by anyone in the pod) and
/// the file holds only SHA-256 hashes (`#<hex>`, which Redis compares
/// against). `printf` is the shell's own, so the passwords reach sha256sum
/// on its standard input only. Users are
/// - `default`, the administrator: everything;
/// - the apps' user: every key and channel, every command but the
///   administrative and dangerous ones (CONFIG, FLUSHALL, FLUSHDB, DEBUG,
///   SHUTDOWN, KEYS, ACL, ...);
/// - with backups, the backup user: only a snapshot (redis-cli --rdb sends
///   REPLCONF, then SYNC; with REPLCONF allowed the transfer is diskless),
///   no key, no channel, no other command.
///
/// (The script: src/build/scripts/redis-users.sh, after the library.)
const USERS: &str = scripts::REDIS_USERS;

/// The backup and restore scripts: RDB snapshots (redis-cli --rdb,
/// checked with redis-check-rdb).
const BACKUP_FILES: &[(&str, &str)] = &scripts::REDIS_BACKUP;

/// Where the append-only file and snapshots live, on the data volume.
const DATA_DIR: &str = "/data";

pub struct Redis;

/// The Redis image of the spec.
pub(super) fn image_of(spec: &AppStackSpec) -> String {
    spec.redis
        .as_ref()
        .and_then(|r| r.image.clone())
        .unwrap_or_else(|| DEFAULT_IMAGE.to_string())
}

impl Engine for Redis {
    fn kind(&self) -> StoreKind {
        StoreKind::Redis
    }
    fn part(&self) -> &'static str {
        "redis"
    }
    fn port(&self) -> i32 {
        PORT
    }
    fn user(&self) -> &'static str {
        "app"
    }
    fn admin_user(&self) -> &'static str {
        "default"
    }
    fn default_size(&self) -> &'static str {
        "1Gi"
    }
    fn image(&self, spec: &AppStackSpec) -> String {
        image_of(spec)
    }
    fn storage<'a>(&self, spec: &'a AppStackSpec) -> Option<&'a StorageSpec> {
        spec.redis.as_ref().and_then(|r| r.storage.as_ref())
    }
    fn runs(&self, spec: &AppStackSpec) -> bool {
        spec.redis.is_some()
    }
    fn backup<'a>(&self, spec: &'a AppStackSpec) -> Option<&'a BackupSpec> {
        spec.redis.as_ref()?.backup.as_ref()
    }
    fn metrics<'a>(&self, spec: &'a AppStackSpec) -> Option<&'a MetricsSpec> {
        spec.redis.as_ref()?.metrics.as_ref()
    }
    fn exporter(&self) -> Exporter {
        Exporter {
            default_image: EXPORTER_IMAGE,
            port: EXPORTER_PORT,
            user: metrics::MONITOR_USER,
            env: exporter_env,
        }
    }
    fn status<'a>(&self, status: &'a AppStackStatus) -> Option<&'a StoreStatus> {
        status.redis.as_ref()
    }
    fn external<'a>(&self, spec: &'a AppStackSpec) -> Option<&'a ExternalStore> {
        spec.redis.as_ref()?.external.as_ref()
    }
    fn existing_secret<'a>(&self, spec: &'a AppStackSpec) -> Option<&'a str> {
        spec.redis.as_ref()?.existing_secret.as_deref()
    }

    /// `url` (redis:// or rediss://, the path the database number) and/or
    /// host, port, username (default `default`, Redis' user without ACLs),
    /// password. TLS with rediss://, `tls` or a CA; TLS needs the CA (the
    /// wait container's redis-cli verifies the server with it).
    fn external_connection(
        &self,
        user: &UserSecret,
    ) -> Result<Vec<(&'static str, String)>, BuildError> {
        let fail = |m: String| external::problem(self.part(), &user.name, m);
        let url = user.url(self.part(), &["redis", "rediss"])?;
        let pick = |key: &str, from_url: &Option<String>| user.pick(key, from_url);
        let host = pick("host", &url.host).ok_or_else(|| {
            fail("key `host` is missing (give it, or a `url` that has it)".into())
        })?;
        external::check_host(&host).map_err(fail)?;
        let port =
            external::check_port(&pick("port", &url.port).unwrap_or_else(|| PORT.to_string()))
                .map_err(fail)?;
        let username = pick("username", &url.username).unwrap_or_else(|| "default".into());
        let password = pick("password", &url.password).ok_or_else(|| {
            fail("key `password` is missing (give it, or a `url` that has it)".into())
        })?;
        let db = url.path.clone().unwrap_or_else(|| "0".into());
        if db.parse::<u16>().is_err() {
            return Err(fail(format!("url: database {db:?} is not a number")));
        }
        let ca = user.ca();
        let tls = url.scheme == "rediss" || user.tls() || ca.is_some();
        if tls && ca.is_none() {
            return Err(fail(format!(
                "TLS (rediss:// or tls) needs key `{}` (the CA of the server's certificate)",
                external::CA_KEY
            )));
        }
        let scheme = if tls { "rediss" } else { "redis" };
        let mut entries = vec![
            (
                "url",
                format!(
                    "{scheme}://{}:{}@{host}:{port}/{db}",
                    env::userinfo(&username),
                    env::userinfo(&password)
                ),
            ),
            ("username", username),
            ("password", password),
            ("host", host),
            ("port", port),
        ];
        if let Some(ca) = ca {
            entries.push(("ca_file", external::ca_file(self.part())));
            entries.push((external::CA_KEY, ca.to_string()));
        }
        Ok(entries)
    }

    fn external_optional_keys(&self) -> &'static [&'static str] {
        &["ca_file"]
    }
    fn status_mut<'a>(&self, status: &'a mut AppStackStatus) -> &'a mut Option<StoreStatus> {
        &mut status.redis
    }

    fn validate(&self, _ctx: &StackRef, _spec: &AppStackSpec) -> Result<(), BuildError> {
        Ok(())
    }

    fn connection(
        &self,
        ctx: &StackRef,
        spec: &AppStackSpec,
        creds: &StoreCredentials,
        host: &str,
        tls: bool,
    ) -> Vec<(&'static str, String)> {
        let user = env::userinfo(&creds.username);
        let password = env::userinfo(&creds.password);
        let scheme = if tls { "rediss" } else { "redis" };
        let mut entries = vec![(
            "url",
            format!("{scheme}://{user}:{password}@{host}:{PORT}/0"),
        )];
        if tls {
            entries.push(("ca_file", tls::CA_FILE.to_string()));
        }
        if redis_ha::replicas(spec) > 0 {
            entries.extend(redis_ha::connection(ctx, &user, &password, tls));
        }
        entries
    }

    fn instances(&self, spec: &AppStackSpec) -> i32 {
        1 + redis_ha::replicas(spec)
    }
    fn writer_label(&self, spec: &AppStackSpec) -> Option<&'static str> {
        (redis_ha::replicas(spec) > 0).then_some(labels::REDIS_MASTER)
    }
    fn sidecars(
        &self,
        ctx: &StackRef,
        stack: &AppStack,
        tls: bool,
    ) -> (Vec<Container>, Vec<Volume>) {
        if redis_ha::replicas(&stack.spec) == 0 {
            return (Vec::new(), Vec::new());
        }
        let (container, volume) = redis_ha::sentinel(ctx, stack, tls);
        (vec![container], vec![volume])
    }
    fn peer_ports(&self, spec: &AppStackSpec) -> Vec<i32> {
        if redis_ha::replicas(spec) == 0 {
            return Vec::new();
        }
        vec![PORT, redis_ha::SENTINEL_PORT]
    }
    fn client_ports(&self, spec: &AppStackSpec) -> Vec<i32> {
        if redis_ha::replicas(spec) == 0 {
            return Vec::new();
        }
        vec![redis_ha::SENTINEL_PORT]
    }
    fn extra_services(&self, ctx: &StackRef, spec: &AppStackSpec) -> Vec<Service> {
        if redis_ha::replicas(spec) == 0 {
            return Vec::new();
        }
        vec![redis_ha::sentinel_service(ctx)]
    }
    fn extra_server_names(&self, ctx: &StackRef, spec: &AppStackSpec) -> Vec<String> {
        if redis_ha::replicas(spec) == 0 {
            return Vec::new();
        }
        redis_ha::server_names(ctx, spec)
    }
    fn extra_client_env(&self, spec: &AppStackSpec) -> Vec<(&'static str, &'static str)> {
        if redis_ha::replicas(spec) == 0 {
            return Vec::new();
        }
        vec![
            ("REDIS_SENTINEL_URL", "sentinel_url"),
            ("REDIS_SENTINEL_MASTER", "sentinel_master"),
        ]
    }

    fn container(&self, ctx: &StackRef, stack: &AppStack, tls: bool) -> Container {
        let secret = self.secret_name(&ctx.name);
        let admin = self.admin_secret_name(&ctx.name);
        let port = PORT.to_string();
        let mut args: Vec<String> = [
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--aclfile",
            ACL_FILE,
            "--dir",
            DATA_DIR,
        ]
        .map(String::from)
        .to_vec();
        if tls {
            // Clients authenticate with their password, not a certificate.
            args.extend(
                [
                    "--port",
                    "0",
                    "--tls-port",
                    &port,
                    "--tls-cert-file",
                    tls::CERT_FILE,
                    "--tls-key-file",
                    tls::KEY_FILE,
                    "--tls-ca-cert-file",
                    tls::CA_FILE,
                    "--tls-auth-clients",
                    "no",
                ]
                .map(String::from),
            );
        } else {
            args.extend(["--port", &port].map(String::from));
        }
        let mut env = vec![
            // redis-cli reads it, so probes need no password on the command line.
            env::secret_env("REDISCLI_AUTH", &admin, "password"),
            env::secret_env("APP_USER", &secret, "username"),
            env::secret_env("APP_PASSWORD", &secret, "password"),
            // For the scripts, from the constants here.
            env::plain_env(scripts::PORT, &PORT.to_string()),
            env::plain_env(scripts::TLS_CERT, tls::CERT_FILE),
            env::plain_env(scripts::USERS_FILE, ACL_FILE),
        ];
        if tls {
            env.push(env::plain_env("REDIS_TLS_CA_FILE", tls::CA_FILE));
        }
        let mut container = Container {
            name: self.part().into(),
            image: Some(self.image(&stack.spec)),
            // No password: the users come from the file (see USERS).
            args: Some(args),
            env: Some(env),
            ports: pod::port(self.part(), PORT),
            readiness_probe: pod::ready_when(
                "redis-cli ${REDIS_TLS_CA_FILE:+--tls --cacert \"$REDIS_TLS_CA_FILE\"} -p \"$APPSTACK_PORT\" ping | grep -q PONG",
            ),
            liveness_probe: pod::alive_on(PORT, 15),
            volume_mounts: Some(vec![pod::data_mount(DATA_DIR)]),
            resources: stack.spec.redis.as_ref().and_then(|r| r.resources.clone()),
            security_context: Some(security::container()),
            ..Container::default()
        };
        if redis_ha::replicas(&stack.spec) > 0 {
            redis_ha::server(ctx, &stack.spec, tls, &mut container);
        }
        container
    }

    fn credentials_script(&self) -> &'static str {
        CREDENTIALS
    }

    fn users_script(&self) -> Option<&'static str> {
        Some(USERS)
    }
    fn users_script_for(&self, spec: &AppStackSpec) -> Option<&'static str> {
        if redis_ha::replicas(spec) > 0 {
            return Some(scripts::REDIS_USERS_WITH_REPLICATION);
        }
        Some(USERS)
    }

    /// ACL users take several passwords (`#<sha256>` each).
    fn keeps_passwords(&self) -> bool {
        true
    }

    fn client_env(&self, tls: bool) -> Vec<(&'static str, &'static str)> {
        let mut env = vec![
            ("REDIS_URL", "url"),
            ("REDIS_USERNAME", "username"),
            ("REDIS_HOST", "host"),
            ("REDIS_PORT", "port"),
            ("REDIS_PASSWORD", "password"),
        ];
        if tls {
            env.push(("REDIS_TLS_CA_FILE", "ca_file"));
        }
        env
    }

    fn wait_script(&self, tls: bool) -> (&'static str, Vec<(&'static str, &'static str)>) {
        let mut vars = vec![
            ("REDIS_USERNAME", "username"),
            ("REDIS_HOST", "host"),
            ("REDIS_PORT", "port"),
            ("REDISCLI_AUTH", "password"),
        ];
        if tls {
            vars.push(("REDIS_TLS_CA_FILE", "ca_file"));
        }
        (scripts::REDIS_WAIT, vars)
    }

    fn backup_scripts(&self) -> BackupScripts {
        BackupScripts {
            files: BACKUP_FILES,
            backup: "redis-snapshot",
            restore: "redis-restore",
        }
    }

    /// redis-cli's variables: the snapshot is taken as the backup user.
    fn backup_env(&self, host: &str, secret: &str, tls: bool) -> Vec<EnvVar> {
        let mut env = vec![
            env::plain_env("REDIS_HOST", host),
            env::plain_env("REDIS_PORT", &PORT.to_string()),
            env::secret_env("REDIS_USER", secret, "username"),
            env::secret_env("REDISCLI_AUTH", secret, "password"),
        ];
        if tls {
            env.push(env::plain_env("REDIS_TLS_CA_FILE", tls::CA_FILE));
        }
        env
    }

    fn data_dir(&self) -> &'static str {
        DATA_DIR
    }

    /// `<label>.rdb` committed by `<label>.rdb.sha256`, at the root.
    fn layout(&self) -> Layout {
        Layout {
            backups: "",
            commit: ".rdb.sha256",
            dirs: false,
            log: None,
            data_marker: "appendonlydir",
            replay_marker: None,
        }
    }
}

/// redis_exporter's connection: the server on loopback as the monitoring
/// ACL user, over TLS verified with the stack's CA when the stack has TLS
/// (the server's certificate names localhost). It skips CONFIG GET, which
/// the user may not run (INFO gives maxmemory anyway): every scrape would
/// otherwise add a NOPERM to Redis' error counts and ACL LOG.
fn exporter_env(secret: &str, tls: bool) -> Vec<EnvVar> {
    let scheme = if tls { "rediss" } else { "redis" };
    let mut env = vec![
        env::plain_env("REDIS_ADDR", &format!("{scheme}://localhost:{PORT}")),
        env::secret_env("REDIS_USER", secret, "username"),
        env::secret_env("REDIS_PASSWORD", secret, "password"),
        env::plain_env("REDIS_EXPORTER_CONFIG_COMMAND", "-"),
    ];
    if tls {
        env.push(env::plain_env(
            "REDIS_EXPORTER_TLS_CA_CERT_FILE",
            tls::CA_FILE,
        ));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};
    use std::process::Command;

    #[test]
    fn the_acl_file_is_where_the_users_volume_is_mounted() {
        assert!(ACL_FILE.starts_with(&format!("{}/", pod::USERS_DIR)));
        assert!(USERS.contains(&format!("file=${}\n", scripts::USERS_FILE)));
    }

    /// Runs the users script as the init container does (sh, the
    /// environment), writing into `dir`: its exit status, the file and what
    /// it said.
    fn write_users(dir: &std::path::Path, env: &[(&str, &str)]) -> (bool, String, String) {
        let out = Command::new("sh")
            .args(["-c", &scripts::with_lib(USERS)])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("APPSTACK_SECRET", "shop-redis")
            .env(scripts::USERS_FILE, dir.join("users.acl"))
            .env("APPSTACK_TERMINATION_LOG", dir.join("termination-log"))
            .envs(env.iter().copied())
            .output()
            .unwrap();
        let file = std::fs::read_to_string(dir.join("users.acl")).unwrap_or_default();
        (
            out.status.success(),
            file,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn sha(s: &str) -> String {
        hex::encode(Sha256::digest(s.as_bytes()))
    }

    #[test]
    fn the_users_file_holds_every_user_with_hashed_passwords_only() {
        let dir = tempdir("users");
        let app = "p@ss:w/rd #1%x\n";
        let (ok, file, said) = write_users(
            &dir,
            &[
                ("REDISCLI_AUTH", "admin-secret"),
                ("APP_USER", "app"),
                ("APP_PASSWORD", app),
                ("BACKUP_USER", "backup"),
                ("BACKUP_PASSWORD", "backup-secret"),
            ],
        );
        assert!(ok, "{said}");
        assert_eq!(
            file,
            format!(
                "user default on #{} ~* &* +@all\nuser app on #{} ~* &* +@all -@admin -@dangerous\nuser backup on #{} resetkeys resetchannels -@all +sync +replconf\n",
                sha("admin-secret"),
                sha(app),
                sha("backup-secret")
            )
        );
        for password in ["admin-secret", "p@ss", "backup-secret"] {
            assert!(!file.contains(password), "{password} in {file}");
        }
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.join("users.acl"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "only the server's user reads it");

        // Without backups, no backup user.
        let (ok, file, said) = write_users(
            &dir,
            &[
                ("REDISCLI_AUTH", "admin-secret"),
                ("APP_USER", "app"),
                ("APP_PASSWORD", "x"),
            ],
        );
        assert!(ok, "{said}");
        assert_eq!(file.lines().count(), 2, "{file}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn users_redis_cannot_take_are_refused_with_the_secret_named() {
        let dir = tempdir("names");
        for (user, backup, backup_password, expected) in [
            (
                "two words",
                "backup",
                "c",
                "username of Secret shop-redis is no Redis user name",
            ),
            (
                "default",
                "backup",
                "c",
                "username of Secret shop-redis is default",
            ),
            ("app", "app", "c", "name the same user app"),
            (
                "app",
                "backup",
                "",
                "password of Secret shop-redis-backup is empty",
            ),
        ] {
            let (ok, _, said) = write_users(
                &dir,
                &[
                    ("REDISCLI_AUTH", "a"),
                    ("APP_USER", user),
                    ("APP_PASSWORD", "b"),
                    ("BACKUP_USER", backup),
                    ("BACKUP_PASSWORD", backup_password),
                ],
            );
            assert!(!ok, "{user}/{backup} accepted");
            assert!(said.contains(expected), "{said}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempdir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "appstack-redis-users-{name}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
