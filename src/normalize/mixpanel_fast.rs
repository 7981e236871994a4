//! The fast path for Mixpanel raw-export records given as JSON text (NDJSON lines, and
//! the `properties` JSON-text column of Parquet exports, see [`super::mixpanel_columnar`]),
//! and for `/groups` profile operations in NDJSON ([`profile_op`]).
//!
//! Building a full `serde_json::Value` tree per event allocates every key and value of
//! every property, while an event needs five fields and the group keys. Here the text is
//! parsed in one pass with serde visitors that keep only the fields we read (strings
//! borrowed from the text where they have no escapes) and check the rest without keeping
//! it. That check is as strict as building a `Value`: a record whose text the general path
//! would reject (a number out of range, a lone surrogate escape, nesting past serde_json's
//! recursion limit) must not slip through here, so values are never skipped with serde's
//! lenient `IgnoredAny` or `RawValue` scanning.
//!
//! Anything unusual (a flattened layout, a wrong type, float or out-of-range times)
//! declines the record, and the caller takes the general path, which also owns every error
//! message: both paths give the same [`RawEvent`] (or [`ProfileOp`]) for every record the
//! fast one accepts (tested).

use std::borrow::Cow;
use std::fmt::{self, Display, Write as _};
use std::ops::Range;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Number, Value};

use super::mixpanel::{group_key, parse_op, Checked, OPERATORS, OP_METADATA};
use super::values::{epoch_auto_us, parse_iso_us, take_required_id};
use super::{Code, DedupRef, DictStrings, EventContext, EventRef, GroupId, ProfileOp, RawEvent};

/// The event in `text` (an NDJSON line), or `None` to take the general path.
pub fn event(text: &str, ctx: &EventContext) -> Option<RawEvent> {
    let mut out = None;
    push_event(text, &PropsReader::new(ctx.keys), &mut |e| out = Some(e.to_owned()));
    out
}

