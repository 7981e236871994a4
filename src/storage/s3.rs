//! One S3 bucket behind `Arc<dyn ObjectStore>`: building the store, blocking wrappers for
//! the requests groupetl makes, streaming readers for inputs, and turning object_store's
//! errors into one-line messages that say what went wrong.

use std::io::Read;
use std::ops::Range;
use std::path::Path as FsPath;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::path::Path;
use object_store::{
    BackoffConfig, ClientConfigKey, ClientOptions, GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt,
    PutMode, PutPayload, RetryConfig, WriteMultipart,
};

use super::config::S3Config;
use super::constants as c;
use super::{block_on, runtime, Patience, StorageError};

/// What kind of S3 failure an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3ErrorKind {
    /// The bucket does not exist (`NoSuchBucket`).
    NoSuchBucket,
    /// 403/401: wrong key or secret, expired token, or no permission.
    AccessDenied,
    /// The endpoint refused or dropped the connection (after retries).
    Unreachable,
    /// The endpoint did not answer in time (after retries).
    Timeout,
    /// The object does not exist.
    NotFound,
    /// A conditional create found the object already there.
    AlreadyExists,
    /// The object changed while being read (its ETag no longer matches).
    Changed,
    /// 5xx or throttling that outlasted the retries.
    ServerError,
    Other,
}

/// A failed S3 request, as one line naming the operation, the object and the endpoint.
#[derive(Debug)]
pub struct S3Error {
    pub kind: S3ErrorKind,
    op: &'static str,
    bucket: String,
    url: String,
    endpoint: String,
    /// What the server or the connection said (an S3 error code, an OS error), no secrets.
    detail: String,
}

impl std::fmt::Display for S3Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (op, url, ep, d) = (self.op, &self.url, &self.endpoint, &self.detail);
        match self.kind {
            S3ErrorKind::NoSuchBucket => write!(f, "S3 bucket `{}` does not exist at {ep} ({op} {url})", self.bucket),
            S3ErrorKind::AccessDenied => write!(
                f,
                "S3 refused {op} {url} at {ep}: {d}; check the access key id, secret and region"
            ),
            S3ErrorKind::Unreachable => write!(f, "cannot connect to S3 endpoint {ep} ({d}) for {op} {url}"),
            S3ErrorKind::Timeout => write!(f, "S3 endpoint {ep} did not answer in time for {op} {url}"),
            S3ErrorKind::NotFound => write!(f, "{url} does not exist (endpoint {ep})"),
            S3ErrorKind::AlreadyExists => write!(f, "{url} already exists"),
            S3ErrorKind::Changed => write!(f, "{url} changed while it was being read; run again"),
            S3ErrorKind::ServerError => write!(f, "S3 {op} {url} failed at {ep}: {d} (retries exhausted)"),
            S3ErrorKind::Other => write!(f, "S3 {op} {url} failed at {ep}: {d}"),
        }
    }
}

impl std::error::Error for S3Error {}

/// The text between `<Code>` and `</Code>` of an S3 error body.
fn s3_code(text: &str) -> Option<&str> {
    let start = text.find("<Code>")? + "<Code>".len();
    let len = text[start..].find("</Code>")?;
    Some(&text[start..start + len])
}

/// The HTTP status in object_store's "non-2xx status code: 403 Forbidden" text.
fn http_status(text: &str) -> Option<u16> {
    let at = text.find("status code: ")? + "status code: ".len();
    text[at..].get(..3)?.parse().ok()
}

fn explain_code(code: &str) -> String {
    let why = match code {
        "SignatureDoesNotMatch" => "the secret access key does not match the access key id",
        "InvalidAccessKeyId" => "the access key id is unknown",
        "ExpiredToken" | "TokenRefreshRequired" => "the session token has expired",
        "InvalidToken" => "the session token is not valid",
        "AccessDenied" => "access denied",
        "AuthorizationHeaderMalformed" => "the request's region or credentials are malformed",
        _ => return code.to_string(),
    };
    format!("{code} ({why})")
}

