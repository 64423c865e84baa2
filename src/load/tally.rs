//! What a sink counts: frames, stamps per sender stream, and latency.
//!
//! Each receiving thread owns a [`Tally`]; the report merges them. Per
//! stream, the sequence numbers seen are kept as a bitset, so loss (gaps
//! below the highest sequence, or below the fin's) and duplicates (frames
//! beyond the distinct sequence numbers) come out exact whatever order
//! frames arrive in, and whichever connection carried them.

use std::collections::HashMap;

use hdrhistogram::Histogram;

use super::stamp::Stamp;

/// Longest latency tracked: one hour (longer ones saturate).
const MAX_LATENCY_NS: u64 = 3_600 * 1_000_000_000;

/// A latency histogram in nanoseconds (3 significant digits).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("static histogram bounds are valid")
}

/// The sequence numbers one sender stream's frames carried.
#[derive(Clone, Debug, Default)]
pub struct StreamTally {
    /// Bit `seq` is set when `seq` arrived.
    pub seen: Vec<u64>,
    /// Frames with a stamp of this stream (duplicates included).
    pub frames: u64,
    /// The fin's sequence number and the run's stream count.
    pub fin: Option<(u64, u32)>,
}

impl StreamTally {
    #[inline]
    fn mark(&mut self, seq: u64) {
        let w = (seq / 64) as usize;
        if w >= self.seen.len() {
            // Grow by doubling so a long stream costs O(log n) grows.
            let want = (w + 1).max(self.seen.len() * 2).max(1024);
            self.seen.resize(want, 0);
        }
        self.seen[w] |= 1 << (seq % 64);
        self.frames += 1;
    }

    /// Distinct sequence numbers seen.
    pub fn unique(&self) -> u64 {
        self.seen.iter().map(|w| w.count_ones() as u64).sum()
    }

    /// One past the highest sequence seen (0 when none).
    pub fn high(&self) -> u64 {
        for (i, w) in self.seen.iter().enumerate().rev() {
            if *w != 0 {
                return i as u64 * 64 + 64 - w.leading_zeros() as u64;
            }
        }
        0
    }

    /// How many the sender sent, as far as the sink can tell: the fin's
    /// count when it arrived, else one past the highest sequence.
    pub fn expected(&self) -> u64 {
        match self.fin {
            Some((seq, _)) => (seq + 1).max(self.high()),
            None => self.high(),
        }
    }

    pub fn merge(&mut self, o: &StreamTally) {
        if o.seen.len() > self.seen.len() {
            self.seen.resize(o.seen.len(), 0);
        }
        for (a, b) in self.seen.iter_mut().zip(&o.seen) {
            *a |= *b;
        }
        self.frames += o.frames;
        if self.fin.is_none() {
            self.fin = o.fin;
        }
    }
}

/// One receiving thread's counts.
pub struct Tally {
    pub frames: u64,
    pub bytes: u64,
    /// Frames without a readable stamp.
    pub unstamped: u64,
    /// (run, stream) → index in `streams`.
    index: HashMap<(u32, u32), usize>,
    pub streams: Vec<((u32, u32), StreamTally)>,
    last: Option<((u32, u32), usize)>,
    /// Send → receive, ns.
    pub latency: Histogram<u64>,
    /// Frames whose send time was after their receive time (clock skew
    /// between machines); counted as 0 latency.
    pub negative: u64,
    /// Receive time of the first and last stamped or unstamped frame, and
    /// the earliest send time seen (ns since the epoch).
    pub first_recv_ns: u64,
    pub last_recv_ns: u64,
    pub first_sent_ns: u64,
}

impl Default for Tally {
    fn default() -> Self {
        Tally {
            frames: 0,
            bytes: 0,
            unstamped: 0,
            index: HashMap::new(),
            streams: Vec::new(),
            last: None,
            latency: new_histogram(),
            negative: 0,
            first_recv_ns: u64::MAX,
            last_recv_ns: 0,
            first_sent_ns: u64::MAX,
        }
    }
}

impl Tally {
    /// Counts one frame received at `now_ns` carrying `stamp`.
    #[inline]
    pub fn frame(&mut self, len: usize, stamp: Option<Stamp>, now_ns: u64) {
        self.frames += 1;
        self.bytes += len as u64;
        self.first_recv_ns = self.first_recv_ns.min(now_ns);
        self.last_recv_ns = self.last_recv_ns.max(now_ns);
        let Some(s) = stamp else {
            self.unstamped += 1;
            return;
        };
        let key = (s.run, s.stream);
        let i = match self.last {
            Some((k, i)) if k == key => i,
            _ => {
                let i = *self.index.entry(key).or_insert_with(|| {
                    self.streams.push((key, StreamTally::default()));
                    self.streams.len() - 1
                });
                self.last = Some((key, i));
                i
            }
        };
        let st = &mut self.streams[i].1;
        st.mark(s.seq);
        if let Some(n) = s.fin_streams {
            st.fin = Some((s.seq, n));
        }
        self.first_sent_ns = self.first_sent_ns.min(s.sent_ns);
        let lat = match now_ns.checked_sub(s.sent_ns) {
            Some(d) => d,
            None => {
                self.negative += 1;
                0
            }
        };
        let _ = self.latency.record(lat.clamp(1, MAX_LATENCY_NS));
    }

