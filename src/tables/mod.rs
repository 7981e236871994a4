//! Output tables (SPEC §6), computed from the attributed activity and the folded profiles.
//!
//! Every table is built as a [`Table`]: named, typed columns in a fixed row order, so that
//! the sinks can write Parquet or CSV without knowing what the table means, and reruns on
//! the same input give byte-identical files.

pub mod active;
pub mod daily;
pub mod funnels;
pub mod lifecycle;
pub mod profiles;
pub mod retention;
pub mod stickiness;

use std::sync::Arc;

use crate::calendar::Day;
use crate::intern::{Interner, Sym, UserKey, NO_USER};

/// One attributed (event, group key, group id): the unit every behaviour table counts.
///
/// An event attributed to three groups yields three hits. Hits handed to the tables are
/// sorted by (`key`, `group`, `time_us`, `event`, `user`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Hit {
    /// Index into [`Activity::keys`].
    pub key: u16,
    /// Group id, interned in [`Activity::groups`].
    pub group: Sym,
    /// Event time, UTC microseconds.
    pub time_us: i64,
    /// Event name, interned in [`Activity::events`].
    pub event: Sym,
    /// User id, hashed by attribution, or [`crate::intern::NO_USER`].
    pub user: UserKey,
    /// Civil date of `time_us` in the job's timezone.
    pub day: Day,
}

/// One active (group key, group, date) with its events and distinct users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupDay {
    pub key: u16,
    pub group: Sym,
    pub day: Day,
    pub events: i64,
    pub users: i64,
}

/// One active (group key, group, date, event name) with its events and distinct users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GroupEventDay {
    pub key: u16,
    pub group: Sym,
    pub day: Day,
    pub event: Sym,
    pub events: i64,
    pub users: i64,
}

/// One hit as the per-day aggregation sees it: what it counts and by whom (the day is
/// the bucket's, the time is not needed). 24 bytes, where a day can hold tens of millions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayHit {
    /// `key << 32 | group`: one compare for both.
    pub key_group: u64,
    pub event: Sym,
    pub user: UserKey,
}

impl DayHit {
    /// A hit of a copy that lost dedup, left in place (see [`DayParts::of_day_in`]):
    /// no (key, group) is this, as a key is 16 bits and a group 32.
    pub const DEAD: u64 = u64::MAX;

    pub fn new(key: u16, group: Sym, event: Sym, user: UserKey) -> Self {
        DayHit {
            key_group: ((key as u64) << 32) | group as u64,
            event,
            user,
        }
    }

    /// Whether the hit is not [`DayHit::DEAD`].
    fn is_live(&self) -> bool {
        self.key_group != DayHit::DEAD
    }

    fn key(&self) -> u16 {
        (self.key_group >> 32) as u16
    }

    fn group(&self) -> Sym {
        self.key_group as Sym
    }
}

/// The aggregates of one day's hits: every table but the funnels needs only these, so
/// days are reduced one at a time and the hits themselves are dropped.
#[derive(Debug, Clone, Default)]
pub struct DayParts {
    pub daily: Vec<GroupDay>,
    pub event_daily: Vec<GroupEventDay>,
    /// The hits the funnels need (their step events).
    pub hits: Vec<Hit>,
}

/// Per-day buffers above this size are not kept from one day to the next: reusing them
/// saves the kernel's zeroing of fresh pages, which matters for the many mid-sized days of a
/// 100M-event run; a billion-event run's days (10M+ events) are few, and their buffers
/// would otherwise stay allocated on every worker thread at once.
pub const RETAIN_BYTES: usize = 128 << 20;

/// Empties `v`, with room for `n`. A cleared vector too small is replaced rather than grown:
/// growing reallocates, which copies the whole old allocation, dead contents included. The
/// new one at least doubles, as growing would: sized to each larger day exactly, buffers
/// were replaced day after day, and every new one's pages faulted in again (a 100M run
/// spent ~1 s more in the kernel).
pub(crate) fn clear_with_room<T>(v: &mut Vec<T>, n: usize) {
    v.clear();
    if v.capacity() < n {
        *v = Vec::with_capacity(n.max(v.capacity() * 2));
    }
}

