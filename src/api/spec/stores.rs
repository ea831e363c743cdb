//! The stores' sections: which store, its image, volume and resources.

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{BackupSpec, MetricsSpec};

/// A store a component can use.
#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord,
)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    Redis,
    Postgres,
}

/// The Redis store.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("!has(self.external) || !has(self.storage)").message("spec.redis.storage: not with spec.redis.external: an external store has no volume"))]
#[x_kube(validation = Rule::new("!has(self.external) || !has(self.resources)").message("spec.redis.resources: not with spec.redis.external: an external store runs no container of ours"))]
#[x_kube(validation = Rule::new("!has(self.external) || !has(self.metrics)").message("spec.redis.metrics: not with spec.redis.external: the operator runs an exporter only beside the stores it runs"))]
#[x_kube(validation = Rule::new("!has(self.external) || !has(self.backup)").message("spec.redis.backup: not with spec.redis.external: the operator backs up only the stores it runs; back up an external server where it runs"))]
#[x_kube(validation = Rule::new("!has(self.external) || !has(self.existingSecret)").message("spec.redis.existingSecret: not with spec.redis.external: an external store's credentials are in external.secretName"))]
#[x_kube(validation = Rule::new("!has(self.external) || !has(self.replicas)").message("spec.redis.replicas: not with spec.redis.external: an external store's replicas are its own"))]
#[x_kube(validation = Rule::new("!has(self.minReplicasToWrite) || self.minReplicasToWrite == 0 || (has(self.replicas) && self.minReplicasToWrite <= self.replicas)").message("spec.redis.minReplicasToWrite: at most spec.redis.replicas (a master cannot wait for replicas it does not have)"))]
#[serde(rename_all = "camelCase")]
pub struct RedisSpec {
    /// Redis image. Default: the official redis:7.4. Any image whose
    /// entrypoint runs `redis-server` with the arguments given works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.trim() != ''").message("spec.redis.image: must not be empty"))]
    pub image: Option<String>,
    /// The volume for Redis' append-only file. Default 1Gi of the default StorageClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// CPU and memory requests and limits of the Redis container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resources_schema")]
    pub resources: Option<ResourceRequirements>,
    /// Use a server you already run instead of a StatefulSet: the
    /// operator reads the connection from a Secret you own in this
    /// namespace (see `external.secretName`) and runs nothing for this
    /// store. With it, `image` is only the image of the components' wait
    /// init container (its client), and storage, resources, backup and
    /// existingSecret are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalStore>,
    /// In-cluster store only: a Secret you own in this namespace (made by
    /// you, External Secrets or a vault) whose key `password` (required)
    /// and `username` (optional) are the apps' credentials, and
    /// `admin-password` (optional) the administrator's. The operator
    /// copies them into the store and into its own Secret, rolls the store
    /// and the apps when they change, and never writes to yours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub existing_secret: Option<String>,
    /// RDB snapshots on a schedule (the append-only file stays as it is). Omit for no backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,
    /// Replicas of the master (0 to 4; default 0: one Redis, no Sentinel).
    /// With replicas, the store runs 1 + replicas pods, each with its own
    /// volume of `storage` (so 1 + replicas claims of that size: a
    /// StorageClass that can provision them, ReadWriteOnce is enough) and
    /// Redis Sentinel beside it; Sentinel promotes a replica when the
    /// master fails, and the write URL (`<stack>-redis`) follows the
    /// master. Replication is asynchronous: a failover may lose the last
    /// acknowledged writes (see minReplicasToWrite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4))]
    pub replicas: Option<i32>,
    /// With replicas: the master refuses writes (NOREPLICAS) unless at
    /// least this many replicas are connected and less than 10 s behind.
    /// Default 0 (the master always writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 4))]
    pub min_replicas_to_write: Option<i32>,
    /// The store's Prometheus exporter (on by default; see MetricsSpec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsSpec>,
}

impl RedisSpec {
    /// The replicas asked for (0 when not given).
    pub fn replicas(&self) -> i32 {
        if self.external.is_some() {
            return 0;
        }
        self.replicas.unwrap_or(0).clamp(0, 4)
    }
}

