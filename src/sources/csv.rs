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

fn headers(path: &str, rdr: &mut csv::Reader<impl std::io::Read>) -> Result<Vec<String>, SourceError> {
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

/// Where the line breaks of a stream are, for the records' line numbers. The csv crate
/// places a record where it started looking for it, before the line breaks it skipped
/// (the `\n` of a `\r\n`, blank lines), so its line numbers ran one or more short.
/// Keeps the offsets of the `\r`/`\n` bytes read ahead of the records asked about.
struct Newlines<R> {
    inner: R,
    /// Bytes read so far.
    at: u64,
    /// (offset, is `\n`) of the line-break bytes not yet passed.
    ahead: std::collections::VecDeque<(u64, bool)>,
    /// `\n` bytes passed.
    passed: u64,
}

impl<R: std::io::Read> std::io::Read for Newlines<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        for (i, &b) in buf[..n].iter().enumerate() {
            if b == b'\n' || b == b'\r' {
                self.ahead.push_back((self.at + i as u64, b == b'\n'));
            }
        }
        self.at += n as u64;
        Ok(n)
    }
}

/// The 1-based line of the record the csv crate places at byte `start`: its first byte is
/// the first one from `start` on that is no line break, and its line one more than the
/// `\n`s before that.
fn line_at(lines: &mut Newlines<impl std::io::Read>, start: u64) -> u64 {
    let mut first = start;
    while let Some(&(at, newline)) = lines.ahead.front() {
        if at > first {
            break;
        }
        if at == first {
            first += 1;
        }
        lines.ahead.pop_front();
        lines.passed += u64::from(newline);
    }
    lines.passed + 1
}

pub(super) fn read(path: &str, r: Box<dyn BufRead + Send>, each: &mut dyn FnMut(Record)) -> Result<(), SourceError> {
    let counted = Newlines {
        inner: r,
        at: 0,
        ahead: Default::default(),
        passed: 0,
    };
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(counted);
    let headers = headers(path, &mut rdr)?;
    let mut rec = csv::StringRecord::new();
    loop {
        let start = rdr.position().byte();
        match rdr.read_record(&mut rec) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let start = rec.position().map_or(start, |p| p.byte());
                let line = line_at(rdr.get_mut(), start);
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
                let start = e.position().map_or(start, |p| p.byte());
                let line = line_at(rdr.get_mut(), start);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The line each record starts on, LF or CRLF, after blank lines and multi-line cells.
    fn lines(text: &str) -> Vec<(u64, bool)> {
        let mut got = Vec::new();
        read(
            "f.csv",
            Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
            &mut |r| {
                let Position::Line(n) = r.pos else { unreachable!() };
                got.push((n, r.value.is_ok()))
            },
        )
        .unwrap();
        got
    }

    #[test]
    fn records_carry_the_line_they_start_on() {
        // Lines 2, 4 (a cell over two lines), 6, and a ragged row on 7, after a blank line.
        let lf = "a,b\n1,2\n\n3,\"x\ny\"\n4,5\n6\n7,8\n";
        let want = [(2, true), (4, true), (6, true), (7, false), (8, true)];
        assert_eq!(lines(lf), want);
        assert_eq!(lines(&lf.replace('\n', "\r\n")), want);
        assert_eq!(lines("a,b\r\n1,2"), [(2, true)]);
    }
}
