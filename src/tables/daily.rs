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
use crate::intern::Interner;

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

/// `group_daily`: one row per active (date, group key, group id).
pub fn group_daily(act: &Activity) -> Table {
    let key_rank = key_ranks(&act.keys);
    let group_rank = sym_ranks(&act.groups);
    let mut rows = act.daily.clone();
    rows.sort_by_cached_key(|r| order(r.day, key_rank[r.key as usize], group_rank[r.group as usize], 0));
    Cols::new()
        .date("date", rows.iter().map(|r| r.day).collect())
        .dict(
            "group_key",
            key_table(&act.keys),
            rows.iter().map(|r| r.key as u32).collect(),
        )
        .dict("group_id", act.groups.clone(), rows.iter().map(|r| r.group).collect())
        .int64("events", rows.iter().map(|r| r.events).collect())
        .int64("users", rows.iter().map(|r| r.users).collect())
        .table("group_daily", Some("date"))
}

/// `group_event_daily`: one row per active (date, group key, group id, event), from the
/// activity's per-event aggregates (taken out of it by the caller: no other table needs
/// them, and they are the largest).
pub fn group_event_daily(act: &Activity, mut rows: Vec<GroupEventDay>) -> Table {
    let key_rank = key_ranks(&act.keys);
    let group_rank = sym_ranks(&act.groups);
    let event_rank = sym_ranks(&act.events);
    rows.sort_by_cached_key(|r| {
        order(
            r.day,
            key_rank[r.key as usize],
            group_rank[r.group as usize],
            event_rank[r.event as usize],
        )
    });
    Cols::new()
        .date("date", rows.iter().map(|r| r.day).collect())
        .dict(
            "group_key",
            key_table(&act.keys),
            rows.iter().map(|r| r.key as u32).collect(),
        )
        .dict("group_id", act.groups.clone(), rows.iter().map(|r| r.group).collect())
        .dict("event", act.events.clone(), rows.iter().map(|r| r.event).collect())
        .int64("events", rows.iter().map(|r| r.events).collect())
        .int64("users", rows.iter().map(|r| r.users).collect())
        .table("group_event_daily", Some("date"))
}
