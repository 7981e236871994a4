//! Input formats agree: one logical data set (seeded, generated here) written as every
//! vendor layout and file type the normalisers read, each run through the library, must
//! give the same eight output tables.
//!
//! The data is what every vendor can express: one group key named `group` (Segment's only
//! key), `$set`-only profile operations with string values and no nulls (Segment warehouse
//! CSV traits are text, and a warehouse cannot store a null trait), operation times in
//! input order (so every vendor's default fold order agrees), and duplicates with later
//! and earlier ingest times. Each rendering also carries the quirks its vendor has that
//! must come to nothing: PostHog events with `$groups` but `$process_person_profile =
//! false`, synthetic `$group_<id>` distinct ids, `$groupidentify` events in the event
//! stream and falsy `$group_key`s; Segment `identify` calls, `page` calls and
//! anonymous-only users; numeric group ids as JSON numbers.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, StringArray, TimestampMicrosecondArray};
use serde_json::{json, Map, Value};

use crate::common::{read_table, run_job, ALL_TABLES};

/// 2024-03-04T00:00:00Z, a Monday.
const BASE: i64 = 1_709_510_400;
const DAY: i64 = 86_400;
const GROUPS: [&str; 6] = ["acme", "globex", "1042", "initech", "umbrella", "hooli"];
const NAMES: [&str; 5] = [
    "Sign Up",
    "Create Project",
    "Invite Teammate",
    "Viewed Pricing Page",
    "Open Dashboard",
];
const PLANS: [&str; 3] = ["free", "pro", "enterprise"];
const INDUSTRIES: [&str; 3] = ["software", "retail", "logistics"];

/// A small LCG (Knuth's MMIX constants): deterministic without a `rand` version pin.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone)]
struct Event {
    id: String,
    name: &'static str,
    user: Option<String>,
    /// Event time, epoch seconds.
    time: i64,
    /// Ingest time, epoch milliseconds.
    ingest_ms: i64,
    group: Option<&'static str>,
}

struct SetOp {
    id: String,
    group: &'static str,
    time: i64,
    ingest_ms: i64,
    props: Map<String, Value>,
}

struct Data {
    events: Vec<Event>,
    ops: Vec<SetOp>,
}

fn generate() -> Data {
    let mut rng = Lcg(20240304);
    let mut events = Vec::new();
    for i in 0..300 {
        let g = rng.below(GROUPS.len() as u64) as usize;
        let user = (!rng.chance(5)).then(|| format!("u-{}-{}", GROUPS[g], rng.below(4)));
        let time = BASE + rng.below(45) as i64 * DAY + 7 * 3600 + rng.below(13 * 3600) as i64;
        // Mostly seconds after the event; some a few days late (the ingest clock matters
        // around `effective_from`).
        let ingest_ms = if rng.chance(10) {
            time * 1000 + (2 * DAY + rng.below(3 * DAY as u64) as i64) * 1000
        } else {
            time * 1000 + 500 + rng.below(90_000) as i64
        };
        events.push(Event {
            id: format!("e{i:04}-{:08x}", rng.next()),
            name: NAMES[rng.below(NAMES.len() as u64) as usize],
            user,
            time,
            ingest_ms,
            group: (!rng.chance(8)).then_some(GROUPS[g]),
        });
    }
    // Duplicates: same dedup key, a later or an earlier ingest time, maybe another group.
    let mut k = 0;
    while k < 16 {
        let mut copy = events[rng.below(300) as usize].clone();
        if events.iter().filter(|e| e.id == copy.id).count() > 1 {
            continue;
        }
        k += 1;
        let shift = 1000 + rng.below(DAY as u64 * 1000) as i64;
        copy.ingest_ms += if k % 3 == 2 { -shift } else { shift };
        if rng.chance(60) {
            copy.group = Some(GROUPS[rng.below(GROUPS.len() as u64) as usize]);
        }
        events.push(copy);
    }
    let mut ops = Vec::new();
    let mut time = BASE - 3 * DAY;
    for i in 0..40 {
        time += 3600 + rng.below(DAY as u64) as i64;
        // The first operations name every group; then random groups.
        let first = GROUPS.get(i).copied();
        let group = first.unwrap_or_else(|| GROUPS[rng.below(GROUPS.len() as u64) as usize]);
        let mut props = Map::new();
        if first.is_some() || rng.chance(15) {
            props.insert(
                "name".into(),
                json!(format!("{} Inc {}", group.to_uppercase(), rng.below(3))),
            );
        }
        if rng.chance(70) {
            props.insert("plan".into(), json!(PLANS[rng.below(3) as usize]));
        }
        if rng.chance(40) {
            props.insert("industry".into(), json!(INDUSTRIES[rng.below(3) as usize]));
        }
        if props.is_empty() || rng.chance(30) {
            props.insert("seats_band".into(), json!(format!("{}-{}", i, i + 10)));
        }
        ops.push(SetOp {
            id: format!("op{i:02}"),
            group,
            time,
            ingest_ms: time * 1000 + 200 + rng.below(5000) as i64,
            props,
        });
    }
    Data { events, ops }
}

