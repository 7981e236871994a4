//! Model-based end-to-end tests: random Mixpanel exports (events and `/groups` operations,
//! split over plain and gzipped NDJSON files, with duplicates and bad lines) go through the
//! real pipeline, and every row of every output table is compared with a slow, obvious model
//! of SPEC §4–§6 written here from scratch (BTreeMaps, loops over every date, brute force).
//!
//! The model reads the very lines the test wrote, interprets them itself, and never calls
//! the crate. Decisions the SPEC leaves open follow what the crate documents: a missing
//! `$insert_id` is part of the dedup key; a copy without ingest time is older than any copy
//! with one, ties go to the later copy in input order; dedup happens before
//! `exclude_events` and effective dates; `clock = "ingest"` falls back to the event time;
//! an op applied to a live group sets `updated_at` even when it changed nothing.
//!
//! `GROUPETL_MODEL_SEED=N` runs just seed N (and keeps its folder, printed on failure).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

use super::common;

const US_PER_S: i64 = 1_000_000;
const US_PER_DAY: i64 = 86_400 * US_PER_S;

const KEYS: [&str; 2] = ["company_id", "team_id"];
const EVENT_NAMES: [&str; 6] = [
    "Sign Up",
    "Create Project",
    "Invite Teammate",
    "View",
    "$groupidentify",
    "Noise",
];

// ---------------------------------------------------------------------------------------
// Random inputs
// ---------------------------------------------------------------------------------------

fn pick<'a, T>(rng: &mut StdRng, xs: &'a [T]) -> &'a T {
    &xs[rng.random_range(0..xs.len())]
}

/// One group key of the job.
#[derive(Debug, Clone)]
struct KeySpec {
    key: &'static str,
    /// (TOML text, UTC µs the text means)
    effective_from: Option<(String, i64)>,
    clock_ingest: bool,
    name_property: Option<&'static str>,
}

#[derive(Debug, Clone)]
struct FunnelSpec {
    name: String,
    key: &'static str,
    steps: Vec<&'static str>,
    window_days: i64,
}

/// Everything one random case consists of: the job and the lines of every input file.
#[derive(Debug)]
struct Case {
    tz: Tz,
    keys: Vec<KeySpec>,
    /// `None`: the default list is used (not written in the job).
    exclude: Option<Vec<String>>,
    order_time: bool,
    /// Output format: Parquet, else CSV (read back alike by `common::read_table`).
    parquet: bool,
    funnels: Vec<FunnelSpec>,
    /// (file name, gzipped, lines), in path order.
    event_files: Vec<(String, bool, Vec<String>)>,
    /// By event file name: how it is written when it is Parquet (see [`with_parquet_events`]).
    event_parquet: BTreeMap<String, ParquetLayout>,
    profile_files: Vec<(String, bool, Vec<String>)>,
    bad_lines: usize,
}

