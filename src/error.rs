//! The operator's errors. Each variant names the step that failed and the
//! object it failed on; the variant's name is the `error` label of the
//! `appstack_reconcile_errors_total` metric.

use crate::build::BuildError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("AppStack has no namespace (is the CRD namespaced?)")]
    MissingNamespace,

    #[error("spec is invalid: {0}")]
    InvalidSpec(#[from] BuildError),

    #[error("reading {kind} {name}: {}", brief(source))]
    Read {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },

    #[error(
        "Secret {name} exists but has no usable `{key}` key; delete it to have a new one generated, or add the key"
    )]
    MalformedSecret { name: String, key: &'static str },

    #[error("creating Secret {name}: {}", brief(source))]
    CreateSecret {
        name: String,
        #[source]
        source: kube::Error,
    },

    #[error("generating a password: {0}")]
    Random(#[from] getrandom::Error),

    #[error("applying {kind} {name}: {}", brief(source))]
    Apply {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },

    /// `holder` says who has the name ("belongs to AppStack shop", "was not
    /// created by AppStack, ...").
    #[error("{kind} {name} already exists and {holder}")]
    NameConflict {
        kind: &'static str,
        name: String,
        holder: String,
    },

    #[error("deleting {kind} {name}: {}", brief(source))]
    Prune {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },

    #[error("updating status: {}", brief(.0))]
    Status(#[source] kube::Error),

    #[error("serializing {0}: {1}")]
    Serialize(&'static str, #[source] serde_json::Error),
}

impl Error {
    /// A short, stable name for metrics labels and log fields.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::MissingNamespace => "MissingNamespace",
            Error::InvalidSpec(_) => "InvalidSpec",
            Error::Read { .. } => "Read",
            Error::MalformedSecret { .. } => "MalformedSecret",
            Error::CreateSecret { .. } => "CreateSecret",
            Error::Random(_) => "Random",
            Error::Apply { .. } => "Apply",
            Error::NameConflict { .. } => "NameConflict",
            Error::Prune { .. } => "Prune",
            Error::Status(_) => "Status",
            Error::Serialize(..) => "Serialize",
        }
    }
}

/// The API server's own message for API errors (what a user can act on),
/// without the debug dump of the whole Status.
pub fn brief(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