/// Sorts an object_store error into an [`S3ErrorKind`] with a short detail.
fn classify(e: &object_store::Error) -> (S3ErrorKind, String) {
    use object_store::Error as E;
    let text = e.to_string();
    let code = s3_code(&text);
    if code == Some("NoSuchBucket") {
        return (S3ErrorKind::NoSuchBucket, String::new());
    }
    match e {
        E::NotFound { .. } => return (S3ErrorKind::NotFound, String::new()),
        E::AlreadyExists { .. } => return (S3ErrorKind::AlreadyExists, String::new()),
        E::Precondition { .. } => return (S3ErrorKind::Changed, String::new()),
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => {
            let status = if matches!(e, E::Unauthenticated { .. }) {
                401
            } else {
                403
            };
            let detail = code.map_or_else(
                || format!("HTTP {status}"),
                |c| format!("{} (HTTP {status})", explain_code(c)),
            );
            return (S3ErrorKind::AccessDenied, detail);
        }
        _ => {}
    }
    // Transport failures: find object_store's HttpError and the innermost cause.
    let mut kind = None;
    let mut innermost = text.clone();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<object_store::client::HttpError>() {
            use object_store::client::HttpErrorKind as K;
            kind = match h.kind() {
                K::Connect | K::Interrupted => Some(S3ErrorKind::Unreachable),
                K::Timeout => Some(S3ErrorKind::Timeout),
                _ => kind,
            };
        }
        innermost = err.to_string();
        cur = err.source();
    }
    if let Some(k) = kind {
        return (k, innermost);
    }
    match (http_status(&text), code) {
        // Listing errors arrive as `Generic`, with the status only in the text.
        (Some(s @ (401 | 403)), c) => (
            S3ErrorKind::AccessDenied,
            c.map_or_else(|| format!("HTTP {s}"), |c| format!("{} (HTTP {s})", explain_code(c))),
        ),
        (Some(s), c) if s >= 500 || s == 429 => (
            S3ErrorKind::ServerError,
            c.map_or_else(|| format!("HTTP {s}"), |c| format!("{c} (HTTP {s})")),
        ),
        (Some(s), Some(c)) => (S3ErrorKind::Other, format!("{} (HTTP {s})", explain_code(c))),
        _ => {
            // Keep it to one short line: object_store's text can carry a whole XML body.
            let mut line = text.lines().next().unwrap_or("").to_string();
            if line.len() > 300 {
                let mut cut = 300;
                while !line.is_char_boundary(cut) {
                    cut -= 1;
                }
                line.truncate(cut);
                line.push('…');
            }
            (S3ErrorKind::Other, line)
        }
    }
}

/// The object_store path of an S3 key, byte for byte. `Path::from` would percent-encode
/// characters such as `%`, `~` or `#` that are legal in keys; `Path::parse` keeps them and
/// only refuses empty, `.` and `..` segments, which then fall back to `Path::from`.
fn key_path(key: &str) -> Path {
    Path::parse(key).unwrap_or_else(|_| Path::from(key))
}

fn truthy(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "true" | "1" | "yes" | "on" | "y")
}

/// Retries, from `GROUPETL_S3_MAX_RETRIES` or the default.
fn max_retries() -> usize {
    std::env::var(c::ENV_MAX_RETRIES)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(c::MAX_RETRIES)
}

struct Inner {
    name: String,
    /// For messages: the endpoint URL, or `AWS (region)`.
    endpoint: String,
    store: Arc<dyn ObjectStore>,
}

/// One bucket's store. Cheap to clone; equal when it is the same store.
#[derive(Clone)]
pub struct Bucket(Arc<Inner>);

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bucket")
            .field("name", &self.0.name)
            .field("endpoint", &self.0.endpoint)
            .finish_non_exhaustive()
    }
}

