//! Redis with replicas (`spec.redis.replicas` > 0): 1 + replicas pods of
//! one StatefulSet, Redis Sentinel beside Redis in each, and the operator
//! labelling the master (the client Service selects
//! `appstack.dev/role: master`, see reconcile::redis_roles).
//!
//! - Redis starts as a replica of the master the other pods' Sentinels
//!   report; a pod the Sentinels still take for the master has them
//!   promote a replica first, so a master that restarts comes back as a
//!   replica (scripts/redis-server.sh). A fresh store starts with its first
//!   pod as the master (the StatefulSet starts its pods in order).
//! - Replicas authenticate to the master as the user `replication` (PSYNC,
//!   REPLCONF and PING only), whose password the users init container
//!   derives from the administrator's (scripts/redis-users.sh): it changes
//!   with it, rolls with it and is never stored.
//! - Sentinel (scripts/redis-sentinel.sh) runs in every pod, quorum a
//!   majority of the pods, announcing the pod's DNS name through the
//!   headless Service, with TLS when the store has it; the administrator
//!   authenticates to it, the apps' user may only ask where the master is.
//! - Clients that speak Sentinel get `<stack>-redis-sentinel` in
//!   REDIS_SENTINEL_URL and the master's name in REDIS_SENTINEL_MASTER.

use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvVar, Service, ServicePort, ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::api::{AppStack, AppStackSpec};
use crate::build::meta::StackRef;
use crate::build::{env, labels, names, pod, scripts, security, tls};

pub const SENTINEL_PORT: i32 = 26379;
pub const REDIS_PORT: i32 = super::redis::PORT;
/// The Sentinel container's and its port's name.
pub const SENTINEL: &str = "sentinel";
/// Sentinel's configuration, which it rewrites as it learns (a memory volume).
const SENTINEL_DIR: &str = "/var/run/appstack/sentinel";
/// The file through which a replica authenticates to the master, written
/// by the users init container beside the ACL file.
const REPLICATION_CONF: &str = "/var/run/appstack/users/replication.conf";
/// A replica further behind than this does not count for minReplicasToWrite.
const MAX_LAG_SECONDS: &str = "10";

/// The replicas the spec asks for (0: a single Redis, as without the field).
pub fn replicas(spec: &AppStackSpec) -> i32 {
    spec.redis.as_ref().map_or(0, |r| r.replicas())
}

/// Sentinel's name of the master: the StatefulSet's.
pub fn master_name(stack: &str) -> String {
    names::store(stack, "redis")
}

/// Sentinels that must agree the master is down: a majority of the pods.
pub fn quorum(spec: &AppStackSpec) -> i32 {
    (replicas(spec) + 1) / 2 + 1
}

/// The Redis container of a store with replicas: started by
/// scripts/redis-server.sh (which picks master or replica), with what
/// replication needs.
pub fn server(ctx: &StackRef, spec: &AppStackSpec, tls: bool, container: &mut Container) {
    let mut args = container.args.take().unwrap_or_default();
    // The image's entrypoint is not run: Debian's binary needs it said.
    args.extend(["--protected-mode", "no"].map(String::from));
    if tls {
        args.extend(["--tls-replication", "yes"].map(String::from));
    }
    let min = spec
        .redis
        .as_ref()
        .and_then(|r| r.min_replicas_to_write)
        .unwrap_or(0);
    if min > 0 {
        args.extend([
            "--min-replicas-to-write".to_string(),
            min.to_string(),
            "--min-replicas-max-lag".to_string(),
            MAX_LAG_SECONDS.to_string(),
        ]);
    }
    container.command = Some(vec![
        "sh".into(),
        "-c".into(),
        scripts::with_lib(&format!(
            "{}{}",
            scripts::REDIS_PEERS,
            scripts::REDIS_SERVER
        )),
        "redis-server".into(),
    ]);
    container.args = Some(args);
    container
        .env
        .get_or_insert_with(Vec::new)
        .extend(peer_env(ctx, spec));
}

/// What the scripts need to find the other pods and Sentinel.
fn peer_env(ctx: &StackRef, spec: &AppStackSpec) -> Vec<EnvVar> {
    let set = names::store(&ctx.name, "redis");
    vec![
        env::plain_env("APPSTACK_SET", &set),
        env::plain_env("APPSTACK_PEERS", &(replicas(spec) + 1).to_string()),
        env::plain_env("APPSTACK_PEER_DOMAIN", &peer_domain(ctx)),
        env::plain_env("APPSTACK_SENTINEL_PORT", &SENTINEL_PORT.to_string()),
        env::plain_env("APPSTACK_MASTER_NAME", &master_name(&ctx.name)),
        env::plain_env("APPSTACK_REPLICATION_CONF", REPLICATION_CONF),
    ]
}

