//! Newline-delimited JSON (JSON-lines): one record per non-blank line.

use std::io::BufRead;

use super::{Position, Record, SourceError, Unreadable, RAW_LIMIT};

/// The record on line `line` (1-based), read with its line break: without the break, and
/// on the first line without a UTF-8 byte-order mark (Windows tools write one); `None`
/// for a blank line, which is no record.
pub(super) fn record_text(buf: &[u8], line: u64) -> Option<&[u8]> {
    let text = buf.strip_suffix(b"\n").unwrap_or(buf);
    let text = text.strip_suffix(b"\r").unwrap_or(text);
    let text = if line == 1 {
        text.strip_prefix(b"\xef\xbb\xbf").unwrap_or(text)
    } else {
        text
    };
    (!text.iter().all(u8::is_ascii_whitespace)).then_some(text)
}

pub(crate) fn truncate_raw(bytes: &[u8]) -> String {
    let s = String::from_utf8_lossy(&bytes[..bytes.len().min(RAW_LIMIT)]);
    s.into_owned()
}

pub(super) fn read(
    path: &str,
    mut r: Box<dyn BufRead + Send>,
    mut hook: Option<super::TextHook>,
    each: &mut dyn FnMut(Record),
) -> Result<(), SourceError> {
    let mut buf = Vec::with_capacity(4096);
    let mut line = 0u64;
    loop {
        buf.clear();
        let n = r
            .read_until(b'\n', &mut buf)
            .map_err(|source| SourceError::io(path, source))?;
        if n == 0 {
            return Ok(());
        }
        line += 1;
        let Some(text) = record_text(&buf, line) else {
            continue;
        };
        // Checked as UTF-8 once, whole, for the hook and the parser: from bytes,
        // serde_json checks each string on its own (12% of reading Mixpanel profile
        // operations). Text that is not UTF-8 is parsed from bytes for serde_json's own
        // message.
        let value = match std::str::from_utf8(text) {
            Ok(s) => {
                if hook.as_mut().is_some_and(|h| h(s)) {
                    continue;
                }
                serde_json::from_str(s)
            }
            Err(_) => serde_json::from_slice(text),
        };
        let value = value.map_err(|e| Unreadable {
            reason: format!("not valid JSON: {e}"),
            raw: truncate_raw(text),
        });
        each(Record {
            pos: Position::Line(line),
            value,
        });
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn lines_with_a_byte_order_mark_crlf_and_blanks() {
        let text = "\u{feff}{\"a\":1}\r\n\r\n  \n{\"a\":2}\n\u{feff}{\"a\":3}";
        let mut got = Vec::new();
        read(
            "f",
            Box::new(std::io::Cursor::new(text.as_bytes().to_vec())),
            None,
            &mut |r| got.push((r.pos, r.value.map_err(|u| u.reason))),
        )
        .unwrap();
        assert_eq!(got.len(), 3);
        assert_eq!(
            (got[0].0, got[0].1.as_ref().unwrap()),
            (Position::Line(1), &json!({"a": 1}))
        );
        assert_eq!(
            (got[1].0, got[1].1.as_ref().unwrap()),
            (Position::Line(4), &json!({"a": 2}))
        );
        // Only the file's first bytes can be a byte-order mark.
        assert_eq!(got[2].0, Position::Line(5));
        assert!(got[2].1.as_ref().unwrap_err().starts_with("not valid JSON"));
    }
}
