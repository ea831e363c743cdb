//! `kubectl appstack status`: one screen of what a stack is doing: its
//! conditions, components, stores (and whatever newer operators report on
//! them, such as a primary or a lag), backups and the recoverable window,
//! migrations and jobs, routes, and its recent Events.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::core::v1::{Event, Pod};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::api::ListParams;
use serde_json::Value;

use super::{PluginError, Result, Stack, Target, pods};
use crate::api::{AppStack, BackupStatus, ReplicationStatus};
use crate::build::stores::{self, Engine};

/// Events shown, newest last.
const EVENTS: usize = 10;

/// Fields of `status.<store>` shown in their own columns; any other (what
/// a newer operator adds: replicas, primary, lag, ...) is listed as it is.
const KNOWN_STORE_FIELDS: [&str; 6] = [
    "ready",
    "endpoint",
    "secretName",
    "restoredFrom",
    "backup",
    "replication",
];

pub async fn run(target: &Target) -> Result<()> {
    let stack = target.stack().await?;
    let mut store_pods = BTreeMap::new();
    for engine in stores::of(&stack.typed.spec) {
        let set = engine.secret_name(&target.name);
        let found = pods::of_store(target, engine.part(), &set, None).await?;
        store_pods.insert(engine.part(), found);
    }
    let events = events(target).await?;
    print!("{}", render(&stack, &store_pods, &events, Timestamp::now()));
    Ok(())
}

/// The stack's own Events (`list events`; without the permission the
/// screen says so instead).
async fn events(target: &Target) -> Result<Result<Vec<Event>, String>> {
    let selector = format!(
        "involvedObject.kind={},involvedObject.name={}",
        <AppStack as kube::Resource>::kind(&()),
        target.name
    );
    match target
        .api::<Event>()
        .list(&ListParams::default().fields(&selector))
        .await
    {
        Ok(list) => Ok(Ok(list.items)),
        Err(e) if PluginError::is_forbidden(&e) => Ok(Err(format!(
            "your account may not list events in namespace {}",
            target.ns
        ))),
        Err(e) => Err(PluginError::api(
            "listing the stack's events",
            &target.ns,
            e,
        )),
    }
}

