//! `format = "table"`: any tabular export, read through the job's column mapping
//! (SPEC §3 `[events.columns]`, `[profiles.columns]`).
//!
//! Events: `time` and `ingest_time` accept every time form (epoch seconds or
//! milliseconds, number or text, ISO-8601, Parquet timestamps); `event` is required;
//! `distinct_id` may be empty (no user); `insert_id`, when mapped and non-empty, is the
//! dedup key (else every row is distinct); `properties` is a JSON object, or JSON text
//! holding one (a column literally named `properties` arrives parsed already). A group key
//! `K` is read from the column `K` when that cell is not empty (null, or `""`: a CSV cell
//! reads the same either way), else from `properties[K]`,
//! with the SPEC's group-id rule (lists give several ids). CSV cells are text, so a list
//! in CSV needs the properties JSON.
//!
//! Profiles: `operation` is one of the six operator names, with or without the leading
//! `$` (`set` = `$set`); `value` is the payload as JSON, or JSON text (CSV cells, Utf8
//! columns); text that is not JSON is a bad record, except for `$delete`, whose value is
//! ignored. `time` is optional per row (rows without one are rejected under
//! `order = "time"`).

use serde_json::{Map, Value};

use super::mixpanel::parse_op;
use super::values::{iso_us, memberships, number_text, required_id, type_name, user_id};
use super::{DedupKey, EventContext, ProfileContext, ProfileOp, RawEvent};

const OPERATORS: [&str; 6] = ["$set", "$set_once", "$unset", "$union", "$remove", "$delete"];

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, String> {
    match v {
        Value::Object(m) => Ok(m),
        other => Err(format!("{what} is a JSON {}, not an object", type_name(other))),
    }
}

fn time(top: &Map<String, Value>, column: &str) -> Result<Option<i64>, String> {
    iso_us(top.get(column)).map_err(|e| format!("column `{column}`: {e}"))
}

/// The mapped properties column as an object.
fn properties(top: &Map<String, Value>, column: &str) -> Result<Option<Map<String, Value>>, String> {
    let parsed;
    let v = match top.get(column) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(None),
        Some(Value::String(s)) => {
            parsed =
                serde_json::from_str::<Value>(s).map_err(|e| format!("column `{column}` is not valid JSON: {e}"))?;
            &parsed
        }
        Some(v) => v,
    };
    match v {
        Value::Object(m) => Ok(Some(m.clone())),
        Value::Null => Ok(None),
        other => Err(format!(
            "column `{column}` must hold a JSON object, got {}",
            type_name(other)
        )),
    }
}

pub fn event(v: &Value, ctx: &EventContext) -> Result<RawEvent, String> {
    let cols = ctx
        .columns
        .ok_or("`format = \"table\"` needs an `[events.columns]` mapping")?;
    let top = object(v, "event row")?;
    let time_us = time(top, &cols.time)?.ok_or_else(|| format!("missing `{}` (the time column)", cols.time))?;
    let name = match top.get(&cols.event) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) => return Err(format!("`{}` (the event column) is empty", cols.event)),
        None | Some(Value::Null) => return Err(format!("missing `{}` (the event column)", cols.event)),
        Some(other) => {
            return Err(format!(
                "`{}` (the event column) has the wrong type ({})",
                cols.event,
                type_name(other)
            ))
        }
    };
    let user = user_id(&cols.distinct_id, top.get(&cols.distinct_id))?;
    let dedup = match cols.insert_id.as_ref().and_then(|c| top.get(c).map(|v| (c, v))) {
        None | Some((_, Value::Null)) => DedupKey::Unique,
        Some((_, Value::String(s))) if s.is_empty() => DedupKey::Unique,
        Some((_, Value::String(s))) => DedupKey::Id(s.clone()),
        Some((_, Value::Number(n))) => DedupKey::Id(number_text(n)),
        Some((c, other)) => {
            return Err(format!(
                "`{c}` (the insert_id column) has the wrong type ({})",
                type_name(other)
            ))
        }
    };
    let ingest_us = match &cols.ingest_time {
        Some(c) => time(top, c)?,
        None => None,
    };
    let props = match &cols.properties {
        Some(c) => properties(top, c)?,
        None => None,
    };
    // An empty cell (null in CSV, `""` elsewhere) falls back to `properties`, the same in
    // every file type.
    let groups = memberships(ctx.keys, |key| {
        top.get(key)
            .filter(|v| !v.is_null() && v.as_str() != Some(""))
            .or_else(|| props.as_ref().and_then(|p| p.get(key)))
    });
    Ok(RawEvent {
        name,
        user,
        time_us,
        ingest_us,
        dedup,
        groups,
    })
}

