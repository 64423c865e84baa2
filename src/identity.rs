//! Identity: who holds which IP address, learned from Windows logons.
//!
//! Learns from `windows` records with event id 4624 (logon) or 4768
//! (Kerberos TGT): `targetusername`, `targetdomainname`, `ipaddress`.
//! IPv4-mapped addresses are normalised; machine accounts (`…$`),
//! `ANONYMOUS LOGON`, and `-`/loopback/unspecified addresses teach nothing.
//! Adds `src_user` (`DOMAIN\user`) to any record whose `src_ip` it knows.
//!
//! The table is owned by the enrich thread, which both learns and reads,
//! so no lock is taken per record; its size is published through an atomic
//! for metrics. Entries live `ttl` after their last logon (an expired
//! entry is never used, and is removed at the next logon); at
//! `max_entries` the least recently seen is evicted. Entries are 24 bytes:
//! the name is an index into a table of distinct names (counted, freed
//! with its last holder), so the address table stays small enough to stay
//! in cache. Both tables start with room for 1024 entries (or
//! `max_entries`, if fewer) and allocate only when they outgrow it.
//! A record whose `src_ip` is not in the table costs one field lookup and
//! one address parse (nothing while the table is empty).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bumpalo::Bump;
use hashbrown::HashTable;

use crate::config::IdentityConfig;
use crate::ip_table::{Entry, IpTable, key};
use crate::net::parse_ip;
use crate::record::{Fields, PREFETCH_AHEAD, Record, class};

/// Longest `DOMAIN\user` kept.
const MAX_NAME: usize = 128;

/// Distinct `DOMAIN\user` names, each counted by the entries holding it.
/// Few users hold many addresses, so this stays small; it never holds
/// more names than the address table holds entries. Names are stored
/// inline in preallocated slots, so learning a new user allocates nothing
/// until the table outgrows its first capacity (as the address table).
struct NameTable {
    /// Ids, found by the hash of their slot's name.
    ids: HashTable<u32>,
    hasher: ahash::RandomState,
    /// By id; `refs` 0 = a free slot.
    slots: Vec<NameSlot>,
    free: Vec<u32>,
}

struct NameSlot {
    name: [u8; MAX_NAME],
    len: u8,
    /// How many entries hold this name.
    refs: u32,
}

impl NameSlot {
    fn name(&self) -> &[u8] {
        &self.name[..self.len as usize]
    }
}

impl NameTable {
    fn with_capacity(n: usize) -> NameTable {
        NameTable {
            ids: HashTable::with_capacity(n),
            hasher: ahash::RandomState::new(),
            slots: Vec::with_capacity(n),
            free: Vec::with_capacity(n),
        }
    }