/// A group id as JSON: numeric ids as numbers, where the format has types.
fn gid(g: &str) -> Value {
    g.parse::<i64>().map_or_else(|_| json!(g), |n| json!(n))
}

fn iso(s: i64) -> String {
    chrono::DateTime::from_timestamp(s, 0)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn iso_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Warehouse text form: `YYYY-MM-DD HH:MM:SS.fff`, with BigQuery's ` UTC` when `utc`.
fn sql_ms(ms: i64, utc: bool) -> String {
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap();
    let s = t.format("%Y-%m-%d %H:%M:%S%.3f").to_string();
    if utc {
        s + " UTC"
    } else {
        s
    }
}

fn write_lines(path: &Path, lines: &[Value], gzip: bool) {
    let mut text = String::new();
    for l in lines {
        text.push_str(&l.to_string());
        text.push('\n');
    }
    if gzip {
        let mut enc = flate2::write::GzEncoder::new(File::create(path).unwrap(), flate2::Compression::default());
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap();
    } else {
        std::fs::write(path, text).unwrap();
    }
}

fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>) {
    write_parquet_with(path, columns, parquet::file::properties::EnabledStatistics::Page)
}

fn write_parquet_with(
    path: &Path,
    columns: Vec<(&str, ArrayRef)>,
    stats: parquet::file::properties::EnabledStatistics,
) {
    let props = parquet::file::properties::WriterProperties::builder()
        .set_statistics_enabled(stats)
        .build();
    crate::common::write_parquet(path, columns, props);
}

fn utf8(values: Vec<Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(values))
}

fn micros(values: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
}

fn write_csv(path: &Path, header: &[&str], rows: Vec<Vec<String>>) {
    let mut w = csv::Writer::from_path(path).unwrap();
    w.write_record(header).unwrap();
    for r in rows {
        w.write_record(&r).unwrap();
    }
    w.flush().unwrap();
}

// --- Mixpanel ---------------------------------------------------------------------------

fn mixpanel_props(e: &Event) -> Value {
    let mut p = json!({"time": e.time, "distinct_id": e.user.clone().unwrap_or_default(),
        "$insert_id": e.id, "mp_processing_time_ms": e.ingest_ms, "$os": "Mac OS X"});
    if let Some(g) = e.group {
        p["group"] = gid(g);
    }
    p
}

fn mixpanel_ops(d: &Data, dir: &Path) {
    let ops: Vec<Value> = d
        .ops
        .iter()
        .map(|o| json!({"$token":"t","$group_key":"group","$group_id":gid(o.group),"$set":o.props,"$time":o.time}))
        .collect();
    write_lines(&dir.join("ops.ndjson"), &ops, false);
}

