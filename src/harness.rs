//! The frame → parse → classify → encode path over arbitrary bytes, shared
//! by the cargo-fuzz target (`fuzz/fuzz_targets/frame_parse.rs`) and the
//! regression tests that replay every input it ever crashed on
//! (`fuzz/regressions/`, `tests/fuzz_regressions.rs`).

use crate::batch::{Batch, BatchOwner};
use crate::classify::{Classifier, class_names};
use crate::config::{ClassifyConfig, MatchConfig};
use crate::encode::{Encoder, Format, Framing, Names};
use crate::frame::Framer;
use crate::parse::Parser;
use crate::record::UNSPECIFIED;
use crate::time::Timestamp;

/// Frame limit used by the harness.
pub const MAX: usize = 2048;

/// Runs `data` through framing (cut into chunks as its first four bytes
/// say), parsing, classification and every encoder; also as one datagram.
/// Panics (that is the finding) if anything panics or an invariant breaks:
/// a frame over the limit, a record that lost its raw bytes.
pub fn frame_parse_all(data: &[u8]) {
    let (cuts, wire) = data.split_at(data.len().min(4));
    let names = Names::new(vec!["fuzz".into()], class_names(&[]));
    // The built-in classes, and every text class forced by a rule on
    // whatever arrives (its parser then reads JSON messages too).
    let mut classifiers = vec![Classifier::new(&[], &names).expect("no rules compile")];
    for class in ["linux-auth", "cef", "flowmon-ads", "windows"] {
        let rule = ClassifyConfig {
            class: class.into(),
            src: Vec::new(),
            matches: MatchConfig::new(),
            contains: None,
        };
        classifiers.push(Classifier::new(&[rule], &names).expect("a built-in class compiles"));
    }
    let mut parser = Parser::with_offset(0);
    let mut encoders = [
        Encoder::new(Format::Json, Framing::Lf),
        Encoder::new(Format::V1, Framing::OctetCounting),
        Encoder::new(Format::V2, Framing::Lf),
        Encoder::new(Format::Raw, Framing::None),
    ];
    let mut frames: Vec<Vec<u8>> = Vec::new();
    let mut f = Framer::new(MAX);
    let mut pos = 0;
    for &c in cuts {
        let end = (pos + c as usize + 1).min(wire.len());
        f.feed(&wire[pos..end], &mut |b, _| frames.push(b.to_vec()));
        assert!(f.buffered() <= MAX, "framer holds more than the limit");
        pos = end;
    }
    f.feed(&wire[pos..], &mut |b, _| frames.push(b.to_vec()));
    f.finish_eof(&mut |b, _| frames.push(b.to_vec()));
    for fr in &frames {
        assert!(fr.len() <= MAX, "frame over the limit");
    }
    frames.push(wire.to_vec());
    // As the pipeline does it: one batch (JSON parsed in place in its
    // bytes), classified as a stage does.
    let mut out = Vec::new();
    for classifier in classifiers.iter_mut() {
        let mut owner = BatchOwner::default();
        for fr in &frames {
            owner.push_frame(fr, UNSPECIFIED, Timestamp::now(), 0, 0);
        }
        let mut batch = Batch::parse(owner, &mut parser);
        crate::stage::process(classifier, &mut batch);
        batch.with_dependent(|_, recs| {
            for (rec, fr) in recs.list.iter().zip(&frames) {
                assert_eq!(rec.raw, &fr[..], "record lost its raw bytes");
                for (k, e) in encoders.iter_mut().enumerate() {
                    out.clear();
                    e.encode(rec, &names, &mut out);
                    // The first encoder writes JSON lines.
                    if k == 0 {
                        let line = out.strip_suffix(b"\n").unwrap_or(&out);
                        assert!(
                            serde_json::from_slice::<serde_json::Value>(line).is_ok(),
                            "invalid JSON out: {}",
                            String::from_utf8_lossy(line)
                        );
                    }
                }
            }
        });
    }
    // The flat-object JSON reader against simd-json's tape: the same
    // record either way.
    let mut tape = Parser::with_offset(0);
    tape.set_flat_scan(false);
    let now = Timestamp::now();
    let bump = bumpalo::Bump::new();
    for fr in &frames {
        let mut a = crate::record::Record::new(fr, now, UNSPECIFIED, 0);
        let mut b = crate::record::Record::new(fr, now, UNSPECIFIED, 0);
        parser.parse(&bump, &mut a);
        tape.parse(&bump, &mut b);
        let pairs = |r: &crate::record::Record<'_>| {
            r.fields
                .as_slice()
                .iter()
                .map(|f| (f.key.to_vec(), f.value.to_vec()))
                .collect::<Vec<_>>()
        };
        assert_eq!((a.json, a.flaws), (b.json, b.flaws), "flat reader verdict");
        assert_eq!(a.clean_json == (0, 0), b.clean_json == (0, 0));
        assert_eq!(pairs(&a), pairs(&b), "flat reader fields");
    }
}
