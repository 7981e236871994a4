//! Bad records (SPEC §7): never dropped silently, never fatal on their own. Each one is
//! written to `<output>/_rejects/<run id>/rejects.ndjson` with its file, position and
//! reason, and counted in the run summary. On S3 the file is written to a local scratch
//! file first and then uploaded (multipart when large), so memory stays flat.

use std::io::Write;
use std::path::Path;

use serde_json::json;

use crate::sources::Position;
use crate::storage::{Root, Scratch};

/// Which input a reject came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Events,
    Profiles,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Events => "events",
            Stream::Profiles => "profiles",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Reject {
    pub stream: Stream,
    pub file: String,
    pub pos: Position,
    pub reason: String,
    /// The record as read (truncated), to help fix the source.
    pub raw: String,
}

impl Reject {
    fn to_json(&self) -> serde_json::Value {
        let (line, row) = match self.pos {
            Position::Line(n) => (Some(n), None),
            Position::Row(n) => (None, Some(n)),
        };
        let mut v = json!({
            "input": self.stream.name(),
            "file": self.file,
            "reason": self.reason,
            "record": self.raw,
        });
        if let Some(l) = line {
            v["line"] = json!(l);
        }
        if let Some(r) = row {
            v["row"] = json!(r);
        }
        v
    }
}

/// Writes `rejects` (in input order) and returns where the file is, or `None` if there
/// were none.
pub fn write(root: &Root, run_id: &str, rejects: &[Reject]) -> std::io::Result<Option<String>> {
    if rejects.is_empty() {
        return Ok(None);
    }
    let rel = format!("_rejects/{run_id}/rejects.ndjson");
    match root {
        Root::Local(output) => {
            let dir = output.join("_rejects").join(run_id);
            std::fs::create_dir_all(&dir)?;
            let path = dir.join("rejects.ndjson");
            write_to(&path, rejects)?;
            Ok(Some(path.display().to_string()))
        }
        Root::S3(_) => {
            let scratch = Scratch::new("rejects").map_err(std::io::Error::other)?;
            let path = scratch.path().join("rejects.ndjson");
            write_to(&path, rejects)?;
            root.put_file(&rel, &path).map_err(std::io::Error::other)?;
            Ok(Some(root.display(&rel)))
        }
    }
}

fn write_to(path: &Path, rejects: &[Reject]) -> std::io::Result<()> {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path)?);
    for r in rejects {
        serde_json::to_writer(&mut w, &r.to_json())?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    Ok(())
}
