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

/// A script the store's image runs with `sh -c`: the library, then it.
pub fn with_lib(script: &str) -> String {
    format!("{LIB}{script}")
}

/// Every script, by file name, for the tests (and what `make lint` checks).
#[cfg(test)]
pub(crate) const ALL: [(&str, &str); 12] = [
    ("lib.sh", LIB),
    (
        "pg-credentials.sh",
        include_str!("scripts/pg-credentials.sh"),
    ),
    ("pg-wait.sh", include_str!("scripts/pg-wait.sh")),
    (
        "redis-credentials.sh",
        include_str!("scripts/redis-credentials.sh"),
    ),
    ("redis-users.sh", include_str!("scripts/redis-users.sh")),
    ("redis-wait.sh", include_str!("scripts/redis-wait.sh")),
    (
        "pg-archive-wal.sh",
        include_str!("backup/pg-archive-wal.sh"),
    ),
    (
        "pg-base-backup.sh",
        include_str!("backup/pg-base-backup.sh"),
    ),
    (
        "pg-restore-wal.sh",
        include_str!("backup/pg-restore-wal.sh"),
    ),
    ("pg-restore.sh", include_str!("backup/pg-restore.sh")),
    ("redis-restore.sh", include_str!("backup/redis-restore.sh")),
    (
        "redis-snapshot.sh",
        include_str!("backup/redis-snapshot.sh"),
    ),
];

#[cfg(test)]
mod tests;
