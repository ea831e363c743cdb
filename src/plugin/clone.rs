//! `kubectl appstack clone`: the AppStack that restores a stack's backed-up
//! stores into a new stack, to the latest point or to a moment (the
//! operator's `spec.restore`, see the README's "Backups, point-in-time
//! restore and clones"). Printed as YAML to review and apply, or created
//! with `--apply` (`--dry-run`: a server-side dry run of that create).

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, PostParams};
use kube::core::ApiResource;
use serde_json::{Value, json};

use super::{PluginError, Result, Stack, Target};
use crate::api::AppStack;
use crate::build::names;
use crate::build::stores;

pub struct Options<'a> {
    pub to: &'a str,
    pub time: Option<&'a str>,
    pub apply: bool,
    pub dry_run: bool,
}

pub async fn run(target: &Target, options: &Options<'_>) -> Result<()> {
    let stack = target.stack().await?;
    let (manifest, notes) = manifest(&stack, options.to, options.time)?;
    for note in &notes {
        eprintln!("note: {note}");
    }
    if !options.apply {
        let yaml = serde_yaml::to_string(&manifest).map_err(|e| PluginError::Api {
            what: "writing the manifest".into(),
            message: e.to_string(),
        })?;
        print!("{yaml}");
        return Ok(());
    }
    let object: DynamicObject = serde_json::from_value(manifest).map_err(|e| PluginError::Api {
        what: "building the AppStack".into(),
        message: e.to_string(),
    })?;
    let resource = ApiResource::erase::<AppStack>(&());
    let api: Api<DynamicObject> =
        Api::namespaced_with(target.client.clone(), &target.ns, &resource);
    let params = PostParams {
        dry_run: options.dry_run,
        field_manager: Some("kubectl-appstack".into()),
    };
    api.create(&params, &object).await.map_err(|e| match &e {
        kube::Error::Api(s) if s.code == 409 => PluginError::Refused(format!(
            "an AppStack {} exists already in namespace {}: choose another --to",
            options.to, target.ns
        )),
        kube::Error::Api(s) if s.code == 422 || s.code == 400 => {
            PluginError::Refused(format!("the API server refused the clone: {}", s.message))
        }
        _ => PluginError::api(
            format!(
                "creating AppStack {} (needs `create appstacks`)",
                options.to
            ),
            &target.ns,
            e,
        ),
    })?;
    if options.dry_run {
        println!("appstack/{} would be created (server dry run)", options.to);
    } else {
        println!(
            "appstack/{} created; `kubectl appstack status {} -n {}` follows the restore",
            options.to, options.to, target.ns
        );
    }
    Ok(())
}

/// The clone of `stack` under the name `to`, restored to `time` (default
/// the latest point), and notes for the caller (pure).
///
/// The source's spec is kept as the server holds it (fields this plugin
/// does not know included), with `restore` set and the components'
/// routes dropped: two stacks answering for one host is up to the
/// ingress controller, never what a clone should do silently.
pub fn manifest(stack: &Stack, to: &str, time: Option<&str>) -> Result<(Value, Vec<String>)> {
    let source = kube::ResourceExt::name_any(&stack.typed);
    let spec = &stack.typed.spec;
    if to == source {
        return Err(PluginError::Refused(format!(
            "--to {to} is the stack itself: a restore fills only empty data volumes, so it makes a new stack; to bring {to} back in place, delete it and its data volumes, then apply it again with `spec.restore: {{from: {to}}}` (README: \"Backups, point-in-time restore and clones\")"
        )));
    }
    if stores::of(spec).next().is_some() && to.len() > names::MAX_STACK_WITH_STORES {
        return Err(PluginError::Refused(format!(
            "--to {to} is {} characters; a stack with a store may have at most {}",
            to.len(),
            names::MAX_STACK_WITH_STORES
        )));
    }
    let backed_up: Vec<&str> = stores::of(spec)
        .filter(|e| e.backup(spec).is_some())
        .map(|e| e.part())
        .collect();
    if backed_up.is_empty() {
        return Err(PluginError::Refused(format!(
            "AppStack {source} backs up none of its stores, so there is nothing to clone from: add spec.<store>.backup and take a backup (`kubectl appstack backup {source}`)"
        )));
    }
    let mut notes = Vec::new();
    if let Some(time) = time {
        let at: Timestamp = time.parse().map_err(|e| {
            PluginError::Refused(format!(
                "--time {time:?} is not an RFC 3339 time such as 2026-12-01T10:00:00Z: {e}"
            ))
        })?;
        notes.extend(window_notes(stack, &backed_up, at));
    }
    let mut restore = json!({"from": source, "stores": backed_up});
    if let Some(time) = time {
        restore["pointInTime"] = json!(time);
    }
    let mut new_spec = stack.raw.get("spec").cloned().unwrap_or_else(|| json!({}));
    new_spec["restore"] = restore;
    if let Some(components) = new_spec.get_mut("components").and_then(Value::as_array_mut) {
        for c in components {
            if let Some(route) = c.as_object_mut().and_then(|c| c.remove("route")) {
                notes.push(format!(
                    "component {} loses its route (host {}) in the clone: add one with a host of its own",
                    c["name"].as_str().unwrap_or("?"),
                    route["host"].as_str().unwrap_or("?")
                ));
            }
        }
    }
    for e in stores::of(spec).filter(|e| e.backup(spec).is_none()) {
        notes.push(format!(
            "{} has no backups: the clone's {} starts empty",
            e.part(),
            e.part()
        ));
    }
    for e in stores::external(spec) {
        notes.push(format!(
            "{} is external: the clone uses the same server (spec.{}.external) as {source}",
            e.part(),
            e.part()
        ));
    }
    let manifest = json!({
        "apiVersion": stack.raw["apiVersion"],
        "kind": stack.raw["kind"],
        "metadata": {"name": to, "namespace": stack.raw["metadata"]["namespace"]},
        "spec": new_spec,
    });
    Ok((manifest, notes))
}

