//! Segment: S3-destination logs (JSON lines of whole calls) and warehouse tables
//! (`tracks`, `groups`) (SPEC §4, semantics notes §3).
//!
//! A record with a `type` field is a call as Segment logs it (`type`, `event`, `name`,
//! `userId`, `anonymousId`, `messageId`, `timestamp`, `receivedAt`, `context.groupId`,
//! `groupId`, `traits`). A record without one is a warehouse row, whose columns are the
//! same fields snake_cased and flattened (`id` = messageId, `user_id`, `anonymous_id`,
//! `received_at`, `context_group_id`, `group_id`, one column per trait): a row with an
//! `event`/`event_text` column is a `tracks` row, one with `group_id` a `groups` row.
//! Every field is looked up under both spellings, so mixed exports (a CSV of calls with
//! camelCase columns, a JSON dump of a warehouse table) read too.
//!
//! Decisions where the contract is silent:
//! - Event names: a `track` is its `event` (a warehouse row's `event_text`, the name as
//!   sent: the `event` column there is the table-name slug). A `page`/`screen` call names
//!   no event; it becomes `Viewed <name> Page` / `Viewed <name> Screen` from its `name`,
//!   or `Loaded a Page` / `Loaded a Screen` without one — the names Segment's classic
//!   Mixpanel destination gives them, so funnels can use them. `identify`, `group` and
//!   `alias` calls are not events; an unknown `type` is a bad record. Warehouse
//!   `pages`/`screens` tables are not recognised (they are indistinguishable from a
//!   `groups` row carrying a `name` trait).
//! - Group traits: an S3-log call's `traits` object is taken as sent (no snake_case
//!   key normalisation: `createdAt` and `created_at` stay two traits; within one call,
//!   JSON object keys are unique). Warehouse rows arrive snake_cased already; their trait
//!   columns are every column that is not a reserved Segment column, `context_*`, or a
//!   loader column starting with `_`. A null cell is an absent trait (the warehouse
//!   cannot tell "not sent" from "sent as null", and absent keeps the old value), so a
//!   warehouse fold never stores `null`. CSV cells are text, so CSV trait values are
//!   strings.
//! - A `group` call without traits still creates the group (membership is asserted).
//! - Timestamps may carry a trailing ` UTC` (BigQuery's text form).

use serde_json::{Map, Value};

use super::values::{iso_us, memberships, number_text, required_id, type_name, user_id};
use super::{DedupKey, EventContext, Op, ProfileOp, RawEvent};

/// The group key Segment's one untyped group namespace maps to.
pub const GROUP_KEY: &str = "group";

/// Warehouse columns that are metadata, never traits (besides `context_*` and `_*`).
const RESERVED_COLUMNS: [&str; 16] = [
    "id",
    "message_id",
    "group_id",
    "user_id",
    "anonymous_id",
    "received_at",
    "sent_at",
    "timestamp",
    "original_timestamp",
    "uuid",
    "uuid_ts",
    "loaded_at",
    "context",
    "type",
    "event",
    "event_text",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Track,
    Page,
    Screen,
    Group,
    /// identify, alias: valid, neither an event nor a profile operation.
    Other,
}

/// First non-null value among `names`.
fn get<'a>(top: &'a Map<String, Value>, names: &[&str]) -> Option<&'a Value> {
    names.iter().find_map(|n| top.get(*n).filter(|v| !v.is_null()))
}

fn kind(top: &Map<String, Value>) -> Result<Kind, String> {
    match top.get("type") {
        Some(Value::String(t)) => match t.as_str() {
            "track" => Ok(Kind::Track),
            "page" => Ok(Kind::Page),
            "screen" => Ok(Kind::Screen),
            "group" => Ok(Kind::Group),
            "identify" | "alias" => Ok(Kind::Other),
            other => Err(format!("unknown call `type` {other:?}")),
        },
        // A warehouse row: its table decides, recognised by its columns.
        None | Some(Value::Null) => {
            if get(top, &["event_text", "event"]).is_some() {
                Ok(Kind::Track)
            } else if get(top, &["group_id", "groupId"]).is_some() {
                Ok(Kind::Group)
            } else {
                Err("missing `type` (and no `event` or `group_id` column of a warehouse `tracks`/`groups` row)".into())
            }
        }
        Some(other) => Err(format!("`type` has the wrong type ({})", type_name(other))),
    }
}

