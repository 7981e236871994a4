//! `group_retention` (SPEC §6): weekly cohorts of groups (by first active week) and how
//! many of each cohort are active again `week_offset` weeks later.
//!
//! Per key, cohort weeks run from the key's first to its last active week, and each cohort
//! has offsets 0 up to the key's last active week, so the rows form a triangle. Counts
//! live in one flat triangular vector indexed by (cohort, offset).

use super::lifecycle::{key_ranks, per_key, Period, Periods};
use super::{Activity, Cols, Table};
use crate::calendar::Day;

/// The `group_retention` table.
pub fn group_retention(act: &Activity) -> Table {
    let active = act.active_days();
    let rank = key_ranks(&act.keys);
    // (cohort date, key rank, offset, key, cohort groups, retained groups)
    let mut rows: Vec<(Day, u32, i64, u16, i64, i64)> = Vec::new();
    for (key, triples, first, last) in per_key(active) {
        let weeks = Periods::new(Period::Week, first, last);
        let n = weeks.len();
        // Cohort c has offsets 0..n-c; its row block starts at c*n - c(c-1)/2.
        let base = |c: usize| c * n - c * c.saturating_sub(1) / 2;
        let mut retained = vec![0i64; base(n)];
        for group in triples.chunk_by(|a, b| a.1 == b.1) {
            let mut cohort: Option<usize> = None;
            weeks.runs(group.iter().map(|t| t.2), |w, _| {
                // The first week a group is seen in is its cohort (offset 0).
                let c = *cohort.get_or_insert(w);
                retained[base(c) + (w - c)] += 1;
            });
        }
        let r = rank[key as usize];
        for (c, &start) in weeks.starts().iter().enumerate() {
            let block = &retained[base(c)..base(c) + (n - c)];
            // Offset 0 counts every group of the cohort: that is the cohort size.
            let size = block[0];
            rows.extend(
                block
                    .iter()
                    .enumerate()
                    .map(|(o, &g)| (start, r, o as i64, key, size, g)),
            );
        }
    }
    rows.sort_unstable_by_key(|r| (r.0, r.1, r.2));

    let n = rows.len();
    let mut cohort_date = Vec::with_capacity(n);
    let mut group_key = Vec::with_capacity(n);
    let mut week_offset = Vec::with_capacity(n);
    let mut cohort_groups = Vec::with_capacity(n);
    let mut retained_groups = Vec::with_capacity(n);
    for (d, _, o, key, size, g) in rows {
        cohort_date.push(d);
        group_key.push(act.keys[key as usize].clone());
        week_offset.push(o);
        cohort_groups.push(size);
        retained_groups.push(g);
    }
    Cols::new()
        .date("cohort_date", cohort_date)
        .utf8("group_key", group_key)
        .int64("week_offset", week_offset)
        .int64("cohort_groups", cohort_groups)
        .int64("retained_groups", retained_groups)
        .table("group_retention", None)
}

#[cfg(test)]
mod tests {
    use super::super::lifecycle::testkit::*;
    use super::*;
    use crate::calendar;
    use crate::tables::Values;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// Rows as (cohort_date, group_key, week_offset, cohort_groups, retained_groups).
    fn rows(t: &Table) -> Vec<(Day, String, i64, i64, i64)> {
        let Some(Values::Date(d)) = t.column("cohort_date") else {
            panic!()
        };
        let Some(Values::Utf8(k)) = t.column("group_key") else {
            panic!()
        };
        let int = |name| match t.column(name) {
            Some(Values::Int64(v)) => v.clone(),
            _ => panic!("{name}"),
        };
        let (o, c, r) = (int("week_offset"), int("cohort_groups"), int("retained_groups"));
        (0..t.num_rows())
            .map(|i| (d[i], k[i].clone(), o[i], c[i], r[i]))
            .collect()
    }

