//! One whole batch through every stage on one thread: parse → classify →
//! enrich → `v2` encode (RFC 5424 + record JSON, LF framed) into a reused
//! output buffer. Filling the batch with frames happens outside the timed
//! part. `perf` is the workload of `perf/` (RFC 5424 + 280-byte Windows
//! JSON); `mixed` is the appliance mix.

mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice::batch::Batch;
use sluice::stage::process;
use std::hint::black_box;
use support::*;

fn pipeline(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    for (name, file) in [("perf", "perf.txt"), ("mixed", "mixed.txt")] {
        let buf = fixture(file);
        let lines = lines(&buf);
        g.throughput(Throughput::ElementsAndBytes {
            elements: lines.len() as u64,
            bytes: lines.iter().map(|l| l.len() as u64).sum(),
        });
        g.bench_function(name, |b| {
            let mut stages = Stages::new();
            let mut out: Vec<u8> = Vec::with_capacity(1 << 20);
            b.iter_custom(|iters| {
                time_batches(iters, &lines, &mut stages, |s, owner, watch| {
                    watch.start();
                    let mut batch = Batch::parse(owner, &mut s.parser);
                    process(&mut s.classifier, &mut batch);
                    process(&mut s.enricher, &mut batch);
                    out.clear();
                    batch.with_dependent(|_, recs| {
                        for r in recs.list.iter() {
                            s.encoder.encode(r, &s.names, &mut out);
                        }
                    });
                    watch.stop();
                    black_box(&out);
                    batch.into_owner()
                })
            })
        });
    }
    g.finish();
}

criterion_group! { name = benches; config = criterion(); targets = pipeline }
criterion_main!(benches);
