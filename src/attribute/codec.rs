//! The compact binary form events take between reading and per-day processing.
//!
//! An event is ~40 bytes here instead of a struct plus a dedup-index entry (~150 bytes),
//! so buckets hold hundreds of millions of events in memory or on disk. Fields have fixed
//! widths (see [`encode`]); times are stored relative to the bucket's base (its day's UTC
//! midnight), which keeps them to five bytes; the user is its 8-byte hash.

use std::ops::Range;

use crate::intern::{Sym, UserKey, NO_USER};

/// What identifies duplicates of an event, after hashing (see `super::IdHasher`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Dedup {
    /// Never a duplicate (no key, or already deduplicated by id).
    Unique,
    /// Mixpanel: (name, user, time) plus a 64-bit hash of the insert id. Two different
    /// insert ids collide only when name, user and the exact microsecond agree too.
    NameUserTime(Option<u64>),
    /// A 128-bit hash of a message id / uuid.
    Id(u128),
}

/// A decoded event; `groups` indexes the decoder's membership list.
#[derive(Debug, Clone)]
pub(super) struct Event {
    pub name: Sym,
    pub user: UserKey,
    pub time_us: i64,
    pub ingest_us: Option<i64>,
    pub dedup: Dedup,
    pub groups: Range<u32>,
}

const KIND_UNIQUE: u8 = 0;
const KIND_NUT: u8 = 1;
const KIND_NUT_ID: u8 = 2;
const KIND_ID: u8 = 3;
const HAS_USER: u8 = 4;
const HAS_INGEST: u8 = 8;
/// The time is 8 bytes, not 5 (more than ~6 days from the base).
const WIDE_TIME: u8 = 16;
/// The ingest delta is 8 bytes, not 4 (more than ~35 minutes either way).
const WIDE_INGEST: u8 = 32;
/// The membership count is 4 bytes, not 1.
const MANY_GROUPS: u8 = 64;

/// Bytes of a 5-byte time.
const TIME_BYTES: usize = 5;

/// The largest fixed part of an event: tag, name, user, wide time, wide ingest delta,
/// 128-bit id and 4-byte count (one field less than that in fact: an event has one hash).
/// Every field read at its offset in a window this long stays inside it, 8-byte loads of
/// the narrow time and ingest delta included.
const MAX_HEAD: usize = 1 + 4 + 8 + 8 + 8 + 16 + 4;

#[inline]
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
fn unzigzag(v: u64) -> i64 {
    (v >> 1) as i64 ^ -((v & 1) as i64)
}

