//! The shell scripts the store images run, as files (src/build/scripts/
//! and src/build/backup/, linted by `make lint`), and the environment
//! variables through which the builders give them ports and paths from the
//! same constants the pod specs use: a script names no port or path of its
//! own.

/// The library every store-image script starts with (`fail`, `finish`,
/// `retry`, `labels`, `summary`, ...): put before the store pods' scripts
/// here, sourced from the scripts ConfigMap by the backup scripts.
pub const LIB: &str = include_str!("scripts/lib.sh");

/// The store's port, for scripts and probes in its pod.
pub const PORT: &str = "APPSTACK_PORT";
/// The server's unix socket directory (PostgreSQL).
pub const SOCKET_DIR: &str = "APPSTACK_SOCKET_DIR";
/// The server certificate the credentials container watches for renewal.
pub const TLS_CERT: &str = "APPSTACK_TLS_CERT";
/// The ACL file the users container writes (Redis).
pub const USERS_FILE: &str = "APPSTACK_USERS_FILE";
/// The store's directory on its backup volume.
pub const BACKUP_DIR: &str = "APPSTACK_BACKUP_DIR";
/// The store's directory on the restore source's volume.
pub const RESTORE_DIR: &str = "APPSTACK_RESTORE_DIR";
/// The store's data directory, where a restore writes (Redis).
pub const DATA_DIR: &str = "APPSTACK_DATA_DIR";

// Every script is included here, in one place, so that the builders name
// them by constant wherever they live.

/// The credentials container of a PostgreSQL pod (after the monitoring
/// role's function, which it calls).
pub const PG_CREDENTIALS: &str = concat!(
    include_str!("scripts/pg-monitor.sh"),
    include_str!("scripts/pg-credentials.sh")
);
/// The PostgreSQL container of a store with more than one instance: clones,
/// rewinds and starts the server as the operator's label says.
pub const PG_INSTANCE: &str = include_str!("scripts/pg-instance.sh");
/// The write Service's host name, for the instances' scripts.
pub const PRIMARY_HOST: &str = "APPSTACK_PRIMARY_HOST";
/// The pod's labels file (downward API).
pub const PODINFO: &str = "APPSTACK_PODINFO";
/// The CA the instances verify each other with.
pub const CA: &str = "APPSTACK_CA";
/// The init container of a component that waits for PostgreSQL (one line).
pub const PG_WAIT: &str = include_str!("scripts/pg-wait.sh").trim_ascii_end();
/// The credentials container of a Redis pod.
pub const REDIS_CREDENTIALS: &str = include_str!("scripts/redis-credentials.sh");
/// The users init container of a Redis pod (then the monitoring user's
/// line of its ACL file).
pub const REDIS_USERS: &str = concat!(
    include_str!("scripts/redis-users.sh"),
    include_str!("scripts/redis-monitor.sh")
);
/// The users init container of a Redis store with replicas: the users,
/// the monitoring user, then the replicas' own.
pub const REDIS_USERS_WITH_REPLICATION: &str = concat!(
    include_str!("scripts/redis-users.sh"),
    include_str!("scripts/redis-monitor.sh"),
    include_str!("scripts/redis-replication-user.sh")
);
/// What the Redis and Sentinel containers of a store with replicas share.
pub const REDIS_PEERS: &str = include_str!("scripts/redis-peers.sh");
/// The Redis container of a store with replicas (after REDIS_PEERS).
pub const REDIS_SERVER: &str = include_str!("scripts/redis-server.sh");
/// The Sentinel container of a store with replicas (after REDIS_PEERS).
pub const REDIS_SENTINEL: &str = include_str!("scripts/redis-sentinel.sh");
/// The init container of a component that waits for Redis (one line).
pub const REDIS_WAIT: &str = include_str!("scripts/redis-wait.sh").trim_ascii_end();

/// The library as the backup scripts ConfigMap holds it, under `lib`,
/// which they source from beside themselves.
pub const BACKUP_LIB: (&str, &str) = ("lib", LIB);
/// PostgreSQL's backup scripts, by their key in the ConfigMap (its
/// engine's `backup_scripts`).
pub const PG_BACKUP: [(&str, &str); 4] = [
    ("pg-archive-wal", include_str!("backup/pg-archive-wal.sh")),
    ("pg-restore-wal", include_str!("backup/pg-restore-wal.sh")),
    ("pg-base-backup", include_str!("backup/pg-base-backup.sh")),
    ("pg-restore", include_str!("backup/pg-restore.sh")),
];
/// Redis' backup scripts, by their key in the ConfigMap (its engine's
/// `backup_scripts`).
pub const REDIS_BACKUP: [(&str, &str); 2] = [
    ("redis-snapshot", include_str!("backup/redis-snapshot.sh")),
    ("redis-restore", include_str!("backup/redis-restore.sh")),
];

/// The backup scripts ConfigMap's content, for the tests: the library and
/// every engine's scripts (`backup::scripts` builds it from the engines; a
/// test checks they agree).
#[cfg(test)]
pub(crate) fn backup() -> Vec<(&'static str, &'static str)> {
    std::iter::once(BACKUP_LIB)
        .chain(PG_BACKUP)
        .chain(REDIS_BACKUP)
        .collect()
}

/// A script the store's image runs with `sh -c`: the library, then it.
pub fn with_lib(script: &str) -> String {
    format!("{LIB}{script}")
}

/// Every script, by file name, for the tests (`make lint` checks the same
/// files).
#[cfg(test)]
pub(crate) fn all() -> Vec<(String, &'static str)> {
    let own = [
        ("pg-credentials", PG_CREDENTIALS),
        ("pg-instance", PG_INSTANCE),
        ("pg-wait", PG_WAIT),
        ("redis-credentials", REDIS_CREDENTIALS),
        ("redis-users", REDIS_USERS),
        ("redis-wait", REDIS_WAIT),
        ("redis-peers", REDIS_PEERS),
        (
            "redis-replication-user",
            include_str!("scripts/redis-replication-user.sh"),
        ),
        ("redis-server", REDIS_SERVER),
        ("redis-sentinel", REDIS_SENTINEL),
        // Parts of the two above, listed for the check that every file is.
        ("pg-monitor", include_str!("scripts/pg-monitor.sh")),
        ("redis-monitor", include_str!("scripts/redis-monitor.sh")),
    ];
    backup()
        .into_iter()
        .chain(own)
        .map(|(name, text)| (format!("{name}.sh"), text))
        .collect()
}

#[cfg(test)]
mod tests;
