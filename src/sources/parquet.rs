//! Parquet inputs, read through arrow-rs and turned into JSON-shaped records: each
//! column becomes a field, and JSON-text columns (`properties`, `context`) are parsed.
//! Local files use the synchronous reader; S3 objects the async one over ranged GETs.
//! A [`BatchHook`] sees each batch first, and only the rows it declines become records.

use std::fs::File;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use futures::StreamExt;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use parquet::basic::Encoding;
use parquet::errors::ParquetError;
use parquet::file::metadata::ColumnChunkMetaData;
use parquet::file::statistics::Statistics;
use serde_json::{Map, Number, Value};

use super::{parse_json_column, BatchHook, Position, Record, SourceError, Unreadable, JSON_TEXT_COLUMNS};
use crate::storage::{block_on, ParquetObjectReader, StorageError};

/// Runs arrow-rs on a file: some corrupt files trip its assertions (a panic, "column start
/// and length should not be negative") instead of returning an error. Such a panic becomes
/// the file's decode error, so the run fails cleanly (SPEC §7) rather than aborting, and
/// stays off stderr (the error line is the cause). Our own code (the batch hooks) runs
/// outside the guard: its panics stay bugs.
fn guarded<T>(path: &str, f: impl FnOnce() -> Result<T, SourceError>) -> Result<T, SourceError> {
    quiet_panics::install();
    quiet_panics::QUIET.set(true);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    quiet_panics::QUIET.set(false);
    r.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic".into());
        Err(decode_err(
            path,
            format!("corrupt Parquet file (the reader failed: {what})"),
        ))
    })
}

/// A panic hook that stays silent on the threads inside [`guarded`].
mod quiet_panics {
    use std::cell::Cell;
    use std::sync::Once;

    thread_local! {
        pub(super) static QUIET: Cell<bool> = const { Cell::new(false) };
    }

    pub(super) fn install() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if !QUIET.get() {
                    previous(info);
                }
            }));
        });
    }
}

fn decode_err(path: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError::Decode {
        path: path.to_string(),
        message: e.to_string(),
    }
}

pub(super) fn probe(path: &str) -> Result<super::Layout, SourceError> {
    let file = File::open(path).map_err(|source| SourceError::Io {
        path: path.to_string(),
        source,
    })?;
    let builder = guarded(path, || {
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| decode_err(path, e))
    })?;
    Ok(columns(builder.schema()))
}

/// A schema's top-level column names.
fn columns(schema: &Schema) -> super::Layout {
    super::Layout::Columns(schema.fields().iter().map(|f| f.name().clone()).collect())
}

pub(super) fn read(path: &str, hook: Option<BatchHook>, each: &mut dyn FnMut(Record)) -> Result<(), SourceError> {
    #[cfg(unix)]
    let file = positioned::PositionedFile::open(path);
    #[cfg(not(unix))]
    let file = File::open(path);
    let file = file.map_err(|source| SourceError::Io {
        path: path.to_string(),
        source,
    })?;
    let mut reader = guarded(path, || {
        let meta = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
            .and_then(keep_dictionaries)
            .map_err(|e| decode_err(path, e))?;
        ParquetRecordBatchReaderBuilder::new_with_metadata(file, meta)
            .with_batch_size(8192)
            .build()
            .map_err(|e| decode_err(path, e))
    })?;
    let mut emit = Emitter::new(hook);
    while let Some(batch) = guarded(path, || reader.next().transpose().map_err(|e| decode_err(path, e)))? {
        emit.batch(&batch, each);
    }
    Ok(())
}

/// Positioned reads of local files (Unix); elsewhere arrow-rs's own `File` reader is used.
#[cfg(unix)]
mod positioned {
    use std::fs::File;
    use std::os::unix::fs::FileExt;
    use std::sync::Arc;

    use parquet::errors::{ParquetError, Result};
    use parquet::file::reader::{ChunkReader, Length};

    /// A local Parquet file read with positioned reads (`pread`). arrow-rs reads a `File`
    /// page by page, and for each page clones the handle, seeks, reads and closes it twice
    /// (the header through an 8 KiB buffer, then the page): eight system calls a page, ~100k
    /// pages in a 100M-event run. Here a page costs two reads and no handle.
    pub(super) struct PositionedFile {
        file: Arc<File>,
        len: u64,
    }

