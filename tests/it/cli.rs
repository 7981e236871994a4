//! The binary as users run it: exit codes, stderr's first line, rejects on disk.

use std::path::Path;

use crate::common::{data_files, groupetl, read_table, repo};
use crate::golden::quickstart_job;

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

const JOB: &str = r#"version = 1
name = "cli"
[events]
format = "mixpanel"
paths = ["EVENTS"]
[[group_keys]]
key = "company_id"
[output]
path = "OUT"
"#;

/// Runs job file `job` from `dir` with a JSON summary; the summary and the rejects it wrote.
fn run_with_rejects(dir: &Path, job: &str) -> (serde_json::Value, Vec<serde_json::Value>) {
    let o = groupetl(dir, &["run", job, "--format", "json"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let summary: serde_json::Value = serde_json::from_str(o.stdout.trim()).unwrap();
    let rejects = match summary["rejects"]["path"].as_str() {
        Some(path) => std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        None => Vec::new(),
    };
    assert_eq!(summary["rejects"]["count"], rejects.len());
    (summary, rejects)
}

fn job(dir: &Path, events: &str) -> String {
    let text = JOB
        .replace("EVENTS", events)
        .replace("OUT", dir.join("out").to_str().unwrap());
    write(dir, "job.toml", &text)
}

#[test]
fn validate_accepts_the_quickstart_job() {
    let o = groupetl(&repo(), &["validate", "jobs/quickstart.toml"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.starts_with("✓ job file jobs/quickstart.toml"), "{}", o.stdout);
    assert!(o.stdout.contains("✓ events: 9 files"), "{}", o.stdout);
    assert!(!repo().join("out/validate-should-not-write").exists());
}

#[test]
fn validate_names_file_line_column_of_unknown_key() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "bad.toml",
        &JOB.replace("[output]\n", "[output]\nformt = \"csv\"\n"),
    );
    let o = groupetl(dir.path(), &["validate", &p]);
    assert_eq!(o.code, 2);
    let first = o.stderr.lines().next().unwrap();
    assert!(first.starts_with("error: invalid job file: "), "{}", o.stderr);
    assert!(
        first.contains("bad.toml:9:1: in `[output]`: unknown field `formt`"),
        "{}",
        o.stderr
    );
}

/// A bad invocation names what is wrong on stderr's first line (clap lists a missing
/// argument on the next one).
#[test]
fn bad_invocation_names_the_cause_on_the_first_line() {
    let dir = tempfile::tempdir().unwrap();
    let o = groupetl(dir.path(), &["run", "job.toml", "--from", "2024-01-05"]);
    assert_eq!(o.code, 2);
    let first = o.stderr.lines().next().unwrap();
    assert_eq!(
        first,
        "error: the following required arguments were not provided: --to <TO>"
    );
    let o = groupetl(dir.path(), &["run"]);
    assert_eq!(o.code, 2);
    assert!(o.stderr.lines().next().unwrap().ends_with("<JOB>"), "{}", o.stderr);
    let o = groupetl(dir.path(), &[]);
    assert_eq!(o.code, 2);
    assert_eq!(
        o.stderr.lines().next().unwrap(),
        "error: a command is required (run, validate or plan)"
    );
    assert!(o.stderr.contains("Usage:"), "{}", o.stderr);
    let o = groupetl(dir.path(), &["--version"]);
    assert_eq!((o.code, o.stdout.trim()), (0, "groupetl 0.1.0"));
}

#[test]
fn validate_reports_every_semantic_problem() {
    let dir = tempfile::tempdir().unwrap();
    let text = JOB.replace("version = 1", "version = 2\ntimezone = \"Nowhere/Land\"")
        + "[[funnels]]\nname = \"f\"\ngroup_key = \"team_id\"\nsteps = [\"a\"]\nwindow_days = 0\n";
    let p = write(dir.path(), "bad.toml", &text);
    let o = groupetl(dir.path(), &["validate", &p]);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.lines().next().unwrap().contains("(4 problems): "),
        "{}",
        o.stderr
    );
    for want in [
        "`version`",
        "`timezone`",
        "`funnels[0].group_key`",
        "`funnels[0].window_days`",
    ] {
        assert!(o.stderr.contains(want), "missing {want}: {}", o.stderr);
    }
}

