//! String interning: group ids, event names and user ids become dense `u32`s once, at
//! normalisation, so attribution, dedup and every table hash and sort integers instead
//! of strings.
//!
//! [`Interner`] is the single-threaded table. Reader threads share a [`SharedInterner`]
//! for event names and group ids, sharded by hash so that threads rarely meet on a lock,
//! each with its own cache in front ([`SeenSyms`]): the shared table sees one lookup per
//! distinct string per thread, not one per event. User ids are hashed, not interned
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

/// One reader thread's memory of the shared ids it has been given, kept across the files
/// the thread reads (a per-file cache asked the shared table again in every file). Strings
/// are known here by their 128-bit XXH3 hash alone: a string met before costs one probe of
/// a flat table, with no lock and no string compare, and a whole dictionary's probes can
/// overlap ([`SeenSyms::get_all`]). Two strings would be confused only by sharing that
/// hash: odds of about n²/2¹²⁹, 10⁻²⁹ for 10⁵ strings (dedup ids carry the same kind of
/// hash). Past [`SeenSyms::MAX`] strings it starts over, so that a thread's memory stays
/// bounded (48 MiB) whatever the number of group ids.
#[derive(Default, Clone)]
pub struct SeenSyms {
    /// Open addressing, linear probing; a power of two long, at most half full.
    slots: Vec<Seen>,
    len: usize,
}

#[derive(Clone, Copy)]
struct Seen {
    hi: u64,
    lo: u64,
    /// `Sym::MAX` (never a shared id) marks a free slot.
    sym: Sym,
}

const FREE: Seen = Seen {
    hi: 0,
    lo: 0,
    sym: Sym::MAX,
};

impl SeenSyms {
    /// Strings remembered at most.
    pub const MAX: usize = 1 << 20;

    /// The shared id of `s`, asking `shared` only the first time.
    #[inline]
    pub fn get(&mut self, s: &str, shared: &SharedInterner) -> Sym {
        if self.slots.is_empty() {
            self.slots = vec![FREE; 1024];
        }
        self.get_hashed(s, twox_hash::XxHash3_128::oneshot(s.as_bytes()), shared)
    }

    /// The shared ids of `strings`, appended to `out` (`empty` for an empty string). Slots
    /// are requested from memory a few strings ahead of their probes, so that the cache
    /// misses of a long list overlap instead of coming one after the other.
    pub fn get_all(&mut self, strings: &[&str], shared: &SharedInterner, out: &mut Vec<Sym>, empty: Sym) {
        const AHEAD: usize = 8;
        if strings.len() > Self::MAX / 2 {
            // Too many to remember without outgrowing the bound: straight to the shared table.
            out.extend(strings.iter().map(|s| match s.is_empty() {
                true => empty,
                false => shared.intern_hashed(s, hash(s)),
            }));
            return;
        }
        // Room first: a table growing midway would leave the requested slots behind.
        if self.len + strings.len() > Self::MAX {
            self.forget();
        }
        let want = ((self.len + strings.len()) * 2).next_power_of_two().max(1024);
        if self.slots.len() < want {
            self.grow_to(want);
        }
        let mask = self.slots.len() - 1;
        let hashes: Vec<u128> = strings
            .iter()
            .map(|s| twox_hash::XxHash3_128::oneshot(s.as_bytes()))
            .collect();
        out.reserve(strings.len());
        for (i, (s, &h)) in strings.iter().zip(&hashes).enumerate() {
            if let Some(&ahead) = hashes.get(i + AHEAD) {
                prefetch(&self.slots[ahead as u64 as usize & mask]);
            }
            out.push(if s.is_empty() {
                empty
            } else {
                self.get_hashed(s, h, shared)
            });
        }
    }

    #[inline]
    fn get_hashed(&mut self, s: &str, h: u128, shared: &SharedInterner) -> Sym {
        let (hi, lo) = ((h >> 64) as u64, h as u64);
        let mask = self.slots.len() - 1;
        let mut i = lo as usize & mask;
        loop {
            let slot = self.slots[i];
            if slot.sym == Sym::MAX {
                break;
            }
            if slot.lo == lo && slot.hi == hi {
                return slot.sym;
            }
            i = (i + 1) & mask;
        }
        let sym = shared.intern_hashed(s, hash(s));
        self.slots[i] = Seen { hi, lo, sym };
        self.len += 1;
        if self.len >= Self::MAX {
            self.forget();
        } else if self.len * 2 > self.slots.len() {
            self.grow();
        }
        sym
    }

