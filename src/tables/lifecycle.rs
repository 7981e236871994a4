//! `group_lifecycle` (SPEC §6): per group key, period kind (day, week, month) and period,
//! how many groups were new, returning, resurrecting or went dormant.
//!
//! Also home of [`Periods`], the calendar-period index that `group_retention` (weeks) and
//! `group_stickiness` (months) share: every table maps a group's sorted active days onto
//! dense period indices of its key's range and counts into plain vectors.

use super::{Activity, Cols, Table};
use crate::calendar::{self, Day};
use crate::intern::Sym;

/// A kind of calendar period. The derive order (day < week < month) is the row order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    pub(crate) const ALL: [Period; 3] = [Period::Day, Period::Week, Period::Month];

    /// The value of the `period` column.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Period::Day => "day",
            Period::Week => "week",
            Period::Month => "month",
        }
    }

    /// First day of the period that contains `day`.
    pub(crate) fn start(self, day: Day) -> Day {
        match self {
            Period::Day => day,
            Period::Week => calendar::week_start(day),
            Period::Month => calendar::month_start(day),
        }
    }

    /// First day of the period after the one that starts on `start`.
    fn next(self, start: Day) -> Day {
        match self {
            Period::Day => start + 1,
            Period::Week => start + 7,
            Period::Month => calendar::next_month_start(start),
        }
    }
}

/// The consecutive periods of one kind covering `[first, last]`, indexed from 0.
pub(crate) struct Periods {
    starts: Vec<Day>,
    /// First day after the last period.
    end: Day,
}

impl Periods {
    /// The periods from the one containing `first` to the one containing `last` (inclusive).
    pub(crate) fn new(kind: Period, first: Day, last: Day) -> Self {
        debug_assert!(first <= last);
        let mut starts = Vec::new();
        let mut s = kind.start(first);
        while s <= last {
            starts.push(s);
            s = kind.next(s);
        }
        Periods { starts, end: s }
    }

    /// Start day of every period, in order.
    pub(crate) fn starts(&self) -> &[Day] {
        &self.starts
    }

    pub(crate) fn len(&self) -> usize {
        self.starts.len()
    }

    /// Calls `f(period index, number of days)` once per period touched by `days`, in order.
    ///
    /// `days` must be ascending and distinct (one group's active days). Only a day that
    /// leaves the current period costs a binary search, so this is linear in practice.
    pub(crate) fn runs(&self, days: impl IntoIterator<Item = Day>, mut f: impl FnMut(usize, usize)) {
        let mut cur: Option<(usize, Day)> = None; // (index, first day after it)
        let mut count = 0;
        for d in days {
            if let Some((i, end)) = cur {
                if d < end {
                    count += 1;
                    continue;
                }
                f(i, count);
            }
            debug_assert!(self.starts[0] <= d && d < self.end, "day outside the range");
            let i = self.starts.partition_point(|&s| s <= d) - 1;
            cur = Some((i, self.starts.get(i + 1).copied().unwrap_or(self.end)));
            count = 1;
        }
        if let Some((i, _)) = cur {
            f(i, count);
        }
    }
}

/// The active (key, group, day) triples split per key: `(key, triples, first day, last day)`.
///
/// Keys without hits are absent: they have no active range, hence no rows.
pub(crate) fn per_key(active: &[(u16, Sym, Day)]) -> impl Iterator<Item = (u16, &[(u16, Sym, Day)], Day, Day)> {
    active.chunk_by(|a, b| a.0 == b.0).map(|k| {
        // Sorted by group first, so the day range needs a scan.
        let (lo, hi) = k
            .iter()
            .fold((Day::MAX, Day::MIN), |(lo, hi), t| (lo.min(t.2), hi.max(t.2)));
        (k[0].0, k, lo, hi)
    })
}

/// Rank of each key index when keys are ordered by name (ties by index, for determinism).
pub(crate) fn key_ranks(keys: &[String]) -> Vec<u32> {
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_by(|&a, &b| keys[a].cmp(&keys[b]).then(a.cmp(&b)));
    let mut rank = vec![0u32; keys.len()];
    for (r, &k) in order.iter().enumerate() {
        rank[k] = r as u32;
    }
    rank
}

