//! `group_stickiness` (SPEC §6): per key and calendar month, the histogram of groups by
//! how many distinct days of the month they were active on.
//!
//! Rows are dense: every month from the key's first to its last active month, and
//! `active_days` 1 to that month's length (28..=31), zeros included.

use super::lifecycle::{key_ranks, per_key, Period, Periods};
use super::{Activity, Cols, Table};
use crate::calendar::{self, Day};

/// The longest month: the histogram's row width.
const MAX_DAYS: usize = 31;

/// The `group_stickiness` table.
pub fn group_stickiness(act: &Activity) -> Table {
    let active = act.active_days();
    let rank = key_ranks(&act.keys);
    // (month, key rank, key, histogram of the month: [groups active on 1..=31 days])
    let mut months: Vec<(Day, u32, u16, [i64; MAX_DAYS])> = Vec::new();
    for (key, triples, first, last) in per_key(active) {
        let periods = Periods::new(Period::Month, first, last);
        let mut hist = vec![[0i64; MAX_DAYS]; periods.len()];
        for group in triples.chunk_by(|a, b| a.1 == b.1) {
            // active_days() is distinct per (group, day), so a run's length is the count of
            // distinct active days in that month.
            periods.runs(group.iter().map(|t| t.2), |m, days| hist[m][days - 1] += 1);
        }
        let r = rank[key as usize];
        months.extend(periods.starts().iter().zip(hist).map(|(&m, h)| (m, r, key, h)));
    }
    months.sort_unstable_by_key(|m| (m.0, m.1));

    let mut month = Vec::new();
    let mut group_key = Vec::new();
    let mut active_days = Vec::new();
    let mut groups = Vec::new();
    for (m, _, key, hist) in months {
        let len = calendar::month_len(m) as usize;
        // Days past the month's length cannot be reached: those cells are always zero.
        for (d, &g) in hist[..len].iter().enumerate() {
            month.push(m);
            group_key.push(act.keys[key as usize].clone());
            active_days.push(d as i64 + 1);
            groups.push(g);
        }
    }
    Cols::new()
        .date("month", month)
        .utf8("group_key", group_key)
        .int64("active_days", active_days)
        .int64("groups", groups)
        .table("group_stickiness", None)
}

#[cfg(test)]
mod tests {
    use super::super::lifecycle::testkit::*;
    use super::*;
    use crate::tables::Values;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// Rows as (month, group_key, active_days, groups).
    fn rows(t: &Table) -> Vec<(Day, String, i64, i64)> {
        let Some(Values::Date(m)) = t.column("month") else {
            panic!()
        };
        let Some(Values::Utf8(k)) = t.column("group_key") else {
            panic!()
        };
        let Some(Values::Int64(a)) = t.column("active_days") else {
            panic!()
        };
        let Some(Values::Int64(g)) = t.column("groups") else {
            panic!()
        };
        (0..t.num_rows()).map(|i| (m[i], k[i].clone(), a[i], g[i])).collect()
    }

    /// Non-zero rows of one month, as (active_days, groups).
    fn nonzero(all: &[(Day, String, i64, i64)], month: Day) -> Vec<(i64, i64)> {
        all.iter()
            .filter(|r| r.0 == month && r.3 != 0)
            .map(|r| (r.2, r.3))
            .collect()
    }

