//! The stamp every load message carries, so a sink can tell what was lost,
//! duplicated or late.
//!
//! A stamp is the key `loadstamp` followed by a fixed-width value:
//!
//! ```text
//! RRRRRRRR-SSSS-QQQQQQQQQQQQ-TTTTTTTTTTTTTTTTTTT[-fNNNN]
//! run (hex) stream  sequence   send time (ns since the Unix epoch)
//! ```
//!
//! The run id tells sender runs apart; the stream is one connection or UDP
//! socket of a run; the sequence counts from 0 per stream. The value is
//! fixed width so that the sender patches it in place in pre-rendered
//! buffers. The last message of each stream (its "fin") adds `-fNNNN`, the
//! number of streams in the run, so the sink knows when a run is complete.
//!
//! In JSON payloads the stamp is a key (`"loadstamp":"…"`), in CEF an
//! extension (`loadstamp=…`), in plain text `loadstamp=…`: each form comes
//! through a pipeline's JSON output (sluice's `v2`, rsyslog's `%$!%`,
//! syslog-ng's `format-json`) as `"loadstamp":"…"`, possibly escaped, so the
//! sink skips up to a few of `"`, `\`, `:`, `=` and spaces after the key.

use crate::bytes::put_digits;
use memchr::memmem;

/// The key that introduces a stamp.
pub const KEY: &[u8] = b"loadstamp";

/// Width of the value without the fin suffix.
pub const WIDTH: usize = 8 + 1 + 4 + 1 + 12 + 1 + 19;
const SEQ_AT: usize = 14;
const TS_AT: usize = 27;

/// Largest stream number a stamp holds.
pub const MAX_STREAMS: u32 = 9_999;

/// What a sink reads from a stamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub run: u32,
    pub stream: u32,
    pub seq: u64,
    /// Send time, ns since the Unix epoch.
    pub sent_ns: u64,
    /// On a stream's last message: how many streams the run has.
    pub fin_streams: Option<u32>,
}

/// Writes a stamp value (fixed width; `fin_streams` adds the fin suffix).
pub fn write_value(out: &mut Vec<u8>, s: &Stamp) {
    let start = out.len();
    out.resize(start + WIDTH, b'0');
    let v = &mut out[start..];
    for i in 0..8 {
        v[i] = HEX[((s.run >> (28 - 4 * i)) & 15) as usize];
    }
    v[8] = b'-';
    put_digits(&mut v[9..13], s.stream as u64);
    v[13] = b'-';
    put_digits(&mut v[SEQ_AT..SEQ_AT + 12], s.seq);
    v[26] = b'-';
    put_digits(&mut v[TS_AT..TS_AT + 19], s.sent_ns);
    if let Some(n) = s.fin_streams {
        out.extend_from_slice(b"-f");
        let at = out.len();
        out.resize(at + 4, b'0');
        put_digits(&mut out[at..], n as u64);
    }
}

