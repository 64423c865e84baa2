//! Receive: input worker threads that read sockets, frame and parse.
//!
//! Each worker is pinned to a core and owns a mio `Poll`, one SO_REUSEPORT
//! socket per UDP input, and the TCP connections handed to it. Worker 0
//! also accepts: it checks the allowlist and `max_connections`, then gives
//! each connection to the least-loaded worker. Frames go into the worker's
//! current batch; a full batch, or the end of a poll round, is parsed and
//! sent to classify. Sending blocks when classify's queue is full: TCP
//! senders feel backpressure, UDP datagrams wait in the kernel buffer (its
//! overflows are counted).
//!
//! A worker never allocates per record, never drops a record it read, and
//! never lets one connection's bad bytes affect another.

pub mod tcp;
pub mod udp;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use crate::batch::{Batch, BatchOwner, Pool};
use crate::config::{Config, InputType};
use crate::frame::{FrameKind, Framer};
use crate::logging::RateLimit;
use crate::metrics::{InputMetrics, LocalHist, Metrics, record as record_latency, refuse};
use crate::net::CidrSet;
use crate::parse::Parser;
use crate::record::flaw;
use crate::time::Timestamp;
use crate::warn_limited;
use tcp::{Conn, Stream};

const WAKER: Token = Token(0);
const UDP_BASE: usize = 1;
const LISTEN_BASE: usize = 1_000;
const CONN_BASE: usize = 10_000;

/// Reads per socket before other sockets get a turn.
const READ_BUDGET: usize = 32;
/// Bytes read per `read` call on a TCP connection.
const READ_CHUNK: usize = 256 * 1024;

/// What workers need to know about an input.
#[derive(Clone, Debug)]
pub struct InputRuntime {
    pub id: u16,
    pub name: String,
    pub kind: InputType,
    pub max_message_bytes: usize,
    pub max_connections: usize,
    pub allow: CidrSet,
    pub idle_timeout: Option<Duration>,
    /// TLS inputs: the server config (certificate, key, client CA).
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// The runtime settings of one input.
pub fn runtime_of(id: u16, i: &crate::config::InputConfig) -> anyhow::Result<InputRuntime> {
    Ok(InputRuntime {
        id,
        name: i.name.clone(),
        kind: i.kind,
        max_message_bytes: i.max_message_bytes.as_usize(),
        max_connections: i.max_connections,
        allow: CidrSet::parse_all(&i.allow).unwrap_or_default(),
        idle_timeout: (!i.idle_timeout.0.is_zero()).then_some(i.idle_timeout.0),
        tls: match (i.kind, &i.tls_cert, &i.tls_key) {
            (InputType::Tls, Some(c), Some(k)) => Some(
                crate::tls::server_config(c, k, i.tls_client_ca.as_deref())
                    .map_err(|e| anyhow::anyhow!("input \"{}\": {e}", i.name))?,
            ),
            (InputType::Tls, _, _) => {
                anyhow::bail!("input \"{}\": TLS needs tls_cert and tls_key", i.name)
            }
            _ => None,
        },
    })
}

/// The sockets of one input, bound before any worker sees them so that a
/// bind error is reported at start-up (or refuses a reload).
pub enum InputSockets {
    /// One SO_REUSEPORT socket per worker.
    Udp(Vec<mio::net::UdpSocket>),
    Tcp(mio::net::TcpListener),
}

/// Binds input `i` for `workers` workers; returns the sockets and the
/// address they got.
pub fn bind_input(
    i: &crate::config::InputConfig,
    workers: usize,
) -> anyhow::Result<(InputSockets, SocketAddr)> {
    let listen: SocketAddr = i.listen.parse()?;
    match i.kind {
        InputType::Udp => {
            let want = i.receive_buffer.as_usize();
            let (socks, granted) =
                udp::bind_reuseport(listen, workers.max(1), want).map_err(|e| {
                    anyhow::anyhow!("input \"{}\": cannot bind UDP {listen}: {e}", i.name)
                })?;
            if granted < want {
                log::warn!(
                    "input \"{}\": asked for a {} KiB receive buffer, the kernel granted {} KiB \
                     (raise net.core.rmem_max or run with CAP_NET_ADMIN)",
                    i.name,
                    want / 1024,
                    granted / 1024
                );
            }
            let addr = socks[0].local_addr()?;
            Ok((InputSockets::Udp(socks), addr))
        }
        InputType::Tcp | InputType::Tls => {
            let l = tcp::bind_listener(listen).map_err(|e| {
                anyhow::anyhow!("input \"{}\": cannot bind TCP {listen}: {e}", i.name)
            })?;
            let addr = l.local_addr()?;
            Ok((InputSockets::Tcp(l), addr))
        }
    }
}

/// The protocol name an input is logged with.
pub fn proto_name(kind: InputType) -> &'static str {
    match kind {
        InputType::Udp => "udp",
        InputType::Tcp => "tcp",
        InputType::Tls => "tls",
    }
}

