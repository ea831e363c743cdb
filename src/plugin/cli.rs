//! The plugin's flags (clap) and what each subcommand runs.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use super::{Target, backup, clone, logs, session, status};

const RBAC: &str = "Runs with your kubeconfig and RBAC, never the operator's.";

#[derive(Parser)]
#[command(
    name = "kubectl appstack",
    bin_name = "kubectl appstack",
    version,
    about = "Operate AppStacks: status, a psql or redis-cli session, backups, clones, logs",
    after_help = RBAC
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct Stack {
    /// The AppStack's name.
    stack: String,
    /// Its namespace (default: your context's).
    #[arg(short, long)]
    namespace: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Conditions, components, stores, backups and the recoverable window,
    /// migrations and jobs, routes and the stack's recent Events.
    #[command(
        after_help = "Needs `get appstacks`, `list pods` and (for the Events) `list events`."
    )]
    Status(Stack),
    /// A psql session into the stack's PostgreSQL, as the apps' user.
    ///
    /// psql runs in the store's pod (its image has it), connecting to the
    /// store's Service over TLS verified with the stack's CA, as the apps
    /// connect. The password comes from the apps' Secret and reaches psql
    /// through its environment, never its arguments. Interactive when stdin
    /// is a terminal.
    #[command(
        after_help = "Needs `get` on the Secret <stack>-postgres (with --admin, <stack>-postgres-admin), \
`get statefulsets`, `list pods` and `get` + `create` on `pods/exec` in the namespace (its `edit` role has them). \
The session opens only into a pod of the store's StatefulSet, itself controlled by the stack.\n\
Note: whoever may exec into the store's pod can read the administrator's password from its environment; \
--admin is refused unless you may read the administrator's Secret, but exec into store pods is administrator access.\n\
Examples:\n  kubectl appstack psql shop\n  kubectl appstack psql shop -c 'select count(*) from carts'\n  kubectl appstack psql shop -- -At -c 'select current_user'"
    )]
    Psql(SessionArgs),
    /// A redis-cli session into the stack's Redis, as the apps' user.
    ///
    /// redis-cli runs in the store's pod, connecting to the store's Service
    /// over TLS verified with the stack's CA; its password reaches it as
    /// REDISCLI_AUTH, never an argument. A command after `--` runs once.
    #[command(
        after_help = "Needs `get` on the Secret <stack>-redis (with --admin, <stack>-redis-admin), \
`get statefulsets`, `list pods` and `get` + `create` on `pods/exec` in the namespace (its `edit` role has them). \
The session opens only into a pod of the store's StatefulSet, itself controlled by the stack.\n\
Note: whoever may exec into the store's pod can read the administrator's password from its environment; \
--admin is refused unless you may read the administrator's Secret, but exec into store pods is administrator access.\n\
Examples:\n  kubectl appstack redis-cli shop\n  kubectl appstack redis-cli shop -- ACL WHOAMI"
    )]
    RedisCli(SessionArgs),
    /// Take a backup now, wait for it and print the result.
    ///
    /// Makes a Job from the store's backup CronJob <stack>-<store>-backup,
    /// as `kubectl create job --from=cronjob/...` does, so the operator
    /// reads its result into status.<store>.backup like a scheduled one's.
    #[command(
        after_help = "Needs `get appstacks`, `get cronjobs`, `create jobs`, `get jobs` and `list pods` (the namespace's `edit` role)."
    )]
    Backup(BackupArgs),
    /// Print (or create) an AppStack restoring this stack's backed-up stores
    /// into a new stack, to the latest point or to a moment.
    #[command(
        after_help = "Prints YAML to review and `kubectl apply -f -`; --apply creates it (`create appstacks`).\n\
Example:\n  kubectl appstack clone shop --to shop-before-bug --time 2026-12-01T10:00:00Z --apply"
    )]
    Clone(CloneArgs),
    /// Logs of the stack's pods: a component, a store, `<store>-backup`, or all.
    #[command(after_help = "Needs `list pods` and `get pods/log`.")]
    Logs(LogsArgs),
}

#[derive(clap::Args)]
struct SessionArgs {
    #[command(flatten)]
    stack: Stack,
    /// Connect as the store's administrator (refused unless you may read
    /// the Secret <stack>-<store>-admin).
    #[arg(long)]
    admin: bool,
    /// psql only: run this SQL and exit (psql's own -c).
    #[arg(short = 'c', long = "command")]
    sql: Option<String>,
    /// Arguments for the client itself, after `--` (a redis-cli command,
    /// psql flags).
    #[arg(last = true)]
    args: Vec<String>,
}

