//! Rotation without failed requests: a store whose apps' user takes several
//! passwords (Redis' ACL users) keeps the passwords the apps had until every
//! pod that uses the store runs on the new one.
//!
//! The operator keeps, in a Secret of its own (`<stack>-<part>-passwords`,
//! mounted only into the store pod's credentials container), the SHA-256 of
//! every password the apps' user must accept, the current one first. When a
//! user edits the apps' Secret, the new password's hash is put first and the
//! ones before stay; the apps roll; once the reconciler sees every workload
//! that uses the store rolled ([`Inputs::rolled`]), only the current hash
//! is left. The store's credentials container sets the user's passwords to
//! exactly those hashes, live, so the store does not restart. Only hashes
//! are kept: never a password in status, Events, arguments or this Secret.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::core::v1::{SecretVolumeSource, Volume, VolumeMount};
use sha2::{Digest, Sha256};

use kube::ResourceExt;

use super::engine::Engine;
use super::inputs::Inputs;
use super::meta::StackRef;
use super::{labels, migration, names, scheduled, stores, wiring};
use crate::api::{AppStack, Component};

/// The key holding the apps' user's hashes (hex, space-separated, the
/// current one first).
pub const KEY: &str = "app";
/// Where the credentials container finds the hashes.
pub const DIR: &str = "/etc/appstack/passwords";
/// The environment variable naming the file, for the script.
pub const FILE_ENV: &str = "APPSTACK_APP_HASHES";
/// The environment variable naming the directory of the apps' roles'
/// files (`owner`, `login`, `password`, `retire`), for the script.
pub const LOGINS_ENV: &str = "APPSTACK_LOGINS";
/// The volume's name in the store pod.
pub const VOLUME: &str = "passwords";
/// Most passwords the apps' user accepts at once: the current one and the
/// ones of rotations whose rollouts have not ended (a user who rotates
/// again and again during one rollout keeps the oldest out).
pub const MAX_KEPT: usize = 4;

/// `<stack>-<part>-passwords`.
pub fn secret_name(stack: &str, engine: &dyn Engine) -> String {
    format!("{}-passwords", engine.secret_name(stack))
}

/// SHA-256 of a password, as hex (what Redis' ACL `#<hash>` takes).
pub fn digest(password: &str) -> String {
    hex::encode(Sha256::digest(password.as_bytes()))
}

/// The hashes the apps' user accepts: the current password's first; while
/// the apps have not all rolled to it, also the ones accepted until now
/// (most recent first, at most [`MAX_KEPT`] in all); once they have, that
/// one only.
pub fn accepted(current: &str, before: &[String], rolled: bool) -> Vec<String> {
    let mut out = vec![current.to_string()];
    if !rolled {
        for h in before {
            if out.len() >= MAX_KEPT {
                break;
            }
            if !out.contains(h) && is_hash(h) {
                out.push(h.clone());
            }
        }
    }
    out
}

/// A SHA-256 as hex: anything else read back from the Secret is dropped.
pub fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The hashes of the Secret's value, in order.
pub fn parse(value: &str) -> Vec<String> {
    value
        .split_ascii_whitespace()
        .filter(|h| is_hash(h))
        .map(|h| h.to_ascii_lowercase())
        .collect()
}

pub fn secret(ctx: &StackRef, engine: &dyn Engine, hashes: &[String]) -> Secret {
    Secret {
        metadata: ctx.object_meta(
            secret_name(&ctx.name, engine),
            engine.part(),
            labels::ROLE_STORE,
        ),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            KEY.to_string(),
            ByteString(hashes.join(" ").into_bytes()),
        )])),
        ..Secret::default()
    }
}

/// The Secret as a volume: optional, so a pod made before the Secret
/// exists starts (its credentials container then keeps the user as the
/// users file made it).
pub fn volume(ctx: &StackRef, engine: &dyn Engine) -> Volume {
    Volume {
        name: VOLUME.into(),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret_name(&ctx.name, engine)),
            default_mode: Some(0o440),
            optional: Some(true),
            ..SecretVolumeSource::default()
        }),
        ..Volume::default()
    }
}

