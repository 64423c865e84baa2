//! The `/metrics` HTTP endpoint (Prometheus text format) on its own thread.

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use super::Metrics;

/// A running endpoint; dropping it does not stop it (it lives as long as
/// the process), `stop` does.
pub struct MetricsServer {
    server: Arc<tiny_http::Server>,
    pub addr: SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `listen` and serves `metrics` until stopped.
    pub fn start(listen: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<MetricsServer> {
        let server = tiny_http::Server::http(listen).map_err(std::io::Error::other)?;
        let addr = server
            .server_addr()
            .to_ip()
            .ok_or_else(|| std::io::Error::other("metrics endpoint has no IP address"))?;
        let server = Arc::new(server);
        let s = server.clone();
        let thread = std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for req in s.incoming_requests() {
                    let path = req.url().split('?').next().unwrap_or("");
                    let resp = match path {
                        "/metrics" => {
                            let body = metrics.render();
                            let h = tiny_http::Header::from_bytes(
                                &b"Content-Type"[..],
                                &b"text/plain; version=0.0.4; charset=utf-8"[..],
                            )
                            .expect("static header is valid");
                            tiny_http::Response::from_string(body).with_header(h)
                        }
                        "/" | "/health" => tiny_http::Response::from_string("sluice ok\n"),
                        _ => tiny_http::Response::from_string("not found\n").with_status_code(404),
                    };
                    let _ = req.respond(resp);
                }
            })?;
        Ok(MetricsServer {
            server,
            addr,
            thread: Some(thread),
        })
    }

    pub fn stop(mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
