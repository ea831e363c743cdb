//! PostgreSQL: PGDATA in a subdirectory of the volume (a fresh volume's
//! root may hold lost+found, which initdb refuses).

use k8s_openapi::api::core::v1::{Container, EnvVar};

use crate::api::{
    AppStack, AppStackSpec, AppStackStatus, BackupSpec, StorageSpec, StoreKind, StoreStatus,
};
use crate::backup_agent::Layout;
use crate::build::backup::SCRIPTS;
use crate::build::credentials::StoreCredentials;
use crate::build::engine::{BackupScripts, Engine};
use crate::build::error::BuildError;
use crate::build::meta::StackRef;
use crate::build::{env, pod, security, tls};

pub const PORT: i32 = 5432;
pub const DEFAULT_IMAGE: &str = "postgres:17";
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
const CREDENTIALS: &str = r#"recovering() {
  for u in "$POSTGRES_USER" "$APP_USER"; do
    r=$(psql -h /var/run/postgresql -U "$u" -d postgres -Atqc 'select pg_is_in_recovery()' 2>/dev/null) && { [ "$r" = t ]; return; }
  done
  return 1
}
up() { pg_isready -q -h 127.0.0.1 -p 5432 && ! recovering; }
login() { PGPASSWORD="$APP_PASSWORD" PGCONNECT_TIMEOUT=5 psql -h 127.0.0.1 -p 5432 -U "$APP_USER" -d "$POSTGRES_DB" -Atqc 'select 1' 2>&1 >/dev/null; }
roles() {
  who=$POSTGRES_USER
  psql -h /var/run/postgresql -U "$who" -d postgres -Atqc 'select 1' >/dev/null 2>&1 || who=$APP_USER
  psql -q -h /var/run/postgresql -U "$who" -d postgres -v ON_ERROR_STOP=1 -v admin="$POSTGRES_USER" -v app="$APP_USER" -v db="$POSTGRES_DB" 2>&1 >/dev/null <<'SQL' || return 1
\getenv adminpw POSTGRES_PASSWORD
\getenv apppw APP_PASSWORD
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'admin') AS missing \gset
\if :missing
CREATE ROLE :"admin";
\endif
ALTER ROLE :"admin" WITH SUPERUSER LOGIN PASSWORD :'adminpw';
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'app') AS missing \gset
\if :missing
CREATE ROLE :"app";
\endif
ALTER DATABASE :"db" OWNER TO :"app";
ALTER ROLE :"app" WITH LOGIN NOSUPERUSER NOCREATEROLE NOCREATEDB NOREPLICATION NOBYPASSRLS PASSWORD :'apppw';
SQL
  psql -q -h /var/run/postgresql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -v ON_ERROR_STOP=1 -v app="$APP_USER" 2>&1 >/dev/null <<'SQL'
ALTER SCHEMA public OWNER TO :"app";
SQL
  [ -n "${BACKUP_USER:-}" ] || return 0
  psql -q -h /var/run/postgresql -U "$POSTGRES_USER" -d postgres -v ON_ERROR_STOP=1 -v backup="$BACKUP_USER" 2>&1 >/dev/null <<'SQL'
\getenv backuppw BACKUP_PASSWORD
SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'backup') AS missing \gset
\if :missing
CREATE ROLE :"backup";
\endif
ALTER ROLE :"backup" WITH LOGIN REPLICATION NOSUPERUSER NOCREATEROLE NOCREATEDB NOBYPASSRLS PASSWORD :'backuppw';
SQL
}
# A restore writes its recovery settings (restore_command, recovery_target_*)
# into postgresql.auto.conf; once the server has promoted they must go, or
# every later base backup carries the old target and cannot be restored
# past it. This also mends servers restored by an earlier release.
forget_restore() {
  psql -Atq -h /var/run/postgresql -U "$POSTGRES_USER" -d postgres -v ON_ERROR_STOP=1 2>&1 <<'SQL'
SELECT count(*) > 0 AS restored FROM pg_file_settings
 WHERE sourcefile LIKE '%/postgresql.auto.conf'
   AND (name = 'restore_command' OR name LIKE 'recovery\_target%') \gset
\if :restored
ALTER SYSTEM RESET restore_command;
ALTER SYSTEM RESET recovery_target;
ALTER SYSTEM RESET recovery_target_action;
ALTER SYSTEM RESET recovery_target_inclusive;
ALTER SYSTEM RESET recovery_target_lsn;
ALTER SYSTEM RESET recovery_target_name;
ALTER SYSTEM RESET recovery_target_time;
ALTER SYSTEM RESET recovery_target_timeline;
ALTER SYSTEM RESET recovery_target_xid;
SELECT pg_reload_conf() \gset
\echo removed the recovery settings of the restore from postgresql.auto.conf: later backups restore to any point
\endif
SQL
}
cert=/etc/appstack/tls/tls.crt
served=$(cksum < $cert 2>/dev/null)
until up; do sleep 2 & wait $!; done
out=$(roles) || fail "could not set the roles from Secrets $APPSTACK_SECRET and $APPSTACK_SECRET-admin: $out. Fix the roles in pod $HOSTNAME; this check runs again when its container restarts"
echo "roles $POSTGRES_USER (administrator), $APP_USER (the apps')${BACKUP_USER:+ and $BACKUP_USER (backups)} set from the Secrets"
if out=$(forget_restore); then
  [ -z "$out" ] || echo "$out"
