//! `kubectl appstack psql` and `redis-cli`: a client session into a stack's
//! store, run inside the store's pod (its image has the client) over the
//! pods/exec subresource, connecting the way the apps do, as the apps'
//! user (`--admin`: the administrator), over TLS verified with the stack's
//! CA, but to `localhost`: the stack's NetworkPolicy admits only its
//! components to the store's Service, not the store's own pod, and the
//! server's certificate names localhost too.
//!
//! The password never appears in a process's arguments: the remote shell
//! reads it from the session's stdin (octal-escaped, so any byte but NUL
//! survives a terminal's line discipline), exports it as the client's own
//! variable (PGPASSWORD, REDISCLI_AUTH) and execs the client; only then is
//! the caller's stdin forwarded. With a terminal, the remote echo is off
//! while it reads, and the shell prints a marker once it is, which the
//! plugin waits for before sending.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::{Pod, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::ResourceExt;
use kube::api::{Api, AttachParams, PostParams, TerminalSize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{PluginError, Result, Target, pods, terminal};
use crate::build::stores::{self, Engine};

/// Where the client connects from inside the store's pod.
const LOOPBACK: &str = "localhost";

/// The byte the remote shell prints once it reads the password.
const MARKER: u8 = 0x01;

/// A store's command-line client.
pub struct ClientKind {
    /// The store it serves (`spec.<part>`).
    pub part: &'static str,
    pub program: &'static str,
    /// The variable the client takes its password from.
    password_env: &'static str,
    /// Its connection arguments, from the apps' Secret and the user.
    args: fn(&BTreeMap<String, String>, &str) -> Vec<String>,
}

pub const PSQL: ClientKind = ClientKind {
    part: "postgres",
    program: "psql",
    password_env: "PGPASSWORD",
    args: psql_args,
};

pub const REDIS_CLI: ClientKind = ClientKind {
    part: "redis",
    program: "redis-cli",
    password_env: "REDISCLI_AUTH",
    args: redis_args,
};

/// libpq's connection string from the apps' Secret (port, database, and
/// with TLS sslmode and sslrootcert, the CA's path in every pod of the
/// stack, the store's included), to loopback.
fn psql_args(apps: &BTreeMap<String, String>, user: &str) -> Vec<String> {
    let mut conninfo = vec![format!("host={}", conninfo_value(LOOPBACK))];
    for (key, field) in [
        ("port", "port"),
        ("dbname", "database"),
        ("sslmode", "sslmode"),
        ("sslrootcert", "sslrootcert"),
    ] {
        if let Some(value) = apps.get(field) {
            conninfo.push(format!("{key}={}", conninfo_value(value)));
        }
    }
    conninfo.push(format!("user={}", conninfo_value(user)));
    vec![conninfo.join(" ")]
}

/// A libpq keyword value, quoted.
fn conninfo_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn redis_args(apps: &BTreeMap<String, String>, user: &str) -> Vec<String> {
    let mut args = vec!["-h".to_string(), LOOPBACK.to_string()];
    if let Some(port) = apps.get("port") {
        args.extend(["-p".to_string(), port.clone()]);
    }
    args.extend(["--user".to_string(), user.to_string()]);
    if let Some(ca) = apps.get("ca_file") {
        args.extend(["--tls".to_string(), "--cacert".to_string(), ca.clone()]);
    }
    args
}

/// The remote command: a shell that reads the password from stdin into
/// the client's variable, then runs the client with `args` (no secret in
/// any argument).
pub fn remote_command(
    client: &ClientKind,
    apps: &BTreeMap<String, String>,
    user: &str,
    extra: &[String],
) -> Vec<String> {
    // `printf %b` turns the octal escapes back into bytes; the `x` keeps
    // a trailing newline of the password from command substitution.
    let script = format!(
        "stty -echo 2>/dev/null; printf '\\001'; IFS= read -r line || exit 111; stty echo 2>/dev/null; \
         secret=$(printf '%bx' \"$line\"); {env}=${{secret%x}}; export {env}; unset line secret; exec \"$@\"",
        env = client.password_env
    );
    let mut command = vec![
        "sh".to_string(),
        "-c".to_string(),
        script,
        "kubectl-appstack".to_string(),
        client.program.to_string(),
    ];
    command.extend((client.args)(apps, user));
    command.extend(extra.iter().cloned());
    command
}

/// The password as one line of `\0ooo` escapes (what the remote shell's
/// `printf %b` reads): no byte of it reaches a terminal as itself.
pub fn encode_secret(password: &str) -> String {
    let mut line: String = password.bytes().map(|b| format!("\\0{b:03o}")).collect();
    line.push('\n');
    line
}

/// The exit code a finished exec reports.
pub fn exit_code(status: Option<&Status>) -> i32 {
    let Some(status) = status else { return 1 };
    if status.status.as_deref() == Some("Success") {
        return 0;
    }
    status
        .details
        .as_ref()
        .and_then(|d| d.causes.as_ref())
        .and_then(|causes| {
            causes
                .iter()
                .find(|c| c.reason.as_deref() == Some("ExitCode"))
                .and_then(|c| c.message.as_deref()?.parse().ok())
        })
        .unwrap_or(1)
}

/// Runs a session; returns the client's exit code.
pub async fn run(
    target: &Target,
    client: &ClientKind,
    admin: bool,
    extra: &[String],
) -> Result<i32> {
    let stack = target.stack().await?;
    let engine: &dyn Engine = stores::by_part(client.part).ok_or_else(|| {
        PluginError::Refused(format!("this plugin knows no store {}", client.part))
    })?;
    if !engine.runs(&stack.typed.spec) {
        return Err(PluginError::Refused(format!(
            "AppStack {} has no {}: its spec has no `{}` section",
            target.name, client.part, client.part
        )));
    }
    if engine.external(&stack.typed.spec).is_some() {
        return Err(PluginError::Refused(format!(
            "{} of AppStack {} is external (spec.{}.external): the operator runs no pod for it; connect with the Secret you gave it",
            client.part, target.name, client.part
        )));
    }
    let apps_name = engine.secret_name(&target.name);
    let apps = secret(target, &apps_name, "the apps' Secret").await?;
    let (user, password) = if admin {
        let admin_name = engine.admin_secret_name(&target.name);
        may_read(target, &admin_name).await?;
        let admin = secret(target, &admin_name, "the administrator's Secret").await?;
        (
            admin
                .get("username")
                .cloned()
                .unwrap_or_else(|| engine.admin_user().to_string()),
            field(&admin, "password", &admin_name)?,
        )
    } else {
        (
            field(&apps, "username", &apps_name)?,
            field(&apps, "password", &apps_name)?,
        )
    };
    let found = store_pods(target, engine, stack.typed.uid().as_deref()).await?;
    // A newer operator with replicas may name the primary in status.
    let primary = stack
        .raw
        .pointer(&format!("/status/{}/primary", engine.part()))
        .and_then(|p| p.as_str());
    let pod = pods::choose(&found, primary).ok_or_else(|| {
        PluginError::Refused(format!(
            "no pod of {} serves yet ({}): `kubectl appstack status {}` says why",
            engine.secret_name(&target.name),
            if found.is_empty() {
                "none found".to_string()
            } else {
                found
                    .iter()
                    .map(|p| format!("{}: {}", p.name_any(), pods::describe(p)))
                    .collect::<Vec<_>>()
                    .join("; ")
            },
            target.name
        ))
    })?;
    let command = remote_command(client, &apps, &user, extra);
    exec(target, &pod.name_any(), engine.part(), command, &password).await
}

/// The store's pods: those its StatefulSet controls, and only when the
/// stack controls that StatefulSet. Labels alone would let anyone who may
/// create a pod in the namespace receive the password this sends.
async fn store_pods(
    target: &Target,
    engine: &dyn Engine,
    stack_uid: Option<&str>,
) -> Result<Vec<Pod>> {
    let name = engine.secret_name(&target.name);
    let set = target.api::<StatefulSet>().get(&name).await.map_err(|e| match &e {
        kube::Error::Api(s) if s.code == 404 => PluginError::Refused(format!(
            "the StatefulSet {name} does not exist yet: `kubectl appstack status {}` says where the stack stands",
            target.name
        )),
        _ => PluginError::api(format!("reading StatefulSet {name} (needs `get statefulsets`)"), &target.ns, e),
    })?;
    let stack_kind = <crate::api::AppStack as kube::Resource>::kind(&());
    if !pods::controlled_by(
        set.metadata.owner_references.as_ref(),
        &stack_kind,
        &target.name,
        stack_uid,
    ) {
        return Err(PluginError::Refused(format!(
            "the StatefulSet {name} is not AppStack {}'s (it is not its controller): no session is opened into it",
            target.name
        )));
    }
    pods::of_store(target, engine.part(), &name, set.uid().as_deref()).await
}

/// Refuses `--admin` up front when the caller may not read the
/// administrator's Secret (a SelfSubjectAccessReview; a 403 on the read
/// itself says the same).
async fn may_read(target: &Target, name: &str) -> Result<()> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(target.ns.clone()),
                verb: Some("get".into()),
                resource: Some("secrets".into()),
                name: Some(name.into()),
                ..ResourceAttributes::default()
            }),
            ..SelfSubjectAccessReviewSpec::default()
        },
        ..SelfSubjectAccessReview::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(target.client.clone())
        .create(&PostParams::default(), &review)
        .await
        .map_err(|e| {
            PluginError::api(
                "asking whether you may read the administrator's Secret",
                &target.ns,
                e,
            )
        })?;
    if answer.status.is_some_and(|s| s.allowed) {
        Ok(())
    } else {
        Err(admin_refused(target, name))
    }
}

