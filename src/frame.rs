//! Framing: splits a TCP byte stream into syslog messages.
//!
//! Receives the bytes of one connection in whatever chunks `read` returns;
//! emits each complete frame (without its framing) to a callback. Per frame,
//! a leading non-zero digit means octet counting (RFC 6587 section 3.4.1,
//! RFC 5425 section 4.3: `MSG-LEN SP SYSLOG-MSG`); anything else is
//! non-transparent framing ended by LF, CR LF or NUL (RFC 6587 section
//! 3.4.2). Peers may switch per frame.
//!
//! Frames longer than `max_message_bytes` are cut: the first
//! `max_message_bytes` are emitted marked truncated, the rest is skipped
//! without buffering, and the connection goes on. The framer never buffers
//! more than `max_message_bytes` of one connection, whatever the peer
//! claims. It must never allocate per frame: a frame that fits in one chunk
//! is emitted straight from the chunk; only a frame split across reads is
//! copied into the connection's partial buffer.

use memchr::memchr2;

/// What the framer tells its caller about one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// A complete frame within the limit.
    Whole,
    /// The frame was longer than the limit; these are its first bytes.
    Truncated,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At a frame boundary.
    Start,
    /// Reading the digits of an octet count that a read cut short.
    Count { value: u64, digits: u8 },
    /// Inside an octet-counted frame: `remaining` body bytes still to come.
    Octet { remaining: u64, truncating: bool },
    /// Inside a trailer-framed frame, until LF or NUL.
    Trailer { truncating: bool },
}

/// Longest octet count we read; more digits means this is not a count.
const MAX_COUNT_DIGITS: u8 = 10;

/// Per-connection framing state.
#[derive(Debug)]
pub struct Framer {
    state: State,
    max: usize,
    /// The start of a frame that a read cut short (at most `max` bytes).
    partial: Vec<u8>,
}

impl Framer {
    pub fn new(max_message_bytes: usize) -> Framer {
        Framer {
            state: State::Start,
            max: max_message_bytes.max(1),
            partial: Vec::new(),
        }
    }

    /// Bytes held for an unfinished frame.
    pub fn buffered(&self) -> usize {
        self.partial.len()
    }

    /// True when the framer sits between frames with nothing held.
    pub fn is_idle(&self) -> bool {
        self.state == State::Start && self.partial.is_empty()
    }

    /// Releases the partial buffer's memory when nothing is held (an idle
    /// connection should cost nothing).
    pub fn shrink_if_idle(&mut self) {
        if self.partial.is_empty() && self.partial.capacity() > 0 {
            self.partial = Vec::new();
        }
    }

