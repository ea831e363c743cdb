//! Helpers shared by the end-to-end scenarios (tests/scenarios.rs): a kube
//! client from KUBECONFIG, a namespace per scenario, bounded waits with a
//! description, Server-Side Apply of YAML, HTTP to cluster addresses without
//! port-forwarding, a steady client load, and the summary table.

pub mod apply;
pub mod appstack;
pub mod backups;
pub mod children;
pub mod client;
pub mod cmd;
pub mod diagnose;
pub mod endpoints;
pub mod env;
pub mod external;
pub mod http;
pub mod load;
pub mod namespace;
pub mod node;
pub mod operator;
pub mod pods;
pub mod runner;
pub mod s3;
pub mod shop;
pub mod stores;
pub mod table;
pub mod wait;
