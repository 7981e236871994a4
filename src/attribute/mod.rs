//! Dedup and attribution: canonical events in, [`Activity`] out (SPEC §4, §6).
//!
//! Duplicates collapse onto the latest ingested copy (ties: the later one in input order),
//! and only then are effective dates and `exclude_events` applied: a duplicate must be
//! removed even when its twin is excluded or unattributed, or counts would depend on which
//! copy came first.
//!
//! Memory stays bounded by partitioning, not by holding every event:
//! 1. Reading: each file's events are encoded (~40 bytes each) on a worker thread
//!    ([`Batch`]), names and group ids numbered through the run's shared string tables,
//!    user ids hashed; then, in input order, their bytes are appended to buckets that
//!    spill to disk past a budget. Events that dedup by (name, user, time) go to the
//!    bucket of their civil day, since all their copies share it; events that dedup by id
//!    go to a bucket by id hash, since copies of one id may carry different times.
//! 2. Id buckets are deduplicated one at a time, in parallel, and their survivors moved
//!    to their day buckets.
//! 3. Day buckets are deduplicated, attributed and reduced to per-(group, day) aggregates
//!    one at a time, in parallel; only the hits the funnels need are kept. When the runner
//!    knows each file's span of times up front ([`Attributor::expect_files`]), a day is
//!    processed as soon as the last file that may hold it has been pushed, while later
//!    files are still read; otherwise at the end. Days are processed with names and group
//!    ids numbered as the readers met them; the aggregates get their final numbers (byte
//!    order) at the end, so no result depends on which thread met a string first.
//!
//! A day that one file alone may hold, by every file's statistics (Mixpanel exports come a
//! file a day), skips the buckets: its events are deduplicated and attributed on the
//! file's reading thread as its rows come ([`Batch::start_file`], [`DayBuild`]), so they
//! are never encoded and decoded again, and the day is complete once the file is pushed.

mod buckets;
mod codec;

use std::borrow::Cow;
use std::hash::BuildHasher;
use std::sync::Arc;

use rayon::prelude::*;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::calendar::{Day, DayMapper};
use crate::intern::{user_key, SeenSyms, SharedInterner, Sym, UserKey, NO_USER};
use crate::job::{Clock, Job};
use crate::normalize::{Code, DedupRef, DictOf, EventRef, GroupId, RawEvent};
use crate::tables::{
    clear_with_room, Activity, DayHit, DayParts, DayScratch, GroupEventDay, Hit, HitBounds, RETAIN_BYTES,
};
use buckets::{BucketId, Buckets};
pub use buckets::{SpillError, SpillOptions, DEFAULT_BUDGET_MIB};
use codec::{ChunkPool, Decoder, Dedup};

const US_PER_DAY: i64 = 86_400_000_000;

/// Id buckets: copies of one id meet in one bucket, and a bucket is ~1/128 of the input.
const ID_BUCKET_BITS: u32 = 7;

/// Counts reported in the run summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttributionStats {
    /// Events read (after normalisation, before dedup).
    pub events: u64,
    /// Copies dropped as duplicates.
    pub duplicates: u64,
    /// Distinct events whose name is in `exclude_events`.
    pub excluded: u64,
    /// Distinct, non-excluded events attributed to at least one group.
    pub attributed: u64,
    /// (event, group) pairs.
    pub hits: u64,
    /// Encoded bytes written to spill files.
    pub spilled_bytes: u64,
}

impl std::ops::AddAssign for AttributionStats {
    fn add_assign(&mut self, o: Self) {
        self.events += o.events;
        self.duplicates += o.duplicates;
        self.excluded += o.excluded;
        self.attributed += o.attributed;
        self.hits += o.hits;
        self.spilled_bytes += o.spilled_bytes;
    }
}

/// Insert ids / message ids as seeded hashes, so that the text of ids (unique per event)
/// is never kept: XXH3 with seeds drawn per run; 128 bits for ids that alone identify an
/// event (a false match needs ~2^64 distinct ids), 64 bits for Mixpanel's, which only
/// separate events already equal in name, user and microsecond. Shared by the batches of
/// one run so equal ids hash equally.
#[derive(Clone)]
struct IdHasher(u64);

impl IdHasher {
    fn new() -> Self {
        IdHasher(std::hash::RandomState::new().hash_one(0u64))
    }

    fn hash64(&self, id: &str) -> u64 {
        twox_hash::XxHash3_64::oneshot_with_seed(self.0, id.as_bytes())
    }

    fn hash128(&self, id: &str) -> u128 {
        twox_hash::XxHash3_128::oneshot_with_seed(self.0, id.as_bytes())
    }
}

/// The run's string tables, filled by every reader thread at once.
#[derive(Default)]
struct Strings {
    events: SharedInterner,
    groups: SharedInterner,
}

/// Part of one file's events, encoded on a worker thread: strings get the run's shared
/// ids there (through the thread's caches), so the in-order step only appends bytes.
#[derive(Clone)]
pub struct Batch {
    ids: IdHasher,
    mapper: DayMapper,
    strings: Arc<Strings>,
    pool: Arc<ChunkPool>,
    names: Symbols,
    groups: Symbols,
    members: Vec<(u16, Sym)>,
    /// Encoded events by bucket, in input order within each.
    out: Vec<(BucketId, Vec<Vec<u8>>)>,
    /// Index in `out` of each bucket; the last one used is checked first (most files hold
    /// one day), id buckets (up to 128) are looked up.
    slots: FxHashMap<BucketId, usize>,
    last: Option<(BucketId, usize)>,
    events: u64,
    /// The job's rules, for a day the batch's file holds alone.
    rule_source: Arc<RuleSource>,
    /// The files that alone hold a day, by path (see [`Attributor::expect_files`]).
    own_days: Arc<FxHashMap<String, OwnDayOf>>,
    /// The day the batch's file holds alone, being built as its rows come.
    own: Option<OwnDay>,
    /// The buffers `own` is built in (the reading thread's, see [`ReaderCache`]).
    build: Option<Box<DayBuild>>,
    /// `own`, built, once the file has been read.
    own_done: Option<(Day, DayParts, AttributionStats)>,
}

/// A day only one input file may hold (by the time statistics of every file) and the rows
/// of that file: its events need not wait for any other file, so they are deduplicated
/// and attributed as the file is read, without going through a bucket.
#[derive(Debug, Clone, Copy)]
struct OwnDayOf {
    day: Day,
    rows: u64,
}

/// The day a batch builds from its file's rows, and the rules it is built with.
#[derive(Clone)]
struct OwnDay {
    day: Day,
    rules: Rules,
    /// Rows waiting to be added, with their memberships: added [`OwnDay::PENDING`] at a
    /// time, reading rows and building the day each keep their own memory in cache (added
    /// one by one as they were read, a 100M run was no faster than through the buckets,
    /// with ~10% more profile samples).
    pending: Vec<codec::Event>,
    members: Vec<(u16, Sym)>,
}

impl OwnDay {
    /// 128 rows (10 KiB of events) stay in the first-level cache until they are added. With
    /// 4096 (320 KiB) the rows were written out of cache and read back: three days of the
    /// 100M workload had 13% more second-level misses in cachegrind (66.3M against 58.7M
    /// with a 1 MiB cache), and 8% more first-level ones than with 128.
    const PENDING: usize = 128;

    fn flush(&mut self, build: &mut DayBuild, source: &RuleSource, strings: &Strings) {
        if self.pending.iter().any(|e| e.name as usize >= self.rules.known) {
            // Names numbered since the rules were made: the rules cover them now.
            self.rules = source.rules(&strings.events, ONE_PASS_BYTES);
        }
        for e in &self.pending {
            let groups = &self.members[e.groups.start as usize..e.groups.end as usize];
            build.add(e, groups, self.day, &self.rules);
        }
        self.pending.clear();
        self.members.clear();
    }
}

impl Batch {
    /// Tells the batch which input file it reads: when that file alone holds a day, the
    /// day's events are deduplicated and attributed here, as they come (see [`OwnDayOf`]).
    pub fn start_file(&mut self, path: &str) {
        let Some(&OwnDayOf { day, rows }) = self.own_days.get(path) else {
            return;
        };
        let build = self.build.get_or_insert_with(Box::default);
        build.begin(usize::try_from(rows).unwrap_or(usize::MAX), true);
        self.own = Some(OwnDay {
            day,
            rules: self.rule_source.rules(&self.strings.events, ONE_PASS_BYTES),
            pending: Vec::with_capacity(OwnDay::PENDING),
            members: Vec::new(),
        });
    }

