//! The runner over time: incremental runs against a full refresh, crashes at any point,
//! the lock, and `plan`.

use std::path::{Path, PathBuf};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use crate::common::{data_files, groupetl, groupetl_env, read_table, repo, ALL_TABLES};

/// The sample's input files, relative to `sample_data/mixpanel`.
fn sample_files() -> Vec<String> {
    let mut v = Vec::new();
    for sub in ["events", "groups"] {
        for e in std::fs::read_dir(repo().join("sample_data/mixpanel").join(sub)).unwrap() {
            v.push(format!("{sub}/{}", e.unwrap().file_name().to_string_lossy()));
        }
    }
    v.sort();
    v
}

fn job_text(inputs: &Path, out: &Path) -> String {
    format!(
        r#"version = 1
name = "runner-test"
timezone = "America/New_York"
[events]
format = "mixpanel"
paths = ["{i}/events/*"]
[profiles]
format = "mixpanel"
paths = ["{i}/groups/*.ndjson"]
[[group_keys]]
key = "company_id"
name_property = "name"
[[group_keys]]
key = "team_id"
effective_from = "2024-01-20"
[output]
path = "{o}"
[[funnels]]
name = "activation"
group_key = "company_id"
steps = ["Sign Up", "Create Project", "Invite Teammate"]
"#,
        i = inputs.display(),
        o = out.display()
    )
}

fn copy_in(inputs: &Path, file: &str) {
    let dst = inputs.join(file);
    std::fs::create_dir_all(dst.parent().unwrap()).unwrap();
    std::fs::copy(repo().join("sample_data/mixpanel").join(file), dst).unwrap();
}

fn write_job(dir: &Path, inputs: &Path, out: &Path) -> PathBuf {
    let p = dir.join(format!("job-{}.toml", out.file_name().unwrap().to_string_lossy()));
    std::fs::write(&p, job_text(inputs, out)).unwrap();
    p
}

/// A temp folder with the sample inputs that `keep` selects copied into `in/`, the job
/// reading them, and its output folder `inc/`.
struct Fixture {
    dir: tempfile::TempDir,
    inputs: PathBuf,
    out: PathBuf,
    job: PathBuf,
}

fn fixture(keep: impl Fn(&str) -> bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let inputs = dir.path().join("in");
    let out = dir.path().join("inc");
    for f in sample_files().iter().filter(|f| keep(f)) {
        copy_in(&inputs, f);
    }
    let job = write_job(dir.path(), &inputs, &out);
    Fixture { dir, inputs, out, job }
}

fn run(job: &Path, extra: &[&str]) -> crate::common::Output {
    let mut args = vec!["run", job.to_str().unwrap()];
    args.extend_from_slice(extra);
    let o = groupetl(&repo(), &args);
    assert_eq!(o.code, 0, "run failed: {}", o.stderr);
    o
}

/// Every table's rows, plus the set of data files (a stale partition is a bug even when
/// it holds the right rows).
fn snapshot(out: &Path) -> Vec<(String, Vec<String>, Vec<String>)> {
    ALL_TABLES
        .iter()
        .map(|t| {
            let files = data_files(out, t)
                .into_iter()
                .map(|(p, _)| p.strip_prefix(out).unwrap().display().to_string())
                .collect();
            (t.to_string(), files, read_table(out, t))
        })
        .collect()
}

fn full_refresh_of(dir: &Path, inputs: &Path) -> Vec<(String, Vec<String>, Vec<String>)> {
    let out = dir.join("full");
    let _ = std::fs::remove_dir_all(&out);
    run(&write_job(dir, inputs, &out), &["--full-refresh"]);
    snapshot(&out)
}

