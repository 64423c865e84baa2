//! Pre-rendered messages for one stream, framed, back to back in one
//! buffer.
//!
//! Built once before sending (that is where rendering allocates); the send
//! loop then only patches each message's stamp in place and writes
//! contiguous slices, so sending allocates nothing per message and a TCP
//! write carries hundreds of messages.

use super::stamp;
use super::traffic::{Kind, Mix, Rendered, render, render_fin};
use crate::time::Timestamp;

/// How messages are delimited in the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Framing {
    /// A LF after each message (RFC 6587 section 3.4.2).
    Lf,
    /// `LEN SP` before each message (RFC 6587 section 3.4.1).
    Octet,
    /// Nothing: one message per datagram.
    None,
}

/// One stream's messages, framed, in one buffer.
pub struct Ring {
    buf: Vec<u8>,
    /// End offset of each framed message.
    ends: Vec<usize>,
    /// Offset of each message's stamp value.
    stamps: Vec<usize>,
    /// The stream's last message, framed, and its stamp offset.
    fin: Vec<u8>,
    fin_stamp: usize,
}

/// What a ring is built from.
pub struct RingSpec<'a> {
    pub mix: &'a Mix,
    pub variants: usize,
    pub framing: Framing,
    pub seed: u64,
    pub run: u32,
    pub stream: u32,
    pub streams: u32,
}

impl Ring {
    pub fn build(spec: &RingSpec<'_>) -> Ring {
        let mut rng = fastrand::Rng::with_seed(spec.seed ^ (spec.stream as u64) << 32);
        let now = Timestamp::now();
        let n = spec.variants.max(1);
        let mut ring = Ring {
            buf: Vec::new(),
            ends: Vec::with_capacity(n),
            stamps: Vec::with_capacity(n),
            fin: Vec::new(),
            fin_stamp: 0,
        };
        for _ in 0..n {
            let kind: Kind = spec.mix.pick(&mut rng);
            let r = render(kind, &mut rng, now, spec.run, spec.stream);
            let stamp_at = frame_into(&mut ring.buf, &r, spec.framing);
            ring.stamps.push(stamp_at);
            ring.ends.push(ring.buf.len());
        }
        let fin = render_fin(now, spec.run, spec.stream, spec.streams);
        ring.fin_stamp = frame_into(&mut ring.fin, &fin, spec.framing);
        ring
    }

    /// Messages in the ring.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Mean framed message size.
    pub fn mean_size(&self) -> usize {
        self.buf.len() / self.len().max(1)
    }

    fn start(&self, i: usize) -> usize {
        if i == 0 { 0 } else { self.ends[i - 1] }
    }

    /// How many messages from `i` (at most `max`, not past the ring's end)
    /// fit in `bytes` (at least one).
    #[inline]
    pub fn take(&self, i: usize, max: usize, bytes: usize) -> usize {
        let limit = self.start(i) + bytes;
        let last = (i + max).min(self.len());
        let mut j = i + 1;
        while j < last && self.ends[j] <= limit {
            j += 1;
        }
        j - i
    }

    /// Stamps messages `i..i+n` with sequence numbers from `seq` and the
    /// send time; returns their bytes, contiguous.
    #[inline]
    pub fn stamp(&mut self, i: usize, n: usize, seq: u64, sent_ns: u64) -> &[u8] {
        for k in 0..n {
            let at = self.stamps[i + k];
            stamp::patch(
                &mut self.buf[at..at + stamp::WIDTH],
                seq + k as u64,
                sent_ns,
            );
        }
        &self.buf[self.start(i)..self.ends[i + n - 1]]
    }

    /// Message `i` alone (a datagram; UDP rings are framed `None` or
    /// `Lf`, so nothing precedes the message).
    #[inline]
    pub fn datagram(&self, i: usize) -> &[u8] {
        &self.buf[self.start(i)..self.ends[i]]
    }

    /// The stream's last message, stamped.
    pub fn fin(&mut self, seq: u64, sent_ns: u64) -> &[u8] {
        let at = self.fin_stamp;
        stamp::patch(&mut self.fin[at..at + stamp::WIDTH], seq, sent_ns);
        &self.fin
    }
}

/// Appends `r` framed; returns the offset of its stamp value.
fn frame_into(buf: &mut Vec<u8>, r: &Rendered, framing: Framing) -> usize {
    if framing == Framing::Octet {
        buf.extend_from_slice(itoa::Buffer::new().format(r.bytes.len()).as_bytes());
        buf.push(b' ');
    }
    let body = buf.len();
    buf.extend_from_slice(&r.bytes);
    if framing == Framing::Lf {
        buf.push(b'\n');
    }
    body + r.stamp_at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{FrameKind, Framer};

    fn ring(framing: Framing) -> Ring {
        Ring::build(&RingSpec {
            mix: &super::super::traffic::DEFAULT_MIX.parse().unwrap(),
            variants: 64,
            framing,
            seed: 5,
            run: 0x1234_5678,
            stream: 2,
            streams: 3,
        })
    }

    #[test]
    fn stamped_chunks_frame_back_into_messages_with_consecutive_sequences() {
        for framing in [Framing::Lf, Framing::Octet] {
            let mut r = ring(framing);
            let f = stamp::Finder::new();
            let mut framer = Framer::new(1 << 20);
            let mut seqs = Vec::new();
            let mut i = 0;
            let mut seq = 100;
            while i < r.len() {
                let n = r.take(i, 1000, 4096);
                assert!(n >= 1);
                let chunk = r.stamp(i, n, seq, 7).to_vec();
                framer.feed(&chunk, &mut |b, k| {
                    assert_eq!(k, FrameKind::Whole);
                    seqs.push(f.find(b).unwrap().seq);
                });
                i += n;
                seq += n as u64;
            }
            let fin = r.fin(seq, 8).to_vec();
            framer.feed(&fin, &mut |b, _| {
                let s = f.find(b).unwrap();
                assert_eq!(s.fin_streams, Some(3));
                seqs.push(s.seq);
            });
            assert_eq!(seqs, (100..=164).collect::<Vec<u64>>(), "{framing:?}");
        }
    }

    #[test]
    fn datagrams_carry_no_framing_bytes() {
        let mut r = ring(Framing::None);
        r.stamp(0, 3, 0, 1);
        for i in 0..3 {
            assert!(r.datagram(i).starts_with(b"<"));
        }
        assert!(r.fin(5, 1).starts_with(b"<13>1 "));
    }
}