impl PartialEq for Bucket {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Bucket {}

impl Bucket {
    pub(super) fn build(name: &str, cfg: &S3Config, patience: Patience) -> Result<Bucket, StorageError> {
        let (retries, timeout) = match patience {
            Patience::Run => (max_retries(), c::REQUEST_TIMEOUT),
            Patience::Probe => (c::PROBE_MAX_RETRIES, c::PROBE_REQUEST_TIMEOUT),
        };
        let retry = RetryConfig {
            backoff: BackoffConfig {
                init_backoff: c::INIT_BACKOFF,
                max_backoff: c::MAX_BACKOFF,
                base: 2.0,
            },
            max_retries: retries,
            retry_timeout: c::RETRY_TIMEOUT,
        };
        let client = ClientOptions::new()
            .with_connect_timeout(c::CONNECT_TIMEOUT)
            .with_timeout(timeout);
        // Client options first: `with_client_options` replaces them whole, and the
        // settings may adjust them (`allow_http`, `AWS_TIMEOUT`, ...).
        let mut b = AmazonS3Builder::new().with_client_options(client).with_retry(retry);
        let mut allow_http = false;
        for (k, v) in cfg.pairs() {
            if k == AmazonS3ConfigKey::Client(ClientConfigKey::AllowHttp) {
                allow_http = truthy(v);
            }
            b = b.with_config(k, v);
        }
        let endpoint = match cfg.endpoint() {
            Some(ep) => {
                if ep.starts_with("http://") && !allow_http {
                    return Err(StorageError::Config(format!(
                        "endpoint `{ep}` is plain HTTP; set `allow_http = true` in [s3] (or AWS_ALLOW_HTTP=true) \
                         to allow it"
                    )));
                }
                ep.to_string()
            }
            None => format!("AWS ({})", cfg.region().unwrap_or("us-east-1")),
        };
        let store = b.with_bucket_name(name).build().map_err(|e| {
            // Builder errors name a missing or malformed setting, never a secret value.
            StorageError::Config(format!("bucket `{name}`: {e}"))
        })?;
        Ok(Bucket(Arc::new(Inner {
            name: name.to_string(),
            endpoint,
            store: Arc::new(store),
        })))
    }

    pub fn name(&self) -> &str {
        &self.0.name
    }

    pub fn endpoint(&self) -> &str {
        &self.0.endpoint
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.0.store
    }

    /// `s3://bucket/key`.
    pub fn url(&self, key: &str) -> String {
        if key.is_empty() {
            format!("s3://{}", self.0.name)
        } else {
            format!("s3://{}/{key}", self.0.name)
        }
    }

    /// A one-line error for `op` on `key`.
    pub fn error(&self, op: &'static str, key: &str, e: &object_store::Error) -> StorageError {
        let (kind, detail) = classify(e);
        tracing::debug!(op, url = %self.url(key), error = %e, "S3 request failed");
        StorageError::S3(Box::new(S3Error {
            kind,
            op,
            bucket: self.0.name.clone(),
            url: self.url(key),
            endpoint: self.0.endpoint.clone(),
            detail,
        }))
    }

    fn prefix_path(prefix: &str) -> Option<Path> {
        (!prefix.is_empty()).then(|| key_path(prefix))
    }

    /// The object's metadata, or `None` when it does not exist.
    pub fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StorageError> {
        match block_on(self.store().head(&key_path(key))) {
            Ok(m) => Ok(Some(m)),
            Err(e) => match self.error("HEAD", key, &e) {
                err if err.s3_kind() == Some(S3ErrorKind::NotFound) => Ok(None),
                err => Err(err),
            },
        }
    }

    /// The whole object, or `None` when it does not exist (small objects: state, journal).
    pub fn read(&self, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let path = key_path(key);
        let got = block_on(async { self.store().get(&path).await?.bytes().await });
        match got {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(e) => match self.error("GET", key, &e) {
                err if err.s3_kind() == Some(S3ErrorKind::NotFound) => Ok(None),
                err => Err(err),
            },
        }
    }

