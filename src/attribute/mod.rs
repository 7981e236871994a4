//! Dedup and attribution: canonical events in, [`Activity`] out (SPEC §4, §6).
//!
//! Events are interned as they arrive, duplicates collapse onto the latest ingested copy
//! (ties: the later one in input order), and only then are effective dates and
//! `exclude_events` applied: a duplicate must be removed even when its twin is excluded
//! or unattributed, or counts would depend on which copy came first.

use rustc_hash::{FxHashMap, FxHashSet};

use crate::calendar::DayMapper;
use crate::intern::{Interner, Sym, NO_USER};
use crate::job::{Clock, Job};
use crate::normalize::{DedupKey, RawEvent};
use crate::tables::{Activity, Hit};

/// An interned event, as kept between dedup and attribution.
#[derive(Debug, Clone)]
struct Compact {
    name: Sym,
    user: Sym,
    time_us: i64,
    ingest_us: Option<i64>,
    /// Range of this event's memberships in `Attributor::memberships` (one flat vector,
    /// not a `Vec` per event).
    groups: std::ops::Range<usize>,
}

/// Dedup key. Insert ids / message ids are unique per event, so interning them would keep
/// every one as a string; a 128-bit keyed hash (two independent SipHash keys, drawn per
/// run) stands in for the text instead: a false match needs ~2^64 distinct ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    NameUserTime(Sym, Sym, i64, Option<u128>),
    Id(u128),
}

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
}

/// Streaming dedup over canonical events; [`Attributor::finish`] attributes them.
pub struct Attributor {
    keys: Vec<String>,
    effective: Vec<(Option<i64>, Clock)>,
    exclude: FxHashSet<String>,
    mapper: DayMapper,
    events: Interner,
    users: Interner,
    groups: Interner,
    ids: IdHasher,
    kept: Vec<Compact>,
    memberships: Vec<(u16, Sym)>,
    index: FxHashMap<Key, usize>,
    stats: AttributionStats,
}

/// Insert ids / message ids as 128-bit keyed hashes (see [`Key`]); shared by the batches
/// of one run so equal ids hash equally.
#[derive(Clone)]
struct IdHasher(std::hash::RandomState, std::hash::RandomState);

impl IdHasher {
    fn new() -> Self {
        IdHasher(std::hash::RandomState::new(), std::hash::RandomState::new())
    }

    fn hash(&self, id: &str) -> u128 {
        use std::hash::BuildHasher;
        ((self.0.hash_one(id) as u128) << 64) | self.1.hash_one(id) as u128
    }
}

impl Default for IdHasher {
    fn default() -> Self {
        IdHasher::new()
    }
}

#[derive(Debug, Clone, Copy)]
enum LocalKey {
    NameUserTime(Option<u128>),
    Id(u128),
    Unique,
}

#[derive(Debug, Clone)]
struct LocalEvent {
    name: Sym,
    user: Sym,
    time_us: i64,
    ingest_us: Option<i64>,
    key: LocalKey,
    groups: std::ops::Range<usize>,
}

/// One file's events, interned against the file's own tables on a worker thread.
#[derive(Default, Clone)]
pub struct Batch {
    ids: IdHasher,
    names: Interner,
    users: Interner,
    groups: Interner,
    events: Vec<LocalEvent>,
    memberships: Vec<(u16, Sym)>,
}

impl Batch {
    pub fn push(&mut self, e: RawEvent) {
        let start = self.memberships.len();
        for (k, g) in &e.groups {
            let g = self.groups.intern(g);
            self.memberships.push((*k, g));
        }
        let key = match &e.dedup {
            DedupKey::NameUserTime(id) => LocalKey::NameUserTime(id.as_deref().map(|i| self.ids.hash(i))),
            DedupKey::Id(id) => LocalKey::Id(self.ids.hash(id)),
            DedupKey::Unique => LocalKey::Unique,
        };
        self.events.push(LocalEvent {
            name: self.names.intern(&e.name),
            user: e.user.as_deref().map_or(NO_USER, |u| self.users.intern(u)),
            time_us: e.time_us,
            ingest_us: e.ingest_us,
            key,
            groups: start..self.memberships.len(),
        });
    }
}