    /// Adds `o` into `self`.
    pub fn merge(&mut self, o: &Tally) {
        self.frames += o.frames;
        self.bytes += o.bytes;
        self.unstamped += o.unstamped;
        self.negative += o.negative;
        self.first_recv_ns = self.first_recv_ns.min(o.first_recv_ns);
        self.last_recv_ns = self.last_recv_ns.max(o.last_recv_ns);
        self.first_sent_ns = self.first_sent_ns.min(o.first_sent_ns);
        let _ = self.latency.add(&o.latency);
        for (key, st) in &o.streams {
            let i = *self.index.entry(*key).or_insert_with(|| {
                self.streams.push((*key, StreamTally::default()));
                self.streams.len() - 1
            });
            self.streams[i].1.merge(st);
        }
        self.last = None;
    }

    /// Per sender run, in order of first appearance.
    pub fn runs(&self) -> Vec<RunSummary> {
        let mut out: Vec<RunSummary> = Vec::new();
        for ((run, _), st) in &self.streams {
            let r = match out.iter_mut().find(|r| r.run == *run) {
                Some(r) => r,
                None => {
                    out.push(RunSummary {
                        run: *run,
                        ..Default::default()
                    });
                    out.last_mut().expect("just pushed")
                }
            };
            let unique = st.unique();
            r.streams_seen += 1;
            r.frames += st.frames;
            r.unique += unique;
            r.expected += st.expected();
            r.lost += st.expected() - unique;
            if let Some((_, n)) = st.fin {
                r.fins += 1;
                r.streams = r.streams.max(n);
            }
        }
        for r in &mut out {
            r.duplicates = r.frames - r.unique;
            r.complete = r.streams > 0 && r.fins == r.streams && r.lost == 0;
        }
        out
    }
}

/// What the sink knows about one sender run.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunSummary {
    #[serde(serialize_with = "hex")]
    pub run: u32,
    /// Streams the run had (from its fins; 0 when no fin arrived).
    pub streams: u32,
    /// Streams some frame arrived from.
    pub streams_seen: u32,
    /// Streams whose fin arrived.
    pub fins: u32,
    /// Messages the sender sent, as far as the sink can tell.
    pub expected: u64,
    /// Frames received (duplicates included).
    pub frames: u64,
    /// Distinct messages received.
    pub unique: u64,
    pub lost: u64,
    pub duplicates: u64,
    /// Every stream's fin arrived and nothing is missing.
    pub complete: bool,
}

fn hex<S: serde::Serializer>(v: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{v:08x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(run: u32, stream: u32, seq: u64, fin: Option<u32>) -> Option<Stamp> {
        Some(Stamp {
            run,
            stream,
            seq,
            sent_ns: 1_000,
            fin_streams: fin,
        })
    }

    #[test]
    fn gaps_and_repeats_count_as_loss_and_duplicates() {
        let mut t = Tally::default();
        for seq in [0, 1, 2, 4, 4, 5] {
            t.frame(10, st(1, 0, seq, None), 2_000);
        }
        t.frame(10, st(1, 0, 7, Some(1)), 2_000);
        t.frame(10, None, 2_000);
        let r = &t.runs()[0];
        assert_eq!(
            (r.expected, r.unique, r.lost, r.duplicates, r.complete),
            (8, 6, 2, 1, false)
        );
        assert_eq!(t.unstamped, 1);
        assert_eq!(t.latency.len(), 7);
    }

    #[test]
    fn a_run_is_complete_when_every_stream_fin_arrived_without_gaps() {
        let mut a = Tally::default();
        let mut b = Tally::default();
        // Stream 0 arrives split over two receiving threads, out of order.
        a.frame(1, st(9, 0, 1, None), 5);
        b.frame(1, st(9, 0, 0, None), 5);
        a.frame(1, st(9, 0, 2, Some(2)), 5);
        assert!(!a.runs()[0].complete);
        b.frame(1, st(9, 1, 0, Some(2)), 5);
        let mut all = Tally::default();
        all.merge(&a);
        all.merge(&b);
        let r = &all.runs()[0];
        assert_eq!((r.streams, r.fins, r.unique, r.lost), (2, 2, 4, 0));
        assert!(r.complete);
    }

    #[test]
    fn high_water_mark_is_one_past_the_highest_sequence() {
        let mut s = StreamTally::default();
        assert_eq!(s.high(), 0);
        s.mark(0);
        assert_eq!(s.high(), 1);
        s.mark(64);
        s.mark(200_000);
        assert_eq!(s.high(), 200_001);
        assert_eq!(s.unique(), 3);
    }

    #[test]
    fn send_times_after_receipt_count_as_zero_latency() {
        let mut t = Tally::default();
        t.frame(1, st(1, 0, 0, None), 500);
        assert_eq!(t.negative, 1);
    }
}
