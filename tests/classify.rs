//! Table-driven test of the classifier and the CEF parser: every case of
//! `tests/fixtures/classify.toml` is parsed and classified as the pipeline
//! does it, and its class, fields, field order and flaws are checked.

use std::collections::BTreeMap;

use bumpalo::Bump;
use serde::Deserialize;
use sluice::classify::Classifier;
use sluice::encode::Names;
use sluice::parse::Parser;
use sluice::record::{Record, UNSPECIFIED, class, flaw};
use sluice::time::Timestamp;

const FIXTURE: &str = include_str!("fixtures/classify.toml");

#[derive(Deserialize)]
struct Fixture {
    case: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    raw: String,
    class: String,
    #[serde(default)]
    fields: BTreeMap<String, String>,
    #[serde(default)]
    absent: Vec<String>,
    #[serde(default)]
    first_keys: Vec<String>,
    #[serde(default)]
    flaws: Vec<String>,
}

/// 2026-03-02T12:00:00Z: the fixture's RFC 3164 dates fall in this year.
const RECEIVED_NS: i64 = 1_772_452_800_000_000_000;

fn names() -> Names {
    Names::new(
        vec!["tcp".into()],
        class::BUILTIN.iter().map(|s| s.to_string()).collect(),
    )
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parses and classifies one case; returns the problems found.
fn check(case: &Case, parser: &mut Parser, classifier: &mut Classifier) -> Vec<String> {
    let bump = Bump::new();
    let raw = bump.alloc_slice_copy(case.raw.as_bytes());
    let mut rec = Record::new(raw, Timestamp::from_unix_ns(RECEIVED_NS), UNSPECIFIED, 0);
    parser.parse(&bump, &mut rec);
    classifier.apply(&bump, &mut rec);

    let mut problems = Vec::new();
    let got_class = class::BUILTIN
        .get(rec.class as usize)
        .copied()
        .unwrap_or("?");
    if got_class != case.class {
        problems.push(format!("class {got_class:?}, expected {:?}", case.class));
    }
    for (k, want) in &case.fields {
        match rec.fields.get(k.as_bytes()) {
            Some(v) if v == want.as_bytes() => {}
            Some(v) => problems.push(format!("{k} = {:?}, expected {want:?}", text(v))),
            None => problems.push(format!("{k} missing, expected {want:?}")),
        }
    }
    for k in &case.absent {
        if let Some(v) = rec.fields.get(k.as_bytes()) {
            problems.push(format!("{k} = {:?} should be absent", text(v)));
        }
    }
    let keys: Vec<String> = rec.fields.as_slice().iter().map(|f| text(f.key)).collect();
    if !case.first_keys.is_empty() && !keys.starts_with(&case.first_keys) {
        problems.push(format!(
            "keys start {:?}, expected {:?}",
            &keys[..keys.len().min(case.first_keys.len())],
            case.first_keys
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for k in &keys {
        if !seen.insert(k) {
            problems.push(format!("key {k} appears twice"));
        }
    }
    let flaws: Vec<&str> = flaw::NAMES
        .iter()
        .enumerate()
        .filter(|(bit, _)| rec.flaws & (1 << bit) != 0)
        .map(|(_, n)| *n)
        .collect();
    if flaws != case.flaws {
        problems.push(format!("flaws {flaws:?}, expected {:?}", case.flaws));
    }
    if !problems.is_empty() {
        problems.push(format!("all fields: {:?}", {
            rec.fields
                .as_slice()
                .iter()
                .map(|f| format!("{}={}", text(f.key), text(f.value)))
                .collect::<Vec<_>>()
        }));
    }
    problems
}

#[test]
fn every_fixture_message_gets_its_class_and_fields() {
    let fixture: Fixture = toml::from_str(FIXTURE).expect("fixture is valid TOML");
    let mut parser = Parser::with_offset(0);
    let mut classifier = Classifier::new(&[], &names()).expect("no rules");
    let mut failures = Vec::new();
    for case in &fixture.case {
        let problems = check(case, &mut parser, &mut classifier);
        if !problems.is_empty() {
            failures.push(format!("{}:\n  {}", case.name, problems.join("\n  ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        fixture.case.len(),
        failures.join("\n")
    );
}

#[test]
fn the_fixture_covers_every_built_in_class() {
    let fixture: Fixture = toml::from_str(FIXTURE).expect("fixture is valid TOML");
    for c in class::BUILTIN {
        let n = fixture.case.iter().filter(|k| k.class == c).count();
        assert!(n >= 2, "only {n} fixture cases for class {c}");
    }
    let stats = {
        let mut parser = Parser::with_offset(0);
        let mut classifier = Classifier::new(&[], &names()).unwrap();
        for case in &fixture.case {
            check(case, &mut parser, &mut classifier);
        }
        classifier.stats()
    };
    let total: u64 = class::BUILTIN.iter().map(|c| stats.records(c)).sum();
    assert_eq!(total, fixture.case.len() as u64);
    let mut text = String::new();
    stats.render(&mut text);
    assert!(text.contains("sluice_classify_parse_errors_total{reason=\"bad_cef\"} 1"));
}
