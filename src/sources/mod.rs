//! Input discovery and reading: globs become a sorted file list, and each file becomes a
//! stream of JSON-shaped [`Record`]s whatever its type (NDJSON, CSV, Parquet) and
//! compression (`.gz`, `.zst`). What a record *means* is the `normalize` module's job.

mod csv;
mod list;
mod ndjson;
mod parquet;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use serde_json::Value;

pub use list::{list_inputs, InputFile};

use crate::job::FileType;

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
    #[error("`{0}`: S3 inputs are not supported by this build yet")]
    S3Unsupported(String),
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

fn open_decoded(path: &str, compression: Compression) -> Result<Box<dyn BufRead + Send>, SourceError> {
    let io = |source| SourceError::Io {
        path: path.to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let inner: Box<dyn Read + Send> = match compression {
        Compression::None => Box::new(file),
        // Multi-member gzip: concatenated `.gz` parts are common in exports.
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(BufReader::with_capacity(
            1 << 16,
            file,
        ))),
        Compression::Zstd => Box::new(zstd::Decoder::new(file).map_err(io)?),
    };
    Ok(Box::new(BufReader::with_capacity(1 << 16, inner)))
}

/// Reads every record of `file`, in file order, handing each to `each`.
pub fn read_file(
    file: &InputFile,
    explicit: Option<FileType>,
    each: &mut dyn FnMut(Record),
) -> Result<(), SourceError> {
    if file.path.starts_with("s3://") {
        return Err(SourceError::S3Unsupported(file.path.clone()));
    }
    let (kind, compression) = detect(&file.path, explicit)?;
    match kind {
        FileType::Ndjson => ndjson::read(&file.path, open_decoded(&file.path, compression)?, each),
        FileType::Csv => csv::read(&file.path, open_decoded(&file.path, compression)?, each),
        FileType::Parquet => {
            if compression != Compression::None {
                return Err(SourceError::Decode {
                    path: file.path.clone(),
                    message: "compressed Parquet files are not supported (Parquet compresses internally)".into(),
                });
            }
            parquet::read(&file.path, each)
        }
    }
}

/// Checks that `file` can be opened and its first record parsed (for `validate`).
pub fn probe_file(file: &InputFile, explicit: Option<FileType>) -> Result<(), SourceError> {
    let (kind, compression) = detect(&file.path, explicit)?;
    match kind {
        FileType::Parquet => parquet::probe(&file.path),
        _ => {
            let mut r = open_decoded(&file.path, compression)?;
            let mut buf = Vec::new();
            r.read_until(b'\n', &mut buf).map_err(|source| SourceError::Io {
                path: file.path.clone(),
                source,
            })?;
            Ok(())
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

/// Columns whose text holds a JSON document in Parquet/CSV exports.
pub(crate) const JSON_TEXT_COLUMNS: [&str; 3] = ["properties", "context", "traits"];
