//! Writing tables to the output folder with Hive layout (SPEC §6), atomically per file.
//!
//! A run first *stages* every file under `<output>/_staging/<run id>/` (names starting
//! with `_` are not data to Hive readers), and only when every table is staged does it
//! *commit*: each staged file is renamed over `<table>/[date=…/]part-0.<ext>`, a single
//! atomic rename per partition, and partitions in scope that the run no longer produces
//! are removed. A run that fails before the commit leaves every partition as it was.

mod csv;
mod parquet;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

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

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SinkError + '_ {
    move |source| SinkError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Which date partitions a run may touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Every partition (full or incremental-from-scratch run).
    All,
    /// Only partitions with dates in `[from, to]` (a backfill); unpartitioned tables are
    /// still rewritten whole, since they are recomputed from all inputs.
    Dates(Day, Day),
}

impl Scope {
    fn contains(self, day: Day) -> bool {
        match self {
            Scope::All => true,
            Scope::Dates(from, to) => (from..=to).contains(&day),
        }
    }
}

/// A table written to staging, waiting for the commit.
#[derive(Debug)]
pub struct Staged {
    table: &'static str,
    /// Staged files: `None` for the single file of an unpartitioned table.
    parts: Vec<(Option<Day>, PathBuf)>,
    partitioned: bool,
}

/// What a commit changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommitStats {
    pub files_written: usize,
    pub partitions_removed: usize,
    pub rows: u64,
}

/// The output folder of one run.
pub struct Sink {
    root: PathBuf,
    format: OutputFormat,
    staging: PathBuf,
    rows: u64,
}

impl Sink {
    pub fn new(output: &str, format: OutputFormat, run_id: &str) -> Result<Sink, SinkError> {
        if output.starts_with("s3://") {
            return Err(SinkError::S3Unsupported(output.to_string()));
        }
        let root = PathBuf::from(output);
        let staging = root.join("_staging").join(run_id);
        std::fs::create_dir_all(&staging).map_err(io_err(&staging))?;
        Ok(Sink {
            root,
            format,
            staging,
            rows: 0,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn file_name(&self) -> String {
        format!("part-0.{}", self.format.extension())
    }

    /// Writes `table` into staging: one file per date partition in `scope`, or one file
    /// for an unpartitioned table.
    pub fn stage(&mut self, table: &Table, scope: Scope) -> Result<Staged, SinkError> {
        let dir = self.staging.join(table.name);
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        let mut parts = Vec::new();
        match table.partition_by {
            None => {
                let path = dir.join(self.file_name());
                self.write(table, 0..table.num_rows(), None, &path)?;
                self.rows += table.num_rows() as u64;
                parts.push((None, path));
            }
            Some(col) => {
                let Some(Values::Date(days)) = table.column(col) else {
                    panic!("partition column `{col}` of `{}` must be a Date column", table.name);
                };
                let mut start = 0;
                while start < days.len() {
                    let day = days[start];
                    let end = start + days[start..].iter().take_while(|&&d| d == day).count();
                    if scope.contains(day) {
                        let pdir = dir.join(format!("{col}={}", calendar::format_day(day)));
                        std::fs::create_dir_all(&pdir).map_err(io_err(&pdir))?;
                        let path = pdir.join(self.file_name());
                        self.write(table, start..end, Some(col), &path)?;
                        self.rows += (end - start) as u64;
                        parts.push((Some(day), path));
                    }
                    start = end;
                }
            }
        }
        Ok(Staged {
            table: table.name,
            parts,
            partitioned: table.partition_by.is_some(),
        })
    }

    fn write(&self, table: &Table, rows: std::ops::Range<usize>, skip: Option<&str>, path: &Path) -> Result<(), SinkError> {
        match self.format {
            OutputFormat::Parquet => parquet::write(table, rows, skip, path),
            OutputFormat::Csv => csv::write(table, rows, skip, path),
        }
    }

    /// Moves every staged file into place and removes stale partitions in `scope`.
    pub fn commit(self, staged: Vec<Staged>, scope: Scope) -> Result<CommitStats, SinkError> {
        let mut stats = CommitStats {
            rows: self.rows,
            ..Default::default()
        };
        let name = self.file_name();
        for t in staged {
            let table_dir = self.root.join(t.table);
            std::fs::create_dir_all(&table_dir).map_err(io_err(&table_dir))?;
            let mut produced = BTreeSet::new();
            for (day, src) in &t.parts {
                let dir = match day {
                    Some(d) => {
                        produced.insert(*d);
                        table_dir.join(format!("date={}", calendar::format_day(*d)))
                    }
                    None => table_dir.clone(),
                };
                std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
                let dst = dir.join(&name);
                std::fs::rename(src, &dst).map_err(io_err(&dst))?;
                remove_other_parts(&dir, &name)?;
                stats.files_written += 1;
            }
            if t.partitioned {
                for (day, dir) in existing_partitions(&table_dir)? {
                    if scope.contains(day) && !produced.contains(&day) {
                        std::fs::remove_dir_all(&dir).map_err(io_err(&dir))?;
                        stats.partitions_removed += 1;
                    }
                }
            }
        }
        let _ = std::fs::remove_dir_all(&self.staging);
        let _ = std::fs::remove_dir(self.root.join("_staging"));
        Ok(stats)
    }

    /// Drops the staged files of a run that will not commit.
    pub fn abandon(self) {
        let _ = std::fs::remove_dir_all(&self.staging);
        let _ = std::fs::remove_dir(self.root.join("_staging"));
    }
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

/// The `date=YYYY-MM-DD` partitions present under `table_dir`.
pub fn existing_partitions(table_dir: &Path) -> Result<Vec<(Day, PathBuf)>, SinkError> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(table_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(table_dir)(e)),
    };
    for entry in rd {
        let entry = entry.map_err(io_err(table_dir))?;
        let n = entry.file_name();
        let Some(date) = n.to_str().and_then(|s| s.strip_prefix("date=")) else { continue };
        if let Ok(d) = chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d") {
            out.push((calendar::day_of(d), entry.path()));
        }
    }
    out.sort();
    Ok(out)
}
