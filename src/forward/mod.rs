//! Forward: the dispatcher and the outputs.
//!
//! The dispatcher receives enriched batches and offers each, shared, to
//! every output whose `match` some record of it satisfies, through that
//! output's own bounded queue. A full queue is handled by the output's
//! `when_full`: `block` waits (backpressure reaches TCP senders), `drop`
//! discards the batch and counts every matching record under
//! `queue_full`. Each output thread encodes its matching records straight
//! into one reusable buffer and writes it when its queue runs empty or the
//! buffer is large. A failed write is retried, after reconnecting, from the
//! first record not fully written, with backoff; nothing that reached an
//! output's queue is dropped except at shutdown past `shutdown_timeout`,
//! counted under `shutdown`.

pub mod disk_queue;
pub mod sinks;

use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use crate::batch::{Batch, Pool, SharedBatch};
use crate::config::{OutputConfig, OutputType, Transport, WhenFull};
use crate::encode::{Encoder, Format, Framing, SharedNames};
use crate::matcher::Matcher;
use crate::metrics::{Metrics, OutputMetrics, drop_reason, record as record_latency};
use disk_queue::{Journal, Reader};
use sinks::{FileSink, Sink, StdoutSink, TcpSink, TlsSink, UdpSink};

/// Write when the buffer holds this much, even if more is queued.
const WRITE_AT: usize = 256 * 1024;
/// Longest wait between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The dispatcher's view of one output.
#[derive(Clone)]
pub struct OutputHandle {
    pub name: String,
    pub when_full: WhenFull,
    pub matcher: Arc<Matcher>,
    pub tx: Sender<Arc<SharedBatch>>,
    pub metrics: Arc<OutputMetrics>,
}

/// A started output: its handle and its thread.
pub struct StartedOutput {
    pub handle: OutputHandle,
    pub thread: JoinHandle<()>,
}

