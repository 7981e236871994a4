//! The runner: inputs → normalise → dedup/attribute → fold → tables → staged files →
//! commit, with rejects and a run summary.

mod lock;
pub mod progress;
pub mod rejects;
pub mod report;
pub mod state;

use rayon::iter::{IntoParallelIterator, ParallelIterator};
use std::time::Instant;

use crate::attribute::{AttributeError, Attributor, Batch, ExpectedFile, ReaderCache, SpillOptions};
use crate::calendar::{self, Day};
use crate::fold::{self, Sequenced};
use crate::job::{FoldOrder, Job};
use std::cell::RefCell;

use rustc_hash::FxHashSet;

use crate::job::Vendor;
use crate::normalize::{self, mixpanel_columnar, mixpanel_fast, EventContext, EventRef, ProfileContext, ProfileOp};
use crate::sinks::{self, Partition, Sink, SinkError};
use crate::sources::{self, InputFile, Record, SourceError};
use crate::storage::{Root, StorageError, Stores};
use crate::tables::{self, Table};
use lock::Lock;
pub use lock::LockError;
use progress::Progress;
use rejects::{Reject, Stream};
pub use report::RunSummary;
use state::{diff_inputs, InputDiff, InputRecord, State, StateError};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error(
        "{count} bad records, more than --max-rejects {max}; nothing was written (rejects: {})",
        rejects_path
    )]
    TooManyRejects {
        count: usize,
        max: u64,
        rejects_path: String,
    },
    #[error("cannot write rejects under `{path}`: {source}")]
    Rejects { path: String, source: std::io::Error },
    #[error("invalid date range: {0}")]
    BadRange(String),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error(transparent)]
    Attribute(#[from] AttributeError),
}

/// Runtime options of `groupetl run`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Backfill range, inclusive civil dates in the job's timezone.
    pub range: Option<(chrono::NaiveDate, chrono::NaiveDate)>,
    pub full_refresh: bool,
    pub max_rejects: Option<u64>,
    /// Run id; generated when `None`.
    pub run_id: Option<String>,
    /// Draw a progress bar when stderr is a terminal.
    pub progress: bool,
    /// Where and past what size events spill to disk.
    pub spill: SpillOptions,
}

/// A fresh run id: UTC time plus process id, sortable and unique per host.
pub fn new_run_id() -> String {
    format!(
        "{}-{:05}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
        std::process::id() % 100_000
    )
}

/// The inputs of a job, listed and sorted (SPEC §5 arrival order).
pub struct Inputs {
    pub events: Vec<InputFile>,
    pub profiles: Vec<InputFile>,
}

pub fn list(job: &Job, stores: &Stores) -> Result<Inputs, SourceError> {
    Ok(Inputs {
        events: sources::list_inputs_outside(&job.events.paths, stores, Some(&job.output.path))?,
        profiles: match &job.profiles {
            Some(p) => sources::list_inputs_outside(&p.paths, stores, Some(&job.output.path))?,
            None => Vec::new(),
        },
    })
}

fn reject_of(stream: Stream, file: &InputFile, rec_pos: sources::Position, reason: String, raw: String) -> Reject {
    Reject {
        stream,
        file: file.path.clone(),
        pos: rec_pos,
        reason,
        raw,
    }
}

/// A rejected record's text for the rejects file: its first [`sources::RAW_LIMIT`] bytes.
/// Serialised only that far: the whole text of a 1 GB record had run the process out of
/// memory.
fn raw_text(v: &serde_json::Value) -> String {
    /// Keeps the first `RAW_LIMIT` bytes written, then stops the serialiser.
    struct Capped(Vec<u8>);
    impl std::io::Write for Capped {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let room = sources::RAW_LIMIT - self.0.len();
            self.0.extend_from_slice(&b[..b.len().min(room)]);
            if b.len() > room {
                return Err(std::io::Error::other(
                    "rejects keep the first RAW_LIMIT bytes of a record",
                ));
            }
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut w = Capped(Vec::with_capacity(256));
    let _ = serde_json::to_writer(&mut w, v);
    // Cut at a character boundary.
    match String::from_utf8(w.0) {
        Ok(s) => s,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let mut bytes = e.into_bytes();
            bytes.truncate(valid);
            String::from_utf8(bytes).expect("a valid prefix")
        }
    }
}