/// The `group_lifecycle` table: dense over every period of each key's active range.
pub fn group_lifecycle(act: &Activity) -> Table {
    let active = act.active_days();
    let rank = key_ranks(&act.keys);
    // (date, period kind, key rank, key, [new, returning, resurrecting, dormant])
    let mut rows: Vec<(Day, Period, u32, u16, [i64; 4])> = Vec::new();
    for (key, triples, first, last) in per_key(active) {
        for kind in Period::ALL {
            let periods = Periods::new(kind, first, last);
            let n = periods.len();
            let mut counts = vec![[0i64; 4]; n];
            for group in triples.chunk_by(|a, b| a.1 == b.1) {
                let mut prev: Option<usize> = None;
                periods.runs(group.iter().map(|t| t.2), |i, _| {
                    match prev {
                        None => counts[i][0] += 1,
                        Some(p) if p + 1 == i => counts[i][1] += 1,
                        Some(p) => {
                            counts[i][2] += 1;
                            // Active in p, not in p + 1 (there is a gap): dormant there.
                            counts[p + 1][3] += 1;
                        }
                    }
                    prev = Some(i);
                });
                // Went quiet after its last period; beyond the key's range there is no row.
                if let Some(p) = prev.filter(|&p| p + 1 < n) {
                    counts[p + 1][3] += 1;
                }
            }
            let r = rank[key as usize];
            rows.extend(periods.starts().iter().zip(counts).map(|(&d, c)| (d, kind, r, key, c)));
        }
    }
    rows.sort_unstable_by_key(|r| (r.0, r.1, r.2));

    let n = rows.len();
    let (mut date, mut period, mut group_key) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let mut c: [Vec<i64>; 4] = std::array::from_fn(|_| Vec::with_capacity(n));
    for (d, kind, _, key, counts) in rows {
        date.push(d);
        period.push(kind.name().to_string());
        group_key.push(act.keys[key as usize].clone());
        for (col, v) in c.iter_mut().zip(counts) {
            col.push(v);
        }
    }
    let [new, returning, resurrecting, dormant] = c;
    Cols::new()
        .date("date", date)
        .utf8("period", period)
        .utf8("group_key", group_key)
        .int64("new", new)
        .int64("returning", returning)
        .int64("resurrecting", resurrecting)
        .int64("dormant", dormant)
        .table("group_lifecycle", Some("date"))
}

/// Test helpers shared by the table modules' tests.
#[cfg(test)]
pub(crate) mod testkit {
    use super::super::{Activity, Hit};
    use crate::calendar::{day_of, Day};
    use crate::intern::{user_key, Interner, NO_USER};
    use chrono::NaiveDate;
    use proptest::prelude::*;

    pub(crate) const DAY_US: i64 = 86_400_000_000;
    pub(crate) const HOUR_US: i64 = 3_600_000_000;

    /// One event row: (key index, group id, UTC µs, event name, user id; "" = no user).
    pub(crate) type Row<S> = (u16, S, i64, S, S);

    pub(crate) fn ymd(y: i32, m: u32, d: u32) -> Day {
        day_of(NaiveDate::from_ymd_opt(y, m, d).unwrap())
    }

    /// UTC µs of `hour`:00 on the given date.
    pub(crate) fn at(y: i32, m: u32, d: u32, hour: i64) -> i64 {
        ymd(y, m, d) as i64 * DAY_US + hour * HOUR_US
    }

    /// An Activity with UTC days.
    pub(crate) fn activity<S: AsRef<str>>(keys: &[&str], rows: &[Row<S>]) -> Activity {
        activity_shifted(keys, rows, 0)
    }

    /// An Activity whose days are those of a zone `offset_us` ahead of UTC (as attribution
    /// would give for a non-UTC `timezone`), hits sorted as [`Hit`] documents.
    pub(crate) fn activity_shifted<S: AsRef<str>>(keys: &[&str], rows: &[Row<S>], offset_us: i64) -> Activity {
        let (mut groups, mut events) = (Interner::new(), Interner::new());
        let hits: Vec<Hit> = rows
            .iter()
            .map(|(key, group, time_us, event, user)| Hit {
                key: *key,
                group: groups.intern(group.as_ref()),
                time_us: *time_us,
                event: events.intern(event.as_ref()),
                user: if user.as_ref().is_empty() {
                    NO_USER
                } else {
                    user_key(user.as_ref())
                },
                day: (*time_us + offset_us).div_euclid(DAY_US) as Day,
            })
            .collect();
        Activity::from_hits(keys.iter().map(|k| k.to_string()).collect(), groups, events, hits)
    }

    /// Key names whose name order is the reverse of their index order.
    pub(crate) const KEYS: [&str; 2] = ["zeta", "alpha"];

