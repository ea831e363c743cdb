//! The operator binary's backup agent, for the S3 target: `backup-sync`
//! copies a store's backup volume to a bucket (new files, commit markers
//! last, and the retention the volume already applied), and `backup-fetch`
//! brings a stack's backups back for a restore. It runs from the operator's
//! own image beside the store image's tools, which write and check the
//! backups; the agent only moves verified files and never changes them.
//!
//! Layout, the same on the volume and under `<prefix>/<stack>/<store>/` in
//! the bucket: PostgreSQL `base/<label>/...` (a plain-format base backup
//! with its manifest) committed by `base/<label>.end`, and `wal/<segment>.gz`
//! committed by `wal/<segment>.gz.sha256`; Redis `<label>.rdb` committed by
//! `<label>.rdb.sha256`. Labels are UTC times, `YYYYMMDDTHHMMSSZ`.

pub mod s3;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use s3::{Bucket, S3Error};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}")]
    Missing(String),
}

/// Which store's layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Store {
    Postgres,
    Redis,
}

/// Where in the bucket: `<prefix>/<stack>/<store>/`.
pub struct Remote {
    pub bucket: Bucket,
    pub prefix: String,
}

impl Remote {
    fn key(&self, relative: &str) -> String {
        format!("{}{relative}", self.prefix)
    }
}

fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 8 || i == 15 || c.is_ascii_digit())
}

/// The label a relative path belongs to (a base backup or snapshot), if any.
fn label_of(store: Store, relative: &str) -> Option<&str> {
    let name = match store {
        Store::Postgres => relative.strip_prefix("base/")?,
        Store::Redis => relative,
    };
    let label = name.get(..16)?;
    is_label(label).then_some(label)
}

/// A WAL segment's position, without its timeline: what retention compares.
fn segment_position(relative: &str) -> Option<&str> {
    let name = relative.strip_prefix("wal/")?;
    let segment = name.get(..24)?;
    (segment.chars().all(|c| c.is_ascii_hexdigit()) && !name.contains(".history"))
        .then(|| &segment[8..])
}

/// Whether the file commits others (uploaded last, downloaded as the proof
/// that what it commits is whole).
fn is_marker(relative: &str) -> bool {
    relative.ends_with(".end") || relative.ends_with(".sha256")
}

/// Every committed file under `root` (relative paths): no hidden or
/// temporary file, nothing of a half-written (`.partial`) backup.
fn local_files(root: &Path, only: Option<&str>) -> Result<BTreeMap<String, u64>, AgentError> {
    let mut out = BTreeMap::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(dir) = stack.pop() {
        let full = root.join(&dir);
        let entries = match std::fs::read_dir(&full) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(AgentError::Io(full.display().to_string(), e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| AgentError::Io(full.display().to_string(), e))?;
            let name = entry.file_name().to_string_lossy().to_string();
            if name.starts_with('.') || name.ends_with(".partial") || name.ends_with(".tmp") {
                continue;
            }
            let relative = dir.join(&name);
            let meta = entry
                .metadata()
                .map_err(|e| AgentError::Io(relative.display().to_string(), e))?;
            if meta.is_dir() {
                stack.push(relative);
            } else {
                let rel = relative.to_string_lossy().to_string();
                if only.is_none_or(|o| rel.starts_with(o)) {
                    out.insert(rel, meta.len());
                }
            }
        }
    }
    Ok(out)
}

