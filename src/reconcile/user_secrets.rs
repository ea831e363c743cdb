//! Secrets the user owns: an external store's connection
//! (`spec.<store>.external.secretName`) and an in-cluster store's
//! credentials (`spec.<store>.existingSecret`). The operator reads them
//! with a GET in the stack's own namespace (a name, never a namespace),
//! keeps only the keys it knows, and never writes to them.
//!
//! A tenant could name a Secret the operator made for another stack of
//! the namespace (its administrator's password, its CA's key) to have it
//! copied into a Secret of this stack: such Secrets are refused, as are
//! service-account tokens. What remains is a Secret the tenant could read
//! anyway.
//!
//! A change is seen at once when the Secret carries [`WATCH_LABEL`] (a
//! metadata-only watch of Secrets with that label wakes the stacks that
//! name it); otherwise the stack looks again every minute.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::Resource;
use kube::api::Api;

use crate::api::AppStack;
use crate::build::external::{self, UserSecret, WATCH_LABEL};
use crate::build::labels;
use crate::error::{Error, Result};

/// A user's Secret as found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// Its known keys, and whether it carries [`WATCH_LABEL`].
    Read(UserSecret, bool),
    /// No Secret of that name in the namespace.
    Missing,
    /// A Secret this operator must not read for a user (said why).
    Refused(String),
}

/// Reads the user's Secret `name` of the stack's namespace.
pub async fn read(api: &Api<Secret>, name: &str) -> Result<Found> {
    let secret = api.get_opt(name).await.map_err(|source| Error::Read {
        kind: "Secret",
        name: name.to_string(),
        source,
    })?;
    Ok(match secret {
        None => Found::Missing,
        Some(secret) => classify(name, &secret),
    })
}

/// What a Secret read is good for (pure, for the tests).
pub fn classify(name: &str, secret: &Secret) -> Found {
    let meta = &secret.metadata;
    let ours =
        meta.labels
            .as_ref()
            .and_then(|l| l.get(labels::MANAGED_BY_KEY))
            .is_some_and(|v| v == labels::MANAGED_BY)
            || meta.owner_references.iter().flatten().any(|r| {
                r.kind == AppStack::kind(&()) && r.api_version.starts_with("appstack.dev/")
            });
    if ours {
        return Found::Refused(format!(
            "Secret {name} is one the operator made for a stack; name a Secret you own"
        ));
    }
    if secret.type_.as_deref() == Some("kubernetes.io/service-account-token") {
        return Found::Refused(format!(
            "Secret {name} is a service account token, not a store's connection"
        ));
    }
    let data: BTreeMap<String, String> = secret
        .data
        .iter()
        .flatten()
        .filter(|(k, _)| external::KEYS.contains(&k.as_str()))
        .filter(|(_, v)| v.0.len() <= external::MAX_VALUE)
        .filter_map(|(k, v)| Some((k.clone(), String::from_utf8(v.0.clone()).ok()?)))
        .collect();
    let labelled = meta
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(WATCH_LABEL));
    Found::Read(
        UserSecret {
            name: name.to_string(),
            data,
        },
        labelled,
    )
}

/// Why a Secret cannot serve `field`, for status.
pub fn problem(field: &str, name: &str, found: &Found) -> Option<String> {
    match found {
        Found::Read(..) => None,
        Found::Missing => Some(format!(
            "{field}: Secret {name} does not exist in this namespace; the components wait until it does"
        )),
        Found::Refused(why) => Some(format!("{field}: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn secret(labels: &[(&str, &str)], data: &[(&str, &str)]) -> Secret {
        Secret {
            metadata: ObjectMeta {
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Secret::default()
        }
    }

    #[test]
    fn only_known_keys_are_kept_and_the_label_is_noticed() {
        let s = secret(
            &[(WATCH_LABEL, "true")],
            &[("password", "pw"), ("host", "db"), ("other", "x")],
        );
        let Found::Read(user, labelled) = classify("db", &s) else {
            panic!("refused");
        };
        assert!(labelled);
        assert_eq!(user.data.keys().collect::<Vec<_>>(), ["host", "password"]);
        let Found::Read(_, labelled) = classify("db", &secret(&[], &[])) else {
            panic!("refused");
        };
        assert!(!labelled);
    }

    #[test]
    fn the_operators_own_secrets_and_tokens_are_refused() {
        let managed = secret(&[(labels::MANAGED_BY_KEY, labels::MANAGED_BY)], &[]);
        assert!(
            matches!(classify("other-postgres-admin", &managed), Found::Refused(m) if m.contains("other-postgres-admin"))
        );
        let mut owned = secret(&[], &[]);
        owned.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "appstack.dev/v1alpha1".into(),
            kind: "AppStack".into(),
            name: "other".into(),
            uid: "u".into(),
            ..OwnerReference::default()
        }]);
        assert!(matches!(classify("x", &owned), Found::Refused(_)));
        let mut token = secret(&[], &[]);
        token.type_ = Some("kubernetes.io/service-account-token".into());
        assert!(matches!(classify("t", &token), Found::Refused(_)));
    }
}
