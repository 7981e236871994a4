//! The runner: inputs → normalise → dedup/attribute → fold → tables → staged files →
//! commit, with rejects and a run summary.

pub mod rejects;
pub mod report;

use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;

use crate::attribute::Attributor;
use crate::calendar;
use crate::fold::{self, Sequenced};
use crate::job::{FoldOrder, Job};
use crate::normalize::{self, EventContext, ProfileContext, ProfileOp, RawEvent};
use crate::sinks::{Scope, Sink, SinkError};
use crate::sources::{self, InputFile, Record, SourceError};
use crate::tables::{self, Table};
use rejects::{Reject, Stream};
pub use report::RunSummary;

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("{count} bad records, more than --max-rejects {max}; nothing was written (rejects: {})", rejects_path)]
    TooManyRejects { count: usize, max: u64, rejects_path: String },
    #[error("cannot write rejects under `{path}`: {source}")]
    Rejects { path: String, source: std::io::Error },
    #[error("invalid date range: {0}")]
    BadRange(String),
}

/// Runtime options of `groupetl run`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Backfill range, inclusive civil dates in the job's timezone.
    pub range: Option<(chrono::NaiveDate, chrono::NaiveDate)>,
    pub full_refresh: bool,
    pub max_rejects: Option<u64>,
    /// Run id; generated when `None`.
    pub run_id: Option<String>,
}

/// A fresh run id: UTC time plus process id, sortable and unique per host.
pub fn new_run_id() -> String {
    format!(
        "{}-{:05}",
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ"),
        std::process::id() % 100_000
    )
}

/// The inputs of a job, listed and sorted (SPEC §5 arrival order).
pub struct Inputs {
    pub events: Vec<InputFile>,
    pub profiles: Vec<InputFile>,
}

pub fn list(job: &Job) -> Result<Inputs, SourceError> {
    Ok(Inputs {
        events: sources::list_inputs(&job.events.paths)?,
        profiles: match &job.profiles {
            Some(p) => sources::list_inputs(&p.paths)?,
            None => Vec::new(),
        },
    })
}

fn reject_of(stream: Stream, file: &InputFile, rec_pos: sources::Position, reason: String, raw: String) -> Reject {
    Reject {
        stream,
        file: file.path.clone(),
        pos: rec_pos,
        reason,
        raw,
    }
}

