//! The operator binary's backup agent, for the S3 target: `backup-sync`
//! copies a store's backup volume to a bucket (new files, commit markers
//! last, and the retention the volume already applied), and `backup-fetch`
//! brings a stack's backups back for a restore. It runs from the operator's
//! own image beside the store image's tools, which write and check the
//! backups; the agent only moves verified files and never changes them.
//!
//! Layout, the same on the volume and under the store's key prefix in the
//! bucket (`<namespace>/[<prefix>/]<stack>/<store>/`, made by the builder): PostgreSQL `base/<label>/...` (a plain-format base backup
//! with its manifest) committed by `base/<label>.end`, and `wal/<segment>.gz`
//! committed by `wal/<segment>.gz.sha256`; Redis `<label>.rdb` committed by
//! `<label>.rdb.sha256`. Labels are UTC times, `YYYYMMDDTHHMMSSZ`.

pub mod s3;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;

use crate::api::backup_summary::is_label;
use s3::{Bucket, S3Error};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    S3(#[from] S3Error),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("{0}")]
    Missing(String),
    /// A key, a listed directory or a prefix that would leave where it
    /// belongs; nothing is written.
    #[error("{0}")]
    Refused(String),
}

/// How a store lays its backups out on the volume (and in the bucket),
/// given by the store's engine (`Engine::layout`): the agent knows no store
/// by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Where the backups are, relative to the root ("" for the root itself):
    /// each `<backups><label>...`.
    pub backups: &'static str,
    /// The suffix of the file that commits a backup, `<backups><label><commit>`.
    pub commit: &'static str,
    /// A backup is a directory whose empty subdirectories the store needs
    /// back: they are listed in `<backups><label>.dirs` (a bucket keeps none).
    pub dirs: bool,
    /// The directory of the log the store archives between backups (WAL
    /// segments, each committed by its `.sha256`), when it has one.
    pub log: Option<&'static str>,
    /// A file in the data directory that says it holds data.
    pub data_marker: &'static str,
    /// A file in the data directory that says a restore is still replaying
    /// the log (its files are then fetched again).
    pub replay_marker: Option<&'static str>,
}

/// Where in the bucket: the store's key prefix (ending in '/').
pub struct Remote {
    bucket: Bucket,
    prefix: String,
}

impl Remote {
    /// Refuses a prefix that is not plain segments (stored stacks bypass
    /// admission rules added later, and some S3 servers map keys to paths).
    pub fn new(bucket: Bucket, prefix: &str) -> Result<Self, AgentError> {
        let segments = prefix
            .strip_suffix('/')
            .ok_or_else(|| AgentError::Refused(format!("S3 prefix {prefix:?}: must end in '/'")))?;
        if let Some(why) = unsafe_path(segments) {
            return Err(AgentError::Refused(format!("S3 prefix {prefix:?}: {why}")));
        }
        Ok(Self {
            bucket,
            prefix: prefix.to_string(),
        })
    }

    fn key(&self, relative: &str) -> String {
        format!("{}{relative}", self.prefix)
    }
}

/// Why a relative path (a key under the prefix, a directory a base backup
/// lists, the prefix itself) could leave the directory it is joined to or
/// name something else than it says, if it could.
pub fn unsafe_path(relative: &str) -> Option<&'static str> {
    if relative.is_empty() {
        Some("is empty")
    } else if relative.starts_with('/') {
        Some("is absolute")
    } else if relative.contains('\\') || relative.contains('\0') {
        Some("holds a backslash or NUL")
    } else if relative
        .split('/')
        .any(|s| s.is_empty() || s == "." || s == "..")
    {
        Some("has an empty, '.' or '..' segment")
    } else {
        None
    }
}

