//! How a component is wired to the stores it uses: connection variables by
//! secretKeyRef, init containers that wait for the stores, and the hash that
//! rolls the pods when credentials change.

use k8s_openapi::api::core::v1::{Container, EnvVar, Volume, VolumeMount};
use sha2::{Digest, Sha256};

use super::credentials::StoreCredentials;
use super::engine::Engine;
use super::env::secret_env;
use super::external;
use super::inputs::Inputs;
use super::meta::StackRef;
use super::{security, stores};
use crate::api::{AppStack, Component};

/// Pod template annotation whose change rolls the pods.
pub const CREDENTIALS_HASH: &str = "appstack.dev/credentials-hash";

/// The connection variables of the stores `c` uses.
pub fn connection_env(ctx: &StackRef, stack: &AppStack, c: &Component) -> Vec<EnvVar> {
    stores::used_by(&stack.spec, c)
        .flat_map(|e| {
            let secret = e.secret_name(&ctx.name);
            let external = e.external(&stack.spec).is_some();
            e.client_env(tls_of(stack, e))
                .into_iter()
                .chain(e.extra_client_env(&stack.spec))
                .map(move |(n, k)| store_env(e, external, n, &secret, k))
        })
        .collect()
}

/// Whether the store's clients get its TLS variables: the stack's TLS for
/// a store it runs; always for an external one, whose Secret says (its CA's
/// path is then wired optional, see [`store_env`]).
fn tls_of(stack: &AppStack, e: &dyn Engine) -> bool {
    e.external(&stack.spec).is_some() || stack.spec.tls_enabled()
}

/// A variable from the store's Secret; an external store's Secret may lack
/// the keys of its CA's path (no CA given), which are then optional.
fn store_env(e: &dyn Engine, external: bool, name: &str, secret: &str, key: &str) -> EnvVar {
    let mut var = secret_env(name, secret, key);
    if external
        && e.external_optional_keys().contains(&key)
        && let Some(r) = var
            .value_from
            .as_mut()
            .and_then(|v| v.secret_key_ref.as_mut())
    {
        r.optional = Some(true);
    }
    var
}

/// Whether `c` needs the stack's CA: it uses a store the stack runs, with TLS.
pub fn uses_stack_ca(stack: &AppStack, c: &Component) -> bool {
    stack.spec.tls_enabled() && stores::used_by(&stack.spec, c).any(|e| e.in_cluster(&stack.spec))
}

/// The volumes and mounts of the external stores' CAs `c` uses (each from
/// the operator's own Secret of that store, optional).
pub fn external_ca(
    ctx: &StackRef,
    stack: &AppStack,
    c: &Component,
) -> (Vec<Volume>, Vec<VolumeMount>) {
    stores::used_by(&stack.spec, c)
        .filter(|e| e.external(&stack.spec).is_some())
        .map(|e| {
            (
                external::ca_volume(e.part(), &e.secret_name(&ctx.name)),
                external::ca_mount(e.part()),
            )
        })
        .unzip()
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
    stores::used_by(&stack.spec, c)
        .map(|e| {
            let secret = e.secret_name(&ctx.name);
            let external = e.external(&stack.spec).is_some();
            let (script, vars) = e.wait_script(tls_of(stack, e));
            let mounts = if external {
                Some(vec![external::ca_mount(e.part())])
            } else {
                stack.spec.tls_enabled().then(|| vec![super::tls::mount()])
            };
            Container {
                name: format!("wait-for-{}", e.part()),
                image: Some(e.image(&stack.spec)),
                command: Some(vec!["sh".into(), "-c".into(), script.into()]),
                env: Some(
                    vars.iter()
                        .map(|(n, k)| store_env(e, external, n, &secret, k))
                        .collect(),
                ),
                volume_mounts: mounts,
                resources: Some(crate::build::pod::sidecar_resources("16Mi", "64Mi")),
                security_context: Some(store_client()),
                ..Container::default()
            }
        })
        .collect()
}

/// sha256 over the credentials `c` uses and the CA it trusts: a new
/// password or CA changes it, which changes the pod template and rolls the
/// Deployment (clients read both only when they start).
pub fn credentials_hash(stack: &AppStack, c: &Component, inputs: &Inputs) -> String {
    let mut h = Sha256::new();
    if uses_stack_ca(stack, c)
        && let Some(ca) = &inputs.tls().ca
    {
        h.update(b"ca\0");
        h.update(ca.cert.as_bytes());
        h.update(b"\0");
    }
    for e in stores::used_by(&stack.spec, c) {
        // An external store: everything its clients read, as drawn from the
        // user's Secret (a new host, password or CA rolls them).
        if e.external(&stack.spec).is_some() {
            let entries = inputs
                .external(e.kind())
                .and_then(|u| e.external_connection(u).ok())
                .unwrap_or_default();
            h.update(e.part().as_bytes());
            for (k, v) in entries {
                for part in [k, v.as_str()] {
                    h.update(part.as_bytes());
                    h.update(b"\0");
                }
            }
            continue;
        }
        if let Some(creds) = inputs.get(e.kind()) {
            for part in [e.part(), &creds.username, &creds.password] {
                h.update(part.as_bytes());
                h.update(b"\0");
            }
        }
    }
    hex::encode(h.finalize())
}

/// The same hash for a store's own pods, over the apps' and the
/// administrator's credentials (a password change restarts them).
pub fn store_hash(kind: &str, credentials: &[&StoreCredentials]) -> String {
    let mut h = Sha256::new();
    h.update(kind.as_bytes());
    for c in credentials {
        for part in [&c.username, &c.password] {
            h.update(b"\0");
            h.update(part.as_bytes());
        }
    }
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