    /// Bytes read ahead for a page header (usually well under this; a longer one is read on).
    const HEADER_READ: usize = 1024;

    impl PositionedFile {
        pub(super) fn open(path: &str) -> std::io::Result<Self> {
            let file = File::open(path)?;
            let len = file.metadata()?.len();
            Ok(PositionedFile {
                file: Arc::new(file),
                len,
            })
        }
    }

    /// Reads `file` onwards from `pos`.
    pub(super) struct ReadAt {
        file: Arc<File>,
        pos: u64,
    }

    impl std::io::Read for ReadAt {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = self.file.read_at(buf, self.pos)?;
            self.pos += n as u64;
            Ok(n)
        }
    }

    impl Length for PositionedFile {
        fn len(&self) -> u64 {
            self.len
        }
    }

    impl ChunkReader for PositionedFile {
        type T = std::io::BufReader<ReadAt>;

        fn get_read(&self, start: u64) -> Result<Self::T> {
            let at = ReadAt {
                file: Arc::clone(&self.file),
                pos: start,
            };
            Ok(std::io::BufReader::with_capacity(HEADER_READ, at))
        }

        fn get_bytes(&self, start: u64, length: usize) -> Result<bytes::Bytes> {
            let mut buf = vec![0; length];
            self.file
                .read_exact_at(&mut buf, start)
                .map_err(|e| ParquetError::External(Box::new(e)))?;
            Ok(buf.into())
        }
    }

    #[cfg(test)]
    mod tests {
        use std::io::Read;

        use super::*;

        #[test]
        fn positioned_reads_give_the_files_bytes_and_fail_past_its_end() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f");
            let data: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
            std::fs::write(&path, &data).unwrap();
            let f = PositionedFile::open(path.to_str().unwrap()).unwrap();
            assert_eq!(f.len(), 5000);
            assert_eq!(&f.get_bytes(7, 3000).unwrap()[..], &data[7..3007]);
            assert_eq!(&f.get_bytes(4990, 10).unwrap()[..], &data[4990..]);
            assert!(f.get_bytes(4990, 11).is_err(), "a read past the end is an error");
            // Through the header buffer and past it, from two readers at once.
            let (mut a, mut b) = (f.get_read(100).unwrap(), f.get_read(4000).unwrap());
            let mut all = Vec::new();
            a.read_to_end(&mut all).unwrap();
            assert_eq!(all, &data[100..]);
            let mut head = [0; 16];
            b.read_exact(&mut head).unwrap();
            assert_eq!(head, data[4000..4016]);
        }
    }
}

/// What a file's footer tells before its rows are read.
pub struct Footer(ArrowReaderMetadata);

impl Footer {
    /// Whether the file has a top-level column `name`.
    pub fn has_column(&self, name: &str) -> bool {
        self.0.schema().fields().iter().any(|f| f.name() == name)
    }

    /// The number of rows the file holds.
    pub fn rows(&self) -> u64 {
        u64::try_from(self.0.metadata().file_metadata().num_rows()).unwrap_or(0)
    }

    /// The smallest and largest value of top-level column `name`, a signed 32- or 64-bit
    /// integer, over the whole file, from its row-group statistics: `None` unless exactly
    /// one column has that name and every row group holding values records both bounds.
    /// Nulls are not counted (they hold no value).
    pub fn int_range(&self, name: &str) -> Option<(i64, i64)> {
        let schema = self.0.schema();
        let mut named = schema.fields().iter().enumerate().filter(|(_, f)| f.name() == name);
        let (root, field) = named.next()?;
        if named.next().is_some() || !matches!(field.data_type(), DataType::Int32 | DataType::Int64) {
            return None;
        }
        let file = self.0.metadata();
        let descr = file.file_metadata().schema_descr();
        let leaf = (0..descr.num_columns()).find(|&l| descr.get_column_root_idx(l) == root)?;
        let mut range: Option<(i64, i64)> = None;
        for rg in file.row_groups() {
            if rg.num_rows() == 0 {
                continue;
            }
            let c = rg.column(leaf);
            let (lo, hi) = match c.statistics()? {
                Statistics::Int32(s) => (i64::from(*s.min_opt()?), i64::from(*s.max_opt()?)),
                Statistics::Int64(s) => (*s.min_opt()?, *s.max_opt()?),
                _ => return None,
            };
            range = Some(range.map_or((lo, hi), |(a, b)| (a.min(lo), b.max(hi))));
        }
        range
    }
}

