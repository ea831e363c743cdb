//! `appstack-operator run | crd`: flags and environment parsed here, then the
//! library does the work.

use std::net::SocketAddr;
use std::process::ExitCode;

use appstack::operator::{self, RunConfig};
use appstack::telemetry::{self, LogFormat};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "appstack-operator",
    version,
    about = "Runs AppStacks: stateless components autoscaled, state in Redis and PostgreSQL"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller (KUBECONFIG or in-cluster configuration).
    Run(RunArgs),
    /// Print the AppStack CustomResourceDefinition as YAML.
    Crd,
    /// Copy a store's backup volume to S3 (run by the operator in backup
    /// pods and beside PostgreSQL; S3_* and AWS_* variables say where).
    BackupSync(SyncArgs),
    /// Bring a stack's backups back from S3 for a restore.
    BackupFetch(FetchArgs),
}

#[derive(clap::Args)]
struct S3Args {
    #[arg(long, env = "S3_ENDPOINT")]
    endpoint: String,
    #[arg(long, env = "S3_BUCKET")]
    bucket: String,
    #[arg(long, env = "S3_REGION", default_value = "us-east-1")]
    region: String,
    /// Key prefix of the store's backups, ending in '/'.
    #[arg(long, env = "S3_PREFIX")]
    prefix: String,
    #[arg(long, env = "AWS_ACCESS_KEY_ID", hide_env_values = true)]
    access_key: String,
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_key: String,
    /// Temporary credentials' session token (STS).
    #[arg(long, env = "AWS_SESSION_TOKEN", hide_env_values = true)]
    session_token: Option<String>,
    /// PEM certificates to trust for the endpoint, beside the system's.
    #[arg(long, env = "S3_CA_PEM", hide_env_values = true)]
    ca_pem: Option<String>,
}

/// The backup layout of the store named by `--store` (redis, postgres), as
/// its engine gives it.
fn store_layout(part: &str) -> Result<appstack::backup_agent::Layout, String> {
    use appstack::build::stores;
    stores::by_part(part).map(|e| e.layout()).ok_or_else(|| {
        format!(
            "unknown store {part:?}: one of {}",
            stores::parts().join(", ")
        )
    })
}

#[derive(clap::Args)]
struct SyncArgs {
    #[arg(long, value_parser = store_layout)]
    store: appstack::backup_agent::Layout,
    /// The store's directory on the backup volume.
    #[arg(long)]
    root: std::path::PathBuf,
    /// Only files under this relative path (e.g. wal/).
    #[arg(long)]
    only: Option<String>,
    /// Sync every this many seconds, forever; without it, once.
    #[arg(long)]
    every: Option<u64>,
    /// After a sync, this file (the backup's summary) becomes the
    /// termination message.
    #[arg(long)]
    summary: Option<std::path::PathBuf>,
    #[command(flatten)]
    s3: S3Args,
}

#[derive(clap::Args)]
struct FetchArgs {
    #[arg(long, value_parser = store_layout)]
    store: appstack::backup_agent::Layout,
    /// Where the backups go, in the volume's layout.
    #[arg(long)]
    into: std::path::PathBuf,
    /// The store's data directory: nothing is fetched when it holds data
    /// (PostgreSQL still replaying gets its WAL again).
    #[arg(long)]
    data: std::path::PathBuf,
    /// Restore to this RFC 3339 time; default the latest.
    #[arg(long, env = "RESTORE_TARGET")]
    target: Option<String>,
    #[command(flatten)]
    s3: S3Args,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Namespaces to watch, comma-separated; empty watches all namespaces.
    #[arg(
        long,
        env = "APPSTACK_NAMESPACES",
        value_delimiter = ',',
        default_value = ""
    )]
    namespaces: Vec<String>,
    /// Log format.
    #[arg(long, env = "APPSTACK_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Address for /metrics, /healthz and /readyz.
    #[arg(long, env = "APPSTACK_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    http_addr: SocketAddr,
    /// Elect a leader on a Lease so that only one replica reconciles.
    #[arg(long, env = "APPSTACK_LEADER_ELECTION", default_value_t = false)]
    leader_election: bool,
    /// Name of the Lease used for leader election.
    #[arg(long, env = "APPSTACK_LEASE_NAME", default_value = "appstack-operator")]
    lease_name: String,
    /// Namespace of the Lease (default: this pod's namespace).
    #[arg(long, env = "APPSTACK_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// Image of the backup agent (this binary): what copies backups to and
    /// from S3. Usually the operator's own image; without it, stacks whose
    /// backups go to S3 are refused.
    #[arg(long, env = "APPSTACK_AGENT_IMAGE")]
    agent_image: Option<String>,
    /// Who the ingress controllers are, as a JSON list of NetworkPolicy
    /// peers: a routed component whose ingressFrom is set admits them too.
    /// Unset: the namespaces ingress-nginx, traefik, envoy-gateway-system,
    /// nginx-gateway and istio-ingress; `[]`: nobody but ingressFrom.
    #[arg(long, env = "APPSTACK_ROUTE_CONTROLLERS")]
    route_controllers: Option<String>,
    /// Who may scrape the stores' exporters, as a JSON list of
    /// NetworkPolicy peers. Unset: namespaces labelled
    /// appstack.dev/scrape-stores=true; `[]`: nobody.
    #[arg(long, env = "APPSTACK_METRICS_SCRAPERS")]
    metrics_scrapers: Option<String>,
    /// AppStacks reconciled at the same time, per watched namespace set.
    #[arg(long, env = "APPSTACK_CONCURRENCY", default_value_t = 16)]
    concurrency: u16,
}