fn admin_refused(target: &Target, name: &str) -> PluginError {
    PluginError::Refused(format!(
        "--admin refused: your account may not `get` the Secret {name} in namespace {} (the store's administrator); \
         run without --admin to connect as the apps' user, or ask for read access to that Secret",
        target.ns
    ))
}

async fn secret(target: &Target, name: &str, what: &str) -> Result<BTreeMap<String, String>> {
    let found = target.api::<Secret>().get(name).await.map_err(|e| {
        if PluginError::is_forbidden(&e) && name.ends_with("-admin") {
            admin_refused(target, name)
        } else {
            PluginError::api(
                format!("reading {what} {name} (needs `get secrets`)"),
                &target.ns,
                e,
            )
        }
    })?;
    Ok(found
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
        .collect())
}

fn field(secret: &BTreeMap<String, String>, key: &str, name: &str) -> Result<String> {
    secret.get(key).cloned().ok_or_else(|| {
        PluginError::Refused(format!(
            "the Secret {name} has no `{key}`: the operator writes it; `kubectl appstack status` may say why it has not"
        ))
    })
}

/// Execs `command` in container `container` of `pod`, sends the password
/// when the shell asks, then joins the caller's terminal or pipes to it.
async fn exec(
    target: &Target,
    pod: &str,
    container: &str,
    command: Vec<String>,
    password: &str,
) -> Result<i32> {
    let tty = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    let params = AttachParams::default()
        .container(container)
        .stdin(true)
        .stdout(true)
        .stderr(!tty)
        .tty(tty);
    // Raw before the session starts, restored when it ends (on drop).
    let raw = if tty { terminal::Raw::enter() } else { None };
    let mut process = target
        .api::<Pod>()
        .exec(pod, command, &params)
        .await
        .map_err(|e| {
            if PluginError::is_forbidden(&e) {
                PluginError::Refused(format!(
                    "your account may not exec into pods in namespace {}: it needs `get` and `create` on `pods/exec` (the exec is a WebSocket upgrade, a GET; the namespace's `edit` role has both)",
                    target.ns
                ))
            } else {
                PluginError::api(format!("starting a session in pod {pod}"), &target.ns, e)
            }
        })?;
    let io_err = |what: &str| {
        let what = what.to_string();
        move |source| PluginError::Io { what, source }
    };
    let (Some(mut stdin), Some(mut stdout)) = (process.stdin(), process.stdout()) else {
        return Err(PluginError::Refused(
            "the session has no stdin or stdout".into(),
        ));
    };
    let stderr = process.stderr();
    let status = process.take_status();
    if let (Some(mut sizes), Some((width, height))) = (process.terminal_size(), terminal::size()) {
        let _ = futures::SinkExt::send(&mut sizes, TerminalSize { width, height }).await;
    }

    // Whatever comes before the marker is the shell's (nothing, normally).
    let mut local_out = tokio::io::stdout();
    let mut buf = [0u8; 4096];
    loop {
        let n = stdout
            .read(&mut buf)
            .await
            .map_err(io_err("reading the session"))?;
        if n == 0 {
            break;
        }
        if let Some(at) = buf[..n].iter().position(|b| *b == MARKER) {
            local_out
                .write_all(&buf[at + 1..n])
                .await
                .map_err(io_err("writing stdout"))?;
            local_out.flush().await.map_err(io_err("writing stdout"))?;
            break;
        }
    }
    stdin
        .write_all(encode_secret(password).as_bytes())
        .await
        .map_err(io_err("sending the password"))?;
    stdin
        .flush()
        .await
        .map_err(io_err("sending the password"))?;

    let out = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut stdout, &mut local_out).await;
        let _ = local_out.flush().await;
    });
    let err = stderr.map(|mut stderr| {
        tokio::spawn(async move {
            let mut local = tokio::io::stderr();
            let _ = tokio::io::copy(&mut stderr, &mut local).await;
        })
    });
    // The caller's stdin, until it ends (a pipe) or the session does.
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut stdin).await;
        let _ = stdin.shutdown().await;
    });
    let status = match status {
        Some(status) => status.await,
        None => None,
    };
    // The streams end with the connection; their last bytes came first.
    let _ = tokio::time::timeout(Duration::from_secs(5), out).await;
    if let Some(err) = err {
        let _ = tokio::time::timeout(Duration::from_secs(5), err).await;
    }
    drop(raw);
    Ok(exit_code(status.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{StatusCause, StatusDetails};

    fn apps(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn psql_connects_as_the_apps_do_with_no_password_in_its_arguments() {
        let secret = apps(&[
            ("host", "shop-postgres.demo.svc"),
            ("port", "5432"),
            ("database", "shop"),
            ("sslmode", "verify-full"),
            ("sslrootcert", "/etc/appstack/tls/ca.crt"),
            ("username", "app"),
            ("password", "s3cret"),
        ]);
        let command = remote_command(&PSQL, &secret, "app", &["-c".into(), "select 1".into()]);
        assert_eq!(command[..2], ["sh", "-c"]);
        assert!(command[2].contains("export PGPASSWORD; unset line secret; exec \"$@\""));
        assert_eq!(
            command[3..],
            [
                "kubectl-appstack",
                "psql",
                "host='localhost' port='5432' dbname='shop' sslmode='verify-full' sslrootcert='/etc/appstack/tls/ca.crt' user='app'",
                "-c",
                "select 1"
            ]
        );
        assert!(!command.iter().any(|a| a.contains("s3cret")), "{command:?}");
    }

    #[test]
    fn redis_cli_connects_over_tls_as_the_user_given() {
        let secret = apps(&[
            ("host", "shop-redis.demo.svc"),
            ("port", "6379"),
            ("ca_file", "/etc/appstack/tls/ca.crt"),
        ]);
        let command = remote_command(&REDIS_CLI, &secret, "default", &["PING".into()]);
        assert!(command[2].contains("REDISCLI_AUTH=${secret%x}; export REDISCLI_AUTH"));
        assert_eq!(
            command[4..],
            [
                "redis-cli",
                "-h",
                "localhost",
                "-p",
                "6379",
                "--user",
                "default",
                "--tls",
                "--cacert",
                "/etc/appstack/tls/ca.crt",
                "PING"
            ]
        );
        // Without TLS (spec.tls.enabled false) no TLS flags.
        let plain = remote_command(&REDIS_CLI, &apps(&[("host", "h")]), "app", &[]);
        assert!(!plain.contains(&"--tls".to_string()));
    }

    #[test]
    fn conninfo_values_are_quoted() {
        assert_eq!(conninfo_value(r"o'b\x"), r"'o\'b\\x'");
    }

    /// The remote shell decodes what the plugin sends into the exact
    /// password, trailing newline and quotes included (run with sh here).
    #[test]
    fn the_password_survives_the_trip_through_the_shell() {
        for password in [
            "p@ss:w/rd#1%x",
            "ends in a newline\n",
            "quote ' \" \\ $x `id`",
            "\u{1}\u{3}",
        ] {
            let secret = apps(&[]);
            let mut command = remote_command(&REDIS_CLI, &secret, "app", &[]);
            // Print the variable instead of running redis-cli.
            command.truncate(4);
            command.extend([
                "sh".into(),
                "-c".into(),
                "printf %s \"$REDISCLI_AUTH\"".into(),
            ]);
            let mut child = std::process::Command::new(&command[0])
                .args(&command[1..])
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(encode_secret(password).as_bytes())
                .unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success());
            assert_eq!(out.stdout[0], MARKER);
            assert_eq!(String::from_utf8_lossy(&out.stdout[1..]), password);
        }
        assert!(!encode_secret("abc").contains("abc"));
    }

    #[test]
    fn exit_codes_come_from_the_status() {
        assert_eq!(exit_code(None), 1);
        let ok = Status {
            status: Some("Success".into()),
            ..Status::default()
        };
        assert_eq!(exit_code(Some(&ok)), 0);
        let failed = Status {
            status: Some("Failure".into()),
            reason: Some("NonZeroExitCode".into()),
            details: Some(StatusDetails {
                causes: Some(vec![StatusCause {
                    reason: Some("ExitCode".into()),
                    message: Some("3".into()),
                    ..StatusCause::default()
                }]),
                ..StatusDetails::default()
            }),
            ..Status::default()
        };
        assert_eq!(exit_code(Some(&failed)), 3);
    }
}