/// The footer of a local Parquet file.
pub(super) fn footer(path: &str) -> Result<Footer, SourceError> {
    let file = File::open(path).map_err(|source| SourceError::Io {
        path: path.to_string(),
        source,
    })?;
    guarded(path, || {
        ArrowReaderMetadata::load(&file, ArrowReaderOptions::new())
            .map(Footer)
            .map_err(|e| decode_err(path, e))
    })
}

/// The footer of an S3 Parquet object (ranged GETs only).
pub(super) fn footer_s3(path: &str, reader: ParquetObjectReader) -> Result<Footer, SourceError> {
    let mut reader = reader;
    guarded(path, || {
        block_on(ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new()))
            .map(Footer)
            .map_err(|e| parquet_err(path, e))
    })
}

/// A Parquet error, unwrapping an S3 failure carried inside it.
fn parquet_err(path: &str, e: parquet::errors::ParquetError) -> SourceError {
    match e {
        parquet::errors::ParquetError::External(inner) if inner.is::<StorageError>() => {
            SourceError::Storage(*inner.downcast::<StorageError>().expect("checked above"))
        }
        e => decode_err(path, e),
    }
}

/// Reads the footer of an S3 Parquet object (ranged GETs only).
pub(super) fn probe_s3(path: &str, reader: ParquetObjectReader) -> Result<super::Layout, SourceError> {
    let builder = guarded(path, || {
        block_on(ParquetRecordBatchStreamBuilder::new(reader)).map_err(|e| parquet_err(path, e))
    })?;
    Ok(columns(builder.schema()))
}

/// Reads an S3 Parquet object a row group at a time: each step fetches that row group's
/// column chunks by range (object_store coalesces and parallelises them) and decodes them
/// on the calling thread.
pub(super) fn read_s3(
    path: &str,
    reader: ParquetObjectReader,
    hook: Option<BatchHook>,
    each: &mut dyn FnMut(Record),
) -> Result<(), SourceError> {
    let mut reader = reader;
    let mut stream = guarded(path, || {
        let meta = block_on(ArrowReaderMetadata::load_async(&mut reader, ArrowReaderOptions::new()))
            .and_then(keep_dictionaries)
            .map_err(|e| parquet_err(path, e))?;
        ParquetRecordBatchStreamBuilder::new_with_metadata(reader, meta)
            .with_batch_size(8192)
            .build()
            .map_err(|e| parquet_err(path, e))
    })?;
    let mut emit = Emitter::new(hook);
    while let Some(batch) = guarded(path, || {
        block_on(stream.next()).transpose().map_err(|e| parquet_err(path, e))
    })? {
        emit.batch(&batch, each);
    }
    Ok(())
}

/// Has string columns whose every data page is dictionary-encoded (in every row group)
/// read as Arrow dictionaries: the reader then hands over the file's dictionary and its
/// keys instead of copying each row's text, and the columnar paths work out a value once
/// per dictionary entry (event names, group ids) instead of once per row. A column with a
/// plain page anywhere (a dictionary that overflowed, as unique ids do) is not read as a
/// dictionary (the reader would hash every value into a new one) but as string views: each
/// row points at its text in the decoded page, where a string column copies every value
/// and its offset (three 100M days: 10.00G → 9.80G instructions).
fn keep_dictionaries(meta: ArrowReaderMetadata) -> Result<ArrowReaderMetadata, ParquetError> {
    let file = meta.metadata();
    let descr = file.file_metadata().schema_descr();
    let schema = meta.schema();
    // Leaves by root field (same order as the Arrow fields, which are read unprojected).
    let mut leaves: Vec<Vec<usize>> = vec![Vec::new(); schema.fields().len()];
    for leaf in 0..descr.num_columns() {
        if let Some(l) = leaves.get_mut(descr.get_column_root_idx(leaf)) {
            l.push(leaf);
        }
    }
    let all_dictionary = |leaf: usize| {
        !file.row_groups().is_empty() && file.row_groups().iter().all(|rg| is_all_dictionary(rg.column(leaf)))
    };
    let dict = |t: &DataType| DataType::Dictionary(Box::new(DataType::Int32), Box::new(t.clone()));
    let mut changed = false;
    let fields: Vec<Arc<Field>> = schema
        .fields()
        .iter()
        .zip(&leaves)
        .map(|(f, leaves)| {
            let hinted = match (f.data_type(), leaves.as_slice()) {
                (DataType::Utf8, &[leaf]) if all_dictionary(leaf) => Some(dict(f.data_type())),
                (DataType::Utf8, &[_]) => Some(DataType::Utf8View),
                (DataType::List(item), &[leaf]) if *item.data_type() == DataType::Utf8 && all_dictionary(leaf) => {
                    let item = Field::new(item.name(), dict(item.data_type()), item.is_nullable())
                        .with_metadata(item.metadata().clone());
                    Some(DataType::List(Arc::new(item)))
                }
                _ => None,
            };
            match hinted {
                Some(t) => {
                    changed = true;
                    Arc::new(f.as_ref().clone().with_data_type(t))
                }
                None => f.clone(),
            }
        })
        .collect();
    if !changed {
        return Ok(meta);
    }
    let hinted = Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()));
    ArrowReaderMetadata::try_new(file.clone(), ArrowReaderOptions::new().with_schema(hinted))
}

