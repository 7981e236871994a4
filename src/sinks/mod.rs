//! Writing tables to the output folder with Hive layout (SPEC §6), and committing them.
//!
//! A run *stages* the files it will publish under `<output>/_staging/<run id>/` (names
//! starting with `_` are not data to Hive readers). It then writes a *journal*
//! (`_state/journal.json`) listing every rename and removal plus the new run state, and
//! only then applies it: each partition changes with one atomic `rename` of its
//! `part-0.<ext>`. A run killed before the journal is written leaves every partition as it
//! was; one killed while applying it is rolled forward by the next run ([`recover`]), so
//! the output always converges to one complete run.
//!
//! An `s3://` output follows the same protocol with objects ([`s3`] module): files are
//! encoded locally, uploaded to `_staging/<run id>/` as they are written, and the journal's
//! "rename" is a server-side copy plus a delete.

mod csv;
mod local;
mod parquet;
mod s3;

use std::collections::{BTreeMap, BTreeSet};
use std::hash::Hasher;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::calendar::{self, Day};
use crate::intern::{Interner, Sym};
use crate::job::OutputFormat;
use crate::storage::{self, Root, S3Root, Scratch, StorageError};
use crate::tables::{Table, Values};

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot write `{}`: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot encode `{}`: {message}", path.display())]
    Encode { path: PathBuf, message: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SinkError + '_ {
    move |source| SinkError::Io {
        path: path.to_path_buf(),
        source,
    }
}

const STAGING: &str = "_staging";
const JOURNAL: &str = "_state/journal.json";

/// Test hook for the crash-recovery tests: die like `kill -9` after N commit operations.
fn crash_hook() -> Option<usize> {
    std::env::var("GROUPETL_TEST_CRASH_AFTER_OPS")
        .ok()
        .and_then(|v| v.parse().ok())
}

/// The run state file's bytes as the journal carries them.
fn state_bytes(journal: &Journal) -> Vec<u8> {
    let mut state = serde_json::to_vec_pretty(&journal.state).expect("state serialises");
    state.push(b'\n');
    state
}

/// One output partition: a date partition of a partitioned table, or a whole
/// unpartitioned table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Partition {
    pub table: &'static str,
    pub day: Option<Day>,
}

impl Partition {
    /// `group_daily/date=2024-01-01` or `group_profiles`: the folder under the output root,
    /// and the partition's key in the run state.
    pub fn key(&self) -> String {
        match self.day {
            Some(d) => format!("{}/date={}", self.table, calendar::format_day(d)),
            None => self.table.to_string(),
        }
    }
}

/// The rows of each partition of `table`, in order.
pub fn partitions(table: &Table) -> Vec<(Partition, std::ops::Range<usize>)> {
    match table.partition_by {
        None => vec![(
            Partition {
                table: table.name,
                day: None,
            },
            0..table.num_rows(),
        )],
        Some(col) => {
            let Some(Values::Date(days)) = table.column(col) else {
                panic!("partition column `{col}` of `{}` must be a Date column", table.name);
            };
            let mut out = Vec::new();
            let mut start = 0;
            while start < days.len() {
                let day = days[start];
                let end = start + days[start..].iter().take_while(|&&d| d == day).count();
                out.push((
                    Partition {
                        table: table.name,
                        day: Some(day),
                    },
                    start..end,
                ));
                start = end;
            }
            out
        }
    }
}

/// Content fingerprints of a table's partitions: equal fingerprints mean identical files,
/// so a partition need not be rewritten.
pub struct Fingerprints<'t> {
    table: &'t Table,
    /// By column: for a column of codes, each code's [`text_hash`], worked out once for
    /// its string table instead of once a cell (the big tables repeat each id many times).
    code_hashes: Vec<Option<Arc<[u64]>>>,
}

/// The [`text_hash`] of every code of the string tables met so far, so that tables (and
/// pieces of one table) sharing a string table hash it once.
#[derive(Default)]
pub struct CodeHashes(Vec<(Arc<Interner>, Arc<[u64]>)>);

