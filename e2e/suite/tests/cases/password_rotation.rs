//! Rotate both stores' passwords the way the README says, by editing the
//! Secrets with kubectl, to values that break naive URLs: `p@ss:w/rd#1%x` for
//! Redis and the same with a trailing newline for PostgreSQL (what
//! `echo pw | base64` puts in a Secret). The operator must percent-encode
//! `url`, roll the apps (not the stores: they take the new passwords live),
//! and the servers must take the new passwords: the shop serves the same
//! session and cart and takes new writes, and once every web pod rolled the
//! old passwords are refused by Redis and PostgreSQL themselves. The
//! PostgreSQL apps move to the other login role of their pair (`app_b`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use appstack_e2e::appstack::{self, Stack};
use appstack_e2e::cmd::{self, Output};
use appstack_e2e::http::Call;
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::shop::{self, Cart, Shop};
use appstack_e2e::wait::{self, Pending, Ready};
use appstack_e2e::{children, pods};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::ResourceExt;
use kube::api::Api;
use serde_json::json;
use tokio::task::JoinHandle;

const NEW_PASSWORD: &str = "p@ss:w/rd#1%x";
/// NEW_PASSWORD as RFC 3986 user-info: every reserved character encoded.
const NEW_ENCODED: &str = "p%40ss%3Aw%2Frd%231%25x";
pub(super) const HASH: &str = "appstack.dev/credentials-hash";
/// From the Secret edit to a rolled, Ready stack: the new passwords reach
/// the stores through a mounted Secret (the kubelet's sync, up to a minute
/// or so), then the web rollout.
const ROLL_BOUND: Duration = Duration::from_secs(300);
/// From the rollout's end to the old password refused: the operator's next
/// reconcile, then the kubelet's sync of the mounted Secret.
const RETIRE_BOUND: Duration = Duration::from_secs(180);

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

/// One store's Secret before and after the rotation.
pub(super) struct Rotation {
    secret: String,
    /// The pod's container that runs the server (`<stack>-<part>-0`, `<part>`).
    container: &'static str,
    /// What the user writes into `password`.
    new: String,
    /// The user the apps log in as after the rotation (PostgreSQL: the other
    /// login role of the pair).
    user_after: String,
    /// `new` as it must appear in `url`.
    encoded: String,
    before: BTreeMap<String, String>,
}

impl Rotation {
    fn old(&self) -> &str {
        self.before.get("password").map_or("", String::as_str)
    }
    fn pod(&self) -> String {
        format!("{}-0", self.secret)
    }
    fn user_before(&self) -> String {
        self.before.get("username").cloned().unwrap_or_default()
    }
}

/// The other login role of a PostgreSQL pair (`<name>` and `<name>_b`).
pub(super) fn other_login(user: &str) -> String {
    match user.strip_suffix("_b") {
        Some(base) if !base.is_empty() => base.to_string(),
        _ => format!("{user}_b"),
    }
}

/// Both stores' rotations, from the Secrets as they are now.
pub(super) async fn rotations(ctx: &Ctx, stack: &Stack) -> Result<[Rotation; 2]> {
    let secrets = children::secret_data(&ctx.client, &ctx.ns, &stack.name).await?;
    let of = |name: String| secrets.get(&name).cloned().unwrap_or_default();
    let redis_before = of(stack.redis());
    let pg_before = of(stack.postgres());
    let redis = Rotation {
        secret: stack.redis(),
        container: "redis",
        new: NEW_PASSWORD.into(),
        user_after: redis_before.get("username").cloned().unwrap_or_default(),
        encoded: NEW_ENCODED.into(),
        before: redis_before,
    };
    let postgres = Rotation {
        secret: stack.postgres(),
        container: "postgres",
        new: format!("{NEW_PASSWORD}\n"),
        user_after: other_login(pg_before.get("username").map_or("", String::as_str)),
        encoded: format!("{NEW_ENCODED}%0A"),
        before: pg_before,
    };
    for r in [&redis, &postgres] {
        ensure!(
            !r.old().is_empty() && r.before.contains_key("url"),
            "Secret {} lacks password or url before the rotation: keys {:?}",
            r.secret,
            r.before.keys().collect::<Vec<_>>()
        );
    }
    Ok([redis, postgres])
}

