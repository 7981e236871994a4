//! The columnar fast path for Mixpanel events in Parquet: events straight from Arrow
//! columns, without the JSON object per row that `sources::parquet` builds for the general
//! path (`mixpanel::event`).
//!
//! Two layouts are read here. Flattened typed columns (`event`, `distinct_id`, `time`,
//! `$insert_id`, `mp_processing_time_ms`, one column per group key, as warehouse exports
//! and the benchmark files have them) are read a column at a time, a run of rows at once
//! (each column's type is matched once a run, not once a cell); a `{event, properties}`
//! layout whose `properties` holds JSON text goes through [`super::mixpanel_fast`]'s one-pass
//! parser. Columns are resolved once per batch; rows then cost no allocation beyond the
//! recycled buffers.
//!
//! The general path stays the reference and owns every error message: a column of a type
//! not handled here declines the whole batch, and a row whose value the general path would
//! reject, or read through a branch not copied here (float times, timestamps out of range,
//! JSON-text `context`/`traits` values, ...), is declined and goes through the general
//! path. Every event taken here equals what `mixpanel::event` makes of the row's JSON
//! object (tested against `sources::parquet`'s conversion).

use std::fmt::Write as _;
use std::ops::Range;

use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{
    Array, DictionaryArray, Int16Array, Int32Array, Int64Array, Int8Array, LargeListArray, LargeStringArray, ListArray,
    PrimitiveArray, RecordBatch, StringArray, StringViewArray, UInt16Array, UInt32Array, UInt64Array, UInt8Array,
};
use arrow_buffer::NullBuffer;
use arrow_data::ArrayData;
use arrow_schema::{DataType, TimeUnit};

use super::mixpanel_fast::{
    int_epoch_us, ms_us, text_epoch_us, text_ms_us, GroupIds, PropsReader, Scratch as PropsScratch,
};
use super::{Code, DictOf, DictStrings, EventContext, EventRef, OnDictionary};
use crate::sources::JSON_TEXT_COLUMNS;

/// Top-level names `mixpanel::event` may read besides the event name, the group keys and
/// `properties`.
const FIELDS: [&str; 5] = [
    "time",
    "mp_processing_time_ms",
    "distinct_id",
    "$insert_id",
    "insert_id",
];

