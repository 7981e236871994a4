//! The compact binary form events take between reading and per-day processing.
//!
//! An event is ~30 bytes here instead of a struct plus a dedup-index entry (~150 bytes),
//! so buckets hold hundreds of millions of events in memory or on disk. Integers are
//! LEB128 varints; times are stored relative to the bucket's base (its day's UTC
//! midnight), which keeps them to five or six bytes; the user is its 8-byte hash.

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

/// Appends `v` as a LEB128 varint. Values under 2^56 (every one but hashes' worth) are
/// spread into one word and appended as eight bytes, the unused ones then cut off: no
/// branch per byte.
#[inline]
fn put(buf: &mut Vec<u8>, v: u64) {
    if v < 1 << 56 {
        let len = ((64 - (v | 1).leading_zeros()).div_ceil(7)) as usize;
        let mut w = 0u64;
        for i in 0..8 {
            w |= (v << i) & (0x7f << (8 * i));
        }
        // A continuation bit on every byte but the last.
        w |= 0x8080_8080_8080_8080 & ((1u64 << (8 * (len - 1))) - 1);
        buf.extend_from_slice(&w.to_le_bytes());
        buf.truncate(buf.len() - (8 - len));
        return;
    }
    put_bytewise(buf, v)
}

#[inline(never)]
fn put_bytewise(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

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
    let mut tag = match dedup {
        Dedup::Unique => KIND_UNIQUE,
        Dedup::NameUserTime(None) => KIND_NUT,
        Dedup::NameUserTime(Some(_)) => KIND_NUT_ID,
        Dedup::Id(_) => KIND_ID,
    };
    if user != NO_USER {
        tag |= HAS_USER;
    }
    if ingest_us.is_some() {
        tag |= HAS_INGEST;
    }
    buf.push(tag);
    put(buf, name as u64);
    if user != NO_USER {
        buf.extend_from_slice(&user.to_le_bytes());
    }
    put(buf, zigzag(time_us.wrapping_sub(base_us)));
    if let Some(i) = ingest_us {
        put(buf, zigzag(i.wrapping_sub(time_us)));
    }
    match dedup {
        Dedup::NameUserTime(Some(h)) => buf.extend_from_slice(&h.to_le_bytes()),
        Dedup::Id(h) => buf.extend_from_slice(&h.to_le_bytes()),
        _ => {}
    }
    put(buf, groups.len() as u64);
    for (k, g) in groups {
        put(buf, k as u64);
        put(buf, g as u64);
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

    /// One varint. Where eight bytes are left, it is read as one word: the first clear
    /// high bit ends it, and its 7-bit groups are gathered without a branch per byte
    /// (times and ingest deltas are 3 to 6 bytes long, and a byte loop mispredicted on
    /// every length change).
    #[inline]
    fn get(&mut self) -> u64 {
        if let Some(word) = self.buf.get(self.pos..self.pos + 8) {
            let w = u64::from_le_bytes(word.try_into().expect("8 bytes"));
            let ends = !w & 0x8080_8080_8080_8080;
            if ends != 0 {
                let bits = ends.trailing_zeros() + 1; // through the last byte's high bit
                let x = if bits == 64 { w } else { w & ((1u64 << bits) - 1) };
                self.pos += bits as usize / 8;
                let mut v = 0;
                for i in 0..8 {
                    v |= (x >> i) & (0x7f << (7 * i));
                }
                return v;
            }
        }
        self.get_bytewise()
    }

    #[inline(never)]
    fn get_bytewise(&mut self) -> u64 {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = self.buf[self.pos];
            self.pos += 1;
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return v;
            }
            shift += 7;
        }
    }

    fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let b: [u8; N] = self.buf[self.pos..self.pos + N].try_into().expect("N bytes");
        self.pos += N;
        b
    }

    /// The next event, its memberships appended to `groups`; `None` at the end.
    #[inline]
    pub(super) fn next(&mut self, groups: &mut Vec<(u16, Sym)>) -> Option<Event> {
        while self.pos >= self.buf.len() {
            let (first, rest) = self.rest.split_first()?;
            (self.buf, self.rest, self.pos) = (first, rest, 0);
        }
        let tag = self.buf[self.pos];
        self.pos += 1;
        let name = self.get() as Sym;
        let user = if tag & HAS_USER != 0 {
            u64::from_le_bytes(self.bytes())
        } else {
            NO_USER
        };
        let time_us = self.base_us.wrapping_add(unzigzag(self.get()));
        let ingest_us = (tag & HAS_INGEST != 0).then(|| time_us.wrapping_add(unzigzag(self.get())));
        let dedup = match tag & 3 {
            KIND_UNIQUE => Dedup::Unique,
            KIND_NUT => Dedup::NameUserTime(None),
            KIND_NUT_ID => Dedup::NameUserTime(Some(u64::from_le_bytes(self.bytes()))),
            _ => Dedup::Id(u128::from_le_bytes(self.bytes())),
        };
        let n = self.get();
        let start = groups.len() as u32;
        for _ in 0..n {
            let k = self.get() as u16;
            let g = self.get() as Sym;
            groups.push((k, g));
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
    fn varints_of_every_length_read_back_word_wise_and_bytewise() {
        // Every bit length, its edges and a middle value, back to back: all but the last
        // few are read a word at a time, the tail byte by byte.
        let mut values = vec![0u64];
        for bits in 1..=64u32 {
            let top = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
            values.extend([top, top >> 1 | 1 << (bits - 1), 1u64 << (bits - 1)]);
        }
        let mut buf = Vec::new();
        for &v in &values {
            let mut bytewise = Vec::new();
            put_bytewise(&mut bytewise, v);
            let at = buf.len();
            put(&mut buf, v);
            assert_eq!(buf[at..], bytewise[..], "{v}");
        }
        let chunks = [buf];
        let mut dec = Decoder::new(&chunks, 0);
        dec.buf = &chunks[0];
        for &v in &values {
            assert_eq!(dec.get(), v);
        }
        assert_eq!(dec.pos, chunks[0].len());
    }

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

    proptest! {
        #[test]
        fn round_trips(base in any::<i64>(), events in prop::collection::vec(
            (any::<Sym>(), prop_oneof![Just(NO_USER), any::<UserKey>()], any::<i64>(),
             any::<Option<i64>>(), dedup(), prop::collection::vec((any::<u16>(), any::<Sym>()), 0..4)),
            0..20,
        )) {
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
