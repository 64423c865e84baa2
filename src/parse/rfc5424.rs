//! RFC 5424 header and structured data (section 6).
//!
//! `VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP
//! STRUCTURED-DATA [SP MSG]`; each header field `-` when absent. Structured
//! data parameters become message fields named `<sd-id>_<param>`
//! (normalised), ahead of the MSG's own fields.

use bumpalo::Bump;
use memchr::memchr2;

use super::{token, unescape_sd};
use crate::record::{Record, Syntax, flaw, normalize_key_prefixed};
use crate::time::parse_rfc3339;

/// Parses what follows `<PRI>1 `.
pub(super) fn parse<'a>(bump: &'a Bump, rec: &mut Record<'a>, s: &'a [u8]) {
    rec.syntax = Syntax::Rfc5424;
    let (ts, s) = token(s);
    if ts != b"-" {
        match parse_rfc3339(ts, 0) {
            Some((t, n)) if n == ts.len() => rec.timestamp = t,
            _ => rec.flaws |= flaw::BAD_TIMESTAMP,
        }
    }
    let mut rest = s;
    let mut fields: [&'a [u8]; 4] = [b""; 4];
    for f in fields.iter_mut() {
        if rest.is_empty() {
            rec.flaws |= flaw::BAD_HEADER;
            rec.msg = b"";
            return;
        }
        let (t, r) = token(rest);
        *f = if t == b"-" { b"" } else { t };
        rest = r;
    }
    [rec.host, rec.app, rec.procid, rec.msgid] = fields;
    if rest.is_empty() {
        // Structured data is required; a sender that stops after MSGID gets
        // the benefit of the doubt but is counted.
        rec.flaws |= flaw::BAD_HEADER;
        rec.msg = b"";
        return;
    }
    if rest[0] == b'-' {
        rec.msg = match rest.get(1) {
            None => b"",
            Some(b' ') => &rest[2..],
            Some(_) => {
                rec.flaws |= flaw::BAD_SD;
                rest
            }
        };
        return;
    }
    match parse_sd(bump, rec, rest) {
        Some(n) => {
            let after = &rest[n..];
            rec.msg = match after.first() {
                None => b"",
                Some(b' ') => &after[1..],
                Some(_) => {
                    rec.flaws |= flaw::BAD_SD;
                    after
                }
            };
        }
        None => {
            // Keep everything from the SD on as the message: nothing lost.
            rec.flaws |= flaw::BAD_SD;
            rec.msg = rest;
        }
    }
}

/// Parses one or more SD-ELEMENTs (section 6.3). Returns the bytes taken, or
/// None when malformed (fields pushed so far stay).
fn parse_sd<'a>(bump: &'a Bump, rec: &mut Record<'a>, s: &'a [u8]) -> Option<usize> {
    let mut i = 0;
    while i < s.len() && s[i] == b'[' {
        i += 1;
        let id_start = i;
        while i < s.len() && !matches!(s[i], b' ' | b']' | b'=' | b'"') {
            i += 1;
        }
        let id = &s[id_start..i];
        if id.is_empty() || i >= s.len() {
            return None;
        }
        loop {
            match s.get(i)? {
                b']' => {
                    i += 1;
                    break;
                }
                b' ' => {
                    i += 1;
                    let name_start = i;
                    while i < s.len() && !matches!(s[i], b' ' | b']' | b'=' | b'"') {
                        i += 1;
                    }
                    let name = &s[name_start..i];
                    if name.is_empty() || s.get(i) != Some(&b'=') || s.get(i + 1) != Some(&b'"') {
                        return None;
                    }
                    i += 2;
                    let v_start = i;
                    loop {
                        let j = i + memchr2(b'"', b'\\', &s[i..])?;
                        if s[j] == b'\\' {
                            i = j + 2;
                            if i > s.len() {
                                return None;
                            }
                        } else {
                            i = j;
                            break;
                        }
                    }
                    let value = unescape_sd(bump, &s[v_start..i]);
                    i += 1; // closing quote
                    let key = normalize_key_prefixed(bump, id, name);
                    rec.fields.push(bump, key, value);
                }
                _ => return None,
            }
        }
    }
    Some(i)
}