pub fn mount() -> VolumeMount {
    VolumeMount {
        name: VOLUME.into(),
        mount_path: DIR.into(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}

/// PostgreSQL's roles for the apps, as the operator's passwords Secret
/// holds them: a role has one password, so the apps alternate between two
/// login roles, members of one NOLOGIN owner role that owns the stack's
/// database and objects (each login role runs `SET role` to it, so what
/// the apps create belongs to the owner too). A rotation gives the new
/// password to the login role the apps do not use, the apps' Secret names
/// it, the apps roll onto it, and once they all have, the other login role
/// is retired (NOLOGIN, no password).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Logins {
    pub owner: String,
    /// The login role the apps use now (the apps' Secret's `username`).
    pub login: String,
    /// Its password (the apps' Secret's `password`).
    pub password: String,
    /// The other login role, once no pod uses it any more.
    pub retire: Option<String>,
}

/// The other login role of a pair: `<name>_b` and `<name>`.
pub fn other(login: &str) -> String {
    match login.strip_suffix("_b") {
        Some(base) if !base.is_empty() => base.to_string(),
        _ => format!("{login}_b"),
    }
}

/// The apps' roles, from the apps' Secret (`username`, `password`), what
/// the operator's Secret held (`before`) and whether every pod that uses
/// the store runs on the current credentials.
/// - First time (a new store, or one made before the owner role): the
///   Secret's user is the login role and `<user>_owner` the owner (an
///   existing role that owns everything hands it to the owner).
/// - The password changed: the other login role of the pair takes it.
/// - A user name outside the pair: the user chose a new login role.
pub fn logins(username: &str, password: &str, before: Option<&Logins>, rolled: bool) -> Logins {
    let (owner, login) = match before {
        None => (
            format!("{}_owner", username.strip_suffix("_b").unwrap_or(username)),
            username.to_string(),
        ),
        Some(b) => {
            let in_pair = username == b.login || username == other(&b.login);
            let login = if !in_pair {
                username.to_string()
            } else if password != b.password {
                other(&b.login)
            } else {
                b.login.clone()
            };
            (b.owner.clone(), login)
        }
    };
    let retire = rolled.then(|| other(&login));
    Logins {
        owner,
        login,
        password: password.to_string(),
        retire,
    }
}

/// The operator's Secret of the apps' roles: one key per field.
pub fn logins_secret(ctx: &StackRef, engine: &dyn Engine, l: &Logins) -> Secret {
    Secret {
        metadata: ctx.object_meta(
            secret_name(&ctx.name, engine),
            engine.part(),
            labels::ROLE_STORE,
        ),
        type_: Some("Opaque".into()),
        data: Some(logins_data(l)),
        ..Secret::default()
    }
}

fn logins_data(l: &Logins) -> BTreeMap<String, ByteString> {
    [
        ("owner", l.owner.clone()),
        ("login", l.login.clone()),
        ("password", l.password.clone()),
        ("retire", l.retire.clone().unwrap_or_default()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), ByteString(v.into_bytes())))
    .collect()
}

/// The apps' roles read back from the operator's Secret, when whole.
pub fn parse_logins(data: &BTreeMap<String, ByteString>) -> Option<Logins> {
    let get = |k: &str| {
        data.get(k)
            .map(|v| String::from_utf8_lossy(&v.0).into_owned())
    };
    let owner = get("owner").filter(|v| !v.is_empty())?;
    let login = get("login").filter(|v| !v.is_empty())?;
    let password = get("password").filter(|v| !v.is_empty())?;
    Some(Logins {
        owner,
        login,
        password,
        retire: get("retire").filter(|v| !v.is_empty()),
    })
}

/// The workloads whose pods use a store, by child name: what must have
/// rolled before the store stops accepting the apps' old passwords.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Users {
    /// Each Deployment with the credentials hash its pod template carries
    /// once it runs on the current credentials.
    pub deployments: Vec<(String, String)>,
    /// The migration Jobs of those components (their pods read the
    /// password when they start).
    pub jobs: Vec<String>,
    /// The scheduled jobs' CronJobs that use the store.
    pub cron_jobs: Vec<String>,
}

/// The pod template annotation that carries the credentials hash.
pub const HASH_ANNOTATION: &str = wiring::CREDENTIALS_HASH;