#[test]
fn incremental_runs_equal_one_full_refresh() {
    for seed in 0..4u64 {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let dir = tempfile::tempdir().unwrap();
        let inputs = dir.path().join("in");
        let out = dir.path().join("inc");
        let job = write_job(dir.path(), &inputs, &out);
        let mut files = sample_files();
        files.shuffle(&mut rng);
        // Both globs need a match before the first run.
        let first_event = files.iter().position(|f| f.starts_with("events/")).unwrap();
        let first_group = files.iter().position(|f| f.starts_with("groups/")).unwrap();
        copy_in(&inputs, &files[first_event]);
        copy_in(&inputs, &files[first_group]);
        let mut rest: Vec<String> = files
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != first_event && *i != first_group)
            .map(|(_, f)| f.clone())
            .collect();
        run(&job, &[]);
        while !rest.is_empty() {
            let n = rng.random_range(1..=3).min(rest.len());
            for f in rest.drain(..n) {
                copy_in(&inputs, &f);
            }
            // Now and then an input changes in place: truncated, then restored later.
            if rng.random_bool(0.3) {
                let victim = inputs.join("groups/ops.ndjson");
                if victim.exists() {
                    let text = std::fs::read_to_string(&victim).unwrap();
                    let half: String = text.lines().take(10).map(|l| format!("{l}\n")).collect();
                    std::fs::write(&victim, half).unwrap();
                    run(&job, &[]);
                    copy_in(&inputs, "groups/ops.ndjson");
                }
            }
            run(&job, &[]);
            assert_eq!(snapshot(&out), full_refresh_of(dir.path(), &inputs), "seed {seed}");
        }
        // Nothing new: a no-op that says so.
        let o = run(&job, &[]);
        assert!(o.stdout.contains("up to date"), "{}", o.stdout);
    }
}

/// A backfill leaves a new input's other dates to the next incremental run, which must
/// still see that input as new.
#[test]
fn a_backfill_leaves_new_inputs_to_the_next_run() {
    let f = fixture(|name| name != "events/2024-02-12.ndjson");
    run(&f.job, &[]);
    copy_in(&f.inputs, "events/2024-02-12.ndjson");
    let o = run(&f.job, &["--from", "2024-01-10", "--to", "2024-01-10"]);
    assert!(!o.stdout.contains("up to date"), "{}", o.stdout);
    let o = run(&f.job, &[]);
    assert!(o.stdout.contains("1 new"), "{}", o.stdout);
    assert_eq!(snapshot(&f.out), full_refresh_of(f.dir.path(), &f.inputs));
}

/// A backfill after the job changed brings only its own dates up to the new job: the next
/// incremental run must still see the job as changed and bring the rest up to date.
#[test]
fn a_backfill_after_a_job_change_leaves_the_rest_to_the_next_run() {
    let f = fixture(|_| true);
    run(&f.job, &[]);
    let text = job_text(&f.inputs, &f.out).replace(
        "[events]",
        "exclude_events = [\"$groupidentify\", \"Invite Teammate\"]\n[events]",
    );
    std::fs::write(&f.job, &text).unwrap();
    let changed = |out: &Path| -> Vec<String> {
        read_table(out, "group_event_daily")
            .into_iter()
            .filter(|r| r.contains("event=Invite Teammate"))
            .collect()
    };
    assert!(
        !changed(&f.out).is_empty(),
        "the sample has the event the job now excludes"
    );
    let o = run(&f.job, &["--from", "2024-01-10", "--to", "2024-01-10"]);
    assert!(!o.stdout.contains("up to date"), "{}", o.stdout);
    let o = run(&f.job, &[]);
    assert!(!o.stdout.contains("up to date"), "{}", o.stdout);
    assert_eq!(changed(&f.out), Vec::<String>::new());

    let full = f.dir.path().join("full");
    let p = f.dir.path().join("full.toml");
    std::fs::write(&p, text.replace(&*f.out.to_string_lossy(), &full.to_string_lossy())).unwrap();
    run(&p, &["--full-refresh"]);
    assert_eq!(snapshot(&f.out), snapshot(&full));
    let o = run(&f.job, &[]);
    assert!(o.stdout.contains("up to date"), "{}", o.stdout);
}

#[test]
fn removed_input_removes_its_partitions() {
    let Fixture { dir, inputs, out, job } = fixture(|_| true);
    run(&job, &[]);
    std::fs::remove_file(inputs.join("events/2024-02-26.csv")).unwrap();
    let o = run(&job, &[]);
    assert!(o.stdout.contains("1 removed since the last run"), "{}", o.stdout);
    assert_eq!(snapshot(&out), full_refresh_of(dir.path(), &inputs));
    assert!(!out.join("group_daily/date=2024-02-28").exists());
}