fn mixpanel_ndjson(d: &Data, dir: &Path) -> String {
    let lines: Vec<Value> = d
        .events
        .iter()
        .map(|e| json!({"event": e.name, "properties": mixpanel_props(e)}))
        .collect();
    write_lines(&dir.join("events.ndjson"), &lines, false);
    mixpanel_ops(d, dir);
    mixpanel_job(dir, "events.ndjson")
}

fn mixpanel_parquet(d: &Data, dir: &Path) -> String {
    write_parquet(
        &dir.join("events.parquet"),
        vec![
            (
                "event",
                utf8(d.events.iter().map(|e| Some(e.name.to_string())).collect()),
            ),
            (
                "properties",
                utf8(d.events.iter().map(|e| Some(mixpanel_props(e).to_string())).collect()),
            ),
        ],
    );
    mixpanel_ops(d, dir);
    mixpanel_job(dir, "events.parquet")
}

/// Flattened typed columns (a warehouse export), in six files by time, each duplicate in
/// the file after its original's: the runner learns every file's span of times from its
/// footer and processes a day as soon as the last file that may hold it is read. One file
/// is written without statistics, which holds every day open until it has been read.
fn mixpanel_parquet_files(d: &Data, dir: &Path) -> String {
    const FILES: usize = 6;
    let mut order: Vec<usize> = (0..300).collect();
    order.sort_by_key(|&i| d.events[i].time);
    let mut files: Vec<Vec<&Event>> = vec![Vec::new(); FILES];
    let mut file_of = std::collections::HashMap::new();
    for (rank, &i) in order.iter().enumerate() {
        let f = rank * FILES / 300;
        files[f].push(&d.events[i]);
        file_of.insert(d.events[i].id.as_str(), f);
    }
    for dup in &d.events[300..] {
        files[(file_of[dup.id.as_str()] + 1).min(FILES - 1)].push(dup);
    }
    for (f, events) in files.iter().enumerate() {
        let stats = if f == 2 {
            parquet::file::properties::EnabledStatistics::None
        } else {
            parquet::file::properties::EnabledStatistics::Chunk
        };
        write_typed(&dir.join(format!("events-{f}.parquet")), events, true, stats);
    }
    mixpanel_ops(d, dir);
    mixpanel_job(dir, "events-*.parquet")
}

/// `events` as flattened typed columns (with an `$os` column the job does not read, where
/// `os` says so).
fn write_typed(path: &Path, events: &[&Event], os: bool, stats: parquet::file::properties::EnabledStatistics) {
    let text = |v: &dyn Fn(&Event) -> Option<String>| utf8(events.iter().map(|e| v(e)).collect());
    let int =
        |v: &dyn Fn(&Event) -> i64| -> ArrayRef { Arc::new(Int64Array::from_iter_values(events.iter().map(|e| v(e)))) };
    let mut columns = vec![
        ("event", text(&|e| Some(e.name.to_string()))),
        ("time", int(&|e| e.time)),
        ("distinct_id", text(&|e| Some(e.user.clone().unwrap_or_default()))),
        ("$insert_id", text(&|e| Some(e.id.clone()))),
        ("mp_processing_time_ms", int(&|e| e.ingest_ms)),
    ];
    if os {
        columns.push(("$os", text(&|_| Some("Mac OS X".into()))));
    }
    columns.push(("group", text(&|e| e.group.map(str::to_string))));
    write_parquet_with(path, columns, stats);
}

/// The same typed columns, a file a day (duplicates beside their originals): every day is
/// held by one file alone, by its statistics, and is deduplicated and attributed as that
/// file is read, without going through a day bucket.
fn mixpanel_parquet_days(d: &Data, dir: &Path) -> String {
    let mut days: std::collections::BTreeMap<i64, Vec<&Event>> = Default::default();
    for e in &d.events {
        // Events are between 07:00 and 20:00 UTC: one civil day in Berlin too.
        days.entry(e.time.div_euclid(DAY)).or_default().push(e);
    }
    for (day, events) in days {
        let stats = parquet::file::properties::EnabledStatistics::Chunk;
        write_typed(&dir.join(format!("events-{day}.parquet")), &events, false, stats);
    }
    mixpanel_ops(d, dir);
    mixpanel_job(dir, "events-*.parquet")
}

