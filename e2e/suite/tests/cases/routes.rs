//! The shop reached from outside through a real ingress controller: Traefik
//! (e2e/ingress.sh, started here when it does not run yet) serves the
//! stack's Ingress by host name. The web component's `ingressFrom` admits
//! only a namespace that does not exist, so a pod of the stack's namespace
//! cannot reach it directly: what gets through is the controller, admitted
//! by the operator's route-controller setting (its default names the
//! `traefik` namespace). Also:
//! - a route without a port, a bad host, a bad pathType and TLS on an
//!   HTTPRoute are refused at admission (server-side dry run), naming the
//!   field;
//! - status shows the route's URL and the address the controller reports;
//! - on a cluster without the Gateway API CRDs, a stack whose route asks for
//!   an HTTPRoute says what to install, and its component still runs.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use appstack_e2e::runner::{Ctx, ScenarioFuture};
use appstack_e2e::shop::Shop;
use appstack_e2e::wait::{self, Pending, Ready};
use appstack_e2e::{apply, appstack, cmd, pods};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use serde_json::{Value, json};

const CONTROLLER_NS: &str = "traefik";
/// The address Traefik publishes on the Ingresses it serves (its flag).
const CONTROLLER_ADDRESS: &str = "traefik.traefik.svc.cluster.local";

pub fn run(ctx: &mut Ctx) -> ScenarioFuture<'_> {
    Box::pin(scenario(ctx))
}

async fn scenario(ctx: &mut Ctx) -> Result<()> {
    if !ctx.env.is_local() {
        ctx.note("skipped: it runs Traefik on the local cluster (e2e/ingress.sh)");
        return Ok(());
    }
    admission(ctx).await?;
    let controller = controller(ctx).await?;
    let host = format!("shop.{}.routes.test", ctx.ns);

    // Only pods of a namespace that does not exist may connect to web: the
    // route's controller must be admitted by the operator's setting.
    let stack = {
        let host = host.clone();
        deploy(ctx, move |m| {
            let web = &mut m["spec"]["components"][0];
            web["route"] = json!({"host": host, "ingressClassName": "traefik"});
            web["ingressFrom"] = json!([{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "nobody-lives-here"}}}]);
        })
        .await?
    };
    let url = format!("http://{host}/");
    let status = wait::until(
        "status to show the route's URL and the controller's address",
        Duration::from_secs(90),
        async || {
            let obj = appstack::api(&ctx.client, &ctx.ns).get(&stack).await?;
            let web = obj.data["status"]["components"][0].clone();
            Ok(
                if web["url"] == url.as_str() && web["routeAddress"] == CONTROLLER_ADDRESS {
                    Ready(web)
                } else {
                    Pending(web.to_string())
                },
            )
        },
    )
    .await?;
    ctx.step(format!(
        "status: url {}, routeAddress {}",
        status["url"], status["routeAddress"]
    ));

    let stranger = pods::run_sleeper(ctx, "stranger").await?;
    let direct = format!("{stack}-web.{}.svc:8080", ctx.ns);
    let ns = ctx.ns.clone();
    expect_closed(ctx, &ns, &stranger, &direct).await?;

    // The user's story, through the controller, by host name.
    let shop = Shop::routed(ctx.http().await?, controller, &host);
    let start = Instant::now();
    appstack::answers_ready(
        &shop,
        &format!("GET /readyz through {controller} with Host {host}"),
    )
    .await?;
    ctx.step(format!(
        "Traefik routes Host {host} to the shop ({:.1}s after the route showed in status)",
        start.elapsed().as_secs_f64()
    ));
    let token = shop.login("ada").await?;
    shop.add_item(&token, "sku-route", 2).await?;
    let served_by = shop.expect_me(&token, "ada").await?;
    let (cart, _) = shop.cart(&token).await?;
    if cart != [("sku-route".to_string(), 2)] {
        bail!("the cart through the route is {cart:?}, expected sku-route x2");
    }
    ctx.step(format!(
        "through the route: logged in, added to the cart, GET /me -> 200 from {served_by}, cart {cart:?}"
    ));
    // Another host is not this stack's.
    let other = Shop::routed(shop.http.clone(), controller, "someone-else.routes.test");
    let r = other.ready().await?;
    if r.status != 404 {
        bail!("a host no route names answered {}", r.summary());
    }
    ctx.step("a host no route names: 404 from the controller");

    without_gateway_api(ctx).await
}

