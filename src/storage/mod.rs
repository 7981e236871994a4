//! Where inputs and outputs live: a local folder, or an `s3://bucket/prefix` reached through
//! an `Arc<dyn ObjectStore>` (object_store's AWS client, S3-compatible servers included).
//!
//! Local paths keep their fast path on `std::fs`: nothing local goes through object_store.
//! object_store is async; the rest of groupetl is not. This module owns one small tokio
//! runtime and every S3 call is a [`block_on`] at its boundary, so callers (rayon workers
//! reading inputs, the committing main thread) stay synchronous.
//!
//! Settings come from the job's `[s3]` table, the `AWS_*` environment and `~/.aws` profiles
//! ([`config`]); every key, timeout and size is named in [`constants`]. Errors are one line
//! naming the bucket, key and endpoint, and say which of the usual causes it is (missing
//! bucket, refused credentials, unreachable endpoint) so a cron log tells what to fix.
//! Secrets are never logged or printed.

pub mod config;
pub mod constants;
mod s3;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

pub use s3::{Bucket, ObjectReader, ParquetObjectReader, S3Error, S3ErrorKind};

use crate::job::S3Options;
use config::S3Config;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("cannot {op} `{path}`: {source}")]
    Io {
        op: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    S3(Box<S3Error>),
    #[error("`{url}` is not a valid S3 location: {message}")]
    BadUrl { url: String, message: String },
    #[error("S3 settings: {0}")]
    Config(String),
    /// A failure known by its message only (a settings error resolved once and repeated,
    /// a lost background task).
    #[error("{0}")]
    Message(String),
}

impl StorageError {
    /// The S3 failure behind this error, if any.
    pub fn s3_kind(&self) -> Option<S3ErrorKind> {
        match self {
            StorageError::S3(e) => Some(e.kind),
            _ => None,
        }
    }

    fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StorageError + 'a {
        move |source| StorageError::Io {
            op,
            path: path.display().to_string(),
            source,
        }
    }
}

/// The runtime every S3 call runs on. Two workers drive the connections while the calling
/// threads (up to the rayon pool's size) each block on their own request.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("groupetl-s3")
            .enable_all()
            .build()
            .expect("cannot start the S3 I/O runtime")
    })
}

/// Runs `f` to completion on the storage runtime. Must not be called from inside it.
pub(crate) fn block_on<F: Future>(f: F) -> F::Output {
    runtime().block_on(f)
}

/// Starts `f` on the storage runtime (background uploads).
pub(crate) fn spawn<F>(f: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    runtime().spawn(f)
}

/// Whether `path` names an S3 location.
pub fn is_s3(path: &str) -> bool {
    path.starts_with("s3://")
}

/// Splits `s3://bucket/key/parts` into the bucket and the key (without leading or trailing
/// `/`; empty for the bucket's root).
pub fn parse_s3_url(url: &str) -> Result<(&str, &str), StorageError> {
    let bad = |message: &str| StorageError::BadUrl {
        url: url.to_string(),
        message: message.to_string(),
    };
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| bad("it must start with `s3://`"))?;
    let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(bad("no bucket name"));
    }
    let valid = bucket.len() >= 3
        && bucket.len() <= 63
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    if !valid {
        return Err(bad(
            "bucket names are 3 to 63 characters of lower-case letters, digits, `-` and `.`",
        ));
    }
    let key = key.trim_matches('/');
    if key.contains("//") {
        return Err(bad("empty path segment (`//`)"));
    }
    Ok((bucket, key))
}

/// How patient the S3 client is: runs retry throttling and 5xx answers; `validate` probes
/// give up quickly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Patience {
    Run,
    Probe,
}

/// The S3 side of one job: its resolved settings (read lazily, so that a job with only
/// local paths never looks at `~/.aws`) and one store per bucket.
pub struct Stores {
    options: S3Options,
    patience: Patience,
    config: OnceLock<Result<S3Config, String>>,
    buckets: Mutex<Vec<Bucket>>,
}

impl Stores {
    pub fn new(options: &S3Options) -> Stores {
        Stores::with_patience(options, Patience::Run)
    }

    pub fn with_patience(options: &S3Options, patience: Patience) -> Stores {
        Stores {
            options: options.clone(),
            patience,
            config: OnceLock::new(),
            buckets: Mutex::new(Vec::new()),
        }
    }

