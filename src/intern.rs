//! String interning: group ids, event names and user ids become dense `u32`s once, at
//! normalisation, so attribution, dedup and every table hash and sort integers instead
//! of strings.
//!
//! [`Interner`] is the single-threaded table. Reader threads share a [`SharedInterner`]
//! for event names and group ids, sharded by hash so that threads rarely meet on a lock,
//! each with its own cache in front ([`LocalInterner`]): the shared table sees one lookup
//! per distinct string per batch, not one per event. User ids are hashed, not interned
//! ([`UserKey`]).

use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// Id of an interned string.
pub type Sym = u32;

/// A user id as the tables know it: its 64-bit XXH3 hash. User ids are only ever
/// compared, and only within one day (distinct users per group and day, Mixpanel's dedup
/// key), so they are never interned: no table of a billion ids to build or probe. Two
/// users of one group on one day share a key with odds of about n²/2⁶⁵ for n users
/// there: under 10⁻⁹ for 100,000.
pub type UserKey = u64;

/// Marker for "no user": events with an empty or missing user id count as events but
/// never as users.
pub const NO_USER: UserKey = UserKey::MAX;

/// The [`UserKey`] of a user id.
#[inline]
pub fn user_key(s: &str) -> UserKey {
    match twox_hash::XxHash3_64::oneshot(s.as_bytes()) {
        NO_USER => NO_USER - 1,
        k => k,
    }
}

/// An append-only string table. The strings live end to end in one buffer (no allocation
/// per string); the hash table holds each id with the string's length and first eight
/// bytes, so most lookups (ids and names are often that short) never touch the buffer.
#[derive(Default, Clone)]
pub struct Interner {
    ids: HashTable<Slot>,
    text: String,
    /// End offset in `text` of each string; string `i` starts where `i - 1` ends.
    ends: Vec<usize>,
}

impl PartialEq for Interner {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text && self.ends == other.ends
    }
}

impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries((0..self.len() as Sym).map(|i| self.resolve(i)))
            .finish()
    }
}

/// The hash every interner keys strings by; callers that intern one string in two
/// tables compute it once.
#[inline]
pub fn hash(s: &str) -> u64 {
    FxBuildHasher.hash_one(s)
}

#[derive(Clone, Copy)]
struct Slot {
    id: Sym,
    len: u32,
    /// The first (up to) eight bytes, zero-padded.
    head: u64,
}

#[inline]
fn head(s: &str) -> u64 {
    let b = s.as_bytes();
    match b.first_chunk::<8>() {
        Some(h) => u64::from_le_bytes(*h),
        None => {
            let mut h = [0u8; 8];
            h[..b.len()].copy_from_slice(b);
            u64::from_le_bytes(h)
        }
    }
}

impl Slot {
    #[inline]
    fn is(&self, s: &str, s_head: u64, text: &str, ends: &[usize]) -> bool {
        self.len as usize == s.len()
            && self.head == s_head
            && (s.len() <= 8 || span(text, ends, self.id).as_bytes()[8..] == s.as_bytes()[8..])
    }
}

#[inline]
fn span<'a>(text: &'a str, ends: &[usize], id: Sym) -> &'a str {
    let i = id as usize;
    let start = if i == 0 { 0 } else { ends[i - 1] };
    let end = ends[i];
    debug_assert!(text.is_char_boundary(start) && text.is_char_boundary(end));
    // SAFETY: `ends` only ever records `text.len()` right after a whole `&str` was pushed,
    // so every span starts and ends on a char boundary within `text`. This is the hot
    // path of interning; the checked slice's boundary tests cost a fifth of it.
    unsafe { text.get_unchecked(start..end) }
}

impl Interner {
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `s`, adding it when new.
    pub fn intern(&mut self, s: &str) -> Sym {
        self.intern_hashed(s, hash(s))
    }

    /// [`Self::intern`] for a string whose [`hash`] is `h`.
    #[inline]
    pub fn intern_hashed(&mut self, s: &str, h: u64) -> Sym {
        let (text, ends) = (&self.text, &self.ends);
        let s_head = head(s);
        if let Some(slot) = self.ids.find(h, |slot| slot.is(s, s_head, text, ends)) {
            return slot.id;
        }
        let id = Sym::try_from(self.ends.len()).expect("fewer than 2^32 distinct strings");
        assert!(id != Sym::MAX, "interner full");
        self.text.push_str(s);
        self.ends.push(self.text.len());
        let (text, ends) = (&self.text, &self.ends);
        let slot = Slot {
            id,
            len: u32::try_from(s.len()).expect("strings under 4 GiB"),
            head: s_head,
        };
        self.ids.insert_unique(h, slot, |slot| hash(span(text, ends, slot.id)));
        id
    }

    /// The id of `s` when it was interned.
    pub fn get(&self, s: &str) -> Option<Sym> {
        let s_head = head(s);
        self.ids
            .find(hash(s), |slot| slot.is(s, s_head, &self.text, &self.ends))
            .map(|slot| slot.id)
    }