fn mixpanel_job(dir: &Path, events: &str) -> String {
    job(
        dir,
        &format!("format = \"mixpanel\"\npaths = [{:?}]", path(dir, events)),
        &format!("format = \"mixpanel\"\npaths = [{:?}]", path(dir, "ops.ndjson")),
    )
}

// --- PostHog ----------------------------------------------------------------------------

/// PostHog records (events and profile events) in export order (ingest time), each with
/// its ingest time and which ingest field carries it.
fn posthog_records(d: &Data) -> Vec<(i64, Value)> {
    let mut recs = Vec::new();
    for (i, e) in d.events.iter().enumerate() {
        let props = match e.group {
            Some(g) => json!({"$groups": {"group": gid(g)}, "$lib": "web"}),
            // Looks grouped, but person processing is off: no attribution.
            None if i % 2 == 0 => {
                json!({"$groups": {"group": "acme"}, "$process_person_profile": false})
            }
            None => json!({}),
        };
        let distinct_id = match &e.user {
            Some(u) => json!(u),
            // A synthetic group actor is not a user; neither is an empty id.
            None if i % 2 == 0 => json!(format!("$group_{}", e.group.unwrap_or("acme"))),
            None => json!(""),
        };
        recs.push((
            e.ingest_ms,
            json!({"uuid": e.id, "event": e.name, "distinct_id": distinct_id,
                "timestamp": iso(e.time), "properties": props}),
        ));
    }
    for o in &d.ops {
        recs.push((
            o.ingest_ms,
            json!({"uuid": o.id, "event": "$groupidentify", "distinct_id": format!("$group_{}", o.group),
                "timestamp": iso(o.time),
                "properties": {"$group_type": "group", "$group_key": gid(o.group), "$group_set": o.props,
                    "$groups": {"group": gid(o.group)}}}),
        ));
    }
    // Falsy keys: valid records PostHog does not upsert.
    recs.push((
        d.ops[3].ingest_ms + 1,
        json!({"uuid": "falsy-1", "event": "$groupidentify", "distinct_id": "x", "timestamp": iso(d.ops[3].time),
            "properties": {"$group_type": "group", "$group_key": "", "$group_set": {"plan": "free"}}}),
    ));
    recs.push((
        d.ops[5].ingest_ms + 1,
        json!({"uuid": "falsy-2", "event": "$groupidentify", "distinct_id": "x", "timestamp": iso(d.ops[5].time),
            "properties": {"$group_type": "group", "$group_key": 0, "$group_set": {"plan": "free"}}}),
    ));
    recs.sort_by_key(|r| r.0);
    // Ingest time as `created_at`, or only as `_inserted_at` for every third record.
    for (i, (ms, v)) in recs.iter_mut().enumerate() {
        let field = if i % 3 == 0 { "_inserted_at" } else { "created_at" };
        v[field] = json!(iso_ms(*ms));
    }
    recs
}

fn posthog_ndjson(d: &Data, dir: &Path) -> String {
    let lines: Vec<Value> = posthog_records(d).into_iter().map(|(_, v)| v).collect();
    write_lines(&dir.join("export.ndjson.gz"), &lines, true);
    posthog_job(dir, "export.ndjson.gz")
}

