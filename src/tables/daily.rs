//! `group_daily` and `group_event_daily` (SPEC §6): events and distinct users per active
//! group and date, and per active group, date and event name.
//!
//! The per-day aggregates are already computed ([`super::DayParts`]); here they are only
//! put in output order. Text columns are dictionary codes into the activity's string
//! tables, so these tables (often as many rows as a tenth of the events) cost ~40 bytes a
//! row.

use std::sync::Arc;

use super::{key_ranks, sym_ranks, Activity, Cols, GroupDay, GroupEventDay, Table};
use crate::calendar::Day;
use crate::intern::{Interner, Sym};

/// The group key names as a string table whose codes are the key indices.
fn key_table(keys: &[String]) -> Arc<Interner> {
    let mut t = Interner::new();
    for k in keys {
        t.intern(k);
    }
    debug_assert_eq!(t.len(), keys.len(), "group keys are distinct");
    Arc::new(t)
}

/// Output order (date, key name, group id, event name) as one integer: the ranks are
/// looked up once per row, not once per comparison.
fn order(day: Day, key_rank: u32, group_rank: u32, event_rank: u32) -> u128 {
    let day = (day as u32) ^ (1 << 31); // order-preserving for negative days
    ((day as u128) << 96) | ((key_rank as u128) << 64) | ((group_rank as u128) << 32) | event_rank as u128
}

/// Appends one day's rows, put in output order, to the columns.
struct Columns {
    date: Vec<Day>,
    key: Vec<Sym>,
    group: Vec<Sym>,
    event: Vec<Sym>,
    events: Vec<i64>,
    users: Vec<i64>,
}

