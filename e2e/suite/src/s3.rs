//! The local cluster's S3 server (versitygw), reached from this host the way
//! anyone holding its keys would reach it: curl with SigV4.

use std::time::Duration;

use anyhow::{Context, Result};
use k8s_openapi::api::core::v1::{Secret, Service};
use kube::api::{Api, PostParams};

use crate::cmd;
use crate::runner::Ctx;

/// The server as pods reach it.
pub const ENDPOINT: &str = "http://s3.kube-system.svc:9000";

/// The local S3 server, from this host: its address and root keys.
pub struct S3 {
    url: String,
    pub key: String,
    pub secret: String,
}

impl S3 {
    pub async fn local(ctx: &Ctx) -> Result<Self> {
        let text = cmd::run_ok(
            &ctx.env,
            "e2e/cluster.sh",
            &["s3-credentials"],
            None,
            Duration::from_secs(10),
        )
        .await?;
        let value = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}=")))
                .map(str::to_string)
                .with_context(|| format!("{k} missing from e2e/cluster.sh s3-credentials"))
        };
        let svc = Api::<Service>::namespaced(ctx.client.clone(), "kube-system")
            .get("s3")
            .await?;
        let ip = svc
            .spec
            .and_then(|s| s.cluster_ip)
            .context("Service s3 has no ClusterIP")?;
        Ok(Self {
            url: format!("http://{ip}:9000"),
            key: value("AWS_ACCESS_KEY_ID")?,
            secret: value("AWS_SECRET_ACCESS_KEY")?,
        })
    }

    /// The Secret `name` in `namespace` holding these keys, as AppStack reads it.
    pub async fn keys_secret(&self, ctx: &Ctx, namespace: &str, name: &str) -> Result<()> {
        let keys = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            string_data: Some(
                [
                    ("AWS_ACCESS_KEY_ID".to_string(), self.key.clone()),
                    ("AWS_SECRET_ACCESS_KEY".to_string(), self.secret.clone()),
                ]
                .into(),
            ),
            ..Secret::default()
        };
        Api::<Secret>::namespaced(ctx.client.clone(), namespace)
            .create(&PostParams::default(), &keys)
            .await
            .with_context(|| format!("creating Secret {name} in {namespace}"))?;
        Ok(())
    }

    /// The keys under `prefix` (ListObjectsV2, first page).
    pub async fn list(&self, ctx: &Ctx, bucket: &str, prefix: &str) -> Result<String> {
        // SigV4 signs the query as encoded: '/' must travel as %2F.
        let prefix = prefix.replace('/', "%2F");
        self.curl(
            ctx,
            "GET",
            &format!("/{bucket}?list-type=2&prefix={prefix}"),
            None,
        )
        .await
    }

    /// The keys under `prefix`, in order (first page: up to 1000).
    pub async fn keys(&self, ctx: &Ctx, bucket: &str, prefix: &str) -> Result<Vec<String>> {
        let xml = self.list(ctx, bucket, prefix).await?;
        Ok(xml
            .split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(|k| k.replace("&amp;", "&"))
            .collect())
    }

    /// Writes `body` as `key`.
    pub async fn put(&self, ctx: &Ctx, bucket: &str, key: &str, body: &str) -> Result<()> {
        self.curl(
            ctx,
            "PUT",
            &format!("/{bucket}/{}", encode(key)),
            Some(body),
        )
        .await
        .map(drop)
    }

    /// The object `key`.
    pub async fn get(&self, ctx: &Ctx, bucket: &str, key: &str) -> Result<String> {
        self.curl(ctx, "GET", &format!("/{bucket}/{}", encode(key)), None)
            .await
    }

    /// curl with SigV4, as any S3 client signs.
    pub async fn curl(
        &self,
        ctx: &Ctx,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> Result<String> {
        let user = format!("{}:{}", self.key, self.secret);
        let url = format!("{}{path}", self.url);
        let mut args = vec![
            "-fsS",
            "--path-as-is",
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
            "--user",
            &user,
            "-H",
            "x-amz-content-sha256: UNSIGNED-PAYLOAD",
            "-X",
            method,
        ];
        if body.is_some() {
            args.extend(["--data-binary", "@-"]);
        }
        args.push(&url);
        cmd::run_ok(&ctx.env, "curl", &args, body, Duration::from_secs(20)).await
    }
}

/// A key as a URL path: every byte but unreserved characters and '/'
/// percent-encoded, as SigV4 signs it.
fn encode(key: &str) -> String {
    key.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
