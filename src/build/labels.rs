//! The recommended labels (app.kubernetes.io/*) on every child.

use std::collections::BTreeMap;

pub const NAME: &str = "app.kubernetes.io/name";
pub const INSTANCE: &str = "app.kubernetes.io/instance";
pub const COMPONENT: &str = "app.kubernetes.io/component";
pub const PART_OF: &str = "app.kubernetes.io/part-of";
pub const MANAGED_BY_KEY: &str = "app.kubernetes.io/managed-by";
pub const MANAGED_BY: &str = "appstack-operator";

/// app.kubernetes.io/component of stateless components and of stores.
pub const ROLE_APP: &str = "app";
pub const ROLE_STORE: &str = "store";
/// ... and of what backs the stores up.
pub const ROLE_BACKUP: &str = "backup";
/// ... of a component's migration pods.
pub const ROLE_MIGRATE: &str = "migrate";
/// ... of the scheduled jobs.
pub const ROLE_JOB: &str = "job";

/// The label key the operator sets on a replicated store's pods: which one
/// takes writes (the store's client Service selects it) and which follow.
/// Set by the operator on the pods themselves, never in a pod template.
pub const STORE_ROLE: &str = "appstack.dev/role";
/// Values of [`STORE_ROLE`]: the writer of a PostgreSQL store, of a Redis
/// store, and every other pod of either.
pub const PRIMARY: &str = "primary";
pub const REDIS_MASTER: &str = "master";
pub const REPLICA: &str = "replica";

/// The label key on a backup volume naming its stack. The volume has no
/// `app.kubernetes.io/instance` label, so selecting the stack's volumes by
/// it (to delete them) leaves the backups.
pub const BACKUP_OF: &str = "appstack.dev/backup-of";

/// Every label key the operator sets on what it makes: all that its caches
/// keep of an object's labels (anyone may add thousands more).
pub const OWN: [&str; 6] = [
    NAME,
    INSTANCE,
    COMPONENT,
    PART_OF,
    MANAGED_BY_KEY,
    BACKUP_OF,
];

/// Label selector of everything the operator made (what its watches see).
pub fn managed_selector() -> String {
    format!("{MANAGED_BY_KEY}={MANAGED_BY}")
}

/// Label selector of everything the operator made for one stack.
pub fn stack_selector(stack: &str) -> String {
    format!("{MANAGED_BY_KEY}={MANAGED_BY},{INSTANCE}={stack}")
}

pub fn selector(stack: &str, part: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (NAME.to_string(), part.to_string()),
        (INSTANCE.to_string(), stack.to_string()),
    ])
}

pub(super) fn common(stack: &str, part: &str, role: &str) -> BTreeMap<String, String> {
    let mut labels = selector(stack, part);
    labels.insert(COMPONENT.to_string(), role.to_string());
    labels.insert(PART_OF.to_string(), "appstack".to_string());
    labels.insert(MANAGED_BY_KEY.to_string(), MANAGED_BY.to_string());
    labels
}