/// Hands on every row of `batch` it can read as a Mixpanel event, and pushes the indices
/// of the others (ascending) into `declined`, for the general path. `dicts` numbers the
/// dictionaries of string columns for [`Code`]s: one per file, kept across its batches.
/// The event-name and group-id dictionaries are announced to `on_dictionary` (see
/// [`OnDictionary`]) before the rows that use them.
pub fn events(
    batch: &RecordBatch,
    ctx: &EventContext,
    dicts: &mut Dicts,
    on_dictionary: &mut OnDictionary<'_>,
    push: &mut dyn FnMut(EventRef<'_>),
    declined: &mut Vec<usize>,
) {
    let n = batch.num_rows();
    let done = match Layout::of(batch, ctx, dicts) {
        Some(Layout::Flat(flat)) => {
            flat.name.announce(DictOf::Names, dicts, on_dictionary);
            for key in flat.keys.iter().flatten() {
                key.leaf().announce(DictOf::GroupIds, dicts, on_dictionary);
            }
            flat.events(n, push, declined);
            true
        }
        Some(Layout::Props(props)) => {
            props.name.announce(DictOf::Names, dicts, on_dictionary);
            props.events(n, ctx, push, declined);
            true
        }
        None => false,
    };
    if !done {
        declined.extend(0..n);
    }
}

/// Numbers the dictionaries of one file's batches. The Parquet reader hands every batch
/// of a column chunk the same dictionary buffers (a list column's in a new array each
/// time), so dictionaries are told apart by their buffers' addresses. Holding on to the
/// recent ones means no other dictionary can take those addresses meanwhile.
#[derive(Default)]
pub struct Dicts {
    /// With their numbers, and whether they were announced (see [`events`]).
    recent: Vec<(ArrayData, u32, bool)>,
    next: u32,
}

impl Dicts {
    /// Enough for a row group's string columns; older dictionaries are let go (and a
    /// dictionary met again after that gets a new number, which is only slower).
    const RECENT: usize = 16;

    fn number(&mut self, values: &dyn Array) -> u32 {
        let data = values.to_data();
        if let Some((_, n, _)) = self.recent.iter().find(|(d, _, _)| d.ptr_eq(&data)) {
            return *n;
        }
        if self.recent.len() == Self::RECENT {
            self.recent.remove(0);
        }
        let n = self.next;
        // `u32::MAX` is `Code::NONE`; four billion dictionaries in one file do not occur.
        self.next = self
            .next
            .checked_add(1)
            .filter(|&n| n < u32::MAX)
            .expect("dictionary numbers");
        self.recent.push((data, n, false));
        n
    }

    /// Whether dictionary `n` is to be announced now: true once per number.
    fn announce(&mut self, n: u32) -> bool {
        match self.recent.iter_mut().find(|(_, m, _)| *m == n) {
            Some((_, _, told)) => !std::mem::replace(told, true),
            None => false,
        }
    }
}

/// One cell, as far as the event cares.
#[derive(Debug, Clone, Copy)]
enum Cell<'a> {
    Null,
    Str(&'a str),
    Int(i64),
    /// A timestamp that round-trips through the RFC 3339 text the general path sees.
    Micros(i64),
    /// A value not read here (an unsigned integer past `i64`, a timestamp out of range).
    Bad,
}

#[derive(Debug, Clone, Copy)]
enum Ints<'a> {
    I8(&'a Int8Array),
    I16(&'a Int16Array),
    I32(&'a Int32Array),
    I64(&'a Int64Array),
    U8(&'a UInt8Array),
    U16(&'a UInt16Array),
    U32(&'a UInt32Array),
    U64(&'a UInt64Array),
}

#[derive(Debug, Clone, Copy)]
enum Stamps<'a> {
    S(&'a PrimitiveArray<TimestampSecondType>),
    Ms(&'a PrimitiveArray<TimestampMillisecondType>),
    Us(&'a PrimitiveArray<TimestampMicrosecondType>),
    Ns(&'a PrimitiveArray<TimestampNanosecondType>),
}

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z in µs: within these the text
/// `sources::parquet` writes for a timestamp (`%Y-%m-%dT%H:%M:%S%.6fZ`) parses back to the
/// same instant; outside them (five-digit or negative years) the row is declined.
const MIN_US: i64 = -62_135_596_800_000_000;
const MAX_US: i64 = 253_402_300_799_999_999;

/// A column of a type read here.
#[derive(Debug)]
enum Leaf<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
    Int(Ints<'a>),
    Stamp(Stamps<'a>),
    /// A dictionary of a leaf type.
    Dict {
        /// The dictionary's nulls (its keys'), taken out once: `Array::is_null` on the
        /// dictionary would be a virtual call per row.
        nulls: Option<NullBuffer>,
        keys: Keys<'a>,
        values: Box<Leaf<'a>>,
        /// Its number in the file's [`Dicts`], when its values are strings.
        number: Option<u32>,
    },
}

/// A dictionary's keys, as `usize`s where the key is not null.
#[derive(Debug)]
enum Keys<'a> {
    /// What the Parquet reader gives, read in place: normalizing them cost a pass writing
    /// 8 bytes a row, per dictionary column and batch.
    I32(&'a [i32]),
    /// Any other key type, normalized once per batch as the general path normalizes them.
    Normalized(Vec<usize>),
}

impl Keys<'_> {
    #[inline]
    fn get(&self, i: usize) -> Option<usize> {
        match self {
            // A null slot's key may be anything; callers check nulls before using it.
            Keys::I32(k) => k.get(i).map(|&k| k as usize),
            Keys::Normalized(k) => k.get(i).copied(),
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Keys::I32(k) => k.is_empty(),
            Keys::Normalized(k) => k.is_empty(),
        }
    }
}

/// Binds `$get` to a closure reading one cell of `$leaf` (`usize -> Cell`) and evaluates
/// `$body` with it, in one arm per column type: callers that read many rows match the
/// type once. A dictionary's values are matched here too (string values inline, others
/// through [`Leaf::cell`]).
macro_rules! with_cells {
    ($leaf:expr, |$get:ident| $body:expr) => {
        match $leaf {
            Leaf::Utf8(a) => {
                let $get = |i: usize| text_cell(*a, || a.value(i), i);
                $body
            }
            Leaf::Large(a) => {
                let $get = |i: usize| text_cell(*a, || a.value(i), i);
                $body
            }
            Leaf::View(a) => {
                let $get = |i: usize| text_cell(*a, || a.value(i), i);
                $body
            }
            Leaf::Int(n) => match n {
                Ints::I8(a) => {
                    let $get = |i: usize| int_cell(*a, i);
                    $body
                }
                Ints::I16(a) => {
                    let $get = |i: usize| int_cell(*a, i);
                    $body
                }
                Ints::I32(a) => {
                    let $get = |i: usize| int_cell(*a, i);
                    $body
                }
                Ints::I64(a) => {
                    let $get = |i: usize| int_cell(*a, i);
                    $body
                }
                Ints::U8(a) => {
                    let $get = |i: usize| int_cell(*a, i);
                    $body
                }
                Ints::U16(a) => {
                    let $get = |i: usize| int_cell(*a, i);
                    $body
                }
                Ints::U32(a) => {
                    let $get = |i: usize| int_cell(*a, i);
                    $body
                }
                Ints::U64(a) => {
                    let $get = |i: usize| int_cell(*a, i);
                    $body
                }
            },
            Leaf::Stamp(st) => match st {
                Stamps::S(a) => {
                    let $get = |i: usize| stamp_cell(*a, i, |v| v.saturating_mul(1_000_000));
                    $body
                }
                Stamps::Ms(a) => {
                    let $get = |i: usize| stamp_cell(*a, i, |v| v.saturating_mul(1000));
                    $body
                }
                Stamps::Us(a) => {
                    let $get = |i: usize| stamp_cell(*a, i, |v| v);
                    $body
                }
                Stamps::Ns(a) => {
                    let $get = |i: usize| stamp_cell(*a, i, |v| v.div_euclid(1000));
                    $body
                }
            },
            Leaf::Dict {
                nulls, keys, values, ..
            } => match &**values {
                Leaf::Utf8(v) => {
                    let $get = |i: usize| dict_cell(nulls, keys, i, |k| text_cell(*v, || v.value(k), k));
                    $body
                }
                Leaf::Large(v) => {
                    let $get = |i: usize| dict_cell(nulls, keys, i, |k| text_cell(*v, || v.value(k), k));
                    $body
                }
                Leaf::View(v) => {
                    let $get = |i: usize| dict_cell(nulls, keys, i, |k| text_cell(*v, || v.value(k), k));
                    $body
                }
                other => {
                    let $get = |i: usize| dict_cell(nulls, keys, i, |k| other.cell(k));
                    $body
                }
            },
        }
    };
}

impl<'a> Leaf<'a> {
    fn of(a: &'a dyn Array, dicts: &mut Dicts) -> Option<Leaf<'a>> {
        Some(match a.data_type() {
            DataType::Utf8 => Leaf::Utf8(a.as_string::<i32>()),
            DataType::LargeUtf8 => Leaf::Large(a.as_string::<i64>()),
            DataType::Utf8View => Leaf::View(a.as_string_view()),
            DataType::Int8 => Leaf::Int(Ints::I8(a.as_primitive())),
            DataType::Int16 => Leaf::Int(Ints::I16(a.as_primitive())),
            DataType::Int32 => Leaf::Int(Ints::I32(a.as_primitive())),
            DataType::Int64 => Leaf::Int(Ints::I64(a.as_primitive())),
            DataType::UInt8 => Leaf::Int(Ints::U8(a.as_primitive())),
            DataType::UInt16 => Leaf::Int(Ints::U16(a.as_primitive())),
            DataType::UInt32 => Leaf::Int(Ints::U32(a.as_primitive())),
            DataType::UInt64 => Leaf::Int(Ints::U64(a.as_primitive())),
            DataType::Timestamp(unit, _) => Leaf::Stamp(match unit {
                TimeUnit::Second => Stamps::S(a.as_primitive()),
                TimeUnit::Millisecond => Stamps::Ms(a.as_primitive()),
                TimeUnit::Microsecond => Stamps::Us(a.as_primitive()),
                TimeUnit::Nanosecond => Stamps::Ns(a.as_primitive()),
            }),
            DataType::Dictionary(_, _) => {
                let d = a.as_any_dictionary();
                let values = Leaf::of(d.values().as_ref(), dicts)?;
                let number = matches!(values, Leaf::Utf8(_) | Leaf::Large(_) | Leaf::View(_))
                    .then(|| dicts.number(d.values().as_ref()));
                // `normalized_keys` panics on empty values; then every key is null (or
                // the array is invalid, and its rows are declined).
                let keys = if d.values().is_empty() {
                    Keys::Normalized(Vec::new())
                } else if let Some(d) = a.as_any().downcast_ref::<DictionaryArray<Int32Type>>() {
                    Keys::I32(d.keys().values())
                } else {
                    Keys::Normalized(d.normalized_keys())
                };
                Leaf::Dict {
                    nulls: a.nulls().cloned(),
                    keys,
                    values: Box::new(values),
                    number,
                }
            }
            _ => return None,
        })
    }

    #[inline]
    fn cell(&self, i: usize) -> Cell<'a> {
        with_cells!(self, |get| get(i))
    }

    /// [`Leaf::cell`] of each of `rows`, appended to `out`: the column's type is matched
    /// once for the run, not once a row.
    fn cells(&self, rows: Range<usize>, out: &mut Vec<Cell<'a>>) {
        with_cells!(self, |get| out.extend(rows.map(get)))
    }
}

#[inline]
fn text_cell<'a>(a: &'a impl Array, v: impl FnOnce() -> &'a str, i: usize) -> Cell<'a> {
    if a.is_null(i) {
        Cell::Null
    } else {
        Cell::Str(v())
    }
}

fn int_cell<T: ArrowPrimitiveType>(a: &PrimitiveArray<T>, i: usize) -> Cell<'static>
where
    T::Native: TryInto<i64>,
{
    if a.is_null(i) {
        return Cell::Null;
    }
    a.value(i).try_into().map_or(Cell::Bad, Cell::Int)
}

fn stamp_cell<T: ArrowPrimitiveType<Native = i64>>(
    a: &PrimitiveArray<T>,
    i: usize,
    us: impl FnOnce(i64) -> i64,
) -> Cell<'static> {
    if a.is_null(i) {
        return Cell::Null;
    }
    // The general path's conversion (`sources::parquet::cell`), then its text's range.
    let us = us(a.value(i));
    if (MIN_US..=MAX_US).contains(&us) {
        Cell::Micros(us)
    } else {
        Cell::Bad
    }
}

/// A dictionary's cell `i`, its value read by `value` from the key.
#[inline]
fn dict_cell<'a>(nulls: &Option<NullBuffer>, keys: &Keys, i: usize, value: impl FnOnce(usize) -> Cell<'a>) -> Cell<'a> {
    if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
        Cell::Null
    } else {
        keys.get(i).map_or(Cell::Bad, value)
    }
}

impl<'a> Leaf<'a> {
    /// Where row `i`'s string came from, when this is a numbered dictionary.
    #[inline]
    fn code(&self, i: usize) -> Code {
        match self {
            Leaf::Dict {
                nulls,
                keys,
                number: Some(number),
                ..
            } => match keys.get(i) {
                Some(k) if !nulls.as_ref().is_some_and(|n| n.is_null(i)) => Code {
                    dict: *number,
                    entry: k as u32,
                },
                _ => Code::NONE,
            },
            _ => Code::NONE,
        }
    }

    /// Tells `on_dictionary` of this leaf's dictionary, the first time rows of it are read.
    fn announce(&self, of: DictOf, dicts: &mut Dicts, on_dictionary: &mut OnDictionary<'_>) {
        let Leaf::Dict {
            values,
            number: Some(number),
            ..
        } = self
        else {
            return;
        };
        if !dicts.announce(*number) {
            return;
        }
        let entries: Vec<&str> = match values.as_ref() {
            Leaf::Utf8(a) => a.iter().map(Option::unwrap_or_default).collect(),
            Leaf::Large(a) => a.iter().map(Option::unwrap_or_default).collect(),
            Leaf::View(a) => a.iter().map(Option::unwrap_or_default).collect(),
            _ => return,
        };
        on_dictionary(of, *number, &entries);
    }

    /// The strings of this numbered string dictionary.
    fn dict_strings(&self) -> Option<DictStrings<'a>> {
        let Leaf::Dict {
            values,
            number: Some(_),
            keys,
            ..
        } = self
        else {
            return None;
        };
        // No keys: empty values (see `Leaf::of`), read cell by cell.
        if keys.is_empty() {
            return None;
        }
        match **values {
            Leaf::Utf8(a) => Some(DictStrings::Utf8(a)),
            Leaf::Large(a) => Some(DictStrings::Large(a)),
            Leaf::View(a) => Some(DictStrings::View(a)),
            _ => None,
        }
    }

    /// [`Leaf::cell`], and where a string cell came from when this is a dictionary.
    #[inline]
    fn coded_cell(&self, i: usize) -> (Cell<'a>, Code) {
        (self.cell(i), self.code(i))
    }

    /// [`Leaf::coded_cell`] of each of `rows`, appended to `cells` and `codes`.
    fn coded_cells(&self, rows: Range<usize>, cells: &mut Vec<Cell<'a>>, codes: &mut Vec<Code>) {
        self.cells(rows.clone(), cells);
        match self {
            Leaf::Dict { number: Some(_), .. } => codes.extend(rows.map(|i| self.code(i))),
            _ => codes.extend(rows.map(|_| Code::NONE)),
        }
    }
}

/// A group-key column: scalars, or lists of them.
#[derive(Debug)]
enum IdCol<'a> {
    One(Leaf<'a>),
    List(&'a ListArray, Leaf<'a>),
    LargeList(&'a LargeListArray, Leaf<'a>),
}

impl<'a> IdCol<'a> {
    /// The column of its ids (a list column's values).
    fn leaf(&self) -> &Leaf<'a> {
        match self {
            IdCol::One(leaf) | IdCol::List(_, leaf) | IdCol::LargeList(_, leaf) => leaf,
        }
    }

    fn of(a: &'a dyn Array, dicts: &mut Dicts) -> Option<IdCol<'a>> {
        Some(match a.data_type() {
            DataType::List(_) => {
                let l = a.as_list::<i32>();
                IdCol::List(l, Leaf::of(l.values().as_ref(), dicts)?)
            }
            DataType::LargeList(_) => {
                let l = a.as_list::<i64>();
                IdCol::LargeList(l, Leaf::of(l.values().as_ref(), dicts)?)
            }
            _ => IdCol::One(Leaf::of(a, dicts)?),
        })
    }

    /// The cells of `rows`' ids, into `out` (cleared): for a list column, the cells of
    /// its values from the first row's first to the last row's last.
    fn fill(&self, rows: Range<usize>, out: &mut IdCells<'a>) {
        out.cells.clear();
        out.codes.clear();
        let (values, child) = match self {
            IdCol::One(leaf) => (rows, leaf),
            IdCol::List(l, child) => {
                let o = l.value_offsets();
                (o[rows.start] as usize..o[rows.end] as usize, child)
            }
            IdCol::LargeList(l, child) => {
                let o = l.value_offsets();
                (o[rows.start] as usize..o[rows.end] as usize, child)
            }
        };
        out.first = values.start;
        out.strings = child.dict_strings();
        match out.strings {
            // A row's entry is all it takes (see `GroupId::Entry`): no cells.
            Some(_) => out.codes.extend(values.map(|i| child.code(i))),
            None => child.coded_cells(values, &mut out.cells, &mut out.codes),
        }
    }

    /// Adds row `i`'s ids for key `k` from `cells` (filled for a run holding `i`); `None`:
    /// a value not read here.
    #[inline]
    fn push(&self, i: usize, cells: &IdCells<'a>, k: u16, ids: &mut GroupIds<'a>) -> Option<()> {
        let span = match self {
            IdCol::One(_) => i - cells.first..i - cells.first + 1,
            IdCol::List(l, _) if !l.is_null(i) => {
                let o = l.value_offsets();
                o[i] as usize - cells.first..o[i + 1] as usize - cells.first
            }
            IdCol::LargeList(l, _) if !l.is_null(i) => {
                let o = l.value_offsets();
                o[i] as usize - cells.first..o[i + 1] as usize - cells.first
            }
            IdCol::List(..) | IdCol::LargeList(..) => 0..0,
        };
        match cells.strings {
            Some(strings) => {
                for &code in &cells.codes[span] {
                    // No code: a null.
                    if !code.is_none() {
                        ids.push_entry(k, strings, code);
                    }
                }
            }
            None => {
                for j in span {
                    push_cell((cells.cells[j], cells.codes[j]), k, ids)?;
                }
            }
        }
        Some(())
    }
}

/// One group-key column's cells for a run of rows (see [`IdCol::fill`]).
#[derive(Default)]
struct IdCells<'a> {
    /// Empty when the column is a numbered string dictionary (`strings`).
    cells: Vec<Cell<'a>>,
    codes: Vec<Code>,
    strings: Option<DictStrings<'a>>,
    /// Index in the column (a list column's values) of `cells[0]`.
    first: usize,
}
/// `values::group_ids` of one scalar: a non-empty string as it is, an integer as its
/// decimal text, null none.
#[inline]
fn push_cell<'a>((c, code): (Cell<'a>, Code), k: u16, ids: &mut GroupIds<'a>) -> Option<()> {
    match c {
        Cell::Null => {}
        Cell::Str(s) => ids.push_coded(k, s, code),
        Cell::Int(v) => ids.push_display(k, v),
        // The general path would read the timestamp's text as an id: not copied here.
        Cell::Micros(_) | Cell::Bad => return None,
    }
    Some(())
}

enum Layout<'a> {
    Flat(Box<Flat<'a>>),
    Props(Props<'a>),
}

/// The column named `name`; `Err` when several are (the general path's object keeps the
/// last, but parses every JSON-text one).
fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<Option<&'a dyn Array>, ()> {
    let mut found = None;
    for (f, c) in batch.schema_ref().fields().iter().zip(batch.columns()) {
        if f.name() == name {
            if found.is_some() {
                return Err(());
            }
            found = Some(c.as_ref());
        }
    }
    Ok(found)
}

impl<'a> Layout<'a> {
    /// Resolves the columns the lookup can read; `None`: the batch is not read here.
    fn of(batch: &'a RecordBatch, ctx: &EventContext, dicts: &mut Dicts) -> Option<Layout<'a>> {
        // `mixpanel::event` takes `event`, and `event_name` only where there is no `event`.
        let name = match column(batch, "event").ok()? {
            Some(c) => c,
            None => column(batch, "event_name").ok()??,
        };
        let name = Leaf::of(name, dicts)?;
        let mut json_text = Vec::new();
        for (f, c) in batch.schema_ref().fields().iter().zip(batch.columns()) {
            // `sources::parquet` parses these as JSON text: a value there can make the row
            // unreadable.
            if f.name() != "properties" && JSON_TEXT_COLUMNS.contains(&f.name().as_str()) {
                json_text.push(c.as_ref());
            }
        }
        match column(batch, "properties").ok()? {
            Some(props) => {
                // Fields missing from `properties` would be looked up at the top level:
                // that mix is the general path's.
                for f in FIELDS.iter().copied().chain(ctx.keys.iter().map(String::as_str)) {
                    if column(batch, f).ok()?.is_some() {
                        return None;
                    }
                }
                Some(Layout::Props(Props {
                    name,
                    props: Leaf::of(props, dicts)?,
                    json_text,
                }))
            }
            None => {
                let mut keys = Vec::with_capacity(ctx.keys.len());
                for k in ctx.keys {
                    keys.push(match column(batch, k).ok()? {
                        None => None,
                        Some(c) => Some(IdCol::of(c, dicts)?),
                    });
                }
                let mut leaf = |n: &str| -> Option<Option<Leaf<'a>>> {
                    match column(batch, n).ok()? {
                        None => Some(None),
                        Some(c) => Leaf::of(c, dicts).map(Some),
                    }
                };
                Some(Layout::Flat(Box::new(Flat {
                    name,
                    time: leaf("time")?,
                    ingest: leaf("mp_processing_time_ms")?,
                    user: leaf("distinct_id")?,
                    insert_ids: [leaf("$insert_id")?, leaf("insert_id")?],
                    keys,
                    json_text,
                })))
            }
        }
    }
}

/// A `context`/`traits` value would be parsed as JSON by the reader (and may not be
/// JSON): such rows are the general path's.
fn json_text_at(cols: &[&dyn Array], i: usize) -> bool {
    cols.iter().any(|c| !c.is_null(i))
}

fn name_at<'a>(leaf: &Leaf<'a>, i: usize) -> Option<(&'a str, Code)> {
    match leaf.coded_cell(i) {
        (Cell::Str(s), code) if !s.is_empty() => Some((s, code)),
        _ => None,
    }
}

/// Flattened typed columns.
struct Flat<'a> {
    name: Leaf<'a>,
    time: Option<Leaf<'a>>,
    ingest: Option<Leaf<'a>>,
    user: Option<Leaf<'a>>,
    insert_ids: [Option<Leaf<'a>>; 2],
    keys: Vec<Option<IdCol<'a>>>,
    json_text: Vec<&'a dyn Array>,
}

#[derive(Default)]
struct FlatScratch<'a> {
    ids: GroupIds<'a>,
    user: String,
    insert_id: String,
}

/// Rows read a column at a time, this many at once: each column's type is matched once
/// per run, and a run's cells (~24 bytes each, seven columns) stay in cache for the rows.
/// Tests use short runs, so their small batches cross run boundaries.
const RUN: usize = if cfg!(test) { 7 } else { 1024 };

/// The cells of one run of rows, by column (see [`Flat::fill`]).
#[derive(Default)]
struct FlatCells<'a> {
    name: Vec<Cell<'a>>,
    name_codes: Vec<Code>,
    time: Vec<Cell<'a>>,
    ingest: Vec<Cell<'a>>,
    user: Vec<Cell<'a>>,
    insert_ids: [Vec<Cell<'a>>; 2],
    keys: Vec<IdCells<'a>>,
}

/// `leaf`'s cells of `rows` into `out` (cleared); nulls where there is no such column.
fn fill<'a>(leaf: &Option<Leaf<'a>>, rows: Range<usize>, out: &mut Vec<Cell<'a>>) {
    out.clear();
    match leaf {
        Some(l) => l.cells(rows, out),
        None => out.resize(rows.len(), Cell::Null),
    }
}

