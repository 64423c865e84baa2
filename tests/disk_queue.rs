//! Issue 5 acceptance 4: `when_full = "disk"` keeps everything through a
//! peer outage, a restart and a `kill -9`.

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::*;

const N: usize = 500_000;

fn config(port: u16, queue: &str) -> String {
    basic_config(&format!(
        r#"
[[output]]
name = "peer"
type = "syslog"
transport = "tcp"
target = "127.0.0.1:{port}"
format = "raw"
when_full = "disk"
disk_queue_path = "{queue}"
"#
    ))
}

fn send(s: &Sluice, from: usize, to: usize) {
    let mut c = TcpStream::connect(s.addr("tcp")).unwrap();
    let mut buf = Vec::with_capacity((to - from) * 40);
    for i in from..to {
        writeln!(buf, "<13>1 - h a - - - seq {i:07}").unwrap();
    }
    c.write_all(&buf).unwrap();
}

fn queued(s: &Sluice) -> f64 {
    s.metric("sluice_output_disk_queue_records{output=\"peer\"}")
}

fn seqs(lines: &[String]) -> Vec<usize> {
    lines
        .iter()
        .map(|l| {
            l.rsplit(' ')
                .next()
                .unwrap()
                .parse::<usize>()
                .unwrap_or_else(|_| panic!("bad line {l:?}"))
        })
        .collect()
}

#[test]
fn a_peer_down_for_30_seconds_gets_all_500k_records_in_order() {
    let port = free_port();
    let q = tempfile::tempdir().unwrap();
    let mut s = Sluice::start(&config(port, q.path().to_str().unwrap()));
    let t0 = Instant::now();
    send(&s, 0, N);
    assert!(
        wait_until(Duration::from_secs(60), || queued(&s) >= N as f64),
        "queued {}",
        queued(&s)
    );
    std::thread::sleep(Duration::from_secs(30).saturating_sub(t0.elapsed()));
    let (lines, _) = collect_lines(TcpListener::bind(("127.0.0.1", port)).unwrap());
    assert!(
        wait_until(Duration::from_secs(120), || lines.lock().unwrap().len()
            >= N),
        "peer got {} of {N}",
        lines.lock().unwrap().len()
    );
    let got = seqs(&lines.lock().unwrap());
    assert_eq!(got.len(), N);
    assert!(got.iter().enumerate().all(|(i, &v)| i == v), "in order");
    assert!(wait_until(Duration::from_secs(10), || queued(&s) == 0.0));
    assert!(s.stop().success());
}

#[test]
fn kill_9_midway_and_a_restart_lose_nothing() {
    let port = free_port();
    let q = tempfile::tempdir().unwrap();
    let cfg = config(port, q.path().to_str().unwrap());
    let mut s = Sluice::start(&cfg);
    send(&s, 0, N / 2);
    assert!(wait_until(Duration::from_secs(60), || queued(&s) >= (N / 2) as f64));
    s.kill9();
    let mut s = Sluice::start(&cfg);
    assert!(
        s.log_text()
            .contains("holds 250000 records from the last run"),
        "{}",
        s.log_text()
    );
    send(&s, N / 2, N);
    assert!(
        wait_until(Duration::from_secs(60), || queued(&s) >= N as f64),
        "queued {}",
        queued(&s)
    );
    let (lines, _) = collect_lines(TcpListener::bind(("127.0.0.1", port)).unwrap());
    assert!(
        wait_until(Duration::from_secs(120), || lines.lock().unwrap().len()
            >= N),
        "peer got {} of {N}",
        lines.lock().unwrap().len()
    );
    let got = seqs(&lines.lock().unwrap());
    let mut seen = vec![false; N];
    for &v in &got {
        seen[v] = true;
    }
    let missing = seen.iter().filter(|s| !**s).count();
    assert_eq!(missing, 0, "none missing");
    // Replay keeps order: each record arrives after the one before it.
    let mut sorted = got.clone();
    sorted.dedup();
    assert!(sorted.windows(2).all(|w| w[0] < w[1]), "in order");
    assert!(s.stop().success());
}