/// Buffers [`DayParts::of_day_in`] reuses from day to day: a day of a large run needs tens
/// of megabytes of them, and memory freed and allocated again may come back from the
/// kernel as fresh pages, to be faulted in and zeroed again.
#[derive(Debug, Clone, Default)]
pub struct DayScratch {
    starts: Vec<u32>,
    next: Vec<u32>,
    pairs: Vec<u128>,
    distinct: Distinct,
    daily: Vec<GroupDay>,
    event_daily: Vec<GroupEventDay>,
}

impl DayParts {
    /// Aggregates the hits of `day` (reordered in place); `funnel_hits` are kept as they are.
    pub fn of_day(day: Day, hits: &mut [DayHit], funnel_hits: Vec<Hit>) -> DayParts {
        DayParts::of_day_in(day, hits, funnel_hits, &mut DayScratch::default())
    }

    /// [`DayParts::of_day`], with buffers from `scratch`. Hits marked [`DayHit::DEAD`]
    /// (copies that lost dedup, left where they lay) are left out.
    pub fn of_day_in(day: Day, hits: &mut [DayHit], funnel_hits: Vec<Hit>, scratch: &mut DayScratch) -> DayParts {
        DayParts::of_day_within(day, hits, None, funnel_hits, scratch)
    }

    /// [`DayParts::of_day_in`], given `bounds` when the caller kept them as it made the
    /// hits (a pass over a day's hits, tens of megabytes, saved).
    pub fn of_day_within(
        day: Day,
        hits: &mut [DayHit],
        bounds: Option<HitBounds>,
        funnel_hits: Vec<Hit>,
        scratch: &mut DayScratch,
    ) -> DayParts {
        let HitBounds { keys, groups, live } = bounds.unwrap_or_else(|| {
            let (max_key, max_group, live) = hits
                .iter()
                .filter(|h| h.is_live())
                .fold((0, 0, 0), |(k, g, n), h| (k.max(h.key()), g.max(h.group()), n + 1));
            HitBounds {
                keys: max_key as usize + 1,
                groups: max_group as usize + 1,
                live,
            }
        });
        let slots = keys * groups;
        if slots <= live * 2 + 4096 {
            // Dense enough for a counting sort by (key, group).
            let slot = |h: &DayHit| (h.key() as usize) * groups + h.group() as usize;
            slot_starts(
                &mut scratch.starts,
                slots,
                hits.iter().filter(|h| h.is_live()).map(slot),
            );
            DayParts::placed(day, hits, groups, funnel_hits, scratch)
        } else {
            let mut n = 0;
            for i in 0..hits.len() {
                if hits[i].is_live() {
                    hits[n] = hits[i];
                    n += 1;
                }
            }
            DayParts::sorted(day, &mut hits[..n], funnel_hits, scratch)
        }
    }

    /// Aggregates `hits` placed by a counting sort on (key, group), `scratch.starts` being
    /// where each slot's start (for `groups` groups a key); [`DayHit::DEAD`] hits are left
    /// out. Each group's (event, user) pairs are then counted unsorted.
    fn placed(day: Day, hits: &[DayHit], groups: usize, funnel_hits: Vec<Hit>, scratch: &mut DayScratch) -> DayParts {
        let DayScratch {
            starts,
            next,
            pairs,
            distinct,
            daily,
            event_daily,
        } = scratch;
        let mut rows = DayRows::new(daily, event_daily);
        let live = *starts.last().expect("one start more than slots") as usize;
        clear_with_room(next, starts.len());
        next.extend_from_slice(starts);
        // Every place is written below: only room past what an earlier day left is zeroed.
        if pairs.capacity() < live {
            clear_with_room(pairs, live);
        }
        pairs.resize(live, 0);
        for h in hits.iter().filter(|h| h.is_live()) {
            let at = &mut next[(h.key() as usize) * groups + h.group() as usize];
            pairs[*at as usize] = ((h.event as u128) << 64) | h.user as u128;
            *at += 1;
        }
        for (i, w) in starts.windows(2).enumerate() {
            let run = &mut pairs[w[0] as usize..w[1] as usize];
            if !run.is_empty() {
                rows.push_group((i / groups) as u16, (i % groups) as Sym, day, run, distinct);
            }
        }
        rows.into_parts(funnel_hits, pairs, distinct)
    }