/// Sockets bound at start-up.
pub struct BoundInputs {
    pub sockets: Vec<(u16, InputSockets)>,
    /// (input name, protocol, address) as bound.
    pub addrs: Vec<(String, &'static str, SocketAddr)>,
    pub runtime: Arc<Vec<InputRuntime>>,
}

/// Binds every input of `cfg`.
pub fn bind_inputs(cfg: &Config) -> anyhow::Result<BoundInputs> {
    let mut sockets = Vec::new();
    let mut addrs = Vec::new();
    let mut runtime = Vec::new();
    for (id, i) in cfg.inputs.iter().enumerate() {
        runtime.push(runtime_of(id as u16, i)?);
        let (socks, addr) = bind_input(i, cfg.pipeline.workers)?;
        addrs.push((i.name.clone(), proto_name(i.kind), addr));
        sockets.push((id as u16, socks));
    }
    Ok(BoundInputs {
        sockets,
        addrs,
        runtime: Arc::new(runtime),
    })
}

/// A change of inputs for one worker (reload).
pub struct InputUpdate {
    pub runtime: Arc<Vec<InputRuntime>>,
    pub metrics: Vec<Arc<InputMetrics>>,
    pub udp: Vec<(u16, mio::net::UdpSocket)>,
    pub listeners: Vec<(u16, mio::net::TcpListener)>,
    /// Inputs to close (sockets and their connections).
    pub removed: Vec<u16>,
}

/// A message to a worker.
enum Ctl {
    Conn(NewConn),
    Inputs(Box<InputUpdate>),
}

/// A connection handed from the acceptor to a worker.
type NewConn = (mio::net::TcpStream, SocketAddr, u16);

struct Peer {
    tx: Sender<Ctl>,
    waker: Arc<Waker>,
    load: Arc<AtomicUsize>,
}

/// The running workers.
pub struct Workers {
    handles: Vec<JoinHandle<()>>,
    wakers: Vec<Arc<Waker>>,
    peers: Arc<Vec<Peer>>,
    stop: Arc<AtomicBool>,
}

impl Workers {
    pub fn count(&self) -> usize {
        self.peers.len()
    }

    /// Sends each worker its part of an input change (reload); UDP sockets
    /// are spread one per worker, listeners go to worker 0 (the acceptor).
    pub fn update_inputs(
        &self,
        runtime: Arc<Vec<InputRuntime>>,
        metrics: Vec<Arc<InputMetrics>>,
        new: Vec<(u16, InputSockets)>,
        removed: Vec<u16>,
    ) {
        let n = self.peers.len();
        let mut per: Vec<InputUpdate> = (0..n)
            .map(|_| InputUpdate {
                runtime: runtime.clone(),
                metrics: metrics.clone(),
                udp: Vec::new(),
                listeners: Vec::new(),
                removed: removed.clone(),
            })
            .collect();
        for (id, socks) in new {
            match socks {
                InputSockets::Udp(v) => {
                    for (w, s) in v.into_iter().enumerate() {
                        per[w % n].udp.push((id, s));
                    }
                }
                InputSockets::Tcp(l) => per[0].listeners.push((id, l)),
            }
        }
        for (p, u) in self.peers.iter().zip(per) {
            if p.tx.send(Ctl::Inputs(Box::new(u))).is_ok() {
                let _ = p.waker.wake();
            }
        }
    }

