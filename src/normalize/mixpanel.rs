//! Mixpanel: raw-export events and `/groups` operation bodies (SPEC §4).
//!
//! Events are `{"event", "properties": {...}}`. Flattened layouts (JSON Pipelines,
//! warehouse tables: `event_name`, top-level `distinct_id`, `time`, `insert_id`, group-key
//! columns) are read too: a field missing from `properties` is looked up at the top level.

use serde_json::{Map, Value};

use super::values::{
    a_type, epoch_auto_us, epoch_ms_us, integer_epoch_span_us, memberships, required_id, type_name, user_id,
};
use super::{DedupKey, EventContext, Op, ProfileOp, RawEvent};

/// Keys of a `/groups` body that are metadata, not operators.
pub(super) const OP_METADATA: [&str; 12] = [
    "$token",
    "$group_key",
    "$group_id",
    "$time",
    "$ignore_time",
    "$ignore_alias",
    "$ip",
    "$mp_metadata",
    "$distinct_id",
    "$lib",
    "$lib_version",
    "$insert_id",
];

struct Fields<'a> {
    props: &'a Map<String, Value>,
    top: &'a Map<String, Value>,
}

impl<'a> Fields<'a> {
    fn get(&self, names: &[&str]) -> Option<&'a Value> {
        for n in names {
            if let Some(v) = self.props.get(*n).filter(|v| !v.is_null()) {
                return Some(v);
            }
        }
        for n in names {
            if let Some(v) = self.top.get(*n).filter(|v| !v.is_null()) {
                return Some(v);
            }
        }
        None
    }
}

pub fn event(v: &Value, ctx: &EventContext) -> Result<RawEvent, String> {
    let Value::Object(top) = v else {
        return Err(format!("event record is a JSON {}, not an object", type_name(v)));
    };
    let name = match top.get("event").or_else(|| top.get("event_name")) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::String(_)) => return Err("`event` is empty".into()),
        None | Some(Value::Null) => return Err("missing `event`".into()),
        Some(other) => return Err(format!("`event` has the wrong type ({})", type_name(other))),
    };
    let empty = Map::new();
    let props = match top.get("properties") {
        Some(Value::Object(p)) => p,
        None | Some(Value::Null) => &empty,
        Some(other) => return Err(format!("`properties` has the wrong type ({})", type_name(other))),
    };
    let f = Fields { props, top };
    let time_us = epoch_auto_us(f.get(&["time"]))?.ok_or("missing `properties.time`")?;
    let ingest_us = epoch_ms_us(f.get(&["mp_processing_time_ms"]))?;
    let user = user_id("distinct_id", f.get(&["distinct_id"]))?;
    let insert_id = match f.get(&["$insert_id", "insert_id"]) {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(super::values::number_text(n)),
        Some(other) => return Err(format!("`$insert_id` has the wrong type ({})", type_name(other))),
    };
    let groups = memberships(ctx.keys, |key| f.get(&[key]));
    Ok(RawEvent {
        name,
        user,
        time_us,
        ingest_us,
        dedup: DedupKey::NameUserTime(insert_id),
        groups,
    })
}

/// The span of event times (UTC microseconds) a Parquet file of flattened Mixpanel events
/// holds, from its footer alone: the range of its integer `time` column, when nothing
/// else can give a row its time (a `properties` column would be looked in first) and one
/// unit covers the whole range. `None` when the footer cannot tell. Rows without a time
/// are rejected, so they fall on no day.
pub fn parquet_time_span_us(footer: &crate::sources::Footer) -> Option<(i64, i64)> {
    if footer.has_column("properties") {
        return None;
    }
    let (lo, hi) = footer.int_range("time")?;
    integer_epoch_span_us(lo, hi)
}

pub fn profile_op(v: &Value) -> Result<ProfileOp, String> {
    let checked = checked_profile_op(v)?;
    let mut payload = v.get(checked.operator).cloned().unwrap_or(Value::Null);
    let op = parse_op(checked.operator, &mut payload)?;
    Ok(checked.with(op))
}

