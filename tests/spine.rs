//! Issue 2 acceptance: the real binary on loopback, real `logger`, raw
//! sockets, real TCP peers for outputs.

mod common;

use std::io::Write;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

fn logger(args: &[&str]) {
    let st = Command::new("logger")
        .args(args)
        .status()
        .expect("util-linux logger is installed");
    assert!(st.success(), "logger {args:?} failed");
}

fn find<'a>(recs: &'a [Value], text: &str) -> &'a Value {
    recs.iter()
        .find(|r| r.to_string().contains(text))
        .unwrap_or_else(|| panic!("no record containing {text:?} in {recs:#?}"))
}

#[test]
fn logger_rfc5424_and_rfc3164_over_udp_and_tcp_with_and_without_octet_counting() {
    let mut s = Sluice::start(&basic_config(""));
    let tcp = s.addr("tcp").port().to_string();
    let udp = s.addr("udp").port().to_string();
    let cases: [(&[&str], &str); 6] = [
        (&["--udp", "-P", &udp, "--rfc5424"], "udp-5424"),
        (&["--udp", "-P", &udp, "--rfc3164"], "udp-3164"),
        (&["--tcp", "-P", &tcp, "--rfc5424"], "tcp-5424"),
        (&["--tcp", "-P", &tcp, "--rfc3164"], "tcp-3164"),
        (
            &["--tcp", "-P", &tcp, "--rfc5424", "--octet-count"],
            "tcp-5424-oc",
        ),
        (
            &["--tcp", "-P", &tcp, "--rfc3164", "--octet-count"],
            "tcp-3164-oc",
        ),
    ];
    for (args, tag) in cases {
        let mut a = vec![
            "-n",
            "127.0.0.1",
            "-t",
            "myapp",
            "-p",
            "local3.warning",
            "--id=4242",
        ];
        a.extend_from_slice(args);
        let text = format!("hello from {tag}");
        a.push(&text);
        logger(&a);
    }
    // Structured data from logger.
    logger(&[
        "-n",
        "127.0.0.1",
        "-P",
        &tcp,
        "--tcp",
        "--rfc5424",
        "--octet-count",
        "-t",
        "sdapp",
        "--sd-id",
        "origin@32473",
        "--sd-param",
        "ip=\"10.0.0.9\"",
        "--sd-param",
        "note=\"a \\\"quoted\\\" \\]\"",
        "with sd",
    ]);
    let recs = wait_records(&s.path("out.ndjson"), 7, Duration::from_secs(10));
    assert_eq!(recs.len(), 7, "{recs:#?}");
    for tag in [
        "udp-5424",
        "udp-3164",
        "tcp-5424",
        "tcp-3164",
        "tcp-5424-oc",
        "tcp-3164-oc",
    ] {
        let r = find(&recs, &format!("hello from {tag}"));
        assert_eq!(
            msg(r, "message"),
            Some(format!("hello from {tag}").as_str()),
            "{r}"
        );
        assert_eq!(meta(r, "app"), Some("myapp"), "{r}");
        assert_eq!(meta(r, "procid"), Some("4242"), "{r}");
        assert_eq!(meta(r, "facility"), Some("local3"), "{r}");
        assert_eq!(meta(r, "severity"), Some("warning"), "{r}");
        assert_eq!(meta(r, "src_ip"), Some("127.0.0.1"));
        assert_eq!(
            meta(r, "input"),
            Some(if tag.starts_with("udp") { "udp" } else { "tcp" })
        );
        assert_eq!(meta(r, "class"), Some("syslog"));
        assert!(r["meta"].get("flaws").is_none(), "{r}");
        assert!(meta(r, "host").is_some_and(|h| !h.is_empty()));
    }
    let r = find(&recs, "with sd");
    assert_eq!(msg(r, "origin_32473_ip"), Some("10.0.0.9"), "{r}");
    assert_eq!(msg(r, "origin_32473_note"), Some("a \"quoted\" ]"), "{r}");
    assert!(s.stop().success());
}

