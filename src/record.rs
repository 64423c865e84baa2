//! The parsed record: header fields and an ordered list of message fields,
//! all borrowed from the batch that owns the bytes and the arena.
//!
//! Nothing here allocates on the heap: field storage comes from the batch's
//! bumpalo arena and grows by doubling inside it.

use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use bumpalo::Bump;

use crate::time::Timestamp;

/// Index into the class table (`classify::ClassTable`).
pub type ClassId = u16;

/// Built-in class ids. User-defined classes get ids after these.
pub mod class {
    use super::ClassId;
    pub const SYSLOG: ClassId = 0;
    pub const JSON: ClassId = 1;
    pub const CEF: ClassId = 2;
    pub const WINDOWS: ClassId = 3;
    pub const FLOWMON_ADS: ClassId = 4;
    pub const LINUX_AUTH: ClassId = 5;
    /// Names of the built-in classes, indexed by id.
    pub const BUILTIN: [&str; 6] = [
        "syslog",
        "json",
        "cef",
        "windows",
        "flowmon-ads",
        "linux-auth",
    ];
}

/// Why a record is marked malformed. A record may carry several.
pub mod flaw {
    /// No `<PRI>` at the start: PRI 13 and the receiver's time were used.
    pub const NO_PRI: u16 = 1 << 0;
    /// The header did not parse completely; the rest became the message.
    pub const BAD_HEADER: u16 = 1 << 1;
    /// RFC 5424 structured data was malformed.
    pub const BAD_SD: u16 = 1 << 2;
    /// The message looked like JSON but did not parse.
    pub const BAD_JSON: u16 = 1 << 3;
    /// The frame was longer than `max_message_bytes` and was cut.
    pub const TRUNCATED: u16 = 1 << 4;
    /// The timestamp was missing or unreadable; the receiver's time was used.
    pub const BAD_TIMESTAMP: u16 = 1 << 5;
    /// CEF header or extension was malformed.
    pub const BAD_CEF: u16 = 1 << 6;

    /// Names used in metrics labels and in `meta.flaws`, by bit position.
    pub const NAMES: [&str; 7] = [
        "no_pri",
        "bad_header",
        "bad_sd",
        "bad_json",
        "truncated",
        "bad_timestamp",
        "bad_cef",
    ];
}

/// Which syntax the header was read as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Syntax {
    #[default]
    None,
    Rfc5424,
    Rfc3164,
}

/// One `key = value` pair of the message. Keys are normalised
/// (`[a-z0-9_-]`), values are the bytes as received or unescaped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Field<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
}

/// The message fields of one record, in arrival order, stored in the arena.
/// Room beyond `len` is left unwritten (a record's list is sized with
/// headroom for later stages, and writing it twice cost more than the
/// parse's own stores).
#[derive(Default)]
pub struct Fields<'a> {
    /// `slots[..len]` are initialised.
    slots: &'a mut [MaybeUninit<Field<'a>>],
    len: usize,
}

impl std::fmt::Debug for Fields<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// Hints that the cache line holding `p` will be used soon. Never reads
/// through `p` (an address without provenance will do) and never faults.
#[inline(always)]
fn prefetch_line(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Uninitialised room for `cap` fields in `bump`.
///
/// Also prefetches the 512 bytes below it: the arena allocates downwards,
/// so the next record's field list will lie there. A batch's arena is
/// recycled memory gone cold (the pool hands out the batch that waited
/// longest), and the parser's stores into the list were where the input
/// workers stalled (`perf/README.md`, item 33).
// The arena hands out a distinct allocation per call (as bumpalo's own
// `alloc_*` do, from `&Bump`): the `&mut` aliases nothing.
#[allow(clippy::mut_from_ref)]
#[inline]
fn uninit_slots<'a>(bump: &'a Bump, cap: usize) -> &'a mut [MaybeUninit<Field<'a>>] {
    let slots = bump.alloc_slice_fill_with(cap, |_| MaybeUninit::uninit());
    let line = (slots.as_ptr() as usize) & !63;
    for k in 1..=8 {
        prefetch_line(std::ptr::without_provenance(line.wrapping_sub(64 * k)));
    }
    slots
}