/// Writes JSON with every object's keys in reverse order, so the inputs are not already in
/// the sorted order the outputs must have.
fn write_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            out.push('{');
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            keys.reverse();
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_json(&m[k.as_str()], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn line_of(v: &Value) -> String {
    let mut s = String::new();
    write_json(v, &mut s);
    s
}

/// A value for the `company_id` property (or `None`: property absent). Index 0 of the
/// result tells which "shape" it was, so every shape gets its own activity days.
fn company_value(i: usize) -> Option<Value> {
    match i {
        0 => None,
        1 => Some(json!("acme")),
        2 => Some(json!("globex")),
        3 => Some(json!("Acme")),
        4 => Some(json!("initech")),
        5 => Some(json!(1042)),
        6 => Some(json!(1042.0)),
        7 => Some(json!("1042")),
        8 => Some(json!(2.5)),
        9 => Some(json!(["acme", "acme", 1042])),
        10 => Some(json!(["globex", "", null, true, {"a": 1}])),
        11 => Some(json!([])),
        12 => Some(json!("")),
        13 => Some(Value::Null),
        14 => Some(json!(true)),
        15 => Some(json!({"id": "acme"})),
        16 => Some(json!([1042, "1042", 1042.0, "initech"])),
        17 => Some(json!(" umbrella")),
        _ => Some(json!("umbrella")),
    }
}
const COMPANY_SHAPES: usize = 19;

fn team_value(rng: &mut StdRng) -> Option<Value> {
    match rng.random_range(0..14) {
        0 | 1 => None,
        2 | 3 => Some(json!("t1")),
        4 => Some(json!("t2")),
        5 => Some(json!("T1")),
        6 => Some(json!(7)),
        7 => Some(json!(7.0)),
        8 => Some(json!(["t1", "t2", "t1"])),
        9 => Some(json!("")),
        10 => Some(Value::Null),
        11 => Some(json!(false)),
        12 => Some(json!([null, "t3", 7])),
        _ => Some(json!("t3")),
    }
}

fn user_value(rng: &mut StdRng) -> Option<Value> {
    match rng.random_range(0..12) {
        0 => None,
        1 => Some(json!("")),
        2 => Some(Value::Null),
        3 => Some(json!(7)),
        4 => Some(json!("7")),
        i => Some(json!(format!("u{}", i % 5))),
    }
}

/// A user value that means the same user as `u` (for duplicate copies).
fn same_user(rng: &mut StdRng, u: &Option<Value>) -> Option<Value> {
    let empty = matches!(u, None | Some(Value::Null)) || u.as_ref().and_then(Value::as_str) == Some("");
    if empty {
        return match rng.random_range(0..3) {
            0 => None,
            1 => Some(json!("")),
            _ => Some(Value::Null),
        };
    }
    match u {
        Some(v) if v == &json!(7) || v == &json!("7") => Some(if rng.random_bool(0.5) { json!(7) } else { json!("7") }),
        other => other.clone(),
    }
}

/// JSON for an event time of `us`: seconds when whole and the coin says so, else ms.
fn time_value(rng: &mut StdRng, us: i64) -> Value {
    assert_eq!(us % 1000, 0);
    if us % US_PER_S == 0 && rng.random_bool(0.6) {
        json!(us / US_PER_S)
    } else {
        json!(us / 1000)
    }
}

struct BaseEvent {
    name: &'static str,
    user: Option<Value>,
    time_us: i64,
    insert_id: Option<Value>,
    ingest_ms: Option<i64>,
}

#[allow(clippy::too_many_arguments)]
fn event_record(
    rng: &mut StdRng,
    name: &str,
    user: &Option<Value>,
    time_us: i64,
    insert_id: &Option<Value>,
    ingest_ms: Option<i64>,
    company_shape: usize,
    team: Option<Value>,
) -> Value {
    let mut props = serde_json::Map::new();
    props.insert("time".into(), time_value(rng, time_us));
    if let Some(u) = user {
        props.insert("distinct_id".into(), u.clone());
    }
    if let Some(i) = insert_id {
        props.insert("$insert_id".into(), i.clone());
    }
    if let Some(ms) = ingest_ms {
        props.insert("mp_processing_time_ms".into(), json!(ms));
    }
    if let Some(v) = company_value(company_shape) {
        props.insert("company_id".into(), v);
    }
    if let Some(v) = team {
        props.insert("team_id".into(), v);
    }
    if rng.random_bool(0.2) {
        props.insert("$browser".into(), json!("Chrome"));
    }
    json!({"event": name, "properties": Value::Object(props)})
}

fn prop_value(rng: &mut StdRng, key: &str) -> Value {
    match key {
        "name" | "title" => pick(
            rng,
            &[
                json!("Acme Corp"),
                json!("Globex"),
                json!(42),
                Value::Null,
                json!({"short": "A", "long": "Acme"}),
                json!(true),
                json!(""),
                json!([1, "a"]),
            ],
        )
        .clone(),
        "plan" => pick(rng, &[json!("free"), json!("pro"), Value::Null]).clone(),
        "tags" => pick(
            rng,
            &[json!(["a"]), json!(["a", 1, "1"]), json!("not-a-list"), json!([])],
        )
        .clone(),
        "n" => pick(rng, &[json!(1), json!(2.5), Value::Null, json!(-3)]).clone(),
        _ => pick(
            rng,
            &[json!({"zip": "02139", "city": "Cambridge"}), json!({"city": "X"})],
        )
        .clone(),
    }
}

const PROP_KEYS: [&str; 6] = ["name", "title", "plan", "tags", "n", "addr"];

fn payload(rng: &mut StdRng, op: &str) -> Value {
    match op {
        "$set" | "$set_once" => {
            let mut m = serde_json::Map::new();
            for _ in 0..rng.random_range(1..=3) {
                let k = *pick(rng, &PROP_KEYS);
                m.insert(k.into(), prop_value(rng, k));
            }
            Value::Object(m)
        }
        "$unset" => {
            let n = rng.random_range(1..=2);
            Value::Array(
                (0..n)
                    .map(|_| json!(*pick(rng, &["name", "title", "plan", "tags", "missing", "addr"])))
                    .collect(),
            )
        }
        "$union" => {
            let mut m = serde_json::Map::new();
            for _ in 0..rng.random_range(1..=2) {
                let k = *pick(rng, &["tags", "flags", "plan", "name"]);
                let n = rng.random_range(0..=4);
                let items: Vec<Value> = (0..n)
                    .map(|_| pick(rng, &[json!(1), json!("1"), json!("a"), json!("b"), json!(2.5)]).clone())
                    .collect();
                m.insert(k.into(), Value::Array(items));
            }
            Value::Object(m)
        }
        "$remove" => {
            let mut m = serde_json::Map::new();
            for _ in 0..rng.random_range(1..=2) {
                let k = *pick(rng, &["tags", "flags", "plan"]);
                m.insert(
                    k.into(),
                    pick(
                        rng,
                        &[
                            json!(1),
                            json!("1"),
                            json!(1),
                            json!("1"),
                            json!("a"),
                            json!("b"),
                            json!("free"),
                        ],
                    )
                    .clone(),
                );
            }
            Value::Object(m)
        }
        _ => pick(rng, &[json!(""), Value::Null]).clone(),
    }
}

fn generate(rng: &mut StdRng) -> Case {
    let tz: Tz = *pick(
        rng,
        &[chrono_tz::UTC, chrono_tz::America::New_York, chrono_tz::Asia::Kolkata],
    );
    // Starts that cross a year end, a leap February, and both US DST changes.
    let base = *pick(
        rng,
        &[
            NaiveDate::from_ymd_opt(2024, 1, 1).unwrap(),
            NaiveDate::from_ymd_opt(2023, 12, 10).unwrap(),
            NaiveDate::from_ymd_opt(2024, 2, 17).unwrap(),
            NaiveDate::from_ymd_opt(2024, 3, 2).unwrap(),
            NaiveDate::from_ymd_opt(2024, 10, 25).unwrap(),
        ],
    );
    let span = rng.random_range(8..=75i64);
    let base_us = base.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_micros();

    // Group keys: one with an effective date inside the data, one without.
    let with_from = rng.random_range(0..2);
    let mut keys = Vec::new();
    for (i, key) in KEYS.iter().enumerate() {
        let effective_from = (i == with_from).then(|| {
            let day = base + chrono::Days::new(rng.random_range(span / 4..=3 * span / 4) as u64);
            match rng.random_range(0..3) {
                0 => {
                    let us = tz
                        .from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
                        .earliest()
                        .unwrap()
                        .timestamp_micros();
                    (day.format("%Y-%m-%d").to_string(), us)
                }
                1 => {
                    let h = rng.random_range(0..24);
                    let text = format!("{}T{h:02}:30:00Z", day.format("%Y-%m-%d"));
                    let us = DateTime::parse_from_rfc3339(&text).unwrap().timestamp_micros();
                    (text, us)
                }
                _ => {
                    let text = format!("{}T01:15:00+05:30", day.format("%Y-%m-%d"));
                    let us = DateTime::parse_from_rfc3339(&text).unwrap().timestamp_micros();
                    (text, us)
                }
            }
        });
        keys.push(KeySpec {
            key,
            effective_from,
            clock_ingest: rng.random_bool(0.5),
            name_property: match (i, rng.random_range(0..3)) {
                (0, _) => Some("name"),
                (_, 0) => None,
                (_, 1) => Some("title"),
                _ => Some("name"),
            },
        });
    }
    if rng.random_bool(0.5) {
        keys.reverse();
    }
    let exclude = match rng.random_range(0..3) {
        0 => None,
        1 => Some(vec!["$groupidentify".to_string(), "Noise".to_string()]),
        _ => Some(vec![]),
    };
    let order_time = rng.random_bool(0.5);
    let mut funnels = Vec::new();
    for (i, key) in KEYS.iter().enumerate() {
        if i == 1 && rng.random_bool(0.5) {
            continue;
        }
        let n = rng.random_range(2..=3);
        let steps: Vec<&'static str> = (0..n)
            .map(|_| {
                *pick(
                    rng,
                    &[
                        "Sign Up",
                        "Create Project",
                        "Invite Teammate",
                        "View",
                        "Sign Up",
                        "View",
                        "$groupidentify",
                    ],
                )
            })
            .collect();
        funnels.push(FunnelSpec {
            name: format!("f{i}"),
            key,
            steps,
            window_days: rng.random_range(1..=10),
        });
    }

    // Now and then more files than the reader's parallel window (and names whose path order
    // is not their number order: e10 < e2).
    let n_event_files = if rng.random_bool(0.1) {
        rng.random_range(30..=45)
    } else {
        rng.random_range(2..=3)
    };
    let mut event_files: Vec<(String, bool, Vec<String>)> = (0..n_event_files)
        .map(|i| {
            let gz = rng.random_bool(0.4);
            (format!("e{i}.ndjson{}", if gz { ".gz" } else { "" }), gz, Vec::new())
        })
        .collect();
    // Events: each company shape has its own active days, so groups come and go.
    let pools: Vec<Vec<i64>> = (0..COMPANY_SHAPES)
        .map(|_| {
            let n = rng.random_range(1..=12);
            (0..n).map(|_| rng.random_range(0..span)).collect()
        })
        .collect();
    let n_base = rng.random_range(40..=220);
    let mut bases: Vec<BaseEvent> = Vec::new();
    for i in 0..n_base {
        let shape = rng.random_range(0..COMPANY_SHAPES);
        let day = *pick(rng, &pools[shape]);
        // Mostly whole seconds, some with milliseconds; a few right at midnight (or 1 s
        // before it) in UTC, New York (EDT and EST) and Kolkata.
        let secs = if rng.random_bool(0.15) {
            pick(rng, &[0i64, 86_399, 14_399, 14_400, 17_999, 18_000, 66_599, 66_600]).to_owned()
        } else {
            rng.random_range(0..86_400)
        };
        let ms = if rng.random_bool(0.25) {
            rng.random_range(0..1000)
        } else {
            0
        };
        let time_us = base_us + day * US_PER_DAY + secs * US_PER_S + ms * 1000;
        let name = *pick(
            rng,
            &[
                EVENT_NAMES[0],
                EVENT_NAMES[1],
                EVENT_NAMES[2],
                EVENT_NAMES[3],
                EVENT_NAMES[3],
                EVENT_NAMES[4],
                EVENT_NAMES[5],
            ],
        );
        let user = user_value(rng);
        let insert_id = match rng.random_range(0..10) {
            0..=2 => None,
            3 => Some(json!(i)),
            _ => Some(json!(format!("i{i}"))),
        };
        let ingest_ms = rng.random_bool(0.65).then(|| {
            time_us / 1000
                + if rng.random_bool(0.1) {
                    0
                } else {
                    rng.random_range(0..3 * 86_400_000)
                }
        });
        let team = team_value(rng);
        let rec = event_record(rng, name, &user, time_us, &insert_id, ingest_ms, shape, team);
        let f = rng.random_range(0..n_event_files);
        event_files[f].2.push(line_of(&rec));
        bases.push(BaseEvent {
            name,
            user,
            time_us,
            insert_id,
            ingest_ms,
        });
    }
    // Boundaries: events right at a key's effective date (by its clock), and funnel steps
    // at the same instant as the previous step or exactly `window_days` after step 1.
    let mut extra: Vec<Value> = Vec::new();
    for k in &keys {
        let Some((_, from)) = &k.effective_from else { continue };
        for delta_ms in [-1i64, 0, 0, 1, 0] {
            let at = from + delta_ms * 1000;
            // With the ingest clock, the event itself happened earlier.
            let (time_us, ingest_ms) = if k.clock_ingest && rng.random_bool(0.7) {
                (at - rng.random_range(0..2 * 86_400) * US_PER_S, Some(at / 1000))
            } else {
                (at, rng.random_bool(0.5).then_some(at / 1000 + 5_000))
            };
            let team = if k.key == "team_id" {
                Some(json!("t1"))
            } else {
                team_value(rng)
            };
            let shape = if k.key == "company_id" {
                1
            } else {
                rng.random_range(0..COMPANY_SHAPES)
            };
            let name = *pick(rng, &EVENT_NAMES[..4]);
            let user = user_value(rng);
            let iid = Some(json!(format!("b{}", extra.len())));
            extra.push(event_record(rng, name, &user, time_us, &iid, ingest_ms, shape, team));
        }
    }
    for f in &funnels {
        for _ in 0..rng.random_range(1..=4) {
            let t0 = base_us + rng.random_range(0..span * 86_400) * US_PER_S;
            let end = t0 + f.window_days * US_PER_DAY;
            let mut times = vec![t0];
            for s in 1..f.steps.len() {
                let prev = times[s - 1];
                times.push(match rng.random_range(0..4) {
                    0 => prev,
                    1 => end,
                    2 => end + 1000,
                    _ => prev + rng.random_range(1..=((end - prev) / 1000).max(1)) * 1000,
                });
            }
            let (shape, team) = if f.key == "company_id" {
                (*pick(rng, &[2usize, 4, 17, 18]), team_value(rng))
            } else {
                (
                    rng.random_range(0..COMPANY_SHAPES),
                    Some(pick(rng, &[json!("t2"), json!("T1"), json!(7)]).clone()),
                )
            };
            for (s, t) in times.into_iter().enumerate() {
                let user = user_value(rng);
                let iid = Some(json!(format!("f{}", extra.len())));
                let ingest = Some(t / 1000 + 60_000);
                extra.push(event_record(
                    rng,
                    f.steps[s],
                    &user,
                    t,
                    &iid,
                    ingest,
                    shape,
                    team.clone(),
                ));
            }
        }
    }
    for rec in extra {
        let f = rng.random_range(0..n_event_files);
        let at = rng.random_range(0..=event_files[f].2.len());
        event_files[f].2.insert(at, line_of(&rec));
    }

    // Duplicates (same name, user, time, insert id; other ingest time and group values) and
    // siblings (same name, user and time, another insert id: not duplicates).
    for _ in 0..rng.random_range(0..=n_base / 3) {
        let b = &bases[rng.random_range(0..bases.len())];
        let shape = rng.random_range(0..COMPANY_SHAPES);
        let user = same_user(rng, &b.user);
        let rec = if rng.random_bool(0.8) {
            let ingest_ms = match rng.random_range(0..5) {
                0 => None,
                1 => b.ingest_ms,
                2 => b.ingest_ms.map(|m| m - rng.random_range(1..100_000_000)),
                _ => Some(b.ingest_ms.unwrap_or(b.time_us / 1000) + rng.random_range(1..100_000_000)),
            };
            // The same insert id, maybe spelled as a string instead of a number.
            let insert_id = match &b.insert_id {
                Some(Value::Number(n)) if rng.random_bool(0.5) => Some(json!(n.to_string())),
                other => other.clone(),
            };
            let team = team_value(rng);
            event_record(rng, b.name, &user, b.time_us, &insert_id, ingest_ms, shape, team)
        } else {
            let insert_id = match &b.insert_id {
                None => Some(json!("sib")),
                Some(_) if rng.random_bool(0.5) => None,
                Some(_) => Some(json!(format!("sib{}", rng.random_range(0..1000)))),
            };
            let team = team_value(rng);
            event_record(
                rng,
                b.name,
                &user,
                b.time_us,
                &insert_id,
                Some(b.time_us / 1000),
                shape,
                team,
            )
        };
        let f = rng.random_range(0..n_event_files);
        let at = rng.random_range(0..=event_files[f].2.len());
        event_files[f].2.insert(at, line_of(&rec));
    }

    // Profile operations.
    let n_profile_files = if rng.random_bool(0.1) {
        rng.random_range(11..=40)
    } else {
        rng.random_range(2..=3)
    };
    let mut profile_files: Vec<(String, bool, Vec<String>)> = (0..n_profile_files)
        .map(|i| {
            let gz = rng.random_bool(0.4);
            (format!("p{i}.ndjson{}", if gz { ".gz" } else { "" }), gz, Vec::new())
        })
        .collect();
    let op_times: Vec<i64> = (0..rng.random_range(3..=10))
        .map(|_| {
            base_us + rng.random_range(0..span * 86_400) * US_PER_S + if rng.random_bool(0.3) { 250_000 } else { 0 }
        })
        .collect();
    for _ in 0..rng.random_range(10..=70) {
        let (key, id) = match rng.random_range(0..10) {
            0..=5 => (
                "company_id",
                pick(
                    rng,
                    &[
                        json!("acme"),
                        json!("globex"),
                        json!(1042),
                        json!("1042"),
                        json!("Acme"),
                        json!("initech"),
                    ],
                )
                .clone(),
            ),
            6..=8 => ("team_id", pick(rng, &[json!("t1"), json!("t2"), json!(7)]).clone()),
            _ => ("project_id", json!("p1")),
        };
        let op = *pick(
            rng,
            &[
                "$set",
                "$set",
                "$set",
                "$set_once",
                "$set_once",
                "$unset",
                "$union",
                "$union",
                "$union",
                "$remove",
                "$remove",
                "$remove",
                "$delete",
            ],
        );
        let mut body = serde_json::Map::new();
        body.insert("$group_key".into(), json!(key));
        body.insert("$group_id".into(), id);
        body.insert(op.into(), payload(rng, op));
        if order_time || rng.random_bool(0.75) {
            let us = *pick(rng, &op_times);
            body.insert("$time".into(), time_value(rng, us));
        }
        if rng.random_bool(0.2) {
            body.insert("$token".into(), json!("tok"));
        }
        let f = rng.random_range(0..n_profile_files);
        profile_files[f].2.push(line_of(&Value::Object(body)));
    }

    // A blank line is no record (and no reject).
    if rng.random_bool(0.2) {
        let f = rng.random_range(0..event_files.len());
        let at = rng.random_range(0..=event_files[f].2.len());
        event_files[f].2.insert(at, "  ".to_string());
    }

    // Bad lines, each in a random place.
    let bad_lines = rng.random_range(0..=3);
    for _ in 0..bad_lines {
        let (files, line) = match rng.random_range(0..4) {
            0 => (&mut event_files, "{\"event\": \"View\", \"properties\": {".to_string()),
            1 => (&mut profile_files, "not json at all".to_string()),
            2 => (
                &mut event_files,
                line_of(
                    &json!({"properties": {"time": base_us / US_PER_S, "distinct_id": "u1", "company_id": "acme"}}),
                ),
            ),
            _ => (
                &mut profile_files,
                line_of(
                    &json!({"$group_key": "company_id", "$group_id": "acme", "$set": {"plan": "x"}, "$unset": ["plan"]}),
                ),
            ),
        };
        let f = rng.random_range(0..files.len());
        let at = rng.random_range(0..=files[f].2.len());
        files[f].2.insert(at, line);
    }

    Case {
        tz,
        keys,
        exclude,
        order_time,
        parquet: rng.random_bool(0.5),
        funnels,
        event_files,
        event_parquet: BTreeMap::new(),
        profile_files,
        bad_lines,
    }
}

impl Case {
    /// Input files in arrival order: by path (all in one folder, so by name).
    fn sorted<'a>(&self, files: &'a [(String, bool, Vec<String>)]) -> Vec<&'a (String, bool, Vec<String>)> {
        let mut v: Vec<_> = files.iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    fn toml(&self, dir: &Path) -> String {
        let d = dir.display();
        let mut t = format!("version = 1\nname = \"model\"\ntimezone = \"{}\"\n", self.tz.name());
        if let Some(ex) = &self.exclude {
            let items: Vec<String> = ex.iter().map(|e| format!("{e:?}")).collect();
            t += &format!("exclude_events = [{}]\n", items.join(", "));
        }
        t += &format!("\n[events]\nformat = \"mixpanel\"\npaths = [\"{d}/events/*\"]\n");
        t += &format!(
            "\n[profiles]\nformat = \"mixpanel\"\npaths = [\"{d}/profiles/*.ndjson*\"]\norder = \"{}\"\n",
            if self.order_time { "time" } else { "arrival" }
        );
        for k in &self.keys {
            t += &format!("\n[[group_keys]]\nkey = \"{}\"\n", k.key);
            if let Some((text, _)) = &k.effective_from {
                t += &format!("effective_from = \"{text}\"\n");
            }
            t += &format!("clock = \"{}\"\n", if k.clock_ingest { "ingest" } else { "event" });
            if let Some(p) = k.name_property {
                t += &format!("name_property = \"{p}\"\n");
            }
        }
        t += &format!(
            "\n[output]\npath = \"{d}/out\"\nformat = \"{}\"\n",
            if self.parquet { "parquet" } else { "csv" }
        );
        for f in &self.funnels {
            let steps: Vec<String> = f.steps.iter().map(|s| format!("{s:?}")).collect();
            t += &format!(
                "\n[[funnels]]\nname = \"{}\"\ngroup_key = \"{}\"\nsteps = [{}]\nwindow_days = {}\n",
                f.name,
                f.key,
                steps.join(", "),
                f.window_days
            );
        }
        t
    }

    fn write(&self, dir: &Path) {
        for (sub, files) in [("events", &self.event_files), ("profiles", &self.profile_files)] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
            for (name, gz, lines) in files {
                let path = dir.join(sub).join(name);
                if let Some(layout) = self.event_parquet.get(name).filter(|_| sub == "events") {
                    write_parquet_events(&path, lines, layout);
                    continue;
                }
                let mut text = lines.join("\n");
                text.push('\n');
                if *gz {
                    let f = std::fs::File::create(&path).unwrap();
                    let mut enc = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
                    enc.write_all(text.as_bytes()).unwrap();
                    enc.finish().unwrap();
                } else {
                    std::fs::write(&path, text).unwrap();
                }
            }
        }
    }
}

