//! The stores' sections: which store, its image, volume and resources.

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::BackupSpec;

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
    /// RDB snapshots on a schedule (the append-only file stays as it is). Omit for no backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,
}

/// The PostgreSQL store.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[x_kube(validation = Rule::new("(has(self.image) ? self.image : 'postgres:17').contains('@') || (has(oldSelf.image) ? oldSelf.image : 'postgres:17').contains('@') || (has(self.image) ? self.image : 'postgres:17').substring((has(self.image) ? self.image : 'postgres:17').lastIndexOf(':') + 1).split('.')[0].split('-')[0] == (has(oldSelf.image) ? oldSelf.image : 'postgres:17').substring((has(oldSelf.image) ? oldSelf.image : 'postgres:17').lastIndexOf(':') + 1).split('.')[0].split('-')[0]").message("spec.postgres.image: a new PostgreSQL major version cannot start on the existing data directory (the image's tag gives the major version); keep it (e.g. 17 -> 17.6), or dump the data (pg_dumpall), create a new stack on the new image and restore into it"))]
#[x_kube(validation = Rule::new("has(self.database) == has(oldSelf.database) && (!has(self.database) || self.database == oldSelf.database)").message("spec.postgres.database: cannot change once the store exists (the data directory keeps the database it was created with); to move, create the new database yourself (CREATE DATABASE ... TEMPLATE old, or a dump and restore), or delete the postgres section with retainDataOnDelete: false and add it again"))]
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
    /// Base backups on a schedule plus continuous WAL archiving: point-in-time recovery. Omit for no backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupSpec>,
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
