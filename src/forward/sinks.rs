//! Sinks: where an output's encoded bytes go (file, stdout, syslog over
//! TCP or UDP).
//!
//! A sink writes whole buffers. On failure it says how many bytes surely
//! left (so the output can resume at the first record not fully written)
//! and whether trying again may help.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::{SocketAddr, ToSocketAddrs, UdpSocket};
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, TcpKeepalive, Type};

/// A failed write.
#[derive(Debug)]
pub struct WriteError {
    /// Bytes of the buffer that were written before the failure.
    pub written: usize,
    pub error: io::Error,
    /// Trying again (after reconnecting or waiting) may succeed.
    pub retry: bool,
}

impl WriteError {
    /// A failure worth retrying after `written` bytes went out.
    pub fn retry(written: usize, error: io::Error) -> WriteError {
        WriteError {
            written,
            error,
            retry: true,
        }
    }
}

pub trait Sink: Send {
    /// Writes all of `buf`; `ends` are the end offsets of the records in it.
    fn write(&mut self, buf: &[u8], ends: &[usize]) -> Result<(), WriteError>;
    /// Called when the output has nothing more queued.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// Called after SIGHUP: reopen files (log rotation).
    fn reopen(&mut self) {}
    /// Records the sink gave up on by itself since the last call (UDP
    /// datagrams the kernel refused).
    fn take_dropped(&mut self) -> u64 {
        0
    }
    /// Connections made since the last call.
    fn take_connects(&mut self) -> u64 {
        0
    }
    /// Whether a connection-based sink is connected now.
    fn connected(&self) -> bool {
        true
    }
}

fn write_tracking(w: &mut impl Write, buf: &[u8]) -> Result<(), WriteError> {
    let mut done = 0;
    while done < buf.len() {
        match w.write(&buf[done..]) {
            Ok(0) => {
                return Err(WriteError {
                    written: done,
                    error: io::Error::new(io::ErrorKind::WriteZero, "wrote 0 bytes"),
                    retry: true,
                });
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(WriteError::retry(done, e));
            }
        }
    }
    Ok(())
}

/// Appends to a file (NDJSON or any format), created if missing.
pub struct FileSink {
    path: PathBuf,
    file: Option<File>,
}

impl FileSink {
    pub fn new(path: PathBuf) -> io::Result<FileSink> {
        if let Some(dir) = path.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(FileSink {
            path,
            file: Some(file),
        })
    }
}

impl Sink for FileSink {
    fn write(&mut self, buf: &[u8], _ends: &[usize]) -> Result<(), WriteError> {
        if self.file.is_none() {
            match OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
            {
                Ok(f) => self.file = Some(f),
                Err(e) => {
                    return Err(WriteError::retry(0, e));
                }
            }
        }
        let f = self.file.as_mut().expect("opened above");
        write_tracking(f, buf).inspect_err(|_| {
            self.file = None;
        })
    }

    fn reopen(&mut self) {
        self.file = None;
    }
}

/// Standard output.
pub struct StdoutSink;

impl Sink for StdoutSink {
    fn write(&mut self, buf: &[u8], _ends: &[usize]) -> Result<(), WriteError> {
        let out = io::stdout();
        let mut l = out.lock();
        write_tracking(&mut l, buf)
            .and_then(|()| {
                l.flush().map_err(|e| WriteError {
                    written: buf.len(),
                    error: e,
                    retry: false,
                })
            })
            .map_err(|mut e| {
                // A closed stdout does not come back.
                e.retry = e.error.kind() != io::ErrorKind::BrokenPipe;
                e
            })
    }
}

/// Syslog over TCP: connects on demand, detects a closed peer before
/// writing, and reports failures so the output reconnects and resends.
pub struct TcpSink {
    target: String,
    conn: Option<std::net::TcpStream>,
    /// Connections made since last asked (the output counts reconnects).
    connects: u64,
}

impl TcpSink {
    pub fn new(target: String) -> TcpSink {
        TcpSink {
            target,
            conn: None,
            connects: 0,
        }
    }