/// Appends one event to `buf`. `base_us` is the bucket's base time; `groups` are
/// (key index, group) pairs.
///
/// Fields have fixed widths, chosen by flags in the leading tag byte: a 4-byte name, the
/// time as a zigzag delta from the base in 5 bytes (8 when far from it), the ingest time
/// as a zigzag delta from the time in 4 bytes (or 8), the hashes whole, a 1-byte count
/// (or 4) and 6 bytes a membership. Varints were ~20% smaller but cost more to write and
/// read back than anything else an event meets between its file and its day.
#[allow(clippy::too_many_arguments)]
#[inline]
pub(super) fn encode(
    buf: &mut Vec<u8>,
    base_us: i64,
    name: Sym,
    user: UserKey,
    time_us: i64,
    ingest_us: Option<i64>,
    dedup: Dedup,
    groups: impl ExactSizeIterator<Item = (u16, Sym)>,
) {
    // The fixed part is put together on the stack and appended at once.
    let mut head = [0u8; MAX_HEAD];
    let mut at = 1;
    let mut field = |bytes: &[u8]| {
        head[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    let mut tag = match dedup {
        Dedup::Unique => KIND_UNIQUE,
        Dedup::NameUserTime(None) => KIND_NUT,
        Dedup::NameUserTime(Some(_)) => KIND_NUT_ID,
        Dedup::Id(_) => KIND_ID,
    };
    field(&name.to_le_bytes());
    if user != NO_USER {
        tag |= HAS_USER;
        field(&user.to_le_bytes());
    }
    let time = zigzag(time_us.wrapping_sub(base_us));
    if time < 1 << (8 * TIME_BYTES) {
        field(&time.to_le_bytes()[..TIME_BYTES]);
    } else {
        tag |= WIDE_TIME;
        field(&time.to_le_bytes());
    }
    if let Some(i) = ingest_us {
        tag |= HAS_INGEST;
        let delta = zigzag(i.wrapping_sub(time_us));
        match u32::try_from(delta) {
            Ok(d) => field(&d.to_le_bytes()),
            Err(_) => {
                tag |= WIDE_INGEST;
                field(&delta.to_le_bytes());
            }
        }
    }
    match dedup {
        Dedup::NameUserTime(Some(h)) => field(&h.to_le_bytes()),
        Dedup::Id(h) => field(&h.to_le_bytes()),
        _ => {}
    }
    let n = groups.len();
    match u8::try_from(n) {
        Ok(n) => field(&[n]),
        Err(_) => {
            tag |= MANY_GROUPS;
            field(&u32::try_from(n).expect("fewer than 2^32 memberships").to_le_bytes());
        }
    }
    head[0] = tag;
    buf.extend_from_slice(&head[..at]);
    for (k, g) in groups {
        let mut m = [0u8; 6];
        m[..2].copy_from_slice(&k.to_le_bytes());
        m[2..].copy_from_slice(&g.to_le_bytes());
        buf.extend_from_slice(&m);
    }
}

/// Largest chunk [`room`] starts.
const CHUNK_MAX: usize = 4 << 20;

/// Appends events with [`encode`] to chunks that are never reallocated: a chunk is
/// started (64 KiB, doubling up to 4 MiB, full-size ones from `pool`) when the last has too
/// little room for an event (a larger event grows its chunk). Growing one buffer instead
/// copied and re-faulted it at every doubling, a tenth of the reading time.
pub(super) fn room<'c>(chunks: &'c mut Vec<Vec<u8>>, pool: &ChunkPool) -> &'c mut Vec<u8> {
    const SLACK: usize = 256;
    let full = chunks.last().is_none_or(|c| c.capacity() - c.len() < SLACK);
    if full {
        let size = chunks.last().map_or(64 << 10, |c| (c.capacity() * 2).min(CHUNK_MAX));
        chunks.push(if size == CHUNK_MAX {
            pool.take()
        } else {
            Vec::with_capacity(size)
        });
    }
    chunks.last_mut().expect("pushed above")
}

/// Full-size chunks whose events have been processed, kept for new events: a day's
/// chunks are let go while later files are read, and memory reused at once is already
/// mapped, where memory freed and allocated again may come back from the kernel as fresh
/// pages, faulted in and zeroed again.
pub(super) struct ChunkPool {
    free: std::sync::Mutex<Vec<Vec<u8>>>,
    /// Chunks kept at most.
    limit: usize,
}

impl ChunkPool {
    /// A pool that keeps up to `bytes` of chunks.
    pub(super) fn new(bytes: usize) -> Self {
        ChunkPool {
            free: Default::default(),
            limit: bytes / CHUNK_MAX,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        self.free.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An empty full-size chunk.
    fn take(&self) -> Vec<u8> {
        self.lock().pop().unwrap_or_else(|| Vec::with_capacity(CHUNK_MAX))
    }

    /// Keeps the full-size ones of `chunks` (up to the limit), emptied.
    pub(super) fn give(&self, chunks: Vec<Vec<u8>>) {
        let mut free = self.lock();
        for mut c in chunks {
            if free.len() >= self.limit {
                return;
            }
            if c.capacity() == CHUNK_MAX {
                c.clear();
                free.push(c);
            }
        }
    }
}

/// Reads events back, in order, from chunks written by [`encode`] with the same `base_us`;
/// no event spans two chunks.
pub(super) struct Decoder<'a> {
    rest: &'a [Vec<u8>],
    buf: &'a [u8],
    pos: usize,
    base_us: i64,
}

impl<'a> Decoder<'a> {
    pub(super) fn new(chunks: &'a [Vec<u8>], base_us: i64) -> Self {
        Decoder {
            rest: chunks,
            buf: &[],
            pos: 0,
            base_us,
        }
    }

