//! Metrics: counters, gauges and latency histograms, and their Prometheus
//! text exposition.
//!
//! Threads tally locally and add to these counters once per batch; each
//! counter sits on its own cache line. Latency is recorded per thread into
//! its own hdrhistogram (locked only by that thread, once per batch) and the
//! histograms are merged when `/metrics` is scraped.

pub mod http;

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;
use hdrhistogram::Histogram;
use parking_lot::{Mutex, RwLock};

use crate::identity::IdentityStats;
use crate::record::flaw;

/// A monotonically increasing count.
#[derive(Default, Debug)]
pub struct Counter(CachePadded<AtomicU64>);

impl Counter {
    #[inline]
    pub fn add(&self, n: u64) {
        if n != 0 {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
    }
    #[inline]
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Default, Debug)]
pub struct Gauge(CachePadded<AtomicI64>);

impl Gauge {
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn set(&self, n: i64) {
        self.0.store(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One thread's histogram, in nanoseconds.
pub type LocalHist = Arc<Mutex<Histogram<u64>>>;

/// A latency distribution recorded per thread, merged at scrape time.
#[derive(Default)]
pub struct Latency {
    parts: Mutex<Vec<LocalHist>>,
}

/// Largest latency tracked exactly: 10 minutes (larger values saturate).
const MAX_NS: u64 = 600 * 1_000_000_000;

impl Latency {
    /// A histogram for the calling thread to record into.
    pub fn local(&self) -> LocalHist {
        let h = Arc::new(Mutex::new(
            Histogram::new_with_bounds(1_000, MAX_NS, 2)
                .expect("static histogram bounds are valid"),
        ));
        self.parts.lock().push(h.clone());
        h
    }

    /// All threads' histograms merged.
    pub fn merged(&self) -> Histogram<u64> {
        let mut out = Histogram::new_with_bounds(1_000, MAX_NS, 2).expect("static bounds");
        for p in self.parts.lock().iter() {
            let _ = out.add(&*p.lock());
        }
        out
    }
}

/// Records `n` samples of `elapsed` into a local histogram.
#[inline]
pub fn record(h: &mut Histogram<u64>, elapsed: Duration, n: u64) {
    let ns = (elapsed.as_nanos() as u64).clamp(1_000, MAX_NS);
    let _ = h.record_n(ns, n);
}

/// Why a connection was refused.
pub const REFUSE_REASONS: [&str; 4] = [
    "max_connections",
    "not_allowed",
    "tls_handshake",
    "accept_error",
];
pub mod refuse {
    pub const MAX_CONNECTIONS: usize = 0;
    pub const NOT_ALLOWED: usize = 1;
    pub const TLS: usize = 2;
    pub const ACCEPT_ERROR: usize = 3;
}

/// Per input.
#[derive(Default)]
pub struct InputMetrics {
    pub name: String,
    pub records: Counter,
    pub bytes: Counter,
    /// Records carrying each `flaw` bit.
    pub flaws: [Counter; flaw::NAMES.len()],
    /// Frames longer than `max_message_bytes` (cut).
    pub oversize: Counter,
    /// Records dropped before the pipeline because its queue was full (UDP).
    pub dropped_queue_full: Counter,
    pub refused: [Counter; REFUSE_REASONS.len()],
    pub connections: Gauge,
    pub connections_total: Counter,
    /// Connections closed for being idle past `idle_timeout`.
    pub idle_closed: Counter,
    /// Datagrams the kernel dropped before we read them (SO_RXQ_OVFL).
    pub kernel_drops: Counter,
}

/// Per pipeline stage.
#[derive(Default)]
pub struct StageMetrics {
    pub name: &'static str,
    pub records: Counter,
    pub batches: Counter,
    /// Receive → leaving this stage.
    pub latency: Latency,
}

/// Why an output did not deliver a record it matched.
pub const DROP_REASONS: [&str; 3] = ["queue_full", "shutdown", "send_error"];
pub mod drop_reason {
    pub const QUEUE_FULL: usize = 0;
    pub const SHUTDOWN: usize = 1;
    pub const SEND_ERROR: usize = 2;
}

/// Per output.
#[derive(Default)]
pub struct OutputMetrics {
    pub name: String,
    pub sent: Counter,
    pub bytes: Counter,
    pub failed: Counter,
    pub dropped: [Counter; DROP_REASONS.len()],
    pub queue_batches: Gauge,
    pub queue_records: Gauge,
    pub reconnects: Counter,
    pub connected: Gauge,
    pub disk_queue_bytes: Gauge,
    pub disk_queue_records: Gauge,
    /// Writes that waited because the disk queue was at its limit.
    pub disk_queue_full: Counter,
    /// Receive → written to the output.
    pub latency: Latency,
}

/// A closure that appends more exposition text.
pub type ExtraRender = Arc<dyn Fn(&mut String) + Send + Sync>;

/// Stage names, in pipeline order.
pub const STAGES: [&str; 4] = ["parse", "classify", "enrich", "forward"];

/// Everything `/metrics` shows.
pub struct Metrics {
    /// By input id (ids are never reused; a removed input keeps its slot
    /// but is no longer shown).
    inputs: RwLock<Vec<Arc<InputMetrics>>>,
    pub stages: Vec<StageMetrics>,
    /// The outputs of the running config.
    outputs: RwLock<Vec<Arc<OutputMetrics>>>,
    pub identity: Mutex<Option<Arc<IdentityStats>>>,
    pub started: Instant,
    pub config_reloads: Counter,
    pub config_reload_failures: Counter,
    /// Extra exposition appended by other parts (archive).
    pub extra: Mutex<Vec<ExtraRender>>,
}

impl Metrics {
    pub fn new(inputs: &[String], outputs: &[String]) -> Arc<Metrics> {
        Arc::new(Metrics {
            inputs: RwLock::new(
                inputs
                    .iter()
                    .map(|n| {
                        Arc::new(InputMetrics {
                            name: n.clone(),
                            ..Default::default()
                        })
                    })
                    .collect(),
            ),
            stages: STAGES
                .iter()
                .map(|n| StageMetrics {
                    name: n,
                    ..Default::default()
                })
                .collect(),
            outputs: RwLock::new(
                outputs
                    .iter()
                    .map(|n| {
                        Arc::new(OutputMetrics {
                            name: n.clone(),
                            ..Default::default()
                        })
                    })
                    .collect(),
            ),
            identity: Mutex::new(None),
            started: Instant::now(),
            config_reloads: Counter::default(),
            config_reload_failures: Counter::default(),
            extra: Mutex::new(Vec::new()),
        })
    }

    pub fn stage(&self, name: &str) -> &StageMetrics {
        self.stages
            .iter()
            .find(|s| s.name == name)
            .expect("stage names are static")
    }

    /// The metrics of every input id.
    pub fn inputs(&self) -> Vec<Arc<InputMetrics>> {
        self.inputs.read().clone()
    }

    pub fn input(&self, id: u16) -> Arc<InputMetrics> {
        self.inputs.read()[id as usize].clone()
    }

    /// Sets the input list after a reload: `names` by id (existing ids keep
    /// their counters, new ids get new ones, a renamed input its new name).
    pub fn set_inputs(&self, names: &[String]) -> Vec<Arc<InputMetrics>> {
        let mut v = self.inputs.write();
        for (id, n) in names.iter().enumerate() {
            match v.get(id) {
                Some(m) if m.name == *n => {}
                Some(_) => {
                    v[id] = Arc::new(InputMetrics {
                        name: n.clone(),
                        ..Default::default()
                    })
                }
                None => v.push(Arc::new(InputMetrics {
                    name: n.clone(),
                    ..Default::default()
                })),
            }
        }
        v.clone()
    }

    /// Hides inputs that a reload removed.
    pub fn retire_inputs(&self, ids: &[u16]) {
        let mut v = self.inputs.write();
        for &id in ids {
            if let Some(m) = v.get_mut(id as usize) {
                *m = Arc::new(InputMetrics {
                    name: String::new(),
                    ..Default::default()
                });
            }
        }
    }

    /// The metrics of the output named `name`.
    pub fn output(&self, name: &str) -> Option<Arc<OutputMetrics>> {
        self.outputs.read().iter().find(|o| o.name == name).cloned()
    }

    /// The output list after a reload, in config order: outputs that stay
    /// keep their counters.
    pub fn set_outputs(&self, names: &[String]) -> Vec<Arc<OutputMetrics>> {
        let mut v = self.outputs.write();
        let new: Vec<Arc<OutputMetrics>> = names
            .iter()
            .map(|n| {
                v.iter().find(|o| o.name == *n).cloned().unwrap_or_else(|| {
                    Arc::new(OutputMetrics {
                        name: n.clone(),
                        ..Default::default()
                    })
                })
            })
            .collect();
        *v = new.clone();
        new
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn render(&self) -> String {
        let mut r = Render::default();
        let ins: Vec<Arc<InputMetrics>> = self
            .inputs
            .read()
            .iter()
            .filter(|i| !i.name.is_empty())
            .cloned()
            .collect();
        let ins = &ins;
        r.counter("sluice_input_records_total", "Records received, by input.");
        for i in ins {
            r.sample(
                "sluice_input_records_total",
                &[("input", &i.name)],
                i.records.get() as f64,
            );
        }
        r.counter(
            "sluice_input_bytes_total",
            "Message bytes received (without framing), by input.",
        );
        for i in ins {
            r.sample(
                "sluice_input_bytes_total",
                &[("input", &i.name)],
                i.bytes.get() as f64,
            );
        }
        r.counter(
            "sluice_input_parse_errors_total",
            "Records kept despite a parse problem, by input and reason.",
        );
        for i in ins {
            for (k, name) in flaw::NAMES.iter().enumerate() {
                r.sample(
                    "sluice_input_parse_errors_total",
                    &[("input", &i.name), ("reason", name)],
                    i.flaws[k].get() as f64,
                );
            }
        }
        r.counter(
            "sluice_input_oversize_total",
            "Frames longer than max_message_bytes, kept cut, by input.",
        );
        for i in ins {
            r.sample(
                "sluice_input_oversize_total",
                &[("input", &i.name)],
                i.oversize.get() as f64,
            );
        }
        r.counter(
            "sluice_input_dropped_total",
            "Records dropped at the input, by input and reason.",
        );
        for i in ins {
            r.sample(
                "sluice_input_dropped_total",
                &[("input", &i.name), ("reason", "queue_full")],
                i.dropped_queue_full.get() as f64,
            );
            r.sample(
                "sluice_input_dropped_total",
                &[("input", &i.name), ("reason", "kernel_buffer")],
                i.kernel_drops.get() as f64,
            );
        }
        r.counter(
            "sluice_input_connections_refused_total",
            "Connections refused or closed by sluice, by input and reason.",
        );
        for i in ins {
            for (k, reason) in REFUSE_REASONS.iter().enumerate() {
                r.sample(
                    "sluice_input_connections_refused_total",
                    &[("input", &i.name), ("reason", reason)],
                    i.refused[k].get() as f64,
                );
            }
            r.sample(
                "sluice_input_connections_refused_total",
                &[("input", &i.name), ("reason", "idle_timeout")],
                i.idle_closed.get() as f64,
            );
        }
        r.counter(
            "sluice_input_connections_accepted_total",
            "Connections accepted, by input.",
        );
        for i in ins {
            r.sample(
                "sluice_input_connections_accepted_total",
                &[("input", &i.name)],
                i.connections_total.get() as f64,
            );
        }
        r.gauge("sluice_input_connections", "Open connections, by input.");
        for i in ins {
            r.sample(
                "sluice_input_connections",
                &[("input", &i.name)],
                i.connections.get() as f64,
            );
        }

        r.counter(
            "sluice_stage_records_total",
            "Records that left each stage.",
        );
        for s in &self.stages {
            r.sample(
                "sluice_stage_records_total",
                &[("stage", s.name)],
                s.records.get() as f64,
            );
        }
        r.counter(
            "sluice_stage_batches_total",
            "Batches that left each stage.",
        );
        for s in &self.stages {
            r.sample(
                "sluice_stage_batches_total",
                &[("stage", s.name)],
                s.batches.get() as f64,
            );
        }
        r.histogram_head(
            "sluice_stage_latency_seconds",
            "Time from receipt to leaving each stage.",
        );
        for s in &self.stages {
            r.histogram(
                "sluice_stage_latency_seconds",
                &[("stage", s.name)],
                &s.latency.merged(),
            );
        }

        let outs = self.outputs.read().clone();
        let outs = &outs;
        r.counter(
            "sluice_output_sent_total",
            "Records written to each output.",
        );
        for o in outs {
            r.sample(
                "sluice_output_sent_total",
                &[("output", &o.name)],
                o.sent.get() as f64,
            );
        }
        r.counter("sluice_output_bytes_total", "Bytes written to each output.");
        for o in outs {
            r.sample(
                "sluice_output_bytes_total",
                &[("output", &o.name)],
                o.bytes.get() as f64,
            );
        }
        r.counter(
            "sluice_output_failed_total",
            "Write attempts that failed (records are retried, not lost).",
        );
        for o in outs {
            r.sample(
                "sluice_output_failed_total",
                &[("output", &o.name)],
                o.failed.get() as f64,
            );
        }
        r.counter(
            "sluice_output_dropped_total",
            "Records that matched an output but did not reach it, by reason.",
        );
        for o in outs {
            for (k, reason) in DROP_REASONS.iter().enumerate() {
                r.sample(
                    "sluice_output_dropped_total",
                    &[("output", &o.name), ("reason", reason)],
                    o.dropped[k].get() as f64,
                );
            }
        }
        r.gauge(
            "sluice_output_queue_batches",
            "Batches waiting in each output's queue.",
        );
        for o in outs {
            r.sample(
                "sluice_output_queue_batches",
                &[("output", &o.name)],
                o.queue_batches.get() as f64,
            );
        }
        r.gauge(
            "sluice_output_queue_records",
            "Records waiting in each output's queue.",
        );
        for o in outs {
            r.sample(
                "sluice_output_queue_records",
                &[("output", &o.name)],
                o.queue_records.get() as f64,
            );
        }
        r.counter(
            "sluice_output_reconnects_total",
            "Connections (re)made by each output.",
        );
        for o in outs {
            r.sample(
                "sluice_output_reconnects_total",
                &[("output", &o.name)],
                o.reconnects.get() as f64,
            );
        }
        r.gauge(
            "sluice_output_connected",
            "1 when the output's peer is connected.",
        );
        for o in outs {
            r.sample(
                "sluice_output_connected",
                &[("output", &o.name)],
                o.connected.get() as f64,
            );
        }
        r.gauge(
            "sluice_output_disk_queue_bytes",
            "Bytes held in each output's disk queue.",
        );
        for o in outs {
            r.sample(
                "sluice_output_disk_queue_bytes",
                &[("output", &o.name)],
                o.disk_queue_bytes.get() as f64,
            );
        }
        r.gauge(
            "sluice_output_disk_queue_records",
            "Records held in each output's disk queue.",
        );
        for o in outs {
            r.sample(
                "sluice_output_disk_queue_records",
                &[("output", &o.name)],
                o.disk_queue_records.get() as f64,
            );
        }
        r.counter(
            "sluice_output_disk_queue_full_total",
            "Times an output waited because its disk queue was at disk_queue_max.",
        );
        for o in outs {
            r.sample(
                "sluice_output_disk_queue_full_total",
                &[("output", &o.name)],
                o.disk_queue_full.get() as f64,
            );
        }
        r.histogram_head(
            "sluice_end_to_end_latency_seconds",
            "Time from receipt to being written to each output.",
        );
        for o in outs {
            r.histogram(
                "sluice_end_to_end_latency_seconds",
                &[("output", &o.name)],
                &o.latency.merged(),
            );
        }

        if let Some(id) = self.identity.lock().as_ref() {
            r.gauge(
                "sluice_identity_entries",
                "Addresses in the identity table.",
            );
            r.sample(
                "sluice_identity_entries",
                &[],
                id.entries.load(Ordering::Relaxed) as f64,
            );
            r.counter(
                "sluice_identity_learned_total",
                "Logons the identity table learned from.",
            );
            r.sample(
                "sluice_identity_learned_total",
                &[],
                id.learned.load(Ordering::Relaxed) as f64,
            );
            r.counter(
                "sluice_identity_evicted_total",
                "Entries evicted because the table was full.",
            );
            r.sample(
                "sluice_identity_evicted_total",
                &[],
                id.evicted.load(Ordering::Relaxed) as f64,
            );
            r.counter(
                "sluice_identity_enriched_total",
                "Records given a src_user.",
            );
            r.sample(
                "sluice_identity_enriched_total",
                &[],
                id.enriched.load(Ordering::Relaxed) as f64,
            );
        }
        r.counter("sluice_config_reloads_total", "Configs applied by reload.");
        r.sample(
            "sluice_config_reloads_total",
            &[],
            self.config_reloads.get() as f64,
        );
        r.counter(
            "sluice_config_reload_failures_total",
            "Reloads refused (config did not check).",
        );
        r.sample(
            "sluice_config_reload_failures_total",
            &[],
            self.config_reload_failures.get() as f64,
        );
        r.gauge("sluice_uptime_seconds", "Seconds since sluice started.");
        r.sample(
            "sluice_uptime_seconds",
            &[],
            self.started.elapsed().as_secs_f64(),
        );
        r.gauge(
            "sluice_resident_memory_bytes",
            "Resident set size of the sluice process.",
        );
        r.sample("sluice_resident_memory_bytes", &[], rss_bytes() as f64);
        let mut out = r.out;
        for f in self.extra.lock().iter() {
            f(&mut out);
        }
        out
    }
}

/// Resident set size from /proc/self/statm.
pub fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    pages * page
}

/// Histogram bucket bounds in seconds.
pub const BUCKETS: [f64; 18] = [
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0,
];

/// Builds the text exposition.
#[derive(Default)]
pub struct Render {
    pub out: String,
}

fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl Render {
    pub fn counter(&mut self, name: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} counter");
    }
    pub fn gauge(&mut self, name: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} gauge");
    }
    pub fn histogram_head(&mut self, name: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} histogram");
    }
    fn labels(labels: &[(&str, &str)], extra: Option<(&str, &str)>) -> String {
        let mut s = String::new();
        let all = labels.iter().copied().chain(extra);
        for (i, (k, v)) in all.enumerate() {
            s.push(if i == 0 { '{' } else { ',' });
            let _ = write!(s, "{k}=\"{}\"", escape_label(v));
        }
        if !s.is_empty() {
            s.push('}');
        }
        s
    }
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], v: f64) {
        let _ = writeln!(self.out, "{name}{} {v}", Self::labels(labels, None));
    }
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram<u64>) {
        for b in BUCKETS {
            let le = (b * 1e9) as u64;
            let n = if h.is_empty() {
                0
            } else {
                h.count_between(0, le)
            };
            let _ = writeln!(
                self.out,
                "{name}_bucket{} {n}",
                Self::labels(labels, Some(("le", &b.to_string())))
            );
        }
        let _ = writeln!(
            self.out,
            "{name}_bucket{} {}",
            Self::labels(labels, Some(("le", "+Inf"))),
            h.len()
        );
        let sum = h.mean() * h.len() as f64 / 1e9;
        let _ = writeln!(self.out, "{name}_sum{} {sum}", Self::labels(labels, None));
        let _ = writeln!(
            self.out,
            "{name}_count{} {}",
            Self::labels(labels, None),
            h.len()
        );
    }
}
