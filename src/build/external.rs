//! Stores the operator does not run (`spec.<store>.external`): the user's
//! Secret as the reconciler read it, the pieces of a connection URL, and
//! where the components find the server's CA. Each engine turns the
//! Secret into its own connection entries (`Engine::external_connection`);
//! the operator writes those into a Secret of its own, never into the
//! user's.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{KeyToPath, SecretVolumeSource, Volume, VolumeMount};

use super::error::BuildError;

/// The label a user puts on their Secret so that its changes wake the
/// stacks that use it at once (a metadata-only watch selects by it).
pub const WATCH_LABEL: &str = "appstack.dev/store-secret";

/// The user's Secret key (and ours) that holds the server's CA, PEM.
pub const CA_KEY: &str = "ca.crt";

/// Keys read from a user's Secret (an external store's, an
/// existingSecret's); every other key is ignored (never kept past the GET,
/// never copied).
pub const KEYS: &[&str] = &[
    "admin-password",
    "url",
    "host",
    "port",
    "username",
    "password",
    "database",
    "sslmode",
    "tls",
    CA_KEY,
];

/// Longest value read from a user's Secret (a CA bundle may be long).
pub const MAX_VALUE: usize = 64 * 1024;

/// A Secret the user owns, as read: its name and the keys of [`KEYS`] it
/// has (UTF-8, at most [`MAX_VALUE`] bytes each).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserSecret {
    pub name: String,
    pub data: BTreeMap<String, String>,
}

impl UserSecret {
    /// The Secret's `url`, parsed (empty without one): the parts a key of
    /// the same name does not give.
    pub fn url(&self, part: &str, schemes: &[&str]) -> Result<Url, BuildError> {
        self.get("url")
            .map(|u| parse_url(u, schemes))
            .transpose()
            .map_err(|m| problem(part, &self.name, m))
            .map(Option::unwrap_or_default)
    }

    /// `key`'s value, else the url's part.
    pub fn pick(&self, key: &str, from_url: &Option<String>) -> Option<String> {
        self.get(key)
            .map(str::to_string)
            .or_else(|| from_url.clone())
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.data
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }

    /// The CA, when the Secret has one.
    pub fn ca(&self) -> Option<&str> {
        self.get(CA_KEY)
    }

    /// `tls`: "true"/"yes"/"1"/"on" (any case) asks for TLS.
    pub fn tls(&self) -> bool {
        self.get("tls").is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "true" | "yes" | "1" | "on"
            )
        })
    }
}

/// What is wrong with a user's Secret, naming the spec field, the Secret
/// and the key.
pub fn problem(part: &str, secret: &str, message: impl Into<String>) -> BuildError {
    BuildError::UserSecret {
        field: format!("spec.{part}.external.secretName"),
        secret: secret.to_string(),
        message: message.into(),
    }
}

/// The parts of a `scheme://user:password@host:port/path?query` URL,
/// user-info percent-decoded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Url {
    pub scheme: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub host: Option<String>,
    pub port: Option<String>,
    pub path: Option<String>,
    pub query: Vec<(String, String)>,
}

impl Url {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Parses a connection URL whose scheme is one of `schemes`.
pub fn parse_url(url: &str, schemes: &[&str]) -> Result<Url, String> {
    let url = url.trim();
    let (scheme, rest) = url.split_once("://").ok_or_else(|| {
        format!(
            "url: no scheme (expected {})",
            schemes.join("://, ") + "://"
        )
    })?;
    let scheme = scheme.to_ascii_lowercase();
    if !schemes.contains(&scheme.as_str()) {
        return Err(format!(
            "url: scheme {scheme:?} is not one of {}",
            schemes.join(", ")
        ));
    }
    let (rest, query) = match rest.split_once('?') {
        Some((r, q)) => (r, Some(q)),
        None => (rest, None),
    };
    let (authority, path) = match rest.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (rest, None),
    };
    // The last '@': a password may hold an unencoded one.
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| "url: user-info is not UTF-8 once decoded".to_string())
    };
    let (username, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((n, p)) => (Some(decode(n)?), Some(decode(p)?)),
            None => (Some(decode(u)?), None),
        },
        None => (None, None),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or("url: an IPv6 host lacks its ']'")?;
        (
            format!("[{h}]"),
            after.strip_prefix(':').map(str::to_string),
        )
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p.to_string())),
            None => (hostport.to_string(), None),
        }
    };
    let query = query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect();
    Ok(Url {
        scheme,
        username: username.filter(|u| !u.is_empty()),
        password: password.filter(|p| !p.is_empty()),
        host: Some(host).filter(|h| !h.is_empty()),
        port: port.filter(|p| !p.is_empty()),
        path: path.map(str::to_string).filter(|p| !p.is_empty()),
        query,
    })
}