impl<'a> Flat<'a> {
    fn events(&self, n: usize, push: &mut dyn FnMut(EventRef<'_>), declined: &mut Vec<usize>) {
        let mut s = FlatScratch::default();
        let mut cells = FlatCells::default();
        cells.keys.resize_with(self.keys.len(), IdCells::default);
        for start in (0..n).step_by(RUN) {
            let rows = start..(start + RUN).min(n);
            self.fill(rows.clone(), &mut cells);
            for i in rows {
                match self.event(i, start, &cells, &mut s) {
                    Some(e) => push(e),
                    None => declined.push(i),
                }
            }
        }
    }

    fn fill(&self, rows: Range<usize>, c: &mut FlatCells<'a>) {
        c.name.clear();
        c.name_codes.clear();
        self.name.coded_cells(rows.clone(), &mut c.name, &mut c.name_codes);
        fill(&self.time, rows.clone(), &mut c.time);
        fill(&self.ingest, rows.clone(), &mut c.ingest);
        fill(&self.user, rows.clone(), &mut c.user);
        for (leaf, out) in self.insert_ids.iter().zip(&mut c.insert_ids) {
            fill(leaf, rows.clone(), out);
        }
        for (col, out) in self.keys.iter().zip(&mut c.keys) {
            if let Some(col) = col {
                col.fill(rows.clone(), out);
            }
        }
    }

    /// `mixpanel::event` of row `i` with an empty `properties`: every field from its
    /// top-level column, read from `c` (filled for rows from `first`).
    fn event<'s>(&self, i: usize, first: usize, c: &FlatCells<'a>, s: &'s mut FlatScratch<'a>) -> Option<EventRef<'s>>
    where
        'a: 's,
    {
        if json_text_at(&self.json_text, i) {
            return None;
        }
        let j = i - first;
        let (name, name_code) = match c.name[j] {
            Cell::Str(s) if !s.is_empty() => (s, c.name_codes[j]),
            _ => return None,
        };
        let time_us = match c.time[j] {
            Cell::Int(v) => int_epoch_us(v)?,
            Cell::Str(t) => text_epoch_us(t)?,
            Cell::Micros(us) => us,
            Cell::Null | Cell::Bad => return None,
        };
        let ingest_us = match c.ingest[j] {
            Cell::Null => None,
            // `ms_us(v as f64)`, which is exactly `v * 1000` while that is within 2^53.
            Cell::Int(v) if v.unsigned_abs() <= (1 << 53) / 1000 => Some(v * 1000),
            Cell::Int(v) => Some(ms_us(v as f64)?),
            Cell::Str(t) => Some(text_ms_us(t)?),
            Cell::Micros(us) => Some(us),
            Cell::Bad => return None,
        };
        let FlatScratch {
            ids,
            user: user_buf,
            insert_id: insert_buf,
        } = s;
        let user = match c.user[j] {
            Cell::Null => None,
            Cell::Str(u) => (!u.is_empty()).then_some(u),
            Cell::Int(v) => {
                user_buf.clear();
                let _ = write!(user_buf, "{v}");
                Some(user_buf.as_str())
            }
            Cell::Micros(_) | Cell::Bad => return None,
        };
        let insert_cell = match c.insert_ids[0][j] {
            Cell::Null => c.insert_ids[1][j],
            cell => cell,
        };
        let insert_id = match insert_cell {
            Cell::Null => None,
            Cell::Str(v) => Some(v),
            Cell::Int(v) => {
                insert_buf.clear();
                let _ = write!(insert_buf, "{v}");
                Some(insert_buf.as_str())
            }
            Cell::Micros(_) | Cell::Bad => return None,
        };
        ids.clear();
        for (k, (col, cells)) in self.keys.iter().zip(&c.keys).enumerate() {
            if let Some(col) = col {
                ids.start_key();
                col.push(i, cells, k as u16, ids)?;
            }
        }
        ids.event(name, name_code, user, time_us, ingest_us, insert_id)
    }
}

