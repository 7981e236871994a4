//! The one-screen run summary, as text or JSON.

use std::fmt;
use std::time::{Duration, Instant};

use serde_json::json;

use super::state::InputDiff;
use crate::attribute::AttributionStats;

#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub run_id: String,
    pub output: String,
    /// "incremental", "full refresh" or "backfill FROM .. TO".
    pub mode: String,
    /// Nothing changed since the last run: nothing was read or written.
    pub up_to_date: bool,
    pub input_diff: InputDiff,
    /// Run id of an interrupted run whose commit this run finished.
    pub recovered: Option<String>,
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
    pub files_written: usize,
    pub partitions_unchanged: usize,
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
            "mode": self.mode,
            "up_to_date": self.up_to_date,
            "recovered_run": self.recovered,
            "inputs": {
                "event_files": self.event_files, "profile_files": self.profile_files,
                "new": self.input_diff.new.len(), "changed": self.input_diff.changed.len(),
                "removed": self.input_diff.removed.len(), "unchanged": self.input_diff.unchanged,
            },
            "events": {
                "read": a.events, "duplicates": a.duplicates, "excluded": a.excluded,
                "attributed": a.attributed, "group_hits": a.hits, "spilled_bytes": a.spilled_bytes,
            },
            "groups_active": self.groups_active,
            "profile_ops": {"read": self.profile_ops, "other_keys": self.profile_ops_other_keys},
            "rejects": {"count": self.rejects, "path": self.rejects_path},
            "tables": self.tables.iter().map(|(t, n)| json!({"table": t, "rows": n})).collect::<Vec<_>>(),
            "files_written": self.files_written,
            "partitions_removed": self.partitions_removed,
            "partitions_unchanged": self.partitions_unchanged,
            "rows_written": self.rows_written,
            "phases_ms": self.phases.iter().map(|(p, d)| json!({"phase": p, "ms": d.as_millis() as u64})).collect::<Vec<_>>(),
            "elapsed_ms": self.elapsed.as_millis() as u64,
        })
    }
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.attribution;
        let d = &self.input_diff;
        writeln!(f, "run {} ({}) → {}", self.run_id, self.mode, self.output)?;
        writeln!(
            f,
            "  inputs      {} event files, {} profile files ({} new, {} changed, {} removed since the last run)",
            self.event_files,
            self.profile_files,
            d.new.len(),
            d.changed.len(),
            d.removed.len()
        )?;
        if let Some(r) = &self.recovered {
            writeln!(f, "  recovered   finished the commit of interrupted run {r}")?;
        }
        if self.up_to_date {
            return write!(f, "  up to date  nothing changed since the last run; nothing written");
        }
        writeln!(
            f,
            "  events      {} read, {} duplicates, {} excluded, {} attributed ({} group hits, {} active groups)",
            a.events, a.duplicates, a.excluded, a.attributed, a.hits, self.groups_active
        )?;
        if a.spilled_bytes > 0 {
            writeln!(
                f,
                "  spilled     {:.1} MiB of encoded events to disk (over --memory-budget)",
                a.spilled_bytes as f64 / (1 << 20) as f64
            )?;
        }
        write!(f, "  profiles    {} operations", self.profile_ops)?;
        if self.profile_ops_other_keys > 0 {
            write!(
                f,
                " ({} on group keys the job does not declare)",
                self.profile_ops_other_keys
            )?;
        }
        writeln!(f)?;
        match &self.rejects_path {
            Some(p) => writeln!(f, "  rejects     {} bad records → {p}", self.rejects)?,
            None => writeln!(f, "  rejects     0")?,
        }
        writeln!(f, "  tables")?;
        for (t, n) in &self.tables {
            writeln!(f, "    {t:<20} {n:>9} rows")?;
        }
        writeln!(
            f,
            "  wrote       {} partitions ({} rows); {} unchanged; removed {} stale",
            self.files_written, self.rows_written, self.partitions_unchanged, self.partitions_removed
        )?;
        let phases: Vec<String> = self
            .phases
            .iter()
            .map(|(p, d)| format!("{p} {:.2}s", d.as_secs_f64()))
            .collect();
        write!(
            f,
            "  time        {:.2}s ({})",
            self.elapsed.as_secs_f64(),
            phases.join(", ")
        )
    }
}