/// The PostgreSQL store.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("(has(self.image) ? self.image : 'postgres:17').contains('@') || (has(oldSelf.image) ? oldSelf.image : 'postgres:17').contains('@') || (has(self.image) ? self.image : 'postgres:17').substring((has(self.image) ? self.image : 'postgres:17').lastIndexOf(':') + 1).split('.')[0].split('-')[0] == (has(oldSelf.image) ? oldSelf.image : 'postgres:17').substring((has(oldSelf.image) ? oldSelf.image : 'postgres:17').lastIndexOf(':') + 1).split('.')[0].split('-')[0]").message("spec.postgres.image: a new PostgreSQL major version cannot start on the existing data directory (the image's tag gives the major version); keep it (e.g. 17 -> 17.6), or dump the data (pg_dumpall), create a new stack on the new image and restore into it"))]
#[x_kube(validation = Rule::new("has(self.database) == has(oldSelf.database) && (!has(self.database) || self.database == oldSelf.database)").message("spec.postgres.database: cannot change once the store exists (the data directory keeps the database it was created with); to move, create the new database yourself (CREATE DATABASE ... TEMPLATE old, or a dump and restore), or delete the postgres section with retainDataOnDelete: false and add it again"))]
#[x_kube(validation = Rule::new("!has(self.external) || !has(self.storage)").message("spec.postgres.storage: not with spec.postgres.external: an external store has no volume"))]
#[x_kube(validation = Rule::new("!has(self.external) || !has(self.resources)").message("spec.postgres.resources: not with spec.postgres.external: an external store runs no container of ours"))]
#[x_kube(validation = Rule::new("!has(self.external) || !has(self.metrics)").message("spec.postgres.metrics: not with spec.postgres.external: the operator runs an exporter only beside the stores it runs"))]
#[x_kube(validation = Rule::new("!has(self.external) || !has(self.backup)").message("spec.postgres.backup: not with spec.postgres.external: the operator backs up only the stores it runs; back up an external server where it runs"))]
#[x_kube(validation = Rule::new("!has(self.external) || !has(self.existingSecret)").message("spec.postgres.existingSecret: not with spec.postgres.external: an external store's credentials are in external.secretName"))]
#[x_kube(validation = Rule::new("!has(self.external) || !has(self.database)").message("spec.postgres.database: not with spec.postgres.external: the database is the Secret's key database (or the url's path)"))]
#[x_kube(validation = Rule::new("!has(self.external) || !has(self.instances)").message("spec.postgres.instances: not with spec.postgres.external: the operator runs no instance of an external store"))]
#[x_kube(validation = Rule::new("!has(self.synchronous) || (has(self.instances) && self.synchronous.number < self.instances)").message("spec.postgres.synchronous.number: must be less than spec.postgres.instances (the replicas that can confirm a commit)"))]
#[serde(rename_all = "camelCase")]
pub struct PostgresSpec {
    /// PostgreSQL image. Default: the official postgres:17. Any image that
    /// follows its contract (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB,
    /// PGDATA, uid 999) works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("self.trim() != ''").message("spec.postgres.image: must not be empty"))]
    pub image: Option<String>,
    /// Name of the database to create. Default: the stack's name with '-'
    /// turned into '_'. Fixed once the store exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), regex(pattern = r"^[a-z_][a-z0-9_]*$"))]
    pub database: Option<String>,
    /// The volume for the data directory. Default 5Gi of the default StorageClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<StorageSpec>,
    /// CPU and memory requests and limits of the PostgreSQL container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "resources_schema")]
    pub resources: Option<ResourceRequirements>,
    /// Use a server you already run instead of a StatefulSet: the
    /// operator reads the connection from a Secret you own in this
    /// namespace (see `external.secretName`) and runs nothing for this
    /// store. With it, `image` is only the image of the components' wait
    /// init container (its client), and storage, resources, backup and
    /// existingSecret are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalStore>,
    /// In-cluster store only: a Secret you own in this namespace (made by
    /// you, External Secrets or a vault) whose key `password` (required)
    /// and `username` (optional) are the apps' credentials, and
    /// `admin-password` (optional) the administrator's. The operator
    /// copies them into the store and into its own Secret, rolls the store
    /// and the apps when they change, and never writes to yours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub existing_secret: Option<String>,
    /// Base backups on a schedule plus continuous WAL archiving: point-in-time recovery. Omit for no backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,
    /// PostgreSQL servers (pods of one StatefulSet), 1 to 5. Default 1.
    /// More than one: one primary and streaming replicas (over TLS, which
    /// they need), the write Service <stack>-postgres follows the primary
    /// the operator chose, <stack>-postgres-ro selects the replicas, and
    /// the operator promotes the most advanced replica when the primary
    /// fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 5))]
    pub instances: Option<i32>,
    /// The store's Prometheus exporter (on by default; see MetricsSpec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsSpec>,
    /// With instances > 1: each commit waits until `number` replicas have
    /// it on disk (synchronous_standby_names ANY number (*), set by the
    /// operator on the primary), so a failover loses no acknowledged
    /// write. Omit for asynchronous replication (a failover may lose the
    /// last commits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub synchronous: Option<SynchronousSpec>,
}

