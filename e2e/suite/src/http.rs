//! Plain HTTP/1.1 to cluster addresses: from this host straight to a Service's
//! ClusterIP or a pod IP on the local cluster (its node is this host), or, on
//! another cluster, with busybox wget from a helper pod inside it.
//!
//! Each request opens its own connection, so kube-proxy balances every
//! request anew and a deleted pod's connections cannot linger.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

use crate::cmd;
use crate::env::TestEnv;

#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub served_by: Option<String>,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.body)
            .with_context(|| format!("HTTP {} body is not JSON: {:?}", self.status, self.body))
    }

    /// "200 from shop-web-abc: {...}", for messages.
    pub fn summary(&self) -> String {
        let mut body = self.body.trim().to_string();
        body.truncate(160);
        format!(
            "{} from {}: {body}",
            self.status,
            self.served_by.as_deref().unwrap_or("?")
        )
    }
}

/// How requests reach the cluster.
#[derive(Clone)]
pub enum Http {
    /// From the test process itself (local cluster).
    Host,
    /// `kubectl exec` of wget in a helper pod (CLUSTER=current).
    Pod {
        env: Arc<TestEnv>,
        namespace: String,
        pod: String,
    },
}

/// The address ranges of the local cluster (Service and pod CIDRs) and
/// loopback: the only places the suite sends traffic to from this host.
pub fn ensure_cluster_address(ip: IpAddr) -> Result<()> {
    let ok = match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback() || (o[0] == 10 && (o[1] == 96 || o[1] == 244))
        }
        IpAddr::V6(v6) => v6.is_loopback(),
    };
    if !ok {
        bail!(
            "refusing to send traffic to {ip}: outside loopback and the local cluster's Service (10.96.0.0/16) and pod (10.244.0.0/16) ranges"
        );
    }
    Ok(())
}

pub struct Call<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub bearer: Option<&'a str>,
    pub body: Option<&'a Value>,
    pub timeout: Duration,
    /// The Host header, when not the address (a request to an ingress
    /// controller, routed by host name).
    pub host: Option<&'a str>,
}

impl<'a> Call<'a> {
    pub fn get(path: &'a str) -> Self {
        Self {
            method: "GET",
            path,
            bearer: None,
            body: None,
            timeout: Duration::from_secs(5),
            host: None,
        }
    }

    pub fn post(path: &'a str, body: &'a Value) -> Self {
        Self {
            method: "POST",
            body: Some(body),
            ..Self::get(path)
        }
    }

    pub fn bearer(mut self, token: &'a str) -> Self {
        self.bearer = Some(token);
        self
    }

    pub fn host(mut self, host: Option<&'a str>) -> Self {
        self.host = host;
        self
    }

    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl Http {
    pub async fn send(&self, addr: SocketAddr, call: Call<'_>) -> Result<Response> {
        match self {
            Http::Host => from_host(addr, &call).await,
            Http::Pod {
                env,
                namespace,
                pod,
            } => from_pod(env, namespace, pod, addr, &call).await,
        }
    }
}

async fn from_host(addr: SocketAddr, call: &Call<'_>) -> Result<Response> {
    ensure_cluster_address(addr.ip())?;
    let what = format!("{} http://{addr}{}", call.method, call.path);
    tokio::time::timeout(call.timeout, exchange(addr, call))
        .await
        .with_context(|| format!("{what}: no answer within {}ms", call.timeout.as_millis()))?
        .with_context(|| what)
}

async fn exchange(addr: SocketAddr, call: &Call<'_>) -> Result<Response> {
    let stream = TcpStream::connect(addr).await.context("connecting")?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .context("HTTP handshake")?;
    let driver = tokio::spawn(connection);
    let mut request = Request::builder()
        .method(call.method)
        .uri(call.path)
        .header(
            "host",
            call.host.map_or_else(|| addr.to_string(), str::to_string),
        )
        .header("connection", "close");
    if let Some(token) = call.bearer {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let body = match call.body {
        Some(value) => {
            request = request.header("content-type", "application/json");
            Bytes::from(serde_json::to_vec(value)?)
        }
        None => Bytes::new(),
    };
    let response = sender
        .send_request(request.body(Full::new(body))?)
        .await
        .context("sending the request")?;
    let status = response.status().as_u16();
    let served_by = response
        .headers()
        .get("x-served-by")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = response
        .into_body()
        .collect()
        .await
        .context("reading the body")?
        .to_bytes();
    driver.abort();
    Ok(Response {
        status,
        served_by,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

async fn from_pod(
    env: &TestEnv,
    namespace: &str,
    pod: &str,
    addr: SocketAddr,
    call: &Call<'_>,
) -> Result<Response> {
    let url = format!("http://{addr}{}", call.path);
    // `timeout`, not wget's -T: Debian's static busybox 1.35 wget segfaults with -T.
    let timeout = call.timeout.as_secs().max(1).to_string();
    let auth = call.bearer.map(|t| format!("Authorization: Bearer {t}"));
    let body = call.body.map(Value::to_string);
    let mut args = vec![
        "exec", "-n", namespace, pod, "--", "timeout", &timeout, "wget", "-S", "-q", "-O", "-",
    ];
    let host = call.host.map(|h| format!("Host: {h}"));
    if let Some(host) = &host {
        args.extend(["--header", host]);
    }
    if let Some(auth) = &auth {
        args.extend(["--header", auth]);
    }
    if let Some(body) = &body {
        args.extend([
            "--header",
            "Content-Type: application/json",
            "--post-data",
            body,
        ]);
    }
    args.push(&url);
    let out = cmd::run(
        env,
        "kubectl",
        &args,
        None,
        call.timeout + Duration::from_secs(10),
    )
    .await?;
    // wget -S prints the response head to stderr, two spaces in.
    let mut status = None;
    let mut served_by = None;
    for line in out.stderr.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("HTTP/1.1 ") {
            status = rest.split_whitespace().next().and_then(|s| s.parse().ok());
        } else if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("x-served-by")
        {
            served_by = Some(value.trim().to_string());
        }
    }
    match status {
        Some(status) => Ok(Response {
            status,
            served_by,
            body: out.stdout,
        }),
        None => bail!(
            "{} {url} from pod {pod}: no HTTP answer: {}",
            call.method,
            out.text()
        ),
    }
}