    pub fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    fn connect(&mut self) -> io::Result<()> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "target resolves to no address");
        for addr in self.target.to_socket_addrs()? {
            match connect_tcp(addr) {
                Ok(s) => {
                    self.conn = Some(s);
                    self.connects += 1;
                    return Ok(());
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// True when the peer has closed its side (it never sends us data, so
    /// a readable socket means EOF or reset).
    fn peer_closed(s: &std::net::TcpStream) -> bool {
        let mut b = [0u8; 1];
        // SAFETY: recv into a 1-byte buffer we own, non-blocking peek.
        let n = unsafe {
            libc::recv(
                s.as_raw_fd(),
                b.as_mut_ptr() as *mut libc::c_void,
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if n == 0 {
            return true;
        }
        if n < 0 {
            let e = io::Error::last_os_error();
            return e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::Interrupted;
        }
        false
    }
}

/// Connects with keepalive and a user timeout, so a vanished peer is
/// noticed within about half a minute instead of the kernel's 15.
pub fn connect_tcp(addr: SocketAddr) -> io::Result<std::net::TcpStream> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.connect_timeout(&addr.into(), Duration::from_secs(5))?;
    refuse_self_connect(&s)?;
    let _ = s.set_tcp_nodelay(true);
    let _ = s.set_tcp_keepalive(
        &TcpKeepalive::new()
            .with_time(Duration::from_secs(10))
            .with_interval(Duration::from_secs(5)),
    );
    let _ = s.set_tcp_user_timeout(Some(Duration::from_secs(30)));
    Ok(s.into())
}

/// Fails a connection that reached itself: with nothing listening on a
/// loopback target port in the kernel's ephemeral range, a connect can be
/// given that very port as its source, and TCP's simultaneous open then
/// "connects" the socket to itself; every record written to it would be
/// lost without an error.
fn refuse_self_connect(s: &Socket) -> io::Result<()> {
    let (local, peer) = (s.local_addr()?, s.peer_addr()?);
    if local.as_socket().is_some() && local.as_socket() == peer.as_socket() {
        return Err(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "connected to itself: nothing listens on the target port",
        ));
    }
    Ok(())
}

impl Sink for TcpSink {
    fn take_connects(&mut self) -> u64 {
        std::mem::take(&mut self.connects)
    }

    fn connected(&self) -> bool {
        self.conn.is_some()
    }

    fn write(&mut self, buf: &[u8], _ends: &[usize]) -> Result<(), WriteError> {
        if let Some(c) = &self.conn
            && Self::peer_closed(c)
        {
            self.conn = None;
        }
        if self.conn.is_none() {
            self.connect().map_err(|e| WriteError::retry(0, e))?;
        }
        let c = self.conn.as_mut().expect("connected above");
        write_tracking(c, buf).inspect_err(|_| {
            self.conn = None;
        })
    }
}

/// Syslog over UDP: one datagram per record.
pub struct UdpSink {
    sock: Option<UdpSocket>,
    target: String,
    dropped: u64,
}

impl UdpSink {
    pub fn new(target: String) -> UdpSink {
        UdpSink {
            sock: None,
            target,
            dropped: 0,
        }
    }
}

impl Sink for UdpSink {
    fn take_dropped(&mut self) -> u64 {
        std::mem::take(&mut self.dropped)
    }

    fn write(&mut self, buf: &[u8], ends: &[usize]) -> Result<(), WriteError> {
        if self.sock.is_none() {
            let addr = self
                .target
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(|| WriteError {
                    written: 0,
                    error: io::Error::new(io::ErrorKind::NotFound, "target resolves to no address"),
                    retry: true,
                })?;
            let bind: SocketAddr = if addr.is_ipv4() {
                "0.0.0.0:0".parse().expect("static")
            } else {
                "[::]:0".parse().expect("static")
            };
            let s = UdpSocket::bind(bind).and_then(|s| s.connect(addr).map(|()| s));
            match s {
                Ok(s) => self.sock = Some(s),
                Err(e) => {
                    return Err(WriteError::retry(0, e));
                }
            }
        }
        let s = self.sock.as_ref().expect("bound above");
        let mut start = 0;
        for &end in ends {
            let dgram = &buf[start..end];
            loop {
                match s.send(dgram) {
                    Ok(_) => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    // ICMP port unreachable from an earlier datagram: the
                    // peer is not listening. UDP has no retry: count it.
                    Err(_) => {
                        self.dropped += 1;
                        break;
                    }
                }
            }
            start = end;
        }
        Ok(())
    }
}

/// Syslog over TLS (RFC 5425): like [`TcpSink`], with a TLS session on
/// each connection. RFC 5425 section 4.3 requires octet-counted framing.
pub struct TlsSink {
    target: String,
    server_name: String,
    config: std::sync::Arc<rustls::ClientConfig>,
    conn: Option<crate::tls::ClientStream>,
    connects: u64,
}

impl TlsSink {
    pub fn new(
        target: String,
        server_name: String,
        config: std::sync::Arc<rustls::ClientConfig>,
    ) -> TlsSink {
        TlsSink {
            target,
            server_name,
            config,
            conn: None,
            connects: 0,
        }
    }

    fn connect(&mut self) -> io::Result<()> {
        let mut last = io::Error::new(io::ErrorKind::NotFound, "target resolves to no address");
        for addr in self.target.to_socket_addrs()? {
            match connect_tcp(addr)
                .and_then(|s| crate::tls::connect(s, self.config.clone(), &self.server_name))
            {
                Ok(s) => {
                    self.conn = Some(s);
                    self.connects += 1;
                    return Ok(());
                }
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

impl Sink for TlsSink {
    fn take_connects(&mut self) -> u64 {
        std::mem::take(&mut self.connects)
    }

    fn connected(&self) -> bool {
        self.conn.is_some()
    }

    fn write(&mut self, buf: &[u8], _ends: &[usize]) -> Result<(), WriteError> {
        if let Some(c) = &self.conn
            && TcpSink::peer_closed(&c.sock)
        {
            self.conn = None;
        }
        if self.conn.is_none() {
            self.connect().map_err(|e| WriteError::retry(0, e))?;
        }
        let c = self.conn.as_mut().expect("connected above");
        write_tracking(c, buf)
            .and_then(|()| c.flush().map_err(|e| WriteError::retry(0, e)))
            .inspect_err(|_| {
                self.conn = None;
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_socket_connected_to_itself_is_refused() {
        // TCP simultaneous open: a socket bound to a port and connected to
        // that same address is connected to itself.
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        s.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        let me = s.local_addr().unwrap();
        s.connect(&me).unwrap();
        let e = refuse_self_connect(&s).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);

        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let ok = connect_tcp(l.local_addr().unwrap()).unwrap();
        assert_ne!(ok.local_addr().unwrap(), ok.peer_addr().unwrap());
    }
}