    /// Replaces the object with `bytes` (one PUT: visible whole or not at all).
    pub fn put(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        block_on(self.store().put(&key_path(key), PutPayload::from(bytes)))
            .map(|_| ())
            .map_err(|e| self.error("PUT", key, &e))
    }

    /// Creates the object only if absent (`If-None-Match: *`). `Ok(false)`: it exists.
    pub fn put_create(&self, key: &str, bytes: Vec<u8>) -> Result<bool, StorageError> {
        let opts = object_store::PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        match block_on(self.store().put_opts(&key_path(key), PutPayload::from(bytes), opts)) {
            Ok(_) => Ok(true),
            Err(e) => match self.error("PUT", key, &e) {
                err if err.s3_kind() == Some(S3ErrorKind::AlreadyExists) => Ok(false),
                err => Err(err),
            },
        }
    }

    /// Uploads the local file `src` as `key`: one PUT up to [`c::MULTIPART_THRESHOLD`], a
    /// multipart upload above (aborted on failure). Either way the object appears only
    /// once complete.
    pub fn put_file(&self, key: &str, src: &FsPath) -> Result<(), StorageError> {
        block_on(self.put_file_async(key, src))
    }

    /// [`Bucket::put_file`] for use on the storage runtime. Reads the file with blocking
    /// calls, a part at a time.
    pub async fn put_file_async(&self, key: &str, src: &FsPath) -> Result<(), StorageError> {
        let local = |source| StorageError::Io {
            op: "read",
            path: src.display().to_string(),
            source,
        };
        let len = std::fs::metadata(src).map_err(local)?.len();
        let path = key_path(key);
        if len <= c::MULTIPART_THRESHOLD {
            let bytes = std::fs::read(src).map_err(local)?;
            return self
                .store()
                .put(&path, PutPayload::from(bytes))
                .await
                .map(|_| ())
                .map_err(|e| self.error("PUT", key, &e));
        }
        let mut file = std::fs::File::open(src).map_err(local)?;
        let upload = self
            .store()
            .put_multipart(&path)
            .await
            .map_err(|e| self.error("PUT (multipart)", key, &e))?;
        let mut w = WriteMultipart::new_with_chunk_size(upload, c::MULTIPART_PART);
        let mut buf = vec![0u8; 1 << 20];
        let fed: Result<(), StorageError> = async {
            loop {
                let n = file.read(&mut buf).map_err(local)?;
                if n == 0 {
                    return Ok(());
                }
                w.wait_for_capacity(c::MULTIPART_CONCURRENCY)
                    .await
                    .map_err(|e| self.error("PUT (multipart)", key, &e))?;
                w.write(&buf[..n]);
            }
        }
        .await;
        match fed {
            Ok(()) => w
                .finish()
                .await
                .map(|_| ())
                .map_err(|e| self.error("PUT (multipart)", key, &e)),
            Err(e) => {
                let _ = w.abort().await;
                Err(e)
            }
        }
    }

    /// Deletes the object; a missing one is fine.
    pub fn delete(&self, key: &str) -> Result<(), StorageError> {
        block_on(self.delete_async(key))
    }

    pub async fn delete_async(&self, key: &str) -> Result<(), StorageError> {
        match self.store().delete(&key_path(key)).await {
            Ok(()) => Ok(()),
            Err(e) => match self.error("DELETE", key, &e) {
                err if err.s3_kind() == Some(S3ErrorKind::NotFound) => Ok(()),
                err => Err(err),
            },
        }
    }

    /// Deletes every key of `keys` (bulk requests); missing ones are fine.
    pub async fn delete_many(&self, keys: Vec<String>) -> Result<(), StorageError> {
        if keys.is_empty() {
            return Ok(());
        }
        let first = keys[0].clone();
        let paths = futures::stream::iter(keys.into_iter().map(|k| Ok(key_path(&k)))).boxed();
        let mut results = self.store().delete_stream(paths);
        while let Some(r) = results.next().await {
            if let Err(e) = r {
                let err = self.error("DELETE", &first, &e);
                if err.s3_kind() != Some(S3ErrorKind::NotFound) {
                    return Err(err);
                }
            }
        }
        Ok(())
    }