    /// Aggregates `hits` (no [`DayHit::DEAD`] among them) by sorting them on (key, group):
    /// for a day whose groups are too sparse to place by counting.
    fn sorted(day: Day, hits: &mut [DayHit], funnel_hits: Vec<Hit>, scratch: &mut DayScratch) -> DayParts {
        let (pairs, distinct) = (&mut scratch.pairs, &mut scratch.distinct);
        let mut rows = DayRows::new(&mut scratch.daily, &mut scratch.event_daily);
        hits.sort_unstable_by_key(|h| h.key_group);
        for g in hits.chunk_by(|a, b| a.key_group == b.key_group) {
            pairs.clear();
            pairs.extend(g.iter().map(|h| ((h.event as u128) << 64) | h.user as u128));
            rows.push_group(g[0].key(), g[0].group(), day, pairs, distinct);
        }
        rows.into_parts(funnel_hits, pairs, distinct)
    }
}

/// What [`DayParts::of_day_within`] needs to know of a day's hits before placing them:
/// every live hit's key is below `keys` and its group below `groups`; `live` are not dead.
#[derive(Debug, Clone, Copy)]
pub struct HitBounds {
    pub keys: usize,
    pub groups: usize,
    pub live: usize,
}

/// The rows of the day being aggregated.
struct DayRows<'a> {
    daily: &'a mut Vec<GroupDay>,
    event_daily: &'a mut Vec<GroupEventDay>,
}

impl<'a> DayRows<'a> {
    /// Rows are built in the reused buffers and copied out at their final size once.
    fn new(daily: &'a mut Vec<GroupDay>, event_daily: &'a mut Vec<GroupEventDay>) -> Self {
        daily.clear();
        event_daily.clear();
        DayRows { daily, event_daily }
    }

    /// The day's parts; lets go of scratch buffers grown past what is kept between days.
    fn into_parts(self, funnel_hits: Vec<Hit>, pairs: &mut Vec<u128>, distinct: &mut Distinct) -> DayParts {
        let parts = DayParts {
            daily: self.daily.to_vec(),
            event_daily: self.event_daily.to_vec(),
            hits: funnel_hits,
        };
        if pairs.capacity() * size_of::<u128>() > RETAIN_BYTES {
            *pairs = Vec::new();
        }
        let sets =
            distinct.pairs.capacity() * size_of::<(UserKey, Sym)>() + distinct.spread.capacity() * size_of::<u128>();
        if sets > RETAIN_BYTES {
            *distinct = Distinct::default();
        }
        parts
    }

    /// Adds the rows of one active (key, group) from its hits as `event << 64 | user`, in
    /// any order; its rows by event come out in event order.
    fn push_group(&mut self, key: u16, group: Sym, day: Day, pairs: &[u128], d: &mut Distinct) {
        d.touched.clear();
        let users = d.count_users(pairs);
        d.touched.sort_unstable();
        for &event in &d.touched {
            let (events, users) = std::mem::take(&mut d.by_event[event as usize]);
            self.event_daily.push(GroupEventDay {
                key,
                group,
                day,
                event,
                events,
                users,
            });
        }
        self.daily.push(GroupDay {
            key,
            group,
            day,
            events: pairs.len() as i64,
            users,
        });
    }
}

/// Counts distinct users of one group's hits, and of each of its events, without sorting
/// them: two open-addressing sets sized to the group (users are hashes already, so their
/// low bits place them). Sorting each group's hits by event and user instead took 1.6x
/// the day's aggregation instructions on three days of the 100M workload.
///
/// A large group's hits are first spread by the top bits of their user into parts of
/// `PART` to twice that many hits on average, each counted with sets of its own size: a
/// user falls in one part, so the parts' distinct counts add up. Sets sized to a whole
/// large group (a day's busiest company has ~10⁵ hits) missed the cache on nearly every
/// hit.
#[derive(Debug, Clone, Default)]
pub struct Distinct {
    /// Users seen in the part; [`NO_USER`] marks a free slot (it is never counted).
    users: Vec<UserKey>,
    /// (user, event) pairs seen in the part, the same way.
    pairs: Vec<(UserKey, Sym)>,
    /// By event: (events, distinct users) of the group so far; zero outside `touched`.
    by_event: Vec<(i64, i64)>,
    /// The events the group has, in the order met.
    touched: Vec<Sym>,
    /// A large group's hits, spread into parts, and where each part starts.
    spread: Vec<u128>,
    starts: Vec<u32>,
}

