use super::*;
use crate::record::{Syntax, UNSPECIFIED};
use crate::time::{Timestamp, from_civil};

/// Parses one frame received at `now` (UTC, parser offset 0).
fn parse_at<'a>(bump: &'a Bump, raw: &'a [u8], now: Timestamp) -> Record<'a> {
    let mut p = Parser::with_offset(0);
    let mut rec = Record::new(raw, now, UNSPECIFIED, 0);
    p.parse(bump, &mut rec);
    rec
}

fn now_2026() -> Timestamp {
    from_civil(2026, 6, 15, 12 * 3600, 0, 0, 0).unwrap()
}

fn parse<'a>(bump: &'a Bump, raw: &'a [u8]) -> Record<'a> {
    parse_at(bump, raw, now_2026())
}

fn ts(t: Timestamp) -> String {
    let mut v = Vec::new();
    t.write_rfc3339(&mut v);
    String::from_utf8(v).unwrap()
}

fn s(b: &[u8]) -> &str {
    std::str::from_utf8(b).unwrap()
}

fn fields(r: &Record<'_>) -> Vec<(String, String)> {
    r.fields
        .as_slice()
        .iter()
        .map(|f| {
            (
                s(f.key).to_string(),
                String::from_utf8_lossy(f.value).into_owned(),
            )
        })
        .collect()
}

fn kv(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn rfc5424_example_1_with_bom_and_no_sd() {
    let bump = Bump::new();
    let raw = b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xEF\xBB\xBF'su root' failed for lonvick on /dev/pts/8";
    let r = parse(&bump, raw);
    assert_eq!(r.syntax, Syntax::Rfc5424);
    assert_eq!((r.facility(), r.severity()), (4, 2));
    assert_eq!(ts(r.timestamp), "2003-10-11T22:14:15.003Z");
    assert_eq!(s(r.host), "mymachine.example.com");
    assert_eq!(s(r.app), "su");
    assert_eq!(r.procid, b"");
    assert_eq!(s(r.msgid), "ID47");
    assert_eq!(
        fields(&r),
        kv(&[("message", "'su root' failed for lonvick on /dev/pts/8")])
    );
    assert_eq!(r.flaws, 0);
}

#[test]
fn rfc5424_example_2_with_offset_and_no_msgid() {
    let bump = Bump::new();
    let raw = b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.";
    let r = parse(&bump, raw);
    assert_eq!((r.facility(), r.severity()), (20, 5));
    assert_eq!(ts(r.timestamp), "2003-08-24T05:14:15.000003-07:00");
    assert_eq!(s(r.host), "192.0.2.1");
    assert_eq!(s(r.app), "myproc");
    assert_eq!(s(r.procid), "8710");
    assert_eq!(r.msgid, b"");
    assert_eq!(
        fields(&r),
        kv(&[("message", "%% It's time to make the do-nuts.")])
    );
    assert_eq!(r.flaws, 0);
}

#[test]
fn rfc5424_example_3_structured_data_and_message() {
    let bump = Bump::new();
    let raw = b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] \xEF\xBB\xBFAn application event log entry...";
    let r = parse(&bump, raw);
    assert_eq!(s(r.app), "evntslog");
    assert_eq!(
        fields(&r),
        kv(&[
            ("examplesdid_32473_iut", "3"),
            ("examplesdid_32473_eventsource", "Application"),
            ("examplesdid_32473_eventid", "1011"),
            ("message", "An application event log entry..."),
        ])
    );
    assert_eq!(r.flaws, 0);
}

#[test]
fn rfc5424_example_4_two_sd_elements_and_no_message() {
    let bump = Bump::new();
    let raw = b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\"]";
    let r = parse(&bump, raw);
    assert_eq!(
        fields(&r),
        kv(&[
            ("examplesdid_32473_iut", "3"),
            ("examplesdid_32473_eventsource", "Application"),
            ("examplesdid_32473_eventid", "1011"),
            ("examplepriority_32473_class", "high"),
        ])
    );
    assert_eq!(r.msg, b"");
    assert_eq!(r.flaws, 0);
}

