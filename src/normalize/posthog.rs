//! PostHog: batch-export event records, which carry both the events and the group-profile
//! operations (`$groupidentify`, `$delete_group_property`) (SPEC §4, semantics notes §2).
//!
//! A record is `{uuid, event, distinct_id, timestamp, created_at, _inserted_at,
//! properties}`; JSON-lines exports hold `properties` as an object, Parquet exports as JSON
//! text (parsed by the reader) and timestamps as Parquet timestamps (RFC 3339 text here).
//!
//! Decisions where PostHog's own behaviour and the contract differ or are silent:
//! - Dedup is by `uuid` alone, as SPEC §4 says (PostHog's ClickHouse table collapses on
//!   `(uuid, event, distinct_id, date)`, which only differs for forged uuids). A record
//!   without `uuid` is never a duplicate.
//! - `properties.$groups[K]` goes through the SPEC's format-independent group-id rule,
//!   lists included (one id per element). PostHog itself would store a list as one odd
//!   literal id; no PostHog SDK sends one, so a list in an export is a hand-made capture
//!   whose intent is several groups. A `$groups` that is not an object is ignored, as
//!   PostHog ingestion ignores it.
//! - Synthetic distinct ids: `$<K>_<anything>` where `K` is one of the job's group keys
//!   (posthog-python before v6 sent `$groupidentify` as `$company_<key>`) is not a user.
//! - `$groupidentify` with a falsy `$group_type`/`$group_key` (`""`, `0`, `false`) is a
//!   valid record that PostHog does not upsert: no operation. A missing or `null` one is a
//!   bad record (a required field is missing). A key longer than 400 characters is a bad
//!   record (PostHog drops the event with `group_key_too_long`); the same checks apply to
//!   `$delete_group_property`.

use serde_json::{Map, Value};

use super::mixpanel::parse_op;
use super::values::{iso_us, memberships, number_text, type_name, user_id};
use super::{DedupKey, EventContext, Op, ProfileOp, RawEvent};

/// PostHog drops a `$groupidentify` whose `$group_key` is longer than this.
pub const MAX_GROUP_KEY_CHARS: usize = 400;

fn object<'a>(v: &'a Value, what: &str) -> Result<&'a Map<String, Value>, String> {
    match v {
        Value::Object(m) => Ok(m),
        other => Err(format!("{what} is a JSON {}, not an object", type_name(other))),
    }
}

fn name(top: &Map<String, Value>) -> Result<&str, String> {
    match top.get("event") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err("`event` is empty".into()),
        None | Some(Value::Null) => Err("missing `event`".into()),
        Some(other) => Err(format!("`event` has the wrong type ({})", type_name(other))),
    }
}

/// `properties` as an object; missing or null is an empty object.
fn properties(top: &Map<String, Value>) -> Result<Option<&Map<String, Value>>, String> {
    match top.get("properties") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Object(p)) => Ok(Some(p)),
        Some(other) => Err(format!("`properties` has the wrong type ({})", type_name(other))),
    }
}

fn time(top: &Map<String, Value>, field: &str) -> Result<Option<i64>, String> {
    iso_us(top.get(field)).map_err(|e| format!("`{field}`: {e}"))
}

/// Ingest time: `created_at`, else `_inserted_at`.
fn ingest(top: &Map<String, Value>) -> Result<Option<i64>, String> {
    match time(top, "created_at")? {
        Some(t) => Ok(Some(t)),
        None => time(top, "_inserted_at"),
    }
}

/// Whether `distinct_id` is a synthetic group actor `$<key>_...` for one of `keys`.
fn synthetic(distinct_id: &str, keys: &[String]) -> bool {
    let Some(rest) = distinct_id.strip_prefix('$') else {
        return false;
    };
    keys.iter()
        .any(|k| rest.strip_prefix(k.as_str()).is_some_and(|r| r.starts_with('_')))
}

