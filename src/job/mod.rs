//! Job files: parsing, validation and the resolved [`Job`].
//!
//! Two phases: [`file::JobFile`] is the TOML as written (serde, unknown keys denied), and
//! [`Job`] is what the rest of the program sees (parsed zone and instants, defaults applied,
//! cross-references checked). Only `Job` leaves this module. Semantic problems are
//! collected and reported together, each with `file:line:column` and the key path.

mod env;
pub mod file;

use std::path::{Path, PathBuf};

use chrono::{DateTime, NaiveDate};
use chrono_tz::Tz;
use toml::Spanned;

pub use file::Vendor;
use file::{ClockName, FileTypeName, FoldOrderName, JobFile, OutputFormatName};

use crate::calendar;

/// Event names excluded from activity when the job file does not say otherwise.
pub const DEFAULT_EXCLUDE_EVENTS: [&str; 2] = ["$groupidentify", "$delete_group_property"];

/// Default funnel conversion window (PostHog's default).
pub const DEFAULT_WINDOW_DAYS: u32 = 14;

#[derive(Debug, thiserror::Error)]
pub enum JobError {
    #[error("cannot read job file `{}`: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid job file `{}`\n{}", path.display(), problems.join("\n"))]
    Invalid { path: PathBuf, problems: Vec<String> },
}

/// A resolved job, ready to run.
#[derive(Debug, Clone)]
pub struct Job {
    /// Where the job file was read from.
    pub path: PathBuf,
    pub name: String,
    pub timezone: Tz,
    pub exclude_events: Vec<String>,
    pub events: Input,
    pub profiles: Option<ProfileInput>,
    pub group_keys: Vec<GroupKey>,
    pub output: Output,
    pub funnels: Vec<Funnel>,
    pub s3: S3Options,
}

/// Explicit file type, overriding the file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Parquet,
    Csv,
    Ndjson,
}

/// Where and how to read one kind of input.
#[derive(Debug, Clone)]
pub struct Input {
    pub format: Vendor,
    /// Glob patterns, local paths or `s3://` URLs.
    pub paths: Vec<String>,
    pub file_type: Option<FileType>,
    pub columns: Option<EventColumns>,
}

/// Column mapping of `format = "table"` event inputs.
#[derive(Debug, Clone)]
pub struct EventColumns {
    pub time: String,
    pub event: String,
    pub distinct_id: String,
    pub insert_id: Option<String>,
    pub ingest_time: Option<String>,
    pub properties: Option<String>,
}

/// Column mapping of `format = "table"` profile inputs.
#[derive(Debug, Clone)]
pub struct ProfileColumns {
    pub time: String,
    pub group_key: String,
    pub group_id: String,
    pub operation: String,
    pub value: String,
}

/// Order in which profile operations are folded (SPEC §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FoldOrder {
    /// Input order: files by full path, then record order.
    Arrival,
    /// Operation time, ties by input order.
    Time,
}

#[derive(Debug, Clone)]
pub struct ProfileInput {
    pub format: Vendor,
    pub paths: Vec<String>,
    pub file_type: Option<FileType>,
    pub order: FoldOrder,
    pub columns: Option<ProfileColumns>,
}

/// Which timestamp an effective date is compared with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    Event,
    /// Ingest time where the record has one, else event time.
    Ingest,
}

#[derive(Debug, Clone)]
pub struct GroupKey {
    pub key: String,
    pub display_name: Option<String>,
    /// First attributed instant (UTC µs, inclusive); `None` attributes everything.
    pub effective_from_us: Option<i64>,
    pub clock: Clock,
    pub name_property: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Parquet,
    Csv,
}

impl OutputFormat {
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Parquet => "parquet",
            OutputFormat::Csv => "csv",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Output {
    /// Local folder or `s3://bucket/prefix`.
    pub path: String,
    pub format: OutputFormat,
}

/// A resolved `[[funnels]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Funnel {
    pub name: String,
    /// Name of the group key whose groups are the funnel's actors.
    pub group_key: String,
    /// Event names, in order (at least one).
    pub steps: Vec<String>,
    /// Every step must happen within this many days of the step-1 event (inclusive).
    pub window_days: u32,
}

