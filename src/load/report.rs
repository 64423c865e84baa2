//! Reports of `sluice load` and `sluice sink`: a readable table, or JSON
//! with `--json`, and the once-a-second progress lines.

use std::fmt::Write as _;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::tally::{RunSummary, Tally};

/// What a sender run did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SendReport {
    /// The run id in every stamp (hex).
    pub run: String,
    pub streams: u32,
    pub tcp_streams: u32,
    pub udp_streams: u32,
    pub mix: String,
    pub framing: String,
    /// Offered rate asked for (messages/s), 0 = flat out.
    pub rate: f64,
    /// Messages sent, each stream's fin included.
    pub sent: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
    /// Mean message size on the wire (framing included).
    pub mean_bytes: u64,
    /// Send calls retried (UDP: nobody listening yet).
    pub retries: u64,
    pub errors: Vec<String>,
}

impl SendReport {
    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "sluice load: run {}", self.run);
        let _ = writeln!(
            s,
            "  streams     {} ({} TCP, {} UDP), framing {}",
            self.streams, self.tcp_streams, self.udp_streams, self.framing
        );
        let _ = writeln!(s, "  mix         {}", self.mix);
        let rate = if self.rate > 0.0 {
            format!("{}/s", human(self.rate))
        } else {
            "flat out".into()
        };
        let _ = writeln!(s, "  offered     {rate}");
        let _ = writeln!(
            s,
            "  sent        {} messages, {} bytes (mean {} B) in {:.3} s",
            self.sent, self.bytes, self.mean_bytes, self.seconds
        );
        let _ = writeln!(
            s,
            "  throughput  {} messages/s, {:.1} MB/s",
            human(self.records_per_sec),
            self.mb_per_sec
        );
        if self.retries > 0 {
            let _ = writeln!(s, "  retries     {}", self.retries);
        }
        for e in &self.errors {
            let _ = writeln!(s, "  error       {e}");
        }
        s
    }
}

/// Latency percentiles, milliseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Percentiles {
    pub samples: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        let ms = |ns: u64| ns as f64 / 1e6;
        Percentiles {
            samples: h.len(),
            mean: h.mean() / 1e6,
            p50: ms(h.value_at_quantile(0.5)),
            p90: ms(h.value_at_quantile(0.9)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

/// What a sink received.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SinkReport {
    /// Frames received (stamped or not, duplicates included).
    pub records: u64,
    pub bytes: u64,
    pub unstamped: u64,
    /// Distinct stamped messages.
    pub unique: u64,
    /// Stamped messages the senders sent that did not arrive.
    pub lost: u64,
    pub duplicates: u64,
    /// Every run seen is complete (all fins, nothing missing).
    pub complete: bool,
    /// First to last frame received.
    pub seconds: f64,
    pub records_per_sec: f64,
    pub mb_per_sec: f64,
    /// Earliest send stamp to last frame received: the pipeline's
    /// throughput including its start and its drain.
    pub e2e_seconds: f64,
    pub e2e_records_per_sec: f64,
    /// Send → sink latency.
    pub latency_ms: Percentiles,
    /// Frames stamped later than they arrived (clocks of two machines
    /// disagree); counted as 0 latency.
    pub clock_skewed: u64,
    pub runs: Vec<RunSummary>,
}

impl SinkReport {
    pub fn from_tally(t: &Tally) -> SinkReport {
        let runs = t.runs();
        let seconds = if t.frames > 0 {
            (t.last_recv_ns.saturating_sub(t.first_recv_ns)) as f64 / 1e9
        } else {
            0.0
        };
        let e2e_seconds = if t.first_sent_ns < t.last_recv_ns {
            (t.last_recv_ns - t.first_sent_ns) as f64 / 1e9
        } else {
            0.0
        };
        let per = |n: f64, s: f64| if s > 0.0 { n / s } else { 0.0 };
        SinkReport {
            records: t.frames,
            bytes: t.bytes,
            unstamped: t.unstamped,
            unique: runs.iter().map(|r| r.unique).sum(),
            lost: runs.iter().map(|r| r.lost).sum(),
            duplicates: runs.iter().map(|r| r.duplicates).sum(),
            complete: !runs.is_empty() && runs.iter().all(|r| r.complete),
            seconds,
            records_per_sec: per(t.frames as f64, seconds),
            mb_per_sec: per(t.bytes as f64 / 1e6, seconds),
            e2e_seconds,
            e2e_records_per_sec: per((t.frames - t.unstamped) as f64, e2e_seconds),
            latency_ms: Percentiles::of(&t.latency),
            clock_skewed: t.negative,
            runs,
        }
    }

    pub fn table(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "sluice sink");
        let _ = writeln!(
            s,
            "  received    {} records ({} unstamped), {} bytes",
            self.records, self.unstamped, self.bytes
        );
        let _ = writeln!(
            s,
            "  throughput  {} records/s, {:.1} MB/s over {:.3} s (first to last record)",
            human(self.records_per_sec),
            self.mb_per_sec,
            self.seconds
        );
        let _ = writeln!(
            s,
            "  end to end  {} records/s over {:.3} s (first send to last record)",
            human(self.e2e_records_per_sec),
            self.e2e_seconds
        );
        let _ = writeln!(
            s,
            "  lost        {}   duplicates {}   complete {}",
            self.lost,
            self.duplicates,
            if self.complete { "yes" } else { "no" }
        );
        let l = &self.latency_ms;
        let _ = writeln!(
            s,
            "  latency ms  p50 {:.3}  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  (mean {:.3}, {} samples)",
            l.p50, l.p90, l.p99, l.p999, l.max, l.mean, l.samples
        );
        if self.clock_skewed > 0 {
            let _ = writeln!(
                s,
                "  warning     {} records stamped after they arrived: sender and sink clocks disagree",
                self.clock_skewed
            );
        }
        if !self.runs.is_empty() {
            let _ = writeln!(
                s,
                "\n  {:<8}  {:>7}  {:>12}  {:>12}  {:>10}  {:>10}  {:>8}",
                "run", "streams", "expected", "received", "lost", "duplicates", "complete"
            );
            for r in &self.runs {
                let _ = writeln!(
                    s,
                    "  {:08x}  {:>7}  {:>12}  {:>12}  {:>10}  {:>10}  {:>8}",
                    r.run,
                    format!(
                        "{}/{}",
                        r.fins,
                        if r.streams > 0 {
                            r.streams.to_string()
                        } else {
                            "?".into()
                        }
                    ),
                    r.expected,
                    r.unique,
                    r.lost,
                    r.duplicates,
                    if r.complete { "yes" } else { "no" }
                );
            }
        }
        s
    }
}

