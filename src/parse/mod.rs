//! Parse: one frame's bytes into a [`Record`].
//!
//! Receives a record holding only its raw frame and where it came from;
//! fills in PRI, timestamp, host, app, procid, msgid, structured data and
//! the message fields (a JSON MSG becomes one field per key via simd-json;
//! plain text becomes `message`). Runs on the input workers, so it never
//! allocates outside the batch arena, never fails and never drops: whatever
//! does not parse is kept as message text and marked with a `flaw`.

mod json;
mod keys;
mod rfc3164;
mod rfc5424;

use bumpalo::Bump;

use crate::record::{Fields, Record, flaw};
use crate::time::local_offset_min;

pub use json::JsonParser;

/// The UTF-8 byte order mark (RFC 5424 section 6.4).
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Per-worker parsing state: reusable simd-json buffers and the local
/// offset for RFC 3164 times.
pub struct Parser {
    json: JsonParser,
    /// UTC offset (minutes) RFC 3164 times are read in.
    pub local_offset_min: i16,
}

impl Default for Parser {
    fn default() -> Self {
        Parser::new()
    }
}

impl Parser {
    pub fn new() -> Parser {
        Parser {
            json: JsonParser::new(),
            local_offset_min: local_offset_min(),
        }
    }

    /// A parser that reads RFC 3164 times at a fixed offset (tests).
    pub fn with_offset(offset_min: i16) -> Parser {
        Parser {
            json: JsonParser::new(),
            local_offset_min: offset_min,
        }
    }

    /// Parses `rec.raw` into `rec`. Never fails: problems set `rec.flaws`.
    pub fn parse<'a>(&mut self, bump: &'a Bump, rec: &mut Record<'a>) {
        let raw = rec.raw;
        rec.fields = Fields::with_capacity(bump, 0);
        rec.clean_json = (0, 0);
        match parse_pri(raw) {
            Some((pri, n)) => {
                rec.pri = pri;
                let rest = &raw[n..];
                if rest.len() >= 2 && rest[0] == b'1' && rest[1] == b' ' {
                    rfc5424::parse(bump, rec, &rest[2..]);
                } else {
                    rfc3164::parse(rec, rest, self.local_offset_min);
                }
            }
            None => {
                // RFC 3164 section 4.3.3: no PRI means a relay treats it as
                // PRI 13 with its own time. Keep the whole frame as MSG.
                rec.flaws |= flaw::NO_PRI;
                rec.pri = 13;
                rec.msg = raw;
            }
        }
        let unique = self.parse_msg(bump, rec);
        // Lowercased JSON keys (`User`, `user`), flattened nesting (`a_b`
        // and `{"a":{"b":…}}`) and repeated SD-PARAMs can all collide;
        // a JSON object of distinct shared names cannot.
        if rec.fields.len() > 1 && !unique {
            rec.fields.dedupe_keys(bump);
        }
    }

    /// Fills the message fields from `rec.msg`. True when they are known
    /// to have distinct names (see [`JsonParser::keys_unique`]).
    fn parse_msg<'a>(&mut self, bump: &'a Bump, rec: &mut Record<'a>) -> bool {
        let mut msg = rec.msg;
        if msg.starts_with(BOM) {
            msg = &msg[BOM.len()..];
            rec.msg = msg;
        }
        let trimmed = trim_ascii(msg);
        if trimmed.first() == Some(&b'{') && trimmed.last() == Some(&b'}') {
            if let Some(range) = self.json.parse_object(bump, trimmed, &mut rec.fields) {
                rec.json = true;
                if json::needs_no_escaping(trimmed) {
                    rec.clean_json = range;
                }
                return self.json.keys_unique();
            }
            rec.flaws |= flaw::BAD_JSON;
        }
        if !msg.is_empty() || rec.fields.is_empty() {
            rec.fields.push(bump, b"message", msg);
        }
        false
    }
}

/// `<PRI>` at the start: 1 to 3 digits, value 0..=191 (RFC 5424 section
/// 6.2.1). Returns the PRI and the bytes it took.
pub fn parse_pri(s: &[u8]) -> Option<(u8, usize)> {
    if s.len() < 3 || s[0] != b'<' {
        return None;
    }
    let mut v: u32 = 0;
    let mut i = 1;
    while i < s.len() && i <= 4 && s[i].is_ascii_digit() {
        v = v * 10 + (s[i] - b'0') as u32;
        i += 1;
    }
    if i == 1 || i > 4 || i >= s.len() || s[i] != b'>' || v > 191 {
        return None;
    }
    // RFC 5424: no leading zeros, except "<0>".
    if s[1] == b'0' && i > 2 {
        return None;
    }
    Some((v as u8, i + 1))
}

/// Splits off the token before the next space: (token, rest after the
/// space). The rest is empty when there is no space.
#[inline]
pub(crate) fn token(s: &[u8]) -> (&[u8], &[u8]) {
    match crate::bytes::find_byte(s, b' ') {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, &[]),
    }
}

pub(crate) fn trim_ascii(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

/// Unescapes `\"`, `\\` and `\]` (RFC 5424 section 6.3.3) into the arena;
/// other backslashes are kept as they are.
pub(crate) fn unescape_sd<'a>(bump: &'a Bump, v: &'a [u8]) -> &'a [u8] {
    if memchr::memchr(b'\\', v).is_none() {
        return v;
    }
    let out = bump.alloc_slice_fill_copy(v.len(), 0u8);
    let mut n = 0;
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'\\' && i + 1 < v.len() && matches!(v[i + 1], b'"' | b'\\' | b']') {
            out[n] = v[i + 1];
            i += 2;
        } else {
            out[n] = v[i];
            i += 1;
        }
        n += 1;
    }
    &out[..n]
}

#[cfg(test)]
mod tests;