/// [`profile_op`], its payload taken out of `v` (left as it was on error).
pub fn take_profile_op(v: &mut Value) -> Result<ProfileOp, String> {
    let checked = checked_profile_op(v)?;
    let mut none = Value::Null;
    let op = parse_op(checked.operator, v.get_mut(checked.operator).unwrap_or(&mut none))?;
    Ok(checked.with(op))
}

/// The operators of a `/groups` body.
pub(super) const OPERATORS: [&str; 6] = ["$set", "$set_once", "$unset", "$union", "$remove", "$delete"];

/// A profile record's fields but its payload.
pub(super) struct Checked {
    pub(super) group_key: String,
    pub(super) group_id: String,
    pub(super) time_us: Option<i64>,
    pub(super) operator: &'static str,
}

impl Checked {
    pub(super) fn with(self, op: Op) -> ProfileOp {
        ProfileOp {
            group_key: self.group_key,
            group_id: self.group_id,
            op,
            time_us: self.time_us,
            order_us: self.time_us,
        }
    }
}

/// A record's `$group_key`: a string, not empty.
pub(super) fn group_key(v: Option<Value>) -> Result<String, String> {
    match v {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err("`$group_key` is empty".into()),
        None | Some(Value::Null) => Err("missing `$group_key`".into()),
        Some(other) => Err(format!("`$group_key` has the wrong type ({})", type_name(&other))),
    }
}