/// Edits both Secrets as a user would: stringData for one, base64 `data`
/// for the other.
pub(super) async fn edit(ctx: &Ctx, redis: &Rotation, postgres: &Rotation) -> Result<()> {
    let redis_patch = json!({"stringData": {"password": redis.new}});
    kubectl_patch_secret(ctx, &redis.secret, &redis_patch.to_string()).await?;
    // ByteString serializes as base64, exactly what `echo ... | base64` gives.
    let b64 = serde_json::to_value(ByteString(postgres.new.clone().into_bytes()))?;
    let pg_patch = json!({"data": {"password": b64}});
    kubectl_patch_secret(ctx, &postgres.secret, &pg_patch.to_string()).await?;
    ctx.step(format!(
        "kubectl patch: {} password {NEW_PASSWORD:?} (stringData), {} password {:?} (base64 data)",
        redis.secret, postgres.secret, postgres.new
    ));
    Ok(())
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    let stack = appstack::deploy_shop(ctx, |_| {}).await?;
    // What a user would miss: a session (Redis) and cart rows (PostgreSQL).
    let (token, cart) = shop::seed(&stack.shop, "rosalind").await?;
    stack.shop.expect_me(&token, "rosalind").await?;
    ctx.step(format!(
        "logged in as rosalind (session in Redis), cart {cart:?} (rows in PostgreSQL)"
    ));

    let [redis, postgres] = rotations(ctx, &stack).await?;
    let old_web: Vec<String> = stack
        .web_settled(ctx, None, Duration::from_secs(120))
        .await?
        .iter()
        .map(|p| p.name_any())
        .collect();
    let old_web_hash = template_hash::<Deployment>(ctx, &stack.web()).await?;
    let mut old_store = Vec::new();
    for r in [&redis, &postgres] {
        let pod = ctx.pods().get(&r.pod()).await?;
        old_store.push((pod.uid().unwrap_or_default(), annotation(&pod, HASH)));
    }

    // A user of the shop keeps reading their cart through the whole roll.
    let stop = Arc::new(AtomicBool::new(false));
    let probe = probe(
        stack.shop.clone(),
        token.clone(),
        cart.clone(),
        stop.clone(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;

    let edited = Instant::now();
    edit(ctx, &redis, &postgres).await?;
    let rolled = wait_rolled(
        ctx,
        &stack,
        [&redis, &postgres],
        &old_store,
        &old_web,
        &old_web_hash,
    )
    .await;
    let rolled_after = edited.elapsed();
    // Keep the probe running a little past the roll: old pods still
    // terminating would show up here.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let samples = probe.await.context("the probe task panicked")?;
    let report = Report::of(&samples, edited, &old_web);
    ctx.step(format!("during the roll: {}", report.summary()));
    for line in &report.timeline {
        ctx.step(format!("  {line}"));
    }
    let web = match rolled {
        Ok(web) => web,
        Err(e) => {
            let e = e.context(format!("the roll after the rotation; {}", report.summary()));
            // Another suite run deletes every e2e namespace it finds first.
            return Err(match namespace_deleted(ctx).await {
                Some(when) => e.context(format!(
                    "namespace {} was deleted at {when} by someone else (another suite run's cleanup?)",
                    ctx.ns
                )),
                None => e,
            });
        }
    };
    ctx.step(format!(
        "rolled {:.1}s after the edit: the same Redis and PostgreSQL pods, web {}",
        rolled_after.as_secs_f64(),
        pods::describe(&web)
    ));

    check_secrets(ctx, [&redis, &postgres]).await?;
    check_web_pods(ctx, &stack, &web).await?;
    check_shop(ctx, &stack, "rosalind", &token, &cart).await?;
    for r in [&redis, &postgres] {
        check_server(ctx, r).await?;
    }

    match report.serving_again {
        Some(t) => ctx.recovered("secret edit to shop serving on new credentials", t),
        None => bail!(
            "the probe never got the cart from a new web pod; {}",
            report.summary()
        ),
    }
    ctx.recovered("secret edit to everything rolled and Ready", rolled_after);
    ctx.note(format!(
        "{} of {} GET /cart failed during the rotation{}",
        report.failed,
        report.sent,
        report.window()
    ));
    // What `kubectl describe appstack` shows about the rotation: reported,
    // since a user reads Warnings as trouble even after it all worked.
    let warnings: Vec<String> = appstack::events(&ctx.client, &ctx.ns, &stack.name)
        .await?
        .into_iter()
        .filter(|(type_, _, _)| type_ == "Warning")
        .map(|(_, reason, message)| format!("{reason}: {message}"))
        .collect();
    if !warnings.is_empty() {
        ctx.note(format!(
            "Warning Events on AppStack {} after the rotation: {}",
            stack.name,
            warnings.join("; ")
        ));
    }
    if report.unauthorized > 0 {
        ctx.note(format!(
            "{} GET /cart answered 401 during the roll: the session was unknown to the pod that served it",
            report.unauthorized
        ));
    }
    Ok(())
}

async fn namespace_deleted(ctx: &Ctx) -> Option<String> {
    let api = Api::<k8s_openapi::api::core::v1::Namespace>::all(ctx.client.clone());
    match api.get_opt(&ctx.ns).await {
        Ok(Some(ns)) => ns.metadata.deletion_timestamp.map(|t| t.0.to_string()),
        Ok(None) => Some("an unknown time (it is gone)".into()),
        Err(_) => None,
    }
}

async fn kubectl_patch_secret(ctx: &Ctx, name: &str, patch: &str) -> Result<()> {
    let args = [
        "patch", "secret", name, "-n", &ctx.ns, "--type", "merge", "-p", patch,
    ];
    cmd::run_ok(&ctx.env, "kubectl", &args, None, Duration::from_secs(30)).await?;
    Ok(())
}

pub(super) fn annotation(pod: &Pod, key: &str) -> String {
    pod.annotations().get(key).cloned().unwrap_or_default()
}

pub(super) async fn template_hash<K>(ctx: &Ctx, name: &str) -> Result<String>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + serde::Serialize,
{
    let obj = Api::<K>::namespaced(ctx.client.clone(), &ctx.ns)
        .get(name)
        .await
        .with_context(|| format!("getting {name}"))?;
    let value = serde_json::to_value(&obj)?;
    Ok(value["spec"]["template"]["metadata"]["annotations"][HASH]
        .as_str()
        .unwrap_or_default()
        .to_string())
}

/// Waits until the operator has rolled everything the new passwords touch:
/// both Secrets' `url`, only new web pods, and the AppStack Ready; the
/// store pods are the same. Returns the web pods.
pub(super) async fn wait_rolled(
    ctx: &Ctx,
    stack: &Stack,
    rotations: [&Rotation; 2],
    old_store: &[(String, String)],
    old_web: &[String],
    old_web_hash: &str,
) -> Result<Vec<Pod>> {
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &ctx.ns);
    for r in rotations {
        let needle = format!("//{}:{}@", r.user_after, r.encoded);
        wait::until(
            &format!("Secret {} to get a url with {needle:?}", r.secret),
            // Time for an operator restarting meanwhile to lead again.
            Duration::from_secs(120),
            async || {
                let url = secret_value(&secrets.get(&r.secret).await?, "url");
                Ok(if url.contains(&needle) {
                    Ready(())
                } else {
                    Pending(format!("url {url:?}"))
                })
            },
        )
        .await?;
    }
    for (r, (old_uid, old_hash)) in rotations.iter().zip(old_store) {
        let p = ctx.pods().get(&r.pod()).await?;
        ensure!(
            p.uid().as_deref() == Some(old_uid.as_str()) && &annotation(&p, HASH) == old_hash,
            "{} was restarted (or its credentials hash changed) by the rotation: the stores take the apps' new passwords live",
            r.pod()
        );
    }
    wait::until(
        &format!("Deployment {} to get a new credentials hash", stack.web()),
        Duration::from_secs(120),
        async || {
            let now = template_hash::<Deployment>(ctx, &stack.web()).await?;
            Ok(if now != old_web_hash {
                Ready(())
            } else {
                Pending(format!("hash {now}"))
            })
        },
    )
    .await?;
    let web = stack.web_settled(ctx, None, ROLL_BOUND).await?;
    let hash = template_hash::<Deployment>(ctx, &stack.web()).await?;
    let stale: Vec<String> = web
        .iter()
        .filter(|p| old_web.contains(&p.name_any()) || annotation(p, HASH) != hash)
        .map(|p| p.name_any())
        .collect();
    ensure!(
        stale.is_empty(),
        "web pods from before the rotation (or with an old credentials hash) still run after the rollout: {stale:?}"
    );
    let took =
        appstack::wait_ready(&ctx.client, &ctx.ns, &stack.name, Duration::from_secs(120)).await?;
    ctx.step(format!(
        "AppStack Ready (waited {:.1}s after the rollout)",
        took.as_secs_f64()
    ));
    Ok(web)
}

fn secret_value(secret: &Secret, key: &str) -> String {
    children::decoded(secret).remove(key).unwrap_or_default()
}

/// What a user checks in the Secrets: their password kept byte for byte, a
/// `url` that changed only in its (percent-encoded) password and decodes
/// back to it, everything else as before.
pub(super) async fn check_secrets(ctx: &Ctx, rotations: [&Rotation; 2]) -> Result<()> {
    let secrets = Api::<Secret>::namespaced(ctx.client.clone(), &ctx.ns);
    for r in rotations {
        let s = secrets.get(&r.secret).await?;
        let now = children::decoded(&s);
        let password = now.get("password").cloned().unwrap_or_default();
        ensure!(
            password == r.new,
            "Secret {}: password is {password:?} after the operator's rolls, not the {:?} written",
            r.secret,
            r.new
        );
        let url = now.get("url").cloned().unwrap_or_default();
        // The old password is generated hex: the same in a URL.
        let old_url = &r.before["url"];
        let expected = old_url.replacen(
            &format!("//{}:{}@", r.user_before(), r.old()),
            &format!("//{}:{}@", r.user_after, r.encoded),
            1,
        );
        ensure!(
            &expected != old_url && url == expected,
            "Secret {}: url is {url:?}, expected {expected:?} (the old url with the encoded password)",
            r.secret
        );
        let decoded = url_password(&url)?;
        ensure!(
            decoded == r.new,
            "Secret {}: url's password decodes to {decoded:?}, not {:?}",
            r.secret,
            r.new
        );
        let username = now.get("username").cloned().unwrap_or_default();
        ensure!(
            username == r.user_after,
            "Secret {}: username is {username:?}, expected {:?}",
            r.secret,
            r.user_after
        );
        // With Redis replicas, sentinel_url carries the password as url does.
        if let Some(old_sentinel) = r.before.get("sentinel_url") {
            let expected = old_sentinel.replacen(
                &format!("//{}:{}@", r.user_before(), r.old()),
                &format!("//{}:{}@", r.user_after, r.encoded),
                1,
            );
            ensure!(
                now.get("sentinel_url") == Some(&expected),
                "Secret {}: sentinel_url is {:?}, expected {expected:?}",
                r.secret,
                now.get("sentinel_url")
            );
        }
        for (key, old) in &r.before {
            if !["password", "url", "username", "sentinel_url"].contains(&key.as_str())
                && now.get(key) != Some(old)
            {
                bail!(
                    "Secret {}: {key} changed from {old:?} to {:?} with only the password edited",
                    r.secret,
                    now.get(key)
                );
            }
        }
        ctx.step(format!(
            "Secret {}: username {username}, url {url:?} decodes back to password {:?}",
            r.secret, r.new
        ));
    }
    Ok(())
}

/// The password in a URL's user-info, percent-decoded as a client parser
/// would (authority up to the first `/`, user-info up to its last `@`).
fn url_password(url: &str) -> Result<String> {
    let rest = url.split_once("://").context("url without a scheme")?.1;
    let authority = rest.split('/').next().unwrap_or_default();
    let userinfo = authority
        .rsplit_once('@')
        .with_context(|| format!("url {url:?} has no user-info"))?
        .0;
    let encoded = userinfo
        .split_once(':')
        .with_context(|| format!("url {url:?}: user-info without a password"))?
        .1;
    let bytes = encoded.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = encoded
                .get(i + 1..i + 3)
                .with_context(|| format!("url {url:?}: truncated percent-escape"))?;
            out.push(
                u8::from_str_radix(hex, 16)
                    .with_context(|| format!("url {url:?}: bad percent-escape %{hex}"))?,
            );
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).context("url password is not UTF-8")
}