/// A moment outside what status says the backups hold is worth a warning
/// (the operator refuses nothing here: WAL archived since the last backup
/// extends the window).
fn window_notes(stack: &Stack, parts: &[&str], at: Timestamp) -> Vec<String> {
    let mut notes = Vec::new();
    for part in parts {
        let backup = &stack.raw["status"][part]["backup"];
        let first = backup["firstRecoverableTime"].as_str();
        let last = backup["lastRecoverableTime"].as_str();
        let parse = |t: Option<&str>| t.and_then(|t| t.parse::<Timestamp>().ok());
        match (parse(first), parse(last)) {
            (None, _) => notes.push(format!(
                "{part}: status shows no backup yet; the restore needs one made before {at}"
            )),
            (Some(f), _) if at < f => notes.push(format!(
                "{part}: {at} is before the oldest recoverable moment {f}: the restore will fail"
            )),
            (_, Some(l)) if at > l => notes.push(format!(
                "{part}: {at} is after the last recoverable moment the last backup saw ({l}); WAL archived since may cover it"
            )),
            _ => {}
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shop() -> Value {
        json!({
            "apiVersion": "appstack.dev/v1alpha1", "kind": "AppStack",
            "metadata": {"name": "shop", "namespace": "demo", "uid": "u", "resourceVersion": "7",
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {
                "components": [{"name": "web", "image": "shop:1", "port": 8080,
                                "route": {"host": "shop.example.com"}}],
                "redis": {},
                "postgres": {"backup": {"schedule": "0 3 * * *"}, "futureField": 2},
                "restore": {"from": "older"},
            },
            "status": {"postgres": {"ready": true, "endpoint": "", "secretName": "",
                "backup": {"firstRecoverableTime": "2026-12-05T03:00:00Z", "lastRecoverableTime": "2026-12-06T09:00:00Z"}}}
        })
    }

    #[test]
    fn a_clone_restores_the_backed_up_stores_into_a_new_stack() {
        let (m, notes) = manifest(
            &Stack::from_raw(shop()),
            "shop-copy",
            Some("2026-12-06T08:00:00Z"),
        )
        .unwrap();
        assert_eq!(
            m["metadata"],
            json!({"name": "shop-copy", "namespace": "demo"}),
            "no uid, resourceVersion or managedFields of the source"
        );
        assert_eq!(
            m["spec"]["restore"],
            json!({"from": "shop", "stores": ["postgres"], "pointInTime": "2026-12-06T08:00:00Z"})
        );
        assert!(m.get("status").is_none());
        assert_eq!(
            m["spec"]["postgres"]["futureField"], 2,
            "unknown fields kept"
        );
        assert!(m["spec"]["components"][0].get("route").is_none());
        assert!(
            notes
                .iter()
                .any(|n| n.contains("loses its route (host shop.example.com)")),
            "{notes:?}"
        );
        assert!(
            notes.iter().any(|n| n.contains("redis has no backups")),
            "{notes:?}"
        );
        assert_eq!(notes.len(), 2, "{notes:?}");
        let parsed: AppStack = serde_json::from_value(m).unwrap();
        assert_eq!(parsed.spec.restore.unwrap().from, "shop");
    }

    #[test]
    fn a_clone_says_what_cannot_work() {
        let s = Stack::from_raw(shop());
        let (_, notes) = manifest(&s, "c", Some("2026-12-01T00:00:00Z")).unwrap();
        assert!(
            notes
                .iter()
                .any(|n| n.contains("before the oldest recoverable")),
            "{notes:?}"
        );
        let (m, _) = manifest(&s, "c", None).unwrap();
        assert!(m["spec"]["restore"].get("pointInTime").is_none());
        for (to, time, expected) in [
            ("shop", None, "is the stack itself"),
            ("c", Some("yesterday"), "not an RFC 3339 time"),
            (&*"x".repeat(44), None, "at most 43"),
        ] {
            let err = manifest(&s, to, time).unwrap_err().to_string();
            assert!(err.contains(expected), "{err}");
        }
        let mut none = shop();
        none["spec"]["postgres"] = json!({});
        let err = manifest(&Stack::from_raw(none), "c", None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("backs up none of its stores"), "{err}");
    }
}