    /// The string behind `id`.
    pub fn resolve(&self, id: Sym) -> &str {
        span(&self.text, &self.ends, id)
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// Shards of the shared tables: enough that 16 reader threads seldom wait on one lock.
const SHARDS: usize = 64;

/// Shard of a hash: bits clear of those hashbrown uses for buckets (low) and tags (top
/// seven), so each shard's table still spreads its keys.
#[inline]
fn shard_of(h: u64) -> usize {
    (h >> 40) as usize % SHARDS
}

/// An interner many threads add to at once. Ids are dense but numbered in the order
/// threads happen to get to strings: [`SharedInterner::sorted`] renumbers them in
/// byte order, so that nothing downstream depends on thread timing.
pub struct SharedInterner {
    shards: Box<[Mutex<Shard>]>,
    next: AtomicU32,
}

#[derive(Default)]
struct Shard {
    strings: Interner,
    /// Shared id of each of `strings`.
    ids: Vec<Sym>,
}

impl Default for SharedInterner {
    fn default() -> Self {
        SharedInterner {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            next: AtomicU32::new(0),
        }
    }
}

impl SharedInterner {
    /// The id of `s`, whose [`hash`] is `h`, adding it when new.
    pub fn intern_hashed(&self, s: &str, h: u64) -> Sym {
        let mut shard = self.shards[shard_of(h)].lock().unwrap_or_else(|p| p.into_inner());
        let local = shard.strings.intern_hashed(s, h) as usize;
        if local == shard.ids.len() {
            let id = self.next.fetch_add(1, Ordering::Relaxed);
            assert!(id < Sym::MAX, "fewer than 2^32 - 1 distinct strings");
            shard.ids.push(id);
        }
        shard.ids[local]
    }

    /// The id of `s` when some thread has added it.
    pub fn get(&self, s: &str) -> Option<Sym> {
        let h = hash(s);
        let shard = self.shards[shard_of(h)].lock().unwrap_or_else(|p| p.into_inner());
        shard.strings.get(s).map(|local| shard.ids[local as usize])
    }

    pub fn len(&self) -> usize {
        self.next.load(Ordering::Relaxed) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The strings as an [`Interner`] whose ids follow byte order, and for every id
    /// handed out here its id there.
    pub fn sorted(&self) -> (Interner, Vec<Sym>) {
        // Ids are drawn under their shard's lock: with every lock held, `len` is final.
        let shards: Vec<std::sync::MutexGuard<Shard>> = self
            .shards
            .iter()
            .map(|m| m.lock().unwrap_or_else(|p| p.into_inner()))
            .collect();
        let n = self.len();
        // (shard, index in shard) of every shared id.
        let mut at: Vec<(u32, Sym)> = vec![(0, 0); n];
        for (i, shard) in shards.iter().enumerate() {
            for (local, &id) in shard.ids.iter().enumerate() {
                at[id as usize] = (i as u32, local as Sym);
            }
        }
        let text = |id: Sym| {
            let (shard, local) = at[id as usize];
            shards[shard as usize].strings.resolve(local)
        };
        let mut order: Vec<Sym> = (0..n as Sym).collect();
        order.sort_unstable_by(|&a, &b| text(a).cmp(text(b)));
        let mut sorted = Interner::new();
        let mut remap = vec![0; n];
        for id in order {
            remap[id as usize] = sorted.intern(text(id));
        }
        (sorted, remap)
    }
}

/// One thread's cache in front of a [`SharedInterner`].
#[derive(Default, Clone)]
pub struct LocalInterner {
    strings: Interner,
    ids: Vec<Sym>,
}

impl LocalInterner {
    /// The shared id of `s`.
    #[inline]
    pub fn get(&mut self, s: &str, shared: &SharedInterner) -> Sym {
        let h = hash(s);
        let local = self.strings.intern_hashed(s, h) as usize;
        if local == self.ids.len() {
            self.ids.push(shared.intern_hashed(s, h));
        }
        self.ids[local]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_ids_are_renumbered_in_byte_order() {
        let shared = SharedInterner::default();
        let words = ["pear", "apple", "fig", "apple", "", "Zebra", "fig"];
        let mut local = LocalInterner::default();
        let got: Vec<Sym> = std::thread::scope(|s| {
            // Another thread adds in another order first.
            s.spawn(|| {
                let mut other = LocalInterner::default();
                for w in words.iter().rev() {
                    other.get(w, &shared);
                }
            });
            words.iter().map(|w| local.get(w, &shared)).collect()
        });
        assert_eq!(shared.len(), 5);
        let (sorted, remap) = shared.sorted();
        let names: Vec<&str> = (0..sorted.len() as Sym).map(|i| sorted.resolve(i)).collect();
        assert_eq!(names, ["", "Zebra", "apple", "fig", "pear"]);
        for (w, id) in words.iter().zip(got) {
            assert_eq!(sorted.resolve(remap[id as usize]), *w);
        }
    }

    #[test]
    fn strings_sharing_a_head_stay_apart() {
        let words = [
            "",
            "a",
            "a\0",
            "abcdefgh",
            "abcdefghi",
            "abcdefghj",
            "abcdefgh\0",
            "é",
            "abcdefg",
        ];
        let mut t = Interner::new();
        let ids: Vec<Sym> = words.iter().map(|w| t.intern(w)).collect();
        assert_eq!(ids, (0..words.len() as Sym).collect::<Vec<_>>());
        for (w, id) in words.iter().zip(ids) {
            assert_eq!(t.intern(w), id);
            assert_eq!(t.get(w), Some(id));
            assert_eq!(t.resolve(id), *w);
        }
        assert_eq!(t.get("abcdefghk"), None);
    }

    #[test]
    fn user_keys_never_mean_no_user() {
        assert_ne!(user_key("u1"), user_key("u2"));
        assert_eq!(user_key("u1"), user_key("u1"));
        assert!(["", "u1", "x"].iter().all(|u| user_key(u) != NO_USER));
    }
}
