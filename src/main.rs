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
    /// AppStacks reconciled at the same time, per watched namespace set.
    #[arg(long, env = "APPSTACK_CONCURRENCY", default_value_t = 16)]
    concurrency: u16,
}

fn main() -> ExitCode {
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
        Command::Run(args) => {
            telemetry::init_logging(args.log_format);
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
