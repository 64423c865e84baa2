//! Classify and enrich allocate nothing on the heap per record: every
//! fixture message is parsed (setup), then classified and enriched with the
//! Flowmon example's rule and identity enrichment on, under an allocator
//! that counts what this thread allocates.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;

use bumpalo::Bump;
use serde::Deserialize;
use sluice::classify::Classifier;
use sluice::config::{EnrichConfig, IdentityConfig, MatchConfig, MatchScalar, OneOrMany};
use sluice::encode::Names;
use sluice::enrich::Enricher;
use sluice::identity::Identity;
use sluice::parse::Parser;
use sluice::record::{Record, UNSPECIFIED, class};
use sluice::time::Timestamp;

struct Counting;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; the bookkeeping touches only
// const-initialised thread locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if COUNTING.with(Cell::get) {
            ALLOCS.with(|a| a.set(a.get() + 1));
        }
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[derive(Deserialize)]
struct Fixture {
    case: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    raw: String,
}

fn names() -> Names {
    Names::new(
        vec!["tcp".into()],
        class::BUILTIN.iter().map(|s| s.to_string()).collect(),
    )
}

fn flowmon_rule() -> EnrichConfig {
    let mut m = MatchConfig::new();
    m.insert(
        "class".into(),
        OneOrMany::One(MatchScalar::Str("flowmon-ads".into())),
    );
    let mut set = BTreeMap::new();
    set.insert(
        "event_url".into(),
        "https://flowmon.example.com/adsplug/events/?_adsLink=tab%2AEvents.SimpleList%7CeventDetail%5B0%5D%2A{eventid}".into(),
    );
    EnrichConfig {
        name: Some("flowmon_log_enhancement".into()),
        matches: m,
        set,
    }
}

#[test]
fn classify_and_enrich_allocate_only_in_the_batch_arena() {
    let fixture: Fixture = toml::from_str(include_str!("fixtures/classify.toml")).expect("fixture");
    let names = names();
    let mut classifier = Classifier::new(&[], &names).unwrap();
    let identity = Identity::new(&IdentityConfig::default());
    let mut enricher = Enricher::new(&[flowmon_rule()], &names, Some(identity)).unwrap();
    let mut parser = Parser::with_offset(0);
    // One arena big enough that it never asks the heap for another chunk
    // (a new chunk would be a heap allocation, and counted).
    let bump = Bump::with_capacity(4 << 20);
    let mut recs: Vec<Record<'_>> = Vec::with_capacity(fixture.case.len() * 4);
    for round in 0..4 {
        for case in &fixture.case {
            let raw = bump.alloc_slice_copy(case.raw.as_bytes());
            let t = Timestamp::from_unix_ns(1_772_452_800_000_000_000 + round);
            let mut rec = Record::new(raw, t, UNSPECIFIED, 0);
            parser.parse(&bump, &mut rec);
            recs.push(rec);
        }
    }

    COUNTING.with(|c| c.set(true));
    for rec in recs.iter_mut() {
        classifier.apply(&bump, rec);
        enricher.apply(&bump, rec);
    }
    COUNTING.with(|c| c.set(false));

    let allocs = ALLOCS.with(Cell::get);
    assert_eq!(allocs, 0, "classify + enrich allocated {allocs} times");
    // The work was done: links added, identities learned and used.
    let linked = recs
        .iter()
        .filter(|r| r.fields.get(b"event_url").is_some())
        .count();
    assert_eq!(linked, 4 * 6, "every Flowmon fixture event got its link");
    assert!(recs.iter().any(|r| r.fields.get(b"src_user").is_some()));
}