/// How an event file's `time` column is typed when it is Parquet.
#[derive(Debug, Clone, Copy)]
enum TimeColumn {
    /// Integers as the lines have them: seconds or milliseconds, mixed, so the footer's
    /// range tells no span.
    AsWritten,
    /// Integer milliseconds throughout: a file of one day is built as it is read.
    Millis,
    /// Timestamps (µs, UTC).
    Stamps,
}

/// How one event file is written as Parquet.
#[derive(Debug, Clone, Copy)]
struct ParquetLayout {
    time: TimeColumn,
    /// `team_id` as a text column (when every value in the file is text); else a list.
    team_text: bool,
    /// Row groups of at most this many rows, and data pages of at most a third of that.
    rows_per_group: usize,
}

/// `case` with its events in Parquet files of typed top-level columns, as warehouse
/// exports of Mixpanel (and the benchmark) have them, read by the columnar reader:
/// regrouped by day in the job's zone when `by_day` (each file then holds one day, which
/// its reader builds as it reads it), else kept in their files. The same records in the
/// same order: the model reads the lines as before. A line that is not JSON cannot be a
/// row, so it goes, and its reject with it; blank lines were no records anyway.
fn with_parquet_events(mut case: Case, rng: &mut StdRng, by_day: bool) -> Case {
    let mut files: Vec<(String, Vec<String>)> = Vec::new();
    let mut not_json = 0;
    for (name, _, lines) in case.sorted(&case.event_files) {
        let mut kept = Vec::new();
        for line in lines.iter().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<Value>(line) {
                Ok(_) => kept.push(line.clone()),
                Err(_) => not_json += 1,
            }
        }
        let stem = name.split('.').next().unwrap();
        files.push((format!("{stem}.parquet"), kept));
    }
    case.bad_lines -= not_json;
    if by_day {
        let mut days: BTreeMap<NaiveDate, Vec<String>> = BTreeMap::new();
        for line in files.into_iter().flat_map(|(_, lines)| lines) {
            let v: Value = serde_json::from_str(&line).unwrap();
            let date = DateTime::<Utc>::from_timestamp_micros(epoch_us(&v["properties"]["time"]))
                .unwrap()
                .with_timezone(&case.tz)
                .date_naive();
            days.entry(date).or_default().push(line);
        }
        files = days
            .into_iter()
            .map(|(d, lines)| (format!("d{}.parquet", d.format("%Y%m%d")), lines))
            .collect();
    }
    // One time type for all files: days are built as read only when every file's footer
    // tells its span (mostly so, for files of a day).
    let time = match rng.random_range(0..if by_day { 8 } else { 4 }) {
        0 => TimeColumn::AsWritten,
        1 => TimeColumn::Stamps,
        _ => TimeColumn::Millis,
    };
    case.event_parquet = files
        .iter()
        .map(|(name, _)| {
            let layout = ParquetLayout {
                time,
                team_text: rng.random_bool(0.5),
                rows_per_group: *pick(rng, &[4, 30, 1 << 20]),
            };
            (name.clone(), layout)
        })
        .collect();
    case.event_files = files.into_iter().map(|(name, lines)| (name, false, lines)).collect();
    case
}