impl Columns {
    fn with_capacity(n: usize, by_event: bool) -> Self {
        Columns {
            date: Vec::with_capacity(n),
            key: Vec::with_capacity(n),
            group: Vec::with_capacity(n),
            event: Vec::with_capacity(if by_event { n } else { 0 }),
            events: Vec::with_capacity(n),
            users: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, day: Day, key: u16, group: Sym, event: Sym, events: i64, users: i64) {
        self.date.push(day);
        self.key.push(key as Sym);
        self.group.push(group);
        if self.event.capacity() > 0 {
            self.event.push(event);
        }
        self.events.push(events);
        self.users.push(users);
    }
}

/// `group_daily`: one row per active (date, group key, group id).
pub fn group_daily(act: &Activity) -> Table {
    let key_rank = key_ranks(&act.keys);
    let group_rank = sym_ranks(&act.groups);
    let mut c = Columns::with_capacity(act.daily.len(), false);
    let mut day_rows = Vec::new();
    // Rows come in day order: only each day's rows need sorting.
    for day in act.daily.chunk_by(|a, b| a.day == b.day) {
        day_rows.clear();
        day_rows.extend_from_slice(day);
        let key = |r: &GroupDay| order(r.day, key_rank[r.key as usize], group_rank[r.group as usize], 0);
        // Days come from attribution in (key, group) order, which is output order whenever
        // the key names sort as the job lists them: checking is cheaper than sorting.
        if !day_rows.is_sorted_by_key(key) {
            day_rows.sort_by_cached_key(key);
        }
        for r in &day_rows {
            c.push(r.day, r.key, r.group, 0, r.events, r.users);
        }
    }
    Cols::new()
        .date("date", c.date)
        .dict("group_key", key_table(&act.keys), c.key)
        .dict("group_id", act.groups.clone(), c.group)
        .int64("events", c.events)
        .int64("users", c.users)
        .table("group_daily", Some("date"))
}

/// `group_event_daily`: one row per active (date, group key, group id, event), from the
/// activity's per-event aggregates (taken out of it by the caller: no other table needs
/// them, and they are the largest). It comes as one table per day, in day order, each a
/// whole `date` partition: a day's rows are freed as soon as its columns are made, and the
/// next day's columns reuse that memory. Built as one table, its columns were fresh memory
/// the size of all days' rows while those rows were still held (~0.5 GiB more at the peak
/// of a 100M-event run, the pages faulted in besides). Without any row it is one empty
/// table, so that the runner still sees the table (and removes its stale partitions).
pub fn group_event_daily(act: &Activity, days: Vec<Vec<GroupEventDay>>) -> Vec<Table> {
    let key_rank = key_ranks(&act.keys);
    let group_rank = sym_ranks(&act.groups);
    let event_rank = sym_ranks(&act.events);
    let keys = key_table(&act.keys);
    let piece = |c: Columns| {
        Cols::new()
            .date("date", c.date)
            .dict("group_key", keys.clone(), c.key)
            .dict("group_id", act.groups.clone(), c.group)
            .dict("event", act.events.clone(), c.event)
            .int64("events", c.events)
            .int64("users", c.users)
            .table("group_event_daily", Some("date"))
    };
    let mut pieces = Vec::with_capacity(days.len());
    for mut rows in days.into_iter().filter(|d| !d.is_empty()) {
        let key = |r: &GroupEventDay| {
            order(
                r.day,
                key_rank[r.key as usize],
                group_rank[r.group as usize],
                event_rank[r.event as usize],
            )
        };
        if !rows.is_sorted_by_key(key) {
            rows.sort_by_cached_key(key);
        }
        let mut c = Columns::with_capacity(rows.len(), true);
        for r in &rows {
            c.push(r.day, r.key, r.group, r.event, r.events, r.users);
        }
        drop(rows);
        pieces.push(piece(c));
    }
    if pieces.is_empty() {
        pieces.push(piece(Columns::with_capacity(0, true)));
    }
    pieces
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::tables::{hits_of, Values};

    type Row = (Day, String, String, String, i64, i64);

    /// The rows of `table` with their text resolved (`event` empty where there is none).
    fn rows(table: &Table) -> Vec<Row> {
        let text = |name: &str, i: usize| {
            table
                .column(name)
                .map_or(String::new(), |c| c.text(i).unwrap().to_owned())
        };
        let int = |name: &str, i: usize| match table.column(name) {
            Some(Values::Int64(v)) => v[i],
            other => panic!("{name}: {other:?}"),
        };
        let Some(Values::Date(days)) = table.column("date") else {
            panic!("date column")
        };
        (0..table.num_rows())
            .map(|i| {
                let (key, group, event) = (text("group_key", i), text("group_id", i), text("event", i));
                (days[i], key, group, event, int("events", i), int("users", i))
            })
            .collect()
    }

    proptest! {
        /// Rows come out in (date, key name, group id, event name) order, each once, when
        /// the job lists its keys out of name order and ids and names were numbered out of
        /// byte order, and when they were not.
        #[test]
        fn rows_are_in_text_order(
            reversed in any::<bool>(),
            raw in prop::collection::vec((0u16..2, 0u32..4, 0i32..3, 0u32..3, 0u64..4), 0..80),
        ) {
            let (mut groups, mut events) = (Interner::new(), Interner::new());
            let names = |n: u32| if reversed { 3 - n } else { n };
            for g in 0..4 {
                groups.intern(&format!("g{}", names(g)));
            }
            for e in 0..3 {
                events.intern(&format!("e{}", names(e)));
            }
            let keys: Vec<String> = if reversed {
                vec!["team_id".into(), "company_id".into()]
            } else {
                vec!["company_id".into(), "team_id".into()]
            };
            let mut act = Activity::from_hits(keys, groups, events, hits_of(&raw));
            let by_event = std::mem::take(&mut act.event_daily);
            let pieces = group_event_daily(&act, by_event);
            prop_assert!(!pieces.is_empty(), "the table is there, rows or not");
            prop_assert!(pieces.windows(2).all(|w| rows(&w[0]).last().unwrap().0 < rows(&w[1])[0].0),
                "one piece a day, in day order");
            let by_event: Vec<Row> = pieces.iter().flat_map(rows).collect();
            for (table, got, with_event) in [("group_daily", rows(&group_daily(&act)), false), ("group_event_daily", by_event, true)] {
                let mut want = got.clone();
                want.sort();
                want.dedup_by(|a, b| (&a.0, &a.1, &a.2, &a.3) == (&b.0, &b.1, &b.2, &b.3));
                prop_assert_eq!(&got, &want, "{} in order, each row once", table);
                prop_assert!(got.iter().all(|r| r.3.is_empty() != with_event));
            }
        }
    }
}
