//! A component's route from outside: an Ingress, or an HTTPRoute when the
//! route names Gateways. Either sends traffic only to the component's own
//! Service, by name, in the stack's namespace: an Ingress backend cannot
//! name another namespace, and an HTTPRoute backend here never does (one in
//! another namespace would need that namespace's ReferenceGrant).

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};

use super::meta::StackRef;
use super::{labels, names};
use crate::api::gateway::{
    HttpBackendRef, HttpPathMatch, HttpRoute, HttpRouteMatch, HttpRouteParentRef, HttpRouteRule,
    HttpRouteSpec,
};
use crate::api::{Component, PathType, Route};

/// The component's Ingress, when it has a route without Gateways.
pub fn ingress(ctx: &StackRef, c: &Component) -> Option<Ingress> {
    let route = c.route.as_ref().filter(|r| r.gateway.is_none())?;
    // A route needs a port (admission says so): no Service, no route.
    let port = c.port?;
    let service = names::component(&ctx.name, &c.name);
    let paths = route
        .paths()
        .into_iter()
        .map(|p| HTTPIngressPath {
            path: Some(p.path.clone()),
            path_type: match p.path_type() {
                PathType::Prefix => "Prefix",
                PathType::Exact => "Exact",
            }
            .into(),
            backend: IngressBackend {
                service: Some(IngressServiceBackend {
                    name: service.clone(),
                    port: Some(ServiceBackendPort {
                        number: Some(port),
                        ..ServiceBackendPort::default()
                    }),
                }),
                ..IngressBackend::default()
            },
        })
        .collect();
    Some(Ingress {
        metadata: meta(ctx, c, route),
        spec: Some(IngressSpec {
            ingress_class_name: route.ingress_class_name.clone(),
            rules: Some(vec![IngressRule {
                host: Some(route.host.clone()),
                http: Some(HTTPIngressRuleValue { paths }),
            }]),
            tls: route.tls.as_ref().map(|t| {
                vec![IngressTLS {
                    hosts: Some(vec![route.host.clone()]),
                    secret_name: Some(t.secret_name.clone()),
                }]
            }),
            ..IngressSpec::default()
        }),
        ..Ingress::default()
    })
}

/// The component's HTTPRoute, when its route names Gateways.
pub fn http_route(ctx: &StackRef, c: &Component) -> Option<HttpRoute> {
    let route = c.route.as_ref()?;
    let gateway = route.gateway.as_ref()?;
    let port = c.port?;
    let matches = route
        .paths()
        .into_iter()
        .map(|p| HttpRouteMatch {
            path: HttpPathMatch {
                type_: match p.path_type() {
                    PathType::Prefix => "PathPrefix",
                    PathType::Exact => "Exact",
                }
                .into(),
                value: p.path,
            },
        })
        .collect();
    Some(HttpRoute {
        metadata: meta(ctx, c, route),
        spec: HttpRouteSpec {
            parent_refs: gateway
                .parent_refs
                .iter()
                .map(|p| HttpRouteParentRef {
                    name: p.name.clone(),
                    namespace: p.namespace.clone(),
                    section_name: p.section_name.clone(),
                })
                .collect(),
            hostnames: vec![route.host.clone()],
            rules: vec![HttpRouteRule {
                matches,
                backend_refs: vec![HttpBackendRef {
                    name: names::component(&ctx.name, &c.name),
                    port,
                }],
            }],
        },
    })
}

fn meta(
    ctx: &StackRef,
    c: &Component,
    route: &Route,
) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
    let mut meta = ctx.object_meta(
        names::component(&ctx.name, &c.name),
        &c.name,
        labels::ROLE_APP,
    );
    meta.annotations = route.annotations.clone().filter(|a| !a.is_empty());
    meta
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::AppStack;

    fn component(yaml: &str) -> (StackRef, Component) {
        let spec = serde_yaml::from_str(&format!("components: [{yaml}]")).unwrap();
        let mut s = AppStack::new("shop", spec);
        s.metadata.namespace = Some("ns".into());
        s.metadata.uid = Some("u".into());
        let c = s.spec.components[0].clone();
        (StackRef::new(&s).unwrap(), c)
    }

    #[test]
    fn a_route_defaults_to_everything_under_its_host() {
        let (ctx, c) =
            component("{name: web, image: i, port: 8080, route: {host: shop.example.com}}");
        let ing = ingress(&ctx, &c).unwrap();
        let rule = &ing.spec.as_ref().unwrap().rules.as_ref().unwrap()[0];
        assert_eq!(rule.host.as_deref(), Some("shop.example.com"));
        let path = &rule.http.as_ref().unwrap().paths[0];
        assert_eq!(
            (path.path.as_deref(), path.path_type.as_str()),
            (Some("/"), "Prefix")
        );
        let backend = path.backend.service.as_ref().unwrap();
        assert_eq!(backend.name, "shop-web");
        assert_eq!(backend.port.as_ref().unwrap().number, Some(8080));
        assert!(http_route(&ctx, &c).is_none());
        assert_eq!(c.route.unwrap().urls(), vec!["http://shop.example.com/"]);
    }

    #[test]
    fn gateways_make_an_http_route_instead_and_never_another_namespaces_backend() {
        let (ctx, c) = component(
            "{name: web, image: i, port: 80, route: {host: a.example, paths: [{path: /api, pathType: Exact}], gateway: {parentRefs: [{name: gw, namespace: infra}]}}}",
        );
        assert!(ingress(&ctx, &c).is_none());
        let r = http_route(&ctx, &c).unwrap();
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["apiVersion"], "gateway.networking.k8s.io/v1");
        assert_eq!(v["kind"], "HTTPRoute");
        assert_eq!(v["spec"]["rules"][0]["matches"][0]["path"]["type"], "Exact");
        assert_eq!(
            v["spec"]["rules"][0]["backendRefs"][0],
            serde_json::json!({"name": "shop-web", "port": 80})
        );
        assert_eq!(v["spec"]["parentRefs"][0]["namespace"], "infra");
    }

    #[test]
    fn tls_gives_https() {
        let (ctx, c) = component(
            "{name: web, image: i, port: 80, route: {host: a.example, tls: {secretName: a-tls}}}",
        );
        let ing = ingress(&ctx, &c).unwrap();
        let tls = &ing.spec.unwrap().tls.unwrap()[0];
        assert_eq!(tls.secret_name.as_deref(), Some("a-tls"));
        assert_eq!(c.route.unwrap().urls(), vec!["https://a.example/"]);
    }
}