    /// The id of `name` (at most [`MAX_NAME`] bytes), added (unheld) if new.
    fn id(&mut self, name: &[u8]) -> u32 {
        let hash = self.hasher.hash_one(name);
        let slots = &self.slots;
        if let Some(&id) = self.ids.find(hash, |&id| slots[id as usize].name() == name) {
            return id;
        }
        let mut slot = NameSlot {
            name: [0; MAX_NAME],
            len: name.len() as u8,
            refs: 0,
        };
        slot.name[..name.len()].copy_from_slice(name);
        let id = match self.free.pop() {
            Some(id) => {
                self.slots[id as usize] = slot;
                id
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.ids
            .insert_unique(hash, id, |&id| hasher.hash_one(slots[id as usize].name()));
        id
    }

    fn hold(&mut self, id: u32) {
        self.slots[id as usize].refs += 1;
    }

    /// Drops one hold; the name goes with its last holder.
    fn release(&mut self, id: u32) {
        let slot = &mut self.slots[id as usize];
        slot.refs = slot.refs.saturating_sub(1);
        if slot.refs == 0 {
            let hash = self.hasher.hash_one(slot.name());
            if let Ok(e) = self.ids.find_entry(hash, |&i| i == id) {
                e.remove();
            }
            self.free.push(id);
        }
    }

    fn get(&self, id: u32) -> &[u8] {
        self.slots[id as usize].name()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.ids.len()
    }
}

/// Counters the metrics endpoint reads.
#[derive(Default)]
pub struct IdentityStats {
    pub entries: AtomicU64,
    pub learned: AtomicU64,
    pub evicted: AtomicU64,
    /// Entries removed because `ttl` passed since their last logon.
    pub expired: AtomicU64,
    pub enriched: AtomicU64,
}

/// Adds one to a counter of the table's. Only the table's owner (the
/// enrich stage's thread) writes its counters, so a load and a store do
/// what an atomic add would, without its locked instruction on every
/// record; scrapes only read.
#[inline]
fn count(c: &AtomicU64) {
    c.store(c.load(Ordering::Relaxed).wrapping_add(1), Ordering::Relaxed);
}

impl IdentityStats {
    /// Appends the counters `metrics` does not render itself.
    pub fn render_extra(&self, out: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(
            out,
            "# HELP sluice_identity_expired_total Entries removed because their ttl passed.\n\
             # TYPE sluice_identity_expired_total counter\n\
             sluice_identity_expired_total {}",
            self.expired.load(Ordering::Relaxed)
        );
    }
}

/// The fields of `rec` when it is a logon identity learns from: a
/// `windows` record with event id 4624 or 4768.
fn logon<'r, 'a>(rec: &'r Record<'a>) -> Option<&'r Fields<'a>> {
    let f = &rec.fields;
    (rec.class == class::WINDOWS && matches!(f.get(b"eventid"), Some(b"4624" | b"4768")))
        .then_some(f)
}

pub struct Identity {
    /// Address → entry (see [`crate::ip_table`]).
    map: IpTable,
    names: NameTable,
    /// (address, seq) in the order logons were learned: the front is the
    /// least recently seen. Slots whose seq is no longer the entry's are
    /// stale (the address logged on again) and are skipped.
    order: VecDeque<([u64; 2], u32)>,
    /// Wrapping: entries and queue slots only compare it for equality
    /// and by distance, and stale slots leave the queue long before it
    /// wraps (it is compacted at twice `max` slots). An entry left
    /// untouched for 2^32 logons of others and then seen again may look
    /// recent and be refreshed without requeueing (so evicted early);
    /// 4 billion logons within one entry's ttl, in a table not yet full,
    /// is far from any real network.
    seq: u32,
    ttl_ns: i64,
    max: usize,
    pub stats: Arc<IdentityStats>,
}

impl Identity {
    pub fn new(cfg: &IdentityConfig) -> Identity {
        let max = cfg.max_entries.max(1);
        Identity {
            // Grown as entries arrive, not sized for `max` up front: a
            // table much larger than its entries scatters them over more
            // cache lines than they need, and each logon's probe misses.
            map: IpTable::with_capacity(max.min(1024)),
            names: NameTable::with_capacity(max.min(1024)),
            order: VecDeque::with_capacity(max.min(1 << 16)),
            seq: 0,
            ttl_ns: cfg.ttl.0.as_nanos().min(i64::MAX as u128) as i64,
            max,
            stats: Arc::new(IdentityStats::default()),
        }
    }

    /// Applies new limits (reload); a smaller table evicts its oldest.
    pub fn reconfigure(&mut self, cfg: &IdentityConfig) {
        self.ttl_ns = cfg.ttl.0.as_nanos().min(i64::MAX as u128) as i64;
        self.max = cfg.max_entries.max(1);
        while self.map.len() > self.max {
            self.evict_oldest();
        }
        self.stats
            .entries
            .store(self.map.len() as u64, Ordering::Relaxed);
    }

    /// Learns from `rec` if it is a qualifying Windows logon.
    pub fn learn(&mut self, rec: &Record<'_>) {
        let Some(f) = logon(rec) else {
            return;
        };
        let Some(user) = f.get(b"targetusername") else {
            return;
        };
        let user = user.trim_ascii();
        if user.is_empty()
            || user == b"-"
            || user.ends_with(b"$")
            || user.eq_ignore_ascii_case(b"ANONYMOUS LOGON")
        {
            return;
        }
        let Some(ip) = f.get(b"ipaddress").and_then(parse_ip) else {
            return;
        };
        if ip.is_loopback() || ip.is_unspecified() {
            return;
        }
        let domain = f
            .get(b"targetdomainname")
            .map(|d| d.trim_ascii())
            .unwrap_or(b"");
        // `DOMAIN\user`, cut at MAX_NAME bytes.
        let mut name = [0u8; MAX_NAME];
        let mut n = 0;
        if !domain.is_empty() && domain != b"-" {
            n = domain.len().min(MAX_NAME);
            name[..n].copy_from_slice(&domain[..n]);
            if n < MAX_NAME {
                name[n] = b'\\';
                n += 1;
            }
        }
        let u = user.len().min(MAX_NAME - n);
        name[n..n + u].copy_from_slice(&user[..u]);
        n += u;
        self.insert(ip, &name[..n], rec.received.unix_ns);
    }

    fn insert(&mut self, ip: IpAddr, name: &[u8], now: i64) {
        // The common case: the same user logging on again from the same
        // address. Refresh in place; requeue only entries that have grown
        // old in the eviction order.
        let requeue_after = (self.max / 2).clamp(1, u32::MAX as usize / 2) as u32;
        let id = self.names.id(name);
        let k = key(ip);
        let fresh = match self.map.get_mut(k) {
            Some(e) => {
                if e.name == id {
                    e.seen_ns = now;
                    count(&self.stats.learned);
                    if self.seq.wrapping_sub(e.seq) < requeue_after {
                        return;
                    }
                } else {
                    self.names.hold(id);
                    self.names.release(e.name);
                }
                self.seq = self.seq.wrapping_add(1);
                *e = Entry {
                    name: id,
                    seen_ns: now,
                    seq: self.seq,
                };
                false
            }
            None => {
                self.seq = self.seq.wrapping_add(1);
                self.names.hold(id);
                self.map.insert(
                    k,
                    Entry {
                        name: id,
                        seen_ns: now,
                        seq: self.seq,
                    },
                );
                true
            }
        };
        self.order.push_back((k, self.seq));
        count(&self.stats.learned);
        self.expire(now);
        if fresh {
            while self.map.len() > self.max {
                self.evict_oldest();
            }
        }
        // The queue's front is what the next logons look at (expiry,
        // eviction): start loading the slot they will probe.
        if let Some(&(k, _)) = self.order.get(PREFETCH_AHEAD) {
            self.map.prefetch(k);
        }
        // Keep the order queue from growing with repeated logons: drop the
        // stale slots, keeping the order (amortised O(1) per logon).
        if self.order.len() > self.max * 2 {
            let map = &self.map;
            self.order
                .retain(|&(k, s)| map.get(k).is_some_and(|e| e.seq == s));
        }
        self.stats
            .entries
            .store(self.map.len() as u64, Ordering::Relaxed);
    }

    /// Removes entries whose last logon is more than `ttl` before `now`,
    /// from the front of the queue (the least recently seen).
    fn expire(&mut self, now: i64) {
        let cutoff = now.saturating_sub(self.ttl_ns);
        while let Some(&(k, s)) = self.order.front() {
            match self.map.get(k) {
                Some(e) if e.seq == s => {
                    if e.seen_ns >= cutoff {
                        return;
                    }
                    let name = e.name;
                    self.map.remove(k);
                    self.names.release(name);
                    count(&self.stats.expired);
                }
                _ => {}
            }
            self.order.pop_front();
        }
    }

    /// Evicts the least recently seen entry.
    fn evict_oldest(&mut self) {
        while let Some((k, s)) = self.order.pop_front() {
            // Queue entries of refreshed or removed addresses are stale:
            // only the one whose sequence still matches evicts.
            if let Some(e) = self.map.remove_if(k, |e| e.seq == s) {
                self.names.release(e.name);
                count(&self.stats.evicted);
                return;
            }
        }
    }

    /// Starts loading the table slot that learning from `rec` (a few
    /// records from now) will probe. A hint: no effect on results.
    pub fn prefetch(&self, rec: &Record<'_>) {
        if let Some(ip) = logon(rec)
            .and_then(|f| f.get(b"ipaddress"))
            .and_then(parse_ip)
        {
            self.map.prefetch(key(ip));
        }
    }

    /// Who held `ip` at `now_ns`, if known and not expired.
    pub fn lookup(&self, ip: IpAddr, now_ns: i64) -> Option<&[u8]> {
        let e = self.map.get(key(ip))?;
        if now_ns.saturating_sub(e.seen_ns) > self.ttl_ns {
            return None;
        }
        Some(self.names.get(e.name))
    }

    /// Adds `src_user` when `rec`'s `src_ip` is known.
    pub fn enrich<'a>(&self, bump: &'a Bump, rec: &mut Record<'a>) {
        if self.map.is_empty() {
            return;
        }
        let Some(ip) = rec.fields.get(b"src_ip").and_then(parse_ip) else {
            return;
        };
        if let Some(name) = self.lookup(ip, rec.received.unix_ns) {
            let v = bump.alloc_slice_copy(name);
            rec.fields.set(bump, b"src_user", v);
            count(&self.stats.enriched);
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::HumanDuration;
    use crate::record::{Fields, UNSPECIFIED};
    use crate::time::Timestamp;
    use std::time::Duration;

    fn rec<'a>(bump: &'a Bump, t: i64, kv: &[(&'static str, &'static str)]) -> Record<'a> {
        let mut r = Record::new(b"", Timestamp::from_unix_ns(t), UNSPECIFIED, 0);
        r.class = class::WINDOWS;
        r.fields = Fields::with_capacity(bump, 8);
        for (k, v) in kv {
            r.fields.push(bump, k.as_bytes(), v.as_bytes());
        }
        r
    }

    fn cfg(max: usize) -> IdentityConfig {
        IdentityConfig {
            enabled: true,
            ttl: HumanDuration(Duration::from_secs(60)),
            max_entries: max,
        }
    }

    #[test]
    fn logons_teach_and_machine_accounts_do_not() {
        let bump = Bump::new();
        let mut id = Identity::new(&cfg(10));
        id.learn(&rec(
            &bump,
            0,
            &[
                ("eventid", "4768"),
                ("targetusername", "alice"),
                ("targetdomainname", "CORP"),
                ("ipaddress", "::ffff:192.168.1.109"),
            ],
        ));
        id.learn(&rec(
            &bump,
            0,
            &[
                ("eventid", "4624"),
                ("targetusername", "WS01$"),
                ("ipaddress", "10.0.0.2"),
            ],
        ));
        id.learn(&rec(
            &bump,
            0,
            &[
                ("eventid", "4624"),
                ("targetusername", "ANONYMOUS LOGON"),
                ("ipaddress", "10.0.0.3"),
            ],
        ));
        id.learn(&rec(
            &bump,
            0,
            &[
                ("eventid", "4624"),
                ("targetusername", "bob"),
                ("ipaddress", "127.0.0.1"),
            ],
        ));
        id.learn(&rec(
            &bump,
            0,
            &[
                ("eventid", "4625"),
                ("targetusername", "eve"),
                ("ipaddress", "10.0.0.4"),
            ],
        ));
        assert_eq!(id.len(), 1);
        assert_eq!(
            id.lookup("192.168.1.109".parse().unwrap(), 1),
            Some(&b"CORP\\alice"[..])
        );
        assert_eq!(
            id.lookup("192.168.1.109".parse().unwrap(), 61_000_000_000),
            None
        );
    }

    #[test]
    fn an_address_parsed_ahead_is_not_taken_for_another_batch_s_text() {
        // A recycled arena puts the next batch's text where the last one's
        // was: what prefetch kept for one batch must not be used for it.
        let mut id = Identity::new(&cfg(16));
        let mut bump = Bump::new();
        let first_at = {
            let v = bump.alloc_slice_copy(b"10.0.0.1");
            let mut r = rec(
                &bump,
                1,
                &[("eventid", "4624"), ("targetusername", "alice")],
            );
            r.fields.push(&bump, b"ipaddress", v);
            id.prefetch(&r);
            v.as_ptr()
        };
        bump.reset();
        let v = bump.alloc_slice_copy(b"10.0.0.2");
        assert_eq!(v.as_ptr(), first_at, "the arena reused the address");
        let mut r = rec(&bump, 1, &[("eventid", "4624"), ("targetusername", "bob")]);
        r.fields.push(&bump, b"ipaddress", v);
        id.learn(&r);
        assert_eq!(id.lookup("10.0.0.2".parse().unwrap(), 1), Some(&b"bob"[..]));
        assert_eq!(id.lookup("10.0.0.1".parse().unwrap(), 1), None);
    }

    #[test]
    fn table_is_bounded_and_evicts_oldest() {
        let bump = Bump::new();
        let mut id = Identity::new(&cfg(3));
        for (i, ip) in ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.0.1", "10.0.0.4"]
            .iter()
            .enumerate()
        {
            id.learn(&rec(
                &bump,
                i as i64,
                &[
                    ("eventid", "4624"),
                    ("targetusername", "u"),
                    ("ipaddress", ip),
                ],
            ));
        }
        assert_eq!(id.len(), 3);
        assert!(id.lookup("10.0.0.2".parse().unwrap(), 5).is_none());
        assert!(id.lookup("10.0.0.1".parse().unwrap(), 5).is_some());
    }

    #[test]
    fn expired_entries_are_not_used_and_go_at_the_next_logon() {
        let bump = Bump::new();
        let mut id = Identity::new(&cfg(10));
        let logon = |ip: &'static str, user: &'static str| {
            vec![
                ("eventid", "4624"),
                ("targetusername", user),
                ("ipaddress", ip),
            ]
        };
        id.learn(&rec(&bump, 0, &logon("10.0.0.1", "a")));
        id.learn(&rec(&bump, 30_000_000_000, &logon("10.0.0.2", "b")));
        assert!(
            id.lookup("10.0.0.1".parse().unwrap(), 61_000_000_000)
                .is_none()
        );
        assert_eq!(id.len(), 2);
        id.learn(&rec(&bump, 62_000_000_000, &logon("10.0.0.3", "c")));
        assert_eq!(id.len(), 2);
        assert_eq!(id.stats.expired.load(Ordering::Relaxed), 1);
        assert!(
            id.lookup("10.0.0.2".parse().unwrap(), 62_000_000_000)
                .is_some()
        );
    }

    #[test]
    fn repeated_logons_keep_the_queue_bounded_and_evict_the_least_recent() {
        let bump = Bump::new();
        let mut id = Identity::new(&cfg(2));
        let logon = |ip: &'static str| {
            vec![
                ("eventid", "4768"),
                ("targetusername", "u"),
                ("ipaddress", ip),
            ]
        };
        // 10.0.0.1 logs on again and again, so 10.0.0.2 is the least recent.
        id.learn(&rec(&bump, 0, &logon("10.0.0.2")));
        for t in 1..50 {
            id.learn(&rec(&bump, t, &logon("10.0.0.1")));
        }
        assert!(id.order.len() <= 5);
        id.learn(&rec(&bump, 60, &logon("10.0.0.3")));
        assert!(id.lookup("10.0.0.2".parse().unwrap(), 60).is_none());
        assert!(id.lookup("10.0.0.1".parse().unwrap(), 60).is_some());
        assert!(id.lookup("10.0.0.3".parse().unwrap(), 60).is_some());
    }