/// The new web pods take REDIS_URL and DATABASE_URL from the Secrets'
/// `url`, and each of them reaches both stores with what it was given (the
/// shop's /readyz pings Redis and runs SELECT 1 on PostgreSQL).
pub(super) async fn check_web_pods(ctx: &mut Ctx, stack: &Stack, web: &[Pod]) -> Result<()> {
    let http = ctx.http().await?;
    for pod in web {
        let name = pod.name_any();
        let env = pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.first())
            .and_then(|c| c.env.clone())
            .unwrap_or_default();
        for (var, secret) in [
            ("REDIS_URL", stack.redis()),
            ("DATABASE_URL", stack.postgres()),
        ] {
            let from = env
                .iter()
                .find(|e| e.name == var)
                .and_then(|e| e.value_from.as_ref())
                .and_then(|v| v.secret_key_ref.as_ref())
                .map(|r| (r.name.clone(), r.key.clone()));
            ensure!(
                from == Some((secret.clone(), "url".into())),
                "pod {name}: {var} comes from {from:?}, expected Secret {secret} key url"
            );
        }
        let ip = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.as_deref())
            .with_context(|| format!("pod {name} has no IP"))?
            .parse()?;
        let direct = Shop::new(http.clone(), std::net::SocketAddr::new(ip, 8080));
        let r = direct.ready().await?;
        ensure!(
            r.status == 200,
            "pod {name} (started after the rotation): GET /readyz {}",
            r.summary()
        );
    }
    ctx.step(format!(
        "every web pod is new, has REDIS_URL/DATABASE_URL from the Secrets' url and answers /readyz 200 (both stores accept it): {}",
        pods::describe(web)
    ));
    Ok(())
}