#[test]
fn missing_environment_variable_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "env.toml",
        &JOB.replace("EVENTS", "${GROUPETL_TEST_UNSET_VAR}/x.ndjson"),
    );
    let o = groupetl(dir.path(), &["validate", &p]);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr
            .contains("environment variable `GROUPETL_TEST_UNSET_VAR` is not set"),
        "{}",
        o.stderr
    );
}

/// SPEC §3: `${VAR}` in any string, keywords (`format`, `file_type`, `order`, `clock`)
/// included; a keyword the variable does not spell is named at its line.
#[test]
fn environment_variables_expand_in_keyword_values() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "e.txt",
        "{\"event\":\"a\",\"properties\":{\"time\":1704103200,\"distinct_id\":\"u\",\"company_id\":\"c\"}}\n",
    );
    write(
        dir.path(),
        "p.txt",
        "{\"$group_key\":\"company_id\",\"$group_id\":\"c\",\"$set\":{\"name\":\"C\"}}\n",
    );
    let text = format!(
        r#"version = 1
name = "env"
[events]
format = "${{GE_VENDOR}}"
paths = ["{d}/e.txt"]
file_type = "${{GE_TYPE}}"
[profiles]
format = "${{GE_VENDOR}}"
paths = ["{d}/p.txt"]
file_type = "${{GE_TYPE}}"
order = "${{GE_ORDER}}"
[[group_keys]]
key = "company_id"
clock = "${{GE_CLOCK}}"
[output]
path = "{d}/out"
format = "${{GE_OUTPUT}}"
"#,
        d = dir.path().display()
    );
    let p = write(dir.path(), "env.toml", &text);
    let mut env = vec![
        ("GE_VENDOR", "mixpanel"),
        ("GE_TYPE", "ndjson"),
        ("GE_ORDER", "time"),
        ("GE_CLOCK", "ingest"),
        ("GE_OUTPUT", "csv"),
    ];
    let o = crate::common::groupetl_env(dir.path(), &["run", &p], &env);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(dir.path().join("out/group_daily/date=2024-01-01/part-0.csv").exists());

    env[4] = ("GE_OUTPUT", "xlsx");
    let o = crate::common::groupetl_env(dir.path(), &["validate", &p], &env);
    assert_eq!(o.code, 2);
    assert!(o.stderr.contains("env.toml:17:10"), "{}", o.stderr);
    assert!(o.stderr.contains("unknown variant `xlsx`"), "{}", o.stderr);
}

