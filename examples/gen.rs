//! Seeded synthetic-data generator for groupetl.
//!
//! Two modes, both byte-for-byte deterministic for a given seed (no wall clock, no hash-map
//! iteration order, fixed gzip/zstd levels, hand-ordered JSON keys):
//!
//! * `sample`: the small, hand-shaped Mixpanel sample used by CI, tests and the README
//!   (~4000 events over 2024-01-01..2024-02-29, 8 companies, 15 teams, 60 users, group-profile
//!   operations covering all six operators, deliberate duplicates and bad records). Writes
//!   `OUT/mixpanel/events/*`, `OUT/mixpanel/groups/*` and `OUT/README.md`.
//!
//!   ```text
//!   cargo run --example gen -- sample --out sample_data
//!   ```
//!
//! * `bench`: a large Mixpanel-shaped workload (default 100M events, 90 days, 1M users, 50k
//!   companies with Zipf(1.1)-skewed activity, ~5% list-valued `company_id`, ~1% re-delivered
//!   duplicates), one file per day and format, plus ~1M group-profile operations. Days are
//!   generated in parallel, each from its own RNG seeded by (seed, day), and streamed in chunks,
//!   so memory stays bounded and the output does not depend on the thread count.
//!
//!   ```text
//!   cargo run --release --example gen -- bench --out /data/bench --events 100000000 \
//!       [--days 90 --users 1000000 --companies 50000 --seed 42 \
//!        --formats parquet,ndjson.gz --threads K --ops 1000000]
//!   ```
//!
//!   Layout: `OUT/parquet/events-YYYY-MM-DD.parquet` (typed columns `event`, `distinct_id`,
//!   `time` (Int64 epoch s), `$insert_id`, `mp_processing_time_ms` (Int64), `company_id`
//!   (List<Utf8>: a scalar id is a 1-element list, so a reader sees the same ids as in the
//!   NDJSON, where a scalar id is a string and a multi-company event a JSON array),
//!   `team_id` (Utf8, nullable); zstd, 1M-row row groups, sorted by time),
//!   `OUT/ndjson/events-YYYY-MM-DD.ndjson.gz` (Mixpanel raw-export records) and
//!   `OUT/groups/ops.ndjson` (Mixpanel `/groups` bodies).

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use arrow_array::builder::{Int64Builder, ListBuilder, StringBuilder};
use arrow_array::{ArrayRef, RecordBatch, StringArray};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use clap::{Parser, Subcommand};
use flate2::write::GzEncoder;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::WriterProperties;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

/// 2024-01-01T00:00:00Z
const DAY0: i64 = 1_704_067_200;
const DAY_S: i64 = 86_400;
const GZIP_LEVEL: u32 = 6;
const ZSTD_LEVEL: i32 = 3;

#[derive(Parser)]
#[command(about = "Seeded synthetic Mixpanel-shaped data for groupetl")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Small hand-shaped sample (writes OUT/mixpanel/... and OUT/README.md)
    Sample {
        #[arg(long, default_value = "sample_data")]
        out: PathBuf,
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Large benchmark workload, one file per day and format
    Bench {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 100_000_000)]
        events: u64,
        #[arg(long, default_value_t = 90)]
        days: u32,
        #[arg(long, default_value_t = 1_000_000)]
        users: u32,
        #[arg(long, default_value_t = 50_000)]
        companies: u32,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// comma-separated: parquet, ndjson.gz
        #[arg(long, default_value = "parquet,ndjson.gz")]
        formats: String,
        /// worker threads (default: available parallelism); does not change the output
        #[arg(long)]
        threads: Option<usize>,
        /// number of group-profile operations in OUT/groups/ops.ndjson
        #[arg(long, default_value_t = 1_000_000)]
        ops: u64,
        /// fraction of events re-delivered (same dedup key, later mp_processing_time_ms)
        #[arg(long, default_value_t = 0.01)]
        dup_rate: f64,
        /// Zipf exponent of company activity
        #[arg(long, default_value_t = 1.1)]
        zipf: f64,
    },
}

