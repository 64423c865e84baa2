//! Split-block bloom filters (the layout Parquet uses): 256-bit blocks of
//! eight 32-bit words; a key picks one block with its high 32 bits and sets
//! one bit in each word with its low 32 bits. A lookup touches one cache
//! line. Built once per archive block from the distinct keys it holds.
//!
//! Keys are 64-bit xxh3 hashes of a field name and value, or of a message
//! token; the seeds are part of the on-disk format and never change.

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Bits per distinct key: about 1% false positives.
pub const BITS_PER_KEY: usize = 10;

const SALT: [u32; 8] = [
    0x47b6137b, 0x44974d91, 0x8824ad5b, 0xa2b7289d, 0x705495c7, 0x2df1424b, 0x9efc4947, 0x5c6bfb31,
];

/// The seed for a message token.
pub const TOKEN_SEED: u64 = 0x746f_6b65_6e5f_7631; // "token_v1"

/// The bloom key of field `name` having value `value`. `name` is a message
/// field's key, or `meta.host` and the like for header fields.
#[inline]
pub fn field_key(name_hash: u64, value: &[u8]) -> u64 {
    xxh3_64_with_seed(value, name_hash)
}

/// The hash of a field name, the seed of [`field_key`].
#[inline]
pub fn name_hash(name: &[u8]) -> u64 {
    xxh3_64(name)
}

/// The bloom key of a message token.
#[inline]
pub fn token_key(token: &[u8]) -> u64 {
    xxh3_64_with_seed(token, TOKEN_SEED)
}

/// Shortest token worth indexing: shorter ones are in nearly every block.
pub const MIN_TOKEN: usize = 3;

#[inline]
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

/// Calls `f` with every token of `text`: maximal runs of ASCII letters,
/// digits and non-ASCII bytes, at least [`MIN_TOKEN`] long.
#[inline]
pub fn tokens(text: &[u8], mut f: impl FnMut(&[u8])) {
    let mut start = None;
    for (i, &b) in text.iter().enumerate() {
        match (is_token_byte(b), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if i - s >= MIN_TOKEN {
                    f(&text[s..i]);
                }
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start
        && text.len() - s >= MIN_TOKEN
    {
        f(&text[s..]);
    }
}

/// The tokens of a substring query that must appear whole in any text that
/// contains the query: those with a non-token byte on both sides inside
/// the query (the first and last may be parts of longer tokens).
pub fn inner_tokens(query: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, &b) in query.iter().enumerate() {
        match (is_token_byte(b), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                if s > 0 && i - s >= MIN_TOKEN {
                    out.push(&query[s..i]);
                }
                start = None;
            }
            _ => {}
        }
    }
    out
}

#[inline]
fn mask(key: u64) -> [u32; 8] {
    let lo = key as u32;
    let mut m = [0u32; 8];
    for i in 0..8 {
        m[i] = 1u32 << (lo.wrapping_mul(SALT[i]) >> 27);
    }
    m
}

#[inline]
fn block_of(key: u64, nblocks: usize) -> usize {
    (((key >> 32) * nblocks as u64) >> 32) as usize
}

/// The number of 32-byte blocks for `n` distinct keys.
pub fn blocks_for(n: usize) -> usize {
    (n * BITS_PER_KEY).div_ceil(256).max(1)
}

/// Writes a filter of `nblocks` blocks holding `keys` to `out`.
pub fn build(out: &mut Vec<u8>, nblocks: usize, keys: impl Iterator<Item = u64>) {
    let start = out.len();
    out.resize(start + nblocks * 32, 0);
    let bits = &mut out[start..];
    for k in keys {
        let b = block_of(k, nblocks) * 32;
        let m = mask(k);
        for (i, w) in m.iter().enumerate() {
            let at = b + i * 4;
            let old = u32::from_le_bytes(bits[at..at + 4].try_into().expect("4 bytes"));
            bits[at..at + 4].copy_from_slice(&(old | w).to_le_bytes());
        }
    }
}