/// [`event`] without copying: the event in `text` is handed to `push` borrowed, with
/// `reader` made once per job. `false`: take the general path.
pub(crate) fn push_event(text: &str, reader: &PropsReader, push: &mut dyn FnMut(EventRef<'_>)) -> bool {
    let mut s = Scratch::default();
    if !reader.parse_record(text, &mut s) {
        return false;
    }
    match reader.record_event(&mut s) {
        Some(e) => {
            push(e);
            true
        }
        None => false,
    }
}

// ---- Field rules shared with the columnar path -------------------------------------------
//
// Each mirrors one branch of `values::epoch_auto_us` / `epoch_ms_us` / `number_text`
// exactly (same arithmetic, same parsers), and returns `None` where the general path
// errors or takes a branch not copied here.

/// `epoch_auto_us` of an integer: seconds, or milliseconds above 1e11, as µs.
pub(crate) fn int_epoch_us(i: i64) -> Option<i64> {
    if (i as f64).abs() > 1e11 {
        i.checked_mul(1000)
    } else {
        i.checked_mul(1_000_000)
    }
}

/// `epoch_auto_us` of text: integer text or an ISO-8601 instant. Float text is declined.
pub(crate) fn text_epoch_us(s: &str) -> Option<i64> {
    let t = s.trim();
    if let Ok(i) = t.parse::<i64>() {
        return int_epoch_us(i);
    }
    if t.parse::<f64>().is_ok() {
        return None;
    }
    parse_iso_us(t)
}

/// `epoch_ms_us` of a number (an integer column goes through `as f64` first, as a JSON
/// number would).
pub(crate) fn ms_us(f: f64) -> Option<i64> {
    (f.is_finite() && f.abs() < 9.2e15).then(|| (f * 1e3).round() as i64)
}

/// `epoch_ms_us` of text.
pub(crate) fn text_ms_us(s: &str) -> Option<i64> {
    match s.trim().parse::<f64>() {
        Ok(f) if f.is_finite() && f.abs() < 9.2e15 => Some((f * 1e3).round() as i64),
        _ => parse_iso_us(s),
    }
}

/// Appends `values::number_text(n)` to `out` without allocating.
pub(crate) fn write_number(out: &mut String, n: &Number) {
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(f) = n.as_f64() {
        let _ = write!(out, "{}", if f == 0.0 { 0.0 } else { f });
    }
}

/// The group ids of one event, distinct per key as `values::memberships` makes them:
/// strings borrowed from the record, numbers (and strings that had escapes) written into
/// recycled `String`s, so that a long run of events allocates nothing.
#[derive(Debug, Default)]
pub(crate) struct GroupIds<'a> {
    ids: Vec<(u16, GroupId<'a>)>,
    /// One per id: where it came from (`Code::NONE` if not known).
    codes: Vec<Code>,
    spare: Vec<String>,
    key_start: usize,
}

impl<'a> GroupIds<'a> {
    pub(crate) fn clear(&mut self) {
        for (_, id) in self.ids.drain(..) {
            if let GroupId::Text(Cow::Owned(s)) = id {
                self.spare.push(s);
            }
        }
        self.codes.clear();
        self.key_start = 0;
    }

    /// Starts the ids of the next key (ids are distinct within a key only).
    pub(crate) fn start_key(&mut self) {
        self.key_start = self.ids.len();
    }

    fn seen(&self, id: &str) -> bool {
        self.ids[self.key_start..].iter().any(|(_, s)| s.text() == id)
    }

    /// A string id; empty strings give none.
    pub(crate) fn push_str(&mut self, k: u16, id: &'a str) {
        self.push_coded(k, id, Code::NONE);
    }

    /// A string id from where `code` says.
    pub(crate) fn push_coded(&mut self, k: u16, id: &'a str, code: Code) {
        if !id.is_empty() && !self.seen(id) {
            self.ids.push((k, GroupId::Text(Cow::Borrowed(id))));
            self.codes.push(code);
        }
    }

    /// Entry `code.entry` of `strings`, a dictionary the reader announced as `code.dict`.
    /// Only a key's second and later ids have their text read, to be told apart from the
    /// earlier ones (a null or empty entry is passed on, and is no id).
    pub(crate) fn push_entry(&mut self, k: u16, strings: DictStrings<'a>, code: Code) {
        if self.ids.len() > self.key_start {
            let id = strings.get(code.entry);
            if id.is_empty() || self.seen(id) {
                return;
            }
        }
        self.ids.push((k, GroupId::Entry(strings, code.entry)));
        self.codes.push(code);
    }

    // A `&Cow`, not a `&str`: a borrowed id keeps its own lifetime `'a`.
    #[allow(clippy::ptr_arg)]
    fn push_cow(&mut self, k: u16, id: &Cow<'a, str>) {
        match id {
            Cow::Borrowed(b) => self.push_str(k, b),
            Cow::Owned(o) => {
                if !o.is_empty() && !self.seen(o) {
                    let mut s = self.spare.pop().unwrap_or_default();
                    s.clear();
                    s.push_str(o);
                    self.ids.push((k, GroupId::Text(Cow::Owned(s))));
                    self.codes.push(Code::NONE);
                }
            }
        }
    }

    /// An id written as text (an integer column value).
    pub(crate) fn push_display(&mut self, k: u16, v: impl Display) {
        let mut s = self.spare.pop().unwrap_or_default();
        s.clear();
        let _ = write!(s, "{v}");
        self.push_owned(k, s);
    }

    fn push_number(&mut self, k: u16, n: &Number) {
        let mut s = self.spare.pop().unwrap_or_default();
        s.clear();
        write_number(&mut s, n);
        self.push_owned(k, s);
    }

    fn push_owned(&mut self, k: u16, s: String) {
        if s.is_empty() || self.seen(&s) {
            self.spare.push(s);
        } else {
            self.ids.push((k, GroupId::Text(Cow::Owned(s))));
            self.codes.push(Code::NONE);
        }
    }

    /// The Mixpanel event (dedup by name, user, time and insert id) with these memberships.
    pub(crate) fn event<'s>(
        &'s self,
        name: &'s str,
        name_code: Code,
        user: Option<&'s str>,
        time_us: i64,
        ingest_us: Option<i64>,
        insert_id: Option<&'s str>,
    ) -> Option<EventRef<'s>> {
        // Outside it, the general path words the reject.
        if !super::values::EVENT_TIMES_US.contains(&time_us) {
            return None;
        }
        Some(EventRef {
            name,
            user,
            time_us,
            ingest_us,
            dedup: DedupRef::NameUserTime(insert_id),
            groups: self.as_slice(),
            name_code,
            group_codes: &self.codes,
        })
    }

    pub(crate) fn as_slice(&self) -> &[(u16, GroupId<'a>)] {
        &self.ids
    }
}

// ---- One-pass parsing ------------------------------------------------------------------

