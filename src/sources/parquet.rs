//! Parquet inputs, read through arrow-rs and turned into JSON-shaped records: each
//! column becomes a field, and JSON-text columns (`properties`, `context`) are parsed.
//! Local files use the synchronous reader; S3 objects the async one over ranged GETs.

use std::fs::File;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use futures::StreamExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::ParquetRecordBatchStreamBuilder;
use serde_json::{Map, Number, Value};

use super::{parse_json_column, Position, Record, SourceError, Unreadable, JSON_TEXT_COLUMNS};
use crate::storage::{block_on, ParquetObjectReader, StorageError};

fn decode_err(path: &str, e: impl std::fmt::Display) -> SourceError {
    SourceError::Decode {
        path: path.to_string(),
        message: e.to_string(),
    }
}

pub(super) fn probe(path: &str) -> Result<(), SourceError> {
    let file = File::open(path).map_err(|source| SourceError::Io {
        path: path.to_string(),
        source,
    })?;
    ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| decode_err(path, e))?;
    Ok(())
}

pub(super) fn read(path: &str, each: &mut dyn FnMut(Record)) -> Result<(), SourceError> {
    let file = File::open(path).map_err(|source| SourceError::Io {
        path: path.to_string(),
        source,
    })?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| decode_err(path, e))?
        .with_batch_size(8192)
        .build()
        .map_err(|e| decode_err(path, e))?;
    let mut row = 0u64;
    for batch in reader {
        let batch = batch.map_err(|e| decode_err(path, e))?;
        emit_batch(&batch, &mut row, each);
    }
    Ok(())
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
pub(super) fn probe_s3(path: &str, reader: ParquetObjectReader) -> Result<(), SourceError> {
    block_on(ParquetRecordBatchStreamBuilder::new(reader)).map_err(|e| parquet_err(path, e))?;
    Ok(())
}

/// Reads an S3 Parquet object a row group at a time: each step fetches that row group's
/// column chunks by range (object_store coalesces and parallelises them) and decodes them
/// on the calling thread.
pub(super) fn read_s3(
    path: &str,
    reader: ParquetObjectReader,
    each: &mut dyn FnMut(Record),
) -> Result<(), SourceError> {
    let mut stream = block_on(ParquetRecordBatchStreamBuilder::new(reader))
        .map_err(|e| parquet_err(path, e))?
        .with_batch_size(8192)
        .build()
        .map_err(|e| parquet_err(path, e))?;
    let mut row = 0u64;
    while let Some(batch) = block_on(stream.next()) {
        let batch = batch.map_err(|e| parquet_err(path, e))?;
        emit_batch(&batch, &mut row, each);
    }
    Ok(())
}

fn emit_batch(batch: &RecordBatch, row: &mut u64, each: &mut dyn FnMut(Record)) {
    let schema = batch.schema();
    let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    for i in 0..batch.num_rows() {
        *row += 1;
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
        let value = match bad {
            None => Ok(Value::Object(obj)),
            Some(reason) => Err(Unreadable {
                reason,
                raw: Value::Object(obj).to_string(),
            }),
        };
        each(Record {
            pos: Position::Row(*row),
            value,
        });
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
        DataType::Float32 => float(array.as_primitive::<Float32Type>().value(i) as f64),
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
        DataType::List(_) => list(array.as_list::<i32>().value(i).as_ref()),
        DataType::LargeList(_) => list(array.as_list::<i64>().value(i).as_ref()),
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
        DataType::Dictionary(_, _) => {
            let d = array.as_any_dictionary();
            let key = d.normalized_keys()[i];
            cell(d.values().as_ref(), key)
        }
        _ => Value::String(format!(
            "{:?}",
            arrow_array::array::make_array(array.to_data()).slice(i, 1)
        )),
    }
}

fn list(values: &dyn Array) -> Value {
    Value::Array((0..values.len()).map(|j| cell(values, j)).collect())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{Int64Array, StringArray};
    use arrow_schema::{Field, Schema};
    use parquet::arrow::ArrowWriter;

    use super::*;

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
        read(p.to_str().unwrap(), &mut |r| got.push(r)).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].pos, Position::Row(1));
        assert_eq!(
            got[0].value.as_ref().unwrap(),
            &serde_json::json!({"event":"a","properties":{"x":1},"n":5})
        );
        assert!(got[1]
            .value
            .as_ref()
            .unwrap_err()
            .reason
            .contains("`properties` is not valid JSON"));
    }
}
