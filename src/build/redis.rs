//! The Redis StatefulSet: append-only file on the volume, password required.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Container;

use super::meta::StackRef;
use super::store::{self, Store};
use super::{StoreCredentials, labels, names, security, wiring};
use crate::api::AppStack;

pub const PORT: i32 = 6379;
pub const DEFAULT_IMAGE: &str = "redis:7.4";

pub fn image(stack: &AppStack) -> String {
    stack
        .spec
        .redis
        .as_ref()
        .and_then(|r| r.image.clone())
        .unwrap_or_else(|| DEFAULT_IMAGE.to_string())
}

pub fn stateful_set(ctx: &StackRef, stack: &AppStack, creds: &StoreCredentials) -> StatefulSet {
    let secret = names::redis(&ctx.name);
    let spec = stack.spec.redis.as_ref();
    let container = Container {
        name: "redis".into(),
        image: Some(image(stack)),
        // The kubelet expands $(REDIS_PASSWORD) from the env below, so the
        // password lives only in the Secret.
        args: Some(
            [
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--requirepass",
                "$(REDIS_PASSWORD)",
                "--dir",
                "/data",
                "--port",
                "6379",
            ]
            .map(String::from)
            .to_vec(),
        ),
        env: Some(vec![
            wiring::secret_env("REDIS_PASSWORD", &secret, "password"),
            // redis-cli reads it, so probes need no password on the command line.
            wiring::secret_env("REDISCLI_AUTH", &secret, "password"),
        ]),
        ports: store::port(labels::REDIS, PORT),
        readiness_probe: store::ready_when("redis-cli ping | grep -q PONG"),
        liveness_probe: store::alive_on(PORT, 15),
        volume_mounts: store::data_mount("/data"),
        resources: spec.and_then(|r| r.resources.clone()),
        security_context: Some(security::container()),
        ..Container::default()
    };
    store::stateful_set(
        ctx,
        stack,
        Store {
            part: labels::REDIS,
            container,
            storage: spec.and_then(|r| r.storage.as_ref()),
            default_size: "1Gi",
            credentials_hash: wiring::store_hash(labels::REDIS, &creds.username, &creds.password),
        },
    )
}
