//! Run state, kept with the output (`<output>/_state/state.json`), not on the machine: a
//! cron host can be replaced and the next run still knows what was done.
//!
//! It records the inputs the last complete run read (path, size, mtime, and the ETag of S3
//! objects), a fingerprint of
//! the job's configuration, and a content fingerprint of every partition written. An
//! incremental run recomputes, then rewrites exactly the partitions whose fingerprint
//! changed (or whose file is gone), which makes any sequence of incremental runs end in
//! the same files as one full refresh.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::sources::InputFile;
use crate::storage::{Root, StorageError};

pub const STATE_DIR: &str = "_state";
const STATE_FILE: &str = "state.json";
/// The state file below the output root.
pub const STATE_KEY: &str = "_state/state.json";
const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRecord {
    pub path: String,
    pub size: u64,
    pub mtime: i64,
    /// S3 ETag; absent for local files and in state files written before S3 support.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
}

impl From<&InputFile> for InputRecord {
    fn from(f: &InputFile) -> Self {
        InputRecord {
            path: f.path.clone(),
            size: f.size,
            mtime: f.mtime,
            etag: f.etag.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub format_version: u32,
    pub job: String,
    /// Fingerprint of the resolved job and the groupetl version.
    pub config: String,
    pub last_run_id: String,
    /// Inputs read by the last run that covered every partition (not a backfill).
    pub inputs: Vec<InputRecord>,
    /// `table[/date=YYYY-MM-DD]` → content fingerprint (hex).
    pub partitions: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot read run state `{}`: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("run state `{path}` is corrupt ({message}); rerun with --full-refresh to rebuild it")]
    Corrupt { path: String, message: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub fn path(output: &Path) -> PathBuf {
    output.join(STATE_DIR).join(STATE_FILE)
}

impl State {
    pub fn new(job: &str, config: String, run_id: &str) -> State {
        State {
            format_version: FORMAT_VERSION,
            job: job.to_string(),
            config,
            last_run_id: run_id.to_string(),
            ..Default::default()
        }
    }

    /// The state of the last successful run, if any.
    pub fn load(root: &Root) -> Result<Option<State>, StateError> {
        let (bytes, shown) = match root {
            Root::Local(dir) => {
                let p = path(dir);
                match std::fs::read(&p) {
                    Ok(b) => (b, p.display().to_string()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                    Err(source) => return Err(StateError::Read { path: p, source }),
                }
            }
            Root::S3(_) => match root.read(STATE_KEY)? {
                Some(b) => (b, root.display(STATE_KEY)),
                None => return Ok(None),
            },
        };
        let s: State = serde_json::from_slice(&bytes).map_err(|e| StateError::Corrupt {
            path: shown.clone(),
            message: e.to_string(),
        })?;
        if s.format_version != FORMAT_VERSION {
            return Err(StateError::Corrupt {
                path: shown,
                message: format!("format version {} is not {FORMAT_VERSION}", s.format_version),
            });
        }
        Ok(Some(s))
    }
}

/// Input changes between the last run and now, for `plan` and the summary.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InputDiff {
    pub new: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: usize,
}

impl InputDiff {
    pub fn is_empty(&self) -> bool {
        self.new.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

pub fn diff_inputs(old: &[InputRecord], now: &[InputRecord]) -> InputDiff {
    let before: BTreeMap<&str, &InputRecord> = old.iter().map(|r| (r.path.as_str(), r)).collect();
    let after: BTreeMap<&str, &InputRecord> = now.iter().map(|r| (r.path.as_str(), r)).collect();
    let mut d = InputDiff::default();
    for (p, r) in &after {
        match before.get(p) {
            None => d.new.push(p.to_string()),
            Some(o) if o != r => d.changed.push(p.to_string()),
            Some(_) => d.unchanged += 1,
        }
    }
    d.removed = before
        .keys()
        .filter(|p| !after.contains_key(*p))
        .map(|p| p.to_string())
        .collect();
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_files_without_etags_still_load_and_local_ones_stay_without() {
        let old = r#"{"format_version":1,"job":"j","config":"c","last_run_id":"r",
            "inputs":[{"path":"a.ndjson","size":3,"mtime":7}],"partitions":{}}"#;
        let s: State = serde_json::from_str(old).unwrap();
        assert_eq!(s.inputs[0].etag, None);
        let text = serde_json::to_string(&s).unwrap();
        assert!(!text.contains("etag"), "{text}");
        let mut s3 = s.clone();
        s3.inputs[0].etag = Some("\"abc\"".into());
        let back: State = serde_json::from_str(&serde_json::to_string(&s3).unwrap()).unwrap();
        assert_eq!(back.inputs[0].etag.as_deref(), Some("\"abc\""));
        // A changed ETag is a changed input.
        assert_eq!(diff_inputs(&s.inputs, &s3.inputs).changed, ["a.ndjson"]);
    }
}