    /// Strings remembered now.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Starts over (the shared table still knows every string).
    fn forget(&mut self) {
        self.slots.fill(FREE);
        self.len = 0;
    }

    fn grow(&mut self) {
        self.grow_to(self.slots.len() * 2);
    }

    fn grow_to(&mut self, slots: usize) {
        debug_assert!(slots.is_power_of_two() && slots > self.slots.len());
        let old = std::mem::replace(&mut self.slots, vec![FREE; slots]);
        let mask = self.slots.len() - 1;
        for slot in old.into_iter().filter(|s| s.sym != Sym::MAX) {
            let mut i = slot.lo as usize & mask;
            while self.slots[i].sym != Sym::MAX {
                i = (i + 1) & mask;
            }
            self.slots[i] = slot;
        }
    }
}

/// Asks for the cache line of `slot` ahead of its use (a hint: nothing waits on it).
#[inline]
fn prefetch<T>(slot: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch reads nothing architecturally and never faults; the address is
    // a live reference besides.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>((slot as *const T).cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = slot;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_ids_are_renumbered_in_byte_order() {
        let shared = SharedInterner::default();
        let words = ["pear", "apple", "fig", "apple", "", "Zebra", "fig"];
        let mut local = SeenSyms::default();
        let got: Vec<Sym> = std::thread::scope(|s| {
            // Another thread adds in another order first.
            s.spawn(|| {
                let mut other = SeenSyms::default();
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
    fn seen_ids_are_the_shared_ones_through_growth() {
        let shared = SharedInterner::default();
        // Enough strings to grow the table several times; many share long heads, and
        // every one is asked for again after the growth.
        let words: Vec<String> = (0..5000)
            .map(|i| match i % 3 {
                0 => format!("g{i}"),
                1 => format!("company-with-a-long-name-{i:08}"),
                _ => format!("company-with-a-long-name-{i:08}x"),
            })
            .collect();
        let mut seen = SeenSyms::default();
        let first: Vec<Sym> = words.iter().map(|w| seen.get(w, &shared)).collect();
        assert_eq!(shared.len(), words.len());
        let mut fresh = SeenSyms::default();
        for (w, &id) in words.iter().zip(&first).rev() {
            assert_eq!(shared.get(w), Some(id), "{w}");
            assert_eq!(seen.get(w, &shared), id, "{w} again");
            assert_eq!(fresh.get(w, &shared), id, "{w} from another thread's cache");
        }
        assert_eq!(shared.len(), words.len(), "nothing interned twice");
        // A batch, some new, some known, some empty; then past the cap, where it starts over.
        let mut batch: Vec<&str> = words.iter().step_by(7).map(String::as_str).collect();
        batch.extend(["", "new-1", "new-2"]);
        let mut got = Vec::new();
        seen.get_all(&batch, &shared, &mut got, Sym::MAX);
        for (w, id) in batch.iter().zip(&got) {
            let want = if w.is_empty() { None } else { shared.get(w) };
            assert_eq!(want.unwrap_or(Sym::MAX), *id, "{w:?} in a batch");
        }
        // A list too long to remember is answered without growing the table.
        let long: Vec<String> = (0..SeenSyms::MAX / 2 + 1).map(|i| format!("l{i}")).collect();
        let long: Vec<&str> = long.iter().map(String::as_str).collect();
        let (slots, mut got) = (seen.slots.len(), Vec::new());
        seen.get_all(&long, &shared, &mut got, Sym::MAX);
        assert_eq!(seen.slots.len(), slots);
        assert_eq!(got[7], shared.get("l7").unwrap());
        seen.len = SeenSyms::MAX - 1;
        assert_eq!(seen.get("new-3", &shared), shared.get("new-3").unwrap());
        assert_eq!(seen.len, 0, "started over at the cap");
        assert_eq!(seen.get(&words[3], &shared), first[3]);
        let mut ids = first.clone();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), words.len(), "distinct strings, distinct ids");
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