    /// Feeds one chunk; calls `emit` for every frame it completes.
    pub fn feed(&mut self, mut chunk: &[u8], emit: &mut impl FnMut(&[u8], FrameKind)) {
        while !chunk.is_empty() {
            match self.state {
                State::Start => {
                    let b = chunk[0];
                    if (b'1'..=b'9').contains(&b) {
                        self.state = State::Count {
                            value: 0,
                            digits: 0,
                        };
                    } else if b == b'\n' || b == b'\0' || b == b'\r' {
                        // Empty frame or stray trailer (e.g. LF after an
                        // octet-counted frame): nothing to emit.
                        chunk = &chunk[1..];
                    } else {
                        self.state = State::Trailer { truncating: false };
                    }
                }
                State::Count {
                    mut value,
                    mut digits,
                } => {
                    let mut i = 0;
                    while i < chunk.len() && chunk[i].is_ascii_digit() && digits < MAX_COUNT_DIGITS
                    {
                        value = value * 10 + (chunk[i] - b'0') as u64;
                        digits += 1;
                        i += 1;
                    }
                    if i == chunk.len() {
                        // All digits so far; keep them in case this turns
                        // out to be a trailer frame that starts with digits.
                        self.hold(&chunk[..i]);
                        self.state = State::Count { value, digits };
                        return;
                    }
                    if chunk[i] == b' ' {
                        self.partial.clear();
                        chunk = &chunk[i + 1..];
                        self.state = State::Octet {
                            remaining: value,
                            truncating: false,
                        };
                    } else {
                        // Not a count after all: the digits begin a
                        // trailer-framed message. Keep what we held.
                        self.hold(&chunk[..i]);
                        chunk = &chunk[i..];
                        self.state = State::Trailer { truncating: false };
                        if !self.partial.is_empty() {
                            // Continue in trailer mode with `partial` as the
                            // frame's start.
                            continue;
                        }
                    }
                }
                State::Octet {
                    remaining,
                    truncating,
                } => {
                    if remaining == 0 {
                        self.finish(emit, truncating, &[]);
                        continue;
                    }
                    let take = (remaining as usize).min(chunk.len());
                    let (body, rest) = chunk.split_at(take);
                    let remaining = remaining - take as u64;
                    chunk = rest;
                    if truncating {
                        self.state = State::Octet {
                            remaining,
                            truncating,
                        };
                        if remaining == 0 {
                            self.state = State::Start;
                        }
                        continue;
                    }
                    let room = self.max - self.partial.len();
                    if remaining == 0 && self.partial.is_empty() && body.len() <= self.max {
                        emit(body, FrameKind::Whole);
                        self.state = State::Start;
                        continue;
                    }
                    if body.len() > room {
                        // Over the limit: emit what fits, skip the rest.
                        self.partial.extend_from_slice(&body[..room]);
                        emit(&self.partial, FrameKind::Truncated);
                        self.partial.clear();
                        self.state = if remaining == 0 {
                            State::Start
                        } else {
                            State::Octet {
                                remaining,
                                truncating: true,
                            }
                        };
                        continue;
                    }
                    self.partial.extend_from_slice(body);
                    if remaining == 0 {
                        emit(&self.partial, FrameKind::Whole);
                        self.partial.clear();
                        self.state = State::Start;
                    } else {
                        self.state = State::Octet {
                            remaining,
                            truncating: false,
                        };
                    }
                }
                State::Trailer { truncating } => match memchr2(b'\n', b'\0', chunk) {
                    Some(end) => {
                        let body = &chunk[..end];
                        chunk = &chunk[end + 1..];
                        if truncating {
                            self.state = State::Start;
                            continue;
                        }
                        if self.partial.is_empty() {
                            let body = strip_cr(body);
                            if body.len() <= self.max {
                                if !body.is_empty() {
                                    emit(body, FrameKind::Whole);
                                }
                            } else {
                                emit(&body[..self.max], FrameKind::Truncated);
                            }
                            self.state = State::Start;
                        } else {
                            self.finish(emit, false, body);
                        }
                    }
                    None => {
                        if !truncating {
                            let room = self.max - self.partial.len();
                            if chunk.len() > room {
                                self.partial.extend_from_slice(&chunk[..room]);
                                emit(&self.partial, FrameKind::Truncated);
                                self.partial.clear();
                                self.state = State::Trailer { truncating: true };
                            } else {
                                self.partial.extend_from_slice(chunk);
                            }
                        }
                        return;
                    }
                },
            }
        }
    }

