//! Reading typed values out of JSON: times, group ids, user ids. Shared by every vendor.

use chrono::{DateTime, NaiveDateTime};
use serde_json::{Number, Value};

/// Epoch values above this are milliseconds, below it seconds (SPEC §4; 1e11 s is the
/// year 5138, 1e11 ms is 1973).
const MS_THRESHOLD: f64 = 1e11;

/// The event times accepted, UTC µs: 1971-01-01T00:00:00Z (Mixpanel rejects earlier
/// ones) up to 2100-01-01T00:00:00Z. A time outside is a bad record (SPEC §7): mostly
/// microseconds read as milliseconds (the year 55970), and one such event would stretch
/// the dense tables (`active_groups`, `group_retention`) over millennia, out of memory.
/// A fixed range, not "an hour from now" as Mixpanel's ingestion has it: a rerun on the
/// same inputs must give the same rows.
pub const EVENT_TIMES_US: std::ops::Range<i64> = 31_536_000_000_000..4_102_444_800_000_000;

/// `us` when it is within [`EVENT_TIMES_US`]; else the reject's reason.
pub fn event_time_us(us: i64) -> Result<i64, String> {
    if EVENT_TIMES_US.contains(&us) {
        return Ok(us);
    }
    let when = DateTime::from_timestamp_micros(us).map_or_else(|| format!("{us} µs"), |t| t.to_rfc3339());
    let hint = if us >= EVENT_TIMES_US.end {
        " (microseconds read as milliseconds?)"
    } else {
        ""
    };
    Err(format!("event time {when} is outside the years 1971 to 2099{hint}"))
}

/// Shortest decimal text of a JSON number: `123`, not `123.0`.
pub fn number_text(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        // f64's Display is the shortest round-tripping text and omits a zero fraction;
        // -0 is the number 0.
        n.as_f64()
            .map(|f| if f == 0.0 { "0".into() } else { f.to_string() })
            .unwrap_or_default()
    }
}

fn epoch_number_us(f: f64) -> Option<i64> {
    if !f.is_finite() {
        return None;
    }
    let us = if f.abs() > MS_THRESHOLD { f * 1e3 } else { f * 1e6 };
    (us.abs() < 9.2e18).then(|| us.round() as i64)
}

fn integer_epoch_us(i: i64) -> Option<i64> {
    if (i as f64).abs() > MS_THRESHOLD {
        i.checked_mul(1000)
    } else {
        i.checked_mul(1_000_000)
    }
}

/// Bounds of the times that integers in `[lo, hi]` stand for, when one unit covers them
/// all: [`integer_epoch_us`] is increasing within each of its pieces (ms below -1e11,
/// seconds up to 1e11, ms above), not across them, and `None` also when a bound is out of
/// range.
pub(crate) fn integer_epoch_span_us(lo: i64, hi: i64) -> Option<(i64, i64)> {
    let piece = |i: i64| {
        let f = i as f64;
        (f > MS_THRESHOLD) as i8 - (f < -MS_THRESHOLD) as i8
    };
    if lo > hi || piece(lo) != piece(hi) {
        return None;
    }
    Some((integer_epoch_us(lo)?, integer_epoch_us(hi)?))
}

/// Parses RFC 3339 text, or a zone-less `YYYY-MM-DD[ T]HH:MM:SS[.f]` taken as UTC.
pub fn parse_iso_us(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(t) = DateTime::parse_from_str(s, fmt) {
            return Some(t.timestamp_micros());
        }
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    None
}

/// An event time: epoch seconds, or milliseconds when above 1e11 (number or numeric
/// text), or an ISO-8601 instant. `Ok(None)` when absent or null.
pub fn epoch_auto_us(v: Option<&Value>) -> Result<Option<i64>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_i64() {
            Some(i) => integer_epoch_us(i)
                .map(Some)
                .ok_or_else(|| format!("time {i} is out of range")),
            None => n
                .as_f64()
                .and_then(epoch_number_us)
                .map(Some)
                .ok_or_else(|| format!("time {n} is out of range")),
        },
        Some(Value::String(s)) => {
            let t = s.trim();
            if let Ok(i) = t.parse::<i64>() {
                return integer_epoch_us(i)
                    .map(Some)
                    .ok_or_else(|| format!("time {i} is out of range"));
            }
            if let Ok(f) = t.parse::<f64>() {
                return epoch_number_us(f)
                    .map(Some)
                    .ok_or_else(|| format!("time {t:?} is out of range"));
            }
            parse_iso_us(t)
                .map(Some)
                .ok_or_else(|| format!("time {s:?} is not an epoch number or ISO-8601 instant"))
        }
        Some(other) => Err(format!("time has the wrong type ({})", type_name(other))),
    }
}

