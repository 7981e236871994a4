//! The commit protocol on an S3 prefix.
//!
//! S3 has no rename, but a PUT (or a completed multipart upload, or a server-side COPY) makes
//! an object visible whole or not at all. So a run uploads every partition file to
//! `_staging/<run id>/...` while it writes, writes the journal object, and then applies it:
//! each put is a server-side COPY of the staged object to its final key followed by the
//! deletion of the staged one (and of any other `part-*` object in that partition), each
//! removal deletes every object below the partition's prefix. Then the state object is
//! written and the journal deleted.
//!
//! Staging in the bucket, rather than uploading from local temp files at commit time, keeps
//! the journal replayable from any host: a run killed mid-commit is finished by the next
//! run wherever cron starts it, exactly as on a local folder. Applying is idempotent (a
//! put whose staged object is gone was done), and its steps run [`COMMIT_CONCURRENCY`] at a
//! time since each touches one partition only. A partition file must stay under S3's 5 GB
//! single-COPY limit, which aggregate tables are far from.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures::{StreamExt, TryStreamExt};

use super::{CommitOp, CommitStats, Journal, Partition, SinkError, JOURNAL, STAGING};
use crate::calendar;
use crate::runner::state::STATE_KEY;
use crate::storage::constants::COMMIT_CONCURRENCY;
use crate::storage::{block_on, Root, S3Root, StorageError};

/// Every object key (relative to the root) below the folder of `table`. One listing per
/// table serves every existence check of a run instead of a HEAD per partition.
pub(super) fn scan_table(root: &S3Root, table: &str) -> Result<BTreeSet<String>, StorageError> {
    Ok(root
        .bucket
        .list(&root.key(table))?
        .into_iter()
        .map(|m| root.rel(m.location.as_ref()).to_string())
        .collect())
}

/// The `date=YYYY-MM-DD` partitions of `table` among `present` keys.
pub(super) fn existing_partitions(present: &BTreeSet<String>, table: &'static str) -> Vec<Partition> {
    let prefix = format!("{table}/date=");
    let mut out: Vec<Partition> = present
        .range(prefix.clone()..)
        .take_while(|k| k.starts_with(&prefix))
        .filter_map(|k| {
            let date = k[prefix.len()..].split('/').next()?;
            let d = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d").ok()?;
            Some(Partition {
                table,
                day: Some(calendar::day_of(d)),
            })
        })
        .collect();
    out.dedup();
    out
}

async fn apply_op(root: &S3Root, op: &CommitOp, stats: &Counters) -> Result<(), StorageError> {
    let b = &root.bucket;
    match op {
        CommitOp::Put { staged, dir, file } => {
            let (src, dst) = (root.key(staged), root.key(&format!("{dir}/{file}")));
            if b.copy_async(&src, &dst).await? {
                b.delete_async(&src).await?;
                stats.written.fetch_add(1, Ordering::Relaxed);
            }
            // Other data files of the partition (e.g. a CSV run after a Parquet one).
            let (objects, _) = b.list_dir_async(&root.key(dir)).await?;
            let others: Vec<String> = objects
                .into_iter()
                .map(|m| m.location.as_ref().to_string())
                .filter(|k| {
                    let name = k.rsplit('/').next().unwrap_or("");
                    name != file && name.starts_with("part-")
                })
                .collect();
            b.delete_many(others).await?;
        }
        CommitOp::Remove { dir } => {
            let objects = b.list_async(&root.key(dir)).await?;
            if !objects.is_empty() {
                b.delete_many(objects.into_iter().map(|m| m.location.as_ref().to_string()).collect())
                    .await?;
                stats.removed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

#[derive(Default)]
struct Counters {
    written: AtomicUsize,
    removed: AtomicUsize,
    started: AtomicUsize,
}

/// Applies a journal (idempotent, see the module doc).
pub(super) fn apply(root: &S3Root, journal: &Journal) -> Result<CommitStats, SinkError> {
    let crash_after = super::crash_hook();
    let stats = Counters::default();
    block_on(
        futures::stream::iter(journal.ops.iter())
            .map(|op| async {
                // Like `kill -9` once N steps have started (test hook).
                if crash_after == Some(stats.started.fetch_add(1, Ordering::SeqCst)) {
                    std::process::abort();
                }
                apply_op(root, op, &stats).await
            })
            .buffer_unordered(COMMIT_CONCURRENCY)
            .try_collect::<()>(),
    )?;
    let r = Root::S3(root.clone());
    r.write(STATE_KEY, &super::state_bytes(journal))?;
    r.delete(JOURNAL)?;
    delete_staging(root, STAGING)?;
    Ok(CommitStats {
        files_written: stats.written.into_inner(),
        partitions_removed: stats.removed.into_inner(),
    })
}

/// Deletes every object below `rel` (staged files of dead or abandoned runs).
pub(super) fn delete_staging(root: &S3Root, rel: &str) -> Result<(), StorageError> {
    block_on(async {
        let objects = root.bucket.list_async(&root.key(rel)).await?;
        root.bucket
            .delete_many(objects.into_iter().map(|m| m.location.as_ref().to_string()).collect())
            .await
    })
}

/// See [`super::recover`].
pub(super) fn recover(root: &S3Root) -> Result<Option<String>, SinkError> {
    let r = Root::S3(root.clone());
    let replayed = match r.read(JOURNAL)? {
        Some(bytes) => match serde_json::from_slice::<Journal>(&bytes) {
            Ok(journal) => {
                apply(root, &journal)?;
                Some(journal.run_id)
            }
            // Cannot be torn (one PUT), but an unreadable journal was never applied.
            Err(_) => {
                r.delete(JOURNAL)?;
                None
            }
        },
        None => None,
    };
    delete_staging(root, STAGING)?;
    Ok(replayed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_from_listed_keys() {
        let present: BTreeSet<String> = [
            "group_daily/date=2024-01-02/part-0.parquet",
            "group_daily/date=2024-01-01/part-0.parquet",
            "group_daily/date=2024-01-01/part-0.csv",
            "group_daily/date=bad/part-0.parquet",
            "group_daily_x/date=2024-01-03/part-0.parquet",
            "group_event_daily/date=2024-01-04/part-0.parquet",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let got: Vec<String> = existing_partitions(&present, "group_daily")
            .iter()
            .map(Partition::key)
            .collect();
        assert_eq!(got, ["group_daily/date=2024-01-01", "group_daily/date=2024-01-02"]);
    }
}
