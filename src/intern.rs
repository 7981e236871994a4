//! String interning: group ids, event names and user ids become dense `u32`s once, at
//! normalisation, so attribution, dedup and every table hash and sort integers instead
//! of strings.

use rustc_hash::FxHashMap;

/// Id of an interned string.
pub type Sym = u32;

/// Marker for "no user": events with an empty or missing user id count as events but
/// never as users.
pub const NO_USER: Sym = Sym::MAX;

/// An append-only string table.
#[derive(Default, Debug, Clone)]
pub struct Interner {
    ids: FxHashMap<Box<str>, Sym>,
    strings: Vec<Box<str>>,
}

impl Interner {
    pub fn new() -> Self {
        Self::default()
    }

    /// The id of `s`, adding it when new.
    pub fn intern(&mut self, s: &str) -> Sym {
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let id = Sym::try_from(self.strings.len()).expect("fewer than 2^32 distinct strings");
        assert!(id != NO_USER, "interner full");
        let boxed: Box<str> = s.into();
        self.strings.push(boxed.clone());
        self.ids.insert(boxed, id);
        id
    }

    /// The id of `s` when it was interned.
    pub fn get(&self, s: &str) -> Option<Sym> {
        self.ids.get(s).copied()
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