/// Builds the sink, encoder and thread of one output.
pub fn start_output(
    cfg: &OutputConfig,
    om: Arc<OutputMetrics>,
    names: SharedNames,
    shutdown_timeout: Duration,
    gate: Option<Receiver<Option<JoinHandle<()>>>>,
) -> anyhow::Result<StartedOutput> {
    let matcher = Arc::new(
        Matcher::compile(&cfg.matches, &names.load())
            .map_err(|e| anyhow::anyhow!("output \"{}\": {e}", cfg.name))?,
    );
    if cfg.kind == OutputType::Archive {
        // The archive takes batches from the same bounded queue as every
        // output (so `when_full` applies) and writes them with its own
        // thread (`archive::writer`).
        let (tx, rx) = crossbeam_channel::bounded(cfg.queue_batches.max(1));
        let thread = crate::archive::writer::spawn(
            cfg,
            om.clone(),
            names,
            matcher.clone(),
            rx,
            shutdown_timeout,
            gate,
        )?;
        return Ok(StartedOutput {
            handle: OutputHandle {
                name: cfg.name.clone(),
                when_full: cfg.when_full,
                matcher,
                tx,
                metrics: om,
            },
            thread,
        });
    }
    let (sink, encoder): (Box<dyn Sink>, Encoder) = match cfg.kind {
        OutputType::File => {
            let path = cfg
                .path
                .clone()
                .ok_or_else(|| anyhow::anyhow!("output \"{}\": needs `path`", cfg.name))?;
            let sink = FileSink::new(path.clone()).map_err(|e| {
                anyhow::anyhow!(
                    "output \"{}\": cannot open {}: {e}",
                    cfg.name,
                    path.display()
                )
            })?;
            (
                Box::new(sink),
                Encoder::new(
                    cfg.format.unwrap_or(Format::Json),
                    cfg.framing.unwrap_or(Framing::Lf),
                ),
            )
        }
        OutputType::Stdout => (
            Box::new(StdoutSink),
            Encoder::new(
                cfg.format.unwrap_or(Format::Json),
                cfg.framing.unwrap_or(Framing::Lf),
            ),
        ),
        OutputType::Syslog => {
            let target = cfg
                .target
                .clone()
                .ok_or_else(|| anyhow::anyhow!("output \"{}\": needs `target`", cfg.name))?;
            let format = cfg.format.unwrap_or(Format::V2);
            match cfg.transport {
                Transport::Tcp => (
                    Box::new(TcpSink::new(target)),
                    Encoder::new(format, cfg.framing.unwrap_or(Framing::Lf)),
                ),
                Transport::Udp => (
                    Box::new(UdpSink::new(target)),
                    Encoder::new(format, Framing::None),
                ),
                Transport::Tls => {
                    let tls = crate::tls::client_config(
                        cfg.tls_ca.as_deref(),
                        cfg.tls_cert.as_deref(),
                        cfg.tls_key.as_deref(),
                    )
                    .map_err(|e| anyhow::anyhow!("output \"{}\": {e}", cfg.name))?;
                    let name = cfg.tls_server_name.clone().unwrap_or_else(|| {
                        let host = target.rsplit_once(':').map_or(target.as_str(), |(h, _)| h);
                        host.trim_matches(['[', ']']).to_string()
                    });
                    (
                        Box::new(TlsSink::new(target, name, tls)),
                        // RFC 5425 section 4.3: octet counting only.
                        Encoder::new(format, Framing::OctetCounting),
                    )
                }
            }
        }
        OutputType::Archive => anyhow::bail!("output \"{}\": archive handled above", cfg.name),
    };
    let (tx, rx) = crossbeam_channel::bounded(cfg.queue_batches.max(1));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let encode_threads = cfg
        .encode_threads
        .unwrap_or(
            if matches!(encoder.format, Format::Json | Format::V2) && cores >= 2 {
                2
            } else {
                1
            },
        )
        .clamp(1, 16);
    let delivery = Delivery {
        name: cfg.name.clone(),
        sink,
        m: om.clone(),
    };
    let disk = (cfg.when_full == WhenFull::Disk).then(|| {
        (
            cfg.disk_queue_path
                .clone()
                .unwrap_or_else(|| default_queue_dir(&cfg.name)),
            cfg.disk_queue_max.0,
        )
    });
    // At start-up the journal opens here, so that an error stops start-up;
    // a reloaded output opens it after its predecessor has closed it.
    let mut journal = match (&disk, &gate) {
        (Some((dir, max)), None) => Some(open_journal(&cfg.name, dir, *max, &om)?),
        _ => None,
    };
    let mut out = OutputLoop {
        name: cfg.name.clone(),
        rx,
        delivery: None,
        journal: None,
        encoders: (0..encode_threads).map(|_| encoder.clone()).collect(),
        matcher: matcher.clone(),
        names,
        m: om.clone(),
        buf: Vec::with_capacity(WRITE_AT + 64 * 1024),
        ends: Vec::with_capacity(4096),
        born: Vec::with_capacity(64),
        shutdown_timeout,
    };
    let name = cfg.name.clone();
    let thread = std::thread::Builder::new()
        .name(format!("out-{}", cfg.name))
        .spawn(move || {
            // A reloaded output waits for the one it replaces to finish its
            // queue, so that records are written once, in order.
            if let Some(g) = gate {
                match g.recv() {
                    Ok(Some(p)) => {
                        let _ = p.join();
                    }
                    Ok(None) => {}
                    Err(_) => return, // the reload was abandoned
                }
            }
            if let (None, Some((dir, max))) = (&journal, &disk) {
                match open_journal(&name, dir, *max, &out.m) {
                    Ok(j) => journal = Some(j),
                    Err(e) => {
                        log::error!("{e}; output \"{name}\" falls back to its memory queue");
                    }
                }
            }
            match journal {
                None => {
                    out.delivery = Some(delivery);
                    out.run();
                }
                Some(j) => {
                    out.journal = Some(j.clone());
                    let replay = std::thread::Builder::new()
                        .name(format!("dq-{name}"))
                        .spawn(move || replay_journal(delivery, j, shutdown_timeout));
                    out.run();
                    if let Ok(r) = replay {
                        let _ = r.join();
                    }
                }
            }
        })?;
    Ok(StartedOutput {
        handle: OutputHandle {
            name: cfg.name.clone(),
            when_full: cfg.when_full,
            matcher,
            tx,
            metrics: om,
        },
        thread,
    })
}

