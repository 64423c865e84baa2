//! The classify stage (built-in recognisers, CEF parser, Windows key
//! normalisation) on batches of realistic messages, and the CEF parser on
//! its own. Messages come from the checked-in fixture
//! `tests/fixtures/classify.toml`; parsing the batch is setup, outside the
//! timed loop.
//!
//! `cargo bench --bench classify`

use std::hint::black_box;

use bumpalo::Bump;
use criterion::{BatchSize, Criterion, Throughput, criterion_group};
use serde::Deserialize;
use std::sync::Arc;

use sluice::batch::{Batch, Pool};
use sluice::classify::{Classifier, cef};
use sluice::encode::Names;
use sluice::parse::Parser;
use sluice::record::{Fields, UNSPECIFIED, class};
use sluice::stage::process;
use sluice::time::Timestamp;

const FIXTURE: &str = include_str!("../tests/fixtures/classify.toml");
/// Records per batch, as the pipeline's default `batch_records`.
const BATCH: usize = 512;

#[derive(Deserialize)]
struct Fixture {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    raw: String,
    class: String,
}

fn fixture() -> Vec<Case> {
    toml::from_str::<Fixture>(FIXTURE).expect("fixture").case
}

fn names() -> Names {
    Names::new(
        vec!["tcp".into()],
        class::BUILTIN.iter().map(|s| s.to_string()).collect(),
    )
}

/// A batch that goes back to its pool when dropped (after the timed
/// routine), so that arenas are reused as in the pipeline instead of
/// faulting in fresh pages inside the timed loop.
struct Recycled(Option<Batch>, Arc<Pool>);

impl Drop for Recycled {
    fn drop(&mut self) {
        if let Some(b) = self.0.take() {
            self.1.put(b.into_owner());
        }
    }
}

/// A parsed batch of `msgs`, repeated up to `BATCH` records, in an owner
/// from `pool`.
fn batch(msgs: &[&[u8]], parser: &mut Parser, pool: &Arc<Pool>) -> Recycled {
    let mut owner = pool.get();
    let ts = Timestamp::from_unix_ns(1_772_452_800_000_000_000);
    for m in msgs.iter().cycle().take(BATCH) {
        owner.push_frame(m, UNSPECIFIED, ts, 0, 0);
    }
    Recycled(Some(Batch::parse(owner, parser)), pool.clone())
}

/// Times the classify stage over batches of `msgs`.
fn bench_batches(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    id: &str,
    msgs: &[&[u8]],
) {
    let pool = Pool::new(64);
    let mut parser = Parser::with_offset(0);
    let mut classifier = Classifier::new(&[], &names()).unwrap();
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function(id, |b| {
        b.iter_batched_ref(
            || batch(msgs, &mut parser, &pool),
            |r| {
                if let Some(batch) = r.0.as_mut() {
                    process(&mut classifier, batch);
                }
            },
            BatchSize::LargeInput,
        )
    });
}

/// One message kind per benchmark: the first fixture case whose name
/// contains `pick`.
const KINDS: [(&str, &str); 8] = [
    ("flowmon_cef", "Flowmon ADS SSH attack"),
    ("flowmon_json", "Flowmon ADS JSON event form"),
    ("windows_nxlog_4624", "NXLog CamelCase keys"),
    ("windows_winlogbeat_4625", "Winlogbeat 8"),
    ("cef_escaped", "Generic CEF with escaped pipe"),
    ("sshd_failed", "sshd failed password for an invalid user"),
    ("syslog_text", "plain RFC 3164 text"),
    ("json_other", "other JSON"),
];

fn classify_by_kind(c: &mut Criterion) {
    let cases = fixture();
    let mut g = c.benchmark_group("classify");
    for (id, pick) in KINDS {
        let case = cases
            .iter()
            .find(|k| k.name.contains(pick))
            .unwrap_or_else(|| panic!("no fixture case {pick}"));
        bench_batches(&mut g, id, &[case.raw.as_bytes()]);
    }
    // Every fixture message in turn: a mixed feed.
    let msgs: Vec<&[u8]> = cases.iter().map(|k| k.raw.as_bytes()).collect();
    bench_batches(&mut g, "mixed_fixture", &msgs);
    g.finish();
}

fn cef_parser(c: &mut Criterion) {
    let cases = fixture();
    let mut g = c.benchmark_group("cef_parse");
    for case in cases
        .iter()
        .filter(|k| k.class == "cef" || k.class == "flowmon-ads")
    {
        let Some(at) = case.raw.find("CEF:") else {
            continue;
        };
        let text = &case.raw.as_bytes()[at..];
        let dialect = if case.class == "flowmon-ads" {
            cef::Dialect::Flowmon
        } else {
            cef::Dialect::Generic
        };
        let id: String = case
            .name
            .chars()
            .take(40)
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        g.throughput(Throughput::Bytes(text.len() as u64));
        let mut bump = Bump::with_capacity(64 * 1024);
        g.bench_function(id, |b| {
            b.iter(|| {
                bump.reset();
                let text = bump.alloc_slice_copy(text);
                let mut f = Fields::with_capacity(&bump, 32);
                black_box(cef::parse_into(&bump, text, dialect, &mut f));
                black_box(f.len());
            })
        });
    }
    g.finish();
}

criterion_group!(benches, classify_by_kind, cef_parser);

/// `criterion_main!`, except that libtest's `--test-threads` is dropped:
/// `cargo test --all-targets -- --test-threads=2` (scripts/test.sh) hands
/// it to every target, and criterion refuses flags it does not know. The
/// binary runs itself again without it, in criterion's test mode (each
/// benchmark once).
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a.starts_with("--test-threads")) {
        let mut rest = Vec::new();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            if a == "--test-threads" {
                it.next();
            } else if !a.starts_with("--test-threads=") {
                rest.push(a);
            }
        }
        let me = std::env::current_exe().expect("own path");
        let status = std::process::Command::new(me)
            .args(rest)
            .status()
            .expect("run self");
        std::process::exit(status.code().unwrap_or(1));
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
