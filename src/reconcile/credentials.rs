//! Store credentials: read from the stack's Secrets, generated exactly once.
//!
//! Each store has two Secrets: the apps' and its administrator's. They are
//! read from the API server at each reconcile (the watch keeps only their
//! metadata). A password is made from the OS CSPRNG only when its Secret
//! does not exist there, and the Secret is
//! then created in one request ([`create`], stamped by the apply phase as
//! the child set stamps its writes), which fails rather than overwrite one a
//! racing writer made. After that it is only ever read, so operator restarts
//! never change it; a user who edits the Secret rotates the credentials and
//! the pods that use them roll. A Secret of that name that this stack does
//! not control is never read into a store: the name is reported as taken.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams};

use super::ownership;
use crate::build::{FIELD_MANAGER, StoreCredentials};
use crate::error::{Error, Result};

/// Longest credential value read back.
pub const MAX_VALUE: usize = 4096;

/// Random bytes in a generated password (hex-encoded, so safe in URLs and SQL).
const PASSWORD_BYTES: usize = 32;

/// One store's credentials, as found.
#[derive(Debug, PartialEq, Eq)]
pub enum Resolved {
    /// Read from the stack's Secret, at this resourceVersion: the apply
    /// that writes the Secret back names it, so that an edit made meanwhile
    /// fails the apply (and is read next time) instead of being overwritten.
    Existing(StoreCredentials, Option<String>),
    /// Made just now: the Secret must be created before anything is applied.
    Generated(StoreCredentials),
    /// The Secret's name is held by an object this stack does not control
    /// (said how): no store may start on credentials that are not its own.
    Held(String),
}

pub async fn resolve(
    api: &Api<Secret>,
    uid: &str,
    name: &str,
    default_user: &str,
) -> Result<Resolved> {
    // Read from the API server: the watch caches hold no Secret's data, and
    // only this tells a Secret that does not exist from one the cache has
    // not seen yet (or one made outside AppStack).
    let secret = api.get_opt(name).await.map_err(|source| Error::Read {
        kind: "Secret",
        name: name.to_string(),
        source,
    })?;
    if let Some(holder) = secret
        .as_ref()
        .and_then(|s| ownership::foreign_holder(&s.metadata, uid))
    {
        return Ok(Resolved::Held(holder));
    }
    Ok(match secret {
        Some(secret) => Resolved::Existing(
            from_secret(&secret, name, default_user)?,
            secret.metadata.resource_version.clone(),
        ),
        None => Resolved::Generated(StoreCredentials {
            username: default_user.to_string(),
            password: generate_password()?,
        }),
    })
}

fn from_secret(secret: &Secret, name: &str, default_user: &str) -> Result<StoreCredentials> {
    let read = |key: &str| {
        secret
            .data
            .as_ref()
            .and_then(|d| d.get(key))
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .filter(|v| !v.is_empty())
    };
    let password = read("password")
        .filter(|p| p.len() <= MAX_VALUE)
        .ok_or_else(|| Error::MalformedSecret {
            name: name.to_string(),
            key: "password",
        })?;
    let username = read("username").unwrap_or_else(|| default_user.to_string());
    Ok(StoreCredentials { username, password })
}

pub fn generate_password() -> Result<String> {
    let mut bytes = [0u8; PASSWORD_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// What creating a generated Secret came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Created {
    /// Created, at this resourceVersion.
    Made(Option<String>),
    /// The name was taken meanwhile (409): by someone else, since this
    /// reconcile found nothing under it.
    Taken,
}

/// A resourceVersion no object has (the largest etcd revision, which a
/// cluster never reaches: each write adds one), named by a create so that
/// it never writes over anything.
const NO_OBJECT_HAS_THIS_VERSION: &str = "9223372036854775807";

/// Creates a freshly generated Secret whole, in one request, and never
/// overwrites an existing one. It is a Server-Side Apply under the
/// operator's field manager, like every later apply of the Secret (a POST
/// would leave its fields to an `Update` entry, and the first apply after a
/// restart would then write the Secret again to take them over). The apply
/// names a resourceVersion no object has: an existing Secret, whoever made
/// it, refuses it with 409; where there is none the API server creates it
/// (a create through apply keeps no version).
pub async fn create(api: &Api<Secret>, secret: &Secret) -> Result<Created> {
    let mut secret = secret.clone();
    secret.metadata.resource_version = Some(NO_OBJECT_HAS_THIS_VERSION.into());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let name = secret.metadata.name.clone().unwrap_or_default();
    match api.patch(&name, &params, &Patch::Apply(&secret)).await {
        Ok(made) => Ok(Created::Made(made.metadata.resource_version)),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Created::Taken),
        Err(source) => Err(Error::CreateSecret { name, source }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use std::collections::BTreeMap;

    #[test]
    fn passwords_are_long_hex_and_distinct() {
        let a = generate_password().unwrap();
        let b = generate_password().unwrap();
        assert_eq!(a.len(), PASSWORD_BYTES * 2);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn reads_existing_credentials_and_rejects_missing_password() {
        let mut data = BTreeMap::new();
        data.insert("password".to_string(), ByteString(b"s3cret".to_vec()));
        data.insert("username".to_string(), ByteString(b"shop".to_vec()));
        let secret = Secret {
            data: Some(data),
            ..Secret::default()
        };
        let creds = from_secret(&secret, "x", "app").unwrap();
        assert_eq!(creds.username, "shop");
        assert_eq!(creds.password, "s3cret");

        let empty = Secret::default();
        let err = from_secret(&empty, "x-redis", "default").unwrap_err();
        assert!(err.to_string().contains("`password`"), "{err}");
    }
}