/// Opens (recovering) an output's disk queue.
fn open_journal(
    name: &str,
    dir: &std::path::Path,
    max: u64,
    om: &OutputMetrics,
) -> anyhow::Result<Arc<Journal>> {
    let (j, rec) = Journal::open(dir, max)
        .map_err(|e| anyhow::anyhow!("output \"{name}\": disk queue {}: {e}", dir.display()))?;
    if rec.records > 0 || rec.torn_bytes > 0 {
        log::info!(
            "output \"{name}\": disk queue {} holds {} records from the last run{}",
            dir.display(),
            rec.records,
            if rec.torn_bytes > 0 {
                format!("; cut a torn tail of {} bytes", rec.torn_bytes)
            } else {
                String::new()
            }
        );
    }
    om.disk_queue_records.set(rec.records as i64);
    om.disk_queue_bytes.set(rec.bytes as i64);
    Ok(Arc::new(j))
}

/// Where an output's disk queue lives when `disk_queue_path` is not set:
/// under systemd's `$STATE_DIRECTORY`, else `/var/lib/sluice`.
fn default_queue_dir(name: &str) -> PathBuf {
    let base = std::env::var_os("STATE_DIRECTORY")
        .and_then(|s| std::env::split_paths(&s).next())
        .unwrap_or_else(|| PathBuf::from("/var/lib/sluice"));
    base.join("queue").join(name)
}

/// Why a delivery stopped short.
enum Shortfall {
    /// The sink refused for good (e.g. stdout closed).
    GaveUp(u64),
    /// The shutdown deadline passed.
    Deadline(u64),
}

/// Writes encoded buffers to a sink: reconnects with backoff and resumes at
/// the first record not fully written.
struct Delivery {
    name: String,
    sink: Box<dyn Sink>,
    m: Arc<OutputMetrics>,
}

impl Delivery {
    fn m(&self) -> &OutputMetrics {
        &self.m
    }

