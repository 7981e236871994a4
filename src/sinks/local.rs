//! The commit protocol on a local folder: staged files under `_staging/<run id>/` are moved
//! into place with one atomic `rename` each.

use std::path::Path;

use super::{io_err, CommitOp, CommitStats, Journal, Partition, SinkError, JOURNAL, STAGING};
use crate::calendar;
use crate::runner::state::STATE_KEY;
use crate::storage::write_atomic;

/// Applies a journal. Idempotent: a put whose staged file is gone was already applied.
pub(super) fn apply(root: &Path, journal: &Journal) -> Result<CommitStats, SinkError> {
    let mut stats = CommitStats::default();
    let crash_after = super::crash_hook();
    for (i, op) in journal.ops.iter().enumerate() {
        if crash_after == Some(i) {
            std::process::abort();
        }
        match op {
            CommitOp::Put { staged, dir, file } => {
                let src = root.join(staged);
                let dir = root.join(dir);
                if src.exists() {
                    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
                    let dst = dir.join(file);
                    std::fs::rename(&src, &dst).map_err(io_err(&dst))?;
                    stats.files_written += 1;
                }
                if dir.is_dir() {
                    remove_other_parts(&dir, file)?;
                }
            }
            CommitOp::Remove { dir } => {
                let dir = root.join(dir);
                if dir.exists() {
                    std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
                    stats.partitions_removed += 1;
                }
            }
        }
    }
    write_atomic(&root.join(STATE_KEY), &super::state_bytes(journal))?;
    let jpath = root.join(JOURNAL);
    std::fs::remove_file(&jpath).map_err(io_err(&jpath))?;
    let _ = std::fs::remove_dir_all(root.join(STAGING));
    Ok(stats)
}

/// See [`super::recover`].
pub(super) fn recover(root: &Path) -> Result<Option<String>, SinkError> {
    let jpath = root.join(JOURNAL);
    let replayed = match std::fs::read(&jpath) {
        Ok(bytes) => match serde_json::from_slice::<Journal>(&bytes) {
            Ok(journal) => {
                apply(root, &journal)?;
                Some(journal.run_id)
            }
            // A torn journal means the run died writing it: it never started applying.
            Err(_) => {
                std::fs::remove_file(&jpath).map_err(io_err(&jpath))?;
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(&jpath)(e)),
    };
    let staging = root.join(STAGING);
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io_err(&staging))?;
    }
    Ok(replayed)
}

/// Data files other than `keep` left in `dir` by an earlier writer (e.g. a CSV run after a
/// Parquet one) would be read as part of the partition: remove them.
fn remove_other_parts(dir: &Path, keep: &str) -> Result<(), SinkError> {
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let n = entry.file_name();
        let n = n.to_string_lossy();
        if n != keep && n.starts_with("part-") && entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
            std::fs::remove_file(entry.path()).map_err(io_err(&entry.path()))?;
        }
    }
    Ok(())
}

/// The `date=YYYY-MM-DD` partitions of `table` present under the output root.
pub(super) fn existing_partitions(root: &Path, table: &'static str) -> Result<Vec<Partition>, SinkError> {
    let table_dir = root.join(table);
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(&table_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(&table_dir)(e)),
    };
    for entry in rd {
        let entry = entry.map_err(io_err(&table_dir))?;
        let n = entry.file_name();
        let Some(date) = n.to_str().and_then(|s| s.strip_prefix("date=")) else {
            continue;
        };
        if let Ok(d) = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d") {
            out.push(Partition {
                table,
                day: Some(calendar::day_of(d)),
            });
        }
    }
    out.sort();
    Ok(out)
}
