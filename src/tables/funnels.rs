//! `group_funnels` (SPEC §6): for every configured funnel and step, how many groups of
//! the funnel's key completed steps 1..=step in order.
//!
//! Rules: each step's event is strictly later than the previous step's (an equal timestamp
//! does not count), every step is at most `window_days` after the step-1 event (inclusive),
//! any user of the group may do any step, and the best step-1 event counts.
//!
//! Per group, the times of each distinct step event are gathered into sorted lists (hits
//! come in time order), then every distinct step-1 time is tried as a start. For a fixed
//! start, taking the earliest qualifying occurrence of each next step is optimal (it leaves
//! the most room for the rest under the same deadline), and each step is one binary search,
//! so a group costs O(starts × steps × log n) rather than a scan per candidate.

use super::{Activity, Cols, Hit, Table};
use crate::intern::Sym;
use crate::job::Funnel;

const US_PER_DAY: i64 = 86_400_000_000;

/// The `group_funnels` table: one row per step of every funnel, in job order.
pub fn group_funnels(act: &Activity, funnels: &[Funnel]) -> Table {
    let mut funnel = Vec::new();
    let mut group_key = Vec::new();
    let mut step = Vec::new();
    let mut event = Vec::new();
    let mut groups = Vec::new();
    for f in funnels {
        let counts = step_counts(act, f);
        for (s, (name, n)) in f.steps.iter().zip(counts).enumerate() {
            funnel.push(f.name.clone());
            group_key.push(f.group_key.clone());
            step.push(s as i64 + 1);
            event.push(name.clone());
            groups.push(n);
        }
    }
    Cols::new()
        .utf8("funnel", funnel)
        .utf8("group_key", group_key)
        .int64("step", step)
        .utf8("event", event)
        .int64("groups", groups)
        .table("group_funnels", None)
}

/// Number of groups that reached each step of `f` (index 0 = step 1).
fn step_counts(act: &Activity, f: &Funnel) -> Vec<i64> {
    let mut counts = vec![0i64; f.steps.len()];
    let Some(key) = act.keys.iter().position(|k| *k == f.group_key) else {
        return counts; // unknown key: no groups, all zeros
    };
    let key = key as u16;
    // A step whose event never occurs cannot be reached, nor any after it: only the prefix
    // of steps with a known event matters.
    let step_events: Vec<Sym> = f.steps.iter().map_while(|s| act.events.get(s)).collect();
    if step_events.is_empty() {
        return counts;
    }
    // Steps may repeat an event: keep one time list per distinct event, `slot` maps
    // each step to its list.
    let mut distinct: Vec<Sym> = Vec::new();
    let slot: Vec<usize> = step_events
        .iter()
        .map(|&e| {
            distinct.iter().position(|&d| d == e).unwrap_or_else(|| {
                distinct.push(e);
                distinct.len() - 1
            })
        })
        .collect();
    let window = i64::from(f.window_days).saturating_mul(US_PER_DAY);

    // Hits are sorted by key first: the key's hits are one contiguous run.
    let lo = act.hits.partition_point(|h| h.key < key);
    let hi = act.hits.partition_point(|h| h.key <= key);
    let mut times: Vec<Vec<i64>> = vec![Vec::new(); distinct.len()];
    for group in act.hits[lo..hi].chunk_by(|a: &Hit, b: &Hit| a.group == b.group) {
        times.iter_mut().for_each(Vec::clear);
        for h in group {
            // Within a group hits are in time order, so every list comes out sorted.
            if let Some(k) = distinct.iter().position(|&d| d == h.event) {
                times[k].push(h.time_us);
            }
        }
        let reached = furthest_step(&times, &slot, window);
        for c in &mut counts[..reached] {
            *c += 1;
        }
    }
    counts
}