    /// Writes `buf` (records ending at `ends`) until done, or until the
    /// sink gives up or `deadline` passes. Counts `sent`, `bytes` and the
    /// sink's own drops; the caller decides what a shortfall means.
    fn deliver(
        &mut self,
        buf: &[u8],
        ends: &[usize],
        deadline: Option<Instant>,
    ) -> Result<(), Shortfall> {
        let mut start = 0usize; // offset of the first record not yet written
        let mut first = 0usize; // index in `ends` of that record
        let mut backoff = Duration::from_millis(50);
        let mut result = Ok(());
        while start < buf.len() {
            let res = self.sink.write(&buf[start..], &ends[first..]);
            let connects = self.sink.take_connects();
            if connects > 0 {
                self.m().reconnects.add(connects);
                log::info!("output \"{}\": connected", self.name);
            }
            self.m().connected.set(self.sink.connected() as i64);
            let Err(e) = res else { break };
            let written = start + e.written;
            while first < ends.len() && ends[first] <= written {
                first += 1;
            }
            start = if first == 0 { 0 } else { ends[first - 1] };
            self.m().failed.inc();
            let left = (ends.len() - first) as u64;
            if !e.retry {
                log::error!(
                    "output \"{}\": {} (giving up on {left} records)",
                    self.name,
                    e.error
                );
                result = Err(Shortfall::GaveUp(left));
                break;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                result = Err(Shortfall::Deadline(left));
                break;
            }
            if backoff == Duration::from_millis(50) || backoff >= MAX_BACKOFF {
                log::warn!("output \"{}\": {}; retrying", self.name, e.error);
            }
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        let left = match &result {
            Ok(()) => 0,
            Err(Shortfall::GaveUp(n) | Shortfall::Deadline(n)) => *n,
        };
        let dropped = self.sink.take_dropped();
        let m = self.m();
        m.dropped[drop_reason::SEND_ERROR].add(dropped);
        m.sent
            .add((ends.len() as u64).saturating_sub(left + dropped));
        m.bytes
            .add(start.max(if left == 0 { buf.len() } else { 0 }) as u64);
        result
    }
}

/// The delivery thread of a disk-queued output: reads the journal in order,
/// delivers, acknowledges. At shutdown what it could not deliver stays in
/// the journal for the next start.
fn replay_journal(mut d: Delivery, j: Arc<Journal>, shutdown_timeout: Duration) {
    let mut reader = Reader::default();
    let mut buf = Vec::with_capacity(WRITE_AT + 64 * 1024);
    let mut ends = Vec::with_capacity(4096);
    let mut deadline = None;
    loop {
        buf.clear();
        ends.clear();
        let pos = match j.read(
            &mut reader,
            &mut buf,
            &mut ends,
            WRITE_AT,
            Duration::from_secs(1),
        ) {
            Ok(Some(p)) => p,
            Ok(None) => {
                if j.is_closed() {
                    return;
                }
                let _ = d.sink.flush();
                continue;
            }
            Err(e) => {
                log::error!(
                    "output \"{}\": {e}; delivery from the disk queue stops",
                    d.name
                );
                return;
            }
        };
        if j.is_closed() && deadline.is_none() {
            deadline = Some(Instant::now() + shutdown_timeout);
        }
        let bytes = (buf.len() + ends.len() * disk_queue::HEADER) as u64;
        match d.deliver(&buf, &ends, deadline) {
            Ok(()) | Err(Shortfall::GaveUp(_)) => {
                if let Err(e) = j.ack(pos, ends.len() as u64, bytes) {
                    log::error!("output \"{}\": disk queue ack: {e}", d.name);
                }
                let (r, b) = j.pending();
                d.m().disk_queue_records.set(r as i64);
                d.m().disk_queue_bytes.set(b as i64);
            }
            Err(Shortfall::Deadline(left)) => {
                log::warn!(
                    "output \"{}\": shutdown timeout; {} records stay in the disk queue for the next start",
                    d.name,
                    left + j.pending().0.saturating_sub(ends.len() as u64)
                );
                return;
            }
        }
    }
}

/// One batch encoded for an output, in the order it was queued.
struct Encoded {
    seq: u64,
    buf: Vec<u8>,
    /// End offset of each record in `buf`.
    ends: Vec<usize>,
    /// When the batch was first read, for latency; None if it matched
    /// nothing.
    born: Option<Instant>,
}

/// Work for an output's encoder threads.
struct EncodeJob {
    seq: u64,
    batch: Arc<SharedBatch>,
    /// Recycled buffers to encode into.
    buf: Vec<u8>,
    ends: Vec<usize>,
}

/// An encoder thread: encodes matching records of each batch into its
/// buffer. Several run per output so that one output's encoding (the
/// record JSON is the costliest step after parsing) spreads over cores.
fn encode_loop(
    jobs: Receiver<EncodeJob>,
    done: Sender<Encoded>,
    mut encoder: Encoder,
    matcher: Arc<Matcher>,
    names: SharedNames,
) {
    for mut job in jobs.iter() {
        let names = names.load();
        let mut n = 0u64;
        job.batch.records(|recs| {
            for (i, r) in recs.iter().enumerate() {
                crate::record::prefetch_ahead(recs, i);
                if matcher.matches(r) {
                    encoder.encode(r, &names, &mut job.buf);
                    job.ends.push(job.buf.len());
                    n += 1;
                }
            }
        });
        let e = Encoded {
            seq: job.seq,
            buf: job.buf,
            ends: job.ends,
            born: (n > 0).then(|| job.batch.born()),
        };
        drop(job.batch);
        if done.send(e).is_err() {
            return;
        }
    }
}

/// Batches an output has handed to its encoders and not yet written.
const MAX_IN_FLIGHT: usize = 8;

struct OutputLoop {
    name: String,
    rx: Receiver<Arc<SharedBatch>>,
    /// Memory-queued outputs deliver here; disk-queued ones journal instead.
    delivery: Option<Delivery>,
    journal: Option<Arc<Journal>>,
    /// Encoders of this output (taken when the thread starts).
    encoders: Vec<Encoder>,
    matcher: Arc<Matcher>,
    names: SharedNames,
    m: Arc<OutputMetrics>,
    /// Small encoded batches are gathered here and written together.
    buf: Vec<u8>,
    ends: Vec<usize>,
    /// (batch born, records) of the batches in `buf`, for latency.
    born: Vec<(Instant, u64)>,
    shutdown_timeout: Duration,
}

impl OutputLoop {
    fn m(&self) -> &OutputMetrics {
        &self.m
    }