/// Epoch milliseconds (number or numeric text) or an ISO-8601 instant, as µs.
pub fn epoch_ms_us(v: Option<&Value>) -> Result<Option<i64>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.is_finite() && f.abs() < 9.2e15)
            .map(|f| Some((f * 1e3).round() as i64))
            .ok_or_else(|| format!("millisecond time {n} is out of range")),
        Some(Value::String(s)) => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() && f.abs() < 9.2e15 => Ok(Some((f * 1e3).round() as i64)),
            _ => parse_iso_us(s)
                .map(Some)
                .ok_or_else(|| format!("time {s:?} is not epoch milliseconds or an ISO-8601 instant")),
        },
        Some(other) => Err(format!("time has the wrong type ({})", type_name(other))),
    }
}

/// An ISO-8601 instant (PostHog, Segment); numbers are read as epoch s/ms.
pub fn iso_us(v: Option<&Value>) -> Result<Option<i64>, String> {
    match v {
        Some(Value::String(s)) => match parse_iso_us(s) {
            Some(t) => Ok(Some(t)),
            None => epoch_auto_us(v),
        },
        _ => epoch_auto_us(v),
    }
}

/// Group ids carried by one property value (SPEC §4): a non-empty string as it is, a
/// number as its shortest decimal text, a list one id per element; anything else none.
/// Appends to `out` without duplicates.
pub fn group_ids(v: &Value, out: &mut Vec<String>) {
    fn scalar(v: &Value) -> Option<String> {
        match v {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(number_text(n)),
            _ => None,
        }
    }
    match v {
        Value::Array(items) => {
            for item in items {
                if let Some(id) = scalar(item) {
                    if !out.contains(&id) {
                        out.push(id);
                    }
                }
            }
        }
        other => {
            if let Some(id) = scalar(other) {
                if !out.contains(&id) {
                    out.push(id);
                }
            }
        }
    }
}

/// Candidate memberships of one event: for each of the job's `keys` (by index), the
/// distinct group ids of the value `lookup` finds for it.
pub fn memberships<'v>(keys: &[String], lookup: impl Fn(&str) -> Option<&'v Value>) -> Vec<(u16, String)> {
    let mut groups = Vec::new();
    let mut ids = Vec::new();
    for (k, key) in keys.iter().enumerate() {
        if let Some(v) = lookup(key) {
            ids.clear();
            group_ids(v, &mut ids);
            groups.extend(ids.drain(..).map(|id| (k as u16, id)));
        }
    }
    groups
}

/// A user id: non-empty string or number; empty or missing is "no user".
pub fn user_id(field: &str, v: Option<&Value>) -> Result<Option<String>, String> {
    match v {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(number_text(n))),
        Some(other) => Err(format!("`{field}` has the wrong type ({})", type_name(other))),
    }
}

/// A group id of a profile operation: non-empty string or number.
pub fn required_id(field: &str, v: Option<&Value>) -> Result<String, String> {
    take_required_id(field, v.cloned())
}

/// [`required_id`] of a value of one's own: its text is moved, not copied.
pub fn take_required_id(field: &str, v: Option<Value>) -> Result<String, String> {
    match v {
        None | Some(Value::Null) => Err(format!("missing `{field}`")),
        Some(Value::String(s)) if s.is_empty() => Err(format!("`{field}` is empty")),
        Some(Value::String(s)) => Ok(s),
        Some(Value::Number(n)) => Ok(number_text(&n)),
        Some(other) => Err(format!("`{field}` has the wrong type ({})", type_name(&other))),
    }
}

