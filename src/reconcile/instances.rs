//! The operator's reads and writes of a replicated PostgreSQL store's
//! instances (the decision is `phases::failover`, pure).
//!
//! A tenant with `edit` in the namespace can edit Services, Endpoints and
//! pods' labels, so nothing here trusts a name: the pods are those whose
//! controller is the store's StatefulSet, itself controlled by this stack
//! (both uids checked), and the operator connects to a pod's own IP from
//! its status, over TLS verified against the stack's CA for that pod's
//! name, as the store's administrator. It never connects through a
//! Service or DNS, so no edit can aim a promotion at another stack's store.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::networking::v1::NetworkPolicyPeer;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::json;
use tracing::{info, warn};

use super::phases::failover::{Action, Instance, Role, Server};
use crate::build::{StoreCredentials, labels, names};

/// Connecting and querying one instance, at most.
const TIMEOUT: Duration = Duration::from_secs(2);
/// pg_promote waits this long for the promotion to finish.
const PROMOTE_WAIT: i32 = 20;

/// What the store's instances said, for `failover::decide`.
pub struct Seen {
    pub instances: Vec<Instance>,
    /// Pod name to uid: the writes act only on the pods seen.
    uids: BTreeMap<String, String>,
    /// Pod name to IP, for the promotion.
    ips: BTreeMap<String, String>,
    access: Access,
}

/// How to reach the instances.
pub struct Access {
    pub namespace: String,
    pub stack_uid: String,
    pub stateful_set: StatefulSet,
    pub admin: StoreCredentials,
    pub replication: StoreCredentials,
    /// The stack's CA certificate, PEM.
    pub ca: String,
    pub port: u16,
    /// The label selector of the store's pods (the cached StatefulSet
    /// keeps no selector): the ownership check below is what counts.
    pub selector: String,
}

/// The store's pods and what each server answers.
pub async fn observe(pods: &Api<Pod>, access: Access) -> Result<Seen, String> {
    let sts = &access.stateful_set;
    let sts_uid = sts.uid().unwrap_or_default();
    let owned = sts
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == access.stack_uid);
    if !owned {
        return Err("the StatefulSet is not this stack's".into());
    }
    let selector = access.selector.clone();
    let list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| format!("could not list the store's pods: {e}"))?;
    let headless = names::headless(&sts.name_any());
    let mut uids = BTreeMap::new();
    let mut ips = BTreeMap::new();
    let mut probes = Vec::new();
    for pod in list.items {
        // Only the StatefulSet's own pods, whatever their labels say.
        if !pod
            .owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && o.uid == sts_uid)
        {
            continue;
        }
        // The StatefulSet's pods never use the node's network: one that
        // does was made by someone else, and its IP is the node's.
        if pod.spec.as_ref().and_then(|s| s.host_network) == Some(true) {
            continue;
        }
        let name = pod.name_any();
        let role = match pod.labels().get(labels::STORE_ROLE).map(String::as_str) {
            Some(labels::PRIMARY) => Some(Role::Primary),
            Some(labels::REPLICA) => Some(Role::Replica),
            _ => None,
        };
        let status = pod.status.as_ref();
        let ready = status
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        let terminating = pod.metadata.deletion_timestamp.is_some();
        let ip = status.and_then(|s| s.pod_ip.clone());
        uids.insert(name.clone(), pod.uid().unwrap_or_default());
        if let Some(ip) = &ip {
            ips.insert(name.clone(), ip.clone());
        }
        let host = format!("{name}.{headless}.{}.svc", access.namespace);
        let access = &access;
        probes.push(async move {
            let server = match (&ip, terminating) {
                (Some(ip), false) => query(access, ip, &host).await,
                _ => None,
            };
            Instance {
                pod: name,
                role,
                terminating,
                ready,
                server,
            }
        });
    }
    let instances = futures::future::join_all(probes).await;
    Ok(Seen {
        instances,
        uids,
        ips,
        access,
    })
}

