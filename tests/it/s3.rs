//! S3 inputs and outputs against a real S3 server that the tests start themselves: s3s-fs
//! (the S3 protocol over a temp folder) served by hyper on 127.0.0.1, behind a small layer
//! that can answer 503 to the next N requests of a method and logs every request.
//!
//! Runs go through the `groupetl` binary with the `AWS_*` environment removed and the
//! shared config files pointed at nothing, so the machine's own settings never leak in.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use groupetl::job::S3Options;
use groupetl::storage::{Bucket, Stores};

use crate::common::{repo, Output};
use crate::golden::quickstart_job;

const BUCKET: &str = "groupetl-test";
const ACCESS_KEY: &str = "AKIAGROUPETLTEST";
const SECRET: &str = "groupetl/test/secret+key";

/// Faults to inject, and what the server saw.
#[derive(Default)]
struct Faults {
    /// Answer 503 SlowDown to this many of the next GET requests (LIST is a GET too).
    get: AtomicUsize,
    /// ... and to this many of the next PUT requests.
    put: AtomicUsize,
    /// 503s actually sent.
    sent: AtomicUsize,
    /// `METHOD /path?query range` of every request.
    log: Mutex<Vec<String>>,
}

impl Faults {
    fn take(counter: &AtomicUsize) -> bool {
        counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    fn should_fail(&self, method: &hyper::Method) -> bool {
        let hit = match *method {
            hyper::Method::GET => Faults::take(&self.get),
            hyper::Method::PUT => Faults::take(&self.put),
            _ => false,
        };
        if hit {
            self.sent.fetch_add(1, Ordering::SeqCst);
        }
        hit
    }
}

/// An S3 server on 127.0.0.1 for one test; stopped on drop.
struct Server {
    addr: SocketAddr,
    _dir: tempfile::TempDir,
    faults: Arc<Faults>,
    rt: Option<tokio::runtime::Runtime>,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(BUCKET)).unwrap();
        let fs = s3s_fs::FileSystem::new(dir.path()).unwrap();
        let mut builder = s3s::service::S3ServiceBuilder::new(fs);
        builder.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET));
        let s3 = builder.build();
        let faults = Arc::new(Faults::default());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let f = Arc::clone(&faults);
        rt.spawn(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    continue;
                };
                let (s3, f) = (s3.clone(), Arc::clone(&f));
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let (s3, f) = (s3.clone(), Arc::clone(&f));
                        async move {
                            let range = req
                                .headers()
                                .get("range")
                                .map(|v| v.to_str().unwrap_or("").to_string())
                                .unwrap_or_default();
                            f.log
                                .lock()
                                .unwrap()
                                .push(format!("{} {} {range}", req.method(), req.uri()));
                            if f.should_fail(req.method()) {
                                let body = "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code></Error>";
                                return Ok(hyper::Response::builder()
                                    .status(503)
                                    .body(s3s::Body::from(body.to_string()))
                                    .unwrap());
                            }
                            hyper::service::Service::call(&s3, req).await
                        }
                    });
                    let io = hyper_util::rt::TokioIo::new(socket);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .await;
                });
            }
        });
        Server {
            addr,
            _dir: dir,
            faults,
            rt: Some(rt),
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client of the test bucket, through groupetl's own storage layer.
    fn bucket(&self) -> Bucket {
        Stores::new(&s3_options(&self.endpoint(), SECRET))
            .bucket(BUCKET)
            .unwrap()
    }

    /// Uploads `sample_data/mixpanel` to `s3://BUCKET/in/mixpanel/`.
    fn upload_sample(&self) {
        let b = self.bucket();
        for sub in ["events", "groups"] {
            for e in std::fs::read_dir(repo().join("sample_data/mixpanel").join(sub)).unwrap() {
                let e = e.unwrap();
                let key = format!("in/mixpanel/{sub}/{}", e.file_name().to_string_lossy());
                b.put_file(&key, &e.path()).unwrap();
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

fn s3_options(endpoint: &str, secret: &str) -> S3Options {
    S3Options {
        endpoint: Some(endpoint.to_string()),
        region: Some("us-east-1".into()),
        allow_http: Some(true),
        access_key_id: Some(ACCESS_KEY.into()),
        secret_access_key: Some(secret.into()),
        ..Default::default()
    }
}

/// The quickstart job reading from `s3://{bucket}/in/mixpanel` and writing to
/// `s3://{bucket}/{out}`.
fn s3_job(endpoint: &str, secret: &str, bucket: &str, out: &str) -> String {
    let text = std::fs::read_to_string(repo().join("jobs/quickstart.toml")).unwrap();
    let mut job = text.clone();
    for (from, to) in [
        (
            "\"sample_data/mixpanel/events/*\"",
            format!("\"s3://{bucket}/in/mixpanel/events/*\""),
        ),
        (
            "\"sample_data/mixpanel/groups/*.ndjson\"",
            format!("\"s3://{bucket}/in/mixpanel/groups/*.ndjson\""),
        ),
        ("\"out/quickstart\"", format!("{out:?}")),
    ] {
        assert!(job.contains(from), "quickstart.toml no longer has {from}");
        job = job.replace(from, &to);
    }
    job + &format!(
        "\n[s3]\nendpoint = \"{endpoint}\"\nregion = \"us-east-1\"\nallow_http = true\n\
         access_key_id = \"{ACCESS_KEY}\"\nsecret_access_key = \"{secret}\"\n"
    )
}

/// Runs the binary with a clean AWS environment.
fn groupetl_clean(args: &[&str], env: &[(&str, &str)]) -> (Output, Duration) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_groupetl"));
    cmd.args(args).current_dir(repo());
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("AWS_CONFIG_FILE", "/nonexistent/groupetl-test/config")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/groupetl-test/credentials");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let t = Instant::now();
    let out = cmd.output().expect("run groupetl");
    let took = t.elapsed();
    (
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        },
        took,
    )
}

fn write_job(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_str().unwrap().to_string()
}

fn is_data(rel: &str) -> bool {
    !rel.split('/').any(|c| c.starts_with(['_', '.']))
}

/// Every data file of a local output, by path relative to it.
fn local_files(out: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for e in walk_files(out) {
        let rel = e.strip_prefix(out).unwrap().to_string_lossy().replace('\\', "/");
        if is_data(&rel) {
            files.insert(rel, std::fs::read(&e).unwrap());
        }
    }
    files
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk_files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// Every data object below `prefix`, by key relative to it.
fn s3_files(b: &Bucket, prefix: &str) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    for m in b.list(prefix).unwrap() {
        let key = m.location.as_ref().to_string();
        let rel = key[prefix.len() + 1..].to_string();
        if is_data(&rel) {
            files.insert(rel, b.read(&key).unwrap().unwrap());
        }
    }
    files
}

/// Every object below `prefix` by relative key, with its size and modification time:
/// enough to tell that nothing was rewritten.
fn s3_listing(b: &Bucket, prefix: &str) -> BTreeMap<String, (u64, i64)> {
    b.list(prefix)
        .unwrap()
        .into_iter()
        .map(|m| {
            let rel = m.location.as_ref()[prefix.len() + 1..].to_string();
            (rel, (m.size, m.last_modified.timestamp_nanos_opt().unwrap_or_default()))
        })
        .collect()
}

/// The quickstart run on the local sample, as files (run once per test binary).
fn local_quickstart() -> &'static BTreeMap<String, Vec<u8>> {
    static FILES: std::sync::OnceLock<BTreeMap<String, Vec<u8>>> = std::sync::OnceLock::new();
    FILES.get_or_init(local_quickstart_run)
}

fn local_quickstart_run() -> BTreeMap<String, Vec<u8>> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let job = write_job(dir.path(), "local.toml", &quickstart_job(&out, "parquet"));
    let (o, _) = groupetl_clean(&["run", &job], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    local_files(&out)
}

fn one_line_error(o: &Output) -> &str {
    let lines: Vec<&str> = o.stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got:\n{}", o.stderr);
    assert!(lines[0].starts_with("error: "), "{}", o.stderr);
    lines[0]
}

#[test]
fn quickstart_from_s3_to_s3_matches_the_local_run_byte_for_byte() {
    let server = Server::start();
    server.upload_sample();
    let dir = tempfile::tempdir().unwrap();
    let job = write_job(
        dir.path(),
        "s3.toml",
        &s3_job(&server.endpoint(), SECRET, BUCKET, &format!("s3://{BUCKET}/out/qs")),
    );
    let (o, took) = groupetl_clean(&["run", &job], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    eprintln!("S3 → S3 quickstart run: {took:?}");

    let b = server.bucket();
    let want = local_quickstart();
    let got = s3_files(&b, "out/qs");
    assert!(want.len() > 100, "{} files", want.len());
    assert_eq!(got.keys().collect::<Vec<_>>(), want.keys().collect::<Vec<_>>());
    for (k, bytes) in want {
        assert!(got[k] == *bytes, "{k} differs between the local and the S3 run");
    }
    // Run state and rejects live under the prefix too; nothing is left staged or locked.
    let all = s3_listing(&b, "out/qs");
    assert!(all.contains_key("_state/state.json"));
    assert!(!all
        .keys()
        .any(|k| k.starts_with("_staging/") || k == "_state/lock" || k == "_state/journal.json"));
    let rejects: Vec<&String> = all.keys().filter(|k| k.starts_with("_rejects/")).collect();
    assert_eq!(rejects.len(), 1, "{rejects:?}");
    let want_rejects = std::fs::read_to_string(repo().join("tests/golden/quickstart/rejects.count")).unwrap();
    let rejects = b.read(&format!("out/qs/{}", rejects[0])).unwrap().unwrap();
    assert_eq!(
        rejects.iter().filter(|&&c| c == b'\n').count().to_string(),
        want_rejects.trim()
    );
    let state = b.read("out/qs/_state/state.json").unwrap().unwrap();
    let state: serde_json::Value = serde_json::from_slice(&state).unwrap();
    assert!(state["inputs"][0]["path"]
        .as_str()
        .unwrap()
        .starts_with(&format!("s3://{BUCKET}/in/mixpanel/events/")));

    // Inputs were read by ranged GETs, never in one piece.
    let log = server.faults.log.lock().unwrap().clone();
    let parquet_gets: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("GET ") && l.contains("2024-02-19.parquet"))
        .collect();
    assert!(!parquet_gets.is_empty());
    assert!(parquet_gets.iter().all(|l| l.contains("bytes=")), "{parquet_gets:?}");

    // The second run finds nothing new and writes nothing.
    let (o, _) = groupetl_clean(&["run", &job], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("up to date"), "{}", o.stdout);
    assert_eq!(s3_listing(&b, "out/qs"), all);

    // `plan` and `validate` read the S3 state and probe the prefixes.
    let (o, took) = groupetl_clean(&["plan", &job], &[]);
    eprintln!("plan: {took:?}");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.contains("nothing to do"), "{}", o.stdout);
    let (o, took) = groupetl_clean(&["validate", &job], &[]);
    assert_eq!(o.code, 0, "{}\n{}", o.stdout, o.stderr);
    assert!(o.stdout.contains("✓ S3: endpoint http://127.0.0.1:"), "{}", o.stdout);
    assert!(
        o.stdout.contains("static credentials from the job file's [s3] table"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout
            .contains(&format!("✓ events: s3://{BUCKET}/in/mixpanel/events is reachable")),
        "{}",
        o.stdout
    );
    assert!(o.stdout.contains("✓ events: 9 files"), "{}", o.stdout);
    assert!(
        o.stdout
            .contains(&format!("✓ output: s3://{BUCKET}/out/qs is reachable")),
        "{}",
        o.stdout
    );
    assert!(!o.stdout.contains(SECRET) && !o.stderr.contains(SECRET));
    eprintln!("validate: {took:?}");
}

#[test]
fn wrong_secret_fails_in_one_line_within_seconds() {
    let server = Server::start();
    server.upload_sample();
    let dir = tempfile::tempdir().unwrap();
    let out = format!("s3://{BUCKET}/out/denied");
    let job = write_job(
        dir.path(),
        "bad.toml",
        &s3_job(&server.endpoint(), "not-the-secret", BUCKET, &out),
    );
    let (o, took) = groupetl_clean(&["run", &job], &[]);
    eprintln!("wrong secret: {took:?}: {}", o.stderr.trim());
    assert_eq!(o.code, 1, "{}", o.stderr);
    let line = one_line_error(&o);
    assert!(line.contains("S3 refused LIST"), "{line}");
    assert!(line.contains("SignatureDoesNotMatch"), "{line}");
    assert!(line.contains(&server.endpoint()), "{line}");
    assert!(!o.stderr.contains("not-the-secret"));
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(server.bucket().list("out").unwrap().is_empty());

    let (o, took) = groupetl_clean(&["validate", &job], &[]);
    assert_eq!(o.code, 1);
    assert!(o.stdout.contains("✗ events: S3 refused LIST"), "{}", o.stdout);
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn injected_503s_are_retried_and_the_run_succeeds() {
    let server = Server::start();
    server.upload_sample();
    server.faults.get.store(3, Ordering::SeqCst);
    server.faults.put.store(2, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let job = write_job(
        dir.path(),
        "s3.toml",
        &s3_job(&server.endpoint(), SECRET, BUCKET, &format!("s3://{BUCKET}/out/flaky")),
    );
    let (o, took) = groupetl_clean(&["run", &job], &[]);
    eprintln!("run with 5 injected 503s: {took:?}");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(server.faults.sent.load(Ordering::SeqCst), 5, "every fault was hit");
    assert_eq!(&s3_files(&server.bucket(), "out/flaky"), local_quickstart());

    // Past the retries, the failure names the cause.
    server.faults.get.store(100, Ordering::SeqCst);
    let (o, took) = groupetl_clean(&["run", &job], &[("GROUPETL_S3_MAX_RETRIES", "1")]);
    assert_eq!(o.code, 1);
    let line = one_line_error(&o);
    assert!(line.contains("SlowDown (HTTP 503) (retries exhausted)"), "{line}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn dead_endpoint_fails_in_seconds() {
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let job = write_job(
        dir.path(),
        "dead.toml",
        &s3_job(&endpoint, SECRET, BUCKET, &format!("s3://{BUCKET}/out")),
    );
    let (o, took) = groupetl_clean(&["run", &job], &[]);
    eprintln!("dead endpoint, run: {took:?}: {}", o.stderr.trim());
    assert_eq!(o.code, 1);
    let line = one_line_error(&o);
    assert!(
        line.contains(&format!("cannot connect to S3 endpoint {endpoint}")),
        "{line}"
    );
    assert!(line.contains(BUCKET), "{line}");
    assert!(took < Duration::from_secs(15), "{took:?}");

    let (o, took) = groupetl_clean(&["validate", &job], &[]);
    eprintln!("dead endpoint, validate: {took:?}");
    assert_eq!(o.code, 1);
    assert!(
        o.stdout.contains("✗ events: cannot connect to S3 endpoint"),
        "{}",
        o.stdout
    );
    assert!(
        o.stdout.contains("✗ output: cannot connect to S3 endpoint"),
        "{}",
        o.stdout
    );
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn missing_bucket_is_named() {
    let server = Server::start();
    server.upload_sample();
    let dir = tempfile::tempdir().unwrap();
    // Missing input bucket.
    let job = write_job(
        dir.path(),
        "nobucket.toml",
        &s3_job(
            &server.endpoint(),
            SECRET,
            "no-such-bucket",
            &format!("s3://{BUCKET}/out/x"),
        ),
    );
    let (o, took) = groupetl_clean(&["run", &job], &[]);
    assert_eq!(o.code, 1);
    let line = one_line_error(&o);
    assert!(
        line.contains(&format!(
            "S3 bucket `no-such-bucket` does not exist at {}",
            server.endpoint()
        )),
        "{line}"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    // Missing output bucket: fails before writing anything.
    let job = write_job(
        dir.path(),
        "nooutput.toml",
        &s3_job(&server.endpoint(), SECRET, BUCKET, "s3://no-output-bucket/out"),
    );
    let (o, _) = groupetl_clean(&["run", &job], &[]);
    assert_eq!(o.code, 1);
    let line = one_line_error(&o);
    assert!(line.contains("S3 bucket `no-output-bucket` does not exist"), "{line}");
    let (o, _) = groupetl_clean(&["validate", &job], &[]);
    assert_eq!(o.code, 1);
    assert!(
        o.stdout
            .contains("✗ output: S3 bucket `no-output-bucket` does not exist"),
        "{}",
        o.stdout
    );
}

#[test]
fn lock_on_s3_is_exclusive_and_a_dead_holder_is_taken_over() {
    let server = Server::start();
    server.upload_sample();
    let b = server.bucket();
    let dir = tempfile::tempdir().unwrap();
    let job = write_job(
        dir.path(),
        "s3.toml",
        &s3_job(&server.endpoint(), SECRET, BUCKET, &format!("s3://{BUCKET}/out/locked")),
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let live = serde_json::json!({"run_id": "other", "pid": std::process::id(), "host": host.trim(),
        "started_at": chrono::Utc::now().timestamp()});
    b.put("out/locked/_state/lock", live.to_string().into_bytes()).unwrap();
    let (o, _) = groupetl_clean(&["run", &job], &[]);
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("another run of this job is in progress (run other"),
        "{}",
        o.stderr
    );
    assert!(
        o.stderr
            .contains(&format!("remove `s3://{BUCKET}/out/locked/_state/lock`")),
        "{}",
        o.stderr
    );
    assert!(b.head("out/locked/_state/state.json").unwrap().is_none());

    let dead = serde_json::json!({"run_id": "dead", "pid": 999_999_999u32, "host": host.trim(),
        "started_at": chrono::Utc::now().timestamp()});
    b.put("out/locked/_state/lock", dead.to_string().into_bytes()).unwrap();
    let (o, _) = groupetl_clean(&["run", &job], &[]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(b.head("out/locked/_state/lock").unwrap().is_none(), "lock released");
    // The conditional create itself: a second create of the same key is refused.
    assert!(b.put_create("out/locked/_state/x", b"1".to_vec()).unwrap());
    assert!(!b.put_create("out/locked/_state/x", b"2".to_vec()).unwrap());
}

#[test]
fn crash_during_an_s3_commit_is_finished_by_the_next_run() {
    let server = Server::start();
    server.upload_sample();
    let b = server.bucket();
    let dir = tempfile::tempdir().unwrap();
    let job = write_job(
        dir.path(),
        "s3.toml",
        &s3_job(&server.endpoint(), SECRET, BUCKET, &format!("s3://{BUCKET}/out/crash")),
    );
    let (o, took) = groupetl_clean(&["run", &job], &[("GROUPETL_TEST_CRASH_AFTER_OPS", "40")]);
    eprintln!("crashed run: {took:?}");
    assert_ne!(o.code, 0, "the run should have crashed");
    assert!(b.head("out/crash/_state/journal.json").unwrap().is_some());
    let (o, took) = groupetl_clean(&["run", &job], &[]);
    eprintln!("recovering run: {took:?}");
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout.contains("finished the commit of interrupted run"),
        "{}",
        o.stdout
    );
    let all = s3_listing(&b, "out/crash");
    assert!(!all
        .keys()
        .any(|k| k.starts_with("_staging/") || k.ends_with("journal.json")));
    assert_eq!(&s3_files(&b, "out/crash"), local_quickstart());
}

#[test]
fn large_objects_use_multipart_upload_and_chunked_reads() {
    let server = Server::start();
    let b = server.bucket();
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("big.bin");
    // Just over two read chunks and one multipart part, not a multiple of either.
    let data: Vec<u8> = (0..(17u32 << 20) + 12_345)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    std::fs::write(&src, &data).unwrap();
    b.put_file("big/big.bin", &src).unwrap();
    let log = server.faults.log.lock().unwrap().clone();
    assert!(
        log.iter().any(|l| l.starts_with("POST") && l.contains("uploads")),
        "{log:?}"
    );
    let meta = b.head("big/big.bin").unwrap().unwrap();
    assert_eq!(meta.size, data.len() as u64);
    let mut back = Vec::new();
    std::io::Read::read_to_end(&mut b.reader("big/big.bin", meta.size, meta.e_tag.clone()), &mut back).unwrap();
    assert!(back == data, "round trip differs");
    let ranged = server
        .faults
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.starts_with("GET /groupetl-test/big/big.bin"))
        .count();
    assert_eq!(ranged, 3, "three 8 MiB chunks");
}

#[test]
fn s3_globs_match_like_local_ones() {
    use groupetl::sources::{list_inputs, SourceError};
    let server = Server::start();
    let b = server.bucket();
    for key in [
        "g/b/2.ndjson",
        "g/a/1.ndjson",
        "g/a/x/3.ndjson",
        "g/a/skip.csv",
        "g/a/10.ndjson",
    ] {
        b.put(key, b"{}\n".to_vec()).unwrap();
    }
    let stores = Stores::new(&s3_options(&server.endpoint(), SECRET));
    let names = |pat: &str| -> Vec<String> {
        list_inputs(&[format!("s3://{BUCKET}/{pat}")], &stores)
            .unwrap()
            .into_iter()
            .map(|f| {
                assert_eq!(f.size, 3);
                f.path[format!("s3://{BUCKET}/g/").len()..].to_string()
            })
            .collect()
    };
    assert_eq!(names("g/*/*.ndjson"), ["a/1.ndjson", "a/10.ndjson", "b/2.ndjson"]);
    assert_eq!(
        names("g/**/*.ndjson"),
        ["a/1.ndjson", "a/10.ndjson", "a/x/3.ndjson", "b/2.ndjson"]
    );
    assert_eq!(names("g/a/?.ndjson"), ["a/1.ndjson"]);
    assert_eq!(names("g/a/*"), ["a/1.ndjson", "a/10.ndjson", "a/skip.csv"]);
    assert_eq!(names("g/a/skip.csv"), ["a/skip.csv"]);
    let err = |pat: &str| list_inputs(&[format!("s3://{BUCKET}/{pat}")], &stores).unwrap_err();
    assert!(matches!(err("g/none/*.ndjson"), SourceError::NoMatch { .. }));
    assert!(matches!(err("g/a/missing.ndjson"), SourceError::NoMatch { .. }));
    // (A literal key naming a folder is refused with "is a prefix (folder)" on S3; s3s-fs
    // answers HEAD on a folder with a 500 instead of a 404, so that case is not run here.)
}
