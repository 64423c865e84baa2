//! The sending loop of one stream (one TCP connection or UDP socket).
//!
//! Receives a pre-rendered [`Ring`] and a plan (count, deadline, rate);
//! stamps as many messages as are due and fit in one write, writes them
//! as one chunk (TCP) or one `sendmmsg` (UDP), and repeats; then sends the
//! stream's fin. Per message it only patches the stamp: no allocation, no
//! formatting, no system call.

use std::io::{self, Write};
use std::net::{TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_utils::CachePadded;

use super::ring::Ring;

/// Bytes per TCP write when sending flat out.
const CHUNK_BYTES: usize = 256 * 1024;
/// Datagrams per `sendmmsg`.
const UDP_BATCH: usize = 64;

/// Nanoseconds since the Unix epoch (the clock stamps and sinks share).
#[inline]
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Where one stream writes.
pub enum Conn {
    Tcp(TcpStream),
    /// A connected UDP socket.
    Udp(UdpSocket),
}

/// When a stream stops and how fast it goes.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Messages to send, the fin included.
    pub count: Option<u64>,
    pub deadline: Option<Instant>,
    /// Messages per second for this stream; `None` is flat out.
    pub rate: Option<f64>,
}

/// A stream's running totals, read by the progress line.
#[derive(Default)]
pub struct StreamStats {
    pub sent: CachePadded<AtomicU64>,
    pub bytes: CachePadded<AtomicU64>,
    /// Send calls that failed and were retried (UDP: nobody listening).
    pub retries: CachePadded<AtomicU64>,
}

/// Sends `ring`'s messages on `conn` until the plan says stop or `stop` is
/// set; then the fin. Returns the messages sent.
pub fn run(
    ring: &mut Ring,
    conn: &mut Conn,
    plan: Plan,
    stats: &StreamStats,
    stop: &AtomicBool,
) -> io::Result<u64> {
    let body = plan.count.map(|c| c.saturating_sub(1));
    let t0 = Instant::now();
    let mut seq = 0u64;
    let mut i = 0usize;
    let mut since_clock = 0u32;
    loop {
        if body.is_some_and(|b| seq >= b) || stop.load(Ordering::Relaxed) {
            break;
        }
        // Checking the clock costs more than a small chunk: do it every few.
        since_clock += 1;
        if since_clock >= 16 || plan.rate.is_some() {
            since_clock = 0;
            if plan.deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
        }
        let mut max = ring.len() - i;
        if let Some(b) = body {
            max = max.min((b - seq) as usize);
        }
        if let Some(rate) = plan.rate {
            let elapsed = t0.elapsed().as_secs_f64();
            let due = (rate * elapsed) as u64 + 1;
            if due <= seq {
                let wait = (seq as f64 / rate - elapsed).clamp(0.000_05, 0.01);
                std::thread::sleep(Duration::from_secs_f64(wait));
                continue;
            }
            max = max.min((due - seq) as usize);
        }
        let n = match conn {
            Conn::Tcp(s) => {
                let n = ring.take(i, max, CHUNK_BYTES);
                let chunk = ring.stamp(i, n, seq, now_ns());
                s.write_all(chunk)?;
                stats.bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
                n
            }
            Conn::Udp(s) => {
                let n = max.min(UDP_BATCH);
                ring.stamp(i, n, seq, now_ns());
                let bytes = send_datagrams(s, ring, i, n, stats, stop)?;
                stats.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
                n
            }
        };
        stats.sent.fetch_add(n as u64, Ordering::Relaxed);
        seq += n as u64;
        i += n;
        if i == ring.len() {
            i = 0;
        }
    }
    let fin = ring.fin(seq, now_ns());
    match conn {
        Conn::Tcp(s) => {
            s.write_all(fin)?;
            s.flush()?;
        }
        Conn::Udp(s) => loop {
            match s.send(fin) {
                Ok(_) => break,
                Err(e) if retryable(&e) && !stop.load(Ordering::Relaxed) => {
                    stats.retries.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(e),
            }
        },
    }
    stats.bytes.fetch_add(fin.len() as u64, Ordering::Relaxed);
    stats.sent.fetch_add(1, Ordering::Relaxed);
    Ok(seq + 1)
}

fn retryable(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused | io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    ) || e.raw_os_error() == Some(libc::ENOBUFS)
}

/// Sends datagrams `i..i+n` of `ring` with as few `sendmmsg` calls as the
/// kernel allows; returns the bytes sent. A refused send (ICMP port
/// unreachable from an earlier datagram) is retried, not skipped, so that
/// every sequence number the stream claims was really offered.
fn send_datagrams(
    sock: &UdpSocket,
    ring: &Ring,
    i: usize,
    n: usize,
    stats: &StreamStats,
    stop: &AtomicBool,
) -> io::Result<usize> {
    // SAFETY: all-zero is a valid value for these plain C structs.
    let mut iov: [libc::iovec; UDP_BATCH] = unsafe { std::mem::zeroed() };
    let mut hdr: [libc::mmsghdr; UDP_BATCH] = unsafe { std::mem::zeroed() };
    let mut bytes = 0;
    for (k, (v, h)) in iov.iter_mut().zip(hdr.iter_mut()).take(n).enumerate() {
        let d = ring.datagram(i + k);
        bytes += d.len();
        *v = libc::iovec {
            iov_base: d.as_ptr() as *mut libc::c_void,
            iov_len: d.len(),
        };
        h.msg_hdr.msg_iov = v;
        h.msg_hdr.msg_iovlen = 1;
    }
    let mut done = 0;
    while done < n {
        // SAFETY: `hdr[done..n]` point at `iov` entries that point into
        // `ring`, all alive and unchanged for the duration of the call; the
        // socket is connected, so no address is needed.
        let r = unsafe {
            libc::sendmmsg(
                sock.as_raw_fd(),
                hdr[done..].as_mut_ptr(),
                (n - done) as libc::c_uint,
                0,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if retryable(&e) && !stop.load(Ordering::Relaxed) {
                stats.retries.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(200));
                continue;
            }
            return Err(e);
        }
        done += r as usize;
    }
    Ok(bytes)
}
