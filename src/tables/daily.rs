//! `group_daily` and `group_event_daily` (SPEC §6): events and distinct users per active
//! group and date, and per active group, date and event name.

use super::{sym_ranks, Activity, Cols, Table};
use crate::calendar::Day;
use crate::intern::Sym;

/// `group_daily`: one row per active (date, group key, group id).
pub fn group_daily(act: &Activity) -> Table {
    let rows = act.daily.iter().map(|r| (r.day, r.key, r.group, 0, r.events, r.users));
    per_group_day(act, false, rows)
}

/// `group_event_daily`: one row per active (date, group key, group id, event).
pub fn group_event_daily(act: &Activity) -> Table {
    let rows = act
        .event_daily
        .iter()
        .map(|r| (r.day, r.key, r.group, r.event, r.events, r.users));
    per_group_day(act, true, rows)
}

/// (day, key rank, group rank, event rank, key, group, event, events, users): sorting
/// by the leading ranks gives the output order.
type Row = (Day, u32, u32, u32, u16, Sym, Sym, i64, i64);

fn per_group_day(
    act: &Activity,
    by_event: bool,
    aggregates: impl ExactSizeIterator<Item = (Day, u16, Sym, Sym, i64, i64)>,
) -> Table {
    let key_rank = super::key_ranks(&act.keys);
    let group_rank = sym_ranks(&act.groups);
    let event_rank = if by_event { sym_ranks(&act.events) } else { Vec::new() };
    let mut rows: Vec<Row> = Vec::with_capacity(aggregates.len());
    for (day, key, group, event, events, users) in aggregates {
        let er = if by_event { event_rank[event as usize] } else { 0 };
        rows.push((
            day,
            key_rank[key as usize],
            group_rank[group as usize],
            er,
            key,
            group,
            event,
            events,
            users,
        ));
    }
    rows.sort_unstable();
    let n = rows.len();
    let mut cols = Cols::new()
        .date("date", rows.iter().map(|r| r.0).collect())
        .utf8(
            "group_key",
            rows.iter().map(|r| act.keys[r.4 as usize].clone()).collect(),
        )
        .utf8(
            "group_id",
            rows.iter().map(|r| act.groups.resolve(r.5).to_string()).collect(),
        );
    if by_event {
        cols = cols.utf8(
            "event",
            rows.iter().map(|r| act.events.resolve(r.6).to_string()).collect(),
        );
    }
    let mut events = Vec::with_capacity(n);
    let mut users = Vec::with_capacity(n);
    for r in &rows {
        events.push(r.7);
        users.push(r.8);
    }
    let name = if by_event { "group_event_daily" } else { "group_daily" };
    cols.int64("events", events)
        .int64("users", users)
        .table(name, Some("date"))
}
