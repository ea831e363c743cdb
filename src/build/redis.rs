//! Redis: append-only file on the volume, password required, TLS only
//! (unless the stack turns TLS off).

use k8s_openapi::api::core::v1::Container;

use super::meta::StackRef;
use super::stores::{self, Engine};
use super::{BuildError, StoreCredentials, security, store, tls, wiring};
use crate::api::{AppStack, AppStackSpec, StorageSpec, StoreKind};

pub const PORT: i32 = 6379;
pub const DEFAULT_IMAGE: &str = "redis:7.4";

/// Redis takes both users from the Secrets at every start (the `default`
/// user is the administrator, the apps' ACL user may run every data command
/// but none of `@admin` or `@dangerous`), so they differ from the Secrets
/// only when someone changed them inside Redis (CONFIG SET requirepass, ACL
/// SETUSER). The credentials container checks both every few seconds and,
/// when Redis refuses one, exits with the reason as its termination message
/// (Degraded CredentialsOutOfSync on the stack). A Redis that is down or
/// loading is not a credentials problem. When the server certificate in the
/// mounted Secret changes (the operator renewed it), it has Redis load it.
const CREDENTIALS: &str = r#"refused() { case "$1" in *NOAUTH*|*WRONGPASS*|*NOPERM*) return 0 ;; esac; return 1; }
cli() { redis-cli ${REDIS_TLS_CA_FILE:+--tls --cacert $REDIS_TLS_CA_FILE} -h 127.0.0.1 -p 6379 "$@" 2>&1; }
cert=/etc/appstack/tls/tls.crt
served=$(cksum < $cert 2>/dev/null)
while :; do
  now=$(cksum < $cert 2>/dev/null)
  if [ "$now" != "$served" ] && out=$(cli config set tls-cert-file $cert) && [ "$out" = OK ]; then
    served=$now
    echo "loaded the renewed server certificate"
  fi
  out=$(cli ping)
  refused "$out" && fail "Redis refuses the administrator's password of Secret $APPSTACK_SECRET-admin ($(printf '%s' "$out" | head -n 1)): it was changed inside Redis (CONFIG SET requirepass or ACL). Delete pod $HOSTNAME to restart Redis with the Secrets' credentials"
  out=$(REDISCLI_AUTH="$APP_PASSWORD" cli --user "$APP_USER" ping)
  refused "$out" && fail "Redis refuses the apps' user $APP_USER of Secret $APPSTACK_SECRET ($(printf '%s' "$out" | head -n 1)): it was changed inside Redis (ACL SETUSER or DELUSER). Delete pod $HOSTNAME to restart Redis with the Secrets' credentials"
  sleep 10 & wait $!
done"#;

/// What the apps' ACL user may do: every key and channel, every command
/// but the administrative and dangerous ones (CONFIG, FLUSHALL, FLUSHDB,
/// DEBUG, SHUTDOWN, KEYS, ACL, ...).
const APP_RULES: [&str; 6] = ["on", "~*", "&*", "+@all", "-@admin", "-@dangerous"];

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
        "app"
    }
    fn admin_user(&self) -> &'static str {
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

    /// The backup user may only take a snapshot (redis-cli --rdb sends
    /// REPLCONF, then SYNC; with REPLCONF allowed the transfer is diskless):
    /// no key, no channel, no other command.
    fn backup_user_args(&self) -> Vec<String> {
        [
            "--user",
            "$(BACKUP_USER)",
            "on",
            ">$(BACKUP_PASSWORD)",
            "resetkeys",
            "resetchannels",
            "-@all",
            "+sync",
            "+replconf",
        ]
        .map(String::from)
        .to_vec()
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
        tls: bool,
    ) -> Vec<(&'static str, String)> {
        let user = stores::userinfo(&creds.username);
        let password = stores::userinfo(&creds.password);
        let scheme = if tls { "rediss" } else { "redis" };
        let mut entries = vec![(
            "url",
            format!("{scheme}://{user}:{password}@{host}:{PORT}/0"),
        )];
        if tls {
            entries.push(("ca_file", tls::CA_FILE.to_string()));
        }
        entries
    }

    fn container(&self, ctx: &StackRef, stack: &AppStack, tls: bool) -> Container {
        let secret = self.secret_name(&ctx.name);
        let admin = self.admin_secret_name(&ctx.name);
        let mut args: Vec<String> = [
            "--appendonly",
            "yes",
            "--appendfsync",
            "everysec",
            "--requirepass",
            "$(REDIS_PASSWORD)",
            "--user",
            "$(APP_USER)",
            ">$(APP_PASSWORD)",
        ]
        .map(String::from)
        .to_vec();
        args.extend(APP_RULES.map(String::from));
        args.extend(["--dir", "/data"].map(String::from));
        if tls {
            // Clients authenticate with their password, not a certificate.
            args.extend(
                [
                    "--port",
                    "0",
                    "--tls-port",
                    "6379",
                    "--tls-cert-file",
                    tls::CERT_FILE,
                    "--tls-key-file",
                    tls::KEY_FILE,
                    "--tls-ca-cert-file",
                    tls::CA_FILE,
                    "--tls-auth-clients",
                    "no",
                ]
                .map(String::from),
            );
        } else {
            args.extend(["--port", "6379"].map(String::from));
        }
        let mut env = vec![
            wiring::secret_env("REDIS_PASSWORD", &admin, "password"),
            // redis-cli reads it, so probes need no password on the command line.
            wiring::secret_env("REDISCLI_AUTH", &admin, "password"),
            wiring::secret_env("APP_USER", &secret, "username"),
            wiring::secret_env("APP_PASSWORD", &secret, "password"),
        ];
        if tls {
            env.push(wiring::plain_env("REDIS_TLS_CA_FILE", tls::CA_FILE));
        }
        Container {
            name: self.part().into(),
            image: Some(self.image(&stack.spec)),
            // The kubelet expands $(VAR) from the env below, so the passwords
            // live only in the Secrets; the ACL is rebuilt at every start.
            args: Some(args),
            env: Some(env),
            ports: store::port(self.part(), PORT),
            readiness_probe: store::ready_when(
                "redis-cli ${REDIS_TLS_CA_FILE:+--tls --cacert $REDIS_TLS_CA_FILE} ping | grep -q PONG",
            ),
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

    fn client_env(&self, tls: bool) -> Vec<(&'static str, &'static str)> {
        let mut env = vec![
            ("REDIS_URL", "url"),
            ("REDIS_USERNAME", "username"),
            ("REDIS_HOST", "host"),
            ("REDIS_PORT", "port"),
            ("REDIS_PASSWORD", "password"),
        ];
        if tls {
            env.push(("REDIS_TLS_CA_FILE", "ca_file"));
        }
        env
    }

    fn wait_script(&self, tls: bool) -> (&'static str, Vec<(&'static str, &'static str)>) {
        let mut vars = vec![
            ("REDIS_USERNAME", "username"),
            ("REDIS_HOST", "host"),
            ("REDIS_PORT", "port"),
            ("REDISCLI_AUTH", "password"),
        ];
        if tls {
            vars.push(("REDIS_TLS_CA_FILE", "ca_file"));
        }
        (
            "until redis-cli ${REDIS_TLS_CA_FILE:+--tls --cacert $REDIS_TLS_CA_FILE} --user \"$REDIS_USERNAME\" -h \"$REDIS_HOST\" -p \"$REDIS_PORT\" ping 2>/dev/null | grep -q PONG; do echo waiting for redis at $REDIS_HOST to accept $REDIS_USERNAME; sleep 1; done",
            vars,
        )
    }
}
