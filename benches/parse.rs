//! Parsing: each parser on its own fixture (RFC 5424 with structured data,
//! RFC 3164 and its variants, JSON payloads of Windows agents), the mixed
//! fixture (Windows JSON, Flowmon and firewall CEF, sshd), and frame+parse
//! of the mixed fixture from raw bytes to a parsed batch.

mod support;

use std::time::Duration;

use bumpalo::Bump;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sluice::batch::{Batch, BatchOwner};
use sluice::frame::Framer;
use sluice::parse::JsonParser;
use sluice::record::Fields;
use sluice::time::Timestamp;
use std::hint::black_box;
use support::*;

fn parse(c: &mut Criterion) {
    let mut g = c.benchmark_group("parse");
    for (name, file) in [
        ("rfc5424", "rfc5424.txt"),
        ("rfc3164", "rfc3164.txt"),
        ("json", "json.txt"),
        ("mixed", "mixed.txt"),
    ] {
        let buf = fixture(file);
        let lines = lines(&buf);
        g.throughput(Throughput::ElementsAndBytes {
            elements: lines.len() as u64,
            bytes: lines.iter().map(|l| l.len() as u64).sum(),
        });
        g.bench_function(name, |b| {
            let mut stages = Stages::new();
            b.iter_custom(|iters| parse_batches(iters, &lines, &mut stages))
        });
    }

    // simd-json alone on the JSON payloads (the MSG after the header).
    let buf = fixture("json.txt");
    let payloads: Vec<&[u8]> = lines(&buf)
        .into_iter()
        .map(|l| &l[l.iter().position(|&b| b == b'{').expect("JSON payload")..])
        .collect();
    g.throughput(Throughput::ElementsAndBytes {
        elements: payloads.len() as u64,
        bytes: payloads.iter().map(|l| l.len() as u64).sum(),
    });
    g.bench_function("json_payload_only", |b| {
        let mut json = JsonParser::new();
        let mut bump = Bump::with_capacity(1 << 20);
        b.iter(|| {
            bump.reset();
            let mut n = 0;
            for p in &payloads {
                let mut fields = Fields::with_capacity(&bump, 0);
                json.parse_into(&bump, black_box(p), &mut fields);
                n += fields.len();
            }
            black_box(n)
        })
    });

    // Raw bytes of a connection to parsed batches: framing, copying into
    // the batch, parsing.
    let buf = fixture("mixed.txt");
    let n = lines(&buf).len();
    g.throughput(Throughput::ElementsAndBytes {
        elements: n as u64,
        bytes: buf.len() as u64,
    });
    g.bench_function("frame_parse_mixed", |b| {
        let mut stages = Stages::new();
        let mut framer = Framer::new(64 * 1024);
        let mut spare = Some(BatchOwner::default());
        let now = Timestamp::now();
        b.iter(|| {
            let mut parsed = 0;
            for chunk in buf.chunks(256 * 1024) {
                framer.feed(chunk, &mut |fr, _| {
                    let owner = spare.as_mut().expect("owner");
                    owner.push_frame(fr, src(), now, 0, 0);
                    if owner.len() == BATCH {
                        let batch = Batch::parse(spare.take().expect("owner"), &mut stages.parser);
                        parsed += black_box(&batch).len();
                        let mut o = batch.into_owner();
                        o.clear();
                        spare = Some(o);
                    }
                });
            }
            let owner = spare.take().expect("owner");
            let batch = Batch::parse(owner, &mut stages.parser);
            parsed += black_box(&batch).len();
            let mut o = batch.into_owner();
            o.clear();
            spare = Some(o);
            black_box(parsed)
        })
    });
    g.finish();
}

/// Times `Batch::parse` alone on the fixture in batches of [`BATCH`].
fn parse_batches(iters: u64, lines: &[&[u8]], stages: &mut Stages) -> Duration {
    time_batches(iters, lines, stages, |s, owner, watch| {
        watch.start();
        let batch = Batch::parse(owner, &mut s.parser);
        watch.stop();
        black_box(&batch);
        batch.into_owner()
    })
}

criterion_group! { name = benches; config = criterion(); targets = parse }
criterion_main!(benches);