impl Attributor {
    pub fn new(job: &Job) -> Self {
        Attributor {
            keys: job.group_keys.iter().map(|k| k.key.clone()).collect(),
            effective: job.group_keys.iter().map(|k| (k.effective_from_us, k.clock)).collect(),
            exclude: job.exclude_events.iter().cloned().collect(),
            mapper: DayMapper::new(job.timezone),
            events: Interner::new(),
            users: Interner::new(),
            groups: Interner::new(),
            ids: IdHasher::new(),
            kept: Vec::new(),
            memberships: Vec::new(),
            index: FxHashMap::default(),
            stats: AttributionStats::default(),
        }
    }

    /// A [`Batch`] for one input file, to be filled on a worker thread.
    pub fn batch(&self) -> Batch {
        Batch {
            ids: self.ids.clone(),
            ..Default::default()
        }
    }

    /// Adds a file's events; batches must arrive in input order. The batch's strings are
    /// interned once each here, so this single-threaded step does one hash lookup per
    /// distinct string, not per event.
    pub fn push_batch(&mut self, b: Batch) {
        let remap = |local: &Interner, global: &mut Interner| -> Vec<Sym> {
            (0..local.len() as Sym)
                .map(|i| global.intern(local.resolve(i)))
                .collect()
        };
        let names = remap(&b.names, &mut self.events);
        let users = remap(&b.users, &mut self.users);
        let groups = remap(&b.groups, &mut self.groups);
        // Grow the dedup index once per file rather than rehashing mid-file.
        self.index.reserve(b.events.len());
        self.kept.reserve(b.events.len());
        for e in &b.events {
            self.stats.events += 1;
            let name = names[e.name as usize];
            let user = if e.user == NO_USER {
                NO_USER
            } else {
                users[e.user as usize]
            };
            let start = self.memberships.len();
            self.memberships.extend(
                b.memberships[e.groups.clone()]
                    .iter()
                    .map(|&(k, g)| (k, groups[g as usize])),
            );
            let compact = Compact {
                name,
                user,
                time_us: e.time_us,
                ingest_us: e.ingest_us,
                groups: start..self.memberships.len(),
            };
            let key = match e.key {
                LocalKey::NameUserTime(id) => Key::NameUserTime(name, user, e.time_us, id),
                LocalKey::Id(id) => Key::Id(id),
                LocalKey::Unique => {
                    self.kept.push(compact);
                    continue;
                }
            };
            match self.index.get(&key) {
                Some(&i) => {
                    self.stats.duplicates += 1;
                    // Latest ingested copy wins; a copy without ingest time is the oldest;
                    // on a tie the later copy in input order wins.
                    if compact.ingest_us >= self.kept[i].ingest_us {
                        self.kept[i] = compact;
                    }
                }
                None => {
                    self.index.insert(key, self.kept.len());
                    self.kept.push(compact);
                }
            }
        }
    }

    /// Applies `exclude_events` and effective dates, and builds the sorted activity.
    pub fn finish(mut self) -> (Activity, AttributionStats) {
        self.index = FxHashMap::default();
        let excluded: FxHashSet<Sym> = self.exclude.iter().filter_map(|n| self.events.get(n)).collect();
        let mut hits = Vec::with_capacity(self.kept.len());
        for e in &self.kept {
            if excluded.contains(&e.name) {
                self.stats.excluded += 1;
                continue;
            }
            let before = hits.len();
            let mut day = None;
            for &(k, group) in &self.memberships[e.groups.clone()] {
                let (from, clock) = self.effective[k as usize];
                let clock_us = match clock {
                    Clock::Event => e.time_us,
                    Clock::Ingest => e.ingest_us.unwrap_or(e.time_us),
                };
                if from.is_some_and(|f| clock_us < f) {
                    continue;
                }
                let day = *day.get_or_insert_with(|| self.mapper.day(e.time_us));
                hits.push(Hit {
                    key: k,
                    group,
                    time_us: e.time_us,
                    event: e.name,
                    user: e.user,
                    day,
                });
            }
            if hits.len() > before {
                self.stats.attributed += 1;
            }
        }
        self.kept = Vec::new();
        self.memberships = Vec::new();
        hits.sort_unstable();
        self.stats.hits = hits.len() as u64;
        (
            Activity {
                keys: self.keys,
                groups: self.groups,
                events: self.events,
                users: self.users,
                hits,
            },
            self.stats,
        )
    }
}
