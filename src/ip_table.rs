//! The identity stage's address table: IP address → [`Entry`], open
//! addressing with linear probing over 32-byte slots, at most half full,
//! deletion by backward shift (no tombstones).
//!
//! What it has over a general hash map is [`IpTable::prefetch`]: the enrich
//! stage reads a record's logon address a few records before it learns
//! from it, and with 100,000 entries spread over megabytes the probe's
//! cache line is then already on its way instead of stalling the thread
//! (on the perf workload, where every record is a logon from one of 520k
//! addresses, that stall was the largest single cost of the enrich thread).
//!
//! Addresses are keyed as 128 bits (IPv4 as `::ffff:a.b.c.d`). The
//! unspecified IPv6 address `::` is the empty-slot marker and is never
//! stored ([`IpTable::insert`] refuses it; identity never learns it).
//! Hashing is aHash, keyed per process, so senders cannot pick colliding
//! addresses.

use std::net::IpAddr;

/// What the table keeps per address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Index into the identity's name table.
    pub name: u32,
    /// Insertion sequence (wrapping), to match eviction-queue slots.
    pub seq: u32,
    /// Last logon, ns since the epoch (record receive time).
    pub seen_ns: i64,
}

#[derive(Clone, Copy)]
struct Slot {
    /// The address as two words (high, low); `[0, 0]` = empty.
    key: [u64; 2],
    entry: Entry,
}

const EMPTY: Slot = Slot {
    key: [0, 0],
    entry: Entry {
        name: 0,
        seq: 0,
        seen_ns: 0,
    },
};

/// The table's key for `ip`.
#[inline]
pub fn key(ip: IpAddr) -> [u64; 2] {
    let v = match ip {
        IpAddr::V4(a) => u128::from(a.to_ipv6_mapped()),
        IpAddr::V6(a) => u128::from(a),
    };
    [(v >> 64) as u64, v as u64]
}

/// The address a key stands for (IPv4-mapped keys as IPv4).
pub fn addr(key: [u64; 2]) -> IpAddr {
    let v = (u128::from(key[0]) << 64) | u128::from(key[1]);
    let a = std::net::Ipv6Addr::from(v);
    match a.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(a),
    }
}

pub struct IpTable {
    slots: Vec<Slot>,
    mask: usize,
    len: usize,
    hasher: ahash::RandomState,
}

