//! Redis: append-only file on the volume, password required.

use k8s_openapi::api::core::v1::Container;

use super::meta::StackRef;
use super::stores::{self, Engine};
use super::{BuildError, StoreCredentials, security, store, wiring};
use crate::api::{AppStack, AppStackSpec, StorageSpec, StoreKind};

pub const PORT: i32 = 6379;
pub const DEFAULT_IMAGE: &str = "redis:7.4";

/// Redis takes its password from the Secret at every start, so they differ
/// only when someone changed it inside Redis (CONFIG SET requirepass, ACL
/// SETUSER). The credentials container checks every few seconds and, when
/// Redis refuses the Secret's password, exits with the reason as its
/// termination message (Degraded CredentialsOutOfSync on the stack). A
/// Redis that is down or loading is not a credentials problem.
const CREDENTIALS: &str = r#"fail() { printf '%s\n' "$*" > /dev/termination-log; printf '%s\n' "$*" >&2; exit 1; }
while :; do
  out=$(redis-cli -h 127.0.0.1 -p 6379 ping 2>&1)
  case "$out" in
    *NOAUTH*|*WRONGPASS*) fail "Redis refuses the password of Secret $APPSTACK_SECRET ($(printf '%s' "$out" | head -n 1)): it was changed inside Redis (CONFIG SET requirepass or ACL). Delete pod $HOSTNAME to restart Redis with the Secret's password" ;;
  esac
  sleep 10
done"#;

pub struct Redis;

impl Engine for Redis {
    fn kind(&self) -> StoreKind {
        StoreKind::Redis
    }
    fn part(&self) -> &'static str {
        "redis"
    }
    fn port(&self) -> i32 {
        PORT
    }
    fn user(&self) -> &'static str {
        "default"
    }
    fn default_size(&self) -> &'static str {
        "1Gi"
    }
    fn image(&self, spec: &AppStackSpec) -> String {
        spec.redis
            .as_ref()
            .and_then(|r| r.image.clone())
            .unwrap_or_else(|| DEFAULT_IMAGE.to_string())
    }
    fn storage<'a>(&self, spec: &'a AppStackSpec) -> Option<&'a StorageSpec> {
        spec.redis.as_ref().and_then(|r| r.storage.as_ref())
    }

    fn validate(&self, _ctx: &StackRef, _spec: &AppStackSpec) -> Result<(), BuildError> {
        Ok(())
    }

    fn connection(
        &self,
        _ctx: &StackRef,
        _spec: &AppStackSpec,
        creds: &StoreCredentials,
        host: &str,
    ) -> Vec<(&'static str, String)> {
        let password = stores::userinfo(&creds.password);
        vec![("url", format!("redis://:{password}@{host}:{PORT}/0"))]
    }

    fn container(&self, ctx: &StackRef, stack: &AppStack) -> Container {
        let secret = self.secret_name(&ctx.name);
        Container {
            name: self.part().into(),
            image: Some(self.image(&stack.spec)),
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
            ports: store::port(self.part(), PORT),
            readiness_probe: store::ready_when("redis-cli ping | grep -q PONG"),
            liveness_probe: store::alive_on(PORT, 15),
            volume_mounts: Some(vec![store::data_mount("/data")]),
            resources: stack.spec.redis.as_ref().and_then(|r| r.resources.clone()),
            security_context: Some(security::container()),
            ..Container::default()
        }
    }

    fn credentials_script(&self) -> &'static str {
        CREDENTIALS
    }

    fn client_env(&self) -> &'static [(&'static str, &'static str)] {
        &[
            ("REDIS_URL", "url"),
            ("REDIS_HOST", "host"),
            ("REDIS_PORT", "port"),
            ("REDIS_PASSWORD", "password"),
        ]
    }

    fn wait_script(&self) -> (&'static str, &'static [(&'static str, &'static str)]) {
        (
            "until redis-cli -h \"$REDIS_HOST\" -p \"$REDIS_PORT\" ping 2>/dev/null | grep -q PONG; do echo waiting for redis at $REDIS_HOST; sleep 1; done",
            &[
                ("REDIS_HOST", "host"),
                ("REDIS_PORT", "port"),
                ("REDISCLI_AUTH", "password"),
            ],
        )
    }
}