    #[test]
    fn month_lengths_28_29_30_31() {
        let act = activity(
            &["k", "old"],
            &[
                // Jan 2024 (31): a on 3 distinct days (two hits on the 5th), b on 1 day.
                (0, "a", at(2024, 1, 5, 1), "E", "u"),
                (0, "a", at(2024, 1, 5, 20), "F", "u"),
                (0, "a", at(2024, 1, 6, 1), "E", "u"),
                (0, "a", at(2024, 1, 31, 23), "E", ""),
                (0, "b", at(2024, 1, 1, 0), "E", "v"),
                // Feb 2024 (29): a every day.
                (0, "a", at(2024, 2, 1, 0), "E", "u"),
                // Mar 2024 (31): nobody. Apr 2024 (30): b on the 30th.
                (0, "b", at(2024, 4, 30, 12), "E", "v"),
                // Feb 2023 (28), another key.
                (1, "z", at(2023, 2, 28, 12), "E", "v"),
            ]
            .into_iter()
            .chain((2..=29).map(|d| (0, "a", at(2024, 2, d, 3), "E", "u")))
            .collect::<Vec<_>>(),
        );
        let t = group_stickiness(&act);
        assert_eq!(t.name, "group_stickiness");
        assert_eq!(t.partition_by, None);
        let r = rows(&t);
        let count = |m: Day, k: &str| r.iter().filter(|x| x.0 == m && x.1 == k).count();
        assert_eq!(count(ymd(2023, 2, 1), "old"), 28);
        assert_eq!(count(ymd(2024, 1, 1), "k"), 31);
        assert_eq!(count(ymd(2024, 2, 1), "k"), 29);
        assert_eq!(count(ymd(2024, 3, 1), "k"), 31);
        assert_eq!(count(ymd(2024, 4, 1), "k"), 30);
        assert_eq!(r.len(), 28 + 31 + 29 + 31 + 30);
        assert_eq!(nonzero(&r, ymd(2024, 1, 1)), [(1, 1), (3, 1)]);
        assert_eq!(nonzero(&r, ymd(2024, 2, 1)), [(29, 1)]);
        assert_eq!(nonzero(&r, ymd(2024, 3, 1)), []);
        assert_eq!(nonzero(&r, ymd(2024, 4, 1)), [(1, 1)]);
        assert_eq!(nonzero(&r, ymd(2023, 2, 1)), [(1, 1)]);
        // Sorted by (month, group_key, active_days).
        assert_eq!(r[0], (ymd(2023, 2, 1), "old".into(), 1, 1));
        assert_eq!(r[27].2, 28);
        assert!(r
            .windows(2)
            .all(|w| (w[0].0, &w[0].1, w[0].2) < (w[1].0, &w[1].1, w[1].2)));
    }

    #[test]
    fn non_utc_days_move_across_months() {
        // 20:00 UTC on Jan 31 is Feb 1 in UTC+5; 01:00 UTC on Feb 1 is still Feb 1.
        let rows_in = [
            (0, "a", at(2024, 1, 31, 20), "E", "u"),
            (0, "a", at(2024, 2, 1, 1), "E", "u"),
        ];
        let east = rows(&group_stickiness(&activity_shifted(&["k"], &rows_in, 5 * HOUR_US)));
        assert_eq!(east.len(), 29);
        assert_eq!(nonzero(&east, ymd(2024, 2, 1)), [(1, 1)]);
        let utc = rows(&group_stickiness(&activity(&["k"], &rows_in)));
        assert_eq!(utc.len(), 31 + 29);
        assert_eq!(nonzero(&utc, ymd(2024, 1, 1)), [(1, 1)]);
        assert_eq!(nonzero(&utc, ymd(2024, 2, 1)), [(1, 1)]);
    }

    /// Straight from the definition: every month, every group, count its days.
    fn model(act: &Activity) -> Table {
        let active: BTreeSet<(u16, u32, Day)> = act.hits.iter().map(|h| (h.key, h.group, h.day)).collect();
        let mut rows = Vec::new();
        for key in 0..act.keys.len() as u16 {
            let days: Vec<Day> = active.iter().filter(|t| t.0 == key).map(|t| t.2).collect();
            let Some(&first) = days.iter().min() else {
                continue;
            };
            let last = *days.iter().max().unwrap();
            let groups: BTreeSet<u32> = active.iter().filter(|t| t.0 == key).map(|t| t.1).collect();
            let mut m = calendar::month_start(first);
            while m <= last {
                let end = calendar::next_month_start(m);
                let per_group: Vec<i64> = groups
                    .iter()
                    .map(|&g| (m..end).filter(|&d| active.contains(&(key, g, d))).count() as i64)
                    .collect();
                for n in 1..=(end - m) as i64 {
                    rows.push((
                        m,
                        act.keys[key as usize].clone(),
                        n,
                        per_group.iter().filter(|&&c| c == n).count() as i64,
                    ));
                }
                m = end;
            }
        }
        rows.sort();
        Cols::new()
            .date("month", rows.iter().map(|r| r.0).collect())
            .utf8("group_key", rows.iter().map(|r| r.1.clone()).collect())
            .int64("active_days", rows.iter().map(|r| r.2).collect())
            .int64("groups", rows.iter().map(|r| r.3).collect())
            .table("group_stickiness", None)
    }

    proptest! {
        #[test]
        fn matches_model((rows, offset) in arb_rows(120)) {
            let act = activity_shifted(&KEYS, &rows, offset);
            prop_assert_eq!(group_stickiness(&act), model(&act));
        }
    }
}
