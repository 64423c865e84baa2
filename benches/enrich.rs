//! Enrich: the appliance rules of `support::CONFIG` (Flowmon event link,
//! failed-logon note, site tags) and the identity table, on parsed and
//! classified batches of the mixed and Windows fixtures. Parsing and
//! classifying happen outside the timed part.

mod support;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice::batch::Batch;
use sluice::stage::process;
use std::hint::black_box;
use support::*;

fn enrich(c: &mut Criterion) {
    let mut g = c.benchmark_group("enrich");
    for (name, file) in [("mixed", "mixed.txt"), ("windows", "json.txt")] {
        let buf = fixture(file);
        let lines = lines(&buf);
        g.throughput(Throughput::ElementsAndBytes {
            elements: lines.len() as u64,
            bytes: lines.iter().map(|l| l.len() as u64).sum(),
        });
        g.bench_function(name, |b| {
            let mut stages = Stages::new();
            b.iter_custom(|iters| {
                time_batches(iters, &lines, &mut stages, |s, owner, watch| {
                    let mut batch = Batch::parse(owner, &mut s.parser);
                    process(&mut s.classifier, &mut batch);
                    watch.start();
                    process(&mut s.enricher, &mut batch);
                    watch.stop();
                    black_box(&batch);
                    batch.into_owner()
                })
            })
        });
    }
    g.finish();
}

criterion_group! { name = benches; config = criterion(); targets = enrich }
criterion_main!(benches);
