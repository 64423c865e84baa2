//! Property tests (issue 5): framing round-trips for any bytes, parsing never
//! panics and always keeps the raw bytes, and the JSON output is always
//! valid JSON.

use bumpalo::Bump;
use proptest::prelude::*;
use sluice::batch::{Batch, BatchOwner};
use sluice::encode::Names;
use sluice::encode::json::write_record;
use sluice::frame::{FrameKind, Framer};
use sluice::parse::Parser;
use sluice::record::{Record, UNSPECIFIED, class};
use sluice::time::Timestamp;

/// One message and how it is framed on the wire.
#[derive(Debug, Clone)]
enum Framed {
    Octet(Vec<u8>),
    Trailer(Vec<u8>, &'static [u8]),
}

fn trailer_body() -> impl Strategy<Value = Vec<u8>> {
    // A trailer-framed message cannot contain its delimiters, cannot start
    // with a digit (that would read as an octet count), and its trailing CR
    // is taken as part of CR LF.
    (
        prop::sample::select(b"<abcXYZ {[-_".to_vec()),
        prop::collection::vec(
            any::<u8>().prop_filter("no LF/NUL", |b| *b != b'\n' && *b != 0),
            0..300,
        ),
    )
        .prop_map(|(first, mut rest)| {
            while rest.last() == Some(&b'\r') {
                rest.pop();
            }
            let mut v = vec![first];
            v.append(&mut rest);
            v
        })
}

fn framed() -> impl Strategy<Value = Framed> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 1..400).prop_map(Framed::Octet),
        (
            trailer_body(),
            prop::sample::select(vec![&b"\n"[..], b"\r\n", b"\0"])
        )
            .prop_map(|(b, t)| Framed::Trailer(b, t)),
    ]
}

fn feed_in_chunks(input: &[u8], cuts: &[usize], max: usize) -> Vec<(Vec<u8>, FrameKind)> {
    let mut f = Framer::new(max);
    let mut out = Vec::new();
    let mut pos = 0;
    for &c in cuts {
        let end = (pos + c).min(input.len());
        f.feed(&input[pos..end], &mut |b, k| out.push((b.to_vec(), k)));
        assert!(f.buffered() <= max);
        pos = end;
    }
    f.feed(&input[pos..], &mut |b, k| out.push((b.to_vec(), k)));
    f.finish_eof(&mut |b, k| out.push((b.to_vec(), k)));
    out
}

