//! One bucket and one pair of keys shared by two namespaces (common: a
//! platform's single backup bucket). A tenant of namespace A who aims its
//! prefix at namespace B (`../B` is refused at admission; `B` lands under
//! `A/B/`) never touches B's backups. What the bucket holds is not trusted
//! by a restore: a `postgresql.auto.conf` planted in a base backup is not
//! what the restored server runs with, and a key that the agent refuses
//! (one that could leave the restore's directory) stops the restore before
//! anything is written, with a message naming the key.

use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use appstack_e2e::apply;
use appstack_e2e::appstack;
use appstack_e2e::backups;
use appstack_e2e::namespace;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::s3::{ENDPOINT, S3};
use appstack_e2e::stores;
use serde_json::{Value, json};

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

/// What namespace B's own backups of a stack named `shop` would be.
const B_LABEL: &str = "20200101T000000Z";

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let other =
        namespace::create(&ctx.client, "backup-s3-namespaces-b", &ctx.env.pod_security).await?;
    ctx.step(format!("second namespace {other} (B)"));
    let result = in_namespaces(ctx, &other).await;
    if !ctx.env.keep
        && let Err(e) = namespace::delete(&ctx.client, &other).await
    {
        ctx.step(format!("could not delete namespace {other}: {e:#}"));
    }
    result
}