/// An ISO-8601 time, also with BigQuery's trailing ` UTC`.
fn time(top: &Map<String, Value>, names: &[&str]) -> Result<Option<i64>, String> {
    let v = get(top, names);
    let trimmed;
    let v = match v {
        Some(Value::String(s)) if s.ends_with(" UTC") => {
            trimmed = Value::String(s[..s.len() - 4].to_string());
            Some(&trimmed)
        }
        other => other,
    };
    iso_us(v).map_err(|e| format!("`{}`: {e}", names[0]))
}

fn text<'a>(top: &'a Map<String, Value>, names: &[&str]) -> Result<Option<&'a str>, String> {
    match get(top, names) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str()).filter(|s| !s.is_empty())),
        Some(other) => Err(format!("`{}` has the wrong type ({})", names[0], type_name(other))),
    }
}

fn event_name(top: &Map<String, Value>, kind: Kind) -> Result<String, String> {
    let (unit, loaded) = match kind {
        Kind::Track => {
            return text(top, &["event_text", "event"])?
                .map(str::to_string)
                .ok_or_else(|| "missing `event`".to_string())
        }
        Kind::Page => ("Page", "Loaded a Page"),
        Kind::Screen => ("Screen", "Loaded a Screen"),
        Kind::Group | Kind::Other => unreachable!("not an event"),
    };
    let props_name = match top.get("properties") {
        Some(Value::Object(p)) => text(p, &["name"])?,
        _ => None,
    };
    Ok(match text(top, &["name"])?.or(props_name) {
        Some(n) => format!("Viewed {n} {unit}"),
        None => loaded.to_string(),
    })
}

fn dedup(top: &Map<String, Value>) -> Result<DedupKey, String> {
    Ok(match get(top, &["messageId", "message_id", "id"]) {
        None => DedupKey::Unique,
        Some(Value::String(s)) if s.is_empty() => DedupKey::Unique,
        Some(Value::String(s)) => DedupKey::Id(s.clone()),
        Some(Value::Number(n)) => DedupKey::Id(number_text(n)),
        Some(other) => return Err(format!("`messageId` has the wrong type ({})", type_name(other))),
    })
}

/// `context.groupId`, or a warehouse row's `context_group_id`.
fn context_group_id(top: &Map<String, Value>) -> Result<Option<&Value>, String> {
    match top.get("context") {
        None | Some(Value::Null) => {}
        Some(Value::Object(c)) => {
            if let Some(v) = get(c, &["groupId", "group_id"]) {
                return Ok(Some(v));
            }
        }
        Some(other) => return Err(format!("`context` has the wrong type ({})", type_name(other))),
    }
    Ok(get(top, &["context_group_id"]))
}

pub fn event(v: &Value, ctx: &EventContext) -> Result<Option<RawEvent>, String> {
    let Value::Object(top) = v else {
        return Err(format!("event record is a JSON {}, not an object", type_name(v)));
    };
    let kind = kind(top)?;
    if matches!(kind, Kind::Group | Kind::Other) {
        return Ok(None);
    }
    let name = event_name(top, kind)?;
    let time_us = time(top, &["timestamp"])?.ok_or("missing `timestamp`")?;
    let ingest_us = time(top, &["receivedAt", "received_at"])?;
    let user = match user_id("userId", get(top, &["userId", "user_id"]))? {
        Some(u) => Some(u),
        None => user_id("anonymousId", get(top, &["anonymousId", "anonymous_id"]))?,
    };
    let dedup = dedup(top)?;
    let group_id = context_group_id(top)?;
    let groups = memberships(ctx.keys, |k| group_id.filter(|_| k == GROUP_KEY));
    Ok(Some(RawEvent {
        name,
        user,
        time_us,
        ingest_us,
        dedup,
        groups,
    }))
}

fn is_trait_column(name: &str) -> bool {
    !(RESERVED_COLUMNS.contains(&name) || name.starts_with("context_") || name.starts_with('_'))
}