#[test]
fn a_run_without_group_event_rows_removes_every_old_partition_of_that_table() {
    let Fixture { dir, inputs, out, job } = fixture(|_| true);
    run(&job, &[]);
    assert!(out.join("group_event_daily").exists());
    // Every event file goes; what is left attributes nothing (no group id).
    for e in std::fs::read_dir(inputs.join("events")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    std::fs::write(
        inputs.join("events/ungrouped.ndjson"),
        r#"{"event":"Sign Up","properties":{"time":1705000000,"distinct_id":"u1","$insert_id":"x1"}}"#,
    )
    .unwrap();
    let o = run(&job, &[]);
    assert!(o.stdout.contains("group_event_daily            0 rows"), "{}", o.stdout);
    assert_eq!(snapshot(&out), full_refresh_of(dir.path(), &inputs));
    let left = std::fs::read_dir(out.join("group_event_daily")).map_or(0, |d| d.count());
    assert_eq!(left, 0, "stale group_event_daily partitions left");
}

#[test]
fn crash_during_commit_is_finished_by_the_next_run() {
    for crash_after in [0usize, 1, 7, 60] {
        let Fixture { dir, inputs, out, job } = fixture(|f| !f.contains("2024-02"));
        let files = sample_files();
        run(&job, &[]);
        for f in &files {
            copy_in(&inputs, f);
        }
        let n = crash_after.to_string();
        let o = groupetl_env(
            &repo(),
            &["run", job.to_str().unwrap()],
            &[("GROUPETL_TEST_CRASH_AFTER_OPS", n.as_str())],
        );
        assert_ne!(o.code, 0, "the run should have crashed");
        // Every partition on disk is a complete, readable file (old or new).
        for t in ALL_TABLES {
            read_table(&out, t);
        }
        assert!(out.join("_state/journal.json").exists());
        let o = run(&job, &[]);
        assert!(
            o.stdout.contains("finished the commit of interrupted run"),
            "{}",
            o.stdout
        );
        assert_eq!(
            snapshot(&out),
            full_refresh_of(dir.path(), &inputs),
            "crash after {crash_after}"
        );
        assert!(!out.join("_staging").exists());
    }
}

#[test]
fn kill_at_random_points_never_corrupts_the_output() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let Fixture { dir, inputs, out, job } = fixture(|f| !f.contains("2024-02"));
    let files = sample_files();
    run(&job, &[]);
    let before = snapshot(&out);
    for f in &files {
        copy_in(&inputs, f);
    }
    for _ in 0..6 {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_groupetl"))
            .args(["run", job.to_str().unwrap(), "--full-refresh"])
            .current_dir(repo())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(rng.random_range(0..120)));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // Readable at every point; unchanged unless the run reached its commit point.
        let now = snapshot(&out);
        if !out.join("_state/journal.json").exists() && now != before {
            // The run committed completely before the kill landed.
            assert_eq!(now, full_refresh_of(dir.path(), &inputs));
        }
    }
    run(&job, &[]);
    assert_eq!(snapshot(&out), full_refresh_of(dir.path(), &inputs));
}

#[test]
fn second_concurrent_run_fails_fast() {
    let Fixture {
        dir: _dir, out, job, ..
    } = fixture(|_| true);
    std::fs::create_dir_all(out.join("_state")).unwrap();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    // A live holder: this test process.
    let holder = serde_json::json!({"run_id": "other", "pid": std::process::id(), "host": host.trim(),
        "started_at": chrono::Utc::now().timestamp()});
    std::fs::write(out.join("_state/lock"), holder.to_string()).unwrap();
    let o = groupetl(&repo(), &["run", job.to_str().unwrap()]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("another run of this job is in progress (run other"),
        "{}",
        o.stderr
    );
    assert!(!out.join("group_daily").exists());
    // A dead holder's lock is taken over.
    let dead = serde_json::json!({"run_id": "dead", "pid": 999_999_999u32, "host": host.trim(),
        "started_at": chrono::Utc::now().timestamp()});
    std::fs::write(out.join("_state/lock"), dead.to_string()).unwrap();
    run(&job, &[]);
    assert!(!out.join("_state/lock").exists(), "lock released after the run");
}