fn posthog_parquet(d: &Data, dir: &Path) -> String {
    let recs: Vec<Value> = posthog_records(d).into_iter().map(|(_, v)| v).collect();
    let s = |f: &str| utf8(recs.iter().map(|r| r[f].as_str().map(str::to_string)).collect());
    let ts = |f: &str| {
        micros(
            recs.iter()
                .map(|r| {
                    r[f].as_str()
                        .map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap().timestamp_micros())
                })
                .collect(),
        )
    };
    write_parquet(
        &dir.join("export.parquet"),
        vec![
            ("uuid", s("uuid")),
            ("event", s("event")),
            ("distinct_id", s("distinct_id")),
            ("timestamp", ts("timestamp")),
            ("created_at", ts("created_at")),
            ("_inserted_at", ts("_inserted_at")),
            (
                "properties",
                utf8(recs.iter().map(|r| Some(r["properties"].to_string())).collect()),
            ),
        ],
    );
    posthog_job(dir, "export.parquet")
}

fn posthog_job(dir: &Path, file: &str) -> String {
    let p = format!("format = \"posthog\"\npaths = [{:?}]", path(dir, file));
    job(dir, &p, &p)
}

// --- Segment ----------------------------------------------------------------------------

fn segment_s3(d: &Data, dir: &Path) -> String {
    let mut recs: Vec<(i64, Value)> = Vec::new();
    for (i, e) in d.events.iter().enumerate() {
        let mut call = json!({"messageId": e.id, "timestamp": iso(e.time), "receivedAt": iso_ms(e.ingest_ms),
            "sentAt": iso(e.time), "context": {"library": {"name": "analytics.js"}}, "properties": {}});
        if let Some(name) = e.name.strip_prefix("Viewed ").and_then(|n| n.strip_suffix(" Page")) {
            call["type"] = json!("page");
            call["name"] = json!(name);
        } else {
            call["type"] = json!("track");
            call["event"] = json!(e.name);
        }
        match (&e.user, i % 3) {
            (Some(u), 0) => call["anonymousId"] = json!(u),
            (Some(u), _) => {
                call["userId"] = json!(u);
                call["anonymousId"] = json!(format!("anon-{i}"));
            }
            (None, _) => {}
        }
        if let Some(g) = e.group {
            call["context"]["groupId"] = json!(g);
        }
        recs.push((e.ingest_ms, call));
    }
    for o in &d.ops {
        recs.push((
            o.ingest_ms,
            json!({"type": "group", "messageId": o.id, "groupId": o.group, "userId": "admin",
                "traits": o.props, "timestamp": iso(o.time), "receivedAt": iso_ms(o.ingest_ms)}),
        ));
    }
    recs.push((
        BASE * 1000,
        json!({"type": "identify", "userId": "u-acme-1", "traits": {"email": "a@acme.test"},
            "messageId": "id-1", "timestamp": iso(BASE)}),
    ));
    recs.sort_by_key(|r| r.0);
    let lines: Vec<Value> = recs.into_iter().map(|(_, v)| v).collect();
    write_lines(&dir.join("segment-logs.ndjson.gz"), &lines, true);
    let p = format!(
        "format = \"segment\"\npaths = [{:?}]",
        path(dir, "segment-logs.ndjson.gz")
    );
    job(dir, &p, &p)
}