#[test]
fn rfc5424_sd_escapes_are_unescaped() {
    let bump = Bump::new();
    let raw = br#"<13>1 - h a - - [x@1 a="q\"b\\c\]d" e="\n"] m"#;
    let r = parse(&bump, raw);
    assert_eq!(
        fields(&r),
        kv(&[("x_1_a", r#"q"b\c]d"#), ("x_1_e", r"\n"), ("message", "m")])
    );
    assert_eq!(r.timestamp, r.received);
}

#[test]
fn rfc5424_broken_sd_is_kept_as_message_and_flagged() {
    let bump = Bump::new();
    let raw = br#"<13>1 2026-01-01T00:00:00Z h a - - [x@1 a="unterminated] rest"#;
    let r = parse(&bump, raw);
    assert_ne!(r.flaws & flaw::BAD_SD, 0);
    assert_eq!(
        fields(&r),
        kv(&[("message", r#"[x@1 a="unterminated] rest"#)])
    );
}

#[test]
fn rfc5424_with_json_message_becomes_fields() {
    let bump = Bump::new();
    let raw = br#"<14>1 2026-01-01T00:00:00Z dc01 nxlog - - - {"EventID":4624,"TargetUserName":"alice","IpAddress":"10.0.0.5"}"#;
    let r = parse(&bump, raw);
    assert!(r.json);
    assert_eq!(
        fields(&r),
        kv(&[
            ("eventid", "4624"),
            ("targetusername", "alice"),
            ("ipaddress", "10.0.0.5")
        ])
    );
}

#[test]
fn keys_that_collide_once_normalised_are_told_apart() {
    let bump = Bump::new();
    // Repeated SD-PARAM (RFC 5424 allows it), JSON keys equal once
    // lowercased, and a flat key equal to a flattened nested one. A
    // suffix never takes a name the sender used itself (`user_2`).
    let raw = br#"<14>1 - h a - - [x@1 k="1" k="2"] {"User":"a","user":"b","a_b":"1","a":{"b":"2"},"user_2":"c"}"#;
    let r = parse(&bump, raw);
    assert_eq!(
        fields(&r),
        kv(&[
            ("x_1_k", "1"),
            ("x_1_k_2", "2"),
            ("user", "a"),
            ("user_3", "b"),
            ("a_b", "1"),
            ("a_b_2", "2"),
            ("user_2", "c"),
        ])
    );
}

#[test]
fn json_keys_alone_that_collide_are_told_apart_record_after_record() {
    // No structured data: the parser's shared names decide whether the
    // record needs the exact check; a repeat in one record must not leak
    // into the next.
    let bump = Bump::new();
    let mut p = Parser::with_offset(0);
    for _ in 0..3 {
        let mut r = Record::new(
            br#"<14>1 - h a - - - {"User":"a","IpAddress":"x","user":"b"}"#,
            now_2026(),
            UNSPECIFIED,
            0,
        );
        p.parse(&bump, &mut r);
        assert_eq!(
            fields(&r),
            kv(&[("user", "a"), ("ipaddress", "x"), ("user_2", "b")])
        );
        let mut r = Record::new(
            br#"<14>1 - h a - - - {"User":"a","IpAddress":"x"}"#,
            now_2026(),
            UNSPECIFIED,
            0,
        );
        p.parse(&bump, &mut r);
        assert_eq!(fields(&r), kv(&[("user", "a"), ("ipaddress", "x")]));
    }
}

#[test]
fn json_without_backslashes_or_control_bytes_is_marked_clean() {
    let bump = Bump::new();
    let r = parse(
        &bump,
        br#"<14>1 - h a - - - {"user":"alice","n":3,"path":"C:/x","a":[1]}"#,
    );
    assert!(r.is_clean(r.fields.get(b"user").unwrap()));
    assert!(r.is_clean(r.fields.get(b"path").unwrap()));
    // With an array the object is not flat: simd-json reads it, and its
    // numbers and arrays are rendered into the arena, outside the object.
    assert!(!r.is_clean(r.fields.get(b"n").unwrap()));
    assert!(!r.is_clean(r.fields.get(b"a").unwrap()));
    assert!(!r.is_clean(r.msg));
    // A flat object's values all lie in it (`parse::flat`): integers,
    // booleans and null (empty) are clean too, as they need no escaping.
    let r = parse(
        &bump,
        br#"<14>1 - h a - - - {"user":"alice","n":3,"t":true,"z":null}"#,
    );
    for k in [&b"user"[..], b"n", b"t", b"z"] {
        assert!(r.is_clean(r.fields.get(k).unwrap()), "{k:?}");
    }
    assert_eq!(r.fields.get(b"t"), Some(&b"true"[..]));
    assert_eq!(r.fields.get(b"z"), Some(&b""[..]));
    let r = parse(&bump, br#"<14>1 - h a - - - {"user":"CORP\\alice"}"#);
    assert!(r.json);
    assert_eq!(r.clean_json, (0, 0));
    // Whitespace between tokens is fine; raw control bytes inside strings
    // are not JSON, and the clean mark relies on simd-json refusing them.
    let r = parse(&bump, b"<14>1 - h a - - - {\"user\":\n\t\"alice\"}");
    assert!(r.is_clean(r.fields.get(b"user").unwrap()));
    for c in (0u8..0x20).chain([0x7f]) {
        let doc = [&b"<14>1 - h a - - - {\"u\":\"a"[..], &[c], b"\"}"].concat();
        let r = parse(&bump, bump.alloc_slice_copy(&doc));
        assert_eq!(r.json, c == 0x7f, "byte {c:#x}");
        assert_eq!(r.clean_json != (0, 0), c == 0x7f, "byte {c:#x}");
    }
}

#[test]
fn rfc5424_truncated_header_is_flagged_not_dropped() {
    let bump = Bump::new();
    let r = parse(&bump, b"<13>1 2026-01-01T00:00:00Z host");
    assert_ne!(r.flaws & flaw::BAD_HEADER, 0);
    assert_eq!(s(r.host), "");
    let r = parse(&bump, b"<13>1 yesterday host app - - - hi");
    assert_ne!(r.flaws & flaw::BAD_TIMESTAMP, 0);
    assert_eq!(s(r.host), "host");
    assert_eq!(fields(&r), kv(&[("message", "hi")]));
}

#[test]
fn rfc3164_example_1() {
    let bump = Bump::new();
    let r = parse(
        &bump,
        b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
    );
    assert_eq!(r.syntax, Syntax::Rfc3164);
    assert_eq!((r.facility(), r.severity()), (4, 2));
    assert_eq!(ts(r.timestamp), "2026-10-11T22:14:15Z");
    assert_eq!(s(r.host), "mymachine");
    assert_eq!(s(r.app), "su");
    assert_eq!(
        fields(&r),
        kv(&[("message", "'su root' failed for lonvick on /dev/pts/8")])
    );
    assert_eq!(r.flaws, 0);
}

#[test]
fn rfc3164_example_2_zone_and_year_after_time() {
    let bump = Bump::new();
    let raw = b"<165>Aug 24 05:34:00 CST 1987 mymachine myproc[10]: %% It's time to make the do-nuts.  %%  Ingredients: Mix=OK, Jelly=OK # Devices: Mixer=OK, Jelly_Injector=OK, Frier=OK # Transport: Conveyer1=OK, Conveyer2=OK # %%";
    let r = parse(&bump, raw);
    assert_eq!(ts(r.timestamp), "1987-08-24T05:34:00Z");
    assert_eq!(s(r.host), "mymachine");
    assert_eq!(s(r.app), "myproc");
    assert_eq!(s(r.procid), "10");
    assert!(s(r.msg).starts_with("%% It's time to make the do-nuts.  %%  Ingredients"));
    assert!(s(r.msg).ends_with("Conveyer2=OK # %%"));
}

#[test]
fn rfc3164_example_3_year_first_zone_and_originator_address() {
    let bump = Bump::new();
    let raw = b"<0>1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!";
    let r = parse(&bump, raw);
    assert_eq!((r.facility(), r.severity()), (0, 0));
    assert_eq!(ts(r.timestamp), "1990-10-22T10:52:01Z");
    assert_eq!(s(r.host), "scapegoat.dmz.example.org");
    assert_eq!(s(r.app), "sched");
    assert_eq!(s(r.procid), "0");
    assert_eq!(fields(&r), kv(&[("message", "That's All Folks!")]));
}

#[test]
fn rfc3164_example_4_no_pri_is_kept_with_pri_13_and_receiver_time() {
    let bump = Bump::new();
    let r = parse(&bump, b"Use the BFG!");
    assert_eq!(r.pri, 13);
    assert_eq!(r.timestamp, r.received);
    assert_ne!(r.flaws & flaw::NO_PRI, 0);
    assert_eq!(fields(&r), kv(&[("message", "Use the BFG!")]));
}

#[test]
fn rfc3164_without_hostname() {
    let bump = Bump::new();
    let r = parse(
        &bump,
        b"<13>Oct  1 01:02:03 sshd[42]: Accepted password for bob",
    );
    assert_eq!(ts(r.timestamp), "2026-10-01T01:02:03Z");
    assert_eq!(r.host, b"");
    assert_eq!(s(r.app), "sshd");
    assert_eq!(s(r.procid), "42");
    assert_eq!(fields(&r), kv(&[("message", "Accepted password for bob")]));
}

#[test]
fn rfc3164_with_iso_timestamp() {
    let bump = Bump::new();
    let r = parse(
        &bump,
        b"<13>2026-03-04T05:06:07.5+01:00 fw01 kernel: DROP IN=eth0",
    );
    assert_eq!(ts(r.timestamp), "2026-03-04T05:06:07.5+01:00");
    assert_eq!(s(r.host), "fw01");
    assert_eq!(s(r.app), "kernel");
    assert_eq!(fields(&r), kv(&[("message", "DROP IN=eth0")]));
}

#[test]
fn rfc3164_with_year_after_date_and_fraction_like_cisco() {
    let bump = Bump::new();
    let r = parse(
        &bump,
        b"<189>Mar  1 2025 18:46:11.123: router1 %SYS-5-CONFIG_I: Configured",
    );
    assert_eq!(ts(r.timestamp), "2025-03-01T18:46:11.123Z");
    assert_eq!(s(r.host), "router1");
    assert_eq!(s(r.app), "%SYS-5-CONFIG_I");
}

#[test]
fn rfc3164_december_message_arriving_in_january_is_last_year() {
    let bump = Bump::new();
    let jan1 = from_civil(2027, 1, 1, 30, 0, 0, 0).unwrap();
    let r = parse_at(&bump, b"<13>Dec 31 23:59:50 h app: late", jan1);
    assert_eq!(ts(r.timestamp), "2026-12-31T23:59:50Z");
    let dec31 = from_civil(2026, 12, 31, 86_000, 0, 0, 0).unwrap();
    let r = parse_at(&bump, b"<13>Jan  1 00:00:05 h app: early clock", dec31);
    assert_eq!(ts(r.timestamp), "2027-01-01T00:00:05Z");
}

#[test]
fn rfc3164_with_json_after_tag() {
    let bump = Bump::new();
    let r = parse(
        &bump,
        br#"<14>Dec  3 10:00:00 dc01 agent: {"eventid":"4768","targetusername":"bob"}"#,
    );
    assert!(r.json);
    assert_eq!(
        fields(&r),
        kv(&[("eventid", "4768"), ("targetusername", "bob")])
    );
}

#[test]
fn rfc3164_without_timestamp_is_flagged_and_kept() {
    let bump = Bump::new();
    let r = parse(&bump, b"<13>host app: no time here");
    assert_ne!(r.flaws & flaw::BAD_TIMESTAMP, 0);
    assert_eq!(s(r.host), "host");
    assert_eq!(s(r.app), "app");
    assert_eq!(fields(&r), kv(&[("message", "no time here")]));
}

#[test]
fn bare_json_without_header_is_parsed_and_flagged_no_pri() {
    let bump = Bump::new();
    let r = parse(&bump, br#"{"EventID":"4624","TargetUserName":"carol"}"#);
    assert!(r.json);
    assert_ne!(r.flaws & flaw::NO_PRI, 0);
    assert_eq!(
        fields(&r),
        kv(&[("eventid", "4624"), ("targetusername", "carol")])
    );
}

#[test]
fn broken_json_is_kept_as_text_and_flagged() {
    let bump = Bump::new();
    let r = parse(&bump, br#"<13>1 - h a - - - {"EventID":4624,"#);
    assert!(!r.json);
    assert_eq!(fields(&r), kv(&[("message", r#"{"EventID":4624,"#)]));
    let r = parse(&bump, br#"<13>1 - h a - - - {"EventID":4624,}"#);
    assert_ne!(r.flaws & flaw::BAD_JSON, 0);
}

#[test]
fn pri_rules_follow_rfc5424() {
    assert_eq!(parse_pri(b"<0>x"), Some((0, 3)));
    assert_eq!(parse_pri(b"<191>x"), Some((191, 5)));
    assert_eq!(parse_pri(b"<192>x"), None);
    assert_eq!(parse_pri(b"<01>x"), None);
    assert_eq!(parse_pri(b"<>x"), None);
    assert_eq!(parse_pri(b"<1234>x"), None);
}

#[test]
fn random_bytes_never_panic_and_keep_raw() {
    let bump = Bump::new();
    let mut seed = 0x9E37_79B9_7F4A_7C15u64;
    for n in 0..5000 {
        let len = n % 200;
        let mut v = Vec::with_capacity(len);
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            v.push(match seed % 8 {
                0 => b'<',
                1 => b'>',
                2 => b' ',
                3 => b'{',
                4 => b'[',
                5 => b'1',
                _ => (seed >> 8) as u8,
            });
        }
        let v = bump.alloc_slice_copy(&v);
        let r = parse(&bump, v);
        assert_eq!(r.raw, &v[..]);
        assert!(!r.fields.is_empty());
    }
}