/// `<headless>.<namespace>.svc`: the pods' names are `<pod>.` before it.
pub fn peer_domain(ctx: &StackRef) -> String {
    format!(
        "{}.{}.svc",
        names::headless(&names::store(&ctx.name, "redis")),
        ctx.namespace
    )
}

/// The Sentinel container and its configuration's volume.
pub fn sentinel(ctx: &StackRef, stack: &AppStack, tls: bool) -> (Container, Volume) {
    let secret = names::store(&ctx.name, "redis");
    let admin = format!("{secret}-admin");
    let mut env = vec![
        env::secret_env("REDISCLI_AUTH", &admin, "password"),
        env::secret_env("APP_USER", &secret, "username"),
        env::secret_env("APP_PASSWORD", &secret, "password"),
        env::plain_env("APPSTACK_SECRET", &secret),
        env::plain_env(scripts::PORT, &super::redis::PORT.to_string()),
        env::plain_env("APPSTACK_SENTINEL_DIR", SENTINEL_DIR),
        env::plain_env("APPSTACK_QUORUM", &quorum(&stack.spec).to_string()),
    ];
    env.extend(peer_env(ctx, &stack.spec));
    let mut mounts = vec![VolumeMount {
        name: SENTINEL.into(),
        mount_path: SENTINEL_DIR.into(),
        ..VolumeMount::default()
    }];
    if tls {
        env.push(env::plain_env("REDIS_TLS_CA_FILE", tls::CA_FILE));
        env.push(env::plain_env(scripts::TLS_CERT, tls::CERT_FILE));
        env.push(env::plain_env("APPSTACK_TLS_KEY", tls::KEY_FILE));
        mounts.push(tls::mount());
    }
    let container = Container {
        name: SENTINEL.into(),
        image: Some(super::redis::image_of(&stack.spec)),
        command: Some(vec![
            "sh".into(),
            "-c".into(),
            scripts::with_lib(&format!(
                "{}{}",
                scripts::REDIS_PEERS,
                scripts::REDIS_SENTINEL
            )),
        ]),
        env: Some(env),
        ports: pod::port(SENTINEL, SENTINEL_PORT),
        readiness_probe: pod::ready_when(
            "redis-cli ${REDIS_TLS_CA_FILE:+--tls --cacert \"$REDIS_TLS_CA_FILE\"} -p \"$APPSTACK_SENTINEL_PORT\" ping | grep -q PONG",
        ),
        liveness_probe: pod::alive_on(SENTINEL_PORT, 15),
        volume_mounts: Some(mounts),
        resources: Some(pod::sidecar_resources("16Mi", "64Mi")),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        security_context: Some(security::container()),
        ..Container::default()
    };
    let volume = Volume {
        name: SENTINEL.into(),
        empty_dir: Some(EmptyDirVolumeSource {
            medium: Some("Memory".into()),
            size_limit: Some(Quantity("1Mi".into())),
        }),
        ..Volume::default()
    };
    (container, volume)
}

/// `<stack>-redis-sentinel`: every pod's Sentinel, for clients that speak it.
pub fn sentinel_service(ctx: &StackRef) -> Service {
    Service {
        metadata: ctx.object_meta(
            sentinel_service_name(&ctx.name),
            "redis",
            labels::ROLE_STORE,
        ),
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(ctx.selector("redis")),
            ports: Some(vec![ServicePort {
                name: Some(SENTINEL.into()),
                port: SENTINEL_PORT,
                target_port: Some(IntOrString::String(SENTINEL.into())),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

pub fn sentinel_service_name(stack: &str) -> String {
    format!("{}-sentinel", names::store(stack, "redis"))
}

/// Every pod's name (the first pod's is in every certificate already) and
/// the Sentinel Service's.
pub fn server_names(ctx: &StackRef, spec: &AppStackSpec) -> Vec<String> {
    let domain = peer_domain(ctx);
    let set = names::store(&ctx.name, "redis");
    let service = sentinel_service_name(&ctx.name);
    let ns = &ctx.namespace;
    (1..=replicas(spec))
        .map(|i| format!("{set}-{i}.{domain}"))
        .chain([
            format!("{service}.{ns}.svc"),
            format!("{service}.{ns}"),
            service.clone(),
        ])
        .collect()
}

/// The Secret's Sentinel entries: its URL (the apps' user and password,
/// which Sentinel takes) and the master's name.
pub fn connection(
    ctx: &StackRef,
    user: &str,
    password: &str,
    tls: bool,
) -> Vec<(&'static str, String)> {
    let scheme = if tls { "rediss" } else { "redis" };
    let host = format!("{}.{}.svc", sentinel_service_name(&ctx.name), ctx.namespace);
    vec![
        (
            "sentinel_url",
            format!("{scheme}://{user}:{password}@{host}:{SENTINEL_PORT}"),
        ),
        ("sentinel_master", master_name(&ctx.name)),
    ]
}