/// Reads files in parallel and hands each file's result to `consume` in file order, on
/// the calling thread, while the next files are still being read. Input order (dedup
/// ties, arrival fold) is preserved, and memory stays bounded: a reader starts file `i`
/// only once file `i - window` has been consumed. Each reading thread keeps a state of its
/// own (made by `per_thread`) from one file to the next.
fn read_in_order<T: Send, S, E: From<SourceError>>(
    files: &[InputFile],
    progress: &Progress,
    per_thread: impl Fn() -> S + Sync,
    per_file: impl Fn(&InputFile, &mut S) -> Result<T, SourceError> + Sync,
    mut consume: impl FnMut(T) -> Result<(), E>,
) -> Result<(), E> {
    use std::collections::BTreeMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Condvar, Mutex};

    type Done<T> = std::thread::Result<Result<T, SourceError>>;
    struct Shared<T> {
        done: BTreeMap<usize, Done<T>>,
        consumed: usize,
        stop: bool,
    }
    let threads = rayon::current_num_threads().clamp(1, files.len().max(1));
    let window = threads * 2;
    let next = AtomicUsize::new(0);
    let shared = Mutex::new(Shared {
        done: BTreeMap::new(),
        consumed: 0,
        stop: false,
    });
    let (ready, space) = (Condvar::new(), Condvar::new());
    let lock = || shared.lock().unwrap_or_else(|p| p.into_inner());
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut state = per_thread();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= files.len() {
                        return;
                    }
                    let mut st = lock();
                    while i >= st.consumed + window && !st.stop {
                        st = space.wait(st).unwrap_or_else(|p| p.into_inner());
                    }
                    if st.stop {
                        return;
                    }
                    drop(st);
                    // A panic is carried to the consumer, which would otherwise wait forever.
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| per_file(&files[i], &mut state)));
                    progress.inc(files[i].size);
                    lock().done.insert(i, r);
                    ready.notify_all();
                }
            });
        }
        let stop = || {
            lock().stop = true;
            space.notify_all();
        };
        let result = (|| {
            for i in 0..files.len() {
                let r = {
                    let mut st = lock();
                    loop {
                        if let Some(r) = st.done.remove(&i) {
                            st.consumed = i + 1;
                            break r;
                        }
                        st = ready.wait(st).unwrap_or_else(|p| p.into_inner());
                    }
                };
                space.notify_all();
                match r {
                    Ok(r) => consume(r?)?,
                    Err(panic) => {
                        stop();
                        std::panic::resume_unwind(panic)
                    }
                }
            }
            Ok(())
        })();
        stop();
        result
    })
}

