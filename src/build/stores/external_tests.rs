//! Each engine's reading of an external store's Secret: by fields, by url,
//! with a CA, and what it refuses (naming the Secret and the key).

use std::collections::BTreeMap;

use super::by_kind;
use crate::api::StoreKind;
use crate::build::external::UserSecret;

fn entries(kind: StoreKind, data: &[(&str, &str)]) -> Result<BTreeMap<String, String>, String> {
    let user = UserSecret {
        name: "conn".into(),
        data: data
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    by_kind(kind)
        .unwrap()
        .external_connection(&user)
        .map(|e| e.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
        .map_err(|e| e.to_string())
}

#[test]
fn postgres_by_fields_by_url_and_with_a_ca() {
    let e = entries(
        StoreKind::Postgres,
        &[
            ("host", "db.example"),
            ("username", "shop"),
            ("password", "p@ss word"),
            ("database", "shop"),
        ],
    )
    .unwrap();
    assert_eq!(e["port"], "5432");
    assert_eq!(e["sslmode"], "prefer");
    assert_eq!(
        e["url"],
        "postgresql://shop:p%40ss%20word@db.example:5432/shop?sslmode=prefer"
    );
    assert!(!e.contains_key("sslrootcert"));

    // Fields win over the url's parts; the url's sslmode is kept.
    let e = entries(
        StoreKind::Postgres,
        &[
            (
                "url",
                "postgres://app:old@db.example:6543/shop?sslmode=require",
            ),
            ("password", "new"),
        ],
    )
    .unwrap();
    assert_eq!(
        (
            e["username"].as_str(),
            e["password"].as_str(),
            e["port"].as_str()
        ),
        ("app", "new", "6543")
    );
    assert_eq!(e["sslmode"], "require");

    // A CA: verify-full against the CA mounted at the store's own path.
    let e = entries(
        StoreKind::Postgres,
        &[("url", "postgresql://a:b@db/x"), ("ca.crt", "PEM")],
    )
    .unwrap();
    assert_eq!(e["sslmode"], "verify-full");
    assert_eq!(e["sslrootcert"], "/etc/appstack/external/postgres/ca.crt");
    assert_eq!(e["ca.crt"], "PEM");
    assert!(
        e["url"]
            .ends_with("?sslmode=verify-full&sslrootcert=/etc/appstack/external/postgres/ca.crt")
    );

    // `tls` without a CA: at least require.
    let e = entries(
        StoreKind::Postgres,
        &[("url", "postgresql://a:b@db/x"), ("tls", "true")],
    )
    .unwrap();
    assert_eq!(e["sslmode"], "require");
}

#[test]
fn redis_by_fields_by_url_and_with_a_ca() {
    let e = entries(StoreKind::Redis, &[("host", "cache"), ("password", "pw")]).unwrap();
    assert_eq!(e["username"], "default");
    assert_eq!(e["url"], "redis://default:pw@cache:6379/0");
    assert!(!e.contains_key("ca_file"));

    let e = entries(
        StoreKind::Redis,
        &[
            ("url", "rediss://app:pw@cache.example:6380/2"),
            ("ca.crt", "PEM"),
        ],
    )
    .unwrap();
    assert_eq!(e["url"], "rediss://app:pw@cache.example:6380/2");
    assert_eq!(e["ca_file"], "/etc/appstack/external/redis/ca.crt");
}

#[test]
fn what_no_client_could_use_is_refused_naming_secret_and_key() {
    type Case<'a> = (StoreKind, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 8] = [
        (StoreKind::Postgres, &[], "key `host` is missing"),
        (
            StoreKind::Postgres,
            &[("host", "h"), ("username", "u"), ("database", "d")],
            "key `password` is missing",
        ),
        (
            StoreKind::Postgres,
            &[("url", "postgresql://u:p@h/d"), ("sslmode", "verify-ca")],
            "needs key `ca.crt`",
        ),
        (
            StoreKind::Postgres,
            &[("url", "postgresql://u:p@h/d"), ("sslmode", "sometimes")],
            "sslmode \"sometimes\"",
        ),
        (
            StoreKind::Postgres,
            &[("url", "mysql://u:p@h/d")],
            "scheme \"mysql\"",
        ),
        (
            StoreKind::Redis,
            &[("host", "h")],
            "key `password` is missing",
        ),
        (
            StoreKind::Redis,
            &[("url", "rediss://u:p@h")],
            "TLS (rediss:// or tls) needs key `ca.crt`",
        ),
        (
            StoreKind::Redis,
            &[("host", "h/evil"), ("password", "p")],
            "is not a host name",
        ),
    ];
    for (kind, data, expected) in cases {
        let err = entries(kind, data).unwrap_err();
        let part = by_kind(kind).unwrap().part();
        assert!(
            err.starts_with(&format!("spec.{part}.external.secretName: Secret conn: ")),
            "{err}"
        );
        assert!(err.contains(expected), "{expected}: {err}");
    }
}
