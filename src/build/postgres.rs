//! PostgreSQL: PGDATA in a subdirectory of the volume (a fresh volume's
//! root may hold lost+found, which initdb refuses).

use k8s_openapi::api::core::v1::{Container, EnvVar, ExecAction, Lifecycle, LifecycleHandler};

use super::meta::StackRef;
use super::stores::{self, Engine};
use super::{BuildError, StoreCredentials, security, store, wiring};
use crate::api::{AppStack, AppStackSpec, StorageSpec, StoreKind};

pub const PORT: i32 = 5432;
pub const DEFAULT_IMAGE: &str = "postgres:17";
const MOUNT: &str = "/var/lib/postgresql/data";
const PGDATA: &str = "/var/lib/postgresql/data/pgdata";

/// The server's password is set by initdb on the volume and would outlive a
/// Secret that is recreated (the stack deleted with its data retained, then
/// applied again) or edited (rotation). After every start this hook sets the
/// role's password from the Secret over the local socket (trusted), so the
/// server always accepts what the Secret says. It never fails the container.
const SYNC_PASSWORD: &str = r#"for i in $(seq 1 120); do pg_isready -q -h /var/run/postgresql && break; sleep 1; done
echo "ALTER ROLE \"$POSTGRES_USER\" WITH PASSWORD :'pw';" | psql -q -h /var/run/postgresql -U "$POSTGRES_USER" -d "$POSTGRES_DB" -v ON_ERROR_STOP=1 -v pw="$POSTGRES_PASSWORD" >/dev/null 2>&1 || true"#;

pub struct Postgres;

/// spec.postgres.database, default the stack's name as an identifier.
fn database(ctx: &StackRef, spec: &AppStackSpec) -> String {
    spec.postgres
        .as_ref()
        .and_then(|p| p.database.clone())
        .unwrap_or_else(|| ctx.name.replace('-', "_"))
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
    ) -> Vec<(&'static str, String)> {
        let database = database(ctx, spec);
        let url = format!(
            "postgresql://{}:{}@{host}:{PORT}/{database}",
            stores::userinfo(&creds.username),
            stores::userinfo(&creds.password)
        );
        vec![("database", database), ("url", url)]
    }

    fn container(&self, ctx: &StackRef, stack: &AppStack) -> Container {
        let secret = self.secret_name(&ctx.name);
        let plain = |name: &str, value: &str| EnvVar {
            name: name.into(),
            value: Some(value.into()),
            ..EnvVar::default()
        };
        Container {
            name: self.part().into(),
            image: Some(self.image(&stack.spec)),
            env: Some(vec![
                wiring::secret_env("POSTGRES_USER", &secret, "username"),
                wiring::secret_env("POSTGRES_PASSWORD", &secret, "password"),
                plain("POSTGRES_DB", &database(ctx, &stack.spec)),
                plain("PGDATA", PGDATA),
            ]),
            ports: store::port(self.part(), PORT),
            // Ready only when the apps' credentials work: a query over TCP
            // authenticates with the Secret's password against the stack's
            // database (pg_isready would pass with neither).
            readiness_probe: store::ready_when(
                "PGPASSWORD=\"$POSTGRES_PASSWORD\" PGCONNECT_TIMEOUT=2 psql -h 127.0.0.1 -p 5432 -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\" -Atqc 'select 1' >/dev/null",
            ),
            liveness_probe: store::alive_on(PORT, 30),
            lifecycle: Some(Lifecycle {
                post_start: Some(LifecycleHandler {
                    exec: Some(ExecAction {
                        command: Some(vec!["sh".into(), "-c".into(), SYNC_PASSWORD.into()]),
                    }),
                    ..LifecycleHandler::default()
                }),
                ..Lifecycle::default()
            }),
            volume_mounts: store::data_mount(MOUNT),
            resources: stack
                .spec
                .postgres
                .as_ref()
                .and_then(|p| p.resources.clone()),
            security_context: Some(security::container()),
            ..Container::default()
        }
    }

    /// DATABASE_URL plus libpq's own variables, so psql and drivers just work.
    fn client_env(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("DATABASE_URL", "url"),
            ("PGHOST", "host"),
            ("PGPORT", "port"),
            ("PGDATABASE", "database"),
            ("PGUSER", "username"),
            ("PGPASSWORD", "password"),
        ]
    }

    fn wait_script(&self) -> (&'static str, &'static [(&'static str, &'static str)]) {
        (
            "until PGCONNECT_TIMEOUT=2 psql -Atqc 'select 1' >/dev/null 2>&1; do echo waiting for postgres at $PGHOST to accept $PGUSER on $PGDATABASE; sleep 1; done",
            &[
                ("PGHOST", "host"),
                ("PGPORT", "port"),
                ("PGDATABASE", "database"),
                ("PGUSER", "username"),
                ("PGPASSWORD", "password"),
            ],
        )
    }
}
