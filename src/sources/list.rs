//! Turning the job's path patterns into a sorted list of input files, local or on S3.
//!
//! Both kinds match full paths with the same `globset` rules (`*` and `?` stay within a
//! path segment, `**` crosses them). Locally the walk starts at the longest literal folder;
//! on S3 the listing starts at the longest literal key prefix (whole segments), and lists
//! one level only (`LIST` with a delimiter) when the pattern's only wildcards are in its last
//! segment.

use std::path::Path;

use globset::{GlobBuilder, GlobMatcher};

use super::SourceError;
use crate::storage::{self, Bucket, Stores};

/// One input object, with what identifies its version (for run state).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputFile {
    /// A local path, or `s3://bucket/key`.
    pub path: String,
    pub size: u64,
    /// Modification time, seconds since the epoch (0 when unknown).
    pub mtime: i64,
    /// The S3 ETag, where the listing gives one.
    pub etag: Option<String>,
    /// The bucket an `s3://` input is read from.
    pub bucket: Option<Bucket>,
}

fn has_meta(s: &str) -> bool {
    s.contains(['*', '?', '[', '{'])
}

/// Whether a wildcard matched a name starting with `_` or `.` in `path` (its segments past
/// the pattern's `literal` ones): such names are not data to Hive, Spark and the other
/// engines that write exports (`_SUCCESS`, `_committed_*`, `.part-0.crc`, `_temporary/`),
/// so a glob skips them. A pattern segment that starts with the same character asked for
/// them, as does a literal path.
fn hidden(path: &str, pattern: &str, literal: usize) -> bool {
    let names = path.split('/').skip(literal);
    let segments: Vec<&str> = pattern.split('/').skip(literal).collect();
    let recursive = segments.contains(&"**");
    names.enumerate().any(|(i, name)| {
        let Some(c) = name.chars().next().filter(|c| matches!(c, '_' | '.')) else {
            return false;
        };
        // Under `**` names and segments do not pair up: only a segment naming it asks.
        let asked = if recursive {
            segments.iter().any(|s| s.starts_with(c))
        } else {
            segments.get(i).is_some_and(|s| s.starts_with(c))
        };
        !asked
    })
}

/// Expands every pattern and returns the distinct files sorted by full path: this order
/// is the "arrival" order of SPEC §5. A pattern that matches nothing is an error, since a
/// missing input must fail the run before any output changes.
pub fn list_inputs(patterns: &[String], stores: &Stores) -> Result<Vec<InputFile>, SourceError> {
    list_inputs_outside(patterns, stores, None)
}

/// [`list_inputs`], leaving out what lies under `output` (the job's output folder or
/// prefix): a glob wide enough to reach it would read the job's own tables back as
/// events, and would still match once the real inputs were gone, so that the run went on
/// and removed every partition instead of failing.
pub fn list_inputs_outside(
    patterns: &[String],
    stores: &Stores,
    output: Option<&str>,
) -> Result<Vec<InputFile>, SourceError> {
    let inside = |path: &str| output.is_some_and(|o| within(path, o));
    let mut out: Vec<InputFile> = Vec::new();
    for pattern in patterns {
        let mut found = if storage::is_s3(pattern) {
            list_s3(pattern, stores)?
        } else {
            list_local(pattern)?
        };
        found.retain(|f| !inside(&f.path));
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

/// Whether `path` lies under the folder or prefix `root` (local paths compared as absolute
/// paths, component by component).
fn within(path: &str, root: &str) -> bool {
    match (storage::is_s3(path), storage::is_s3(root)) {
        (true, true) => path.starts_with(&format!("{}/", root.trim_end_matches('/'))),
        (false, false) => match (std::path::absolute(path), std::path::absolute(root)) {
            (Ok(p), Ok(r)) => p.starts_with(r),
            _ => false,
        },
        _ => false,
    }
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
        etag: None,
        bucket: None,
    })
}

