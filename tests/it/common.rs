//! Shared test helpers: running the binary or the library on a job, and reading output
//! tables back as sorted text rows.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use arrow_array::{Array, TimestampMicrosecondArray};
use arrow_cast::display::array_value_to_string;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// Writes `columns` (all nullable) to a Parquet file at `path` with `props`.
pub fn write_parquet(
    path: &Path,
    columns: Vec<(&str, arrow_array::ArrayRef)>,
    props: parquet::file::properties::WriterProperties,
) {
    use std::sync::Arc;

    use arrow_schema::{Field, Schema};

    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let batch =
        arrow_array::RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, a)| a).collect()).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

/// The repository root (tests run with it as the working directory too).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs the `groupetl` binary with `args` in `cwd`.
pub fn groupetl(cwd: &Path, args: &[&str]) -> Output {
    groupetl_env(cwd, args, &[])
}

pub fn groupetl_env(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_groupetl"));
    cmd.args(args).current_dir(cwd);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run groupetl");
    Output {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Every data file of `table` under `out` (names starting with `_` or `.` are skipped,
/// as Hive readers do), with the `k=v` partition values of its path.
pub fn data_files(out: &Path, table: &str) -> Vec<(PathBuf, Vec<(String, String)>)> {
    let mut files = Vec::new();
    let root = out.join(table);
    if !root.exists() {
        return files;
    }
    for entry in walk(&root) {
        let rel = entry.strip_prefix(&root).unwrap();
        let hidden = rel
            .components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with(['_', '.']));
        if hidden {
            continue;
        }
        let parts = rel
            .parent()
            .map(|p| {
                p.components()
                    .filter_map(|c| {
                        let s = c.as_os_str().to_string_lossy().into_owned();
                        s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        files.push((entry, parts));
    }
    files.sort();
    files
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// The rows of `table` as `col=value` text, partition columns first, sorted. Works for
/// Parquet and CSV outputs alike, so the two can be compared.
pub fn read_table(out: &Path, table: &str) -> Vec<String> {
    let mut rows = Vec::new();
    for (file, parts) in data_files(out, table) {
        let prefix: Vec<String> = parts.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let name = file.to_string_lossy();
        if name.ends_with(".parquet") {
            let f = std::fs::File::open(&file).unwrap();
            let reader = ParquetRecordBatchReaderBuilder::try_new(f).unwrap().build().unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                let schema = batch.schema();
                for i in 0..batch.num_rows() {
                    let mut cells = prefix.clone();
                    for (c, field) in schema.fields().iter().enumerate() {
                        let col = batch.column(c);
                        let v = if col.is_null(i) {
                            String::new()
                        } else if let Some(ts) = col.as_any().downcast_ref::<TimestampMicrosecondArray>() {
                            // arrow-cast cannot render named zones without its chrono-tz feature.
                            chrono::DateTime::from_timestamp_micros(ts.value(i))
                                .unwrap()
                                .format("%Y-%m-%dT%H:%M:%S%.6fZ")
                                .to_string()
                        } else {
                            array_value_to_string(col, i).unwrap()
                        };
                        cells.push(format!("{}={}", field.name(), normalise_ts(&v)));
                    }
                    rows.push(cells.join(" | "));
                }
            }
        } else if name.ends_with(".csv") {
            let mut rdr = csv::Reader::from_path(&file).unwrap();
            let headers: Vec<String> = rdr.headers().unwrap().iter().map(str::to_string).collect();
            for rec in rdr.records() {
                let rec = rec.unwrap();
                let mut cells = prefix.clone();
                for (h, v) in headers.iter().zip(rec.iter()) {
                    cells.push(format!("{h}={}", normalise_ts(v)));
                }
                rows.push(cells.join(" | "));
            }
        } else {
            panic!("unexpected file in table {table}: {}", file.display());
        }
    }
    rows.sort();
    rows
}

/// One spelling for timestamps from Parquet (`2024-01-01T00:00:00Z`) and CSV
/// (`2024-01-01T00:00:00.000000Z`).
fn normalise_ts(v: &str) -> String {
    let looks_ts = v.len() >= 20 && v.as_bytes().get(10) == Some(&b'T') && v.ends_with('Z');
    if looks_ts {
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(v) {
            return t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
        }
    }
    v.to_string()
}

pub const ALL_TABLES: [&str; 8] = [
    "group_profiles",
    "group_daily",
    "group_event_daily",
    "active_groups",
    "group_lifecycle",
    "group_retention",
    "group_stickiness",
    "group_funnels",
];

/// Runs `job_toml` through the library (no subprocess) and returns the summary.
pub fn run_job(dir: &Path, job_toml: &str) -> groupetl::runner::RunSummary {
    let path = dir.join("job.toml");
    std::fs::write(&path, job_toml).unwrap();
    let job = groupetl::job::Job::load(&path).unwrap();
    groupetl::runner::run(&job, &Default::default()).unwrap()
}
