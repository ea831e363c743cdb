//! Environment variables of the pods, and values that go into them.

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};

pub fn secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// A variable from a Secret's key that may be absent (the variable is then
/// unset).
pub fn optional_secret_env(name: &str, secret: &str, key: &str) -> EnvVar {
    let mut env = secret_env(name, secret, key);
    if let Some(selector) = env
        .value_from
        .as_mut()
        .and_then(|v| v.secret_key_ref.as_mut())
    {
        selector.optional = Some(true);
    }
    env
}

pub fn plain_env(name: &str, value: &str) -> EnvVar {
    EnvVar {
        name: name.into(),
        value: Some(value.into()),
        ..EnvVar::default()
    }
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