/// Creates `relative` (already checked by `unsafe_path`) under `root`, one
/// directory at a time, refusing any part that is not a real directory: a
/// symlink planted there is never followed.
async fn create_dirs_under(root: &Path, relative: &Path) -> Result<(), AgentError> {
    let mut path = root.to_path_buf();
    for part in relative.components() {
        path.push(part);
        match tokio::fs::symlink_metadata(&path).await {
            Ok(m) if m.is_dir() => continue,
            Ok(_) => {
                return Err(AgentError::Refused(format!(
                    "{}: exists and is not a directory (a symlink is never followed)",
                    path.display()
                )));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(AgentError::Io(path.display().to_string(), e)),
        }
        match tokio::fs::create_dir(&path).await {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(AgentError::Io(path.display().to_string(), e));
            }
            _ => {}
        }
    }
    Ok(())
}

/// The label a relative path belongs to (a base backup or snapshot), if any.
fn label_of(store: Layout, relative: &str) -> Option<&str> {
    let name = relative.strip_prefix(store.backups)?;
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
    // `--only wal/` walks that directory, not the base backups beside it.
    let start = only
        .and_then(|o| o.strip_suffix('/'))
        .map(PathBuf::from)
        .unwrap_or_default();
    let mut stack = vec![start];
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
fn committed_labels(store: Layout, files: &BTreeMap<String, u64>) -> BTreeSet<String> {
    files
        .keys()
        .filter(|f| f.ends_with(store.commit))
        .filter_map(|f| label_of(store, f).map(str::to_string))
        .collect()
}

/// The first WAL segment position the oldest kept base backup needs.
fn wal_cutoff(root: &Path, store: Layout, label: &str) -> Option<String> {
    let backup = root.join(format!("{}{label}", store.backups));
    let text = std::fs::read_to_string(backup.join("backup_label")).ok()?;
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
    store: Layout,
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
    if store.dirs && only.is_none() {
        for label in committed_labels(store, &local) {
            let key = format!("{}{label}.dirs", store.backups);
            if there.contains_key(&key) {
                continue;
            }
            let dirs = directories(&root.join(format!("{}{label}", store.backups)))?;
            remote
                .bucket
                .put_bytes(&remote.key(&key), dirs.join("\n").into_bytes())
                .await?;
            synced.uploaded += 1;
        }
    }
    let (markers, data): (Vec<_>, Vec<_>) = local
        .iter()
        .filter(|(f, size)| there.get(*f) != Some(*size))
        .partition(|(f, _)| is_marker(f));
    // Every file a marker commits is in the bucket before any marker goes.
    for batch in [data, markers] {
        let mut uploads = futures::stream::iter(batch)
            .map(|(file, size)| async move {
                remote
                    .bucket
                    .put_file(&remote.key(file), &root.join(file))
                    .await
                    .map(|()| *size)
            })
            .buffer_unordered(UPLOADS);
        while let Some(sent) = uploads.next().await {
            synced.uploaded += 1;
            synced.bytes += sent?;
        }
    }
    if only.is_some() {
        return Ok(synced);
    }
    let kept = committed_labels(store, &local);
    let Some(oldest) = kept.iter().next() else {
        return Ok(synced);
    };
    let cutoff = store.log.and_then(|_| wal_cutoff(root, store, oldest));
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

/// What the WAL copy and the fetch need of a bucket (a trait so that tests
/// can count listings and plant keys).
pub(crate) trait Objects {
    async fn list_page(
        &self,
        prefix: &str,
        start_after: &str,
        max_keys: usize,
    ) -> Result<s3::Page, S3Error>;
    async fn put_file(&self, key: &str, path: &Path) -> Result<(), S3Error>;
    async fn list(&self, prefix: &str) -> Result<Vec<s3::Object>, S3Error>;
    async fn get_file(&self, key: &str, path: &Path) -> Result<(), S3Error>;
    async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, S3Error>;
}

impl Objects for Bucket {
    async fn list_page(
        &self,
        prefix: &str,
        start_after: &str,
        max_keys: usize,
    ) -> Result<s3::Page, S3Error> {
        Bucket::list_page(self, prefix, start_after, max_keys).await
    }
    async fn put_file(&self, key: &str, path: &Path) -> Result<(), S3Error> {
        Bucket::put_file(self, key, path).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<s3::Object>, S3Error> {
        Bucket::list(self, prefix).await
    }
    async fn get_file(&self, key: &str, path: &Path) -> Result<(), S3Error> {
        Bucket::get_file(self, key, path).await
    }
    async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, S3Error> {
        Bucket::get_bytes(self, key).await
    }
}

/// Keys per listing page of the WAL copy: what it holds of the bucket at once.
const PAGE: usize = 100;

/// Files uploaded at the same time by a sync (each holds at most two parts
/// of `s3::PART` bytes in memory).
const UPLOADS: usize = 4;

/// Files downloaded at the same time by a restore: one at a time, a restore
/// from S3 spent most of its time waiting on each request.
const FETCHES: usize = 8;

/// A marker whose file is not there yet is waited for this long (the
/// archiver renames the checksum, then the file); older, it is an orphan.
const ORPHAN_MARKER: Duration = Duration::from_secs(60);

/// One round of the copy beside PostgreSQL (`--only wal/ --every 5`): the
/// local files under `only` that sort after `cursor` (the newest one known
/// to be in the bucket; WAL names sort in the order they are archived) go
/// up in name order, each file before its checksum. The bucket is listed
/// from the cursor on, one page of `PAGE` keys at a time and only as far as
/// the local files go, so what the bucket holds, however much, is never
/// held in memory; a file already there at its size is not sent again.
/// The cursor moves past each file once it is in the bucket.
pub(crate) async fn sync_new(
    root: &Path,
    prefix: &str,
    bucket: &impl Objects,
    only: &str,
    cursor: &mut Option<String>,
) -> Result<Synced, AgentError> {
    let local = local_files(root, Some(only))?;
    let new: Vec<(&String, &u64)> = local
        .iter()
        .filter(|(f, _)| cursor.as_ref().is_none_or(|c| *f > c))
        .collect();
    let mut synced = Synced::default();
    let Some((first, _)) = new.first() else {
        return Ok(synced);
    };
    // Lists from just before the first new file (it is included).
    let mut start_after = match cursor.as_deref() {
        Some(c) => format!("{prefix}{c}"),
        None => {
            let cut = first.char_indices().last().map_or(0, |(i, _)| i);
            format!("{prefix}{}", &first[..cut])
        }
    };
    let listed = format!("{prefix}{only}");
    let mut page = std::collections::VecDeque::<s3::Object>::new();
    let mut more = true;
    for (file, size) in new {
        if let Some(data) = file.strip_suffix(".sha256")
            && !local.contains_key(data)
        {
            let age = std::fs::metadata(root.join(file))
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .unwrap_or_default();
            if age < ORPHAN_MARKER {
                break;
            }
            tracing::warn!(file = %file, "checksum without its file; skipped");
            *cursor = Some(file.clone());
            continue;
        }
        let key = format!("{prefix}{file}");
        loop {
            match page.front() {
                Some(o) if o.key < key => {
                    page.pop_front();
                }
                Some(_) => break,
                None if more => {
                    let got = bucket.list_page(&listed, &start_after, PAGE).await?;
                    more = got.truncated && !got.objects.is_empty();
                    if let Some(last) = got.objects.last() {
                        start_after = last.key.clone();
                    }
                    page.extend(got.objects);
                }
                None => break,
            }
        }
        let there = page
            .front()
            .is_some_and(|o| o.key == key && o.size == *size);
        if !there {
            bucket.put_file(&key, &root.join(file)).await?;
            synced.uploaded += 1;
            synced.bytes += size;
        }
        *cursor = Some(file.clone());
    }
    Ok(synced)
}

/// The longest the last round may take when the pod stops: well inside the
/// store pod's 60 s grace period.
pub const LAST_ROUND: Duration = Duration::from_secs(20);

/// Syncs every `every` (WAL as it is archived) until `stop` resolves, then
/// makes one last round (what the server archived as it shut down) of at
/// most [`LAST_ROUND`] and returns. Errors are logged and retried: the files
/// stay on the volume until they are copied. With `only`, each round sends
/// only what is new since the last (`sync_new`).
/// Measured against versitygw with 100,000 objects under the prefix (debug
/// build): peak RSS 30.8 MiB, as with an empty bucket (30.7 MiB); listing
/// the whole prefix each round, as before, peaked at 55.1 MiB. Release
/// build through object_store: 13.1 to 15.8 MiB (`e2e/s3-agent-bench.sh`).
pub async fn sync_loop(
    store: Layout,
    root: &Path,
    remote: &Remote,
    only: Option<&str>,
    every: Duration,
    stop: impl Future<Output = ()>,
) {
    let mut cursor = None;
    rounds(every, LAST_ROUND, stop, async || match only {
        Some(only) => sync_new(root, &remote.prefix, &remote.bucket, only, &mut cursor).await,
        None => sync(store, root, remote, None).await,
    })
    .await;
}

/// `round` every `every` until `stop`, then once more within `last`.
async fn rounds(
    every: Duration,
    last: Duration,
    stop: impl Future<Output = ()>,
    mut round: impl AsyncFnMut() -> Result<Synced, AgentError>,
) {
    let mut stop = std::pin::pin!(stop);
    let mut stopping = false;
    loop {
        let result = if stopping {
            match tokio::time::timeout(last, round()).await {
                Ok(result) => result,
                Err(_) => {
                    tracing::warn!(
                        "the last copy to S3 did not finish in time (the files stay on the volume; the next pod copies them)"
                    );
                    return;
                }
            }
        } else {
            round().await
        };
        match result {
            Ok(s) if s.uploaded > 0 || s.deleted > 0 => {
                tracing::info!(
                    uploaded = s.uploaded,
                    bytes = s.bytes,
                    deleted = s.deleted,
                    "synced to S3"
                )
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(
                %error,
                retry_in_seconds = every.as_secs(),
                "copy to S3 failed (the files stay on the volume until they are copied)"
            ),
        }
        if stopping {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = &mut stop => {
                // The pod stops (a rollout, a deletion): a last round for
                // what the server archived as it shut down, then out, well
                // within the pod's grace period, so the store's restart
                // does not wait for this container's SIGKILL.
                stopping = true;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Brings back what a restore to `target` (a label-comparable UTC time,
/// `YYYYMMDDTHHMMSSZ`; None for the latest) needs into `into`, in the
/// volume's layout: the two newest whole backups taken before it (the
/// restore takes the newest that still verifies) and, for PostgreSQL, all
/// archived WAL from the older one's start. With `wal_only`, only the WAL
/// (a restore interrupted while PostgreSQL replayed it).
pub async fn fetch(
    store: Layout,
    into: &Path,
    remote: &Remote,
    target: Option<&str>,
    wal_only: bool,
) -> Result<usize, AgentError> {
    fetch_from(
        &remote.bucket,
        &remote.prefix,
        store,
        into,
        target,
        wal_only,
    )
    .await
}

async fn fetch_from(
    bucket: &impl Objects,
    prefix: &str,
    store: Layout,
    into: &Path,
    target: Option<&str>,
    wal_only: bool,
) -> Result<usize, AgentError> {
    let key = |relative: &str| format!("{prefix}{relative}");
    tokio::fs::create_dir_all(into)
        .await
        .map_err(|e| AgentError::Io(into.display().to_string(), e))?;
    let listed = bucket.list(prefix).await.map_err(|e| match e {
        // A key object_store will not take as a path ('..', '.', empty
        // segments): refused like the ones `unsafe_path` names below.
        S3Error::BadKey { key, why } => AgentError::Refused(format!(
            "refusing to restore from a bucket holding key {key:?}: {why}; nothing was fetched"
        )),
        e => e.into(),
    })?;
    let files: BTreeMap<String, u64> = listed
        .iter()
        .filter_map(|o| Some((o.key.strip_prefix(prefix)?.to_string(), o.size)))
        .collect();
    // Whoever else can write the bucket could plant keys that would be
    // written outside `into`: the restore stops before writing anything.
    for file in files.keys() {
        if let Some(why) = unsafe_path(file) {
            return Err(AgentError::Refused(format!(
                "refusing to restore from a bucket holding key {:?}: its path under the prefix {why}; nothing was fetched",
                key(file)
            )));
        }
    }
    let mut labels: Vec<String> = committed_labels(store, &files)
        .into_iter()
        .filter(|l| target.is_none_or(|t| l.as_str() <= t))
        .collect();
    labels.reverse();
    labels.truncate(2);
    if labels.is_empty() && !wal_only {
        return Err(AgentError::Missing(format!(
            "no whole backup under s3://…/{} taken before {}",
            prefix,
            target.unwrap_or("now")
        )));
    }
    let wanted: Vec<&String> = files
        .keys()
        .filter(|f| {
            let backup =
                !wal_only && label_of(store, f).is_some_and(|l| labels.iter().any(|k| k == l));
            let wal = store.log.is_some_and(|log| f.starts_with(log));
            backup || wal
        })
        .collect();
    let mut fetched = 0;
    for label in labels.iter().filter(|_| store.dirs && !wal_only) {
        let dirs_file = format!("{}{label}.dirs", store.backups);
        if !files.contains_key(&dirs_file) {
            continue;
        }
        let list = bucket.get_bytes(&key(&dirs_file)).await?;
        let list = String::from_utf8_lossy(&list);
        let dirs: Vec<&str> = list.lines().filter(|d| !d.is_empty()).collect();
        if let Some((dir, why)) = dirs.iter().find_map(|d| Some((d, unsafe_path(d)?))) {
            return Err(AgentError::Refused(format!(
                "refusing to restore: {:?} lists directory {dir:?}, which {why}",
                key(&dirs_file)
            )));
        }
        for dir in dirs {
            let backup = format!("{}{label}", store.backups);
            create_dirs_under(into, &Path::new(&backup).join(dir)).await?;
        }
    }
    // The directories first, one at a time (each part checked to be a real
    // directory), then the files, `FETCHES` at a time.
    for file in &wanted {
        if let Some(parent) = Path::new(file.as_str()).parent() {
            create_dirs_under(into, parent).await?;
        }
    }
    let mut downloads = futures::stream::iter(wanted)
        .map(|file| {
            let key = key(file);
            let path = into.join(file);
            async move { bucket.get_file(&key, &path).await }
        })
        .buffer_unordered(FETCHES);
    while let Some(got) = downloads.next().await {
        got?;
        fetched += 1;
    }
    Ok(fetched)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The engines' own layouts: what the agent is given in the pods.
    fn layout(part: &str) -> Layout {
        crate::build::stores::by_part(part).unwrap().layout()
    }

    fn postgres() -> Layout {
        layout("postgres")
    }

    fn redis() -> Layout {
        layout("redis")
    }

    #[test]
    fn labels_and_segments_are_recognised() {
        assert_eq!(
            label_of(postgres(), "base/20261202T035449Z/global/pg_control"),
            Some("20261202T035449Z")
        );
        assert_eq!(
            label_of(postgres(), "base/20261202T035449Z.end"),
            Some("20261202T035449Z")
        );
        assert_eq!(
            label_of(postgres(), "wal/000000010000000000000003.gz"),
            None
        );
        assert_eq!(
            label_of(redis(), "20261202T035449Z.rdb.sha256"),
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
            committed_labels(postgres(), &files)
                .into_iter()
                .collect::<Vec<_>>(),
            vec!["20261201T000000Z"]
        );
    }

    use std::cell::{Cell, RefCell};
    use std::ops::Bound;

    /// A bucket in memory that counts what is listed.
    #[derive(Default)]
    struct Mock {
        objects: RefCell<BTreeMap<String, Vec<u8>>>,
        pages: Cell<usize>,
        largest_page: Cell<usize>,
        puts: RefCell<Vec<String>>,
    }

    impl Mock {
        fn with(keys: impl IntoIterator<Item = (String, Vec<u8>)>) -> Self {
            let mock = Mock::default();
            mock.objects.borrow_mut().extend(keys);
            mock
        }
    }

    impl Objects for Mock {
        async fn list_page(
            &self,
            prefix: &str,
            start_after: &str,
            max_keys: usize,
        ) -> Result<s3::Page, S3Error> {
            let objects = self.objects.borrow();
            let mut found: Vec<s3::Object> = objects
                .range::<str, _>((Bound::Excluded(start_after), Bound::Unbounded))
                .filter(|(k, _)| k.starts_with(prefix))
                .take(max_keys + 1)
                .map(|(k, v)| s3::Object {
                    key: k.clone(),
                    size: v.len() as u64,
                })
                .collect();
            let truncated = found.len() > max_keys;
            found.truncate(max_keys);
            self.pages.set(self.pages.get() + 1);
            self.largest_page
                .set(self.largest_page.get().max(found.len()));
            Ok(s3::Page {
                objects: found,
                truncated,
            })
        }
        async fn put_file(&self, key: &str, path: &Path) -> Result<(), S3Error> {
            let data = std::fs::read(path).map_err(|e| S3Error::Io(key.into(), e))?;
            self.objects.borrow_mut().insert(key.into(), data);
            self.puts.borrow_mut().push(key.into());
            Ok(())
        }
        async fn list(&self, prefix: &str) -> Result<Vec<s3::Object>, S3Error> {
            Ok(self
                .objects
                .borrow()
                .iter()
                .filter(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| s3::Object {
                    key: k.clone(),
                    size: v.len() as u64,
                })
                .collect())
        }
        async fn get_file(&self, key: &str, path: &Path) -> Result<(), S3Error> {
            let data = self.get_bytes(key).await?;
            std::fs::write(path, data).map_err(|e| S3Error::Io(key.into(), e))
        }
        async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, S3Error> {
            Ok(self.objects.borrow().get(key).cloned().unwrap_or_default())
        }
    }

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("appstack-agent-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn segment(n: u32) -> String {
        format!("wal/00000001000000000000{n:04X}.gz")
    }

    const PREFIX: &str = "team-a/shop/postgres/";

    fn archive(root: &Path, n: u32) {
        std::fs::create_dir_all(root.join("wal")).unwrap();
        std::fs::write(root.join(segment(n)), format!("segment {n}")).unwrap();
        std::fs::write(root.join(format!("{}.sha256", segment(n))), "sum").unwrap();
    }

    #[tokio::test]
    async fn the_wal_copy_lists_and_sends_only_what_is_new() {
        let root = scratch("wal-new");
        // The bucket holds 5,000 objects: old WAL and base backups.
        let old = (1..=2000).flat_map(|n| {
            [
                (
                    format!("{PREFIX}{}", segment(n)),
                    format!("segment {n}").into_bytes(),
                ),
                (format!("{PREFIX}{}.sha256", segment(n)), b"sum".to_vec()),
            ]
        });
        let base = (0..1000).map(|n| (format!("{PREFIX}base/20261201T000000Z/f{n}"), vec![0]));
        let bucket = Mock::with(old.chain(base));
        // The volume keeps the last three old segments, and two new ones.
        for n in 1998..=2002 {
            archive(&root, n);
        }
        let mut cursor = None;
        let first = sync_new(&root, PREFIX, &bucket, "wal/", &mut cursor)
            .await
            .unwrap();
        assert_eq!(first.uploaded, 4);
        assert_eq!(
            *bucket.puts.borrow(),
            vec![
                format!("{PREFIX}{}", segment(2001)),
                format!("{PREFIX}{}.sha256", segment(2001)),
                format!("{PREFIX}{}", segment(2002)),
                format!("{PREFIX}{}.sha256", segment(2002)),
            ],
            "each file before its checksum, nothing already there"
        );
        assert_eq!(bucket.pages.get(), 1, "listed from the first local file on");
        assert_eq!(
            cursor.as_deref(),
            Some(format!("{}.sha256", segment(2002)).as_str())
        );

        // Nothing new: the bucket is not listed at all.
        bucket.puts.borrow_mut().clear();
        let idle = sync_new(&root, PREFIX, &bucket, "wal/", &mut cursor)
            .await
            .unwrap();
        assert_eq!((idle.uploaded, bucket.pages.get()), (0, 1));

        // One new segment: one listing, after the cursor, and two uploads.
        archive(&root, 2003);
        let next = sync_new(&root, PREFIX, &bucket, "wal/", &mut cursor)
            .await
            .unwrap();
        assert_eq!((next.uploaded, bucket.pages.get()), (2, 2));
        assert!(bucket.largest_page.get() <= PAGE);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[tokio::test]
    async fn a_first_round_pages_through_what_the_volume_holds() {
        let root = scratch("wal-pages");
        // 300 segments on the volume, all but the last in the bucket.
        let there = (1..300).flat_map(|n| {
            [
                (
                    format!("{PREFIX}{}", segment(n)),
                    format!("segment {n}").into_bytes(),
                ),
                (format!("{PREFIX}{}.sha256", segment(n)), b"sum".to_vec()),
            ]
        });
        let bucket = Mock::with(there);
        for n in 1..=300 {
            archive(&root, n);
        }
        let mut cursor = None;
        let synced = sync_new(&root, PREFIX, &bucket, "wal/", &mut cursor)
            .await
            .unwrap();
        assert_eq!(synced.uploaded, 2);
        assert!(bucket.largest_page.get() <= PAGE);
        assert_eq!(bucket.pages.get(), 598_usize.div_ceil(PAGE));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[tokio::test]
    async fn a_checksum_waits_for_its_file() {
        let root = scratch("wal-marker");
        std::fs::create_dir_all(root.join("wal")).unwrap();
        std::fs::write(root.join(format!("{}.sha256", segment(7))), "sum").unwrap();
        let bucket = Mock::default();
        let mut cursor = None;
        sync_new(&root, PREFIX, &bucket, "wal/", &mut cursor)
            .await
            .unwrap();
        assert!(bucket.puts.borrow().is_empty() && cursor.is_none());
        std::fs::write(root.join(segment(7)), "segment 7").unwrap();
        let synced = sync_new(&root, PREFIX, &bucket, "wal/", &mut cursor)
            .await
            .unwrap();
        assert_eq!(synced.uploaded, 2);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn paths_that_leave_their_directory_are_named() {
        for bad in [
            "",
            "/etc/passwd",
            "..",
            "base/../../x",
            "wal/./x",
            "base//x",
            "base/x/",
            "a\\b",
            "a\0b",
        ] {
            assert!(unsafe_path(bad).is_some(), "{bad:?}");
        }
        for good in [
            "base/20261201T000000Z/global/pg_control",
            "wal/x.gz",
            "a..b/.c",
        ] {
            assert_eq!(unsafe_path(good), None, "{good:?}");
        }
    }

    #[test]
    fn a_prefix_that_leaves_the_namespace_is_refused() {
        let bucket = || {
            Bucket::new(&s3::Config {
                endpoint: "http://127.0.0.1:9".into(),
                region: "us-east-1".into(),
                bucket: "b".into(),
                access_key: "k".into(),
                secret_key: "s".into(),
                ..s3::Config::default()
            })
            .unwrap()
        };
        assert!(Remote::new(bucket(), "team-a/shop/postgres/").is_ok());
        for bad in [
            "team-a/../team-b/shop/postgres/",
            "/team-b/",
            "team-a//x/",
            "team-a/x",
        ] {
            let err = Remote::new(bucket(), bad).err().expect(bad).to_string();
            assert!(err.contains(bad), "{err}");
        }
    }

    const LABEL: &str = "20261201T000000Z";

    /// A whole base backup in the bucket, and a key planted beside it.
    fn planted(extra: &str) -> Mock {
        Mock::with(
            [
                (format!("base/{LABEL}/PG_VERSION"), b"15".to_vec()),
                (format!("base/{LABEL}.dirs"), b"global\npg_wal".to_vec()),
                (format!("base/{LABEL}.end"), vec![]),
                (segment(1), b"segment 1".to_vec()),
                (
                    extra.to_string(),
                    b"archive_command = 'touch /tmp/planted'".to_vec(),
                ),
            ]
            .map(|(k, v)| (format!("{PREFIX}{k}"), v)),
        )
    }

    #[tokio::test]
    async fn a_fetch_refuses_keys_that_leave_its_directory_and_writes_nothing() {
        for bad in [
            format!("base/{LABEL}/../../../../tmp/planted.conf"),
            "/etc/cron.d/x".to_string(),
            format!("base/{LABEL}//postgresql.auto.conf"),
            "wal/./x".to_string(),
            "..".to_string(),
        ] {
            let into = scratch("fetch-refused");
            let err = fetch_from(&planted(&bad), PREFIX, postgres(), &into, None, false)
                .await
                .unwrap_err();
            let text = err.to_string();
            assert!(
                matches!(err, AgentError::Refused(_)) && text.contains(&format!("{PREFIX}{bad}")),
                "{bad}: {text}"
            );
            assert_eq!(
                std::fs::read_dir(&into).unwrap().count(),
                0,
                "{bad}: wrote something"
            );
            std::fs::remove_dir_all(&into).unwrap();
        }
    }

    #[tokio::test]
    async fn a_fetch_refuses_listed_directories_that_leave_it() {
        let into = scratch("fetch-dirs");
        let bucket = planted("wal/x.gz");
        bucket.objects.borrow_mut().insert(
            format!("{PREFIX}base/{LABEL}.dirs"),
            b"global\n../../../../tmp/x".to_vec(),
        );
        let err = fetch_from(&bucket, PREFIX, postgres(), &into, None, false)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("../../../../tmp/x"), "{err}");
        std::fs::remove_dir_all(&into).unwrap();
    }

    #[tokio::test]
    async fn a_fetch_follows_no_symlink() {
        let into = scratch("fetch-symlink");
        let outside = scratch("fetch-symlink-outside");
        std::os::unix::fs::symlink(&outside, into.join("base")).unwrap();
        let err = fetch_from(&planted("wal/x.gz"), PREFIX, postgres(), &into, None, false)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("symlink"), "{err}");
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 0);
        std::fs::remove_dir_all(&into).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
    }

    #[tokio::test]
    async fn a_fetch_brings_back_a_whole_backup() {
        let into = scratch("fetch-ok");
        let fetched = fetch_from(&planted("wal/x.gz"), PREFIX, postgres(), &into, None, false)
            .await
            .unwrap();
        assert_eq!(fetched, 5);
        assert_eq!(
            std::fs::read_to_string(into.join(format!("base/{LABEL}/PG_VERSION"))).unwrap(),
            "15"
        );
        assert!(into.join(format!("base/{LABEL}/pg_wal")).is_dir());
        assert!(into.join(segment(1)).is_file());
        std::fs::remove_dir_all(&into).unwrap();
    }

    #[tokio::test]
    async fn the_copy_stops_when_asked_after_one_last_round() {
        let started = std::time::Instant::now();
        let mut count = 0;
        rounds(
            Duration::from_millis(20),
            Duration::from_secs(5),
            tokio::time::sleep(Duration::from_millis(90)),
            async || {
                count += 1;
                Ok(Synced::default())
            },
        )
        .await;
        // Rounds every 20 ms for 90 ms, then the last one after 500 ms.
        assert!(count >= 3, "{count} rounds");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn a_last_round_that_hangs_is_given_up() {
        let started = std::time::Instant::now();
        let mut count = 0;
        rounds(
            Duration::from_secs(60),
            Duration::from_millis(200),
            std::future::ready(()),
            async || {
                count += 1;
                if count > 1 {
                    std::future::pending::<()>().await;
                }
                Ok(Synced::default())
            },
        )
        .await;
        assert_eq!(count, 2);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }
}