    /// Finishes the day of [`Batch::start_file`], once every row of the file is in.
    pub fn end_file(&mut self) {
        let (Some(mut own), Some(build)) = (self.own.take(), self.build.as_mut()) else {
            return;
        };
        own.flush(build, &self.rule_source, &self.strings);
        if build.n == 0 {
            return;
        }
        build.dedup();
        let (parts, stats) = build.finish(own.day, &own.rules);
        build.shrink();
        self.own_done = Some((own.day, parts, stats));
    }

    pub fn push(&mut self, e: RawEvent) {
        let groups = e
            .groups
            .iter()
            .map(|(k, g)| (*k, GroupId::Text(Cow::Borrowed(g)), Code::NONE));
        self.push_parts(
            &e.name,
            Code::NONE,
            e.user.as_deref(),
            e.time_us,
            e.ingest_us,
            e.dedup.as_ref(),
            groups,
        );
    }

    /// Gives the batch what its thread has already looked up in earlier files.
    pub fn adopt(&mut self, cache: ReaderCache) {
        self.names.seen = cache.names;
        self.groups.seen = cache.groups;
        self.build = cache.build;
    }

    /// Hands the thread's lookups back, for its next file.
    pub fn release(&mut self) -> ReaderCache {
        ReaderCache {
            names: std::mem::take(&mut self.names.seen),
            groups: std::mem::take(&mut self.groups.seen),
            build: self.build.take(),
        }
    }

    /// Looks up every entry of a dictionary the batch's file reader has just met, so that
    /// its rows only hit remembered ids (see [`Symbols::prime`]).
    pub fn dictionary(&mut self, of: DictOf, number: u32, entries: &[&str]) {
        let strings = &*self.strings;
        match of {
            DictOf::Names => self.names.prime(number, entries, &strings.events),
            DictOf::GroupIds => self.groups.prime(number, entries, &strings.groups),
        }
    }

    /// An event of the batch's file (the file whose reader made `e`'s codes).
    pub fn push_ref(&mut self, e: EventRef<'_>) {
        let codes = e.group_codes.iter().copied().chain(std::iter::repeat(Code::NONE));
        let groups = e.groups.iter().zip(codes).map(|((k, g), c)| (*k, g.reborrow(), c));
        self.push_parts(e.name, e.name_code, e.user, e.time_us, e.ingest_us, e.dedup, groups);
    }

    #[allow(clippy::too_many_arguments)]
    fn push_parts<'s>(
        &mut self,
        name: &str,
        name_code: Code,
        user: Option<&str>,
        time_us: i64,
        ingest_us: Option<i64>,
        dedup: DedupRef,
        groups: impl Iterator<Item = (u16, GroupId<'s>, Code)>,
    ) {
        let strings = &*self.strings;
        self.members.clear();
        for (k, g, code) in groups {
            if let Some(group) = self.groups.get_id(&g, code, &strings.groups) {
                self.members.push((k, group));
            }
        }
        let dedup = match dedup {
            DedupRef::NameUserTime(id) => Dedup::NameUserTime(id.map(|i| self.ids.hash64(i))),
            DedupRef::Id(id) => Dedup::Id(self.ids.hash128(id)),
            DedupRef::Unique => Dedup::Unique,
        };
        let name = self.names.get(name, name_code, &strings.events);
        let user = user.map_or(NO_USER, user_key);
        let id = match dedup {
            Dedup::Id(h) => BucketId::Id((h >> (128 - ID_BUCKET_BITS)) as u16),
            _ => BucketId::Day(self.mapper.day(time_us)),
        };
        if let Some(own) = &mut self.own {
            if id == BucketId::Day(own.day) {
                let start = own.members.len() as u32;
                own.members.extend_from_slice(&self.members);
                own.pending.push(codec::Event {
                    name,
                    user,
                    time_us,
                    ingest_us,
                    dedup,
                    groups: start..own.members.len() as u32,
                });
                if own.pending.len() == OwnDay::PENDING {
                    own.flush(self.build.as_mut().expect("built in"), &self.rule_source, strings);
                }
                self.events += 1;
                return;
            }
        }
        let slot = match self.last {
            Some((last, i)) if last == id => i,
            _ => {
                let out = &mut self.out;
                let i = *self.slots.entry(id).or_insert_with(|| {
                    out.push((id, Vec::new()));
                    out.len() - 1
                });
                self.last = Some((id, i));
                i
            }
        };
        let buf = codec::room(&mut self.out[slot].1, &self.pool);
        codec::encode(
            buf,
            base_us(id),
            name,
            user,
            time_us,
            ingest_us,
            dedup,
            self.members.iter().copied(),
        );
        self.events += 1;
    }
}

/// A reader's way to the run's numbers for one kind of string (event names, group ids):
/// its thread's memory, and the current file's dictionaries.
#[derive(Clone, Default)]
struct Symbols {
    /// Every string the reading thread has met, across its files (see [`ReaderCache`]).
    seen: SeenSyms,
    /// Strings from a dictionary: looked up once per entry, then remembered here, so that
    /// a row costs an array lookup rather than a hash.
    codes: CodeMemo,
}

impl Symbols {
    /// Fills the ids of dictionary `number`'s entries in at once. Looked up as rows came,
    /// each entry's first row waited on a cache miss in [`SeenSyms`] (~200 ns; a 100M-event
    /// run has ~10M entries over its row groups); in a batch the misses overlap.
    fn prime(&mut self, number: u32, entries: &[&str], shared: &SharedInterner) {
        let syms = self.codes.slot(number);
        // An empty string is never a name or an id: no row gets its code.
        self.seen.get_all(entries, shared, syms, CodeMemo::UNSET);
    }

    #[inline]
    fn get(&mut self, s: &str, code: Code, shared: &SharedInterner) -> Sym {
        if code.is_none() {
            self.seen.get(s, shared)
        } else {
            let seen = &mut self.seen;
            self.codes
                .get(code, || Some(seen.get(s, shared)))
                .expect("always interned")
        }
    }

    /// [`Symbols::get`] of a group id; `None` for an empty one (an empty dictionary entry:
    /// its text is read only when the code is not remembered, as empty entries are not).
    #[inline]
    fn get_id(&mut self, id: &GroupId, code: Code, shared: &SharedInterner) -> Option<Sym> {
        let seen = &mut self.seen;
        let mut intern = || {
            let s = id.text();
            (!s.is_empty()).then(|| seen.get(s, shared))
        };
        if code.is_none() {
            intern()
        } else {
            self.codes.get(code, intern)
        }
    }
}

/// What a reader thread keeps from one file's [`Batch`] to the next: the shared ids of the
/// event names and group ids it has met (most files repeat most of them).
#[derive(Default)]
pub struct ReaderCache {
    names: SeenSyms,
    groups: SeenSyms,
    /// The buffers a day held by one file alone is built in (see [`Batch::start_file`]).
    build: Option<Box<DayBuild>>,
}

/// Symbols already worked out for the dictionary entries ([`Code`]s) of one file: a row
/// whose name or group id comes from a dictionary costs an array lookup, not a hash and a
/// compare. Slots by dictionary number; a file's dictionaries are numbered in order, so
/// the few a row group uses at once have slots of their own.
#[derive(Clone, Default)]
struct CodeMemo {
    slots: [(u32, Vec<Sym>); 8],
}

impl CodeMemo {
    const UNSET: Sym = Sym::MAX;

    /// The symbols of dictionary `dict`, emptied, for [`Symbols::prime`] to fill.
    fn slot(&mut self, dict: u32) -> &mut Vec<Sym> {
        let (d, syms) = &mut self.slots[dict as usize % 8];
        *d = dict;
        syms.clear();
        syms
    }

    /// The symbol of `code` (not `Code::NONE`), from `intern` the first time; `None` (not
    /// remembered) when `intern` gives none.
    #[inline]
    fn get(&mut self, code: Code, intern: impl FnOnce() -> Option<Sym>) -> Option<Sym> {
        let (dict, syms) = &mut self.slots[code.dict as usize % 8];
        if *dict != code.dict {
            *dict = code.dict;
            syms.clear();
        }
        let e = code.entry as usize;
        if e >= syms.len() {
            syms.resize(e + 1, Self::UNSET);
        }
        if syms[e] == Self::UNSET {
            syms[e] = intern()?;
        }
        Some(syms[e])
    }
}

/// What the per-day step needs to know of the job. Event names are numbered as the
/// readers met them (days can be processed while other files are still read); names
/// beyond the tables' ends had not been met when the rules were made, and are neither
/// excluded nor funnel steps.
#[derive(Clone)]
struct Rules {
    /// Names numbered below this were in the run's name table when the rules were made:
    /// for those, `excluded` and `funnel_step` are final.
    known: usize,
    nkeys: usize,
    effective: Vec<(Option<i64>, Clock)>,
    /// By event symbol: whether the name is in `exclude_events`.
    excluded: Vec<bool>,
    /// By `event * keys + key`: whether a funnel of that key has that event as a step.
    funnel_step: Vec<bool>,
    /// Largest day processed in one decoding pass (see [`process_day`]).
    one_pass_bytes: usize,
}

