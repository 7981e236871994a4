//! Vendor records → canonical events and profile operations (SPEC §4).
//!
//! Each vendor module knows where its layout keeps the event name, user, times, dedup key
//! and group ids. Everything downstream (dedup, attribution, folding, tables) sees only
//! [`RawEvent`] and [`ProfileOp`]. A record that makes no sense yields `Err(reason)`, which
//! the runner turns into a reject (SPEC §7).

pub mod layout;
pub mod mixpanel;
pub mod mixpanel_columnar;
pub mod mixpanel_fast;
pub mod posthog;
pub mod segment;
pub mod table;
pub mod values;

use std::borrow::Cow;

use arrow_array::{Array, LargeStringArray, StringArray, StringViewArray};
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

/// A [`RawEvent`] borrowed from the record it was read from, so that fast paths (Arrow
/// columns, JSON text) hand events on without allocating their strings.
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    pub name: &'a str,
    /// `None` for an empty or missing user id.
    pub user: Option<&'a str>,
    pub time_us: i64,
    pub ingest_us: Option<i64>,
    pub dedup: DedupRef<'a>,
    /// Candidate memberships, distinct per key, as in [`RawEvent::groups`], except that a
    /// dictionary entry may turn out empty (then it is no membership).
    pub groups: &'a [(u16, GroupId<'a>)],
    /// Where `name` came from, when the reader knows.
    pub name_code: Code,
    /// Where each of `groups` came from (same order), or empty when none is known.
    pub group_codes: &'a [Code],
}

/// A group id as a fast path hands it on.
#[derive(Debug, Clone)]
pub enum GroupId<'a> {
    /// Its text, not empty: a `Cow` because a numeric id has to be written out as text.
    Text(Cow<'a, str>),
    /// An entry of a string dictionary the reader announced (the id's [`Code`] says which),
    /// its text read only when the consumer needs it: a row's code is usually all it needs,
    /// and reading the text for every row was a cache miss on the dictionary's offsets. A
    /// null or empty entry is no id.
    Entry(DictStrings<'a>, u32),
}

impl GroupId<'_> {
    /// The id's text; empty for an entry that is no id.
    pub fn text(&self) -> &str {
        match self {
            GroupId::Text(t) => t,
            GroupId::Entry(strings, entry) => strings.get(*entry),
        }
    }

    /// The same id, borrowed.
    pub fn reborrow(&self) -> GroupId<'_> {
        match self {
            GroupId::Text(t) => GroupId::Text(Cow::Borrowed(t)),
            GroupId::Entry(strings, entry) => GroupId::Entry(*strings, *entry),
        }
    }
}

/// The strings of an Arrow dictionary, by entry.
#[derive(Debug, Clone, Copy)]
pub enum DictStrings<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
}

impl<'a> DictStrings<'a> {
    /// Entry `entry`'s string, `""` for a null one.
    pub fn get(self, entry: u32) -> &'a str {
        let i = entry as usize;
        match self {
            DictStrings::Utf8(a) if a.is_valid(i) => a.value(i),
            DictStrings::Large(a) if a.is_valid(i) => a.value(i),
            DictStrings::View(a) if a.is_valid(i) => a.value(i),
            _ => "",
        }
    }
}

/// Where a reader got a string, when it knows: entry `entry` of the dictionary it numbered
/// `dict` (a Parquet column chunk's dictionary). A reader never gives two dictionaries one
/// number while reading one file, so within a file equal codes are equal strings, and a
/// consumer may work a string's value out once per code instead of once per row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    pub dict: u32,
    pub entry: u32,
}

impl Code {
    /// Not known.
    pub const NONE: Code = Code {
        dict: u32::MAX,
        entry: 0,
    };

    pub fn is_none(self) -> bool {
        self.dict == u32::MAX
    }
}

/// What a string dictionary holds, as far as the event goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DictOf {
    Names,
    GroupIds,
}

/// Told of a string dictionary once per number, before the first row with its [`Code`]s is
/// handed on: what it holds, its number, and its strings by entry (a null entry as `""`,
/// which no row gets). A consumer may look them all up at once, and then only remember;
/// entries no row uses may be among them.
pub type OnDictionary<'c> = dyn FnMut(DictOf, u32, &[&str]) + 'c;

/// [`DedupKey`], borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DedupRef<'a> {
    NameUserTime(Option<&'a str>),
    Id(&'a str),
    Unique,
}

impl DedupKey {
    pub fn as_ref(&self) -> DedupRef<'_> {
        match self {
            DedupKey::NameUserTime(id) => DedupRef::NameUserTime(id.as_deref()),
            DedupKey::Id(id) => DedupRef::Id(id),
            DedupKey::Unique => DedupRef::Unique,
        }
    }
}

impl EventRef<'_> {
    /// The owned event (tests compare fast paths with the general one through it).
    pub fn to_owned(&self) -> RawEvent {
        RawEvent {
            name: self.name.to_string(),
            user: self.user.map(str::to_string),
            time_us: self.time_us,
            ingest_us: self.ingest_us,
            dedup: match self.dedup {
                DedupRef::NameUserTime(id) => DedupKey::NameUserTime(id.map(str::to_string)),
                DedupRef::Id(id) => DedupKey::Id(id.to_string()),
                DedupRef::Unique => DedupKey::Unique,
            },
            groups: self
                .groups
                .iter()
                .filter(|(_, g)| !g.text().is_empty())
                .map(|(k, g)| (*k, g.text().to_string()))
                .collect(),
        }
    }
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
    /// Whether an operation may take its payload out of the record it was read from: true
    /// when nothing is rejected once an operation is read (the record's text is then no
    /// longer needed). Copying the payload instead was ~15% of reading 1M Mixpanel
    /// operations.
    pub take_payload: bool,
}

/// Normalises one event record of `vendor`. `Ok(None)`: a record that is valid but not an
/// event (e.g. a Segment `identify` call). An event time outside
/// [`values::EVENT_TIMES_US`] is a bad record, whatever the vendor (the fast paths decline
/// such rows to here).
pub fn event(vendor: Vendor, v: &Value, ctx: &EventContext) -> Result<Option<RawEvent>, String> {
    let e = match vendor {
        Vendor::Mixpanel => mixpanel::event(v, ctx).map(Some),
        Vendor::Posthog => posthog::event(v, ctx).map(Some),
        Vendor::Segment => segment::event(v, ctx),
        Vendor::Table => table::event(v, ctx).map(Some),
    }?;
    if let Some(e) = &e {
        values::event_time_us(e.time_us)?;
    }
    Ok(e)
}

/// Normalises one profile record of `vendor`. `Ok(None)`: valid, but no operation.
pub fn profile_op(vendor: Vendor, v: &mut Value, ctx: &ProfileContext) -> Result<Option<ProfileOp>, String> {
    match vendor {
        Vendor::Mixpanel if ctx.take_payload => mixpanel::take_profile_op(v).map(Some),
        Vendor::Mixpanel => mixpanel::profile_op(v).map(Some),
        Vendor::Posthog => posthog::profile_op(v),
        Vendor::Segment => segment::profile_op(v),
        Vendor::Table => table::profile_op(v, ctx).map(Some),
    }
}