/// Writes the events of `lines` as Parquet columns `event`, `time`, `distinct_id`,
/// `$insert_id`, `mp_processing_time_ms`, `company_id` (a list of texts) and `team_id`
/// (text or a list), meaning what the lines mean (`group_ids`, `user_text`): numbers as
/// their text, an id that is no string or number left out (an empty list), an absent or
/// null value null.
fn write_parquet_events(path: &Path, lines: &[String], layout: &ParquetLayout) {
    use arrow_array::builder::{ListBuilder, StringBuilder};
    use arrow_array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
    use std::sync::Arc;

    let records: Vec<Value> = lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let prop = |r: &Value, k: &str| r.get("properties").and_then(|p| p.get(k)).cloned();
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(number_text(n)),
        _ => None,
    };
    let texts = |k: &str| -> ArrayRef {
        Arc::new(StringArray::from(
            records
                .iter()
                .map(|r| prop(r, k).and_then(|v| text(&v)))
                .collect::<Vec<_>>(),
        ))
    };
    let list = |k: &str| -> ArrayRef {
        let mut b = ListBuilder::new(StringBuilder::new());
        for r in &records {
            match prop(r, k) {
                None | Some(Value::Null) => b.append(false),
                Some(Value::Array(items)) => {
                    for item in &items {
                        match (item, text(item)) {
                            (Value::Null, _) => b.values().append_null(),
                            (_, Some(t)) => b.values().append_value(t),
                            (_, None) => {}
                        }
                    }
                    b.append(true);
                }
                Some(v) => {
                    if let Some(t) = text(&v) {
                        b.values().append_value(t);
                    }
                    b.append(true);
                }
            }
        }
        Arc::new(b.finish())
    };
    let times = records.iter().map(|r| prop(r, "time").unwrap());
    let time: ArrayRef = match layout.time {
        TimeColumn::AsWritten => Arc::new(Int64Array::from_iter_values(times.map(|t| t.as_i64().unwrap()))),
        TimeColumn::Millis => Arc::new(Int64Array::from_iter_values(times.map(|t| epoch_us(&t) / 1000))),
        TimeColumn::Stamps => {
            Arc::new(TimestampMicrosecondArray::from_iter_values(times.map(|t| epoch_us(&t))).with_timezone("UTC"))
        }
    };
    let ingest: ArrayRef = Arc::new(Int64Array::from(
        records
            .iter()
            .map(|r| prop(r, "mp_processing_time_ms").and_then(|m| m.as_i64()))
            .collect::<Vec<_>>(),
    ));
    let team_text = layout.team_text
        && records
            .iter()
            .all(|r| matches!(prop(r, "team_id"), None | Some(Value::Null | Value::String(_))));
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "event",
            Arc::new(StringArray::from(
                records
                    .iter()
                    .map(|r| r.get("event").and_then(Value::as_str))
                    .collect::<Vec<_>>(),
            )),
        ),
        ("time", time),
        ("distinct_id", texts("distinct_id")),
        ("$insert_id", texts("$insert_id")),
        ("mp_processing_time_ms", ingest),
        ("company_id", list("company_id")),
        ("team_id", if team_text { texts("team_id") } else { list("team_id") }),
    ];
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(layout.rows_per_group))
        .set_data_page_row_count_limit(layout.rows_per_group.div_ceil(3))
        .build();
    common::write_parquet(path, columns, props);
}