impl Rules {
    #[inline]
    fn excluded(&self, event: Sym) -> bool {
        self.excluded.get(event as usize).copied().unwrap_or(false)
    }

    #[inline]
    fn funnel_step(&self, event: Sym, key: u16) -> bool {
        let i = event as usize * self.nkeys + key as usize;
        self.funnel_step.get(i).copied().unwrap_or(false)
    }
}

/// Final ids of the event names and group ids the readers numbered as they met them:
/// byte order, so that results never depend on thread timing.
struct Canon {
    events: Vec<Sym>,
    groups: Vec<Sym>,
    /// Group keys of the job.
    keys: usize,
}

impl Canon {
    /// Gives one day's aggregates their final numbers, and puts its rows back in (key,
    /// group, event) order, as the tables expect them nearly (their sorts are then cheap).
    /// `slots` is room [`Canon::dense_order`] reuses.
    fn renumber(&self, parts: &mut DayParts, slots: &mut Vec<u32>) {
        for r in &mut parts.daily {
            r.group = self.groups[r.group as usize];
        }
        let daily = &parts.daily;
        match self.dense_order(daily.iter().map(|r| (r.key, r.group)), daily.len(), slots) {
            Some(order) => parts.daily = order.iter().map(|&i| daily[i as usize]).collect(),
            None => parts
                .daily
                .sort_unstable_by_key(|r| ((r.key as u64) << 32) | r.group as u64),
        }
        for r in &mut parts.event_daily {
            r.group = self.groups[r.group as usize];
            r.event = self.events[r.event as usize];
        }
        let runs_in_order = |runs: &[(u64, u32, u32)]| {
            let pair = |&(g, _, _): &(u64, u32, u32)| ((g >> 32) as u16, g as Sym);
            self.dense_order(runs.iter().map(pair), runs.len(), slots)
        };
        parts.event_daily = by_group_then_event(std::mem::take(&mut parts.event_daily), runs_in_order);
        for h in &mut parts.hits {
            h.group = self.groups[h.group as usize];
            h.event = self.events[h.event as usize];
        }
    }

    /// The order that puts `n` items, each (key, group) of which comes once, in (key,
    /// group) order, by a slot per possible pair: sorting a day's rows took most of the
    /// renumbering. `None` when the slots would outnumber the items many times over, or a
    /// pair comes twice: the caller sorts.
    fn dense_order(&self, pairs: impl Iterator<Item = (u16, Sym)>, n: usize, slots: &mut Vec<u32>) -> Option<Vec<u32>> {
        let groups = self.groups.len();
        let size = self.keys * groups;
        if size > n * 4 + 4096 || n >= u32::MAX as usize {
            return None;
        }
        clear_with_room(slots, size);
        slots.resize(size, u32::MAX);
        for (i, (k, g)) in pairs.enumerate() {
            let slot = slots.get_mut(k as usize * groups + g as usize)?;
            if *slot != u32::MAX {
                return None;
            }
            *slot = i as u32;
        }
        Some(slots.iter().copied().filter(|&s| s != u32::MAX).collect())
    }
}

/// `rows`, each (key, group)'s rows together (as the day's aggregation leaves them), put in
/// (key, group, event) order: the runs are put in order by their first row and each run
/// by event, where sorting every row took a comparison of 128-bit keys per row and level
/// (a day holds ~4 rows a group). `in_order` gives the order of the runs, (key << 32 |
/// group, start, length), where it can without sorting them.
fn by_group_then_event(
    mut rows: Vec<GroupEventDay>,
    in_order: impl FnOnce(&[(u64, u32, u32)]) -> Option<Vec<u32>>,
) -> Vec<GroupEventDay> {
    let group_of = |r: &GroupEventDay| ((r.key as u64) << 32) | r.group as u64;
    let mut runs: Vec<(u64, u32, u32)> = Vec::new();
    let mut start = 0;
    for run in rows.chunk_by_mut(|a, b| group_of(a) == group_of(b)) {
        run.sort_unstable_by_key(|r| r.event);
        runs.push((group_of(&run[0]), start, run.len() as u32));
        start += run.len() as u32;
    }
    if runs.is_sorted_by_key(|r| r.0) {
        return rows;
    }
    match in_order(&runs) {
        Some(order) => runs = order.iter().map(|&i| runs[i as usize]).collect(),
        None => {
            runs.sort_unstable_by_key(|r| r.0);
            if runs.windows(2).any(|w| w[0].0 == w[1].0) {
                // A group in two runs: not as the aggregation leaves days; sorted row by row.
                rows.sort_unstable_by_key(|r| (group_of(r), r.event));
                return rows;
            }
        }
    }
    let mut out = Vec::with_capacity(rows.len());
    for (_, start, len) in runs {
        out.extend_from_slice(&rows[start as usize..(start + len) as usize]);
    }
    out
}

/// An input file's days ruled out before its turn came: its footer claimed none of them.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{path}` holds events of {date}, a date the statistics of its `time` column rule out: \
     the file's Parquet statistics are wrong (rewrite it with a current writer)"
)]
pub struct StatisticsError {
    pub path: String,
    pub date: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AttributeError {
    #[error(transparent)]
    Spill(#[from] SpillError),
    #[error(transparent)]
    Statistics(#[from] StatisticsError),
}

/// Which days are complete before the whole input is read: a day is, once every file
/// that may hold it has been pushed. Those days are processed while later files are read,
/// so their events never wait for the rest of the input (or spill to disk meanwhile).
struct Closing {
    /// By input file, in input order: the days its events fall on (`None`: any).
    spans: Vec<Option<(Day, Day)>>,
    paths: Vec<String>,
    /// Files pushed so far.
    pushed: usize,
    /// By day met so far: the index of the last file that may hold it. A day is handed to
    /// processing as soon as that file has been pushed.
    last: FxHashMap<Day, usize>,
    /// The days one file alone may hold (see [`OwnDayOf`]).
    own: FxHashSet<Day>,
}

impl Closing {
    /// Whether `day` has been handed to processing.
    fn is_closed(&self, day: Day) -> bool {
        self.last.get(&day).is_some_and(|&last| last < self.pushed)
    }

    fn last_file(&mut self, day: Day) -> usize {
        let spans = &self.spans;
        *self.last.entry(day).or_insert_with(|| {
            spans
                .iter()
                .rposition(|s| s.is_none_or(|(a, b)| a <= day && day <= b))
                // No file claims the day (a file's statistics were wrong): complete now, and
                // a later file holding it fails the run.
                .unwrap_or(0)
        })
    }
}

/// The days that exactly one of `spans` may hold and that it alone holds (a one-day span).
fn own_days(spans: &[Option<(Day, Day)>]) -> FxHashSet<Day> {
    // A file whose footer told nothing may hold any day.
    if spans.iter().any(Option::is_none) {
        return FxHashSet::default();
    }
    let mut single: Vec<Day> = spans
        .iter()
        .flatten()
        .filter(|(a, b)| a == b)
        .map(|(a, _)| *a)
        .collect();
    single.sort_unstable();
    single.dedup();
    // How many spans cover each candidate: +1 where a span's candidates start, -1 past them.
    let mut diff = vec![0i64; single.len() + 1];
    for &(a, b) in spans.iter().flatten() {
        let (from, to) = (single.partition_point(|&d| d < a), single.partition_point(|&d| d <= b));
        diff[from] += 1;
        diff[to] -= 1;
    }
    let mut covering = 0;
    let mut own = FxHashSet::default();
    for (i, &d) in single.iter().enumerate() {
        covering += diff[i];
        if covering == 1 {
            own.insert(d);
        }
    }
    own
}

/// An input file as [`Attributor::expect_files`] is told of it: what its footer says.
#[derive(Debug, Clone)]
pub struct ExpectedFile {
    pub path: String,
    /// The span of its event times (UTC microseconds), where its statistics tell.
    pub span: Option<(i64, i64)>,
    /// Its number of rows, where its footer tells.
    pub rows: Option<u64>,
}

/// Days being processed on the thread pool, and the results of those done.
struct DayWork {
    tx: std::sync::mpsc::Sender<DayDone>,
    rx: std::sync::mpsc::Receiver<DayDone>,
    /// Per-day buffers, one per day in progress at most.
    scratch: Arc<std::sync::Mutex<Vec<Scratch>>>,
    /// Where processed days' chunks go, for the readers to fill again.
    pool: Arc<ChunkPool>,
    running: usize,
    /// Encoded bytes of the days in progress.
    running_bytes: usize,
    done: Vec<(Day, DayParts)>,
    stats: AttributionStats,
}

type DayDone = (
    Day,
    usize,
    std::thread::Result<Result<(DayParts, AttributionStats), SpillError>>,
);

impl DayWork {
    fn new(pool_bytes: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::channel();
        DayWork {
            tx,
            rx,
            scratch: Arc::default(),
            pool: Arc::new(ChunkPool::new(pool_bytes)),
            running: 0,
            running_bytes: 0,
            done: Vec::new(),
            stats: AttributionStats::default(),
        }
    }

    /// Processes `bucket` (day `day`, `bytes` of it in memory) on the thread pool.
    fn start(&mut self, day: Day, bucket: buckets::Bucket, bytes: usize, rules: Arc<Rules>) {
        let (tx, scratches, chunks) = (self.tx.clone(), self.scratch.clone(), self.pool.clone());
        self.running += 1;
        self.running_bytes += bytes;
        rayon::spawn(move || {
            let lock = || scratches.lock().unwrap_or_else(|p| p.into_inner());
            let mut scratch = lock().pop().unwrap_or_default();
            // A panic goes to the waiting thread (rayon would abort the process).
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                bucket.load().map(|b| {
                    let r = process_day(&b, day, &rules, &mut scratch);
                    chunks.give(b);
                    r
                })
            }));
            lock().push(scratch);
            let _ = tx.send((day, bytes, r));
        });
    }