/// The password in a URL's user-info, as written (percent-encoded or
/// not): what status must not quote.
pub fn url_password(url: &str) -> Option<&str> {
    let (_, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    userinfo
        .split_once(':')
        .map(|(_, p)| p)
        .filter(|p| !p.is_empty())
}

/// A host name or address a client may be given: no space, no character
/// that would end the URL's authority.
pub fn check_host(host: &str) -> Result<(), String> {
    let ok = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '[' | ']'));
    if ok {
        Ok(())
    } else {
        Err(format!("host {host:?} is not a host name or address"))
    }
}

/// A TCP port, 1-65535.
pub fn check_port(port: &str) -> Result<String, String> {
    match port.trim().parse::<u16>() {
        Ok(p) if p > 0 => Ok(p.to_string()),
        _ => Err(format!("port {port:?} is not a TCP port (1-65535)")),
    }
}

/// Where the components find an external store's CA: a directory of its
/// own per store, so two external stores (or one beside the stack's own
/// CA) never share a path.
pub fn ca_dir(part: &str) -> String {
    format!("/etc/appstack/external/{part}")
}

pub fn ca_file(part: &str) -> String {
    format!("{}/{CA_KEY}", ca_dir(part))
}

fn volume_name(part: &str) -> String {
    format!("appstack-{part}-ca")
}

/// The CA from the operator's own Secret of the store (`secret`); optional,
/// so a store without a CA mounts an empty directory.
pub fn ca_volume(part: &str, secret: &str) -> Volume {
    Volume {
        name: volume_name(part),
        secret: Some(SecretVolumeSource {
            secret_name: Some(secret.to_string()),
            items: Some(vec![KeyToPath {
                key: CA_KEY.into(),
                path: CA_KEY.into(),
                ..KeyToPath::default()
            }]),
            default_mode: Some(0o444),
            optional: Some(true),
        }),
        ..Volume::default()
    }
}

pub fn ca_mount(part: &str) -> VolumeMount {
    VolumeMount {
        name: volume_name(part),
        mount_path: ca_dir(part),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_come_apart_with_their_user_info_decoded() {
        let u = parse_url(
            "postgresql://app:p%40ss%3Aw%2Frd@db.example.com:6543/shop?sslmode=require",
            &["postgres", "postgresql"],
        )
        .unwrap();
        assert_eq!(u.username.as_deref(), Some("app"));
        assert_eq!(u.password.as_deref(), Some("p@ss:w/rd"));
        assert_eq!(u.host.as_deref(), Some("db.example.com"));
        assert_eq!(u.port.as_deref(), Some("6543"));
        assert_eq!(u.path.as_deref(), Some("shop"));
        assert_eq!(u.param("sslmode"), Some("require"));

        let r = parse_url("rediss://:pw@[::1]/2", &["redis", "rediss"]).unwrap();
        assert_eq!(r.username, None);
        assert_eq!(r.password.as_deref(), Some("pw"));
        assert_eq!(r.host.as_deref(), Some("[::1]"));
        assert_eq!(r.port, None);
        assert_eq!(r.path.as_deref(), Some("2"));

        assert!(parse_url("mysql://x", &["redis"]).is_err());
        assert_eq!(url_password("redis://u:p%40w@h:1/0"), Some("p%40w"));
        assert_eq!(url_password("redis://h:1/0"), None);
        assert!(parse_url("no-scheme", &["redis"]).is_err());
    }

    #[test]
    fn hosts_and_ports_that_would_break_a_url_are_refused() {
        assert!(check_host("shop-postgres.team-y.svc").is_ok());
        assert!(check_host("a b").is_err());
        assert!(check_host("a/b").is_err());
        assert!(check_host("a@b").is_err());
        assert_eq!(check_port(" 5432 ").unwrap(), "5432");
        assert!(check_port("0").is_err());
        assert!(check_port("70000").is_err());
    }
}