/// Applies the shop with `tweak` and waits until it is Ready and web runs.
async fn deploy(ctx: &mut Ctx, tweak: impl FnOnce(&mut Value)) -> Result<String> {
    let mut manifest = appstack::shop_manifest(ctx)?;
    tweak(&mut manifest);
    let name = appstack::name_of(&manifest)?;
    apply::object(&ctx.client, &ctx.ns, manifest).await?;
    let took = appstack::wait_ready(&ctx.client, &ctx.ns, &name, Duration::from_secs(240)).await?;
    ctx.step(format!(
        "AppStack {name} with a route Ready after {:.1}s",
        took.as_secs_f64()
    ));
    Ok(name)
}

/// Traefik's Service address, after starting it if it does not run.
async fn controller(ctx: &mut Ctx) -> Result<std::net::SocketAddr> {
    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), CONTROLLER_NS);
    let ready = |d: &Deployment| {
        d.status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0)
            >= 1
    };
    let running = deployments
        .get_opt("traefik")
        .await?
        .is_some_and(|d| ready(&d));
    if !running {
        let start = Instant::now();
        let script = ctx.env.repo.join("e2e/ingress.sh").display().to_string();
        let out = cmd::run(&ctx.env, "bash", &[&script], None, Duration::from_secs(900)).await?;
        if !out.success {
            bail!("e2e/ingress.sh failed:\n{}", cmd::indent(&out.text()));
        }
        ctx.step(format!(
            "started Traefik (e2e/ingress.sh) in {:.1}s",
            start.elapsed().as_secs_f64()
        ));
    }
    let svc = Api::<Service>::namespaced(ctx.client.clone(), CONTROLLER_NS)
        .get("traefik")
        .await?;
    let ip = svc
        .spec
        .and_then(|s| s.cluster_ip)
        .context("Service traefik/traefik has no ClusterIP")?;
    Ok(std::net::SocketAddr::new(ip.parse()?, 80))
}

/// Waits until `pod` cannot open a TCP connection to `target`.
async fn expect_closed(ctx: &Ctx, ns: &str, pod: &str, target: &str) -> Result<()> {
    let (host, port) = target.rsplit_once(':').context("host:port")?;
    let script =
        format!("nc -w 3 {host} {port} </dev/null >/dev/null 2>&1 && echo open || echo closed");
    wait::until(
        &format!("{pod} -> {target} to be closed by ingressFrom"),
        Duration::from_secs(45),
        async || {
            let out = pods::exec(ctx, ns, pod, None, &script, Duration::from_secs(20)).await?;
            Ok(if out.stdout.trim() == "closed" {
                Ready(())
            } else {
                Pending(out.stdout.trim().to_string())
            })
        },
    )
    .await?;
    ctx.step(format!(
        "{ns}/{pod} -> {target}: closed (ingressFrom admits only the controller)"
    ));
    Ok(())
}