/// Everything of a profile record but its payload, checked.
fn checked_profile_op(v: &Value) -> Result<Checked, String> {
    let Value::Object(obj) = v else {
        return Err(format!("profile record is a JSON {}, not an object", type_name(v)));
    };
    let group_key = group_key(obj.get("$group_key").cloned())?;
    let group_id = required_id("$group_id", obj.get("$group_id"))?;
    let time_us = epoch_auto_us(obj.get("$time")).map_err(|e| format!("`$time`: {e}"))?;

    // (operator, whether its value is not null)
    let mut ops: Vec<(&'static str, bool)> = Vec::new();
    for (k, v) in obj {
        if !k.starts_with('$') || OP_METADATA.contains(&k.as_str()) {
            continue;
        }
        let Some(&op) = OPERATORS.iter().find(|o| **o == k) else {
            return Err(format!("unknown operator `{k}`"));
        };
        ops.push((op, !v.is_null()));
    }
    let set: Vec<&'static str> = ops.iter().filter(|(_, set)| *set).map(|(op, _)| *op).collect();
    let operator = match (&ops[..], &set[..]) {
        ([], _) => return Err("no operator ($set, $set_once, $unset, $union, $remove or $delete)".into()),
        ([(op, _)], _) => *op,
        // The other operators null: a CSV or Parquet export has a column for each, empty
        // where the row's operation is another one.
        (_, [op]) => *op,
        (_, [a, b, ..]) => return Err(format!("two operators in one record (`{a}` and `{b}`)")),
        (all, []) => {
            let names: Vec<String> = all.iter().map(|(op, _)| format!("`{op}`")).collect();
            return Err(format!("no operator has a value ({} are all null)", names.join(", ")));
        }
    };
    Ok(Checked {
        group_key,
        group_id,
        time_us,
        operator,
    })
}

/// Checks an operator's payload shape (SPEC §5) and builds the [`Op`], taking the payload
/// out of `payload` (left as it was on error, so that a reject shows the record as read).
pub(crate) fn parse_op(operator: &str, payload: &mut Value) -> Result<Op, String> {
    let shape = |want: &str, got: &Value| format!("`{operator}` payload must be {want}, got {}", a_type(got));
    match operator {
        "$set" | "$set_once" => match payload {
            Value::Object(m) if operator == "$set" => Ok(Op::Set(std::mem::take(m))),
            Value::Object(m) => Ok(Op::SetOnce(std::mem::take(m))),
            other => Err(shape("an object", other)),
        },
        "$unset" => match payload {
            Value::Array(items) => {
                if let Some(other) = items.iter().find(|i| !i.is_string()) {
                    return Err(shape("a list of property names", other));
                }
                let names = items.iter_mut().filter_map(|i| match i {
                    Value::String(s) => Some(std::mem::take(s)),
                    _ => None,
                });
                Ok(Op::Unset(names.collect()))
            }
            other => Err(shape("a list of property names", other)),
        },
        "$union" => match payload {
            Value::Object(m) => {
                if let Some((k, v)) = m.iter().find(|(_, v)| !v.is_array()) {
                    return Err(format!("`$union` value for `{k}` must be a list, got {}", a_type(v)));
                }
                Ok(Op::Union(std::mem::take(m)))
            }
            other => Err(shape("an object of lists", other)),
        },
        "$remove" => match payload {
            Value::Object(m) => {
                if let Some((k, _)) = m.iter().find(|(_, v)| v.is_array()) {
                    return Err(format!("`$remove` value for `{k}` must be a single value, got a list"));
                }
                Ok(Op::Remove(std::mem::take(m)))
            }
            other => Err(shape("an object of single values", other)),
        },
        "$delete" => Ok(Op::Delete),
        other => Err(format!("unknown operator `{other}`")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ctx_keys() -> Vec<String> {
        vec!["company_id".into(), "team_id".into()]
    }

    #[test]
    fn raw_export_event() {
        let keys = ctx_keys();
        let e = event(
            &json!({"event":"Sign Up","properties":{"time":1704103200,"distinct_id":"u1","$insert_id":"i1",
                "mp_processing_time_ms":1704103201000i64,"company_id":["acme","acme",7],"team_id":""}}),
            &EventContext {
                keys: &keys,
                columns: None,
            },
        )
        .unwrap();
        assert_eq!(e.name, "Sign Up");
        assert_eq!(e.user.as_deref(), Some("u1"));
        assert_eq!(e.time_us, 1_704_103_200_000_000);
        assert_eq!(e.ingest_us, Some(1_704_103_201_000_000));
        assert_eq!(e.groups, vec![(0, "acme".to_string()), (0, "7".to_string())]);
        assert_eq!(e.dedup, DedupKey::NameUserTime(Some("i1".into())));
    }

    #[test]
    fn flattened_pipeline_event() {
        let keys = ctx_keys();
        let e = event(
            &json!({"event_name":"x","distinct_id":"u","time":"2024-01-01T10:00:00Z","insert_id":"q",
                "properties":{"team_id":"t"}}),
            &EventContext {
                keys: &keys,
                columns: None,
            },
        )
        .unwrap();
        assert_eq!(e.groups, vec![(1, "t".to_string())]);
        assert_eq!(e.dedup, DedupKey::NameUserTime(Some("q".into())));
    }

    #[test]
    fn bad_events() {
        let keys = ctx_keys();
        let ctx = EventContext {
            keys: &keys,
            columns: None,
        };
        for (v, why) in [
            (json!([1]), "not an object"),
            (json!({"properties":{"time":1}}), "missing `event`"),
            (json!({"event":"a","properties":{"time":"yesterday"}}), "time"),
            (json!({"event":"a","properties":{}}), "missing `properties.time`"),
            (
                json!({"event":"a","properties":{"time":1704103200,"distinct_id":{"x":1}}}),
                "distinct_id",
            ),
            // Microseconds read as milliseconds: the year 55970.
            (
                json!({"event":"a","properties":{"time":1704103200000000i64}}),
                "outside the years 1971 to 2099",
            ),
            (
                json!({"event":"a","properties":{"time":1}}),
                "1970-01-01T00:00:01+00:00 is outside",
            ),
        ] {
            // Through the dispatcher, which checks the time's years for every vendor.
            let e = crate::normalize::event(crate::job::Vendor::Mixpanel, &v, &ctx).unwrap_err();
            assert!(e.contains(why), "{e} / {why}");
        }
    }

    /// A CSV or Parquet export has a column per operator: the others are null.
    #[test]
    fn null_operators_beside_the_one_set_are_absent() {
        let op =
            profile_op(&json!({"$group_key":"k","$group_id":"g","$set":null,"$unset":["a"],"$union":null})).unwrap();
        assert_eq!(op.op, Op::Unset(vec!["a".into()]));
        let op = profile_op(&json!({"$group_key":"k","$group_id":"g","$delete":null})).unwrap();
        assert_eq!(op.op, Op::Delete);
        for (v, why) in [
            (
                json!({"$group_key":"k","$group_id":"g","$set":{},"$unset":[]}),
                "two operators in one record (`$set` and `$unset`)",
            ),
            (
                json!({"$group_key":"k","$group_id":"g","$set":null,"$unset":null}),
                "no operator has a value (`$set`, `$unset` are all null)",
            ),
        ] {
            assert_eq!(profile_op(&v).unwrap_err(), why);
        }
    }

    #[test]
    fn ops_and_bad_ops() {
        let op = profile_op(
            &json!({"$group_key":"company_id","$group_id":42,"$delete":"null","$token":"t","$time":1704103200000i64}),
        )
        .unwrap();
        assert_eq!(op.group_id, "42");
        assert_eq!(op.op, Op::Delete);
        assert_eq!(op.time_us, Some(1_704_103_200_000_000));
        for (v, why) in [
            (
                json!({"$group_key":"k","$group_id":"g","$set":{},"$unset":["a"]}),
                "two operators",
            ),
            (
                json!({"$group_key":"k","$group_id":"g","$add":{"n":1}}),
                "unknown operator `$add`",
            ),
            (
                json!({"$group_key":"k","$group_id":"g","$set":[1]}),
                "must be an object",
            ),
            (
                json!({"$group_key":"k","$group_id":"g","$unset":{"a":1}}),
                "list of property names",
            ),
            (
                json!({"$group_key":"k","$group_id":"g","$union":{"a":1}}),
                "must be a list",
            ),
            (
                json!({"$group_key":"k","$group_id":"g","$remove":{"a":[1]}}),
                "single value",
            ),
            (json!({"$group_key":"k","$group_id":"g"}), "no operator"),
            (json!({"$group_key":"k","$set":{}}), "missing `$group_id`"),
        ] {
            let e = profile_op(&v).unwrap_err();
            assert!(e.contains(why), "{e} / {why}");
        }
    }

    #[test]
    fn taking_the_payload_reads_the_same_op_and_leaves_rejects_as_read() {
        let records = [
            json!({"$group_key":"k","$group_id":"g","$set":{"a":1,"b":[1,"x"]},"$time":1704103200}),
            json!({"$group_key":"k","$group_id":7,"$set_once":{"a":{"b":null}}}),
            json!({"$group_key":"k","$group_id":"g","$unset":["a","b"]}),
            json!({"$group_key":"k","$group_id":"g","$union":{"a":[1,1,"x"]}}),
            json!({"$group_key":"k","$group_id":"g","$remove":{"a":"x"}}),
            json!({"$group_key":"k","$group_id":"g","$delete":null}),
            json!({"$group_key":"k","$group_id":"g","$set":null}),
            json!({"$group_key":"k","$group_id":"g","$set":[1]}),
            json!({"$group_key":"k","$group_id":"g","$unset":["a",1]}),
            json!({"$group_key":"k","$group_id":"g","$union":{"a":[1],"b":2}}),
            json!({"$group_key":"k","$group_id":"g","$remove":{"a":1,"b":[2]}}),
            json!({"$group_key":"k","$group_id":"g","$set":{},"$unset":["a"]}),
            json!({"$group_key":"k","$group_id":"g","$set":{"a":1},"$time":"soon"}),
        ];
        for v in records {
            let mut taken = v.clone();
            let op = take_profile_op(&mut taken);
            assert_eq!(op, profile_op(&v), "{v}");
            if op.is_err() {
                assert_eq!(taken, v, "a reject's record is left as read");
            }
        }
    }
}