    /// Waits for one day in progress.
    fn wait_one(&mut self) -> Result<(), SpillError> {
        let (day, bytes, r) = self.rx.recv().expect("a day is in progress");
        self.running -= 1;
        self.running_bytes -= bytes;
        let (parts, stats) = r.unwrap_or_else(|p| std::panic::resume_unwind(p))?;
        self.stats += stats;
        self.done.push((day, parts));
        Ok(())
    }

    fn wait_all(&mut self) -> Result<(), SpillError> {
        while self.running > 0 {
            self.wait_one()?;
        }
        Ok(())
    }
}

/// What the job says of attribution, for [`Rules`] to be made of at any time.
struct RuleSource {
    job_keys: Vec<String>,
    effective: Vec<(Option<i64>, Clock)>,
    exclude: Vec<String>,
    funnels: Vec<(String, Vec<String>)>,
}

impl RuleSource {
    /// The rules, for the event names numbered so far in `events`.
    fn rules(&self, events: &SharedInterner, one_pass_bytes: usize) -> Rules {
        // Read before the lookups: a name numbered below it is found by them.
        let known = events.len();
        let nkeys = self.job_keys.len();
        let mut excluded = Vec::new();
        for n in &self.exclude {
            if let Some(s) = events.get(n) {
                let s = s as usize;
                excluded.resize(excluded.len().max(s + 1), false);
                excluded[s] = true;
            }
        }
        let mut funnel_step = Vec::new();
        for (key, steps) in &self.funnels {
            let Some(k) = self.job_keys.iter().position(|j| j == key) else {
                continue;
            };
            for step in steps {
                if let Some(s) = events.get(step) {
                    let i = s as usize * nkeys + k;
                    funnel_step.resize(funnel_step.len().max(i + 1), false);
                    funnel_step[i] = true;
                }
            }
        }
        Rules {
            known,
            nkeys,
            effective: self.effective.clone(),
            excluded,
            funnel_step,
            one_pass_bytes,
        }
    }
}

/// Streaming dedup over canonical events; [`Attributor::finish`] attributes them.
pub struct Attributor {
    source: Arc<RuleSource>,
    own_days: Arc<FxHashMap<String, OwnDayOf>>,
    mapper: DayMapper,
    strings: Arc<Strings>,
    ids: IdHasher,
    buckets: Buckets,
    stats: AttributionStats,
    closing: Option<Closing>,
    work: DayWork,
}

impl Attributor {
    pub fn new(job: &Job, spill: SpillOptions) -> Self {
        Attributor {
            source: Arc::new(RuleSource {
                job_keys: job.group_keys.iter().map(|k| k.key.clone()).collect(),
                effective: job.group_keys.iter().map(|k| (k.effective_from_us, k.clock)).collect(),
                exclude: job.exclude_events.clone(),
                funnels: job
                    .funnels
                    .iter()
                    .map(|f| (f.group_key.clone(), f.steps.clone()))
                    .collect(),
            }),
            own_days: Arc::default(),
            mapper: DayMapper::new(job.timezone),
            strings: Arc::default(),
            ids: IdHasher::new(),
            // Chunks a quarter of the budget: enough for the days in progress.
            work: DayWork::new(spill.memory_budget / 4),
            buckets: Buckets::new(spill),
            stats: AttributionStats::default(),
            closing: None,
        }
    }

    /// Announces the input files, in the order their batches will be pushed (one batch a
    /// file), with what each one's footer tells. A day is then processed as soon as the
    /// last file that may hold it is pushed, and a day one file alone may hold, as that
    /// file is read (see [`Batch::start_file`]). Only for inputs whose events all dedup by
    /// (name, user, time): a day is complete only if no id bucket can still deliver to it.
    pub fn expect_files(&mut self, files: Vec<ExpectedFile>) {
        let mut mapper = self.mapper.clone();
        let spans: Vec<Option<(Day, Day)>> = files
            .iter()
            .map(|f| f.span.map(|(lo, hi)| (mapper.day(lo), mapper.day(hi))))
            .collect();
        // Each reading thread builds one such day at a time, ~90 bytes an event, and such
        // days never enter the buckets: together, as encoded events of ~36 bytes, they hold
        // no more than the budget, and one no more than a day done in one pass.
        let threads = rayon::current_num_threads().max(1);
        let bytes = (self.buckets.memory_budget() / threads).min(self.one_pass_bytes());
        let max_rows = (bytes / 36) as u64;
        let own = own_days(&spans);
        let own_days: FxHashMap<String, OwnDayOf> = files
            .iter()
            .zip(&spans)
            .filter_map(|(f, span)| match (*span, f.rows) {
                (Some((day, _)), Some(rows)) if own.contains(&day) && rows <= max_rows => {
                    Some((f.path.clone(), OwnDayOf { day, rows }))
                }
                _ => None,
            })
            .collect();
        tracing::debug!(
            files = spans.len(),
            with_time_span = spans.iter().filter(|s| s.is_some()).count(),
            built_as_read = own_days.len(),
            "days are processed as their last file is read"
        );
        self.closing = Some(Closing {
            spans,
            paths: files.into_iter().map(|f| f.path).collect(),
            pushed: 0,
            last: FxHashMap::default(),
            own: own_days.values().map(|o| o.day).collect(),
        });
        self.own_days = Arc::new(own_days);
    }

    /// An empty [`Batch`], to be filled on a worker thread.
    pub fn batch(&self) -> Batch {
        Batch {
            ids: self.ids.clone(),
            mapper: self.mapper.clone(),
            strings: self.strings.clone(),
            pool: self.work.pool.clone(),
            names: Symbols::default(),
            groups: Symbols::default(),
            members: Vec::new(),
            out: Vec::new(),
            slots: FxHashMap::default(),
            last: None,
            events: 0,
            rule_source: self.source.clone(),
            own_days: self.own_days.clone(),
            own: None,
            build: None,
            own_done: None,
        }
    }

    /// Adds a batch's events; batches must arrive in input order (dedup ties go to the
    /// later copy). Only appends bytes: the encoding was done by the batch's thread.
    pub fn push_batch(&mut self, mut b: Batch) -> Result<(), AttributeError> {
        self.stats.events += b.events;
        if let Some(c) = &self.closing {
            let file = c.pushed;
            let path = || c.paths.get(file).cloned().unwrap_or_default();
            self.check_open(b.out.iter().map(|(id, _)| *id), path)?;
            // A day another file holds alone: this file's statistics ruled it out.
            let this = c.paths.get(file).and_then(|p| self.own_days.get(p)).map(|o| o.day);
            let foreign = b.out.iter().find_map(|(id, _)| match *id {
                BucketId::Day(d) if c.own.contains(&d) && Some(d) != this => Some(d),
                _ => None,
            });
            if let Some(d) = foreign {
                return Err(StatisticsError {
                    path: path(),
                    date: crate::calendar::format_day(d),
                }
                .into());
            }
        }
        for (id, chunks) in b.out {
            self.buckets.append(id, chunks);
        }
        if let Some(mut c) = self.closing.take() {
            if let Some((day, parts, stats)) = b.own_done.take() {
                // Built as its file was read; complete once that file is pushed.
                c.last.insert(day, c.pushed);
                self.work.stats += stats;
                self.work.done.push((day, parts));
            }
            c.pushed += 1;
            let complete: Vec<Day> = self
                .buckets
                .days()
                .into_iter()
                .filter(|&d| c.last_file(d) < c.pushed)
                .collect();
            if !complete.is_empty() {
                let rules = Arc::new(self.rules());
                for day in complete {
                    let (bucket, bytes) = self.buckets.take_day(day);
                    self.work.start(day, bucket, bytes, rules.clone());
                }
            }
            self.closing = Some(c);
            // Reading waits while the days in progress hold half the budget.
            while self.work.running_bytes > self.buckets.memory_budget() / 2 {
                self.work.wait_one()?;
            }
        }
        Ok(self.buckets.maybe_spill()?)
    }

