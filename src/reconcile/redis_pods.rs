//! Asking the pods of a Redis store with replicas who the master is, and
//! labelling them (the I/O around phases::redis_roles).
//!
//! A tenant who can edit the namespace can edit pods, Services and
//! EndpointSlices there, so nothing names the address: the operator lists
//! the pods, keeps those whose controller is the store's StatefulSet (which
//! the stack controls), and connects to the IP in each one's status, on
//! Redis' and Sentinel's ports only, with TLS verified against the stack's
//! own CA for the pod's DNS name when the store has TLS, as the
//! administrator. Every answer is bounded (a few seconds, a few KiB), and a
//! pod that does not answer is one that says nothing.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tracing::{debug, warn};

use super::phases::redis_roles::{Link, PodSeen, Relabel, Role, RolesSeen};
use crate::build::labels;
use crate::build::stores::redis_ha;

const TIMEOUT: Duration = Duration::from_secs(2);
/// No answer of Redis or Sentinel the operator reads is longer.
const MAX_BULK: usize = 4096;
const MAX_ITEMS: usize = 16;

/// How to reach the store's pods.
pub struct Access {
    pub stack: String,
    pub namespace: String,
    pub stack_uid: String,
    pub admin_password: String,
    /// The stack's CA (PEM), with TLS.
    pub ca: Option<String>,
    pub instances: i32,
}

/// The store's pods and what they say. None when the StatefulSet is not
/// the stack's or the pods cannot be listed.
pub async fn observe(client: &Client, sts: &StatefulSet, access: &Access) -> Option<RolesSeen> {
    let controlled = sts
        .owner_references()
        .iter()
        .any(|o| o.controller == Some(true) && o.uid == access.stack_uid);
    let sts_uid = sts.uid()?;
    if !controlled {
        return None;
    }
    let api: Api<Pod> = Api::namespaced(client.clone(), &access.namespace);
    let selector = format!(
        "{}=redis,{}={}",
        labels::NAME,
        labels::INSTANCE,
        access.stack
    );
    let pods = match api.list(&ListParams::default().labels(&selector)).await {
        Ok(pods) => pods.items,
        Err(error) => {
            warn!(%error, "could not list the Redis pods");
            return None;
        }
    };
    let set = sts.name_any();
    let tls = match &access.ca {
        Some(ca) => match connector(ca) {
            Some(c) => Some(c),
            None => {
                warn!("the stack's CA does not parse: Redis pods not asked");
                return None;
            }
        },
        None => None,
    };
    let domain = format!(
        "{}.{}.svc",
        crate::build::names::headless(&set),
        access.namespace
    );
    let of_set = |p: &Pod| {
        p.owner_references()
            .iter()
            .any(|o| o.controller == Some(true) && o.uid == sts_uid)
            && ordinal(&p.name_any(), &set).is_some()
    };
    let owned: Vec<&Pod> = pods.iter().filter(|p| of_set(p)).take(8).collect();
    let asks = owned.iter().map(|pod| {
        let tls = tls.clone();
        let domain = domain.clone();
        let set = set.clone();
        async move { ask(pod, &set, &domain, access, tls).await }
    });
    let foreign_masters = pods
        .iter()
        .filter(|p| !of_set(p))
        .filter(|p| {
            p.labels().get(labels::STORE_ROLE).map(String::as_str) == Some(labels::REDIS_MASTER)
        })
        .map(ResourceExt::name_any)
        .take(8)
        .collect();
    let pods = futures::future::join_all(asks).await;
    Some(RolesSeen {
        pods,
        instances: access.instances,
        foreign_masters,
    })
}

/// `<set>-<n>`'s n.
fn ordinal(pod: &str, set: &str) -> Option<u32> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

/// The pod name a Sentinel's answer names: `<set>-<n>.<domain>` only.
fn pod_of(host: &str, set: &str, domain: &str) -> Option<String> {
    let name = host.strip_suffix(domain)?.strip_suffix('.')?;
    ordinal(name, set).map(|_| name.to_string())
}