    /// Server-side copy. `Ok(false)`: the source does not exist.
    pub async fn copy_async(&self, from: &str, to: &str) -> Result<bool, StorageError> {
        match self.store().copy(&key_path(from), &key_path(to)).await {
            Ok(()) => Ok(true),
            Err(e) => match self.error("COPY", from, &e) {
                err if err.s3_kind() == Some(S3ErrorKind::NotFound) => Ok(false),
                err => Err(err),
            },
        }
    }

    /// Every object below the folder `prefix` (recursive; `""` is the whole bucket).
    pub fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        block_on(self.list_async(prefix))
    }

    pub async fn list_async(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StorageError> {
        self.store()
            .list(Self::prefix_path(prefix).as_ref())
            .try_collect()
            .await
            .map_err(|e| self.error("LIST", prefix, &e))
    }

    /// The objects directly in the folder `prefix`, and its sub-folders' keys.
    pub fn list_dir(&self, prefix: &str) -> Result<(Vec<ObjectMeta>, Vec<String>), StorageError> {
        block_on(self.list_dir_async(prefix))
    }

    pub async fn list_dir_async(&self, prefix: &str) -> Result<(Vec<ObjectMeta>, Vec<String>), StorageError> {
        let r = self
            .store()
            .list_with_delimiter(Self::prefix_path(prefix).as_ref())
            .await
            .map_err(|e| self.error("LIST", prefix, &e))?;
        Ok((
            r.objects,
            r.common_prefixes.into_iter().map(|p| p.as_ref().to_string()).collect(),
        ))
    }

    /// Lists at most one key of `prefix`: proves the endpoint answers, the credentials are
    /// accepted and the bucket exists.
    pub fn probe(&self, prefix: &str) -> Result<(), StorageError> {
        let mut keys = self.store().list(Self::prefix_path(prefix).as_ref());
        match block_on(keys.next()) {
            Some(Err(e)) => Err(self.error("LIST", prefix, &e)),
            _ => Ok(()),
        }
    }

    /// A blocking reader of the object: ranged GETs of [`c::READ_CHUNK`] bytes, the next
    /// one in flight while the current one is consumed. `etag` (from the listing) pins the
    /// version: an object overwritten mid-read fails instead of mixing two versions.
    pub fn reader(&self, key: &str, size: u64, etag: Option<String>) -> ObjectReader {
        self.reader_with_chunk(key, size, etag, c::READ_CHUNK)
    }

    /// [`Bucket::reader`] with another chunk size (`validate` reads only the first line).
    pub fn reader_with_chunk(&self, key: &str, size: u64, etag: Option<String>, chunk: u64) -> ObjectReader {
        let mut r = ObjectReader {
            bucket: self.clone(),
            key: key.to_string(),
            path: key_path(key),
            size,
            etag,
            chunk: chunk.max(1),
            next: 0,
            current: Bytes::new(),
            pending: None,
        };
        r.fetch_next();
        r
    }

    /// A Parquet reader fetching only the byte ranges it needs (footer, then the column
    /// chunks of one row group at a time).
    pub fn parquet_reader(&self, key: &str, size: u64, etag: Option<String>) -> ParquetObjectReader {
        ParquetObjectReader {
            bucket: self.clone(),
            key: key.to_string(),
            path: key_path(key),
            size,
            etag,
        }
    }
}

type Fetch = tokio::task::JoinHandle<Result<Bytes, object_store::Error>>;

/// See [`Bucket::reader`].
pub struct ObjectReader {
    bucket: Bucket,
    key: String,
    path: Path,
    size: u64,
    etag: Option<String>,
    chunk: u64,
    /// Offset of the next chunk to request.
    next: u64,
    current: Bytes,
    pending: Option<Fetch>,
}

impl ObjectReader {
    fn fetch_next(&mut self) {
        if self.next >= self.size {
            return;
        }
        let range = self.next..(self.next + self.chunk).min(self.size);
        self.next = range.end;
        let store = Arc::clone(self.bucket.store());
        let path = self.path.clone();
        let opts = GetOptions {
            range: Some(GetRange::Bounded(range)),
            if_match: self.etag.clone(),
            ..Default::default()
        };
        self.pending = Some(runtime().spawn(async move { store.get_opts(&path, opts).await?.bytes().await }));
    }
}

impl Read for ObjectReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.current.is_empty() {
            let Some(fetch) = self.pending.take() else {
                return Ok(0);
            };
            let got = block_on(fetch)
                .map_err(std::io::Error::other)?
                .map_err(|e| std::io::Error::other(self.bucket.error("GET", &self.key, &e)))?;
            if got.is_empty() {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            self.current = got;
            self.fetch_next();
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

impl Drop for ObjectReader {
    fn drop(&mut self) {
        if let Some(p) = self.pending.take() {
            p.abort();
        }
    }
}

/// See [`Bucket::parquet_reader`].
pub struct ParquetObjectReader {
    bucket: Bucket,
    key: String,
    path: Path,
    size: u64,
    etag: Option<String>,
}

impl ParquetObjectReader {
    fn external(&self, e: &object_store::Error) -> parquet::errors::ParquetError {
        parquet::errors::ParquetError::External(Box::new(self.bucket.error("GET", &self.key, e)))
    }
}

/// Footer bytes fetched with the first request: most footers fit, saving a round trip.
const FOOTER_HINT: usize = 64 << 10;

impl parquet::arrow::async_reader::AsyncFileReader for ParquetObjectReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            let opts = GetOptions {
                range: Some(GetRange::Bounded(range)),
                if_match: self.etag.clone(),
                ..Default::default()
            };
            let got = async { self.bucket.store().get_opts(&self.path, opts).await?.bytes().await }.await;
            got.map_err(|e| self.external(&e))
        }
        .boxed()
    }