/// A JSON value the event reads, as the parser kept it.
#[derive(Debug, Default)]
enum Val<'a> {
    /// The key did not occur.
    #[default]
    Absent,
    Null,
    Str(Cow<'a, str>),
    Num(Number),
    /// A list: its elements are `Scratch::items[range]` (nested lists and objects
    /// there are [`Val::Other`]).
    List(Range<usize>),
    /// A boolean or an object (checked, not kept).
    Other,
}

/// Reusable buffers for parsing records and building their events.
#[derive(Debug, Default)]
pub(crate) struct Scratch<'a> {
    name: Val<'a>,
    slots: Vec<Val<'a>>,
    items: Vec<Val<'a>>,
    ids: GroupIds<'a>,
    user: String,
    insert_id: String,
}

/// Which `properties` keys a Mixpanel event reads, and where the parser keeps them.
#[derive(Debug)]
pub(crate) struct PropsReader<'k> {
    /// Distinct names; a value's slot is its name's index.
    names: Vec<&'k str>,
    time: usize,
    ingest: usize,
    user: usize,
    insert_ids: [usize; 2],
    /// Slot of each group key, by key index.
    keys: Vec<usize>,
    /// A group key named `event` falls back to the top-level event name, which only the
    /// general path does.
    event_key: bool,
}

fn slot<'k>(names: &mut Vec<&'k str>, name: &'k str) -> usize {
    match names.iter().position(|n| *n == name) {
        Some(i) => i,
        None => {
            names.push(name);
            names.len() - 1
        }
    }
}

impl<'k> PropsReader<'k> {
    pub(crate) fn new(keys: &'k [String]) -> Self {
        let mut names = Vec::new();
        let time = slot(&mut names, "time");
        let ingest = slot(&mut names, "mp_processing_time_ms");
        let user = slot(&mut names, "distinct_id");
        let insert_ids = [slot(&mut names, "$insert_id"), slot(&mut names, "insert_id")];
        let keys_slots = keys.iter().map(|k| slot(&mut names, k)).collect();
        PropsReader {
            names,
            time,
            ingest,
            user,
            insert_ids,
            keys: keys_slots,
            event_key: keys.iter().any(|k| k == "event"),
        }
    }