pub fn users(stack: &AppStack, engine: &dyn Engine, inputs: &Inputs) -> Users {
    let name = stack.name_any();
    let uses = |c: &Component| stores::used_by(&stack.spec, c).any(|e| e.kind() == engine.kind());
    let mut out = Users::default();
    for c in stack.spec.components.iter().filter(|c| uses(c)) {
        out.deployments.push((
            names::component(&name, &c.name),
            wiring::credentials_hash(stack, c, inputs),
        ));
        if let Some(m) = &c.migrate {
            out.jobs
                .push(migration::job_name(&name, &c.name, &migration::hash(c, m)));
        }
    }
    for (index, j) in stack.spec.jobs.iter().enumerate() {
        if scheduled::as_component(index, j).is_ok_and(|c| uses(&c)) {
            out.cron_jobs.push(names::component(&name, &j.name));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(c: char) -> String {
        c.to_string().repeat(64)
    }

    #[test]
    fn old_hashes_stay_until_the_apps_rolled() {
        let (new, old, older) = (h('a'), h('b'), h('c'));
        for (before, rolled, expected) in [
            // A fresh store, or one made before this Secret: the current only.
            (vec![], false, vec![new.clone()]),
            (vec![], true, vec![new.clone()]),
            // Nothing rotated: the same, rolled or not.
            (vec![new.clone()], false, vec![new.clone()]),
            // Rotated: the old one stays while pods still hold it...
            (vec![old.clone()], false, vec![new.clone(), old.clone()]),
            // ... and goes once every pod rolled.
            (vec![old.clone()], true, vec![new.clone()]),
            // The next reconciles of the same rollout keep both, in order.
            (
                vec![new.clone(), old.clone()],
                false,
                vec![new.clone(), old.clone()],
            ),
            // Rotated again mid-rollout: all three, newest first.
            (
                vec![old.clone(), older.clone()],
                false,
                vec![new.clone(), old.clone(), older.clone()],
            ),
            // Rotated back to an older password: no duplicate.
            (
                vec![old.clone(), new.clone()],
                false,
                vec![new.clone(), old.clone()],
            ),
            // Garbage in the Secret is dropped.
            (
                vec!["x".into(), old.clone()],
                false,
                vec![new.clone(), old.clone()],
            ),
        ] {
            assert_eq!(
                accepted(&new, &before, rolled),
                expected,
                "{before:?} {rolled}"
            );
        }
        let many: Vec<String> = "bcdefg".chars().map(h).collect();
        assert_eq!(accepted(&new, &many, false).len(), MAX_KEPT);
    }

    #[test]
    fn logins_alternate_at_each_rotation_and_retire_once_rolled() {
        let l = |owner: &str, login: &str, pw: &str, retire: Option<&str>| Logins {
            owner: owner.into(),
            login: login.into(),
            password: pw.into(),
            retire: retire.map(String::from),
        };
        let first = logins("app", "p1", None, false);
        assert_eq!(first, l("app_owner", "app", "p1", None));
        let settled = l("app_owner", "app", "p1", Some("app_b"));
        for (user, pw, before, rolled, expected, why) in [
            (
                "app",
                "p1",
                None,
                true,
                settled.clone(),
                "upgrade or new, rolled",
            ),
            (
                "app",
                "p1",
                Some(&first),
                true,
                settled.clone(),
                "rolled: the other retires",
            ),
            (
                "app",
                "p2",
                Some(&settled),
                false,
                l("app_owner", "app_b", "p2", None),
                "rotated: the other login",
            ),
            // The operator's write of `username` lags: the pair still says app.
            (
                "app",
                "p2",
                Some(&l("app_owner", "app_b", "p2", None)),
                false,
                l("app_owner", "app_b", "p2", None),
                "Secret not rewritten yet",
            ),
            (
                "app_b",
                "p2",
                Some(&l("app_owner", "app_b", "p2", None)),
                true,
                l("app_owner", "app_b", "p2", Some("app")),
                "rolled onto app_b",
            ),
            (
                "app_b",
                "p3",
                Some(&l("app_owner", "app_b", "p2", Some("app"))),
                false,
                l("app_owner", "app", "p3", None),
                "rotated back",
            ),
            (
                "shop",
                "p1",
                Some(&settled),
                false,
                l("app_owner", "shop", "p1", None),
                "a name of the user's: same owner",
            ),
            (
                "shop_b",
                "p1",
                None,
                false,
                l("shop_owner", "shop_b", "p1", None),
                "first time on a _b name",
            ),
        ] {
            assert_eq!(logins(user, pw, before, rolled), expected, "{why}");
        }
        assert_eq!(other("app"), "app_b");
        assert_eq!(other("app_b"), "app");
        assert_eq!(other("_b"), "_b_b");
        assert_eq!(parse_logins(&logins_data(&settled)), Some(settled));
    }

    /// Kubernetes turns `$$` in a container's command into `$`: a
    /// dollar-quoted PL/pgSQL body must use a tag (`$do$`).
    #[test]
    fn no_store_script_has_what_kubernetes_rewrites() {
        for script in [
            super::super::scripts::PG_CREDENTIALS,
            super::super::scripts::REDIS_CREDENTIALS,
        ] {
            assert!(!script.contains("$$"), "$$ in a store script");
        }
    }

    #[test]
    fn parse_reads_what_secret_writes() {
        assert_eq!(
            parse(&format!(" {} {}\n", h('a'), h('B'))),
            vec![h('a'), h('b')]
        );
        assert_eq!(parse("not-a-hash"), Vec::<String>::new());
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(is_hash(&digest("")));
    }
}
