//! TLS to the stores: the Secrets holding the stack's CA and each store's
//! server certificate (made by reconcile/certificates.rs, passed in as PEM),
//! and the volumes that bring them into the pods.
//!
//! Three Secrets, so that no pod holds more than it needs:
//! - `<stack>-ca-key`: the CA's certificate and key, read only by the
//!   operator, never mounted;
//! - `<stack>-ca`: the CA certificate alone, mounted into components (and
//!   their wait containers) at [`CA_FILE`];
//! - `<stack>-<store>-tls`: the store's certificate, key and the CA,
//!   mounted into the store's pod at [`DIR`].

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{KeyToPath, Secret, SecretVolumeSource, Volume, VolumeMount};

use super::engine::Engine;
use super::labels;
use super::meta::StackRef;
use super::names;

/// Where the pods find the TLS files: `ca.crt` everywhere, and in a store's
/// pod its `tls.crt` and `tls.key`.
pub const DIR: &str = "/etc/appstack/tls";
/// The CA certificate the clients verify the stores with.
pub const CA_FILE: &str = "/etc/appstack/tls/ca.crt";
pub const CERT_FILE: &str = "/etc/appstack/tls/tls.crt";
pub const KEY_FILE: &str = "/etc/appstack/tls/tls.key";
/// The CA Secrets' `app.kubernetes.io/name`.
const PART: &str = "ca";
/// The pods' volume name for it (prefixed, so it never meets a user's).
const VOLUME: &str = "appstack-tls";

/// A certificate and its private key, PEM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertifiedKey {
    pub cert: String,
    pub key: String,
}

#[cfg(test)]
impl CertifiedKey {
    /// For builders' tests: they never read the PEM.
    pub fn placeholder() -> Self {
        Self {
            cert: "<certificate>".into(),
            key: "<key>".into(),
        }
    }
}

/// The CA and the server certificate of each store, read or issued by the
/// reconciler.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsInputs {
    pub ca: Option<CertifiedKey>,
    pub servers: BTreeMap<crate::api::StoreKind, CertifiedKey>,
}

pub fn ca_key_secret_name(stack: &str) -> String {
    format!("{stack}-ca-key")
}

pub fn ca_secret_name(stack: &str) -> String {
    format!("{stack}-ca")
}

pub fn server_secret_name(engine: &dyn Engine, stack: &str) -> String {
    format!("{}-tls", engine.secret_name(stack))
}

/// The names a store's certificate is valid for: its client Service (as
/// the Secret's `host` gives it, and the longer and shorter forms), its pod
/// through the headless Service, and loopback for the pod's own probes.
pub fn server_names(ctx: &StackRef, engine: &dyn Engine) -> Vec<String> {
    let service = engine.secret_name(&ctx.name);
    let headless = names::headless(&service);
    let ns = &ctx.namespace;
    vec![
        format!("{service}.{ns}.svc"),
        format!("{service}.{ns}.svc.cluster.local"),
        format!("{service}.{ns}"),
        service.clone(),
        format!("{service}-0.{headless}.{ns}.svc"),
        format!("{service}-0.{headless}.{ns}.svc.cluster.local"),
        "localhost".into(),
        "127.0.0.1".into(),
    ]
}

/// [`server_names`]; with more than one instance each pod's name and the
/// read-only Service's; and the names the store's spec adds (Sentinel's
/// Service).
pub fn server_names_for(
    ctx: &StackRef,
    engine: &dyn Engine,
    spec: &crate::api::AppStackSpec,
) -> Vec<String> {
    let mut names = server_names(ctx, engine);
    let instances = engine.instances(spec);
    if instances > 1 {
        let service = engine.secret_name(&ctx.name);
        let headless = names::headless(&service);
        let ro = names::read_only(&service);
        let ns = &ctx.namespace;
        names.extend([
            format!("{ro}.{ns}.svc"),
            format!("{ro}.{ns}.svc.cluster.local"),
            ro.clone(),
        ]);
        for i in 1..instances {
            names.push(format!("{service}-{i}.{headless}.{ns}.svc"));
            names.push(format!("{service}-{i}.{headless}.{ns}.svc.cluster.local"));
        }
    }
    for name in engine.extra_server_names(ctx, spec) {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The CA's certificate and key, for the operator alone.
pub fn ca_key_secret(ctx: &StackRef, ca: &CertifiedKey) -> Secret {
    secret(
        ctx,
        ca_key_secret_name(&ctx.name),
        PART,
        "kubernetes.io/tls",
        [("tls.crt", ca.cert.clone()), ("tls.key", ca.key.clone())].into(),
    )
}

/// The CA certificate the components trust.
pub fn ca_secret(ctx: &StackRef, ca: &CertifiedKey) -> Secret {
    secret(
        ctx,
        ca_secret_name(&ctx.name),
        PART,
        "Opaque",
        [("ca.crt", ca.cert.clone())].into(),
    )
}

/// A store's server certificate and key, the CA, and the engine's own
/// files that go with TLS (PostgreSQL's pg_hba.conf).
pub fn server_secret(
    ctx: &StackRef,
    engine: &dyn Engine,
    server: &CertifiedKey,
    ca: &CertifiedKey,
) -> Secret {
    let mut data: BTreeMap<&str, String> = [
        ("tls.crt", server.cert.clone()),
        ("tls.key", server.key.clone()),
        ("ca.crt", ca.cert.clone()),
    ]
    .into();
    data.extend(engine.tls_files());
    let name = server_secret_name(engine, &ctx.name);
    secret(ctx, name, engine.part(), "kubernetes.io/tls", data)
}

fn secret(
    ctx: &StackRef,
    name: String,
    part: &str,
    type_: &str,
    data: BTreeMap<&str, String>,
) -> Secret {
    Secret {
        metadata: ctx.object_meta(name, part, labels::ROLE_STORE),
        type_: Some(type_.into()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// The store pod's volume: its server Secret, readable by the store's group
/// only (PostgreSQL refuses a key others may read).
pub fn store_volume(ctx: &StackRef, engine: &dyn Engine) -> Volume {
    Volume {
        name: VOLUME.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(server_secret_name(engine, &ctx.name)),
            default_mode: Some(0o440),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

/// A component pod's volume: the CA certificate alone.
pub fn component_volume(ctx: &StackRef) -> Volume {
    Volume {
        name: VOLUME.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(ca_secret_name(&ctx.name)),
            items: Some(vec![KeyToPath {
                key: "ca.crt".into(),
                path: "ca.crt".into(),
                ..KeyToPath::default()
            }]),
            default_mode: Some(0o444),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

pub fn mount() -> VolumeMount {
    VolumeMount {
        name: VOLUME.into(),
        mount_path: DIR.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}