    fn reset<'a>(&self, s: &mut Scratch<'a>) {
        s.name = Val::Absent;
        s.items.clear();
        s.slots.clear();
        s.slots.resize_with(self.names.len(), Val::default);
    }

    /// Parses the text of a `properties` object (a JSON-text column) into `s`. `false`:
    /// not valid JSON, or not an object.
    pub(crate) fn parse_props<'a>(&self, text: &'a str, s: &mut Scratch<'a>) -> bool {
        self.reset(s);
        let mut de = serde_json::Deserializer::from_str(text);
        let seed = PropsSeed {
            names: &self.names,
            slots: &mut s.slots,
            items: &mut s.items,
        };
        seed.deserialize(&mut de).is_ok() && de.end().is_ok()
    }

    /// Parses a raw-export record `{"event", "properties"}` into `s`. `false`: not valid
    /// JSON, or another shape (other top-level fields could be read by the lookup).
    fn parse_record<'a>(&self, text: &'a str, s: &mut Scratch<'a>) -> bool {
        self.reset(s);
        let mut de = serde_json::Deserializer::from_str(text);
        let seed = RecordSeed {
            names: &self.names,
            name: &mut s.name,
            slots: &mut s.slots,
            items: &mut s.items,
        };
        matches!(seed.deserialize(&mut de), Ok(true)) && de.end().is_ok()
    }

    /// The event of the record [`Self::parse_record`] read.
    fn record_event<'s>(&self, s: &'s mut Scratch<'_>) -> Option<EventRef<'s>> {
        let Scratch {
            name,
            slots,
            items,
            ids,
            user,
            insert_id,
        } = s;
        let Val::Str(name) = name else { return None };
        self.build(name, slots, items, ids, user, insert_id)
    }

    /// The event named `name` whose `properties` [`Self::parse_props`] read, when no
    /// top-level field can be consulted.
    pub(crate) fn props_event<'s>(&self, name: &'s str, s: &'s mut Scratch<'_>) -> Option<EventRef<'s>> {
        let Scratch {
            slots,
            items,
            ids,
            user,
            insert_id,
            ..
        } = s;
        self.build(name, slots, items, ids, user, insert_id)
    }

    /// `mixpanel::event` over `properties` alone: the record has no other top-level field
    /// the lookup could fall back to.
    fn build<'s, 'a: 's>(
        &self,
        name: &'s str,
        slots: &'s [Val<'a>],
        items: &'s [Val<'a>],
        ids: &'s mut GroupIds<'a>,
        user_buf: &'s mut String,
        insert_buf: &'s mut String,
    ) -> Option<EventRef<'s>> {
        if name.is_empty() || self.event_key {
            return None;
        }
        let get = |i: usize| match &slots[i] {
            Val::Absent | Val::Null => None,
            v => Some(v),
        };
        let time_us = match get(self.time)? {
            Val::Num(n) => int_epoch_us(n.as_i64()?)?,
            Val::Str(s) => text_epoch_us(s)?,
            _ => return None,
        };
        let ingest_us = match get(self.ingest) {
            None => None,
            Some(Val::Num(n)) => Some(ms_us(n.as_f64()?)?),
            Some(Val::Str(s)) => Some(text_ms_us(s)?),
            Some(_) => return None,
        };
        let user = match get(self.user) {
            None => None,
            Some(Val::Str(s)) => (!s.is_empty()).then_some(s.as_ref()),
            Some(Val::Num(n)) => {
                user_buf.clear();
                write_number(user_buf, n);
                Some(user_buf.as_str())
            }
            Some(_) => return None,
        };
        let insert_id = match self.insert_ids.iter().find_map(|&i| get(i)) {
            None => None,
            Some(Val::Str(s)) => Some(s.as_ref()),
            Some(Val::Num(n)) => {
                insert_buf.clear();
                write_number(insert_buf, n);
                Some(insert_buf.as_str())
            }
            Some(_) => return None,
        };
        ids.clear();
        for (k, &slot) in self.keys.iter().enumerate() {
            let k = k as u16;
            ids.start_key();
            match &slots[slot] {
                Val::Str(s) => ids.push_cow(k, s),
                Val::Num(n) => ids.push_number(k, n),
                Val::List(r) => {
                    for v in &items[r.clone()] {
                        match v {
                            Val::Str(s) => ids.push_cow(k, s),
                            Val::Num(n) => ids.push_number(k, n),
                            _ => {}
                        }
                    }
                }
                Val::Absent | Val::Null | Val::Other => {}
            }
        }
        ids.event(name, Code::NONE, user, time_us, ingest_us, insert_id)
    }
}

/// Checks any JSON value as strictly as building a `Value` would, keeping nothing.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Skip, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

/// An object key, borrowed unless it had escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'de, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