    #[test]
    fn triangle_with_empty_cohort() {
        let w0 = ymd(2024, 1, 1); // a Monday
        let act = activity(
            &["k"],
            &[
                // a: weeks 0, 1, 3 (Sunday of week 1 is still week 1)
                (0, "a", at(2024, 1, 2, 5), "E", "u"),
                (0, "a", at(2024, 1, 14, 23), "E", "u"),
                (0, "a", at(2024, 1, 22, 0), "E", "u"),
                // b: cohort week 1, active weeks 1 and 2
                (0, "b", at(2024, 1, 8, 0), "E", ""),
                (0, "b", at(2024, 1, 15, 0), "E", ""),
                // c: cohort week 3
                (0, "c", at(2024, 1, 28, 12), "E", "v"),
            ],
        );
        let t = group_retention(&act);
        assert_eq!(t.name, "group_retention");
        assert_eq!(t.partition_by, None);
        let k = || "k".to_string();
        assert_eq!(
            rows(&t),
            vec![
                (w0, k(), 0, 1, 1),
                (w0, k(), 1, 1, 1),
                (w0, k(), 2, 1, 0),
                (w0, k(), 3, 1, 1),
                (w0 + 7, k(), 0, 1, 1),
                (w0 + 7, k(), 1, 1, 1),
                (w0 + 7, k(), 2, 1, 0),
                (w0 + 14, k(), 0, 0, 0), // nobody started in week 2: rows still present
                (w0 + 14, k(), 1, 0, 0),
                (w0 + 21, k(), 0, 1, 1),
            ]
        );
    }

    #[test]
    fn non_utc_days_and_key_order() {
        // 22:00 UTC Sunday is Monday in UTC+3: both hits land in the same week.
        let rows_in = [
            (0, "a", at(2024, 1, 7, 22), "E", "u"),
            (0, "a", at(2024, 1, 8, 1), "E", "u"),
            (1, "x", at(2024, 1, 8, 1), "E", "u"),
        ];
        let east = group_retention(&activity_shifted(&["zeta", "alpha"], &rows_in, 3 * HOUR_US));
        let w = ymd(2024, 1, 8);
        assert_eq!(
            rows(&east),
            vec![(w, "alpha".into(), 0, 1, 1), (w, "zeta".into(), 0, 1, 1)]
        );
        let utc = group_retention(&activity(&["zeta", "alpha"], &rows_in));
        assert_eq!(
            rows(&utc),
            vec![
                (w - 7, "zeta".into(), 0, 1, 1),
                (w - 7, "zeta".into(), 1, 1, 1),
                (w, "alpha".into(), 0, 1, 1),
                (w, "zeta".into(), 0, 0, 0),
            ]
        );
    }

    /// Straight from the definition: every cohort week, every offset, every group.
    fn model(act: &Activity) -> Table {
        let active: BTreeSet<(u16, u32, Day)> = act
            .hits
            .iter()
            .map(|h| (h.key, h.group, calendar::week_start(h.day)))
            .collect();
        let mut rows = Vec::new();
        for key in 0..act.keys.len() as u16 {
            let weeks: Vec<Day> = active.iter().filter(|t| t.0 == key).map(|t| t.2).collect();
            let Some(&first) = weeks.iter().min() else {
                continue;
            };
            let last = *weeks.iter().max().unwrap();
            let groups: BTreeSet<u32> = active.iter().filter(|t| t.0 == key).map(|t| t.1).collect();
            let cohort_of = |g: u32| {
                active
                    .iter()
                    .filter(|t| t.0 == key && t.1 == g)
                    .map(|t| t.2)
                    .min()
                    .unwrap()
            };
            for c in (first..=last).step_by(7) {
                let cohort: Vec<u32> = groups.iter().copied().filter(|&g| cohort_of(g) == c).collect();
                for o in 0..=(last - c) / 7 {
                    let kept = cohort
                        .iter()
                        .filter(|&&g| active.contains(&(key, g, c + 7 * o)))
                        .count();
                    rows.push((
                        c,
                        act.keys[key as usize].clone(),
                        o as i64,
                        cohort.len() as i64,
                        kept as i64,
                    ));
                }
            }
        }
        rows.sort();
        Cols::new()
            .date("cohort_date", rows.iter().map(|r| r.0).collect())
            .utf8("group_key", rows.iter().map(|r| r.1.clone()).collect())
            .int64("week_offset", rows.iter().map(|r| r.2).collect())
            .int64("cohort_groups", rows.iter().map(|r| r.3).collect())
            .int64("retained_groups", rows.iter().map(|r| r.4).collect())
            .table("group_retention", None)
    }

    proptest! {
        #[test]
        fn matches_model((rows, offset) in arb_rows(120)) {
            let act = activity_shifted(&KEYS, &rows, offset);
            prop_assert_eq!(group_retention(&act), model(&act));
        }
    }
}
