//! The stores behind one abstraction: what an engine (Redis, PostgreSQL)
//! must say for the builders to give it a Secret, Services, a StatefulSet,
//! status and the wiring of the components that use it. A third engine (or
//! a store brought by the user) is one more implementation of [`Engine`].

use k8s_openapi::api::core::v1::Container;

use super::meta::StackRef;
use super::{BuildError, StoreCredentials, names, postgres, redis};
use crate::api::{AppStack, AppStackSpec, StorageSpec, StoreKind};

pub trait Engine: Sync {
    fn kind(&self) -> StoreKind;
    /// The store's part of child names and its `app.kubernetes.io/name`.
    fn part(&self) -> &'static str;
    fn port(&self) -> i32;
    /// The apps' user a generated Secret names: never the administrator.
    fn user(&self) -> &'static str;
    /// The store's administrator (its admin Secret's user).
    fn admin_user(&self) -> &'static str;
    /// The apps' user name to use for the one an existing Secret holds:
    /// never the administrator. Redis apps of stacks made before the apps'
    /// ACL user used `default`, the administrator now; they move to
    /// [`Engine::user`] with their password.
    fn app_user(&self, found: &str) -> String {
        if found == self.admin_user() {
            self.user().to_string()
        } else {
            found.to_string()
        }
    }
    /// PVC size when the spec gives none.
    fn default_size(&self) -> &'static str;
    fn image(&self, spec: &AppStackSpec) -> String;
    fn storage<'a>(&self, spec: &'a AppStackSpec) -> Option<&'a StorageSpec>;

    /// The spec's own checks for this store (fields name themselves).
    fn validate(&self, ctx: &StackRef, spec: &AppStackSpec) -> Result<(), BuildError>;
    /// Secret entries beyond username, password, host and port, such as
    /// `url`; `host` is the client Service's DNS name.
    fn connection(
        &self,
        ctx: &StackRef,
        spec: &AppStackSpec,
        creds: &StoreCredentials,
        host: &str,
        tls: bool,
    ) -> Vec<(&'static str, String)>;
    /// The store's own container (its data and TLS volumes are mounted by
    /// the caller), with both Secrets' credentials in its environment; with
    /// `tls`, serving only TLS to the network from the files in tls::DIR.
    fn container(&self, ctx: &StackRef, stack: &AppStack, tls: bool) -> Container;
    /// The script of an init container (after the scripts' library, which
    /// defines `fail`) that writes the server's users, passwords included, into
    /// `store::USERS_DIR`, a memory volume the store container mounts
    /// read-only: for a server that would otherwise take them from its
    /// command line. It runs with the store container's environment, which
    /// has BACKUP_USER and BACKUP_PASSWORD when the store is backed up.
    fn users_script(&self) -> Option<&'static str> {
        None
    }
    /// Files the store's TLS Secret carries besides the certificates.
    fn tls_files(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
    /// The script of the store pod's credentials container (after the scripts'
    /// library, which defines `fail`), run by the store's image with the store
    /// container's environment: it keeps the server's credentials in line
    /// with the Secrets where it can, and calls `fail` with what is wrong
    /// where it cannot.
    fn credentials_script(&self) -> &'static str;
    /// A directory (the server's unix socket) the store container shares
    /// with its credentials container.
    fn socket_dir(&self) -> Option<&'static str> {
        None
    }
    /// Environment variables a component that uses the store gets, and the
    /// Secret key each comes from.
    fn client_env(&self, tls: bool) -> Vec<(&'static str, &'static str)>;
    /// The init container's script that waits until the store answers, and
    /// the variables (from the Secret) it needs.
    fn wait_script(&self, tls: bool) -> (&'static str, Vec<(&'static str, &'static str)>);

    /// Name of the store's Secret, Services (client and headless) and
    /// StatefulSet: `<stack>-<part>`.
    fn secret_name(&self, stack: &str) -> String {
        names::store(stack, self.part())
    }

    /// Name of the administrator's Secret: `<stack>-<part>-admin`.
    fn admin_secret_name(&self, stack: &str) -> String {
        format!("{}-admin", self.secret_name(stack))
    }
}

/// Every engine, in the order their children are built.
pub static ENGINES: [&dyn Engine; 2] = [&redis::Redis, &postgres::Postgres];

/// The stores this stack runs.
pub fn of(spec: &AppStackSpec) -> impl Iterator<Item = &'static dyn Engine> + '_ {
    ENGINES.iter().copied().filter(|e| spec.has_store(e.kind()))
}

/// The stores `component` is wired to.
pub fn used_by<'a>(
    spec: &'a AppStackSpec,
    component: &'a crate::api::Component,
) -> impl Iterator<Item = &'static dyn Engine> + 'a {
    of(spec).filter(|e| component.uses(spec, e.kind()))
}

/// A user name or password as the user-info part of a URL: everything but
/// RFC 3986's unreserved characters percent-encoded, so that a rotated
/// password such as `p@ss:w/rd#1%` (or one ending in a newline) still gives a
/// URL that clients parse back to the same password.
pub fn userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_characters_are_percent_encoded() {
        assert_eq!(userinfo("p@ss:w/rd#1%x"), "p%40ss%3Aw%2Frd%231%25x");
        assert_eq!(userinfo("pw\n"), "pw%0A");
        assert_eq!(userinfo("h\u{e9}"), "h%C3%A9");
        let hex = "0123456789abcdef";
        assert_eq!(
            userinfo(hex),
            hex,
            "generated passwords are left as they are"
        );
    }
}