/// spec.postgres.synchronous.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SynchronousSpec {
    /// Replicas that confirm each commit, 1 to instances - 1.
    #[schemars(range(min = 1, max = 4))]
    pub number: i32,
    /// `required` (default): commits wait for `number` replicas even while
    /// fewer are up (writes stop rather than risk a loss); `preferred`:
    /// they wait for at most the replicas that stream now, none when none
    /// does (writes go on, a failover then may lose the last ones).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_durability: Option<DataDurability>,
}

/// See [`SynchronousSpec::data_durability`].
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DataDurability {
    #[default]
    Required,
    Preferred,
}

impl PostgresSpec {
    /// spec.postgres.instances, default 1.
    pub fn instances(&self) -> i32 {
        self.instances.unwrap_or(1).clamp(1, 5)
    }
}

/// A store the operator does not run: where its connection comes from.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ExternalStore {
    /// A Secret of this namespace (a name, never another namespace's) that
    /// you own. Keys: `url` (postgresql://user:password@host:port/db?sslmode=...
    /// or redis[s]://user:password@host:port/db), or `host`, `port`,
    /// `username`, `password` and for PostgreSQL `database`, which win over
    /// the url's parts; optionally `ca.crt` (PEM, the CA of the server's
    /// certificate: PostgreSQL then defaults to sslmode=verify-full, Redis
    /// to TLS), `sslmode` (PostgreSQL) and `tls` ("true": Redis over TLS,
    /// PostgreSQL at least sslmode=require). Label it
    /// `appstack.dev/store-secret: "true"` so a change is seen at once
    /// (otherwise within a minute). A change rolls the components.
    #[schemars(
        length(min = 1, max = 253),
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
    )]
    pub secret_name: String,
}

/// A store's PersistentVolumeClaim. Fixed once the store exists: Kubernetes
/// cannot change a StatefulSet's volumeClaimTemplates in place.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// Requested size, a quantity such as 1Gi or 500Mi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("storage.size: must be a positive quantity such as 1Gi or 500Mi"))]
    #[schemars(length(max = 32))]
    pub size: Option<String>,
    /// StorageClass of the claim. Default: the cluster's default StorageClass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// Kubernetes' own schema for container resources, plus what lets the API
/// server refuse a malformed quantity at admission instead of the operator
/// meeting it when it applies the child: a CEL rule over requests and limits,
/// and bounds that keep the rule's cost within the CRD's budget.
pub(super) fn resources_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut schema = generator.subschema_for::<Option<ResourceRequirements>>();
    for map in ["requests", "limits"] {
        let Some(property) = schema
            .get_mut("properties")
            .and_then(|p| p.get_mut(map))
            .and_then(|m| m.as_object_mut())
        else {
            continue;
        };
        property.insert("maxProperties".into(), 16.into());
        if let Some(values) = property
            .get_mut("additionalProperties")
            .and_then(|v| v.as_object_mut())
        {
            values.insert("maxLength".into(), 64.into());
        }
        property.insert(
            "x-kubernetes-validations".into(),
            serde_json::json!([{
                "rule": "self.all(k, isQuantity(string(self[k])))",
                "message": format!("resources.{map}: every value must be a quantity such as 100m, 0.5, 2 or 128Mi"),
            }]),
        );
    }
    schema
}