/// The session and cart from before the rotation are served, and new
/// writes go through: a new login (Redis) and new cart rows (PostgreSQL).
pub(super) async fn check_shop(
    ctx: &Ctx,
    stack: &Stack,
    user: &str,
    token: &str,
    cart: &Cart,
) -> Result<()> {
    let by = stack.shop.expect_me(token, user).await?;
    let (now, r) = stack.shop.cart(token).await?;
    ensure!(
        &now == cart,
        "the cart from before the rotation: expected {cart:?}, GET /cart returned {now:?} ({})",
        r.summary()
    );
    ctx.step(format!(
        "same session (GET /me 200 from {by}) and cart {now:?} after the rotation"
    ));
    stack.shop.add_item(token, "rotated-passwords", 3).await?;
    let (now, _) = stack.shop.cart(token).await?;
    let mut expected = cart.clone();
    expected.push(("rotated-passwords".into(), 3));
    expected.sort();
    ensure!(
        now == expected,
        "after adding an item: expected {expected:?}, GET /cart returned {now:?}"
    );
    let (other, other_cart) = shop::seed(&stack.shop, "barbara").await?;
    stack.shop.expect_me(&other, "barbara").await?;
    ctx.step(format!(
        "new writes: {user}'s cart now {now:?}; barbara logged in with cart {other_cart:?}"
    ));
    Ok(())
}