/// Whether the filter `bits` (a whole number of 32-byte blocks) may hold
/// `key`. False means surely not.
#[inline]
pub fn may_contain(bits: &[u8], key: u64) -> bool {
    let nblocks = bits.len() / 32;
    if nblocks == 0 {
        return true;
    }
    let b = block_of(key, nblocks) * 32;
    let m = mask(key);
    m.iter().enumerate().all(|(i, w)| {
        let at = b + i * 4;
        let word = u32::from_le_bytes(bits[at..at + 4].try_into().expect("4 bytes"));
        word & w == *w
    })
}

/// A set of distinct 64-bit keys, reused from block to block (open
/// addressing; 0 stands for empty, so key 0 is stored as 1).
pub struct KeySet {
    slots: Vec<u64>,
    len: usize,
}

impl Default for KeySet {
    fn default() -> Self {
        KeySet {
            slots: vec![0; 1 << 14],
            len: 0,
        }
    }
}

impl KeySet {
    #[inline]
    pub fn insert(&mut self, key: u64) {
        let key = key.max(1);
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 20) as usize & mask;
        loop {
            let s = self.slots[i];
            if s == key {
                return;
            }
            if s == 0 {
                self.slots[i] = key;
                self.len += 1;
                return;
            }
            i = (i + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let cap = (self.slots.len() * 2).max(16);
        let old = std::mem::replace(&mut self.slots, vec![0; cap]);
        self.len = 0;
        for k in old.into_iter().filter(|&k| k != 0) {
            self.insert(k);
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots.iter().copied().filter(|&k| k != 0)
    }

    /// Empties the set, keeping its memory.
    pub fn clear(&mut self) {
        if self.len > 0 {
            self.slots.fill(0);
            self.len = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserted_keys_are_always_found_and_others_rarely() {
        let mut set = KeySet::default();
        for i in 0..5000u64 {
            set.insert(field_key(name_hash(b"user"), format!("u{i}").as_bytes()));
        }
        let mut bits = Vec::new();
        build(&mut bits, blocks_for(set.len()), set.iter());
        for i in 0..5000u64 {
            assert!(may_contain(
                &bits,
                field_key(name_hash(b"user"), format!("u{i}").as_bytes())
            ));
        }
        let fp = (5000..105_000u64)
            .filter(|i| {
                may_contain(
                    &bits,
                    field_key(name_hash(b"user"), format!("u{i}").as_bytes()),
                )
            })
            .count();
        assert!(fp < 3000, "{fp} false positives in 100000");
    }

    #[test]
    fn the_same_value_under_another_field_is_another_key() {
        assert_ne!(
            field_key(name_hash(b"a"), b"x"),
            field_key(name_hash(b"b"), b"x")
        );
    }

    #[test]
    fn tokens_are_runs_of_letters_and_digits_of_three_or_more() {
        let mut got = Vec::new();
        tokens(b"'su root' failed for lonvick on /dev/pts/8", |t| {
            got.push(String::from_utf8_lossy(t).into_owned())
        });
        assert_eq!(
            got,
            ["root", "failed", "for", "lonvick", "dev", "pts"].map(String::from)
        );
    }

    #[test]
    fn only_tokens_closed_on_both_sides_of_a_query_are_required() {
        assert_eq!(
            inner_tokens(b"iled for lonvick on"),
            vec![&b"for"[..], b"lonvick"]
        );
        assert!(inner_tokens(b"lonvick").is_empty());
    }

    #[test]
    fn key_set_deduplicates_and_clears() {
        let mut s = KeySet::default();
        for i in 0..100_000u64 {
            s.insert(i % 777);
        }
        assert_eq!(s.len(), 776, "0 and 1 are one key");
        s.clear();
        assert!(s.is_empty());
        s.insert(0);
        s.insert(1);
        assert_eq!(s.len(), 1);
    }
}