    /// Fails when one of `ids` is a day already processed.
    fn check_open(
        &self,
        mut ids: impl Iterator<Item = BucketId>,
        path: impl Fn() -> String,
    ) -> Result<(), StatisticsError> {
        let Some(c) = &self.closing else { return Ok(()) };
        match ids.find(|id| matches!(id, BucketId::Day(d) if c.is_closed(*d))) {
            Some(BucketId::Day(d)) => Err(StatisticsError {
                path: path(),
                date: crate::calendar::format_day(d),
            }),
            _ => Ok(()),
        }
    }

    /// The rules, for the event names met so far.
    fn rules(&self) -> Rules {
        self.source.rules(&self.strings.events, self.one_pass_bytes())
    }

    /// The largest day bucket done in one decoding pass (see [`process_day`]).
    fn one_pass_bytes(&self) -> usize {
        (self.buckets.memory_budget() / 8).min(ONE_PASS_BYTES)
    }

    /// Deduplicates, applies `exclude_events` and effective dates, and reduces every day
    /// to the aggregates the tables need.
    pub fn finish(mut self) -> Result<(Activity, AttributionStats), AttributeError> {
        // Step 2: id buckets → day buckets, a few at a time so that their survivors are
        // appended (and spilled when over budget) before the next ones are loaded.
        let mut id_buckets = self.buckets.take_ids();
        let width = rayon::current_num_threads().max(1);
        while !id_buckets.is_empty() {
            let rest = id_buckets.split_off(width.min(id_buckets.len()));
            let mapper = &self.mapper;
            let moved: Vec<Result<Survivors, SpillError>> = id_buckets
                .into_par_iter()
                .map(|bucket| Ok(dedup_by_id(&bucket.load()?, ID_BASE_US, mapper.clone())))
                .collect();
            for r in moved {
                let (days, duplicates) = r?;
                self.stats.duplicates += duplicates;
                self.check_open(days.iter().map(|(d, _)| BucketId::Day(*d)), || {
                    "an id-keyed input".into()
                })?;
                for (day, bytes) in days {
                    self.buckets.append(BucketId::Day(day), [bytes]);
                }
                self.buckets.maybe_spill()?;
            }
            id_buckets = rest;
        }

        // Step 3: every day not processed yet, on its own.
        self.buckets.spill_rest()?;
        let rules = Arc::new(self.rules());
        for (day, bucket) in self.buckets.take_days() {
            self.work.start(day, bucket, 0, rules.clone());
        }
        self.work.wait_all()?;
        self.stats += self.work.stats;
        self.stats.spilled_bytes = self.buckets.spilled;
        drop(self.buckets.into_dir());

        let (events, events_canon) = self.strings.events.sorted();
        let (groups, groups_canon) = self.strings.groups.sorted();
        let canon = Canon {
            events: events_canon,
            groups: groups_canon,
            keys: self.source.job_keys.len(),
        };
        let mut done = std::mem::take(&mut self.work.done);
        done.par_iter_mut()
            .for_each_init(Vec::new, |slots, (_, p)| canon.renumber(p, slots));
        done.sort_unstable_by_key(|(d, _)| *d);
        let parts = done.into_iter().map(|(_, p)| p).collect();
        let job_keys = self.source.job_keys.clone();
        let activity = Activity::from_days(job_keys, groups, events, parts);
        Ok((activity, self.stats))
    }
}

/// An id bucket's survivors, encoded per day, and the number of duplicates dropped.
type Survivors = (Vec<(Day, Vec<u8>)>, u64);

/// Times in id buckets are stored relative to this (no day to anchor them).
const ID_BASE_US: i64 = 0;

/// Times in a bucket are stored relative to its base: its day's UTC midnight.
fn base_us(id: BucketId) -> i64 {
    match id {
        BucketId::Day(d) => day_base_us(d),
        BucketId::Id(_) => ID_BASE_US,
    }
}

fn day_base_us(day: Day) -> i64 {
    day as i64 * US_PER_DAY
}

/// Whether copy `new` replaces the kept copy `old` of the same event: the latest ingested
/// wins, a copy without ingest time is the oldest, and on a tie the later copy in input
/// order (`new`, as buckets are in input order) wins.
fn replaces(new: Option<i64>, old: Option<i64>) -> bool {
    new >= old
}

/// Adds `e` to `kept` unless an earlier copy with the same key is there, in which case the
/// copy [`replaces`] picks stays. Returns 1 for a duplicate, else 0.
fn keep<K: std::hash::Hash + Eq>(
    index: &mut FxHashMap<K, u32>,
    kept: &mut Vec<codec::Event>,
    key: K,
    e: codec::Event,
) -> u64 {
    match index.entry(key) {
        std::collections::hash_map::Entry::Occupied(o) => {
            let old = &mut kept[*o.get() as usize];
            if replaces(e.ingest_us, old.ingest_us) {
                *old = e;
            }
            1
        }
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert(kept.len() as u32);
            kept.push(e);
            0
        }
    }
}

/// Deduplicates one id bucket; the survivors, re-encoded by day without their key.
fn dedup_by_id(bytes: &[Vec<u8>], base: i64, mut mapper: DayMapper) -> Survivors {
    let mut dec = Decoder::new(bytes, base);
    let mut groups = Vec::new();
    let mut kept: Vec<codec::Event> = Vec::new();
    let mut index: FxHashMap<u128, u32> = FxHashMap::default();
    let mut duplicates = 0;
    while let Some(e) = dec.next(&mut groups) {
        let Dedup::Id(h) = e.dedup else {
            unreachable!("id buckets hold id-keyed events")
        };
        duplicates += keep(&mut index, &mut kept, h, e);
    }
    drop(index);
    let mut out: Vec<(Day, Vec<u8>)> = Vec::new();
    for e in &kept {
        let day = mapper.day(e.time_us);
        let slot = match out.iter().position(|(d, _)| *d == day) {
            Some(i) => i,
            None => {
                out.push((day, Vec::new()));
                out.len() - 1
            }
        };
        codec::encode(
            &mut out[slot].1,
            day_base_us(day),
            e.name,
            e.user,
            e.time_us,
            e.ingest_us,
            Dedup::Unique,
            groups[e.groups.start as usize..e.groups.end as usize].iter().copied(),
        );
    }
    (out, duplicates)
}

/// What dedup needs of a copy of an event that dedups by (name, user, time[, insert id]):
/// its key, its ingest time and its place in the bucket.
#[derive(Debug, Clone, Copy)]
struct Keyed {
    user: UserKey,
    time_us: i64,
    /// The insert-id hash, meaningful when `flags & INSERT`.
    insert: u64,
    /// Meaningful when `flags & INGEST`.
    ingest_us: i64,
    name: Sym,
    /// Its index among the bucket's events.
    ordinal: u32,
    flags: u8,
}

const INSERT: u8 = 1;
const INGEST: u8 = 2;

impl Keyed {
    fn ingest(&self) -> Option<i64> {
        (self.flags & INGEST != 0).then_some(self.ingest_us)
    }

    fn key(&self) -> (Sym, UserKey, i64, Option<u64>) {
        (
            self.name,
            self.user,
            self.time_us,
            (self.flags & INSERT != 0).then_some(self.insert),
        )
    }

    fn key_hash(&self) -> u64 {
        rustc_hash::FxBuildHasher.hash_one(self.key())
    }

    /// The hash a partition's table files the copy under: the key's hash with its halves
    /// swapped. The top bits chose the partition, so within one they are all the same;
    /// the table takes its 7-bit tag from the top bits, and with those fixed most slots of
    /// every probe matched the tag and had their keys compared.
    fn table_hash(&self) -> u64 {
        self.key_hash().rotate_left(32)
    }

    /// The partition of [`DEDUP_PARTS`] the copy goes to.
    fn part(&self) -> usize {
        (self.key_hash() >> 58) as usize % DEDUP_PARTS
    }
}

/// Dedup partitions of a day: copies of one event share one, and each is small enough
/// for its hash table to stay in cache (a day of 1M events is 62k copies a partition). No
/// more: a copy is appended to its partition as it comes, and 64 partitions were more
/// write streams than the hardware prefetches (10 days of the 100M workload: 64 → 16
/// partitions, wall time −6%; 8 were no faster than 16).
const DEDUP_PARTS: usize = 16;

