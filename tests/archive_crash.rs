//! Crash safety: `kill -9` during heavy writing, then restart. Every record
//! sluice reported durable before the kill is there (in order, once), a
//! torn tail is cut and reported, and the archive verifies clean.
mod archive_support;
mod common;

use archive_support::*;
use common::*;
use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

fn seq_of(line: &str) -> u64 {
    let v: Value = serde_json::from_str(line).unwrap();
    msg(&v, "seq").unwrap().parse().unwrap()
}

#[test]
fn kill_9_during_heavy_writing_loses_nothing_that_was_durable() {
    let mut a = Arch::start("checkpoint_interval = \"1s\"");
    let addr = a.s.addr("tcp");
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    // One connection, so arrival order is send order: the durable records
    // are exactly the first N sent.
    let sender = std::thread::spawn(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        let mut buf = Vec::with_capacity(1 << 20);
        let mut seq = 0u64;
        while !st.load(Ordering::Relaxed) {
            buf.clear();
            for _ in 0..2000 {
                let _ = writeln!(
                    buf,
                    "<14>1 2026-03-01T10:00:00.000Z dc01 agent - - - {{\"EventID\":\"4624\",\"TargetUserName\":\"user{}\",\"IpAddress\":\"10.0.0.{}\",\"seq\":\"{seq}\"}}",
                    seq % 50,
                    seq % 250
                );
                seq += 1;
            }
            if c.write_all(&buf).is_err() {
                break;
            }
        }
        seq
    });
    a.wait_durable(30_000, Duration::from_secs(60));
    let durable = a.durable() as u64;
    a.s.kill9();
    stop.store(true, Ordering::Relaxed);
    let sent = sender.join().unwrap();
    assert!(sent > durable);

    // What a power cut can leave behind: the newest block written only in
    // part. Append the first half of a copy of the last block.
    let dir = a.dir();
    let newest = segments(&dir).last().unwrap().clone();
    let bl = blocks(&newest);
    let (off, len) = *bl.last().unwrap();
    let bytes = std::fs::read(&newest).unwrap();
    let complete = off + len;
    let torn_existing = bytes.len() - complete;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&newest)
        .unwrap();
    f.write_all(&bytes[off..off + len / 2]).unwrap();
    drop(f);
    let torn = torn_existing + len / 2;

    a.restart();
    let log = a.s.log_text();
    assert!(
        log.contains("torn tail") && log.contains(&format!("cut {torn} bytes")),
        "the torn tail is reported:\n{log}"
    );
    assert_eq!(
        a.s.metric("sluice_archive_torn_tail_bytes_total{output=\"archive\"}"),
        torn as f64
    );
    assert!(a.s.stop().success());

    let (code, out) = verify(&dir, &a.pubkey, &[]);
    assert_eq!(code, 0, "{out}");
    let lines = search(&dir, &["--oldest-first"]);
    let seqs: Vec<u64> = lines.iter().map(|l| seq_of(l)).collect();
    assert!(
        seqs.len() as u64 >= durable,
        "{} records, {durable} were durable",
        seqs.len()
    );
    for (i, s) in seqs.iter().enumerate() {
        assert_eq!(*s, i as u64, "records come back in order, each once");
    }
}