fn read_events(
    job: &Job,
    files: &[InputFile],
    progress: &Progress,
    attr: &mut Attributor,
    rejects: &mut Vec<Reject>,
) -> Result<(), RunError> {
    let keys: Vec<String> = job.group_keys.iter().map(|k| k.key.clone()).collect();
    let ctx = EventContext {
        keys: &keys,
        columns: job.events.columns.as_ref(),
    };
    if job.events.format == Vendor::Mixpanel {
        // Mixpanel events dedup within their day: with the span of times of every file
        // known up front, each day is processed once its last file is read.
        attr.expect_files(expected_files(job, files));
    }
    let template = attr.batch();
    let props_reader = mixpanel_fast::PropsReader::new(&keys);
    read_in_order(
        files,
        progress,
        // Names and group ids a thread has met stay known to it for its next files.
        ReaderCache::default,
        |f, cache| {
            let mut batch = template.clone();
            batch.adopt(std::mem::take(cache));
            batch.start_file(&f.path);
            let events: RefCell<Batch> = RefCell::new(batch);
            let mut bad: Vec<Reject> = Vec::new();
            // Mixpanel raw-export lines skip the `Value` tree when they can.
            let mut fast = |text: &str| {
                let mut events = events.borrow_mut();
                mixpanel_fast::push_event(text, &props_reader, &mut |e| events.push_ref(e))
            };
            // Mixpanel Parquet rows are read straight from the Arrow columns. The file's
            // dictionaries are numbered for this file's batch only.
            let mut dicts = mixpanel_columnar::Dicts::default();
            let mut columnar = |batch: &arrow_array::RecordBatch, declined: &mut Vec<usize>| {
                let mut on_dictionary =
                    |of, number, entries: &[&str]| events.borrow_mut().dictionary(of, number, entries);
                let mut push = |e: EventRef<'_>| events.borrow_mut().push_ref(e);
                mixpanel_columnar::events(batch, &ctx, &mut dicts, &mut on_dictionary, &mut push, declined)
            };
            let mixpanel = job.events.format == Vendor::Mixpanel;
            let hook: Option<sources::TextHook> = mixpanel.then_some(&mut fast);
            let batch_hook: Option<sources::BatchHook> = mixpanel.then_some(&mut columnar);
            let mut general = |rec: Record| match rec.value {
                Ok(v) => match normalize::event(job.events.format, &v, &ctx) {
                    Ok(Some(e)) => events.borrow_mut().push(e),
                    Ok(None) => {}
                    Err(reason) => bad.push(reject_of(Stream::Events, f, rec.pos, reason, raw_text(&v))),
                },
                Err(u) => bad.push(reject_of(Stream::Events, f, rec.pos, u.reason, u.raw)),
            };
            // The thread's cache goes back even when the file fails.
            let read = sources::read_file_with(f, job.events.file_type, hook, batch_hook, &mut general);
            let mut events = events.into_inner();
            if read.is_ok() {
                events.end_file();
            }
            *cache = events.release();
            read?;
            Ok((events, bad))
        },
        |(events, bad)| {
            rejects.extend(bad);
            attr.push_batch(events).map_err(RunError::from)
        },
    )
}

/// What the footer of each Mixpanel file tells before its rows are read: the span of its
/// event times (Parquet row-group statistics) and its number of rows. Footers of S3
/// objects are ranged GETs, mostly waiting: many are fetched at once.
fn expected_files(job: &Job, files: &[InputFile]) -> Vec<ExpectedFile> {
    let remote = files.iter().any(|f| f.bucket.is_some());
    let threads = if remote { 16 } else { rayon::current_num_threads() };
    // A footer that cannot be read leaves the span unknown; reading the file reports the
    // error.
    let expected = |f: &InputFile| {
        let footer = sources::parquet_footer(f, job.events.file_type).ok().flatten();
        ExpectedFile {
            path: f.path.clone(),
            span: footer.as_ref().and_then(normalize::mixpanel::parquet_time_span_us),
            rows: footer.as_ref().map(sources::Footer::rows),
        }
    };
    let chunk = files.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        let parts: Vec<_> = files
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(expected).collect::<Vec<_>>()))
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    })
}

/// The folded profiles and what the summary says of them.
#[derive(Default)]
struct ProfilesRead {
    folded: fold::Folded,
    ops: u64,
    /// Operations on group keys the job does not declare.
    other_keys: u64,
}

