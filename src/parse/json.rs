//! JSON messages (agents' Windows events, Flowmon's JSON form) via simd-json.
//!
//! A flat object (every value a string, an integer, a boolean or null; no
//! backslash, no control byte) is first offered to [`super::flat::scan`],
//! which splits it without simd-json's tape; its fields are exactly what
//! the tape walk below would make of it (a property test pins that).
//! Everything else, and anything `flat` refuses, goes through simd-json.
//!
//! simd-json parses in place with reused buffers and tape, so strings
//! borrow from the text it parsed. In the pipeline an object without a
//! backslash is parsed where it lies in the batch's frame bytes, which it
//! leaves as they were ([`JsonParser::parse_padded`], via
//! [`super::Parser::parse_in_place`]); any other is first copied into the
//! arena with simd-json's padding ([`JsonParser::parse_object`]), where
//! escapes are undone in place. Each key becomes one field, in document order:
//! nested objects are flattened with `_`-joined keys, arrays are kept as
//! compact JSON text, numbers and booleans as their text, `null` as "".

use std::io::Write;

use bumpalo::Bump;
use simd_json::{Buffers, INPUT_PADDING, Node, StaticNode, Tape, fill_tape_padded};

use super::flat::{self, Member};
use super::keys::{KeyCache, NO_ID};
use crate::encode::json::write_json_str;
use crate::record::{Fields, normalize_key_prefixed};

/// Deepest object nesting flattened into fields; deeper values stay JSON text.
const MAX_FLATTEN_DEPTH: usize = 8;

/// Reusable simd-json state for one worker.
pub struct JsonParser {
    buffers: Buffers,
    tape: Vec<Node<'static>>,
    scratch: Vec<u8>,
    keys: KeyCache,
    /// Members of a flat object ([`flat::scan`]), reused.
    members: Vec<Member>,
    /// Whether flat objects are read by [`flat::scan`] (true unless a test
    /// or bench turns it off to compare with simd-json).
    flat: bool,
    /// The last object's keys are all shared names, none repeated, and
    /// it added to no earlier fields: its names are known unique.
    unique: bool,
}

impl Default for JsonParser {
    fn default() -> Self {
        JsonParser::new()
    }
}

impl JsonParser {
    pub fn new() -> JsonParser {
        JsonParser {
            buffers: Buffers::new(64 * 1024),
            tape: Vec::with_capacity(1024),
            scratch: Vec::with_capacity(1024),
            keys: KeyCache::new(),
            members: Vec::with_capacity(64),
            flat: true,
            unique: false,
        }
    }

    /// Turns the flat-object reader ([`flat::scan`]) off or on: off, every
    /// object goes through simd-json's tape. For tests and benches that
    /// compare the two.
    pub fn set_flat_scan(&mut self, on: bool) {
        self.flat = on;
    }

    /// Whether the fields the last successful [`JsonParser::parse_object`]
    /// added are all the record has and are known to have distinct names
    /// (so [`Fields::dedupe_keys`] has nothing to do). False says nothing.
    pub fn keys_unique(&self) -> bool {
        self.unique
    }