/// Marks in `alive` (one bit per copy, all set) the copies that lose dedup: for each
/// (name, user, time[, insert id]), every copy but the one [`replaces`] picks; and adds
/// them to `dead` (ordinal, name). Names are compared as the readers numbered them: final
/// numbering is a bijection, so it changes nothing. Returns the number of copies dropped.
fn dedup_copies(
    parts: &[Vec<Keyed>],
    alive: &mut [u64],
    index: &mut hashbrown::HashTable<u32>,
    dead: &mut Vec<(u32, Sym)>,
) -> u64 {
    let mut duplicates = 0;
    let mut kill = |c: &Keyed| {
        alive[c.ordinal as usize / 64] &= !(1 << (c.ordinal % 64));
        dead.push((c.ordinal, c.name));
    };
    for part in parts {
        index.clear();
        index.reserve(part.len(), |_| unreachable!("reserved while empty"));
        // Copies are in bucket order within a partition: a later copy meets the kept one.
        for (i, c) in part.iter().enumerate() {
            let h = c.table_hash();
            let key = c.key();
            match index.find_mut(h, |&k| part[k as usize].key() == key) {
                Some(k) => {
                    duplicates += 1;
                    let old = &part[*k as usize];
                    if replaces(c.ingest(), old.ingest()) {
                        kill(old);
                        *k = i as u32;
                    } else {
                        kill(c);
                    }
                }
                None => {
                    index.insert_unique(h, i as u32, |&k| part[k as usize].table_hash());
                }
            }
        }
    }
    duplicates
}

/// Buffers the per-day step reuses from day to day (see [`DayScratch`]).
#[derive(Default)]
struct Scratch {
    build: DayBuild,
    groups: Vec<(u16, Sym)>,
}

/// One day's copies, deduplicated, attributed and aggregated as they come: each copy's
/// dedup key is set aside and (in one pass) its hits are made at once, then the copies that
/// lose dedup (about 1% in Mixpanel exports) have their hits cut out. Fed by [`process_day`]
/// from a day bucket, or by a [`Batch`] from the rows of the one file holding the day.
#[derive(Clone, Default)]
struct DayBuild {
    parts: Vec<Vec<Keyed>>,
    alive: Vec<u64>,
    index: hashbrown::HashTable<u32>,
    hits: Vec<DayHit>,
    /// By copy: where its hits start in `hits` (one more entry at the end; one pass only).
    hit_starts: Vec<u32>,
    /// Hits of copies that lost dedup, marked [`DayHit::DEAD`] where they lie (one pass).
    dead_hits: usize,
    /// The largest group among `hits`.
    max_group: Sym,
    funnel_hits: Vec<Hit>,
    /// By funnel hit: the copy it came from.
    funnel_copies: Vec<u32>,
    /// The copies that lose dedup, and their names.
    dead: Vec<(u32, Sym)>,
    day: DayScratch,
    /// Copies added so far.
    n: u32,
    /// Whether [`DayBuild::add`] makes hits too (else a second pass does, see
    /// [`process_day`]).
    one_pass: bool,
    stats: AttributionStats,
}

impl DayBuild {
    /// Empties the buffers for a day of about `estimate` copies.
    fn begin(&mut self, estimate: usize, one_pass: bool) {
        self.parts.resize_with(DEDUP_PARTS, Vec::new);
        for p in self.parts.iter_mut() {
            // Copies spread evenly: a sixteenth over a fair share (eight standard deviations
            // at a million copies) keeps a partition from growing, and copying, as it fills.
            clear_with_room(p, estimate / DEDUP_PARTS * 17 / 16 + 64);
        }
        self.hit_starts.clear();
        self.dead_hits = 0;
        self.max_group = 0;
        self.funnel_copies.clear();
        self.funnel_hits = Vec::new();
        self.hits.clear();
        if one_pass {
            clear_with_room(&mut self.hits, estimate * 3 / 2);
        }
        self.n = 0;
        self.one_pass = one_pass;
        self.stats = AttributionStats::default();
    }

    /// Adds the day's next copy (memberships `groups`), in input order.
    #[inline]
    fn add(&mut self, e: &codec::Event, groups: &[(u16, Sym)], day: Day, rules: &Rules) {
        let ordinal = self.n;
        self.n = self.n.checked_add(1).expect("fewer than 2^32 events a day");
        match e.dedup {
            Dedup::NameUserTime(insert) => {
                let c = Keyed {
                    user: e.user,
                    time_us: e.time_us,
                    insert: insert.unwrap_or(0),
                    ingest_us: e.ingest_us.unwrap_or(0),
                    name: e.name,
                    ordinal,
                    flags: if insert.is_some() { INSERT } else { 0 } | if e.ingest_us.is_some() { INGEST } else { 0 },
                };
                self.parts[c.part()].push(c);
            }
            Dedup::Unique => {}
            Dedup::Id(_) => unreachable!("id-keyed events are deduplicated before their day"),
        }
        if self.one_pass {
            self.hit_starts.push(self.hits.len() as u32);
            self.hit(e, groups, ordinal, day, rules);
        }
    }

    /// Marks the copies that lose dedup (see [`DayBuild::live`]); with two passes, the keys
    /// are dropped before the hits are made.
    fn dedup(&mut self) {
        let n = self.n as usize;
        if self.one_pass {
            self.hit_starts.push(self.hits.len() as u32);
        }
        clear_with_room(&mut self.alive, n.div_ceil(64));
        self.alive.resize(n.div_ceil(64), u64::MAX);
        self.dead.clear();
        self.stats.duplicates = dedup_copies(&self.parts, &mut self.alive, &mut self.index, &mut self.dead);
        if !self.one_pass {
            // Keys are done with before the second pass makes the hits.
            self.parts = Vec::new();
            clear_with_room(&mut self.hits, n * 3 / 2);
        }
    }

    #[inline]
    fn live(&self, ordinal: usize) -> bool {
        is_live(&self.alive, ordinal)
    }

    /// The day's aggregates and counts, once every copy is in and [`DayBuild::dedup`] ran
    /// (and, for two passes, the survivors' hits were made).
    fn finish(&mut self, day: Day, rules: &Rules) -> (DayParts, AttributionStats) {
        if self.one_pass && self.stats.duplicates > 0 {
            self.cut_dead(rules);
        }
        let live = self.hits.len() - self.dead_hits;
        self.stats.hits = live as u64;
        let funnel_hits = std::mem::take(&mut self.funnel_hits);
        let bounds = HitBounds {
            keys: rules.effective.len(),
            groups: self.max_group as usize + 1,
            live,
        };
        let parts = DayParts::of_day_within(day, &mut self.hits, Some(bounds), funnel_hits, &mut self.day);
        if self.hits.capacity() * size_of::<DayHit>() > RETAIN_BYTES {
            self.hits = Vec::new();
        }
        (parts, self.stats)
    }

    /// Lets go of the dedup buffers of a large day, as [`DayParts::of_day_in`] does of its own:
    /// a reading thread keeps its `DayBuild` from file to file.
    fn shrink(&mut self) {
        let keys: usize = self.parts.iter().map(Vec::capacity).sum();
        if keys * size_of::<Keyed>() > RETAIN_BYTES {
            self.parts = Vec::new();
            self.index = hashbrown::HashTable::new();
            self.hit_starts = Vec::new();
            self.alive = Vec::new();
        }
    }

    /// Marks the hits of the copies that lost dedup dead where they lie (one pass): they
    /// were excluded (by name) or attributed like any other copy as they came. Moving the
    /// live hits down over them cost a pass over the day's hits (tens of megabytes) for the
    /// ~1% of copies that are duplicates.
    fn cut_dead(&mut self, rules: &Rules) {
        for &(ordinal, name) in &self.dead {
            let i = ordinal as usize;
            let (start, end) = (self.hit_starts[i] as usize, self.hit_starts[i + 1] as usize);
            if rules.excluded(name) {
                self.stats.excluded -= 1;
            } else if end > start {
                self.stats.attributed -= 1;
            }
            for h in &mut self.hits[start..end] {
                h.key_group = DayHit::DEAD;
            }
            self.dead_hits += end - start;
        }
        let alive = &self.alive;
        let mut copies = self.funnel_copies.iter();
        self.funnel_hits
            .retain(|_| is_live(alive, *copies.next().expect("one copy per funnel hit") as usize));
    }

