//! sluice's `/metrics` against real Prometheus tools (issue 4, acceptance
//! 1): `promtool check metrics` accepts the exposition, and a Prometheus
//! server scraping sluice on loopback returns a counter with exactly the
//! value sluice reported.

mod common;
use common::*;

use std::io::Write;
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Sends a little of everything so that every family has samples: TCP and
/// UDP records, JSON and text, a malformed one, an oversize one.
fn feed(s: &Sluice) {
    let mut lines = Vec::new();
    for i in 0..40 {
        lines.extend_from_slice(
            format!(
                "<14>1 2026-03-03T10:15:00Z dc01 agent - - - {{\"EventID\":4624,\"TargetUserName\":\"u{i}\",\"IpAddress\":\"10.0.0.{i}\"}}\n"
            )
            .as_bytes(),
        );
        lines.extend_from_slice(b"<38>Mar  3 10:15:00 web01 sshd[1]: Failed password for root\n");
    }
    lines.extend_from_slice(b"no pri at all\n");
    lines.extend_from_slice(&[b'x'; 70_000]);
    lines.push(b'\n');
    tcp_send(s.addr("tcp"), &lines);
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    for _ in 0..10 {
        u.send_to(b"<13>Oct 11 22:14:15 host app: over udp", s.addr("udp"))
            .unwrap();
    }
    assert!(
        wait_until(Duration::from_secs(20), || {
            s.metric("sluice_output_sent_total{output=\"file\"}") >= 92.0
        }),
        "records did not come through"
    );
}

#[test]
fn metrics_exposition_passes_promtool_check() {
    let mut s = Sluice::start(&basic_config(""));
    feed(&s);
    let text = s.scrape();
    assert!(text.contains("# TYPE sluice_end_to_end_latency_seconds histogram"));
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/deps.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {said}\n--- exposition ---\n{text}"
    );
    assert!(s.stop().success());
}

#[test]
fn promtool_would_catch_a_broken_exposition() {
    // The check above can fail: promtool rejects a counter without
    // `_total` and an abbreviated unit.
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"# HELP sluice_x_ms x\n# TYPE sluice_x_ms counter\nsluice_x_ms 1\n")
        .unwrap();
    assert!(!child.wait_with_output().unwrap().status.success());
}

/// A Prometheus server with its own config and data directory.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: sluice\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new("/usr/bin/prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus (Debian package prometheus)");
        let p = Prometheus {
            child,
            addr,
            _dir: dir,
        };
        let ready = wait_until(Duration::from_secs(30), || {
            std::net::TcpStream::connect(addr).is_ok()
                && http_get(addr, "/-/ready").contains("Ready")
        });
        assert!(ready, "prometheus did not become ready: {}", p.log());
        p
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The value of an instant query's single sample, if there is one.
    fn query(&self, q: &str) -> Option<String> {
        let body = http_get(self.addr, &format!("/api/v1/query?query={}", encode(q)));
        let v: Value = serde_json::from_str(&body).ok()?;
        assert_eq!(v["status"], "success", "{body}");
        let result = v["data"]["result"].as_array()?;
        assert!(result.len() <= 1, "{body}");
        Some(result.first()?["value"][1].as_str()?.to_string())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query string value (RFC 3986 section 2.1).
fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[test]
fn prometheus_scrapes_sluice_and_reads_back_its_counters() {
    let mut s = Sluice::start(&basic_config(""));
    feed(&s);
    // Nothing more arrives: these values are final.
    let text = s.scrape();
    let records = metric_value(&text, "sluice_input_records_total{input=\"tcp\"}");
    let bytes = metric_value(&text, "sluice_input_bytes_total{input=\"tcp\"}");
    let sent = metric_value(&text, "sluice_output_sent_total{output=\"file\"}");
    assert_eq!(records, 82.0);
    assert!(bytes > 70_000.0);

    let p = Prometheus::start(s.metrics.expect("metrics address"));
    let mut seen = None;
    wait_until(Duration::from_secs(30), || {
        seen = p.query("sluice_input_bytes_total{input=\"tcp\"}");
        seen.is_some()
    });
    assert_eq!(
        seen.as_deref().map(|v| v.parse::<f64>().unwrap()),
        Some(bytes),
        "prometheus log:\n{}",
        p.log()
    );
    let q = |name: &str| p.query(name).map(|v| v.parse::<f64>().unwrap());
    assert_eq!(
        q("sluice_input_records_total{input=\"tcp\"}"),
        Some(records)
    );
    assert_eq!(q("sluice_output_sent_total{output=\"file\"}"), Some(sent));
    assert_eq!(q("up{job=\"sluice\"}"), Some(1.0));
    // Histograms arrive as histograms: a quantile can be computed.
    let p99 = q("histogram_quantile(0.99, sum by (le) (sluice_end_to_end_latency_seconds_bucket))");
    assert!(p99.is_some_and(|v| v > 0.0 && v < 30.0), "{p99:?}");
    drop(p);
    assert!(s.stop().success());
}
