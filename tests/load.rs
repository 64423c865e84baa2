//! `sluice load` → `sluice run` → `sluice sink` on loopback, three real
//! processes: the sink's counts must agree with what the sender sent and
//! with sluice's own counters (issue 4, acceptance 2).

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `sluice sink`.
struct SinkProc {
    child: Child,
    tcp: SocketAddr,
    stderr: mpsc::Receiver<String>,
}

impl SinkProc {
    fn start(args: &[&str]) -> SinkProc {
        let mut child = Command::new(bin())
            .args(["sink", "--tcp", "127.0.0.1:0", "--json", "--quiet"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sink");
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                eprintln!("[sink] {line}");
                let _ = tx.send(line);
            }
        });
        let mut tcp = None;
        while tcp.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .expect("sink did not start listening");
            if let Some(a) = line.split("sink listening on tcp ").nth(1) {
                tcp = Some(a.trim().parse().expect("sink address"));
            }
        }
        SinkProc {
            child,
            tcp: tcp.expect("address"),
            stderr: rx,
        }
    }

    /// Waits for the sink to stop by itself and returns its JSON report.
    fn report(mut self, limit: Duration) -> Value {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if self.child.try_wait().expect("try_wait").is_some() {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "sink did not finish in {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut out = String::new();
        use std::io::Read;
        self.child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut out)
            .expect("read sink report");
        let stopped: Vec<String> = self.stderr.try_iter().collect();
        assert!(
            stopped.iter().any(|l| l.contains("sink: stopping")),
            "{stopped:?}"
        );
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("sink report {out:?}: {e}"))
    }
}