/// A stack whose route asks for an HTTPRoute, on a cluster that does not
/// serve the Gateway API: status names what to install, the rest runs.
async fn without_gateway_api(ctx: &mut Ctx) -> Result<()> {
    let served = cmd::run(
        &ctx.env,
        "kubectl",
        &[
            "api-resources",
            "--api-group=gateway.networking.k8s.io",
            "-o",
            "name",
        ],
        None,
        Duration::from_secs(30),
    )
    .await?;
    if served.stdout.contains("httproutes") {
        ctx.note("the Gateway API CRDs are installed: the missing-CRD case was not run");
        return Ok(());
    }
    let manifest = json!({
        "apiVersion": "appstack.dev/v1alpha1", "kind": "AppStack",
        "metadata": {"name": "gw"},
        "spec": {"components": [{
            "name": "web", "image": ctx.env.tools_image, "replicas": 1, "port": 8080,
            "command": ["sh", "-c", "while true; do echo ok | nc -l -p 8080; done"],
            "podSecurityContext": {"runAsUser": 65534, "runAsGroup": 65534},
            "route": {"host": "gw.routes.test", "gateway": {"parentRefs": [{"name": "public", "namespace": "infra"}]}}
        }]}
    });
    apply::object(&ctx.client, &ctx.ns, manifest).await?;
    let message = appstack::wait_condition_mentioning(
        &ctx.client,
        &ctx.ns,
        "gw",
        ("Degraded", "True", "ReconcileFailed"),
        "Gateway API CRDs",
        Duration::from_secs(60),
    )
    .await?;
    ctx.step(format!(
        "without the Gateway API CRDs: Degraded: {}",
        short(&message)
    ));
    let deployments = Api::<Deployment>::namespaced(ctx.client.clone(), &ctx.ns);
    wait::until(
        "the component of the stack without its HTTPRoute to run",
        Duration::from_secs(90),
        async || {
            let d = deployments.get("gw-web").await?;
            let ready = d.status.and_then(|s| s.ready_replicas).unwrap_or(0);
            Ok(if ready >= 1 {
                Ready(())
            } else {
                Pending(format!("{ready} ready"))
            })
        },
    )
    .await?;
    ctx.step("its Deployment gw-web runs all the same");
    Ok(())
}

/// Bad routes, refused by a server-side dry run with the field named.
async fn admission(ctx: &mut Ctx) -> Result<()> {
    let base = || {
        json!({
            "apiVersion": "appstack.dev/v1alpha1", "kind": "AppStack",
            "metadata": {"name": "bad-route"},
            "spec": {"components": [{"name": "web", "image": "i", "port": 8080,
                                     "route": {"host": "ok.example.com"}}]}
        })
    };
    let ok = dry_run(ctx, &base()).await?;
    if !ok.success {
        bail!("the valid route was refused: {}", ok.text());
    }
    type Case = (&'static str, fn(&mut Value), &'static [&'static str]);
    let cases: [Case; 5] = [
        (
            "route without port",
            |m| {
                m["spec"]["components"][0]
                    .as_object_mut()
                    .map(|c| c.remove("port"));
            },
            &["port"],
        ),
        (
            "bad host",
            |m| m["spec"]["components"][0]["route"]["host"] = json!("Shop_Example.com"),
            &["spec.components[0].route.host"],
        ),
        (
            "bad pathType",
            |m| {
                m["spec"]["components"][0]["route"]["paths"] =
                    json!([{"path": "/", "pathType": "Regex"}])
            },
            &["spec.components[0].route.paths[0].pathType"],
        ),
        (
            "path not absolute",
            |m| m["spec"]["components"][0]["route"]["paths"] = json!([{"path": "api"}]),
            &["spec.components[0].route.paths[0].path"],
        ),
        (
            "TLS on an HTTPRoute",
            |m| {
                m["spec"]["components"][0]["route"]["tls"] = json!({"secretName": "t"});
                m["spec"]["components"][0]["route"]["gateway"] =
                    json!({"parentRefs": [{"name": "gw"}]});
            },
            &["spec.components[0].route"],
        ),
    ];
    for (case, breaks, fields) in cases {
        let mut m = base();
        breaks(&mut m);
        let out = dry_run(ctx, &m).await?;
        let message = out.text().replace('\n', " ");
        if out.success || !fields.iter().any(|f| message.contains(f)) {
            bail!("{case}: expected a refusal naming {fields:?}, got: {message}");
        }
        ctx.step(format!("refused, {case}: {}", short(&message)));
    }
    Ok(())
}

async fn dry_run(ctx: &Ctx, manifest: &Value) -> Result<cmd::Output> {
    let yaml = serde_yaml::to_string(manifest)?;
    cmd::run(
        &ctx.env,
        "kubectl",
        &[
            "apply",
            "--validate=strict",
            "--dry-run=server",
            "-n",
            &ctx.ns,
            "-f",
            "-",
        ],
        Some(&yaml),
        Duration::from_secs(30),
    )
    .await
}

fn short(message: &str) -> String {
    let mut m = message.trim().to_string();
    if m.len() > 200 {
        m.truncate(m.char_indices().nth(200).map_or(m.len(), |(i, _)| i));
        m.push_str("...");
    }
    m
}