    /// Hands queued batches to the encoder threads, takes their results
    /// back in queue order, and writes them.
    fn run(&mut self) {
        let hist = self.m().latency.local();
        let (jobs_tx, jobs_rx) = crossbeam_channel::bounded::<EncodeJob>(MAX_IN_FLIGHT);
        let (done_tx, done_rx) = crossbeam_channel::unbounded::<Encoded>();
        let mut threads = Vec::new();
        for (k, enc) in std::mem::take(&mut self.encoders).into_iter().enumerate() {
            let (jr, dt, m, nm) = (
                jobs_rx.clone(),
                done_tx.clone(),
                self.matcher.clone(),
                self.names.clone(),
            );
            match std::thread::Builder::new()
                .name(format!("enc-{}-{k}", self.name))
                .spawn(move || encode_loop(jr, dt, enc, m, nm))
            {
                Ok(t) => threads.push(t),
                Err(e) => log::error!("output \"{}\": cannot start an encoder: {e}", self.name),
            }
        }
        drop((jobs_rx, done_tx));
        let never = crossbeam_channel::never::<Arc<SharedBatch>>();
        let mut next_in = 0u64;
        let mut next_out = 0u64;
        let mut held: std::collections::BTreeMap<u64, Encoded> = std::collections::BTreeMap::new();
        let mut spare: Vec<(Vec<u8>, Vec<usize>)> = Vec::new();
        let mut closed = false;
        let mut last_flush = Instant::now();
        loop {
            let in_flight = (next_in - next_out) as usize;
            if closed && in_flight == 0 {
                break;
            }
            let input = if closed || in_flight >= MAX_IN_FLIGHT {
                &never
            } else {
                &self.rx
            };
            // Write what is gathered as soon as nothing else is waiting.
            let idle = if !self.buf.is_empty() {
                Duration::ZERO
            } else {
                Duration::from_secs(1)
            };
            crossbeam_channel::select! {
                recv(input) -> b => match b {
                    Ok(batch) => {
                        self.m().queue_batches.set(self.rx.len() as i64);
                        let (buf, ends) = spare.pop().unwrap_or_else(|| (Vec::with_capacity(64 * 1024), Vec::with_capacity(512)));
                        let job = EncodeJob { seq: next_in, batch, buf, ends };
                        next_in += 1;
                        if jobs_tx.send(job).is_err() {
                            log::error!("output \"{}\": encoders stopped", self.name);
                            break;
                        }
                    }
                    Err(_) => closed = true,
                },
                recv(done_rx) -> e => {
                    let Ok(e) = e else { break };
                    held.insert(e.seq, e);
                    while let Some(e) = held.remove(&next_out) {
                        next_out += 1;
                        self.take(e, &mut spare, &hist);
                    }
                }
                default(idle) => {
                    if !self.buf.is_empty() {
                        self.flush(None, &hist);
                    }
                    if last_flush.elapsed() >= Duration::from_secs(1) {
                        if let Some(d) = &mut self.delivery {
                            let _ = d.sink.flush();
                        }
                        if let Some(j) = &self.journal {
                            let _ = j.sync();
                        }
                        last_flush = Instant::now();
                    }
                }
            }
        }
        drop(jobs_tx);
        for t in threads {
            let _ = t.join();
        }
        let deadline = Instant::now() + self.shutdown_timeout;
        self.flush(Some(deadline), &hist);
        if let Some(d) = &mut self.delivery {
            let _ = d.sink.flush();
        }
        if let Some(j) = &self.journal {
            let _ = j.sync();
            j.close();
        }
    }

    /// Takes an encoded batch in order: a large one is written as it is,
    /// small ones are gathered and written together.
    fn take(
        &mut self,
        mut e: Encoded,
        spare: &mut Vec<(Vec<u8>, Vec<usize>)>,
        hist: &crate::metrics::LocalHist,
    ) {
        if let Some(born) = e.born {
            self.born.push((born, e.ends.len() as u64));
        }
        if self.buf.is_empty() && e.buf.len() >= WRITE_AT / 4 {
            std::mem::swap(&mut self.buf, &mut e.buf);
            std::mem::swap(&mut self.ends, &mut e.ends);
            self.flush(None, hist);
        } else {
            let base = self.buf.len();
            self.buf.extend_from_slice(&e.buf);
            self.ends.extend(e.ends.iter().map(|x| x + base));
            if self.buf.len() >= WRITE_AT {
                self.flush(None, hist);
            }
        }
        e.buf.clear();
        e.ends.clear();
        if spare.len() < MAX_IN_FLIGHT * 2 && e.buf.capacity() <= 4 * WRITE_AT {
            spare.push((e.buf, e.ends));
        }
    }

