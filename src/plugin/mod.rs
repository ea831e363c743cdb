//! `kubectl appstack`: what platform teams run day to day against a stack
//! (status, a client session into a store, an on-demand backup, a clone,
//! logs), one file per subcommand. Every request goes out with the caller's
//! own kubeconfig and RBAC, never the operator's: what the caller may not
//! do is refused by the API server, and said here with what to do next.
//!
//! Names of children come from the builders (`build::names`,
//! `build::backup`, the engines), so the plugin finds exactly what the
//! operator made.

pub mod backup;
pub mod cli;
pub mod clone;
pub mod logs;
pub mod pods;
pub mod session;
pub mod status;
mod terminal;

use kube::api::{Api, DynamicObject};
use kube::core::ApiResource;
use kube::{Client, Resource};
use serde_json::Value;

use crate::api::AppStack;

/// What a subcommand failed on, said so that the caller knows what to do.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The request cannot be served as asked (a flag, a store the stack
    /// lacks, a refusal by RBAC).
    #[error("{0}")]
    Refused(String),
    /// The API server said no, or could not be reached.
    #[error("{what}: {message}")]
    Api { what: String, message: String },
    /// The kubeconfig could not be read.
    #[error("reading your kubeconfig: {0}")]
    Config(String),
    /// The terminal or a stream failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl PluginError {
    /// An API error while doing `what` in namespace `ns`, with the next
    /// step for the usual refusals.
    pub fn api(what: impl Into<String>, ns: &str, error: kube::Error) -> Self {
        let what = what.into();
        let message = match &error {
            kube::Error::Api(status) if status.code == 403 => format!(
                "forbidden by your RBAC in namespace {ns} ({}); ask an administrator of the namespace for the permission named",
                status.message
            ),
            kube::Error::Api(status) if status.code == 404 => {
                format!("not found in namespace {ns} ({})", status.message)
            }
            other => other.to_string(),
        };
        Self::Api { what, message }
    }

    /// Whether the API server answered 403 Forbidden.
    pub fn is_forbidden(error: &kube::Error) -> bool {
        matches!(error, kube::Error::Api(s) if s.code == 403)
    }
}

pub type Result<T, E = PluginError> = std::result::Result<T, E>;

/// One stack, as the caller names it, and the client to reach it.
pub struct Target {
    pub client: Client,
    pub ns: String,
    pub name: String,
}

/// A stack as read: the typed object (what this plugin knows) and the
/// raw JSON (fields newer operators add, shown as they are).
pub struct Stack {
    pub typed: AppStack,
    pub raw: Value,
}

#[cfg(test)]
impl Stack {
    /// A stack as the server would return it, for the subcommands' tests.
    pub fn from_raw(raw: Value) -> Self {
        Stack {
            typed: serde_json::from_value(raw.clone()).unwrap(),
            raw,
        }
    }
}

impl Target {
    /// The caller's kubeconfig (KUBECONFIG, ~/.kube/config or in-cluster),
    /// with `namespace` or the context's namespace.
    pub async fn new(name: &str, namespace: Option<&str>) -> Result<Self> {
        let config = kube::Config::infer()
            .await
            .map_err(|e| PluginError::Config(e.to_string()))?;
        let ns = namespace
            .map(str::to_string)
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = Client::try_from(config).map_err(|e| PluginError::Config(e.to_string()))?;
        Ok(Self {
            client,
            ns,
            name: name.to_string(),
        })
    }

    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = kube::core::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// The AppStack, read as the caller (`get appstacks`).
    pub async fn stack(&self) -> Result<Stack> {
        let resource = ApiResource::erase::<AppStack>(&());
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.ns, &resource);
        let object = api.get(&self.name).await.map_err(|e| match &e {
            kube::Error::Api(s) if s.code == 404 => PluginError::Refused(format!(
                "no AppStack {:?} in namespace {}: `kubectl get appstacks -n {}` lists them; -n chooses the namespace",
                self.name, self.ns, self.ns
            )),
            _ => PluginError::api(format!("reading AppStack {}", self.name), &self.ns, e),
        })?;
        let raw = serde_json::to_value(&object).map_err(|e| PluginError::Api {
            what: format!("reading AppStack {}", self.name),
            message: e.to_string(),
        })?;
        let typed: AppStack =
            serde_json::from_value(raw.clone()).map_err(|e| PluginError::Api {
                what: format!("decoding AppStack {}", self.name),
                message: format!("{e} (is this plugin older than the operator?)"),
            })?;
        Ok(Stack { typed, raw })
    }
}
