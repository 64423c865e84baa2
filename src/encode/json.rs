//! JSON output: string escaping and the record JSON shape.
//!
//! `{"meta":{received, timestamp, src_ip, input, facility, severity, host,
//! app, procid, msgid, class[, flaws]},"msg":{...fields in arrival order}}`.
//! Every msg value is a JSON string. Invalid UTF-8 in a value becomes
//! U+FFFD. Writes into a caller's reusable buffer; never allocates.

use std::net::IpAddr;

use super::Names;
use crate::record::{FACILITY_NAMES, Record, SEVERITY_NAMES, flaw};

/// Bytes that must be escaped inside a JSON string (RFC 8259 section 7).
static ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a quoted JSON string.
pub fn write_json_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    write_json_str_body(out, s);
    out.push(b'"');
}

/// Appends `s` escaped for a JSON string, without quotes. Strings of up
/// to 32 bytes that need nothing (most names and values) are checked with
/// at most two overlapping loads and copied inline; others go through
/// [`write_json_str_body_general`].
#[inline(always)]
pub fn write_json_str_body(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() < 8 {
        if write_short_plain(out, s) {
            return;
        }
    } else if s.len() <= 32 && is_plain_8_to_32(s) {
        out.reserve(s.len());
        let len = out.len();
        // SAFETY: `reserve` made room for `s.len()` bytes after `len`,
        // which `copy_short` writes and `set_len` then counts.
        unsafe {
            copy_short(out.as_mut_ptr().add(len), s);
            out.set_len(len + s.len());
        }
        return;
    }
    write_json_str_body_general(out, s);
}

/// Whether `s` (8 to 32 bytes) holds no byte JSON output must escape or
/// check (control, `"`, `\\`, non-ASCII): two overlapping loads.
#[inline(always)]
fn is_plain_8_to_32(s: &[u8]) -> bool {
    let n = s.len();
    debug_assert!((8..=32).contains(&n));
    #[cfg(target_arch = "x86_64")]
    if n >= 16 {
        return attention16(&s[..16]) | attention16(&s[n - 16..]) == 0;
    }
    let w = |i: usize| u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
    match n {
        8..=16 => attention(w(0)) | attention(w(n - 8)) == 0,
        _ => {
            s.chunks_exact(8)
                .all(|c| attention(u64::from_le_bytes(c.try_into().expect("8 bytes"))) == 0)
                && attention(w(n - 8)) == 0
        }
    }
}