fn glob(pattern: &str, glob: &str) -> Result<GlobMatcher, SourceError> {
    Ok(GlobBuilder::new(glob)
        .literal_separator(true)
        .build()
        .map_err(|e| SourceError::BadPattern {
            pattern: pattern.to_string(),
            message: e.to_string(),
        })?
        .compile_matcher())
}

/// The bucket and literal key prefix (whole segments) that `pattern` lists from.
fn s3_base(pattern: &str) -> Result<(&str, String), SourceError> {
    let (bucket, key_pattern) = storage::parse_s3_url(pattern)?;
    let components: Vec<&str> = key_pattern.split('/').collect();
    let literal = components.iter().take_while(|c| !has_meta(c)).count();
    // A literal key lists as its own folder's prefix: the object or the folder below it.
    let literal = literal.min(components.len().saturating_sub(1));
    Ok((bucket, components[..literal].join("/")))
}

/// For `validate`: lists at most one key under an `s3://` pattern's literal prefix, which
/// proves the endpoint answers, the credentials work and the bucket exists. Returns the
/// probed location.
pub fn probe_s3(pattern: &str, stores: &Stores) -> Result<String, SourceError> {
    let (bucket, prefix) = s3_base(pattern)?;
    let bucket = stores.bucket(bucket)?;
    bucket.probe(&prefix)?;
    Ok(bucket.url(&prefix))
}

