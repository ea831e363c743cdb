//! A store's Secret: credentials plus everything a client needs to connect.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use super::credentials::StoreCredentials;
use super::engine::Engine;
use super::labels;
use super::meta::StackRef;
use crate::api::AppStackSpec;

/// The store's backup user: for the backup pods only.
pub fn backup(ctx: &StackRef, engine: &dyn Engine, creds: &StoreCredentials) -> Secret {
    let mut secret = admin(ctx, engine, creds);
    secret.metadata = ctx.object_meta(
        super::backup::name(&ctx.name, engine),
        &super::backup::part(engine),
        labels::ROLE_BACKUP,
    );
    secret
}

/// The replication user of a store with more than one instance
/// (`<stack>-<store>-replication`): for the store's own pods only.
pub fn replication(ctx: &StackRef, engine: &dyn Engine, creds: &StoreCredentials) -> Secret {
    let mut secret = admin(ctx, engine, creds);
    secret.metadata = ctx.object_meta(
        engine.replication_secret_name(&ctx.name),
        engine.part(),
        labels::ROLE_STORE,
    );
    secret
}

/// The store's monitoring user: for its exporter only.
pub fn monitor(ctx: &StackRef, engine: &dyn Engine, creds: &StoreCredentials) -> Secret {
    let mut secret = admin(ctx, engine, creds);
    secret.metadata.name = Some(super::metrics::secret_name(&ctx.name, engine));
    secret
}

/// The store's administrator: for the store's own pod only (probes, the
/// password sync), so no component ever holds the keys to the server.
pub fn admin(ctx: &StackRef, engine: &dyn Engine, creds: &StoreCredentials) -> Secret {
    let data: BTreeMap<String, ByteString> = [
        ("username", creds.username.clone()),
        ("password", creds.password.clone()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
    .collect();
    Secret {
        metadata: ctx.object_meta(
            engine.admin_secret_name(&ctx.name),
            engine.part(),
            labels::ROLE_STORE,
        ),
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    }
}

pub fn store(
    ctx: &StackRef,
    spec: &AppStackSpec,
    engine: &dyn Engine,
    creds: &StoreCredentials,
) -> Secret {
    let name = engine.secret_name(&ctx.name);
    // `<service>.<namespace>.svc`: resolves whatever the cluster domain is.
    let host = format!("{name}.{}.svc", ctx.namespace);
    let mut entries = vec![
        ("username", creds.username.clone()),
        ("password", creds.password.clone()),
        ("host", host.clone()),
        ("port", engine.port().to_string()),
    ];
    entries.extend(engine.connection(ctx, spec, creds, &host, spec.tls_enabled()));
    let data: BTreeMap<String, ByteString> = entries
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
        .collect();
    Secret {
        metadata: ctx.object_meta(name, engine.part(), labels::ROLE_STORE),
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    }
}

/// An external store's Secret: the connection entries its engine drew
/// from the user's Secret (which the operator only reads), under the name
/// and keys an in-cluster store's Secret has, so the components are wired
/// the same way.
pub fn external(
    ctx: &StackRef,
    engine: &dyn Engine,
    entries: Vec<(&'static str, String)>,
) -> Secret {
    let data: BTreeMap<String, ByteString> = entries
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
        .collect();
    Secret {
        metadata: ctx.object_meta(
            engine.secret_name(&ctx.name),
            engine.part(),
            labels::ROLE_STORE,
        ),
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    }
}
