//! Field names normalised once, not once per record.
//!
//! Agents send the same dozen JSON keys in every message. Each parser keeps
//! a cache from a key as received (`TargetUserName`) to its normal form
//! (`targetusername`, see [`normalize_key`]), which lives for the life of
//! the process in a table shared by all parsers, so records of any batch
//! may borrow it. Both are bounded: at most [`GLOBAL_MAX`] distinct names
//! of at most [`MAX_KEY`] bytes are ever kept, and a parser caches at most
//! half its [`SLOTS`]; past either bound, or for a longer key, the key is
//! normalised into the batch arena as before. So a sender inventing new
//! keys costs memory once, up to the bound, and never slows the lookup
//! (the cache hashes with a per-process key, and stops growing at half
//! full).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use bumpalo::Bump;

use crate::bytes::eq_bytes;
use crate::record::normalize_key;

/// Slots in each parser's cache (a power of two).
const SLOTS: usize = 1024;
/// Longest key cached.
pub const MAX_KEY: usize = 64;
/// Most distinct normal forms kept for the process.
pub const GLOBAL_MAX: usize = 4096;

/// Marks a key that is not one of the shared names (no id).
pub const NO_ID: u32 = u32::MAX;

/// The normal forms kept for the process, each leaked once, with its id
/// (0 to [`GLOBAL_MAX`] - 1): equal names have equal ids.
fn global() -> &'static Mutex<HashMap<&'static [u8], u32>> {
    static NAMES: OnceLock<Mutex<HashMap<&'static [u8], u32>>> = OnceLock::new();
    NAMES.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The process-lifetime copy of the normal form `norm` and its id, or
/// None when the table is full.
fn intern(norm: &[u8]) -> Option<(&'static [u8], u32)> {
    let mut names = global().lock().unwrap_or_else(|e| e.into_inner());
    if let Some((&n, &id)) = names.get_key_value(norm) {
        return Some((n, id));
    }
    if names.len() >= GLOBAL_MAX {
        return None;
    }
    let n: &'static [u8] = Box::leak(norm.to_vec().into_boxed_slice());
    let id = names.len() as u32;
    names.insert(n, id);
    Some((n, id))
}

#[derive(Clone, Copy, Default)]
struct Slot {
    /// Index into `raw` of the key as received; `len == 0` = empty.
    at: u32,
    len: u32,
    norm: &'static [u8],
    /// The shared name's id.
    id: u32,
}

/// Members whose key is remembered by place ([`KeyCache::normalize_at`]).
const MEMO: usize = 64;
/// Longest key remembered by place.
const MEMO_KEY: usize = 32;

/// The key last seen at one place in an object, and what it became.
#[derive(Clone, Copy)]
struct Memo {
    /// 0 = nothing remembered.
    len: u8,
    key: [u8; MEMO_KEY],
    norm: &'static [u8],
    id: u32,
}

impl Default for Memo {
    fn default() -> Self {
        Memo {
            len: 0,
            key: [0; MEMO_KEY],
            norm: b"",
            id: NO_ID,
        }
    }
}

/// One parser's cache: key as received → normal form.
pub struct KeyCache {
    slots: Box<[Slot]>,
    /// The keys as received, back to back.
    raw: Vec<u8>,
    used: usize,
    /// Per-cache hash key.
    seed: [u64; 2],
    /// The shared table was full when last tried: stop trying.
    global_full: bool,
    /// Ids seen in the current record ([`KeyCache::begin`], [`KeyCache::mark`]).
    seen: Box<[u64; GLOBAL_MAX / 64]>,
    /// Which words of `seen` are not zero (a record's ids usually share
    /// one or two), so that a new record clears those, not all 512 bytes.
    touched: Vec<u16>,
    /// By place in the object: the key last found there (a sender writes
    /// its keys in the same order every time).
    memo: Box<[Memo; MEMO]>,
}

impl Default for KeyCache {
    fn default() -> Self {
        KeyCache::new()
    }
}

impl KeyCache {
    pub fn new() -> KeyCache {
        KeyCache {
            slots: vec![Slot::default(); SLOTS].into_boxed_slice(),
            raw: Vec::with_capacity(SLOTS / 2 * 16),
            used: 0,
            seed: {
                let r = ahash::RandomState::new();
                [r.hash_one(1u64), r.hash_one(2u64)]
            },
            global_full: false,
            seen: Box::new([0; GLOBAL_MAX / 64]),
            touched: Vec::with_capacity(GLOBAL_MAX / 64),
            memo: Box::new([Memo::default(); MEMO]),
        }
    }

    /// Forgets the ids [`KeyCache::mark`] saw: a new record starts.
    pub fn begin(&mut self) {
        for &w in &self.touched {
            self.seen[w as usize] = 0;
        }
        self.touched.clear();
    }

    /// Notes that the current record has the shared name `id`; true when
    /// it already had it (a repeated key).
    #[inline]
    pub fn mark(&mut self, id: u32) -> bool {
        let (w, b) = ((id / 64) as usize, 1u64 << (id % 64));
        match self.seen.get_mut(w) {
            Some(word) => {
                if *word == 0 {
                    // At most one entry per word: `touched` never grows
                    // past its capacity.
                    self.touched.push(w as u16);
                }
                let had = *word & b != 0;
                *word |= b;
                had
            }
            None => true,
        }
    }

    /// [`KeyCache::normalize`] for the key of the `place`th member of an
    /// object: when the key is the one last seen there, its result is
    /// taken from a small table that stays in cache, without hashing.
    /// The result is the same either way (a cached name never changes).
    #[inline]
    pub fn normalize_at<'a>(
        &mut self,
        bump: &'a Bump,
        key: &'a [u8],
        place: usize,
    ) -> (&'a [u8], u32) {
        let Some(m) = self.memo.get(place) else {
            return self.normalize(bump, key);
        };
        if m.len as usize == key.len() && eq_bytes(&m.key[..key.len()], key) {
            return (m.norm, m.id);
        }
        match self.lookup(bump, key) {
            Ok((norm, id)) => {
                if key.len() <= MEMO_KEY {
                    let mut k = [0; MEMO_KEY];
                    k[..key.len()].copy_from_slice(key);
                    self.memo[place] = Memo {
                        len: key.len() as u8,
                        key: k,
                        norm,
                        id,
                    };
                }
                (norm, id)
            }
            Err(norm) => (norm, NO_ID),
        }
    }

    /// `key` normalised, with its shared name's id: the shared copy when
    /// cached or cacheable, else a copy in `bump` (or `key` itself when it
    /// is already normal) and [`NO_ID`].
    #[inline]
    pub fn normalize<'a>(&mut self, bump: &'a Bump, key: &'a [u8]) -> (&'a [u8], u32) {
        self.lookup(bump, key).unwrap_or_else(|norm| (norm, NO_ID))
    }

    /// The shared normal form of `key` and its id, or (Err) a normal form
    /// made in `bump` (or `key` itself) when it is not cached or cacheable.
    #[inline]
    fn lookup<'a>(
        &mut self,
        bump: &'a Bump,
        key: &'a [u8],
    ) -> Result<(&'static [u8], u32), &'a [u8]> {
        if key.is_empty() || key.len() > MAX_KEY {
            return Err(normalize_key(bump, key));
        }
        let mask = SLOTS - 1;
        let mut i = self.hash(key) & mask;
        let mut free = None;
        for _ in 0..MAX_PROBE {
            let s = &self.slots[i];
            if s.len == 0 {
                free = Some(i);
                break;
            }
            if s.len as usize == key.len()
                && eq_bytes(&self.raw[s.at as usize..(s.at + s.len) as usize], key)
            {
                return Ok((s.norm, s.id));
            }
            i = (i + 1) & mask;
        }
        let norm = normalize_key(bump, key);
        let Some(i) = free else {
            return Err(norm);
        };
        if self.used * 2 >= SLOTS || self.global_full {
            return Err(norm);
        }
        let Some((shared, id)) = intern(norm) else {
            self.global_full = true;
            return Err(norm);
        };
        self.slots[i] = Slot {
            at: self.raw.len() as u32,
            len: key.len() as u32,
            norm: shared,
            id,
        };
        self.raw.extend_from_slice(key);
        self.used += 1;
        Ok((shared, id))
    }
}

