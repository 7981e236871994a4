//! CSV with a header row. Cells are text (empty = null); JSON-text columns such as
//! `properties` are parsed into the objects they hold.

use std::io::BufRead;

use serde_json::{Map, Value};

use super::{parse_json_column, Position, Record, SourceError, Unreadable, JSON_TEXT_COLUMNS};

/// The header's column names (for `validate`).
pub(super) fn header(path: &str, r: Box<dyn BufRead + Send>) -> Result<super::Layout, SourceError> {
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(r);
    Ok(super::Layout::Columns(headers(path, &mut rdr)?))
}

fn headers(path: &str, rdr: &mut csv::Reader<Box<dyn BufRead + Send>>) -> Result<Vec<String>, SourceError> {
    Ok(rdr
        .headers()
        .map_err(|e| {
            if e.is_io_error() {
                if let csv::ErrorKind::Io(source) = e.into_kind() {
                    return SourceError::io(path, source);
                }
                unreachable!("checked above");
            }
            SourceError::Decode {
                path: path.to_string(),
                message: format!("bad CSV header: {e}"),
            }
        })?
        .iter()
        .map(str::to_string)
        .collect())
}

pub(super) fn read(path: &str, r: Box<dyn BufRead + Send>, each: &mut dyn FnMut(Record)) -> Result<(), SourceError> {
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(r);
    let headers = headers(path, &mut rdr)?;
    let mut rec = csv::StringRecord::new();
    loop {
        let pos_line = rdr.position().line() + 1;
        match rdr.read_record(&mut rec) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let line = rec.position().map_or(pos_line, |p| p.line());
                each(Record {
                    pos: Position::Line(line),
                    value: row_to_value(&headers, &rec),
                });
            }
            Err(e) => {
                if let csv::ErrorKind::Io(_) = e.kind() {
                    let csv::ErrorKind::Io(source) = e.into_kind() else {
                        unreachable!("checked above")
                    };
                    return Err(SourceError::io(path, source));
                }
                let line = e.position().map_or(pos_line, |p| p.line());
                each(Record {
                    pos: Position::Line(line),
                    value: Err(Unreadable {
                        reason: format!("bad CSV record: {e}"),
                        raw: String::new(),
                    }),
                });
            }
        }
    }
}

fn row_to_value(headers: &[String], rec: &csv::StringRecord) -> Result<Value, Unreadable> {
    let raw = || rec.iter().collect::<Vec<_>>().join(",");
    if rec.len() != headers.len() {
        return Err(Unreadable {
            reason: format!("CSV row has {} fields, the header has {}", rec.len(), headers.len()),
            raw: raw(),
        });
    }
    let mut obj = Map::new();
    for (name, cell) in headers.iter().zip(rec.iter()) {
        let v = if cell.is_empty() {
            Value::Null
        } else {
            Value::String(cell.to_string())
        };
        let v = if JSON_TEXT_COLUMNS.contains(&name.as_str()) {
            parse_json_column(name, v).map_err(|reason| Unreadable { reason, raw: raw() })?
        } else {
            v
        };
        obj.insert(name.clone(), v);
    }
    Ok(Value::Object(obj))
}