/// [`write_json_str_body`] for any string: runs of bytes that need
/// nothing are found sixteen (or eight) at a time and copied whole;
/// invalid UTF-8 sequences become U+FFFD (one per bad byte, as
/// `from_utf8_lossy` does for maximal subparts).
#[inline(never)]
pub fn write_json_str_body_general(out: &mut Vec<u8>, s: &[u8]) {
    let mut start = 0; // first byte not yet copied
    let mut i = 0;
    let n = s.len();
    while i < n {
        #[cfg(target_arch = "x86_64")]
        {
            if i + 16 <= n {
                let m = attention16(&s[i..i + 16]);
                if m == 0 {
                    i += 16;
                    continue;
                }
                i += m.trailing_zeros() as usize;
            } else if n >= 16 {
                // The tail: the last 16 bytes, overlapping checked ones
                // (whose flags, below `i`, are shifted out).
                let m = attention16(&s[n - 16..]) >> (i + 16 - n);
                if m == 0 {
                    i = n;
                    continue;
                }
                i += m.trailing_zeros() as usize;
            } else if i + 8 <= n {
                // Two overlapping words cover the rest.
                let m1 = attention(u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes")));
                if m1 != 0 {
                    i += (m1.trailing_zeros() / 8) as usize;
                } else {
                    let m2 =
                        attention(u64::from_le_bytes(s[n - 8..n].try_into().expect("8 bytes")));
                    if m2 == 0 {
                        i = n;
                        continue;
                    }
                    i = n - 8 + (m2.trailing_zeros() / 8) as usize;
                }
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        if i + 8 <= n {
            let w = u64::from_le_bytes(s[i..i + 8].try_into().expect("8 bytes"));
            let m = attention(w);
            if m == 0 {
                i += 8;
                continue;
            }
            i += (m.trailing_zeros() / 8) as usize;
        }
        let b = s[i];
        if b < 0x80 {
            if ESCAPE[b as usize] {
                push_bytes(out, &s[start..i]);
                write_escape(out, b);
                start = i + 1;
            }
            i += 1;
        } else {
            match utf8_len(&s[i..]) {
                Ok(w) => i += w,
                Err(bad) => {
                    out.extend_from_slice(&s[start..i]);
                    out.extend_from_slice("\u{FFFD}".as_bytes());
                    i += bad;
                    start = i;
                }
            }
        }
    }
    push_bytes(out, &s[start..]);
}

/// For `s` shorter than 8 bytes (small numbers, short names): when none of
/// its bytes needs escaping, appends it with one word store and returns
/// true; else appends nothing and returns false.
#[inline]
fn write_short_plain(out: &mut Vec<u8>, s: &[u8]) -> bool {
    let n = s.len();
    let w = match n {
        0 => return true,
        1..=3 => {
            (s[0] as u64)
                | ((s[n / 2] as u64) << (8 * (n / 2)))
                | ((s[n - 1] as u64) << (8 * (n - 1)))
        }
        _ => {
            let a = u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as u64;
            let b = u32::from_le_bytes([s[n - 4], s[n - 3], s[n - 2], s[n - 1]]) as u64;
            a | (b << (8 * (n - 4)))
        }
    };
    // The bytes above `n` are zero, which `attention` flags; flags only
    // propagate upwards, so the bytes below `n` are judged exactly.
    if attention(w) & (u64::MAX >> (64 - 8 * n)) != 0 {
        return false;
    }
    out.reserve(8);
    let len = out.len();
    // SAFETY: `reserve(8)` made room for 8 more bytes after `len`; the
    // first `n` written are `s`, and only they are counted as initialised.
    unsafe {
        std::ptr::write_unaligned(out.as_mut_ptr().add(len) as *mut u64, w.to_le());
        out.set_len(len + n);
    }
    true
}

/// Appends `src`; short slices are copied inline (two overlapping word
/// moves) instead of through a `memcpy` call, which dominates for the
/// many short field values of a record.
#[inline]
pub fn push_bytes(out: &mut Vec<u8>, src: &[u8]) {
    let n = src.len();
    if !(4..=16).contains(&n) {
        out.extend_from_slice(src);
        return;
    }
    out.reserve(n);
    let len = out.len();
    // SAFETY: `reserve` made room for `n` more bytes after `len`; the
    // unaligned reads stay inside `src` (n >= 4 or 8 as used) and the
    // writes inside out[len..len + n]; then `n` bytes are initialised.
    unsafe {
        let d = out.as_mut_ptr().add(len);
        let p = src.as_ptr();
        if n >= 8 {
            let a = std::ptr::read_unaligned(p as *const u64);
            let b = std::ptr::read_unaligned(p.add(n - 8) as *const u64);
            std::ptr::write_unaligned(d as *mut u64, a);
            std::ptr::write_unaligned(d.add(n - 8) as *mut u64, b);
        } else {
            let a = std::ptr::read_unaligned(p as *const u32);
            let b = std::ptr::read_unaligned(p.add(n - 4) as *const u32);
            std::ptr::write_unaligned(d as *mut u32, a);
            std::ptr::write_unaligned(d.add(n - 4) as *mut u32, b);
        }
        out.set_len(len + n);
    }
}

/// Appends `[,]"key":"value"` for a key and value that need no escaping,
/// with one capacity check for the whole field (the most common write of
/// a record: every field of a JSON message without backslashes).
#[inline]
fn put_clean_field(out: &mut Vec<u8>, comma: bool, key: &[u8], value: &[u8]) {
    let need = key.len() + value.len() + 6;
    out.reserve(need);
    let len = out.len();
    // SAFETY: `reserve` made room for `need` more bytes after `len`; what
    // is written below is at most `comma + 1 + key + 3 + value + 1 = need`
    // bytes from `len` on, every one of them before `set_len` counts it.
    unsafe {
        let mut d = out.as_mut_ptr().add(len);
        if comma {
            *d = b',';
            d = d.add(1);
        }
        *d = b'"';
        d = copy_short(d.add(1), key);
        std::ptr::write_unaligned(d as *mut [u8; 3], *b"\":\"");
        d = copy_short(d.add(3), value);
        *d = b'"';
        out.set_len(d.add(1).offset_from(out.as_ptr()) as usize);
    }
}

/// Copies `src` to `d` and returns the address just past it: up to 32
/// bytes with two overlapping loads and stores (no `memcpy` call), longer
/// ones with `copy_nonoverlapping`.
///
/// # Safety
/// `d` must be valid for `src.len()` bytes of writes and not overlap `src`.
#[inline(always)]
unsafe fn copy_short(d: *mut u8, src: &[u8]) -> *mut u8 {
    let n = src.len();
    let p = src.as_ptr();
    // SAFETY: every read lies inside `src` (each pair of loads starts at 0
    // and ends at `n`, for the sizes its arm covers); every write lies in
    // `d[..n]`, which the caller vouches for.
    unsafe {
        match n {
            0 => {}
            1..=3 => {
                *d = *p;
                *d.add(n / 2) = *p.add(n / 2);
                *d.add(n - 1) = *p.add(n - 1);
            }
            4..=7 => {
                let a = std::ptr::read_unaligned(p as *const u32);
                let b = std::ptr::read_unaligned(p.add(n - 4) as *const u32);
                std::ptr::write_unaligned(d as *mut u32, a);
                std::ptr::write_unaligned(d.add(n - 4) as *mut u32, b);
            }
            8..=16 => {
                let a = std::ptr::read_unaligned(p as *const u64);
                let b = std::ptr::read_unaligned(p.add(n - 8) as *const u64);
                std::ptr::write_unaligned(d as *mut u64, a);
                std::ptr::write_unaligned(d.add(n - 8) as *mut u64, b);
            }
            17..=32 => {
                let a = std::ptr::read_unaligned(p as *const [u8; 16]);
                let b = std::ptr::read_unaligned(p.add(n - 16) as *const [u8; 16]);
                std::ptr::write_unaligned(d as *mut [u8; 16], a);
                std::ptr::write_unaligned(d.add(n - 16) as *mut [u8; 16], b);
            }
            _ => std::ptr::copy_nonoverlapping(p, d, n),
        }
        d.add(n)
    }
}

/// A bit set for each of the 16 bytes that is a control character, `"`,
/// `\\` or non-ASCII (SSE2, which every x86_64 has).
#[cfg(target_arch = "x86_64")]
#[inline]
fn attention16(chunk: &[u8]) -> u32 {
    use std::arch::x86_64::*;
    debug_assert!(chunk.len() >= 16);
    // SAFETY: SSE2 is part of the x86_64 baseline; the load reads exactly
    // 16 bytes that `chunk` (checked above by the caller) holds.
    unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr() as *const __m128i);
        // Signed compare: bytes >= 0x80 are negative, so they count as < 0x20.
        let ctrl_or_high = _mm_cmplt_epi8(v, _mm_set1_epi8(0x20));
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let bs = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        _mm_movemask_epi8(_mm_or_si128(ctrl_or_high, _mm_or_si128(quote, bs))) as u32
    }
}

/// High bit set in each byte of `w` that is a control character, `"`,
/// `\` or non-ASCII. Exact for the lowest flagged byte (borrows only
/// propagate upwards), which is all the caller uses.
#[inline]
fn attention(w: u64) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let ctrl = w.wrapping_sub(LO * 0x20) & !w;
    let q = w ^ (LO * b'"' as u64);
    let quote = q.wrapping_sub(LO) & !q;
    let b = w ^ (LO * b'\\' as u64);
    let bs = b.wrapping_sub(LO) & !b;
    (ctrl | quote | bs | w) & HI
}

