//! The fast path for Mixpanel raw-export records given as JSON text (NDJSON lines, and
//! the `properties` JSON-text column of CSV/Parquet exports).
//!
//! Building a full `serde_json::Value` tree per event allocates every key and value of
//! every property, while an event needs five fields and the group keys. Here the record is
//! parsed into borrowed `&RawValue` slices and only the fields we read are decoded.
//! Anything unusual (a flattened layout, a wrong type, escapes we cannot borrow) returns
//! `None`, and the caller takes the general path, which also owns every error message:
//! both paths give the same [`RawEvent`] for every record the fast one accepts (tested).

use std::borrow::Cow;

use rustc_hash::FxHashMap;
use serde_json::value::RawValue;

use super::values::{group_ids, number_text};
use super::{DedupKey, EventContext, RawEvent};

type Fields<'a> = FxHashMap<Cow<'a, str>, &'a RawValue>;

fn string(raw: &RawValue) -> Option<String> {
    let t = raw.get();
    if t.starts_with('"') {
        serde_json::from_str::<Cow<str>>(t).ok().map(Cow::into_owned)
    } else {
        None
    }
}

fn is_null(raw: &RawValue) -> bool {
    raw.get() == "null"
}

/// Integer epoch text as µs with the seconds/milliseconds rule; `None` for anything else
/// (floats, strings), which the general path handles.
fn int_epoch_us(raw: &RawValue) -> Option<i64> {
    let i: i64 = raw.get().parse().ok()?;
    if (i as f64).abs() > 1e11 {
        i.checked_mul(1000)
    } else {
        i.checked_mul(1_000_000)
    }
}

/// `Some(None)`: absent or null; `None`: not handled here.
fn user(raw: Option<&&RawValue>) -> Option<Option<String>> {
    match raw {
        None => Some(None),
        Some(r) if is_null(r) => Some(None),
        Some(r) => {
            let t = r.get();
            if t.starts_with('"') {
                let s = string(r)?;
                Some((!s.is_empty()).then_some(s))
            } else if t.starts_with(|c: char| c == '-' || c.is_ascii_digit()) {
                let n: serde_json::Number = serde_json::from_str(t).ok()?;
                Some(Some(number_text(&n)))
            } else {
                None
            }
        }
    }
}

/// The event in `text`, or `None` to take the general path.
pub fn event(text: &[u8], ctx: &EventContext) -> Option<RawEvent> {
    let top: Fields = serde_json::from_slice(text).ok()?;
    event_from_fields(&top, ctx)
}

fn event_from_fields(top: &Fields, ctx: &EventContext) -> Option<RawEvent> {
    // Only the raw-export shape; flattened layouts go the general way.
    if top.len() != 2 {
        return None;
    }
    let name = string(top.get("event")?)?;
    if name.is_empty() {
        return None;
    }
    let props: Fields = serde_json::from_str(top.get("properties")?.get()).ok()?;
    let get = |k: &str| props.get(k).copied().filter(|r| !is_null(r));
    let time_us = int_epoch_us(get("time")?)?;
    let ingest_us = match get("mp_processing_time_ms") {
        None => None,
        Some(r) => Some(r.get().parse::<i64>().ok()?.checked_mul(1000)?),
    };
    let user = user(props.get("distinct_id"))?;
    let insert_id = match get("$insert_id") {
        None => None,
        Some(r) => Some(string(r)?),
    };
    let mut groups = Vec::new();
    let mut ids = Vec::new();
    for (k, key) in ctx.keys.iter().enumerate() {
        let Some(r) = get(key) else { continue };
        ids.clear();
        let t = r.get();
        if t.starts_with('"') {
            let s = string(r)?;
            if !s.is_empty() {
                ids.push(s);
            }
        } else {
            let v: serde_json::Value = serde_json::from_str(t).ok()?;
            group_ids(&v, &mut ids);
        }
        groups.extend(ids.drain(..).map(|id| (k as u16, id)));
    }
    Some(RawEvent {
        name,
        user,
        time_us,
        ingest_us,
        dedup: DedupKey::NameUserTime(insert_id),
        groups,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;

    fn slow(text: &str, ctx: &EventContext) -> Result<RawEvent, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        super::super::mixpanel::event(&v, ctx)
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-3i64..1_800_000_000_000).prop_map(Value::from),
            (0.0f64..2e9).prop_map(Value::from),
            "[a-c\"\\\\é]{0,3}".prop_map(Value::from),
            Just(json!({"x": 1})),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![scalar(), prop::collection::vec(scalar(), 0..4).prop_map(Value::from)]
    }

    proptest! {
        #[test]
        fn fast_path_agrees_with_general_path(
            name in prop_oneof![Just(json!("Sign Up")), Just(json!("")), Just(json!(3)), Just(json!("é\"x"))],
            fields in prop::collection::btree_map(
                prop_oneof![Just("time"), Just("distinct_id"), Just("$insert_id"),
                    Just("mp_processing_time_ms"), Just("company_id"), Just("team_id"), Just("other")],
                value(), 0..7),
            extra_top in any::<bool>(),
        ) {
            let keys = vec!["company_id".to_string(), "team_id".to_string()];
            let ctx = EventContext { keys: &keys, columns: None };
            let mut rec = json!({"event": name, "properties": fields});
            if extra_top {
                rec["distinct_id"] = json!("top");
            }
            let text = rec.to_string();
            if let Some(fast) = event(text.as_bytes(), &ctx) {
                prop_assert_eq!(Ok(fast), slow(&text, &ctx));
            }
        }
    }

    #[test]
    fn takes_the_common_shape() {
        let keys = vec!["company_id".to_string()];
        let ctx = EventContext {
            keys: &keys,
            columns: None,
        };
        let text = r#"{"event":"a","properties":{"time":1704103200,"distinct_id":"u","$insert_id":"i",
            "mp_processing_time_ms":1704103201000,"company_id":["x","x",7],"$browser":"Chrome"}}"#;
        let e = event(text.as_bytes(), &ctx).expect("fast path");
        assert_eq!(Ok(e), slow(text, &ctx));
    }
}
