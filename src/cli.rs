//! Command-line interface (SPEC §2): argument parsing and the three commands. Exit codes:
//! 0 success, 1 the run failed, 2 bad invocation or job file.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use crate::attribute::{SpillOptions, DEFAULT_BUDGET_MIB};
use crate::job::Job;
use crate::normalize;
use crate::runner::{self, RunError, RunOptions};
use crate::sources;
use crate::storage::{self, Patience, Root, Stores};

#[derive(Debug, Parser)]
#[command(
    name = "groupetl",
    version,
    about = "Group-level analytics tables from product-analytics exports"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// More log output (-v info, -vv debug); `RUST_LOG=LEVEL` overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Log line format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text", env = "GROUPETL_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Never draw progress bars (they are drawn only on a terminal anyway).
    #[arg(long, global = true, env = "GROUPETL_NO_PROGRESS")]
    pub no_progress: bool,
    /// Directory for the temporary files of inputs larger than --memory-budget (default:
    /// the system temporary directory).
    #[arg(long, global = true, value_name = "DIR", env = "GROUPETL_SPILL_DIR")]
    pub spill_dir: Option<PathBuf>,
    /// MiB of encoded events (~40 bytes each) held in memory before they spill to disk.
    #[arg(
        long,
        global = true,
        value_name = "MIB",
        default_value_t = DEFAULT_BUDGET_MIB,
        env = "GROUPETL_MEMORY_BUDGET"
    )]
    pub memory_budget: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Structured log lines on stderr: warnings by default, `-v` info, `-vv` debug.
fn init_logging(cli: &Cli) {
    use tracing_subscriber::filter::LevelFilter;
    let level = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<LevelFilter>().ok())
        .unwrap_or(if cli.quiet {
            LevelFilter::ERROR
        } else {
            match cli.verbose {
                0 => LevelFilter::WARN,
                1 => LevelFilter::INFO,
                _ => LevelFilter::DEBUG,
            }
        });
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .with_target(false);
    let _ = match cli.log_format {
        LogFormat::Text => builder.with_ansi(ansi).try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a job: read its inputs and rewrite its output partitions.
    Run {
        /// The job file (TOML).
        job: PathBuf,
        /// First date of a backfill (YYYY-MM-DD, inclusive, in the job's timezone).
        #[arg(long, requires = "to", env = "GROUPETL_FROM")]
        from: Option<String>,
        /// Last date of a backfill (YYYY-MM-DD, inclusive, in the job's timezone).
        #[arg(long, requires = "from", env = "GROUPETL_TO")]
        to: Option<String>,
        /// Recompute everything from scratch.
        #[arg(long, short = 'f', conflicts_with_all = ["from", "to"], env = "GROUPETL_FULL_REFRESH")]
        full_refresh: bool,
        /// Fail the run (writing nothing) when more than N records are rejected.
        #[arg(long, value_name = "N", env = "GROUPETL_MAX_REJECTS")]
        max_rejects: Option<u64>,
        /// Run summary format on stdout.
        #[arg(long, value_enum, default_value = "text", env = "GROUPETL_FORMAT")]
        format: SummaryFormat,
    },
    /// Check a job file and the reachability and schema of its inputs; writes nothing.
    Validate { job: PathBuf },
    /// Print which inputs a run would read and which partitions it would rewrite.
    Plan {
        job: PathBuf,
        /// First date of a backfill (inclusive).
        #[arg(long, requires = "to")]
        from: Option<String>,
        /// Last date of a backfill (inclusive).
        #[arg(long, requires = "from")]
        to: Option<String>,
    },
}

/// How a command ended.
pub enum Status {
    Ok,
    /// The run failed (inputs, outputs, too many rejects).
    Failed,
    /// Bad invocation or job file.
    Usage,
}

impl From<Status> for ExitCode {
    fn from(s: Status) -> ExitCode {
        match s {
            Status::Ok => ExitCode::SUCCESS,
            Status::Failed => ExitCode::from(1),
            Status::Usage => ExitCode::from(2),
        }
    }
}