fn segment_warehouse(d: &Data, dir: &Path) -> String {
    let tracks: Vec<Vec<String>> = d
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            vec![
                e.id.clone(),
                e.name.to_lowercase().replace(' ', "_"),
                e.name.to_string(),
                if i % 4 == 0 {
                    String::new()
                } else {
                    e.user.clone().unwrap_or_default()
                },
                if i % 4 == 0 {
                    e.user.clone().unwrap_or_default()
                } else {
                    format!("anon-{i}")
                },
                sql_ms(e.time * 1000, i % 2 == 0),
                sql_ms(e.ingest_ms, i % 2 == 1),
                e.group.unwrap_or_default().to_string(),
                sql_ms(e.ingest_ms + 3_600_000, false),
            ]
        })
        .collect();
    // Rows without a user id read the anonymous id; give those no fake anonymous id.
    let tracks: Vec<Vec<String>> = tracks
        .into_iter()
        .zip(&d.events)
        .map(|(mut r, e)| {
            if e.user.is_none() {
                r[3].clear();
                r[4].clear();
            }
            r
        })
        .collect();
    write_csv(
        &dir.join("tracks.csv"),
        &[
            "id",
            "event",
            "event_text",
            "user_id",
            "anonymous_id",
            "timestamp",
            "received_at",
            "context_group_id",
            "uuid_ts",
        ],
        tracks,
    );
    let traits = ["name", "plan", "industry", "seats_band"];
    let groups: Vec<Vec<String>> = d
        .ops
        .iter()
        .map(|o| {
            let mut r = vec![
                o.id.clone(),
                o.group.to_string(),
                "admin".into(),
                sql_ms(o.time * 1000, true),
                sql_ms(o.ingest_ms, false),
                "analytics.js".into(),
            ];
            r.extend(
                traits
                    .iter()
                    .map(|t| o.props.get(*t).and_then(Value::as_str).unwrap_or_default().to_string()),
            );
            r
        })
        .collect();
    let mut header = vec![
        "id",
        "group_id",
        "user_id",
        "timestamp",
        "received_at",
        "context_library_name",
    ];
    header.extend(traits);
    write_csv(&dir.join("groups.csv"), &header, groups);
    job(
        dir,
        &format!("format = \"segment\"\npaths = [{:?}]", path(dir, "tracks.csv")),
        &format!("format = \"segment\"\npaths = [{:?}]", path(dir, "groups.csv")),
    )
}

// --- Table ------------------------------------------------------------------------------

const TABLE_EVENT_COLUMNS: &str = "[events.columns]\ntime = \"ts\"\nevent = \"name\"\ndistinct_id = \"user\"\n\
    insert_id = \"iid\"\ningest_time = \"ingested\"\nproperties = \"props\"";
const TABLE_PROFILE_COLUMNS: &str =
    "[profiles.columns]\ntime = \"time\"\ngroup_key = \"key\"\ngroup_id = \"gid\"\noperation = \"op\"\nvalue = \"value\"";

/// Table rows: the group in its own column on even rows, inside `props` on odd ones.
fn table_group(i: usize, e: &Event) -> (Option<String>, Value) {
    match e.group {
        Some(g) if i.is_multiple_of(2) => (Some(g.to_string()), json!({"plan_seen": "x"})),
        Some(g) => (None, json!({"group": gid(g)})),
        None => (None, json!({})),
    }
}

fn table_csv(d: &Data, dir: &Path) -> String {
    let rows = d
        .events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let (col, props) = table_group(i, e);
            vec![
                if i % 2 == 0 { iso(e.time) } else { e.time.to_string() },
                e.name.to_string(),
                e.user.clone().unwrap_or_default(),
                e.id.clone(),
                if i % 3 == 0 {
                    iso_ms(e.ingest_ms)
                } else {
                    e.ingest_ms.to_string()
                },
                col.unwrap_or_default(),
                props.to_string(),
            ]
        })
        .collect();
    write_csv(
        &dir.join("events.csv"),
        &["ts", "name", "user", "iid", "ingested", "group", "props"],
        rows,
    );
    let ops = d
        .ops
        .iter()
        .enumerate()
        .map(|(i, o)| {
            vec![
                iso(o.time),
                "group".into(),
                o.group.to_string(),
                if i % 2 == 0 { "$set" } else { "set" }.to_string(),
                Value::Object(o.props.clone()).to_string(),
            ]
        })
        .collect();
    write_csv(&dir.join("profiles.csv"), &["time", "key", "gid", "op", "value"], ops);
    table_job(dir, "events.csv", "profiles.csv")
}