/// `validate` checks each input's layout (Parquet schema, CSV header, first NDJSON
/// record) for what the format needs, instead of only opening the files.
#[test]
fn validate_checks_inputs_have_what_the_format_needs() {
    let dir = tempfile::tempdir().unwrap();
    let events = write(dir.path(), "a.csv", "foo,bar\n1,2\n");
    let p = job(dir.path(), &events);
    let o = groupetl(dir.path(), &["validate", &p]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(
        o.stdout
            .contains("a.csv`: no `event` or `event_name` column (the event name)"),
        "{}",
        o.stdout
    );
    let first = o.stderr.lines().next().unwrap();
    assert!(
        first.starts_with("error: validation failed: events: `")
            && first.ends_with("a.csv`: no `event` or `event_name` column (the event name) (and 1 more problem above)"),
        "{}",
        o.stderr
    );

    let events = write(
        dir.path(),
        "b.ndjson",
        "\n{\"event\":\"a\",\"properties\":{\"time\":1704103200}}\n",
    );
    let o = groupetl(dir.path(), &["validate", &job(dir.path(), &events)]);
    assert_eq!(o.code, 0, "{}{}", o.stdout, o.stderr);
    let events = write(dir.path(), "c.ndjson", "{\"event\":\"a\",\"properties\":{}}\n");
    let o = groupetl(dir.path(), &["validate", &job(dir.path(), &events)]);
    assert_eq!(o.code, 1);
    assert!(
        o.stdout
            .contains("no `properties.time` or `time` field in the first record (the event time)"),
        "{}",
        o.stdout
    );
}

/// Mixpanel `/groups` operations from CSV: a column per operator, empty where the row's
/// operation is another one, payloads as JSON text.
#[test]
fn mixpanel_profile_operations_read_from_csv() {
    let dir = tempfile::tempdir().unwrap();
    let events = write(
        dir.path(),
        "e.ndjson",
        "{\"event\":\"a\",\"properties\":{\"time\":1704103200,\"company_id\":\"g1\"}}\n",
    );
    write(
        dir.path(),
        "ops.csv",
        concat!(
            "$group_key,$group_id,$set,$unset,$union,$time\n",
            "company_id,g1,\"{\"\"name\"\":\"\"G\"\",\"\"a\"\":1}\",,,1704103200\n",
            "company_id,g1,,\"[\"\"a\"\"]\",,1704103201\n",
            "company_id,g1,,,\"{\"\"tags\"\":[\"\"x\"\"]}\",1704103202\n",
            "company_id,g2,{,,,1704103203\n",
        ),
    );
    let text = JOB
        .replace("EVENTS", &events)
        .replace("OUT", dir.path().join("out").to_str().unwrap())
        + &format!(
            "[profiles]\nformat = \"mixpanel\"\npaths = [\"{}\"]\n",
            dir.path().join("ops.csv").display()
        );
    let p = write(dir.path(), "job.toml", &text);
    let (_, rejects) = run_with_rejects(dir.path(), &p);
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    assert_eq!(rejects[0]["line"], 5);
    assert!(rejects[0]["reason"]
        .as_str()
        .unwrap()
        .contains("column `$set` is not valid JSON"));
    assert_eq!(
        read_table(&dir.path().join("out"), "group_profiles"),
        ["group_key=company_id | group_id=g1 | name=g1 | properties={\"name\":\"G\",\"tags\":[\"x\"]} | created_at=2024-01-01T10:00:00.000000Z | updated_at=2024-01-01T10:00:02.000000Z"]
    );
}

/// A glob wide enough to reach the output folder does not read the job's own tables back:
/// the second run is up to date, and once the real input is gone the run fails (missing
/// input) instead of removing every partition.
#[test]
fn the_output_folder_is_never_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (src, out) = (data.join("in"), data.join("out"));
    std::fs::create_dir_all(&src).unwrap();
    let events = "{\"event\":\"a\",\"properties\":{\"time\":1704103200,\"distinct_id\":\"u\",\"company_id\":\"c\"}}\n";
    std::fs::write(src.join("e.ndjson"), events).unwrap();
    let text = JOB
        .replace("EVENTS", &format!("{}/**/*", data.display()))
        .replace("OUT", out.to_str().unwrap());
    let p = write(dir.path(), "job.toml", &text);
    let (summary, rejects) = run_with_rejects(dir.path(), &p);
    assert_eq!((summary["events"]["read"].as_u64(), rejects.len()), (Some(1), 0));
    let o = groupetl(dir.path(), &["run", &p]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("up to date"), "{}", o.stdout);

    std::fs::remove_file(src.join("e.ndjson")).unwrap();
    let before = data_files(&out, "group_daily");
    assert!(!before.is_empty());
    let o = groupetl(dir.path(), &["run", &p]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(
        o.stderr.lines().next().unwrap().contains("matches no file"),
        "{}",
        o.stderr
    );
    assert_eq!(data_files(&out, "group_daily"), before);
}

#[test]
fn missing_input_fails_validate_and_run_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    let p = job(dir.path(), &format!("{}/nothing/*.ndjson", dir.path().display()));
    let o = groupetl(dir.path(), &["validate", &p]);
    assert_eq!(o.code, 1, "{}", o.stdout);
    assert!(o.stdout.contains("✗ events: input"), "{}", o.stdout);
    let o = groupetl(dir.path(), &["run", &p]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.starts_with("error: run of job `cli` failed: input"),
        "{}",
        o.stderr
    );
    assert!(!dir.path().join("out").exists());
}

