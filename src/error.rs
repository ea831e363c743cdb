//! The operator's errors: what stops a whole reconcile. Each variant names
//! the step that failed and the object it failed on; the variant's name is
//! the `error` label of the `appstack_reconcile_errors_total` metric. What
//! goes wrong with one child is not an error but a finding (see
//! `reconcile::children`), reported in status while the others converge.

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("AppStack has no namespace (is the CRD namespaced?)")]
    MissingNamespace,

    #[error("reading {kind} {name}: {}", brief(source))]
    Read {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },

    #[error(
        "Secret {name} exists but has no usable `{key}` key (missing, empty, not UTF-8 or longer than 4096 bytes); delete it to have a new one generated, or set the key"
    )]
    MalformedSecret { name: String, key: &'static str },

    #[error("creating Secret {name}: {}", brief(source))]
    CreateSecret {
        name: String,
        #[source]
        source: kube::Error,
    },

    #[error("TLS: {step}: {message}")]
    Tls { step: &'static str, message: String },

    #[error("generating a password: {0}")]
    Random(#[from] getrandom::Error),

    #[error("updating status: {}", brief(.0))]
    Status(#[source] kube::Error),
}

impl Error {
    /// A short, stable name for metrics labels and log fields.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::MissingNamespace => "MissingNamespace",
            Error::Read { .. } => "Read",
            Error::MalformedSecret { .. } => "MalformedSecret",
            Error::CreateSecret { .. } => "CreateSecret",
            Error::Tls { .. } => "Tls",
            Error::Random(_) => "Random",
            Error::Status(_) => "Status",
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

/// Longest Event note the API server takes.
pub const EVENT_NOTE_MAX: usize = 1024;
/// Longest condition message we write (metav1 allows 32768).
pub const CONDITION_MESSAGE_MAX: usize = 4096;

/// `s` cut to at most `max` bytes on a character boundary, marked with '…'.
pub fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_short_text_and_never_splits_a_character() {
        assert_eq!(cut("short", 10), "short");
        let long = "é".repeat(100);
        let c = cut(&long, 11);
        assert!(c.len() <= 11, "{c}");
        assert!(c.ends_with('…'));
    }
}