#[inline]
fn write_escape(out: &mut Vec<u8>, b: u8) {
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        _ => {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[(b >> 4) as usize]);
            out.push(HEX[(b & 15) as usize]);
        }
    }
}

/// Length of the valid UTF-8 sequence at the start of `s` (RFC 3629
/// section 4), or, when invalid, the length of its maximal valid prefix
/// (at least 1), which becomes one U+FFFD as in `String::from_utf8_lossy`.
#[inline]
fn utf8_len(s: &[u8]) -> Result<usize, usize> {
    let (width, lo, hi) = match s[0] {
        0xC2..=0xDF => (2, 0x80, 0xBF),
        0xE0 => (3, 0xA0, 0xBF),
        0xE1..=0xEC | 0xEE..=0xEF => (3, 0x80, 0xBF),
        0xED => (3, 0x80, 0x9F),
        0xF0 => (4, 0x90, 0xBF),
        0xF1..=0xF3 => (4, 0x80, 0xBF),
        0xF4 => (4, 0x80, 0x8F),
        _ => return Err(1),
    };
    for k in 1..width {
        let (l, h) = if k == 1 { (lo, hi) } else { (0x80, 0xBF) };
        match s.get(k) {
            Some(&c) if (l..=h).contains(&c) => {}
            _ => return Err(k),
        }
    }
    Ok(width)
}