#[test]
fn plan_says_what_and_why_and_writes_nothing() {
    let Fixture {
        dir: _dir,
        inputs,
        out,
        job,
    } = fixture(|f| !f.contains("2024-02-26"));
    let o = groupetl(&repo(), &["plan", job.to_str().unwrap()]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout.contains("(first run)") || o.stdout.contains(": first run"),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("write group_daily/date=2024-01-02 ("), "{}", o.stdout);
    assert!(!out.exists(), "plan wrote something");

    run(&job, &[]);
    let o = groupetl(&repo(), &["plan", job.to_str().unwrap()]);
    assert!(o.stdout.contains("nothing to do"), "{}", o.stdout);

    // A partition deleted by hand: plan and run agree that it must be rewritten.
    std::fs::remove_dir_all(out.join("group_daily/date=2024-01-02")).unwrap();
    let o = groupetl(&repo(), &["plan", job.to_str().unwrap()]);
    assert!(
        o.stdout.contains("write group_daily/date=2024-01-02 (") && o.stdout.contains("file missing from the output"),
        "{}",
        o.stdout
    );
    run(&job, &[]);
    assert!(out.join("group_daily/date=2024-01-02/part-0.parquet").exists());
    let o = groupetl(&repo(), &["plan", job.to_str().unwrap()]);
    assert!(o.stdout.contains("nothing to do"), "{}", o.stdout);

    copy_in(&inputs, "events/2024-02-26.csv");
    let o = groupetl(&repo(), &["plan", job.to_str().unwrap()]);
    let csv_line = o.stdout.lines().find(|l| l.contains("2024-02-26.csv")).unwrap();
    assert!(csv_line.ends_with(": new"), "{csv_line}");
    assert!(o.stdout.contains("write group_daily/date=2024-02-27 ("), "{}", o.stdout);
    assert!(o.stdout.contains("new partition"), "{}", o.stdout);
    // Activity windows reach past the new file's own dates only where content changes.
    assert!(!o.stdout.contains("write group_daily/date=2024-01-02 "), "{}", o.stdout);

    let o = groupetl(
        &repo(),
        &[
            "plan",
            job.to_str().unwrap(),
            "--from",
            "2024-01-05",
            "--to",
            "2024-01-06",
        ],
    );
    assert!(
        o.stdout
            .contains("write active_groups/date=2024-01-05 (1 rows): in the backfill range"),
        "{}",
        o.stdout
    );
    assert!(!o.stdout.contains("date=2024-01-07"), "{}", o.stdout);
}

/// Every shipped job with its output (and spill directory) under `dir`.
fn shipped_jobs(dir: &Path) -> Vec<groupetl::job::Job> {
    ["quickstart", "posthog", "segment", "table"]
        .iter()
        .map(|name| {
            let path = repo().join("jobs").join(format!("{name}.toml"));
            let text = std::fs::read_to_string(&path).unwrap();
            let out = dir.join(name);
            let text = text.replace(&format!("\"out/{name}\""), &format!("{:?}", out.to_str().unwrap()));
            assert!(text.contains(out.to_str().unwrap()), "{name}: output path not found");
            groupetl::job::Job::parse(&path, &text).unwrap()
        })
        .collect()
}