/// The RFC examples of ../shared/FORMATS.md, as raw frames.
const RFC_EXAMPLES: [&[u8]; 8] = [
    b"<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xEF\xBB\xBF'su root' failed for lonvick on /dev/pts/8",
    b"<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
    b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"] \xEF\xBB\xBFAn application event log entry...",
    b"<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut=\"3\" eventSource=\"Application\" eventID=\"1011\"][examplePriority@32473 class=\"high\"]",
    b"<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8",
    b"<165>Aug 24 05:34:00 CST 1987 mymachine myproc[10]: %% It's time to make the do-nuts.  %%  Ingredients: Mix=OK, Jelly=OK # Devices: Mixer=OK, Jelly_Injector=OK, Frier=OK # Transport: Conveyer1=OK, Conveyer2=OK # %%",
    b"<0>1990 Oct 22 10:52:01 TZ-6 scapegoat.dmz.example.org 10.1.2.3 sched[0]: That's All Folks!",
    b"Use the BFG!",
];

#[test]
fn every_rfc_example_comes_out_with_the_right_fields() {
    let mut s = Sluice::start(&basic_config(""));
    // Octet-counted over TCP, and each also as a UDP datagram.
    let mut conn = TcpStream::connect(s.addr("tcp")).unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    for ex in RFC_EXAMPLES {
        conn.write_all(format!("{} ", ex.len()).as_bytes()).unwrap();
        conn.write_all(ex).unwrap();
        udp.send_to(ex, s.addr("udp")).unwrap();
    }
    drop(conn);
    let recs = wait_records(&s.path("out.ndjson"), 16, Duration::from_secs(10));
    assert_eq!(recs.len(), 16);
    for input in ["tcp", "udp"] {
        let recs: Vec<Value> = recs
            .iter()
            .filter(|r| meta(r, "input") == Some(input))
            .cloned()
            .collect();
        assert_eq!(recs.len(), 8, "{input}");
        let r = find(&recs, "lonvick");
        assert_eq!(meta(r, "timestamp"), Some("2003-10-11T22:14:15.003Z"));
        assert_eq!(
            (meta(r, "facility"), meta(r, "severity")),
            (Some("auth"), Some("crit"))
        );
        assert_eq!(meta(r, "host"), Some("mymachine.example.com"));
        assert_eq!(
            (meta(r, "app"), meta(r, "msgid")),
            (Some("su"), Some("ID47"))
        );
        assert!(r["meta"].get("procid").is_none());
        assert_eq!(
            msg(r, "message"),
            Some("'su root' failed for lonvick on /dev/pts/8")
        );

        let r = find(&recs, "2003-08-24");
        assert_eq!(
            meta(r, "timestamp"),
            Some("2003-08-24T05:14:15.000003-07:00")
        );
        assert_eq!(
            (meta(r, "facility"), meta(r, "severity")),
            (Some("local4"), Some("notice"))
        );
        assert_eq!(
            (meta(r, "host"), meta(r, "app"), meta(r, "procid")),
            (Some("192.0.2.1"), Some("myproc"), Some("8710"))
        );
        assert_eq!(msg(r, "message"), Some("%% It's time to make the do-nuts."));

        let r = find(&recs, "An application event log entry");
        assert_eq!(msg(r, "examplesdid_32473_iut"), Some("3"));
        assert_eq!(msg(r, "examplesdid_32473_eventsource"), Some("Application"));
        assert_eq!(msg(r, "examplesdid_32473_eventid"), Some("1011"));
        assert_eq!(msg(r, "message"), Some("An application event log entry..."));

        let r = find(&recs, "high");
        assert_eq!(msg(r, "examplepriority_32473_class"), Some("high"));
        assert!(r["msg"].get("message").is_none());

        let r = recs
            .iter()
            .find(|r| meta(r, "timestamp").is_some_and(|t| t.ends_with("-10-11T22:14:15Z")))
            .expect("the RFC 3164 example 1");
        assert_eq!(
            (meta(r, "host"), meta(r, "app")),
            (Some("mymachine"), Some("su"))
        );
        assert_eq!(
            msg(r, "message"),
            Some("'su root' failed for lonvick on /dev/pts/8")
        );

        let r = find(&recs, "Jelly_Injector");
        assert_eq!(
            meta(r, "timestamp").map(|t| &t[..19]),
            Some("1987-08-24T05:34:00")
        );
        assert_eq!(
            (meta(r, "host"), meta(r, "app"), meta(r, "procid")),
            (Some("mymachine"), Some("myproc"), Some("10"))
        );

        let r = find(&recs, "Folks");
        assert_eq!(
            meta(r, "timestamp").map(|t| &t[..19]),
            Some("1990-10-22T10:52:01")
        );
        assert_eq!(
            (meta(r, "facility"), meta(r, "severity")),
            (Some("kern"), Some("emerg"))
        );
        assert_eq!(
            (meta(r, "host"), meta(r, "app"), meta(r, "procid")),
            (Some("scapegoat.dmz.example.org"), Some("sched"), Some("0"))
        );
        assert_eq!(msg(r, "message"), Some("That's All Folks!"));

        let r = find(&recs, "BFG");
        assert_eq!(
            (meta(r, "facility"), meta(r, "severity")),
            (Some("user"), Some("notice"))
        );
        assert_eq!(msg(r, "message"), Some("Use the BFG!"));
        assert_eq!(r["meta"]["flaws"][0], "no_pri");
        assert_eq!(meta(r, "timestamp"), meta(r, "received"));
    }
    assert_eq!(
        s.metric("sluice_input_parse_errors_total{input=\"tcp\",reason=\"no_pri\"}"),
        1.0
    );
    assert!(s.stop().success());
}

