//! Backups in S3: the target and source buckets, their endpoints and key
//! prefixes, and the backup agent's containers that move files there.

use k8s_openapi::api::core::v1::{Container, EnvVar, SecurityContext, VolumeMount};

use crate::api::{AppStackSpec, S3Spec};
use crate::build::engine::Engine;
use crate::build::error::BuildError;
use crate::build::meta::StackRef;
use crate::build::{env, security};

/// The S3 target of a store's backups, when it has one.
pub fn s3_target<'a>(spec: &'a AppStackSpec, engine: &dyn Engine) -> Option<&'a S3Spec> {
    engine.backup(spec)?.target.as_ref()?.s3.as_ref()
}

/// The bucket a store restores from, when its restore reads S3.
pub(super) fn s3_source(spec: &AppStackSpec) -> Option<&S3Spec> {
    spec.restore.as_ref()?.s3.as_ref()
}

/// The S3 endpoints a store's pod talks to (its log's copy, its restore).
pub fn store_endpoints<'a>(spec: &'a AppStackSpec, engine: &dyn Engine) -> Vec<&'a str> {
    let copies_log = engine.log_archiving().is_some();
    s3_target(spec, engine)
        .filter(|_| copies_log)
        .into_iter()
        .chain(s3_source(spec))
        .map(|s| s.endpoint.as_str())
        .collect()
}

/// The TCP port of an S3 endpoint (http(s)://host[:port], the host a name,
/// an IPv4 address or an IPv6 address in brackets), or why it has none: an
/// endpoint stored before admission refused it must not put a port the API
/// server refuses into a NetworkPolicy.
pub fn endpoint_port(endpoint: &str) -> Result<i32, &'static str> {
    let (default, authority) = match endpoint.strip_prefix("https://") {
        Some(rest) => (443, rest),
        None => (
            80,
            endpoint
                .strip_prefix("http://")
                .ok_or("must begin with http:// or https://")?,
        ),
    };
    let port = match authority.strip_prefix('[') {
        Some(v6) => {
            let (_, after) = v6.split_once(']').ok_or("an IPv6 address needs its ']'")?;
            match after {
                "" => None,
                _ => Some(after.strip_prefix(':').ok_or("only :port may follow ']'")?),
            }
        }
        None => authority.split_once(':').map(|(_, port)| port),
    };
    let Some(port) = port else {
        return Ok(default);
    };
    if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the port must be a number from 1 to 65535");
    }
    match port.parse::<i32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n),
        _ => Err("the port must be a number from 1 to 65535"),
    }
}

/// Where a store's backups are in the bucket: always under the stack's
/// namespace, so that keys shared by several namespaces do not let a stack
/// read, overwrite or prune another namespace's backups:
/// `<namespace>/<stack>/<store>/`, or `<namespace>/<prefix>/<stack>/<store>/`
/// with a prefix (admission refuses `.` and `..` segments in it, and the
/// agent refuses them again).
pub fn s3_key_prefix(namespace: &str, prefix: Option<&str>, stack: &str, store: &str) -> String {
    match prefix {
        Some(p) => format!("{namespace}/{p}/{stack}/{store}/"),
        None => format!("{namespace}/{stack}/{store}/"),
    }
}

/// The field of a store's S3 target, `spec.<store>.backup.target.s3`.
pub(super) fn s3_field(engine: &dyn Engine) -> String {
    format!("spec.{}.backup.target.s3", engine.part())
}

pub(super) fn prefix_field(engine: &dyn Engine) -> String {
    format!("{}.prefix", s3_field(engine))
}

pub(super) fn s3_env(
    ctx: &StackRef,
    s3: &S3Spec,
    stack: &str,
    engine: &dyn Engine,
    field: &str,
) -> Result<Vec<EnvVar>, BuildError> {
    // Admission refuses these; a stack stored before that rule is refused here.
    if let Some(p) = &s3.prefix
        && let Some(why) = crate::backup_agent::unsafe_path(p)
    {
        return Err(BuildError::S3Prefix {
            field: field.to_string(),
            prefix: p.clone(),
            why,
        });
    }
    let prefix = s3_key_prefix(&ctx.namespace, s3.prefix.as_deref(), stack, engine.part());
    Ok(vec![
        env::plain_env("S3_ENDPOINT", &s3.endpoint),
        env::plain_env("S3_BUCKET", &s3.bucket),
        env::plain_env("S3_REGION", s3.region.as_deref().unwrap_or("us-east-1")),
        env::plain_env("S3_PREFIX", &prefix),
        env::secret_env("AWS_ACCESS_KEY_ID", &s3.secret_name, "AWS_ACCESS_KEY_ID"),
        env::secret_env(
            "AWS_SECRET_ACCESS_KEY",
            &s3.secret_name,
            "AWS_SECRET_ACCESS_KEY",
        ),
        // Temporary credentials (STS) and the endpoint's CA, when the
        // Secret holds them.
        env::optional_secret_env("AWS_SESSION_TOKEN", &s3.secret_name, "AWS_SESSION_TOKEN"),
        env::optional_secret_env("S3_CA_PEM", &s3.secret_name, "ca.crt"),
    ])
}

/// A container of the backup agent (the operator's binary), as the store's
/// user so that what it writes the store's tools can read.
pub(super) fn agent_container(
    name: &str,
    image: &str,
    args: Vec<String>,
    env: Vec<EnvVar>,
    mounts: Vec<VolumeMount>,
) -> Container {
    Container {
        name: name.into(),
        image: Some(image.into()),
        args: Some(args),
        env: Some(env),
        volume_mounts: Some(mounts),
        termination_message_policy: Some("FallbackToLogsOnError".into()),
        resources: Some(crate::build::pod::sidecar_resources("32Mi", "256Mi")),
        security_context: Some(SecurityContext {
            run_as_user: Some(security::STORE_UID),
            run_as_group: Some(security::STORE_UID),
            ..security::container()
        }),
        ..Container::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_begin_with_the_namespace() {
        // The default is what it always was: existing backups stay found.
        assert_eq!(
            s3_key_prefix("team-a", None, "shop", "postgres"),
            "team-a/shop/postgres/"
        );
        // A prefix goes inside the namespace, whatever it names.
        assert_eq!(
            s3_key_prefix("team-a", Some("team-b"), "shop", "redis"),
            "team-a/team-b/shop/redis/"
        );
    }
}
