//! The Redis StatefulSet: append-only file on the volume, password required.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ExecAction, Probe, TCPSocketAction, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

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
        ports: Some(vec![ContainerPort {
            name: Some(labels::REDIS.into()),
            container_port: PORT,
            protocol: Some("TCP".into()),
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(Probe {
            exec: Some(ExecAction {
                command: Some(
                    ["sh", "-c", "redis-cli ping | grep -q PONG"]
                        .map(String::from)
                        .to_vec(),
                ),
            }),
            period_seconds: Some(5),
            timeout_seconds: Some(3),
            ..Probe::default()
        }),
        liveness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(PORT),
                ..TCPSocketAction::default()
            }),
            initial_delay_seconds: Some(15),
            period_seconds: Some(10),
            failure_threshold: Some(6),
            ..Probe::default()
        }),
        volume_mounts: Some(vec![VolumeMount {
            name: store::DATA.into(),
            mount_path: "/data".into(),
            ..VolumeMount::default()
        }]),
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