#[test]
fn spilling_every_batch_to_disk_gives_the_same_tables() {
    // A zero budget spills after every input file: day buckets, id buckets (PostHog uuid,
    // Segment messageId) and the survivors moved from one to the other all go through files.
    let dir = tempfile::tempdir().unwrap();
    let spill_dir = dir.path().join("spill");
    let mut stats = Vec::new();
    for (memory, spill) in [
        (dir.path().join("memory"), None),
        (dir.path().join("disk"), Some(spill_dir.clone())),
    ] {
        for job in shipped_jobs(&memory) {
            let opts = groupetl::runner::RunOptions {
                spill: groupetl::attribute::SpillOptions {
                    dir: spill.clone(),
                    memory_budget: if spill.is_some() { 0 } else { usize::MAX },
                },
                ..Default::default()
            };
            let summary = groupetl::runner::run(&job, &opts).unwrap();
            assert_eq!(summary.attribution.spilled_bytes > 0, spill.is_some(), "{}", job.name);
            let a = &summary.attribution;
            stats.push((
                job.name.clone(),
                a.events,
                a.duplicates,
                a.excluded,
                a.attributed,
                a.hits,
            ));
        }
    }
    // A zero budget also has every day decoded twice (dedup keys, then the survivors'
    // hits) where the unbounded one decodes it once and cuts the dropped copies out: the
    // counts agree too.
    let (in_memory, spilled) = stats.split_at(stats.len() / 2);
    assert_eq!(in_memory, spilled);
    assert!(in_memory.iter().any(|s| s.2 > 0 && s.3 > 0), "{in_memory:?}");
    // The spill files are removed with their directory.
    assert_eq!(std::fs::read_dir(&spill_dir).unwrap().count(), 0);
    for name in ["quickstart", "posthog", "segment", "table"] {
        for table in ALL_TABLES {
            let a = read_table(&dir.path().join("memory").join(name), table);
            let b = read_table(&dir.path().join("disk").join(name), table);
            assert_eq!(a, b, "{name}/{table}");
        }
    }
}

#[test]
fn an_id_resent_on_another_day_counts_once_on_its_latest_copy() {
    // PostHog dedups by `uuid` alone, and a re-sent event may carry another timestamp: its
    // copies land in different days, which is why id-keyed events are deduplicated by id
    // hash before they are split by day. Checked in memory and spilling after every file.
    let dir = tempfile::tempdir().unwrap();
    let ev = |uuid: &str, ts: &str, created: &str, group: &str| {
        serde_json::json!({"uuid": uuid, "event": "Click", "distinct_id": "u1", "timestamp": ts,
            "created_at": created, "properties": {"$groups": {"company": group}}})
        .to_string()
    };
    let input = dir.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    let a = [
        ev("x", "2024-01-01T10:00:00Z", "2024-01-01T10:00:01Z", "c1"),
        ev("y", "2024-01-02T10:00:00Z", "2024-01-05T00:00:00Z", "c1"),
    ];
    // `x` is re-sent later (it wins, on 01-02); `y`'s second copy is older (it loses).
    let b = [
        ev("x", "2024-01-02T10:00:00Z", "2024-01-03T00:00:00Z", "c2"),
        ev("y", "2024-01-03T10:00:00Z", "2024-01-04T00:00:00Z", "c2"),
    ];
    std::fs::write(input.join("a.ndjson"), a.join("\n")).unwrap();
    std::fs::write(input.join("b.ndjson"), b.join("\n")).unwrap();
    for (name, budget) in [("memory", usize::MAX), ("disk", 0)] {
        let out = dir.path().join(name);
        let text = format!(
            "version = 1\nname = \"resent\"\n[events]\nformat = \"posthog\"\npaths = [{:?}]\n\
             [[group_keys]]\nkey = \"company\"\n[output]\npath = {:?}\n",
            input.join("*.ndjson").to_str().unwrap(),
            out.to_str().unwrap()
        );
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        let job = groupetl::job::Job::load(&path).unwrap();
        let opts = groupetl::runner::RunOptions {
            spill: groupetl::attribute::SpillOptions {
                dir: Some(dir.path().join("spill")),
                memory_budget: budget,
            },
            ..Default::default()
        };
        let summary = groupetl::runner::run(&job, &opts).unwrap();
        assert_eq!(summary.attribution.duplicates, 2, "{name}");
        assert_eq!(
            read_table(&out, "group_daily"),
            [
                "date=2024-01-02 | group_key=company | group_id=c1 | events=1 | users=1",
                "date=2024-01-02 | group_key=company | group_id=c2 | events=1 | users=1",
            ],
            "{name}"
        );
    }
}