    /// The resolved settings.
    pub fn config(&self) -> Result<&S3Config, StorageError> {
        self.config
            .get_or_init(|| S3Config::resolve(&self.options).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|m| StorageError::Message(m.clone()))
    }

    /// The store of `name`, built on first use.
    pub fn bucket(&self, name: &str) -> Result<Bucket, StorageError> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(b) = buckets.iter().find(|b| b.name() == name) {
            return Ok(b.clone());
        }
        let b = Bucket::build(name, self.config()?, self.patience)?;
        buckets.push(b.clone());
        Ok(b)
    }

    /// A one-line description of where S3 requests go and whose credentials they carry,
    /// without any secret.
    pub fn describe(&self) -> Result<String, StorageError> {
        let cfg = self.config()?;
        let creds = match cfg.credentials_origin() {
            Some(o) => format!("static credentials from {o}"),
            None => "credentials from the AWS provider chain (no static key set)".to_string(),
        };
        Ok(format!(
            "endpoint {}, region {}, {creds}",
            cfg.endpoint().unwrap_or("AWS"),
            cfg.region().unwrap_or("us-east-1 (default)")
        ))
    }
}

/// An S3 prefix used as a folder: keys below it are `prefix/rel`.
#[derive(Clone, Debug)]
pub struct S3Root {
    pub bucket: Bucket,
    /// Without leading or trailing `/`; empty for the bucket's root.
    pub prefix: String,
}

impl S3Root {
    /// The key of `rel` (a `/`-separated path below the root).
    pub fn key(&self, rel: &str) -> String {
        let rel = rel.trim_matches('/');
        match (self.prefix.is_empty(), rel.is_empty()) {
            (true, _) => rel.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}/{rel}", self.prefix),
        }
    }

    /// `rel` back from a key below the root.
    pub fn rel<'a>(&self, key: &'a str) -> &'a str {
        if self.prefix.is_empty() {
            key
        } else {
            key.strip_prefix(self.prefix.as_str())
                .map_or(key, |r| r.trim_start_matches('/'))
        }
    }
}

/// An output root: a local folder or an S3 prefix. Cheap to clone.
#[derive(Clone, Debug)]
pub enum Root {
    Local(PathBuf),
    S3(S3Root),
}

impl Root {
    /// The root at `path` (a folder, or `s3://bucket/prefix`). Builds the bucket's store but
    /// sends no request.
    pub fn open(path: &str, stores: &Stores) -> Result<Root, StorageError> {
        if !is_s3(path) {
            return Ok(Root::Local(PathBuf::from(path)));
        }
        let (bucket, prefix) = parse_s3_url(path)?;
        Ok(Root::S3(S3Root {
            bucket: stores.bucket(bucket)?,
            prefix: prefix.to_string(),
        }))
    }

    /// How `rel` below the root is shown to people.
    pub fn display(&self, rel: &str) -> String {
        match self {
            Root::Local(dir) => dir.join(rel).display().to_string(),
            Root::S3(s) => s.bucket.url(&s.key(rel)),
        }
    }

    /// The contents of `rel`, or `None` when there is no such file.
    pub fn read(&self, rel: &str) -> Result<Option<Vec<u8>>, StorageError> {
        match self {
            Root::Local(dir) => {
                let p = dir.join(rel);
                match std::fs::read(&p) {
                    Ok(b) => Ok(Some(b)),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(StorageError::io("read", &p)(e)),
                }
            }
            Root::S3(s) => s.bucket.read(&s.key(rel)),
        }
    }

    /// Replaces `rel` with `bytes` so that readers see the old or the new contents, never a
    /// torn file: a temporary file and a rename locally, a single PUT on S3.
    pub fn write(&self, rel: &str, bytes: &[u8]) -> Result<(), StorageError> {
        match self {
            Root::Local(dir) => write_atomic(&dir.join(rel), bytes),
            Root::S3(s) => s.bucket.put(&s.key(rel), bytes.to_vec()),
        }
    }

