//! Where the suite runs: the repository, the cluster (local or the current
//! kube context) and the tools on PATH, as `e2e/cluster.sh env` describes them.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// Which cluster the suite drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClusterKind {
    /// The repository's own cluster (e2e/cluster.sh): this host is its node,
    /// so Service ClusterIPs and pod IPs are reachable from the test process.
    Local,
    /// Whatever the current kube context points at (e.g. kind): no host
    /// access to cluster addresses and no node processes to kill.
    Current,
}

#[derive(Clone, Debug)]
pub struct TestEnv {
    pub repo: PathBuf,
    pub cluster: ClusterKind,
    pub kubeconfig: Option<PathBuf>,
    /// PATH with kubectl and helm (from the tool cache) in front.
    pub path: String,
    pub containerd_address: String,
    /// E2E_KEEP=1: leave every scenario's namespace in place for inspection.
    pub keep: bool,
    /// Image for helper pods (sh, nslookup, wget, httpd, sleep).
    pub tools_image: String,
    /// Pod Security level the scenario namespaces enforce (E2E_POD_SECURITY,
    /// default restricted).
    pub pod_security: String,
    /// The store images scenarios run unless they choose others
    /// (E2E_REDIS_IMAGE, E2E_POSTGRES_IMAGE). On the local cluster they default
    /// to the local builds of the operator's default majors; on another cluster
    /// to none, so the example's (the operator's defaults) are used.
    pub redis_image: Option<String>,
    pub postgres_image: Option<String>,
}

/// The local builds of the majors the operator defaults to (postgres:17) or
/// that succeed its default (Redis 8; see the README's compatibility table).
pub const LOCAL_REDIS_IMAGE: &str = "appstack.local/redis:8";
pub const LOCAL_POSTGRES_IMAGE: &str = "appstack.local/postgres:17";

const DEFAULT_CONTAINERD: &str = "/run/appstack/containerd/containerd.sock";

impl TestEnv {
    /// Reads CLUSTER, E2E_KEEP and E2E_TOOLS_IMAGE, and takes KUBECONFIG, PATH
    /// and CONTAINERD_ADDRESS from `e2e/cluster.sh env` when the script exists.
    pub fn load() -> Result<Self> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .canonicalize()
            .context("locating the repository root from CARGO_MANIFEST_DIR")?;
        let cluster = match std::env::var("CLUSTER").as_deref() {
            Ok("local") | Err(_) => ClusterKind::Local,
            Ok("current") => ClusterKind::Current,
            Ok(other) => bail!("CLUSTER={other}: expected `local` or `current`"),
        };
        let keep = std::env::var("E2E_KEEP").is_ok_and(|v| v == "1" || v == "true");
        let tools_image = std::env::var("E2E_TOOLS_IMAGE")
            .unwrap_or_else(|_| "appstack.local/tools:1".to_string());

        let pod_security =
            std::env::var("E2E_POD_SECURITY").unwrap_or_else(|_| "restricted".to_string());
        let store_image = |var: &str, local: &str| {
            std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .or_else(|| (cluster == ClusterKind::Local).then(|| local.to_string()))
        };
        let redis_image = store_image("E2E_REDIS_IMAGE", LOCAL_REDIS_IMAGE);
        let postgres_image = store_image("E2E_POSTGRES_IMAGE", LOCAL_POSTGRES_IMAGE);
        let script = repo.join("e2e/cluster.sh");
        let (kubeconfig, path, containerd_address) = if script.exists() {
            from_cluster_script(&repo)?
        } else {
            // Before the cluster script exists: whatever the caller exported.
            (
                std::env::var("KUBECONFIG").ok().filter(|s| !s.is_empty()),
                std::env::var("PATH").unwrap_or_default(),
                std::env::var("CONTAINERD_ADDRESS").unwrap_or_else(|_| DEFAULT_CONTAINERD.into()),
            )
        };
        Ok(Self {
            repo,
            cluster,
            kubeconfig: kubeconfig.map(PathBuf::from),
            path,
            containerd_address,
            keep,
            tools_image,
            pod_security,
            redis_image,
            postgres_image,
        })
    }

    /// A command with this environment (PATH, KUBECONFIG, CONTAINERD_ADDRESS),
    /// run from the repository root.
    pub fn command(&self, program: &str) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(program);
        cmd.current_dir(&self.repo)
            .env("PATH", &self.path)
            .env("CONTAINERD_ADDRESS", &self.containerd_address)
            .kill_on_drop(true);
        if let Some(kubeconfig) = &self.kubeconfig {
            cmd.env("KUBECONFIG", kubeconfig);
        }
        cmd
    }

    pub fn is_local(&self) -> bool {
        self.cluster == ClusterKind::Local
    }

    /// Local images are imported, never pulled.
    pub fn pull_policy(&self) -> &'static str {
        if self.is_local() {
            "Never"
        } else {
            "IfNotPresent"
        }
    }
}

fn from_cluster_script(repo: &Path) -> Result<(Option<String>, String, String)> {
    // Let bash evaluate the exports exactly as a user's shell would.
    let out = std::process::Command::new("bash")
        .current_dir(repo)
        .args([
            "-c",
            r#"set -euo pipefail; eval "$(e2e/cluster.sh env)"; printf '%s\n%s\n%s\n' "${KUBECONFIG:-}" "$PATH" "${CONTAINERD_ADDRESS:-}""#,
        ])
        .output()
        .context("running `e2e/cluster.sh env`")?;
    if !out.status.success() {
        bail!(
            "`e2e/cluster.sh env` failed ({}): {}\nStart the cluster first: `make cluster-up` (or CLUSTER=current for the current kube context).",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let kubeconfig = lines.next().filter(|s| !s.is_empty()).map(str::to_string);
    let path = lines.next().unwrap_or_default().to_string();
    let containerd = lines
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_CONTAINERD)
        .to_string();
    Ok((kubeconfig, path, containerd))
}