    /// Parses a JSON object and appends its fields. Returns false (adding
    /// nothing) when `text` is not a valid JSON object.
    pub fn parse_into<'a>(&mut self, bump: &'a Bump, text: &[u8], fields: &mut Fields<'a>) -> bool {
        self.parse_object(bump, text, fields).is_some()
    }

    /// [`JsonParser::parse_into`], returning where the arena copy of `text`
    /// that string values borrow from lies (start and end address; None
    /// when `text` is not an object).
    pub fn parse_object<'a>(
        &mut self,
        bump: &'a Bump,
        text: &[u8],
        fields: &mut Fields<'a>,
    ) -> Option<(usize, usize)> {
        let len = text.len();
        // The text, then simd-json's padding zeroed: each byte written once.
        let layout = std::alloc::Layout::from_size_align(len + INPUT_PADDING, 1).ok()?;
        let p = bump.alloc_layout(layout).as_ptr();
        // SAFETY: `p` points to `len + INPUT_PADDING` bytes the arena holds
        // for 'a, not aliased by anything else; all of them are initialised
        // (the text, then zeros) before the slice over them is made.
        let buf: &'a mut [u8] = unsafe {
            std::ptr::copy_nonoverlapping(text.as_ptr(), p, len);
            std::ptr::write_bytes(p.add(len), 0, INPUT_PADDING);
            std::slice::from_raw_parts_mut(p, len + INPUT_PADDING)
        };
        self.parse_padded(bump, buf, len, fields)
    }

    /// Parses the JSON object `buf[..len]` where it lies; `buf[len..]` is
    /// at least [`INPUT_PADDING`] readable bytes of any content, which
    /// simd-json reads past the document and leaves as they were. String
    /// values borrow from `buf`; simd-json unescapes a string with a
    /// backslash in place, so text the caller must keep as received is
    /// handed here only when it holds no backslash (then nothing in it is
    /// written). Returns where `buf[..len]` lies (start and end address),
    /// or None (adding nothing) when it is not a valid JSON object.
    pub fn parse_padded<'a>(
        &mut self,
        bump: &'a Bump,
        buf: &'a mut [u8],
        len: usize,
        fields: &mut Fields<'a>,
    ) -> Option<(usize, usize)> {
        let start = buf.as_ptr() as usize;
        self.unique = fields.is_empty();
        self.keys.begin();
        if self.flat && flat::scan(&buf[..len], &mut self.members) {
            // Nothing is written in a flat object: its values borrow it.
            let text: &'a [u8] = buf;
            self.push_members(bump, text, fields);
            return Some((start, start + len));
        }
        let mut tape: Tape<'a> = Tape(std::mem::take(&mut self.tape)).reset();
        let ok = match fill_tape_padded(buf, len, &mut self.buffers, &mut tape) {
            Ok(()) => match tape.0.first() {
                Some(Node::Object { len, .. }) => {
                    // Headroom for the fields later stages add (enrich
                    // rules, `src_user`), so they do not regrow the list.
                    fields.reserve(bump, *len + 4);
                    self.flatten(bump, &tape.0, b"", 0, fields);
                    true
                }
                _ => false,
            },
            Err(_) => false,
        };
        self.tape = tape.reset().0;
        ok.then_some((start, start + len))
    }

    /// Adds the members [`flat::scan`] found in `text`, as
    /// [`JsonParser::flatten`] adds a top-level object's.
    fn push_members<'a>(&mut self, bump: &'a Bump, text: &'a [u8], fields: &mut Fields<'a>) {
        fields.reserve(bump, self.members.len() + 4);
        for (place, m) in self.members.iter().enumerate() {
            let k = &text[m.key.start as usize..m.key.end as usize];
            let v = &text[m.value.start as usize..m.value.end as usize];
            let (key, id) = self.keys.normalize_at(bump, k, place);
            if self.keys.mark(id) {
                self.unique = false;
            }
            fields.push(bump, key, v);
        }
    }

    /// Walks the object at `nodes[0]`; returns how many nodes it spans.
    fn flatten<'a>(
        &mut self,
        bump: &'a Bump,
        nodes: &[Node<'a>],
        prefix: &[u8],
        depth: usize,
        fields: &mut Fields<'a>,
    ) -> usize {
        let Some(Node::Object { len, count }) = nodes.first() else {
            return 1;
        };
        let (len, count) = (*len, *count);
        let mut i = 1;
        for place in 0..len {
            let Some(Node::String(k)) = nodes.get(i) else {
                break;
            };
            i += 1;
            let (key, id) = if prefix.is_empty() {
                self.keys.normalize_at(bump, k.as_bytes(), place)
            } else {
                (normalize_key_prefixed(bump, prefix, k.as_bytes()), NO_ID)
            };
            if self.keys.mark(id) {
                self.unique = false;
            }
            let Some(v) = nodes.get(i) else { break };
            match v {
                Node::String(s) => {
                    fields.push(bump, key, s.as_bytes());
                    i += 1;
                }
                Node::Static(s) => {
                    let text = static_text(bump, s);
                    fields.push(bump, key, text);
                    i += 1;
                }
                Node::Object { count: c, .. } if depth < MAX_FLATTEN_DEPTH => {
                    self.flatten(bump, &nodes[i..], key, depth + 1, fields);
                    i += c + 1;
                }
                Node::Object { count: c, .. } | Node::Array { count: c, .. } => {
                    let span = &nodes[i..i + c + 1];
                    self.scratch.clear();
                    write_nodes(&mut self.scratch, span);
                    let text = bump.alloc_slice_copy(&self.scratch);
                    fields.push(bump, key, text);
                    i += c + 1;
                }
            }
        }
        count + 1
    }
}

/// True when the JSON object `text` (already accepted by simd-json) holds
/// no backslash. Then every string in it is its own bytes between the
/// quotes: valid UTF-8 and free of control bytes (simd-json refuses both
/// otherwise, as RFC 8259 requires; a parse test pins that) and of `"` and
/// `\\`, so there is nothing JSON output must escape.
pub fn needs_no_escaping(text: &[u8]) -> bool {
    memchr::memchr(b'\\', text).is_none()
}

