//! AppStack: one resource describing an application whose servers are cattle.
//!
//! The data path runs one way: [`api`] (types, schema, CEL) -> [`build`]
//! (pure builders, one per child kind or store) -> [`reconcile`] (credentials,
//! Server-Side Apply, prune, status). [`operator`] wires the binary together;
//! [`backup_agent`] is the same binary's S3 side of the stores' backups;
//! [`lean`] is what any cache keeps of an object anyone may write;
//! [`plugin`] is `kubectl appstack`, a separate binary on the user's RBAC.

pub mod allocator;
pub mod api;
pub mod backup_agent;
pub mod build;
pub mod cron;
pub mod error;
pub mod http;
pub mod leader;
pub mod lean;
pub mod operator;
pub mod plugin;
pub mod reconcile;
pub mod redact;
pub mod status;
pub mod telemetry;