    /// Applies `exclude_events` and the effective dates to copy `ordinal` (memberships
    /// `groups`) and adds its hits.
    #[inline]
    fn hit(&mut self, e: &codec::Event, groups: &[(u16, Sym)], ordinal: u32, day: Day, rules: &Rules) {
        let name = e.name;
        if rules.excluded(name) {
            self.stats.excluded += 1;
            return;
        }
        let before = self.hits.len();
        for &(k, group) in groups {
            let (from, clock) = rules.effective[k as usize];
            let clock_us = match clock {
                Clock::Event => e.time_us,
                Clock::Ingest => e.ingest_us.unwrap_or(e.time_us),
            };
            if from.is_some_and(|f| clock_us < f) {
                continue;
            }
            self.hits.push(DayHit::new(k, group, name, e.user));
            self.max_group = self.max_group.max(group);
            if rules.funnel_step(name, k) {
                self.funnel_copies.push(ordinal);
                self.funnel_hits.push(Hit {
                    key: k,
                    group,
                    time_us: e.time_us,
                    event: name,
                    user: e.user,
                    day,
                });
            }
        }
        if self.hits.len() > before {
            self.stats.attributed += 1;
        }
    }
}

/// Whether copy `ordinal` survived dedup, by the bits [`dedup_copies`] left.
#[inline]
fn is_live(alive: &[u64], ordinal: usize) -> bool {
    alive[ordinal / 64] & (1 << (ordinal % 64)) != 0
}

/// Deduplicates, attributes and aggregates one day bucket. A day of up to
/// `rules.one_pass_bytes` is decoded once (see [`DayBuild`]). A larger day is decoded
/// twice, dedup keys first and then the surviving copies' hits, so that its keys and its
/// hits are never held at once: a day costs ~50 bytes a copy while deduplicating and 24
/// bytes a hit after.
fn process_day(bytes: &[Vec<u8>], day: Day, rules: &Rules, scratch: &mut Scratch) -> (DayParts, AttributionStats) {
    let size: usize = bytes.iter().map(Vec::len).sum();
    let Scratch { build, groups } = scratch;
    // Encoded events are ~36-45 bytes.
    build.begin(size / 36, size <= rules.one_pass_bytes);
    groups.clear();
    let mut dec = Decoder::new(bytes, day_base_us(day));
    while let Some(e) = dec.next(groups) {
        build.add(&e, groups, day, rules);
        groups.clear();
    }
    build.dedup();
    if !build.one_pass {
        let mut dec = Decoder::new(bytes, day_base_us(day));
        let mut ordinal = 0;
        while let Some(e) = dec.next(groups) {
            if build.live(ordinal) {
                build.hit(&e, groups, ordinal as u32, day, rules);
            }
            ordinal += 1;
            groups.clear();
        }
    }
    build.finish(day, rules)
}

