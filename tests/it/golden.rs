//! Golden outputs: the quickstart job on the shipped sample data, every table rendered as
//! sorted text rows and compared with `tests/golden/quickstart/<table>.txt`.
//!
//! After an intended change, regenerate with `UPDATE_GOLDEN=1 cargo test golden` and review
//! the diff like code.

use std::path::Path;

use crate::common::{read_table, repo, ALL_TABLES};

/// The quickstart job with its output redirected to `out`.
pub fn quickstart_job(out: &Path, format: &str) -> String {
    let text = std::fs::read_to_string(repo().join("jobs/quickstart.toml")).unwrap();
    let replaced = text
        .replace("\"out/quickstart\"", &format!("{:?}", out.to_str().unwrap()))
        .replace("format = \"parquet\"", &format!("format = \"{format}\""));
    assert_ne!(text, replaced, "quickstart.toml output path not found");
    replaced
}

fn run_quickstart(format: &str) -> (tempfile::TempDir, groupetl::runner::RunSummary) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let job = groupetl::job::Job::parse(&repo().join("jobs/quickstart.toml"), &quickstart_job(&out, format)).unwrap();
    let summary = groupetl::runner::run(&job, &Default::default()).unwrap();
    (dir, summary)
}

#[test]
fn quickstart_tables_match_golden() {
    let (dir, summary) = run_quickstart("parquet");
    let out = dir.path().join("out");
    let golden = repo().join("tests/golden/quickstart");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut mismatched = Vec::new();
    for table in ALL_TABLES {
        let got = read_table(&out, table).join("\n") + "\n";
        let path = golden.join(format!("{table}.txt"));
        if update {
            std::fs::create_dir_all(&golden).unwrap();
            std::fs::write(&path, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if got != want {
            mismatched.push(table);
        }
    }
    assert!(
        mismatched.is_empty(),
        "tables differ from tests/golden/quickstart: {mismatched:?} (UPDATE_GOLDEN=1 to regenerate)"
    );
    // The sample's deliberate bad records (sample_data/mixpanel/README.md).
    let want_rejects: u64 = std::fs::read_to_string(golden.join("rejects.count"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(u64::MAX);
    if update {
        std::fs::write(golden.join("rejects.count"), format!("{}\n", summary.rejects)).unwrap();
    } else {
        assert_eq!(summary.rejects, want_rejects);
    }
}

#[test]
fn csv_output_has_the_same_rows_as_parquet() {
    let (pq, _) = run_quickstart("parquet");
    let (csv, _) = run_quickstart("csv");
    for table in ALL_TABLES {
        let a = read_table(&pq.path().join("out"), table);
        let b = read_table(&csv.path().join("out"), table);
        assert!(!a.is_empty(), "{table} is empty");
        assert_eq!(a, b, "{table}: CSV and Parquet rows differ");
    }
}

/// Every data file of every table under `out`, with its bytes.
fn snapshot(out: &Path) -> Vec<(String, Vec<u8>)> {
    ALL_TABLES
        .iter()
        .flat_map(|t| crate::common::data_files(out, t))
        .map(|(p, _)| {
            (
                p.strip_prefix(out).unwrap().display().to_string(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect()
}

#[test]
fn rerun_gives_identical_files() {
    let (dir, _) = run_quickstart("parquet");
    let out = dir.path().join("out");
    let first = snapshot(&out);
    let job = groupetl::job::Job::parse(Path::new("quickstart.toml"), &quickstart_job(&out, "parquet")).unwrap();
    groupetl::runner::run(&job, &Default::default()).unwrap();
    assert_eq!(first, snapshot(&out));
}

/// Reader threads number event names and group ids in whatever order they meet them; the
/// output must not depend on it. The binary with 1, 3 and 8 threads, byte for byte.
#[test]
fn thread_count_does_not_change_a_byte() {
    let runs: Vec<Vec<(String, Vec<u8>)>> = ["1", "3", "8"]
        .iter()
        .map(|threads| {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("out");
            let job = dir.path().join("quickstart.toml");
            std::fs::write(&job, quickstart_job(&out, "parquet")).unwrap();
            let o = crate::common::groupetl_env(
                &repo(),
                &["run", "-q", job.to_str().unwrap()],
                &[("RAYON_NUM_THREADS", threads)],
            );
            assert_eq!(o.code, 0, "{threads} threads: {}", o.stderr);
            snapshot(&out)
        })
        .collect();
    assert!(!runs[0].is_empty());
    assert!(
        runs[1..].iter().all(|r| *r == runs[0]),
        "outputs differ between thread counts"
    );
}

/// `name:type` of every column of a Parquet file.
fn schema_of(file: &Path) -> Vec<String> {
    let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap())
        .unwrap();
    r.schema()
        .fields()
        .iter()
        .map(|f| format!("{}:{}", f.name(), f.data_type()))
        .collect()
}

#[test]
fn hive_layout_and_types() {
    let (dir, _) = run_quickstart("parquet");
    let out = dir.path().join("out");
    for table in ["group_daily", "group_event_daily", "active_groups", "group_lifecycle"] {
        for (file, parts) in crate::common::data_files(&out, table) {
            assert_eq!(parts.len(), 1, "{}", file.display());
            assert_eq!(parts[0].0, "date");
            assert_eq!(file.file_name().unwrap(), "part-0.parquet");
        }
    }
    for table in ["group_profiles", "group_retention", "group_stickiness", "group_funnels"] {
        let files = crate::common::data_files(&out, table);
        assert_eq!(files.len(), 1, "{table}");
        assert!(files[0].1.is_empty());
    }
    // The partition column lives in the path only; counts are Int64; timestamps UTC µs.
    let names = schema_of(&crate::common::data_files(&out, "group_daily")[0].0);
    assert_eq!(
        names,
        ["group_key:Utf8", "group_id:Utf8", "events:Int64", "users:Int64"]
    );
    let names = schema_of(&crate::common::data_files(&out, "group_profiles")[0].0);
    assert_eq!(
        names,
        [
            "group_key:Utf8",
            "group_id:Utf8",
            "name:Utf8",
            "properties:Utf8",
            "created_at:Timestamp(µs, \"UTC\")",
            "updated_at:Timestamp(µs, \"UTC\")"
        ]
    );
}
