//! Test harness: runs the real `sluice` binary on loopback ports and talks
//! to it over real sockets.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use serde_json::Value;

/// A running sluice.
pub struct Sluice {
    child: Option<Child>,
    /// Input name → bound address.
    pub inputs: HashMap<String, SocketAddr>,
    pub metrics: Option<SocketAddr>,
    /// Everything sluice logged on stderr so far.
    pub log: Arc<Mutex<Vec<String>>>,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

/// The path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sluice")
}

impl Sluice {
    /// Writes `config` (where `{dir}` stands for a fresh temporary
    /// directory) and starts `sluice run --config` on it; waits for "ready".
    pub fn start(config: &str) -> Sluice {
        let dir = tempfile::tempdir().expect("tempdir");
        let text = config.replace("{dir}", dir.path().to_str().expect("utf-8 path"));
        let config_path = dir.path().join("sluice.toml");
        std::fs::write(&config_path, text).expect("write config");
        Self::start_with(dir, config_path, &[])
    }

    /// Starts sluice on an existing config file.
    pub fn start_with(
        dir: tempfile::TempDir,
        config_path: PathBuf,
        env: &[(&str, &str)],
    ) -> Sluice {
        let mut cmd = Command::new(bin());
        cmd.arg("run")
            .arg("--config")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn sluice");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        let l2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[sluice] {line}");
                l2.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        // Stdout is drained so that a stdout output never blocks.
        let stdout = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            let mut sink = Vec::new();
            let _ = r.read_to_end(&mut sink);
        });
        let mut inputs = HashMap::new();
        let mut metrics = None;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(l) => l,
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "sluice did not become ready; log:\n{}",
                        log.lock().unwrap().join("\n")
                    );
                }
            };
            if let Some(rest) = line.split("input \"").nth(1) {
                let name = rest.split('"').next().unwrap().to_string();
                let addr: SocketAddr = rest.rsplit(' ').next().unwrap().parse().unwrap();
                inputs.insert(name, addr);
            }
            if let Some(rest) = line.split("metrics on http://").nth(1) {
                metrics = Some(rest.trim_end_matches("/metrics").parse().unwrap());
            }
            if line.ends_with("sluice: ready") {
                break;
            }
        }
        Sluice {
            child: Some(child),
            inputs,
            metrics,
            log,
            dir,
            config_path,
        }
    }

    pub fn addr(&self, input: &str) -> SocketAddr {
        *self
            .inputs
            .get(input)
            .unwrap_or_else(|| panic!("no input {input}"))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// The `/metrics` text.
    pub fn scrape(&self) -> String {
        let addr = self.metrics.expect("config has [metrics] listen");
        http_get(addr, "/metrics")
    }

    /// The value of one sample, e.g. `sluice_input_records_total{input="tcp"}`
    /// (0 when absent).
    pub fn metric(&self, sample: &str) -> f64 {
        metric_value(&self.scrape(), sample)
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.pid() as i32, sig);
        }
    }

    /// SIGTERM, then waits (up to 60 s) for exit.
    pub fn stop(&mut self) -> ExitStatus {
        self.signal(libc::SIGTERM);
        self.wait(Duration::from_secs(60))
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = child.try_wait().expect("try_wait") {
                return s;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("sluice did not exit in {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL without waiting for a clean exit.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// GET over HTTP/1.0; returns the body.
pub fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect metrics");
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    match resp.split_once("\r\n\r\n") {
        Some((_, body)) => body.to_string(),
        None => resp,
    }
}

/// The value of `sample` in a Prometheus text exposition (0 when absent).
pub fn metric_value(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|r| r.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap_or(0.0))
}

/// Reads an NDJSON file (missing file = no records). A last line without
/// its newline is still being written and is left out.
pub fn read_ndjson(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad JSON line {l:?}: {e}")))
        .collect()
}

/// Polls `f` every 20 ms until it is true or `limit` passes.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// Waits until `path` holds at least `n` NDJSON records; returns them.
pub fn wait_records(path: &Path, n: usize, limit: Duration) -> Vec<Value> {
    let mut got = Vec::new();
    wait_until(limit, || {
        got = read_ndjson(path);
        got.len() >= n
    });
    got
}

/// Sends bytes over a new TCP connection and closes it.
pub fn tcp_send(addr: SocketAddr, bytes: &[u8]) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(bytes).expect("write");
    s.flush().unwrap();
}

/// A free loopback TCP port for a peer a test starts later (or never).
///
/// It is taken from below the kernel's ephemeral range
/// (`ip_local_port_range`), so neither a socket bound to port 0 beside the
/// test nor an outgoing connection (which could even be given the port as
/// its own source and connect to itself) can take it in the meantime: a
/// test's output was once "connected" to a peer port the test meant to be
/// down. Ports are tried in a per-process order from a start derived from
/// the process id; each is checked free by binding.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u32>().ok())
        .unwrap_or(32768);
    const FLOOR: u32 = 20000;
    if low > FLOOR + 1000 {
        let span = low - FLOOR;
        let start = std::process::id().wrapping_mul(7919) % span;
        for _ in 0..span {
            let port = FLOOR + (start + NEXT.fetch_add(1, Ordering::Relaxed)) % span;
            if std::net::TcpListener::bind(("127.0.0.1", port as u16)).is_ok() {
                return port as u16;
            }
        }
    }
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `s.msg.<k>` as a string.
pub fn msg<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v["msg"][k].as_str()
}

/// `s.meta.<k>` as a string.
pub fn meta<'a>(v: &'a Value, k: &str) -> Option<&'a str> {
    v["meta"][k].as_str()
}

/// A config with one TCP and one UDP input on port 0, a file output
/// `{dir}/out.ndjson` and metrics, plus `extra` appended.
pub fn basic_config(extra: &str) -> String {
    format!(
        r#"
[pipeline]
workers = 2

[metrics]
listen = "127.0.0.1:0"

[[input]]
name = "udp"
type = "udp"
listen = "127.0.0.1:0"

[[input]]
name = "tcp"
type = "tcp"
listen = "127.0.0.1:0"

[[output]]
name = "file"
type = "file"
path = "{{dir}}/out.ndjson"
{extra}
"#
    )
}

/// A TCP syslog peer that collects LF-terminated lines from any number of
/// connections; returns the lines and a connection count.
pub fn collect_lines(
    listener: std::net::TcpListener,
) -> (Arc<Mutex<Vec<String>>>, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let lines = Arc::new(Mutex::new(Vec::new()));
    let conns = Arc::new(AtomicUsize::new(0));
    let (l2, c2) = (lines.clone(), conns.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            c2.fetch_add(1, Ordering::SeqCst);
            let l3 = l2.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(stream);
                let mut line = String::new();
                let mut batch = Vec::new();
                loop {
                    line.clear();
                    match r.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if line.ends_with('\n') => {
                            batch.push(line.trim_end_matches('\n').to_string());
                            if batch.len() >= 1000 || r.buffer().is_empty() {
                                l3.lock().unwrap().append(&mut batch);
                            }
                        }
                        // A partial last line of a dropped connection.
                        Ok(_) => break,
                    }
                }
                l3.lock().unwrap().append(&mut batch);
            });
        }
    });
    (lines, conns)
}

impl Sluice {
    /// The value of `sample` once it equals `want`, or after 10 s whatever
    /// it is (counters are updated just after the I/O they count, so a peer
    /// may see the data a moment before the counter moves).
    pub fn metric_settled(&self, sample: &str, want: f64) -> f64 {
        let mut v = self.metric(sample);
        wait_until(Duration::from_secs(10), || {
            v = self.metric(sample);
            v == want
        });
        v
    }
}