fn table_parquet(d: &Data, dir: &Path) -> String {
    let groups: Vec<(Option<String>, Value)> = d.events.iter().enumerate().map(|(i, e)| table_group(i, e)).collect();
    write_parquet(
        &dir.join("events.parquet"),
        vec![
            (
                "ts",
                micros(d.events.iter().map(|e| Some(e.time * 1_000_000)).collect()),
            ),
            (
                "name",
                utf8(d.events.iter().map(|e| Some(e.name.to_string())).collect()),
            ),
            ("user", utf8(d.events.iter().map(|e| e.user.clone()).collect())),
            ("iid", utf8(d.events.iter().map(|e| Some(e.id.clone())).collect())),
            (
                "ingested",
                Arc::new(Int64Array::from_iter(d.events.iter().map(|e| Some(e.ingest_ms)))),
            ),
            ("group", utf8(groups.iter().map(|g| g.0.clone()).collect())),
            ("props", utf8(groups.iter().map(|g| Some(g.1.to_string())).collect())),
        ],
    );
    write_parquet(
        &dir.join("profiles.parquet"),
        vec![
            ("time", micros(d.ops.iter().map(|o| Some(o.time * 1_000_000)).collect())),
            ("key", utf8(d.ops.iter().map(|_| Some("group".to_string())).collect())),
            ("gid", utf8(d.ops.iter().map(|o| Some(o.group.to_string())).collect())),
            ("op", utf8(d.ops.iter().map(|_| Some("$set".to_string())).collect())),
            (
                "value",
                utf8(
                    d.ops
                        .iter()
                        .map(|o| Some(Value::Object(o.props.clone()).to_string()))
                        .collect(),
                ),
            ),
        ],
    );
    table_job(dir, "events.parquet", "profiles.parquet")
}

fn table_job(dir: &Path, events: &str, profiles: &str) -> String {
    job(
        dir,
        &format!(
            "format = \"table\"\npaths = [{:?}]\n{TABLE_EVENT_COLUMNS}",
            path(dir, events)
        ),
        &format!(
            "format = \"table\"\npaths = [{:?}]\n{TABLE_PROFILE_COLUMNS}",
            path(dir, profiles)
        ),
    )
}

// --- The comparison ---------------------------------------------------------------------

fn path(dir: &Path, file: &str) -> String {
    dir.join(file).to_str().unwrap().to_string()
}

/// The job around `events`/`profiles` sections; defaults for fold order, so each vendor
/// folds in its own default order.
fn job(dir: &Path, events: &str, profiles: &str) -> String {
    format!(
        r#"version = 1
name = "formats"
timezone = "Europe/Berlin"

[events]
{events}

[profiles]
{profiles}

[[group_keys]]
key = "group"
effective_from = "2024-03-14"
clock = "ingest"
name_property = "name"

[output]
path = {out:?}

[[funnels]]
name = "activation"
group_key = "group"
steps = ["Sign Up", "Create Project", "Invite Teammate"]
window_days = 14
"#,
        out = path(dir, "out"),
    )
}

type Writer = fn(&Data, &Path) -> String;

#[test]
fn every_input_format_gives_the_same_tables() {
    same_tables(
        &generate(),
        &[
            ("mixpanel-ndjson", mixpanel_ndjson),
            ("mixpanel-parquet", mixpanel_parquet),
            ("mixpanel-parquet-files", mixpanel_parquet_files),
            ("mixpanel-parquet-days", mixpanel_parquet_days),
            ("posthog-ndjson-gz", posthog_ndjson),
            ("posthog-parquet", posthog_parquet),
            ("segment-s3-gz", segment_s3),
            ("segment-warehouse-csv", segment_warehouse),
            ("table-csv", table_csv),
            ("table-parquet", table_parquet),
        ],
    );
}