/// Frames of every kind the parser meets: any bytes, RFC 5424 and 3164
/// lines, structured data, and JSON objects alone or after a header, with
/// or without escapes, whitespace around them and a BOM.
fn message() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..500),
        "<[0-9]{1,3}>1 [ -~]{0,200}".prop_map(String::into_bytes),
        "<[0-9]{1,3}>[A-Z][a-z]{2} [ 0-9]{2} [0-9:]{8} [ -~]{0,100}".prop_map(String::into_bytes),
        r#"<13>1 - - - - - \[[a-z@0-9]{1,10}( [a-z]{1,5}="([^"\\\]]|\\.){0,10}")*\][ -~]{0,40}"#.prop_map(String::into_bytes),
        r#"\{("[a-zA-Z]{1,8}":("[ -!#-\[\]-~]{0,10}"|[0-9]{1,5}|true|null|\{\}|\[1,"x"\]),?){0,6}\}"#.prop_map(String::into_bytes),
        (
            prop::sample::select(vec!["<14>1 - h app - - - ", "<14>1 - h app - - - \u{feff}", "<13>Oct  1 12:00:00 h app: ", ""]),
            r#"[ \t]{0,2}\{("[a-zA-Z_]{1,8}":("([ -!#-\[\]-~]|\\[nt"\\/]|\\u00e9){0,12}"|-?[0-9]{1,5}|1\.5|false|null|\{"x":"y"\}|\[1,"x"\]),?){0,6}\}[ \t\r]{0,2}"#,
        )
            .prop_map(|(h, j)| format!("{h}{j}").into_bytes()),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn framing_round_trips_any_messages_in_any_chunks(
        msgs in prop::collection::vec(framed(), 1..20),
        cuts in prop::collection::vec(1usize..64, 0..40),
    ) {
        let mut wire = Vec::new();
        let mut want = Vec::new();
        for m in &msgs {
            match m {
                Framed::Octet(b) => {
                    wire.extend_from_slice(format!("{} ", b.len()).as_bytes());
                    wire.extend_from_slice(b);
                    want.push(b.clone());
                }
                Framed::Trailer(b, t) => {
                    wire.extend_from_slice(b);
                    wire.extend_from_slice(t);
                    want.push(b.clone());
                }
            }
        }
        let got = feed_in_chunks(&wire, &cuts, 1 << 16);
        let got: Vec<Vec<u8>> = got.into_iter().map(|(b, k)| { assert_eq!(k, FrameKind::Whole); b }).collect();
        prop_assert_eq!(got, want);
    }

    #[test]
    fn framing_any_bytes_never_panics_and_stays_bounded(
        wire in prop::collection::vec(any::<u8>(), 0..4000),
        cuts in prop::collection::vec(1usize..300, 0..40),
        max in 1usize..600,
    ) {
        for (b, _) in feed_in_chunks(&wire, &cuts, max) {
            prop_assert!(b.len() <= max);
            prop_assert!(!b.is_empty());
        }
    }

    #[test]
    fn parsing_never_panics_keeps_raw_bytes_and_encodes_valid_json(raw in message()) {
        let bump = Bump::new();
        let mut p = Parser::with_offset(0);
        let raw = bump.alloc_slice_copy(&raw);
        let mut rec = Record::new(raw, Timestamp::now(), UNSPECIFIED, 0);
        p.parse(&bump, &mut rec);
        prop_assert_eq!(rec.raw, &raw[..]);
        // Text that did not parse as JSON is kept as the message.
        prop_assert!(rec.json || rec.msg.is_empty() || rec.fields.get(b"message") == Some(rec.msg));
        let names = Names::new(vec!["in".into()], class::BUILTIN.iter().map(|s| s.to_string()).collect());
        let mut out = Vec::new();
        write_record(&mut out, &rec, &names);
        let v: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
        prop_assert!(v["msg"].as_object().is_some_and(|m| m.values().all(|x| x.is_string())));
    }

    #[test]
    fn a_batch_parsed_in_place_equals_each_frame_parsed_from_a_copy(
        msgs in prop::collection::vec(message(), 1..12),
    ) {
        // The pipeline's path (`Batch::parse`: JSON parsed where it lies in
        // the batch's bytes) against the copying one, frame by frame: the
        // same record, the same output, and the frame bytes untouched.
        let names = Names::new(vec!["in".into()], class::BUILTIN.iter().map(|s| s.to_string()).collect());
        let now = Timestamp::now();
        let mut owner = BatchOwner::default();
        for m in &msgs {
            owner.push_frame(m, UNSPECIFIED, now, 0, 0);
        }
        let batch = Batch::parse(owner, &mut Parser::with_offset(0));
        batch.with_dependent(|_, recs| -> Result<(), TestCaseError> {
            prop_assert_eq!(recs.list.len(), msgs.len());
            for (rec, m) in recs.list.iter().zip(&msgs) {
                prop_assert_eq!(rec.raw, &m[..]);
                let bump = Bump::new();
                let mut copy = Record::new(bump.alloc_slice_copy(m), now, UNSPECIFIED, 0);
                Parser::with_offset(0).parse(&bump, &mut copy);
                prop_assert_eq!(rec.msg, copy.msg);
                prop_assert_eq!((rec.json, rec.flaws), (copy.json, copy.flaws));
                prop_assert_eq!(rec.clean_json == (0, 0), copy.clean_json == (0, 0));
                let pairs = |r: &Record<'_>| r.fields.as_slice().iter().map(|f| (f.key.to_vec(), f.value.to_vec())).collect::<Vec<_>>();
                prop_assert_eq!(pairs(rec), pairs(&copy));
                let (mut a, mut b) = (Vec::new(), Vec::new());
                write_record(&mut a, rec, &names);
                write_record(&mut b, &copy, &names);
                prop_assert_eq!(a, b);
            }
            Ok(())
        })?;
    }

    #[test]
    fn json_values_come_out_exactly_as_sent_with_or_without_the_clean_fast_path(
        values in prop::collection::vec(any::<String>(), 1..8),
        pretty in any::<bool>(),
    ) {
        let obj: serde_json::Map<String, serde_json::Value> = values
            .iter()
            .enumerate()
            .map(|(i, v)| (format!("k{i}"), serde_json::Value::String(v.clone())))
            .collect();
        let obj = serde_json::Value::Object(obj);
        let text = if pretty { serde_json::to_string_pretty(&obj) } else { serde_json::to_string(&obj) }.unwrap();
        let raw = format!("<14>1 - h app - - - {text}");
        let bump = Bump::new();
        let raw = bump.alloc_slice_copy(raw.as_bytes());
        let mut rec = Record::new(raw, Timestamp::now(), UNSPECIFIED, 0);
        Parser::with_offset(0).parse(&bump, &mut rec);
        prop_assert!(rec.json);
        let names = Names::new(vec!["in".into()], class::BUILTIN.iter().map(|s| s.to_string()).collect());
        let mut fast = Vec::new();
        write_record(&mut fast, &rec, &names);
        rec.clean_json = (0, 0);
        let mut slow = Vec::new();
        write_record(&mut slow, &rec, &names);
        prop_assert_eq!(&fast, &slow);
        let v: serde_json::Value = serde_json::from_slice(&fast).expect("valid JSON");
        for (i, want) in values.iter().enumerate() {
            prop_assert_eq!(v["msg"][format!("k{i}")].as_str(), Some(want.as_str()));
        }
    }

    #[test]
    fn json_strings_with_any_bytes_encode_the_same_on_both_paths(
        body in prop_oneof![
            prop::collection::vec(any::<u8>().prop_filter("no quote or backslash", |b| *b != b'"' && *b != b'\\'), 0..60),
            // Mostly valid UTF-8, control characters included, unescaped.
            "[^\"\\\\]{0,40}".prop_map(String::into_bytes),
        ],
    ) {
        let mut raw = b"{\"a\":\"".to_vec();
        raw.extend_from_slice(&body);
        raw.extend_from_slice(b"\"}");
        let bump = Bump::new();
        let raw = bump.alloc_slice_copy(&raw);
        let mut rec = Record::new(raw, Timestamp::now(), UNSPECIFIED, 0);
        Parser::with_offset(0).parse(&bump, &mut rec);
        let names = Names::new(vec!["in".into()], class::BUILTIN.iter().map(|s| s.to_string()).collect());
        let mut fast = Vec::new();
        write_record(&mut fast, &rec, &names);
        rec.clean_json = (0, 0);
        let mut slow = Vec::new();
        write_record(&mut slow, &rec, &names);
        prop_assert_eq!(&fast, &slow);
        let _: serde_json::Value = serde_json::from_slice(&fast).expect("valid JSON");
    }
}

