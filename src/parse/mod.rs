//! Parse: one frame's bytes into a [`Record`].
//!
//! Receives a record holding only its raw frame and where it came from;
//! fills in PRI, timestamp, host, app, procid, msgid, structured data and
//! the message fields (a JSON MSG becomes one field per key: a flat,
//! compact object without escapes via [`flat`], any other via simd-json;
//! plain text becomes `message`). Runs on the input workers, so it never
//! allocates outside the batch arena, never fails and never drops: whatever
//! does not parse is kept as message text and marked with a `flaw`.

pub mod flat;
mod json;
mod keys;
mod rfc3164;
mod rfc5424;

use bumpalo::Bump;

use crate::record::{Fields, Record, flaw};
use crate::time::local_offset_min;

pub use json::JsonParser;
/// Readable bytes simd-json needs after a JSON document it parses in place.
pub use simd_json::INPUT_PADDING as JSON_PADDING;

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

    /// Turns the flat-object reader off or on ([`JsonParser::set_flat_scan`]).
    pub fn set_flat_scan(&mut self, on: bool) {
        self.json.set_flat_scan(on);
    }

    /// Parses `rec.raw` into `rec`. Never fails: problems set `rec.flaws`.
    /// A JSON message is copied into the arena to be parsed.
    pub fn parse<'a>(&mut self, bump: &'a Bump, rec: &mut Record<'a>) {
        self.parse_with(bump, rec, None)
    }

    /// [`Parser::parse`] for a record whose `raw` lies in `frames`: a JSON
    /// message without backslashes is parsed where it lies, not copied
    /// (simd-json then writes nothing in it), and its values borrow from
    /// the frame.
    ///
    /// # Safety
    /// `rec` must be fresh from [`Record::new`] with a `raw` that lies
    /// inside `frames`, and no reference other than `rec.raw` may be in use
    /// to any byte of `frames` from `rec.raw`'s start on (the frames of a
    /// batch, parsed in address order, with the batch's padding after the
    /// last one).
    pub unsafe fn parse_in_place<'a>(
        &mut self,
        bump: &'a Bump,
        rec: &mut Record<'a>,
        frames: &Frames<'a>,
    ) {
        self.parse_with(bump, rec, Some(frames))
    }

    fn parse_with<'a>(
        &mut self,
        bump: &'a Bump,
        rec: &mut Record<'a>,
        frames: Option<&Frames<'a>>,
    ) {
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
        let unique = self.parse_msg(bump, rec, frames);
        // Lowercased JSON keys (`User`, `user`), flattened nesting (`a_b`
        // and `{"a":{"b":…}}`) and repeated SD-PARAMs can all collide;
        // a JSON object of distinct shared names cannot.
        if rec.fields.len() > 1 && !unique {
            rec.fields.dedupe_keys(bump);
        }
    }

    /// Fills the message fields from `rec.msg`. True when they are known
    /// to have distinct names (see [`JsonParser::keys_unique`]).
    fn parse_msg<'a>(
        &mut self,
        bump: &'a Bump,
        rec: &mut Record<'a>,
        frames: Option<&Frames<'a>>,
    ) -> bool {
        if rec.msg.starts_with(BOM) {
            rec.msg = &rec.msg[BOM.len()..];
        }
        let trimmed = trim_ascii(rec.msg);
        if trimmed.first() == Some(&b'{') && trimmed.last() == Some(&b'}') {
            let clean = json::needs_no_escaping(trimmed);
            let parsed = match frames.filter(|_| clean) {
                // SAFETY: `parse_in_place`'s contract: nothing but `rec`
                // refers to the frame bytes from `rec.raw` on.
                Some(frames) => unsafe { self.parse_json_in_place(bump, rec, frames) },
                None => self.json.parse_object(bump, trimmed, &mut rec.fields),
            };
            if let Some(range) = parsed {
                rec.json = true;
                if clean {
                    rec.clean_json = range;
                }
                return self.json.keys_unique();
            }
            rec.flaws |= flaw::BAD_JSON;
        }
        if !rec.msg.is_empty() || rec.fields.is_empty() {
            rec.fields.push(bump, b"message", rec.msg);
        }
        false
    }

    /// Parses the JSON object that is `rec.msg` trimmed, where it lies in
    /// `frames` (copied when it is not inside them with padding after it,
    /// which a batch's frames always are); None when it is not an object.
    ///
    /// # Safety
    /// As [`Parser::parse_in_place`]; `rec.msg` holds no backslash.
    unsafe fn parse_json_in_place<'a>(
        &mut self,
        bump: &'a Bump,
        rec: &mut Record<'a>,
        frames: &Frames<'a>,
    ) -> Option<(usize, usize)> {
        let trimmed = trim_ascii(rec.msg);
        let len = trimmed.len();
        let (Some(at), Some(raw_at), Some(msg_at)) = (
            frames.offset_of(trimmed),
            frames.offset_of(rec.raw),
            frames.offset_of(rec.msg),
        ) else {
            return self.json.parse_object(bump, trimmed, &mut rec.fields);
        };
        if at + len + JSON_PADDING > frames.len {
            return self.json.parse_object(bump, trimmed, &mut rec.fields);
        }
        let (raw_len, msg_len) = (rec.raw.len(), rec.msg.len());
        // `rec.raw` and `rec.msg` cover the object: emptied while the
        // parser holds it, made anew after.
        rec.raw = &[];
        rec.msg = &[];
        // SAFETY: the range lies inside `frames` (checked above) and, by
        // the contract, nothing else refers to it: `trimmed` is not used
        // again, and the header's fields lie before the object. With no
        // backslash in the text, simd-json writes nothing in it; it writes
        // the byte after it (padding or a later frame) and restores it
        // before returning.
        let buf = unsafe { frames.slice_mut(at, len + JSON_PADDING) };
        let parsed = self.json.parse_padded(bump, buf, len, &mut rec.fields);
        // SAFETY: inside `frames`; the bytes are as they were received.
        unsafe {
            rec.raw = frames.slice(raw_at, raw_len);
            rec.msg = frames.slice(msg_at, msg_len);
        }
        parsed
    }
}