/// Asks the server in the store's own pod, over TCP with a password: the
/// new one is accepted (so the check itself works) and, once the operator
/// saw every pod rolled and the store took it, the old one refused.
pub(super) async fn check_server(ctx: &Ctx, r: &Rotation) -> Result<()> {
    let pod = r.pod();
    let db = r.before.get("database").cloned().unwrap_or_default();
    let redis = r.container == "redis";
    let try_with = async |user: &str, password: &str| -> Result<Output> {
        // Through `env`, not a shell: the password reaches the client as is.
        let var = if redis {
            format!("REDISCLI_AUTH={password}")
        } else {
            format!("PGPASSWORD={password}")
        };
        let mut args = vec![
            "exec",
            "-n",
            &ctx.ns,
            &pod,
            "-c",
            r.container,
            "--",
            "env",
            &var,
        ];
        if redis {
            // As the apps' ACL user the Secret names (default is the store's
            // administrator, with its own Secret).
            // TLS with the CA the store container has (Redis serves no
            // plain port).
            args.extend([
                "redis-cli",
                "--tls",
                "--cacert",
                "/etc/appstack/tls/ca.crt",
                "--no-auth-warning",
                "--user",
                user,
                "ping",
            ]);
        } else {
            // TCP, not the socket: the image trusts local socket connections.
            args.extend([
                "PGCONNECT_TIMEOUT=5",
                "psql",
                "-h",
                "127.0.0.1",
                "-U",
                user,
                "-d",
                &db,
                "-Atqc",
                "select 1",
            ]);
        }
        cmd::run(&ctx.env, "kubectl", &args, None, Duration::from_secs(30)).await
    };
    let (accepted, refused) = if redis {
        ("PONG", &["WRONGPASS", "NOAUTH"][..])
    } else {
        ("1", &["password authentication failed"][..])
    };
    let new = try_with(&r.user_after, &r.new).await?;
    ensure!(
        new.stdout.trim() == accepted,
        "{} in pod {pod}: the new password {:?} of {} was not accepted: {}",
        r.container,
        r.new,
        r.user_after,
        new.text()
    );
    let user = r.user_before();
    let start = Instant::now();
    let text = wait::until_every(
        &format!(
            "{} in pod {pod} to refuse the old password of {user}",
            r.container
        ),
        RETIRE_BOUND,
        Duration::from_secs(3),
        async || {
            let old = try_with(&user, r.old()).await?;
            let text = old.text();
            Ok(
                if old.stdout.trim() != accepted && refused.iter().any(|w| text.contains(w)) {
                    Ready(text)
                } else {
                    Pending(format!("exit {:?}: {}", old.code, text.trim()))
                },
            )
        },
    )
    .await?;
    ctx.step(format!(
        "{} accepts {} with the new password and refuses {user} with the old one {:.1}s after the rollout: {:?}",
        r.container,
        r.user_after,
        start.elapsed().as_secs_f64(),
        text.lines()
            .find(|l| refused.iter().any(|w| l.contains(w)))
            .unwrap_or_default()
            .trim()
    ));
    Ok(())
}