/// Reads and folds the profile operations. In `arrival` order each operation is applied as
/// it is read, files one after the other, so only the groups' state is held (a billion-event
/// export can carry ten million operations); `time` order needs them all before sorting.
/// Operations that `order = "time"` cannot place (no time) are rejected.
fn read_profiles(
    job: &Job,
    files: &[InputFile],
    also_events: &FxHashSet<&str>,
    progress: &Progress,
    rejects: &mut Vec<Reject>,
) -> Result<ProfilesRead, SourceError> {
    let mut read = ProfilesRead::default();
    let Some(p) = &job.profiles else { return Ok(read) };
    let ctx = ProfileContext {
        columns: p.columns.as_ref(),
        // `order = "time"` rejects an operation without a time after it is read.
        take_payload: p.order == FoldOrder::Arrival,
    };
    let parse = |f: &InputFile, rec: Record, bad: &mut Vec<Reject>| -> Option<ProfileOp> {
        match rec.value {
            Ok(mut v) => match normalize::profile_op(p.format, &mut v, &ctx) {
                Ok(Some(op)) if p.order == FoldOrder::Time && op.order_us.is_none() => {
                    bad.push(reject_of(
                        Stream::Profiles,
                        f,
                        rec.pos,
                        "operation has no time, which `order = \"time\"` needs".into(),
                        raw_text(&v),
                    ));
                    None
                }
                Ok(op) => op,
                Err(reason) => {
                    bad.push(reject_of(Stream::Profiles, f, rec.pos, reason, raw_text(&v)));
                    None
                }
            },
            // A file read as events too (PostHog exports carry both) has had its
            // unreadable lines rejected once already.
            Err(_) if also_events.contains(f.path.as_str()) => None,
            Err(u) => {
                bad.push(reject_of(Stream::Profiles, f, rec.pos, u.reason, u.raw));
                None
            }
        }
    };
    // Reads file `f`'s operations in file order, into `emit`. Mixpanel NDJSON lines go to
    // the fast path first; it declines whatever the general path rejects, and under `order
    // = "time"` an operation without a time, which is rejected with its record.
    let fast = p.format == Vendor::Mixpanel;
    let read_ops = |f: &InputFile, emit: &mut dyn FnMut(ProfileOp), bad: &mut Vec<Reject>| {
        let emit = RefCell::new(emit);
        let mut hook = |text: &str| match mixpanel_fast::profile_op(text) {
            Some(op) if p.order == FoldOrder::Arrival || op.order_us.is_some() => {
                (emit.borrow_mut())(op);
                true
            }
            _ => false,
        };
        let hook: Option<sources::TextHook> = if fast { Some(&mut hook) } else { None };
        sources::read_file_with(f, p.file_type, hook, None, &mut |rec: Record| {
            if let Some(op) = parse(f, rec, bad) {
                (emit.borrow_mut())(op);
            }
        })
    };
    let mut count = |op: &ProfileOp| {
        read.ops += 1;
        if job.group_key_index(&op.group_key).is_none() {
            read.other_keys += 1;
        }
    };
    match p.order {
        FoldOrder::Arrival => {
            for f in files {
                read_ops(
                    f,
                    &mut |op| {
                        count(&op);
                        fold::apply(&mut read.folded, op);
                    },
                    rejects,
                )?;
                progress.inc(f.size);
            }
        }
        FoldOrder::Time => {
            let mut ops: Vec<Sequenced> = Vec::new();
            read_in_order(
                files,
                progress,
                || (),
                |f, _| {
                    let (mut out, mut bad) = (Vec::new(), Vec::new());
                    read_ops(f, &mut |op| out.push(op), &mut bad)?;
                    Ok((out, bad))
                },
                |(out, bad)| {
                    for op in out {
                        count(&op);
                        let seq = ops.len() as u64;
                        ops.push(Sequenced { seq, op });
                    }
                    rejects.extend(bad);
                    Ok::<(), SourceError>(())
                },
            )?;
            fold::sort_ops(&mut ops, FoldOrder::Time);
            read.folded = fold::fold(ops.into_iter().map(|s| s.op));
        }
    }
    Ok(read)
}

/// Every output table of the job, in a fixed order. A table may come in several pieces (one
/// after the other, each made of whole partitions): `group_event_daily` comes a day a piece.
pub fn build_tables(job: &Job, act: &mut tables::Activity, folded: &fold::Folded) -> Vec<Table> {
    use rayon::prelude::*;
    let event_rows = std::mem::take(&mut act.event_daily);
    let act = &*act;
    let others: [&(dyn Fn() -> Table + Sync); 7] = [
        &|| tables::profiles::group_profiles(job, folded),
        &|| tables::daily::group_daily(act),
        &|| tables::active::active_groups(act),
        &|| tables::lifecycle::group_lifecycle(act),
        &|| tables::retention::group_retention(act),
        &|| tables::stickiness::group_stickiness(act),
        &|| tables::funnels::group_funnels(act, &job.funnels),
    ];
    // The largest table on one thread (a table a day), the others beside it.
    let (event_daily, mut out) = rayon::join(
        || tables::daily::group_event_daily(act, event_rows),
        || others.par_iter().map(|build| build()).collect::<Vec<Table>>(),
    );
    out.splice(2..2, event_daily);
    out
}