/// Keeps a value the event reads. Inside a list (`nested`), lists and objects are only
/// checked.
struct Capture<'s, 'a> {
    items: &'s mut Vec<Val<'a>>,
    nested: bool,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for Capture<'_, 'a> {
    type Value = Val<'a>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Val<'a>, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for Capture<'_, 'a> {
    type Value = Val<'a>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Val<'a>, E> {
        Ok(Val::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Val<'a>, E> {
        Ok(Val::Other)
    }
    fn visit_i64<E>(self, v: i64) -> Result<Val<'a>, E> {
        Ok(Val::Num(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Val<'a>, E> {
        Ok(Val::Num(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Val<'a>, E> {
        // As `Value` does (serde_json never parses a non-finite number).
        Ok(Number::from_f64(v).map_or(Val::Null, Val::Num))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Val<'a>, E> {
        Ok(Val::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Val<'a>, E> {
        Ok(Val::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Val<'a>, E> {
        Ok(Val::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val<'a>, A::Error> {
        if self.nested {
            while seq.next_element::<Skip>()?.is_some() {}
            return Ok(Val::Other);
        }
        let items = self.items;
        let start = items.len();
        while let Some(v) = seq.next_element_seed(Capture {
            items: &mut *items,
            nested: true,
        })? {
            items.push(v);
        }
        Ok(Val::List(start..items.len()))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val<'a>, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Val::Other)
    }
}

/// A `properties` object: the wanted keys into their slots (a repeated key: the last
/// wins, as in a `Value` map), every other value checked.
struct PropsSeed<'s, 'a> {
    names: &'s [&'s str],
    slots: &'s mut [Val<'a>],
    items: &'s mut Vec<Val<'a>>,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for PropsSeed<'_, 'a> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for PropsSeed<'_, 'a> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        // A repeated `properties` key replaces the whole object.
        self.slots.iter_mut().for_each(|s| *s = Val::Absent);
        while let Some(key) = map.next_key_seed(Key)? {
            match self.names.iter().position(|n| *n == key) {
                Some(i) => {
                    self.slots[i] = map.next_value_seed(Capture {
                        items: &mut *self.items,
                        nested: false,
                    })?;
                }
                None => {
                    map.next_value::<Skip>()?;
                }
            }
        }
        Ok(())
    }
}

/// A raw-export record: `event` and `properties` and nothing else. `Ok(false)`: no
/// `properties`; another key fails the parse.
struct RecordSeed<'s, 'a> {
    names: &'s [&'s str],
    name: &'s mut Val<'a>,
    slots: &'s mut [Val<'a>],
    items: &'s mut Vec<Val<'a>>,
}

impl<'de: 'a, 'a> DeserializeSeed<'de> for RecordSeed<'_, 'a> {
    type Value = bool;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for RecordSeed<'_, 'a> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        let mut props = false;
        while let Some(key) = map.next_key_seed(Key)? {
            match &*key {
                "event" => {
                    *self.name = map.next_value_seed(Capture {
                        items: &mut *self.items,
                        nested: true,
                    })?;
                }
                "properties" => {
                    map.next_value_seed(PropsSeed {
                        names: self.names,
                        slots: &mut *self.slots,
                        items: &mut *self.items,
                    })?;
                    props = true;
                }
                _ => return Err(de::Error::custom("not the raw-export shape")),
            }
        }
        Ok(props)
    }
}

// ---- Profile operations -------------------------------------------------------------------

/// The operation in `text` (an NDJSON `/groups` body), or `None` to take the general path
/// ([`super::mixpanel::profile_op`]), which owns every error message. The record is read
/// without a `Value` tree of its own: its metadata is checked and skipped, and only the
/// group key, id, time and payload are kept. Building the tree (a map of six keys, each
/// allocated) was about half of reading a million operations.
pub fn profile_op(text: &str) -> Option<ProfileOp> {
    let mut de = serde_json::Deserializer::from_str(text);
    let fields = OpSeed.deserialize(&mut de).ok()?;
    de.end().ok()?;
    fields.into_op()
}

/// The fields of a `/groups` body the operation is made of, as read.
#[derive(Default)]
struct OpFields {
    group_key: Option<Value>,
    group_id: Option<Value>,
    time: Option<Value>,
    op: Option<(&'static str, Value)>,
}

impl OpFields {
    /// `mixpanel::checked_profile_op` and `parse_op` on the fields, for records they accept.
    fn into_op(self) -> Option<ProfileOp> {
        let group_key = group_key(self.group_key).ok()?;
        let group_id = take_required_id("$group_id", self.group_id).ok()?;
        let time_us = epoch_auto_us(self.time.as_ref()).ok()?;
        let (operator, mut payload) = self.op?;
        let op = parse_op(operator, &mut payload).ok()?;
        let checked = Checked {
            group_key,
            group_id,
            time_us,
            operator,
        };
        Some(checked.with(op))
    }
}

/// A `/groups` body. A repeated field, an unknown `$` key or a second operator fails the
/// parse (the general path words the reject, or reads the last of repeated keys).
struct OpSeed;

impl<'de> DeserializeSeed<'de> for OpSeed {
    type Value = OpFields;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<OpFields, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for OpSeed {
    type Value = OpFields;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<OpFields, A::Error> {
        let mut f = OpFields::default();
        while let Some(key) = map.next_key_seed(Key)? {
            let slot = match &*key {
                "$group_key" => &mut f.group_key,
                "$group_id" => &mut f.group_id,
                "$time" => &mut f.time,
                k if !k.starts_with('$') || OP_METADATA.contains(&k) => {
                    map.next_value::<Skip>()?;
                    continue;
                }
                k => match OPERATORS.iter().find(|o| **o == k) {
                    Some(&op) if f.op.is_none() => {
                        f.op = Some((op, map.next_value()?));
                        continue;
                    }
                    _ => return Err(de::Error::custom("an unknown key or a second operator")),
                },
            };
            if slot.is_some() {
                return Err(de::Error::custom("a repeated field"));
            }
            *slot = Some(map.next_value()?);
        }
        Ok(f)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::{json, Value};

    use super::*;

    /// The general path, as the runner takes it (through the dispatcher).
    fn slow(text: &str, ctx: &EventContext) -> Result<RawEvent, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
        super::super::event(crate::job::Vendor::Mixpanel, &v, ctx).map(|e| e.expect("an event"))
    }

    fn scalar() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            (-3i64..1_800_000_000_000).prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            (0.0f64..2e9).prop_map(Value::from),
            Just(json!(-0.0)),
            "[a-c\"\\\\é]{0,3}".prop_map(Value::from),
            Just(json!("2024-01-01T10:00:00Z")),
            Just(json!(" 1704103200")),
            Just(json!("1704103200000.5")),
            Just(json!({"x": 1})),
        ]
    }

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            scalar(),
            prop::collection::vec(scalar(), 0..4).prop_map(Value::from),
            Just(json!([[1], "a"])),
        ]
    }

    /// Text the general path rejects, or that serde's lenient skipping would let through.
    fn raw_extra() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            Just(""),
            Just(r#","x":1e400"#),
            Just(r#","x":["\ud800"]"#),
            Just(r#","x":"\udc00""#),
            Just(r#","time":-0"#),
            Just(r#","x":1.5e300"#),
            Just(r#","x":"\u00e9\"""#),
            Just(r#","company_id":"\u0061b""#),
            Just(r#","\u0074ime":1704103200"#),
        ]
    }

    proptest! {
        #[test]
        fn fast_path_agrees_with_general_path(
            name in prop_oneof![Just(json!("Sign Up")), Just(json!("")), Just(json!(3)), Just(json!("é\"x"))],
            fields in prop::collection::btree_map(
                prop_oneof![Just("time"), Just("distinct_id"), Just("$insert_id"), Just("insert_id"),
                    Just("mp_processing_time_ms"), Just("company_id"), Just("team_id"), Just("other")],
                value(), 0..8),
            extra in raw_extra(),
            extra_top in any::<bool>(),
            event_key in any::<bool>(),
        ) {
            let mut keys = vec!["company_id".to_string(), "team_id".to_string()];
            if event_key {
                keys.push("event".into());
            }
            let ctx = EventContext { keys: &keys, columns: None };
            let mut rec = json!({"event": name, "properties": fields});
            if extra_top {
                rec["distinct_id"] = json!("top");
            }
            let mut text = rec.to_string();
            // Splice raw text into `properties` (its object closes before the record's).
            if !extra.is_empty() {
                let at = text.rfind("}}").unwrap();
                let sep = if text[..at].ends_with('{') { &extra[1..] } else { extra };
                text.insert_str(at, sep);
            }
            if let Some(fast) = event(&text, &ctx) {
                prop_assert_eq!(Ok(fast), slow(&text, &ctx), "{}", text);
            }
        }
    }

    #[test]
    fn takes_the_common_shape() {
        let keys = vec!["company_id".to_string()];
        let ctx = EventContext {
            keys: &keys,
            columns: None,
        };
        let text = r#"{"event":"a","properties":{"time":1704103200,"distinct_id":"u","$insert_id":"i",
            "mp_processing_time_ms":1704103201000,"company_id":["x","x",7],"$browser":"Chrome"}}"#;
        let e = event(text, &ctx).expect("fast path");
        assert_eq!(Ok(e), slow(text, &ctx));
        let text = r#"{"properties":{"time":"2024-01-01T10:00:00Z","distinct_id":42,"insert_id":7,
            "company_id":"\u0061cme"},"event":"b"}"#;
        let e = event(text, &ctx).expect("fast path");
        assert_eq!(e.dedup, super::super::DedupKey::NameUserTime(Some("7".into())));
        assert_eq!(Ok(e), slow(text, &ctx));
    }

    /// Records the first version of this fast path got wrong: it skipped unread values
    /// with serde's lenient scanner, ignored `properties.insert_id`, multiplied large
    /// `mp_processing_time_ms` without the general path's range check, and read a group
    /// key named `event` from `properties` only.
    #[test]
    fn regressions_take_the_general_path_or_agree() {
        let keys = vec!["company_id".to_string(), "event".to_string()];
        let ctx = EventContext {
            keys: &keys,
            columns: None,
        };
        for text in [
            r#"{"event":"a","properties":{"time":1704103200,"x":1e400}}"#,
            r#"{"event":"a","properties":{"time":1704103200,"x":"\ud800"}}"#,
            r#"{"event":"a","properties":{"time":1704103200,"insert_id":"q"}}"#,
            r#"{"event":"a","properties":{"time":1704103200,"mp_processing_time_ms":9200000000000000}}"#,
            r#"{"event":"a","properties":{"time":1704103200}}"#,
            // Out of the accepted years: the general path rejects it.
            r#"{"event":"a","properties":{"time":1704103200000000}}"#,
            r#"{"event":"a","properties":{"time":1}}"#,
        ] {
            if let Some(fast) = event(text, &ctx) {
                assert_eq!(Ok(fast), slow(text, &ctx), "{text}");
            }
        }
        let keys = vec!["company_id".to_string()];
        let ctx = EventContext {
            keys: &keys,
            columns: None,
        };
        let text = r#"{"event":"a","properties":{"time":1704103200,"insert_id":"q"}}"#;
        assert_eq!(Ok(event(text, &ctx).unwrap()), slow(text, &ctx));
    }

    #[test]
    fn nesting_limit_matches_the_general_path() {
        let keys = vec!["company_id".to_string()];
        let ctx = EventContext {
            keys: &keys,
            columns: None,
        };
        for depth in [120, 125, 126, 127, 128, 130] {
            for key in ["x", "company_id"] {
                let text = format!(
                    r#"{{"event":"a","properties":{{"time":1704103200,"{key}":{}{}}}}}"#,
                    "[".repeat(depth),
                    "]".repeat(depth)
                );
                let fast = event(&text, &ctx);
                let general = slow(&text, &ctx);
                assert_eq!(fast.is_some(), general.is_ok(), "{key} at depth {depth}");
                if let Some(fast) = fast {
                    assert_eq!(Ok(fast), general);
                }
            }
        }
    }

    #[test]
    fn numbers_written_as_number_text() {
        for v in [
            json!(0),
            json!(-0.0),
            json!(-5),
            json!(u64::MAX),
            json!(1042.0),
            json!(12.5),
            json!(1e300),
        ] {
            let Value::Number(n) = v else { unreachable!() };
            let mut s = String::new();
            write_number(&mut s, &n);
            assert_eq!(s, super::super::values::number_text(&n));
        }
    }
    // ---- Profile operations ----

    /// The general path on `text`, both ways it reads a record: copying the payload, and
    /// taking it. `Err`: rejected (or not JSON).
    fn slow_op(text: &[u8]) -> Result<ProfileOp, String> {
        let mut v: Value = serde_json::from_slice(text).map_err(|e| e.to_string())?;
        let copied = super::super::mixpanel::profile_op(&v);
        let taken = super::super::mixpanel::take_profile_op(&mut v);
        assert_eq!(copied, taken, "{}", String::from_utf8_lossy(text));
        copied
    }

    /// A value of any shape an operation's fields or payload may hold.
    fn op_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            3 => scalar(),
            1 => Just(json!("")),
            1 => Just(json!(1704067207.62)),
            1 => Just(json!("cé\"")),
            2 => prop::collection::vec(scalar(), 0..3).prop_map(Value::from),
            2 => prop::collection::btree_map("[a-c]", scalar(), 0..3).prop_map(|m| json!(m)),
            2 => prop::collection::btree_map("[a-c]", prop::collection::vec(scalar(), 0..3), 0..3)
                .prop_map(|m| json!(m)),
            1 => Just(json!(["x", "y"])),
        ]
    }

    /// A key of a `/groups` body, written as JSON text (some with escapes).
    fn op_key() -> impl Strategy<Value = &'static str> {
        prop_oneof![
            3 => Just(r#""$group_key""#),
            3 => Just(r#""$group_id""#),
            2 => Just(r#""$time""#),
            2 => Just(r#""$set""#),
            1 => Just(r#""$set_once""#),
            1 => Just(r#""$unset""#),
            1 => Just(r#""$union""#),
            1 => Just(r#""$remove""#),
            1 => Just(r#""$delete""#),
            1 => Just(r#""$token""#),
            1 => Just(r#""$ip""#),
            1 => Just(r#""name""#),
            1 => Just(r#""$other""#),
            1 => Just(r#""\u0024set""#),
            1 => Just(r#""\u0024group_id""#),
        ]
    }

    /// Whether `text`'s object repeats a key the operation is read from (the fast path
    /// declines those; the general path reads the last), or has two operators (the
    /// general path reads one set beside null ones, as tables of operations have them).
    fn repeats_a_field(text: &str) -> bool {
        let mut seen = Vec::new();
        let mut de = serde_json::Deserializer::from_str(text);
        struct Keys<'s>(&'s mut Vec<String>);
        impl<'de> Visitor<'de> for Keys<'_> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
                while let Some(k) = map.next_key_seed(Key)? {
                    self.0.push(k.into_owned());
                    map.next_value::<Skip>()?;
                }
                Ok(())
            }
        }
        if de.deserialize_map(Keys(&mut seen)).is_err() {
            return false;
        }
        let kept =
            |k: &&String| ["$group_key", "$group_id", "$time"].contains(&k.as_str()) || OPERATORS.contains(&k.as_str());
        let kept: Vec<&String> = seen.iter().filter(kept).collect();
        (1..kept.len()).any(|i| kept[..i].contains(&kept[i]))
            || kept.iter().filter(|k| OPERATORS.contains(&k.as_str())).count() > 1
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// The fast path gives what the general path gives, and declines only what the
        /// general path rejects, or a record that repeats one of its fields.
        #[test]
        fn profile_fast_path_agrees_with_general_path(
            fields in prop::collection::vec((op_key(), op_value()), 0..7),
            valid in prop_oneof![Just(None), (0usize..5).prop_map(Some)],
            cut in prop_oneof![9 => Just(None), 1 => (0usize..80).prop_map(Some)],
        ) {
            // Most records start from a valid body, so that the fields above vary it.
            let mut parts: Vec<String> = Vec::new();
            if let Some(op) = valid {
                let payload = [r#"{"name":"A","n":1}"#, r#"{"a":1}"#, r#"["a","b"]"#, r#"{"t":["x",2]}"#, "null"][op];
                let operator = ["$set", "$set_once", "$unset", "$union", "$delete"][op];
                parts.push(r#""$group_key":"company_id","$group_id":"c1","$time":1704067200"#.into());
                parts.push(format!(r#""{operator}":{payload}"#));
            }
            for (k, v) in &fields {
                parts.push(format!("{k}:{v}"));
            }
            let mut text = format!("{{{}}}", parts.join(",")).into_bytes();
            // A cut record, maybe inside a character: not JSON, or not UTF-8 (which the
            // NDJSON reader leaves to the general path, as here).
            if let Some(at) = cut {
                text.truncate(at.min(text.len()));
            }
            let general = slow_op(&text);
            let shown = String::from_utf8_lossy(&text);
            match std::str::from_utf8(&text).ok().and_then(profile_op) {
                Some(fast) => prop_assert_eq!(Ok(fast), general, "{}", shown),
                None => prop_assert!(general.is_err() || repeats_a_field(&shown), "declined {}: {:?}", shown, general),
            }
        }
    }

    #[test]
    fn profile_fast_path_reads_every_operator() {
        for text in [
            r#"{"$token":"t","$group_key":"company_id","$group_id":"c1","$set":{"name":"C","seats":3},"$time":1704067200}"#,
            r#"{"$group_key":"team_id","$group_id":7,"$set_once":{"first":"2024-01-01"},"$time":1704067207.620}"#,
            r#"{"$group_key":"company_id","$group_id":"c\u00e9","$unset":["plan"],"$time":"2024-01-01T00:00:00Z"}"#,
            r#"{"$group_key":"company_id","$group_id":"c2","$union":{"tags":["a","b"]},"$ip":"1.2.3.4"}"#,
            r#"{"$group_key":"company_id","$group_id":"c2","$remove":{"tags":"a"},"$time":null,"x":[1,{"y":2}]}"#,
            r#"{"$group_key":"company_id","$group_id":"c2","$delete":"","$time":1704067200000}"#,
        ] {
            let fast = profile_op(text).unwrap_or_else(|| panic!("declined {text}"));
            assert_eq!(Ok(fast), slow_op(text.as_bytes()), "{text}");
        }
        for text in [
            r#"{"$group_key":"company_id","$group_id":"c1","$set":{"a":1},"$add":{"n":1}}"#,
            r#"{"$group_key":"company_id","$group_id":"c1","$set":{"a":1},"$unset":["a"]}"#,
            r#"{"$group_key":"company_id","$group_id":"","$set":{"a":1}}"#,
            r#"{"$group_key":"company_id","$group_id":"c1","$set":["a"]}"#,
            r#"{"$group_key":"company_id","$group_id":"c1","$set":{"a":1},"x":1e400}"#,
            r#"{"$group_key":"company_id","$group_id":"c1","$set":{"a":1},"$time":"soon"}"#,
        ] {
            assert!(slow_op(text.as_bytes()).is_err(), "{text}");
            assert_eq!(profile_op(text), None, "{text}");
        }
    }
}
