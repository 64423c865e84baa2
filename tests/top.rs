//! `sluice top` in a real terminal (tmux) against a real, loaded sluice:
//! the rates it shows agree with `/metrics`, and `q` quits.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;

/// Records per second the sender keeps up, paced in 10 ms steps.
const RATE: u64 = 2000;

/// A tmux server of our own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn new() -> Tmux {
        Tmux {
            socket: format!("sluice-top-test-{}", std::process::id()),
        }
    }
    fn cmd(&self) -> Command {
        let mut c = Command::new("tmux");
        c.arg("-L").arg(&self.socket).env("TERM", "xterm-256color");
        c
    }
    fn run(&self, args: &[&str]) -> std::process::Output {
        self.cmd()
            .args(args)
            .output()
            .expect("run tmux (scripts/deps.sh installs it)")
    }
    fn capture(&self) -> String {
        let out = self.run(&["capture-pane", "-p", "-t", "top"]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
    fn alive(&self) -> bool {
        self.run(&["has-session", "-t", "top"]).status.success()
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Streams RFC 5424 records over one TCP connection at `RATE`/s until
/// `stop`; returns how many it sent.
fn sender(addr: std::net::SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).expect("connect");
        let per_step = RATE / 100;
        let start = Instant::now();
        let mut sent = 0u64;
        let mut buf = Vec::new();
        while !stop.load(Ordering::Relaxed) {
            // Deadline pacing: a late step catches up, so the long-run rate
            // stays RATE even when this thread is descheduled.
            let due = start.elapsed().as_millis() as u64 / 10 * per_step + per_step;
            buf.clear();
            while sent < due {
                writeln!(
                    buf,
                    "<134>1 2026-01-01T00:00:00Z web01 app - - - request {sent} served"
                )
                .unwrap();
                sent += 1;
            }
            s.write_all(&buf).expect("write");
            std::thread::sleep(Duration::from_millis(10));
        }
        sent
    })
}

/// `5.00k` → 5000, `1.20M` → 1.2e6, `950` → 950.
fn si(text: &str) -> f64 {
    let (num, mult) = match text.chars().last() {
        Some('k') => (&text[..text.len() - 1], 1e3),
        Some('M') => (&text[..text.len() - 1], 1e6),
        Some('G') => (&text[..text.len() - 1], 1e9),
        _ => (text, 1.0),
    };
    num.parse::<f64>()
        .unwrap_or_else(|_| panic!("not a number: {text:?}"))
        * mult
}