// ---------------------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------------------

/// Shortest decimal text of a JSON number (the inputs only hold small ones).
fn number_text(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else {
        let f = n.as_f64().unwrap();
        if f.fract() == 0.0 && f.abs() < 1e15 {
            format!("{}", f as i64)
        } else {
            format!("{f}")
        }
    }
}

/// Epoch seconds, or milliseconds above 1e11, as µs.
fn epoch_us(v: &Value) -> i64 {
    let i = v.as_i64().expect("integer time in generated data");
    if i > 100_000_000_000 {
        i * 1000
    } else {
        i * US_PER_S
    }
}

fn group_ids(v: Option<&Value>) -> BTreeSet<String> {
    fn one(v: &Value) -> Option<String> {
        match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(number_text(n)),
            _ => None,
        }
    }
    match v {
        Some(Value::Array(items)) => items.iter().filter_map(one).collect(),
        Some(v) => one(v).into_iter().collect(),
        None => BTreeSet::new(),
    }
}

fn user_text(v: Option<&Value>) -> Option<String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(Value::Number(n)) => Some(number_text(n)),
        _ => None,
    }
}

#[derive(Debug, Clone)]
struct Ev {
    name: String,
    user: Option<String>,
    time_us: i64,
    ingest_us: Option<i64>,
    insert_id: Option<String>,
    /// Group ids per key name.
    ids: BTreeMap<String, BTreeSet<String>>,
}

/// One attributed (event, key, group).
#[derive(Debug, Clone)]
struct Hit {
    key: String,
    group: String,
    time_us: i64,
    date: NaiveDate,
    event: String,
    user: Option<String>,
}

#[derive(Debug, Clone)]
struct OpRec {
    key: String,
    id: String,
    op: String,
    payload: Value,
    time_us: Option<i64>,
}

#[derive(Debug, Clone, Default)]
struct GroupState {
    props: BTreeMap<String, Value>,
    created: Option<i64>,
    updated: Option<i64>,
}

