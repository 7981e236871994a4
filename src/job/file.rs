//! The job file as written (TOML, SPEC §3): every struct denies unknown keys, and values
//! that need a post-parse check keep their span so errors can point at a line.

use serde::Deserialize;
use toml::Spanned;

use super::env::{Env, EnvString};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobFile {
    /// Job-file format version; must be 1.
    pub version: Spanned<i64>,
    /// Job name; keys the run state.
    pub name: Spanned<EnvString>,
    /// IANA time zone for day boundaries in every output (default `UTC`).
    pub timezone: Option<Spanned<EnvString>>,
    /// Event names that never count as activity.
    pub exclude_events: Option<Vec<EnvString>>,
    pub events: EventsSection,
    pub profiles: Option<ProfilesSection>,
    #[serde(default)]
    pub group_keys: Vec<GroupKeySection>,
    pub output: OutputSection,
    #[serde(default)]
    pub funnels: Vec<FunnelSection>,
    pub s3: Option<S3Section>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vendor {
    Mixpanel,
    Posthog,
    Segment,
    Table,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileTypeName {
    Parquet,
    Csv,
    Ndjson,
    Jsonl,
    Json,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsSection {
    pub format: Env<Vendor>,
    pub paths: Spanned<Vec<EnvString>>,
    pub file_type: Option<Env<FileTypeName>>,
    pub columns: Option<Spanned<EventColumns>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventColumns {
    pub time: EnvString,
    pub event: EnvString,
    pub distinct_id: EnvString,
    pub insert_id: Option<EnvString>,
    pub ingest_time: Option<EnvString>,
    pub properties: Option<EnvString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FoldOrderName {
    Arrival,
    Time,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfilesSection {
    pub format: Env<Vendor>,
    pub paths: Spanned<Vec<EnvString>>,
    pub file_type: Option<Env<FileTypeName>>,
    pub order: Option<Env<FoldOrderName>>,
    pub columns: Option<Spanned<ProfileColumns>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileColumns {
    pub time: EnvString,
    pub group_key: EnvString,
    pub group_id: EnvString,
    pub operation: EnvString,
    pub value: EnvString,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClockName {
    Event,
    Ingest,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupKeySection {
    pub key: Spanned<EnvString>,
    pub display_name: Option<EnvString>,
    /// RFC 3339 instant, or a bare `YYYY-MM-DD` meaning midnight in the job's timezone.
    /// A TOML date or datetime literal is accepted too.
    pub effective_from: Option<Spanned<toml::Value>>,
    pub clock: Option<Env<ClockName>>,
    pub name_property: Option<EnvString>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormatName {
    Parquet,
    Csv,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSection {
    pub path: Spanned<EnvString>,
    pub format: Option<Env<OutputFormatName>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FunnelSection {
    pub name: Spanned<EnvString>,
    pub group_key: Spanned<EnvString>,
    pub steps: Spanned<Vec<EnvString>>,
    pub window_days: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Section {
    pub endpoint: Option<EnvString>,
    pub region: Option<EnvString>,
    pub allow_http: Option<bool>,
    pub access_key_id: Option<EnvString>,
    pub secret_access_key: Option<EnvString>,
    pub session_token: Option<EnvString>,
    pub profile: Option<EnvString>,
}