#[test]
fn lf_crlf_nul_and_octet_frames_mixed_on_one_connection_all_arrive() {
    let mut s = Sluice::start(&basic_config(""));
    let mut c = TcpStream::connect(s.addr("tcp")).unwrap();
    let mut wire = Vec::new();
    wire.extend_from_slice(b"<13>1 - h a - - - lf-frame\n");
    wire.extend_from_slice(b"<13>1 - h a - - - crlf-frame\r\n");
    wire.extend_from_slice(b"<13>1 - h a - - - nul-frame\0");
    let oc = b"<13>1 - h a - - - octet-frame with\nan embedded LF";
    wire.extend_from_slice(format!("{} ", oc.len()).as_bytes());
    wire.extend_from_slice(oc);
    wire.extend_from_slice(b"<13>Oct 11 22:14:15 h a: lf-after-octet\n");
    // Write byte by byte halfway, to cut frames at every position.
    let (a, b) = wire.split_at(wire.len() / 2);
    for byte in a {
        c.write_all(&[*byte]).unwrap();
    }
    c.write_all(b).unwrap();
    let recs = wait_records(&s.path("out.ndjson"), 5, Duration::from_secs(10));
    let texts: Vec<&str> = recs.iter().filter_map(|r| msg(r, "message")).collect();
    assert_eq!(
        texts,
        [
            "lf-frame",
            "crlf-frame",
            "nul-frame",
            "octet-frame with\nan embedded LF",
            "lf-after-octet"
        ]
    );
    assert!(s.stop().success());
}

