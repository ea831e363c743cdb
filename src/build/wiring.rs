//! How a component is wired to the stores it uses: connection variables by
//! secretKeyRef, init containers that wait for the stores, and the hash that
//! rolls the pods when credentials change.

use k8s_openapi::api::core::v1::{
    Container, EnvVar, EnvVarSource, ResourceRequirements, SecretKeySelector,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use sha2::{Digest, Sha256};

use super::meta::StackRef;
use super::{Inputs, names, postgres, redis, security};
use crate::api::{AppStack, Component};

/// Pod template annotation whose change rolls the pods.
pub const CREDENTIALS_HASH: &str = "appstack.dev/credentials-hash";

/// The variables every component that uses Redis gets, and their Secret keys.
const REDIS_ENV: [(&str, &str); 4] = [
    ("REDIS_URL", "url"),
    ("REDIS_HOST", "host"),
    ("REDIS_PORT", "port"),
    ("REDIS_PASSWORD", "password"),
];

/// DATABASE_URL plus libpq's own variables, so psql and drivers just work.
const POSTGRES_ENV: [(&str, &str); 6] = [
    ("DATABASE_URL", "url"),
    ("PGHOST", "host"),
    ("PGPORT", "port"),
    ("PGDATABASE", "database"),
    ("PGUSER", "username"),
    ("PGPASSWORD", "password"),
];

pub fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// The connection variables of the stores `c` uses.
pub fn connection_env(ctx: &StackRef, stack: &AppStack, c: &Component) -> Vec<EnvVar> {
    let mut env = Vec::new();
    if c.uses_redis(&stack.spec) {
        let secret = names::redis(&ctx.name);
        env.extend(REDIS_ENV.iter().map(|(n, k)| secret_env(n, &secret, k)));
    }
    if c.uses_postgres(&stack.spec) {
        let secret = names::postgres(&ctx.name);
        env.extend(POSTGRES_ENV.iter().map(|(n, k)| secret_env(n, &secret, k)));
    }
    env
}

/// The user's variables, then ours; ours win over a user's of the same name.
pub fn merged_env(user: &[EnvVar], wired: Vec<EnvVar>) -> Vec<EnvVar> {
    let mut env: Vec<EnvVar> = user
        .iter()
        .filter(|u| !wired.iter().any(|w| w.name == u.name))
        .cloned()
        .collect();
    env.extend(wired);
    env
}

/// Init containers that hold the app back until each store it uses accepts
/// connections, using the store's own image (its client is in there).
pub fn wait_for_stores(ctx: &StackRef, stack: &AppStack, c: &Component) -> Vec<Container> {
    let mut out = Vec::new();
    if c.uses_redis(&stack.spec) {
        let secret = names::redis(&ctx.name);
        out.push(Container {
            name: "wait-for-redis".into(),
            image: Some(redis::image(stack)),
            command: Some(vec![
                "sh".into(),
                "-c".into(),
                "until redis-cli -h \"$REDIS_HOST\" -p \"$REDIS_PORT\" ping 2>/dev/null | grep -q PONG; do echo waiting for redis at $REDIS_HOST; sleep 1; done".into(),
            ]),
            env: Some(vec![
                secret_env("REDIS_HOST", &secret, "host"),
                secret_env("REDIS_PORT", &secret, "port"),
                secret_env("REDISCLI_AUTH", &secret, "password"),
            ]),
            resources: Some(small()),
            security_context: Some(store_client()),
            ..Container::default()
        });
    }
    if c.uses_postgres(&stack.spec) {
        let secret = names::postgres(&ctx.name);
        out.push(Container {
            name: "wait-for-postgres".into(),
            image: Some(postgres::image(stack)),
            command: Some(vec![
                "sh".into(),
                "-c".into(),
                "until pg_isready -q -h \"$PGHOST\" -p \"$PGPORT\"; do echo waiting for postgres at $PGHOST; sleep 1; done".into(),
            ]),
            env: Some(vec![
                secret_env("PGHOST", &secret, "host"),
                secret_env("PGPORT", &secret, "port"),
            ]),
            resources: Some(small()),
            security_context: Some(store_client()),
            ..Container::default()
        });
    }
    out
}

/// sha256 over the credentials `c` uses: a new password changes it, which
/// changes the pod template and rolls the Deployment.
pub fn credentials_hash(stack: &AppStack, c: &Component, inputs: &Inputs) -> String {
    let mut h = Sha256::new();
    if c.uses_redis(&stack.spec)
        && let Some(r) = &inputs.redis
    {
        h.update(b"redis\0");
        h.update(r.username.as_bytes());
        h.update(b"\0");
        h.update(r.password.as_bytes());
        h.update(b"\0");
    }
    if c.uses_postgres(&stack.spec)
        && let Some(p) = &inputs.postgres
    {
        h.update(b"postgres\0");
        h.update(p.username.as_bytes());
        h.update(b"\0");
        h.update(p.password.as_bytes());
        h.update(b"\0");
    }
    hex::encode(h.finalize())
}

/// The same hash for a store's own pods (a password change restarts them).
pub fn store_hash(kind: &str, username: &str, password: &str) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    h.update(b"\0");
    h.update(username.as_bytes());
    h.update(b"\0");
    h.update(password.as_bytes());
    hex::encode(h.finalize())
}

/// Runs the store image's client as its own non-root user.
fn store_client() -> k8s_openapi::api::core::v1::SecurityContext {
    k8s_openapi::api::core::v1::SecurityContext {
        run_as_user: Some(security::STORE_UID),
        run_as_group: Some(security::STORE_UID),
        ..security::container()
    }
}

fn small() -> ResourceRequirements {
    ResourceRequirements {
        requests: Some(
            [
                ("cpu".to_string(), Quantity("10m".into())),
                ("memory".to_string(), Quantity("16Mi".into())),
            ]
            .into(),
        ),
        limits: Some([("memory".to_string(), Quantity("64Mi".into()))].into()),
        ..ResourceRequirements::default()
    }
}
