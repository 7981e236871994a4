//! Input discovery and reading: globs become a sorted file list, and each file becomes a
//! stream of JSON-shaped [`Record`]s whatever its type (NDJSON, CSV, Parquet) and
//! compression (`.gz`, `.zst`). What a record *means* is the `normalize` module's job.
//!
//! Parquet readers may hand whole Arrow batches to a [`BatchHook`] first (the columnar
//! fast paths), and build records only for the rows it declines.
//!
//! Local files are read with `std::fs`. `s3://` objects go through [`crate::storage`]:
//! NDJSON and CSV stream through the same decoders from a blocking reader over ranged GETs,
//! and Parquet is read by byte ranges (footer, then column chunks), never downloaded whole.

mod csv;
mod list;
mod ndjson;
mod parquet;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::Value;

pub use list::{list_inputs, list_inputs_outside, probe_s3, InputFile};
#[cfg(test)]
pub(crate) use parquet::row_value as parquet_row_value;
pub use parquet::Footer;

use crate::job::FileType;
use crate::storage::{Bucket, StorageError};

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("input `{pattern}` matches no file")]
    NoMatch { pattern: String },
    #[error("input `{pattern}`: {message}")]
    BadPattern { pattern: String, message: String },
    #[error("cannot read `{path}`: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("cannot read `{path}`: {message}")]
    Decode { path: String, message: String },
    #[error("`{path}`: cannot tell the file type from the name; set `file_type`")]
    UnknownType { path: String },
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl SourceError {
    /// An I/O error while reading `path`. A storage error carried inside it (an S3 read
    /// failing mid-stream) surfaces as itself: it already names the object.
    pub(crate) fn io(path: &str, source: std::io::Error) -> SourceError {
        if source.get_ref().is_some_and(|e| e.is::<StorageError>()) {
            let inner = source.into_inner().expect("has an inner error");
            return SourceError::Storage(*inner.downcast::<StorageError>().expect("checked above"));
        }
        SourceError::Io {
            path: path.to_string(),
            source,
        }
    }
}

/// How a record's position in its file is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Position {
    /// 1-based line (NDJSON, CSV).
    Line(u64),
    /// 1-based row (Parquet).
    Row(u64),
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Position::Line(n) => write!(f, "line {n}"),
            Position::Row(n) => write!(f, "row {n}"),
        }
    }
}

/// One input record: a JSON object, or the reason it could not be read.
#[derive(Debug)]
pub struct Record {
    pub pos: Position,
    pub value: Result<Value, Unreadable>,
}

/// A record that could not even be parsed, with its raw text for the rejects file.
#[derive(Debug)]
pub struct Unreadable {
    pub reason: String,
    pub raw: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    None,
    Gzip,
    Zstd,
}

/// File type and compression of `path`, from `file_type` or the extension.
fn detect(path: &str, explicit: Option<FileType>) -> Result<(FileType, Compression), SourceError> {
    let lower = path.to_ascii_lowercase();
    let (stem, compression) = if let Some(s) = lower.strip_suffix(".gz") {
        (s, Compression::Gzip)
    } else if let Some(s) = lower.strip_suffix(".zst").or_else(|| lower.strip_suffix(".zstd")) {
        (s, Compression::Zstd)
    } else {
        (lower.as_str(), Compression::None)
    };
    if let Some(t) = explicit {
        return Ok((t, compression));
    }
    let ext = Path::new(stem).extension().and_then(|e| e.to_str()).unwrap_or("");
    let t = match ext {
        "parquet" | "pq" => FileType::Parquet,
        "csv" => FileType::Csv,
        "ndjson" | "jsonl" | "json" => FileType::Ndjson,
        _ => return Err(SourceError::UnknownType { path: path.to_string() }),
    };
    Ok((t, compression))
}

/// How much of an S3 object `validate` fetches at a time to parse its first record.
const PROBE_CHUNK: u64 = 64 << 10;

/// The raw bytes of `file`: a local file, or a streaming reader over the S3 object
/// (`chunk`: the ranged GET size, default when `None`).
fn open_raw(file: &InputFile, chunk: Option<u64>) -> Result<Box<dyn Read + Send>, SourceError> {
    match &file.bucket {
        Some(bucket) => {
            let key = s3_key(bucket, file);
            Ok(Box::new(match chunk {
                Some(c) => bucket.reader_with_chunk(key, file.size, file.etag.clone(), c),
                None => bucket.reader(key, file.size, file.etag.clone()),
            }))
        }
        None => Ok(Box::new(
            std::fs::File::open(&file.path).map_err(|source| SourceError::io(&file.path, source))?,
        )),
    }
}

fn s3_key<'a>(bucket: &Bucket, file: &'a InputFile) -> &'a str {
    let prefix_len = bucket.url("").len() + 1;
    &file.path[prefix_len.min(file.path.len())..]
}

fn open_decoded(
    file: &InputFile,
    compression: Compression,
    chunk: Option<u64>,
) -> Result<Box<dyn BufRead + Send>, SourceError> {
    let raw = open_raw(file, chunk)?;
    let inner: Box<dyn Read + Send> = match compression {
        Compression::None => raw,
        // Multi-member gzip: concatenated `.gz` parts are common in exports.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 16,
            raw,
        ))),
        Compression::Zstd => Box::new(zstd::Decoder::new(raw).map_err(|source| SourceError::io(&file.path, source))?),
    };
    Ok(Box::new(BufReader::with_capacity(1 << 16, inner)))
}

