//! Encoded events, partitioned into buckets that are held in memory up to a budget and
//! spilled to files beyond it (an external partition, as hash joins do).
//!
//! Every bucket can later be processed alone: a day bucket holds all copies of every
//! event of that day that dedup by (name, user, time), and an id bucket all copies of a
//! range of message-id hashes. Bytes are appended in input order, a spilled file always
//! holding the older part, so "later in input order wins" survives spilling.

use std::io::Write;
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;

use crate::calendar::Day;

/// Where and when buckets spill.
#[derive(Debug, Clone)]
pub struct SpillOptions {
    /// Directory for spill files (a fresh subdirectory is made and removed); the system
    /// temporary directory when `None`.
    pub dir: Option<PathBuf>,
    /// Encoded bytes held in memory before buckets are written out.
    pub memory_budget: usize,
}

impl Default for SpillOptions {
    fn default() -> Self {
        SpillOptions {
            dir: None,
            memory_budget: DEFAULT_BUDGET,
        }
    }
}

/// 1 GiB of encoded events: ~25M events stay in memory, larger inputs spill.
pub const DEFAULT_BUDGET_MIB: u64 = 1024;
const DEFAULT_BUDGET: usize = (DEFAULT_BUDGET_MIB as usize) << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum BucketId {
    /// Events of one civil day whose duplicates share their time (or that have none).
    Day(Day),
    /// Events deduplicated by id, by the top bits of the id hash.
    Id(u16),
}

impl BucketId {
    fn day(self) -> Option<Day> {
        match self {
            BucketId::Day(d) => Some(d),
            BucketId::Id(_) => None,
        }
    }
}

#[derive(Default)]
pub(super) struct Bucket {
    /// Chunks of whole events, in input order.
    mem: Vec<Vec<u8>>,
    file: Option<PathBuf>,
}