async fn ask(
    pod: &Pod,
    set: &str,
    domain: &str,
    access: &Access,
    tls: Option<tokio_rustls::TlsConnector>,
) -> PodSeen {
    let name = pod.name_any();
    let label = pod.labels().get(labels::STORE_ROLE).cloned();
    let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    let ip: Option<IpAddr> = pod
        .status
        .as_ref()
        .and_then(|s| s.pod_ip.as_deref())
        .and_then(|ip| ip.parse().ok());
    let gone = pod.metadata.deletion_timestamp.is_some() || !running || ip.is_none();
    let mut seen = PodSeen {
        name: name.clone(),
        label,
        gone,
        sentinel_says: None,
        role: None,
    };
    let Some(ip) = ip.filter(|_| !gone) else {
        return seen;
    };
    let server_name = format!("{name}.{domain}");
    let master = redis_ha::master_name(&access.stack);
    let sentinel = SocketAddr::new(ip, u16::try_from(redis_ha::SENTINEL_PORT).unwrap_or(26379));
    let redis = SocketAddr::new(ip, u16::try_from(redis_ha::REDIS_PORT).unwrap_or(6379));
    let ask_master = ["SENTINEL", "get-master-addr-by-name", master.as_str()];
    let (said, role) = tokio::join!(
        query(
            sentinel,
            &server_name,
            tls.clone(),
            &access.admin_password,
            &ask_master,
        ),
        query(redis, &server_name, tls, &access.admin_password, &["ROLE"]),
    );
    seen.sentinel_says = match said {
        Ok(Value::Array(items)) => match items.first() {
            Some(Value::Bulk(host)) => pod_of(host, set, domain),
            _ => None,
        },
        Ok(_) => None,
        Err(error) => {
            debug!(pod = %name, %error, "Sentinel did not answer");
            None
        }
    };
    seen.role = match role {
        Ok(Value::Array(items)) => match items.first() {
            Some(Value::Bulk(r)) if r == "master" => Some(Role::Master),
            Some(Value::Bulk(r)) if r == "slave" => Some(Role::Replica(match items.get(3) {
                Some(Value::Bulk(s)) if s == "connected" => Link::Up,
                Some(Value::Bulk(s)) if s == "sync" || s == "connecting" => Link::Syncing,
                _ => Link::Down,
            })),
            _ => None,
        },
        Ok(_) => None,
        Err(error) => {
            debug!(pod = %name, %error, "Redis did not answer");
            None
        }
    };
    seen
}

/// The pods' label changes, removals first; a new master label only when
/// every removal succeeded. Returns the pod the write Service selects
/// afterwards (as far as the operator knows).
pub async fn relabel(client: &Client, namespace: &str, plan: &Relabel) -> Option<String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let params = PatchParams::default();
    let mut removed = true;
    for pod in &plan.unlabel {
        // A pod that goes on as a replica is labelled so at once.
        let value = plan.replicas.contains(pod).then_some(labels::REPLICA);
        let patch = json!({"metadata": {"labels": {labels::STORE_ROLE: value}}});
        match api.patch(pod, &params, &Patch::Merge(&patch)).await {
            Ok(_) => {}
            // A pod already gone carries no label.
            Err(kube::Error::Api(e)) if e.code == 404 => {}
            Err(error) => {
                warn!(%pod, %error, "could not remove the master label");
                removed = false;
            }
        }
    }
    if !removed {
        return None;
    }
    if let Some(pod) = &plan.master {
        let patch = json!({"metadata": {"labels": {labels::STORE_ROLE: labels::REDIS_MASTER}}});
        if let Err(error) = api.patch(pod, &params, &Patch::Merge(&patch)).await {
            warn!(%pod, %error, "could not set the master label");
            return None;
        }
    }
    for pod in plan.replicas.iter().filter(|p| !plan.unlabel.contains(p)) {
        let patch = json!({"metadata": {"labels": {labels::STORE_ROLE: labels::REPLICA}}});
        if let Err(error) = api.patch(pod, &params, &Patch::Merge(&patch)).await {
            debug!(%pod, %error, "could not set the replica label");
        }
    }
    plan.after.clone()
}

fn connector(ca_pem: &str) -> Option<tokio_rustls::TlsConnector> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.ok()?).ok()?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .ok()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Some(tokio_rustls::TlsConnector::from(Arc::new(config)))
}

/// A RESP2 value, as far as the operator reads them.
#[derive(Debug, PartialEq)]
enum Value {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(String),
    Nil,
    Array(Vec<Value>),
}

#[derive(Debug, thiserror::Error)]
enum AskError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("bad answer")]
    Protocol,
    #[error("refused: {0}")]
    Refused(String),
}

/// AUTH as the administrator, then `command`: its answer.
async fn query(
    addr: SocketAddr,
    server_name: &str,
    tls: Option<tokio_rustls::TlsConnector>,
    password: &str,
    command: &[&str],
) -> Result<Value, AskError> {
    let work = async {
        let tcp = TcpStream::connect(addr).await?;
        match tls {
            Some(tls) => {
                let name = rustls::pki_types::ServerName::try_from(server_name.to_string())
                    .map_err(|_| AskError::Protocol)?;
                let stream = tls.connect(name, tcp).await?;
                exchange(stream, password, command).await
            }
            None => exchange(tcp, password, command).await,
        }
    };
    tokio::time::timeout(TIMEOUT, work)
        .await
        .map_err(|_| AskError::Timeout)?
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin + Send>(
    stream: S,
    password: &str,
    command: &[&str],
) -> Result<Value, AskError> {
    let mut stream = BufReader::new(stream);
    let mut out = encode(&["AUTH", "default", password]);
    out.extend(encode(command));
    stream.get_mut().write_all(&out).await?;
    stream.get_mut().flush().await?;
    if let Value::Error(e) = read(&mut stream, 0).await? {
        return Err(AskError::Refused(e));
    }
    match read(&mut stream, 0).await? {
        Value::Error(e) => Err(AskError::Refused(e)),
        v => Ok(v),
    }
}

fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend(format!("${}\r\n", a.len()).into_bytes());
        out.extend(a.as_bytes());
        out.extend(b"\r\n");
    }
    out
}

