//! String interning: group ids, event names and user ids become dense `u32`s once, at
//! normalisation, so attribution, dedup and every table hash and sort integers instead
//! of strings.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// Id of an interned string.
pub type Sym = u32;

/// Marker for "no user": events with an empty or missing user id count as events but
/// never as users.
pub const NO_USER: Sym = Sym::MAX;

/// An append-only string table. The strings live end to end in one buffer (no allocation
/// per string: a million user ids cost their bytes plus 12 bytes each); the hash table
/// holds ids and compares through the buffer.
#[derive(Default, Clone)]
pub struct Interner {
    ids: HashTable<Sym>,
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

fn hash(s: &str) -> u64 {
    FxBuildHasher.hash_one(s)
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
        let h = hash(s);
        let (text, ends) = (&self.text, &self.ends);
        if let Some(&id) = self.ids.find(h, |&id| span(text, ends, id) == s) {
            return id;
        }
        let id = Sym::try_from(self.ends.len()).expect("fewer than 2^32 distinct strings");
        assert!(id != NO_USER, "interner full");
        self.text.push_str(s);
        self.ends.push(self.text.len());
        let (text, ends) = (&self.text, &self.ends);
        self.ids.insert_unique(h, id, |&id| hash(span(text, ends, id)));
        id
    }

    /// The id of `s` when it was interned.
    pub fn get(&self, s: &str) -> Option<Sym> {
        self.ids
            .find(hash(s), |&id| span(&self.text, &self.ends, id) == s)
            .copied()
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
