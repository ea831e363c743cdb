//! What the child set reports instead of stopping: one [`Finding`] per child
//! that could not be made what the spec says, and how a refusal reads.

use super::kind::ChildKind;
use crate::error::brief;

/// What kept one child from being what the spec says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Finding {
    /// Its name is held by an object this stack does not control.
    Conflict {
        kind: &'static str,
        name: String,
        holder: String,
    },
    /// The API server forbids this change to an existing object in place.
    Rejected {
        kind: &'static str,
        name: String,
        message: String,
    },
    /// The API server refused the request, or could not be reached.
    Refused {
        kind: &'static str,
        name: String,
        message: String,
    },
    /// Not applied: it changed after this reconcile read it (the apply named
    /// the version read). The change brings another reconcile.
    Outdated { kind: &'static str, name: String },
    /// Not applied: it is wired to children whose names are someone else's,
    /// and would send its credentials or traffic there.
    Blocked {
        kind: &'static str,
        name: String,
        on: Vec<String>,
    },
    /// Runs pods that its NetworkPolicy (of the same name) guards, and that
    /// policy does not exist: the API server refused it, or its name is
    /// someone else's. Not applied; see [`Guard`] for what runs meanwhile.
    Unguarded {
        kind: &'static str,
        name: String,
        guard: Guard,
    },
}

/// What an unguarded workload does while its NetworkPolicy is missing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Guard {
    /// It does not exist, and is not created.
    NotCreated,
    /// It existed and was scaled to 0 (a store: no store pod runs open to
    /// every namespace).
    Stopped,
    /// It exists and keeps running as it was, unchanged (a component or a
    /// backup schedule: stopping it would be an outage nobody asked for).
    Held,
}

impl Finding {
    pub fn name(&self) -> &str {
        match self {
            Finding::Conflict { name, .. }
            | Finding::Rejected { name, .. }
            | Finding::Refused { name, .. }
            | Finding::Outdated { name, .. }
            | Finding::Blocked { name, .. }
            | Finding::Unguarded { name, .. } => name,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Finding::Conflict { kind, .. }
            | Finding::Rejected { kind, .. }
            | Finding::Refused { kind, .. }
            | Finding::Outdated { kind, .. }
            | Finding::Blocked { kind, .. }
            | Finding::Unguarded { kind, .. } => kind,
        }
    }
}

pub(super) fn refused<K: ChildKind>(name: &str, message: String) -> Finding {
    Finding::Refused {
        kind: K::KIND,
        name: name.to_string(),
        message,
    }
}

/// A refused apply: a change Kubernetes forbids on an existing object (with
/// the kind's advice), or any other refusal in the API server's own words.
pub(super) fn classify<K: ChildKind>(name: &str, error: &kube::Error, existed: bool) -> Finding {
    match error {
        kube::Error::Api(s) if s.code == 422 && existed && forbids_in_place(&s.message) => {
            let advice = K::in_place_advice(name)
                .map(|a| format!(". {a}"))
                .unwrap_or_default();
            Finding::Rejected {
                kind: K::KIND,
                name: name.to_string(),
                message: format!("{}{advice}", brief(error)),
            }
        }
        // Only an apply that names a resourceVersion meets this (the
        // operator's applies force ownership).
        kube::Error::Api(s) if s.code == 409 => Finding::Outdated {
            kind: K::KIND,
            name: name.to_string(),
        },
        _ => refused::<K>(name, brief(error)),
    }
}

/// The API server's words for a field that cannot change once set.
fn forbids_in_place(message: &str) -> bool {
    message.contains("field is immutable") || message.contains("Forbidden: updates to")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_immutable_fields_read_as_a_forbidden_change() {
        assert!(forbids_in_place(
            "StatefulSet.apps \"s-postgres\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas' are forbidden"
        ));
        assert!(forbids_in_place(
            "Deployment.apps \"s-web\" is invalid: spec.selector: Invalid value: ...: field is immutable"
        ));
        assert!(!forbids_in_place(
            "StatefulSet.apps \"s-postgres\" is invalid: spec.volumeClaimTemplates[0].spec.storageClassName: Invalid value: \"Bad\""
        ));
    }
}