proptest! {
    // Cheap cases, and about a quarter of them take the flat path: more
    // of them than the other properties run.
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn flat_objects_read_without_the_tape_equal_simd_json(text in json_object()) {
        // The flat-object reader against simd-json's tape on the same
        // message: the same verdict, fields, flaws and output.
        let raw = [b"<14>1 - h app - - - ".as_slice(), &text].concat();
        let names = Names::new(vec!["in".into()], class::BUILTIN.iter().map(|s| s.to_string()).collect());
        let bump = Bump::new();
        let mut out = Vec::new();
        let now = Timestamp::now();
        for flat in [true, false] {
            let mut p = Parser::with_offset(0);
            p.set_flat_scan(flat);
            let mut rec = Record::new(bump.alloc_slice_copy(&raw), now, UNSPECIFIED, 0);
            p.parse(&bump, &mut rec);
            let pairs = rec.fields.as_slice().iter().map(|f| (f.key.to_vec(), f.value.to_vec())).collect::<Vec<_>>();
            let mut json = Vec::new();
            write_record(&mut json, &rec, &names);
            out.push((rec.json, rec.flaws, rec.clean_json == (0, 0), pairs, json));
        }
        prop_assert_eq!(&out[0], &out[1]);
    }
}

/// JSON objects, mostly flat and valid, with the near misses the flat
/// reader must leave to simd-json: nesting, fractions, `-0`, leading
/// zeros, escapes, tabs and newlines, control bytes, invalid UTF-8,
/// repeated names, trailing text.
fn json_object() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![
        12 => "[A-Za-z][A-Za-z0-9_]{0,12}",
        1 => "[^\"\\\\]{0,20}",
        2 => Just("a".to_string()),
    ];
    let value = prop_oneof![
        16 => "[^\"\\\\\\x00-\\x1f]{0,40}".prop_map(|s| format!("\"{s}\"")),
        1 => "[^\"]{0,20}".prop_map(|s| format!("\"{}\"", s.replace('\\', "\\\\"))),
        4 => any::<i64>().prop_map(|n| n.to_string()),
        4 => (-99_999i64..99_999).prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
        2 => prop::sample::select(vec!["true", "false", "null"]).prop_map(str::to_string),
        1 => prop_oneof![
            Just("-0"), Just("0"), Just("01"), Just("-"), Just("1.5"), Just("-2e3"),
            Just("1E+2"), Just("true"), Just("false"), Just("null"), Just("tru"),
            Just("nulll"), Just("{}"), Just("[]"), Just("{\"x\":1}"), Just("[1,\"a\"]"),
            Just("\"a\\u00e9\""), Just("\"\\n\""),
        ].prop_map(str::to_string),
        1 => (0u64..u64::MAX).prop_map(|n| format!("{n}{}", n % 10)),
    ];
    let space = prop_oneof![40 => Just(""), 12 => Just(" "), 3 => Just("  "), 1 => Just("\t"), 1 => Just("\n")];
    let member = (key, value, space.clone(), space.clone());
    (
        prop::collection::vec(member, 0..10),
        space,
        prop_oneof![40 => Just(b"".to_vec()), 1 => Just(b",".to_vec()), 1 => Just(b"x".to_vec()), 1 => Just(b"\xff".to_vec())],
    )
        .prop_map(|(members, sp, tail)| {
            let mut t = format!("{sp}{{").into_bytes();
            for (i, (k, v, a, b)) in members.iter().enumerate() {
                if i > 0 {
                    t.push(b',');
                }
                t.extend_from_slice(format!("{a}\"{k}\"{b}:{a}{v}{b}").as_bytes());
            }
            t.extend_from_slice(&tail);
            t.push(b'}');
            t
        })
}
