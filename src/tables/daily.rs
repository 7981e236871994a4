//! `group_daily` and `group_event_daily` (SPEC §6): events and distinct users per active
//! group and date, and per active group, date and event name.
//!
//! The per-day aggregates are already computed ([`super::DayParts`]); here they are only
//! put in output order. Text columns are dictionary codes into the activity's string
//! tables, so these tables (often as many rows as a tenth of the events) cost ~40 bytes a
//! row.

use std::sync::Arc;

use super::{key_ranks, sym_ranks, Activity, Cols, GroupEventDay, Table};
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
        day_rows.sort_by_cached_key(|r| order(r.day, key_rank[r.key as usize], group_rank[r.group as usize], 0));
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
/// them, and they are the largest). Each day's rows are freed once copied into columns.
pub fn group_event_daily(act: &Activity, days: Vec<Vec<GroupEventDay>>) -> Table {
    let key_rank = key_ranks(&act.keys);
    let group_rank = sym_ranks(&act.groups);
    let event_rank = sym_ranks(&act.events);
    let mut c = Columns::with_capacity(days.iter().map(Vec::len).sum(), true);
    for mut rows in days {
        rows.sort_by_cached_key(|r| {
            order(
                r.day,
                key_rank[r.key as usize],
                group_rank[r.group as usize],
                event_rank[r.event as usize],
            )
        });
        for r in &rows {
            c.push(r.day, r.key, r.group, r.event, r.events, r.users);
        }
    }
    Cols::new()
        .date("date", c.date)
        .dict("group_key", key_table(&act.keys), c.key)
        .dict("group_id", act.groups.clone(), c.group)
        .dict("event", act.events.clone(), c.event)
        .int64("events", c.events)
        .int64("users", c.users)
        .table("group_event_daily", Some("date"))
}