/// JSON text with the keys of every object sorted, compact.
fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let parts: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&m[k.as_str()])))
                .collect();
            format!("{{{}}}", parts.join(","))
        }
        Value::Array(a) => format!("[{}]", a.iter().map(canonical).collect::<Vec<_>>().join(",")),
        other => other.to_string(),
    }
}

fn ts_text(us: Option<i64>) -> String {
    us.map(|t| {
        DateTime::<Utc>::from_timestamp_micros(t)
            .unwrap()
            .format("%Y-%m-%dT%H:%M:%S%.6fZ")
            .to_string()
    })
    .unwrap_or_default()
}

fn week_start(d: NaiveDate) -> NaiveDate {
    d - chrono::Days::new(d.weekday().num_days_from_monday() as u64)
}

fn month_start(d: NaiveDate) -> NaiveDate {
    d.with_day(1).unwrap()
}

fn month_len(m: NaiveDate) -> u32 {
    let mut n = 0;
    let mut d = m;
    while d.month() == m.month() {
        n += 1;
        d = d.succ_opt().unwrap();
    }
    n
}

fn days(first: NaiveDate, last: NaiveDate) -> Vec<NaiveDate> {
    let mut out = Vec::new();
    let mut d = first;
    while d <= last {
        out.push(d);
        d = d.succ_opt().unwrap();
    }
    out
}

struct Model {
    rejects: usize,
    /// Event copies dropped by dedup.
    duplicates: usize,
    /// Distinct events dropped by `exclude_events`.
    excluded: usize,
    /// Distinct, not excluded events with at least one (key, group) hit.
    attributed: usize,
    tables: BTreeMap<&'static str, Vec<String>>,
}