/// `[s3]` settings; anything unset falls back to the standard `AWS_*` environment, then to
/// an `~/.aws` profile (see `storage::constants`). `Debug` hides the secrets.
#[derive(Clone, Default)]
pub struct S3Options {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub allow_http: Option<bool>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub profile: Option<String>,
}

impl std::fmt::Debug for S3Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |v: &Option<String>| v.as_ref().map(|_| "<hidden>");
        f.debug_struct("S3Options")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("allow_http", &self.allow_http)
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &hidden(&self.secret_access_key))
            .field("session_token", &hidden(&self.session_token))
            .field("profile", &self.profile)
            .finish()
    }
}

impl Job {
    /// Reads and resolves the job file at `path`.
    pub fn load(path: &Path) -> Result<Job, JobError> {
        let text = std::fs::read_to_string(path).map_err(|source| JobError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Job::parse(path, &text)
    }

    /// Resolves a job from its TOML text; `path` is used in messages only.
    pub fn parse(path: &Path, text: &str) -> Result<Job, JobError> {
        let located = Located { path, text };
        let raw: JobFile = toml::from_str(text).map_err(|e| JobError::Invalid {
            path: path.to_path_buf(),
            problems: vec![located.toml_error(&e)],
        })?;
        let mut problems = Vec::new();
        let job = resolve(raw, &located, &mut problems);
        if problems.is_empty() {
            Ok(job)
        } else {
            Err(JobError::Invalid {
                path: path.to_path_buf(),
                problems,
            })
        }
    }

    pub fn group_key_index(&self, key: &str) -> Option<usize> {
        self.group_keys.iter().position(|k| k.key == key)
    }
}

/// The job file's text, for turning byte spans into `file:line:column`.
struct Located<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Located<'_> {
    fn line_col(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    fn at<T>(&self, spanned: &Spanned<T>, key: &str, msg: impl std::fmt::Display) -> String {
        let (line, col) = self.line_col(spanned.span().start);
        format!("{}:{line}:{col}: `{key}`: {msg}", self.path.display())
    }

    fn toml_error(&self, e: &toml::de::Error) -> String {
        let msg = e.message().trim_end();
        match e.span() {
            Some(span) => {
                let (line, col) = self.line_col(span.start);
                let src = self.text.lines().nth(line - 1).unwrap_or("");
                // Name the enclosing table, as toml's message names only the leaf key.
                let table = self
                    .text
                    .lines()
                    .take(line)
                    .filter_map(|l| {
                        let l = l.trim();
                        (l.starts_with('[') && l.ends_with(']')).then_some(l)
                    })
                    .last()
                    .map(|t| format!("in `{t}`: "))
                    .unwrap_or_default();
                format!(
                    "{}:{line}:{col}: {table}{msg}\n  {line:>4} | {src}\n       | {}^",
                    self.path.display(),
                    " ".repeat(col.saturating_sub(1))
                )
            }
            None => format!("{}: {msg}", self.path.display()),
        }
    }
}

fn file_type(t: Option<FileTypeName>) -> Option<FileType> {
    t.map(|t| match t {
        FileTypeName::Parquet => FileType::Parquet,
        FileTypeName::Csv => FileType::Csv,
        FileTypeName::Ndjson | FileTypeName::Jsonl | FileTypeName::Json => FileType::Ndjson,
    })
}

fn resolve(raw: JobFile, at: &Located, problems: &mut Vec<String>) -> Job {
    if *raw.version.get_ref() != 1 {
        problems.push(at.at(&raw.version, "version", "only version 1 is supported"));
    }
    let name = raw.name.get_ref().0.clone();
    if name.is_empty() || name.contains(['/', '\\']) {
        problems.push(at.at(&raw.name, "name", "must be non-empty and contain no `/`"));
    }
    let timezone = match &raw.timezone {
        None => chrono_tz::UTC,
        Some(tz) => tz.get_ref().parse::<Tz>().unwrap_or_else(|_| {
            problems.push(at.at(tz, "timezone", format!("unknown IANA time zone {:?}", tz.get_ref().0)));
            chrono_tz::UTC
        }),
    };

    let paths = |p: &Spanned<Vec<env::EnvString>>, key: &str, problems: &mut Vec<String>| {
        if p.get_ref().is_empty() {
            problems.push(at.at(p, key, "must list at least one path or glob"));
        }
        for s in p.get_ref().iter().filter(|s| crate::storage::is_s3(&s.0)) {
            if let Err(e) = crate::storage::parse_s3_url(&s.0) {
                problems.push(at.at(p, key, e));
            }
        }
        p.get_ref().iter().map(|s| s.0.clone()).collect::<Vec<_>>()
    };

    let ev = &raw.events;
    let columns = ev.columns.as_ref().map(|c| {
        let c = c.get_ref();
        EventColumns {
            time: c.time.0.clone(),
            event: c.event.0.clone(),
            distinct_id: c.distinct_id.0.clone(),
            insert_id: c.insert_id.as_ref().map(|s| s.0.clone()),
            ingest_time: c.ingest_time.as_ref().map(|s| s.0.clone()),
            properties: c.properties.as_ref().map(|s| s.0.clone()),
        }
    });
    match (&ev.columns, ev.format.0) {
        (None, Vendor::Table) => problems.push(format!(
            "{}: `events.columns`: required when `events.format = \"table\"`",
            at.path.display()
        )),
        (Some(c), f) if f != Vendor::Table => {
            problems.push(at.at(c, "events.columns", "only allowed with `format = \"table\"`"))
        }
        _ => {}
    }
    let events = Input {
        format: ev.format.0,
        paths: paths(&ev.paths, "events.paths", problems),
        file_type: file_type(ev.file_type.map(|t| t.0)),
        columns,
    };

    let profiles = raw.profiles.as_ref().map(|p| {
        match (&p.columns, p.format.0) {
            (None, Vendor::Table) => problems.push(format!(
                "{}: `profiles.columns`: required when `profiles.format = \"table\"`",
                at.path.display()
            )),
            (Some(c), f) if f != Vendor::Table => {
                problems.push(at.at(c, "profiles.columns", "only allowed with `format = \"table\"`"))
            }
            _ => {}
        }
        let default_order = match p.format.0 {
            Vendor::Mixpanel | Vendor::Table => FoldOrder::Arrival,
            Vendor::Posthog | Vendor::Segment => FoldOrder::Time,
        };
        ProfileInput {
            format: p.format.0,
            paths: paths(&p.paths, "profiles.paths", problems),
            file_type: file_type(p.file_type.map(|t| t.0)),
            order: match p.order.map(|o| o.0) {
                None => default_order,
                Some(FoldOrderName::Arrival) => FoldOrder::Arrival,
                Some(FoldOrderName::Time) => FoldOrder::Time,
            },
            columns: p.columns.as_ref().map(|c| {
                let c = c.get_ref();
                ProfileColumns {
                    time: c.time.0.clone(),
                    group_key: c.group_key.0.clone(),
                    group_id: c.group_id.0.clone(),
                    operation: c.operation.0.clone(),
                    value: c.value.0.clone(),
                }
            }),
        }
    });

    if raw.group_keys.is_empty() {
        problems.push(format!(
            "{}: `group_keys`: at least one `[[group_keys]]` entry is required",
            at.path.display()
        ));
    }
    let mut group_keys: Vec<GroupKey> = Vec::new();
    for (i, gk) in raw.group_keys.iter().enumerate() {
        let key = gk.key.get_ref().0.clone();
        let path = format!("group_keys[{i}]");
        if key.is_empty() {
            problems.push(at.at(&gk.key, &format!("{path}.key"), "must not be empty"));
        } else if group_keys.iter().any(|k| k.key == key) {
            problems.push(at.at(&gk.key, &format!("{path}.key"), format!("duplicate group key {key:?}")));
        }
        let effective_from_us = gk.effective_from.as_ref().and_then(|v| {
            parse_instant(v.get_ref(), timezone)
                .map_err(|m| problems.push(at.at(v, &format!("{path}.effective_from"), m)))
                .ok()
        });
        group_keys.push(GroupKey {
            key,
            display_name: gk.display_name.as_ref().map(|s| s.0.clone()),
            effective_from_us,
            clock: match gk.clock.map(|c| c.0) {
                None | Some(ClockName::Event) => Clock::Event,
                Some(ClockName::Ingest) => Clock::Ingest,
            },
            name_property: gk.name_property.as_ref().map(|s| s.0.clone()),
        });
    }
    if events.format == Vendor::Segment && group_keys.iter().any(|k| k.key != "group") {
        problems.push(format!(
            "{}: `group_keys`: Segment inputs have one group key, named \"group\"",
            at.path.display()
        ));
    }

    let out_path = raw.output.path.get_ref().0.clone();
    if out_path.is_empty() {
        problems.push(at.at(&raw.output.path, "output.path", "must not be empty"));
    } else if crate::storage::is_s3(&out_path) {
        if let Err(e) = crate::storage::parse_s3_url(&out_path) {
            problems.push(at.at(&raw.output.path, "output.path", e));
        }
    }
    let output = Output {
        path: out_path,
        format: match raw.output.format.map(|f| f.0) {
            None | Some(OutputFormatName::Parquet) => OutputFormat::Parquet,
            Some(OutputFormatName::Csv) => OutputFormat::Csv,
        },
    };

    let mut funnels: Vec<Funnel> = Vec::new();
    for (i, f) in raw.funnels.iter().enumerate() {
        let path = format!("funnels[{i}]");
        let name = f.name.get_ref().0.clone();
        if name.is_empty() {
            problems.push(at.at(&f.name, &format!("{path}.name"), "must not be empty"));
        } else if funnels.iter().any(|g| g.name == name) {
            problems.push(at.at(&f.name, &format!("{path}.name"), format!("duplicate funnel {name:?}")));
        }
        let group_key = f.group_key.get_ref().0.clone();
        if !group_keys.iter().any(|k| k.key == group_key) {
            problems.push(at.at(
                &f.group_key,
                &format!("{path}.group_key"),
                format!("{group_key:?} is not one of the job's `[[group_keys]]`"),
            ));
        }
        if f.steps.get_ref().is_empty() {
            problems.push(at.at(&f.steps, &format!("{path}.steps"), "must list at least one event"));
        }
        let window_days = match &f.window_days {
            None => DEFAULT_WINDOW_DAYS,
            Some(w) => match u32::try_from(*w.get_ref()) {
                Ok(d) if d >= 1 => d,
                _ => {
                    problems.push(at.at(
                        w,
                        &format!("{path}.window_days"),
                        "must be a whole number of days, at least 1",
                    ));
                    DEFAULT_WINDOW_DAYS
                }
            },
        };
        funnels.push(Funnel {
            name,
            group_key,
            steps: f.steps.get_ref().iter().map(|s| s.0.clone()).collect(),
            window_days,
        });
    }

    let s3 = raw
        .s3
        .as_ref()
        .map(|s| S3Options {
            endpoint: s.endpoint.as_ref().map(|v| v.0.clone()),
            region: s.region.as_ref().map(|v| v.0.clone()),
            allow_http: s.allow_http,
            access_key_id: s.access_key_id.as_ref().map(|v| v.0.clone()),
            secret_access_key: s.secret_access_key.as_ref().map(|v| v.0.clone()),
            session_token: s.session_token.as_ref().map(|v| v.0.clone()),
            profile: s.profile.as_ref().map(|v| v.0.clone()),
        })
        .unwrap_or_default();

    Job {
        path: at.path.to_path_buf(),
        name,
        timezone,
        exclude_events: raw
            .exclude_events
            .map(|v| v.into_iter().map(|s| s.0).collect())
            .unwrap_or_else(|| DEFAULT_EXCLUDE_EVENTS.iter().map(|s| s.to_string()).collect()),
        events,
        profiles,
        group_keys,
        output,
        funnels,
        s3,
    }
}

/// Parses an `effective_from` value: an RFC 3339 instant, or a bare date meaning midnight
/// in `tz`. Strings and TOML date/datetime literals are both accepted.
fn parse_instant(v: &toml::Value, tz: Tz) -> Result<i64, String> {
    let text = match v {
        toml::Value::String(s) => env::expand(s, |n| std::env::var(n).ok())?,
        toml::Value::Datetime(d) => d.to_string(),
        _ => return Err("expected a date (\"2024-01-15\") or an RFC 3339 instant (\"2024-01-15T00:00:00Z\")".into()),
    };
    parse_date_or_instant(&text, tz)
}

/// A bare `YYYY-MM-DD` (midnight in `tz`) or an RFC 3339 instant, as UTC microseconds.
pub fn parse_date_or_instant(text: &str, tz: Tz) -> Result<i64, String> {
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(calendar::midnight_utc_us(tz, calendar::day_of(d)));
    }
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.timestamp_micros())
        .map_err(|_| {
            format!("{text:?} is neither a date (\"2024-01-15\") nor an RFC 3339 instant with a zone (\"2024-01-15T00:00:00Z\")")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
version = 1
name = "t"
timezone = "Europe/Berlin"
[events]
format = "mixpanel"
paths = ["a/*.ndjson"]
[[group_keys]]
key = "company_id"
effective_from = "2024-01-15"
[output]
path = "out"
"#;

    #[test]
    fn bare_date_is_midnight_in_job_zone() {
        let job = Job::parse(Path::new("j.toml"), MINIMAL).unwrap();
        // 2024-01-15 00:00 in Berlin (UTC+1) is 2024-01-14 23:00 UTC.
        let want = DateTime::parse_from_rfc3339("2024-01-14T23:00:00Z")
            .unwrap()
            .timestamp_micros();
        assert_eq!(job.group_keys[0].effective_from_us, Some(want));
        assert_eq!(job.exclude_events, DEFAULT_EXCLUDE_EVENTS);
        assert_eq!(job.output.format, OutputFormat::Parquet);
    }

    #[test]
    fn toml_datetime_literal_accepted() {
        let text = MINIMAL.replace("\"2024-01-15\"", "2024-01-15T06:00:00Z");
        let job = Job::parse(Path::new("j.toml"), &text).unwrap();
        let want = DateTime::parse_from_rfc3339("2024-01-15T06:00:00Z")
            .unwrap()
            .timestamp_micros();
        assert_eq!(job.group_keys[0].effective_from_us, Some(want));
    }

    #[test]
    fn unknown_key_names_file_line_and_column() {
        let text = MINIMAL.replace("[output]\n", "[output]\npaht = \"x\"\n");
        let err = Job::parse(Path::new("jobs/x.toml"), &text).unwrap_err().to_string();
        assert!(
            err.contains("jobs/x.toml:12:1: in `[output]`: unknown field `paht`"),
            "{err}"
        );
    }

    #[test]
    fn malformed_s3_urls_are_job_file_errors() {
        let text = MINIMAL
            .replace("\"a/*.ndjson\"", "\"s3:///events/*.ndjson\"")
            .replace("path = \"out\"", "path = \"s3://Not_A_Bucket/out\"");
        let err = Job::parse(Path::new("j.toml"), &text).unwrap_err().to_string();
        assert!(
            err.contains("`events.paths`: `s3:///events/*.ndjson` is not a valid S3 location"),
            "{err}"
        );
        assert!(
            err.contains("`output.path`: `s3://Not_A_Bucket/out` is not a valid S3 location"),
            "{err}"
        );
    }

    #[test]
    fn semantic_errors_are_reported_together() {
        let text = MINIMAL
            .replace("Europe/Berlin", "Mars/Olympus")
            .replace("\"2024-01-15\"", "\"15/01/2024\"")
            + "[[funnels]]\nname = \"f\"\ngroup_key = \"team\"\nsteps = []\n";
        let err = Job::parse(Path::new("j.toml"), &text).unwrap_err().to_string();
        assert!(err.contains("j.toml:4:12: `timezone`: unknown IANA time zone"), "{err}");
        assert!(err.contains("`group_keys[0].effective_from`"), "{err}");
        assert!(err.contains("`funnels[0].group_key`: \"team\" is not one of"), "{err}");
        assert!(
            err.contains("`funnels[0].steps`: must list at least one event"),
            "{err}"
        );
    }
}