/// Everything a run computes before writing: the tables, rejects and counts.
pub struct Computed {
    pub tables: Vec<Table>,
    pub rejects: Vec<Reject>,
    pub summary: RunSummary,
}

/// Reads every input and computes every table, writing nothing.
pub fn compute(job: &Job, inputs: &Inputs, spill: &SpillOptions, progress: &Progress) -> Result<Computed, RunError> {
    let mut summary = RunSummary {
        event_files: inputs.events.len(),
        profile_files: inputs.profiles.len(),
        ..Default::default()
    };
    let mut rejects = Vec::new();

    // Profiles are read and folded on their own thread while events are read and
    // attributed: the streams are independent, and the events leave it idle moments.
    let event_paths: FxHashSet<&str> = inputs.events.iter().map(|f| f.path.as_str()).collect();
    let all_bytes = inputs.events.iter().chain(&inputs.profiles).map(|f| f.size).sum();
    progress.start("reading", all_bytes);
    let (events, profiles) = std::thread::scope(|scope| {
        let profiles = scope.spawn(|| {
            let t = Instant::now();
            tracing::info!(files = inputs.profiles.len(), "reading profile operations");
            let mut rejects = Vec::new();
            let read = read_profiles(job, &inputs.profiles, &event_paths, progress, &mut rejects)?;
            Ok::<_, SourceError>((read, rejects, t.elapsed()))
        });
        let events = (|| {
            let t = Instant::now();
            let mut attr = Attributor::new(job, spill.clone());
            tracing::info!(files = inputs.events.len(), "reading events");
            read_events(job, &inputs.events, progress, &mut attr, &mut rejects)?;
            let read = t.elapsed();
            let t = Instant::now();
            let (activity, stats) = attr.finish()?;
            Ok::<_, RunError>((activity, stats, read, t.elapsed()))
        })();
        let profiles = profiles.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
        (events, profiles)
    });
    progress.finish();
    let (mut activity, stats, read, attribute) = events?;
    let (
        ProfilesRead {
            folded,
            ops,
            other_keys,
        },
        profile_rejects,
        profiles_time,
    ) = profiles?;
    summary.phases.push(("read events".into(), read));
    summary.phases.push(("dedup + attribute".into(), attribute));
    summary
        .phases
        .push(("read + fold profiles (alongside)".into(), profiles_time));
    summary.attribution = stats;
    summary.profile_ops = ops;
    summary.profile_ops_other_keys = other_keys;
    // Event rejects first, as when the streams were read one after the other.
    rejects.extend(profile_rejects);

    let t = Instant::now();
    let tables = build_tables(job, &mut activity, &folded);
    summary.groups_active = activity.groups_active() as u64;
    summary.phase("tables", t);
    summary.rejects = rejects.len() as u64;
    Ok(Computed {
        tables,
        rejects,
        summary,
    })
}

/// What kind of run this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Rewrite the partitions whose content changed since the last run.
    Incremental,
    /// Rewrite every partition and drop every stale one.
    FullRefresh,
    /// Rewrite exactly the date partitions in `[from, to]` (and the unpartitioned tables).
    Backfill(Day, Day),
}

impl Mode {
    pub fn from_options(opts: &RunOptions) -> Result<Mode, RunError> {
        match opts.range {
            Some((from, to)) if from > to => Err(RunError::BadRange(format!("--from {from} is after --to {to}"))),
            Some((from, to)) => Ok(Mode::Backfill(calendar::day_of(from), calendar::day_of(to))),
            None if opts.full_refresh => Ok(Mode::FullRefresh),
            None => Ok(Mode::Incremental),
        }
    }

    fn in_scope(self, p: &Partition) -> bool {
        match (self, p.day) {
            (Mode::Backfill(a, b), Some(d)) => (a..=b).contains(&d),
            _ => true,
        }
    }

    pub fn describe(self) -> String {
        match self {
            Mode::Incremental => "incremental".into(),
            Mode::FullRefresh => "full refresh".into(),
            Mode::Backfill(a, b) => format!("backfill {} .. {}", calendar::format_day(a), calendar::format_day(b)),
        }
    }
}

