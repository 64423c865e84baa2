//! Framing: a TCP byte stream (the mixed fixture) split into frames, LF and
//! octet-counted, read in 256 KiB chunks as an input worker reads them.

mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice::batch::BatchOwner;
use sluice::frame::Framer;
use sluice::time::Timestamp;
use std::hint::black_box;
use support::*;

/// What one `read` returns on a busy connection.
const READ: usize = 256 * 1024;

fn frame(c: &mut Criterion) {
    let buf = fixture("mixed.txt");
    let lines = lines(&buf);
    let octet = octet_counted(&lines);
    let mut g = c.benchmark_group("frame");
    for (name, data) in [("lf", &buf), ("octet", &octet)] {
        g.throughput(Throughput::ElementsAndBytes {
            elements: lines.len() as u64,
            bytes: data.len() as u64,
        });
        g.bench_function(name, |b| {
            let mut f = Framer::new(64 * 1024);
            b.iter(|| {
                let mut n = 0usize;
                for chunk in data.chunks(READ) {
                    f.feed(black_box(chunk), &mut |fr, _| n += fr.len());
                }
                black_box(n)
            })
        });
        // Framing into a batch, as the worker does: frame bytes are copied
        // into the batch's buffer with their metadata.
        g.bench_function(format!("{name}_into_batch"), |b| {
            let mut f = Framer::new(64 * 1024);
            let mut owner = BatchOwner::default();
            let now = Timestamp::now();
            b.iter(|| {
                for chunk in data.chunks(READ) {
                    f.feed(black_box(chunk), &mut |fr, _| {
                        if owner.len() == BATCH {
                            owner.clear();
                        }
                        owner.push_frame(fr, src(), now, 0, 0);
                    });
                }
                black_box(owner.len())
            })
        });
    }
    g.finish();
}

criterion_group! { name = benches; config = criterion(); targets = frame }
criterion_main!(benches);
