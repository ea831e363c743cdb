//! What a finished backup says about the store's backups: the one contract
//! between the backup pod (the scripts' `summary` in
//! src/build/scripts/lib.sh, re-checked and re-written by the backup agent
//! when it uploads to S3) and the operator, which reads it from the pod's
//! termination message into status. Its wire form is one line of JSON, as
//! every release wrote it, so pods of older releases still read.

use k8s_openapi::jiff::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BackupSummary {
    /// The backup's label, a UTC time: `YYYYMMDDTHHMMSSZ`.
    pub label: String,
    /// When it completed (RFC 3339, UTC).
    pub completed: String,
    /// Its size in bytes.
    pub size_bytes: u64,
    /// Backups kept on the volume after retention.
    pub count: u32,
    /// Bytes on the volume (backups and, for PostgreSQL, archived WAL).
    pub total_bytes: u64,
    /// The earliest moment a restore can reach (RFC 3339).
    pub first_recoverable: String,
    /// The latest moment a restore can reach (RFC 3339).
    pub last_recoverable: String,
}

/// Why a termination message is no summary: the operator shows it in
/// status instead of leaving the backup's fields empty without a word.
#[derive(Debug, thiserror::Error)]
pub enum SummaryError {
    #[error("it is not the summary's JSON ({0})")]
    Shape(#[from] serde_json::Error),
    #[error("label {0:?} is no UTC time of the form YYYYMMDDTHHMMSSZ")]
    Label(String),
    #[error("{field} {value:?} is no RFC 3339 time ({why})")]
    Time {
        field: &'static str,
        value: String,
        why: String,
    },
    #[error("count is 0, but a backup that completed is kept")]
    Count,
}

impl BackupSummary {
    /// Reads a summary (surrounding whitespace aside) and checks what serde
    /// cannot: the label's form and the times.
    pub fn parse(text: &str) -> Result<Self, SummaryError> {
        let summary: Self = serde_json::from_str(text.trim())?;
        summary.check()?;
        Ok(summary)
    }

    fn check(&self) -> Result<(), SummaryError> {
        if !is_label(&self.label) {
            return Err(SummaryError::Label(self.label.clone()));
        }
        for (field, value) in [
            ("completed", &self.completed),
            ("firstRecoverable", &self.first_recoverable),
            ("lastRecoverable", &self.last_recoverable),
        ] {
            if let Err(e) = value.parse::<Timestamp>() {
                return Err(SummaryError::Time {
                    field,
                    value: value.clone(),
                    why: e.to_string(),
                });
            }
        }
        if self.count == 0 {
            return Err(SummaryError::Count);
        }
        Ok(())
    }

    /// The wire form: one line of JSON.
    pub fn to_json(&self) -> String {
        // A struct of strings and integers always serialises.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// `YYYYMMDDTHHMMSSZ`, the labels of base backups and snapshots.
pub fn is_label(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 8 || i == 15 || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const WIRE: &str = r#"{"label":"20261202T030000Z","completed":"2026-12-02T03:00:09Z","sizeBytes":48006139,"count":2,"totalBytes":96000000,"firstRecoverable":"2026-12-01T03:00:08Z","lastRecoverable":"2026-12-02T03:00:09Z"}"#;

    fn summary() -> BackupSummary {
        BackupSummary {
            label: "20261202T030000Z".into(),
            completed: "2026-12-02T03:00:09Z".into(),
            size_bytes: 48_006_139,
            count: 2,
            total_bytes: 96_000_000,
            first_recoverable: "2026-12-01T03:00:08Z".into(),
            last_recoverable: "2026-12-02T03:00:09Z".into(),
        }
    }

    #[test]
    fn what_the_writer_writes_the_reader_reads() {
        assert_eq!(summary().to_json(), WIRE, "the wire form of every release");
        assert_eq!(BackupSummary::parse(WIRE).unwrap(), summary());
        assert_eq!(
            BackupSummary::parse(&format!("\n{WIRE}\n")).unwrap(),
            summary(),
            "a termination message ends in a newline"
        );
    }

    #[test]
    fn a_mismatch_names_what_is_wrong() {
        for (text, expected) in [
            ("pg_basebackup: done", "not the summary's JSON"),
            (
                &WIRE.replace("sizeBytes", "size"),
                "missing field `sizeBytes`",
            ),
            (&WIRE.replace("48006139", "\"48 MB\""), "invalid type"),
            (
                &WIRE.replace("\"count\":2", "\"count\":-1"),
                "invalid value",
            ),
            (&WIRE.replace("\"count\":2", "\"count\":0"), "count is 0"),
            (
                &WIRE.replace("20261202T030000Z", "2026-12-02"),
                "label \"2026-12-02\"",
            ),
            (
                &WIRE.replace("2026-12-01T03:00:08Z", "yesterday"),
                "firstRecoverable \"yesterday\"",
            ),
        ] {
            let err = BackupSummary::parse(text).unwrap_err().to_string();
            assert!(err.contains(expected), "{text}: {err}");
        }
    }
}
