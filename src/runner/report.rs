//! The one-screen run summary, as text or JSON.

use std::fmt;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::attribute::AttributionStats;

#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub run_id: String,
    pub output: String,
    pub event_files: usize,
    pub profile_files: usize,
    pub attribution: AttributionStats,
    pub groups_active: u64,
    pub profile_ops: u64,
    /// Operations on group keys the job does not declare (read, not reported).
    pub profile_ops_other_keys: u64,
    pub rejects: u64,
    pub rejects_path: Option<String>,
    /// (table, rows computed)
    pub tables: Vec<(&'static str, u64)>,
    /// Backfill range, when one was given.
    pub scope: Option<(String, String)>,
    pub files_written: usize,
    pub partitions_removed: usize,
    pub rows_written: u64,
    pub phases: Vec<(String, Duration)>,
    pub elapsed: Duration,
}

impl RunSummary {
    pub(crate) fn phase(&mut self, name: &str, since: Instant) {
        self.phases.push((name.to_string(), since.elapsed()));
    }

    pub fn to_json(&self) -> serde_json::Value {
        let a = &self.attribution;
        json!({
            "run_id": self.run_id,
            "output": self.output,
            "inputs": {"event_files": self.event_files, "profile_files": self.profile_files},
            "events": {
                "read": a.events, "duplicates": a.duplicates, "excluded": a.excluded,
                "attributed": a.attributed, "group_hits": a.hits,
            },
            "groups_active": self.groups_active,
            "profile_ops": {"read": self.profile_ops, "other_keys": self.profile_ops_other_keys},
            "rejects": {"count": self.rejects, "path": self.rejects_path},
            "scope": self.scope.as_ref().map(|(a, b)| json!({"from": a, "to": b})),
            "tables": self.tables.iter().map(|(t, n)| json!({"table": t, "rows": n})).collect::<Vec<_>>(),
            "files_written": self.files_written,
            "partitions_removed": self.partitions_removed,
            "rows_written": self.rows_written,
            "phases_ms": self.phases.iter().map(|(p, d)| json!({"phase": p, "ms": d.as_millis() as u64})).collect::<Vec<_>>(),
            "elapsed_ms": self.elapsed.as_millis() as u64,
        })
    }
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.attribution;
        writeln!(f, "run {} → {}", self.run_id, self.output)?;
        writeln!(f, "  inputs      {} event files, {} profile files", self.event_files, self.profile_files)?;
        writeln!(
            f,
            "  events      {} read, {} duplicates, {} excluded, {} attributed ({} group hits, {} active groups)",
            a.events, a.duplicates, a.excluded, a.attributed, a.hits, self.groups_active
        )?;
        write!(f, "  profiles    {} operations", self.profile_ops)?;
        if self.profile_ops_other_keys > 0 {
            write!(f, " ({} on group keys the job does not declare)", self.profile_ops_other_keys)?;
        }
        writeln!(f)?;
        match &self.rejects_path {
            Some(p) => writeln!(f, "  rejects     {} bad records → {p}", self.rejects)?,
            None => writeln!(f, "  rejects     0")?,
        }
        if let Some((a, b)) = &self.scope {
            writeln!(f, "  backfill    partitions {a} .. {b}")?;
        }
        writeln!(f, "  tables")?;
        for (t, n) in &self.tables {
            writeln!(f, "    {t:<20} {n:>9} rows")?;
        }
        writeln!(
            f,
            "  wrote       {} files, {} rows; removed {} stale partitions",
            self.files_written, self.rows_written, self.partitions_removed
        )?;
        let phases: Vec<String> = self
            .phases
            .iter()
            .map(|(p, d)| format!("{p} {:.2}s", d.as_secs_f64()))
            .collect();
        write!(f, "  time        {:.2}s ({})", self.elapsed.as_secs_f64(), phases.join(", "))
    }
}