pub fn profile_op(v: &Value, ctx: &ProfileContext) -> Result<ProfileOp, String> {
    let cols = ctx
        .columns
        .ok_or("`format = \"table\"` needs a `[profiles.columns]` mapping")?;
    let top = object(v, "profile row")?;
    let group_key = required_id(&cols.group_key, top.get(&cols.group_key))?;
    let group_id = required_id(&cols.group_id, top.get(&cols.group_id))?;
    let time_us = time(top, &cols.time)?;
    let operator = match top.get(&cols.operation) {
        Some(Value::String(s)) => {
            let name = if s.starts_with('$') { s.clone() } else { format!("${s}") };
            if !OPERATORS.contains(&name.as_str()) {
                return Err(format!("unknown operator {s:?} in `{}`", cols.operation));
            }
            name
        }
        None | Some(Value::Null) => return Err(format!("missing `{}` (the operation column)", cols.operation)),
        Some(other) => {
            return Err(format!(
                "`{}` (the operation column) has the wrong type ({})",
                cols.operation,
                type_name(other)
            ))
        }
    };
    let mut payload = match top.get(&cols.value) {
        _ if operator == "$delete" => Value::Null,
        None => Value::Null,
        Some(Value::String(s)) => {
            serde_json::from_str(s).map_err(|e| format!("column `{}` is not valid JSON: {e}", cols.value))?
        }
        Some(v) => v.clone(),
    };
    let op = parse_op(&operator, &mut payload)?;
    Ok(ProfileOp {
        group_key,
        group_id,
        op,
        time_us,
        order_us: time_us,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::job::{EventColumns, ProfileColumns};
    use crate::normalize::Op;

    fn ecols(insert: bool, props: bool) -> EventColumns {
        EventColumns {
            time: "ts".into(),
            event: "name".into(),
            distinct_id: "user".into(),
            insert_id: insert.then(|| "iid".into()),
            ingest_time: Some("loaded".into()),
            properties: props.then(|| "props".into()),
        }
    }

    /// A row through the dispatcher (which checks the time's years for every vendor).
    fn ev(v: Value, cols: &EventColumns) -> Result<RawEvent, String> {
        let keys = vec!["company".to_string(), "team".to_string()];
        let ctx = EventContext {
            keys: &keys,
            columns: Some(cols),
        };
        super::super::event(crate::job::Vendor::Table, &v, &ctx).map(|e| e.expect("a table row is an event"))
    }

    #[test]
    fn mapped_event_with_column_and_property_groups() {
        let cols = ecols(true, true);
        let e = ev(
            json!({"ts":"2024-01-01T10:00:00Z","name":"Sign Up","user":"u1","iid":"i1","loaded":1704103201000i64,
                "company":"acme","props":r#"{"company":"ignored","team":["t1","t2"]}"#}),
            &cols,
        )
        .unwrap();
        assert_eq!(e.name, "Sign Up");
        assert_eq!(e.user.as_deref(), Some("u1"));
        assert_eq!(e.time_us, 1_704_103_200_000_000);
        assert_eq!(e.ingest_us, Some(1_704_103_201_000_000));
        assert_eq!(e.dedup, DedupKey::Id("i1".into()));
        assert_eq!(
            e.groups,
            vec![(0, "acme".to_string()), (1, "t1".to_string()), (1, "t2".to_string())]
        );
        // A null column falls back to properties; epoch seconds as text; no insert id.
        let e = ev(
            json!({"ts":"1704103200","name":"x","user":null,"iid":"","company":null,"props":{"company":7}}),
            &cols,
        )
        .unwrap();
        assert_eq!(e.time_us, 1_704_103_200_000_000);
        assert_eq!(e.user, None);
        assert_eq!(e.dedup, DedupKey::Unique);
        assert_eq!(e.groups, vec![(0, "7".to_string())]);
        // So does an empty one, as an empty CSV cell does.
        let e = ev(
            json!({"ts":1704103200,"name":"x","company":"","props":{"company":"b"}}),
            &cols,
        )
        .unwrap();
        assert_eq!(e.groups, vec![(0, "b".to_string())]);
        // Without insert_id / properties mappings.
        let cols = ecols(false, false);
        let e = ev(
            json!({"ts":1704103200,"name":"x","iid":"i","props":{"company":"a"}}),
            &cols,
        )
        .unwrap();
        assert_eq!(e.dedup, DedupKey::Unique);
        assert!(e.groups.is_empty());
    }

    #[test]
    fn bad_event_rows() {
        let cols = ecols(true, true);
        for (v, why) in [
            (json!([1]), "not an object"),
            (json!({"name":"x"}), "missing `ts`"),
            (json!({"ts":"soon","name":"x"}), "column `ts`"),
            (json!({"ts":1704103200,"name":""}), "is empty"),
            (json!({"ts":1704103200}), "missing `name`"),
            (json!({"ts":1704103200,"name":3}), "wrong type"),
            (json!({"ts":1704103200,"name":"x","user":[1]}), "`user`"),
            (json!({"ts":1704103200,"name":"x","iid":true}), "insert_id column"),
            (json!({"ts":1704103200,"name":"x","loaded":"later"}), "column `loaded`"),
            (json!({"ts":1704103200,"name":"x","props":"{bad"}), "not valid JSON"),
            (
                json!({"ts":1704103200,"name":"x","props":"[1]"}),
                "must hold a JSON object",
            ),
            (
                json!({"ts":4102444800i64,"name":"x"}),
                "2100-01-01T00:00:00+00:00 is outside",
            ),
        ] {
            let e = ev(v, &cols).unwrap_err();
            assert!(e.contains(why), "{e} / {why}");
        }
        let keys: Vec<String> = Vec::new();
        let e = event(
            &json!({}),
            &EventContext {
                keys: &keys,
                columns: None,
            },
        )
        .unwrap_err();
        assert!(e.contains("[events.columns]"), "{e}");
    }

    fn pcols() -> ProfileColumns {
        ProfileColumns {
            time: "t".into(),
            group_key: "k".into(),
            group_id: "g".into(),
            operation: "op".into(),
            value: "v".into(),
        }
    }

    fn op(v: Value) -> Result<ProfileOp, String> {
        let cols = pcols();
        profile_op(
            &v,
            &ProfileContext {
                columns: Some(&cols),
                take_payload: false,
            },
        )
    }

    #[test]
    fn mapped_operations() {
        let o = op(json!({"t":"2024-01-01 10:00:00","k":"company","g":42,"op":"set","v":r#"{"plan":"pro"}"#})).unwrap();
        assert_eq!((o.group_key.as_str(), o.group_id.as_str()), ("company", "42"));
        assert_eq!(o.op, Op::Set(json!({"plan":"pro"}).as_object().unwrap().clone()));
        assert_eq!(o.time_us, Some(1_704_103_200_000_000));
        assert_eq!(o.order_us, o.time_us);
        let o = op(json!({"k":"company","g":"a","op":"$unset","v":["plan"]})).unwrap();
        assert_eq!(o.op, Op::Unset(vec!["plan".into()]));
        assert_eq!(o.time_us, None);
        let o = op(json!({"k":"company","g":"a","op":"$union","v":r#"{"tags":["x"]}"#})).unwrap();
        assert!(matches!(o.op, Op::Union(_)));
        for v in [json!("null"), json!("not json"), Value::Null] {
            let o = op(json!({"k":"company","g":"a","op":"delete","v":v})).unwrap();
            assert_eq!(o.op, Op::Delete);
        }
    }

    #[test]
    fn bad_operation_rows() {
        for (v, why) in [
            (json!(1), "not an object"),
            (json!({"g":"a","op":"set","v":"{}"}), "missing `k`"),
            (json!({"k":"c","op":"set","v":"{}"}), "missing `g`"),
            (json!({"k":"c","g":"a","v":"{}"}), "missing `op`"),
            (json!({"k":"c","g":"a","op":"add","v":"{}"}), "unknown operator \"add\""),
            (json!({"k":"c","g":"a","op":"$append","v":"{}"}), "unknown operator"),
            (json!({"k":"c","g":"a","op":1,"v":"{}"}), "wrong type"),
            (json!({"k":"c","g":"a","op":"set","v":"{bad"}), "not valid JSON"),
            (json!({"k":"c","g":"a","op":"set","v":"[1]"}), "must be an object"),
            (json!({"k":"c","g":"a","op":"set"}), "must be an object"),
            (
                json!({"k":"c","g":"a","op":"remove","v":r#"{"x":[1]}"#}),
                "single value",
            ),
            (json!({"t":"later","k":"c","g":"a","op":"set","v":"{}"}), "column `t`"),
        ] {
            let e = op(v).unwrap_err();
            assert!(e.contains(why), "{e} / {why}");
        }
        let e = profile_op(
            &json!({}),
            &ProfileContext {
                columns: None,
                take_payload: false,
            },
        )
        .unwrap_err();
        assert!(e.contains("[profiles.columns]"), "{e}");
    }
}