/// `text` (clap's message for a bad invocation) with the cause on its first line: a first
/// line that ends in `:` takes the indented lines after it (`--to <TO>`). The rest follows.
pub fn one_line_cause(text: &str) -> (String, String) {
    let mut lines = text.lines().peekable();
    let mut first = lines.next().unwrap_or_default().to_string();
    if first.ends_with(':') {
        let mut items = Vec::new();
        while let Some(l) = lines.next_if(|l| l.starts_with(char::is_whitespace) && !l.trim().is_empty()) {
            items.push(l.trim());
        }
        if !items.is_empty() {
            first = format!("{first} {}", items.join(", "));
        }
    }
    let rest: String = lines.map(|l| format!("{l}\n")).collect();
    (first, rest)
}

fn error(first: impl std::fmt::Display, rest: &[String]) {
    let mut e = std::io::stderr().lock();
    let _ = writeln!(e, "error: {first}");
    for r in rest {
        let _ = writeln!(e, "  {r}");
    }
}

fn load(job: &Path) -> Result<Job, Status> {
    Job::load(job).map_err(|e| {
        match &e {
            crate::job::JobError::Invalid { path, problems } => {
                // The first problem on the first line (SPEC §2: the cause in one line
                // first), each problem's own lines and the others below it.
                let mut lines = problems.iter().flat_map(|p| p.lines().map(str::to_string));
                let head = lines.next().unwrap_or_else(|| path.display().to_string());
                let first = match problems.len() {
                    1 => format!("invalid job file: {head}"),
                    n => format!("invalid job file ({n} problems): {head}"),
                };
                error(first, &lines.collect::<Vec<_>>());
            }
            other => error(other, &[]),
        }
        Status::Usage
    })
}

fn range(from: &Option<String>, to: &Option<String>) -> Result<Option<(chrono::NaiveDate, chrono::NaiveDate)>, Status> {
    match (from, to) {
        (Some(f), Some(t)) => {
            let f = runner::parse_day(f).map_err(|m| {
                error(format!("--from: {m}"), &[]);
                Status::Usage
            })?;
            let t = runner::parse_day(t).map_err(|m| {
                error(format!("--to: {m}"), &[]);
                Status::Usage
            })?;
            if f > t {
                error(format!("--from {f} is after --to {t}"), &[]);
                return Err(Status::Usage);
            }
            Ok(Some((f, t)))
        }
        _ => Ok(None),
    }
}

/// The job and the `--from/--to` range of `run` and `plan`.
fn load_with_range(job: &Path, from: &Option<String>, to: &Option<String>) -> Result<(Job, Option<DateRange>), Status> {
    Ok((load(job)?, range(from, to)?))
}

type DateRange = (chrono::NaiveDate, chrono::NaiveDate);

/// Runs the parsed command line.
pub fn main(cli: Cli) -> Status {
    init_logging(&cli);
    let progress = !cli.no_progress && !cli.quiet;
    let spill = SpillOptions {
        dir: cli.spill_dir.clone(),
        memory_budget: usize::try_from(cli.memory_budget.saturating_mul(1 << 20)).unwrap_or(usize::MAX),
    };
    match cli.command {
        Command::Run {
            job,
            from,
            to,
            full_refresh,
            max_rejects,
            format,
        } => {
            let (job, range) = match load_with_range(&job, &from, &to) {
                Ok(x) => x,
                Err(s) => return s,
            };
            let opts = RunOptions {
                range,
                full_refresh,
                max_rejects,
                run_id: None,
                progress,
                spill,
            };
            match runner::run(&job, &opts) {
                Ok(summary) => {
                    let mut out = std::io::stdout().lock();
                    let _ = match format {
                        SummaryFormat::Text => writeln!(out, "{summary}"),
                        SummaryFormat::Json => writeln!(out, "{}", summary.to_json()),
                    };
                    Status::Ok
                }
                Err(e @ RunError::BadRange(_)) => {
                    error(e, &[]);
                    Status::Usage
                }
                Err(e) => {
                    error(format!("run of job `{}` failed: {e}", job.name), &[]);
                    Status::Failed
                }
            }
        }
        Command::Validate { job } => validate(&job),
        Command::Plan { job, from, to } => {
            let (job, range) = match load_with_range(&job, &from, &to) {
                Ok(x) => x,
                Err(s) => return s,
            };
            plan(&job, range, spill)
        }
    }
}