/// "an object", "a list", ...: for messages that read as English.
pub fn a_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Numbers parse exactly (serde_json's `float_roundtrip`), print as their shortest text,
    /// and -0 is 0.
    #[test]
    fn number_text_is_the_numbers_shortest_text() {
        for (json, text) in [
            ("0.23217612806301458", "0.23217612806301458"),
            ("123456789012345678901", "123456789012345680000"),
            ("1042.0", "1042"),
            ("1e3", "1000"),
            ("-0", "0"),
            ("-0.0", "0"),
            ("18446744073709551615", "18446744073709551615"),
        ] {
            let n: Number = serde_json::from_str(json).unwrap();
            assert_eq!(number_text(&n), text, "{json}");
        }
    }

    #[test]
    fn integer_epoch_spans_only_within_one_unit() {
        let s = 1_704_067_200; // 2024-01-01 in seconds
        assert_eq!(
            integer_epoch_span_us(s, s + 10),
            Some((s * 1_000_000, (s + 10) * 1_000_000))
        );
        let ms = s * 1000;
        assert_eq!(integer_epoch_span_us(ms, ms + 10), Some((ms * 1000, (ms + 10) * 1000)));
        assert_eq!(
            integer_epoch_span_us(-ms - 10, -ms),
            Some(((-ms - 10) * 1000, -ms * 1000))
        );
        // Seconds up to 1e11 inclusive, milliseconds above: a range across the step is not
        // monotone (1e11 s is past 1e11 + 1 ms).
        let t = 100_000_000_000;
        assert_eq!(
            integer_epoch_span_us(t - 1, t),
            Some(((t - 1) * 1_000_000, t * 1_000_000))
        );
        assert_eq!(integer_epoch_span_us(t, t + 1), None);
        assert_eq!(integer_epoch_span_us(-t - 1, -t), None);
        assert_eq!(integer_epoch_span_us(-t, t), Some((-t * 1_000_000, t * 1_000_000)));
        // Out of range, or empty.
        assert_eq!(integer_epoch_span_us(i64::MAX - 1, i64::MAX), None);
        assert_eq!(integer_epoch_span_us(5, 4), None);
        // Every integer in a span converts to a time inside it.
        for (lo, hi) in [(-5_000_000, 5_000_000), (t - 3, t), (t + 1, t + 9)] {
            let (a, b) = integer_epoch_span_us(lo, hi).unwrap();
            for i in [lo, lo + 1, (lo + hi) / 2, hi - 1, hi] {
                let us = integer_epoch_us(i).unwrap();
                assert!(a <= us && us <= b, "{i}");
            }
        }
    }

    #[test]
    fn seconds_and_milliseconds() {
        let s = epoch_auto_us(Some(&json!(1_704_103_200))).unwrap();
        let ms = epoch_auto_us(Some(&json!(1_704_103_200_000i64))).unwrap();
        let f = epoch_auto_us(Some(&json!(1_704_103_200.5))).unwrap();
        let text = epoch_auto_us(Some(&json!("1704103200"))).unwrap();
        let iso = epoch_auto_us(Some(&json!("2024-01-01T10:00:00Z"))).unwrap();
        assert_eq!(s, Some(1_704_103_200_000_000));
        assert_eq!(ms, s);
        assert_eq!(text, s);
        assert_eq!(iso, s);
        assert_eq!(f, Some(1_704_103_200_500_000));
        assert!(epoch_auto_us(Some(&json!("yesterday"))).is_err());
        assert!(epoch_auto_us(Some(&json!(true))).is_err());
    }

    #[test]
    fn ids_from_scalars_and_lists() {
        let mut out = Vec::new();
        group_ids(
            &json!(["acme", "acme", 1042, 1042.0, "", null, true, {"a":1}, "1042"]),
            &mut out,
        );
        assert_eq!(out, ["acme", "1042"]);
        out.clear();
        group_ids(&json!(12.5), &mut out);
        group_ids(&json!(""), &mut out);
        group_ids(&json!(false), &mut out);
        assert_eq!(out, ["12.5"]);
    }
}
