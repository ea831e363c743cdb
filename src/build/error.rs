//! What the builders refuse: a spec they cannot realise, named by its field.

/// A spec the builders cannot realise. Messages name the field.
#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
pub enum BuildError {
    #[error("metadata.{0}: missing (the object must come from the API server)")]
    MissingMetadata(&'static str),
    #[error("spec.components: at least one component is required")]
    NoComponents,
    #[error("spec.components[{index}].name: {message}")]
    ComponentName { index: usize, message: String },
    #[error("metadata.name: {0}")]
    StackName(String),
    #[error(
        "spec.components[{index}].autoscaling: minReplicas ({min}) exceeds maxReplicas ({max})"
    )]
    Autoscaling { index: usize, min: i32, max: i32 },
    #[error("spec.components[{index}].port: {port} is outside 1-65535")]
    Port { index: usize, port: i32 },
    #[error(
        "spec.components[{index}].uses: {store} is not in this stack; add spec.{store} or remove it from uses"
    )]
    MissingStore { index: usize, store: &'static str },
    #[error(
        "spec.components[{index}].env: {name} is set twice; Server-Side Apply refuses duplicate names"
    )]
    DuplicateEnv { index: usize, name: String },
    #[error("spec.{store}: its credentials were not provided (operator bug)")]
    MissingCredentials { store: &'static str },
    #[error("spec.tls: the certificates of {store} were not provided (operator bug)")]
    MissingCertificates { store: &'static str },
    #[error(
        "{field}: S3 needs the backup agent's image, which this operator was started without (set --agent-image or APPSTACK_AGENT_IMAGE to the operator's own image; the Helm chart does)"
    )]
    NoAgentImage { field: String },
    #[error(
        "{field}: {prefix:?} {why}; the prefix goes inside the stack's namespace (segments of letters, digits and !_.*'()- separated by '/')"
    )]
    S3Prefix {
        field: String,
        prefix: String,
        why: &'static str,
    },
    /// A store whose backups travel over the network without TLS.
    #[error("spec.{store}.backup: needs TLS (spec.tls.enabled: true): {why}")]
    BackupWithoutTls {
        store: &'static str,
        why: &'static str,
    },
    /// What the CRD refuses at admission, met in an object stored before
    /// the rule existed.
    #[error("{field}: {message}")]
    NotAdmitted { field: String, message: String },
    #[error(
        "spec.postgres.database: {0:?} is not a valid PostgreSQL identifier (lower-case letters, digits, '_', starting with a letter or '_', at most 63)"
    )]
    Database(String),
    /// spec.postgres.instances cannot be realised as given.
    #[error("{0}")]
    Replication(String),
    /// A Secret the user owns (an external store's connection) lacks a
    /// key or holds a value no client could use.
    #[error("{field}: Secret {secret}: {message}")]
    UserSecret {
        field: String,
        secret: String,
        message: String,
    },
}
