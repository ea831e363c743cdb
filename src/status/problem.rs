//! What keeps a stack from converging, as status and Events say it.

use crate::redact::Known;

/// Something that keeps the stack from converging, found while reconciling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    /// The spec cannot be realised; nothing was applied.
    InvalidSpec(String),
    /// The API server refused a change to a child (e.g. a StatefulSet's
    /// volumeClaimTemplates, which cannot change in place).
    ChangeRejected(String),
    /// A child's name is held by an object this stack does not control:
    /// another stack's child (their names add up to the same name), or an
    /// object made outside AppStack.
    NameConflict(String),
    /// The reconcile failed (API errors, a child the API server refused as
    /// invalid); it is retried with backoff.
    ReconcileFailed(String),
    /// A store's server keeps failing (crash loop, image, scheduling); the
    /// message carries what its pod says.
    StoreFailing(String),
    /// A store refuses the credentials its Secret holds, so the apps cannot
    /// connect; the message says why and what to do.
    CredentialsOutOfSync(String),
    /// A NetworkPolicy the API server refused is missing, so what it guards
    /// is not applied (a store is stopped): the message names the policy,
    /// the refusal and what was held back.
    GuardRefused(String),
    /// A Secret the user owns (an external store's connection, a store's
    /// existingSecret) is missing, lacks a key or cannot be used: nothing
    /// is applied, so no component starts with broken wiring.
    UserSecret(String),
    /// A component's migration failed: its rollout waits (the old revision
    /// keeps serving); the message carries the Job and its last log lines.
    MigrationFailed(String),
}

impl Problem {
    pub fn reason(&self) -> &'static str {
        match self {
            Problem::InvalidSpec(_) => "InvalidSpec",
            Problem::ChangeRejected(_) => "ChangeRejected",
            Problem::NameConflict(_) => "NameConflict",
            Problem::ReconcileFailed(_) => "ReconcileFailed",
            Problem::StoreFailing(_) => "StoreFailing",
            Problem::CredentialsOutOfSync(_) => "CredentialsOutOfSync",
            Problem::GuardRefused(_) => "GuardRefused",
            Problem::UserSecret(_) => "UserSecretUnusable",
            Problem::MigrationFailed(_) => "MigrationFailed",
        }
    }

    /// The same problem with its message cut to what a condition holds.
    pub fn bounded(self) -> Self {
        self.map(|m| crate::error::cut(&m, crate::error::CONDITION_MESSAGE_MAX))
    }

    /// The same problem with the stack's passwords taken out of its message
    /// (before it is cut, or a cut could leave a piece unrecognised).
    pub fn redacted(self, known: &Known) -> Self {
        self.map(|m| known.redact(&m))
    }

    fn map(self, f: impl FnOnce(String) -> String) -> Self {
        match self {
            Problem::InvalidSpec(m) => Problem::InvalidSpec(f(m)),
            Problem::ChangeRejected(m) => Problem::ChangeRejected(f(m)),
            Problem::NameConflict(m) => Problem::NameConflict(f(m)),
            Problem::ReconcileFailed(m) => Problem::ReconcileFailed(f(m)),
            Problem::StoreFailing(m) => Problem::StoreFailing(f(m)),
            Problem::CredentialsOutOfSync(m) => Problem::CredentialsOutOfSync(f(m)),
            Problem::GuardRefused(m) => Problem::GuardRefused(f(m)),
            Problem::UserSecret(m) => Problem::UserSecret(f(m)),
            Problem::MigrationFailed(m) => Problem::MigrationFailed(f(m)),
        }
    }

    pub fn message(&self) -> &str {
        match self {
            Problem::InvalidSpec(m)
            | Problem::ChangeRejected(m)
            | Problem::NameConflict(m)
            | Problem::ReconcileFailed(m)
            | Problem::StoreFailing(m)
            | Problem::CredentialsOutOfSync(m)
            | Problem::GuardRefused(m)
            | Problem::UserSecret(m) => m,
            Problem::MigrationFailed(m) => m,
        }
    }
}