async fn line<R: AsyncBufReadExt + Unpin>(r: &mut R) -> Result<String, AskError> {
    let mut buf = Vec::new();
    let mut limited = r.take(MAX_BULK as u64 + 2);
    limited.read_until(b'\n', &mut buf).await?;
    if !buf.ends_with(b"\r\n") {
        return Err(AskError::Protocol);
    }
    buf.truncate(buf.len() - 2);
    String::from_utf8(buf).map_err(|_| AskError::Protocol)
}

fn read<'a, R: AsyncBufReadExt + Unpin + Send>(
    r: &'a mut R,
    depth: usize,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Value, AskError>> + Send + 'a>> {
    Box::pin(async move {
        if depth > 3 {
            return Err(AskError::Protocol);
        }
        let head = line(r).await?;
        let (kind, rest) = head.split_at_checked(1).ok_or(AskError::Protocol)?;
        let number = || rest.parse::<i64>().map_err(|_| AskError::Protocol);
        Ok(match kind {
            "+" => Value::Simple(rest.to_string()),
            "-" => Value::Error(rest.to_string()),
            ":" => Value::Int(number()?),
            "$" => {
                let n = number()?;
                if n < 0 {
                    return Ok(Value::Nil);
                }
                let n = usize::try_from(n).map_err(|_| AskError::Protocol)?;
                if n > MAX_BULK {
                    return Err(AskError::Protocol);
                }
                let mut buf = vec![0; n + 2];
                r.read_exact(&mut buf).await?;
                buf.truncate(n);
                Value::Bulk(String::from_utf8(buf).map_err(|_| AskError::Protocol)?)
            }
            "*" => {
                let n = number()?;
                if n < 0 {
                    return Ok(Value::Nil);
                }
                let n = usize::try_from(n).map_err(|_| AskError::Protocol)?;
                if n > MAX_ITEMS {
                    return Err(AskError::Protocol);
                }
                let mut items = Vec::with_capacity(n);
                for _ in 0..n {
                    items.push(read(r, depth + 1).await?);
                }
                Value::Array(items)
            }
            _ => return Err(AskError::Protocol),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn parse(bytes: &[u8]) -> Result<Value, AskError> {
        let mut r = BufReader::new(bytes);
        read(&mut r, 0).await
    }

    #[tokio::test]
    async fn reads_the_answers_it_needs_and_refuses_oversized_ones() {
        let role = b"*5\r\n$5\r\nslave\r\n$9\r\nr-0.r.svc\r\n:6379\r\n$9\r\nconnected\r\n:42\r\n";
        assert_eq!(
            parse(role).await.unwrap(),
            Value::Array(vec![
                Value::Bulk("slave".into()),
                Value::Bulk("r-0.r.svc".into()),
                Value::Int(6379),
                Value::Bulk("connected".into()),
                Value::Int(42),
            ])
        );
        assert_eq!(parse(b"*-1\r\n").await.unwrap(), Value::Nil);
        assert_eq!(parse(b"+OK\r\n").await.unwrap(), Value::Simple("OK".into()));
        assert!(parse(b"$999999\r\n").await.is_err());
        assert!(parse(b"*9999\r\n").await.is_err());
        assert!(
            parse(b"*1\r\n*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n")
                .await
                .is_err()
        );
        assert!(parse(&[b'+'; 10_000]).await.is_err());
    }

    /// Against a live pod: APPSTACK_REDIS_POD_IP, REDISCLI_AUTH (no TLS).
    #[tokio::test]
    #[ignore = "needs a Redis pod with Sentinel"]
    async fn asks_a_live_pod() {
        let ip: IpAddr = std::env::var("APPSTACK_REDIS_POD_IP")
            .unwrap()
            .parse()
            .unwrap();
        let password = std::env::var("REDISCLI_AUTH").unwrap();
        let master = std::env::var("APPSTACK_MASTER_NAME").unwrap();
        let said = query(
            SocketAddr::new(ip, 26379),
            "x",
            None,
            &password,
            &["SENTINEL", "get-master-addr-by-name", &master],
        )
        .await;
        let role = query(SocketAddr::new(ip, 6379), "x", None, &password, &["ROLE"]).await;
        println!("sentinel: {said:?}\nrole: {role:?}");
        assert!(matches!(said, Ok(Value::Array(_))));
        assert!(matches!(role, Ok(Value::Array(_))));
    }

    #[test]
    fn only_the_stores_own_pods_are_named() {
        let d = "s-redis-headless.ns.svc";
        assert_eq!(
            pod_of("s-redis-1.s-redis-headless.ns.svc", "s-redis", d).as_deref(),
            Some("s-redis-1")
        );
        assert_eq!(pod_of("evil.example.com", "s-redis", d), None);
        assert_eq!(
            pod_of("s-redis-x.s-redis-headless.ns.svc", "s-redis", d),
            None
        );
        assert_eq!(pod_of("10.0.0.3", "s-redis", d), None);
        assert_eq!(
            pod_of("s-redis-1.s-redis-headless.other.svc", "s-redis", d),
            None
        );
    }
}