fn main() -> Result<()> {
    match Cli::parse().cmd {
        Cmd::Sample { out, seed } => sample::run(&out, seed),
        Cmd::Bench {
            out,
            events,
            days,
            users,
            companies,
            seed,
            formats,
            threads,
            ops,
            dup_rate,
            zipf,
        } => {
            let threads = threads.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(4));
            bench::run(bench::Cfg {
                out,
                events,
                days,
                users,
                companies,
                seed,
                formats,
                threads: threads.max(1),
                ops,
                dup_rate,
                zipf,
            })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// shared helpers

/// A JSON value whose object keys keep the order they were written in, so the output does not
/// depend on serde_json's map features.
#[derive(Clone, Debug, PartialEq)]
enum J {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

impl J {
    fn write_to(&self, out: &mut String) {
        match self {
            J::Null => out.push_str("null"),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Int(i) => out.push_str(&i.to_string()),
            J::Float(f) => out.push_str(&serde_json::to_string(f).expect("finite float")),
            J::Str(s) => out.push_str(&serde_json::to_string(s).expect("string")),
            J::Arr(v) => {
                out.push('[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    x.write_to(out);
                }
                out.push(']');
            }
            J::Obj(kv) => {
                out.push('{');
                for (i, (k, x)) in kv.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&serde_json::to_string(k).expect("key"));
                    out.push(':');
                    x.write_to(out);
                }
                out.push('}');
            }
        }
    }

    fn text(&self) -> String {
        let mut s = String::new();
        self.write_to(&mut s);
        s
    }
}

fn js(s: &str) -> J {
    J::Str(s.to_string())
}

fn obj(kv: Vec<(&str, J)>) -> J {
    J::Obj(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect())
}

/// `YYYY-MM-DD` of day `d` counted from 2024-01-01.
fn date_str(d: i64) -> String {
    let base = chrono::NaiveDate::from_ymd_opt(2024, 1, 1).expect("valid date");
    (base + chrono::Days::new(d as u64)).format("%Y-%m-%d").to_string()
}

fn gz_writer(path: &Path) -> Result<GzEncoder<BufWriter<File>>> {
    let f = File::create(path).with_context(|| format!("create {}", path.display()))?;
    // GzEncoder::new writes mtime 0 and OS byte 255: deterministic.
    Ok(GzEncoder::new(
        BufWriter::with_capacity(1 << 20, f),
        flate2::Compression::new(GZIP_LEVEL),
    ))
}

fn file_size(p: &Path) -> u64 {
    fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

/// Splits `total` over `weights` exactly (largest remainder, ties to the lower index), integer
/// arithmetic only so the split is the same on every platform.
fn split_exact(total: u64, weights: &[u64]) -> Vec<u64> {
    let w_sum: u128 = weights.iter().map(|&w| w as u128).sum();
    if w_sum == 0 {
        return vec![0; weights.len()];
    }
    let mut out = Vec::with_capacity(weights.len());
    let mut rems = Vec::with_capacity(weights.len());
    let mut given = 0u64;
    for (i, &w) in weights.iter().enumerate() {
        let num = total as u128 * w as u128;
        let q = (num / w_sum) as u64;
        out.push(q);
        given += q;
        rems.push((num % w_sum, i));
    }
    rems.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in rems.iter().take((total - given) as usize) {
        out[i] += 1;
    }
    out
}

fn mix_seed(seed: u64, stream: u64, idx: u64) -> u64 {
    // splitmix64 finaliser over a combination of the inputs
    let mut z = seed
        .wrapping_add(stream.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(idx.wrapping_mul(0xD1B5_4A32_D192_ED69));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

// ---------------------------------------------------------------------------------------------
// sample mode

mod sample {
    use super::*;

    const DAYS: usize = 60; // 2024-01-01 .. 2024-02-29
    const WEEKS: usize = 9; // weeks start on Mondays; 2024-01-01 is a Monday

    const ACME: usize = 0;
    const GLOBEX: usize = 1;
    const INITECH: usize = 2;
    #[allow(dead_code)]
    const UMBRELLA: usize = 3;
    const HOOLI: usize = 4;
    const WAYNE: usize = 5; // id 1042 (JSON number; sometimes "1042")
    const C2077: usize = 6; // id 2077 (JSON number)
    const STARK: usize = 7;

    const SIGN_UP: &str = "Sign Up";
    const CREATE: &str = "Create Project";
    const INVITE: &str = "Invite Teammate";
    const VIEW: &str = "View Dashboard";
    const EXPORT: &str = "Export Report";
    const IDENTIFY: &str = "$identify";
    const GROUPIDENTIFY: &str = "$groupidentify";

    fn weekday(d: usize) -> bool {
        d % 7 < 5
    }

    struct Co {
        label: &'static str,
        id: J,
        plan: &'static str,
        rate: f64,
        nusers: usize,
        teams: Vec<&'static str>,
        active: Vec<bool>,
    }

    struct User {
        id: String,
        co: usize,
        join: usize,
        team: String,
        browser: &'static str,
        os: &'static str,
    }

    #[derive(Clone)]
    struct Ev {
        seq: usize,
        day: usize,
        name: String,
        did: String,
        time: J,
        ts_ms: i64,
        insert_id: String,
        proc_ms: i64,
        company: Option<J>,
        /// company index while `company` still holds that company's canonical scalar id
        canon: Option<usize>,
        team: Option<String>,
        extra: Vec<(String, J)>,
        /// anchors and scripted events are never mutated or duplicated
        clean: bool,
    }

    impl Ev {
        fn props(&self) -> J {
            let mut kv: Vec<(String, J)> = vec![
                ("time".into(), self.time.clone()),
                ("distinct_id".into(), js(&self.did)),
                ("$insert_id".into(), js(&self.insert_id)),
                ("mp_processing_time_ms".into(), J::Int(self.proc_ms)),
            ];
            if let Some(c) = &self.company {
                kv.push(("company_id".into(), c.clone()));
            }
            if let Some(t) = &self.team {
                kv.push(("team_id".into(), js(t)));
            }
            kv.extend(self.extra.iter().cloned());
            J::Obj(kv)
        }

        fn line(&self) -> String {
            format!(
                "{{\"event\":{},\"properties\":{}}}",
                js(&self.name).text(),
                self.props().text()
            )
        }
    }

    struct Gen {
        rng: StdRng,
        evs: Vec<Ev>,
        cos: Vec<Co>,
        users: Vec<User>,
    }

    impl Gen {
        fn insert_id(&mut self) -> String {
            format!("{:016x}", self.rng.random::<u64>())
        }

        /// Random time of day in business hours (seconds since midnight).
        fn tod(&mut self) -> i64 {
            self.rng.random_range(7 * 3600..21 * 3600)
        }

        /// Pushes an event; `tod` in seconds since midnight; the time representation is drawn
        /// (mostly integer seconds, some float seconds, some milliseconds).
        fn push(&mut self, day: usize, name: &str, user: usize, tod: i64, clean: bool) -> usize {
            let secs = DAY0 + day as i64 * DAY_S + tod;
            let r: f64 = self.rng.random();
            let (time, ts_ms) = if r < 0.05 {
                let ms: i64 = if self.rng.random_bool(0.3) {
                    500
                } else {
                    self.rng.random_range(1..1000)
                };
                let f: f64 = format!("{secs}.{ms:03}").parse().expect("float text");
                (J::Float(f), secs * 1000 + ms)
            } else if r < 0.10 {
                let ms = secs * 1000 + self.rng.random_range(0..1000);
                (J::Int(ms), ms)
            } else {
                (J::Int(secs), secs * 1000)
            };
            self.push_at(day, name, user, time, ts_ms, clean)
        }

        fn push_at(&mut self, day: usize, name: &str, user: usize, time: J, ts_ms: i64, clean: bool) -> usize {
            let u = &self.users[user];
            let co = u.co;
            let did = u.id.clone();
            let team = u.team.clone();
            let (browser, os) = (u.browser, u.os);
            let team = if self.rng.random_bool(0.5) { Some(team) } else { None };
            let insert_id = self.insert_id();
            let proc_ms = ts_ms + self.rng.random_range(500..90_000);
            let mut extra: Vec<(String, J)> = vec![
                ("$browser".into(), js(browser)),
                ("$os".into(), js(os)),
                ("plan".into(), js(self.cos[co].plan)),
            ];
            match name {
                CREATE => {
                    let p = format!("p-{:04x}", self.rng.random::<u16>());
                    extra.push(("project_id".into(), J::Str(p)));
                }
                EXPORT => {
                    let f = ["csv", "pdf", "xlsx"][self.rng.random_range(0..3)];
                    extra.push(("format".into(), js(f)));
                }
                IDENTIFY => {
                    let anon = format!("$device:{:012x}", self.rng.random::<u64>() >> 16);
                    extra = vec![
                        ("$anon_distinct_id".into(), J::Str(anon)),
                        ("$identified_id".into(), js(&did)),
                    ];
                }
                _ => {}
            }
            let seq = self.evs.len();
            self.evs.push(Ev {
                seq,
                day,
                name: name.to_string(),
                did,
                time,
                ts_ms,
                insert_id,
                proc_ms,
                company: Some(self.cos[co].id.clone()),
                canon: Some(co),
                team,
                extra,
                clean,
            });
            seq
        }

        fn joined(&self, co: usize, day: usize) -> Vec<usize> {
            (0..self.users.len())
                .filter(|&u| self.users[u].co == co && self.users[u].join <= day)
                .collect()
        }

        fn co_users(&self, co: usize) -> Vec<usize> {
            (0..self.users.len()).filter(|&u| self.users[u].co == co).collect()
        }

        /// Picks `n` distinct indices among events satisfying `f`, in a random order.
        fn pick(&mut self, n: usize, f: impl Fn(&Ev) -> bool) -> Vec<usize> {
            let mut idx: Vec<usize> = (0..self.evs.len()).filter(|&i| f(&self.evs[i])).collect();
            idx.shuffle(&mut self.rng);
            idx.truncate(n);
            idx
        }
    }

    fn companies() -> Vec<Co> {
        let act = |f: &dyn Fn(usize) -> bool| (0..DAYS).map(f).collect::<Vec<bool>>();
        vec![
            Co {
                label: "acme",
                id: js("acme"),
                plan: "pro",
                rate: 24.0,
                nusers: 12,
                teams: vec!["acme-eng", "acme-sales", "acme-ops"],
                active: act(&|_| true),
            },
            Co {
                label: "globex",
                id: js("globex"),
                plan: "starter",
                rate: 16.0,
                nusers: 9,
                teams: vec!["globex-eng", "globex-mkt"],
                active: act(&weekday),
            },
            Co {
                label: "initech",
                id: js("initech"),
                plan: "pro",
                rate: 12.0,
                nusers: 6,
                teams: vec!["initech-eng"],
                active: act(&|d| weekday(d) && d <= 18),
            },
            Co {
                label: "umbrella",
                id: js("umbrella"),
                plan: "enterprise",
                rate: 12.0,
                nusers: 7,
                teams: vec!["umbrella-lab", "umbrella-ops"],
                active: act(&|d| weekday(d) && (d <= 25 || d >= 46)),
            },
            Co {
                label: "hooli",
                id: js("hooli"),
                plan: "trial",
                rate: 14.0,
                nusers: 6,
                teams: vec!["hooli-eng", "hooli-growth"],
                active: act(&|d| weekday(d) && d >= 42),
            },
            Co {
                label: "1042",
                id: J::Int(1042),
                plan: "enterprise",
                rate: 13.0,
                nusers: 8,
                teams: vec!["wayne-rd", "wayne-ops"],
                active: act(&weekday),
            },
            Co {
                label: "2077",
                id: J::Int(2077),
                plan: "starter",
                rate: 7.0,
                nusers: 6,
                teams: vec!["t2077"],
                active: act(&|d| d % 7 == 1 || d % 7 == 3),
            },
            Co {
                label: "stark",
                id: js("stark"),
                plan: "trial",
                rate: 10.0,
                nusers: 6,
                teams: vec!["stark-rd", "stark-ops"],
                active: act(&|d| weekday(d) && d >= 1),
            },
        ]
    }

    /// Output line with an optional note for the README (bad records, blank line).
    struct Line {
        text: String,
        note: Option<String>,
    }

    #[derive(Clone, Copy, PartialEq)]
    enum DupKind {
        Exact,
        LaterSame,
        LaterOtherCompany,
        EarlierOtherCompany,
        SameFileExact,
    }

    struct Dup {
        ev: Ev,
        kind: DupKind,
        file: usize,
        orig_company: String,
    }

    fn week_file(w: usize) -> String {
        let d = date_str((w * 7) as i64);
        match w {
            0..=4 => format!("{d}.ndjson.gz"),
            5 => format!("{d}.ndjson.zst"),
            6 => format!("{d}.ndjson"),
            7 => format!("{d}.parquet"),
            _ => format!("{d}.csv"),
        }
    }

    #[allow(clippy::needless_range_loop)] // indices are needed while `g` is borrowed mutably
    pub fn run(out: &Path, seed: u64) -> Result<()> {
        let mut g = Gen {
            rng: StdRng::seed_from_u64(seed),
            evs: Vec::new(),
            cos: companies(),
            users: Vec::new(),
        };
        let browsers = ["Chrome", "Chrome", "Firefox", "Safari", "Edge"];
        let oses = ["Mac OS X", "Windows", "Linux"];

        // users and their join days (always an active day of their company)
        for c in 0..g.cos.len() {
            let act: Vec<usize> = (0..DAYS).filter(|&d| g.cos[c].active[d]).collect();
            for i in 0..g.cos[c].nusers {
                let join = if c == STARK {
                    if i == 0 {
                        2
                    } else {
                        g.rng.random_range(2..4)
                    }
                } else if i == 0 {
                    act[0]
                } else if i < g.cos[c].nusers / 3 {
                    act[g.rng.random_range(0..2)]
                } else {
                    act[g.rng.random_range(0..act.len() / 2)]
                };
                let team = g.cos[c].teams[i % g.cos[c].teams.len()].to_string();
                let browser = browsers[g.rng.random_range(0..browsers.len())];
                let os = oses[g.rng.random_range(0..oses.len())];
                g.users.push(User {
                    id: format!("u-{}-{:02}", g.cos[c].label, i + 1),
                    co: c,
                    join,
                    team,
                    browser,
                    os,
                });
            }
        }

        // scripted: Sign Up (+ $identify) on every user's join day
        for u in 0..g.users.len() {
            let day = g.users[u].join;
            let tod = g.tod();
            g.push(day, SIGN_UP, u, tod, true);
            if g.rng.random_bool(0.6) {
                let secs = DAY0 + day as i64 * DAY_S + tod + g.rng.random_range(2..60);
                g.push_at(day, IDENTIFY, u, J::Int(secs), secs * 1000, true);
            }
        }

        // scripted funnel steps; background funnel events only after `funnel_done`
        let mut funnel_done = vec![0usize; g.cos.len()];
        for c in 0..g.cos.len() {
            let users = g.co_users(c);
            if c == STARK {
                // out of order and too slow: Create Project before anyone signed up (01-02),
                // then again 19+ days after the sign ups (01-23), Invite Teammate on 01-25.
                let t = g.tod();
                g.push(1, CREATE, users[0], t, true);
                let t = g.tod();
                g.push(22, CREATE, users[1], t, true);
                let t = g.tod();
                g.push(24, INVITE, users[2], t, true);
                funnel_done[c] = usize::MAX;
                continue;
            }
            let act: Vec<usize> = (0..DAYS).filter(|&d| g.cos[c].active[d]).collect();
            // Create Project on the 2nd or 3rd active day, Invite Teammate on the next active
            // day: within 9 calendar days of the first Sign Up even for 2077 (Tue/Thu only)
            let cp_idx = g.rng.random_range(1..3);
            let cp_day = act[cp_idx];
            let inv_day = act[cp_idx + 1];
            let t = g.tod();
            let i = g.push(cp_day, CREATE, users[0], t, true);
            if c == WAYNE {
                // the same group under its string spelling
                g.evs[i].company = Some(js("1042"));
                g.evs[i].canon = None;
            }
            if c == INITECH {
                // initech never invites anyone: drops off at step 3
                funnel_done[c] = usize::MAX;
                continue;
            }
            let t = g.tod();
            g.push(inv_day, INVITE, users[0], t, true);
            funnel_done[c] = inv_day;
        }

        // background activity; the first event of each (company, active day) is a clean anchor
        for d in 0..DAYS {
            for c in 0..g.cos.len() {
                if !g.cos[c].active[d] {
                    continue;
                }
                if c == C2077 && d == 38 {
                    // 2077's only event on 2024-02-08 has an empty distinct_id: events 1, users 0
                    let u = g.co_users(c)[0];
                    let t = g.tod();
                    let i = g.push(d, VIEW, u, t, true);
                    g.evs[i].did = String::new();
                    continue;
                }
                let joined = g.joined(c, d);
                if joined.is_empty() {
                    continue;
                }
                let wk = if weekday(d) { 1.0 } else { 0.3 };
                let n = (g.cos[c].rate * wk * g.rng.random_range(0.7..1.3)).round() as usize;
                for i in 0..n.max(1) {
                    let r: f64 = g.rng.random();
                    let after = d > funnel_done[c];
                    let name = if c == STARK {
                        if r < 0.75 {
                            VIEW
                        } else {
                            EXPORT
                        }
                    } else if r < 0.55 {
                        VIEW
                    } else if r < 0.72 {
                        EXPORT
                    } else if r < 0.87 {
                        if after {
                            CREATE
                        } else {
                            VIEW
                        }
                    } else if r < 0.95 {
                        if after && c != INITECH {
                            INVITE
                        } else {
                            VIEW
                        }
                    } else {
                        IDENTIFY
                    };
                    let u = joined[g.rng.random_range(0..joined.len())];
                    let t = g.tod();
                    g.push(d, name, u, t, i == 0);
                }
            }
        }

        // day-boundary events (UTC): 23:59:59, 00:00:00 and 23:59:59.5
        let acme_u = g.co_users(ACME)[0];
        let globex_u = g.co_users(GLOBEX)[0];
        let s = DAY0 + 9 * DAY_S + DAY_S - 1;
        g.push_at(9, VIEW, acme_u, J::Int(s), s * 1000, true);
        let s = DAY0 + 10 * DAY_S;
        g.push_at(10, VIEW, acme_u, J::Int(s), s * 1000, true);
        let s = DAY0 + 16 * DAY_S + DAY_S - 1;
        g.push_at(16, VIEW, globex_u, J::Float(s as f64 + 0.5), s * 1000 + 500, true);

        // $groupidentify (excluded by default): hooli before it is active, initech after churn
        for (c, d) in [(HOOLI, 31usize), (INITECH, 50), (ACME, 5)] {
            let u = g.co_users(c)[0];
            let t = g.tod();
            let i = g.push(d, GROUPIDENTIFY, u, t, true);
            let gid = g.cos[c].id.clone();
            g.evs[i].extra = vec![("$group_key".into(), js("company_id")), ("$group_id".into(), gid)];
        }

        // late ingestion around team_id's effective_from (2024-01-20): event time 01-17..01-19,
        // mp_processing_time_ms on 01-20..01-21
        let late = g.pick(8, |e| {
            !e.clean && (16..=18).contains(&e.day) && e.team.is_some() && matches!(e.canon, Some(ACME) | Some(GLOBEX))
        });
        let mut late_ids = Vec::new();
        for i in late {
            let p = (DAY0 + 19 * DAY_S) * 1000 + g.rng.random_range(3_600_000..40 * 3_600_000);
            g.evs[i].proc_ms = p;
            g.evs[i].clean = true; // keep it as described in the README
            late_ids.push(g.evs[i].insert_id.clone());
        }
        late_ids.sort();

        // group-id shapes on non-anchor events
        for i in 0..g.evs.len() {
            if g.evs[i].clean {
                continue;
            }
            let r: f64 = g.rng.random();
            match g.evs[i].canon {
                Some(ACME) if r < 0.03 => {
                    g.evs[i].company = Some(J::Arr(vec![js("acme"), js("globex")]));
                    g.evs[i].canon = None;
                }
                Some(ACME) if r < 0.04 => {
                    g.evs[i].company = Some(J::Arr(vec![js("acme"), js("acme")]));
                    g.evs[i].canon = None;
                }
                Some(ACME) | Some(GLOBEX) if (0.05..0.086).contains(&r) => {
                    g.evs[i].company = if r < 0.07 {
                        None
                    } else if r < 0.076 {
                        Some(js(""))
                    } else if r < 0.082 {
                        Some(J::Null)
                    } else {
                        Some(J::Bool(true))
                    };
                    g.evs[i].canon = None;
                }
                Some(WAYNE) if r < 0.25 => {
                    g.evs[i].company = Some(js("1042"));
                    g.evs[i].canon = None;
                }
                _ => {}
            }
        }
        let special: [(usize, J); 5] = [
            (ACME, J::Arr(vec![js("acme"), js("")])),
            (ACME, obj(vec![("id", js("acme"))])),
            (WAYNE, J::Float(1042.0)),
            (WAYNE, J::Float(1042.0)),
            (WAYNE, J::Arr(vec![js("1042"), J::Int(1042)])),
        ];
        for (c, v) in special {
            let i = g.pick(1, |e| !e.clean && e.canon == Some(c))[0];
            g.evs[i].company = Some(v);
            g.evs[i].canon = None;
        }

        // empty distinct_id: counted as events, not users
        for i in g.pick(8, |e| !e.clean && matches!(e.canon, Some(ACME) | Some(GLOBEX))) {
            g.evs[i].did = String::new();
            g.evs[i].clean = true;
        }

        // same (event, distinct_id, time) but a different $insert_id: two real events
        let mut twins = Vec::new();
        for i in g.pick(2, |e| !e.clean && e.canon == Some(ACME)) {
            let mut e = g.evs[i].clone();
            e.insert_id = g.insert_id();
            e.proc_ms += 1234;
            e.seq = g.evs.len();
            e.clean = true;
            twins.push((g.evs[i].insert_id.clone(), e.insert_id.clone()));
            g.evs[i].clean = true;
            g.evs.push(e);
        }

        // duplicates (~3%): re-emitted in the next week's file, or right after the original
        let n_dup = g.evs.len() * 3 / 100;
        let mut dups: Vec<Dup> = Vec::new();
        let other_pool = [ACME, GLOBEX, WAYNE];
        let plan: [(DupKind, usize); 5] = [
            (DupKind::LaterOtherCompany, 15),
            (DupKind::EarlierOtherCompany, 3),
            (DupKind::SameFileExact, 5),
            (DupKind::LaterSame, 18),
            (DupKind::Exact, n_dup.saturating_sub(41)),
        ];
        let mut used = vec![false; g.evs.len()];
        for (kind, n) in plan {
            let other = matches!(kind, DupKind::LaterOtherCompany | DupKind::EarlierOtherCompany);
            let picked = {
                let used = &used;
                let mut idx: Vec<usize> = (0..g.evs.len())
                    .filter(|&i| {
                        let e = &g.evs[i];
                        !used[i]
                            && !e.clean
                            && !e.did.is_empty()
                            && (kind == DupKind::SameFileExact || e.day < 56)
                            && (!other || matches!(e.canon, Some(c) if other_pool.contains(&c)))
                    })
                    .collect();
                idx.shuffle(&mut g.rng);
                idx.truncate(n);
                idx
            };
            for i in picked {
                used[i] = true;
                let week = g.evs[i].day / 7;
                let orig_company = g.evs[i].company.as_ref().map(|c| c.text()).unwrap_or_default();
                let mut e = g.evs[i].clone();
                match kind {
                    DupKind::Exact | DupKind::SameFileExact => {}
                    DupKind::LaterSame => {
                        e.proc_ms += g.rng.random_range(3_600_000..48 * 3_600_000);
                    }
                    DupKind::LaterOtherCompany | DupKind::EarlierOtherCompany => {
                        let cur = g.evs[i].canon.expect("canonical");
                        let others: Vec<usize> = other_pool.iter().copied().filter(|&c| c != cur).collect();
                        let to = others[g.rng.random_range(0..others.len())];
                        e.company = Some(g.cos[to].id.clone());
                        if kind == DupKind::LaterOtherCompany {
                            e.proc_ms += g.rng.random_range(3_600_000..72 * 3_600_000);
                        } else {
                            // the original was ingested later than this re-delivered copy
                            g.evs[i].proc_ms = g.evs[i].ts_ms + g.rng.random_range(120_000..600_000);
                            e.proc_ms = g.evs[i].ts_ms + g.rng.random_range(1_000..5_000);
                        }
                    }
                }
                let file = if kind == DupKind::SameFileExact { week } else { week + 1 };
                if matches!(kind, DupKind::Exact | DupKind::SameFileExact) {
                    e = g.evs[i].clone(); // byte-identical to the (possibly adjusted) original
                }
                dups.push(Dup {
                    ev: e,
                    kind,
                    file,
                    orig_company,
                });
            }
        }
        // exact copies must mirror the final original (the EarlierOtherCompany pass can only
        // touch its own originals, which are never exact-copied, so they already do)

        // assemble the week files
        let mut files: Vec<Vec<Line>> = (0..WEEKS).map(|_| Vec::new()).collect();
        let mut by_week: Vec<Vec<&Ev>> = (0..WEEKS).map(|_| Vec::new()).collect();
        for e in &g.evs {
            by_week[e.day / 7].push(e);
        }
        for w in 0..WEEKS {
            by_week[w].sort_by_key(|e| (e.ts_ms, e.seq));
            for e in &by_week[w] {
                files[w].push(Line {
                    text: e.line(),
                    note: None,
                });
                for d in dups
                    .iter()
                    .filter(|d| d.kind == DupKind::SameFileExact && d.ev.seq == e.seq)
                {
                    files[w].push(Line {
                        text: d.ev.line(),
                        note: Some("exact duplicate of the previous line (SDK retry)".into()),
                    });
                }
            }
            let mut late: Vec<&Dup> = dups
                .iter()
                .filter(|d| d.file == w && d.kind != DupKind::SameFileExact)
                .collect();
            late.sort_by_key(|d| (d.ev.ts_ms, d.ev.seq));
            for d in late {
                files[w].push(Line {
                    text: d.ev.line(),
                    note: None,
                });
            }
        }

        // deliberate bad records (NDJSON files only) and one blank line
        let bad_t = |d: i64| DAY0 + d * DAY_S + 12 * 3600;
        let bad: Vec<(usize, usize, String, &str)> = vec![
            (
                1,
                40,
                format!(
                    "{{\"event\":\"View Dashboard\",\"properties\":{{\"time\":{},\"distinct_id\":\"u-acme-03\",\"$insert_id\":\"bad-0001\",\"company_id\":\"acme\"",
                    bad_t(8)
                ),
                "unparseable JSON (truncated line)",
            ),
            (
                1,
                120,
                format!(
                    "[\"View Dashboard\",{{\"time\":{},\"distinct_id\":\"u-acme-03\",\"$insert_id\":\"bad-0002\",\"company_id\":\"acme\"}}]",
                    bad_t(9)
                ),
                "JSON array instead of an object",
            ),
            (
                5,
                60,
                format!(
                    "{{\"properties\":{{\"time\":{},\"distinct_id\":\"u-globex-02\",\"$insert_id\":\"bad-0003\",\"mp_processing_time_ms\":{},\"company_id\":\"globex\"}}}}",
                    bad_t(36),
                    bad_t(36) * 1000 + 4000
                ),
                "no \"event\" field",
            ),
            (
                6,
                30,
                "{\"event\":\"Export Report\",\"properties\":{\"time\":\"yesterday\",\"distinct_id\":\"u-acme-04\",\"$insert_id\":\"bad-0004\",\"company_id\":\"acme\"}}".to_string(),
                "properties.time is the string \"yesterday\"",
            ),
            (6, 100, String::new(), "blank line (skipped, not an error)"),
            (
                6,
                200,
                "{\"event\":\"View Dashboard\"}".to_string(),
                "no \"properties\"",
            ),
        ];
        for (w, line_no, text, why) in bad {
            let at = (line_no - 1).min(files[w].len());
            files[w].insert(
                at,
                Line {
                    text,
                    note: Some(why.to_string()),
                },
            );
        }

        // write events
        let mx = out.join("mixpanel");
        let ev_dir = mx.join("events");
        let gr_dir = mx.join("groups");
        if ev_dir.exists() {
            fs::remove_dir_all(&ev_dir)?;
        }
        if gr_dir.exists() {
            fs::remove_dir_all(&gr_dir)?;
        }
        fs::create_dir_all(&ev_dir)?;
        fs::create_dir_all(&gr_dir)?;
        let mut written: Vec<(String, usize, u64)> = Vec::new();
        for (w, lines) in files.iter().enumerate() {
            let name = week_file(w);
            let path = ev_dir.join(&name);
            match w {
                0..=6 => {
                    let mut buf = String::new();
                    for l in lines {
                        buf.push_str(&l.text);
                        buf.push('\n');
                    }
                    write_ndjson(&path, buf.as_bytes())?;
                }
                7 => {
                    let (ev, pr): (Vec<String>, Vec<String>) = lines.iter().map(|l| split_record(&l.text)).unzip();
                    let schema = Arc::new(Schema::new(vec![
                        Field::new("event", DataType::Utf8, false),
                        Field::new("properties", DataType::Utf8, false),
                    ]));
                    let batch = RecordBatch::try_new(
                        schema.clone(),
                        vec![
                            Arc::new(StringArray::from(ev)) as ArrayRef,
                            Arc::new(StringArray::from(pr)) as ArrayRef,
                        ],
                    )?;
                    let props = WriterProperties::builder().set_compression(Compression::SNAPPY).build();
                    let mut wr = ArrowWriter::try_new(File::create(&path)?, schema, Some(props))?;
                    wr.write(&batch)?;
                    wr.close()?;
                }
                _ => {
                    let mut wr = csv::WriterBuilder::new()
                        .terminator(csv::Terminator::Any(b'\n'))
                        .from_path(&path)?;
                    wr.write_record(["event", "properties"])?;
                    for l in lines {
                        let (e, p) = split_record(&l.text);
                        wr.write_record([e, p])?;
                    }
                    wr.flush()?;
                }
            }
            written.push((format!("mixpanel/events/{name}"), lines.len(), file_size(&path)));
        }

        // group-profile operations
        let (ops1, ops2) = ops::build();
        for (name, lines) in [("ops.ndjson", &ops1), ("ops-2.ndjson", &ops2)] {
            let path = gr_dir.join(name);
            let mut buf = String::new();
            for l in lines.iter() {
                buf.push_str(&l.text);
                buf.push('\n');
            }
            fs::write(&path, buf)?;
            written.push((format!("mixpanel/groups/{name}"), lines.len(), file_size(&path)));
        }

        // README
        let mut bad_notes: Vec<(String, usize, String)> = Vec::new();
        for (w, lines) in files.iter().enumerate() {
            for (i, l) in lines.iter().enumerate() {
                if let Some(n) = &l.note {
                    if !n.starts_with("exact duplicate") {
                        bad_notes.push((week_file(w), i + 1, n.clone()));
                    }
                }
            }
        }
        let mut op_notes: Vec<(String, usize, String)> = Vec::new();
        for (name, lines) in [("ops-2.ndjson", &ops2), ("ops.ndjson", &ops1)] {
            for (i, l) in lines.iter().enumerate() {
                if let Some(n) = &l.note {
                    op_notes.push((name.to_string(), i + 1, n.clone()));
                }
            }
        }
        let same_file: Vec<(String, usize)> = files
            .iter()
            .enumerate()
            .flat_map(|(w, lines)| {
                lines.iter().enumerate().filter_map(move |(i, l)| {
                    l.note
                        .as_deref()
                        .filter(|n| n.starts_with("exact duplicate"))
                        .map(|_| (week_file(w), i + 1))
                })
            })
            .collect();
        let readme = readme(
            seed, &g, &written, &bad_notes, &op_notes, &dups, &same_file, &late_ids, &twins,
        );
        fs::write(out.join("README.md"), readme)?;

        let total_bytes: u64 = written.iter().map(|w| w.2).sum();
        let n_records: usize = files.iter().map(|f| f.len()).sum();
        println!(
            "sample: wrote {} event records ({} unique events, {} re-emitted copies, {} bad/blank lines) in {} event files and {} profile ops in 2 files under {} ({} bytes, seed {})",
            n_records,
            g.evs.len(),
            dups.len(),
            bad_notes.len(),
            files.len(),
            ops1.len() + ops2.len(),
            mx.display(),
            total_bytes,
            seed
        );
        Ok(())
    }

    fn write_ndjson(path: &Path, bytes: &[u8]) -> Result<()> {
        let name = path.to_string_lossy();
        if name.ends_with(".gz") {
            let mut w = gz_writer(path)?;
            w.write_all(bytes)?;
            w.finish()?.flush()?;
        } else if name.ends_with(".zst") {
            let f = File::create(path)?;
            let mut w = zstd::stream::write::Encoder::new(f, ZSTD_LEVEL)?;
            w.write_all(bytes)?;
            w.finish()?.flush()?;
        } else {
            fs::write(path, bytes)?;
        }
        Ok(())
    }

    /// Splits a rendered `{"event":..,"properties":{..}}` line back into (event, properties
    /// JSON text) for the Parquet and CSV files.
    fn split_record(line: &str) -> (String, String) {
        let v: serde_json::Value = serde_json::from_str(line).expect("valid generated record");
        let ev = v["event"].as_str().expect("event").to_string();
        let key = "\"properties\":";
        let at = line.find(key).expect("properties") + key.len();
        (ev, line[at..line.len() - 1].to_string())
    }

    #[allow(clippy::too_many_arguments)]
    fn readme(
        seed: u64,
        g: &Gen,
        written: &[(String, usize, u64)],
        bad: &[(String, usize, String)],
        op_bad: &[(String, usize, String)],
        dups: &[Dup],
        same_file: &[(String, usize)],
        late_ids: &[String],
        twins: &[(String, String)],
    ) -> String {
        let mut s = String::new();
        let mut p = |x: &str| {
            s.push_str(x);
            s.push('\n');
        };
        p("# groupetl sample data");
        p("");
        p(&format!(
            "Synthetic, seeded (seed {seed}) Mixpanel-shaped data for a small B2B SaaS product. \
             Generated by `examples/gen.rs`; regenerate with:"
        ));
        p("");
        p("```sh");
        p(&format!(
            "cargo run --example gen -- sample --out sample_data{}",
            if seed == 42 {
                String::new()
            } else {
                format!(" --seed {seed}")
            }
        ));
        p("```");
        p("");
        p("The output is byte-for-byte deterministic for a given seed (and rand/flate2/zstd/parquet version).");
        p("");
        p("## Files");
        p("");
        p("| file | records (lines/rows) | bytes |");
        p("|---|---|---|");
        for (f, n, b) in written {
            p(&format!("| `mixpanel/{}` | {n} | {b} |", &f["mixpanel/".len()..]));
        }
        p("");
        p("Events: Mixpanel raw-export records `{\"event\", \"properties\": {\"time\", \"distinct_id\", \"$insert_id\", \"mp_processing_time_ms\", \"company_id\", \"team_id\", ...}}`, one file per week (weeks start Monday), 2024-01-01 .. 2024-02-29 UTC. \
           The week files use every reader: gzip NDJSON (`2024-01-01` .. `2024-01-29`), zstd NDJSON (`2024-02-05`), plain NDJSON (`2024-02-12`), Parquet with Utf8 columns `event`, `properties` (the properties object as JSON text; `2024-02-19`) and CSV with header `event,properties` (`2024-02-26`). \
           A job must list all of them, e.g. `paths = [\"sample_data/mixpanel/events/*\"]`.");
        p("");
        p("Group keys on events: `company_id` and `team_id` (team_id is on about half of the events, before and after 2024-01-20, the effective date the sample job gives team_id). Profiles: `mixpanel/groups/*.ndjson`, Mixpanel `/groups` bodies, `$group_key` `company_id` or `team_id`, name property `name`.");
        p("");
        p("`time` is mostly integer epoch seconds, ~5% float seconds (e.g. `1704103200.5`), ~5% epoch milliseconds. `mp_processing_time_ms` is 0.5..90 s after the event, except where noted.");
        p("");
        p("## Companies (`company_id`) and activity");
        p("");
        p("| id | users | active | notes |");
        p("|---|---|---|---|");
        let rows = [
            ("`\"acme\"`", "every day (weekends lighter)", "largest; gets most of the odd group-id shapes"),
            ("`\"globex\"`", "weekdays", ""),
            ("`\"initech\"`", "weekdays 2024-01-01 .. 2024-01-19, then never", "churns; funnel stops at step 2 (never invites); `$groupidentify` on 2024-02-20 is excluded activity; profile `$delete`d and never recreated"),
            ("`\"umbrella\"`", "weekdays 2024-01-01 .. 2024-01-26 and 2024-02-16 .. 2024-02-29", "dormant 20 days (weeks of 01-29 and 02-05 fully inactive), resurrects 02-16; profile deleted 01-29 and recreated 02-16"),
            ("`\"hooli\"`", "weekdays from 2024-02-12", "joins late; a `$groupidentify` on 2024-02-01 must not make it active earlier"),
            ("`1042` (JSON number)", "weekdays", "~25% of its events spell it `\"1042\"`, two use `1042.0`, one `[\"1042\", 1042]`; all one group `1042`. Its Create Project step uses `\"1042\"`"),
            ("`2077` (JSON number)", "Tuesdays and Thursdays", "on 2024-02-08 its only event has `distinct_id` `\"\"` (events 1, users 0); profile ops spell it `\"2077\"`"),
            ("`\"stark\"`", "weekdays from 2024-01-02", "funnel out of order/too slow: Create Project 01-02 before any Sign Up (01-03/01-04), again 01-23 (>14 days later), Invite Teammate 01-25: completes step 1 only"),
        ];
        for (i, (id, act, notes)) in rows.iter().enumerate() {
            let nu = g.users.iter().filter(|u| u.co == i).count();
            p(&format!("| {id} | {nu} | {act} | {notes} |"));
        }
        p("");
        p("Teams (`team_id`, strings): acme-eng, acme-sales, acme-ops, globex-eng, globex-mkt, initech-eng, umbrella-lab, umbrella-ops, hooli-eng, hooli-growth, wayne-rd, wayne-ops, t2077, stark-rd, stark-ops. A user always reports the same team.");
        p("");
        p("Users: `u-<company>-NN`; every user's first event is `Sign Up` (often followed by `$identify`). Funnel `Sign Up → Create Project → Invite Teammate` (14 days): acme, globex, umbrella, hooli, 1042 and 2077 complete it within a week; initech stops at step 2; stark at step 1.");
        p("");
        p("## Deliberate edge cases in the events");
        p("");
        p("- `company_id` shapes (acme/globex only, never on a company's first event of a day): missing key, `\"\"`, `null`, `true`, `{\"id\":\"acme\"}` (no group); `[\"acme\",\"globex\"]`, `[\"acme\",\"acme\"]` (one group), `[\"acme\",\"\"]` (acme only).");
        p("- 8 acme/globex events with `distinct_id` `\"\"` (count as events, not users), plus the 2077 one above.");
        p("- Day boundaries: acme at 2024-01-10T23:59:59 and 2024-01-11T00:00:00, globex at 2024-01-17T23:59:59.5 (float).");
        p("- `$groupidentify` events (excluded by default): acme 2024-01-06, hooli 2024-02-01, initech 2024-02-20.");
        p(&format!(
            "- Late ingestion: {} acme/globex events with `team_id`, event time 2024-01-17..19, `mp_processing_time_ms` on 2024-01-20/21 (attributed to their team under `clock = \"ingest\"` with effective_from 2024-01-20, not under `clock = \"event\"`): `$insert_id` {}.",
            late_ids.len(),
            late_ids.iter().map(|x| format!("`{x}`")).collect::<Vec<_>>().join(", ")
        ));
        p(&format!(
            "- Not duplicates: two pairs of acme events with the same event, distinct_id and time but different `$insert_id`: {}.",
            twins
                .iter()
                .map(|(a, b)| format!("`{a}`/`{b}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let count = |k: DupKind| dups.iter().filter(|d| d.kind == k).count();
        p(&format!(
            "- Duplicates (same event, distinct_id, raw time and `$insert_id`; {} copies in all): {} byte-identical copies and {} copies with a later `mp_processing_time_ms` re-emitted at the end of the next week's file; {} byte-identical copies right after their original ({}); {} copies with a later `mp_processing_time_ms` and a different `company_id` (the copy wins), and {} copies with an earlier `mp_processing_time_ms` and a different `company_id` (the original wins), all in the next week's file:",
            dups.len(),
            count(DupKind::Exact),
            count(DupKind::LaterSame),
            count(DupKind::SameFileExact),
            same_file
                .iter()
                .map(|(f, l)| format!("`{f}` line {l}"))
                .collect::<Vec<_>>()
                .join(", "),
            count(DupKind::LaterOtherCompany),
            count(DupKind::EarlierOtherCompany),
        ));
        p("");
        p("| `$insert_id` | event date | original company_id | copy company_id | copy in | kept |");
        p("|---|---|---|---|---|---|");
        let mut moved: Vec<&Dup> = dups
            .iter()
            .filter(|d| matches!(d.kind, DupKind::LaterOtherCompany | DupKind::EarlierOtherCompany))
            .collect();
        moved.sort_by_key(|d| (d.ev.ts_ms, d.ev.seq));
        for d in moved {
            p(&format!(
                "| `{}` | {} | `{}` | `{}` | `{}` | {} |",
                d.ev.insert_id,
                date_str(d.ev.day as i64),
                d.orig_company,
                d.ev.company.as_ref().map(|c| c.text()).unwrap_or_default(),
                week_file(d.file),
                if d.kind == DupKind::LaterOtherCompany {
                    "copy"
                } else {
                    "original"
                }
            ));
        }
        p("");
        p("## Bad records (events)");
        p("");
        p("Line numbers are 1-based within the decompressed file.");
        p("");
        p("| file | line | what |");
        p("|---|---|---|");
        for (f, l, n) in bad {
            p(&format!("| `events/{f}` | {l} | {n} |"));
        }
        p("");
        p("## Group-profile operations");
        p("");
        p("Note: in full-path order `groups/ops-2.ndjson` sorts before `groups/ops.ndjson` (`-` < `.`), so with `order = \"arrival\"` ops-2 is applied first. \
           It holds the team_id ops and one late company op (globex `$set plan=enterprise` at 2024-02-20): with `order = \"arrival\"` globex ends with plan `starter` (and `created_at` 2024-02-20 after `updated_at`), with `order = \"time\"` plan `enterprise`. \
           Inside ops.ndjson acme gets `plan=enterprise` ($time 02-25) before `plan=business` ($time 02-22): arrival gives `business`, time gives `enterprise`.");
        p("");
        p("`$time`: mostly integer seconds, some float seconds, some milliseconds, some missing (missing ones are bad records under `order = \"time\"`: 2077's first `$set` and one team op).");
        p("");
        p("Covered: `$set` (nested `address`, `null` value), `$set_once` (existing key, key stored as `null`, new key), `$unset` (incl. a missing key, and on a missing group: no group created), `$union` (missing key, overlapping list, `1` vs `\"1\"`, non-list key ignored), `$remove` (from a list, missing key, non-list key, missing group), `$delete` with `\"\"` (initech, stays deleted), `null` (umbrella, recreated by `$set`), `\"null\"` (stark, recreated by `$union`) and on a never-created group; group id `1042` as a JSON number and as `\"1042\"`.");
        p("");
        p("| file | line | bad record |");
        p("|---|---|---|");
        for (f, l, n) in op_bad {
            p(&format!("| `groups/{f}` | {l} | {n} |"));
        }
        s
    }
}

// ---------------------------------------------------------------------------------------------
// sample profile operations

mod ops {
    use super::*;

    pub struct OpLine {
        pub text: String,
        pub note: Option<String>,
    }

    #[derive(Clone, Copy)]
    enum T {
        S(i64),      // integer seconds
        F(i64, u32), // float seconds with millis
        Ms(i64),     // milliseconds
        None,
    }

    /// Epoch seconds of day `d` (from 2024-01-01) at `h:m`.
    fn at(d: i64, h: i64, m: i64) -> i64 {
        DAY0 + d * DAY_S + h * 3600 + m * 60
    }

    fn op(gk: &str, gid: &str, op: &str, payload: &str, t: T) -> String {
        let mut s = format!("{{\"$token\":\"t\",\"$group_key\":\"{gk}\",\"$group_id\":{gid},\"{op}\":{payload}");
        match t {
            T::S(x) => s.push_str(&format!(",\"$time\":{x}")),
            T::F(x, ms) => s.push_str(&format!(",\"$time\":{x}.{ms:03}")),
            T::Ms(x) => s.push_str(&format!(",\"$time\":{}", x * 1000 + 250)),
            T::None => {}
        }
        s.push('}');
        s
    }

    fn good(v: &mut Vec<OpLine>, text: String) {
        let parsed: serde_json::Value = serde_json::from_str(&text).expect("good op parses");
        assert!(parsed.is_object());
        v.push(OpLine { text, note: None });
    }

    fn bad(v: &mut Vec<OpLine>, text: String, why: &str) {
        v.push(OpLine {
            text,
            note: Some(why.to_string()),
        });
    }

    /// (`ops.ndjson`, `ops-2.ndjson`)
    pub fn build() -> (Vec<OpLine>, Vec<OpLine>) {
        let c = "company_id";
        let mut a: Vec<OpLine> = Vec::new();
        let q = |s: &str| format!("\"{s}\"");

        good(
            &mut a,
            op(
                c,
                &q("acme"),
                "$set",
                r#"{"name":"Acme Corp","plan":"pro","seats":25,"industry":"Manufacturing","address":{"city":"Springfield","country":"US"},"crm_id":null}"#,
                T::S(at(0, 9, 0)),
            ),
        );
        good(
            &mut a,
            op(
                c,
                &q("initech"),
                "$set",
                r#"{"name":"Initech","plan":"pro","seats":8,"industry":"Software"}"#,
                T::S(at(0, 9, 30)),
            ),
        );
        good(
            &mut a,
            op(
                c,
                &q("umbrella"),
                "$set",
                r#"{"name":"Umbrella Corp","plan":"enterprise","seats":120,"industry":"Pharma"}"#,
                T::F(at(0, 10, 0), 125),
            ),
        );
        good(
            &mut a,
            op(
                c,
                &q("globex"),
                "$set",
                r#"{"name":"Globex","plan":"starter","seats":10}"#,
                T::F(at(1, 8, 15), 500),
            ),
        );
        good(
            &mut a,
            op(
                c,
                &q("stark"),
                "$set",
                r#"{"name":"Stark Industries","plan":"trial"}"#,
                T::S(at(1, 11, 0)),
            ),
        );
        good(
            &mut a,
            op(
                c,
                &q("acme"),
                "$set_once",
                r#"{"name":"Acme Inc","crm_id":"SF-0001","first_seen":"2024-01-01"}"#,
                T::S(at(1, 12, 0)),
            ),
        );
        good(
            &mut a,
            op(
                c,
                "1042",
                "$set",
                r#"{"name":"Wayne Enterprises","plan":"enterprise","seats":300}"#,
                T::Ms(at(2, 9, 0)),
            ),
        );
        good(
            &mut a,
            op(c, &q("2077"), "$set", r#"{"plan":"starter","seats":3}"#, T::None),
        );
        good(
            &mut a,
            op(
                c,
                &q("acme"),
                "$union",
                r#"{"tags":["b2b","enterprise"]}"#,
                T::S(at(2, 14, 0)),
            ),
        );
        good(
            &mut a,
            op(
                c,
                &q("acme"),
                "$union",
                r#"{"tags":["enterprise","beta","b2b","beta"]}"#,
                T::S(at(4, 10, 0)),
            ),
        );
        good(
            &mut a,
            op(c, &q("globex"), "$set", r#"{"flags":[1,2]}"#, T::S(at(4, 11, 0))),
        );
        good(
            &mut a,
            op(c, &q("globex"), "$union", r#"{"flags":["1",2,3]}"#, T::S(at(5, 11, 0))),
        );
        good(
            &mut a,
            op(c, &q("acme"), "$union", r#"{"plan":["enterprise"]}"#, T::S(at(7, 9, 0))),
        );
        good(
            &mut a,
            op(c, &q("acme"), "$remove", r#"{"tags":"beta"}"#, T::S(at(8, 9, 0))),
        );
        good(
            &mut a,
            op(
                c,
                &q("acme"),
                "$remove",
                r#"{"integrations":"slack"}"#,
                T::S(at(8, 9, 5)),
            ),
        );
        bad(&mut a, format!("{{\"$token\":\"t\",\"$group_key\":\"{c}\",\"$group_id\":\"acme\",\"$set\":{{\"seats\":26}},\"$unset\":[\"industry\"],\"$time\":{}}}", at(8, 10, 0)), "two operators (`$set` and `$unset`) in one record");
        good(
            &mut a,
            op(c, &q("acme"), "$remove", r#"{"plan":"pro"}"#, T::S(at(9, 9, 0))),
        );
        good(
            &mut a,
            op(
                c,
                &q("acme"),
                "$set",
                r#"{"address":{"city":"Shelbyville"}}"#,
                T::S(at(11, 9, 0)),
            ),
        );
        bad(
            &mut a,
            op(c, &q("acme"), "$add", r#"{"seats":5}"#, T::S(at(12, 9, 0))),
            "unsupported operator `$add`",
        );
        good(
            &mut a,
            op(
                c,
                &q("acme"),
                "$unset",
                r#"["industry","no_such_key"]"#,
                T::S(at(14, 9, 0)),
            ),
        );
        good(
            &mut a,
            op(c, &q("acme"), "$set", r#"{"seats":30}"#, T::Ms(at(19, 16, 0))),
        );
        good(&mut a, op(c, &q("initech"), "$delete", r#""""#, T::S(at(24, 9, 0))));
        good(&mut a, op(c, &q("umbrella"), "$delete", "null", T::S(at(28, 9, 0))));
        good(&mut a, op(c, &q("stark"), "$delete", r#""null""#, T::S(at(31, 9, 0))));
        good(
            &mut a,
            op(c, &q("umbrella"), "$unset", r#"["plan"]"#, T::S(at(31, 10, 0))),
        );
        good(
            &mut a,
            op(c, &q("ghost-co"), "$unset", r#"["plan"]"#, T::S(at(32, 9, 0))),
        );
        good(
            &mut a,
            op(c, &q("ghost-co"), "$remove", r#"{"tags":"x"}"#, T::S(at(32, 9, 1))),
        );
        good(&mut a, op(c, &q("phantom"), "$delete", r#""""#, T::S(at(33, 9, 0))));
        bad(
            &mut a,
            op(c, &q("globex"), "$unset", r#"{"plan":1}"#, T::S(at(34, 9, 0))),
            "`$unset` with an object payload",
        );
        good(
            &mut a,
            op(c, &q("stark"), "$union", r#"{"tags":["relaunch"]}"#, T::S(at(35, 9, 0))),
        );
        good(
            &mut a,
            op(c, &q("2077"), "$union", r#"{"tags":["smb"]}"#, T::S(at(38, 9, 0))),
        );
        good(
            &mut a,
            op(
                c,
                &q("1042"),
                "$set_once",
                r#"{"name":"Wayne Corp","industry":"Conglomerate"}"#,
                T::S(at(40, 9, 0)),
            ),
        );
        good(
            &mut a,
            op(
                c,
                &q("hooli"),
                "$set_once",
                r#"{"name":"Hooli","plan":"trial"}"#,
                T::S(at(42, 8, 0)),
            ),
        );
        good(
            &mut a,
            op(
                c,
                &q("umbrella"),
                "$set",
                r#"{"name":"Umbrella Corporation","plan":"starter"}"#,
                T::S(at(46, 9, 0)),
            ),
        );
        good(
            &mut a,
            op(
                c,
                &q("hooli"),
                "$set",
                r#"{"plan":"pro","seats":40}"#,
                T::F(at(50, 10, 0), 750),
            ),
        );
        good(
            &mut a,
            op(c, &q("acme"), "$set", r#"{"plan":"enterprise"}"#, T::S(at(55, 9, 0))),
        );
        good(
            &mut a,
            op(c, &q("acme"), "$set", r#"{"plan":"business"}"#, T::S(at(52, 9, 0))),
        );

        // ops-2.ndjson: team ops and a late globex op; sorts before ops.ndjson by path
        let t = "team_id";
        let mut b: Vec<OpLine> = Vec::new();
        let teams: [(&str, &str, &str); 15] = [
            ("acme-eng", "Acme Engineering", "acme"),
            ("acme-sales", "Acme Sales", "acme"),
            ("acme-ops", "Acme Operations", "acme"),
            ("globex-eng", "Globex Engineering", "globex"),
            ("globex-mkt", "Globex Marketing", "globex"),
            ("initech-eng", "Initech Engineering", "initech"),
            ("umbrella-lab", "Umbrella Lab", "umbrella"),
            ("umbrella-ops", "Umbrella Ops", "umbrella"),
            ("hooli-eng", "Hooli Engineering", "hooli"),
            ("hooli-growth", "Hooli Growth", "hooli"),
            ("wayne-rd", "Wayne R&D", "1042"),
            ("wayne-ops", "Wayne Operations", "1042"),
            ("t2077", "Team 2077", "2077"),
            ("stark-rd", "Stark R&D", "stark"),
            ("stark-ops", "Stark Operations", "stark"),
        ];
        for (i, (id, name, co)) in teams.iter().enumerate() {
            let payload = obj(vec![("name", js(name)), ("company_id", js(co))]).text();
            let tm = if i % 5 == 3 {
                T::Ms(at(i as i64 / 3, 9, i as i64))
            } else {
                T::S(at(i as i64 / 3, 9, i as i64))
            };
            good(&mut b, op(t, &q(id), "$set", &payload, tm));
        }
        good(
            &mut b,
            op(
                t,
                &q("acme-eng"),
                "$union",
                r#"{"members":["u-acme-01","u-acme-04"]}"#,
                T::S(at(6, 10, 0)),
            ),
        );
        good(
            &mut b,
            op(
                t,
                &q("acme-eng"),
                "$union",
                r#"{"members":["u-acme-04","u-acme-07"]}"#,
                T::S(at(9, 10, 0)),
            ),
        );
        good(
            &mut b,
            op(
                t,
                &q("acme-eng"),
                "$remove",
                r#"{"members":"u-acme-01"}"#,
                T::S(at(20, 10, 0)),
            ),
        );
        good(
            &mut b,
            op(
                t,
                &q("acme-sales"),
                "$set",
                r#"{"lead":"u-acme-02","region":"EMEA"}"#,
                T::F(at(10, 10, 0), 500),
            ),
        );
        bad(
            &mut b,
            op(
                t,
                &q("acme-sales"),
                "$set",
                r#"["lead","u-acme-05"]"#,
                T::S(at(12, 10, 0)),
            ),
            "`$set` with a list payload",
        );
        good(
            &mut b,
            op(t, &q("acme-sales"), "$unset", r#"["lead"]"#, T::S(at(21, 10, 0))),
        );
        good(
            &mut b,
            op(
                t,
                &q("globex-mkt"),
                "$set_once",
                r#"{"name":"Globex Growth Marketing","budget":5000}"#,
                T::None,
            ),
        );
        good(&mut b, op(t, &q("globex-mkt"), "$delete", r#""""#, T::S(at(30, 10, 0))));
        b.push(OpLine {
            text: format!(
                "{{\"$token\":\"t\",\"$group_key\":\"{t}\",\"$group_id\":\"hooli-eng\",\"$set\":{{\"name\":\"Hooli Eng"
            ),
            note: Some("unparseable JSON (truncated line)".to_string()),
        });
        good(
            &mut b,
            op(
                t,
                &q("hooli-eng"),
                "$set",
                r#"{"lead":"u-hooli-01"}"#,
                T::S(at(44, 10, 0)),
            ),
        );
        good(
            &mut b,
            op(c, &q("globex"), "$set", r#"{"plan":"enterprise"}"#, T::S(at(50, 12, 0))),
        );
        (a, b)
    }
}

// ---------------------------------------------------------------------------------------------
// bench mode

mod bench {
    use super::*;

    pub struct Cfg {
        pub out: PathBuf,
        pub events: u64,
        pub days: u32,
        pub users: u32,
        pub companies: u32,
        pub seed: u64,
        pub formats: String,
        pub threads: usize,
        pub ops: u64,
        pub dup_rate: f64,
        pub zipf: f64,
    }

    const EVENTS: [(&str, u32); 12] = [
        ("View Dashboard", 300),
        ("Run Query", 150),
        ("Log In", 120),
        ("Edit Project", 80),
        ("Comment", 70),
        ("Export Report", 60),
        ("Share Report", 50),
        ("Upload File", 50),
        ("Create Project", 40),
        ("Invite Teammate", 30),
        ("Sign Up", 30),
        ("Upgrade Plan", 20),
    ];
    const PLANS: [&str; 4] = ["free", "starter", "pro", "enterprise"];
    const BROWSERS: [&str; 4] = ["Chrome", "Firefox", "Safari", "Edge"];
    /// relative activity per UTC hour (integers so the split is platform independent)
    const HOURLY: [u64; 24] = [
        20, 15, 12, 10, 10, 12, 20, 35, 55, 75, 90, 100, 100, 100, 100, 95, 90, 80, 65, 55, 45, 40, 32, 25,
    ];
    const CHUNK: u64 = 200_000;

    struct World {
        cdf: Vec<f64>,
        user_start: Vec<u32>,
        user_count: Vec<u32>,
        teams: Vec<u32>,
        ev_cdf: Vec<u32>,
    }

    impl World {
        fn new(cfg: &Cfg) -> World {
            let n = cfg.companies as usize;
            let w: Vec<f64> = (0..n).map(|k| (k as f64 + 1.0).powf(-cfg.zipf)).collect();
            let total: f64 = w.iter().sum();
            let mut cdf = Vec::with_capacity(n);
            let mut acc = 0.0;
            for x in &w {
                acc += x / total;
                cdf.push(acc);
            }
            // users: one per company, the rest in proportion to activity
            let extra = (cfg.users - cfg.companies) as u64;
            let iw: Vec<u64> = w.iter().map(|x| ((x / total) * 1e12) as u64 + 1).collect();
            let alloc = split_exact(extra, &iw);
            let mut user_start = Vec::with_capacity(n);
            let mut user_count = Vec::with_capacity(n);
            let mut teams = Vec::with_capacity(n);
            let mut next = 0u32;
            for a in alloc {
                let cnt = 1 + a as u32;
                user_start.push(next);
                user_count.push(cnt);
                teams.push((cnt / 25).clamp(1, 40));
                next += cnt;
            }
            let mut ev_cdf = Vec::new();
            let mut a = 0;
            for (_, w) in EVENTS {
                a += w;
                ev_cdf.push(a);
            }
            World {
                cdf,
                user_start,
                user_count,
                teams,
                ev_cdf,
            }
        }

        fn company(&self, rng: &mut StdRng) -> usize {
            let u: f64 = rng.random();
            self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1)
        }

        fn event(&self, rng: &mut StdRng) -> &'static str {
            let r = rng.random_range(0..*self.ev_cdf.last().expect("events"));
            EVENTS[self.ev_cdf.partition_point(|&c| c <= r)].0
        }
    }

    /// One generated row.
    struct Row {
        event: &'static str,
        user: u32,
        time: i64,
        insert_id: u64,
        proc_ms: i64,
        /// company ids (`c{n}`); more than one: a list-valued `company_id`
        company: Vec<u32>,
        team: Option<String>,
        plan: &'static str,
        browser: &'static str,
    }

    #[derive(Default)]
    struct DayStats {
        rows: u64,
        bytes: u64,
        files: u64,
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("event", DataType::Utf8, false),
            Field::new("distinct_id", DataType::Utf8, false),
            Field::new("time", DataType::Int64, false),
            Field::new("$insert_id", DataType::Utf8, false),
            Field::new("mp_processing_time_ms", DataType::Int64, false),
            Field::new(
                "company_id",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                false,
            ),
            Field::new("team_id", DataType::Utf8, true),
        ]))
    }

    pub fn run(cfg: Cfg) -> Result<()> {
        let mut want_parquet = false;
        let mut want_ndjson = false;
        for f in cfg.formats.split(',').map(str::trim).filter(|f| !f.is_empty()) {
            match f {
                "parquet" => want_parquet = true,
                "ndjson.gz" | "ndjson" | "jsonl.gz" => want_ndjson = true,
                other => bail!("unknown format {other:?} (use parquet, ndjson.gz)"),
            }
        }
        if !want_parquet && !want_ndjson {
            bail!("--formats names no format");
        }
        if cfg.companies == 0 || cfg.users < cfg.companies {
            bail!("need --users >= --companies > 0");
        }
        if cfg.days == 0 {
            bail!("--days must be > 0");
        }
        let started = Instant::now();
        let world = World::new(&cfg);
        if want_parquet {
            fs::create_dir_all(cfg.out.join("parquet"))?;
        }
        if want_ndjson {
            fs::create_dir_all(cfg.out.join("ndjson"))?;
        }
        fs::create_dir_all(cfg.out.join("groups"))?;

        // events per day: weekdays heavier, slow growth over the range
        let day_w: Vec<u64> = (0..cfg.days as u64)
            .map(|d| {
                let base = if d % 7 < 5 { 100 } else { 45 };
                base * (1000 + d * 300 / cfg.days as u64)
            })
            .collect();
        let per_day = split_exact(cfg.events, &day_w);

        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Result<DayStats>>> = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for _ in 0..cfg.threads.min(cfg.days as usize) {
                s.spawn(|| loop {
                    let d = next.fetch_add(1, Ordering::Relaxed);
                    if d >= cfg.days as usize {
                        break;
                    }
                    let r = gen_day(&cfg, &world, d, per_day[d], want_parquet, want_ndjson);
                    if let Ok(st) = &r {
                        eprintln!("  day {} ({}): {} rows", d, date_str(d as i64), st.rows);
                    }
                    results.lock().expect("lock").push(r);
                });
            }
        });
        let mut total = DayStats::default();
        for r in results.into_inner().expect("lock") {
            let st = r?;
            total.rows += st.rows;
            total.bytes += st.bytes;
            total.files += st.files;
        }
        let ev_secs = started.elapsed().as_secs_f64();

        let ops_bytes = gen_ops(&cfg, &world)?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "bench: wrote {} event rows ({} events + re-delivered copies) over {} days in {} files ({:.1} MiB) and {} profile ops ({:.1} MiB) to {} in {:.1}s with {} threads: {:.0} rows/s, {:.1} MiB/s",
            total.rows,
            cfg.events,
            cfg.days,
            total.files,
            total.bytes as f64 / (1 << 20) as f64,
            cfg.ops,
            ops_bytes as f64 / (1 << 20) as f64,
            cfg.out.display(),
            secs,
            cfg.threads,
            total.rows as f64 / ev_secs,
            total.bytes as f64 / (1 << 20) as f64 / ev_secs
        );
        Ok(())
    }

    fn gen_day(
        cfg: &Cfg,
        world: &World,
        day: usize,
        n_day: u64,
        want_parquet: bool,
        want_ndjson: bool,
    ) -> Result<DayStats> {
        let mut rng = StdRng::seed_from_u64(mix_seed(cfg.seed, 1, day as u64));
        let date = date_str(day as i64);
        let day_start = DAY0 + day as i64 * DAY_S;
        let pq_path = cfg.out.join("parquet").join(format!("events-{date}.parquet"));
        let nd_path = cfg.out.join("ndjson").join(format!("events-{date}.ndjson.gz"));
        let schema = schema();
        let mut pq = if want_parquet {
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL)?))
                .set_max_row_group_row_count(Some(1_000_000))
                .set_sorting_columns(Some(vec![SortingColumn {
                    column_idx: 2,
                    descending: false,
                    nulls_first: false,
                }]))
                .build();
            let f = BufWriter::with_capacity(1 << 20, File::create(&pq_path)?);
            Some(ArrowWriter::try_new(f, schema.clone(), Some(props))?)
        } else {
            None
        };
        let mut nd = if want_ndjson { Some(gz_writer(&nd_path)?) } else { None };

        // time slices: at least one per hour, at most CHUNK events each
        let per_hour = split_exact(n_day, &HOURLY);
        let mut rows_out = 0u64;
        let mut rows: Vec<Row> = Vec::new();
        let mut line = String::with_capacity(512);
        let mut buf = String::new();
        for (h, &n_hour) in per_hour.iter().enumerate() {
            let k = n_hour.div_ceil(CHUNK).clamp(1, 3600);
            let per_slice = split_exact(n_hour, &vec![1; k as usize]);
            for (si, &n) in per_slice.iter().enumerate() {
                let t0 = day_start + h as i64 * 3600 + (si as i64 * 3600) / k as i64;
                let t1 = day_start + h as i64 * 3600 + ((si as i64 + 1) * 3600) / k as i64;
                let mut times: Vec<i64> = (0..n).map(|_| rng.random_range(t0..t1)).collect();
                times.sort_unstable();
                rows.clear();
                for t in times {
                    let row = gen_row(cfg, world, &mut rng, t);
                    let dup = rng.random_bool(cfg.dup_rate.clamp(0.0, 1.0));
                    if dup {
                        let proc_ms = row.proc_ms + rng.random_range(1_000..3_600_000);
                        let copy = Row {
                            proc_ms,
                            company: row.company.clone(),
                            team: row.team.clone(),
                            ..row
                        };
                        rows.push(row);
                        rows.push(copy);
                    } else {
                        rows.push(row);
                    }
                }
                rows_out += rows.len() as u64;
                if let Some(w) = pq.as_mut() {
                    w.write(&to_batch(&schema, &rows)?)?;
                }
                if let Some(w) = nd.as_mut() {
                    buf.clear();
                    for r in &rows {
                        ndjson_line(r, &mut line);
                        buf.push_str(&line);
                    }
                    w.write_all(buf.as_bytes())?;
                }
            }
        }
        let mut st = DayStats {
            rows: rows_out,
            ..Default::default()
        };
        if let Some(w) = pq {
            w.into_inner()?.flush()?;
            st.bytes += file_size(&pq_path);
            st.files += 1;
        }
        if let Some(w) = nd {
            w.finish()?.flush()?;
            st.bytes += file_size(&nd_path);
            st.files += 1;
        }
        Ok(st)
    }

    fn gen_row(cfg: &Cfg, world: &World, rng: &mut StdRng, t: i64) -> Row {
        let c = world.company(rng);
        let user = world.user_start[c] + rng.random_range(0..world.user_count[c]);
        let company = if rng.random_bool(0.05) && cfg.companies > 3 {
            let extra = rng.random_range(1..3);
            let mut ids = vec![c];
            while ids.len() < 1 + extra {
                let o = world.company(rng);
                if !ids.contains(&o) {
                    ids.push(o);
                }
            }
            ids.into_iter().map(|i| i as u32).collect()
        } else {
            vec![c as u32]
        };
        let team = if rng.random_bool(0.4) {
            let k = (user - world.user_start[c]) % world.teams[c];
            Some(format!("t{c}-{k}"))
        } else {
            None
        };
        let delay = if rng.random_bool(0.95) {
            rng.random_range(200..60_000)
        } else {
            rng.random_range(60_000..6 * 3_600_000)
        };
        Row {
            event: world.event(rng),
            user,
            time: t,
            insert_id: rng.random(),
            proc_ms: t * 1000 + delay,
            company,
            team,
            plan: PLANS[(mix_seed(cfg.seed, 2, c as u64) % PLANS.len() as u64) as usize],
            browser: BROWSERS[(user % BROWSERS.len() as u32) as usize],
        }
    }

    fn to_batch(schema: &SchemaRef, rows: &[Row]) -> Result<RecordBatch> {
        let n = rows.len();
        let mut ev = StringBuilder::with_capacity(n, n * 14);
        let mut did = StringBuilder::with_capacity(n, n * 8);
        let mut time = Int64Builder::with_capacity(n);
        let mut ins = StringBuilder::with_capacity(n, n * 16);
        let mut proc = Int64Builder::with_capacity(n);
        let mut co = ListBuilder::with_capacity(StringBuilder::with_capacity(n, n * 8), n)
            .with_field(Arc::new(Field::new("item", DataType::Utf8, true)));
        let mut team = StringBuilder::with_capacity(n, n * 6);
        let mut tmp = String::with_capacity(32);
        for r in rows {
            ev.append_value(r.event);
            tmp.clear();
            use std::fmt::Write as _;
            let _ = write!(tmp, "u{}", r.user);
            did.append_value(&tmp);
            time.append_value(r.time);
            tmp.clear();
            let _ = write!(tmp, "{:016x}", r.insert_id);
            ins.append_value(&tmp);
            proc.append_value(r.proc_ms);
            for c in &r.company {
                tmp.clear();
                let _ = write!(tmp, "c{c}");
                co.values().append_value(&tmp);
            }
            co.append(true);
            team.append_option(r.team.as_deref());
        }
        let cols: Vec<ArrayRef> = vec![
            Arc::new(ev.finish()),
            Arc::new(did.finish()),
            Arc::new(time.finish()),
            Arc::new(ins.finish()),
            Arc::new(proc.finish()),
            Arc::new(co.finish()),
            Arc::new(team.finish()),
        ];
        Ok(RecordBatch::try_new(schema.clone(), cols)?)
    }

    fn ndjson_line(r: &Row, out: &mut String) {
        use std::fmt::Write as _;
        out.clear();
        // all generated strings are plain ASCII without quotes or backslashes
        let _ = write!(
            out,
            "{{\"event\":\"{}\",\"properties\":{{\"time\":{},\"distinct_id\":\"u{}\",\"$insert_id\":\"{:016x}\",\"mp_processing_time_ms\":{},\"company_id\":",
            r.event, r.time, r.user, r.insert_id, r.proc_ms
        );
        match r.company.as_slice() {
            [c] => {
                let _ = write!(out, "\"c{c}\"");
            }
            ids => {
                out.push('[');
                for (i, c) in ids.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    let _ = write!(out, "\"c{c}\"");
                }
                out.push(']');
            }
        }
        if let Some(t) = &r.team {
            let _ = write!(out, ",\"team_id\":\"{t}\"");
        }
        let _ = writeln!(out, ",\"plan\":\"{}\",\"$browser\":\"{}\"}}}}", r.plan, r.browser);
    }

    /// ~`cfg.ops` Mixpanel `/groups` bodies in arrival order with increasing `$time`.
    fn gen_ops(cfg: &Cfg, world: &World) -> Result<u64> {
        use std::fmt::Write as _;
        let path = cfg.out.join("groups").join("ops.ndjson");
        let mut w = BufWriter::with_capacity(1 << 20, File::create(&path)?);
        let mut rng = StdRng::seed_from_u64(mix_seed(cfg.seed, 3, 0));
        let span = cfg.days as i64 * DAY_S;
        let tags = ["b2b", "smb", "enterprise", "beta", "eu", "us", "partner"];
        let industries = ["Software", "Retail", "Finance", "Health", "Education"];
        let mut line = String::with_capacity(256);
        for i in 0..cfg.ops {
            line.clear();
            let t = DAY0 + (i as i64 * span) / cfg.ops.max(1) as i64;
            let c = world.company(&mut rng);
            let (gk, gid) = if rng.random_bool(0.15) {
                let k = rng.random_range(0..world.teams[c]);
                ("team_id", format!("t{c}-{k}"))
            } else {
                ("company_id", format!("c{c}"))
            };
            let _ = write!(
                line,
                "{{\"$token\":\"t\",\"$group_key\":\"{gk}\",\"$group_id\":\"{gid}\","
            );
            let r = rng.random_range(0..100);
            match r {
                0..=69 => {
                    let plan = PLANS[rng.random_range(0..PLANS.len())];
                    let seats = rng.random_range(1..500);
                    let ind = industries[rng.random_range(0..industries.len())];
                    let _ = write!(
                        line,
                        "\"$set\":{{\"name\":\"{} {gid}\",\"plan\":\"{plan}\",\"seats\":{seats},\"industry\":\"{ind}\"}}",
                        if gk == "team_id" { "Team" } else { "Company" }
                    );
                }
                70..=79 => {
                    let _ = write!(
                        line,
                        "\"$set_once\":{{\"first_seen\":\"{}\"}}",
                        date_str((t - DAY0) / DAY_S)
                    );
                }
                80..=87 => {
                    let a = tags[rng.random_range(0..tags.len())];
                    let b = tags[rng.random_range(0..tags.len())];
                    let _ = write!(line, "\"$union\":{{\"tags\":[\"{a}\",\"{b}\"]}}");
                }
                88..=92 => line.push_str("\"$unset\":[\"trial_ends\",\"industry\"]"),
                93..=97 => {
                    let a = tags[rng.random_range(0..tags.len())];
                    let _ = write!(line, "\"$remove\":{{\"tags\":\"{a}\"}}");
                }
                _ => line.push_str("\"$delete\":\"\""),
            }
            if rng.random_bool(0.1) {
                let _ = writeln!(line, ",\"$time\":{t}.{:03}}}", rng.random_range(1..1000));
            } else {
                let _ = writeln!(line, ",\"$time\":{t}}}");
            }
            w.write_all(line.as_bytes())?;
        }
        w.flush()?;
        Ok(file_size(&path))
    }
}