/// Whether every data page of a column chunk is dictionary-encoded (Parquet's own
/// recipe: a dictionary page, and page encoding statistics with one dictionary encoding).
fn is_all_dictionary(c: &ColumnChunkMetaData) -> bool {
    c.dictionary_page_offset().is_some()
        && c.page_encoding_stats_mask()
            .is_some_and(|m| m.is_only(Encoding::PLAIN_DICTIONARY) || m.is_only(Encoding::RLE_DICTIONARY))
}

/// Turns batches into records, counting rows over the whole file.
struct Emitter<'h> {
    hook: Option<BatchHook<'h>>,
    /// Rows of the file before the current batch.
    rows: u64,
    declined: Vec<usize>,
}

impl<'h> Emitter<'h> {
    fn new(hook: Option<BatchHook<'h>>) -> Self {
        Emitter {
            hook,
            rows: 0,
            declined: Vec::new(),
        }
    }

    /// Emits the rows of `batch` the hook declines, or all of them without a hook.
    fn batch(&mut self, batch: &RecordBatch, each: &mut dyn FnMut(Record)) {
        let n = batch.num_rows();
        let schema = batch.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let mut emit = |i: usize| {
            each(Record {
                pos: Position::Row(self.rows + i as u64 + 1),
                value: row_value_named(batch, &names, i),
            })
        };
        match self.hook.as_mut() {
            None => (0..n).for_each(&mut emit),
            Some(hook) => {
                self.declined.clear();
                hook(batch, &mut self.declined);
                let mut last = None;
                for &i in &self.declined {
                    // A broken hook must not drop or repeat rows silently.
                    assert!(
                        i < n && last.is_none_or(|l| l < i),
                        "batch hook declined rows out of order or range: {i} after {last:?} of {n}"
                    );
                    last = Some(i);
                    emit(i);
                }
            }
        }
        self.rows += n as u64;
    }
}

/// Row `i` of `batch` as the record the general path reads.
#[cfg(test)]
pub(crate) fn row_value(batch: &RecordBatch, i: usize) -> Result<Value, Unreadable> {
    let schema = batch.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    row_value_named(batch, &names, i)
}

/// Row `i` of `batch` as a JSON object (`names`: the batch's column names).
fn row_value_named(batch: &RecordBatch, names: &[&str], i: usize) -> Result<Value, Unreadable> {
    let mut obj = Map::new();
    let mut bad = None;
    for (c, name) in names.iter().enumerate() {
        let v = cell(batch.column(c).as_ref(), i);
        let v = if JSON_TEXT_COLUMNS.contains(name) {
            match parse_json_column(name, v) {
                Ok(v) => v,
                Err(reason) => {
                    bad = Some(reason);
                    Value::Null
                }
            }
        } else {
            v
        };
        obj.insert((*name).to_string(), v);
    }
    match bad {
        None => Ok(Value::Object(obj)),
        Some(reason) => Err(Unreadable {
            reason,
            raw: Value::Object(obj).to_string(),
        }),
    }
}

fn micros_to_text(us: i64) -> Value {
    match chrono::DateTime::from_timestamp_micros(us) {
        Some(t) => Value::String(t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()),
        None => Value::Null,
    }
}

