//! CSV encoding of a [`Table`] slice: a header row, dates as `YYYY-MM-DD`, timestamps as
//! RFC 3339 UTC with microseconds, nulls as empty cells.

use std::io::Write;
use std::path::Path;

use super::SinkError;
use crate::calendar;
use crate::tables::{Table, Values};

pub(super) fn write(
    table: &Table,
    rows: std::ops::Range<usize>,
    skip: Option<&str>,
    path: &Path,
) -> Result<(), SinkError> {
    let file = std::fs::File::create(path).map_err(super::io_err(path))?;
    let mut w = csv::Writer::from_writer(std::io::BufWriter::new(file));
    let cols: Vec<_> = table.columns.iter().filter(|c| Some(c.name) != skip).collect();
    let enc = |e: csv::Error| SinkError::Encode {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    w.write_record(cols.iter().map(|c| c.name)).map_err(enc)?;
    let mut cells: Vec<String> = Vec::with_capacity(cols.len());
    for i in rows {
        cells.clear();
        for c in &cols {
            cells.push(match &c.values {
                Values::Utf8(v) => v[i].clone(),
                Values::Dict(d, v) => d.resolve(v[i]).to_string(),
                Values::Int64(v) => v[i].to_string(),
                Values::Date(v) => calendar::format_day(v[i]),
                Values::TimestampUs(v) => v[i]
                    .and_then(chrono::DateTime::from_timestamp_micros)
                    .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
                    .unwrap_or_default(),
            });
        }
        w.write_record(&cells).map_err(enc)?;
    }
    let mut inner = w.into_inner().map_err(|e| SinkError::Encode {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    inner.flush().map_err(super::io_err(path))?;
    Ok(())
}