else
  echo "could not remove the restore's recovery settings: $out. Backups refuse to run until they are gone; this runs again when the container restarts" >&2
fi
while :; do
  now=$(cksum < $cert 2>/dev/null)
  if [ "$now" != "$served" ] && up && psql -h /var/run/postgresql -U "$POSTGRES_USER" -d postgres -Atqc 'select pg_reload_conf()' >/dev/null 2>&1; then
    served=$now
    echo "loaded the renewed server certificate"
  fi
  if up && ! err=$(login); then
    if ! out=$(roles); then
      up && fail "could not set the roles from Secrets $APPSTACK_SECRET and $APPSTACK_SECRET-admin: $out. The apps cannot connect: fix the roles in pod $HOSTNAME; this check runs again when its container restarts"
    elif ! err=$(login); then
      up && fail "PostgreSQL refuses the credentials of Secret $APPSTACK_SECRET (user $APP_USER, database $POSTGRES_DB) even after setting the password from it: $err. Fix the role or database (e.g. ALTER ROLE ... LOGIN, CREATE DATABASE) in pod $HOSTNAME; this check runs again when its container restarts"
    else
      echo "password of $APP_USER set from Secret $APPSTACK_SECRET"
    fi
  fi
  sleep 10 & wait $!
done"#;

/// The backup and restore scripts: base backups (pg_basebackup, checked
/// with pg_verifybackup) and the WAL archived between them.
const BACKUP_FILES: [(&str, &str); 4] = [
    (
        "pg-archive-wal",
        include_str!("../backup/pg-archive-wal.sh"),
    ),
    (
        "pg-restore-wal",
        include_str!("../backup/pg-restore-wal.sh"),
    ),
    (
        "pg-base-backup",
        include_str!("../backup/pg-base-backup.sh"),
    ),
    ("pg-restore", include_str!("../backup/pg-restore.sh")),
];

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
    fn backup<'a>(&self, spec: &'a AppStackSpec) -> Option<&'a BackupSpec> {
        spec.postgres.as_ref()?.backup.as_ref()
    }
    fn status<'a>(&self, status: &'a AppStackStatus) -> Option<&'a StoreStatus> {
        status.postgres.as_ref()
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
        if valid {
            Ok(())
        } else {
            Err(BuildError::Database(db))
        }
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
        Container {
            name: self.part().into(),
            image: Some(self.image(&stack.spec)),
            // Options only: the image's entrypoint runs `postgres` with them.
            args,
            // The server's bootstrap superuser is the administrator; the
            // apps' role is made and kept by the credentials container.
            env: Some(vec![
                env::secret_env("POSTGRES_USER", &admin, "username"),
                env::secret_env("POSTGRES_PASSWORD", &admin, "password"),
                env::plain_env("POSTGRES_DB", &database(ctx, &stack.spec)),
                env::plain_env("PGDATA", PGDATA),
                env::secret_env("APP_USER", &secret, "username"),
                env::secret_env("APP_PASSWORD", &secret, "password"),
            ]),
            ports: pod::port(self.part(), PORT),
            // Ready only when the apps' credentials work: a query over TCP
            // authenticates with the Secret's password against the stack's
            // database (pg_isready would pass with neither).
            readiness_probe: pod::ready_when(
                "PGPASSWORD=\"$APP_PASSWORD\" PGCONNECT_TIMEOUT=2 psql -h 127.0.0.1 -p 5432 -U \"$APP_USER\" -d \"$POSTGRES_DB\" -Atqc 'select 1' >/dev/null",
            ),
            liveness_probe: pod::alive_on(PORT, 30),
            volume_mounts: Some(vec![pod::data_mount(MOUNT), pod::socket_mount(SOCKET_DIR)]),
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
        (
            "until PGCONNECT_TIMEOUT=2 psql -Atqc 'select 1' >/dev/null 2>&1; do echo waiting for postgres at $PGHOST to accept $PGUSER on $PGDATABASE; sleep 1; done",
            vars,
        )
    }

    fn backup_scripts(&self) -> BackupScripts {
        BackupScripts {
            files: &BACKUP_FILES,
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