#[test]
fn bad_invocations_exit_2() {
    let o = groupetl(&repo(), &["run", "jobs/quickstart.toml", "--from", "2024-01-01"]);
    assert_eq!(o.code, 2);
    let o = groupetl(
        &repo(),
        &[
            "run",
            "jobs/quickstart.toml",
            "--from",
            "2024-02-01",
            "--to",
            "2024-01-01",
        ],
    );
    assert_eq!(o.code, 2);
    assert!(
        o.stderr
            .starts_with("error: --from 2024-02-01 is after --to 2024-01-01"),
        "{}",
        o.stderr
    );
    let o = groupetl(&repo(), &["frobnicate"]);
    assert_eq!(o.code, 2);
    let o = groupetl(&repo(), &["run", "no/such/job.toml"]);
    assert_eq!(o.code, 2);
    assert!(
        o.stderr.starts_with("error: cannot read job file `no/such/job.toml`"),
        "{}",
        o.stderr
    );
}

#[test]
fn rejects_are_written_with_file_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let events = write(
        dir.path(),
        "e.ndjson",
        concat!(
            "{\"event\":\"a\",\"properties\":{\"time\":1704103200,\"distinct_id\":\"u\",\"company_id\":\"c\"}}\n",
            "{not json\n",
            "\n",
            "{\"event\":\"a\",\"properties\":{\"time\":\"soon\",\"company_id\":\"c\"}}\n",
            "{\"event\":\"b\",\"properties\":{\"time\":1704103300,\"distinct_id\":\"v\",\"company_id\":\"c\"}}\n",
        ),
    );
    let p = job(dir.path(), &events);
    let (summary, lines) = run_with_rejects(dir.path(), &p);
    assert_eq!(summary["events"]["read"], 2);
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["line"], 2);
    assert_eq!(lines[0]["file"], events.as_str());
    assert!(lines[0]["reason"].as_str().unwrap().starts_with("not valid JSON"));
    assert_eq!(lines[1]["line"], 4);
    assert!(lines[1]["reason"].as_str().unwrap().contains("\"soon\""));
    assert_eq!(
        read_table(&dir.path().join("out"), "group_daily"),
        ["date=2024-01-01 | group_key=company_id | group_id=c | events=2 | users=2"]
    );
}

/// An event time outside 1971-2099 (here microseconds, read as milliseconds: the year
/// 55970) is a bad record: the run goes on, instead of stretching the dense tables over
/// millennia out of memory. The columnar reader declines the Parquet row, the general
/// path words the reject.
#[test]
fn implausible_event_times_are_rejected_not_fatal() {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, StringArray};

    let dir = tempfile::tempdir().unwrap();
    let times = [1_704_103_200i64, 1_704_103_200_000_000, 30_000_000, 1_704_103_300];
    let mut lines = String::new();
    for t in times {
        lines += &format!(
            "{{\"event\":\"a\",\"properties\":{{\"time\":{t},\"distinct_id\":\"u\",\"company_id\":\"c\"}}}}\n"
        );
    }
    write(dir.path(), "e.ndjson", &lines);
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("event", Arc::new(StringArray::from(vec!["a"; 4]))),
        ("time", Arc::new(Int64Array::from(times.to_vec()))),
        ("distinct_id", Arc::new(StringArray::from(vec!["u"; 4]))),
        ("company_id", Arc::new(StringArray::from(vec!["c"; 4]))),
    ];
    crate::common::write_parquet(&dir.path().join("e.parquet"), columns, Default::default());

    for input in ["e.ndjson", "e.parquet"] {
        let events = dir.path().join(input);
        let p = job(dir.path(), events.to_str().unwrap());
        let (summary, rejects) = run_with_rejects(dir.path(), &p);
        assert_eq!(summary["events"]["read"], 2, "{input}");
        let reasons: Vec<(u64, &str)> = rejects
            .iter()
            .map(|r| {
                let at = r["line"].as_u64().or(r["row"].as_u64()).unwrap();
                (at, r["reason"].as_str().unwrap())
            })
            .collect();
        assert_eq!(reasons.len(), 2, "{input}: {reasons:?}");
        assert_eq!(reasons[0].0, 2, "{input}: {reasons:?}");
        assert!(reasons[0].1.contains("+55970-"), "{input}: {reasons:?}");
        assert!(
            reasons[1]
                .1
                .contains("1970-12-14T05:20:00+00:00 is outside the years 1971 to 2099"),
            "{input}: {reasons:?}"
        );
        assert_eq!(
            read_table(&dir.path().join("out"), "active_groups"),
            ["date=2024-01-01 | group_key=company_id | dau=1 | wau=1 | mau=1"],
            "{input}"
        );
    }
}