    /// Keeps bytes of an unfinished frame (within the limit).
    fn hold(&mut self, bytes: &[u8]) {
        let room = self.max - self.partial.len();
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Completes the held frame with `tail` and emits it.
    fn finish(&mut self, emit: &mut impl FnMut(&[u8], FrameKind), truncated: bool, tail: &[u8]) {
        let room = self.max - self.partial.len();
        let over = tail.len() > room;
        self.partial
            .extend_from_slice(&tail[..tail.len().min(room)]);
        let trailer = matches!(self.state, State::Trailer { .. });
        let body: &[u8] = if trailer && !over {
            strip_cr(&self.partial)
        } else {
            &self.partial
        };
        if !body.is_empty() && !truncated {
            emit(
                body,
                if over {
                    FrameKind::Truncated
                } else {
                    FrameKind::Whole
                },
            );
        }
        self.partial.clear();
        self.state = State::Start;
    }

    /// At end of stream: emits a held trailer frame that lacked its final
    /// LF (peers often close without one). Returns whether it emitted.
    pub fn finish_eof(&mut self, emit: &mut impl FnMut(&[u8], FrameKind)) -> bool {
        let out = match self.state {
            State::Trailer { truncating: false } | State::Count { .. } => {
                let body = strip_cr(&self.partial);
                if body.is_empty() {
                    false
                } else {
                    emit(body, FrameKind::Whole);
                    true
                }
            }
            State::Octet {
                truncating: false, ..
            } if !self.partial.is_empty() => {
                // The peer promised more than it sent: keep what came.
                emit(&self.partial, FrameKind::Truncated);
                true
            }
            _ => false,
        };
        self.partial.clear();
        self.state = State::Start;
        out
    }
}

fn strip_cr(b: &[u8]) -> &[u8] {
    match b.last() {
        Some(b'\r') => &b[..b.len() - 1],
        _ => b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames_in_chunks(input: &[u8], chunk: usize, max: usize) -> Vec<(Vec<u8>, FrameKind)> {
        let mut f = Framer::new(max);
        let mut out = Vec::new();
        for c in input.chunks(chunk.max(1)) {
            f.feed(c, &mut |b, k| out.push((b.to_vec(), k)));
        }
        f.finish_eof(&mut |b, k| out.push((b.to_vec(), k)));
        out
    }

    fn all_chunkings(input: &[u8], max: usize) -> Vec<(Vec<u8>, FrameKind)> {
        let whole = frames_in_chunks(input, input.len(), max);
        for n in 1..input.len() {
            assert_eq!(frames_in_chunks(input, n, max), whole, "chunk size {n}");
        }
        whole
    }

    fn w(s: &str) -> (Vec<u8>, FrameKind) {
        (s.as_bytes().to_vec(), FrameKind::Whole)
    }

    #[test]
    fn lf_crlf_nul_and_octet_frames_mix_on_one_connection() {
        let input = b"<13>a\n<13>b\r\n<13>c\x009 <13>d\ne\nf<13>g\n";
        assert_eq!(
            all_chunkings(input, 1024),
            vec![
                w("<13>a"),
                w("<13>b"),
                w("<13>c"),
                w("<13>d\ne\nf"),
                w("<13>g")
            ]
        );
    }

    #[test]
    fn octet_frame_longer_than_limit_is_cut_and_the_next_frame_arrives() {
        let input = b"20 <13>0123456789abcdef<13>next\n";
        assert_eq!(
            all_chunkings(input, 8),
            vec![(b"<13>0123".to_vec(), FrameKind::Truncated), w("<13>next")]
        );
    }

    #[test]
    fn trailer_frame_longer_than_limit_is_cut_and_the_next_frame_arrives() {
        let input = b"<13>0123456789abcdef\n<13>next\n";
        assert_eq!(
            all_chunkings(input, 8),
            vec![(b"<13>0123".to_vec(), FrameKind::Truncated), w("<13>next")]
        );
    }

    #[test]
    fn digits_without_space_start_a_trailer_frame() {
        let input = b"2026-12-03 plain line\n12345\n";
        assert_eq!(
            all_chunkings(input, 1024),
            vec![w("2026-12-03 plain line"), w("12345")]
        );
    }

    #[test]
    fn absurd_octet_count_is_skipped_without_buffering() {
        let mut f = Framer::new(64);
        let mut n = 0;
        f.feed(b"9999999999 <13>", &mut |_, _| n += 1);
        for _ in 0..1000 {
            f.feed(&[b'x'; 4096], &mut |_, _| n += 1);
            assert!(f.buffered() <= 64);
        }
        assert_eq!(n, 1); // the first 64 bytes, marked truncated
    }

    #[test]
    fn eleven_digit_count_is_not_a_count() {
        let input = b"99999999999 <13>x\n<13>y\n";
        assert_eq!(
            all_chunkings(input, 1024),
            vec![w("99999999999 <13>x"), w("<13>y")]
        );
    }

    #[test]
    fn unterminated_last_line_is_kept_at_eof() {
        assert_eq!(
            all_chunkings(b"<13>a\n<13>b", 1024),
            vec![w("<13>a"), w("<13>b")]
        );
    }

    #[test]
    fn empty_frames_are_skipped() {
        assert_eq!(
            all_chunkings(b"\n\n\r\n\0<13>a\n\n", 1024),
            vec![w("<13>a")]
        );
    }
}
