//! Every S3 setting groupetl reads, named once: the job's `[s3]` keys, the environment
//! variables, the keys of the AWS shared config files, and the client's timeouts, retry
//! policy and transfer sizes.
//!
//! Precedence, highest first (see [`super::config`]):
//! 1. the job file's `[s3]` table;
//! 2. the environment: every `AWS_*` variable that names an object_store
//!    [`AmazonS3ConfigKey`](object_store::aws::AmazonS3ConfigKey), read exactly as
//!    `AmazonS3Builder::from_env` reads it (`AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`,
//!    `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, ...);
//! 3. a named profile of `~/.aws/config` and `~/.aws/credentials` (object_store does not
//!    read these files; we parse them by hand).
//!
//! The three credential keys (key id, secret, session token) travel together: they all come
//! from the highest layer that sets an access key id, so a session token from one identity is
//! never paired with another identity's key.

use std::time::Duration;

/// `[s3] endpoint`: URL of an S3-compatible server (`http://127.0.0.1:9000`).
pub const JOB_ENDPOINT: &str = "endpoint";
/// `[s3] region` (object_store defaults to `us-east-1`).
pub const JOB_REGION: &str = "region";
/// `[s3] allow_http`: allow a plain-HTTP endpoint.
pub const JOB_ALLOW_HTTP: &str = "allow_http";
/// `[s3] access_key_id`.
pub const JOB_ACCESS_KEY_ID: &str = "access_key_id";
/// `[s3] secret_access_key` (never logged or printed).
pub const JOB_SECRET_ACCESS_KEY: &str = "secret_access_key";
/// `[s3] session_token` (never logged or printed).
pub const JOB_SESSION_TOKEN: &str = "session_token";
/// `[s3] profile`: a profile of the AWS shared config files; overrides `AWS_PROFILE`.
pub const JOB_PROFILE: &str = "profile";

/// Environment variables are read when their name starts with this (as `from_env` does).
pub const ENV_PREFIX: &str = "AWS_";
/// Profile to read when the job names none.
pub const ENV_PROFILE: &str = "AWS_PROFILE";
/// Path of the shared config file (default `~/.aws/config`).
pub const ENV_CONFIG_FILE: &str = "AWS_CONFIG_FILE";
/// Path of the shared credentials file (default `~/.aws/credentials`).
pub const ENV_CREDENTIALS_FILE: &str = "AWS_SHARED_CREDENTIALS_FILE";
/// Home directory, for the default file paths.
pub const ENV_HOME: &str = "HOME";
/// Overrides [`MAX_RETRIES`] (a whole number; 0 disables retries).
pub const ENV_MAX_RETRIES: &str = "GROUPETL_S3_MAX_RETRIES";

/// Profile read when neither `[s3] profile` nor `AWS_PROFILE` names one. Unlike a named
/// profile, it may be absent.
pub const DEFAULT_PROFILE: &str = "default";
/// Default shared config file, relative to the home directory.
pub const DEFAULT_CONFIG_FILE: &str = ".aws/config";
/// Default shared credentials file, relative to the home directory.
pub const DEFAULT_CREDENTIALS_FILE: &str = ".aws/credentials";

/// Profile keys read from the shared files; any other key (`role_arn`, `sso_*`,
/// `credential_process`, nested `s3 =` blocks, ...) is ignored.
pub const PROFILE_ACCESS_KEY_ID: &str = "aws_access_key_id";
pub const PROFILE_SECRET_ACCESS_KEY: &str = "aws_secret_access_key";
pub const PROFILE_SESSION_TOKEN: &str = "aws_session_token";
pub const PROFILE_REGION: &str = "region";
pub const PROFILE_ENDPOINT_URL: &str = "endpoint_url";

/// A dead endpoint must fail in seconds, not minutes.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Whole-request limit. Every request moves at most one [`READ_CHUNK`] or
/// [`MULTIPART_PART`], so this is generous even on a slow link.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Retries of a request that failed with 5xx, 429 (throttling), a dropped connection or a
/// timeout. 4xx answers (wrong key, missing bucket) are never retried.
pub const MAX_RETRIES: usize = 5;
/// First backoff; it doubles (with jitter) up to [`MAX_BACKOFF`]: about 3 s in all for five
/// retries.
pub const INIT_BACKOFF: Duration = Duration::from_millis(100);
pub const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// No retry starts later than this after the first attempt.
pub const RETRY_TIMEOUT: Duration = Duration::from_secs(60);

/// `validate` probes: one retry, and a short request limit.
pub const PROBE_MAX_RETRIES: usize = 1;
pub const PROBE_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// NDJSON/CSV objects are read as a sequence of ranged GETs of this size, one ahead of the
/// decoder, so memory stays bounded and each request is short.
pub const READ_CHUNK: u64 = 8 << 20;
/// Files larger than this are uploaded with a multipart upload.
pub const MULTIPART_THRESHOLD: u64 = 8 << 20;
/// Part size of multipart uploads (S3's minimum is 5 MiB).
pub const MULTIPART_PART: usize = 8 << 20;
/// Parts of one multipart upload in flight at once.
pub const MULTIPART_CONCURRENCY: usize = 4;
/// Commit steps (copy, delete, list) in flight at once on S3.
pub const COMMIT_CONCURRENCY: usize = 16;