fn model(case: &Case) -> Model {
    let mut rejects = 0;

    // §4: read events in input order (files by path, then line).
    let mut events: Vec<Ev> = Vec::new();
    for (_, _, lines) in case.sorted(&case.event_files) {
        for line in lines {
            if line.trim().is_empty() {
                continue;
            }
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                rejects += 1;
                continue;
            };
            let Some(name) = v.get("event").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
                rejects += 1;
                continue;
            };
            let p = &v["properties"];
            let mut ids = BTreeMap::new();
            for k in KEYS {
                ids.insert(k.to_string(), group_ids(p.get(k)));
            }
            events.push(Ev {
                name: name.to_string(),
                user: user_text(p.get("distinct_id")),
                time_us: epoch_us(&p["time"]),
                ingest_us: p.get("mp_processing_time_ms").map(|m| m.as_i64().unwrap() * 1000),
                insert_id: match p.get("$insert_id") {
                    Some(Value::String(s)) => Some(s.clone()),
                    Some(Value::Number(n)) => Some(number_text(n)),
                    _ => None,
                },
                ids,
            });
        }
    }

    // Dedup on (event, user, time, insert id): the latest ingested copy, ties to the later.
    type DedupKey = (String, Option<String>, i64, Option<String>);
    let mut kept: BTreeMap<DedupKey, Ev> = BTreeMap::new();
    let events_read = events.len();
    for e in events {
        let key = (e.name.clone(), e.user.clone(), e.time_us, e.insert_id.clone());
        match kept.get(&key) {
            Some(old) if e.ingest_us < old.ingest_us => {}
            _ => {
                kept.insert(key, e);
            }
        }
    }

    let duplicates = events_read - kept.len();

    // Attribution.
    let exclude: Vec<String> = case
        .exclude
        .clone()
        .unwrap_or_else(|| vec!["$groupidentify".into(), "$delete_group_property".into()]);
    let mut hits: Vec<Hit> = Vec::new();
    let (mut excluded, mut attributed) = (0, 0);
    for e in kept.values() {
        if exclude.contains(&e.name) {
            excluded += 1;
            continue;
        }
        let before = hits.len();
        for k in &case.keys {
            let clock = if k.clock_ingest {
                e.ingest_us.unwrap_or(e.time_us)
            } else {
                e.time_us
            };
            if let Some((_, from)) = &k.effective_from {
                if clock < *from {
                    continue;
                }
            }
            for g in &e.ids[k.key] {
                let date = DateTime::<Utc>::from_timestamp_micros(e.time_us)
                    .unwrap()
                    .with_timezone(&case.tz)
                    .date_naive();
                hits.push(Hit {
                    key: k.key.to_string(),
                    group: g.clone(),
                    time_us: e.time_us,
                    date,
                    event: e.name.clone(),
                    user: e.user.clone(),
                });
            }
        }
        if hits.len() > before {
            attributed += 1;
        }
    }

    let mut tables: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();

    // group_daily, group_event_daily
    // (events, distinct non-empty users)
    type Counts = (i64, BTreeSet<String>);
    let mut daily: BTreeMap<(NaiveDate, String, String), Counts> = BTreeMap::new();
    let mut event_daily: BTreeMap<(NaiveDate, String, String, String), Counts> = BTreeMap::new();
    for h in &hits {
        let c = daily.entry((h.date, h.key.clone(), h.group.clone())).or_default();
        c.0 += 1;
        c.1.extend(h.user.clone());
        let c = event_daily
            .entry((h.date, h.key.clone(), h.group.clone(), h.event.clone()))
            .or_default();
        c.0 += 1;
        c.1.extend(h.user.clone());
    }
    tables.insert(
        "group_daily",
        daily
            .iter()
            .map(|((d, k, g), (n, u))| {
                format!(
                    "date={d} | group_key={k} | group_id={g} | events={n} | users={}",
                    u.len()
                )
            })
            .collect(),
    );
    tables.insert(
        "group_event_daily",
        event_daily
            .iter()
            .map(|((d, k, g, e), (n, u))| {
                format!(
                    "date={d} | group_key={k} | group_id={g} | event={e} | events={n} | users={}",
                    u.len()
                )
            })
            .collect(),
    );

    // Active groups per key and date.
    let mut active: BTreeMap<String, BTreeMap<NaiveDate, BTreeSet<String>>> = BTreeMap::new();
    for h in &hits {
        active
            .entry(h.key.clone())
            .or_default()
            .entry(h.date)
            .or_default()
            .insert(h.group.clone());
    }
    let active_on = |key: &str, d: NaiveDate| -> BTreeSet<String> {
        active.get(key).and_then(|m| m.get(&d)).cloned().unwrap_or_default()
    };

    let mut active_rows = Vec::new();
    let mut lifecycle_rows = Vec::new();
    let mut retention_rows = Vec::new();
    let mut stickiness_rows = Vec::new();
    for (key, by_day) in &active {
        let first = *by_day.keys().next().unwrap();
        let last = *by_day.keys().next_back().unwrap();
        let all_days = days(first, last);

        // active_groups
        for &d in &all_days {
            let window = |n: u64| -> usize {
                let mut s = BTreeSet::new();
                for back in 0..n {
                    s.extend(active_on(key, d - chrono::Days::new(back)));
                }
                s.len()
            };
            active_rows.push(format!(
                "date={d} | group_key={key} | dau={} | wau={} | mau={}",
                active_on(key, d).len(),
                window(7),
                window(30)
            ));
        }

        // group_lifecycle
        type PeriodStart = fn(NaiveDate) -> NaiveDate;
        let kinds: [(&str, PeriodStart); 3] = [("day", |d| d), ("week", week_start), ("month", month_start)];
        for (kind, start) in kinds {
            let periods: BTreeSet<NaiveDate> = all_days.iter().map(|&d| start(d)).collect();
            let groups_in = |p: NaiveDate| -> BTreeSet<String> {
                let mut s = BTreeSet::new();
                for &d in &all_days {
                    if start(d) == p {
                        s.extend(active_on(key, d));
                    }
                }
                s
            };
            let list: Vec<NaiveDate> = periods.into_iter().collect();
            for (i, &p) in list.iter().enumerate() {
                let now = groups_in(p);
                let prev = if i == 0 {
                    BTreeSet::new()
                } else {
                    groups_in(list[i - 1])
                };
                let mut earlier = BTreeSet::new();
                for &q in &list[..i] {
                    earlier.extend(groups_in(q));
                }
                let new = now.iter().filter(|g| !earlier.contains(*g)).count();
                let returning = now.iter().filter(|g| prev.contains(*g)).count();
                let resurrecting = now
                    .iter()
                    .filter(|g| !prev.contains(*g) && earlier.contains(*g))
                    .count();
                let dormant = prev.iter().filter(|g| !now.contains(*g)).count();
                lifecycle_rows.push(format!(
                    "date={p} | period={kind} | group_key={key} | new={new} | returning={returning} | resurrecting={resurrecting} | dormant={dormant}"
                ));
            }
        }

        // group_retention
        let weeks: Vec<NaiveDate> = all_days
            .iter()
            .map(|&d| week_start(d))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut weeks_of: BTreeMap<String, BTreeSet<NaiveDate>> = BTreeMap::new();
        for (&d, gs) in by_day {
            for g in gs {
                weeks_of.entry(g.clone()).or_default().insert(week_start(d));
            }
        }
        for (c, &cw) in weeks.iter().enumerate() {
            let cohort: Vec<&String> = weeks_of
                .iter()
                .filter(|(_, ws)| ws.iter().next() == Some(&cw))
                .map(|(g, _)| g)
                .collect();
            for (o, &w) in weeks[c..].iter().enumerate() {
                let retained = cohort.iter().filter(|g| weeks_of[**g].contains(&w)).count();
                retention_rows.push(format!(
                    "cohort_date={cw} | group_key={key} | week_offset={o} | cohort_groups={} | retained_groups={retained}",
                    cohort.len()
                ));
            }
        }

        // group_stickiness
        let months: BTreeSet<NaiveDate> = all_days.iter().map(|&d| month_start(d)).collect();
        for m in months {
            let mut days_active: BTreeMap<String, u32> = BTreeMap::new();
            for (&d, gs) in by_day {
                if month_start(d) == m {
                    for g in gs {
                        *days_active.entry(g.clone()).or_default() += 1;
                    }
                }
            }
            for n in 1..=month_len(m) {
                let groups = days_active.values().filter(|&&c| c == n).count();
                stickiness_rows.push(format!(
                    "month={m} | group_key={key} | active_days={n} | groups={groups}"
                ));
            }
        }
    }
    tables.insert("active_groups", active_rows);
    tables.insert("group_lifecycle", lifecycle_rows);
    tables.insert("group_retention", retention_rows);
    tables.insert("group_stickiness", stickiness_rows);

    // group_funnels: brute force over every start and every later choice of each step.
    fn reach(hits: &[(i64, String)], steps: &[&str], s: usize, prev: i64, deadline: i64) -> usize {
        if s == steps.len() {
            return 0;
        }
        let mut best = 0;
        for (t, e) in hits {
            if e == steps[s] && *t > prev && *t <= deadline {
                best = best.max(1 + reach(hits, steps, s + 1, *t, deadline));
                if best == steps.len() - s {
                    break;
                }
            }
        }
        best
    }
    let mut funnel_rows = Vec::new();
    for f in &case.funnels {
        let mut per_group: BTreeMap<String, Vec<(i64, String)>> = BTreeMap::new();
        for h in hits.iter().filter(|h| h.key == f.key) {
            per_group
                .entry(h.group.clone())
                .or_default()
                .push((h.time_us, h.event.clone()));
        }
        let mut counts = vec![0usize; f.steps.len()];
        for hs in per_group.values() {
            let mut best = 0;
            for (t0, e) in hs {
                if e == f.steps[0] {
                    best = best.max(1 + reach(hs, &f.steps, 1, *t0, t0 + f.window_days * US_PER_DAY));
                }
            }
            for c in counts.iter_mut().take(best) {
                *c += 1;
            }
        }
        for (i, s) in f.steps.iter().enumerate() {
            funnel_rows.push(format!(
                "funnel={} | group_key={} | step={} | event={s} | groups={}",
                f.name,
                f.key,
                i + 1,
                counts[i]
            ));
        }
    }
    tables.insert("group_funnels", funnel_rows);

    // §5: profile operations.
    let mut ops: Vec<OpRec> = Vec::new();
    for (_, _, lines) in case.sorted(&case.profile_files) {
        for line in lines {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                rejects += 1;
                continue;
            };
            let obj = v.as_object().unwrap();
            let operators: Vec<&String> = obj
                .keys()
                .filter(|k| ["$set", "$set_once", "$unset", "$union", "$remove", "$delete"].contains(&k.as_str()))
                .collect();
            if operators.len() != 1 {
                rejects += 1;
                continue;
            }
            let id = match &obj["$group_id"] {
                Value::String(s) => s.clone(),
                Value::Number(n) => number_text(n),
                other => panic!("generated group id {other}"),
            };
            ops.push(OpRec {
                key: obj["$group_key"].as_str().unwrap().to_string(),
                id,
                op: operators[0].clone(),
                payload: obj[operators[0].as_str()].clone(),
                time_us: obj.get("$time").map(epoch_us),
            });
        }
    }
    let mut order: Vec<usize> = (0..ops.len()).collect();
    if case.order_time {
        order.sort_by_key(|&i| (ops[i].time_us.unwrap(), i));
    }
    let mut groups: BTreeMap<(String, String), GroupState> = BTreeMap::new();
    for i in order {
        let op = &ops[i];
        let id = (op.key.clone(), op.id.clone());
        if op.op == "$delete" {
            groups.remove(&id);
            continue;
        }
        if !groups.contains_key(&id) {
            if !["$set", "$set_once", "$union"].contains(&op.op.as_str()) {
                continue;
            }
            groups.insert(
                id.clone(),
                GroupState {
                    props: BTreeMap::new(),
                    created: op.time_us,
                    updated: None,
                },
            );
        }
        let st = groups.get_mut(&id).unwrap();
        st.updated = op.time_us;
        let props = &mut st.props;
        match op.op.as_str() {
            "$set" => {
                for (k, v) in op.payload.as_object().unwrap() {
                    props.insert(k.clone(), v.clone());
                }
            }
            "$set_once" => {
                for (k, v) in op.payload.as_object().unwrap() {
                    if !props.contains_key(k) {
                        props.insert(k.clone(), v.clone());
                    }
                }
            }
            "$unset" => {
                for k in op.payload.as_array().unwrap() {
                    props.remove(k.as_str().unwrap());
                }
            }
            "$union" => {
                for (k, v) in op.payload.as_object().unwrap() {
                    let items = v.as_array().unwrap();
                    match props.get_mut(k) {
                        None => {
                            let mut list: Vec<Value> = Vec::new();
                            for x in items {
                                if !list.contains(x) {
                                    list.push(x.clone());
                                }
                            }
                            props.insert(k.clone(), Value::Array(list));
                        }
                        Some(Value::Array(list)) => {
                            for x in items {
                                if !list.contains(x) {
                                    list.push(x.clone());
                                }
                            }
                        }
                        Some(_) => {}
                    }
                }
            }
            "$remove" => {
                for (k, v) in op.payload.as_object().unwrap() {
                    if let Some(Value::Array(list)) = props.get_mut(k) {
                        list.retain(|x| x != v);
                    }
                }
            }
            other => unreachable!("{other}"),
        }
    }
    let mut profile_rows = Vec::new();
    for ((key, id), st) in &groups {
        let Some(spec) = case.keys.iter().find(|k| k.key == key) else {
            continue;
        };
        let name = match spec.name_property.and_then(|p| st.props.get(p)) {
            None | Some(Value::Null) => id.clone(),
            Some(Value::String(s)) => s.clone(),
            Some(other) => canonical(other),
        };
        let props = Value::Object(st.props.clone().into_iter().collect());
        profile_rows.push(format!(
            "group_key={key} | group_id={id} | name={name} | properties={} | created_at={} | updated_at={}",
            canonical(&props),
            ts_text(st.created),
            ts_text(st.updated)
        ));
    }
    tables.insert("group_profiles", profile_rows);

    for rows in tables.values_mut() {
        rows.sort();
    }
    Model {
        rejects,
        duplicates,
        excluded,
        attributed,
        tables,
    }
}

