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

pub mod sinks;

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError};

use crate::batch::{Batch, Pool, SharedBatch};
use crate::config::{OutputConfig, OutputType, Transport, WhenFull};
use crate::encode::{Encoder, Format, Framing, Names};
use crate::matcher::Matcher;
use crate::metrics::{Metrics, OutputMetrics, drop_reason, record as record_latency};
use sinks::{FileSink, Sink, StdoutSink, TcpSink, UdpSink};

/// Write when the buffer holds this much, even if more is queued.
const WRITE_AT: usize = 256 * 1024;
/// Longest wait between reconnect attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// The dispatcher's view of one output.
pub struct OutputHandle {
    pub name: String,
    pub when_full: WhenFull,
    pub matcher: Arc<Matcher>,
    pub tx: Sender<Arc<SharedBatch>>,
    pub index: usize,
}

/// A started output: its handle and its thread.
pub struct StartedOutput {
    pub handle: OutputHandle,
    pub thread: JoinHandle<()>,
}

/// Builds the sink, encoder and thread of one output.
pub fn start_output(
    cfg: &OutputConfig,
    index: usize,
    names: Arc<Names>,
    metrics: Arc<Metrics>,
    shutdown_timeout: Duration,
) -> anyhow::Result<StartedOutput> {
    let matcher = Arc::new(
        Matcher::compile(&cfg.matches, &names)
            .map_err(|e| anyhow::anyhow!("output \"{}\": {e}", cfg.name))?,
    );
    if cfg.kind == OutputType::Archive {
        // The archive takes batches from the same bounded queue as every
        // output (so `when_full` applies) and writes them with its own
        // thread (`archive::writer`).
        if cfg.when_full == WhenFull::Disk {
            anyhow::bail!(
                "output \"{}\": when_full = \"disk\" is not built yet",
                cfg.name
            );
        }
        let (tx, rx) = crossbeam_channel::bounded(cfg.queue_batches.max(1));
        let thread = crate::archive::writer::spawn(
            cfg,
            index,
            names,
            metrics,
            matcher.clone(),
            rx,
            shutdown_timeout,
        )?;
        return Ok(StartedOutput {
            handle: OutputHandle {
                name: cfg.name.clone(),
                when_full: cfg.when_full,
                matcher,
                tx,
                index,
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
                    anyhow::bail!("output \"{}\": TLS transport is not built yet", cfg.name)
                }
            }
        }
        OutputType::Archive => anyhow::bail!("output \"{}\": archive handled above", cfg.name),
    };
    if cfg.when_full == WhenFull::Disk {
        anyhow::bail!(
            "output \"{}\": when_full = \"disk\" is not built yet",
            cfg.name
        );
    }
    let (tx, rx) = crossbeam_channel::bounded(cfg.queue_batches.max(1));
    let mut out = OutputLoop {
        name: cfg.name.clone(),
        rx,
        sink,
        encoder,
        matcher: matcher.clone(),
        names,
        metrics: metrics.clone(),
        index,
        buf: Vec::with_capacity(WRITE_AT + 64 * 1024),
        ends: Vec::with_capacity(4096),
        born: Vec::with_capacity(64),
        shutdown_timeout,
    };
    let thread = std::thread::Builder::new()
        .name(format!("out-{}", cfg.name))
        .spawn(move || out.run())?;
    Ok(StartedOutput {
        handle: OutputHandle {
            name: cfg.name.clone(),
            when_full: cfg.when_full,
            matcher,
            tx,
            index,
        },
        thread,
    })
}

struct OutputLoop {
    name: String,
    rx: Receiver<Arc<SharedBatch>>,
    sink: Box<dyn Sink>,
    encoder: Encoder,
    matcher: Arc<Matcher>,
    names: Arc<Names>,
    metrics: Arc<Metrics>,
    index: usize,
    buf: Vec<u8>,
    /// End offset of each record in `buf`.
    ends: Vec<usize>,
    /// (batch born, records) of the batches in `buf`, for latency.
    born: Vec<(Instant, u64)>,
    shutdown_timeout: Duration,
}

impl OutputLoop {
    fn m(&self) -> &OutputMetrics {
        &self.metrics.outputs[self.index]
    }