/// Fingerprint of everything that shapes the output besides the inputs: the resolved job
/// and the groupetl version. A change forces a recompute.
pub fn config_fingerprint(job: &Job) -> String {
    use std::hash::Hasher;
    let mut j = job.clone();
    j.path = Default::default();
    let mut h = rustc_hash::FxHasher::default();
    h.write(format!("{} {j:?}", env!("CARGO_PKG_VERSION")).as_bytes());
    format!("{:016x}", h.finish())
}

fn input_records(inputs: &Inputs) -> Vec<InputRecord> {
    inputs
        .events
        .iter()
        .chain(&inputs.profiles)
        .map(InputRecord::from)
        .collect()
}

/// Why a partition is (re)written or removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    New,
    Changed,
    Missing,
    FullRefresh,
    Backfill,
    NoLongerProduced,
}

impl Reason {
    pub fn text(self) -> &'static str {
        match self {
            Reason::New => "new partition",
            Reason::Changed => "content changed",
            Reason::Missing => "file missing from the output",
            Reason::FullRefresh => "full refresh",
            Reason::Backfill => "in the backfill range",
            Reason::NoLongerProduced => "no longer produced (stale)",
        }
    }
}

/// What a run will do to each partition.
pub struct Decisions {
    /// (index into the tables, partition, rows, reason)
    pub puts: Vec<(usize, Partition, std::ops::Range<usize>, Reason)>,
    pub removes: Vec<(Partition, Reason)>,
    pub unchanged: usize,
    pub state: State,
}

/// Decides, per partition, whether to write it, keep it or remove it.
pub fn decide(
    job: &Job,
    mode: Mode,
    old: Option<&State>,
    tables: &[Table],
    inputs: &Inputs,
    run_id: &str,
    sink: &Sink,
) -> Result<Decisions, SinkError> {
    // A backfill does not bring other partitions up to date with new inputs or a changed
    // job, so the next incremental run must still see those inputs as new and the job as
    // changed.
    let config = match (mode, old) {
        (Mode::Backfill(..), Some(o)) => o.config.clone(),
        _ => config_fingerprint(job),
    };
    let mut state = State::new(&job.name, config, run_id);
    state.inputs = match (mode, old) {
        (Mode::Backfill(..), Some(o)) => o.inputs.clone(),
        (Mode::Backfill(..), None) => Vec::new(),
        _ => input_records(inputs),
    };
    let old_fp = |key: &str| old.and_then(|o| o.partitions.get(key));
    let mut d = Decisions {
        puts: Vec::new(),
        removes: Vec::new(),
        unchanged: 0,
        state,
    };
    let mut produced = std::collections::BTreeSet::new();
    let mut code_hashes = sinks::CodeHashes::default();
    for (ti, table) in tables.iter().enumerate() {
        // Fingerprints read every cell of the table: on all threads (a 100M-event run's
        // tables have 30M+ rows, hashed at the end of the run while nothing else runs).
        let fingerprints = sinks::Fingerprints::new(table, &mut code_hashes);
        let parts: Vec<(Partition, std::ops::Range<usize>, String)> = sinks::partitions(table)
            .into_par_iter()
            .map(|(p, rows)| {
                let fp = fingerprints.of(rows.clone(), job.output.format);
                (p, rows, fp)
            })
            .collect();
        for (p, rows, fp) in parts {
            let key = p.key();
            produced.insert(key.clone());
            if !mode.in_scope(&p) {
                if let Some(f) = old_fp(&key) {
                    d.state.partitions.insert(key, f.clone());
                }
                continue;
            }
            let reason = match mode {
                Mode::FullRefresh => Some(Reason::FullRefresh),
                Mode::Backfill(..) => Some(Reason::Backfill),
                Mode::Incremental => match old_fp(&key) {
                    None => Some(Reason::New),
                    Some(f) if *f != fp => Some(Reason::Changed),
                    Some(_) if !sink.exists(&p) => Some(Reason::Missing),
                    Some(_) => None,
                },
            };
            match reason {
                Some(r) => d.puts.push((ti, p, rows, r)),
                None => d.unchanged += 1,
            }
            d.state.partitions.insert(key, fp);
        }
        // Stale partitions once a table's last piece is in.
        let last_piece = tables.get(ti + 1).is_none_or(|next| next.name != table.name);
        if table.partition_by.is_some() && last_piece {
            let mut stale = sink.existing_partitions(table.name)?;
            if let Some(o) = old {
                let prefix = format!("{}/date=", table.name);
                for k in o.partitions.keys().filter(|k| k.starts_with(&prefix)) {
                    if let Ok(day) = chrono::NaiveDate::parse_from_str(&k[prefix.len()..], "%Y-%m-%d") {
                        stale.push(Partition {
                            table: table.name,
                            day: Some(calendar::day_of(day)),
                        });
                    }
                }
            }
            stale.sort();
            stale.dedup();
            for p in stale {
                let key = p.key();
                if produced.contains(&key) {
                    continue;
                }
                if mode.in_scope(&p) {
                    d.removes.push((p, Reason::NoLongerProduced));
                } else if let Some(f) = old_fp(&key) {
                    d.state.partitions.insert(key, f.clone());
                }
            }
        }
    }
    Ok(d)
}