impl Drop for SinkProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `sluice load` to completion; returns its JSON report.
fn load(args: &[&str]) -> Value {
    let out = Command::new(bin())
        .args(["load", "--json", "--quiet"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run sluice load");
    assert!(
        out.status.success(),
        "sluice load failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("load report is JSON")
}

fn forward_config(sink: SocketAddr, format: &str, framing: &str) -> String {
    format!(
        r#"
[pipeline]
workers = 2

[metrics]
listen = "127.0.0.1:0"

[[input]]
name = "tcp"
type = "tcp"
listen = "127.0.0.1:0"

[[input]]
name = "udp"
type = "udp"
listen = "127.0.0.1:0"

[[output]]
name = "fwd"
type = "syslog"
target = "{sink}"
format = "{format}"
framing = "{framing}"
"#
    )
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn tcp_load_through_sluice_arrives_complete_and_matches_sluices_counters() {
    let sink = SinkProc::start(&["--idle", "30s"]);
    let mut s = Sluice::start(&forward_config(sink.tcp, "v2", "lf"));
    let tcp = s.addr("tcp").to_string();
    let sent = load(&[
        "--tcp",
        &tcp,
        "--connections",
        "2",
        "--count",
        "20000",
        "--framing",
        "octet",
    ]);
    assert_eq!(u(&sent["sent"]), 20_000);
    assert_eq!(u(&sent["streams"]), 2);
    let got = sink.report(Duration::from_secs(60));

    // The sink saw every message exactly once, from a run it knows ended.
    assert_eq!(u(&got["records"]), 20_000, "{got:#}");
    assert_eq!(u(&got["unique"]), 20_000);
    assert_eq!(u(&got["lost"]), 0);
    assert_eq!(u(&got["duplicates"]), 0);
    assert_eq!(u(&got["unstamped"]), 0);
    assert_eq!(got["complete"], true);
    let run = &got["runs"][0];
    assert_eq!(run["run"], sent["run"]);
    assert_eq!((u(&run["streams"]), u(&run["fins"])), (2, 2));
    let lat = &got["latency_ms"];
    assert_eq!(u(&lat["samples"]), 20_000);
    assert!(lat["p50"].as_f64().unwrap() > 0.0);
    assert!(lat["p50"].as_f64() <= lat["p99"].as_f64());
    assert!(lat["p99"].as_f64() <= lat["max"].as_f64());

    // sluice's own counters tell the same story.
    assert_eq!(
        s.metric("sluice_input_records_total{input=\"tcp\"}"),
        20_000.0
    );
    assert_eq!(
        s.metric_settled("sluice_output_sent_total{output=\"fwd\"}", 20_000.0),
        20_000.0
    );
    assert_eq!(
        s.metric_settled(
            "sluice_end_to_end_latency_seconds_count{output=\"fwd\"}",
            20_000.0
        ),
        20_000.0
    );
    for reason in ["queue_full", "shutdown", "send_error"] {
        assert_eq!(
            s.metric(&format!(
                "sluice_output_dropped_total{{output=\"fwd\",reason=\"{reason}\"}}"
            )),
            0.0
        );
    }
    // The bytes sluice says it wrote are the bytes the sink framed, plus
    // one LF per record.
    let want = (u(&got["bytes"]) + 20_000) as f64;
    assert_eq!(
        s.metric_settled("sluice_output_bytes_total{output=\"fwd\"}", want) as u64,
        want as u64
    );
    assert!(s.stop().success());
}

#[test]
fn udp_load_counts_agree_between_sender_sluice_and_sink() {
    let sink = SinkProc::start(&["--idle", "5s"]);
    // v1 over octet counting: the sink reads RFC 3164 text as well as v2.
    let mut s = Sluice::start(&forward_config(sink.tcp, "v1", "octet_counting"));
    let udp = s.addr("udp").to_string();
    // A modest rate: the point is agreement, whatever the loss.
    let sent = load(&[
        "--udp",
        &udp,
        "--rate",
        "5000",
        "--duration",
        "2s",
        "--mix",
        "sshd,cef,flowmon",
    ]);
    let n = u(&sent["sent"]);
    assert!(n > 5_000, "{sent:#}");
    let got = sink.report(Duration::from_secs(60));

    // The output counts a write once it returned; give it a moment.
    let records = u(&got["records"]);
    wait_until(Duration::from_secs(5), || {
        s.metric("sluice_output_sent_total{output=\"fwd\"}") as u64 >= records
    });
    let received = s.metric("sluice_input_records_total{input=\"udp\"}") as u64;
    let kernel =
        s.metric("sluice_input_dropped_total{input=\"udp\",reason=\"kernel_buffer\"}") as u64;
    let forwarded = s.metric("sluice_output_sent_total{output=\"fwd\"}") as u64;
    assert_eq!(forwarded, received);
    assert_eq!(records, forwarded, "{got:#}");
    assert_eq!(u(&got["unique"]), forwarded);
    assert_eq!(u(&got["duplicates"]), 0);
    if u(&got["runs"][0]["fins"]) == 1 {
        // The last datagram arrived, so every drop before it was reported
        // with a later datagram (SO_RXQ_OVFL): every datagram sent was
        // received or counted lost, and what the sink misses is exactly
        // what sluice says the kernel dropped.
        assert_eq!(received + kernel, n);
        assert_eq!(u(&got["runs"][0]["expected"]), n);
        assert_eq!(u(&got["lost"]), kernel);
    } else {
        assert!(received + kernel <= n);
    }
    assert!(s.stop().success());
}

#[test]
fn sink_counts_unstamped_lines_and_stops_at_count() {
    let sink = SinkProc::start(&["--count", "3"]);
    tcp_send(
        sink.tcp,
        b"<13>Oct 11 22:14:15 host app: plain\nno header at all\n",
    );
    tcp_send(sink.tcp, b"19 <13>1 - - - - - - x");
    let got = sink.report(Duration::from_secs(20));
    assert_eq!(u(&got["records"]), 3);
    assert_eq!(u(&got["unstamped"]), 3);
    assert_eq!(got["complete"], false);
}

#[test]
fn load_without_a_target_or_with_an_unknown_kind_fails_clearly() {
    let out = Command::new(bin())
        .args(["load", "-n", "5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tcp ADDR and/or --udp ADDR"));
    let out = Command::new(bin())
        .args(["load", "--tcp", "127.0.0.1:9", "--mix", "windows=2,nope=1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unknown kind `nope`") && err.contains("flowmon"),
        "{err}"
    );
}