/// A consumer of raw JSON-text records (UTF-8 checked) that may take a record without a
/// `Value` being built for it (the vendor fast paths); returning `false` hands the record
/// on as usual.
pub type TextHook<'a> = &'a mut dyn FnMut(&str) -> bool;

/// A consumer of whole Parquet record batches (the columnar fast paths): it takes every
/// row it can and pushes the indices (0-based within the batch, ascending) of the rows it
/// declines into the `Vec`, which the reader then hands on as [`Record`]s as usual.
pub type BatchHook<'a> = &'a mut dyn FnMut(&arrow_array::RecordBatch, &mut Vec<usize>);

/// Reads every record of `file`, in file order, handing each to `each`; NDJSON lines are
/// offered to `hook` and Parquet batches to `batch_hook` first. Rows a batch hook takes
/// produce no record; the others keep their row numbers in the file.
pub fn read_file_with(
    file: &InputFile,
    explicit: Option<FileType>,
    hook: Option<TextHook>,
    batch_hook: Option<BatchHook>,
    each: &mut dyn FnMut(Record),
) -> Result<(), SourceError> {
    let (kind, compression) = detect(&file.path, explicit)?;
    match kind {
        FileType::Ndjson => ndjson::read(&file.path, open_decoded(file, compression, None)?, hook, each),
        FileType::Csv => csv::read(&file.path, open_decoded(file, compression, None)?, each),
        FileType::Parquet => {
            if compression != Compression::None {
                return Err(SourceError::Decode {
                    path: file.path.clone(),
                    message: "compressed Parquet files are not supported (Parquet compresses internally)".into(),
                });
            }
            match &file.bucket {
                Some(b) => parquet::read_s3(
                    &file.path,
                    b.parquet_reader(s3_key(b, file), file.size, file.etag.clone()),
                    batch_hook,
                    each,
                ),
                None => parquet::read(&file.path, batch_hook, each),
            }
        }
    }
}

/// The footer of `file` when it is a Parquet file (read on its own, before the rows).
pub fn parquet_footer(file: &InputFile, explicit: Option<FileType>) -> Result<Option<Footer>, SourceError> {
    match detect(&file.path, explicit)? {
        (FileType::Parquet, Compression::None) => match &file.bucket {
            None => parquet::footer(&file.path).map(Some),
            Some(b) => parquet::footer_s3(
                &file.path,
                b.parquet_reader(s3_key(b, file), file.size, file.etag.clone()),
            )
            .map(Some),
        },
        _ => Ok(None),
    }
}

/// What `validate` reads of a file's layout from its head.
#[derive(Debug, Clone, PartialEq)]
pub enum Layout {
    /// Top-level column names: a Parquet schema, a CSV header.
    Columns(Vec<String>),
    /// The first record of an NDJSON file.
    FirstRecord(Value),
    /// No record at all.
    Empty,
}

/// Blank lines `validate` skips looking for an NDJSON file's first record.
const PROBE_LINES: u64 = 1000;

/// Longest raw text of a record kept in a rejects file entry.
pub(crate) const RAW_LIMIT: usize = 2048;

/// Opens `file` and reads its layout: the Parquet schema, the CSV header or the first
/// NDJSON record (for `validate`).
pub fn probe_file(file: &InputFile, explicit: Option<FileType>) -> Result<Layout, SourceError> {
    let (kind, compression) = detect(&file.path, explicit)?;
    match (kind, &file.bucket) {
        (FileType::Parquet, None) => parquet::probe(&file.path),
        (FileType::Parquet, Some(b)) => parquet::probe_s3(
            &file.path,
            b.parquet_reader(s3_key(b, file), file.size, file.etag.clone()),
        ),
        (FileType::Csv, _) => csv::header(&file.path, open_decoded(file, compression, Some(PROBE_CHUNK))?),
        (FileType::Ndjson, _) => {
            let mut r = open_decoded(file, compression, Some(PROBE_CHUNK))?;
            let mut buf = Vec::new();
            for line in 1..=PROBE_LINES {
                buf.clear();
                let n = r
                    .read_until(b'\n', &mut buf)
                    .map_err(|source| SourceError::io(&file.path, source))?;
                if n == 0 {
                    return Ok(Layout::Empty);
                }
                let Some(text) = ndjson::record_text(&buf, line) else {
                    continue;
                };
                return serde_json::from_slice(text)
                    .map(Layout::FirstRecord)
                    .map_err(|e| SourceError::Decode {
                        path: file.path.clone(),
                        message: format!("the first record is not valid JSON: {e}"),
                    });
            }
            Ok(Layout::Empty)
        }
    }
}

/// Parses a JSON-text column value (`properties`, `context`) into the object it holds.
pub(crate) fn parse_json_column(name: &str, v: Value) -> Result<Value, String> {
    match v {
        Value::String(s) if s.trim().is_empty() => Ok(Value::Null),
        Value::String(s) => serde_json::from_str(&s).map_err(|e| format!("column `{name}` is not valid JSON: {e}")),
        other => Ok(other),
    }
}

/// Columns whose text holds a JSON document in Parquet/CSV exports: event properties, and
/// the payloads of Mixpanel `/groups` operations written one column per operator.
pub(crate) const JSON_TEXT_COLUMNS: [&str; 8] = [
    "properties",
    "context",
    "traits",
    "$set",
    "$set_once",
    "$unset",
    "$union",
    "$remove",
];