/// A Parquet column nested 800 structs deep (unused by the job) is read, not a stack
/// overflow of a reader thread.
#[test]
fn deeply_nested_parquet_columns_do_not_overflow_the_stack() {
    use std::sync::Arc;

    use arrow_array::{ArrayRef, Int64Array, StringArray, StructArray};
    use arrow_schema::{DataType, Field};

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("e.parquet");
    let p = path.clone();
    // Built and written on a thread with room for arrow-rs's recursion.
    std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || {
            let mut deep: ArrayRef = Arc::new(Int64Array::from(vec![1]));
            for _ in 0..800 {
                let field = Arc::new(Field::new("x", deep.data_type().clone(), true));
                deep = Arc::new(StructArray::from(vec![(field, deep)]));
            }
            assert!(matches!(deep.data_type(), DataType::Struct(_)));
            let batch = arrow_array::RecordBatch::try_from_iter(vec![
                ("event", Arc::new(StringArray::from(vec!["a"])) as ArrayRef),
                ("time", Arc::new(Int64Array::from(vec![1_704_103_200]))),
                ("company_id", Arc::new(StringArray::from(vec!["c"]))),
                ("deep", deep),
            ])
            .unwrap();
            // Without the embedded Arrow schema, whose own reader stops at 64 levels (a
            // clean error): the Parquet schema alone is what goes 800 deep.
            let options = parquet::arrow::arrow_writer::ArrowWriterOptions::new().with_skip_arrow_metadata(true);
            let file = std::fs::File::create(&p).unwrap();
            let mut w = parquet::arrow::ArrowWriter::try_new_with_options(file, batch.schema(), options).unwrap();
            w.write(&batch).unwrap();
            w.close().unwrap();
        })
        .unwrap()
        .join()
        .unwrap();
    let p = job(dir.path(), path.to_str().unwrap());
    let (summary, rejects) = run_with_rejects(dir.path(), &p);
    assert_eq!((summary["events"]["read"].as_u64(), rejects.len()), (Some(1), 0));
}