fn main() -> ExitCode {
    appstack::allocator::tune();
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => match appstack::api::crd_yaml() {
            Ok(yaml) => {
                print!("{yaml}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: rendering the CRD: {error}");
                ExitCode::FAILURE
            }
        },
        Command::BackupSync(args) => agent(backup_sync(args)),
        Command::BackupFetch(args) => agent(backup_fetch(args)),
        Command::Run(args) => {
            telemetry::init_logging(args.log_format);
            appstack::allocator::start_trimming();
            let route_controllers =
                match appstack::operator::route_controllers(args.route_controllers.as_deref()) {
                    Ok(peers) => peers,
                    Err(error) => {
                        eprintln!("error: {error}");
                        return ExitCode::FAILURE;
                    }
                };
            let metrics_scrapers =
                match appstack::build::metrics::scrapers(args.metrics_scrapers.as_deref()) {
                    Ok(peers) => peers,
                    Err(error) => {
                        eprintln!("error: {error}");
                        return ExitCode::FAILURE;
                    }
                };
            let config = RunConfig {
                namespaces: args
                    .namespaces
                    .into_iter()
                    .map(|n| n.trim().to_string())
                    .filter(|n| !n.is_empty())
                    .collect(),
                http_addr: args.http_addr,
                leader_election: args.leader_election,
                lease_name: args.lease_name,
                lease_namespace: args
                    .lease_namespace
                    .or_else(|| std::env::var("POD_NAMESPACE").ok()),
                identity: std::env::var("POD_NAME")
                    .or_else(|_| std::env::var("HOSTNAME"))
                    .unwrap_or_else(|_| "appstack-operator".to_string()),
                concurrency: args.concurrency.max(1),
                agent_image: args.agent_image.filter(|i| !i.trim().is_empty()),
                route_controllers,
                metrics_scrapers,
            };
            let runtime = match tokio::runtime::Runtime::new() {
                Ok(rt) => rt,
                Err(error) => {
                    eprintln!("error: starting the async runtime: {error}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(operator::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    tracing::error!(%error, "operator stopped");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

/// Runs an agent command; a failure is said on stderr and as the
/// container's termination message (what status shows).
fn agent(work: impl std::future::Future<Output = Result<(), String>>) -> ExitCode {
    telemetry::init_logging(LogFormat::Text);
    let result = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt.block_on(work),
        Err(error) => Err(format!("starting the async runtime: {error}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            let _ = std::fs::write("/dev/termination-log", format!("{message}\n"));
            ExitCode::FAILURE
        }
    }
}

fn remote(s3: S3Args) -> Result<appstack::backup_agent::Remote, String> {
    let bucket = appstack::backup_agent::s3::Bucket::new(&appstack::backup_agent::s3::Config {
        endpoint: s3.endpoint,
        region: s3.region,
        bucket: s3.bucket,
        access_key: s3.access_key,
        secret_key: s3.secret_key,
        session_token: s3.session_token,
        ca_pem: s3.ca_pem,
    })
    .map_err(|e| e.to_string())?;
    appstack::backup_agent::Remote::new(bucket, &s3.prefix).map_err(|e| e.to_string())
}

/// Resolves once the process is asked to stop; listening from now on (the
/// handler is installed by the spawned task, not on first poll), so a
/// SIGTERM during the first copy is not lost.
fn stop_requested() -> impl Future<Output = ()> {
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        appstack::operator::terminated().await;
        let _ = tx.send(true);
    });
    async move {
        let _ = rx.wait_for(|stop| *stop).await;
    }
}

async fn backup_sync(args: SyncArgs) -> Result<(), String> {
    use appstack::backup_agent;
    let remote = remote(args.s3)?;
    if let Some(every) = args.every {
        backup_agent::sync_loop(
            args.store,
            &args.root,
            &remote,
            args.only.as_deref(),
            std::time::Duration::from_secs(every.max(1)),
            stop_requested(),
        )
        .await;
        return Ok(());
    }
    let synced = backup_agent::sync(args.store, &args.root, &remote, args.only.as_deref())
        .await
        .map_err(|e| format!("copying the backups to S3: {e}"))?;
    println!(
        "copied {} files ({} bytes) to S3, deleted {} older ones",
        synced.uploaded, synced.bytes, synced.deleted
    );
    if let Some(path) = args.summary {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        // Checked here too, so that a script's mismatch fails the Job that
        // made it, and what the operator reads is written by the type.
        let summary = appstack::api::BackupSummary::parse(&text).map_err(|e| {
            format!(
                "the backup's summary {} is not what the operator reads: {e}",
                path.display()
            )
        })?;
        let line = summary.to_json();
        println!("{line}");
        let _ = std::fs::write("/dev/termination-log", format!("{line}\n"));
    }
    Ok(())
}

async fn backup_fetch(args: FetchArgs) -> Result<(), String> {
    use appstack::backup_agent;
    let has_data = args.data.join(args.store.data_marker).exists();
    let replaying = args
        .store
        .replay_marker
        .is_some_and(|m| args.data.join(m).exists());
    if has_data && !replaying {
        println!("{} holds data: nothing to fetch", args.data.display());
        return Ok(());
    }
    let target = match args.target.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => {
            let at: k8s_openapi::jiff::Timestamp = t
                .parse()
                .map_err(|e| format!("spec.restore.pointInTime {t:?}: {e}"))?;
            Some(at.strftime("%Y%m%dT%H%M%SZ").to_string())
        }
        None => None,
    };
    let remote = remote(args.s3)?;
    let fetched = backup_agent::fetch(
        args.store,
        &args.into,
        &remote,
        target.as_deref(),
        replaying,
    )
    .await
    .map_err(|e| format!("fetching the backups from S3: {e}"))?;
    println!(
        "fetched {fetched} files from S3 into {}",
        args.into.display()
    );
    Ok(())
}