/// Each octet value's decimal digits followed by a dot (padded to four
/// bytes), and how many of those bytes count.
static OCTET_DOT: [([u8; 4], u8); 256] = {
    let mut t = [([0u8; 4], 0u8); 256];
    let mut i = 0;
    while i < 256 {
        let o = i as u8;
        let (mut b, mut n) = ([0u8; 4], 0);
        if o >= 100 {
            b[n] = b'0' + o / 100;
            n += 1;
        }
        if o >= 10 {
            b[n] = b'0' + o / 10 % 10;
            n += 1;
        }
        b[n] = b'0' + o % 10;
        b[n + 1] = b'.';
        t[i] = (b, n as u8 + 2);
        i += 1;
    }
    t
};

/// Appends an IP address in its usual text form.
pub fn write_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            // Each octet's digits and a dot from a table, four bytes
            // stored whole and the length advanced by what counts; into a
            // local buffer first: one copy, no branch per digit.
            let mut buf = [0u8; 16];
            let mut n = 0;
            for o in v4.octets() {
                let (text, len) = OCTET_DOT[o as usize];
                buf[n..n + 4].copy_from_slice(&text);
                n += len as usize;
            }
            // The last dot is not part of the address.
            push_bytes(out, &buf[..n - 1]);
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

/// The host a record is shown with: its own, or the sender's address when
/// it carried none (as rsyslog's `%HOSTNAME%` falls back to `fromhost`).
pub fn write_host(out: &mut Vec<u8>, rec: &Record<'_>, json: bool) {
    if rec.host.is_empty() {
        write_ip(out, rec.src.ip());
    } else if json {
        write_json_str_body(out, rec.host);
    } else {
        out.extend_from_slice(rec.host);
    }
}

/// `,"facility":"…","severity":"…","host":"` for a PRI value, made once
/// for all 256 (a PRI above 191 has facility "unknown").
fn pri_meta(pri: u8) -> &'static [u8] {
    static TABLE: std::sync::LazyLock<Vec<Box<[u8]>>> = std::sync::LazyLock::new(|| {
        (0..=255u8)
            .map(|pri| {
                let facility = FACILITY_NAMES
                    .get((pri >> 3) as usize)
                    .unwrap_or(&"unknown");
                let severity = SEVERITY_NAMES[(pri & 7) as usize];
                format!(",\"facility\":\"{facility}\",\"severity\":\"{severity}\",\"host\":\"")
                    .into_bytes()
                    .into_boxed_slice()
            })
            .collect()
    });
    &TABLE[pri as usize]
}

/// Appends one record in the record JSON shape (no trailing newline).
pub fn write_record(out: &mut Vec<u8>, rec: &Record<'_>, names: &Names) {
    write_record_with(out, rec, names, None);
}