/// The furthest step (a count, 0..=slot.len()) one group reaches over all its starts.
///
/// `times[slot[s]]` are the sorted times of step `s`'s event.
fn furthest_step(times: &[Vec<i64>], slot: &[usize], window: i64) -> usize {
    let mut best = 0;
    let mut last_start = None;
    for &t0 in &times[slot[0]] {
        // Equal start times give equal results.
        if last_start == Some(t0) {
            continue;
        }
        last_start = Some(t0);
        let deadline = t0.saturating_add(window);
        let (mut prev, mut reached) = (t0, 1);
        for &k in &slot[1..] {
            let list = &times[k];
            // Earliest occurrence strictly after the previous step.
            match list.get(list.partition_point(|&t| t <= prev)) {
                Some(&t) if t <= deadline => {
                    prev = t;
                    reached += 1;
                }
                _ => break,
            }
        }
        best = best.max(reached);
        if best == slot.len() {
            break; // cannot do better
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::super::lifecycle::testkit::*;
    use super::*;
    use crate::tables::Values;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, BTreeSet};

    fn funnel(name: &str, key: &str, steps: &[&str], window_days: u32) -> Funnel {
        Funnel {
            name: name.into(),
            group_key: key.into(),
            steps: steps.iter().map(|s| s.to_string()).collect(),
            window_days,
        }
    }

    /// The `groups` column.
    fn groups(t: &Table) -> Vec<i64> {
        match t.column("groups") {
            Some(Values::Int64(v)) => v.clone(),
            _ => panic!(),
        }
    }

    fn one(rows: &[Row<&str>], f: Funnel) -> Vec<i64> {
        groups(&group_funnels(&activity(&["company"], rows), &[f]))
    }

    #[test]
    fn first_start_fails_later_start_completes() {
        let rows = [
            (0, "g", at(2024, 3, 1, 0), "A", "u1"),
            (0, "g", at(2024, 3, 3, 0), "B", "u1"), // two days after the first A: too late
            (0, "g", at(2024, 3, 4, 0), "A", "u2"),
            (0, "g", at(2024, 3, 4, 1), "B", "u3"), // another user: still the group
            (0, "g", at(2024, 3, 4, 2), "C", ""),
        ];
        let t = group_funnels(
            &activity(&["company"], &rows),
            &[funnel("f", "company", &["A", "B", "C"], 1)],
        );
        assert_eq!(t.name, "group_funnels");
        assert_eq!(t.partition_by, None);
        let names: Vec<_> = t.columns.iter().map(|c| c.name).collect();
        assert_eq!(names, ["funnel", "group_key", "step", "event", "groups"]);
        assert_eq!(t.column("step"), Some(&Values::Int64(vec![1, 2, 3])));
        assert_eq!(
            t.column("event"),
            Some(&Values::Utf8(vec!["A".into(), "B".into(), "C".into()]))
        );
        assert_eq!(groups(&t), [1, 1, 1]);
    }

    #[test]
    fn same_timestamp_does_not_count() {
        let t = at(2024, 3, 1, 0);
        assert_eq!(
            one(
                &[(0, "g", t, "A", "u"), (0, "g", t, "B", "v")],
                funnel("f", "company", &["A", "B"], 7)
            ),
            [1, 0]
        );
        // Nor does a step before the start.
        assert_eq!(
            one(
                &[(0, "g", t, "A", "u"), (0, "g", t - 1, "B", "v")],
                funnel("f", "company", &["A", "B"], 7)
            ),
            [1, 0]
        );
        assert_eq!(
            one(
                &[(0, "g", t, "A", "u"), (0, "g", t + 1, "B", "v")],
                funnel("f", "company", &["A", "B"], 7)
            ),
            [1, 1]
        );
    }

    #[test]
    fn window_is_inclusive_to_the_microsecond() {
        let t = at(2024, 3, 1, 7);
        let rows = [
            (0, "in", t, "A", "u"),
            (0, "in", t + 3 * DAY_US, "B", "u"), // exactly window_days later: counts
            (0, "out", t, "A", "u"),
            (0, "out", t + 3 * DAY_US + 1, "B", "u"), // one µs over: does not
        ];
        assert_eq!(one(&rows, funnel("f", "company", &["A", "B"], 3)), [2, 1]);
        // A later step is measured from step 1, not from the previous step.
        let chain = [
            (0, "g", t, "A", "u"),
            (0, "g", t + 2 * DAY_US, "B", "u"),
            (0, "g", t + 4 * DAY_US, "C", "u"),
        ];
        assert_eq!(one(&chain, funnel("f", "company", &["A", "B", "C"], 3)), [1, 1, 0]);
        // window_days = 0: only the start instant itself, which no later step can share.
        assert_eq!(
            one(
                &[(0, "g", t, "A", "u"), (0, "g", t + 1, "B", "u")],
                funnel("f", "company", &["A", "B"], 0)
            ),
            [1, 0]
        );
        // A huge window does not overflow.
        assert_eq!(
            one(
                &[(0, "g", t, "A", "u"), (0, "g", t + 1, "B", "u")],
                funnel("f", "company", &["A", "B"], u32::MAX)
            ),
            [1, 1]
        );
    }

    #[test]
    fn repeated_step_needs_distinct_later_events() {
        let t = at(2024, 3, 1, 0);
        let f = || funnel("f", "company", &["A", "A"], 1);
        assert_eq!(one(&[(0, "g", t, "A", "u")], f()), [1, 0]);
        assert_eq!(one(&[(0, "g", t, "A", "u"), (0, "g", t, "A", "v")], f()), [1, 0]);
        assert_eq!(one(&[(0, "g", t, "A", "u"), (0, "g", t + 5, "A", "u")], f()), [1, 1]);
    }

    #[test]
    fn zeros_for_unknown_keys_events_and_job_order() {
        let t = at(2024, 3, 1, 0);
        let act = activity(
            &["zeta", "alpha"],
            &[(0, "g", t, "A", "u"), (0, "h", t + 1, "B", "u"), (1, "x", t, "A", "u")],
        );
        let fs = [
            funnel("z", "nope", &["A"], 1),
            funnel("y", "zeta", &["A", "Missing", "B"], 1),
            funnel("x", "zeta", &["Missing"], 1),
            funnel("w", "alpha", &["A", "B"], 1),
            funnel("v", "zeta", &["A", "B"], 1), // A and B in different groups
        ];
        let out = group_funnels(&act, &fs);
        let Some(Values::Utf8(name)) = out.column("funnel") else {
            panic!()
        };
        let Some(Values::Utf8(key)) = out.column("group_key") else {
            panic!()
        };
        assert_eq!(name, &["z", "y", "y", "y", "x", "w", "w", "v", "v"]);
        assert_eq!(
            key,
            &["nope", "zeta", "zeta", "zeta", "zeta", "alpha", "alpha", "zeta", "zeta"]
        );
        assert_eq!(
            out.column("step"),
            Some(&Values::Int64(vec![1, 1, 2, 3, 1, 1, 2, 1, 2]))
        );
        assert_eq!(groups(&out), [0, 1, 0, 0, 0, 1, 0, 1, 0]);
        assert_eq!(group_funnels(&act, &[]).num_rows(), 0);
    }

    #[test]
    fn best_start_is_not_the_first_or_the_last() {
        // Start 1 reaches B only; start 2 reaches C; start 3 reaches nothing after it.
        let d = DAY_US;
        let t = at(2024, 3, 1, 0);
        let rows = [
            (0, "g", t, "A", "u"),
            (0, "g", t + 1, "B", "u"),
            (0, "g", t + 10 * d, "A", "u"),
            (0, "g", t + 10 * d + 2, "B", "u"),
            (0, "g", t + 10 * d + 3, "C", "u"),
            (0, "g", t + 20 * d, "A", "u"),
        ];
        assert_eq!(one(&rows, funnel("f", "company", &["A", "B", "C"], 1)), [1, 1, 1]);
        // The non-UTC day of a hit plays no part: only time_us does.
        let act = activity_shifted(&["company"], &rows, 9 * HOUR_US);
        assert_eq!(
            groups(&group_funnels(&act, &[funnel("f", "company", &["A", "B", "C"], 1)])),
            [1, 1, 1]
        );
    }

    /// Exhaustive search over every choice of events: the furthest step one group reaches.
    fn model_reach(hits: &BTreeSet<(i64, String)>, steps: &[String], window: i64) -> usize {
        fn rest(hits: &BTreeSet<(i64, String)>, steps: &[String], prev: i64, deadline: i64) -> usize {
            let Some(step) = steps.first() else { return 0 };
            hits.iter()
                .filter(|(t, e)| e == step && *t > prev && *t <= deadline)
                .map(|(t, _)| 1 + rest(hits, &steps[1..], *t, deadline))
                .max()
                .unwrap_or(0)
        }
        hits.iter()
            .filter(|(_, e)| *e == steps[0])
            .map(|(t, _)| 1 + rest(hits, &steps[1..], *t, t + window))
            .max()
            .unwrap_or(0)
    }

    fn model(act: &Activity, funnels: &[Funnel]) -> Table {
        let mut per_group: BTreeMap<(String, String), BTreeSet<(i64, String)>> = BTreeMap::new();
        for h in &act.hits {
            let k = (
                act.keys[h.key as usize].clone(),
                act.groups.resolve(h.group).to_string(),
            );
            per_group
                .entry(k)
                .or_default()
                .insert((h.time_us, act.events.resolve(h.event).to_string()));
        }
        let (mut name, mut key, mut step, mut event, mut groups) = (vec![], vec![], vec![], vec![], vec![]);
        for f in funnels {
            let reach: Vec<usize> = per_group
                .iter()
                .filter(|((k, _), _)| *k == f.group_key)
                .map(|(_, hits)| model_reach(hits, &f.steps, f.window_days as i64 * DAY_US))
                .collect();
            for (s, e) in f.steps.iter().enumerate() {
                name.push(f.name.clone());
                key.push(f.group_key.clone());
                step.push(s as i64 + 1);
                event.push(e.clone());
                groups.push(reach.iter().filter(|&&r| r > s).count() as i64);
            }
        }
        Cols::new()
            .utf8("funnel", name)
            .utf8("group_key", key)
            .int64("step", step)
            .utf8("event", event)
            .int64("groups", groups)
            .table("group_funnels", None)
    }

    fn arb_funnels() -> impl Strategy<Value = Vec<Funnel>> {
        let step = prop_oneof![Just("A"), Just("B"), Just("C"), Just("X")];
        let key = prop_oneof![Just("zeta"), Just("alpha"), Just("nope")];
        let one = (key, proptest::collection::vec(step, 1..=4), 0u32..5);
        proptest::collection::vec(one, 0..4).prop_map(|fs| {
            fs.into_iter()
                .enumerate()
                .map(|(i, (k, steps, w))| funnel(&format!("f{i}"), k, &steps, w))
                .collect()
        })
    }

    proptest! {
        #[test]
        fn matches_model((rows, offset) in arb_rows(15), funnels in arb_funnels()) {
            let act = activity_shifted(&KEYS, &rows, offset);
            prop_assert_eq!(group_funnels(&act, &funnels), model(&act, &funnels));
        }
    }
}