impl Bucket {
    /// The bucket's chunks, the file part first.
    pub(super) fn load(self) -> Result<Vec<Vec<u8>>, SpillError> {
        match self.file {
            None => Ok(self.mem),
            Some(path) => {
                let file = std::fs::read(&path).map_err(|source| SpillError {
                    path: path.display().to_string(),
                    source,
                })?;
                let _ = std::fs::remove_file(&path);
                Ok(std::iter::once(file).chain(self.mem).collect())
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("spilling events to disk: `{path}`: {source}")]
pub struct SpillError {
    pub path: String,
    pub source: std::io::Error,
}

pub(super) struct Buckets {
    options: SpillOptions,
    dir: Option<tempfile::TempDir>,
    buckets: FxHashMap<BucketId, Bucket>,
    /// Capacity of the in-memory parts.
    in_memory: usize,
    /// Bytes written to spill files so far.
    pub spilled: u64,
}

impl Buckets {
    /// Encoded bytes held in memory before buckets spill.
    pub(super) fn memory_budget(&self) -> usize {
        self.options.memory_budget
    }

    pub(super) fn new(options: SpillOptions) -> Self {
        Buckets {
            options,
            dir: None,
            buckets: FxHashMap::default(),
            in_memory: 0,
            spilled: 0,
        }
    }

    /// Appends chunks of encoded events to bucket `id`. Memory is counted by capacity,
    /// what the process actually holds.
    pub(super) fn append(&mut self, id: BucketId, chunks: impl IntoIterator<Item = Vec<u8>>) {
        let mem = &mut self.buckets.entry(id).or_default().mem;
        for c in chunks {
            if !c.is_empty() {
                self.in_memory += c.capacity();
                mem.push(c);
            }
        }
    }

    /// Writes every in-memory part out when over budget.
    pub(super) fn maybe_spill(&mut self) -> Result<(), SpillError> {
        if self.in_memory <= self.options.memory_budget {
            return Ok(());
        }
        self.spill_all()
    }

    /// In a run that has spilled already, writes out what is still in memory, so that the
    /// per-day step (which needs memory of its own) starts from an empty budget; the bytes
    /// come back from the page cache.
    pub(super) fn spill_rest(&mut self) -> Result<(), SpillError> {
        if self.spilled == 0 {
            return Ok(());
        }
        self.spill_all()
    }

    fn spill_all(&mut self) -> Result<(), SpillError> {
        if self.dir.is_none() {
            let parent = self.options.dir.clone().unwrap_or_else(std::env::temp_dir);
            let err = |source| SpillError {
                path: parent.display().to_string(),
                source,
            };
            std::fs::create_dir_all(&parent).map_err(err)?;
            self.dir = Some(
                tempfile::Builder::new()
                    .prefix("groupetl-spill-")
                    .tempdir_in(&parent)
                    .map_err(err)?,
            );
        }
        let dir = self.dir.as_ref().expect("made above").path().to_path_buf();
        for (id, b) in &mut self.buckets {
            if b.mem.is_empty() {
                continue;
            }
            let path = b.file.get_or_insert_with(|| file_name(&dir, *id));
            append_file(path, &b.mem).map_err(|source| SpillError {
                path: path.display().to_string(),
                source,
            })?;
            self.spilled += b.mem.iter().map(|c| c.len() as u64).sum::<u64>();
            // Give the memory back: the next bytes of this bucket may be far off.
            b.mem = Vec::new();
        }
        self.in_memory = 0;
        Ok(())
    }

    /// The days that have a bucket.
    pub(super) fn days(&self) -> Vec<Day> {
        self.buckets.keys().filter_map(|&id| BucketId::day(id)).collect()
    }

    /// Takes out the bucket of `day`, and the bytes of it that were held in memory.
    pub(super) fn take_day(&mut self, day: Day) -> (Bucket, usize) {
        self.remove(BucketId::Day(day))
    }

    /// Takes the day buckets out, in day order.
    pub(super) fn take_days(&mut self) -> Vec<(Day, Bucket)> {
        self.take_where(BucketId::day)
    }

    /// Takes the id buckets out, in id order.
    pub(super) fn take_ids(&mut self) -> Vec<Bucket> {
        let ids = self.take_where(|id| match id {
            BucketId::Id(h) => Some(h),
            BucketId::Day(_) => None,
        });
        ids.into_iter().map(|(_, b)| b).collect()
    }

    fn take_where<K: Ord>(&mut self, pick: impl Fn(BucketId) -> Option<K>) -> Vec<(K, Bucket)> {
        let ids: Vec<BucketId> = self.buckets.keys().copied().filter(|&id| pick(id).is_some()).collect();
        let mut out: Vec<(K, Bucket)> = ids
            .into_iter()
            .map(|id| (pick(id).expect("picked"), self.remove(id).0))
            .collect();
        out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        out
    }

    /// Takes out bucket `id` (empty when there is none), and the bytes of it that were held
    /// in memory, which no longer count against the budget.
    fn remove(&mut self, id: BucketId) -> (Bucket, usize) {
        let b = self.buckets.remove(&id).unwrap_or_default();
        let bytes = b.mem.iter().map(Vec::capacity).sum::<usize>();
        self.in_memory -= bytes;
        (b, bytes)
    }

    /// The spill directory, kept alive until the buckets taken out are loaded.
    pub(super) fn into_dir(self) -> Option<tempfile::TempDir> {
        self.dir
    }
}

fn file_name(dir: &Path, id: BucketId) -> PathBuf {
    match id {
        BucketId::Day(d) => dir.join(format!("day-{d}.bin")),
        BucketId::Id(h) => dir.join(format!("id-{h}.bin")),
    }
}

fn append_file(path: &Path, chunks: &[Vec<u8>]) -> std::io::Result<()> {
    let f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    let mut f = std::io::BufWriter::with_capacity(1 << 20, f);
    for c in chunks {
        f.write_all(c)?;
    }
    f.flush()
}
