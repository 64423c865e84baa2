//! TCP listeners and connections.
//!
//! A connection is its socket, its framer and its input. An idle
//! connection holds no buffer: the framer keeps bytes only for a frame cut
//! by a read, at most `max_message_bytes`.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd};
use std::time::Instant;

use socket2::{Domain, Protocol, Socket, Type};

use crate::frame::Framer;

/// Binds a non-blocking listener with SO_REUSEADDR.
pub fn bind_listener(addr: SocketAddr) -> io::Result<mio::net::TcpListener> {
    let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    s.set_reuse_address(true)?;
    s.set_nonblocking(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    // SAFETY: the fd is a valid, owned, non-blocking listening socket.
    Ok(unsafe { mio::net::TcpListener::from_raw_fd(s.into_raw_fd()) })
}

/// The byte stream under a connection: plain TCP, or TLS over it.
pub enum Stream {
    Plain(mio::net::TcpStream),
    Tls(Box<crate::tls::ServerStream>),
}

impl Stream {
    pub fn tcp(&self) -> &mio::net::TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => &t.sock,
        }
    }

    pub fn tcp_mut(&mut self) -> &mut mio::net::TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(t) => &mut t.sock,
        }
    }

    /// True when a TLS handshake failed on this connection.
    pub fn handshake_failed(&self) -> bool {
        matches!(self, Stream::Tls(t) if t.handshake_failed)
    }

    /// Reads plaintext. `Ok(0)` means the peer closed.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }
}

/// One accepted connection.
pub struct Conn {
    pub stream: Stream,
    pub framer: Framer,
    pub input: u16,
    pub peer: SocketAddr,
    pub last_active: Instant,
}
