//! What each vendor's records cannot do without, checked by `validate` against a file's
//! layout (its columns, or its first record) before any run: a CSV without an `event`
//! column, or a table mapping naming a column the files lack, would otherwise only show
//! as every row rejected.

use serde_json::Value;

use crate::job::{EventColumns, ProfileColumns, Vendor};
use crate::sources::Layout;

/// One field a record needs: any of `names` (`a.b` is `b` inside the object `a`), and
/// what it is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub names: Vec<String>,
    pub what: String,
}

fn need(names: &[&str], what: &str) -> Need {
    Need {
        names: names.iter().map(|n| n.to_string()).collect(),
        what: what.to_string(),
    }
}

/// The fields every event record of `vendor` needs (mapped columns for `table`).
pub fn event_needs(vendor: Vendor, columns: Option<&EventColumns>) -> Vec<Need> {
    match vendor {
        Vendor::Mixpanel => vec![
            need(&["event", "event_name"], "the event name"),
            need(&["properties.time", "time"], "the event time"),
        ],
        Vendor::Posthog => vec![
            need(&["event"], "the event name"),
            need(&["timestamp"], "the event time"),
        ],
        // S3 logs have `type`; warehouse `tracks` rows `event_text`/`event`.
        Vendor::Segment => vec![
            need(&["type", "event_text", "event"], "the call type or event name"),
            need(&["timestamp"], "the event time"),
        ],
        Vendor::Table => columns.map_or_else(Vec::new, |c| {
            let mut v = vec![
                need(&[&c.time], "events.columns.time"),
                need(&[&c.event], "events.columns.event"),
                need(&[&c.distinct_id], "events.columns.distinct_id"),
            ];
            for (col, what) in [
                (&c.insert_id, "events.columns.insert_id"),
                (&c.ingest_time, "events.columns.ingest_time"),
                (&c.properties, "events.columns.properties"),
            ] {
                if let Some(col) = col {
                    v.push(need(&[col], what));
                }
            }
            v
        }),
    }
}

/// The fields every profile record of `vendor` needs (mapped columns for `table`).
pub fn profile_needs(vendor: Vendor, columns: Option<&ProfileColumns>) -> Vec<Need> {
    match vendor {
        Vendor::Mixpanel => vec![
            need(&["$group_key"], "the group key"),
            need(&["$group_id"], "the group id"),
        ],
        // Operations are events of the export (`$groupidentify`, ...).
        Vendor::Posthog => vec![need(&["event"], "the event name")],
        // Logs mix calls (a `type` each); warehouse `groups` rows have the id.
        Vendor::Segment => vec![need(&["type", "groupId", "group_id"], "the call type or group id")],
        Vendor::Table => columns.map_or_else(Vec::new, |c| {
            [
                (&c.time, "profiles.columns.time"),
                (&c.group_key, "profiles.columns.group_key"),
                (&c.group_id, "profiles.columns.group_id"),
                (&c.operation, "profiles.columns.operation"),
                (&c.value, "profiles.columns.value"),
            ]
            .into_iter()
            .map(|(col, what)| need(&[col], what))
            .collect()
        }),
    }
}

/// Whether `layout` has one of `need`'s fields. A column holding an object (JSON text,
/// or a struct) is not looked into: `properties` stands for any `properties.x`.
fn has(layout: &Layout, need: &Need) -> bool {
    match layout {
        Layout::Empty => true,
        Layout::Columns(cols) => need.names.iter().any(|n| {
            let top = n.split('.').next().unwrap_or(n);
            cols.iter().any(|c| c == n || c == top)
        }),
        Layout::FirstRecord(v) => need.names.iter().any(|n| {
            // A mapped column may have a dot in its name.
            if v.get(n).is_some() {
                return true;
            }
            let mut at = Some(v);
            for part in n.split('.') {
                at = match at {
                    // JSON text in a field: what it holds is read per record.
                    Some(Value::String(_)) => return true,
                    Some(Value::Object(m)) => m.get(part),
                    _ => None,
                };
            }
            at.is_some()
        }),
    }
}

/// What `layout` lacks of `needs`, worded for `validate`: "no `event` or `event_name`
/// (the event name)".
pub fn missing(layout: &Layout, needs: &[Need]) -> Vec<String> {
    if let Layout::FirstRecord(v) = layout {
        if !v.is_object() {
            return vec!["the first record is not a JSON object".into()];
        }
    }
    let kind = match layout {
        Layout::FirstRecord(_) => "field in the first record",
        _ => "column",
    };
    needs
        .iter()
        .filter(|n| !has(layout, n))
        .map(|n| {
            let names: Vec<String> = n.names.iter().map(|x| format!("`{x}`")).collect();
            format!("no {} {kind} ({})", names.join(" or "), n.what)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn columns_and_first_records_are_checked_for_what_each_vendor_needs() {
        let cols = |c: &[&str]| Layout::Columns(c.iter().map(|s| s.to_string()).collect());
        let mp = event_needs(Vendor::Mixpanel, None);
        assert_eq!(
            missing(&cols(&["event", "time", "distinct_id"]), &mp),
            Vec::<String>::new()
        );
        assert_eq!(missing(&cols(&["event_name", "properties"]), &mp), Vec::<String>::new());
        assert_eq!(
            missing(&cols(&["foo", "bar"]), &mp),
            [
                "no `event` or `event_name` column (the event name)",
                "no `properties.time` or `time` column (the event time)"
            ]
        );
        let first = |v| Layout::FirstRecord(v);
        assert!(missing(&first(json!({"event": "a", "properties": {"time": 1}})), &mp).is_empty());
        assert!(missing(&first(json!({"event": "a", "properties": "{\"time\": 1}"})), &mp).is_empty());
        assert_eq!(
            missing(&first(json!({"event": "a", "properties": {}})), &mp),
            ["no `properties.time` or `time` field in the first record (the event time)"]
        );
        assert_eq!(
            missing(&first(json!([1])), &mp),
            ["the first record is not a JSON object"]
        );
        assert!(missing(&Layout::Empty, &mp).is_empty());

        let table = EventColumns {
            time: "ts".into(),
            event: "name".into(),
            distinct_id: "uid".into(),
            insert_id: None,
            ingest_time: Some("loaded".into()),
            properties: None,
        };
        let needs = event_needs(Vendor::Table, Some(&table));
        assert_eq!(
            missing(&cols(&["ts", "name", "x"]), &needs),
            [
                "no `uid` column (events.columns.distinct_id)",
                "no `loaded` column (events.columns.ingest_time)"
            ]
        );
        let ops = profile_needs(Vendor::Mixpanel, None);
        assert_eq!(
            missing(&first(json!({"$group_key": "company_id", "$set": {}})), &ops),
            ["no `$group_id` field in the first record (the group id)"]
        );
    }
}
