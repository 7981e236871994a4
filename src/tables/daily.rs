//! `group_daily` and `group_event_daily` (SPEC §6): events and distinct users per active
//! group and date, and per active group, date and event name.

use super::{sym_ranks, Activity, Cols, Table};
use crate::calendar::Day;
use crate::intern::{Sym, NO_USER};

/// Events and distinct non-empty users of each run of equal `(day, event?)` in `pairs`,
/// which must be sorted; `emit(day, event, events, users)` per run.
fn count_runs(pairs: &[(Day, Sym, Sym)], mut emit: impl FnMut(Day, Sym, i64, i64)) {
    for run in pairs.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1) {
        let mut users = 0i64;
        let mut last = None;
        for &(_, _, u) in run {
            if u != NO_USER && last != Some(u) {
                users += 1;
                last = Some(u);
            }
        }
        emit(run[0].0, run[0].1, run.len() as i64, users);
    }
}

/// `group_daily`: one row per active (date, group key, group id).
pub fn group_daily(act: &Activity) -> Table {
    per_group_day(act, false)
}

/// `group_event_daily`: one row per active (date, group key, group id, event).
pub fn group_event_daily(act: &Activity) -> Table {
    per_group_day(act, true)
}

/// (day, key rank, group rank, event rank, key, group, event, events, users): sorting
/// by the leading ranks gives the output order.
type Row = (Day, u32, u32, u32, u16, Sym, Sym, i64, i64);

fn per_group_day(act: &Activity, by_event: bool) -> Table {
    let key_rank = super::key_ranks(&act.keys);
    let group_rank = sym_ranks(&act.groups);
    let event_rank = if by_event { sym_ranks(&act.events) } else { Vec::new() };
    let mut rows: Vec<Row> = Vec::new();
    let mut pairs: Vec<(Day, Sym, Sym)> = Vec::new();
    for hits in act.by_group() {
        let (key, group) = (hits[0].key, hits[0].group);
        pairs.clear();
        pairs.extend(hits.iter().map(|h| (h.day, if by_event { h.event } else { 0 }, h.user)));
        pairs.sort_unstable();
        count_runs(&pairs, |day, event, events, users| {
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
        });
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