/// Whether an incremental run has nothing to do: the same job and groupetl version, the
/// same inputs, and every recorded partition still present (one deleted by hand must be
/// rewritten). `run` and `plan` must agree on this.
fn up_to_date(job: &Job, old: &State, diff: &InputDiff, sink: &Sink) -> bool {
    old.config == config_fingerprint(job) && diff.is_empty() && old.partitions.keys().all(|k| sink.has_partition_key(k))
}

/// `groupetl run`: incremental by default, or a full refresh, or a backfill.
pub fn run(job: &Job, opts: &RunOptions) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    let mode = Mode::from_options(opts)?;
    let run_id = opts.run_id.clone().unwrap_or_else(new_run_id);
    let stores = Stores::new(&job.s3);
    let root = Root::open(&job.output.path, &stores)?;
    // Every input is listed before anything is written: a missing input (or an
    // unreachable bucket) fails the run with the output untouched.
    let t = Instant::now();
    let inputs = list(job, &stores)?;
    let list_time = t.elapsed();
    root.probe()?;

    let _lock = Lock::acquire(&root, &run_id)?;
    let recovered = sinks::recover(&root)?;
    if let Some(r) = &recovered {
        tracing::info!(run_id = %r, "finished the commit of an interrupted run");
    }
    let old = State::load(&root)?;
    let mut sink = Sink::new(&root, job.output.format, &run_id)?;
    let diff = diff_inputs(old.as_ref().map_or(&[][..], |o| &o.inputs), &input_records(&inputs));

    if mode == Mode::Incremental {
        if let Some(o) = &old {
            if up_to_date(job, o, &diff, &sink) {
                return Ok(RunSummary {
                    run_id,
                    output: job.output.path.clone(),
                    mode: mode.describe(),
                    up_to_date: true,
                    event_files: inputs.events.len(),
                    profile_files: inputs.profiles.len(),
                    input_diff: diff,
                    recovered,
                    elapsed: started.elapsed(),
                    ..Default::default()
                });
            }
        }
    }

    let Computed {
        tables,
        rejects,
        mut summary,
    } = compute(job, &inputs, &opts.spill, &Progress::new(opts.progress))?;
    summary.phases.insert(0, ("list inputs".into(), list_time));
    summary.run_id = run_id.clone();
    summary.output = job.output.path.clone();
    summary.mode = mode.describe();
    summary.input_diff = diff;
    summary.recovered = recovered;

    let rejects_path = rejects::write(&root, &run_id, &rejects).map_err(|source| RunError::Rejects {
        path: root.display("_rejects"),
        source,
    })?;
    summary.rejects_path = rejects_path;
    if let Some(max) = opts.max_rejects {
        if rejects.len() as u64 > max {
            return Err(RunError::TooManyRejects {
                count: rejects.len(),
                max,
                rejects_path: summary.rejects_path.clone().unwrap_or_default(),
            });
        }
    }

    let t = Instant::now();
    let decisions = decide(job, mode, old.as_ref(), &tables, &inputs, &run_id, &sink)?;
    let parts: Vec<(&Table, &Partition, std::ops::Range<usize>)> = decisions
        .puts
        .iter()
        .map(|(ti, p, rows, _)| (&tables[*ti], p, rows.clone()))
        .collect();
    if let Err(e) = sink.put_all(&parts) {
        sink.abandon();
        return Err(e.into());
    }
    summary.rows_written = parts.iter().map(|(_, _, rows)| rows.len() as u64).sum();
    for (p, _) in &decisions.removes {
        sink.remove(p);
    }
    for t in &tables {
        match summary.tables.last_mut() {
            Some((name, rows)) if *name == t.name => *rows += t.num_rows() as u64,
            _ => summary.tables.push((t.name, t.num_rows() as u64)),
        }
    }
    summary.partitions_unchanged = decisions.unchanged;
    let state = serde_json::to_value(&decisions.state).expect("state serialises");
    let stats = sink.commit(state)?;
    summary.phase("write + commit", t);
    summary.files_written = stats.files_written;
    summary.partitions_removed = stats.partitions_removed;
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// `groupetl plan`: the lines saying which inputs a run would read and which partitions it
/// would write or remove, and why. Reads the inputs (to know the partitions exactly) but
/// writes nothing and takes no lock.
pub fn plan(job: &Job, opts: &RunOptions) -> Result<Vec<String>, RunError> {
    let mode = Mode::from_options(opts)?;
    let stores = Stores::new(&job.s3);
    let inputs = list(job, &stores)?;
    let root = Root::open(&job.output.path, &stores)?;
    let old = State::load(&root)?;
    let diff = diff_inputs(old.as_ref().map_or(&[][..], |o| &o.inputs), &input_records(&inputs));
    let mut lines = vec![format!("job {} ({}) → {}", job.name, mode.describe(), job.output.path)];
    let status = |p: &str| {
        if old.is_none() {
            "first run"
        } else if diff.new.iter().any(|n| n == p) {
            "new"
        } else if diff.changed.iter().any(|n| n == p) {
            "changed"
        } else {
            "unchanged"
        }
    };
    for (what, files) in [("events", &inputs.events), ("profiles", &inputs.profiles)] {
        for f in files {
            lines.push(format!(
                "read {what} {} ({} bytes): {}",
                f.path,
                f.size,
                status(&f.path)
            ));
        }
    }
    for r in &diff.removed {
        lines.push(format!("input gone since the last run: {r}"));
    }
    let sink = Sink::new(&root, job.output.format, "plan")?;
    if mode == Mode::Incremental {
        if let Some(o) = &old {
            if up_to_date(job, o, &diff, &sink) {
                lines.push(format!(
                    "nothing to do: inputs and job unchanged since run {}",
                    o.last_run_id
                ));
                return Ok(lines);
            }
            if o.config != config_fingerprint(job) {
                lines.push("job file or groupetl version changed since the last run".into());
            }
        }
    }
    let computed = compute(job, &inputs, &opts.spill, &Progress::hidden())?;
    let d = decide(job, mode, old.as_ref(), &computed.tables, &inputs, "plan", &sink)?;
    for (_, p, rows, reason) in &d.puts {
        lines.push(format!("write {} ({} rows): {}", p.key(), rows.len(), reason.text()));
    }
    for (p, reason) in &d.removes {
        lines.push(format!("remove {}: {}", p.key(), reason.text()));
    }
    lines.push(format!(
        "{} partitions to write, {} to remove, {} unchanged; {} bad records would be rejected",
        d.puts.len(),
        d.removes.len(),
        d.unchanged,
        computed.rejects.len()
    ));
    Ok(lines)
}

/// Parses a `--from`/`--to` value.
pub fn parse_day(s: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD)"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    /// At most 2 KiB, cut at a character, a prefix of the whole text.
    #[test]
    fn reject_text_is_the_records_first_two_kib() {
        let small = json!({"event": "a", "n": 1});
        assert_eq!(super::raw_text(&small), small.to_string());
        let big = json!({"event": "é".repeat(100_000), "n": [1, 2, 3]});
        let whole = big.to_string();
        let cut = super::raw_text(&big);
        assert!(cut.len() <= 2048 && cut.len() > 2040, "{}", cut.len());
        assert!(whole.starts_with(&cut));
    }
}