    /// Asks every worker to stop accepting, read what is already buffered,
    /// send it on and exit; waits for them.
    pub fn stop_and_join(self) {
        self.stop.store(true, Ordering::SeqCst);
        for w in &self.wakers {
            let _ = w.wake();
        }
        for h in self.handles {
            let _ = h.join();
        }
    }
}

/// Batch limits.
#[derive(Clone, Copy)]
pub struct BatchLimits {
    pub records: usize,
    pub bytes: usize,
}

/// Starts the workers on the bound sockets; batches go to `tx`.
pub fn spawn_workers(
    cfg: &Config,
    bound: BoundInputs,
    tx: Sender<Batch>,
    pool: Arc<Pool>,
    metrics: Arc<Metrics>,
    share: Arc<ParseShare>,
) -> io::Result<Workers> {
    let n = cfg.pipeline.workers.max(1);
    let stop = Arc::new(AtomicBool::new(false));
    let limits = BatchLimits {
        records: cfg.pipeline.batch_records.max(1),
        bytes: cfg.pipeline.batch_bytes.as_usize().max(4096),
    };
    let mut polls = Vec::new();
    let mut peers = Vec::new();
    let mut incoming = Vec::new();
    for _ in 0..n {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let (ctx, crx) = crossbeam_channel::unbounded();
        peers.push(Peer {
            tx: ctx,
            waker,
            load: Arc::new(AtomicUsize::new(0)),
        });
        polls.push(poll);
        incoming.push(crx);
    }
    let wakers: Vec<Arc<Waker>> = peers.iter().map(|p| p.waker.clone()).collect();
    *share.wakers.lock() = wakers.clone();
    let peers = Arc::new(peers);
    let mut udp_per_worker: Vec<Vec<(u16, mio::net::UdpSocket)>> =
        (0..n).map(|_| Vec::new()).collect();
    let mut tcp = Vec::new();
    for (id, socks) in bound.sockets {
        match socks {
            InputSockets::Udp(v) => {
                for (w, s) in v.into_iter().enumerate() {
                    udp_per_worker[w % n].push((id, s));
                }
            }
            InputSockets::Tcp(l) => tcp.push((id, l)),
        }
    }
    let mut listeners = Some(tcp);
    let cores = if cfg.pipeline.pin_workers {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    let mut handles = Vec::new();
    for (idx, (poll, (crx, udp_socks))) in polls
        .into_iter()
        .zip(incoming.into_iter().zip(udp_per_worker))
        .enumerate()
    {
        let parse_hist = metrics.stage("parse").latency.local();
        let mut w = Worker {
            idx,
            poll,
            udp: Vec::new(),
            listeners: Vec::new(),
            initial_listeners: if idx == 0 {
                listeners.take().unwrap_or_default()
            } else {
                Vec::new()
            },
            initial_udp: udp_socks,
            conns: Slab::new(),
            incoming: crx,
            peers: peers.clone(),
            inputs: bound.runtime.clone(),
            stop: stop.clone(),
            scratch: vec![0u8; READ_CHUNK],
            ready: Vec::new(),
            sink: Sink {
                batch: pool.get(),
                parser: Parser::new(),
                tx: tx.clone(),
                pool: pool.clone(),
                metrics: metrics.clone(),
                tallies: vec![Tally::default(); bound.runtime.len()],
                im: metrics.inputs(),
                limits,
                parse_hist,
                share: share.clone(),
                idx,
                flaw_tally: Vec::new(),
            },
            refuse_log: RateLimit::new(Duration::from_secs(10)),
        };
        let core = cores.get(idx % cores.len().max(1)).copied();
        let h = std::thread::Builder::new()
            .name(format!("input-{idx}"))
            .spawn(move || {
                if let Some(c) = core {
                    core_affinity::set_for_current(c);
                }
                if let Err(e) = w.run() {
                    log::error!("input worker {}: {e}", w.idx);
                }
            })?;
        handles.push(h);
    }
    Ok(Workers {
        handles,
        wakers,
        peers,
        stop,
    })
}

struct UdpIn {
    input: u16,
    sock: mio::net::UdpSocket,
    rx: udp::Receiver,
    max: usize,
    last_drops: u32,
}

/// Per-input counts a worker adds to the shared metrics once per batch.
#[derive(Clone, Default)]
struct Tally {
    records: u64,
    bytes: u64,
    oversize: u64,
}

/// Where a worker's frames go: the current batch, parsed and sent when
/// full.
struct Sink {
    batch: BatchOwner,
    parser: Parser,
    tx: Sender<Batch>,
    pool: Arc<Pool>,
    metrics: Arc<Metrics>,
    tallies: Vec<Tally>,
    /// Input metrics by input id.
    im: Vec<Arc<InputMetrics>>,
    limits: BatchLimits,
    parse_hist: LocalHist,
    share: Arc<ParseShare>,
    idx: usize,
    /// Per input: records with each flaw in the batch being parsed.
    flaw_tally: Vec<[u64; flaw::NAMES.len()]>,
}

impl Sink {
    #[inline]
    fn push(
        &mut self,
        bytes: &[u8],
        src: SocketAddr,
        received: Timestamp,
        input: u16,
        truncated: bool,
    ) {
        let t = &mut self.tallies[input as usize];
        t.records += 1;
        t.bytes += bytes.len() as u64;
        if truncated {
            t.oversize += 1;
        }
        self.batch.push_frame(
            bytes,
            src,
            received,
            input,
            if truncated { flaw::TRUNCATED } else { 0 },
        );
        if self.batch.len() >= self.limits.records || self.batch.raw.len() >= self.limits.bytes {
            self.flush();
        }
    }

    /// Hands the current batch to the parse queue, numbered so classify
    /// can put batches back in order, and wakes another worker to help
    /// parse. A full queue means parsing is behind: this worker parses.
    fn flush(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let mut owner = std::mem::replace(&mut self.batch, self.pool.get());
        for (i, t) in self.tallies.iter_mut().enumerate() {
            if t.records == 0 {
                continue;
            }
            let m = &self.im[i];
            m.records.add(t.records);
            m.bytes.add(t.bytes);
            m.oversize.add(t.oversize);
            *t = Tally::default();
        }
        // Numbered and queued in one step, in the order this worker read
        // them: one connection is read by one worker, so its batches'
        // numbers increase.
        let share = self.share.clone();
        let mut q = share.queue.lock();
        while q.items.len() >= share.cap {
            // Parsing is behind: help, or wait for room.
            drop(q);
            if !self.parse_one() {
                let mut q2 = share.queue.lock();
                if q2.items.len() >= share.cap {
                    share.room.wait_for(&mut q2, Duration::from_millis(10));
                }
            }
            q = share.queue.lock();
        }
        owner.seq = q.next_seq;
        q.next_seq += 1;
        q.items.push_back(owner);
        drop(q);
        share.wake_helper(self.idx);
    }

    /// Parses every batch waiting in the parse queue that the window lets
    /// this worker take.
    fn parse_all(&mut self) {
        while self.parse_one() {}
    }

    /// At shutdown: parses until the queue is empty, waiting for classify
    /// to release batches when the window is full.
    fn parse_rest(&mut self) {
        loop {
            if self.parse_one() {
                continue;
            }
            let share = self.share.clone();
            let mut q = share.queue.lock();
            if q.items.is_empty() {
                return;
            }
            share.room.wait_for(&mut q, Duration::from_millis(10));
        }
    }

    /// Parses one waiting batch (any worker's) and sends it to classify,
    /// blocking while classify's queue is full. False when none waited.
    fn parse_one(&mut self) -> bool {
        let Some(owner) = self.share.take() else {
            return false;
        };
        let n = owner.len() as u64;
        let batch = Batch::parse(owner, &mut self.parser);
        let flaws = &mut self.flaw_tally;
        flaws.iter_mut().for_each(|f| *f = [0; flaw::NAMES.len()]);
        batch.with_dependent(|_, recs| {
            for r in recs.list.iter() {
                if r.flaws != 0 {
                    let i = r.input as usize;
                    if flaws.len() <= i {
                        flaws.resize(i + 1, [0; flaw::NAMES.len()]);
                    }
                    for (bit, c) in flaws[i].iter_mut().enumerate() {
                        if r.flaws & (1 << bit) != 0 {
                            *c += 1;
                        }
                    }
                }
            }
        });
        for (i, f) in self.flaw_tally.iter().enumerate() {
            if let Some(m) = self.im.get(i) {
                for (k, c) in f.iter().enumerate() {
                    m.flaws[k].add(*c);
                }
            }
        }
        let st = self.metrics.stage("parse");
        st.records.add(n);
        st.batches.inc();
        record_latency(&mut self.parse_hist.lock(), batch.born().elapsed(), n);
        if let Err(e) = self.tx.send(batch) {
            // Only when the pipeline is gone (a stage panicked): nothing can
            // carry these records any more.
            log::error!(
                "pipeline closed; {} records could not be passed on",
                e.0.len()
            );
            self.pool.put(e.0.into_owner());
        }
        true
    }
}

/// Framed batches waiting to be parsed, shared by the workers so that one
/// busy connection's parsing spreads over every core.
///
/// Batches are numbered and queued in one step, so the queue is in number
/// order and workers take them in that order. Classify puts parsed batches
/// back in order; to bound what it must hold, a worker takes a batch only
/// while fewer than `window` batches are taken and not yet released by
/// classify. The lowest unreleased batch is then always being parsed (or
/// already with classify), so waiting never deadlocks.
pub struct ParseShare {
    queue: parking_lot::Mutex<ShareQueue>,
    /// Signalled when the queue shrinks or classify releases batches.
    room: parking_lot::Condvar,
    /// Number of the next batch classify waits for.
    released: std::sync::atomic::AtomicU64,
    /// A worker was refused a batch by the window: wake workers on release.
    refused: AtomicBool,
    cap: usize,
    window: u64,
    wakers: parking_lot::Mutex<Vec<Arc<Waker>>>,
}

struct ShareQueue {
    items: std::collections::VecDeque<BatchOwner>,
    next_seq: u64,
}

impl ParseShare {
    /// A share for `workers` input workers.
    pub fn new(workers: usize) -> Arc<ParseShare> {
        let workers = workers.max(1);
        Arc::new(ParseShare {
            queue: parking_lot::Mutex::new(ShareQueue {
                items: std::collections::VecDeque::with_capacity(workers * 2),
                next_seq: 0,
            }),
            room: parking_lot::Condvar::new(),
            released: std::sync::atomic::AtomicU64::new(0),
            refused: AtomicBool::new(false),
            cap: workers * 2,
            window: (workers * 4 + 4) as u64,
            wakers: parking_lot::Mutex::new(Vec::new()),
        })
    }

    /// Takes the next batch if the window allows.
    fn take(&self) -> Option<BatchOwner> {
        let mut q = self.queue.lock();
        let front = q.items.front()?;
        if front.seq >= self.released.load(Ordering::Acquire) + self.window {
            self.refused.store(true, Ordering::Release);
            return None;
        }
        let o = q.items.pop_front();
        drop(q);
        self.room.notify_all();
        o
    }

    /// Classify has passed on every batch before `next`.
    pub fn release(&self, next: u64) {
        self.released.store(next, Ordering::Release);
        self.room.notify_all();
        if self.refused.swap(false, Ordering::AcqRel) {
            for w in self.wakers.lock().iter() {
                let _ = w.wake();
            }
        }
    }

    /// Wakes the worker after `idx` (if there is another) to help parse.
    fn wake_helper(&self, idx: usize) {
        let w = self.wakers.lock();
        if w.len() > 1 {
            let _ = w[(idx + 1) % w.len()].wake();
        }
    }
}

struct Worker {
    idx: usize,
    poll: Poll,
    /// By token offset; None where a reload removed the input.
    udp: Vec<Option<UdpIn>>,
    listeners: Vec<Option<(u16, mio::net::TcpListener)>>,
    initial_udp: Vec<(u16, mio::net::UdpSocket)>,
    initial_listeners: Vec<(u16, mio::net::TcpListener)>,
    conns: Slab<Conn>,
    incoming: Receiver<Ctl>,
    peers: Arc<Vec<Peer>>,
    inputs: Arc<Vec<InputRuntime>>,
    stop: Arc<AtomicBool>,
    scratch: Vec<u8>,
    /// Sockets that had more to read when their budget ran out.
    ready: Vec<Token>,
    sink: Sink,
    refuse_log: RateLimit,
}

enum ReadEnd {
    /// Drained to WouldBlock.
    Drained,
    /// Budget spent; more may be waiting.
    More,
    /// Peer closed or the connection failed.
    Closed,
}

impl Worker {
    fn add_udp(&mut self, input: u16, mut sock: mio::net::UdpSocket) -> io::Result<()> {
        let i = self.udp.len();
        self.poll
            .registry()
            .register(&mut sock, Token(UDP_BASE + i), Interest::READABLE)?;
        let max = self.inputs[input as usize].max_message_bytes;
        self.udp.push(Some(UdpIn {
            input,
            sock,
            rx: udp::Receiver::new(max),
            max,
            last_drops: 0,
        }));
        // Data may have arrived between bind and register.
        self.ready.push(Token(UDP_BASE + i));
        Ok(())
    }

    fn add_listener(&mut self, input: u16, mut l: mio::net::TcpListener) -> io::Result<()> {
        let i = self.listeners.len();
        self.poll
            .registry()
            .register(&mut l, Token(LISTEN_BASE + i), Interest::READABLE)?;
        self.listeners.push(Some((input, l)));
        self.ready.push(Token(LISTEN_BASE + i));
        Ok(())
    }

    /// Applies a reload's input changes.
    fn update_inputs(&mut self, u: InputUpdate) {
        self.inputs = u.runtime;
        self.sink.im = u.metrics;
        self.sink
            .tallies
            .resize(self.inputs.len(), Tally::default());
        for slot in self.udp.iter_mut() {
            if let Some(x) = slot
                && u.removed.contains(&x.input)
            {
                let _ = self.poll.registry().deregister(&mut x.sock);
                *slot = None;
            } else if let Some(x) = slot {
                x.max = self.inputs[x.input as usize].max_message_bytes;
            }
        }
        for slot in self.listeners.iter_mut() {
            if let Some((id, l)) = slot
                && u.removed.contains(id)
            {
                let _ = self.poll.registry().deregister(l);
                *slot = None;
            }
        }
        let gone: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| u.removed.contains(&c.input))
            .map(|(k, _)| k)
            .collect();
        for k in gone {
            let _ = self.read_conn(k, usize::MAX);
            self.close(k);
        }
        for (id, s) in u.udp {
            if let Err(e) = self.add_udp(id, s) {
                log::error!(
                    "input worker {}: cannot watch new UDP socket: {e}",
                    self.idx
                );
            }
        }
        for (id, l) in u.listeners {
            if let Err(e) = self.add_listener(id, l) {
                log::error!("input worker {}: cannot watch new listener: {e}", self.idx);
            }
        }
    }

    fn run(&mut self) -> io::Result<()> {
        for (id, s) in std::mem::take(&mut self.initial_udp) {
            self.add_udp(id, s)?;
        }
        for (id, l) in std::mem::take(&mut self.initial_listeners) {
            self.add_listener(id, l)?;
        }
        let mut last_idle_check = Instant::now();
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = if !self.ready.is_empty() {
                Some(Duration::ZERO)
            } else if self.inputs.iter().any(|i| i.idle_timeout.is_some()) {
                Some(Duration::from_secs(1))
            } else {
                None
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            let mut work: Vec<Token> = std::mem::take(&mut self.ready);
            work.extend(events.iter().map(|e| e.token()));
            for t in work {
                self.handle(t, READ_BUDGET);
            }
            self.sink.flush();
            self.sink.parse_all();
            if self.stop.load(Ordering::SeqCst) {
                self.drain();
                return Ok(());
            }
            let idle_check = self.inputs.iter().any(|i| i.idle_timeout.is_some());
            if idle_check && last_idle_check.elapsed() >= Duration::from_secs(1) {
                last_idle_check = Instant::now();
                self.close_idle();
            }
        }
    }

    fn handle(&mut self, t: Token, budget: usize) {
        match t.0 {
            0 => self.take_incoming(),
            n if (UDP_BASE..LISTEN_BASE).contains(&n) => {
                if self.read_udp(n - UDP_BASE, budget) {
                    self.ready.push(t);
                }
            }
            n if (LISTEN_BASE..CONN_BASE).contains(&n) => self.accept(n - LISTEN_BASE, false),
            n => {
                let key = n - CONN_BASE;
                match self.read_conn(key, budget) {
                    ReadEnd::Drained => {}
                    ReadEnd::More => self.ready.push(t),
                    ReadEnd::Closed => self.close(key),
                }
            }
        }
    }

    fn read_udp(&mut self, i: usize, budget: usize) -> bool {
        let Some(Some(u)) = self.udp.get_mut(i) else {
            return false;
        };
        let sink = &mut self.sink;
        let input = u.input;
        let allow = &self.inputs[input as usize].allow;
        for _ in 0..budget {
            let now = Timestamp::now();
            match u.rx.recv(&u.sock, u.max, |d| {
                if allow.is_empty() || allow.contains(d.src.ip()) {
                    sink.push(d.bytes, d.src, now, input, d.truncated)
                } else {
                    sink.im[input as usize].refused[refuse::NOT_ALLOWED].inc();
                }
            }) {
                Ok((0, _)) => return false,
                Ok((_, drops)) => {
                    if let Some(d) = drops {
                        let delta = d.wrapping_sub(u.last_drops);
                        u.last_drops = d;
                        sink.im[input as usize].kernel_drops.add(delta as u64);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!(
                        "input \"{}\": UDP receive failed: {e}",
                        self.inputs[input as usize].name
                    );
                    return false;
                }
            }
        }
        true
    }

    fn read_conn(&mut self, key: usize, budget: usize) -> ReadEnd {
        let Some(c) = self.conns.get_mut(key) else {
            return ReadEnd::Drained;
        };
        let sink = &mut self.sink;
        let (peer, input) = (c.peer, c.input);
        let mut end = ReadEnd::More;
        for _ in 0..budget {
            match c.stream.read(&mut self.scratch) {
                Ok(0) => {
                    let now = Timestamp::now();
                    c.framer.finish_eof(&mut |f, k| {
                        sink.push(f, peer, now, input, k == FrameKind::Truncated)
                    });
                    end = ReadEnd::Closed;
                    break;
                }
                Ok(n) => {
                    let now = Timestamp::now();
                    c.last_active = Instant::now();
                    c.framer.feed(&self.scratch[..n], &mut |f, k| {
                        sink.push(f, peer, now, input, k == FrameKind::Truncated)
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    end = ReadEnd::Drained;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    let now = Timestamp::now();
                    c.framer.finish_eof(&mut |f, k| {
                        sink.push(f, peer, now, input, k == FrameKind::Truncated)
                    });
                    end = ReadEnd::Closed;
                    break;
                }
            }
        }
        if c.framer.is_idle() {
            c.framer.shrink_if_idle();
        }
        end
    }

    fn close(&mut self, key: usize) {
        if let Some(mut c) = self.conns.try_remove(key) {
            if c.stream.handshake_failed() {
                let m = &self.sink.im[c.input as usize];
                m.refused[refuse::TLS].inc();
                warn_limited!(
                    self.refuse_log,
                    "input \"{}\": TLS handshake with {} failed",
                    self.inputs[c.input as usize].name,
                    c.peer
                );
            }
            let _ = self.poll.registry().deregister(c.stream.tcp_mut());
            self.sink.im[c.input as usize].connections.add(-1);
            self.peers[self.idx].load.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn close_idle(&mut self) {
        let now = Instant::now();
        let idle: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                self.inputs[c.input as usize]
                    .idle_timeout
                    .is_some_and(|t| now.duration_since(c.last_active) > t)
            })
            .map(|(k, _)| k)
            .collect();
        for k in idle {
            if let Some(c) = self.conns.get(k) {
                self.sink.im[c.input as usize].idle_closed.inc();
            }
            // Whatever it had sent is already framed; a partial frame is kept.
            let _ = self.read_conn(k, usize::MAX);
            if let Some(c) = self.conns.get_mut(k) {
                let (peer, input) = (c.peer, c.input);
                let sink = &mut self.sink;
                let now = Timestamp::now();
                c.framer.finish_eof(&mut |f, kind| {
                    sink.push(f, peer, now, input, kind == FrameKind::Truncated)
                });
            }
            self.close(k);
        }
    }

    /// Accepts pending connections on listener `i`. While stopping, keeps
    /// them here (no hand-off) so that they are drained.
    fn accept(&mut self, i: usize, stopping: bool) {
        loop {
            let Some(Some((input, l))) = self.listeners.get(i) else {
                return;
            };
            let input = *input;
            match l.accept() {
                Ok((stream, peer)) => {
                    let rt = &self.inputs[input as usize];
                    let m = &self.sink.im[input as usize];
                    if !rt.allow.is_empty() && !rt.allow.contains(peer.ip()) {
                        m.refused[refuse::NOT_ALLOWED].inc();
                        warn_limited!(
                            self.refuse_log,
                            "input \"{}\": refused {peer}: not in `allow`",
                            rt.name
                        );
                        continue;
                    }
                    if m.connections.get() >= rt.max_connections as i64 {
                        m.refused[refuse::MAX_CONNECTIONS].inc();
                        warn_limited!(
                            self.refuse_log,
                            "input \"{}\": refused {peer}: max_connections ({}) reached",
                            rt.name,
                            rt.max_connections
                        );
                        continue;
                    }
                    m.connections.add(1);
                    m.connections_total.inc();
                    let _ = stream.set_nodelay(true);
                    self.hand_off((stream, peer, input), stopping);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.sink.im[input as usize].refused[refuse::ACCEPT_ERROR].inc();
                    warn_limited!(
                        self.refuse_log,
                        "input {}: accept failed: {e}",
                        self.inputs[input as usize].name
                    );
                    return;
                }
            }
        }
    }

    /// Gives a new connection to the least-loaded worker.
    fn hand_off(&mut self, nc: NewConn, keep: bool) {
        let target = if keep {
            self.idx
        } else {
            (0..self.peers.len())
                .min_by_key(|&i| self.peers[i].load.load(Ordering::Relaxed))
                .unwrap_or(self.idx)
        };
        if target != self.idx {
            let p = &self.peers[target];
            p.load.fetch_add(1, Ordering::Relaxed);
            match p.tx.send(Ctl::Conn(nc)) {
                Ok(()) => {
                    let _ = p.waker.wake();
                    return;
                }
                Err(e) => {
                    // That worker has exited (shutdown): keep it here.
                    p.load.fetch_sub(1, Ordering::Relaxed);
                    if let Ctl::Conn(nc) = e.0 {
                        self.register(nc);
                    }
                    return;
                }
            }
        }
        self.peers[self.idx].load.fetch_add(1, Ordering::Relaxed);
        self.register(nc);
    }

    fn take_incoming(&mut self) {
        while let Ok(ctl) = self.incoming.try_recv() {
            match ctl {
                Ctl::Conn(nc) => self.register(nc),
                Ctl::Inputs(u) => self.update_inputs(*u),
            }
        }
    }

    fn register(&mut self, (stream, peer, input): NewConn) {
        let rt = &self.inputs[input as usize];
        let max = rt.max_message_bytes;
        let (stream, interest) = match &rt.tls {
            None => (Stream::Plain(stream), Interest::READABLE),
            Some(cfg) => match crate::tls::ServerStream::new(stream, cfg.clone()) {
                // The handshake writes too.
                Ok(t) => (
                    Stream::Tls(Box::new(t)),
                    Interest::READABLE | Interest::WRITABLE,
                ),
                Err(e) => {
                    log::warn!("input \"{}\": TLS for {peer}: {e}", rt.name);
                    self.sink.im[input as usize].connections.add(-1);
                    self.peers[self.idx].load.fetch_sub(1, Ordering::Relaxed);
                    return;
                }
            },
        };
        let entry = self.conns.vacant_entry();
        let key = entry.key();
        let mut conn = Conn {
            stream,
            framer: Framer::new(max),
            input,
            peer,
            last_active: Instant::now(),
        };
        if let Err(e) =
            self.poll
                .registry()
                .register(conn.stream.tcp_mut(), Token(CONN_BASE + key), interest)
        {
            log::warn!("cannot watch connection from {peer}: {e}");
            self.sink.im[input as usize].connections.add(-1);
            self.peers[self.idx].load.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        entry.insert(conn);
        // Bytes may be waiting already.
        self.ready.push(Token(CONN_BASE + key));
    }

    /// Shutdown: accept what is in the backlog, stop listening, read all
    /// that is buffered on every socket, and send the last batch.
    fn drain(&mut self) {
        for i in 0..self.listeners.len() {
            self.accept(i, true);
        }
        for (_, mut l) in self.listeners.drain(..).flatten() {
            let _ = self.poll.registry().deregister(&mut l);
        }
        self.take_incoming();
        let keys: Vec<usize> = self.conns.iter().map(|(k, _)| k).collect();
        for k in keys {
            match self.read_conn(k, usize::MAX) {
                ReadEnd::Closed => self.close(k),
                _ => {
                    if let Some(c) = self.conns.get_mut(k) {
                        let (peer, input) = (c.peer, c.input);
                        let sink = &mut self.sink;
                        let now = Timestamp::now();
                        c.framer.finish_eof(&mut |f, kind| {
                            sink.push(f, peer, now, input, kind == FrameKind::Truncated)
                        });
                    }
                }
            }
        }
        for i in 0..self.udp.len() {
            while self.read_udp(i, READ_BUDGET) {}
        }
        self.sink.flush();
        self.sink.parse_rest();
    }
}
