//! Parquet encoding of a [`Table`] slice.

use std::path::Path;
use std::sync::Arc;

use arrow_array::{Array, ArrayRef, Date32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;

use super::SinkError;
use crate::tables::{Table, Values};

pub(super) fn write(
    table: &Table,
    rows: std::ops::Range<usize>,
    skip: Option<&str>,
    path: &Path,
) -> Result<(), SinkError> {
    let enc = |e: &dyn std::fmt::Display| SinkError::Encode {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for col in table.columns.iter().filter(|c| Some(c.name) != skip) {
        let r = rows.clone();
        let (dt, nullable, array): (DataType, bool, ArrayRef) = match &col.values {
            Values::Utf8(v) => (DataType::Utf8, false, Arc::new(StringArray::from_iter_values(&v[r]))),
            Values::Dict(d, v) => (
                DataType::Utf8,
                false,
                Arc::new(StringArray::from_iter_values(v[r].iter().map(|&c| d.resolve(c)))),
            ),
            Values::Int64(v) => (DataType::Int64, false, Arc::new(Int64Array::from(v[r].to_vec()))),
            Values::Date(v) => (DataType::Date32, false, Arc::new(Date32Array::from(v[r].to_vec()))),
            Values::TimestampUs(v) => {
                let a = TimestampMicrosecondArray::from(v[r].to_vec()).with_timezone("UTC");
                (a.data_type().clone(), true, Arc::new(a))
            }
        };
        debug_assert!(matches!(dt, DataType::Timestamp(TimeUnit::Microsecond, _)) || !nullable);
        fields.push(Field::new(col.name, dt, nullable));
        arrays.push(array);
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), arrays).map_err(|e| enc(&e))?;
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(1 << 20))
        .build();
    let file = std::fs::File::create(path).map_err(super::io_err(path))?;
    let mut w = ArrowWriter::try_new(file, schema, Some(props)).map_err(|e| enc(&e))?;
    w.write(&batch).map_err(|e| enc(&e))?;
    w.close().map_err(|e| enc(&e))?;
    Ok(())
}