impl Distinct {
    /// The fewest hits a part holds on average: its two sets take 96-192 KB.
    const PART: usize = 2048;

    /// Counts `pairs` (one group's hits) into `by_event` and `touched`; the group's
    /// distinct users.
    fn count_users(&mut self, pairs: &[u128]) -> i64 {
        if pairs.len() < 2 * Self::PART {
            return self.count_part(pairs);
        }
        let bits = (pairs.len() / Self::PART).next_power_of_two().trailing_zeros();
        let parts = 1 << bits;
        let part = |p: u128| (p as UserKey >> (UserKey::BITS - bits)) as usize;
        let mut starts = std::mem::take(&mut self.starts);
        slot_starts(&mut starts, parts, pairs.iter().map(|&p| part(p)));
        let mut spread = std::mem::take(&mut self.spread);
        spread.clear();
        spread.resize(pairs.len(), 0);
        // Each part's start is moved to its end as the part is filled.
        for &p in pairs {
            let at = &mut starts[part(p)];
            spread[*at as usize] = p;
            *at += 1;
        }
        let mut users = 0;
        let mut start = 0;
        for &end in &starts[..parts] {
            users += self.count_part(&spread[start..end as usize]);
            start = end as usize;
        }
        (self.spread, self.starts) = (spread, starts);
        users
    }

    /// Counts `pairs`, hits whose users no other part holds; their distinct users.
    fn count_part(&mut self, pairs: &[u128]) -> i64 {
        self.start(pairs.len());
        let mut users = 0;
        for &p in pairs {
            let (event, user) = ((p >> 64) as Sym, p as UserKey);
            let counts = self.count(event);
            counts.0 += 1;
            if user != NO_USER {
                users += self.new_user(user) as i64;
                self.by_event[event as usize].1 += self.new_pair(user, event) as i64;
            }
        }
        users
    }

    /// Empties the sets for a part of `hits` hits.
    fn start(&mut self, hits: usize) {
        let slots = (hits * 2).next_power_of_two().max(16);
        clear_with_room(&mut self.users, slots);
        self.users.resize(slots, NO_USER);
        clear_with_room(&mut self.pairs, slots);
        self.pairs.resize(slots, (NO_USER, 0));
    }

    /// The counts of `event`, marked as the group's.
    #[inline]
    fn count(&mut self, event: Sym) -> &mut (i64, i64) {
        let e = event as usize;
        if e >= self.by_event.len() {
            self.by_event.resize(e + 1, (0, 0));
        }
        if self.by_event[e].0 == 0 {
            self.touched.push(event);
        }
        &mut self.by_event[e]
    }