#[derive(clap::Args)]
struct BackupArgs {
    #[command(flatten)]
    stack: Stack,
    /// Back up only this store (redis or postgres); default every store
    /// with backups configured.
    #[arg(long)]
    store: Option<String>,
    /// Give up waiting after this many seconds (the Job keeps running).
    #[arg(long, default_value_t = 600)]
    timeout: u64,
}

#[derive(clap::Args)]
struct CloneArgs {
    #[command(flatten)]
    stack: Stack,
    /// The new stack's name.
    #[arg(long)]
    to: String,
    /// The moment to restore to (RFC 3339, e.g. 2026-12-01T10:00:00Z);
    /// default the latest point the backups hold.
    #[arg(long)]
    time: Option<String>,
    /// Create the new stack instead of printing it.
    #[arg(long)]
    apply: bool,
    /// With --apply: a server-side dry run (checks, creates nothing).
    #[arg(long, requires = "apply")]
    dry_run: bool,
}

#[derive(clap::Args)]
struct LogsArgs {
    #[command(flatten)]
    stack: Stack,
    /// A component's name, redis, postgres, redis-backup or postgres-backup;
    /// default every pod of the stack.
    part: Option<String>,
    /// Keep streaming.
    #[arg(short, long)]
    follow: bool,
    /// Lines from the end of each container's log.
    #[arg(long)]
    tail: Option<i64>,
    /// Only lines newer than this many seconds.
    #[arg(long)]
    since: Option<i64>,
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("error: starting the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let code = match runtime.block_on(dispatch(cli.command)) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            1
        }
    };
    // A session's stdin reader may still block on the terminal: leave
    // without waiting for it.
    std::process::exit(code);
}

async fn dispatch(command: Command) -> super::Result<i32> {
    match command {
        Command::Status(s) => {
            status::run(&target(&s).await?).await?;
            Ok(0)
        }
        Command::Psql(a) => {
            let mut extra = Vec::new();
            if let Some(sql) = &a.sql {
                extra.extend(["-c".to_string(), sql.clone()]);
            }
            extra.extend(a.args.iter().cloned());
            session::run(&target(&a.stack).await?, &session::PSQL, a.admin, &extra).await
        }
        Command::RedisCli(a) => {
            if a.sql.is_some() {
                return Err(super::PluginError::Refused(
                    "-c is psql's; give redis-cli its command after `--`, e.g. `-- PING`".into(),
                ));
            }
            session::run(
                &target(&a.stack).await?,
                &session::REDIS_CLI,
                a.admin,
                &a.args,
            )
            .await
        }
        Command::Backup(a) => {
            backup::run(
                &target(&a.stack).await?,
                a.store.as_deref(),
                Duration::from_secs(a.timeout),
            )
            .await
        }
        Command::Clone(a) => {
            let options = clone::Options {
                to: &a.to,
                time: a.time.as_deref(),
                apply: a.apply,
                dry_run: a.dry_run,
            };
            clone::run(&target(&a.stack).await?, &options).await?;
            Ok(0)
        }
        Command::Logs(a) => {
            let options = logs::Options {
                part: a.part.as_deref(),
                follow: a.follow,
                tail: a.tail,
                since_seconds: a.since,
            };
            logs::run(&target(&a.stack).await?, &options).await?;
            Ok(0)
        }
    }
}

async fn target(s: &Stack) -> super::Result<Target> {
    Target::new(&s.stack, s.namespace.as_deref()).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_flags_hold_together() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "kubectl-appstack",
            "redis-cli",
            "shop",
            "-n",
            "demo",
            "--",
            "ACL",
            "WHOAMI",
        ])
        .unwrap();
        let Command::RedisCli(a) = cli.command else {
            panic!()
        };
        assert_eq!(a.args, ["ACL", "WHOAMI"]);
        assert_eq!(a.stack.namespace.as_deref(), Some("demo"));
        assert!(
            Cli::try_parse_from([
                "kubectl-appstack",
                "clone",
                "shop",
                "--to",
                "x",
                "--dry-run"
            ])
            .is_err()
        );
    }
}