impl<'a> Fields<'a> {
    /// Gives a later key that equals an earlier one a `_2` (`_3`, ... `_9`)
    /// suffix, so the record JSON never repeats a key (a reader would keep
    /// only one of them).
    ///
    /// Keys that differ only in case collide once lowercased: NXLog sends the
    /// System `ProcessID` and the EventData `ProcessId` in one object. A
    /// 64-bit filter of key hashes (in a register) keeps this O(n) for the
    /// usual dozen fields; only a filter hit costs an exact scan of the
    /// earlier keys.
    pub fn dedupe_keys(&mut self, bump: &'a Bump) {
        let mut filter = 0u64;
        for i in 0..self.len {
            let key = self.as_slice()[i].key;
            let bit = key_bit(key);
            if filter & bit == 0 {
                filter |= bit;
                continue;
            }
            if !self.as_slice()[..i].iter().any(|f| f.key == key) {
                continue;
            }
            for n in 2u8..=9 {
                let new = bump.alloc_slice_fill_copy(key.len() + 2, b'_');
                new[..key.len()].copy_from_slice(key);
                new[key.len() + 1] = b'0' + n;
                if self.get(new).is_none() {
                    self.as_mut_slice()[i].key = new;
                    filter |= key_bit(new);
                    break;
                }
            }
        }
    }