/// An empty group id is no id on every Mixpanel route: in JSON, and as a Parquet
/// dictionary's entry, whose text the columnar reader reads only when it must.
#[test]
fn empty_group_ids_are_no_ids_on_every_mixpanel_route() {
    let mut data = generate();
    for e in data.events.iter_mut().step_by(7) {
        e.group = Some("");
    }
    let tables = same_tables(
        &data,
        &[
            ("mixpanel-ndjson", mixpanel_ndjson),
            ("mixpanel-parquet-files", mixpanel_parquet_files),
            ("mixpanel-parquet-days", mixpanel_parquet_days),
        ],
    );
    let daily = &tables[ALL_TABLES.iter().position(|t| *t == "group_daily").unwrap()];
    assert!(!daily.is_empty());
    let empty = |r: &String| r.contains("group_id= ") || r.ends_with("group_id=");
    assert!(daily.iter().any(|r| r.contains("group_id=acme")), "{daily:?}");
    assert!(!daily.iter().any(empty), "a row of an empty group id");
}

/// Runs the job each format writes for `data` and checks every table is the same and not
/// empty; the first format's tables (rows as CSV text, by table).
fn same_tables(data: &Data, formats: &[(&str, Writer)]) -> Vec<Vec<String>> {
    let root = tempfile::tempdir().unwrap();
    let mut baseline: Option<(&str, Vec<Vec<String>>)> = None;
    for &(label, write) in formats {
        let dir = root.path().join(label);
        std::fs::create_dir_all(&dir).unwrap();
        let job = write(data, &dir);
        let summary = run_job(&dir, &job);
        assert_eq!(
            summary.rejects,
            0,
            "{label}: rejects under {}",
            dir.join("out/_rejects").display()
        );
        assert_eq!(summary.attribution.duplicates, 16, "{label}: duplicates");
        assert_eq!(summary.profile_ops, 40, "{label}: profile operations");
        let tables: Vec<Vec<String>> = ALL_TABLES.iter().map(|t| read_table(&dir.join("out"), t)).collect();
        match &baseline {
            None => {
                for (t, rows) in ALL_TABLES.iter().zip(&tables) {
                    assert!(!rows.is_empty(), "{label}: table {t} is empty");
                }
                baseline = Some((label, tables));
            }
            Some((base, want)) => {
                for ((t, got), want) in ALL_TABLES.iter().zip(&tables).zip(want) {
                    if got != want {
                        let only_got: Vec<_> = got.iter().filter(|r| !want.contains(r)).take(5).collect();
                        let only_want: Vec<_> = want.iter().filter(|r| !got.contains(r)).take(5).collect();
                        panic!(
                            "{label} differs from {base} in {t} ({} vs {} rows)\nonly in {label}: {only_got:#?}\nonly in {base}: {only_want:#?}",
                            got.len(),
                            want.len()
                        );
                    }
                }
            }
        }
    }
    baseline.expect("at least one format").1
}

/// The data set exercises what it claims to: duplicates that move an event to another
/// group, late ingestion around `effective_from`, ungrouped and user-less events.
#[test]
fn generated_data_covers_its_cases() {
    let d = generate();
    let dups: Vec<&Event> = d.events[300..].iter().collect();
    assert_eq!(dups.len(), 16);
    let moved = dups
        .iter()
        .filter(|c| d.events[..300].iter().any(|e| e.id == c.id && e.group != c.group))
        .count();
    assert!(moved >= 3, "{moved} duplicates change group");
    assert!(dups.iter().any(|c| d.events[..300]
        .iter()
        .any(|e| e.id == c.id && e.ingest_ms > c.ingest_ms)));
    let eff_ms = (BASE + 9 * DAY) * 1000;
    assert!(d.events.iter().any(|e| e.time * 1000 < eff_ms && e.ingest_ms >= eff_ms));
    assert!(d.events.iter().any(|e| e.group.is_none()));
    assert!(d.events.iter().any(|e| e.user.is_none()));
    assert!(d
        .ops
        .windows(2)
        .all(|w| w[0].time < w[1].time && w[0].ingest_ms < w[1].ingest_ms));
}
