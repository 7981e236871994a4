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

/// An append-only string table. Each string is stored once: the hash table holds ids and
/// compares through `strings`.
#[derive(Default, Clone)]
pub struct Interner {
    ids: HashTable<Sym>,
    strings: Vec<Box<str>>,
}

impl PartialEq for Interner {
    fn eq(&self, other: &Self) -> bool {
        self.strings == other.strings
    }
}

impl std::fmt::Debug for Interner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.strings).finish()
    }
}

fn hash(s: &str) -> u64 {
    FxBuildHasher.hash_one(s)
}

impl Interner {
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `s`, adding it when new.
    pub fn intern(&mut self, s: &str) -> Sym {
        let h = hash(s);
        let strings = &self.strings;
        if let Some(&id) = self.ids.find(h, |&id| &*strings[id as usize] == s) {
            return id;
        }
        let id = Sym::try_from(self.strings.len()).expect("fewer than 2^32 distinct strings");
        assert!(id != NO_USER, "interner full");
        self.strings.push(s.into());
        let strings = &self.strings;
        self.ids.insert_unique(h, id, |&id| hash(&strings[id as usize]));
        id
    }

    /// The id of `s` when it was interned.
    pub fn get(&self, s: &str) -> Option<Sym> {
        self.ids.find(hash(s), |&id| &*self.strings[id as usize] == s).copied()
    }

    /// The string behind `id`.
    pub fn resolve(&self, id: Sym) -> &str {
        &self.strings[id as usize]
    }

    pub fn len(&self) -> usize {
        self.strings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
}