/// What the server at `ip` (whose certificate names `host`) answers.
async fn query(access: &Access, ip: &str, host: &str) -> Option<Server> {
    const SQL: &str = "select pg_is_in_recovery(),
        case when pg_is_in_recovery()
          then greatest(pg_last_wal_receive_lsn() - '0/0', pg_last_wal_replay_lsn() - '0/0')::bigint
          else (pg_current_wal_lsn() - '0/0')::bigint end,
        coalesce((select status = 'streaming' from pg_stat_wal_receiver), false),
        case when pg_is_in_recovery()
          then coalesce((select received_tli::bigint from pg_stat_wal_receiver),
                        (select timeline_id::bigint from pg_control_checkpoint()))
          else ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::bigint end,
        exists (select from pg_roles where rolname = $1 and rolreplication and rolcanlogin),
        (select system_identifier::text from pg_control_system()),
        current_setting('synchronous_standby_names')";
    let run = async {
        let client = connect(access, ip, host).await?;
        let row = client
            .query_one(SQL, &[&access.replication.username])
            .await
            .map_err(|e| e.to_string())?;
        let recovering: bool = row.try_get(0).map_err(|e| e.to_string())?;
        Ok::<_, String>(Server {
            primary: !recovering,
            lsn: row.try_get::<_, Option<i64>>(1).ok().flatten().unwrap_or(0),
            streaming: row.try_get(2).unwrap_or(false),
            timeline: row.try_get::<_, Option<i64>>(3).ok().flatten().unwrap_or(0),
            replication_role: row.try_get(4).unwrap_or(false),
            system: row.try_get(5).unwrap_or_default(),
            synchronous: row.try_get(6).unwrap_or_default(),
        })
    };
    match tokio::time::timeout(TIMEOUT, run).await {
        Ok(Ok(server)) => Some(server),
        Ok(Err(error)) => {
            warn!(%error, %host, "an instance did not answer");
            None
        }
        Err(_) => None,
    }
}