/// Slots a lookup looks at before it gives up (and normalises into the
/// arena): a bound on the cost of any key, whatever keys came before.
const MAX_PROBE: usize = 8;

impl KeyCache {
    /// A multiply-shift hash of the length and the first and last eight
    /// bytes, keyed per cache: cheaper than a general hash for short keys,
    /// and keys that collide only cost probes up to [`MAX_PROBE`].
    #[inline]
    fn hash(&self, key: &[u8]) -> usize {
        let n = key.len();
        let (a, b) = if n >= 8 {
            let w = |at: usize| u64::from_le_bytes(key[at..at + 8].try_into().expect("8"));
            (w(0), w(n - 8))
        } else if n >= 4 {
            let w = |at: usize| u32::from_le_bytes(key[at..at + 4].try_into().expect("4")) as u64;
            (w(0), w(n - 4))
        } else {
            (
                key[0] as u64 | (key[n / 2] as u64) << 8 | (key[n - 1] as u64) << 16,
                0,
            )
        };
        let h = (a ^ self.seed[0]).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ (b ^ self.seed[1]).wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
            ^ n as u64;
        ((h ^ (h >> 32)).wrapping_mul(0x1656_67b1_9e37_79f9) >> 32) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_remembered_by_place_normalise_as_the_cache_does() {
        let bump = Bump::new();
        let mut c = KeyCache::new();
        let mut plain = KeyCache::new();
        let keys = [
            "TargetUserName",
            "IpAddress",
            "AuthenticationPackageName",
            "a-key-longer-than-thirty-two-bytes-here",
            "x",
            "",
            "IpAddresS",
        ];
        // The same keys in turn at every place, so places see both hits
        // and changes, including places past the table.
        for round in 0..4 {
            for place in [0, 1, 2, 5, MEMO - 1, MEMO, MEMO + 3] {
                for k in 0..keys.len() {
                    let key = keys[(k + round + place) % keys.len()].as_bytes();
                    let got = c.normalize_at(&bump, key, place);
                    let want = plain.normalize(&bump, key);
                    assert_eq!(got.0, want.0, "{key:?} at {place}");
                    assert_eq!(got.0, normalize_key(&bump, key));
                    assert_eq!(got.1 == NO_ID, want.1 == NO_ID);
                    assert_eq!(got, c.normalize(&bump, key));
                }
            }
        }
    }

    #[test]
    fn keys_normalise_as_without_the_cache_and_repeat_the_same_copy() {
        let bump = Bump::new();
        let mut c = KeyCache::new();
        for _ in 0..3 {
            for k in [
                "TargetUserName",
                "a.b c@d",
                "ok_key-1",
                "x",
                "IpAddress",
                "IpAddresS",
                "a-very-long-key-name-beyond-sixteen",
            ] {
                let want = normalize_key(&bump, k.as_bytes());
                assert_eq!(c.normalize(&bump, k.as_bytes()).0, want, "{k}");
            }
        }
        let a = c.normalize(&bump, b"TargetUserName");
        let b = c.normalize(&bump, b"TargetUserName");
        assert_eq!(a.0.as_ptr(), b.0.as_ptr());
        assert_eq!(a.1, b.1);
        // Different spellings of one name share its id.
        assert_eq!(c.normalize(&bump, b"targetUSERname").1, a.1);
        assert_ne!(c.normalize(&bump, b"IpAddress").1, a.1);
        let long = vec![b'K'; MAX_KEY + 1];
        assert_eq!(
            c.normalize(&bump, &long),
            (&vec![b'k'; MAX_KEY + 1][..], NO_ID)
        );
        c.begin();
        assert!(!c.mark(a.1));
        assert!(c.mark(a.1));
        assert!(c.mark(NO_ID));
        c.begin();
        assert!(!c.mark(a.1));
    }

    #[test]
    fn begin_forgets_every_id_marked_in_any_word() {
        let mut c = KeyCache::new();
        for round in 0..3 {
            let ids: Vec<u32> = (0..GLOBAL_MAX as u32).step_by(61 + round).collect();
            for &id in &ids {
                assert!(!c.mark(id), "round {round} id {id}");
                assert!(c.mark(id));
            }
            c.begin();
            assert!(c.seen.iter().all(|&w| w == 0));
            assert!(c.touched.is_empty());
        }
    }

    #[test]
    fn a_full_cache_still_normalises() {
        let bump = Bump::new();
        let mut c = KeyCache::new();
        for i in 0..SLOTS * 2 {
            let k = format!("Key{i}");
            let k = bump.alloc_slice_copy(k.as_bytes());
            assert_eq!(c.normalize(&bump, k).0, format!("key{i}").as_bytes());
        }
        assert!(c.used * 2 <= SLOTS);
    }
}
