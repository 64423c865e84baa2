//! Flat JSON objects read without simd-json's tape.
//!
//! Receives one JSON object's text (a record's MSG, trimmed); emits the
//! byte spans of its members, in document order, when every value is a
//! string, an integer that fits 18 digits, `true`, `false` or `null`, and
//! the text holds no backslash and no control byte (so the only
//! whitespace is the space). That is the form agents send Windows events
//! in, and most JSON on the wire. Anything else (nesting, arrays,
//! fractions and exponents, escapes, tabs or newlines, invalid UTF-8, or
//! not JSON at all) is refused, and the caller hands the text to
//! simd-json, which parses or refuses it as before.
//!
//! What a member becomes here is exactly what the tape walk makes of it
//! (`tests/properties.rs` pins that on generated objects): a string value
//! is its bytes between the quotes, an integer its own digits (JSON allows
//! no leading zeros, so they are the digits simd-json's integer prints
//! as; `-0`, which it would print as `0`, is refused), `true` and `false`
//! themselves, `null` empty.
//!
//! Why: for such an object simd-json builds a tape of nodes that the
//! parser then walks to make the same fields; the tape was about 2,000 of
//! the 4,900 instructions a record's JSON cost (`perf/README.md`, item 30).
//! Must never: accept text simd-json refuses, or read outside `text`.

/// Bytes of `text`: `text[start..end]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

/// One member of a flat object: its name and its value's text (a `null`
/// has an empty span).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Member {
    pub key: Span,
    pub value: Span,
}

/// Longest integer taken here: 18 digits always fit an `i64`.
const MAX_DIGITS: usize = 18;

/// Splits the JSON object `text` into `out` (cleared first) when it is
/// flat as the module describes; false otherwise (then `out` holds
/// nothing of use).
pub fn scan(text: &[u8], out: &mut Vec<Member>) -> bool {
    out.clear();
    if text.len() > u32::MAX as usize {
        return false;
    }
    let n = text.len();
    let at = |i: usize| text.get(i).copied().unwrap_or(0);
    let mut i = skip_spaces(text, 0);
    if at(i) != b'{' {
        return false;
    }
    i = skip_spaces(text, i + 1);
    if at(i) == b'}' {
        i += 1;
    } else {
        loop {
            if at(i) != b'"' {
                return false;
            }
            let Some(end) = string_end(text, i + 1) else {
                return false;
            };
            let key = span(i + 1, end);
            i = skip_spaces(text, end + 1);
            if at(i) != b':' {
                return false;
            }
            i = skip_spaces(text, i + 1);
            let value = match at(i) {
                b'"' => {
                    let Some(end) = string_end(text, i + 1) else {
                        return false;
                    };
                    let v = span(i + 1, end);
                    i = end + 1;
                    v
                }
                b'-' | b'0'..=b'9' => {
                    let Some(end) = integer_end(text, i) else {
                        return false;
                    };
                    let v = span(i, end);
                    i = end;
                    v
                }
                b't' if text[i..].starts_with(b"true") => {
                    i += 4;
                    span(i - 4, i)
                }
                b'f' if text[i..].starts_with(b"false") => {
                    i += 5;
                    span(i - 5, i)
                }
                b'n' if text[i..].starts_with(b"null") => {
                    i += 4;
                    span(i, i)
                }
                _ => return false,
            };
            out.push(Member { key, value });
            // A value ends at a space, a comma or the closing brace:
            // `truex`, `1.5`, `12e3` and `"a""b"` stop here.
            i = skip_spaces(text, i);
            match at(i) {
                b',' => i = skip_spaces(text, i + 1),
                b'}' => {
                    i += 1;
                    break;
                }
                _ => return false,
            }
        }
    }
    if skip_spaces(text, i) != n {
        return false;
    }
    // Outside strings every byte was checked to be ASCII; the strings'
    // bytes at or above 0x80 must make valid UTF-8, as simd-json requires.
    text.is_ascii() || std::str::from_utf8(text).is_ok()
}

#[inline]
fn span(start: usize, end: usize) -> Span {
    // `scan` refuses text longer than u32::MAX.
    Span {
        start: start as u32,
        end: end as u32,
    }
}

#[inline]
fn skip_spaces(text: &[u8], mut i: usize) -> usize {
    while text.get(i) == Some(&b' ') {
        i += 1;
    }
    i
}

/// The index of the quote that closes the string whose first byte is at
/// `i`; None when a backslash or a control byte comes first, or no quote
/// does.
#[inline]
fn string_end(text: &[u8], mut i: usize) -> Option<usize> {
    let n = text.len();
    #[cfg(target_arch = "x86_64")]
    while i + 16 <= n {
        let (quote, bad) = classify16(&text[i..i + 16]);
        if quote != 0 {
            let e = quote.trailing_zeros();
            if bad & ((1u32 << e) - 1) != 0 {
                return None;
            }
            return Some(i + e as usize);
        }
        if bad != 0 {
            return None;
        }
        i += 16;
    }
    while i < n {
        match text[i] {
            b'"' => return Some(i),
            b'\\' | 0..=0x1f => return None,
            _ => {}
        }
        i += 1;
    }
    None
}