    /// Room for `cap` fields in `bump`.
    pub fn with_capacity(bump: &'a Bump, cap: usize) -> Fields<'a> {
        Fields {
            slots: uninit_slots(bump, cap),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    pub fn as_slice(&self) -> &[Field<'a>] {
        let init = &self.slots[..self.len];
        // SAFETY: `slots[..len]` are initialised (every push writes its
        // slot before counting it), and MaybeUninit<T> has T's layout.
        unsafe { std::slice::from_raw_parts(init.as_ptr() as *const Field<'a>, init.len()) }
    }

    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [Field<'a>] {
        let init = &mut self.slots[..self.len];
        // SAFETY: as in `as_slice`.
        unsafe { std::slice::from_raw_parts_mut(init.as_mut_ptr() as *mut Field<'a>, init.len()) }
    }

    /// Appends a field, growing inside the arena when full. Inlined: the
    /// parser pushes every field of every record, and the list was sized
    /// for them, so only the store is on that path.
    #[inline]
    pub fn push(&mut self, bump: &'a Bump, key: &'a [u8], value: &'a [u8]) {
        if self.len == self.slots.len() {
            self.grow(bump);
        }
        self.slots[self.len] = MaybeUninit::new(Field { key, value });
        self.len += 1;
    }

    /// Doubles the list's room (at least 8), inside the arena.
    #[cold]
    #[inline(never)]
    fn grow(&mut self, bump: &'a Bump) {
        let cap = (self.slots.len() * 2).max(8);
        let new = uninit_slots(bump, cap);
        new[..self.len].copy_from_slice(&self.slots[..self.len]);
        self.slots = new;
    }

    /// Makes room for `additional` more fields without further growth.
    pub fn reserve(&mut self, bump: &'a Bump, additional: usize) {
        let need = self.len + additional;
        if need > self.slots.len() {
            let new = uninit_slots(bump, need);
            new[..self.len].copy_from_slice(&self.slots[..self.len]);
            self.slots = new;
        }
    }

    /// Sets `key` to `value`: replaces the first field with that key, or
    /// appends one.
    pub fn set(&mut self, bump: &'a Bump, key: &'a [u8], value: &'a [u8]) {
        let first = key.first().copied();
        if let Some(f) = self
            .as_mut_slice()
            .iter_mut()
            .find(|f| f.key.len() == key.len() && f.key.first().copied() == first && f.key == key)
        {
            f.value = value;
        } else {
            self.push(bump, key, value);
        }
    }

    /// The value of the first field named `key`.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Option<&'a [u8]> {
        let first = *key.first()?;
        // Length and first byte rule out most keys without a memcmp call.
        self.as_slice()
            .iter()
            .find(|f| f.key.len() == key.len() && f.key[0] == first && f.key == key)
            .map(|f| f.value)
    }

    /// Moves the field named `key` (if present) to position `pos`, shifting
    /// the ones between; returns whether it was found.
    pub fn move_to(&mut self, key: &[u8], pos: usize) -> bool {
        let Some(i) = self.as_slice().iter().position(|f| f.key == key) else {
            return false;
        };
        if pos < i {
            self.as_mut_slice()[pos..=i].rotate_right(1);
        }
        true
    }

    pub fn clear(&mut self) {
        self.len = 0;
    }
}

/// One received message after parsing.
#[derive(Debug)]
pub struct Record<'a> {
    /// The frame exactly as received (without framing).
    pub raw: &'a [u8],
    /// The MSG part: after the header, BOM removed. For a message without a
    /// header, the whole frame.
    pub msg: &'a [u8],
    /// When the receiving worker read it.
    pub received: Timestamp,
    /// The time the message carries, or `received` when it has none.
    pub timestamp: Timestamp,
    /// Sender's address.
    pub src: SocketAddr,
    /// Index of the input (config order).
    pub input: u16,
    /// PRI: facility * 8 + severity.
    pub pri: u8,
    pub syntax: Syntax,
    pub host: &'a [u8],
    pub app: &'a [u8],
    pub procid: &'a [u8],
    pub msgid: &'a [u8],
    pub class: ClassId,
    /// `flaw::*` bits.
    pub flaws: u16,
    /// The message fields came from a JSON object.
    pub json: bool,
    /// Where the text of that JSON object lies (start and end address)
    /// when it holds no backslash, else `(0, 0)`: every string value
    /// simd-json takes from it is then valid UTF-8 free of `"`, `\` and
    /// control bytes (simd-json refuses raw control bytes in strings), so
    /// the JSON encoder copies a value lying inside this range as it is.
    /// The values lying in it are string values and, from the flat reader
    /// (`parse::flat`), also integers, `true` and `false` (their own
    /// digits and letters) and `null` (empty); never a span across a
    /// quote: the text between values holds quotes and may hold
    /// whitespace such as LF. The text is the frame's own
    /// bytes (parsed in place in a batch) or an arena copy. A value
    /// replaced by a later stage lies elsewhere and is escaped as usual;
    /// a stage that cuts values out of `msg` or `raw` as text (linux-auth
    /// forced by a rule) clears this first.
    pub clean_json: (usize, usize),
    pub fields: Fields<'a>,
}

/// How many records ahead of the one being worked on a stage prefetches
/// (see [`Record::prefetch`]).
pub const PREFETCH_AHEAD: usize = 4;

/// Prefetches the record [`PREFETCH_AHEAD`] after `recs[i]`, if any: what
/// a stage working through `recs` in order calls before each record.
#[inline]
pub fn prefetch_ahead(recs: &[Record<'_>], i: usize) {
    if let Some(next) = recs.get(i + PREFETCH_AHEAD) {
        next.prefetch();
    }
}

impl<'a> Record<'a> {
    /// Asks the CPU to start loading what a stage reads of this record (its
    /// field list and the text its keys and values lie in), so that a
    /// stage can overlap those loads, often from another core's cache,
    /// with its work on the record before. A hint only: no effect on
    /// results.
    #[inline]
    pub fn prefetch(&self) {
        // Up to 512 bytes (8 lines) of the field list, of the text its
        // keys and values lie in, and the frame's first two lines.
        let slots = self.fields.as_slice();
        let base = slots.as_ptr() as *const u8;
        for off in (0..std::mem::size_of_val(slots).min(512)).step_by(64) {
            prefetch_line(base.wrapping_add(off));
        }
        // The header's text fields (host, app, ...) span the frame's
        // first hundred-odd bytes.
        prefetch_line(self.raw.as_ptr());
        prefetch_line(self.raw.as_ptr().wrapping_add(64));
        let (start, end) = if self.clean_json.0 != 0 {
            self.clean_json
        } else {
            let p = self.msg.as_ptr() as usize;
            (p, p + self.msg.len())
        };
        for a in (start..end.min(start + 512)).step_by(64) {
            // A hint, never read through: an address is all it needs.
            prefetch_line(std::ptr::without_provenance(a));
        }
    }

    /// Whether `v` is a value from [`Record::clean_json`], which needs no
    /// JSON escaping.
    #[inline]
    pub fn is_clean(&self, v: &[u8]) -> bool {
        let (start, end) = self.clean_json;
        let p = v.as_ptr() as usize;
        start <= p && p.wrapping_add(v.len()) <= end && start != end
    }

    /// An empty record for `raw`, before parsing.
    pub fn new(raw: &'a [u8], received: Timestamp, src: SocketAddr, input: u16) -> Record<'a> {
        Record {
            raw,
            msg: raw,
            received,
            timestamp: received,
            src,
            input,
            pri: 13,
            syntax: Syntax::None,
            host: b"",
            app: b"",
            procid: b"",
            msgid: b"",
            class: class::SYSLOG,
            flaws: 0,
            json: false,
            clean_json: (0, 0),
            fields: Fields::default(),
        }
    }

    pub fn facility(&self) -> u8 {
        self.pri >> 3
    }

    pub fn severity(&self) -> u8 {
        self.pri & 7
    }
}

/// Placeholder address for records built outside a socket (tests, benches).
pub const UNSPECIFIED: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);

/// Facility names (RFC 5424 table 1), as rsyslog and Vector spell them.
pub const FACILITY_NAMES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

/// Severity names (RFC 5424 table 2).
pub const SEVERITY_NAMES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// Each byte's normal form in a field name: `[a-z0-9_-]` stay, A-Z are
/// lowercased, anything else becomes `_`.
static KEY_BYTE: [u8; 256] = {
    let mut t = [b'_'; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'_' {
            t[b] = c;
        } else if c.is_ascii_uppercase() {
            t[b] = c.to_ascii_lowercase();
        }
        b += 1;
    }
    t
};

/// Normalises a field name to `[a-z0-9_-]`: ASCII letters lowercased, any
/// other byte mapped to `_`. Borrows `key` when it is already normal.
#[inline]
pub fn normalize_key<'a>(bump: &'a Bump, key: &'a [u8]) -> &'a [u8] {
    match key.iter().position(|&b| KEY_BYTE[b as usize] != b) {
        None => key,
        // One pass that copies and maps (keys are short: a `memcpy` call
        // and a second pass cost more than the bytes).
        Some(_) => bump.alloc_slice_fill_with(key.len(), |i| KEY_BYTE[key[i] as usize]),
    }
}

/// Like [`normalize_key`] with a prefix joined by `_` (nested JSON objects,
/// structured data).
pub fn normalize_key_prefixed<'a>(bump: &'a Bump, prefix: &[u8], key: &[u8]) -> &'a [u8] {
    let out = bump.alloc_slice_fill_copy(
        prefix.len() + usize::from(!prefix.is_empty()) + key.len(),
        b'_',
    );
    let (p, k) = out.split_at_mut(out.len() - key.len());
    p[..prefix.len()].copy_from_slice(prefix);
    k.copy_from_slice(key);
    for b in out.iter_mut() {
        *b = KEY_BYTE[*b as usize];
    }
    out
}

/// One of 64 bits for a key, from its length and its first, second and
/// last bytes.
#[inline]
fn key_bit(k: &[u8]) -> u64 {
    let (first, last) = match k {
        [] => (0, 0),
        [a, .., b] => (*a as u32, *b as u32),
        [a] => (*a as u32, *a as u32),
    };
    let second = k.get(1).copied().unwrap_or(0) as u32;
    let h = (k.len() as u32)
        .wrapping_mul(0x9e37_79b9)
        .wrapping_add(first.wrapping_mul(31))
        .wrapping_add(second.wrapping_mul(17))
        .wrapping_add(last.wrapping_mul(7));
    1u64 << (h.wrapping_mul(0x85eb_ca6b) >> 26)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn camel_case_keys_are_lowercased_and_others_mapped() {
        let bump = Bump::new();
        assert_eq!(normalize_key(&bump, b"TargetUserName"), b"targetusername");
        assert_eq!(normalize_key(&bump, b"a.b c@d"), b"a_b_c_d");
        assert_eq!(normalize_key(&bump, b"ok_key-1"), b"ok_key-1");
        assert_eq!(
            normalize_key_prefixed(&bump, b"exampleSDID@32473", b"eventID"),
            b"examplesdid_32473_eventid"
        );
    }

    #[test]
    fn fields_grow_in_the_arena_and_keep_order() {
        let bump = Bump::new();
        let mut f = Fields::with_capacity(&bump, 1);
        for i in 0..20u8 {
            let k = bump.alloc_slice_copy(&[b'a' + i]);
            f.push(&bump, k, b"v");
        }
        assert_eq!(f.len(), 20);
        assert_eq!(f.as_slice()[19].key, b"t");
        f.set(&bump, b"c", b"new");
        assert_eq!(f.get(b"c"), Some(&b"new"[..]));
        assert!(f.move_to(b"c", 0));
        assert_eq!(f.as_slice()[0].key, b"c");
        assert_eq!(f.as_slice()[1].key, b"a");
        assert_eq!(f.as_slice()[3].key, b"d");
    }

    #[test]
    fn equal_keys_get_numbered_suffixes() {
        let bump = Bump::new();
        let mut f = Fields::with_capacity(&bump, 0);
        for (k, v) in [
            ("eventid", "4624"),
            ("processid", "640"),
            ("targetusername", "a"),
            ("processid", "0x0"),
            ("processid", "0x1"),
        ] {
            f.push(&bump, k.as_bytes(), v.as_bytes());
        }
        f.dedupe_keys(&bump);
        assert_eq!(f.get(b"processid"), Some(&b"640"[..]));
        assert_eq!(f.get(b"processid_2"), Some(&b"0x0"[..]));
        assert_eq!(f.get(b"processid_3"), Some(&b"0x1"[..]));
        assert_eq!(f.len(), 5);
    }
}