impl CodeHashes {
    fn of(&mut self, strings: &Arc<Interner>) -> Arc<[u64]> {
        if let Some((_, h)) = self.0.iter().find(|(t, _)| Arc::ptr_eq(t, strings)) {
            return h.clone();
        }
        let h: Arc<[u64]> = (0..strings.len() as Sym)
            .map(|c| text_hash(strings.resolve(c)))
            .collect();
        self.0.push((strings.clone(), h.clone()));
        h
    }
}

/// The hash a text cell adds to a fingerprint, the same for both text forms: the
/// fingerprint is of what is written.
fn text_hash(s: &str) -> u64 {
    let mut h = rustc_hash::FxHasher::default();
    h.write(s.as_bytes());
    h.write_u8(0xff);
    h.finish()
}

impl<'t> Fingerprints<'t> {
    pub fn new(table: &'t Table, cache: &mut CodeHashes) -> Self {
        let code_hashes = table
            .columns
            .iter()
            .map(|col| match &col.values {
                Values::Dict(d, _) if Some(col.name) != table.partition_by => Some(cache.of(d)),
                _ => None,
            })
            .collect();
        Fingerprints { table, code_hashes }
    }

    /// The fingerprint of the partition made of `rows`.
    pub fn of(&self, rows: std::ops::Range<usize>, format: OutputFormat) -> String {
        let mut h = rustc_hash::FxHasher::default();
        h.write(format.extension().as_bytes());
        for (col, codes) in self.table.columns.iter().zip(&self.code_hashes) {
            if Some(col.name) == self.table.partition_by {
                continue;
            }
            h.write(col.name.as_bytes());
            h.write_u8(0xff);
            match (&col.values, codes) {
                (Values::Dict(_, v), Some(codes)) => {
                    for &c in &v[rows.clone()] {
                        h.write_u64(codes[c as usize]);
                    }
                }
                (Values::Utf8(v), _) => {
                    for s in &v[rows.clone()] {
                        h.write_u64(text_hash(s));
                    }
                }
                (Values::Int64(v), _) => v[rows.clone()].iter().for_each(|&x| h.write_i64(x)),
                (Values::Date(v), _) => v[rows.clone()].iter().for_each(|&x| h.write_i32(x)),
                (Values::TimestampUs(v), _) => v[rows.clone()].iter().for_each(|t| match t {
                    Some(t) => h.write_i64(*t),
                    None => h.write_u8(0xfe),
                }),
                (Values::Dict(..), None) => unreachable!("codes hashed for every code column"),
            }
        }
        h.write_u64(rows.len() as u64);
        format!("{:016x}", h.finish())
    }
}

/// One step of a commit, paths relative to the output root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitOp {
    /// Move a staged file to `<dir>/<file>` and remove other `part-*` files in `dir`.
    Put { staged: String, dir: String, file: String },
    /// Remove a partition folder that the run no longer produces.
    Remove { dir: String },
}

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    run_id: String,
    ops: Vec<CommitOp>,
    /// The run state to publish once every op is applied.
    state: serde_json::Value,
}

/// What a commit changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitStats {
    pub files_written: usize,
    pub partitions_removed: usize,
}

/// Uploads in flight at once while staging to S3 (bounds the local scratch space too).
const UPLOADS_IN_FLIGHT: usize = 8;

/// Where a run writes: the local folder, or the S3 prefix with what it already holds.
enum Backend {
    Local {
        staging: PathBuf,
    },
    S3 {
        root: S3Root,
        /// Per table, the keys (relative to the root) of its objects when the run started;
        /// listed on first use.
        present: Mutex<BTreeMap<String, Arc<BTreeSet<String>>>>,
        /// Local scratch folder for encoded files, made on the first put.
        scratch: Option<Scratch>,
        uploads: std::collections::VecDeque<tokio::task::JoinHandle<Result<(), StorageError>>>,
    },
}

/// The output folder of one run.
pub struct Sink {
    root: Root,
    format: OutputFormat,
    run_id: String,
    ops: Vec<CommitOp>,
    backend: Backend,
    encoded: usize,
}