async fn connect(access: &Access, ip: &str, host: &str) -> Result<tokio_postgres::Client, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(access.ca.as_bytes()) {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tls = tokio_postgres_rustls::MakeRustlsConnect::new(config);
    let addr: std::net::IpAddr = ip.parse().map_err(|_| format!("bad pod IP {ip}"))?;
    let mut pg = tokio_postgres::Config::new();
    pg.host(host)
        .hostaddr(addr)
        .port(access.port)
        .user(&access.admin.username)
        .password(&access.admin.password)
        .dbname("postgres")
        .application_name("appstack-operator")
        .ssl_mode(tokio_postgres::config::SslMode::Require)
        .connect_timeout(TIMEOUT);
    let (client, connection) = pg.connect(tls).await.map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// Carries the actions out, in order; stops at the first that fails
/// (what follows a failed step must not happen: a label after a failed
/// promotion).
pub async fn apply(pods: &Api<Pod>, seen: &Seen, actions: &[Action]) -> Result<(), String> {
    for action in actions {
        match action {
            Action::Label(pod, role) => {
                let value = match role {
                    Role::Primary => labels::PRIMARY,
                    Role::Replica => labels::REPLICA,
                };
                label(pods, seen, pod, Some(value)).await?;
            }
            Action::Unlabel(pod) => label(pods, seen, pod, None).await?,
            Action::Fence(pod) => {
                info!(%pod, "fencing the old primary (deleting its pod, 1 s grace)");
                delete(pods, seen, pod, Some(1)).await?;
            }
            Action::Kill(pod) => {
                warn!(%pod, "the old primary's pod did not stop: deleting it with no grace");
                delete(pods, seen, pod, Some(0)).await?;
            }
            Action::Restart(pod) => {
                info!(%pod, "restarting a replica that cannot follow the primary's timeline");
                delete(pods, seen, pod, None).await?;
            }
            Action::ReplicationRole(pod) => {
                let client = connect_to(seen, pod).await?;
                // The statement is made by the server (format's %I and %L
                // quote the name and the password).
                let statement = quoted(
                    &client,
                    "select format('CREATE ROLE %I LOGIN REPLICATION PASSWORD %L', $1::text, $2::text)",
                    &[&seen.access.replication.username, &seen.access.replication.password],
                )
                .await?;
                client
                    .batch_execute(&statement)
                    .await
                    .map_err(|e| format!("creating the replication role on {pod}: {e}"))?;
                info!(%pod, "created the replicas' role");
            }
            Action::Synchronous(pod, names) => {
                let client = connect_to(seen, pod).await?;
                let statement = quoted(
                    &client,
                    "select format('ALTER SYSTEM SET synchronous_standby_names = %L', $1::text)",
                    &[names],
                )
                .await?;
                client
                    .batch_execute(&statement)
                    .await
                    .and(client.batch_execute("select pg_reload_conf()").await)
                    .map_err(|e| format!("setting the synchronous replicas on {pod}: {e}"))?;
                info!(%pod, %names, "synchronous_standby_names set");
            }
            Action::Promote(pod) => {
                info!(%pod, "promoting");
                let client = connect_to(seen, pod).await?;
                let row = client
                    .query_one("select pg_promote(true, $1)", &[&PROMOTE_WAIT])
                    .await
                    .map_err(|e| format!("pg_promote on {pod}: {e}"))?;
                let promoted: bool = row.try_get(0).map_err(|e| e.to_string())?;
                if !promoted {
                    return Err(format!(
                        "{pod} did not finish its promotion in {PROMOTE_WAIT} s"
                    ));
                }
            }
        }
    }
    Ok(())
}

/// A connection to one of the pods seen, by its IP.
/// A statement the server writes with `format()` (%I and %L quote names
/// and values: utility statements take no bind parameters).
async fn quoted(
    client: &tokio_postgres::Client,
    sql: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> Result<String, String> {
    let row = client
        .query_one(sql, params)
        .await
        .map_err(|e| e.to_string())?;
    row.try_get(0).map_err(|e| e.to_string())
}

async fn connect_to(seen: &Seen, pod: &str) -> Result<tokio_postgres::Client, String> {
    let access = &seen.access;
    let ip = seen.ips.get(pod).ok_or(format!("pod {pod} has no IP"))?;
    let headless = names::headless(&access.stateful_set.name_any());
    let host = format!("{pod}.{headless}.{}.svc", access.namespace);
    connect(access, ip, &host).await
}

/// Sets or removes the role label, on the pod seen (its uid in the patch's
/// precondition: a pod made again since is not touched).
async fn label(pods: &Api<Pod>, seen: &Seen, pod: &str, value: Option<&str>) -> Result<(), String> {
    let uid = seen
        .uids
        .get(pod)
        .ok_or(format!("pod {pod} was not seen"))?;
    let patch = json!({
        "metadata": {"uid": uid, "labels": {labels::STORE_ROLE: value}}
    });
    match pods
        .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        // Gone (or made again) since: nothing to label.
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(format!("labelling pod {pod}: {e}")),
    }
}

async fn delete(pods: &Api<Pod>, seen: &Seen, pod: &str, grace: Option<u32>) -> Result<(), String> {
    let uid = seen
        .uids
        .get(pod)
        .ok_or(format!("pod {pod} was not seen"))?;
    let params = DeleteParams {
        grace_period_seconds: grace,
        preconditions: Some(kube::api::Preconditions {
            uid: Some(uid.clone()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    match pods.delete(pod, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
        Err(e) => Err(format!("deleting pod {pod}: {e}")),
    }
}

/// Who the operator's pods are, for the store's NetworkPolicy: the pods of
/// its own namespace (POD_NAMESPACE, set by the chart) labelled as the
/// operator. None when it runs outside the cluster.
pub fn operator_peer() -> Option<NetworkPolicyPeer> {
    static PEER: OnceLock<Option<NetworkPolicyPeer>> = OnceLock::new();
    PEER.get_or_init(|| {
        let namespace = std::env::var("POD_NAMESPACE").ok()?;
        Some(NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_string(),
                    namespace,
                )])),
                ..LabelSelector::default()
            }),
            pod_selector: Some(LabelSelector {
                match_labels: Some(BTreeMap::from([(
                    labels::COMPONENT.to_string(),
                    "operator".to_string(),
                )])),
                ..LabelSelector::default()
            }),
            ..NetworkPolicyPeer::default()
        })
    })
    .clone()
}
