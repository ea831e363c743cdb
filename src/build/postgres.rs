//! The PostgreSQL StatefulSet: PGDATA in a subdirectory of the volume (a
//! fresh volume's root may hold lost+found, which initdb refuses).

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Container, EnvVar, ExecAction, Lifecycle, LifecycleHandler};

use super::meta::StackRef;
use super::store::{self, Store};
use super::{BuildError, StoreCredentials, labels, names, security, wiring};
use crate::api::{AppStack, PostgresSpec};

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

pub fn image(stack: &AppStack) -> String {
    stack
        .spec
        .postgres
        .as_ref()
        .and_then(|p| p.image.clone())
        .unwrap_or_else(|| DEFAULT_IMAGE.to_string())
}

/// spec.postgres.database, default the stack's name as an identifier.
pub fn database(ctx: &StackRef, spec: &PostgresSpec) -> Result<String, BuildError> {
    let db = spec
        .database
        .clone()
        .unwrap_or_else(|| ctx.name.replace('-', "_"));
    let valid = !db.is_empty()
        && db.len() <= 63
        && db.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && db
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if valid {
        Ok(db)
    } else {
        Err(BuildError::Database(db))
    }
}

pub fn stateful_set(
    ctx: &StackRef,
    stack: &AppStack,
    creds: &StoreCredentials,
    database: &str,
) -> StatefulSet {
    let secret = names::postgres(&ctx.name);
    let spec = stack.spec.postgres.as_ref();
    let plain = |name: &str, value: &str| EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    };
    let container = Container {
        name: "postgres".into(),
        image: Some(image(stack)),
        env: Some(vec![
            wiring::secret_env("POSTGRES_USER", &secret, "username"),
            wiring::secret_env("POSTGRES_PASSWORD", &secret, "password"),
            plain("POSTGRES_DB", database),
            plain("PGDATA", PGDATA),
        ]),
        ports: store::port(labels::POSTGRES, PORT),
        readiness_probe: store::ready_when(
            "pg_isready -q -h 127.0.0.1 -p 5432 -U \"$POSTGRES_USER\" -d \"$POSTGRES_DB\"",
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
        resources: spec.and_then(|p| p.resources.clone()),
        security_context: Some(security::container()),
        ..Container::default()
    };
    store::stateful_set(
        ctx,
        stack,
        Store {
            part: labels::POSTGRES,
            container,
            storage: spec.and_then(|p| p.storage.as_ref()),
            default_size: "5Gi",
            credentials_hash: wiring::store_hash(
                labels::POSTGRES,
                &creds.username,
                &creds.password,
            ),
        },
    )
}
