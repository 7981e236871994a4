//! `group_daily` and `group_event_daily` (SPEC §6): events and distinct users per active
//! group and date, and per active group, date and event name.
//!
//! The per-day aggregates are already computed ([`super::DayParts`]); here they are only
//! put in output order. Text columns are dictionary codes into the activity's string
//! tables, so these tables (often as many rows as a tenth of the events) cost ~40 bytes a
//! row.

use std::sync::Arc;

use super::{key_ranks, sym_ranks, Activity, Cols, Table};
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

/// `group_daily`: one row per active (date, group key, group id).
pub fn group_daily(act: &Activity) -> Table {
    let key_rank = key_ranks(&act.keys);
    let group_rank = sym_ranks(&act.groups);
    let mut rows = act.daily.clone();
    rows.sort_unstable_by_key(|r| (r.day, key_rank[r.key as usize], group_rank[r.group as usize]));
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

/// `group_event_daily`: one row per active (date, group key, group id, event). Takes the
/// activity's per-event aggregates, which no other table needs, rather than copy them.
pub fn group_event_daily(act: &mut Activity) -> Table {
    let key_rank = key_ranks(&act.keys);
    let group_rank = sym_ranks(&act.groups);
    let event_rank = sym_ranks(&act.events);
    let mut rows = std::mem::take(&mut act.event_daily);
    rows.sort_unstable_by_key(|r| {
        (
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
