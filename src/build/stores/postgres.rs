//! PostgreSQL: PGDATA in a subdirectory of the volume (a fresh volume's
//! root may hold lost+found, which initdb refuses).

use k8s_openapi::api::core::v1::{Container, EnvVar};

use crate::api::{
    AppStack, AppStackSpec, AppStackStatus, BackupSpec, ExternalStore, MetricsSpec, StorageSpec,
    StoreKind, StoreStatus,
};
use crate::backup_agent::Layout;
use crate::build::backup::SCRIPTS;
use crate::build::credentials::StoreCredentials;
use crate::build::engine::{BackupScripts, Engine};
use crate::build::error::BuildError;
use crate::build::external::{self, UserSecret};
use crate::build::meta::StackRef;
use crate::build::metrics::{self, Exporter};
use crate::build::{env, labels, pod, rotation, scripts, security, tls};

pub const PORT: i32 = 5432;
pub const DEFAULT_IMAGE: &str = "postgres:17";
/// postgres_exporter, the version Debian trixie packages (the local
/// cluster builds this name from that package).
pub const EXPORTER_IMAGE: &str = "quay.io/prometheuscommunity/postgres-exporter:v0.17.1";
pub const EXPORTER_PORT: i32 = 9187;
const MOUNT: &str = "/var/lib/postgresql/data";
const PGDATA: &str = "/var/lib/postgresql/data/pgdata";

/// WAL is archived at least this often (seconds) while anything is written:
/// the bound on what a lost volume can take with it.
pub const ARCHIVE_TIMEOUT: u32 = 60;

/// The unix socket's directory, shared with the credentials container.
const SOCKET_DIR: &str = "/var/run/postgresql";

/// With TLS, the server reads its client authentication from the TLS Secret
/// (not the data directory's file, so existing stores switch too): the
/// pod's own socket is trusted (the credentials container sets roles over
/// it), loopback needs a password, and the network needs TLS as well.
const HBA_FILE: &str = "/etc/appstack/tls/pg_hba.conf";
const HBA: &str = "# Written by AppStack: TLS (and a password) from the network.
local all all trust
host all all 127.0.0.1/32 scram-sha-256
host all all ::1/128 scram-sha-256
hostssl all all all scram-sha-256
hostssl replication all all scram-sha-256
";

/// The credentials container keeps the server's roles in line with the
/// Secrets: at start and whenever the apps' login fails, it sets (over the
/// local socket, trusted) the administrator as superuser with its Secret's
/// password, and the apps' role as LOGIN NOSUPERUSER NOCREATEROLE owner of
/// the stack's database with theirs. A data directory made before the
/// administrator existed has the apps' role as its only superuser: the
/// script then connects as that role, creates the administrator and demotes
/// the apps' role, in place. If the apps still cannot log in, it exits with
/// the reason as its termination message (Degraded CredentialsOutOfSync). A
/// store that is down (starting, restarting) only makes it wait. When the
/// server certificate in the mounted Secret changes (the operator renewed
/// it), it has the server reload its configuration, which loads it.
/// (The script: src/build/scripts/pg-credentials.sh, after the library.)
const CREDENTIALS: &str = scripts::PG_CREDENTIALS;

/// The backup and restore scripts: base backups (pg_basebackup, checked
/// with pg_verifybackup) and the WAL archived between them.
const BACKUP_FILES: &[(&str, &str)] = &scripts::PG_BACKUP;

pub struct Postgres;

/// spec.postgres.database, default the stack's name as an identifier.
/// A stack restored from another one defaults to that one's database, so
/// that its apps find the data.
fn database(ctx: &StackRef, spec: &AppStackSpec) -> String {
    let named = spec.restore.as_ref().map_or(&ctx.name, |r| &r.from);
    spec.postgres
        .as_ref()
        .and_then(|p| p.database.clone())
        .unwrap_or_else(|| named.replace('-', "_"))
}