fn list_s3(pattern: &str, stores: &Stores) -> Result<Vec<InputFile>, SourceError> {
    let (bucket, key_pattern) = storage::parse_s3_url(pattern)?;
    if key_pattern.is_empty() {
        return Err(SourceError::BadPattern {
            pattern: pattern.to_string(),
            message: "names a whole bucket; use a glob such as `s3://bucket/events/*.parquet`".into(),
        });
    }
    let bucket = stores.bucket(bucket)?;
    let file = |m: object_store::ObjectMeta| InputFile {
        path: bucket.url(m.location.as_ref()),
        size: m.size,
        mtime: m.last_modified.timestamp(),
        etag: m.e_tag,
        bucket: Some(bucket.clone()),
    };
    if !has_meta(key_pattern) {
        if let Some(m) = bucket.head(key_pattern)? {
            return Ok(vec![file(m)]);
        }
        let (objects, folders) = bucket.list_dir(key_pattern)?;
        if !objects.is_empty() || !folders.is_empty() {
            return Err(SourceError::BadPattern {
                pattern: pattern.to_string(),
                message: "is a prefix (folder); use a glob such as `prefix/*.parquet`".into(),
            });
        }
        return Ok(Vec::new());
    }
    let components: Vec<&str> = key_pattern.split('/').collect();
    let literal = components.iter().take_while(|c| !has_meta(c)).count();
    let prefix = components[..literal].join("/");
    let matcher = glob(pattern, key_pattern)?;
    // Wildcards only in the last segment, and no `**`: one level is enough.
    let shallow = !key_pattern.contains("**") && literal + 1 == components.len();
    let objects = if shallow {
        bucket.list_dir(&prefix)?.0
    } else {
        bucket.list(&prefix)?
    };
    Ok(objects
        .into_iter()
        .filter(|m| matcher.is_match(m.location.as_ref()) && !hidden(m.location.as_ref(), key_pattern, literal))
        .map(file)
        .collect())
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
    let matcher: GlobMatcher = glob(pattern, pattern)?;
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
    let relative = |p: &'_ str| -> String {
        if literal == 0 {
            p.strip_prefix("./").unwrap_or(p).to_string()
        } else {
            p.to_string()
        }
    };
    for entry in walkdir::WalkDir::new(&base).follow_links(true).max_depth(depth) {
        let entry = match entry {
            Ok(e) => e,
            // A symlink that cannot be followed (dangling, or an editor's `.#lock`) matters
            // only when the pattern asks for it: then it is a missing input. Any other
            // error (an unreadable folder) fails the listing: its files would be lost.
            Err(e) => {
                let link = e
                    .path()
                    .filter(|p| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_symlink()));
                let named = e.path().map(|p| relative(&p.to_string_lossy()));
                match named {
                    Some(rel) if link.is_some() && (!matcher.is_match(&rel) || hidden(&rel, pattern, literal)) => {
                        continue
                    }
                    _ => {
                        return Err(SourceError::Io {
                            path: named.unwrap_or_else(|| base.clone()),
                            source: e.into(),
                        })
                    }
                }
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let rel = relative(&entry.path().to_string_lossy());
        if !matcher.is_match(&rel) || hidden(&rel, pattern, literal) {
            continue;
        }
        if entry.path().to_str().is_none() {
            return Err(SourceError::BadPattern {
                pattern: pattern.to_string(),
                message: format!("matches `{rel}`, whose name is not valid UTF-8; rename it"),
            });
        }
        out.push(stat(&rel)?);
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
            list_inputs(&[format!("{root}/{pat}")], &Stores::new(&Default::default()))
                .unwrap()
                .into_iter()
                .map(|f| f.path[root.len() + 1..].to_string())
                .collect()
        };
        assert_eq!(names("*/*.ndjson"), ["a/1.ndjson", "b/2.ndjson"]);
        assert_eq!(names("**/*.ndjson"), ["a/1.ndjson", "a/x/3.ndjson", "b/2.ndjson"]);
        assert_eq!(names("a/skip.csv"), ["a/skip.csv"]);
        // A dangling symlink the pattern does not ask for is no concern of the listing.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("b/.#lock")).unwrap();
            std::os::unix::fs::symlink(dir.path().join("gone"), dir.path().join("b/x.txt")).unwrap();
            assert_eq!(names("b/*.ndjson"), ["b/2.ndjson"]);
            assert!(matches!(
                list_inputs(&[format!("{root}/b/*.txt")], &Stores::new(&Default::default())),
                Err(SourceError::Io { .. })
            ));
        }
        // Nothing under the output folder is an input.
        let stores = Stores::new(&Default::default());
        let outside = |pat: &str, out: &str| {
            list_inputs_outside(&[format!("{root}/{pat}")], &stores, Some(&format!("{root}/{out}"))).map(|v| {
                v.into_iter()
                    .map(|f| f.path[root.len() + 1..].to_string())
                    .collect::<Vec<_>>()
            })
        };
        assert_eq!(outside("**/*.ndjson", "a").unwrap(), ["b/2.ndjson"]);
        assert_eq!(outside("**/*.ndjson", "a/x/").unwrap(), ["a/1.ndjson", "b/2.ndjson"]);
        assert!(matches!(outside("a/*.ndjson", "a"), Err(SourceError::NoMatch { .. })));
        assert!(within("s3://b/out/t/part-0.parquet", "s3://b/out/"));
        assert!(!within("s3://b/output2/x", "s3://b/out"));
        for f in [
            "a/_SUCCESS",
            "a/.1.ndjson.crc",
            "a/_tmp/4.ndjson",
            "a/.h/5.ndjson",
            "_c/6.ndjson",
        ] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, "{}\n").unwrap();
        }
        // Names starting with `_` or `.` that a wildcard matched are not data...
        assert_eq!(names("a/*"), ["a/1.ndjson", "a/skip.csv"]);
        assert_eq!(names("**/*.ndjson"), ["a/1.ndjson", "a/x/3.ndjson", "b/2.ndjson"]);
        assert_eq!(names("*/*/*.ndjson"), ["a/x/3.ndjson"]);
        // ...unless the pattern names them.
        assert_eq!(names("a/_*"), ["a/_SUCCESS"]);
        assert_eq!(names("a/_tmp/*.ndjson"), ["a/_tmp/4.ndjson"]);
        assert_eq!(names("_c/*.ndjson"), ["_c/6.ndjson"]);
        assert_eq!(names("*/.h/*.ndjson"), ["a/.h/5.ndjson"]);
        assert!(matches!(
            list_inputs(&[format!("{root}/none/*.ndjson")], &Stores::new(&Default::default())),
            Err(SourceError::NoMatch { .. })
        ));
    }
}
