//! Turning the job's path patterns into a sorted list of input files.

use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};

use super::SourceError;

/// One input object, with what identifies its version (for run state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    pub path: String,
    pub size: u64,
    /// Modification time, seconds since the epoch (0 when unknown).
    pub mtime: i64,
}

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// Expands every pattern and returns the distinct files sorted by full path: this order
/// is the "arrival" order of SPEC §5. A pattern that matches nothing is an error, since a
/// missing input must fail the run before any output changes.
pub fn list_inputs(patterns: &[String]) -> Result<Vec<InputFile>, SourceError> {
    let mut out: Vec<InputFile> = Vec::new();
    for pattern in patterns {
        if pattern.starts_with("s3://") {
            return Err(SourceError::S3Unsupported(pattern.clone()));
        }
        let found = list_local(pattern)?;
        if found.is_empty() {
            return Err(SourceError::NoMatch {
                pattern: pattern.clone(),
            });
        }
        out.extend(found);
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    out.dedup_by(|a, b| a.path == b.path);
    Ok(out)
}

fn stat(path: &str) -> Result<InputFile, SourceError> {
    let md = std::fs::metadata(path).map_err(|source| SourceError::Io {
        path: path.to_string(),
        source,
    })?;
    let mtime = md
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64);
    Ok(InputFile {
        path: path.to_string(),
        size: md.len(),
        mtime,
    })
}

fn list_local(pattern: &str) -> Result<Vec<InputFile>, SourceError> {
    if !has_meta(pattern) {
        return match std::fs::metadata(pattern) {
            Ok(md) if md.is_file() => Ok(vec![stat(pattern)?]),
            Ok(_) => Err(SourceError::BadPattern {
                pattern: pattern.to_string(),
                message: "is a directory; use a glob such as `dir/*.parquet`".into(),
            }),
            Err(_) => Ok(Vec::new()),
        };
    }
    // Walk from the longest literal directory prefix, matching full paths.
    let components: Vec<&str> = pattern.split('/').collect();
    let literal = components.iter().take_while(|c| !has_meta(c)).count();
    let base = if literal == 0 {
        ".".to_string()
    } else if components[..literal].join("/").is_empty() {
        "/".to_string()
    } else {
        components[..literal].join("/")
    };
    let matcher: GlobMatcher = GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map_err(|e| SourceError::BadPattern {
            pattern: pattern.to_string(),
            message: e.to_string(),
        })?
        .compile_matcher();
    let recursive = pattern.contains("**");
    let depth = if recursive {
        usize::MAX
    } else {
        components.len() - literal
    };
    let mut out = Vec::new();
    if !Path::new(&base).is_dir() {
        return Ok(out);
    }
    for entry in walkdir::WalkDir::new(&base).follow_links(true).max_depth(depth) {
        let entry = entry.map_err(|e| SourceError::Io {
            path: base.clone(),
            source: e.into(),
        })?;
        if !entry.file_type().is_file() {
            continue;
        }
        let p = entry.path().to_string_lossy();
        let rel = if literal == 0 {
            p.strip_prefix("./").unwrap_or(&p)
        } else {
            &p
        };
        if matcher.is_match(rel) {
            out.push(stat(rel)?);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_sorted_and_recursive() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_str().unwrap();
        for f in ["b/2.ndjson", "a/1.ndjson", "a/x/3.ndjson", "a/skip.csv"] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "{}\n").unwrap();
        }
        let names = |pat: &str| -> Vec<String> {
            list_inputs(&[format!("{root}/{pat}")])
                .unwrap()
                .into_iter()
                .map(|f| f.path[root.len() + 1..].to_string())
                .collect()
        };
        assert_eq!(names("*/*.ndjson"), ["a/1.ndjson", "b/2.ndjson"]);
        assert_eq!(names("**/*.ndjson"), ["a/1.ndjson", "a/x/3.ndjson", "b/2.ndjson"]);
        assert_eq!(names("a/skip.csv"), ["a/skip.csv"]);
        assert!(matches!(
            list_inputs(&[format!("{root}/none/*.ndjson")]),
            Err(SourceError::NoMatch { .. })
        ));
    }
}