/// A `group` call (or warehouse `groups` row) → `$set` of its traits on key `group`.
pub fn profile_op(v: &Value) -> Result<Option<ProfileOp>, String> {
    let Value::Object(top) = v else {
        return Err(format!("profile record is a JSON {}, not an object", type_name(v)));
    };
    if kind(top)? != Kind::Group {
        return Ok(None);
    }
    let group_id = required_id("groupId", get(top, &["groupId", "group_id"]))?;
    let traits = match top.get("traits") {
        Some(Value::Object(t)) => t.clone(),
        Some(Value::Null) | None if top.contains_key("type") => Map::new(),
        // A warehouse row: one column per trait.
        Some(Value::Null) | None => top
            .iter()
            .filter(|(k, v)| !v.is_null() && is_trait_column(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        Some(other) => return Err(format!("`traits` has the wrong type ({})", type_name(other))),
    };
    let time_us = time(top, &["timestamp"])?;
    Ok(Some(ProfileOp {
        group_key: GROUP_KEY.to_string(),
        group_id,
        op: Op::Set(traits),
        time_us,
        order_us: time_us,
    }))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ev(v: Value) -> Result<Option<RawEvent>, String> {
        let keys = vec!["group".to_string()];
        event(
            &v,
            &EventContext {
                keys: &keys,
                columns: None,
            },
        )
    }

    #[test]
    fn track_call() {
        let e = ev(
            json!({"type":"track","event":"Sign Up","userId":"u1","anonymousId":"a1",
            "messageId":"m1","timestamp":"2024-01-01T10:00:00.000Z","receivedAt":"2024-01-01T10:00:02Z",
            "context":{"groupId":"acme"},"properties":{"plan":"pro"}}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(e.name, "Sign Up");
        assert_eq!(e.user.as_deref(), Some("u1"));
        assert_eq!(e.time_us, 1_704_103_200_000_000);
        assert_eq!(e.ingest_us, Some(1_704_103_202_000_000));
        assert_eq!(e.dedup, DedupKey::Id("m1".into()));
        assert_eq!(e.groups, vec![(0, "acme".to_string())]);
    }

    #[test]
    fn anonymous_user_and_no_group() {
        let e =
            ev(json!({"type":"track","event":"x","userId":null,"anonymousId":"a1","timestamp":"2024-01-01T10:00:00Z"}))
                .unwrap()
                .unwrap();
        assert_eq!(e.user.as_deref(), Some("a1"));
        assert_eq!(e.dedup, DedupKey::Unique);
        assert!(e.groups.is_empty());
        let e = ev(json!({"type":"track","event":"x","userId":"","timestamp":"2024-01-01T10:00:00Z"}))
            .unwrap()
            .unwrap();
        assert_eq!(e.user, None);
    }

    #[test]
    fn page_and_screen_names() {
        for (v, want) in [
            (json!({"type":"page","name":"Pricing"}), "Viewed Pricing Page"),
            (json!({"type":"page","properties":{"name":"Docs"}}), "Viewed Docs Page"),
            (json!({"type":"page","name":""}), "Loaded a Page"),
            (json!({"type":"screen","name":"Home"}), "Viewed Home Screen"),
            (json!({"type":"screen"}), "Loaded a Screen"),
            (json!({"type":"screen","name":"Page Two"}), "Viewed Page Two Screen"),
        ] {
            let mut v = v;
            v["timestamp"] = json!("2024-01-01T00:00:00Z");
            assert_eq!(ev(v).unwrap().unwrap().name, want);
        }
    }

    #[test]
    fn non_events_are_skipped() {
        for t in ["identify", "group", "alias"] {
            assert_eq!(
                ev(json!({"type":t,"groupId":"g","timestamp":"2024-01-01T00:00:00Z"})),
                Ok(None)
            );
        }
        // A warehouse `groups` row given as an event.
        assert_eq!(
            ev(json!({"id":"m","group_id":"g","timestamp":"2024-01-01 00:00:00"})),
            Ok(None)
        );
    }

    #[test]
    fn warehouse_tracks_row() {
        let e = ev(
            json!({"id":"m9","event":"sign_up","event_text":"Sign Up","user_id":null,
            "anonymous_id":"a9","timestamp":"2024-01-01 10:00:00 UTC","received_at":"2024-01-01 10:00:01",
            "context_group_id":"1042","uuid_ts":"2024-01-01 11:00:00"}),
        )
        .unwrap()
        .unwrap();
        assert_eq!(e.name, "Sign Up");
        assert_eq!(e.user.as_deref(), Some("a9"));
        assert_eq!(e.time_us, 1_704_103_200_000_000);
        assert_eq!(e.ingest_us, Some(1_704_103_201_000_000));
        assert_eq!(e.dedup, DedupKey::Id("m9".into()));
        assert_eq!(e.groups, vec![(0, "1042".to_string())]);
        // Without `event_text` the `event` column is the name.
        let e = ev(json!({"event":"Sign Up","timestamp":"2024-01-01T10:00:00Z"}))
            .unwrap()
            .unwrap();
        assert_eq!(e.name, "Sign Up");
    }

    #[test]
    fn bad_events() {
        for (v, why) in [
            (json!(1), "not an object"),
            (json!({"type":"tracks","event":"x"}), "unknown call `type`"),
            (json!({"type":7}), "`type` has the wrong type"),
            (
                json!({"user_id":"u","timestamp":"2024-01-01T00:00:00Z"}),
                "missing `type`",
            ),
            (
                json!({"type":"track","timestamp":"2024-01-01T00:00:00Z"}),
                "missing `event`",
            ),
            (json!({"type":"track","event":"x"}), "missing `timestamp`"),
            (json!({"type":"track","event":"x","timestamp":"noon"}), "`timestamp`"),
            (
                json!({"type":"track","event":"x","timestamp":"2024-01-01T00:00:00Z","receivedAt":false}),
                "`receivedAt`",
            ),
            (
                json!({"type":"track","event":"x","timestamp":"2024-01-01T00:00:00Z","userId":{"a":1}}),
                "`userId`",
            ),
            (
                json!({"type":"track","event":"x","timestamp":"2024-01-01T00:00:00Z","messageId":[1]}),
                "`messageId`",
            ),
            (
                json!({"type":"track","event":"x","timestamp":"2024-01-01T00:00:00Z","context":"acme"}),
                "`context`",
            ),
            (
                json!({"type":"page","name":5,"timestamp":"2024-01-01T00:00:00Z"}),
                "`name`",
            ),
        ] {
            let e = ev(v).unwrap_err();
            assert!(e.contains(why), "{e} / {why}");
        }
    }

    #[test]
    fn group_call_is_a_set() {
        let op = profile_op(&json!({"type":"group","groupId":"acme","userId":"u1","messageId":"m",
            "timestamp":"2024-01-01T10:00:00Z","traits":{"name":"Acme","createdAt":"x","created_at":"y","plan":null}}))
        .unwrap()
        .unwrap();
        assert_eq!((op.group_key.as_str(), op.group_id.as_str()), ("group", "acme"));
        assert_eq!(
            op.op,
            Op::Set(
                json!({"name":"Acme","createdAt":"x","created_at":"y","plan":null})
                    .as_object()
                    .unwrap()
                    .clone()
            )
        );
        assert_eq!(op.time_us, Some(1_704_103_200_000_000));
        assert_eq!(op.order_us, op.time_us);
        // No traits: still creates the group.
        let op = profile_op(&json!({"type":"group","groupId":7,"timestamp":"2024-01-01T10:00:00Z"}))
            .unwrap()
            .unwrap();
        assert_eq!(op.group_id, "7");
        assert_eq!(op.op, Op::Set(Map::new()));
    }

    #[test]
    fn warehouse_groups_row() {
        let op = profile_op(&json!({"id":"m","group_id":"acme","user_id":"u1","anonymous_id":null,
            "timestamp":"2024-01-01 10:00:00","received_at":"2024-01-01 10:00:01","sent_at":"x",
            "original_timestamp":"x","uuid_ts":"x","context_library_name":"analytics.js",
            "_airbyte_id":"x","name":"Acme","plan":"pro","employees":"12","industry":null}))
        .unwrap()
        .unwrap();
        assert_eq!(op.group_id, "acme");
        assert_eq!(
            op.op,
            Op::Set(
                json!({"name":"Acme","plan":"pro","employees":"12"})
                    .as_object()
                    .unwrap()
                    .clone()
            )
        );
        assert_eq!(op.time_us, Some(1_704_103_200_000_000));
    }

    #[test]
    fn skipped_and_bad_profile_records() {
        for v in [
            json!({"type":"track","event":"x","timestamp":"2024-01-01T00:00:00Z"}),
            json!({"type":"identify","userId":"u","traits":{"a":1}}),
            json!({"event_text":"x","timestamp":"2024-01-01T00:00:00Z"}),
        ] {
            assert_eq!(profile_op(&v), Ok(None), "{v}");
        }
        for (v, why) in [
            (json!("x"), "not an object"),
            (json!({"type":"group","traits":{}}), "missing `groupId`"),
            (json!({"type":"group","groupId":"","traits":{}}), "`groupId` is empty"),
            (
                json!({"type":"group","groupId":"g","traits":[1]}),
                "`traits` has the wrong type",
            ),
            (json!({"type":"group","groupId":"g","timestamp":"later"}), "`timestamp`"),
            (json!({"type":"bogus","groupId":"g"}), "unknown call `type`"),
        ] {
            let e = profile_op(&v).unwrap_err();
            assert!(e.contains(why), "{e} / {why}");
        }
    }
}
