//! The receiving side of `sluice sink`: listeners and per-connection
//! threads that frame what a pipeline forwards and tally its stamps.
//!
//! Receives TCP streams (LF, CR LF, NUL or octet-counted frames, mixed as
//! sluice's own framer allows) and UDP datagrams; emits nothing but
//! [`Tally`]s, one per receiving thread, that the caller snapshots and
//! merges. Frames of any format count: sluice's `v2` (RFC 5424 + record
//! JSON), `v1`, raw lines, rsyslog's or syslog-ng's JSON. A frame without a
//! stamp is counted as unstamped, never dropped.

use std::io::{self, Read};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;
use parking_lot::Mutex;

use super::send::now_ns;
use super::stamp::Finder;
use super::tally::Tally;
use crate::frame::Framer;

/// Bytes per TCP read.
const READ_CHUNK: usize = 256 * 1024;

/// Counts every thread updates once per read, for progress and stop checks.
#[derive(Default)]
pub struct Live {
    pub frames: CachePadded<AtomicU64>,
    /// When the last frame arrived (ns since the epoch; 0 = none yet).
    pub last_ns: CachePadded<AtomicU64>,
    pub connections: CachePadded<AtomicU64>,
}

/// A running sink.
pub struct Sink {
    pub tcp: Option<SocketAddr>,
    pub udp: Option<SocketAddr>,
    pub live: Arc<Live>,
    tallies: Arc<Mutex<Vec<Arc<Mutex<Tally>>>>>,
}

impl Sink {
    /// Binds the listeners and starts their threads.
    pub fn start(
        tcp: Option<SocketAddr>,
        udp: Option<SocketAddr>,
        max_frame: usize,
    ) -> io::Result<Sink> {
        let live = Arc::new(Live::default());
        let tallies: Arc<Mutex<Vec<Arc<Mutex<Tally>>>>> = Arc::default();
        let mut sink = Sink {
            tcp: None,
            udp: None,
            live: live.clone(),
            tallies: tallies.clone(),
        };
        if let Some(addr) = tcp {
            let l = TcpListener::bind(addr)?;
            sink.tcp = Some(l.local_addr()?);
            let (live, tallies) = (live.clone(), tallies.clone());
            std::thread::Builder::new()
                .name("sink-accept".into())
                .spawn(move || accept_loop(l, live, tallies, max_frame))?;
        }
        if let Some(addr) = udp {
            let s = socket2::Socket::new(
                socket2::Domain::for_address(addr),
                socket2::Type::DGRAM,
                None,
            )?;
            // A deep buffer: the sink must not be where datagrams are lost.
            let _ = s.set_recv_buffer_size(32 * 1024 * 1024);
            s.bind(&addr.into())?;
            let s: UdpSocket = s.into();
            sink.udp = Some(s.local_addr()?);
            let t = Arc::new(Mutex::new(Tally::default()));
            tallies.lock().push(t.clone());
            let live = live.clone();
            std::thread::Builder::new()
                .name("sink-udp".into())
                .spawn(move || udp_loop(s, t, live))?;
        }
        Ok(sink)
    }

    /// Every thread's tally merged.
    pub fn snapshot(&self) -> Tally {
        let mut all = Tally::default();
        let parts: Vec<_> = self.tallies.lock().clone();
        for t in parts {
            all.merge(&t.lock());
        }
        all
    }
}

fn accept_loop(
    l: TcpListener,
    live: Arc<Live>,
    tallies: Arc<Mutex<Vec<Arc<Mutex<Tally>>>>>,
    max_frame: usize,
) {
    for conn in l.incoming() {
        let s = match conn {
            Ok(s) => s,
            Err(e) => {
                log::warn!("sink: accept: {e}");
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
        };
        let t = Arc::new(Mutex::new(Tally::default()));
        tallies.lock().push(t.clone());
        let live = live.clone();
        live.connections.fetch_add(1, Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name("sink-conn".into())
            .spawn(move || conn_loop(s, t, live, max_frame));
        if let Err(e) = spawned {
            log::warn!("sink: cannot start a connection thread: {e}");
        }
    }
}

fn conn_loop(mut s: TcpStream, tally: Arc<Mutex<Tally>>, live: Arc<Live>, max_frame: usize) {
    let finder = Finder::new();
    let mut framer = Framer::new(max_frame);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let n = match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::warn!("sink: connection: {e}");
                break;
            }
        };
        let now = now_ns();
        let mut t = tally.lock();
        let before = t.frames;
        framer.feed(&buf[..n], &mut |f, _| t.frame(f.len(), finder.find(f), now));
        publish(&live, t.frames - before, now);
    }
    let now = now_ns();
    let mut t = tally.lock();
    let before = t.frames;
    framer.finish_eof(&mut |f, _| t.frame(f.len(), finder.find(f), now));
    publish(&live, t.frames - before, now);
    live.connections.fetch_sub(1, Ordering::Relaxed);
}

fn udp_loop(s: UdpSocket, tally: Arc<Mutex<Tally>>, live: Arc<Live>) {
    let finder = Finder::new();
    let mut buf = vec![0u8; 65_536];
    loop {
        let n = match s.recv(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                log::warn!("sink: udp: {e}");
                continue;
            }
        };
        let now = now_ns();
        // A trailing LF or NUL is not part of the message (RFC 5426 leaves
        // it to senders; many add one).
        let mut d = &buf[..n];
        while let Some((&b'\n' | &b'\0' | &b'\r', rest)) = d.split_last() {
            d = rest;
        }
        if d.is_empty() {
            continue;
        }
        tally.lock().frame(d.len(), finder.find(d), now);
        publish(&live, 1, now);
    }
}

#[inline]
fn publish(live: &Live, frames: u64, now: u64) {
    if frames > 0 {
        live.frames.fetch_add(frames, Ordering::Relaxed);
        live.last_ns.store(now, Ordering::Relaxed);
    }
}