    /// Random rows: 2 keys, 10 groups, `span_days` days from 2023-12-20 (so Feb 2024 and
    /// 30/31-day months are crossed), times on a 6-hour grid (equal timestamps happen),
    /// events A..C, a few users; plus a zone offset in µs (-12h..+14h).
    pub(crate) fn arb_rows(span_days: i64) -> impl Strategy<Value = (Vec<Row<String>>, i64)> {
        let row = (0u16..2, 0..10u32, 0..span_days, 0..4i64, 0..3u8, 0..4u8);
        (proptest::collection::vec(row, 0..80), -12i64..=14).prop_map(|(rows, off_h)| {
            let base = ymd(2023, 12, 20) as i64 * DAY_US;
            let rows = rows
                .into_iter()
                .map(|(k, g, d, slot, e, u)| {
                    let user = if u == 0 { String::new() } else { format!("u{u}") };
                    (
                        k,
                        format!("g{g}"),
                        base + d * DAY_US + slot * 6 * HOUR_US,
                        ((b'A' + e) as char).to_string(),
                        user,
                    )
                })
                .collect();
            (rows, off_h * HOUR_US)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;
    use crate::tables::Values;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    /// Rows of one period kind as (date, new, returning, resurrecting, dormant).
    fn rows_of(t: &Table, kind: &str, key: &str) -> Vec<(Day, i64, i64, i64, i64)> {
        let Some(Values::Date(date)) = t.column("date") else {
            panic!()
        };
        let Some(Values::Utf8(period)) = t.column("period") else {
            panic!()
        };
        let Some(Values::Utf8(gk)) = t.column("group_key") else {
            panic!()
        };
        let int = |name| match t.column(name) {
            Some(Values::Int64(v)) => v.clone(),
            _ => panic!("{name}"),
        };
        let (n, r, s, d) = (int("new"), int("returning"), int("resurrecting"), int("dormant"));
        (0..t.num_rows())
            .filter(|&i| period[i] == kind && gk[i] == key)
            .map(|i| (date[i], n[i], r[i], s[i], d[i]))
            .collect()
    }

    #[test]
    fn dormant_two_days_then_resurrecting() {
        let d0 = ymd(2024, 3, 4); // a Monday
        let act = activity(
            &["company"],
            &[
                (0, "a", at(2024, 3, 4, 10), "E", "u"),
                (0, "a", at(2024, 3, 5, 10), "E", "u"),
                (0, "a", at(2024, 3, 8, 10), "E", "u"),
                (0, "b", at(2024, 3, 5, 9), "E", ""),
            ],
        );
        let t = group_lifecycle(&act);
        assert_eq!(t.name, "group_lifecycle");
        assert_eq!(t.partition_by, Some("date"));
        let names: Vec<_> = t.columns.iter().map(|c| c.name).collect();
        assert_eq!(
            names,
            [
                "date",
                "period",
                "group_key",
                "new",
                "returning",
                "resurrecting",
                "dormant"
            ]
        );
        assert_eq!(
            rows_of(&t, "day", "company"),
            vec![
                (d0, 1, 0, 0, 0),     // a new
                (d0 + 1, 1, 1, 0, 0), // b new, a returning
                (d0 + 2, 0, 0, 0, 2), // both gone quiet
                (d0 + 3, 0, 0, 0, 0), // a still dormant: counted once, not again
                (d0 + 4, 0, 0, 1, 0), // a back after two idle days
            ]
        );
        assert_eq!(rows_of(&t, "week", "company"), vec![(d0, 2, 0, 0, 0)]);
        assert_eq!(rows_of(&t, "month", "company"), vec![(ymd(2024, 3, 1), 2, 0, 0, 0)]);
        // Sorted by date, then day < week < month.
        let Some(Values::Date(date)) = t.column("date") else {
            panic!()
        };
        let Some(Values::Utf8(period)) = t.column("period") else {
            panic!()
        };
        assert_eq!((date[0], period[0].as_str()), (ymd(2024, 3, 1), "month"));
        assert_eq!((date[1], period[1].as_str()), (d0, "day"));
        assert_eq!((date[2], period[2].as_str()), (d0, "week"));
    }

    #[test]
    fn weeks_start_monday_and_months_resurrect() {
        // Sunday 2024-01-14 and Monday 2024-01-15 are different weeks.
        let act = activity(
            &["k"],
            &[
                (0, "a", at(2024, 1, 14, 12), "E", "u"),
                (0, "a", at(2024, 1, 15, 12), "E", "u"),
                (0, "a", at(2024, 4, 2, 12), "E", "u"),
            ],
        );
        let t = group_lifecycle(&act);
        let weeks = rows_of(&t, "week", "k");
        assert_eq!(weeks[0], (ymd(2024, 1, 8), 1, 0, 0, 0));
        assert_eq!(weeks[1], (ymd(2024, 1, 15), 0, 1, 0, 0));
        assert_eq!(weeks[2], (ymd(2024, 1, 22), 0, 0, 0, 1));
        assert_eq!(*weeks.last().unwrap(), (ymd(2024, 4, 1), 0, 0, 1, 0));
        assert_eq!(weeks.len(), 13);
        assert!(weeks.windows(2).all(|w| w[1].0 - w[0].0 == 7));
        assert_eq!(
            rows_of(&t, "month", "k"),
            vec![
                (ymd(2024, 1, 1), 1, 0, 0, 0),
                (ymd(2024, 2, 1), 0, 0, 0, 1),
                (ymd(2024, 3, 1), 0, 0, 0, 0),
                (ymd(2024, 4, 1), 0, 0, 1, 0),
            ]
        );
    }

    #[test]
    fn non_utc_days_are_used_as_given() {
        // 23:00 UTC on Sunday is Monday in UTC+2: the week is the next one.
        let rows = [(0, "a", at(2024, 1, 14, 23), "E", "u")];
        let utc = group_lifecycle(&activity(&["k"], &rows));
        let east = group_lifecycle(&activity_shifted(&["k"], &rows, 2 * HOUR_US));
        assert_eq!(rows_of(&utc, "day", "k"), vec![(ymd(2024, 1, 14), 1, 0, 0, 0)]);
        assert_eq!(rows_of(&utc, "week", "k"), vec![(ymd(2024, 1, 8), 1, 0, 0, 0)]);
        assert_eq!(rows_of(&east, "day", "k"), vec![(ymd(2024, 1, 15), 1, 0, 0, 0)]);
        assert_eq!(rows_of(&east, "week", "k"), vec![(ymd(2024, 1, 15), 1, 0, 0, 0)]);
    }

    #[test]
    fn keys_sorted_by_name_and_empty_activity() {
        let act = activity(
            &["zeta", "alpha", "unused"],
            &[
                (0, "a", at(2024, 1, 1, 0), "E", ""),
                (1, "a", at(2024, 1, 1, 0), "E", ""),
            ],
        );
        let t = group_lifecycle(&act);
        let Some(Values::Utf8(gk)) = t.column("group_key") else {
            panic!()
        };
        assert_eq!(gk, &["alpha", "zeta", "alpha", "zeta", "alpha", "zeta"]);
        let empty = group_lifecycle(&activity::<&str>(&["k"], &[]));
        assert_eq!(empty.num_rows(), 0);
        assert_eq!(empty.columns.len(), 7);
    }

    #[test]
    fn periods_runs_counts_days() {
        let p = Periods::new(Period::Month, ymd(2024, 1, 31), ymd(2024, 3, 1));
        assert_eq!(p.starts(), &[ymd(2024, 1, 1), ymd(2024, 2, 1), ymd(2024, 3, 1)]);
        let mut got = Vec::new();
        p.runs(
            [ymd(2024, 1, 31), ymd(2024, 2, 1), ymd(2024, 2, 29), ymd(2024, 3, 1)],
            |i, n| got.push((i, n)),
        );
        assert_eq!(got, [(0, 1), (1, 2), (2, 1)]);
    }

    /// The obvious definition, period by period and group by group.
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
            for kind in Period::ALL {
                let next = |s: Day| match kind {
                    Period::Day => s + 1,
                    Period::Week => s + 7,
                    Period::Month => calendar::next_month_start(s),
                };
                let mut all = vec![kind.start(first)];
                while next(*all.last().unwrap()) <= last {
                    all.push(next(*all.last().unwrap()));
                }
                for (i, &p) in all.iter().enumerate() {
                    let mut c = [0i64; 4];
                    for &g in &groups {
                        let set: BTreeSet<Day> = active
                            .iter()
                            .filter(|t| t.0 == key && t.1 == g)
                            .map(|t| kind.start(t.2))
                            .collect();
                        let now = set.contains(&p);
                        let prev = i > 0 && set.contains(&all[i - 1]);
                        let earlier = set.iter().any(|&q| q < p);
                        let first_ever = set.iter().next() == Some(&p);
                        c[0] += (now && first_ever) as i64;
                        c[1] += (now && prev) as i64;
                        c[2] += (now && !prev && earlier) as i64;
                        c[3] += (!now && prev) as i64;
                    }
                    rows.push((p, kind, act.keys[key as usize].clone(), c));
                }
            }
        }
        rows.sort();
        Cols::new()
            .date("date", rows.iter().map(|r| r.0).collect())
            .utf8("period", rows.iter().map(|r| r.1.name().to_string()).collect())
            .utf8("group_key", rows.iter().map(|r| r.2.clone()).collect())
            .int64("new", rows.iter().map(|r| r.3[0]).collect())
            .int64("returning", rows.iter().map(|r| r.3[1]).collect())
            .int64("resurrecting", rows.iter().map(|r| r.3[2]).collect())
            .int64("dormant", rows.iter().map(|r| r.3[3]).collect())
            .table("group_lifecycle", Some("date"))
    }

    proptest! {
        #[test]
        fn matches_model((rows, offset) in arb_rows(120)) {
            let act = activity_shifted(&KEYS, &rows, offset);
            prop_assert_eq!(group_lifecycle(&act), model(&act));
        }
    }
}