impl Engine for Postgres {
    fn kind(&self) -> StoreKind {
        StoreKind::Postgres
    }
    fn part(&self) -> &'static str {
        "postgres"
    }
    fn port(&self) -> i32 {
        PORT
    }
    fn user(&self) -> &'static str {
        "app"
    }
    fn admin_user(&self) -> &'static str {
        "postgres"
    }
    fn default_size(&self) -> &'static str {
        "5Gi"
    }
    fn image(&self, spec: &AppStackSpec) -> String {
        spec.postgres
            .as_ref()
            .and_then(|p| p.image.clone())
            .unwrap_or_else(|| DEFAULT_IMAGE.to_string())
    }
    fn storage<'a>(&self, spec: &'a AppStackSpec) -> Option<&'a StorageSpec> {
        spec.postgres.as_ref().and_then(|p| p.storage.as_ref())
    }
    fn runs(&self, spec: &AppStackSpec) -> bool {
        spec.postgres.is_some()
    }
    fn instances(&self, spec: &AppStackSpec) -> i32 {
        match &spec.postgres {
            Some(p) if p.external.is_none() => p.instances(),
            _ => 1,
        }
    }
    fn writer_label(&self, spec: &AppStackSpec) -> Option<&'static str> {
        (self.instances(spec) > 1).then_some(labels::PRIMARY)
    }
    fn replication_user(&self, spec: &AppStackSpec) -> bool {
        self.instances(spec) > 1
    }
    /// Streaming replication, pg_rewind and the primary's check.
    fn peer_ports(&self, spec: &AppStackSpec) -> Vec<i32> {
        if self.instances(spec) > 1 {
            vec![PORT]
        } else {
            Vec::new()
        }
    }
    fn backup<'a>(&self, spec: &'a AppStackSpec) -> Option<&'a BackupSpec> {
        spec.postgres.as_ref()?.backup.as_ref()
    }
    fn metrics<'a>(&self, spec: &'a AppStackSpec) -> Option<&'a MetricsSpec> {
        spec.postgres.as_ref()?.metrics.as_ref()
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
        status.postgres.as_ref()
    }
    fn external<'a>(&self, spec: &'a AppStackSpec) -> Option<&'a ExternalStore> {
        spec.postgres.as_ref()?.external.as_ref()
    }
    fn existing_secret<'a>(&self, spec: &'a AppStackSpec) -> Option<&'a str> {
        spec.postgres.as_ref()?.existing_secret.as_deref()
    }

    /// `url` (postgres:// or postgresql://) and/or host, port, username,
    /// password, database; sslmode from the key, the url's query or, by
    /// default, verify-full with a CA, require with `tls`, else prefer.
    fn external_connection(
        &self,
        user: &UserSecret,
    ) -> Result<Vec<(&'static str, String)>, BuildError> {
        let fail = |m: String| external::problem(self.part(), &user.name, m);
        let url = user.url(self.part(), &["postgres", "postgresql"])?;
        let pick = |key: &str, from_url: &Option<String>| user.pick(key, from_url);
        let need = |key: &'static str, from_url: &Option<String>| {
            pick(key, from_url).ok_or_else(|| {
                fail(format!(
                    "key `{key}` is missing (give it, or a `url` that has it)"
                ))
            })
        };
        let host = need("host", &url.host)?;
        external::check_host(&host).map_err(fail)?;
        let port =
            external::check_port(&pick("port", &url.port).unwrap_or_else(|| PORT.to_string()))
                .map_err(fail)?;
        let username = need("username", &url.username)?;
        let password = need("password", &url.password)?;
        let database = need("database", &url.path)?;
        let ca = user.ca();
        let sslmode = match user.get("sslmode").or(url.param("sslmode")) {
            Some(mode) => mode.trim().to_string(),
            None if ca.is_some() => "verify-full".to_string(),
            None if user.tls() => "require".to_string(),
            None => "prefer".to_string(),
        };
        const MODES: [&str; 6] = [
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ];
        if !MODES.contains(&sslmode.as_str()) {
            return Err(fail(format!(
                "sslmode {sslmode:?} is not one of {}",
                MODES.join(", ")
            )));
        }
        if sslmode.starts_with("verify") && ca.is_none() {
            return Err(fail(format!(
                "sslmode {sslmode} needs key `{}` (the CA of the server's certificate)",
                external::CA_KEY
            )));
        }
        let mut query = format!("sslmode={sslmode}");
        let mut entries = vec![
            ("username", username.clone()),
            ("password", password.clone()),
            ("host", host.clone()),
            ("port", port.clone()),
            ("database", database.clone()),
            ("sslmode", sslmode),
        ];
        if let Some(ca) = ca {
            let file = external::ca_file(self.part());
            query.push_str(&format!("&sslrootcert={file}"));
            entries.push(("sslrootcert", file));
            entries.push((external::CA_KEY, ca.to_string()));
        }
        entries.push((
            "url",
            format!(
                "postgresql://{}:{}@{host}:{port}/{}?{query}",
                env::userinfo(&username),
                env::userinfo(&password),
                env::userinfo(&database),
            ),
        ));
        Ok(entries)
    }

    fn external_optional_keys(&self) -> &'static [&'static str] {
        &["sslrootcert"]
    }
    fn status_mut<'a>(&self, status: &'a mut AppStackStatus) -> &'a mut Option<StoreStatus> {
        &mut status.postgres
    }

    fn validate(&self, ctx: &StackRef, spec: &AppStackSpec) -> Result<(), BuildError> {
        let db = database(ctx, spec);
        let valid = !db.is_empty()
            && db.len() <= 63
            && db.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && db
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(BuildError::Database(db));
        }
        if self.instances(spec) > 1 {
            if !spec.tls_enabled() {
                return Err(BuildError::Replication(
                    "spec.postgres.instances: more than 1 needs spec.tls (the replicas stream the data over TLS)".into(),
                ));
            }
            // The backup volume is ReadWriteOnce and mounted by the store's
            // pods (WAL archiving): instances on several nodes could not all
            // start. Not yet, then.
            if self.backup(spec).is_some() {
                return Err(BuildError::Replication(
                    "spec.postgres.backup: not yet with spec.postgres.instances > 1 (the WAL archive volume is mounted by one node's pods); back up with one instance".into(),
                ));
            }
            if let Some(c) = spec.components.iter().find(|c| c.name == "postgres-ro") {
                return Err(BuildError::Replication(format!(
                    "spec.components: {:?} is the name of the replicas' Service with spec.postgres.instances > 1; rename the component",
                    c.name
                )));
            }
        }
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
        let database = database(ctx, spec);
        let mut url = format!(
            "postgresql://{}:{}@{host}:{PORT}/{database}",
            env::userinfo(&creds.username),
            env::userinfo(&creds.password)
        );
        let mut entries = Vec::new();
        if tls {
            // libpq's names, in the URL and apart (PGSSLMODE, PGSSLROOTCERT).
            url.push_str(&format!(
                "?sslmode=verify-full&sslrootcert={}",
                tls::CA_FILE
            ));
            entries.push(("sslmode", "verify-full".to_string()));
            entries.push(("sslrootcert", tls::CA_FILE.to_string()));
        }
        entries.push(("database", database));
        entries.push(("url", url));
        entries
    }

    fn tls_files(&self) -> Vec<(&'static str, String)> {
        vec![("pg_hba.conf", HBA.to_string())]
    }

    fn container(&self, ctx: &StackRef, stack: &AppStack, tls: bool) -> Container {
        let secret = self.secret_name(&ctx.name);
        let admin = self.admin_secret_name(&ctx.name);
        let args = tls.then(|| {
            [
                "ssl=on".to_string(),
                format!("ssl_cert_file={}", tls::CERT_FILE),
                format!("ssl_key_file={}", tls::KEY_FILE),
                format!("hba_file={HBA_FILE}"),
            ]
            .into_iter()
            .flat_map(|setting| ["-c".to_string(), setting])
            .collect()
        });
        let instances = self.instances(&stack.spec);
        let mut args = args;
        let mut command = None;
        let mut extra_env = Vec::new();
        let mut extra_mounts = Vec::new();
        if instances > 1 {
            // Replicas: rewind needs the hint bits logged; a replica that
            // restarts finds the WAL it missed on the primary for a while.
            args.get_or_insert_with(Vec::new).extend(
                [
                    "wal_log_hints=on",
                    "wal_keep_size=1GB",
                    "hot_standby_feedback=on",
                    // A replica follows a new primary within a second.
                    "wal_retrieve_retry_interval=1s",
                ]
                .into_iter()
                .flat_map(|setting| ["-c".to_string(), setting.to_string()]),
            );
            command = Some(vec![
                "sh".to_string(),
                "-c".to_string(),
                scripts::with_lib(scripts::PG_INSTANCE),
                "pg-instance".to_string(),
            ]);
            let replication = self.replication_secret_name(&ctx.name);
            extra_env = vec![
                env::secret_env("REPLICATION_USER", &replication, "username"),
                env::secret_env("REPLICATION_PASSWORD", &replication, "password"),
                env::plain_env(
                    scripts::PRIMARY_HOST,
                    &format!("{secret}.{}.svc", ctx.namespace),
                ),
                env::plain_env(scripts::PODINFO, &format!("{}/labels", pod::PODINFO_DIR)),
                env::plain_env(scripts::CA, tls::CA_FILE),
            ];
            extra_mounts.push(k8s_openapi::api::core::v1::VolumeMount {
                name: pod::PODINFO.into(),
                mount_path: pod::PODINFO_DIR.into(),
                read_only: Some(true),
                ..Default::default()
            });
        }
        let mut env = vec![
            env::secret_env("POSTGRES_USER", &admin, "username"),
            env::secret_env("POSTGRES_PASSWORD", &admin, "password"),
            env::plain_env("POSTGRES_DB", &database(ctx, &stack.spec)),
            env::plain_env("PGDATA", PGDATA),
            env::secret_env("APP_USER", &secret, "username"),
            env::secret_env("APP_PASSWORD", &secret, "password"),
            // For the scripts and the probe, from the constants here.
            env::plain_env(scripts::PORT, &PORT.to_string()),
            env::plain_env(scripts::SOCKET_DIR, SOCKET_DIR),
            env::plain_env(scripts::TLS_CERT, tls::CERT_FILE),
        ];
        env.append(&mut extra_env);
        let mut mounts = vec![pod::data_mount(MOUNT), pod::socket_mount(SOCKET_DIR)];
        mounts.append(&mut extra_mounts);
        Container {
            name: self.part().into(),
            image: Some(self.image(&stack.spec)),
            command,
            // Options only: the image's entrypoint runs `postgres` with them.
            args,
            // The server's bootstrap superuser is the administrator; the
            // apps' role is made and kept by the credentials container.
            env: Some(env),
            ports: pod::port(self.part(), PORT),
            // Ready only when the apps' credentials work: a query over TCP
            // authenticates with the Secret's password against the stack's
            // database (pg_isready would pass with neither).
            // The login role and password the apps use now are the
            // operator's passwords Secret's, mounted (this container's
            // environment keeps the ones it started with).
            readiness_probe: pod::ready_when(&format!(
                "d={dir}; u=$APP_USER; p=$APP_PASSWORD; if [ -s $d/login ]; then u=$(cat $d/login); p=$(cat $d/password; printf x); p=${{p%x}}; fi; PGPASSWORD=\"$p\" PGCONNECT_TIMEOUT=2 psql -h 127.0.0.1 -p \"$APPSTACK_PORT\" -U \"$u\" -d \"$POSTGRES_DB\" -Atqc 'select 1' >/dev/null",
                dir = rotation::DIR
            )),
            liveness_probe: pod::alive_on(PORT, 30),
            volume_mounts: Some(mounts),
            resources: stack
                .spec
                .postgres
                .as_ref()
                .and_then(|p| p.resources.clone()),
            security_context: Some(security::container()),
            ..Container::default()
        }
    }

    fn credentials_script(&self) -> &'static str {
        CREDENTIALS
    }

    /// A role has one password: the apps alternate between two login roles.
    fn alternates_logins(&self) -> bool {
        true
    }

    fn socket_dir(&self) -> Option<&'static str> {
        Some(SOCKET_DIR)
    }

    /// DATABASE_URL plus libpq's own variables, so psql and drivers just work.
    fn client_env(&self, tls: bool) -> Vec<(&'static str, &'static str)> {
        let mut env = vec![
            ("DATABASE_URL", "url"),
            ("PGHOST", "host"),
            ("PGPORT", "port"),
            ("PGDATABASE", "database"),
            ("PGUSER", "username"),
            ("PGPASSWORD", "password"),
        ];
        env.extend(tls_env(tls));
        env
    }

    fn wait_script(&self, tls: bool) -> (&'static str, Vec<(&'static str, &'static str)>) {
        let mut vars = vec![
            ("PGHOST", "host"),
            ("PGPORT", "port"),
            ("PGDATABASE", "database"),
            ("PGUSER", "username"),
            ("PGPASSWORD", "password"),
        ];
        vars.extend(tls_env(tls));
        (scripts::PG_WAIT, vars)
    }

    fn backup_scripts(&self) -> BackupScripts {
        BackupScripts {
            files: BACKUP_FILES,
            backup: "pg-base-backup",
            restore: "pg-restore",
        }
    }

    /// libpq's variables: pg_basebackup connects as the backup user.
    fn backup_env(&self, host: &str, secret: &str, tls: bool) -> Vec<EnvVar> {
        let mut env = vec![
            env::plain_env("PGHOST", host),
            env::plain_env("PGPORT", &PORT.to_string()),
            env::secret_env("PGUSER", secret, "username"),
            env::secret_env("PGPASSWORD", secret, "password"),
            env::plain_env("PGCONNECT_TIMEOUT", "10"),
        ];
        if tls {
            env.extend([
                env::plain_env("PGSSLMODE", "verify-full"),
                env::plain_env("PGSSLROOTCERT", tls::CA_FILE),
            ]);
        }
        env
    }

    fn data_dir(&self) -> &'static str {
        PGDATA
    }

    /// `base/<label>/...` committed by `base/<label>.end`, and the WAL in
    /// `wal/`.
    fn layout(&self) -> Layout {
        Layout {
            backups: "base/",
            commit: ".end",
            dirs: true,
            log: Some("wal/"),
            data_marker: "PG_VERSION",
            replay_marker: Some("recovery.signal"),
        }
    }

    /// The server archives each WAL segment into the backup volume with
    /// the archive script, at least every ARCHIVE_TIMEOUT seconds.
    fn log_archiving(&self) -> Option<Vec<String>> {
        let settings = [
            "archive_mode=on".to_string(),
            format!("archive_command={SCRIPTS}/pg-archive-wal %p %f"),
            format!("archive_timeout={ARCHIVE_TIMEOUT}"),
        ];
        Some(
            settings
                .into_iter()
                .flat_map(|setting| ["-c".to_string(), setting])
                .collect(),
        )
    }

    fn backup_needs_tls(&self) -> Option<&'static str> {
        Some("a base backup streams every row over the network")
    }
}

