//! `active_groups` (SPEC §6): per group key and date, distinct groups active that day
//! (DAU), in the 7 days ending that day (WAU) and in the 30 days ending that day (MAU),
//! dense from the key's first to its last active date.

use super::{key_ranks, per_key, Activity, Cols, Table};
use crate::calendar::Day;

/// Adds, for one group's sorted active `days`, 1 to every date of `[first, last]` covered
/// by at least one window `[d, d + width - 1]`. Overlapping windows are merged first so a
/// group counts once per date: that is what makes the count "distinct groups".
fn add_coverage(days: &[Day], width: i32, first: Day, last: Day, diff: &mut [i64]) {
    let mut run: Option<(Day, Day)> = None;
    let flush = |(lo, hi): (Day, Day), diff: &mut [i64]| {
        let hi = hi.min(last);
        diff[(lo - first) as usize] += 1;
        diff[(hi - first) as usize + 1] -= 1;
    };
    for &d in days {
        let (lo, hi) = (d, d + width - 1);
        run = match run {
            Some((rlo, rhi)) if lo <= rhi + 1 => Some((rlo, rhi.max(hi))),
            Some(prev) => {
                flush(prev, diff);
                Some((lo, hi))
            }
            None => Some((lo, hi)),
        };
    }
    if let Some(r) = run {
        flush(r, diff);
    }
}

pub fn active_groups(act: &Activity) -> Table {
    let active = act.active_days();
    let rank = key_ranks(&act.keys);
    // (day, key rank, key, dau, wau, mau)
    let mut rows: Vec<(Day, u32, u16, i64, i64, i64)> = Vec::new();
    for (key, triples, first, last) in per_key(active) {
        let len = (last - first + 1) as usize;
        let mut dau = vec![0i64; len];
        let mut wau = vec![0i64; len + 1];
        let mut mau = vec![0i64; len + 1];
        for g in triples.chunk_by(|a, b| a.1 == b.1) {
            let days: Vec<Day> = g.iter().map(|t| t.2).collect();
            for &d in &days {
                dau[(d - first) as usize] += 1;
            }
            add_coverage(&days, 7, first, last, &mut wau);
            add_coverage(&days, 30, first, last, &mut mau);
        }
        let (mut w, mut m) = (0i64, 0i64);
        for i in 0..len {
            w += wau[i];
            m += mau[i];
            rows.push((first + i as Day, rank[key as usize], key, dau[i], w, m));
        }
    }
    rows.sort_unstable();
    Cols::new()
        .date("date", rows.iter().map(|r| r.0).collect())
        .utf8(
            "group_key",
            rows.iter().map(|r| act.keys[r.2 as usize].clone()).collect(),
        )
        .int64("dau", rows.iter().map(|r| r.3).collect())
        .int64("wau", rows.iter().map(|r| r.4).collect())
        .int64("mau", rows.iter().map(|r| r.5).collect())
        .table("active_groups", Some("date"))
}