/// [`write_record`], copying `rec.timestamp`'s text from `out[ts]` when
/// the caller has just written it there (the v2 header), instead of
/// formatting it again.
pub fn write_record_with(
    out: &mut Vec<u8>,
    rec: &Record<'_>,
    names: &Names,
    ts: Option<std::ops::Range<usize>>,
) {
    out.extend_from_slice(b"{\"meta\":{\"received\":\"");
    rec.received.write_rfc3339(out);
    out.extend_from_slice(b"\",\"timestamp\":\"");
    match ts {
        Some(r) => out.extend_from_within(r),
        None => rec.timestamp.write_rfc3339(out),
    }
    out.extend_from_slice(b"\",\"src_ip\":\"");
    write_ip(out, rec.src.ip());
    out.extend_from_slice(b"\",\"input\":");
    push_bytes(out, names.input_json(rec.input));
    push_bytes(out, pri_meta(rec.pri));
    write_host(out, rec, true);
    out.push(b'"');
    for (name, v) in [
        (&b",\"app\":"[..], rec.app),
        (b",\"procid\":", rec.procid),
        (b",\"msgid\":", rec.msgid),
    ] {
        if !v.is_empty() {
            out.extend_from_slice(name);
            write_json_str(out, v);
        }
    }
    out.extend_from_slice(b",\"class\":");
    push_bytes(out, names.class_json(rec.class));
    if rec.flaws != 0 {
        out.extend_from_slice(b",\"flaws\":[");
        let mut first = true;
        for (bit, name) in flaw::NAMES.iter().enumerate() {
            if rec.flaws & (1 << bit) != 0 {
                if !first {
                    out.push(b',');
                }
                first = false;
                out.push(b'"');
                out.extend_from_slice(name.as_bytes());
                out.push(b'"');
            }
        }
        out.push(b']');
    }
    out.extend_from_slice(b"},\"msg\":{");
    for (i, f) in rec.fields.as_slice().iter().enumerate() {
        // Keys are normalised to `[a-z0-9_-]` (record::normalize_key), so
        // they never need escaping.
        debug_assert!(
            f.key
                .iter()
                .all(|&b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        );
        if rec.is_clean(f.value) {
            // What `Record::clean_json` promises of a value inside it.
            debug_assert!(
                std::str::from_utf8(f.value).is_ok()
                    && f.value
                        .iter()
                        .all(|&b| b >= 0x20 && b != b'"' && b != b'\\'),
                "a clean value needs escaping: {:?}",
                String::from_utf8_lossy(f.value)
            );
            put_clean_field(out, i > 0, f.key, f.value);
            continue;
        }
        if i > 0 {
            out.push(b',');
        }
        out.push(b'"');
        push_bytes(out, f.key);
        out.extend_from_slice(b"\":\"");
        write_json_str_body(out, f.value);
        out.push(b'"');
    }
    out.extend_from_slice(b"}}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facility_and_severity_are_named_for_every_pri() {
        let names = Names::new(vec!["tcp".into()], vec!["unknown".into()]);
        let now = crate::time::Timestamp::now();
        for pri in 0..=255u8 {
            let mut rec = Record::new(b"x", now, crate::record::UNSPECIFIED, 0);
            rec.pri = pri;
            rec.host = b"h1";
            let mut out = Vec::new();
            write_record(&mut out, &rec, &names);
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            let facility = FACILITY_NAMES
                .get((pri >> 3) as usize)
                .unwrap_or(&"unknown");
            assert_eq!(v["meta"]["facility"], *facility, "{pri}");
            assert_eq!(v["meta"]["severity"], SEVERITY_NAMES[(pri & 7) as usize]);
            assert_eq!(v["meta"]["host"], "h1");
        }
    }

    #[test]
    fn ipv4_addresses_are_written_as_std_writes_them() {
        for a in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.30.40",
            "255.255.255.255",
            "1.100.99.9",
            "100.10.1.0",
            "9.99.199.255",
            "::1",
            "2001:db8::7",
        ] {
            let ip: IpAddr = a.parse().unwrap();
            let mut out = Vec::new();
            write_ip(&mut out, ip);
            assert_eq!(String::from_utf8(out).unwrap(), ip.to_string());
        }
        // Every octet value in every position.
        for o in 0..=255u8 {
            let ip = IpAddr::from([o, 255 - o, o / 3, o.wrapping_mul(7)]);
            let mut out = b"x".to_vec();
            write_ip(&mut out, ip);
            assert_eq!(out, format!("x{ip}").into_bytes());
        }
    }

    fn esc(s: &[u8]) -> String {
        let mut v = Vec::new();
        write_json_str(&mut v, s);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn specials_and_controls_are_escaped() {
        assert_eq!(esc(b"a\"b\\c\nd\x01\te"), r#""a\"b\\c\nd\u0001\te""#);
        assert_eq!(esc("é€".as_bytes()), "\"é€\"");
    }

    #[test]
    fn invalid_utf8_becomes_replacement_character() {
        assert_eq!(esc(b"a\xffb\xe2\x82"), "\"a\u{FFFD}b\u{FFFD}\"");
    }

    #[test]
    fn escaping_agrees_with_serde_json_on_every_alignment() {
        let samples: [&[u8]; 5] = [
            b"plain ascii text that is long enough",
            "unicode \u{fc}\u{2192}\u{2713}\u{1d11e} with \"quotes\" and \\ slashes".as_bytes(),
            b"ctrl\x01\x1f\x7f tab\t nl\n cr\r",
            b"\xc3\x28 bad \xf0\x28\x8c\x28 \xe2\x82 tail \xed\xa0\x80",
            b"12345678\"1234567\\",
        ];
        for s in samples {
            for off in 0..s.len() {
                let part = &s[off..];
                let got: String = serde_json::from_str(&esc(part)).unwrap();
                assert_eq!(got, String::from_utf8_lossy(part), "offset {off} of {s:?}");
            }
        }
    }

    #[test]
    fn short_strings_are_escaped_whatever_byte_sits_where() {
        let specials: [&[u8]; 8] = [
            b"\"",
            b"\\",
            b"\x01",
            b"\x1f",
            b"\n",
            b"\xff",
            "\u{e9}".as_bytes(),
            b"\x7f",
        ];
        // Every length up to 48: the short, 8-32 byte and general paths,
        // and a special byte at each place of each.
        let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUV";
        for n in 0..=48 {
            let plain = &alphabet[..n];
            assert_eq!(
                esc(plain),
                format!("\"{}\"", String::from_utf8_lossy(plain))
            );
            for pos in 0..n {
                for sp in specials {
                    let mut v = plain[..pos].to_vec();
                    v.extend_from_slice(sp);
                    v.extend_from_slice(&plain[pos + 1..]);
                    let got: String = serde_json::from_str(&esc(&v)).unwrap();
                    assert_eq!(got, String::from_utf8_lossy(&v), "{v:?}");
                }
            }
        }
    }

    #[test]
    fn push_bytes_copies_every_length() {
        let src: Vec<u8> = (0..40u8).collect();
        for n in 0..=40 {
            let mut out = vec![9u8; 3];
            push_bytes(&mut out, &src[..n]);
            assert_eq!(&out[3..], &src[..n]);
            assert_eq!(out.len(), 3 + n);
        }
    }

    #[test]
    fn ipv4_and_ipv6_addresses_print_normally() {
        let mut v = Vec::new();
        write_ip(&mut v, "192.168.1.109".parse().unwrap());
        v.push(b' ');
        write_ip(&mut v, "::ffff:10.0.0.1".parse().unwrap());
        assert_eq!(v, b"192.168.1.109 ::ffff:10.0.0.1");
    }

    #[test]
    fn clean_fields_are_written_whole_at_every_key_and_value_length() {
        let text: Vec<u8> = (0..80u8).map(|i| b'a' + i % 26).collect();
        for k in 1..40 {
            for v in 0..80 {
                for comma in [false, true] {
                    let mut out = b"{".to_vec();
                    put_clean_field(&mut out, comma, &text[..k], &text[..v]);
                    let mut want = b"{".to_vec();
                    if comma {
                        want.push(b',');
                    }
                    want.extend_from_slice(
                        format!(
                            "\"{}\":\"{}\"",
                            std::str::from_utf8(&text[..k]).unwrap(),
                            std::str::from_utf8(&text[..v]).unwrap()
                        )
                        .as_bytes(),
                    );
                    assert_eq!(out, want, "k {k} v {v}");
                }
            }
        }
    }
}