/// `event` plus a `properties` JSON-text column, and no top-level field the lookup reads.
struct Props<'a> {
    name: Leaf<'a>,
    props: Leaf<'a>,
    json_text: Vec<&'a dyn Array>,
}

impl<'a> Props<'a> {
    fn events(&self, n: usize, ctx: &EventContext, push: &mut dyn FnMut(EventRef<'_>), declined: &mut Vec<usize>) {
        let reader = PropsReader::new(ctx.keys);
        let mut s = PropsScratch::default();
        for i in 0..n {
            match self.event(i, &reader, &mut s) {
                Some(e) => push(e),
                None => declined.push(i),
            }
        }
    }

    fn event<'s>(&self, i: usize, reader: &PropsReader, s: &'s mut PropsScratch<'a>) -> Option<EventRef<'s>>
    where
        'a: 's,
    {
        if json_text_at(&self.json_text, i) {
            return None;
        }
        let (name, _) = name_at(&self.name, i)?;
        // Null or blank text is a missing `properties`, and then nothing gives a time.
        let Cell::Str(text) = self.props.cell(i) else {
            return None;
        };
        if text.trim().is_empty() || !reader.parse_props(text, s) {
            return None;
        }
        reader.props_event(name, s)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::builder::{
        Int64Builder, LargeListBuilder, ListBuilder, StringBuilder, StringDictionaryBuilder, UInt64Builder,
    };
    use arrow_array::{ArrayRef, TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray};
    use arrow_schema::{Field, Schema};
    use proptest::prelude::*;
    use serde_json::Value;

    use super::*;
    use crate::normalize::values::EVENT_TIMES_US;
    use crate::normalize::RawEvent;
    use crate::sources::{parquet_row_value, read_file_with, InputFile, Record};

    /// The general path on a row, as the runner takes it (through the dispatcher).
    fn general_event(row: &Value, ctx: &EventContext) -> Result<RawEvent, String> {
        crate::normalize::event(crate::job::Vendor::Mixpanel, row, ctx).map(|e| e.expect("an event"))
    }

    /// Runs the fast path on `batch` and checks every event it takes against the general
    /// path on the same row; returns (taken, declined) counts.
    fn check(batch: &RecordBatch, keys: &[String]) -> (usize, usize) {
        let ctx = EventContext { keys, columns: None };
        let mut taken: Vec<RawEvent> = Vec::new();
        let mut declined = Vec::new();
        let codes = std::cell::RefCell::new(Codes::default());
        events(
            batch,
            &ctx,
            &mut Dicts::default(),
            &mut |of, number, entries| codes.borrow_mut().announce(of, number, entries),
            &mut |e| {
                codes.borrow_mut().see(&e);
                taken.push(e.to_owned())
            },
            &mut declined,
        );
        assert!(declined.windows(2).all(|w| w[0] < w[1]), "{declined:?}");
        assert!(declined.iter().all(|&i| i < batch.num_rows()));
        assert_eq!(taken.len() + declined.len(), batch.num_rows());
        let mut taken = taken.into_iter();
        for i in 0..batch.num_rows() {
            if declined.contains(&i) {
                continue;
            }
            let fast = taken.next().unwrap();
            let row: Value = parquet_row_value(batch, i).expect("a row the fast path took is readable");
            assert_eq!(Ok(fast), general_event(&row, &ctx), "row {i}: {row}");
        }
        (batch.num_rows() - declined.len(), declined.len())
    }

    fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
        let fields: Vec<Field> = cols
            .iter()
            .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
            .collect();
        RecordBatch::try_new(
            Arc::new(Schema::new(fields)),
            cols.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap()
    }

    fn keys() -> Vec<String> {
        vec!["company_id".to_string(), "team_id".to_string()]
    }

    #[derive(Debug, Clone)]
    enum Id {
        Null,
        Str(String),
        Int(i64),
    }

    fn id() -> impl Strategy<Value = Id> {
        prop_oneof![
            Just(Id::Null),
            Just(Id::Str(String::new())),
            "[ab7]{1,2}".prop_map(Id::Str),
            (0i64..10).prop_map(Id::Int),
            Just(Id::Str("7".into())),
        ]
    }

    #[derive(Debug, Clone)]
    struct FlatRow {
        event: Option<String>,
        user: Option<Id>,
        time: Option<i64>,
        insert: Option<String>,
        insert2: Option<String>,
        ingest: Option<i64>,
        company: Option<Vec<Id>>,
        team: Id,
        context: Option<String>,
    }

    fn time() -> impl Strategy<Value = i64> {
        prop_oneof![
            6 => 1_600_000_000i64..1_800_000_000,
            3 => 1_600_000_000_000i64..1_800_000_000_000,
            1 => Just(100_000_000_000),
            1 => Just(100_000_000_001),
            1 => Just(-100_000_000_001),
            1 => Just(i64::MAX),
            1 => Just(i64::MIN),
            1 => Just(0),
            1 => any::<i64>(),
        ]
    }

    fn flat_row() -> impl Strategy<Value = FlatRow> {
        (
            prop::option::weighted(
                0.9,
                prop_oneof![3 => Just("Sign Up".to_string()), 1 => Just(String::new()), 3 => "[a-z]{1,3}"],
            ),
            prop::option::of(id()),
            prop::option::weighted(0.9, time()),
            prop::option::of("[a-c]{0,2}"),
            prop::option::of("[x-z]{0,2}"),
            prop::option::of(prop_oneof![
                6 => 1_600_000_000_000i64..1_800_000_000_000,
                1 => Just(9_200_000_000_000_000),
                1 => Just(9_007_199_254_740_993),
                1 => any::<i64>()
            ]),
            prop::option::of(prop::collection::vec(id(), 0..4)),
            id(),
            prop::option::weighted(
                0.1,
                prop_oneof![Just(String::new()), Just("{}".to_string()), Just("{".to_string())],
            ),
        )
            .prop_map(
                |(event, user, time, insert, insert2, ingest, company, team, context)| FlatRow {
                    event,
                    user,
                    time,
                    insert,
                    insert2,
                    ingest,
                    company,
                    team,
                    context,
                },
            )
    }

    fn id_text(i: &Id) -> Option<String> {
        match i {
            Id::Null => None,
            Id::Str(s) => Some(s.clone()),
            Id::Int(v) => Some(v.to_string()),
        }
    }

    /// The layout as typed columns. `ints` bits 0, 1, 2: `distinct_id`, `company_id`,
    /// `team_id` as integer columns (strings then become null), else as text; `dict`:
    /// `event` dictionary-encoded; `large`: `company_id` a LargeList; `time_unit`: Int64,
    /// timestamps in s, ms, ns, or text.
    fn flat_batch(rows: &[FlatRow], ints: u8, dict: bool, large: bool, time_unit: u8) -> RecordBatch {
        let text = |v: Vec<Option<String>>| -> ArrayRef { Arc::new(StringArray::from(v)) };
        let event: ArrayRef = if dict {
            let mut b = StringDictionaryBuilder::<Int32Type>::new();
            for r in rows {
                b.append_option(r.event.as_deref());
            }
            Arc::new(b.finish())
        } else {
            text(rows.iter().map(|r| r.event.clone()).collect())
        };
        let ids_col = |int_ids: bool, get: &dyn Fn(&FlatRow) -> Option<Id>| -> ArrayRef {
            if int_ids {
                let mut b = Int64Builder::new();
                for r in rows {
                    b.append_option(match get(r) {
                        Some(Id::Int(v)) => Some(v),
                        _ => None,
                    });
                }
                Arc::new(b.finish())
            } else {
                text(rows.iter().map(|r| get(r).as_ref().and_then(id_text)).collect())
            }
        };
        let time: ArrayRef = match time_unit {
            0 => Arc::new(Int64Array::from(rows.iter().map(|r| r.time).collect::<Vec<_>>())),
            1 => Arc::new(TimestampSecondArray::from(
                rows.iter().map(|r| r.time).collect::<Vec<_>>(),
            )),
            2 => Arc::new(TimestampMillisecondArray::from(
                rows.iter().map(|r| r.time).collect::<Vec<_>>(),
            )),
            3 => Arc::new(TimestampNanosecondArray::from(
                rows.iter().map(|r| r.time).collect::<Vec<_>>(),
            )),
            _ => text(rows.iter().map(|r| r.time.map(|t| format!(" {t}"))).collect()),
        };
        let company: ArrayRef = {
            macro_rules! list {
                ($builder:ident) => {{
                    if ints & 2 != 0 {
                        let mut b = $builder::new(Int64Builder::new());
                        for r in rows {
                            match &r.company {
                                None => b.append_null(),
                                Some(ids) => {
                                    for i in ids {
                                        b.values().append_option(match i {
                                            Id::Int(v) => Some(*v),
                                            _ => None,
                                        });
                                    }
                                    b.append(true);
                                }
                            }
                        }
                        Arc::new(b.finish()) as ArrayRef
                    } else {
                        let mut b = $builder::new(StringBuilder::new());
                        for r in rows {
                            match &r.company {
                                None => b.append_null(),
                                Some(ids) => {
                                    for i in ids {
                                        b.values().append_option(id_text(i));
                                    }
                                    b.append(true);
                                }
                            }
                        }
                        Arc::new(b.finish()) as ArrayRef
                    }
                }};
            }
            if large {
                list!(LargeListBuilder)
            } else {
                list!(ListBuilder)
            }
        };
        let mut cols = vec![
            ("event", event),
            ("distinct_id", ids_col(ints & 1 != 0, &|r| r.user.clone())),
            ("time", time),
            ("$insert_id", text(rows.iter().map(|r| r.insert.clone()).collect())),
            ("insert_id", text(rows.iter().map(|r| r.insert2.clone()).collect())),
            (
                "mp_processing_time_ms",
                Arc::new(Int64Array::from(rows.iter().map(|r| r.ingest).collect::<Vec<_>>())),
            ),
            ("company_id", company),
            ("team_id", ids_col(ints & 4 != 0, &|r| Some(r.team.clone()))),
        ];
        if rows.iter().any(|r| r.context.is_some()) {
            cols.push(("context", text(rows.iter().map(|r| r.context.clone()).collect())));
        }
        batch(cols)
    }

    proptest! {
        #[test]
        fn flat_layout_agrees_with_general_path(
            rows in prop::collection::vec(flat_row(), 1..40),
            ints in 0u8..8,
            dict in any::<bool>(),
            large in any::<bool>(),
            time_unit in 0u8..5,
        ) {
            check(&flat_batch(&rows, ints, dict, large, time_unit), &keys());
        }

        #[test]
        fn props_layout_agrees_with_general_path(
            rows in prop::collection::vec((
                prop::option::weighted(0.9, prop_oneof![Just("a".to_string()), Just(String::new())]),
                prop::option::weighted(0.9, props_text()),
            ), 1..30),
            dict in any::<bool>(),
            large in any::<bool>(),
            event_key in any::<bool>(),
        ) {
            let event: ArrayRef = if dict {
                let mut b = StringDictionaryBuilder::<Int8Type>::new();
                for (e, _) in &rows {
                    b.append_option(e.as_deref());
                }
                Arc::new(b.finish())
            } else {
                Arc::new(StringArray::from(rows.iter().map(|(e, _)| e.clone()).collect::<Vec<_>>()))
            };
            let props: Vec<Option<String>> = rows.iter().map(|(_, p)| p.clone()).collect();
            let props: ArrayRef = if large {
                Arc::new(LargeStringArray::from(props))
            } else {
                Arc::new(StringArray::from(props))
            };
            let mut keys = keys();
            if event_key {
                keys.push("event".into());
            }
            check(&batch(vec![("event", event), ("properties", props)]), &keys);
        }
    }

    fn props_text() -> impl Strategy<Value = String> {
        let scalar = prop_oneof![
            3 => Just("null".to_string()),
            1 => Just("true".to_string()),
            3 => (1_600_000_000i64..1_800_000_000).prop_map(|v| v.to_string()),
            3 => (1_600_000_000_000i64..1_800_000_000_000).prop_map(|v| v.to_string()),
            1 => Just("1704103200.5".to_string()),
            1 => Just("-0".to_string()),
            1 => Just("18446744073709551615".to_string()),
            2 => Just("\"\"".to_string()),
            3 => Just("\"a\"".to_string()),
            2 => Just("\"\\u0061\"".to_string()),
            2 => Just("\"2024-01-01T10:00:00Z\"".to_string()),
            3 => Just("7".to_string()),
            1 => Just("{\"x\":1}".to_string()),
        ];
        // Values the general path rejects the whole text for.
        let poison = prop_oneof![Just("1e400".to_string()), Just("\"\\ud800\"".to_string())];
        let value = prop_oneof![
            6 => scalar.clone(),
            3 => prop::collection::vec(scalar, 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            1 => poison,
        ];
        let key = prop_oneof![
            Just("time"),
            Just("distinct_id"),
            Just("$insert_id"),
            Just("insert_id"),
            Just("mp_processing_time_ms"),
            Just("company_id"),
            Just("team_id"),
            Just("event"),
            Just("other"),
        ];
        let time = prop::option::weighted(0.8, 1_600_000_000i64..1_800_000_000);
        prop_oneof![
            8 => (time, prop::collection::vec((key, value), 0..6)).prop_map(|(time, kv)| {
                let body: Vec<String> = time
                    .map(|t| format!("\"time\":{t}"))
                    .into_iter()
                    .chain(kv.iter().map(|(k, v)| format!("\"{k}\":{v}")))
                    .collect();
                format!("{{{}}}", body.join(","))
            }),
            1 => prop_oneof![Just(String::new()), Just("  ".to_string()), Just("{".to_string()),
                Just("null".to_string()), Just("[1]".to_string()), Just("{\"time\":1} x".to_string())],
        ]
    }

    /// Every string with a [`Code`] seen so far, by code: one code, one string; and the
    /// dictionaries announced, each once, before any row of theirs.
    #[derive(Default)]
    struct Codes {
        strings: std::collections::HashMap<(u32, u32), String>,
        dicts: std::collections::BTreeSet<u32>,
        coded: usize,
        announced: std::collections::HashMap<u32, (DictOf, Vec<String>)>,
    }

    impl Codes {
        fn announce(&mut self, of: DictOf, number: u32, entries: &[&str]) {
            let entries = entries.iter().map(|e| e.to_string()).collect();
            let before = self.announced.insert(number, (of, entries));
            assert!(before.is_none(), "dictionary {number} announced twice");
        }

        fn see(&mut self, e: &EventRef) {
            assert!(e.group_codes.is_empty() || e.group_codes.len() == e.groups.len());
            let strings = std::iter::once((DictOf::Names, e.name_code, e.name)).chain(
                e.group_codes
                    .iter()
                    .zip(e.groups)
                    .map(|(c, (_, g))| (DictOf::GroupIds, *c, g.text())),
            );
            for (of, code, s) in strings.filter(|(_, c, _)| !c.is_none()) {
                // The string is its dictionary's entry, announced for what it is.
                let (told, entries) = self.announced.get(&code.dict).expect("announced before its rows");
                assert_eq!((*told, entries[code.entry as usize].as_str()), (of, s), "{code:?}");
                self.coded += 1;
                self.dicts.insert(code.dict);
                let known = self
                    .strings
                    .entry((code.dict, code.entry))
                    .or_insert_with(|| s.to_string());
                assert_eq!(known, s, "{code:?} names two strings");
            }
        }
    }

    fn parquet_file(dir: &std::path::Path, b: &RecordBatch) -> InputFile {
        let p = dir.join("e.parquet");
        let mut w = parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&p).unwrap(), b.schema(), None).unwrap();
        w.write(b).unwrap();
        w.close().unwrap();
        InputFile {
            path: p.to_str().unwrap().to_string(),
            size: std::fs::metadata(&p).unwrap().len(),
            mtime: 0,
            etag: None,
            bucket: None,
        }
    }

    /// Reads `file` with the fast path as the batch hook (one [`Dicts`] for the file, as the
    /// runner does): the events it took, with their codes checked; declined rows go to
    /// `general`.
    fn read_hooked(file: &InputFile, ctx: &EventContext, general: &mut dyn FnMut(Record)) -> (Vec<RawEvent>, Codes) {
        let (mut dicts, codes, mut taken) = (Dicts::default(), std::cell::RefCell::new(Codes::default()), Vec::new());
        let mut hook = |b: &RecordBatch, d: &mut Vec<usize>| {
            let mut on_dictionary = |of, number, entries: &[&str]| codes.borrow_mut().announce(of, number, entries);
            let mut push = |e: EventRef| {
                codes.borrow_mut().see(&e);
                taken.push(e.to_owned());
            };
            events(b, ctx, &mut dicts, &mut on_dictionary, &mut push, d)
        };
        read_file_with(file, None, None, Some(&mut hook), general).unwrap();
        (taken, codes.into_inner())
    }

    #[test]
    fn integer_ingest_times_match_the_general_paths_float_conversion() {
        // The integer shortcut ends where `v * 1000` leaves the doubles' exact integers.
        let edge = (1i64 << 53) / 1000;
        // Past 2^56 a product of 1000 is no longer always a double: the general path rounds.
        let far = [
            (1i64 << 56) / 1000 + 2,
            (1i64 << 56) / 1000 + 4,
            (1i64 << 60) / 1000 + 1,
        ];
        let ingest: Vec<i64> = [0, 1, 1_700_000_000_123, edge - 1, edge, edge + 1, i64::MAX, i64::MIN]
            .into_iter()
            .chain(far)
            .flat_map(|v| [v, v.saturating_neg()])
            .collect();
        let n = ingest.len();
        let b = batch(vec![
            (
                "event",
                Arc::new(StringArray::from_iter_values((0..n).map(|_| "e"))) as ArrayRef,
            ),
            (
                "time",
                Arc::new(Int64Array::from_iter_values((0..n).map(|_| 1_700_000_000))),
            ),
            ("mp_processing_time_ms", Arc::new(Int64Array::from(ingest))),
        ]);
        let (taken, declined) = check(&b, &keys());
        assert!(taken >= 18, "{taken} taken, {declined} declined");
    }

    #[test]
    fn dictionary_codes_name_one_string_across_a_files_batches() {
        // Three batches of 8192 rows from one row group: each dictionary-encoded column
        // keeps one dictionary number, a list column's included.
        let n = 20_000;
        let names = ["Sign Up", "Login", "Purchase"];
        let mut companies = ListBuilder::new(StringBuilder::new());
        for i in 0..n {
            companies.values().append_value(format!("c{}", i % 5));
            if i % 7 == 0 {
                companies.values().append_value(format!("c{}", (i + 1) % 5));
            }
            companies.append(true);
        }
        let b = batch(vec![
            (
                "event",
                Arc::new(StringArray::from_iter_values((0..n).map(|i| names[i % 3]))) as ArrayRef,
            ),
            (
                "time",
                Arc::new(Int64Array::from_iter_values((0..n).map(|i| 1_700_000_000 + i as i64))),
            ),
            (
                "distinct_id",
                Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("u{i}")))),
            ),
            ("company_id", Arc::new(companies.finish())),
            (
                "team_id",
                Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("t{}", i % 4)))),
            ),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let file = parquet_file(dir.path(), &b);
        let ctx = EventContext {
            keys: &keys(),
            columns: None,
        };
        let (taken, codes) = read_hooked(&file, &ctx, &mut |r| panic!("declined: {r:?}"));
        assert_eq!(taken.len(), n);
        // Names, companies and teams are coded; user ids are hashed, not interned, so they
        // carry no code.
        assert_eq!(codes.coded, n + (n + n.div_ceil(7)) + n);
        assert_eq!(codes.dicts.len(), 3, "{:?}", codes.dicts);
        assert_eq!(codes.strings.len(), 3 + 5 + 4);
    }

    /// Reads `b` from a Parquet file with the fast path as the batch hook, and without:
    /// the events and rejects must be the same.
    fn hooked_equals_general(b: &RecordBatch, keys: &[String]) {
        let dir = tempfile::tempdir().unwrap();
        let file = parquet_file(dir.path(), b);
        let ctx = EventContext { keys, columns: None };
        let general = |out: &mut Vec<String>, r: Record| {
            out.push(match r.value {
                Ok(v) => format!("{:?}", general_event(&v, &ctx)),
                Err(u) => format!("{} unreadable: {}", r.pos, u.reason),
            })
        };
        let mut alone = Vec::new();
        read_file_with(&file, None, None, None, &mut |r| general(&mut alone, r)).unwrap();
        let mut hooked = Vec::new();
        let (fast, _) = read_hooked(&file, &ctx, &mut |r| general(&mut hooked, r));
        hooked.extend(fast.into_iter().map(|e| format!("{:?}", Ok::<_, String>(e))));
        alone.sort();
        hooked.sort();
        assert_eq!(alone, hooked);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn hooked_reader_gives_what_the_general_path_gives(
            rows in prop::collection::vec(flat_row(), 1..40),
            ints in 0u8..8,
            dict in any::<bool>(),
            large in any::<bool>(),
            time_unit in 0u8..5,
        ) {
            hooked_equals_general(&flat_batch(&rows, ints, dict, large, time_unit), &keys());
        }
    }

    /// A row's `company_id` list (null: none) and `team_id`, as dictionary keys.
    type DictRow = (Option<Vec<Option<usize>>>, Option<usize>);

    /// Group ids from dictionaries are handed on as entries (`GroupId::Entry`); entries that
    /// repeat a string, empty and null ones included.
    /// `narrow`: UInt16 keys (normalized), else Int32 (what the Parquet reader gives, read
    /// in place).
    fn dictionary_id_batch(values: &[Option<String>], rows: &[DictRow], narrow: bool) -> RecordBatch {
        let n = rows.len();
        let key_type = if narrow { DataType::UInt16 } else { DataType::Int32 };
        let dict_type = DataType::Dictionary(Box::new(key_type), Box::new(DataType::Utf8));
        let values: ArrayRef = Arc::new(StringArray::from(values.to_vec()));
        let dict = |keys: Vec<Option<usize>>| -> ArrayRef {
            if narrow {
                let keys = UInt16Array::from(keys.into_iter().map(|k| k.map(|k| k as u16)).collect::<Vec<_>>());
                Arc::new(DictionaryArray::<UInt16Type>::try_new(keys, values.clone()).unwrap())
            } else {
                let keys = Int32Array::from(keys.into_iter().map(|k| k.map(|k| k as i32)).collect::<Vec<_>>());
                Arc::new(DictionaryArray::<Int32Type>::try_new(keys, values.clone()).unwrap())
            }
        };
        let mut offsets = vec![0i32];
        let mut list_keys = Vec::new();
        for (list, _) in rows {
            list_keys.extend(list.iter().flatten().copied());
            offsets.push(list_keys.len() as i32);
        }
        let company = ListArray::try_new(
            Arc::new(Field::new("item", dict_type, true)),
            arrow_buffer::OffsetBuffer::new(offsets.into()),
            dict(list_keys),
            Some(NullBuffer::from_iter(rows.iter().map(|(l, _)| l.is_some()))),
        )
        .unwrap();
        let text = |f: &dyn Fn(usize) -> String| -> ArrayRef { Arc::new(StringArray::from_iter_values((0..n).map(f))) };
        batch(vec![
            ("event", text(&|_| "e".to_string())),
            ("distinct_id", text(&|i| format!("u{}", i % 3))),
            (
                "time",
                Arc::new(Int64Array::from_iter_values((0..n as i64).map(|i| 1_700_000_000 + i))),
            ),
            ("$insert_id", text(&|i| format!("i{i}"))),
            ("company_id", Arc::new(company)),
            ("team_id", dict(rows.iter().map(|(_, t)| *t).collect())),
        ])
    }

    proptest! {
        #[test]
        fn dictionary_ids_agree_with_general_path(
            values in prop::collection::vec(
                prop::option::weighted(0.9, prop_oneof![Just(String::new()), "[ab]{1,2}"]),
                1..6,
            ),
            rows in prop::collection::vec(
                (
                    prop::option::weighted(0.9, prop::collection::vec(prop::option::weighted(0.8, 0usize..6), 0..4)),
                    prop::option::weighted(0.8, 0usize..6),
                ),
                1..30,
            ),
            narrow in any::<bool>(),
        ) {
            let m = values.len();
            let rows: Vec<_> = rows
                .into_iter()
                .map(|(l, t)| (l.map(|l| l.into_iter().map(|k| k.map(|k| k % m)).collect()), t.map(|t| t % m)))
                .collect();
            let b = dictionary_id_batch(&values, &rows, narrow);
            prop_assert_eq!(check(&b, &keys()), (rows.len(), 0));
        }
    }

    #[test]
    fn benchmark_layout_is_taken_whole() {
        let rows: Vec<FlatRow> = (0..50)
            .map(|i| FlatRow {
                event: Some(format!("e{}", i % 3)),
                user: Some(Id::Str(format!("u{i}"))),
                time: Some(1_704_103_200 + i),
                insert: Some(format!("i{i}")),
                insert2: None,
                ingest: Some(1_704_103_201_000 + i),
                company: Some(vec![Id::Str("acme".into()), Id::Str("acme".into()), Id::Int(7)]),
                team: if i % 2 == 0 { Id::Str("t".into()) } else { Id::Null },
                context: None,
            })
            .collect();
        assert_eq!(check(&flat_batch(&rows, 0, false, false, 0), &keys()), (50, 0));
        assert_eq!(check(&flat_batch(&rows, 5, true, true, 1), &keys()), (50, 0));
    }

    #[test]
    fn timestamps_at_the_edges_of_the_text_range() {
        let stamps = |us: &[i64]| Arc::new(arrow_array::TimestampMicrosecondArray::from(us.to_vec())) as ArrayRef;
        let edges = [
            MIN_US - 1,
            MIN_US,
            -1,
            0,
            1_704_103_200_123_456,
            MAX_US,
            MAX_US + 1,
            i64::MIN,
            i64::MAX,
        ];
        let n = edges.len();
        let b = batch(vec![
            ("event", Arc::new(StringArray::from(vec!["a"; n])) as ArrayRef),
            ("time", stamps(&vec![1_704_103_200_000_000; n])),
            ("mp_processing_time_ms", stamps(&edges)),
        ]);
        // Ingest times: the five in the text range are taken; the rest go the general way.
        assert_eq!(check(&b, &keys()), (5, 4));
        // Event times: only those of the accepted years.
        let (start, end) = (EVENT_TIMES_US.start, EVENT_TIMES_US.end);
        let times = [start - 1, start, 1_704_103_200_123_456, end - 1, end, MIN_US, MAX_US];
        let b = batch(vec![
            ("event", Arc::new(StringArray::from(vec!["a"; times.len()])) as ArrayRef),
            ("time", stamps(&times)),
        ]);
        assert_eq!(check(&b, &keys()), (3, 4));
    }

    #[test]
    fn unusual_columns_decline() {
        let ev = || Arc::new(StringArray::from(vec!["a", "b"])) as ArrayRef;
        let t = || Arc::new(Int64Array::from(vec![1_704_103_200, 1_704_103_201])) as ArrayRef;
        // Float times: the whole batch.
        let f = Arc::new(arrow_array::Float64Array::from(vec![1.5, 2.0])) as ArrayRef;
        assert_eq!(check(&batch(vec![("event", ev()), ("time", f)]), &keys()), (0, 2));
        // `properties` next to a flattened field the lookup could read.
        let p = Arc::new(StringArray::from(vec![r#"{"time":1704103200}"#, "{}"])) as ArrayRef;
        assert_eq!(
            check(
                &batch(vec![("event", ev()), ("properties", p.clone()), ("time", t())]),
                &keys()
            ),
            (0, 2)
        );
        assert_eq!(check(&batch(vec![("event", ev()), ("properties", p)]), &keys()), (1, 1));
        // Two `time` columns.
        assert_eq!(
            check(&batch(vec![("event", ev()), ("time", t()), ("time", t())]), &keys()),
            (0, 2)
        );
        // No event column.
        assert_eq!(check(&batch(vec![("time", t())]), &keys()), (0, 2));
        // `event_name` where there is no `event`; an unsigned id past i64.
        let mut u = UInt64Builder::new();
        u.append_value(u64::MAX);
        u.append_value(5);
        let b = batch(vec![
            ("event_name", ev()),
            ("time", t()),
            ("distinct_id", Arc::new(u.finish())),
        ]);
        assert_eq!(check(&b, &keys()), (1, 1));
    }
}