    fn get_byte_ranges(&mut self, ranges: Vec<Range<u64>>) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        // object_store coalesces nearby ranges and fetches them concurrently.
        async move {
            self.bucket
                .store()
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(|e| self.external(&e))
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        _options: Option<&'a parquet::arrow::arrow_reader::ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<parquet::file::metadata::ParquetMetaData>>> {
        async move {
            let size = self.size;
            let md = parquet::file::metadata::ParquetMetaDataReader::new()
                .with_prefetch_hint(Some(FOOTER_HINT))
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(md))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_statuses_are_found_in_error_text() {
        let t = "Generic S3 error: Error performing GET http://x in 1ms - Server returned non-2xx status code: \
                 403 Forbidden: <?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code></Error>";
        assert_eq!(s3_code(t), Some("SignatureDoesNotMatch"));
        assert_eq!(http_status(t), Some(403));
        assert_eq!(s3_code("no xml"), None);
        assert!(explain_code("SignatureDoesNotMatch").contains("secret access key"));
    }

    #[test]
    fn keys_are_kept_byte_for_byte() {
        assert_eq!(key_path("a/b~c%20d#e.ndjson").as_ref(), "a/b~c%20d#e.ndjson");
        assert_eq!(
            key_path("date=2024-01-01/part-0.parquet").as_ref(),
            "date=2024-01-01/part-0.parquet"
        );
    }

    #[test]
    fn plain_http_endpoint_needs_allow_http() {
        let opts = crate::job::S3Options {
            endpoint: Some("http://127.0.0.1:9".into()),
            access_key_id: Some("k".into()),
            secret_access_key: Some("s".into()),
            ..Default::default()
        };
        let cfg = S3Config::resolve_with(&opts, &[]).unwrap();
        let err = Bucket::build("bkt", &cfg, Patience::Run).unwrap_err().to_string();
        assert!(err.contains("set `allow_http = true`"), "{err}");
    }
}