    /// Creates `rel` only if it does not exist (`create_new` locally, `If-None-Match: *` on
    /// S3). `Ok(false)`: it already exists.
    pub fn create_new(&self, rel: &str, bytes: &[u8]) -> Result<bool, StorageError> {
        match self {
            Root::Local(dir) => {
                use std::io::Write;
                let p = dir.join(rel);
                if let Some(parent) = p.parent() {
                    std::fs::create_dir_all(parent).map_err(StorageError::io("create", parent))?;
                }
                match std::fs::OpenOptions::new().write(true).create_new(true).open(&p) {
                    Ok(mut f) => {
                        f.write_all(bytes).map_err(StorageError::io("write", &p))?;
                        f.sync_all().map_err(StorageError::io("write", &p))?;
                        Ok(true)
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
                    Err(e) => Err(StorageError::io("create", &p)(e)),
                }
            }
            Root::S3(s) => s.bucket.put_create(&s.key(rel), bytes.to_vec()),
        }
    }

    /// Removes the file `rel`; a missing one is fine.
    pub fn delete(&self, rel: &str) -> Result<(), StorageError> {
        match self {
            Root::Local(dir) => {
                let p = dir.join(rel);
                match std::fs::remove_file(&p) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StorageError::io("remove", &p)(e)),
                    _ => Ok(()),
                }
            }
            Root::S3(s) => s.bucket.delete(&s.key(rel)),
        }
    }

    /// Stores the local file `src` as `rel`, consuming it (a rename locally; a PUT, or a
    /// multipart upload for large files, on S3).
    pub fn put_file(&self, rel: &str, src: &Path) -> Result<(), StorageError> {
        match self {
            Root::Local(dir) => {
                let dst = dir.join(rel);
                if let Some(parent) = dst.parent() {
                    std::fs::create_dir_all(parent).map_err(StorageError::io("create", parent))?;
                }
                std::fs::rename(src, &dst).map_err(StorageError::io("write", &dst))
            }
            Root::S3(s) => {
                s.bucket.put_file(&s.key(rel), src)?;
                let _ = std::fs::remove_file(src);
                Ok(())
            }
        }
    }

    /// Checks the root can be listed (S3: one key of its prefix), for `validate`.
    pub fn probe(&self) -> Result<(), StorageError> {
        match self {
            Root::Local(_) => Ok(()),
            Root::S3(s) => s.bucket.probe(&s.prefix),
        }
    }
}

/// Writes `bytes` to `path` via a temporary file and a rename, so readers see the old or
/// the new contents, never a torn file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let dir = path.parent().expect("path has a parent");
    std::fs::create_dir_all(dir).map_err(StorageError::io("write", dir))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().unwrap().to_string_lossy(),
        std::process::id()
    ));
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(StorageError::io("write", &tmp))?;
        f.write_all(bytes).map_err(StorageError::io("write", &tmp))?;
        f.sync_all().map_err(StorageError::io("write", &tmp))?;
    }
    std::fs::rename(&tmp, path).map_err(StorageError::io("write", path))?;
    Ok(())
}

/// A local scratch folder for files on their way to S3 (encoded partitions, rejects),
/// removed on drop.
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    pub fn new(label: &str) -> Result<Scratch, StorageError> {
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("groupetl-{label}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(StorageError::io("create", &dir))?;
        Ok(Scratch { dir })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls() {
        assert_eq!(parse_s3_url("s3://bkt/a/b/").unwrap(), ("bkt", "a/b"));
        assert_eq!(parse_s3_url("s3://bkt").unwrap(), ("bkt", ""));
        assert_eq!(parse_s3_url("s3://bkt/").unwrap(), ("bkt", ""));
        assert!(parse_s3_url("s3:///x").is_err());
        assert!(parse_s3_url("s3://Bad_Bucket/x").is_err());
        assert!(parse_s3_url("s3://bkt/a//b").is_err());
        assert!(parse_s3_url("/local").is_err());
    }

    #[test]
    fn s3_root_keys() {
        let stores = Stores::new(&S3Options {
            endpoint: Some("http://127.0.0.1:1".into()),
            access_key_id: Some("k".into()),
            secret_access_key: Some("s".into()),
            allow_http: Some(true),
            ..Default::default()
        });
        let Root::S3(r) = Root::open("s3://bkt/out/x/", &stores).unwrap() else {
            panic!("not S3")
        };
        assert_eq!(r.key("_state/lock"), "out/x/_state/lock");
        assert_eq!(r.rel("out/x/_state/lock"), "_state/lock");
        assert_eq!(r.bucket.url(&r.key("a")), "s3://bkt/out/x/a");
    }
}