/// A batch's frame bytes, for [`Parser::parse_in_place`]: a base address
/// and length rather than a slice, so that the parser can borrow a part of
/// them exclusively while the records before hold shared borrows of
/// theirs.
pub struct Frames<'a> {
    base: *mut u8,
    len: usize,
    _bytes: std::marker::PhantomData<&'a mut [u8]>,
}

impl<'a> Frames<'a> {
    /// # Safety
    /// `base..base + len` must be initialised bytes that stay allocated and
    /// are written by nothing but this view's users for `'a`.
    pub unsafe fn new(base: *mut u8, len: usize) -> Frames<'a> {
        Frames {
            base,
            len,
            _bytes: std::marker::PhantomData,
        }
    }

    /// The bytes `at..at + len`, shared for `'a`.
    ///
    /// # Safety
    /// The range lies inside the view, and nothing borrows it exclusively
    /// while the slice is in use.
    pub unsafe fn slice(&self, at: usize, len: usize) -> &'a [u8] {
        assert!(at.checked_add(len).is_some_and(|end| end <= self.len));
        // SAFETY: inside the view (checked), and by the caller's and
        // `new`'s contracts.
        unsafe { std::slice::from_raw_parts(self.base.add(at), len) }
    }

    /// The bytes `at..at + len`, exclusively for `'a`.
    ///
    /// # Safety
    /// The range lies inside the view, and no other reference to any of it
    /// is used while the slice (or anything borrowed from it) is in use.
    unsafe fn slice_mut(&self, at: usize, len: usize) -> &'a mut [u8] {
        assert!(at.checked_add(len).is_some_and(|end| end <= self.len));
        // SAFETY: inside the view (checked), and by the caller's and
        // `new`'s contracts.
        unsafe { std::slice::from_raw_parts_mut(self.base.add(at), len) }
    }

    /// Where `s` starts in the view, when it lies wholly inside it.
    fn offset_of(&self, s: &[u8]) -> Option<usize> {
        let at = (s.as_ptr() as usize).checked_sub(self.base as usize)?;
        (at.checked_add(s.len())? <= self.len).then_some(at)
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
