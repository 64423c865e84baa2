//! The per-record path in one thread, for profilers: reads a file of
//! syslog lines, and pushes them in batches through parse → classify →
//! enrich → v2 encoding, as the pipeline does, without sockets or threads.
//!
//! `cargo run --release --example hotpath -- FILE [ROUNDS]`, or under
//! `valgrind --tool=callgrind` for an instruction count per function.
//! FILE `perf:N` renders N messages of the `perf/` workload (`sluice load
//! --mix perf`) in process from a fixed seed instead, so that counts
//! compare across machines and sessions: perf/README.md's counts are
//! `perf:20000` with ROUNDS 3.

use std::time::Instant;

use sluice::batch::{Batch, BatchOwner};
use sluice::classify::{Classifier, class_names};
use sluice::config::IdentityConfig;
use sluice::encode::{Encoder, Format, Framing, Names};
use sluice::enrich::Enricher;
use sluice::identity::Identity;
use sluice::parse::Parser;
use sluice::record::UNSPECIFIED;
use sluice::stage::process;
use sluice::time::Timestamp;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().expect("usage: hotpath FILE [ROUNDS]");
    let rounds: usize = args.next().map_or(1, |r| r.parse().expect("rounds"));
    let text = match path.strip_prefix("perf:") {
        Some(n) => perf_corpus(n.parse().expect("perf:N")),
        None => std::fs::read(&path).expect("read FILE"),
    };
    let lines: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let names = Names::new(vec!["tcp".into()], class_names(&[]));
    let mut parser = Parser::new();
    let mut classifier = Classifier::new(&[], &names).unwrap();
    let mut enricher =
        Enricher::new(&[], &names, Some(Identity::new(&IdentityConfig::default()))).unwrap();
    let mut enc = Encoder::new(Format::V2, Framing::Lf);
    let mut out = Vec::with_capacity(1 << 20);
    let mut owner = Some(BatchOwner::default());
    let t0 = Instant::now();
    let mut n = 0usize;
    let mut bytes = 0usize;
    for _ in 0..rounds {
        for chunk in lines.chunks(512) {
            let mut o = owner.take().unwrap();
            let now = Timestamp::now();
            for l in chunk {
                o.push_frame(l, UNSPECIFIED, now, 0, 0);
            }
            let mut b = Batch::parse(o, &mut parser);
            process(&mut classifier, &mut b);
            process(&mut enricher, &mut b);
            b.with_dependent(|_, recs| {
                for r in recs.list.iter() {
                    enc.encode(r, &names, &mut out);
                }
            });
            n += chunk.len();
            bytes += out.len();
            out.clear();
            let mut o = b.into_owner();
            o.clear();
            owner = Some(o);
        }
    }
    let dt = t0.elapsed();
    eprintln!(
        "{n} records in {:.3}s: {:.0} records/s, {:.0} ns/record, {} output bytes",
        dt.as_secs_f64(),
        n as f64 / dt.as_secs_f64(),
        dt.as_nanos() as f64 / n as f64,
        bytes
    );
}

/// `n` LF-terminated messages of the perf workload, the same for every run.
fn perf_corpus(n: usize) -> Vec<u8> {
    use sluice::load::traffic::{Kind, render};
    let mut rng = fastrand::Rng::with_seed(1);
    // A fixed time: the messages' text does not depend on the clock.
    let now = Timestamp {
        unix_ns: 1_796_400_000_123_000_000,
        offset_min: 0,
        frac_digits: 3,
    };
    let mut out = Vec::with_capacity(n * 400);
    for _ in 0..n {
        out.extend_from_slice(&render(Kind::Perf, &mut rng, now, 1, 0).bytes);
        out.push(b'\n');
    }
    out
}