pub fn event(v: &Value, ctx: &EventContext) -> Result<RawEvent, String> {
    let top = object(v, "event record")?;
    let name = name(top)?.to_string();
    let props = properties(top)?;
    let time_us = time(top, "timestamp")?.ok_or("missing `timestamp`")?;
    let ingest_us = ingest(top)?;
    let user = user_id("distinct_id", top.get("distinct_id"))?.filter(|u| !synthetic(u, ctx.keys));
    let dedup = match top.get("uuid") {
        None | Some(Value::Null) => DedupKey::Unique,
        Some(Value::String(s)) if s.is_empty() => DedupKey::Unique,
        Some(Value::String(s)) => DedupKey::Id(s.clone()),
        Some(other) => return Err(format!("`uuid` has the wrong type ({})", type_name(other))),
    };
    let mut groups = Vec::new();
    // Person processing off: PostHog strips the group columns, so no attribution even
    // though `$groups` stays in the properties.
    let processed = props.and_then(|p| p.get("$process_person_profile")) != Some(&Value::Bool(false));
    if let Some(Value::Object(g)) = props.and_then(|p| p.get("$groups")).filter(|_| processed) {
        groups = memberships(ctx.keys, |key| g.get(key));
    }
    Ok(RawEvent {
        name,
        user,
        time_us,
        ingest_us,
        dedup,
        groups,
    })
}

/// `$group_type` / `$group_key` of a profile event. `Ok(None)`: falsy, PostHog skips it.
fn falsy_or<T>(field: &str, v: Option<&Value>, read: impl Fn(&Value) -> Option<T>) -> Result<Option<T>, String> {
    match v {
        None | Some(Value::Null) => Err(format!("missing `properties.{field}`")),
        Some(Value::Bool(false)) => Ok(None),
        Some(Value::String(s)) if s.is_empty() => Ok(None),
        Some(Value::Number(n)) if n.as_f64() == Some(0.0) => Ok(None),
        Some(other) => read(other)
            .map(Some)
            .ok_or_else(|| format!("`properties.{field}` has the wrong type ({})", type_name(other))),
    }
}

