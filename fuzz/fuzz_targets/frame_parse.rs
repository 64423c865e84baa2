//! Fuzz target: any bytes, cut into chunks as the first bytes say, go
//! through framing, parsing, classification and every encoder. Nothing may
//! panic, every frame stays within the limit, and every record keeps its
//! raw bytes.
#![no_main]

use bumpalo::Bump;
use libfuzzer_sys::fuzz_target;
use sluice::classify::{Classifier, class_names};
use sluice::encode::{Encoder, Format, Framing, Names};
use sluice::frame::Framer;
use sluice::parse::Parser;
use sluice::record::{Record, UNSPECIFIED};
use sluice::time::Timestamp;

const MAX: usize = 2048;

fuzz_target!(|data: &[u8]| {
    let (cuts, wire) = data.split_at(data.len().min(4));
    let names = Names {
        inputs: vec!["fuzz".into()],
        classes: class_names(&[]),
    };
    let mut classifier = Classifier::new(&[], &names).expect("no rules");
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
        assert!(f.buffered() <= MAX);
        pos = end;
    }
    f.feed(&wire[pos..], &mut |b, _| frames.push(b.to_vec()));
    f.finish_eof(&mut |b, _| frames.push(b.to_vec()));
    // Each datagram-sized input is also one UDP message.
    frames.push(wire.to_vec());
    let bump = Bump::new();
    let mut out = Vec::new();
    for fr in &frames {
        assert!(fr.len() <= MAX.max(wire.len()));
        let raw = bump.alloc_slice_copy(fr);
        let mut rec = Record::new(raw, Timestamp::now(), UNSPECIFIED, 0);
        parser.parse(&bump, &mut rec);
        classifier.apply(&bump, &mut rec);
        assert_eq!(rec.raw, &fr[..]);
        for e in encoders.iter_mut() {
            out.clear();
            e.encode(&rec, &names, &mut out);
        }
    }
});