    /// The next event, its memberships appended to `groups`; `None` at the end.
    #[inline]
    pub(super) fn next(&mut self, groups: &mut Vec<(u16, Sym)>) -> Option<Event> {
        while self.pos >= self.buf.len() {
            let (first, rest) = self.rest.split_first()?;
            (self.buf, self.rest, self.pos) = (first, rest, 0);
        }
        // The fixed part is read from a window of its largest size, each field as one
        // 8- or 16-byte load at an offset the flags give, narrow fields masked: a field read
        // with its own bounds check and cursor update cost half of decoding. An event near
        // the end of its chunk is copied into a padded window first.
        let rest = &self.buf[self.pos..];
        let padded;
        let h: &[u8; MAX_HEAD] = match rest.first_chunk::<MAX_HEAD>() {
            Some(h) => h,
            None => {
                let mut p = [0u8; MAX_HEAD];
                p[..rest.len()].copy_from_slice(rest);
                padded = p;
                &padded
            }
        };
        let u64_at = |at: usize| u64::from_le_bytes(h[at..at + 8].try_into().expect("8 bytes"));
        let tag = h[0];
        let name = u32::from_le_bytes(h[1..5].try_into().expect("4 bytes"));
        let mut at = 5;
        let user = if tag & HAS_USER != 0 {
            at += 8;
            u64_at(5)
        } else {
            NO_USER
        };
        let time = if tag & WIDE_TIME != 0 {
            at += 8;
            u64_at(at - 8)
        } else {
            at += TIME_BYTES;
            u64_at(at - TIME_BYTES) & ((1 << (8 * TIME_BYTES)) - 1)
        };
        let time_us = self.base_us.wrapping_add(unzigzag(time));
        let ingest_us = if tag & HAS_INGEST != 0 {
            let delta = if tag & WIDE_INGEST != 0 {
                at += 8;
                u64_at(at - 8)
            } else {
                at += 4;
                u64_at(at - 4) & u32::MAX as u64
            };
            Some(time_us.wrapping_add(unzigzag(delta)))
        } else {
            None
        };
        let dedup = match tag & 3 {
            KIND_UNIQUE => Dedup::Unique,
            KIND_NUT => Dedup::NameUserTime(None),
            KIND_NUT_ID => {
                at += 8;
                Dedup::NameUserTime(Some(u64_at(at - 8)))
            }
            _ => {
                at += 16;
                Dedup::Id(u128::from_le_bytes(h[at - 16..at].try_into().expect("16 bytes")))
            }
        };
        let n = if tag & MANY_GROUPS != 0 {
            at += 4;
            u32::from_le_bytes(h[at - 4..at].try_into().expect("4 bytes")) as usize
        } else {
            at += 1;
            h[at - 1] as usize
        };
        let start = groups.len() as u32;
        let members = &rest[at..at + 6 * n];
        self.pos += at + 6 * n;
        groups.reserve(n);
        for m in members.chunks_exact(6) {
            groups.push((
                u16::from_le_bytes([m[0], m[1]]),
                Sym::from_le_bytes([m[2], m[3], m[4], m[5]]),
            ));
        }
        Some(Event {
            name,
            user,
            time_us,
            ingest_us,
            dedup,
            groups: start..groups.len() as u32,
        })
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn dedup() -> impl Strategy<Value = Dedup> {
        prop_oneof![
            Just(Dedup::Unique),
            Just(Dedup::NameUserTime(None)),
            any::<u64>().prop_map(|h| Dedup::NameUserTime(Some(h))),
            any::<u128>().prop_map(Dedup::Id),
        ]
    }

    type Ev = (Sym, UserKey, i64, Option<i64>, Dedup, Vec<(u16, Sym)>);

    #[test]
    fn chunks_come_back_from_the_pool_empty_and_only_full_size_ones_up_to_its_limit() {
        let pool = ChunkPool::new(2 * CHUNK_MAX);
        // Fill chunks through `room` until it starts full-size ones: 64 KiB doubling.
        let mut chunks = Vec::new();
        while chunks.len() < 9 {
            let c = room(&mut chunks, &pool);
            c.resize(c.capacity() - 100, 7);
        }
        let sizes: Vec<usize> = chunks.iter().map(|c| c.capacity() >> 10).collect();
        assert_eq!(sizes, [64, 128, 256, 512, 1024, 2048, 4096, 4096, 4096]);
        let mut grown = Vec::with_capacity(CHUNK_MAX);
        grown.resize(CHUNK_MAX + 1, 0); // an event larger than the slack grew it
        chunks.push(grown);
        pool.give(chunks);
        assert_eq!(pool.lock().len(), 2, "two full-size chunks kept, the limit");
        let again = pool.take();
        assert!(again.is_empty() && again.capacity() == CHUNK_MAX);
        assert_eq!(pool.lock().len(), 1);
        // Past what the pool holds, chunks are new.
        pool.take();
        assert_eq!(pool.take().capacity(), CHUNK_MAX);
        assert!(pool.lock().is_empty());
    }

    /// An offset whose zigzag form is up to `bits` wide, often at the edges of that width.
    fn offset(bits: u32) -> impl Strategy<Value = i64> {
        let half = 1i64 << (bits - 1);
        prop_oneof![
            any::<i64>(),
            -half..half,
            prop::sample::select(vec![0, half - 1, -half, half, -half - 1, i64::MIN, i64::MAX]),
        ]
    }

    fn event() -> impl Strategy<Value = Ev> {
        let groups = prop_oneof![
            4 => prop::collection::vec((any::<u16>(), any::<Sym>()), 0..4),
            1 => prop::collection::vec((any::<u16>(), any::<Sym>()), 250..300),
        ];
        (
            any::<Sym>(),
            prop_oneof![Just(NO_USER), any::<UserKey>()],
            offset(8 * TIME_BYTES as u32),
            prop::option::of(offset(32)),
            dedup(),
            groups,
        )
    }

    proptest! {
        #[test]
        fn round_trips(base in any::<i64>(), events in prop::collection::vec(event(), 0..20)) {
            // Times are offsets from the base, ingest times from the time: both at and past
            // the edges of their narrow forms.
            let events: Vec<Ev> = events
                .into_iter()
                .map(|(n, u, t, i, d, g)| {
                    let t = base.wrapping_add(t);
                    (n, u, t, i.map(|i| t.wrapping_add(i)), d, g)
                })
                .collect();
            // Small chunks, so that decoding moves from chunk to chunk (and over empty ones).
            let mut chunks = vec![Vec::new()];
            for (n, u, t, i, d, g) in &events {
                if chunks.last().unwrap().len() > 40 {
                    chunks.push(Vec::new());
                }
                encode(chunks.last_mut().unwrap(), base, *n, *u, *t, *i, *d, g.iter().copied());
            }
            let mut dec = Decoder::new(&chunks, base);
            let mut groups = Vec::new();
            let mut back: Vec<Ev> = Vec::new();
            while let Some(e) = dec.next(&mut groups) {
                let g = groups[e.groups.start as usize..e.groups.end as usize].to_vec();
                back.push((e.name, e.user, e.time_us, e.ingest_us, e.dedup, g));
            }
            prop_assert_eq!(back, events);
        }
    }
}