/// One GET /cart by the user during the roll.
struct Sample {
    at: Instant,
    ok: bool,
    unauthorized: bool,
    served_by: String,
    what: String,
}

/// Reads the cart every 200 ms until stopped; a request counts as served
/// when it answers 200 with the cart from before the rotation.
fn probe(shop: Shop, token: String, cart: Cart, stop: Arc<AtomicBool>) -> JoinHandle<Vec<Sample>> {
    tokio::spawn(async move {
        let mut samples = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            let at = Instant::now();
            let call = Call::get("/cart")
                .bearer(&token)
                .timeout(Duration::from_secs(2));
            let sample = match shop.send(call).await {
                Ok(r) => {
                    let same = r.status == 200
                        && r.json()
                            .ok()
                            .and_then(|v| shop::parse_cart(&v).ok())
                            .is_some_and(|c| c == cart);
                    Sample {
                        at,
                        ok: same,
                        unauthorized: r.status == 401,
                        served_by: r.served_by.clone().unwrap_or_default(),
                        what: r.summary(),
                    }
                }
                Err(e) => Sample {
                    at,
                    ok: false,
                    unauthorized: false,
                    served_by: String::new(),
                    what: format!("{e:#}"),
                },
            };
            samples.push(sample);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        samples
    })
}

/// What the user saw from the Secret edit on.
struct Report {
    sent: usize,
    failed: usize,
    unauthorized: usize,
    first_failure: Option<Duration>,
    last_failure: Option<Duration>,
    /// The first success by a web pod started after the edit and after the
    /// last failure: from then on the shop serves on the new credentials.
    serving_again: Option<Duration>,
    /// Runs of equal outcomes: "+from..+to count x outcome".
    timeline: Vec<String>,
}

