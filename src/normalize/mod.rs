//! Vendor records → canonical events and profile operations (SPEC §4).
//!
//! Each vendor module knows where its layout keeps the event name, user, times, dedup key
//! and group ids. Everything downstream (dedup, attribution, folding, tables) sees only
//! [`RawEvent`] and [`ProfileOp`]. A record that makes no sense yields `Err(reason)`, which
//! the runner turns into a reject (SPEC §7).

pub mod mixpanel;
pub mod mixpanel_fast;
pub mod posthog;
pub mod segment;
pub mod table;
pub mod values;

use serde_json::{Map, Value};

use crate::job::{EventColumns, ProfileColumns, Vendor};

/// An event as every vendor's record boils down to.
#[derive(Debug, Clone, PartialEq)]
pub struct RawEvent {
    pub name: String,
    /// `None` for an empty or missing user id: the event counts, the user does not.
    pub user: Option<String>,
    /// Event time, UTC microseconds.
    pub time_us: i64,
    /// Ingest (processing) time, UTC microseconds, when the format records one.
    pub ingest_us: Option<i64>,
    pub dedup: DedupKey,
    /// Candidate group memberships: (index of the job's group key, group id), distinct.
    /// Effective dates are applied later, after dedup.
    pub groups: Vec<(u16, String)>,
}

/// What makes two records the same event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DedupKey {
    /// Mixpanel: (event, distinct_id, time, `$insert_id`); a missing insert id is part of
    /// the key as "none".
    NameUserTime(Option<String>),
    /// PostHog `uuid`, Segment `messageId`, a mapped `insert_id`.
    Id(String),
    /// No key: never a duplicate.
    Unique,
}

/// One profile operation on one group (SPEC §5).
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileOp {
    pub group_key: String,
    pub group_id: String,
    pub op: Op,
    /// The operation's event time (µs), reported as `created_at`/`updated_at`.
    pub time_us: Option<i64>,
    /// The time used by `order = "time"` (PostHog: ingest time), µs.
    pub order_us: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Set(Map<String, Value>),
    SetOnce(Map<String, Value>),
    Unset(Vec<String>),
    /// Values are arrays (checked at normalisation).
    Union(Map<String, Value>),
    /// Values are single (non-array) values.
    Remove(Map<String, Value>),
    Delete,
}

impl Op {
    /// Whether the operation brings a missing group into existence.
    pub fn creates(&self) -> bool {
        matches!(self, Op::Set(_) | Op::SetOnce(_) | Op::Union(_))
    }
}

/// What a vendor normaliser needs from the job to read events.
pub struct EventContext<'a> {
    /// The job's group keys, by index.
    pub keys: &'a [String],
    /// Column mapping (`format = "table"` only).
    pub columns: Option<&'a EventColumns>,
}

/// What a vendor normaliser needs from the job to read profile operations.
pub struct ProfileContext<'a> {
    /// Column mapping (`format = "table"` only).
    pub columns: Option<&'a ProfileColumns>,
}

/// Normalises one event record of `vendor`. `Ok(None)`: a record that is valid but not an
/// event (e.g. a Segment `identify` call).
pub fn event(vendor: Vendor, v: &Value, ctx: &EventContext) -> Result<Option<RawEvent>, String> {
    match vendor {
        Vendor::Mixpanel => mixpanel::event(v, ctx).map(Some),
        Vendor::Posthog => posthog::event(v, ctx).map(Some),
        Vendor::Segment => segment::event(v, ctx),
        Vendor::Table => table::event(v, ctx).map(Some),
    }
}

/// Normalises one profile record of `vendor`. `Ok(None)`: valid, but no operation.
pub fn profile_op(vendor: Vendor, v: &Value, ctx: &ProfileContext) -> Result<Option<ProfileOp>, String> {
    match vendor {
        Vendor::Mixpanel => mixpanel::profile_op(v).map(Some),
        Vendor::Posthog => posthog::profile_op(v),
        Vendor::Segment => segment::profile_op(v),
        Vendor::Table => table::profile_op(v, ctx).map(Some),
    }
}