fn static_text<'a>(bump: &'a Bump, s: &StaticNode) -> &'a [u8] {
    match s {
        StaticNode::I64(n) => bump.alloc_slice_copy(itoa::Buffer::new().format(*n).as_bytes()),
        StaticNode::U64(n) => bump.alloc_slice_copy(itoa::Buffer::new().format(*n).as_bytes()),
        StaticNode::F64(f) => {
            let mut buf = [0u8; 64];
            let mut cur = std::io::Cursor::new(&mut buf[..]);
            let _ = write!(cur, "{f}");
            let n = cur.position() as usize;
            bump.alloc_slice_copy(&buf[..n])
        }
        StaticNode::Bool(true) => b"true",
        StaticNode::Bool(false) => b"false",
        StaticNode::Null => b"",
    }
}

/// Writes a tape span back out as compact JSON; returns nodes consumed.
fn write_nodes(out: &mut Vec<u8>, nodes: &[Node<'_>]) -> usize {
    match nodes.first() {
        Some(Node::String(s)) => {
            write_json_str(out, s.as_bytes());
            1
        }
        Some(Node::Static(s)) => {
            match s {
                StaticNode::I64(n) => {
                    out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes())
                }
                StaticNode::U64(n) => {
                    out.extend_from_slice(itoa::Buffer::new().format(*n).as_bytes())
                }
                StaticNode::F64(f) => {
                    let _ = write!(out, "{f}");
                }
                StaticNode::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
                StaticNode::Null => out.extend_from_slice(b"null"),
            }
            1
        }
        Some(Node::Array { len, count }) => {
            out.push(b'[');
            let mut i = 1;
            for n in 0..*len {
                if n > 0 {
                    out.push(b',');
                }
                i += write_nodes(out, &nodes[i..]);
            }
            out.push(b']');
            count + 1
        }
        Some(Node::Object { len, count }) => {
            out.push(b'{');
            let mut i = 1;
            for n in 0..*len {
                if n > 0 {
                    out.push(b',');
                }
                i += write_nodes(out, &nodes[i..]);
                out.push(b':');
                i += write_nodes(out, &nodes[i..]);
            }
            out.push(b'}');
            count + 1
        }
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(text: &str) -> Option<Vec<(String, String)>> {
        let bump = Bump::new();
        let mut p = JsonParser::new();
        let mut f = Fields::with_capacity(&bump, 0);
        if !p.parse_into(&bump, text.as_bytes(), &mut f) {
            return None;
        }
        Some(
            f.as_slice()
                .iter()
                .map(|f| {
                    (
                        String::from_utf8_lossy(f.key).into_owned(),
                        String::from_utf8_lossy(f.value).into_owned(),
                    )
                })
                .collect(),
        )
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_keep_their_order_and_values_become_strings() {
        assert_eq!(
            fields(r#"{"EventID":4624,"TargetUserName":"alice","Ok":true,"N":null,"F":1.5}"#),
            Some(pairs(&[
                ("eventid", "4624"),
                ("targetusername", "alice"),
                ("ok", "true"),
                ("n", ""),
                ("f", "1.5")
            ]))
        );
    }

    #[test]
    fn nested_objects_flatten_and_arrays_stay_json() {
        assert_eq!(
            fields(r#"{"a":{"B":"x","c":{"d":1}},"arr":[1,"t\"",{"k":null}],"z":"\u00e9\n"}"#),
            Some(pairs(&[
                ("a_b", "x"),
                ("a_c_d", "1"),
                ("arr", r#"[1,"t\"",{"k":null}]"#),
                ("z", "é\n")
            ]))
        );
    }

    #[test]
    fn invalid_json_and_non_objects_are_refused() {
        assert_eq!(fields(r#"{"a":}"#), None);
        assert_eq!(fields(r#"[1,2]"#), None);
        assert_eq!(fields(r#"{"a":"b"} trailing"#), None);
    }

    #[test]
    fn parser_is_reusable_across_many_documents() {
        let bump = Bump::new();
        let mut p = JsonParser::new();
        for i in 0..1000 {
            let mut f = Fields::with_capacity(&bump, 0);
            let doc = format!(r#"{{"i":{i},"s":"{}"}}"#, "x".repeat(i % 300));
            assert!(p.parse_into(&bump, doc.as_bytes(), &mut f));
            assert_eq!(f.get(b"i").unwrap(), i.to_string().as_bytes());
        }
    }
}
