//! Archive benchmarks on the Windows-agent corpus (`archive::corpus`):
//! block building (columns + bloom + zstd) and appending to a real archive
//! directory, in records/s; search for one user and a full-text scan, in
//! raw bytes/s on one core. Setup (generating and parsing the corpus,
//! building the archive searched) is outside the timed loops.
//!
//! Time is the process's CPU time, not wall time: the machine these run on
//! is shared, and a goal like "records per second on one core" is about
//! the CPU the archive needs, which another process's load does not change.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput, criterion_group};
use sluice::archive::block::BlockBuilder;
use sluice::archive::corpus::Corpus;
use sluice::archive::search::{Cond, Query, search};
use sluice::archive::writer::{Archive, Settings};
use sluice::batch::{Batch, BatchOwner};
use sluice::encode::Names;
use sluice::parse::Parser;
use sluice::time::Timestamp;

/// Records in the corpus: 200,000 under `cargo bench`; a few thousand for
/// the smoke test `cargo test --all-targets` runs.
fn records() -> usize {
    if std::env::args().any(|a| a == "--bench") {
        200_000
    } else {
        5_000
    }
}

/// CPU time of the whole process (all threads), from
/// `CLOCK_PROCESS_CPUTIME_ID`.
struct CpuTime;

fn cpu_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for CpuTime {
    type Intermediate = Duration;
    type Value = Duration;
    fn start(&self) -> Duration {
        cpu_now()
    }
    fn end(&self, i: Duration) -> Duration {
        cpu_now().saturating_sub(i)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WallTime.formatter()
    }
}

fn names() -> Names {
    Names::new(
        vec!["tcp".into()],
        sluice::record::class::BUILTIN
            .iter()
            .map(|s| s.to_string())
            .collect(),
    )
}

/// The corpus parsed into batches of 512 records, as the pipeline hands
/// them to outputs. Returns the batches and the raw bytes they hold.
fn batches(n: usize) -> (Vec<Batch>, u64) {
    let mut c = Corpus::default();
    let mut parser = Parser::new();
    let src: SocketAddr = "10.1.1.1:514".parse().unwrap();
    let mut out = Vec::new();
    let mut raw = 0u64;
    let mut line = Vec::new();
    let mut i = 0;
    let t0 = Timestamp::now().unix_ns;
    while i < n {
        let mut o = BatchOwner::default();
        for _ in 0..512.min(n - i) {
            line.clear();
            c.line(&mut line);
            let l = &line[..line.len() - 1];
            raw += l.len() as u64;
            o.push_frame(l, src, Timestamp::from_unix_ns(t0 + i as i64 * 2_000), 0, 0);
            i += 1;
        }
        out.push(Batch::parse(o, &mut parser));
    }
    (out, raw)
}

fn feed(b: &[Batch], mut f: impl FnMut(&sluice::record::Record<'_>)) {
    for batch in b {
        batch.with_dependent(|_, recs| {
            for r in recs.list.iter() {
                f(r);
            }
        });
    }
}

fn build_archive(dir: &Path, b: &[Batch], names: &Names) {
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let mut a = Archive::open(Settings::new(dir.to_path_buf()), key).unwrap();
    feed(b, |r| a.add(r, names).unwrap());
    a.close().unwrap();
}

fn write_path(c: &mut Criterion<CpuTime>) {
    let n = records();
    let (b, raw) = batches(n);
    let names = names();
    eprintln!(
        "corpus: {n} records, {raw} raw bytes ({} bytes/record)",
        raw / n as u64
    );
    let mut g = c.benchmark_group("archive_write");
    g.sample_size(10).measurement_time(Duration::from_secs(15));
    g.throughput(Throughput::Elements(n as u64));
    g.bench_function("build_blocks", |bench| {
        let mut bb = BlockBuilder::new(3).unwrap();
        let mut out = Vec::new();
        bench.iter(|| {
            let mut stored = 0;
            feed(&b, |r| {
                if bb.raw_bytes() + r.raw.len() as u64 > 256 * 1024 {
                    bb.seal(0, &[0; 32], &mut out).unwrap();
                    stored += out.len();
                }
                bb.add(r, &names);
            });
            bb.seal(0, &[0; 32], &mut out).unwrap();
            stored + out.len()
        })
    });
    g.bench_function("append_to_archive", |bench| {
        bench.iter_batched(
            || tempfile::tempdir().unwrap(),
            |t| build_archive(t.path(), &b, &names),
            criterion::BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn read_path(c: &mut Criterion<CpuTime>) {
    let (b, raw) = batches(records());
    let names = names();
    let t = tempfile::tempdir().unwrap();
    build_archive(t.path(), &b, &names);
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut g = c.benchmark_group("archive_search_one_core");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    g.throughput(Throughput::Bytes(raw));
    let run =
        |q: &Query| one.install(|| search(t.path(), q, &mut std::io::sink()).unwrap().matched);
    let text = Query {
        text: Some(b"user4999\"".to_vec()),
        json: true,
        ..Default::default()
    };
    eprintln!("text scan matches: {}", run(&text));
    g.bench_function("full_text_substring", |bench| bench.iter(|| run(&text)));
    let user = Query {
        conds: vec![Cond::parse("targetusername=user4000").unwrap()],
        json: true,
        ..Default::default()
    };
    eprintln!("username search matches: {}", run(&user));
    g.bench_function("where_username", |bench| bench.iter(|| run(&user)));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(CpuTime);
    targets = write_path, read_path
}

/// `cargo bench` runs the benches; `cargo test --all-targets` (which passes
/// test-harness flags such as `--test-threads` that criterion rejects) runs
/// the write and read paths once on a small corpus instead.
fn main() {
    if std::env::args().any(|a| a == "--bench") {
        benches();
        Criterion::default().configure_from_args().final_summary();
        return;
    }
    let (b, _) = batches(records());
    let names = names();
    let t = tempfile::tempdir().unwrap();
    build_archive(t.path(), &b, &names);
    let user = Query {
        conds: vec![Cond::parse("eventid=4624").unwrap()],
        json: true,
        ..Default::default()
    };
    let found = search(t.path(), &user, &mut std::io::sink()).unwrap();
    assert!(
        found.matched > records() as u64 / 3,
        "half the corpus is 4624"
    );
    println!("archive bench smoke test: {} logons", found.matched);
}