/// The screen, from what was read (pure: `now` for the ages).
pub fn render(
    stack: &Stack,
    store_pods: &BTreeMap<&str, Vec<Pod>>,
    events: &Result<Vec<Event>, String>,
    now: Timestamp,
) -> String {
    let s = &stack.typed;
    let status = s.status.clone().unwrap_or_default();
    let mut out = String::new();
    let generation = s.metadata.generation.unwrap_or(0);
    let observed = status
        .observed_generation
        .map_or("never".to_string(), |g| g.to_string());
    let _ = writeln!(
        out,
        "AppStack {} in namespace {} (generation {generation}, observed {observed})",
        s.name_any(),
        s.namespace().unwrap_or_default()
    );
    if status.observed_generation.is_some_and(|o| o < generation) {
        let _ = writeln!(
            out,
            "  the operator has not yet acted on the newest spec: what follows may be older"
        );
    }

    section(&mut out, "Conditions");
    let rows: Vec<Vec<String>> = status
        .conditions
        .iter()
        .map(|c| {
            vec![
                c.type_.clone(),
                c.status.clone(),
                c.reason.clone(),
                one_line(&c.message),
            ]
        })
        .collect();
    table(
        &mut out,
        &["TYPE", "STATUS", "REASON", "MESSAGE"],
        &rows,
        "none reported yet",
    );

    section(&mut out, "Components");
    let rows: Vec<Vec<String>> = s
        .spec
        .components
        .iter()
        .map(|c| {
            let st = status.components.iter().find(|x| x.name == c.name);
            let ready = st.map_or("-".to_string(), |st| {
                format!("{}/{}", st.ready_replicas, st.desired_replicas)
            });
            let url = st
                .and_then(|st| st.url.clone())
                .map(|u| match st.and_then(|st| st.route_address.as_ref()) {
                    Some(addr) => format!("{u} ({addr})"),
                    None => u,
                })
                .unwrap_or_else(|| "-".into());
            vec![c.name.clone(), ready, c.image.clone(), url]
        })
        .collect();
    table(&mut out, &["NAME", "READY", "IMAGE", "URL"], &rows, "none");

    section(&mut out, "Stores");
    let mut rows = Vec::new();
    let mut extra = Vec::new();
    for engine in stores::ENGINES.iter().copied().filter(|e| e.runs(&s.spec)) {
        let part = engine.part();
        let st = engine.status(&status);
        let ready = st.map_or("-", |st| if st.ready { "yes" } else { "no" });
        let (image, pods) = if engine.external(&s.spec).is_some() {
            ("external".to_string(), "-".to_string())
        } else {
            let pods = store_pods
                .get(part)
                .map(|ps| {
                    ps.iter()
                        .map(|p| format!("{} ({})", p.name_any(), pods::describe(p)))
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "none".into());
            (engine.image(&s.spec), pods)
        };
        let endpoint = st.map_or("-".to_string(), |st| st.endpoint.clone());
        rows.push(vec![
            part.to_string(),
            ready.to_string(),
            image,
            endpoint,
            pods,
        ]);
        if let Some(from) = st.and_then(|st| st.restored_from.as_ref()) {
            extra.push(format!("{part}: restored from {from}"));
        }
        if let Some(Value::Object(fields)) = stack.raw.pointer(&format!("/status/{part}")) {
            for (key, value) in fields {
                if !KNOWN_STORE_FIELDS.contains(&key.as_str()) {
                    extra.push(format!("{part}.{key}: {}", compact(value)));
                }
            }
        }
    }
    table(
        &mut out,
        &["STORE", "READY", "IMAGE", "ENDPOINT", "PODS"],
        &rows,
        "none",
    );
    for line in extra {
        let _ = writeln!(out, "  {line}");
    }

    let replicated: Vec<(&dyn Engine, &ReplicationStatus)> = stores::ENGINES
        .iter()
        .copied()
        .filter_map(|e| Some((e, e.status(&status)?.replication.as_ref()?)))
        .collect();
    if !replicated.is_empty() {
        section(&mut out, "Replication");
        let mut rows = Vec::new();
        let mut notes = Vec::new();
        for (engine, r) in replicated {
            let writer = engine.writer_label(&s.spec).unwrap_or("primary");
            replication(engine.part(), writer, r, now, &mut rows, &mut notes);
        }
        table(
            &mut out,
            &["STORE", "POD", "ROLE", "LINK", "LAG"],
            &rows,
            "none",
        );
        for line in notes {
            let _ = writeln!(out, "  {line}");
        }
    }

    let backed_up: Vec<&dyn Engine> = stores::of(&s.spec)
        .filter(|e| e.backup(&s.spec).is_some())
        .collect();
    if !backed_up.is_empty() {
        section(&mut out, "Backups");
        let rows: Vec<Vec<String>> = backed_up
            .iter()
            .map(|e| {
                let schedule = e
                    .backup(&s.spec)
                    .and_then(|b| b.schedule.clone())
                    .unwrap_or_else(|| "default".into());
                let b = e.status(&status).and_then(|st| st.backup.clone());
                backup_row(e.part(), &schedule, b.as_ref())
            })
            .collect();
        table(
            &mut out,
            &[
                "STORE",
                "SCHEDULE",
                "LAST",
                "SIZE",
                "KEPT",
                "RECOVERABLE",
                "FAILURE",
            ],
            &rows,
            "none",
        );
    }

    if !status.migrations.is_empty() || !status.jobs.is_empty() {
        section(&mut out, "Migrations and jobs");
        let mut rows: Vec<Vec<String>> = status
            .migrations
            .iter()
            .map(|m| {
                vec![
                    format!("migrate {}", m.component),
                    m.job.clone(),
                    m.phase.clone(),
                ]
            })
            .collect();
        rows.extend(status.jobs.iter().map(|j| {
            vec![
                format!("job {}", j.name),
                format!(
                    "last scheduled {}",
                    j.last_schedule_time.as_deref().unwrap_or("never")
                ),
                format!(
                    "last succeeded {}",
                    j.last_successful_time.as_deref().unwrap_or("never")
                ),
            ]
        }));
        table(&mut out, &["WHAT", "JOB", "STATE"], &rows, "none");
    }

    section(&mut out, "Events");
    match events {
        Ok(events) => {
            let rows: Vec<Vec<String>> = recent(events, EVENTS)
                .into_iter()
                .map(|(at, e)| {
                    vec![
                        at.map_or("-".into(), |at| age(now, at)),
                        e.type_.clone().unwrap_or_default(),
                        e.reason.clone().unwrap_or_default(),
                        e.count.map_or("1".into(), |c| c.to_string()),
                        one_line(e.message.as_deref().unwrap_or_default()),
                    ]
                })
                .collect();
            table(
                &mut out,
                &["AGE", "TYPE", "REASON", "COUNT", "MESSAGE"],
                &rows,
                "none",
            );
        }
        Err(why) => {
            let _ = writeln!(out, "  {why}");
        }
    }
    out
}

/// One replicated store's rows (its primary first, then each replica with
/// its link and lag) and notes: a failover under way, the last one and how
/// long the store had no primary, why none can be promoted.
fn replication(
    part: &str,
    writer: &str,
    r: &ReplicationStatus,
    now: Timestamp,
    rows: &mut Vec<Vec<String>>,
    notes: &mut Vec<String>,
) {
    let when = |ms: i64| {
        Timestamp::from_millisecond(ms).map_or_else(
            |_| "-".to_string(),
            |at| {
                format!(
                    "{} ({} ago)",
                    at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    age(now, at)
                )
            },
        )
    };
    match &r.primary {
        Some(pod) => rows.push(vec![
            part.into(),
            pod.clone(),
            writer.into(),
            "-".into(),
            "-".into(),
        ]),
        None => notes.push(format!(
            "{part}: no {writer} now{}{}",
            r.former_primary
                .as_ref()
                .map_or(String::new(), |f| format!(" (was {f})")),
            r.failover_started
                .map_or(String::new(), |ms| format!(", since {}", when(ms)))
        )),
    }
    rows.extend(r.replicas.iter().map(|rep| {
        vec![
            part.into(),
            rep.pod.clone(),
            "replica".into(),
            rep.link.clone(),
            rep.lag_bytes.map_or("-".into(), bytes),
        ]
    }));
    if let Some(f) = &r.last_failover {
        let took = f.without_primary_ms.map_or(String::new(), |ms| {
            format!(", {:.1} s without a {writer}", ms as f64 / 1000.0)
        });
        notes.push(format!(
            "{part}: last failover {} -> {} at {}{took}",
            f.from.as_deref().unwrap_or("-"),
            f.to,
            when(f.at),
        ));
    }
    if let Some(timeline) = r.timeline {
        notes.push(format!("{part}: timeline {timeline}"));
    }
    if let Some(why) = &r.blocked {
        notes.push(format!(
            "{part}: no replica can be promoted: {}",
            one_line(why)
        ));
    }
}

fn backup_row(part: &str, schedule: &str, b: Option<&BackupStatus>) -> Vec<String> {
    let Some(b) = b else {
        return vec![
            part.into(),
            schedule.into(),
            "none yet".into(),
            "-".into(),
            "-".into(),
            "-".into(),
            "-".into(),
        ];
    };
    let last = match (&b.last_successful, &b.last_successful_time) {
        (Some(label), Some(at)) => format!("{label} at {at}"),
        (Some(label), None) => label.clone(),
        _ => "none yet".into(),
    };
    let window = match (&b.first_recoverable_time, &b.last_recoverable_time) {
        (Some(first), Some(last)) => format!("{first} .. {last}"),
        (Some(first), None) => format!("from {first}"),
        _ => "-".into(),
    };
    vec![
        part.into(),
        schedule.into(),
        last,
        b.last_size_bytes.map_or("-".into(), bytes),
        match (b.count, b.total_bytes) {
            (Some(c), Some(t)) => format!("{c} ({} in all)", bytes(t)),
            (Some(c), None) => c.to_string(),
            _ => "-".into(),
        },
        window,
        b.last_failure.as_deref().map_or("-".into(), one_line),
    ]
}

/// The newest `n` events, oldest first, with when each last happened.
fn recent(events: &[Event], n: usize) -> Vec<(Option<Timestamp>, &Event)> {
    let mut dated: Vec<(Option<Timestamp>, &Event)> = events
        .iter()
        .map(|e| {
            let at = e
                .last_timestamp
                .as_ref()
                .map(|t| t.0)
                .or_else(|| e.event_time.as_ref().map(|t| t.0))
                .or_else(|| e.first_timestamp.as_ref().map(|t| t.0))
                .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0));
            (at, e)
        })
        .collect();
    dated.sort_by_key(|(at, _)| *at);
    let skip = dated.len().saturating_sub(n);
    dated.split_off(skip)
}