/// The cells of the table row whose first cell is `first`.
fn row(pane: &str, first: &str) -> Option<Vec<String>> {
    pane.lines()
        .map(|l| {
            l.trim_matches(|c: char| c == '│' || c.is_whitespace())
                .split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .find(|w| w.first().map(String::as_str) == Some(first))
}

/// The rate of a counter between two scrapes, over sluice's own uptime.
fn metrics_rate(a: &str, b: &str, sample: &str) -> f64 {
    let dt = metric_value(b, "sluice_uptime_seconds") - metric_value(a, "sluice_uptime_seconds");
    (metric_value(b, sample) - metric_value(a, sample)) / dt
}

fn assert_close(what: &str, shown: f64, truth: f64, pane: &str) {
    // Tolerance 25%. top's rate covers one ~1 s scrape interval, the
    // reference covers the ~2.5 s around it; both time bases are sluice's
    // uptime, so only the flow itself can differ between the windows. The
    // sender is deadline-paced in 10 ms steps (±1% per second), but on a
    // shared 2-core machine a stall of the sender or of a pipeline thread
    // of up to ~200 ms moves that share of a second's records into the
    // next interval. A wrong computation (a total instead of a rate, a
    // per-interval count at another interval, ms instead of s) is off by
    // far more than 25%.
    assert!(truth > 0.0, "{what}: /metrics shows no traffic\n{pane}");
    let err = (shown - truth).abs() / truth;
    assert!(
        err <= 0.25,
        "{what}: top shows {shown:.0}/s, /metrics says {truth:.0}/s ({:.0}% off)\n{pane}",
        err * 100.0
    );
}

#[test]
fn top_in_tmux_shows_rates_that_agree_with_metrics_and_quits_on_q() {
    let s = Sluice::start(&basic_config(""));
    let url = format!("http://{}/metrics", s.metrics.expect("metrics"));
    let stop = Arc::new(AtomicBool::new(false));
    let send = sender(s.addr("tcp"), stop.clone());

    let tmux = Tmux::new();
    let top = format!("{} top --url {url} --interval 1s", bin());
    let out = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "150",
        "-y",
        "45",
        &top,
    ]);
    assert!(
        out.status.success(),
        "tmux: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Wait until top has two scrapes under load (rates shown, not "…").
    let shown = wait_until(Duration::from_secs(20), || {
        row(&tmux.capture(), "tcp")
            .is_some_and(|r| r.get(1).is_some_and(|c| c != "…" && si(c) > 0.0))
    });
    assert!(shown, "top never showed a tcp rate:\n{}", tmux.capture());

    // The reference window brackets top's last interval: top shows a rate
    // at most ~1.1 s old (1 s scrapes, 100 ms redraws), so after 2.2 s its
    // interval lies inside [m0, m1].
    let m0 = s.scrape();
    std::thread::sleep(Duration::from_millis(2200));
    let pane = tmux.capture();
    let m1 = s.scrape();
    eprintln!("{pane}");

    let tcp = row(&pane, "tcp").expect("tcp input row");
    assert_close(
        "input tcp records/s",
        si(&tcp[1]),
        metrics_rate(&m0, &m1, "sluice_input_records_total{input=\"tcp\"}"),
        &pane,
    );
    // The total is the exact counter of one of top's scrapes.
    let total: f64 = tcp[3].parse().expect("total");
    let (lo, hi) = (
        metric_value(&m0, "sluice_input_records_total{input=\"tcp\"}"),
        metric_value(&m1, "sluice_input_records_total{input=\"tcp\"}"),
    );
    assert!(
        lo <= total && total <= hi,
        "total {total} not in [{lo}, {hi}]\n{pane}"
    );

    for stage in ["parse", "classify", "enrich", "forward"] {
        let r = row(&pane, stage).unwrap_or_else(|| panic!("no {stage} row\n{pane}"));
        assert_close(
            &format!("stage {stage} records/s"),
            si(&r[1]),
            metrics_rate(
                &m0,
                &m1,
                &format!("sluice_stage_records_total{{stage=\"{stage}\"}}"),
            ),
            &pane,
        );
        // Latency quantiles from the interval's histogram deltas.
        assert!(
            r[3].ends_with('s') && r[4].ends_with('s'),
            "{stage} p50/p99: {r:?}"
        );
    }
    let file = row(&pane, "file").expect("file output row");
    assert_close(
        "output file sent/s",
        si(&file[1]),
        metrics_rate(&m0, &m1, "sluice_output_sent_total{output=\"file\"}"),
        &pane,
    );
    assert_eq!(file.last().map(String::as_str), Some("up"));
    let ids = metric_value(&m1, "sluice_identity_entries");
    assert!(
        pane.contains(&format!("identity {ids:.0} entries")),
        "identity size {ids} not shown\n{pane}"
    );
    assert!(row(&pane, "none").is_some(), "no drops expected\n{pane}");

    // `q` quits: the pane's only process exits and tmux ends the session.
    tmux.run(&["send-keys", "-t", "top", "q"]);
    assert!(
        wait_until(Duration::from_secs(5), || !tmux.alive()),
        "top did not quit on q"
    );

    stop.store(true, Ordering::Relaxed);
    let sent = send.join().unwrap();
    assert!(sent > 0);
}

#[test]
fn top_shows_the_scrape_error_when_nothing_listens() {
    let tmux = Tmux {
        socket: format!("sluice-top-test-err-{}", std::process::id()),
    };
    let url = format!("http://127.0.0.1:{}/metrics", free_port());
    let top = format!("{} top --url {url}", bin());
    let out = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "top",
        "-x",
        "150",
        "-y",
        "45",
        &top,
    ]);
    assert!(out.status.success());
    let ok = wait_until(Duration::from_secs(10), || {
        tmux.capture().contains("scrape failed")
    });
    assert!(ok, "no error shown:\n{}", tmux.capture());
    tmux.run(&["send-keys", "-t", "top", "q"]);
    assert!(
        wait_until(Duration::from_secs(5), || !tmux.alive()),
        "top did not quit on q"
    );
}

#[test]
fn top_refuses_a_non_http_url_with_a_clear_error() {
    let out = Command::new(bin())
        .args(["top", "--url", "https://127.0.0.1:9598/metrics"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("only http://"), "{err}");
}
