//! TLS (RFC 5425) for inputs and syslog outputs, with rustls.
//!
//! Certificates, keys and CA bundles are PEM files named in the config and
//! loaded once at start-up. An input may require client certificates from a
//! CA (`tls_client_ca`); a handshake that fails is counted under
//! `sluice_input_connections_refused_total{reason="tls_handshake"}`. The
//! server side is non-blocking (driven by the input worker's poll); the
//! client side (outputs) is blocking, like the plain TCP sink.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

/// Debian's system CA bundle, used by outputs that name no `tls_ca`.
pub const SYSTEM_CA: &str = "/etc/ssl/certs/ca-certificates.crt";

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no certificate in it", path.display()));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| format!("{}: no usable private key: {e}", path.display()))
}

fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for c in load_certs(path)? {
        roots
            .add(c)
            .map_err(|e| format!("{}: bad CA certificate: {e}", path.display()))?;
    }
    Ok(roots)
}

/// The config of a TLS input.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<Arc<ServerConfig>, String> {
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = match client_ca {
        Some(ca) => {
            let roots = load_roots(ca)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .map_err(|e| format!("{}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let cfg = builder
        .with_single_cert(load_certs(cert)?, load_key(key)?)
        .map_err(|e| format!("{} / {}: {e}", cert.display(), key.display()))?;
    Ok(Arc::new(cfg))
}

/// The config of a TLS output.
pub fn client_config(
    ca: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> Result<Arc<ClientConfig>, String> {
    let roots = load_roots(ca.unwrap_or(Path::new(SYSTEM_CA)))?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let cfg = match (cert, key) {
        (Some(c), Some(k)) => builder
            .with_client_auth_cert(load_certs(c)?, load_key(k)?)
            .map_err(|e| format!("{} / {}: {e}", c.display(), k.display()))?,
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("tls_cert and tls_key go together".into()),
    };
    Ok(Arc::new(cfg))
}

/// The server side of one TLS connection over a non-blocking socket.
pub struct ServerStream {
    pub sock: mio::net::TcpStream,
    conn: rustls::ServerConnection,
    eof: bool,
    /// The handshake failed (bad or missing client certificate, not TLS).
    pub handshake_failed: bool,
}

impl ServerStream {
    pub fn new(sock: mio::net::TcpStream, cfg: Arc<ServerConfig>) -> io::Result<ServerStream> {
        let conn = rustls::ServerConnection::new(cfg).map_err(io::Error::other)?;
        Ok(ServerStream {
            sock,
            conn,
            eof: false,
            handshake_failed: false,
        })
    }

    /// Sends what TLS has queued (handshake, alerts); WouldBlock is fine,
    /// the worker retries on the next writable event.
    fn flush_tls(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            match self.conn.write_tls(&mut self.sock) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads plaintext: `Ok(0)` when the peer closed, WouldBlock when
    /// nothing more is available now.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if self.eof {
                return Ok(0);
            }
            match self.conn.read_tls(&mut self.sock) {
                Ok(0) => self.eof = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.flush_tls()?;
                    return Err(e);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if let Err(e) = self.conn.process_new_packets() {
                if self.conn.is_handshaking() {
                    self.handshake_failed = true;
                }
                let _ = self.flush_tls();
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            self.flush_tls()?;
        }
    }
}

/// A blocking TLS client stream for outputs.
pub type ClientStream = rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>;

/// Wraps a connected socket in TLS and completes the handshake.
pub fn connect(
    sock: std::net::TcpStream,
    cfg: Arc<ClientConfig>,
    server_name: &str,
) -> io::Result<ClientStream> {
    let name = ServerName::try_from(server_name.to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{server_name}: {e}")))?;
    let conn = rustls::ClientConnection::new(cfg, name).map_err(io::Error::other)?;
    let mut s = rustls::StreamOwned::new(conn, sock);
    while s.conn.is_handshaking() {
        s.conn.complete_io(&mut s.sock)?;
    }
    s.flush()?;
    Ok(s)
}