impl IpTable {
    /// A table with room for `n` entries before it first grows.
    pub fn with_capacity(n: usize) -> IpTable {
        let cap = (n.max(8) * 2).next_power_of_two();
        IpTable {
            slots: vec![EMPTY; cap],
            mask: cap - 1,
            len: 0,
            hasher: ahash::RandomState::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn home(&self, key: [u64; 2]) -> usize {
        self.hasher.hash_one(key) as usize & self.mask
    }

    /// Where `key` is (Ok) or where it would go (Err, an empty slot).
    #[inline]
    fn find(&self, key: [u64; 2]) -> Result<usize, usize> {
        let mut i = self.home(key);
        loop {
            let k = self.slots[i].key;
            // Empty first: the empty-slot key itself is never found.
            if k == [0, 0] {
                return Err(i);
            }
            if k == key {
                return Ok(i);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// Starts loading the slots a probe for `key` reads first. A hint: no
    /// effect on results.
    #[inline]
    pub fn prefetch(&self, key: [u64; 2]) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
            let i = self.home(key);
            let p = self.slots.as_ptr().wrapping_add(i) as *const i8;
            // SAFETY: a prefetch never faults, whatever the address; this
            // one is inside `slots` (and the next line may be just past it).
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(p);
                _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = key;
    }

    pub fn get(&self, key: [u64; 2]) -> Option<&Entry> {
        self.find(key).ok().map(|i| &self.slots[i].entry)
    }

    pub fn get_mut(&mut self, key: [u64; 2]) -> Option<&mut Entry> {
        match self.find(key) {
            Ok(i) => Some(&mut self.slots[i].entry),
            Err(_) => None,
        }
    }

    /// Sets `key`'s entry; returns the entry it replaced, if any. The
    /// empty-slot key (`::`) is refused (returns None, stores nothing).
    pub fn insert(&mut self, key: [u64; 2], entry: Entry) -> Option<Entry> {
        if key == [0, 0] {
            return None;
        }
        match self.find(key) {
            Ok(i) => Some(std::mem::replace(&mut self.slots[i].entry, entry)),
            Err(i) => {
                self.slots[i] = Slot { key, entry };
                self.len += 1;
                if self.len * 2 > self.slots.len() {
                    self.grow();
                }
                None
            }
        }
    }

    /// Removes `key`; returns its entry.
    pub fn remove(&mut self, key: [u64; 2]) -> Option<Entry> {
        self.remove_if(key, |_| true)
    }

    /// Removes `key` if its entry passes `pred`, with one probe;
    /// returns the removed entry.
    pub fn remove_if(&mut self, key: [u64; 2], pred: impl FnOnce(&Entry) -> bool) -> Option<Entry> {
        let mut hole = self.find(key).ok()?;
        let entry = self.slots[hole].entry;
        if !pred(&entry) {
            return None;
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
        // Backward shift: pull each following slot of the run back into
        // the hole unless its home lies cyclically in (hole, j].
        let mut j = hole;
        loop {
            j = (j + 1) & self.mask;
            let k = self.slots[j].key;
            if k == [0, 0] {
                break;
            }
            let home = self.home(k);
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.slots[hole] = self.slots[j];
                self.slots[j] = EMPTY;
                hole = j;
            }
        }
        Some(entry)
    }

    fn grow(&mut self) {
        let cap = self.slots.len() * 2;
        let old = std::mem::replace(&mut self.slots, vec![EMPTY; cap]);
        self.mask = self.slots.len() - 1;
        for s in old.into_iter().filter(|s| s.key != [0, 0]) {
            let Err(i) = self.find(s.key) else {
                continue;
            };
            self.slots[i] = s;
        }
    }

    /// Every stored key with its entry (tests, compaction).
    pub fn iter(&self) -> impl Iterator<Item = ([u64; 2], &Entry)> {
        self.slots
            .iter()
            .filter(|s| s.key != [0, 0])
            .map(|s| (s.key, &s.entry))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    fn e(n: u32) -> Entry {
        Entry {
            name: n,
            seq: n,
            seen_ns: n as i64,
        }
    }

    #[test]
    fn keys_round_trip_and_ipv4_is_mapped() {
        for a in ["10.1.2.3", "0.0.0.0", "2001:db8::1", "::1"] {
            let ip: IpAddr = a.parse().unwrap();
            assert_eq!(addr(key(ip)), ip);
        }
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(key(v4), key(mapped));
        let mut t = IpTable::with_capacity(4);
        let unspecified = key("::".parse().unwrap());
        assert_eq!(t.insert(unspecified, e(1)), None);
        assert!(t.is_empty());
        // Nor is it found among empty slots once others are stored.
        t.insert(key(v4), e(2));
        assert_eq!(t.get(unspecified), None);
        assert_eq!(t.get_mut(unspecified), None);
        assert_eq!(t.remove(unspecified), None);
        assert_eq!(t.len(), 1);
    }

    proptest! {
        /// Any sequence of inserts and removes over a small key space (so
        /// that runs collide, wrap and shift) agrees with a HashMap.
        #[test]
        fn agrees_with_a_hash_map(ops in proptest::collection::vec((0u8..3, 1u64..200, any::<u32>()), 1..2000)) {
            let mut t = IpTable::with_capacity(8);
            let mut m: HashMap<[u64; 2], Entry> = HashMap::new();
            for (op, k, v) in ops {
                let key = [k % 3, k];
                match op {
                    0 => prop_assert_eq!(t.insert(key, e(v)), m.insert(key, e(v))),
                    1 => prop_assert_eq!(t.remove(key), m.remove(&key)),
                    // Removes only entries whose seq has v's low bit.
                    _ => {
                        let hit = m.get(&key).is_some_and(|x| x.seq % 2 == v % 2);
                        let want = if hit { m.remove(&key) } else { None };
                        prop_assert_eq!(t.remove_if(key, |x| x.seq % 2 == v % 2), want);
                    }
                }
                prop_assert_eq!(t.len(), m.len());
            }
            for (k, v) in &m {
                prop_assert_eq!(t.get(*k), Some(v));
            }
            prop_assert_eq!(t.iter().count(), m.len());
        }
    }
}