/// Days up to this many encoded bytes (~4M events), and an eighth of the memory budget,
/// are processed in one decoding pass.
const ONE_PASS_BYTES: usize = 160 << 20;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::normalize::{DedupKey, DictStrings};
    use crate::tables::GroupDay;

    fn attributor() -> Attributor {
        let text = r#"
version = 1
name = "t"
timezone = "UTC"
exclude_events = ["skip"]
[events]
format = "mixpanel"
paths = ["e/*.parquet"]
[[group_keys]]
key = "company"
[output]
path = "out"
"#;
        let job = Job::parse(std::path::Path::new("t.toml"), text).unwrap();
        Attributor::new(&job, SpillOptions::default())
    }

    fn event(name: &str, day: Day, ingest_us: i64) -> RawEvent {
        RawEvent {
            name: name.into(),
            user: Some("u".into()),
            time_us: day_base_us(day) + 3_600_000_000,
            ingest_us: Some(ingest_us),
            dedup: DedupKey::NameUserTime(Some(format!("{name}-{day}"))),
            groups: vec![(0, "acme".into())],
        }
    }

    fn file(attr: &Attributor, events: &[RawEvent]) -> Batch {
        let mut b = attr.batch();
        for e in events {
            b.push(e.clone());
        }
        b
    }

    fn span(a: Day, b: Day) -> Option<(i64, i64)> {
        Some((day_base_us(a), day_base_us(b) + US_PER_DAY - 1))
    }

    /// Files as a footer without a row count tells of them: no day is built as read.
    fn spans(files: &[(&str, Option<(i64, i64)>)]) -> Vec<ExpectedFile> {
        let file = |&(path, span): &(&str, _)| ExpectedFile {
            path: path.into(),
            span,
            rows: None,
        };
        files.iter().map(file).collect()
    }

    /// A file's batch as the runner makes it: told its path, and ended.
    fn read(attr: &Attributor, path: &str, events: &[RawEvent]) -> Batch {
        let mut b = attr.batch();
        b.start_file(path);
        for e in events {
            b.push(e.clone());
        }
        b.end_file();
        b
    }

    fn closed(attr: &Attributor) -> Vec<Day> {
        let c = attr.closing.as_ref().unwrap();
        let mut days: Vec<Day> = c.last.keys().copied().filter(|&d| c.is_closed(d)).collect();
        days.sort_unstable();
        days
    }

    #[test]
    fn a_day_is_processed_once_the_last_file_that_may_hold_it_is_pushed() {
        let mut attr = attributor();
        attr.expect_files(spans(&[
            ("a", None),
            ("b", span(10, 11)),
            ("c", span(10, 10)),
            ("d", span(12, 13)),
            ("e", span(13, 13)),
        ]));
        // A file whose footer told nothing could hold any day.
        attr.push_batch(file(&attr, &[event("x", 10, 1)])).unwrap();
        assert_eq!(closed(&attr), [] as [Day; 0]);
        attr.push_batch(file(&attr, &[event("x", 11, 1)])).unwrap();
        assert_eq!(closed(&attr), [11]);
        // The later copy of day 10's event wins, in the last file that may hold day 10.
        attr.push_batch(file(&attr, &[event("x", 10, 2)])).unwrap();
        assert_eq!(closed(&attr), [10, 11]);
        attr.push_batch(file(&attr, &[event("skip", 12, 1), event("x", 13, 1)]))
            .unwrap();
        assert_eq!(closed(&attr), [10, 11, 12]);
        attr.push_batch(file(&attr, &[event("x", 13, 2), event("y", 13, 1)]))
            .unwrap();
        assert_eq!(closed(&attr), [10, 11, 12, 13]);
        let (act, stats) = attr.finish().unwrap();
        assert_eq!(
            (stats.events, stats.duplicates, stats.excluded, stats.attributed),
            (7, 2, 1, 4)
        );
        let daily: Vec<(Day, i64)> = act.daily.iter().map(|r| (r.day, r.events)).collect();
        assert_eq!(daily, [(10, 1), (11, 1), (13, 2)]);
        let names: Vec<&str> = act.event_daily[3].iter().map(|r| act.events.resolve(r.event)).collect();
        assert_eq!(names, ["x", "y"], "final numbers, in byte order");
    }

    #[test]
    fn primed_dictionaries_give_the_ids_rows_would_get() {
        let attr = attributor();
        let mut b = attr.batch();
        b.dictionary(DictOf::Names, 0, &["", "x", "y"]);
        b.dictionary(DictOf::GroupIds, 1, &["acme", "beta", ""]);
        let strings = attr.strings.clone();
        let code = |dict, entry| Code { dict, entry };
        for (entry, name) in [(1, "x"), (2, "y")] {
            let id = b.names.get(name, code(0, entry), &strings.events);
            assert_eq!(strings.events.get(name), Some(id), "{name}");
        }
        assert_eq!(strings.events.get(""), None, "an empty entry is not a name");
        assert_eq!(strings.groups.get(""), None, "nor an id");
        let acme = strings.groups.get("acme").unwrap();
        assert_eq!(b.groups.get("acme", code(1, 0), &strings.groups), acme);
        // Dictionary 9 takes dictionary 1's memo slot: 1's rows are then looked up again.
        b.dictionary(DictOf::GroupIds, 9, &["gamma"]);
        assert_eq!(b.groups.get("acme", code(1, 0), &strings.groups), acme);
        let beta = b.groups.get("beta", code(1, 1), &strings.groups);
        assert_eq!(strings.groups.get("beta"), Some(beta));
        assert_eq!(
            b.groups.get("beta", Code::NONE, &strings.groups),
            beta,
            "uncoded, the same"
        );
        // Ids as dictionary entries, their text read only when not remembered: an empty
        // entry is no id, remembered or not.
        let values = arrow_array::StringArray::from(vec![Some("acme"), Some("beta"), Some(""), None]);
        let entry = |e| GroupId::Entry(DictStrings::Utf8(&values), e);
        b.dictionary(DictOf::GroupIds, 1, &["acme", "beta", "", ""]);
        let primed: Vec<_> = (0..4)
            .map(|e| b.groups.get_id(&entry(e), code(1, e), &strings.groups))
            .collect();
        b.dictionary(DictOf::GroupIds, 9, &["gamma"]);
        let looked_up: Vec<_> = (0..4)
            .map(|e| b.groups.get_id(&entry(e), code(1, e), &strings.groups))
            .collect();
        assert_eq!(primed, [Some(acme), Some(beta), None, None]);
        assert_eq!(looked_up, primed);
        let empty = GroupId::Text(Cow::Borrowed(""));
        assert_eq!(b.groups.get_id(&empty, Code::NONE, &strings.groups), None);
        assert_eq!(strings.groups.get(""), None, "never interned");
        // The thread's memory goes on to its next file.
        let mut next = attr.batch();
        next.adopt(b.release());
        assert_eq!(next.groups.seen.len(), 3);
    }

    #[test]
    fn a_file_holding_a_day_its_statistics_ruled_out_fails_the_run() {
        let mut attr = attributor();
        attr.expect_files(spans(&[("a", span(10, 10)), ("b", span(11, 11))]));
        attr.push_batch(file(&attr, &[event("x", 10, 1)])).unwrap();
        let err = attr
            .push_batch(file(&attr, &[event("x", 11, 1), event("x", 10, 2)]))
            .unwrap_err();
        let AttributeError::Statistics(e) = err else {
            panic!("{err}")
        };
        assert_eq!((e.path.as_str(), e.date.as_str()), ("b", "1970-01-11"));
    }

    #[test]
    fn the_days_one_file_alone_may_hold_are_its_own() {
        let own = |s: &[Option<(Day, Day)>]| {
            let mut d: Vec<Day> = own_days(s).into_iter().collect();
            d.sort_unstable();
            d
        };
        assert_eq!(own(&[Some((1, 1)), Some((2, 3)), Some((3, 3)), Some((4, 4))]), [1, 4]);
        assert_eq!(
            own(&[Some((1, 1)), Some((1, 1))]),
            [] as [Day; 0],
            "two files of one day"
        );
        assert_eq!(
            own(&[Some((5, 5)), Some((1, 9))]),
            [] as [Day; 0],
            "a wider span covers it"
        );
        assert_eq!(
            own(&[Some((5, 5)), None]),
            [] as [Day; 0],
            "a file without statistics may hold it"
        );
        assert_eq!(own(&[Some((5, 5)), Some((6, 9)), Some((1, 4))]), [5]);
    }

    /// Days held by one file alone are deduplicated and attributed as the file is read; the
    /// outcome is the one of the day buckets, an excluded name first met mid-file included.
    #[test]
    fn a_day_built_as_its_file_is_read_is_the_day_its_bucket_gives() {
        let x = |day, ingest| event("x", day, ingest);
        // Not a copy of the other `skip`: a microsecond later.
        let mut late_skip = event("skip", 13, 1);
        late_skip.time_us += 1;
        let mut other = event("y", 14, 5);
        other.groups = vec![(0, "beta".into()), (0, "acme".into())];
        type File = (&'static str, Option<(i64, i64)>, Vec<RawEvent>);
        let files: Vec<File> = vec![
            ("a", span(10, 10), vec![x(10, 1), x(10, 3), x(10, 2), event("y", 10, 1)]),
            ("b", span(11, 12), vec![x(11, 1), x(12, 1)]),
            (
                "c",
                span(13, 13),
                vec![x(13, 1), late_skip, event("skip", 13, 2), x(13, 1)],
            ),
            ("d", span(14, 14), vec![other, event("z", 14, 1), event("z", 14, 1)]),
        ];
        let run = |rows: Option<u64>| {
            let mut attr = attributor();
            attr.expect_files(
                files
                    .iter()
                    .map(|(path, span, _)| ExpectedFile {
                        path: path.to_string(),
                        span: *span,
                        rows,
                    })
                    .collect(),
            );
            let built = attr.own_days.len();
            for (path, _, events) in &files {
                attr.push_batch(read(&attr, path, events)).unwrap();
            }
            let (act, stats) = attr.finish().unwrap();
            (built, act, stats)
        };
        let (built, act, stats) = run(Some(4));
        let (none, want, want_stats) = run(None);
        assert_eq!((built, none), (3, 0));
        assert_eq!(stats, want_stats);
        assert_eq!(
            (stats.events, stats.duplicates, stats.excluded, stats.attributed),
            (13, 4, 2, 7)
        );
        assert_eq!(act.daily, want.daily);
        assert_eq!(act.event_daily, want.event_daily);
        let names = |a: &Activity| {
            (0..a.events.len())
                .map(|i| a.events.resolve(i as Sym).to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&act), names(&want));
    }

    #[test]
    fn a_file_holding_the_day_another_file_holds_alone_fails_the_run() {
        let rows = |files: &[(&str, Option<(i64, i64)>)]| {
            let mut f = spans(files);
            f.iter_mut().for_each(|f| f.rows = Some(10));
            f
        };
        let failure = |r: Result<(), AttributeError>| match r {
            Err(AttributeError::Statistics(e)) => (e.path, e.date),
            other => panic!("{other:?}"),
        };
        // Before the other file: the day is not this file's to hold.
        let mut attr = attributor();
        attr.expect_files(rows(&[("a", span(10, 10)), ("b", span(11, 11))]));
        let r = attr.push_batch(read(&attr, "a", &[event("x", 10, 1), event("x", 11, 1)]));
        assert_eq!(failure(r), ("a".into(), "1970-01-12".into()));
        // After it: the day was done.
        let mut attr = attributor();
        attr.expect_files(rows(&[("a", span(10, 10)), ("b", span(11, 11))]));
        attr.push_batch(read(&attr, "a", &[event("x", 10, 1)])).unwrap();
        let r = attr.push_batch(read(&attr, "b", &[event("x", 11, 1), event("x", 10, 2)]));
        assert_eq!(failure(r), ("b".into(), "1970-01-11".into()));
    }

    proptest::proptest! {
        #[test]
        fn rows_by_group_then_event_sort_as_whole_rows_do(
            runs in proptest::collection::vec(
                (0u16..3, 0u32..40, proptest::collection::btree_set(0u32..50, 1..6)), 0..40),
        ) {
            // Each run is one (key, group)'s events in any order; a group may repeat in a
            // later run (the fallback).
            let rows: Vec<GroupEventDay> = runs
                .iter()
                .enumerate()
                .flat_map(|(i, (key, group, events))| {
                    events.iter().rev().map(move |&event| GroupEventDay {
                        key: *key,
                        group: *group,
                        day: 0,
                        event,
                        events: i as i64,
                        users: 1,
                    })
                })
                .collect();
            let mut want = rows.clone();
            want.sort_by_key(|r| (r.key, r.group, r.event, r.events));
            let identity = Canon { events: (0..50).collect(), groups: (0..40).collect(), keys: 3 };
            let mut slots = Vec::new();
            let dense = |runs: &[(u64, u32, u32)]| {
                identity.dense_order(runs.iter().map(|r| ((r.0 >> 32) as u16, r.0 as Sym)), runs.len(), &mut slots)
            };
            for mut got in [by_group_then_event(rows.clone(), |_| None), by_group_then_event(rows.clone(), dense)] {
                proptest::prop_assert!(got.is_sorted_by_key(|r| (r.key, r.group, r.event)));
                // Rows equal in (key, group, event) are in no particular order.
                got.sort_by_key(|r| (r.key, r.group, r.event, r.events));
                proptest::prop_assert_eq!(&got, &want);
            }

            // A day renumbered: final group numbers reverse the readers', rows come out in
            // (key, group[, event]) order of the final numbers.
            let reverse = Canon { events: (0..50).rev().collect(), groups: (0..40).rev().collect(), keys: 3 };
            let mut seen = std::collections::BTreeSet::new();
            let daily: Vec<GroupDay> = runs
                .iter()
                .filter(|(key, group, _)| seen.insert((*key, *group)))
                .map(|&(key, group, ref events)| GroupDay { key, group, day: 0, events: events.len() as i64, users: 1 })
                .collect();
            let mut parts = DayParts { daily: daily.clone(), event_daily: rows.clone(), hits: Vec::new() };
            reverse.renumber(&mut parts, &mut slots);
            let mut want_daily: Vec<GroupDay> =
                daily.iter().map(|r| GroupDay { group: 39 - r.group, ..*r }).collect();
            want_daily.sort_by_key(|r| (r.key, r.group));
            proptest::prop_assert_eq!(&parts.daily, &want_daily);
            let mut want_rows: Vec<GroupEventDay> =
                rows.iter().map(|r| GroupEventDay { group: 39 - r.group, event: 49 - r.event, ..*r }).collect();
            want_rows.sort_by_key(|r| (r.key, r.group, r.event, r.events));
            proptest::prop_assert!(parts.event_daily.is_sorted_by_key(|r| (r.key, r.group, r.event)));
            parts.event_daily.sort_by_key(|r| (r.key, r.group, r.event, r.events));
            proptest::prop_assert_eq!(&parts.event_daily, &want_rows);
        }
    }
}
