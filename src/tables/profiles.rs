//! `group_profiles` (SPEC §6): one row per live group after the fold.

use serde_json::Value;

use super::{Cols, Table};
use crate::fold::Folded;
use crate::job::Job;

/// Text of the display name: a string as it is, any other non-null value as JSON text,
/// and the group id when the property is missing or null.
fn display_name(value: Option<&Value>, group_id: &str) -> String {
    match value {
        None | Some(Value::Null) => group_id.to_string(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

/// Rows sorted by (group key, group id). Only the job's group keys are reported.
pub fn group_profiles(job: &Job, folded: &Folded) -> Table {
    let mut live: Vec<_> = folded
        .iter()
        .filter_map(|((key, id), state)| job.group_key_index(key).map(|k| (&job.group_keys[k], key, id, state)))
        .collect();
    live.sort_unstable_by(|a, b| (a.1, a.2).cmp(&(b.1, b.2)));
    let mut names = Vec::with_capacity(live.len());
    let mut props = Vec::with_capacity(live.len());
    for (gk, _, id, state) in &live {
        let value = gk.name_property.as_deref().and_then(|p| state.properties.get(p));
        names.push(display_name(value, id));
        // serde_json's Map is ordered by key at every depth, so this text is canonical.
        props.push(Value::Object(state.properties.clone()).to_string());
    }
    Cols::new()
        .utf8("group_key", live.iter().map(|r| r.1.clone()).collect())
        .utf8("group_id", live.iter().map(|r| r.2.clone()).collect())
        .utf8("name", names)
        .utf8("properties", props)
        .ts("created_at", live.iter().map(|r| r.3.created_at).collect())
        .ts("updated_at", live.iter().map(|r| r.3.updated_at).collect())
        .table("group_profiles", None)
}