    #[test]
    fn names_are_shared_and_go_with_their_last_holder() {
        let bump = Bump::new();
        let mut id = Identity::new(&cfg(4));
        let logon = |ip: String, user: &'static str| {
            let ip: &'static str = Box::leak(ip.into_boxed_str());
            vec![
                ("eventid", "4624"),
                ("targetusername", user),
                ("ipaddress", ip),
            ]
        };
        for i in 0..4 {
            id.learn(&rec(&bump, i, &logon(format!("10.0.0.{i}"), "alice")));
        }
        assert_eq!(id.names.len(), 1);
        // bob takes over one address, then every address, one at a time.
        id.learn(&rec(&bump, 10, &logon("10.0.0.0".into(), "bob")));
        assert_eq!(id.names.len(), 2);
        for i in 1..4 {
            id.learn(&rec(&bump, 10 + i, &logon(format!("10.0.0.{i}"), "bob")));
        }
        assert_eq!(id.names.len(), 1, "alice held nothing any more");
        // Churn through many users and addresses: never more names than entries.
        let users = ["u1", "u2", "u3", "u4", "u5", "u6", "u7"];
        for i in 0..200 {
            id.learn(&rec(
                &bump,
                100 + i,
                &logon(format!("10.1.0.{}", i % 9), users[i as usize % 7]),
            ));
            assert!(id.names.len() <= id.len());
        }
        for ip in 0..9 {
            if let Some(n) = id.lookup(format!("10.1.0.{ip}").parse().unwrap(), 300) {
                assert!(users.iter().any(|u| u.as_bytes() == n));
            }
        }
    }

    #[test]
    fn a_record_whose_source_is_known_gets_src_user() {
        let bump = Bump::new();
        let mut id = Identity::new(&cfg(10));
        id.learn(&rec(
            &bump,
            0,
            &[
                ("eventid", "4624"),
                ("targetusername", "alice"),
                ("targetdomainname", "CORP"),
                ("ipaddress", "::ffff:192.168.1.109"),
            ],
        ));
        let mut r = rec(&bump, 1, &[("src_ip", "::ffff:192.168.1.109")]);
        r.class = class::FLOWMON_ADS;
        id.enrich(&bump, &mut r);
        assert_eq!(r.fields.get(b"src_user"), Some(&b"CORP\\alice"[..]));
        let mut r = rec(&bump, 1, &[("src_ip", "192.168.1.110")]);
        id.enrich(&bump, &mut r);
        assert_eq!(r.fields.get(b"src_user"), None);
    }
}