/// Overwrites the sequence and send time of the stamp value at `value`
/// (as written by [`write_value`]). The per-message hot path of a sender.
#[inline]
pub fn patch(value: &mut [u8], seq: u64, sent_ns: u64) {
    put_digits(&mut value[SEQ_AT..SEQ_AT + 12], seq);
    put_digits(&mut value[TS_AT..TS_AT + 19], sent_ns);
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Finds and reads the stamp in a frame (the last one, if several).
pub struct Finder {
    rev: memmem::FinderRev<'static>,
}

impl Default for Finder {
    fn default() -> Self {
        Finder::new()
    }
}

impl Finder {
    pub fn new() -> Finder {
        Finder {
            rev: memmem::FinderRev::new(KEY),
        }
    }

    /// The stamp in `frame`, if it has a readable one. Searches from the
    /// end: senders put the stamp last, so it is found in a few bytes.
    #[inline]
    pub fn find(&self, frame: &[u8]) -> Option<Stamp> {
        let at = self.rev.rfind(frame)?;
        let mut v = &frame[at + KEY.len()..];
        let mut skipped = 0;
        while let Some(&b) = v.first() {
            if !matches!(b, b'"' | b'\\' | b':' | b'=' | b' ') || skipped == 6 {
                break;
            }
            v = &v[1..];
            skipped += 1;
        }
        parse_value(v)
    }
}

/// Reads a stamp value at the start of `v`.
pub fn parse_value(v: &[u8]) -> Option<Stamp> {
    if v.len() < WIDTH || v[8] != b'-' || v[13] != b'-' || v[26] != b'-' {
        return None;
    }
    let mut run = 0u32;
    for &b in &v[..8] {
        let d = match b {
            b'0'..=b'9' => b - b'0',
            b'a'..=b'f' => b - b'a' + 10,
            _ => return None,
        };
        run = run << 4 | d as u32;
    }
    let stream = digits(&v[9..13])? as u32;
    let seq = digits(&v[SEQ_AT..SEQ_AT + 12])?;
    let sent_ns = digits(&v[TS_AT..TS_AT + 19])?;
    let rest = &v[WIDTH..];
    let fin_streams = match rest {
        [b'-', b'f', a, b, c, d, ..] => digits(&[*a, *b, *c, *d]).map(|n| n as u32),
        _ => None,
    };
    Some(Stamp {
        run,
        stream,
        seq,
        sent_ns,
        fin_streams,
    })
}

#[inline]
fn digits(s: &[u8]) -> Option<u64> {
    let mut n = 0u64;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + (b - b'0') as u64;
    }
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(fin: Option<u32>) -> Stamp {
        Stamp {
            run: 0x3fa2_c1d0,
            stream: 7,
            seq: 123_456,
            sent_ns: 1_767_225_600_123_456_789,
            fin_streams: fin,
        }
    }

    #[test]
    fn a_written_stamp_reads_back() {
        let mut v = Vec::new();
        write_value(&mut v, &stamp(None));
        assert_eq!(v, b"3fa2c1d0-0007-000000123456-1767225600123456789");
        assert_eq!(v.len(), WIDTH);
        assert_eq!(parse_value(&v), Some(stamp(None)));
        let mut f = Vec::new();
        write_value(&mut f, &stamp(Some(8)));
        assert_eq!(parse_value(&f), Some(stamp(Some(8))));
    }

    #[test]
    fn patching_changes_only_sequence_and_time() {
        let mut v = Vec::new();
        write_value(&mut v, &stamp(None));
        patch(&mut v, 42, 99);
        let s = parse_value(&v).unwrap();
        assert_eq!(
            (s.run, s.stream, s.seq, s.sent_ns),
            (0x3fa2_c1d0, 7, 42, 99)
        );
    }

    #[test]
    fn stamps_are_found_in_json_cef_and_escaped_forms() {
        let mut v = Vec::new();
        write_value(&mut v, &stamp(None));
        let v = String::from_utf8(v).unwrap();
        let f = Finder::new();
        for text in [
            format!(r#"{{"a":"b","loadstamp":"{v}"}}"#),
            format!("CEF:0|a|b|1|x|y|3|src=10.0.0.1 loadstamp={v}"),
            format!(r#"{{"msg":{{"message":"x loadstamp={v}"}}}}"#),
            format!(r#"{{"msg":{{"message":"{{\"loadstamp\":\"{v}\"}}"}}}}"#),
        ] {
            assert_eq!(f.find(text.as_bytes()), Some(stamp(None)), "{text}");
        }
    }

    #[test]
    fn damaged_stamps_are_not_read() {
        let f = Finder::new();
        assert_eq!(f.find(b"no stamp here"), None);
        assert_eq!(f.find(b"loadstamp=3fa2c1d0-0007-0001"), None);
        assert_eq!(
            f.find(b"loadstamp=3fa2c1dX-0007-000000123456-1767225600123456789"),
            None
        );
    }
}