async fn in_namespaces(ctx: &mut Ctx, other: &str) -> Result<()> {
    let s3 = S3::local(ctx).await?;
    let bucket = format!("appstack-{}", ctx.ns.rsplit('-').next().unwrap_or("e2e"));
    s3.curl(ctx, "PUT", &format!("/{bucket}"), None).await?;
    for ns in [ctx.ns.as_str(), other] {
        s3.keys_secret(ctx, ns, "s3-keys").await?;
    }
    ctx.step(format!(
        "bucket {bucket} ({ENDPOINT}); the same keys in Secret s3-keys of both namespaces"
    ));
    // B's backups, where B's stack `shop` keeps them by default.
    let b_keys = [
        format!("{other}/shop/postgres/base/{B_LABEL}.end"),
        format!("{other}/shop/postgres/base/{B_LABEL}/PG_VERSION"),
    ];
    for key in &b_keys {
        s3.put(ctx, &bucket, key, "B's own backup\n").await?;
    }

    // A aims at B: refused at admission with a path out, admitted inside A.
    for bad in [format!("../{other}"), format!("x/./{other}")] {
        let mut m = appstack::shop_manifest(ctx)?;
        m["metadata"]["name"] = json!("aimed");
        m["spec"]["postgres"]["backup"] = json!({"target": {"s3": {"bucket": bucket, "endpoint": ENDPOINT, "secretName": "s3-keys", "prefix": bad}}});
        match apply::object(&ctx.client, &ctx.ns, m).await {
            Ok(_) => bail!("prefix {bad:?} was admitted"),
            Err(e) => {
                let said = format!("{e:#}");
                if !said.contains("s3.prefix") {
                    bail!(
                        "prefix {bad:?} refused, but the message does not name s3.prefix: {said}"
                    );
                }
                ctx.step(format!(
                    "prefix {bad:?} refused at admission: {}",
                    stores::first_line(&said)
                ));
            }
        }
    }
    let target =
        json!({"bucket": bucket, "endpoint": ENDPOINT, "secretName": "s3-keys", "prefix": other});
    let stack = appstack::deploy_shop(ctx, |m| {
        m["spec"]["postgres"]["backup"] =
            json!({"schedule": "0 3 1 1 *", "target": {"volume": {"size": "1Gi"}, "s3": target}});
    })
    .await?;
    let pg = format!("{}-0", stack.postgres());
    stores::psql_as_app(ctx, &pg, "create table ledger (note text primary key)").await?;
    stores::psql_as_app(ctx, &pg, "insert into ledger values ('before-backup')").await?;
    backups::take(ctx, &stack.name, "postgres", "pg-1").await?;
    let status =
        backups::wait_status(ctx, &stack.name, "postgres", None, Duration::from_secs(60)).await?;
    let label = status["lastSuccessful"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // A's backup is under A/B/, and B's are exactly as they were.
    let own = format!("{}/{other}/{}/postgres/", ctx.ns, stack.name);
    let end = s3
        .keys(ctx, &bucket, &format!("{own}base/{label}.end"))
        .await?;
    if end.is_empty() {
        bail!("A's base backup {label} is not under {own}");
    }
    let mut in_b = s3.keys(ctx, &bucket, &format!("{other}/")).await?;
    in_b.sort();
    if in_b != b_keys {
        bail!("B's part of the bucket changed: expected exactly {b_keys:?}, found {in_b:?}");
    }
    for key in &b_keys {
        let body = s3.get(ctx, &bucket, key).await?;
        if body != "B's own backup\n" {
            bail!("{key} was overwritten: {body:?}");
        }
    }
    let top = top_level(&s3, ctx, &bucket).await?;
    let mut expected = vec![format!("{}/", ctx.ns), format!("{other}/")];
    expected.sort();
    if top != expected {
        bail!("expected the bucket's top level to be {expected:?} (A's and B's), found {top:?}");
    }
    ctx.step(format!(
        "prefix {other:?} in A: base backup {label} under {own}; B's keys untouched; top level {top:?}"
    ));

    // A postgresql.auto.conf planted in the base backup (pg_verifybackup
    // does not check that file): the restored server must not run with it.
    let auto_conf = format!("{own}base/{label}/postgresql.auto.conf");
    let mut planted = s3.get(ctx, &bucket, &auto_conf).await.unwrap_or_default();
    planted.push_str(
        "ssl_passphrase_command = 'touch /tmp/planted'\narchive_command = 'touch /tmp/planted'\n",
    );
    s3.put(ctx, &bucket, &auto_conf, &planted).await?;
    ctx.step(format!(
        "planted ssl_passphrase_command and archive_command in {auto_conf}"
    ));
    let restore = json!({"from": stack.name, "stores": ["postgres"], "s3": target});
    let clone = clone_of(&stack.manifest, "planted", &restore);
    let start = Instant::now();
    apply::object(&ctx.client, &ctx.ns, clone).await?;
    appstack::wait_ready(&ctx.client, &ctx.ns, "planted", Duration::from_secs(420)).await?;
    ctx.recovered(
        "restore from the planted bucket until Ready",
        start.elapsed(),
    );
    let clone_pg = "planted-postgres-0";
    let rows =
        stores::psql_as_app(ctx, clone_pg, "select string_agg(note, ',') from ledger").await?;
    if !rows.0 || rows.1.trim() != "before-backup" {
        bail!(
            "the restored clone should hold the backed-up row, saw {:?}",
            rows.1.trim()
        );
    }
    let settings = backups::psql_as_admin(
        ctx,
        clone_pg,
        "select current_setting('ssl_passphrase_command') || '|' || current_setting('archive_command') || '|' || (select count(*) from pg_file_settings where setting like '%planted%')",
    )
    .await?;
    let fields: Vec<&str> = settings.split('|').collect();
    if fields.len() != 3 || settings.contains("planted") || fields[2] != "0" {
        bail!(
            "the restored server still carries the planted settings (ssl_passphrase_command|archive_command|files naming them): {settings:?}"
        );
    }
    ctx.step(format!(
        "restored clone holds the row and none of the planted settings ({settings:?})"
    ));
    // Room on a small cluster for the next clone.
    appstack::api(&ctx.client, &ctx.ns)
        .delete("planted", &Default::default())
        .await?;

    // A key the agent refuses. versitygw stores keys as paths and folds
    // `..`, `.` and `//` away, so those cannot be planted here (the unit
    // tests cover them); a backslash survives.
    let bad_key = format!("{own}base/{label}/global\\..\\..\\..\\..\\tmp\\planted");
    s3.put(ctx, &bucket, &bad_key, "x\n").await?;
    ctx.step(format!("planted key {bad_key:?}"));
    let clone = clone_of(&stack.manifest, "traversal", &restore);
    apply::object(&ctx.client, &ctx.ns, clone).await?;
    let message = appstack::wait_condition_mentioning(
        &ctx.client,
        &ctx.ns,
        "traversal",
        ("Degraded", "True", "StoreFailing"),
        "refusing to restore",
        Duration::from_secs(180),
    )
    .await?;
    if !message.contains("tmp") || !message.contains("planted") {
        bail!("the refusal does not name the key: {message}");
    }
    // Nothing ran after the refused fetch: no restore, no server.
    let pod = ctx.pods().get("traversal-postgres-0").await?;
    let status = pod.status.unwrap_or_default();
    let started: Vec<String> = status
        .init_container_statuses
        .iter()
        .flatten()
        .chain(status.container_statuses.iter().flatten())
        .filter(|c| c.name != "fetch")
        .filter(|c| {
            c.state
                .as_ref()
                .is_some_and(|s| s.running.is_some() || s.terminated.is_some())
                || c.last_state
                    .as_ref()
                    .is_some_and(|s| s.terminated.is_some())
        })
        .map(|c| c.name.clone())
        .collect();
    if !started.is_empty() {
        bail!("containers ran after the refused fetch: {started:?}");
    }
    ctx.step(format!("the restore stopped at the fetch: {message}"));
    Ok(())
}

/// A clone of the stack, restored from it per `restore`, with no backups
/// and a single web replica.
fn clone_of(manifest: &Value, name: &str, restore: &Value) -> Value {
    let mut m = manifest.clone();
    m["metadata"]["name"] = json!(name);
    m["spec"]["restore"] = restore.clone();
    if let Some(p) = m["spec"]["postgres"].as_object_mut() {
        p.remove("backup");
    }
    if let Some(c) = m["spec"]["components"][0].as_object_mut() {
        c.remove("autoscaling");
        c.insert("replicas".into(), json!(1));
    }
    m
}

/// The bucket's top-level "directories" (ListObjectsV2 with a delimiter).
async fn top_level(s3: &S3, ctx: &Ctx, bucket: &str) -> Result<Vec<String>> {
    let xml = s3
        .curl(
            ctx,
            "GET",
            &format!("/{bucket}?delimiter=%2F&list-type=2"),
            None,
        )
        .await?;
    let mut top: Vec<String> = xml
        .split("<CommonPrefixes>")
        .skip(1)
        .filter_map(|s| s.split("<Prefix>").nth(1)?.split("</Prefix>").next())
        .map(str::to_string)
        .collect();
    top.sort();
    Ok(top)
}