/// Every directory under `dir`, relative to it.
fn directories(dir: &Path) -> Result<Vec<String>, AgentError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let full = dir.join(&rel);
        let entries =
            std::fs::read_dir(&full).map_err(|e| AgentError::Io(full.display().to_string(), e))?;
        for entry in entries {
            let entry = entry.map_err(|e| AgentError::Io(full.display().to_string(), e))?;
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let child = rel.join(entry.file_name());
                out.push(child.to_string_lossy().to_string());
                stack.push(child);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The labels of the backups on the volume that are whole (committed).
fn committed_labels(store: Store, files: &BTreeMap<String, u64>) -> BTreeSet<String> {
    files
        .keys()
        .filter(|f| match store {
            Store::Postgres => f.ends_with(".end"),
            Store::Redis => f.ends_with(".rdb.sha256"),
        })
        .filter_map(|f| label_of(store, f).map(str::to_string))
        .collect()
}

/// The first WAL segment position the oldest kept base backup needs.
fn wal_cutoff(root: &Path, label: &str) -> Option<String> {
    let text = std::fs::read_to_string(root.join("base").join(label).join("backup_label")).ok()?;
    let line = text.lines().find(|l| l.starts_with("START WAL LOCATION"))?;
    let file = line.rsplit("(file ").next()?.trim_end_matches(')');
    segment_position(&format!("wal/{file}")).map(str::to_string)
}

/// What a sync did.
#[derive(Debug, Default)]
pub struct Synced {
    pub uploaded: usize,
    pub bytes: u64,
    pub deleted: usize,
}

/// Copies the volume's committed files to the bucket (those not there at
/// that size), markers after what they commit, then deletes from the bucket
/// what the volume's retention removed: backups older than the oldest one
/// the volume keeps, and the WAL none of them needs. A volume holding no
/// whole backup deletes nothing (a new, empty volume must never empty the
/// bucket).
pub async fn sync(
    store: Store,
    root: &Path,
    remote: &Remote,
    only: Option<&str>,
) -> Result<Synced, AgentError> {
    let local = local_files(root, only)?;
    let listed = remote.bucket.list(&remote.prefix).await?;
    let there: BTreeMap<String, u64> = listed
        .iter()
        .filter_map(|o| Some((o.key.strip_prefix(&remote.prefix)?.to_string(), o.size)))
        .collect();
    let mut synced = Synced::default();
    // A bucket keeps no empty directory, and PostgreSQL will not start
    // without its own (pg_notify, pg_replslot, ...): each base backup's
    // directories go as a list beside it, before its marker.
    if store == Store::Postgres && only.is_none() {
        for label in committed_labels(store, &local) {
            let key = format!("base/{label}.dirs");
            if there.contains_key(&key) {
                continue;
            }
            let dirs = directories(&root.join("base").join(&label))?;
            remote
                .bucket
                .put_bytes(&remote.key(&key), dirs.join("\n").into_bytes())
                .await?;
            synced.uploaded += 1;
        }
    }
    let (markers, data): (Vec<_>, Vec<_>) = local.iter().partition(|(f, _)| is_marker(f));
    for (file, size) in data.into_iter().chain(markers) {
        if there.get(file) == Some(size) {
            continue;
        }
        remote
            .bucket
            .put_file(&remote.key(file), &root.join(file))
            .await?;
        synced.uploaded += 1;
        synced.bytes += size;
    }
    if only.is_some() {
        return Ok(synced);
    }
    let kept = committed_labels(store, &local);
    let Some(oldest) = kept.iter().next() else {
        return Ok(synced);
    };
    let cutoff = match store {
        Store::Postgres => wal_cutoff(root, oldest),
        Store::Redis => None,
    };
    for file in there.keys() {
        let old_backup = label_of(store, file).is_some_and(|l| l < oldest.as_str());
        let old_wal = cutoff
            .as_deref()
            .is_some_and(|c| segment_position(file).is_some_and(|p| p < c));
        if old_backup || old_wal {
            remote.bucket.delete(&remote.key(file)).await?;
            synced.deleted += 1;
        }
    }
    Ok(synced)
}

/// Syncs every `every` (WAL as it is archived), or once. Errors are logged
/// and retried: the files stay on the volume until they are copied.
pub async fn sync_loop(
    store: Store,
    root: &Path,
    remote: &Remote,
    only: Option<&str>,
    every: Duration,
) {
    loop {
        match sync(store, root, remote, only).await {
            Ok(s) if s.uploaded > 0 || s.deleted > 0 => {
                tracing::info!(
                    uploaded = s.uploaded,
                    bytes = s.bytes,
                    deleted = s.deleted,
                    "synced to S3"
                )
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "sync to S3 failed; retrying"),
        }
        tokio::time::sleep(every).await;
    }
}

/// Brings back what a restore to `target` (a label-comparable UTC time,
/// `YYYYMMDDTHHMMSSZ`; None for the latest) needs into `into`, in the
/// volume's layout: the two newest whole backups taken before it (the
/// restore takes the newest that still verifies) and, for PostgreSQL, all
/// archived WAL from the older one's start. With `wal_only`, only the WAL
/// (a restore interrupted while PostgreSQL replayed it).
pub async fn fetch(
    store: Store,
    into: &Path,
    remote: &Remote,
    target: Option<&str>,
    wal_only: bool,
) -> Result<usize, AgentError> {
    let listed = remote.bucket.list(&remote.prefix).await?;
    let files: BTreeMap<String, u64> = listed
        .iter()
        .filter_map(|o| Some((o.key.strip_prefix(&remote.prefix)?.to_string(), o.size)))
        .collect();
    let mut labels: Vec<String> = committed_labels(store, &files)
        .into_iter()
        .filter(|l| target.is_none_or(|t| l.as_str() <= t))
        .collect();
    labels.reverse();
    labels.truncate(2);
    if labels.is_empty() && !wal_only {
        return Err(AgentError::Missing(format!(
            "no whole backup under s3://…/{} taken before {}",
            remote.prefix,
            target.unwrap_or("now")
        )));
    }
    let wanted: Vec<&String> = files
        .keys()
        .filter(|f| {
            let backup =
                !wal_only && label_of(store, f).is_some_and(|l| labels.iter().any(|k| k == l));
            let wal = store == Store::Postgres && f.starts_with("wal/");
            backup || wal
        })
        .collect();
    let mut fetched = 0;
    for label in labels
        .iter()
        .filter(|_| store == Store::Postgres && !wal_only)
    {
        let key = format!("base/{label}.dirs");
        if !files.contains_key(&key) {
            continue;
        }
        let list = remote.bucket.get_bytes(&remote.key(&key)).await?;
        for dir in String::from_utf8_lossy(&list)
            .lines()
            .filter(|d| !d.is_empty())
        {
            if dir.split('/').any(|part| part == ".." || part.is_empty()) {
                continue;
            }
            let path = into.join("base").join(label).join(dir);
            tokio::fs::create_dir_all(&path)
                .await
                .map_err(|e| AgentError::Io(path.display().to_string(), e))?;
        }
    }
    for file in wanted {
        let path = into.join(file);
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| AgentError::Io(parent.display().to_string(), e))?;
        }
        remote.bucket.get_file(&remote.key(file), &path).await?;
        fetched += 1;
    }
    Ok(fetched)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_segments_are_recognised() {
        assert_eq!(
            label_of(Store::Postgres, "base/20261202T035449Z/global/pg_control"),
            Some("20261202T035449Z")
        );
        assert_eq!(
            label_of(Store::Postgres, "base/20261202T035449Z.end"),
            Some("20261202T035449Z")
        );
        assert_eq!(
            label_of(Store::Postgres, "wal/000000010000000000000003.gz"),
            None
        );
        assert_eq!(
            label_of(Store::Redis, "20261202T035449Z.rdb.sha256"),
            Some("20261202T035449Z")
        );
        assert_eq!(
            segment_position("wal/000000020000000000000003.gz.sha256"),
            Some("0000000000000003")
        );
        assert_eq!(segment_position("wal/00000002.history.gz"), None);
        assert!(
            is_marker("wal/x.gz.sha256")
                && is_marker("base/l.end")
                && !is_marker("base/l/backup_label")
        );
    }

    #[test]
    fn only_whole_backups_count() {
        let files: BTreeMap<String, u64> = [
            ("base/20261201T000000Z/backup_label", 1),
            ("base/20261201T000000Z.end", 1),
            ("base/20261202T000000Z/backup_label", 1),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(
            committed_labels(Store::Postgres, &files)
                .into_iter()
                .collect::<Vec<_>>(),
            vec!["20261201T000000Z"]
        );
    }
}