fn validate(path: &Path) -> Status {
    let job = match load(path) {
        Ok(j) => j,
        Err(s) => return s,
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "✓ job file {} (job `{}`, {} group keys, {} funnels)",
        path.display(),
        job.name,
        job.group_keys.len(),
        job.funnels.len()
    );
    // Each problem as its `✗` line says it; the first one is also the error's line.
    let mut problems: Vec<String> = Vec::new();
    // Probes use a short timeout and one retry: `validate` answers in seconds.
    let stores = Stores::with_patience(&job.s3, Patience::Probe);
    let mut paths: Vec<&String> = job.events.paths.iter().collect();
    if let Some(p) = &job.profiles {
        paths.extend(&p.paths);
    }
    paths.push(&job.output.path);
    if paths.iter().any(|p| storage::is_s3(p)) {
        match stores.describe() {
            Ok(d) => {
                let _ = writeln!(out, "✓ S3: {d}");
            }
            Err(e) => fail(&mut out, &mut problems, format!("S3: {e}")),
        }
    }
    let mut check = |what: &str, patterns: &[String], ft, needs: &[normalize::layout::Need]| {
        // Reachability first: one failing bucket is one line, not one per file.
        let mut reachable = true;
        for p in patterns.iter().filter(|p| storage::is_s3(p)) {
            match sources::probe_s3(p, &stores) {
                Ok(at) => {
                    let _ = writeln!(out, "✓ {what}: {at} is reachable");
                }
                Err(e) => {
                    fail(&mut out, &mut problems, format!("{what}: {e}"));
                    reachable = false;
                }
            }
        }
        if !reachable {
            return;
        }
        match sources::list_inputs_outside(patterns, &stores, Some(&job.output.path)) {
            Ok(files) => {
                let bytes: u64 = files.iter().map(|f| f.size).sum();
                let _ = writeln!(out, "✓ {what}: {} files, {bytes} bytes", files.len());
                for f in &files {
                    match sources::probe_file(f, ft) {
                        Ok(layout) => {
                            for m in normalize::layout::missing(&layout, needs) {
                                fail(&mut out, &mut problems, format!("{what}: `{}`: {m}", f.path));
                            }
                        }
                        Err(e) => fail(&mut out, &mut problems, format!("{what}: {e}")),
                    }
                }
            }
            Err(e) => fail(&mut out, &mut problems, format!("{what}: {e}")),
        }
    };
    let needs = normalize::layout::event_needs(job.events.format, job.events.columns.as_ref());
    check("events", &job.events.paths, job.events.file_type, &needs);
    if let Some(p) = &job.profiles {
        let needs = normalize::layout::profile_needs(p.format, p.columns.as_ref());
        check("profiles", &p.paths, p.file_type, &needs);
    }
    if storage::is_s3(&job.output.path) {
        match Root::open(&job.output.path, &stores).and_then(|r| r.probe().map(|()| r)) {
            Ok(r) => {
                let _ = writeln!(out, "✓ output: {} is reachable", r.display(""));
            }
            Err(e) => fail(&mut out, &mut problems, format!("output: {e}")),
        }
    }
    match problems.first() {
        None => Status::Ok,
        Some(first) => {
            let more = match problems.len() {
                1 => String::new(),
                2 => " (and 1 more problem above)".into(),
                n => format!(" (and {} more problems above)", n - 1),
            };
            error(format!("validation failed: {first}{more}"), &[]);
            Status::Failed
        }
    }
}

/// A `validate` problem: its `✗` line on stdout, in the order found, and kept for the
/// error line.
fn fail(out: &mut impl Write, problems: &mut Vec<String>, problem: String) {
    let _ = writeln!(out, "✗ {problem}");
    problems.push(problem);
}

fn plan(job: &Job, range: Option<DateRange>, spill: SpillOptions) -> Status {
    let opts = RunOptions {
        range,
        spill,
        ..Default::default()
    };
    match runner::plan(job, &opts) {
        Ok(lines) => {
            let mut out = std::io::stdout().lock();
            for l in lines {
                let _ = writeln!(out, "{l}");
            }
            Status::Ok
        }
        Err(e) => {
            error(format!("plan of job `{}` failed: {e}", job.name), &[]);
            Status::Failed
        }
    }
}