#[test]
fn max_rejects_fails_the_run_and_keeps_previous_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let job_path = write(dir.path(), "q.toml", &quickstart_job(&out, "parquet"));
    let o = groupetl(&repo(), &["run", &job_path]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let before: Vec<_> = data_files(&out, "group_daily")
        .into_iter()
        .map(|(p, _)| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    assert!(!before.is_empty());

    let o = groupetl(&repo(), &["run", &job_path, "--full-refresh", "--max-rejects", "3"]);
    assert_eq!(o.code, 1);
    let first = o.stderr.lines().next().unwrap();
    assert!(
        first.contains("bad records, more than --max-rejects 3; nothing was written"),
        "{first}"
    );
    let after: Vec<_> = data_files(&out, "group_daily")
        .into_iter()
        .map(|(p, _)| (p.clone(), std::fs::read(&p).unwrap()))
        .collect();
    assert_eq!(before, after);

    // Within the limit the run succeeds.
    let o = groupetl(&repo(), &["run", &job_path, "--full-refresh", "--max-rejects", "1000"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
}

#[test]
fn backfill_rewrites_only_its_range() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let job_path = write(dir.path(), "q.toml", &quickstart_job(&out, "parquet"));
    assert_eq!(groupetl(&repo(), &["run", &job_path]).code, 0);
    // Plant a marker partition outside the range and one inside it.
    let outside = out.join("group_daily/date=2023-06-01");
    let inside = out.join("group_daily/date=2024-01-02");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("part-0.parquet"), b"marker").unwrap();
    let inside_before = std::fs::read(inside.join("part-0.parquet")).unwrap();
    std::fs::write(inside.join("part-0.parquet"), b"stale").unwrap();
    let o = groupetl(
        &repo(),
        &["run", &job_path, "--from", "2024-01-01", "--to", "2024-01-03"],
    );
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(std::fs::read(outside.join("part-0.parquet")).unwrap(), b"marker");
    assert_eq!(std::fs::read(inside.join("part-0.parquet")).unwrap(), inside_before);
}

#[test]
fn a_file_read_as_events_and_profiles_rejects_a_bad_line_once() {
    // The PostHog sample's [profiles] reads the event export itself; line 66 is broken JSON.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let text = std::fs::read_to_string(repo().join("jobs/posthog.toml"))
        .unwrap()
        .replace("\"out/posthog\"", &format!("{:?}", out.to_str().unwrap()));
    let job = write(dir.path(), "posthog.toml", &text);
    let (_, rejects) = run_with_rejects(&repo(), &job);
    let broken = rejects
        .iter()
        .filter(|r| r["reason"].as_str().unwrap().starts_with("not valid JSON"));
    assert_eq!(broken.count(), 1, "{rejects:?}");
}

#[test]
fn mixpanel_profile_rejects_name_their_line_in_both_fold_orders() {
    // Operations are read by the fast path; these lines are the ones it leaves to the
    // general path, which rejects them with their line and reason.
    let dir = tempfile::tempdir().unwrap();
    let events = write(
        dir.path(),
        "e.ndjson",
        "{\"event\":\"a\",\"properties\":{\"time\":1704103200,\"distinct_id\":\"u\",\"company_id\":\"c\"}}\n",
    );
    let mut ops = Vec::new();
    ops.extend_from_slice(
        b"{\"$group_key\":\"company_id\",\"$group_id\":\"c\",\"$set\":{\"plan\":\"free\"},\"$time\":1704103200}\n",
    );
    ops.extend_from_slice(b"{\"$group_key\":\"company_id\",\"$group_id\":\"c\",\"$set\":{\"plan\":\"pro\"}}\n");
    ops.extend_from_slice(
        b"{\"$group_key\":\"company_id\",\"$group_id\":\"c\",\"$add\":{\"n\":1},\"$time\":1704103300}\n",
    );
    ops.extend_from_slice(
        b"{\"$group_key\":\"company_id\",\"$group_id\":\"c\",\"$set\":{\"x\":\"\xff\"},\"$time\":1704103300}\n",
    );
    ops.extend_from_slice(
        b"{\"$group_key\":\"company_id\",\"$group_id\":\"c\",\"$set_once\":{\"seats\":3},\"$time\":1704103400}\n",
    );
    let profiles = dir.path().join("p.ndjson");
    std::fs::write(&profiles, ops).unwrap();
    for (order, plan, reasons) in [
        (
            "arrival",
            "pro",
            vec![(3, "unknown operator `$add`"), (4, "not valid JSON")],
        ),
        (
            "time",
            "free",
            vec![
                (2, "operation has no time, which `order = \"time\"` needs"),
                (3, "unknown operator `$add`"),
                (4, "not valid JSON"),
            ],
        ),
    ] {
        let text = JOB
            .replace("EVENTS", &events)
            .replace("OUT", dir.path().join(format!("out-{order}")).to_str().unwrap())
            + &format!(
                "[profiles]\nformat = \"mixpanel\"\npaths = [{:?}]\norder = \"{order}\"\n",
                profiles.to_str().unwrap()
            );
        let p = write(dir.path(), &format!("{order}.toml"), &text);
        let (_, lines) = run_with_rejects(dir.path(), &p);
        let got: Vec<(u64, &str)> = lines
            .iter()
            .map(|l| (l["line"].as_u64().unwrap(), l["reason"].as_str().unwrap()))
            .collect();
        assert_eq!(got.len(), reasons.len(), "{order}: {got:?}");
        for ((line, reason), (want_line, want)) in got.iter().zip(&reasons) {
            assert_eq!(line, want_line, "{order}");
            assert!(reason.starts_with(want), "{order}: {reason}");
        }
        if order == "time" {
            assert!(
                lines[0]["record"].as_str().unwrap().contains("\"pro\""),
                "{:?}",
                lines[0]
            );
        }
        let rows = read_table(&dir.path().join(format!("out-{order}")), "group_profiles");
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert!(
            rows[0].contains(&format!("\"plan\":\"{plan}\"")) && rows[0].contains("\"seats\":3"),
            "{order}: {rows:?}"
        );
    }
}