fn age(now: Timestamp, at: Timestamp) -> String {
    let secs = (now.as_second() - at.as_second()).max(0);
    match secs {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

pub(super) fn bytes(n: i64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A message on one line, at most 160 characters, without control
/// characters: messages carry what pods and servers said, and an escape
/// sequence must not reach the reader's terminal.
fn one_line(text: &str) -> String {
    let joined = text
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace(|c: char| c.is_control(), "?");
    if joined.chars().count() > 160 {
        let cut: String = joined.chars().take(157).collect();
        format!("{cut}...")
    } else {
        joined
    }
}

fn compact(value: &Value) -> String {
    match value {
        Value::String(s) => one_line(s),
        other => one_line(&other.to_string()),
    }
}

fn section(out: &mut String, title: &str) {
    let _ = writeln!(out, "\n{title}:");
}

/// Columns padded to their widest cell; the last column is not padded.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>], empty: &str) {
    if rows.is_empty() {
        let _ = writeln!(out, "  {empty}");
        return;
    }
    // Spec fields are the tenant's words too (an image, a name).
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|c| c.replace(|c: char| c.is_control(), "?"))
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::from(" ");
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            text.push(' ');
            if i == last {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}"));
                text.push(' ');
            }
        }
        text.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(header.to_vec()));
    for row in &rows {
        let _ = writeln!(out, "{}", line(row.iter().map(String::as_str).collect()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The screen of a stack with no pods or Events, at 10:00 on the
    /// fixtures' day.
    fn render_at_ten(raw: Value) -> String {
        let now: Timestamp = "2026-12-06T10:00:00Z".parse().unwrap();
        render(
            &Stack::from_raw(raw),
            &BTreeMap::new(),
            &Ok(Vec::new()),
            now,
        )
    }

    fn shop() -> Value {
        json!({
            "apiVersion": "appstack.dev/v1alpha1", "kind": "AppStack",
            "metadata": {"name": "shop", "namespace": "demo", "generation": 3},
            "spec": {
                "components": [{"name": "web", "image": "shop:1", "port": 8080}],
                "redis": {},
                "postgres": {"image": "postgres:17", "backup": {"schedule": "0 3 * * *"}},
            },
            "status": {
                "observedGeneration": 3,
                "conditions": [
                    {"type": "Ready", "status": "True", "reason": "Ready", "message": "every component\nand store serves",
                     "lastTransitionTime": "2026-12-06T10:00:00Z"},
                    {"type": "Degraded", "status": "False", "reason": "AsExpected", "message": "",
                     "lastTransitionTime": "2026-12-06T10:00:00Z"},
                ],
                "components": [{"name": "web", "desiredReplicas": 2, "readyReplicas": 2,
                                "url": "https://shop.example.com/"}],
                "redis": {"ready": true, "endpoint": "shop-redis.demo.svc:6379", "secretName": "shop-redis"},
                "postgres": {"ready": false, "endpoint": "shop-postgres.demo.svc:5432", "secretName": "shop-postgres",
                             "primary": "shop-postgres-1", "lagBytes": 0,
                             "backup": {"lastSuccessful": "20261206T030000Z", "lastSuccessfulTime": "2026-12-06T03:00:07Z",
                                        "lastSizeBytes": 50_331_648, "count": 2, "totalBytes": 104_857_600,
                                        "firstRecoverableTime": "2026-12-05T03:00:07Z",
                                        "lastRecoverableTime": "2026-12-06T09:59:00Z"}},
                "migrations": [{"component": "web", "job": "shop-web-migrate-abc", "phase": "Succeeded"}],
            }
        })
    }

    fn event(reason: &str, at: &str) -> Event {
        serde_json::from_value(json!({
            "metadata": {"name": reason, "namespace": "demo"},
            "involvedObject": {"kind": "AppStack", "name": "shop"},
            "type": "Normal", "reason": reason, "message": format!("{reason} happened"),
            "lastTimestamp": at, "count": 1,
        }))
        .unwrap()
    }

    #[test]
    fn the_screen_shows_conditions_components_stores_backups_and_events() {
        let now: Timestamp = "2026-12-06T10:00:30Z".parse().unwrap();
        let events: Vec<Event> = (0..12)
            .map(|i| event(&format!("E{i:02}"), &format!("2026-12-06T10:00:{i:02}Z")))
            .collect();
        let pods = BTreeMap::from([("postgres", Vec::new()), ("redis", Vec::new())]);
        let text = render(&Stack::from_raw(shop()), &pods, &Ok(events), now);
        for expected in [
            "AppStack shop in namespace demo (generation 3, observed 3)",
            "Ready     True    Ready       every component and store serves",
            "web   2/2    shop:1  https://shop.example.com/",
            "postgres  no     postgres:17",
            "redis     yes    redis:7.4",
            "postgres.primary: shop-postgres-1",
            "postgres.lagBytes: 0",
            "20261206T030000Z at 2026-12-06T03:00:07Z",
            "48.0 MiB",
            "2 (100.0 MiB in all)",
            "2026-12-05T03:00:07Z .. 2026-12-06T09:59:00Z",
            "migrate web  shop-web-migrate-abc  Succeeded",
            "19s  Normal  E11",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        // The last ten events only, oldest first.
        assert!(!text.contains("E01"), "{text}");
        assert!(text.find("E02").unwrap() < text.find("E11").unwrap());
        assert!(!text.contains("Migrations and jobs:\n  none"));
    }

    #[test]
    fn a_new_stack_and_forbidden_events_are_said_plainly() {
        let mut raw = shop();
        raw.as_object_mut().unwrap().remove("status");
        raw["spec"]["postgres"]["external"] = json!({"secretName": "db"});
        let text = render(
            &Stack::from_raw(raw),
            &BTreeMap::new(),
            &Err("your account may not list events in namespace demo".into()),
            Timestamp::now(),
        );
        assert!(text.contains("observed never"), "{text}");
        assert!(text.contains("Conditions:\n  none reported yet"), "{text}");
        assert!(text.contains("postgres  -      external"), "{text}");
        assert!(
            !text.contains("Backups:"),
            "an external store has no backups: {text}"
        );
        assert!(text.contains("your account may not list events"), "{text}");
    }

    #[test]
    fn replication_shows_the_master_each_replica_and_the_last_failover() {
        let mut raw = shop();
        raw["spec"]["redis"] = json!({"replicas": 2});
        raw["status"]["redis"]["replication"] = json!({
            "primary": "shop-redis-1",
            "replicas": [{"pod": "shop-redis-0", "link": "syncing"},
                         {"pod": "shop-redis-2", "link": "up", "lagBytes": 2048}],
            "lastFailover": {"from": "shop-redis-0", "to": "shop-redis-1",
                             "time": "2026-12-06T09:58:00Z", "at": 1_796_551_080_000_i64,
                             "withoutPrimaryMs": 4_300},
        });
        let text = render_at_ten(raw);
        for expected in [
            "Replication:",
            "STORE  POD           ROLE     LINK     LAG",
            "redis  shop-redis-1  master   -        -",
            "redis  shop-redis-0  replica  syncing  -",
            "redis  shop-redis-2  replica  up       2.0 KiB",
            "redis: last failover shop-redis-0 -> shop-redis-1 at 2026-12-06T09:58:00Z (2m ago), 4.3 s without a master",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        assert!(!text.contains("redis.replication"), "{text}");
    }

    #[test]
    fn a_failover_under_way_says_since_when_and_what_blocks_it() {
        let mut raw = shop();
        raw["spec"]["postgres"]["instances"] = json!(3);
        raw["status"]["postgres"]["replication"] = json!({
            "replicas": [{"pod": "shop-postgres-1", "link": "down", "lagBytes": 0}],
            "failoverStarted": 1_796_551_190_000_i64,
            "formerPrimary": "shop-postgres-0",
            "timeline": 3,
            "blocked": "every replica\nlags",
        });
        let text = render_at_ten(raw);
        for expected in [
            "postgres  shop-postgres-1  replica  down  0 B",
            "postgres: no primary now (was shop-postgres-0), since 2026-12-06T09:59:50Z (10s ago)",
            "postgres: timeline 3",
            "postgres: no replica can be promoted: every replica lags",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
    }

    #[test]
    fn sizes_and_ages_read_as_a_person_would() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        let now: Timestamp = "2026-12-06T10:00:00Z".parse().unwrap();
        assert_eq!(age(now, "2026-12-06T09:59:00Z".parse().unwrap()), "60s");
        assert_eq!(age(now, "2026-12-06T09:00:00Z".parse().unwrap()), "60m");
        assert_eq!(age(now, "2026-12-01T10:00:00Z".parse().unwrap()), "5d");
        assert_eq!(one_line(&"x".repeat(200)).len(), 160);
        assert_eq!(one_line("red \u{1b}[31mtext\u{7}"), "red ?[31mtext?");
    }
}