impl Sink {
    /// The sink of one run. Sends no request and touches no file; on S3 each table's
    /// objects are listed once, on the first question about that table.
    pub fn new(root: &Root, format: OutputFormat, run_id: &str) -> Result<Sink, SinkError> {
        let backend = match root {
            Root::Local(dir) => Backend::Local {
                staging: dir.join(STAGING).join(run_id),
            },
            Root::S3(s) => Backend::S3 {
                root: s.clone(),
                present: Mutex::default(),
                scratch: None,
                uploads: Default::default(),
            },
        };
        Ok(Sink {
            root: root.clone(),
            format,
            run_id: run_id.to_string(),
            ops: Vec::new(),
            backend,
            encoded: 0,
        })
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    fn file_name(&self) -> String {
        format!("part-0.{}", self.format.extension())
    }

    /// Whether the partition's data file is present in the output.
    pub fn exists(&self, p: &Partition) -> bool {
        self.has_partition_key(&p.key())
    }

    /// The keys of `table`'s objects on S3 (listed once per sink).
    fn table_keys(&self, table: &str) -> Result<Arc<BTreeSet<String>>, StorageError> {
        let Backend::S3 { root, present, .. } = &self.backend else {
            unreachable!("S3 backends only")
        };
        let mut present = present.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(keys) = present.get(table) {
            return Ok(Arc::clone(keys));
        }
        let keys = Arc::new(s3::scan_table(root, table)?);
        present.insert(table.to_string(), Arc::clone(&keys));
        Ok(keys)
    }

    /// [`Sink::exists`] for a partition key (`table[/date=…]`) from the run state. On S3 a
    /// failed listing counts as absent (the partition is rewritten, which is safe; the
    /// failure then surfaces from the commit).
    pub fn has_partition_key(&self, key: &str) -> bool {
        match (&self.root, &self.backend) {
            (_, Backend::S3 { .. }) => {
                let table = key.split('/').next().unwrap_or(key);
                self.table_keys(table)
                    .is_ok_and(|keys| keys.contains(&format!("{key}/{}", self.file_name())))
            }
            (Root::Local(dir), _) => dir.join(key).join(self.file_name()).is_file(),
            (Root::S3(_), Backend::Local { .. }) => unreachable!("an S3 root has an S3 backend"),
        }
    }

    /// The `date=YYYY-MM-DD` partitions of `table` present in the output.
    pub fn existing_partitions(&self, table: &'static str) -> Result<Vec<Partition>, SinkError> {
        match (&self.root, &self.backend) {
            (_, Backend::S3 { .. }) => Ok(s3::existing_partitions(&*self.table_keys(table)?, table)),
            (Root::Local(dir), _) => local::existing_partitions(dir, table),
            (Root::S3(_), Backend::Local { .. }) => unreachable!("an S3 root has an S3 backend"),
        }
    }

    /// Encodes partitions into staging and queues their publication, in order. Local
    /// partitions are encoded in parallel; S3 ones one at a time, each uploaded in the
    /// background while the next is encoded.
    pub fn put_all(&mut self, parts: &[(&Table, &Partition, std::ops::Range<usize>)]) -> Result<(), SinkError> {
        use rayon::prelude::*;
        let Backend::Local { staging } = &self.backend else {
            for (table, p, rows) in parts {
                self.put(table, p, rows.clone())?;
            }
            return Ok(());
        };
        let (name, format) = (self.file_name(), self.format);
        parts
            .par_iter()
            .try_for_each(|(table, p, rows)| encode(format, table, rows.clone(), &local_staged(staging, p, &name)?))?;
        for (_, p, _) in parts {
            self.queue_put(p);
        }
        Ok(())
    }

    fn queue_put(&mut self, p: &Partition) {
        let key = p.key();
        self.ops.push(CommitOp::Put {
            staged: format!("{STAGING}/{}/{key}/{}", self.run_id, self.file_name()),
            dir: key,
            file: self.file_name(),
        });
    }

    /// Encodes one partition into staging and queues its publication.
    pub fn put(&mut self, table: &Table, p: &Partition, rows: std::ops::Range<usize>) -> Result<(), SinkError> {
        let key = p.key();
        let name = self.file_name();
        let staged = format!("{STAGING}/{}/{key}/{name}", self.run_id);
        let path = match &mut self.backend {
            Backend::Local { staging } => local_staged(staging, p, &name)?,
            Backend::S3 { scratch, .. } => {
                let scratch = match scratch {
                    Some(s) => s,
                    None => scratch.insert(Scratch::new("staging")?),
                };
                self.encoded += 1;
                scratch
                    .path()
                    .join(format!("{}.{}", self.encoded, self.format.extension()))
            }
        };
        encode(self.format, table, rows, &path)?;
        if let Backend::S3 { root, uploads, .. } = &mut self.backend {
            // Upload in the background while the next partition is encoded.
            if uploads.len() >= UPLOADS_IN_FLIGHT {
                let oldest = uploads.pop_front().expect("not empty");
                storage::block_on(oldest)
                    .map_err(|e| StorageError::Message(format!("S3 upload task failed: {e}")))??;
            }
            let (bucket, dst) = (root.bucket.clone(), root.key(&staged));
            uploads.push_back(storage::spawn(async move {
                let r = bucket.put_file_async(&dst, &path).await;
                let _ = std::fs::remove_file(&path);
                r
            }));
        }
        self.queue_put(p);
        Ok(())
    }

    /// Waits for the background uploads; the first failure wins.
    fn finish_uploads(&mut self) -> Result<(), SinkError> {
        if let Backend::S3 { uploads, .. } = &mut self.backend {
            let mut first = Ok(());
            for u in uploads.drain(..) {
                let r = storage::block_on(u).map_err(|e| StorageError::Message(format!("S3 upload task failed: {e}")));
                if let (Ok(()), Err(e) | Ok(Err(e))) = (&first, r) {
                    first = Err(e.into());
                }
            }
            return first;
        }
        Ok(())
    }

    /// Queues the removal of a partition the run no longer produces.
    pub fn remove(&mut self, p: &Partition) {
        self.ops.push(CommitOp::Remove { dir: p.key() });
    }

    /// Publishes every queued change and then `state` (the run state file contents),
    /// through the journal.
    pub fn commit(mut self, state: serde_json::Value) -> Result<CommitStats, SinkError> {
        if let Err(e) = self.finish_uploads() {
            self.abandon();
            return Err(e);
        }
        let journal = Journal {
            run_id: self.run_id.clone(),
            ops: std::mem::take(&mut self.ops),
            state,
        };
        let bytes = serde_json::to_vec(&journal).expect("journal serialises");
        match &self.backend {
            Backend::Local { .. } => {
                let Root::Local(dir) = &self.root else { unreachable!() };
                // Staged files must be durable before the journal promises them.
                let staged: Vec<PathBuf> = journal
                    .ops
                    .iter()
                    .filter_map(|op| match op {
                        CommitOp::Put { staged, .. } => Some(dir.join(staged)),
                        CommitOp::Remove { .. } => None,
                    })
                    .collect();
                sync_files(&staged)?;
                storage::write_atomic(&dir.join(JOURNAL), &bytes)?;
                local::apply(dir, &journal)
            }
            Backend::S3 { root, .. } => {
                self.root.write(JOURNAL, &bytes)?;
                s3::apply(root, &journal)
            }
        }
    }

    /// Drops the staged files of a run that will not commit.
    pub fn abandon(mut self) {
        let _ = self.finish_uploads();
        match &self.backend {
            Backend::Local { staging } => {
                let _ = std::fs::remove_dir_all(staging);
                if let Root::Local(dir) = &self.root {
                    let _ = std::fs::remove_dir(dir.join(STAGING));
                }
            }
            Backend::S3 { root, .. } => {
                let _ = s3::delete_staging(root, &format!("{STAGING}/{}", self.run_id));
            }
        }
    }
}

/// Finishes or cleans up after a run that died: replays a pending journal (the dead run
/// had decided to commit) and deletes leftover staging (it had not). Returns the run id
/// of a replayed journal.
pub fn recover(root: &Root) -> Result<Option<String>, SinkError> {
    match root {
        Root::Local(dir) => local::recover(dir),
        Root::S3(s) => s3::recover(s),
    }
}

/// The staging path of partition `p` under a local `staging` folder, its folder made.
fn local_staged(staging: &Path, p: &Partition, file_name: &str) -> Result<PathBuf, SinkError> {
    let dir = staging.join(p.key());
    std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
    Ok(dir.join(file_name))
}

/// Writes `rows` of `table` to `path` (the partition column, if any, lives in the path).
fn encode(format: OutputFormat, table: &Table, rows: std::ops::Range<usize>, path: &Path) -> Result<(), SinkError> {
    match format {
        OutputFormat::Parquet => parquet::write(table, rows, table.partition_by, path),
        OutputFormat::Csv => csv::write(table, rows, table.partition_by, path),
    }
}

/// `fsync`s `files` from several threads at once: each call mostly waits on the device,
/// and hundreds of partitions one after the other took a second on a 2-core machine.
fn sync_files(files: &[PathBuf]) -> Result<(), SinkError> {
    const THREADS: usize = 16;
    let chunk = files.len().div_ceil(THREADS).max(1);
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                scope.spawn(move || -> Result<(), SinkError> {
                    for p in part {
                        std::fs::File::open(p).and_then(|f| f.sync_all()).map_err(io_err(p))?;
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("fsync thread panicked"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::intern::Interner;
    use crate::tables::Cols;

    /// A `date`-partitioned table with `ids` as codes into a table that numbered `order`.
    fn coded(order: &[&str], ids: &[&str], events: Vec<i64>) -> Table {
        let mut strings = Interner::new();
        for s in order {
            strings.intern(s);
        }
        let codes = ids.iter().map(|s| strings.get(s).unwrap()).collect();
        Cols::new()
            .date("date", vec![1, 1, 2])
            .dict("group_id", Arc::new(strings), codes)
            .int64("events", events)
            .table("t", Some("date"))
    }

    fn prints(t: &Table) -> Vec<String> {
        let f = Fingerprints::new(t, &mut CodeHashes::default());
        partitions(t)
            .into_iter()
            .map(|(_, rows)| f.of(rows, OutputFormat::Parquet))
            .collect()
    }

    #[test]
    fn fingerprints_follow_what_is_written() {
        let ids = ["b", "a", "a"];
        let base = prints(&coded(&["a", "b"], &ids, vec![1, 2, 3]));
        assert_ne!(base[0], base[1], "partitions differ");
        // The same text under other codes, or as plain strings: the same files.
        assert_eq!(prints(&coded(&["b", "a", "c"], &ids, vec![1, 2, 3])), base);
        let plain = Cols::new()
            .date("date", vec![1, 1, 2])
            .utf8("group_id", ids.iter().map(|s| s.to_string()).collect())
            .int64("events", vec![1, 2, 3])
            .table("t", Some("date"));
        assert_eq!(prints(&plain), base);
        // A changed id or count changes only its partition's fingerprint.
        let changed = prints(&coded(&["a", "b"], &["a", "a", "a"], vec![1, 2, 3]));
        assert_ne!(changed[0], base[0]);
        assert_eq!(changed[1], base[1]);
        let changed = prints(&coded(&["a", "b"], &ids, vec![1, 2, 4]));
        assert_eq!(changed[0], base[0]);
        assert_ne!(changed[1], base[1]);
        // Ids moved between rows ("b","a" -> "a","b") are another file.
        assert_ne!(prints(&coded(&["a", "b"], &["a", "b", "a"], vec![1, 2, 3]))[0], base[0]);
        assert_ne!(
            Fingerprints::new(&coded(&["a", "b"], &ids, vec![1, 2, 3]), &mut CodeHashes::default())
                .of(0..2, OutputFormat::Csv),
            base[0],
            "the format is part of the file"
        );
    }
}