/// A `$groupidentify` (→ `$set`) or `$delete_group_property` (→ `$unset`); any other
/// event is not a profile operation.
pub fn profile_op(v: &Value) -> Result<Option<ProfileOp>, String> {
    let top = object(v, "profile record")?;
    let name = name(top)?;
    if name != "$groupidentify" && name != "$delete_group_property" {
        return Ok(None);
    }
    let empty = Map::new();
    let props = properties(top)?.unwrap_or(&empty);
    let group_key = falsy_or("$group_type", props.get("$group_type"), |v| {
        v.as_str().map(str::to_string)
    })?;
    let group_id = falsy_or("$group_key", props.get("$group_key"), |v| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(number_text(n)),
        _ => None,
    })?;
    let (Some(group_key), Some(group_id)) = (group_key, group_id) else {
        return Ok(None);
    };
    let chars = group_id.chars().count();
    if chars > MAX_GROUP_KEY_CHARS {
        return Err(format!(
            "`properties.$group_key` is {chars} characters long, more than PostHog's {MAX_GROUP_KEY_CHARS}"
        ));
    }
    let time_us = time(top, "timestamp")?;
    // PostHog applies group updates in ingestion order (semantics notes §2.3).
    let order_us = ingest(top)?.or(time_us);
    let op = if name == "$groupidentify" {
        // `$process_person_profile = false`: PostHog does not upsert the group.
        if props.get("$process_person_profile") == Some(&Value::Bool(false)) {
            return Ok(None);
        }
        match props.get("$group_set") {
            // Creates the group even with nothing to set.
            None | Some(Value::Null) => Op::Set(Map::new()),
            Some(Value::Object(m)) => Op::Set(m.clone()),
            Some(other) => {
                return Err(format!(
                    "`properties.$group_set` must be an object, got {}",
                    super::values::a_type(other)
                ))
            }
        }
    } else {
        // PostHog emits this audit event itself with person processing off, so the flag
        // does not apply here.
        let mut payload = props.get("$group_unset").cloned().unwrap_or(Value::Null);
        if payload.is_null() {
            return Err("missing `properties.$group_unset`".into());
        }
        parse_op("$unset", &mut payload).map_err(|e| format!("`properties.$group_unset`: {e}"))?
    };
    Ok(Some(ProfileOp {
        group_key,
        group_id,
        op,
        time_us,
        order_us,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn keys() -> Vec<String> {
        vec!["company".into(), "project".into()]
    }

    fn ev(v: Value) -> Result<RawEvent, String> {
        let keys = keys();
        event(
            &v,
            &EventContext {
                keys: &keys,
                columns: None,
            },
        )
    }

    #[test]
    fn batch_export_event() {
        let e = ev(json!({"uuid":"0190-a","event":"Sign Up","distinct_id":"u1",
            "timestamp":"2024-01-01T10:00:00.250Z","created_at":"2024-01-01T10:00:05Z",
            "_inserted_at":"2024-01-01T10:09:00Z",
            "properties":{"$groups":{"company":"acme","project":42,"other":"x"}}}))
        .unwrap();
        assert_eq!(e.name, "Sign Up");
        assert_eq!(e.user.as_deref(), Some("u1"));
        assert_eq!(e.time_us, 1_704_103_200_250_000);
        assert_eq!(e.ingest_us, Some(1_704_103_205_000_000));
        assert_eq!(e.dedup, DedupKey::Id("0190-a".into()));
        assert_eq!(e.groups, vec![(0, "acme".to_string()), (1, "42".to_string())]);
    }

    #[test]
    fn inserted_at_fallback_missing_uuid_and_list_ids() {
        let e = ev(json!({"event":"x","distinct_id":"u","timestamp":"2024-01-01 10:00:00",
            "_inserted_at":"2024-01-01T10:00:01Z","properties":{"$groups":{"company":["a","b","a"]}}}))
        .unwrap();
        assert_eq!(e.ingest_us, Some(1_704_103_201_000_000));
        assert_eq!(e.dedup, DedupKey::Unique);
        assert_eq!(e.groups, vec![(0, "a".to_string()), (0, "b".to_string())]);
    }

    #[test]
    fn person_processing_off_means_no_groups() {
        let e = ev(
            json!({"uuid":"1","event":"x","distinct_id":"u","timestamp":"2024-01-01T00:00:00Z",
            "properties":{"$process_person_profile":false,"$groups":{"company":"acme"}}}),
        )
        .unwrap();
        assert!(e.groups.is_empty());
        let e = ev(
            json!({"uuid":"1","event":"x","distinct_id":"u","timestamp":"2024-01-01T00:00:00Z",
            "properties":{"$process_person_profile":true,"$groups":{"company":"acme"}}}),
        )
        .unwrap();
        assert_eq!(e.groups.len(), 1);
    }

    #[test]
    fn synthetic_distinct_ids_are_not_users() {
        for (d, user) in [
            ("$company_acme", None),
            ("$project_7", None),
            ("$company", Some("$company")),
            ("$team_x", Some("$team_x")),
            ("$companyx_1", Some("$companyx_1")),
            ("company_acme", Some("company_acme")),
            ("", None),
        ] {
            let e = ev(json!({"event":"x","distinct_id":d,"timestamp":"2024-01-01T00:00:00Z"})).unwrap();
            assert_eq!(e.user.as_deref(), user, "{d}");
        }
    }

    #[test]
    fn bad_events() {
        for (v, why) in [
            (json!("x"), "not an object"),
            (json!({"timestamp":"2024-01-01T00:00:00Z"}), "missing `event`"),
            (json!({"event":"x"}), "missing `timestamp`"),
            (json!({"event":"x","timestamp":"soon"}), "`timestamp`"),
            (
                json!({"event":"x","timestamp":"2024-01-01T00:00:00Z","created_at":true}),
                "`created_at`",
            ),
            (
                json!({"event":"x","timestamp":"2024-01-01T00:00:00Z","properties":[1]}),
                "`properties`",
            ),
            (
                json!({"event":"x","timestamp":"2024-01-01T00:00:00Z","uuid":{"a":1}}),
                "`uuid`",
            ),
            (
                json!({"event":"x","timestamp":"2024-01-01T00:00:00Z","distinct_id":[1]}),
                "`distinct_id`",
            ),
        ] {
            let e = ev(v).unwrap_err();
            assert!(e.contains(why), "{e} / {why}");
        }
    }

    #[test]
    fn groupidentify_is_a_set_ordered_by_ingest() {
        let op = profile_op(&json!({"event":"$groupidentify","distinct_id":"$company_acme",
            "timestamp":"2024-01-01T10:00:00Z","created_at":"2024-01-02T00:00:00Z",
            "properties":{"$group_type":"company","$group_key":"acme","$group_set":{"plan":"pro","n":null}}}))
        .unwrap()
        .unwrap();
        assert_eq!((op.group_key.as_str(), op.group_id.as_str()), ("company", "acme"));
        assert_eq!(
            op.op,
            Op::Set(json!({"plan":"pro","n":null}).as_object().unwrap().clone())
        );
        assert_eq!(op.time_us, Some(1_704_103_200_000_000));
        assert_eq!(op.order_us, Some(1_704_153_600_000_000));
        // No ingest time: ordered by the timestamp.
        let op = profile_op(&json!({"event":"$groupidentify","timestamp":"2024-01-01T10:00:00Z",
            "properties":{"$group_type":"company","$group_key":7}}))
        .unwrap()
        .unwrap();
        assert_eq!(op.order_us, op.time_us);
        assert_eq!(op.group_id, "7");
        // Missing `$group_set` still creates the group.
        assert_eq!(op.op, Op::Set(Map::new()));
        assert!(op.op.creates());
    }

    #[test]
    fn delete_group_property_is_an_unset() {
        let op = profile_op(&json!({"event":"$delete_group_property","distinct_id":"team-uuid",
            "timestamp":"2024-01-01T10:00:00Z",
            "properties":{"$process_person_profile":false,"$group_type":"company","$group_key":"acme","$group_unset":["plan"]}}))
        .unwrap()
        .unwrap();
        assert_eq!(op.op, Op::Unset(vec!["plan".into()]));
    }

    #[test]
    fn skipped_profile_records() {
        for v in [
            json!({"event":"Sign Up","timestamp":"2024-01-01T00:00:00Z","properties":{"$group_type":"company"}}),
            json!({"event":"$groupidentify","properties":{"$group_type":"company","$group_key":""}}),
            json!({"event":"$groupidentify","properties":{"$group_type":"company","$group_key":0}}),
            json!({"event":"$groupidentify","properties":{"$group_type":"","$group_key":"acme"}}),
            json!({"event":"$groupidentify","properties":{"$group_type":"company","$group_key":"acme",
                "$process_person_profile":false,"$group_set":{"a":1}}}),
        ] {
            assert_eq!(profile_op(&v), Ok(None), "{v}");
        }
    }

    #[test]
    fn bad_profile_records() {
        let long = "k".repeat(401);
        for (v, why) in [
            (json!([]), "not an object"),
            (
                json!({"event":"$groupidentify","properties":{"$group_key":"a"}}),
                "missing `properties.$group_type`",
            ),
            (
                json!({"event":"$groupidentify","properties":{"$group_type":"company"}}),
                "missing `properties.$group_key`",
            ),
            (
                json!({"event":"$groupidentify","properties":{"$group_type":"company","$group_key":{"a":1}}}),
                "wrong type",
            ),
            (
                json!({"event":"$groupidentify","properties":{"$group_type":"company","$group_key":long}}),
                "401 characters",
            ),
            (
                json!({"event":"$groupidentify","properties":{"$group_type":"company","$group_key":"a","$group_set":[1]}}),
                "must be an object",
            ),
            (
                json!({"event":"$groupidentify","timestamp":"later","properties":{"$group_type":"company","$group_key":"a"}}),
                "`timestamp`",
            ),
            (
                json!({"event":"$delete_group_property","properties":{"$group_type":"company","$group_key":"a"}}),
                "missing `properties.$group_unset`",
            ),
            (
                json!({"event":"$delete_group_property","properties":{"$group_type":"company","$group_key":"a","$group_unset":"plan"}}),
                "list of property names",
            ),
        ] {
            let e = profile_op(&v).unwrap_err();
            assert!(e.contains(why), "{e} / {why}");
        }
        // 400 characters is still fine.
        let ok = json!({"event":"$groupidentify","properties":{"$group_type":"company","$group_key":"k".repeat(400)}});
        assert!(profile_op(&ok).unwrap().is_some());
    }
}