fn float(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// A decimal as the JSON number its text is: `12.50` → 12.5, `1042.00` → 1042 (an integer,
/// so `1042` the id), a 38-digit warehouse `NUMBER(38,0)` time → its integer.
fn decimal<T: DecimalType>(array: &dyn Array, scale: i8, i: usize) -> Value {
    let text = T::format_decimal(array.as_primitive::<T>().value(i), 0, scale);
    // Trailing fractional zeros would make serde read a float: `1042.00` is the integer.
    let integral = match text.split_once('.') {
        Some((int, frac)) if frac.bytes().all(|b| b == b'0') => int,
        _ => &text,
    };
    match serde_json::from_str::<Number>(integral) {
        // An integer past 64 bits (a `NUMBER(38,0)` id) as its digits: as a double, ids
        // that differ in the last digits would be one.
        Ok(n) if n.is_f64() && !integral.contains(['.', 'e', 'E']) => Value::String(integral.to_string()),
        Ok(n) => Value::Number(n),
        Err(_) => Value::Null,
    }
}

/// The JSON value of `array[i]`. Timestamps become RFC 3339 text so that every vendor's
/// time parser sees one representation.
fn cell(array: &dyn Array, i: usize) -> Value {
    if array.is_null(i) {
        return Value::Null;
    }
    match array.data_type() {
        DataType::Utf8 => Value::String(array.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Value::String(array.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => Value::String(array.as_string_view().value(i).to_string()),
        DataType::Boolean => Value::Bool(array.as_boolean().value(i)),
        DataType::Int8 => array.as_primitive::<Int8Type>().value(i).into(),
        DataType::Int16 => array.as_primitive::<Int16Type>().value(i).into(),
        DataType::Int32 => array.as_primitive::<Int32Type>().value(i).into(),
        DataType::Int64 => array.as_primitive::<Int64Type>().value(i).into(),
        DataType::UInt8 => array.as_primitive::<UInt8Type>().value(i).into(),
        DataType::UInt16 => array.as_primitive::<UInt16Type>().value(i).into(),
        DataType::UInt32 => array.as_primitive::<UInt32Type>().value(i).into(),
        DataType::UInt64 => array.as_primitive::<UInt64Type>().value(i).into(),
        // The float32's own shortest text (0.1, not 0.10000000149011612), as f64.
        DataType::Float32 => float(
            array
                .as_primitive::<Float32Type>()
                .value(i)
                .to_string()
                .parse()
                .unwrap_or(f64::NAN),
        ),
        DataType::Float16 => float(array.as_primitive::<Float16Type>().value(i).to_f64()),
        DataType::Decimal32(_, s) => decimal::<Decimal32Type>(array, *s, i),
        DataType::Decimal64(_, s) => decimal::<Decimal64Type>(array, *s, i),
        DataType::Decimal128(_, s) => decimal::<Decimal128Type>(array, *s, i),
        DataType::Decimal256(_, s) => decimal::<Decimal256Type>(array, *s, i),
        DataType::Float64 => float(array.as_primitive::<Float64Type>().value(i)),
        DataType::Timestamp(unit, _) => {
            let v = match unit {
                TimeUnit::Second => array
                    .as_primitive::<TimestampSecondType>()
                    .value(i)
                    .saturating_mul(1_000_000),
                TimeUnit::Millisecond => array
                    .as_primitive::<TimestampMillisecondType>()
                    .value(i)
                    .saturating_mul(1000),
                TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().value(i),
                TimeUnit::Nanosecond => array
                    .as_primitive::<TimestampNanosecondType>()
                    .value(i)
                    .div_euclid(1000),
            };
            micros_to_text(v)
        }
        DataType::Date32 => {
            let d = array.as_primitive::<Date32Type>().value(i);
            Value::String(crate::calendar::format_day(d))
        }
        DataType::Date64 => {
            let ms = array.as_primitive::<Date64Type>().value(i);
            Value::String(crate::calendar::format_day(ms.div_euclid(86_400_000) as i32))
        }
        DataType::List(_) => list(array.as_list::<i32>().value(i).as_ref()),
        DataType::LargeList(_) => list(array.as_list::<i64>().value(i).as_ref()),
        DataType::FixedSizeList(..) => list(array.as_fixed_size_list().value(i).as_ref()),
        // An object of its entries, keys as text.
        DataType::Map(..) => {
            let entries = array.as_map().value(i);
            let (keys, values) = (entries.column(0), entries.column(1));
            let mut obj = Map::new();
            for j in 0..entries.len() {
                let key = match cell(keys.as_ref(), j) {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                obj.insert(key, cell(values.as_ref(), j));
            }
            Value::Object(obj)
        }
        DataType::Struct(fields) => {
            let s = array.as_struct();
            let mut obj = Map::new();
            for (f, col) in fields.iter().zip(s.columns()) {
                obj.insert(f.name().clone(), cell(col.as_ref(), i));
            }
            Value::Object(obj)
        }
        DataType::Binary => Value::String(String::from_utf8_lossy(array.as_binary::<i32>().value(i)).into_owned()),
        DataType::LargeBinary => Value::String(String::from_utf8_lossy(array.as_binary::<i64>().value(i)).into_owned()),
        DataType::FixedSizeBinary(_) => {
            Value::String(String::from_utf8_lossy(array.as_fixed_size_binary().value(i)).into_owned())
        }
        DataType::Dictionary(_, _) => {
            let d = array.as_any_dictionary();
            cell(d.values().as_ref(), dictionary_key(d.keys(), d.values().len(), i))
        }
        // Durations, intervals, times of day, unions: no value an event or an operation
        // reads (their debug text had become group ids).
        _ => Value::Null,
    }
}

/// `normalized_keys()[i]` of a dictionary with `len` values, without normalizing every
/// key of the array for each cell.
fn dictionary_key(keys: &dyn Array, len: usize, i: usize) -> usize {
    let k = match keys.data_type() {
        DataType::Int8 => keys.as_primitive::<Int8Type>().value(i) as usize,
        DataType::Int16 => keys.as_primitive::<Int16Type>().value(i) as usize,
        DataType::Int32 => keys.as_primitive::<Int32Type>().value(i) as usize,
        DataType::Int64 => keys.as_primitive::<Int64Type>().value(i) as usize,
        DataType::UInt8 => keys.as_primitive::<UInt8Type>().value(i) as usize,
        DataType::UInt16 => keys.as_primitive::<UInt16Type>().value(i) as usize,
        DataType::UInt32 => keys.as_primitive::<UInt32Type>().value(i) as usize,
        DataType::UInt64 => keys.as_primitive::<UInt64Type>().value(i) as usize,
        other => unreachable!("dictionary keys of type {other}"),
    };
    k.min(len.saturating_sub(1))
}

fn list(values: &dyn Array) -> Value {
    Value::Array((0..values.len()).map(|j| cell(values, j)).collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{DictionaryArray, Int64Array, StringArray};
    use arrow_schema::{Field, Schema};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;
    use serde_json::json;

    use super::*;
    use crate::sources::{read_file_with, InputFile};

    fn input(p: &std::path::Path) -> InputFile {
        InputFile {
            path: p.to_str().unwrap().to_string(),
            size: std::fs::metadata(p).unwrap().len(),
            mtime: 0,
            etag: None,
            bucket: None,
        }
    }

    /// A file of `columns`, `rows_per_group` rows a row group, statistics as `stats`.
    fn write(p: &std::path::Path, columns: Vec<(&str, arrow_array::ArrayRef)>, rows_per_group: usize, stats: bool) {
        use parquet::file::properties::EnabledStatistics;
        let fields: Vec<Field> = columns
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(schema.clone(), columns.into_iter().map(|(_, a)| a).collect()).unwrap();
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(rows_per_group))
            .set_statistics_enabled(if stats {
                EnabledStatistics::Chunk
            } else {
                EnabledStatistics::None
            })
            .build();
        let mut w = ArrowWriter::try_new(std::fs::File::create(p).unwrap(), schema, Some(props)).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
    }

    #[test]
    fn footer_gives_an_integer_columns_range_over_every_row_group() {
        use arrow_array::{ArrayRef, Int32Array};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.parquet");
        let time: ArrayRef = Arc::new(Int64Array::from(vec![
            Some(50),
            None,
            Some(7),
            Some(90),
            None,
            Some(-3),
        ]));
        let small: ArrayRef = Arc::new(Int32Array::from(vec![4, 5, 6, 1, 2, 3]));
        let text: ArrayRef = Arc::new(StringArray::from(vec!["a"; 6]));
        write(
            &p,
            vec![("time", time.clone()), ("n", small), ("s", text.clone())],
            2,
            true,
        );
        let f = footer(p.to_str().unwrap()).unwrap();
        assert_eq!(f.int_range("time"), Some((-3, 90)));
        assert_eq!(f.int_range("n"), Some((1, 6)));
        assert_eq!(f.int_range("s"), None, "not an integer");
        assert_eq!(f.int_range("missing"), None);
        assert!(f.has_column("s") && !f.has_column("properties"));
        let mixpanel_span = crate::normalize::mixpanel::parquet_time_span_us;
        assert_eq!(mixpanel_span(&f), Some((-3_000_000, 90_000_000)));
        // A `properties` column may give rows another time.
        write(&p, vec![("time", time.clone()), ("properties", text.clone())], 2, true);
        assert_eq!(mixpanel_span(&footer(p.to_str().unwrap()).unwrap()), None);

        // Without statistics, or with two columns of the name, the footer cannot tell.
        write(&p, vec![("time", time.clone())], 2, false);
        assert_eq!(footer(p.to_str().unwrap()).unwrap().int_range("time"), None);
        write(&p, vec![("time", time.clone()), ("time", time)], 2, true);
        assert_eq!(footer(p.to_str().unwrap()).unwrap().int_range("time"), None);
        // A row group of nulls only has no bounds to give.
        let nulls: ArrayRef = Arc::new(Int64Array::from(vec![Some(5), Some(6), None, None]));
        write(&p, vec![("time", nulls)], 2, true);
        assert_eq!(footer(p.to_str().unwrap()).unwrap().int_range("time"), None);
    }

    /// Every byte of a small file flipped in turn: reading it gives rows or an error, never
    /// a panic (arrow-rs asserts on some corrupt metadata).
    #[test]
    fn corrupt_files_are_errors_not_panics() {
        use arrow_array::builder::{ListBuilder, StringBuilder};
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.parquet");
        let mut ids = ListBuilder::new(StringBuilder::new());
        for i in 0..40 {
            ids.values().append_value(format!("c{}", i % 3));
            ids.append(true);
        }
        let columns: Vec<(&str, arrow_array::ArrayRef)> = vec![
            ("event", Arc::new(StringArray::from(vec!["a"; 40]))),
            (
                "time",
                Arc::new(Int64Array::from_iter_values(1_704_103_200..1_704_103_240)),
            ),
            ("company_id", Arc::new(ids.finish())),
        ];
        write(&p, columns, 16, true);
        let bytes = std::fs::read(&p).unwrap();
        let bad = dir.path().join("bad.parquet");
        let mut errors = 0;
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            std::fs::write(&bad, &b).unwrap();
            let path = bad.to_str().unwrap();
            let read = std::panic::catch_unwind(|| read(path, None, &mut |_| {}).is_err());
            let footer = std::panic::catch_unwind(|| footer(path).is_err());
            assert!(read.is_ok() && footer.is_ok(), "byte {i} of {}: a panic", bytes.len());
            errors += usize::from(read.unwrap());
        }
        assert!(errors > bytes.len() / 4, "{errors} errors");
    }

    #[test]
    fn batch_hook_leaves_only_declined_rows_with_file_row_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.parquet");
        let rows = 20_000i64;
        let schema = Arc::new(Schema::new(vec![
            Field::new("event", DataType::Utf8, false),
            Field::new("n", DataType::Int64, false),
        ]));
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(3000))
            .build();
        let mut w = ArrowWriter::try_new(File::create(&p).unwrap(), schema.clone(), Some(props)).unwrap();
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(StringArray::from(vec!["a"; rows as usize])),
                Arc::new(Int64Array::from_iter_values(0..rows)),
            ],
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();

        // Declines the first and last row of each batch and every row whose `n` ends in 7.
        let mut sizes = Vec::new();
        let mut expect = Vec::new();
        let mut seen = 0u64;
        let mut hook = |b: &RecordBatch, declined: &mut Vec<usize>| {
            let n = b.column(1).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                if i == 0 || i + 1 == b.num_rows() || n.value(i) % 10 == 7 {
                    declined.push(i);
                    expect.push(seen + i as u64 + 1);
                }
            }
            seen += b.num_rows() as u64;
            sizes.push(b.num_rows());
        };
        let mut got = Vec::new();
        read_file_with(&input(&p), None, None, Some(&mut hook), &mut |r| got.push(r)).unwrap();
        assert!(sizes.len() > 2, "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), rows as usize);
        let positions: Vec<u64> = got
            .iter()
            .map(|r| match r.pos {
                Position::Row(n) => n,
                Position::Line(_) => unreachable!(),
            })
            .collect();
        assert_eq!(positions, expect);
        for (r, row) in got.iter().zip(&expect) {
            assert_eq!(r.value.as_ref().unwrap()["n"], serde_json::json!(row - 1));
        }

        // Without a hook every row is a record, as before.
        let mut all = 0u64;
        read_file_with(&input(&p), None, None, None, &mut |r| {
            all += 1;
            assert_eq!(r.pos, Position::Row(all));
        })
        .unwrap();
        assert_eq!(all, rows as u64);
    }

    #[test]
    fn dictionary_cells_read_their_own_key() {
        let d: DictionaryArray<Int8Type> = vec![Some("x"), None, Some("y"), Some("x")].into_iter().collect();
        let got: Vec<Value> = (0..4).map(|i| cell(&d, i)).collect();
        assert_eq!(got, [json!("x"), Value::Null, json!("y"), json!("x")]);
    }

    /// Warehouse column types read as the JSON value they hold.
    #[test]
    fn decimals_floats_maps_and_unknown_types() {
        use arrow_array::builder::{MapBuilder, StringBuilder};
        use arrow_array::{Decimal128Array, DurationSecondArray, Float32Array};

        let amounts = Decimal128Array::from(vec![1250, 104_200, -50, 0])
            .with_precision_and_scale(20, 2)
            .unwrap();
        let got: Vec<Value> = (0..4).map(|i| cell(&amounts, i)).collect();
        assert_eq!(got, [json!(12.5), json!(1042), json!(-0.5), json!(0)]);
        assert!(got[1].is_i64(), "1042.00 is the integer 1042");
        // NUMBER(38,0) epoch seconds, and a scale below zero.
        let times = Decimal128Array::from(vec![1_704_103_200, 17])
            .with_precision_and_scale(38, 0)
            .unwrap();
        assert_eq!(cell(&times, 0), json!(1_704_103_200));
        let hundreds = Decimal128Array::from(vec![17])
            .with_precision_and_scale(10, -2)
            .unwrap();
        assert_eq!(cell(&hundreds, 0), json!(1700));
        let big = Decimal128Array::from(vec![12_345_678_901_234_567_890_123, -12_345_678_901_234_567_890_124])
            .with_precision_and_scale(38, 0)
            .unwrap();
        assert_eq!(
            (cell(&big, 0), cell(&big, 1)),
            (json!("12345678901234567890123"), json!("-12345678901234567890124"))
        );

        let f = Float32Array::from(vec![0.1f32, 2.5]);
        assert_eq!((cell(&f, 0), cell(&f, 1)), (json!(0.1), json!(2.5)));

        let mut m = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        m.keys().append_value("plan");
        m.values().append_value("pro");
        m.append(true).unwrap();
        m.append(false).unwrap();
        let m = m.finish();
        assert_eq!((cell(&m, 0), cell(&m, 1)), (json!({"plan": "pro"}), Value::Null));

        assert_eq!(cell(&DurationSecondArray::from(vec![5]), 0), Value::Null);
    }

    #[test]
    fn rows_become_objects_with_parsed_properties() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("e.parquet");
        let schema = Arc::new(Schema::new(vec![
            Field::new("event", DataType::Utf8, false),
            Field::new("properties", DataType::Utf8, true),
            Field::new("n", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(vec!["a", "b"])),
                Arc::new(StringArray::from(vec![Some(r#"{"x":1}"#), Some("{bad")])),
                Arc::new(Int64Array::from(vec![Some(5), None])),
            ],
        )
        .unwrap();
        let mut w = ArrowWriter::try_new(File::create(&p).unwrap(), schema, None).unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        let mut got = Vec::new();
        read(p.to_str().unwrap(), None, &mut |r| got.push(r)).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].pos, Position::Row(1));
        assert_eq!(
            got[0].value.as_ref().unwrap(),
            &json!({"event":"a","properties":{"x":1},"n":5})
        );
        assert!(got[1]
            .value
            .as_ref()
            .unwrap_err()
            .reason
            .contains("`properties` is not valid JSON"));
    }
}
