//! The stores' Secrets: credentials plus everything a client needs to connect.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;

use super::meta::StackRef;
use super::{StoreCredentials, labels, names, postgres, redis};

pub fn redis(ctx: &StackRef, creds: &StoreCredentials) -> Secret {
    let name = names::redis(&ctx.name);
    let host = host(ctx, &name);
    let url = format!("redis://:{}@{host}:{}/0", creds.password, redis::PORT);
    build(
        ctx,
        name,
        labels::REDIS,
        [
            ("username", creds.username.clone()),
            ("password", creds.password.clone()),
            ("host", host),
            ("port", redis::PORT.to_string()),
            ("url", url),
        ],
    )
}

pub fn postgres(ctx: &StackRef, creds: &StoreCredentials, database: &str) -> Secret {
    let name = names::postgres(&ctx.name);
    let host = host(ctx, &name);
    let url = format!(
        "postgresql://{}:{}@{host}:{}/{database}",
        creds.username,
        creds.password,
        postgres::PORT
    );
    build(
        ctx,
        name,
        labels::POSTGRES,
        [
            ("username", creds.username.clone()),
            ("password", creds.password.clone()),
            ("database", database.to_string()),
            ("host", host),
            ("port", postgres::PORT.to_string()),
            ("url", url),
        ],
    )
}

/// `<service>.<namespace>.svc`: resolves whatever the cluster domain is.
fn host(ctx: &StackRef, service: &str) -> String {
    format!("{service}.{}.svc", ctx.namespace)
}

fn build<const N: usize>(
    ctx: &StackRef,
    name: String,
    part: &str,
    entries: [(&str, String); N],
) -> Secret {
    let data: BTreeMap<String, ByteString> = entries
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
        .collect();
    Secret {
        metadata: ctx.object_meta(name, part, labels::ROLE_STORE),
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    }
}