fn raw_text(v: &serde_json::Value) -> String {
    let mut s = v.to_string();
    if s.len() > 2048 {
        let mut cut = 2048;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Reads files in parallel, a window at a time, and hands each file's results to
/// `consume` in file order, so input order (dedup ties, arrival fold) is preserved while
/// memory stays bounded by the window.
fn read_in_order<T: Send>(
    files: &[InputFile],
    per_file: impl Fn(&InputFile) -> Result<T, SourceError> + Sync,
    mut consume: impl FnMut(T),
) -> Result<(), SourceError> {
    let window = rayon::current_num_threads().max(1) * 2;
    for chunk in files.chunks(window) {
        let results: Vec<Result<T, SourceError>> = chunk.par_iter().map(&per_file).collect();
        for r in results {
            consume(r?);
        }
    }
    Ok(())
}

fn read_events(job: &Job, files: &[InputFile], attr: &mut Attributor, rejects: &mut Vec<Reject>) -> Result<(), SourceError> {
    let keys: Vec<String> = job.group_keys.iter().map(|k| k.key.clone()).collect();
    let ctx = EventContext {
        keys: &keys,
        columns: job.events.columns.as_ref(),
    };
    read_in_order(
        files,
        |f| {
            let mut events: Vec<RawEvent> = Vec::new();
            let mut bad: Vec<Reject> = Vec::new();
            sources::read_file(f, job.events.file_type, &mut |rec: Record| match rec.value {
                Ok(v) => match normalize::event(job.events.format, &v, &ctx) {
                    Ok(Some(e)) => events.push(e),
                    Ok(None) => {}
                    Err(reason) => bad.push(reject_of(Stream::Events, f, rec.pos, reason, raw_text(&v))),
                },
                Err(u) => bad.push(reject_of(Stream::Events, f, rec.pos, u.reason, u.raw)),
            })?;
            Ok((events, bad))
        },
        |(events, bad)| {
            for e in events {
                attr.push(e);
            }
            rejects.extend(bad);
        },
    )
}

/// Profile operations in input order, with sequence numbers; ops that `order = "time"`
/// cannot place (no time) are rejected.
fn read_profiles(job: &Job, files: &[InputFile], rejects: &mut Vec<Reject>) -> Result<Vec<Sequenced>, SourceError> {
    let Some(p) = &job.profiles else { return Ok(Vec::new()) };
    let mut ops: Vec<Sequenced> = Vec::new();
    let ctx = ProfileContext {
        columns: p.columns.as_ref(),
    };
    read_in_order(
        files,
        |f| {
            let mut out: Vec<ProfileOp> = Vec::new();
            let mut bad: Vec<Reject> = Vec::new();
            sources::read_file(f, p.file_type, &mut |rec: Record| match rec.value {
                Ok(v) => match normalize::profile_op(p.format, &v, &ctx) {
                    Ok(Some(op)) if p.order == FoldOrder::Time && op.order_us.is_none() => bad.push(reject_of(
                        Stream::Profiles,
                        f,
                        rec.pos,
                        "operation has no time, which `order = \"time\"` needs".into(),
                        raw_text(&v),
                    )),
                    Ok(Some(op)) => out.push(op),
                    Ok(None) => {}
                    Err(reason) => bad.push(reject_of(Stream::Profiles, f, rec.pos, reason, raw_text(&v))),
                },
                Err(u) => bad.push(reject_of(Stream::Profiles, f, rec.pos, u.reason, u.raw)),
            })?;
            Ok((out, bad))
        },
        |(out, bad)| {
            for op in out {
                let seq = ops.len() as u64;
                ops.push(Sequenced { seq, op });
            }
            rejects.extend(bad);
        },
    )?;
    Ok(ops)
}

/// Every output table of the job, in a fixed order.
pub fn build_tables(job: &Job, act: &tables::Activity, folded: &fold::Folded) -> Vec<Table> {
    vec![
        tables::profiles::group_profiles(job, folded),
        tables::daily::group_daily(act),
        tables::daily::group_event_daily(act),
        tables::active::active_groups(act),
        tables::lifecycle::group_lifecycle(act),
        tables::retention::group_retention(act),
        tables::stickiness::group_stickiness(act),
        tables::funnels::group_funnels(act, &job.funnels),
    ]
}

/// Everything a run computes before writing: the tables, rejects and counts.
pub struct Computed {
    pub tables: Vec<Table>,
    pub rejects: Vec<Reject>,
    pub summary: RunSummary,
}

/// Reads every input and computes every table, writing nothing.
pub fn compute(job: &Job, inputs: &Inputs) -> Result<Computed, SourceError> {
    let mut summary = RunSummary {
        event_files: inputs.events.len(),
        profile_files: inputs.profiles.len(),
        ..Default::default()
    };
    let mut rejects = Vec::new();

    let t = Instant::now();
    let mut attr = Attributor::new(job);
    read_events(job, &inputs.events, &mut attr, &mut rejects)?;
    let (activity, stats) = attr.finish();
    summary.attribution = stats;
    summary.phase("read + attribute events", t);

    let t = Instant::now();
    let mut ops = read_profiles(job, &inputs.profiles, &mut rejects)?;
    summary.profile_ops = ops.len() as u64;
    summary.profile_ops_other_keys = ops.iter().filter(|s| job.group_key_index(&s.op.group_key).is_none()).count() as u64;
    fold::sort_ops(&mut ops, job.profiles.as_ref().map_or(FoldOrder::Arrival, |p| p.order));
    let folded = fold::fold(ops.iter().map(|s| &s.op));
    drop(ops);
    summary.phase("read + fold profiles", t);

    let t = Instant::now();
    let tables = build_tables(job, &activity, &folded);
    summary.groups_active = activity.by_group().count() as u64;
    summary.phase("tables", t);
    summary.rejects = rejects.len() as u64;
    Ok(Computed {
        tables,
        rejects,
        summary,
    })
}

/// `groupetl run`: computes everything and rewrites the partitions in scope.
pub fn run(job: &Job, opts: &RunOptions) -> Result<RunSummary, RunError> {
    let started = Instant::now();
    let scope = match opts.range {
        None => Scope::All,
        Some((from, to)) => {
            if from > to {
                return Err(RunError::BadRange(format!("--from {from} is after --to {to}")));
            }
            Scope::Dates(calendar::day_of(from), calendar::day_of(to))
        }
    };
    let run_id = opts.run_id.clone().unwrap_or_else(new_run_id);
    // Every input is listed before anything is read or written: a missing input fails
    // the run with the output untouched.
    let t = Instant::now();
    let inputs = list(job)?;
    let list_time = t.elapsed();

    let Computed {
        tables,
        rejects,
        mut summary,
    } = compute(job, &inputs)?;
    summary.phases.insert(0, ("list inputs".into(), list_time));
    summary.run_id = run_id.clone();
    summary.output = job.output.path.clone();

    let out_root = Path::new(&job.output.path);
    let rejects_path = rejects::write(out_root, &run_id, &rejects).map_err(|source| RunError::Rejects {
        path: out_root.join("_rejects").display().to_string(),
        source,
    })?;
    summary.rejects_path = rejects_path.as_ref().map(|p| p.display().to_string());
    if let Some(max) = opts.max_rejects {
        if rejects.len() as u64 > max {
            return Err(RunError::TooManyRejects {
                count: rejects.len(),
                max,
                rejects_path: summary.rejects_path.clone().unwrap_or_default(),
            });
        }
    }

    let t = Instant::now();
    let mut sink = Sink::new(&job.output.path, job.output.format, &run_id)?;
    let mut staged = Vec::with_capacity(tables.len());
    for table in &tables {
        match sink.stage(table, scope) {
            Ok(s) => staged.push(s),
            Err(e) => {
                sink.abandon();
                return Err(e.into());
            }
        }
        summary.tables.push((table.name, table.num_rows() as u64));
    }
    let stats = sink.commit(staged, scope)?;
    summary.phase("write + commit", t);
    summary.files_written = stats.files_written;
    summary.partitions_removed = stats.partitions_removed;
    summary.rows_written = stats.rows;
    summary.scope = match scope {
        Scope::All => None,
        Scope::Dates(a, b) => Some((calendar::format_day(a), calendar::format_day(b))),
    };
    summary.elapsed = started.elapsed();
    Ok(summary)
}

/// Parses a `--from`/`--to` value.
pub fn parse_day(s: &str) -> Result<chrono::NaiveDate, String> {
    chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD)"))
}

