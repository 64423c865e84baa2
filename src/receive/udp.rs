//! UDP sockets: one SO_REUSEPORT socket per worker, read with recvmmsg.
//!
//! One datagram is one message (RFC 5426 section 3.1); a trailing LF or NUL
//! is not part of it. A datagram longer than `max_message_bytes` is kept
//! cut and counted. The kernel's own drops (receive buffer full) are read
//! from SO_RXQ_OVFL and counted, so no loss goes unseen.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd};

use socket2::{Domain, Protocol, Socket, Type};

/// Binds `n` UDP sockets to `addr` with SO_REUSEPORT (the kernel spreads
/// senders over them). Port 0 picks one port for all. Returns the sockets
/// and the receive buffer size the kernel granted.
pub fn bind_reuseport(
    addr: SocketAddr,
    n: usize,
    rcvbuf: usize,
) -> io::Result<(Vec<mio::net::UdpSocket>, usize)> {
    let mut out = Vec::with_capacity(n);
    let mut bound = addr;
    let mut granted = 0;
    for _ in 0..n.max(1) {
        let s = Socket::new(Domain::for_address(bound), Type::DGRAM, Some(Protocol::UDP))?;
        s.set_reuse_port(true)?;
        s.set_nonblocking(true)?;
        granted = set_rcvbuf(&s, rcvbuf);
        enable_rxq_ovfl(&s);
        s.bind(&bound.into())?;
        bound = s
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("UDP socket has no address"))?;
        // SAFETY: the fd is a valid, owned, non-blocking UDP socket.
        out.push(unsafe { mio::net::UdpSocket::from_raw_fd(s.into_raw_fd()) });
    }
    Ok((out, granted))
}

/// Asks for `want` bytes of receive buffer: SO_RCVBUFFORCE (needs
/// CAP_NET_ADMIN, ignores net.core.rmem_max) first, else SO_RCVBUF.
/// Returns what the kernel granted (Linux reports double the request).
pub fn set_rcvbuf(s: &Socket, want: usize) -> usize {
    let fd = s.as_raw_fd();
    let v = want.min(i32::MAX as usize / 2) as libc::c_int;
    // SAFETY: setsockopt with a valid fd and an int option value.
    let forced = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &v as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    } == 0;
    if !forced {
        let _ = s.set_recv_buffer_size(want);
    }
    s.recv_buffer_size().map(|g| g / 2).unwrap_or(0)
}

fn enable_rxq_ovfl(s: &Socket) {
    let one: libc::c_int = 1;
    // SAFETY: setsockopt with a valid fd and an int option value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RXQ_OVFL,
            &one as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Datagrams read per recvmmsg call.
pub const BATCH: usize = 32;

/// Reusable buffers for recvmmsg.
pub struct Receiver {
    slot: usize,
    bufs: Vec<u8>,
    addrs: Vec<libc::sockaddr_storage>,
    iovs: Vec<libc::iovec>,
    ctrl: Vec<[u64; 8]>,
    hdrs: Vec<libc::mmsghdr>,
}

// SAFETY: the raw pointers inside point into the Receiver's own Vecs and
// are rebuilt before every call; nothing is shared between threads.
unsafe impl Send for Receiver {}

/// One datagram read by [`Receiver::recv`].
pub struct Datagram<'b> {
    pub bytes: &'b [u8],
    pub src: SocketAddr,
    /// Longer than the slot: cut.
    pub truncated: bool,
}

impl Receiver {
    /// Buffers for datagrams of up to `max` bytes.
    pub fn new(max: usize) -> Receiver {
        let slot = max.clamp(512, 65_536) + 1;
        Receiver {
            slot,
            bufs: vec![0u8; slot * BATCH],
            // SAFETY: sockaddr_storage is plain data; all-zero is valid.
            addrs: vec![unsafe { std::mem::zeroed() }; BATCH],
            iovs: Vec::with_capacity(BATCH),
            ctrl: vec![[0u64; 8]; BATCH],
            // SAFETY: mmsghdr is plain data; all-zero is valid.
            hdrs: vec![unsafe { std::mem::zeroed() }; BATCH],
        }
    }

    /// Reads up to [`BATCH`] datagrams; calls `f` for each. Returns the
    /// number read (0 on WouldBlock) and the latest kernel drop counter.
    pub fn recv(
        &mut self,
        sock: &mio::net::UdpSocket,
        max: usize,
        mut f: impl FnMut(Datagram<'_>),
    ) -> io::Result<(usize, Option<u32>)> {
        self.iovs.clear();
        let base = self.bufs.as_mut_ptr();
        for i in 0..BATCH {
            self.iovs.push(libc::iovec {
                // SAFETY: i * slot is within bufs (BATCH * slot bytes).
                iov_base: unsafe { base.add(i * self.slot) } as *mut libc::c_void,
                iov_len: self.slot,
            });
        }
        for i in 0..BATCH {
            let h = &mut self.hdrs[i].msg_hdr;
            h.msg_name = &mut self.addrs[i] as *mut _ as *mut libc::c_void;
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
            h.msg_control = self.ctrl[i].as_mut_ptr() as *mut libc::c_void;
            h.msg_controllen = std::mem::size_of::<[u64; 8]>() as _;
            h.msg_flags = 0;
            self.hdrs[i].msg_len = 0;
        }
        // SAFETY: hdrs describes BATCH valid buffers owned by self.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok((0, None)),
                _ => Err(e),
            };
        }
        let n = n as usize;
        let mut drops = None;
        for i in 0..n {
            let h = &self.hdrs[i];
            let len = (h.msg_len as usize).min(self.slot);
            let mut truncated = h.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 || len >= self.slot;
            let mut bytes = &self.bufs[i * self.slot..i * self.slot + len];
            if bytes.len() > max {
                bytes = &bytes[..max];
                truncated = true;
            }
            if !truncated {
                while let Some((b'\n' | b'\0', rest)) = bytes.split_last() {
                    bytes = rest;
                }
            }
            if let Some(d) = rxq_ovfl(&h.msg_hdr) {
                drops = Some(d);
            }
            let src = sockaddr_to_std(&self.addrs[i]).unwrap_or(crate::record::UNSPECIFIED);
            if bytes.is_empty() {
                continue;
            }
            f(Datagram {
                bytes,
                src,
                truncated,
            });
        }
        Ok((n, drops))
    }
}

/// The SO_RXQ_OVFL counter in a received message's control data.
fn rxq_ovfl(h: &libc::msghdr) -> Option<u32> {
    // SAFETY: the CMSG macros walk the control buffer the kernel filled in,
    // bounded by msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SO_RXQ_OVFL {
                let p = libc::CMSG_DATA(c) as *const u32;
                return Some(std::ptr::read_unaligned(p));
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

fn sockaddr_to_std(a: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match a.ss_family as libc::c_int {
        libc::AF_INET => {
            // SAFETY: family says this storage holds a sockaddr_in.
            let s: &libc::sockaddr_in = unsafe { &*(a as *const _ as *const libc::sockaddr_in) };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(u32::from_be(s.sin_addr.s_addr)),
                u16::from_be(s.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: family says this storage holds a sockaddr_in6.
            let s: &libc::sockaddr_in6 = unsafe { &*(a as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(s.sin6_addr.s6_addr),
                u16::from_be(s.sin6_port),
                s.sin6_flowinfo,
                s.sin6_scope_id,
            )))
        }
        _ => None,
    }
}