/// `1234567.0` → `1.23M`.
pub fn human(n: f64) -> String {
    let a = n.abs();
    if a >= 1e9 {
        format!("{:.2}G", n / 1e9)
    } else if a >= 1e6 {
        format!("{:.2}M", n / 1e6)
    } else if a >= 1e3 {
        format!("{:.1}k", n / 1e3)
    } else {
        format!("{n:.0}")
    }
}

/// Prints one progress line a second on stderr from counters it reads.
pub struct Progress {
    what: &'static str,
    verb: &'static str,
    start: std::time::Instant,
    last: std::time::Instant,
    last_n: u64,
}

impl Progress {
    pub fn new(what: &'static str, verb: &'static str) -> Progress {
        let now = std::time::Instant::now();
        Progress {
            what,
            verb,
            start: now,
            last: now,
            last_n: 0,
        }
    }

    /// Prints a line when a second has passed since the last one.
    pub fn tick(&mut self, n: u64, extra: &str) {
        let now = std::time::Instant::now();
        let dt = now.duration_since(self.last).as_secs_f64();
        if dt < 1.0 {
            return;
        }
        let rate = (n - self.last_n.min(n)) as f64 / dt;
        let avg = n as f64 / now.duration_since(self.start).as_secs_f64();
        eprintln!(
            "{}: {:>5.0} s  {} {}  {}/s now  {}/s mean{extra}",
            self.what,
            now.duration_since(self.start).as_secs_f64(),
            human(n as f64),
            self.verb,
            human(rate),
            human(avg),
        );
        self.last = now;
        self.last_n = n;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn big_numbers_print_with_si_suffixes() {
        assert_eq!(human(999.0), "999");
        assert_eq!(human(412_345.0), "412.3k");
        assert_eq!(human(2_080_000.0), "2.08M");
    }

    #[test]
    fn a_sink_report_sums_its_runs_and_prints_them() {
        let mut t = Tally::default();
        for seq in 0..10 {
            let fin = (seq == 9).then_some(1);
            t.frame(
                100,
                Some(super::super::stamp::Stamp {
                    run: 0xfeed,
                    stream: 0,
                    seq,
                    sent_ns: 1_000_000,
                    fin_streams: fin,
                }),
                3_000_000,
            );
        }
        let r = SinkReport::from_tally(&t);
        assert_eq!((r.records, r.unique, r.lost, r.complete), (10, 10, 0, true));
        assert!((r.latency_ms.p50 - 2.0).abs() < 0.01);
        assert!(r.table().contains("0000feed"));
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["runs"][0]["run"], "0000feed");
    }
}