#[test]
fn frames_cut_anywhere_on_connections_read_side_by_side_arrive_whole_and_in_order() {
    // Frames cut anywhere by reads (writes of random sizes with pauses),
    // LF and octet-counted, JSON with and without escapes (parsed in place
    // in the batch's bytes, or from a copy), text; small batches (many
    // boundaries); three connections at once on two workers.
    let mut s = Sluice::start(&basic_config("").replace(
        "workers = 2",
        "workers = 2\nbatch_records = 7\nbatch_bytes = \"4KiB\"",
    ));
    const CONNS: usize = 3;
    const PER: usize = 400;
    let addr = s.addr("tcp");
    let senders: Vec<_> = (0..CONNS)
        .map(|c| {
            std::thread::spawn(move || {
                let mut wire = Vec::new();
                for i in 0..PER {
                    let body = match i % 4 {
                        0 => format!(
                            r#"<14>1 - h app - - - {{"c":"{c}","i":"{i}","pad":"{}"}}"#,
                            "p".repeat(i % 97)
                        ),
                        1 => format!(
                            r#"<14>1 - h app - - - {{"c":"{c}","i":"{i}","path":"C:\\x{i}"}}"#
                        ),
                        2 => format!("<13>1 - h app - - - text c={c} i={i}"),
                        _ => format!(r#"<14>1 - h app - - - {{"c":"{c}","i":"{i}","n":{i}}} "#),
                    };
                    if i % 3 == 0 {
                        wire.extend_from_slice(format!("{} {body}", body.len()).as_bytes());
                    } else {
                        wire.extend_from_slice(body.as_bytes());
                        wire.push(b'\n');
                    }
                }
                let mut t = TcpStream::connect(addr).unwrap();
                t.set_nodelay(true).unwrap();
                let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ c as u64;
                let mut at = 0;
                while at < wire.len() {
                    seed = seed
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    let n = 1 + (seed >> 33) as usize % 700;
                    let end = (at + n).min(wire.len());
                    t.write_all(&wire[at..end]).unwrap();
                    at = end;
                    if seed >> 60 == 0 {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
            })
        })
        .collect();
    for t in senders {
        t.join().unwrap();
    }
    let recs = wait_records(&s.path("out.ndjson"), CONNS * PER, Duration::from_secs(20));
    assert_eq!(recs.len(), CONNS * PER);
    let mut next = [0usize; CONNS];
    for r in &recs {
        let (c, i) = match (msg(r, "c"), msg(r, "i")) {
            (Some(c), Some(i)) => (c.parse::<usize>().unwrap(), i.parse::<usize>().unwrap()),
            _ => {
                let m = msg(r, "message").unwrap_or_else(|| panic!("{r}"));
                let mut w = m.split(['=', ' ']);
                (
                    w.nth(2).unwrap().parse().unwrap(),
                    w.nth(1).unwrap().parse().unwrap(),
                )
            }
        };
        assert_eq!(i, next[c], "connection {c}: records in order: {r}");
        next[c] += 1;
        match i % 4 {
            0 => assert_eq!(msg(r, "pad"), Some("p".repeat(i % 97).as_str())),
            1 => assert_eq!(msg(r, "path"), Some(format!("C:\\x{i}").as_str())),
            2 => assert_eq!(
                msg(r, "message"),
                Some(format!("text c={c} i={i}").as_str())
            ),
            _ => assert_eq!(msg(r, "n"), Some(i.to_string().as_str())),
        }
    }
    assert_eq!(next, [PER; CONNS]);
    assert!(s.stop().success());
}

#[test]
fn oversized_frames_and_random_bytes_are_counted_and_the_connection_goes_on() {
    let mut s = Sluice::start(&basic_config("").replace(
        "type = \"tcp\"\nlisten = \"127.0.0.1:0\"",
        "type = \"tcp\"\nlisten = \"127.0.0.1:0\"\nmax_message_bytes = 1024",
    ));
    let mut c = TcpStream::connect(s.addr("tcp")).unwrap();
    // An octet-counted frame of 5000 bytes and a 3000-byte LF line.
    let big = format!("<13>1 - h a - - - {}", "x".repeat(5000 - 18));
    c.write_all(format!("{} {}", big.len(), big).as_bytes())
        .unwrap();
    c.write_all(format!("<13>1 - h a - - - {}\n", "y".repeat(3000)).as_bytes())
        .unwrap();
    // A burst of random bytes (no LF/NUL inside, not starting with a digit).
    let mut seed = 12345u64;
    let mut junk = vec![b'~'];
    for _ in 0..500 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let b = (seed >> 33) as u8;
        junk.push(if b == b'\n' || b == 0 { b'?' } else { b });
    }
    junk.push(b'\n');
    c.write_all(&junk).unwrap();
    c.write_all(b"<13>1 - h a - - - still-here\n").unwrap();
    let recs = wait_records(&s.path("out.ndjson"), 4, Duration::from_secs(10));
    assert_eq!(recs.len(), 4, "{recs:#?}");
    assert_eq!(msg(&recs[3], "message"), Some("still-here"));
    for r in &recs[..2] {
        assert!(
            r["meta"]["flaws"]
                .as_array()
                .unwrap()
                .contains(&Value::from("truncated")),
            "{r}"
        );
        assert!(msg(r, "message").unwrap().len() < 1024);
    }
    assert!(
        recs[2]["meta"]["flaws"]
            .as_array()
            .unwrap()
            .contains(&Value::from("no_pri"))
    );
    assert_eq!(s.metric("sluice_input_oversize_total{input=\"tcp\"}"), 2.0);
    assert_eq!(
        s.metric("sluice_input_parse_errors_total{input=\"tcp\",reason=\"truncated\"}"),
        2.0
    );
    assert_eq!(
        s.metric("sluice_input_parse_errors_total{input=\"tcp\",reason=\"no_pri\"}"),
        1.0
    );
    // The same connection still works.
    c.write_all(b"<13>1 - h a - - - and-again\n").unwrap();
    let recs = wait_records(&s.path("out.ndjson"), 5, Duration::from_secs(10));
    assert_eq!(msg(&recs[4], "message"), Some("and-again"));
    assert!(s.stop().success());
}

#[test]
fn a_tcp_output_whose_peer_starts_late_receives_every_record() {
    let port = free_port();
    let mut s = Sluice::start(&basic_config(&format!(
        r#"
[[output]]
name = "siem"
type = "syslog"
transport = "tcp"
target = "127.0.0.1:{port}"
format = "v2"
when_full = "block"
"#
    )));
    let t0 = Instant::now();
    let mut c = TcpStream::connect(s.addr("tcp")).unwrap();
    let n = 2000;
    for i in 0..n {
        writeln!(
            c,
            r#"<14>1 - dc01 agent - - - {{"EventID":4624,"seq":"{i}"}}"#
        )
        .unwrap();
    }
    c.flush().unwrap();
    std::thread::sleep(Duration::from_secs(2).saturating_sub(t0.elapsed()));
    let (lines, _) = collect_lines(TcpListener::bind(("127.0.0.1", port)).unwrap());
    assert!(
        wait_until(Duration::from_secs(20), || lines.lock().unwrap().len() >= n),
        "peer got {} of {n}",
        lines.lock().unwrap().len()
    );
    let lines = lines.lock().unwrap().clone();
    assert_eq!(lines.len(), n);
    for (i, l) in lines.iter().enumerate() {
        assert!(l.starts_with("<14>1 "), "{l}");
        let json = &l[l.find(" - {").unwrap() + 3..];
        let v: Value = serde_json::from_str(json).unwrap();
        assert_eq!(msg(&v, "seq"), Some(i.to_string().as_str()), "order");
        assert_eq!(meta(&v, "class"), Some("json"));
    }
    assert!(s.metric("sluice_output_reconnects_total{output=\"siem\"}") >= 1.0);
    assert!(s.metric("sluice_output_failed_total{output=\"siem\"}") >= 1.0);
    assert_eq!(
        s.metric_settled("sluice_output_sent_total{output=\"siem\"}", n as f64),
        n as f64
    );
    assert!(s.stop().success());
}

#[test]
fn a_drop_output_with_a_dead_peer_drops_and_counts_and_never_blocks_inputs() {
    let port = free_port();
    let mut s = Sluice::start(&basic_config(&format!(
        r#"
[[output]]
name = "dead"
type = "syslog"
transport = "tcp"
target = "127.0.0.1:{port}"
when_full = "drop"
queue_batches = 2
"#
    )));
    let n = 50_000;
    let mut c = TcpStream::connect(s.addr("tcp")).unwrap();
    let mut buf = Vec::new();
    for i in 0..n {
        writeln!(buf, "<13>1 - h a - - - message {i}").unwrap();
    }
    c.write_all(&buf).unwrap();
    drop(c);
    // Every record reaches the file output: the dead peer blocks nothing.
    let recs = wait_records(&s.path("out.ndjson"), n, Duration::from_secs(30));
    assert_eq!(recs.len(), n);
    let dropped = s.metric("sluice_output_dropped_total{output=\"dead\",reason=\"queue_full\"}");
    assert!(dropped > 0.0, "drops are counted");
    // What was not dropped waits in the dead output's queue and buffer.
    assert!(dropped < n as f64);
    assert_eq!(s.metric("sluice_output_sent_total{output=\"dead\"}"), 0.0);
    s.kill9();
}

#[test]
fn sigterm_after_n_tcp_records_delivers_exactly_n_to_the_file() {
    let mut s = Sluice::start(&basic_config(""));
    let n = 100_000;
    let mut conns: Vec<TcpStream> = (0..4)
        .map(|_| TcpStream::connect(s.addr("tcp")).unwrap())
        .collect();
    let mut bufs = vec![Vec::new(); 4];
    for i in 0..n {
        writeln!(
            bufs[i % 4],
            "<13>1 2026-01-01T00:00:00Z h a - - - record {i}"
        )
        .unwrap();
    }
    for (c, b) in conns.iter_mut().zip(&bufs) {
        c.write_all(b).unwrap();
    }
    // Signal at once: records still in socket buffers must not be lost.
    let st = s.stop();
    assert!(st.success(), "{st:?}");
    let recs = read_ndjson(&s.path("out.ndjson"));
    assert_eq!(recs.len(), n);
    let mut seen = vec![false; n];
    for r in &recs {
        let i: usize = msg(r, "message").unwrap()["record ".len()..]
            .parse()
            .unwrap();
        assert!(!seen[i], "duplicate {i}");
        seen[i] = true;
    }
}