impl Report {
    fn of(samples: &[Sample], edited: Instant, old_web: &[String]) -> Self {
        let after: Vec<(Duration, &Sample)> = samples
            .iter()
            .filter(|s| s.at >= edited)
            .map(|s| (s.at - edited, s))
            .collect();
        let failures: Vec<&(Duration, &Sample)> = after.iter().filter(|(_, s)| !s.ok).collect();
        let last_failure = failures.last().map(|(t, _)| *t);
        let serving_again = after
            .iter()
            .find(|(t, s)| {
                s.ok && !old_web.contains(&s.served_by) && last_failure.is_none_or(|f| *t > f)
            })
            .map(|(t, _)| *t);
        // Consecutive requests with the same outcome, as one line each.
        let mut timeline: Vec<(Duration, Duration, String, usize)> = Vec::new();
        for (t, s) in &after {
            let kind = if s.ok {
                let age = if old_web.contains(&s.served_by) {
                    "old"
                } else {
                    "new"
                };
                format!("served (by {age} web pods)")
            } else {
                // Grouped across pods: the pod's name is in the message.
                let mut what = if s.served_by.is_empty() {
                    s.what.clone()
                } else {
                    s.what.replace(&s.served_by, "<pod>")
                };
                if let Some((i, _)) = what.char_indices().nth(90) {
                    what.truncate(i);
                }
                format!("FAILED: {what}")
            };
            match timeline.last_mut() {
                Some(last) if last.2 == kind => {
                    last.1 = *t;
                    last.3 += 1;
                }
                _ => timeline.push((*t, *t, kind, 1)),
            }
        }
        let examples = timeline
            .iter()
            .take(40)
            .map(|(a, b, kind, n)| {
                format!(
                    "+{:>5.1}s..+{:>5.1}s {n:>3} x {kind}",
                    a.as_secs_f64(),
                    b.as_secs_f64()
                )
            })
            .collect();
        Self {
            sent: after.len(),
            failed: failures.len(),
            unauthorized: failures.iter().filter(|(_, s)| s.unauthorized).count(),
            first_failure: failures.first().map(|(t, _)| *t),
            last_failure,
            serving_again,
            timeline: examples,
        }
    }

    fn window(&self) -> String {
        match (self.first_failure, self.last_failure) {
            (Some(a), Some(b)) => format!(
                ", between +{:.1}s and +{:.1}s",
                a.as_secs_f64(),
                b.as_secs_f64()
            ),
            _ => String::new(),
        }
    }

    fn summary(&self) -> String {
        let again = self
            .serving_again
            .map_or("never".to_string(), |t| format!("+{:.1}s", t.as_secs_f64()));
        format!(
            "{} GET /cart after the edit, {} failed{}; served by a new web pod for good from {again}",
            self.sent,
            self.failed,
            self.window()
        )
    }
}