/// libpq's TLS variables, from the Secret's keys of the same meaning.
fn tls_env(tls: bool) -> Vec<(&'static str, &'static str)> {
    if tls {
        vec![("PGSSLMODE", "sslmode"), ("PGSSLROOTCERT", "sslrootcert")]
    } else {
        Vec::new()
    }
}

/// postgres_exporter's connection: the `postgres` database on loopback as
/// the monitoring role (pg_monitor), over TLS verified with the stack's CA
/// when the stack has TLS (the server's certificate names localhost).
fn exporter_env(secret: &str, tls: bool) -> Vec<EnvVar> {
    let ssl = if tls {
        format!("sslmode=verify-full&sslrootcert={}", tls::CA_FILE)
    } else {
        "sslmode=disable".to_string()
    };
    vec![
        env::plain_env(
            "DATA_SOURCE_URI",
            &format!("localhost:{PORT}/postgres?{ssl}"),
        ),
        env::secret_env("DATA_SOURCE_USER", secret, "username"),
        env::secret_env("DATA_SOURCE_PASS", secret, "password"),
    ]
}

#[cfg(test)]
mod replicated_tests {
    use super::*;

    fn spec(yaml: &str) -> AppStackSpec {
        let mut v: serde_yaml::Value = serde_yaml::from_str(yaml).unwrap();
        v["components"] = serde_yaml::Value::Sequence(Vec::new());
        serde_yaml::from_value(v).unwrap()
    }

    fn ctx() -> StackRef {
        let mut s = AppStack::new("shop", spec("{}"));
        s.metadata.namespace = Some("ns".into());
        s.metadata.uid = Some("u".into());
        StackRef::new(&s).unwrap()
    }

    #[test]
    fn more_than_one_instance_needs_tls_and_no_backup_yet() {
        let ok = spec("postgres: {instances: 3}");
        assert!(Postgres.validate(&ctx(), &ok).is_ok());
        assert_eq!(Postgres.instances(&ok), 3);
        let no_tls = spec("{postgres: {instances: 2}, tls: {enabled: false}}");
        let err = Postgres.validate(&ctx(), &no_tls).unwrap_err().to_string();
        assert!(err.contains("spec.tls"), "{err}");
        let backed_up = spec("postgres: {instances: 2, backup: {}}");
        let err = Postgres
            .validate(&ctx(), &backed_up)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("spec.postgres.backup"), "{err}");
        assert!(Postgres.validate(&ctx(), &spec("postgres: {}")).is_ok());
        assert_eq!(Postgres.instances(&spec("postgres: {}")), 1);
    }
}
