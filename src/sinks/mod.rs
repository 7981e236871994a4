//! Writing tables to the output folder with Hive layout (SPEC §6), and committing them.
//!
//! A run *stages* the files it will publish under `<output>/_staging/<run id>/` (names
//! starting with `_` are not data to Hive readers). It then writes a *journal*
//! (`_state/journal.json`) listing every rename and removal plus the new run state, and
//! only then applies it: each partition changes with one atomic `rename` of its
//! `part-0.<ext>`. A run killed before the journal is written leaves every partition as it
//! was; one killed while applying it is rolled forward by the next run ([`recover`]), so
//! the output always converges to one complete run.

mod csv;
mod parquet;

use std::hash::Hasher;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::calendar::{self, Day};
use crate::job::OutputFormat;
use crate::tables::{Table, Values};

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot write `{}`: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot encode `{}`: {message}", path.display())]
    Encode { path: PathBuf, message: String },
    #[error("`{0}`: S3 outputs are not supported by this build yet")]
    S3Unsupported(String),
}

pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SinkError + '_ {
    move |source| SinkError::Io {
        path: path.to_path_buf(),
        source,
    }
}

const STAGING: &str = "_staging";
const JOURNAL: &str = "_state/journal.json";

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

/// A content fingerprint of one partition's rows as they would be written: equal
/// fingerprints mean identical files, so the partition need not be rewritten.
pub fn fingerprint(table: &Table, rows: std::ops::Range<usize>, format: OutputFormat) -> String {
    let mut h = rustc_hash::FxHasher::default();
    h.write(format.extension().as_bytes());
    for col in &table.columns {
        if Some(col.name) == table.partition_by {
            continue;
        }
        h.write(col.name.as_bytes());
        h.write_u8(0xff);
        for i in rows.clone() {
            match &col.values {
                Values::Utf8(v) => {
                    h.write(v[i].as_bytes());
                    h.write_u8(0xff);
                }
                Values::Int64(v) => h.write_i64(v[i]),
                Values::Date(v) => h.write_i32(v[i]),
                Values::TimestampUs(v) => match v[i] {
                    Some(t) => h.write_i64(t),
                    None => h.write_u8(0xfe),
                },
            }
        }
    }
    h.write_u64(rows.len() as u64);
    format!("{:016x}", h.finish())
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

/// The output folder of one run.
pub struct Sink {
    root: PathBuf,
    format: OutputFormat,
    run_id: String,
    staging: PathBuf,
    ops: Vec<CommitOp>,
}

impl Sink {
    pub fn new(output: &str, format: OutputFormat, run_id: &str) -> Result<Sink, SinkError> {
        if output.starts_with("s3://") {
            return Err(SinkError::S3Unsupported(output.to_string()));
        }
        let root = PathBuf::from(output);
        let staging = root.join(STAGING).join(run_id);
        Ok(Sink {
            root,
            format,
            run_id: run_id.to_string(),
            staging,
            ops: Vec::new(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn file_name(&self) -> String {
        format!("part-0.{}", self.format.extension())
    }

    /// Whether the partition's data file is present in the output.
    pub fn exists(&self, p: &Partition) -> bool {
        self.root.join(p.key()).join(self.file_name()).is_file()
    }

    /// Encodes one partition into staging and queues its publication.
    pub fn put(&mut self, table: &Table, p: &Partition, rows: std::ops::Range<usize>) -> Result<(), SinkError> {
        let key = p.key();
        let dir = self.staging.join(&key);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let path = dir.join(self.file_name());
        let skip = table.partition_by;
        match self.format {
            OutputFormat::Parquet => parquet::write(table, rows, skip, &path)?,
            OutputFormat::Csv => csv::write(table, rows, skip, &path)?,
        }
        self.ops.push(CommitOp::Put {
            staged: format!("{STAGING}/{}/{key}/{}", self.run_id, self.file_name()),
            dir: key,
            file: self.file_name(),
        });
        Ok(())
    }

    /// Queues the removal of a partition the run no longer produces.
    pub fn remove(&mut self, p: &Partition) {
        self.ops.push(CommitOp::Remove { dir: p.key() });
    }

    /// Publishes every queued change and then `state` (the run state file contents),
    /// through the journal.
    pub fn commit(self, state: serde_json::Value) -> Result<CommitStats, SinkError> {
        let journal = Journal {
            run_id: self.run_id.clone(),
            ops: self.ops,
            state,
        };
        let jpath = self.root.join(JOURNAL);
        write_atomic(&jpath, &serde_json::to_vec(&journal).expect("journal serialises"))?;
        let stats = apply(&self.root, &journal)?;
        Ok(stats)
    }

    /// Drops the staged files of a run that will not commit.
    pub fn abandon(self) {
        let _ = std::fs::remove_dir_all(&self.staging);
        let _ = std::fs::remove_dir(self.root.join(STAGING));
    }
}

/// Writes `bytes` to `path` via a temporary file and a rename, so readers see the old or
/// the new contents, never a torn file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), SinkError> {
    let dir = path.parent().expect("path has a parent");
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(io_err(&tmp))?;
        f.write_all(bytes).map_err(io_err(&tmp))?;
        f.sync_all().map_err(io_err(&tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    Ok(())
}

/// Applies a journal. Idempotent: a put whose staged file is gone was already applied.
fn apply(root: &Path, journal: &Journal) -> Result<CommitStats, SinkError> {
    let mut stats = CommitStats::default();
    // Test hook for the crash-recovery tests: die like `kill -9` after N operations.
    let crash_after: Option<usize> = std::env::var("GROUPETL_TEST_CRASH_AFTER_OPS")
        .ok()
        .and_then(|v| v.parse().ok());
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
    let mut state = serde_json::to_vec_pretty(&journal.state).expect("state serialises");
    state.push(b'\n');
    write_atomic(&crate::runner::state::path(root), &state)?;
    let jpath = root.join(JOURNAL);
    std::fs::remove_file(&jpath).map_err(io_err(&jpath))?;
    let _ = std::fs::remove_dir_all(root.join(STAGING));
    Ok(stats)
}

/// Finishes or cleans up after a run that died: replays a pending journal (the dead run
/// had decided to commit) and deletes leftover staging (it had not). Returns the run id
/// of a replayed journal.
pub fn recover(output: &str) -> Result<Option<String>, SinkError> {
    if output.starts_with("s3://") {
        return Ok(None);
    }
    let root = Path::new(output);
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
pub fn existing_partitions(output: &str, table: &'static str) -> Result<Vec<Partition>, SinkError> {
    let table_dir = Path::new(output).join(table);
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