// ---------------------------------------------------------------------------------------
// Running cases
// ---------------------------------------------------------------------------------------

/// How a case's events are written.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Events {
    Ndjson,
    /// As Parquet (see [`with_parquet_events`]).
    Parquet,
}

fn check_seed(seed: u64, events: Events, keep: bool) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut case = generate(&mut rng);
    if events == Events::Parquet {
        let by_day = rng.random_bool(0.6);
        case = with_parquet_events(case, &mut rng, by_day);
    }
    // The sinks fsync every file they write; on a RAM disk that costs nothing, so prefer
    // one when there is one.
    let shm = Path::new("/dev/shm");
    let tmp = if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap_or_else(|_| tempfile::tempdir().unwrap())
    } else {
        tempfile::tempdir().unwrap()
    };
    let dir = tmp.path().to_path_buf();
    case.write(&dir);
    let summary = common::run_job(&dir, &case.toml(&dir));
    let want = model(&case);

    let mut problems = Vec::new();
    if want.rejects != case.bad_lines {
        problems.push(format!(
            "model saw {} rejects, {} were injected",
            want.rejects, case.bad_lines
        ));
    }
    if summary.attribution.duplicates != want.duplicates as u64 {
        problems.push(format!(
            "run summary: {} duplicates, the model dropped {}",
            summary.attribution.duplicates, want.duplicates
        ));
    }
    let got = (summary.attribution.excluded, summary.attribution.attributed);
    if got != (want.excluded as u64, want.attributed as u64) {
        problems.push(format!(
            "run summary: (excluded, attributed) {got:?}, the model has ({}, {})",
            want.excluded, want.attributed
        ));
    }
    if summary.rejects != case.bad_lines as u64 {
        problems.push(format!(
            "run summary: {} rejects, {} were injected",
            summary.rejects, case.bad_lines
        ));
    }
    for table in common::ALL_TABLES {
        let got = common::read_table(&dir.join("out"), table);
        let expected = &want.tables[table];
        if &got != expected {
            let missing: Vec<&String> = expected.iter().filter(|r| !got.contains(r)).take(12).collect();
            let extra: Vec<&String> = got.iter().filter(|r| !expected.contains(r)).take(12).collect();
            let mut p = format!("{table}: {} rows expected, {} written\n", expected.len(), got.len());
            for r in missing {
                p += &format!("  expected, missing: {r}\n");
            }
            for r in extra {
                p += &format!("  written, unexpected: {r}\n");
            }
            problems.push(p);
        }
    }
    if !problems.is_empty() {
        let where_ = if keep {
            let kept = tmp.keep();
            format!("inputs kept in {}", kept.display())
        } else {
            format!("rerun with GROUPETL_MODEL_SEED={seed} to keep the inputs")
        };
        panic!(
            "seed {seed} ({where_}):\njob:\n{}\n{}",
            case.toml(&dir),
            problems.join("\n")
        );
    }
}

/// Runs seeds `from..to` with events written as `events`; or only `GROUPETL_MODEL_SEED=N`
/// (keeping its inputs); or, for a longer hunt, `GROUPETL_MODEL_SEEDS=A..B` spread over
/// the batches of that kind of test.
fn check_seeds(from: u64, to: u64, events: Events) {
    if let Ok(s) = std::env::var("GROUPETL_MODEL_SEED") {
        if from == 0 {
            check_seed(s.parse().expect("GROUPETL_MODEL_SEED is a number"), events, true);
        }
        return;
    }
    if let Ok(r) = std::env::var("GROUPETL_MODEL_SEEDS") {
        let (a, b) = r.split_once("..").expect("GROUPETL_MODEL_SEEDS is A..B");
        let (a, b): (u64, u64) = (a.parse().unwrap(), b.parse().unwrap());
        let batches = match events {
            Events::Ndjson => 4,
            Events::Parquet => 2,
        };
        let batch = from / 10;
        for seed in (a..b).filter(|s| s % batches == batch) {
            check_seed(seed, events, false);
        }
        return;
    }
    for seed in from..to {
        check_seed(seed, events, false);
    }
}

// Batches of ten seeds, so the test harness runs them in parallel.
#[test]
fn model_random_mixpanel_seeds_0_to_9() {
    check_seeds(0, 10, Events::Ndjson);
}

#[test]
fn model_random_mixpanel_seeds_10_to_19() {
    check_seeds(10, 20, Events::Ndjson);
}

#[test]
fn model_random_mixpanel_seeds_20_to_29() {
    check_seeds(20, 30, Events::Ndjson);
}

#[test]
fn model_random_mixpanel_seeds_30_to_39() {
    check_seeds(30, 40, Events::Ndjson);
}

// The same cases with their events in Parquet files: the columnar reader, days built as
// their file is read, days closed by the files' time ranges.
#[test]
fn model_random_mixpanel_parquet_seeds_0_to_9() {
    check_seeds(0, 10, Events::Parquet);
}

#[test]
fn model_random_mixpanel_parquet_seeds_10_to_19() {
    check_seeds(10, 20, Events::Parquet);
}
