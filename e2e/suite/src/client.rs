//! Kubernetes clients from the kubeconfig the cluster script names.

use anyhow::{Context, Result};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::env::TestEnv;

pub async fn config(env: &TestEnv) -> Result<Config> {
    match &env.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("loading kubeconfig {}", path.display()))
        }
        None => Config::infer()
            .await
            .context("no KUBECONFIG and no usable default kube config"),
    }
}

/// The suite's own (admin) client.
pub async fn admin(env: &TestEnv) -> Result<Client> {
    Client::try_from(config(env).await?).context("building the Kubernetes client")
}

/// A client whose requests carry impersonation headers for `user`, e.g.
/// `system:serviceaccount:ns:name`: the API server authorizes them as that user.
pub async fn impersonating(env: &TestEnv, user: &str) -> Result<Client> {
    let mut config = config(env).await?;
    config.auth_info.impersonate = Some(user.to_string());
    Client::try_from(config).context("building the impersonating client")
}