    /// Adds `user` (not [`NO_USER`]); whether it was new.
    #[inline]
    fn new_user(&mut self, user: UserKey) -> bool {
        let mask = self.users.len() - 1;
        let mut i = user as usize & mask;
        loop {
            match self.users[i] {
                NO_USER => {
                    self.users[i] = user;
                    return true;
                }
                u if u == user => return false,
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Adds (`user`, `event`), `user` not [`NO_USER`]; whether it was new.
    #[inline]
    fn new_pair(&mut self, user: UserKey, event: Sym) -> bool {
        let mask = self.pairs.len() - 1;
        // An odd multiplier spreads event numbers over the low bits.
        let mut i = (user ^ (event as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)) as usize & mask;
        loop {
            match self.pairs[i] {
                (NO_USER, _) => {
                    self.pairs[i] = (user, event);
                    return true;
                }
                p if p == (user, event) => return false,
                _ => i = (i + 1) & mask,
            }
        }
    }
}

/// Everything the activity tables are computed from.
pub struct Activity {
    /// Group key names, in job-file order.
    pub keys: Vec<String>,
    pub groups: Arc<Interner>,
    pub events: Arc<Interner>,
    /// One row per active group and date, in day order.
    pub daily: Vec<GroupDay>,
    /// One row per active group, date and event, a vector per day in day order (so that
    /// `group_event_daily`, the largest table, can be built and freed a day at a time).
    pub event_daily: Vec<Vec<GroupEventDay>>,
    /// Every active (key, group, day), sorted: what the behaviour tables are made of.
    pub active: Vec<(u16, Sym, Day)>,
    /// The hits the funnels need, sorted as documented on [`Hit`].
    pub hits: Vec<Hit>,
}

impl Activity {
    /// Joins per-day aggregates, given in day order.
    pub fn from_days(keys: Vec<String>, groups: Interner, events: Interner, days: Vec<DayParts>) -> Activity {
        use rayon::slice::ParallelSliceMut;
        let mut act = Activity {
            keys,
            groups: Arc::new(groups),
            events: Arc::new(events),
            daily: Vec::with_capacity(days.iter().map(|d| d.daily.len()).sum()),
            event_daily: Vec::with_capacity(days.len()),
            active: Vec::new(),
            hits: Vec::with_capacity(days.iter().map(|d| d.hits.len()).sum()),
        };
        for d in days {
            act.daily.extend(d.daily);
            act.event_daily.push(d.event_daily);
            act.hits.extend(d.hits);
        }
        act.active = active_in_order(&act.daily, act.keys.len(), act.groups.len());
        act.hits.par_sort_unstable();
        act
    }

    /// The activity of a list of hits, every hit kept (tests build activities this way).
    pub fn from_hits(keys: Vec<String>, groups: Interner, events: Interner, mut hits: Vec<Hit>) -> Activity {
        hits.sort_unstable_by_key(|h| h.day);
        let days = hits
            .chunk_by(|a, b| a.day == b.day)
            .map(|day| {
                let mut rows: Vec<DayHit> = day
                    .iter()
                    .map(|h| DayHit::new(h.key, h.group, h.event, h.user))
                    .collect();
                DayParts::of_day(day[0].day, &mut rows, day.to_vec())
            })
            .collect();
        Activity::from_days(keys, groups, events, days)
    }

    /// The sorted, distinct (key, group, day) triples: who was active when.
    pub fn active_days(&self) -> &[(u16, Sym, Day)] {
        &self.active
    }

    /// Number of distinct active (key, group).
    pub fn groups_active(&self) -> usize {
        self.active.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1).count()
    }
}

pub(crate) use lifecycle::{key_ranks, per_key};

/// The (key, group, day) of every row of `daily`, sorted. Rows in day order, a (key, group)
/// once a day, are placed by a counting sort on (key, group), which keeps their days in
/// order: sorting took ~0.2 s of a 100M run's tail (7M rows).
fn active_in_order(daily: &[GroupDay], keys: usize, groups: usize) -> Vec<(u16, Sym, Day)> {
    use rayon::slice::ParallelSliceMut;
    let slots = keys * groups;
    let slot = |r: &GroupDay| r.key as usize * groups + r.group as usize;
    let dense = slots <= daily.len() * 4 + 4096
        && daily.len() < u32::MAX as usize
        && daily
            .iter()
            .all(|r| (r.key as usize) < keys && (r.group as usize) < groups)
        && daily.is_sorted_by_key(|r| r.day);
    if !dense {
        let mut active: Vec<(u16, Sym, Day)> = daily.iter().map(|r| (r.key, r.group, r.day)).collect();
        active.par_sort_unstable();
        return active;
    }
    let mut next = Vec::new();
    slot_starts(&mut next, slots, daily.iter().map(slot));
    let mut active = vec![(0, 0, 0); daily.len()];
    for r in daily {
        let at = &mut next[slot(r)];
        active[*at as usize] = (r.key, r.group, r.day);
        *at += 1;
    }
    debug_assert!(active.is_sorted());
    active
}

/// For a counting sort: where the items of each of `slots` slots start once placed in slot
/// order (one entry more at the end: the count of all), given every item's slot.
fn slot_starts(starts: &mut Vec<u32>, slots: usize, of: impl Iterator<Item = usize>) {
    clear_with_room(starts, slots + 1);
    starts.resize(slots + 1, 0);
    for s in of {
        starts[s + 1] += 1;
    }
    for i in 1..starts.len() {
        starts[i] += starts[i - 1];
    }
}

/// Rank of every interned string in byte order, so rows can be sorted by integer.
pub(crate) fn sym_ranks(strings: &Interner) -> Vec<u32> {
    let mut order: Vec<Sym> = (0..strings.len() as Sym).collect();
    order.sort_unstable_by(|&a, &b| strings.resolve(a).cmp(strings.resolve(b)));
    let mut rank = vec![0u32; strings.len()];
    for (r, &s) in order.iter().enumerate() {
        rank[s as usize] = r as u32;
    }
    rank
}

/// Typed values of one column.
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    Utf8(Vec<String>),
    /// Text as codes into a shared string table: the big tables repeat a few thousand group
    /// ids and event names over millions of rows, so a row costs four bytes, not a `String`.
    Dict(Arc<Interner>, Vec<Sym>),
    Int64(Vec<i64>),
    /// Days since 1970-01-01 (Arrow `Date32`).
    Date(Vec<Day>),
    /// UTC microseconds (Arrow `Timestamp(µs, "UTC")`), nullable.
    TimestampUs(Vec<Option<i64>>),
}

impl Values {
    pub fn len(&self) -> usize {
        match self {
            Values::Utf8(v) => v.len(),
            Values::Dict(_, v) => v.len(),
            Values::Int64(v) => v.len(),
            Values::Date(v) => v.len(),
            Values::TimestampUs(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The text of row `i` of a text column.
    pub fn text(&self, i: usize) -> Option<&str> {
        match self {
            Values::Utf8(v) => Some(&v[i]),
            Values::Dict(d, v) => Some(d.resolve(v[i])),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: &'static str,
    pub values: Values,
}

/// A finished output table.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    pub name: &'static str,
    /// Name of the `Date` column the table is Hive-partitioned by (`date`), if any. Rows
    /// are sorted by it so that each partition is one contiguous run.
    pub partition_by: Option<&'static str>,
    pub columns: Vec<Column>,
}

impl Table {
    pub fn num_rows(&self) -> usize {
        self.columns.first().map_or(0, |c| c.values.len())
    }

    pub fn column(&self, name: &str) -> Option<&Values> {
        self.columns.iter().find(|c| c.name == name).map(|c| &c.values)
    }
}

/// Column builder shared by the table modules: push rows, get a [`Table`].
#[derive(Default)]
pub(crate) struct Cols(Vec<Column>);

impl Cols {
    pub(crate) fn new() -> Self {
        Cols(Vec::new())
    }
    pub(crate) fn utf8(mut self, name: &'static str, v: Vec<String>) -> Self {
        self.0.push(Column {
            name,
            values: Values::Utf8(v),
        });
        self
    }
    pub(crate) fn dict(mut self, name: &'static str, strings: Arc<Interner>, codes: Vec<Sym>) -> Self {
        self.0.push(Column {
            name,
            values: Values::Dict(strings, codes),
        });
        self
    }
    pub(crate) fn int64(mut self, name: &'static str, v: Vec<i64>) -> Self {
        self.0.push(Column {
            name,
            values: Values::Int64(v),
        });
        self
    }
    pub(crate) fn date(mut self, name: &'static str, v: Vec<Day>) -> Self {
        self.0.push(Column {
            name,
            values: Values::Date(v),
        });
        self
    }
    pub(crate) fn ts(mut self, name: &'static str, v: Vec<Option<i64>>) -> Self {
        self.0.push(Column {
            name,
            values: Values::TimestampUs(v),
        });
        self
    }
    pub(crate) fn table(self, name: &'static str, partition_by: Option<&'static str>) -> Table {
        debug_assert!(self.0.windows(2).all(|w| w[0].values.len() == w[1].values.len()));
        Table {
            name,
            partition_by,
            columns: self.0,
        }
    }
}

/// Hits from (key, group, day, event, user) tuples, one microsecond apart; user 0 stands
/// for "no user".
#[cfg(test)]
pub(crate) fn hits_of(raw: &[(u16, Sym, Day, Sym, u64)]) -> Vec<Hit> {
    raw.iter()
        .enumerate()
        .map(|(i, &(key, group, day, event, user))| Hit {
            key,
            group,
            time_us: i as i64,
            event,
            user: if user == 0 { NO_USER } else { user },
            day,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use proptest::prelude::*;

    use super::*;

    /// The per-day reduction of the hits `raw` against counting every (group, day[, event])
    /// by brute force.
    fn check_day_parts(raw: &[(u16, Sym, Day, Sym, u64)]) -> Result<(), TestCaseError> {
        let hits = hits_of(raw);
        let act = Activity::from_hits(
            vec!["a".into(), "b".into()],
            Interner::new(),
            Interner::new(),
            hits.clone(),
        );

        type Counts = BTreeMap<(u16, Sym, Day, Option<Sym>), (i64, BTreeSet<UserKey>)>;
        let mut want: Counts = BTreeMap::new();
        for h in &hits {
            for event in [None, Some(h.event)] {
                let e = want.entry((h.key, h.group, h.day, event)).or_default();
                e.0 += 1;
                if h.user != NO_USER {
                    e.1.insert(h.user);
                }
            }
        }
        let mut got: Vec<(u16, Sym, Day, Option<Sym>, i64, i64)> = act
            .daily
            .iter()
            .map(|r| (r.key, r.group, r.day, None, r.events, r.users))
            .chain(
                act.event_daily
                    .iter()
                    .flatten()
                    .map(|r| (r.key, r.group, r.day, Some(r.event), r.events, r.users)),
            )
            .collect();
        got.sort_unstable();
        let want: Vec<_> = want
            .into_iter()
            .map(|((k, g, d, e), (n, u))| (k, g, d, e, n, u.len() as i64))
            .collect();
        prop_assert_eq!(got, want);
        let mut sorted = hits;
        sorted.sort_unstable();
        prop_assert_eq!(&act.hits, &sorted);
        prop_assert!(act.active.windows(2).all(|w| w[0] < w[1]));
        prop_assert!(act.daily.windows(2).all(|w| w[0].day <= w[1].day));
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Groups of more than twice [`Distinct::PART`] hits are counted in parts, by the
        /// top bits of their users (0 stands for "no user", which falls in the last part).
        #[test]
        fn large_groups_are_counted_in_parts(
            raw in prop::collection::vec(
                (0u16..1, 0u32..2, 0i32..1, 0u32..30, prop_oneof![
                    1 => Just(0u64),
                    9 => (1u64..3000).prop_map(|u| u.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
                ]),
                2 * Distinct::PART..6 * Distinct::PART,
            ),
        ) {
            check_day_parts(&raw)?;
        }
    }

    proptest! {
        /// The per-day reduction against counting every (group, day[, event]) by brute force.
        #[test]
        fn day_parts_count_events_and_distinct_users(
            // Groups far apart take the comparison sort, close ones the counting sort.
            // Users differing only above bit 40 share their slot in the distinct sets, so
            // large groups probe far; 0 stands for "no user".
            raw in prop_oneof![
                prop::collection::vec((0u16..2, prop_oneof![0u32..4, 100_000u32..100_003], 0i32..3, 0u32..3, 0u64..4), 0..60),
                prop::collection::vec((0u16..2, 0u32..3, 0i32..2, 0u32..40, prop_oneof![0u64..4, (0u64..600).prop_map(|u| u << 40)]), 0..3000),
            ],
        ) {
            check_day_parts(&raw)?;
        }

        /// Hits marked dead where they lie count as if they had been taken out, whether
        /// the day is placed by counting (groups close) or sorted (groups far apart).
        #[test]
        fn dead_hits_are_left_out(
            raw in prop::collection::vec(
                ((0u16..2, prop_oneof![0u32..5, 1_000_000u32..1_000_003], 0u32..4, 0u64..5), any::<bool>()),
                0..400,
            ),
        ) {
            let hit = |&((k, g, e, u), _): &((u16, Sym, Sym, u64), bool)| DayHit::new(k, g, e, if u == 0 { NO_USER } else { u });
            let mut marked: Vec<DayHit> = raw
                .iter()
                .map(|r| if r.1 { hit(r) } else { DayHit { key_group: DayHit::DEAD, ..hit(r) } })
                .collect();
            let mut live: Vec<DayHit> = raw.iter().filter(|r| r.1).map(hit).collect();
            let got = DayParts::of_day_in(3, &mut marked, Vec::new(), &mut DayScratch::default());
            let want = DayParts::of_day(3, &mut live, Vec::new());
            prop_assert_eq!(got.daily, want.daily);
            prop_assert_eq!(got.event_daily, want.event_daily);
        }
    }
}