    fn run(&mut self) {
        let hist = self.m().latency.local();
        let mut last_flush = Instant::now();
        loop {
            let msg = if self.buf.is_empty() {
                self.rx.recv_timeout(Duration::from_secs(1))
            } else {
                self.rx.try_recv().map_err(|e| match e {
                    crossbeam_channel::TryRecvError::Empty => RecvTimeoutError::Timeout,
                    crossbeam_channel::TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
                })
            };
            match msg {
                Ok(b) => {
                    self.m().queue_batches.set(self.rx.len() as i64);
                    self.encode(&b);
                    drop(b);
                    if self.buf.len() >= WRITE_AT {
                        self.deliver(None, &hist);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if !self.buf.is_empty() {
                        self.deliver(None, &hist);
                    }
                    if last_flush.elapsed() >= Duration::from_secs(1) {
                        let _ = self.sink.flush();
                        last_flush = Instant::now();
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let deadline = Instant::now() + self.shutdown_timeout;
                    self.deliver(Some(deadline), &hist);
                    let _ = self.sink.flush();
                    return;
                }
            }
        }
    }

    fn encode(&mut self, b: &SharedBatch) {
        let mut n = 0u64;
        let (enc, names, matcher, buf, ends) = (
            &mut self.encoder,
            &*self.names,
            &*self.matcher,
            &mut self.buf,
            &mut self.ends,
        );
        b.records(|recs| {
            for r in recs.iter() {
                if matcher.matches(r) {
                    enc.encode(r, names, buf);
                    ends.push(buf.len());
                    n += 1;
                }
            }
        });
        if n > 0 {
            self.born.push((b.born(), n));
        }
    }

    /// Writes `buf`, retrying with backoff until it is written, or until
    /// `deadline` (shutdown) passes, when the rest is counted as dropped.
    fn deliver(&mut self, deadline: Option<Instant>, hist: &crate::metrics::LocalHist) {
        let mut start = 0usize; // offset of the first record not yet written
        let mut first = 0usize; // index in `ends` of that record
        let mut backoff = Duration::from_millis(50);
        while start < self.buf.len() {
            let res = self.sink.write(&self.buf[start..], &self.ends[first..]);
            let connects = self.sink.take_connects();
            if connects > 0 {
                self.m().reconnects.add(connects);
                log::info!("output \"{}\": connected", self.name);
            }
            self.m().connected.set(self.sink.connected() as i64);
            match res {
                Ok(()) => break,
                Err(e) => {
                    // Resume at the first record that was not fully written.
                    let written = start + e.written;
                    while first < self.ends.len() && self.ends[first] <= written {
                        first += 1;
                    }
                    start = if first == 0 { 0 } else { self.ends[first - 1] };
                    self.m().failed.inc();
                    let left = (self.ends.len() - first) as u64;
                    if !e.retry {
                        log::error!(
                            "output \"{}\": {} (giving up on {left} records)",
                            self.name,
                            e.error
                        );
                        self.m().dropped[drop_reason::SEND_ERROR].add(left);
                        break;
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        log::error!(
                            "output \"{}\": shutdown timeout; {left} records not delivered: {}",
                            self.name,
                            e.error
                        );
                        self.m().dropped[drop_reason::SHUTDOWN].add(left);
                        break;
                    }
                    if backoff == Duration::from_millis(50) || backoff >= MAX_BACKOFF {
                        log::warn!("output \"{}\": {}; retrying", self.name, e.error);
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        let dropped = self.sink.take_dropped();
        let m = &self.metrics.outputs[self.index];
        m.dropped[drop_reason::SEND_ERROR].add(dropped);
        m.sent.add((self.ends.len() as u64).saturating_sub(dropped));
        m.bytes.add(self.buf.len() as u64);
        {
            let mut h = hist.lock();
            for (born, n) in self.born.drain(..) {
                record_latency(&mut h, born.elapsed(), n);
            }
        }
        m.queue_records.set(0);
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
        for batch in rx.iter() {
            if let Some(s) = &swap
                && let Some(o) = s.try_iter().last()
            {
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
                let om = &self.metrics.outputs[o.index];
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