    /// Hands `buf` on: delivers it (memory queue) or journals it (disk).
    fn flush(&mut self, deadline: Option<Instant>, hist: &crate::metrics::LocalHist) {
        if let Some(j) = &self.journal {
            let mut scratch = Vec::new();
            let mut warned = false;
            loop {
                match j.append(&self.buf, &self.ends, &mut scratch) {
                    Ok(true) => break,
                    Ok(false) => {
                        // Full: hold on; the memory queue fills and the
                        // pipeline blocks, nothing is dropped.
                        if !warned {
                            log::warn!(
                                "output \"{}\": disk queue full ({} records); blocking until it drains",
                                self.name,
                                j.pending().0
                            );
                            warned = true;
                        }
                        self.m.disk_queue_full.inc();
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    Err(e) => {
                        log::error!(
                            "output \"{}\": disk queue write failed: {e}; retrying",
                            self.name
                        );
                        std::thread::sleep(Duration::from_millis(500));
                    }
                }
            }
            let (r, b) = j.pending();
            let m = &self.m;
            m.disk_queue_records.set(r as i64);
            m.disk_queue_bytes.set(b as i64);
        } else if let Some(d) = &mut self.delivery {
            match d.deliver(&self.buf, &self.ends, deadline) {
                Ok(()) => {}
                Err(Shortfall::GaveUp(left)) => d.m().dropped[drop_reason::SEND_ERROR].add(left),
                Err(Shortfall::Deadline(left)) => {
                    log::error!(
                        "output \"{}\": shutdown timeout; {left} records not delivered",
                        self.name
                    );
                    d.m().dropped[drop_reason::SHUTDOWN].add(left);
                }
            }
        }
        let mut h = hist.lock();
        for (born, n) in self.born.drain(..) {
            record_latency(&mut h, born.elapsed(), n);
        }
        drop(h);
        self.buf.clear();
        self.ends.clear();
    }
}

/// The forward stage: offers batches to outputs.
pub struct Dispatcher {
    pub outputs: Vec<OutputHandle>,
    pub pool: Arc<Pool>,
    pub metrics: Arc<Metrics>,
}

impl Dispatcher {
    /// Runs until `rx` closes; then closes every output queue.
    pub fn run(self, rx: Receiver<Batch>, swap: Option<Receiver<Vec<OutputHandle>>>) {
        let mut outputs = self.outputs;
        let m = self.metrics.stage("forward");
        let hist = m.latency.local();
        let mut swap = swap.unwrap_or_else(crossbeam_channel::never);
        loop {
            // A new output list applies at once (so replaced outputs see
            // their queue close), and always between batches.
            let batch = crossbeam_channel::select! {
                recv(swap) -> o => {
                    match o {
                        Ok(o) => outputs = o,
                        // The pipeline is shutting down: no more lists.
                        Err(_) => swap = crossbeam_channel::never(),
                    }
                    continue;
                }
                recv(rx) -> b => match b {
                    Ok(b) => b,
                    Err(_) => break,
                },
            };
            if let Some(o) = swap.try_iter().last() {
                outputs = o;
            }
            let n = batch.len() as u64;
            let born = batch.born();
            let shared = SharedBatch::new(batch, self.pool.clone());
            for o in &outputs {
                let any = o.matcher.is_empty()
                    || shared.records(|recs| recs.iter().any(|r| o.matcher.matches(r)));
                if !any {
                    continue;
                }
                let om = &o.metrics;
                match o.when_full {
                    WhenFull::Block | WhenFull::Disk => {
                        if o.tx.send(shared.clone()).is_err() {
                            log::error!("output \"{}\" has stopped", o.name);
                        }
                    }
                    WhenFull::Drop => match o.tx.try_send(shared.clone()) {
                        Ok(()) => {}
                        Err(TrySendError::Full(b)) | Err(TrySendError::Disconnected(b)) => {
                            let k = b.records(|recs| {
                                recs.iter().filter(|r| o.matcher.matches(r)).count()
                            });
                            om.dropped[drop_reason::QUEUE_FULL].add(k as u64);
                        }
                    },
                }
                om.queue_batches.set(o.tx.len() as i64);
            }
            drop(shared);
            m.records.add(n);
            m.batches.inc();
            record_latency(&mut hist.lock(), born.elapsed(), n);
        }
    }
}
