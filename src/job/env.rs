//! `${VAR}` expansion inside job-file strings.
//!
//! Expansion happens per string value while deserialising (the [`EnvString`] newtype), so a
//! missing variable is reported at the value's own line and column rather than at some
//! offset in a pre-substituted text. `$${` is a literal `${`.

use serde::{Deserialize, Deserializer};

/// A job-file string with `${VAR}` references replaced from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvString(pub String);

impl std::ops::Deref for EnvString {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for EnvString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        expand(&raw, |name| std::env::var(name).ok())
            .map(EnvString)
            .map_err(serde::de::Error::custom)
    }
}

/// A keyword value (`format = "csv"`, `clock = "${CLOCK}"`) read as `T` after `${VAR}`
/// expansion: SPEC §3 expands every string, keywords included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Env<T>(pub T);

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Env<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = EnvString::deserialize(d)?;
        T::deserialize(serde::de::value::StringDeserializer::<D::Error>::new(s.0)).map(Env)
    }
}

/// Replaces `${NAME}` in `s` using `lookup`.
pub fn expand(s: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after
                .find('}')
                .ok_or_else(|| format!("unterminated `${{` in {s:?} (write `$${{` for a literal `${{`)"))?;
            let name = &after[..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(format!("invalid environment variable name {name:?} in `${{...}}`"));
            }
            let value = lookup(name).ok_or_else(|| format!("environment variable `{name}` is not set"))?;
            if value.contains(['\n', '\r']) {
                return Err(format!("environment variable `{name}` contains a newline"));
            }
            out.push_str(&value);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::expand;

    fn env(name: &str) -> Option<String> {
        match name {
            "BUCKET" => Some("acme-exports".into()),
            "NL" => Some("a\nb".into()),
            _ => None,
        }
    }

    #[test]
    fn expands_and_escapes() {
        assert_eq!(expand("s3://${BUCKET}/x", env).unwrap(), "s3://acme-exports/x");
        assert_eq!(expand("$${BUCKET} $5 $", env).unwrap(), "${BUCKET} $5 $");
        assert_eq!(expand("$group_id", env).unwrap(), "$group_id");
    }

    #[test]
    fn names_missing_variable() {
        let e = expand("${NOPE}/x", env).unwrap_err();
        assert!(e.contains("`NOPE` is not set"), "{e}");
        assert!(expand("${NL}", env).unwrap_err().contains("newline"));
        assert!(expand("${BUCKET", env).unwrap_err().contains("unterminated"));
    }
}