/// For 16 bytes: bits set where a byte is a quote; where it is a
/// backslash or a control byte (below 0x20).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn classify16(chunk: &[u8]) -> (u32, u32) {
    use std::arch::x86_64::*;
    assert!(chunk.len() >= 16);
    // SAFETY: SSE2 is part of the x86_64 baseline; the load reads the
    // first 16 bytes of `chunk`, which holds at least 16 (checked above).
    unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr() as *const __m128i);
        let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
        let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
        // v <= 0x1f (unsigned) exactly when max(v, 0x1f) == 0x1f.
        let low = _mm_set1_epi8(0x1f);
        let control = _mm_cmpeq_epi8(_mm_max_epu8(v, low), low);
        (
            _mm_movemask_epi8(quote) as u32,
            _mm_movemask_epi8(_mm_or_si128(backslash, control)) as u32,
        )
    }
}

/// The end of the integer at `i` (`-?(0|[1-9][0-9]*)`, at most
/// [`MAX_DIGITS`] digits, not `-0`); None for anything else. What follows
/// it is checked by the caller: a `.` or an `e` there refuses the object.
#[inline]
fn integer_end(text: &[u8], i: usize) -> Option<usize> {
    let neg = text[i] == b'-';
    let d = i + neg as usize;
    let digits = text[d..].iter().take_while(|c| c.is_ascii_digit()).count();
    let ok = match text.get(d) {
        Some(b'0') => digits == 1 && !neg,
        Some(b'1'..=b'9') => digits <= MAX_DIGITS,
        _ => false,
    };
    ok.then_some(d + digits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(text: &str) -> Option<Vec<(String, String)>> {
        let mut out = Vec::new();
        let t = text.as_bytes();
        scan(t, &mut out).then(|| {
            out.iter()
                .map(|m| {
                    let s = |sp: Span| {
                        String::from_utf8(t[sp.start as usize..sp.end as usize].to_vec()).unwrap()
                    };
                    (s(m.key), s(m.value))
                })
                .collect()
        })
    }

    fn pairs(p: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(
            p.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn flat_objects_split_into_names_and_value_text() {
        assert_eq!(
            members(
                r#"{"EventID":4624,"User":"alice","ok":true,"no":false,"x":null,"n":-12,"z":0}"#
            ),
            pairs(&[
                ("EventID", "4624"),
                ("User", "alice"),
                ("ok", "true"),
                ("no", "false"),
                ("x", ""),
                ("n", "-12"),
                ("z", "0")
            ])
        );
        assert_eq!(members("{}"), pairs(&[]));
        assert_eq!(members(" { } "), pairs(&[]));
        assert_eq!(
            members(r#"{ "a" : "b" , "c": 1 }"#),
            pairs(&[("a", "b"), ("c", "1")])
        );
        assert_eq!(
            members(r#"{"long":"a value that is longer than sixteen bytes","é":"ünï"}"#),
            pairs(&[
                ("long", "a value that is longer than sixteen bytes"),
                ("é", "ünï")
            ])
        );
        assert_eq!(
            members(r#"{"a":"b","a":"c"}"#),
            pairs(&[("a", "b"), ("a", "c")])
        );
    }

    #[test]
    fn anything_else_is_left_to_simd_json() {
        for text in [
            r#"{"a":{"b":1}}"#,
            r#"{"a":[1]}"#,
            r#"{"a":1.5}"#,
            r#"{"a":1e3}"#,
            r#"{"a":01}"#,
            r#"{"a":-0}"#,
            r#"{"a":-}"#,
            r#"{"a":1234567890123456789}"#,
            r#"{"a":"b\"c"}"#,
            "{\"a\":\"b\tc\"}",
            "{\"a\":\n1}",
            r#"{"a":truex}"#,
            r#"{"a":tru}"#,
            r#"{"a":nul}"#,
            r#"{"a":"b""c":1}"#,
            r#"{"a":"b",}"#,
            r#"{"a" "b"}"#,
            r#"{"a":"b"} x"#,
            r#"{"a":"b"}}"#,
            r#"{"a":"b""#,
            r#"{"a":"b"#,
            r#"{"a":"b","#,
            r#"{"a":"#,
            r#"{a:1}"#,
            r#"["a"]"#,
            "",
            "{",
        ] {
            assert_eq!(members(text), None, "{text:?}");
        }
        let mut out = Vec::new();
        assert!(!scan(b"{\"a\":\"\xff\xfe\"}", &mut out), "invalid UTF-8");
        assert!(!scan(b"{\"a\":\"\xc3\"}", &mut out), "cut UTF-8");
        assert!(!scan(b"{\"a\":\"bbbbbbbbbbbbbbbbbbbb\x01\"}", &mut out));
    }

    #[test]
    fn the_longest_integer_taken_has_eighteen_digits() {
        assert_eq!(
            members(r#"{"a":999999999999999999,"b":-999999999999999999}"#),
            pairs(&[("a", "999999999999999999"), ("b", "-999999999999999999")])
        );
        assert_eq!(members(r#"{"a":1000000000000000000}"#), None);
    }
}
