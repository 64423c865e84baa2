//! RFC 3164 (BSD syslog) header and the variants real devices send.
//!
//! `TIMESTAMP SP HOSTNAME SP TAG[PID]: MSG`. Accepted variants: no
//! hostname; an RFC 3339 timestamp instead of `Mmm dd hh:mm:ss`; fractional
//! seconds; a year before the date, after the date or after the time; a
//! zone name after the time (`CST 1987`, `TZ-6`); Cisco's `*`/`.` sync
//! markers and trailing `:`; `TAG:` without PID; an IP address between
//! hostname and tag. A year-less date takes the receiver's year, with the
//! December/January turn (section 4.3.2 leaves it to the receiver).

use super::token;
use crate::record::{Record, Syntax, flaw};
use crate::time::{Timestamp, from_civil, month_from_abbrev, parse_hms, parse_rfc3339};

/// Parses what follows `<PRI>`.
pub(super) fn parse<'a>(rec: &mut Record<'a>, s: &'a [u8], local_offset_min: i16) {
    rec.syntax = Syntax::Rfc3164;
    let mut rest = s;
    if matches!(rest.first(), Some(b'*' | b'.')) {
        rest = &rest[1..];
    }
    match parse_timestamp(rest, rec.received, local_offset_min) {
        Some((ts, n)) => {
            rec.timestamp = ts;
            rest = &rest[n..];
            if rest.first() == Some(&b':') {
                rest = &rest[1..];
            }
            if rest.first() == Some(&b' ') {
                rest = &rest[1..];
            }
        }
        None => {
            rec.flaws |= flaw::BAD_TIMESTAMP;
            rest = s;
        }
    }
    parse_host_tag(rec, rest);
}

/// Hostname and TAG, then the message.
fn parse_host_tag<'a>(rec: &mut Record<'a>, s: &'a [u8]) {
    let (t1, r1) = token(s);
    if let Some((app, pid)) = split_tag(t1) {
        rec.app = app;
        rec.procid = pid;
        rec.msg = r1;
        return;
    }
    if !is_hostname(t1) {
        rec.msg = s;
        return;
    }
    rec.host = t1;
    let (t2, r2) = token(r1);
    if let Some((app, pid)) = split_tag(t2) {
        rec.app = app;
        rec.procid = pid;
        rec.msg = r2;
        return;
    }
    // An address between hostname and tag (relays and some firewalls).
    if is_ip_literal(t2) {
        let (t3, r3) = token(r2);
        if let Some((app, pid)) = split_tag(t3) {
            rec.app = app;
            rec.procid = pid;
            rec.msg = r3;
            return;
        }
    }
    rec.msg = r1;
}

/// `name:` or `name[pid]:` → (name, pid).
fn split_tag(t: &[u8]) -> Option<(&[u8], &[u8])> {
    let body = t.strip_suffix(b":")?;
    let (name, pid) = match body.strip_suffix(b"]") {
        Some(b) => {
            let lb = memchr::memrchr(b'[', b)?;
            (&b[..lb], &b[lb + 1..])
        }
        None => (body, &b""[..]),
    };
    if name.is_empty() || name.len() > 48 {
        return None;
    }
    if !name
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b'%' | b'@'))
    {
        return None;
    }
    if pid.len() > 32 || pid.iter().any(|&b| matches!(b, b'[' | b']' | b' ')) {
        return None;
    }
    Some((name, pid))
}

fn is_hostname(t: &[u8]) -> bool {
    !t.is_empty()
        && t.len() <= 255
        && t.iter()
            .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
        && !t.ends_with(b":")
}

fn is_ip_literal(t: &[u8]) -> bool {
    std::str::from_utf8(t)
        .ok()
        .and_then(|s| s.parse::<std::net::IpAddr>().ok())
        .is_some()
}

fn year4(t: &[u8]) -> Option<i32> {
    if t.len() == 4 && t.iter().all(u8::is_ascii_digit) {
        let y = t.iter().fold(0i32, |a, &b| a * 10 + (b - b'0') as i32);
        if (1970..=9999).contains(&y) {
            return Some(y);
        }
    }
    None
}

/// A zone name after the time: a known abbreviation, or letters with a
/// signed hour offset (`TZ-6`, `GMT+1`).
fn is_zone(t: &[u8]) -> bool {
    const KNOWN: [&[u8]; 16] = [
        b"UTC", b"GMT", b"Z", b"CET", b"CEST", b"EET", b"EEST", b"WET", b"WEST", b"EST", b"EDT",
        b"CST", b"CDT", b"MST", b"MDT", b"PST",
    ];
    if KNOWN.contains(&t) || t == b"PDT" {
        return true;
    }
    let letters = t.iter().take_while(|b| b.is_ascii_uppercase()).count();
    if letters == 0 || letters == t.len() {
        return false;
    }
    let r = &t[letters..];
    matches!(r[0], b'+' | b'-')
        && r.len() >= 2
        && r[1..].iter().all(|&b| b.is_ascii_digit() || b == b':')
}

/// The timestamp and the bytes it took (without the following space).
fn parse_timestamp(s: &[u8], received: Timestamp, local_off: i16) -> Option<(Timestamp, usize)> {
    // ISO 8601 / RFC 3339 in a 3164 frame.
    if s.len() >= 19 && s[4] == b'-' && s[..4].iter().all(u8::is_ascii_digit) {
        return parse_rfc3339(s, local_off);
    }
    let mut i = 0;
    let mut year = None;
    // "1990 Oct 22 10:52:01"
    if s.len() > 5
        && s[4] == b' '
        && let Some(y) = year4(&s[..4])
    {
        year = Some(y);
        i = 5;
    }
    let month = month_from_abbrev(s.get(i..i + 3)?)?;
    i += 3;
    if s.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    if s.get(i) == Some(&b' ') {
        i += 1; // day padded with a space
    }
    let d0 = i;
    while i < s.len() && s[i].is_ascii_digit() && i - d0 < 2 {
        i += 1;
    }
    let day: u32 = std::str::from_utf8(&s[d0..i]).ok()?.parse().ok()?;
    if s.get(i) != Some(&b' ') {
        return None;
    }
    i += 1;
    // "Oct 22 2026 10:52:01"
    if year.is_none()
        && s.len() > i + 5
        && s[i + 4] == b' '
        && let Some(y) = year4(&s[i..i + 4])
    {
        year = Some(y);
        i += 5;
    }
    let (sod, nanos, fd, n) = parse_hms(&s[i..])?;
    i += n;
    let mut end = i;
    // Optional zone name and/or year after the time ("CST 1987", "2026").
    let mut j = i;
    if s.get(j) == Some(&b' ') {
        let (t, _) = token(&s[j + 1..]);
        if is_zone(t) {
            j += 1 + t.len();
            end = j;
        }
    }
    if year.is_none() && s.get(j) == Some(&b' ') {
        let (t, r) = token(&s[j + 1..]);
        if let Some(y) = year4(t)
            && !r.is_empty()
        {
            year = Some(y);
            end = j + 1 + t.len();
        }
    }
    let year = match year {
        Some(y) => y,
        None => {
            let now = Timestamp {
                offset_min: local_off,
                ..received
            }
            .civil();
            match (month, now.month) {
                (12, 1) => now.year - 1, // Dec 31 arriving on Jan 1
                (1, 12) => now.year + 1, // a sender's clock a little ahead
                _ => now.year,
            }
        }
    };
    let ts = from_civil(year, month, day, sod, nanos, fd, local_off)?;
    Some((ts, end))
}
