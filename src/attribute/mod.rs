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
    groups: Vec<(u16, Sym)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    NameUserTime(Sym, Sym, i64, Sym),
    Id(Sym),
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
    dedup_ids: Interner,
    kept: Vec<Compact>,
    index: FxHashMap<Key, usize>,
    stats: AttributionStats,
}

const NO_ID: Sym = Sym::MAX;

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
            dedup_ids: Interner::new(),
            kept: Vec::new(),
            index: FxHashMap::default(),
            stats: AttributionStats::default(),
        }
    }

    /// Adds one event; events must arrive in input order.
    pub fn push(&mut self, e: RawEvent) {
        self.stats.events += 1;
        let name = self.events.intern(&e.name);
        let user = e.user.as_deref().map_or(NO_USER, |u| self.users.intern(u));
        let key = match &e.dedup {
            DedupKey::NameUserTime(id) => Some(Key::NameUserTime(
                name,
                user,
                e.time_us,
                id.as_deref().map_or(NO_ID, |i| self.dedup_ids.intern(i)),
            )),
            DedupKey::Id(id) => Some(Key::Id(self.dedup_ids.intern(id))),
            DedupKey::Unique => None,
        };
        let compact = Compact {
            name,
            user,
            time_us: e.time_us,
            ingest_us: e.ingest_us,
            groups: e.groups.iter().map(|(k, g)| (*k, self.groups.intern(g))).collect(),
        };
        let Some(key) = key else {
            self.kept.push(compact);
            return;
        };
        match self.index.get(&key) {
            Some(&i) => {
                self.stats.duplicates += 1;
                // Latest ingested copy wins; a copy without ingest time is the oldest; on
                // a tie the later copy in input order wins.
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
            for &(k, group) in &e.groups {
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
