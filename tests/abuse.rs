//! Issue 5 acceptance 2: abusive clients are refused and counted, memory
//! stays bounded, and a well-behaved client's records all arrive meanwhile.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use common::*;
use socket2::{Domain, Socket, Type};

/// A TCP connection from a chosen loopback source address.
fn connect_from(src: &str, to: SocketAddr) -> std::io::Result<TcpStream> {
    let s = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    let from: SocketAddr = format!("{src}:0").parse().unwrap();
    s.bind(&from.into())?;
    s.connect(&to.into())?;
    Ok(s.into())
}

#[test]
fn abusers_are_refused_and_counted_while_a_good_client_gets_through() {
    let mut s = Sluice::start(&basic_config("").replace(
        "type = \"tcp\"\nlisten = \"127.0.0.1:0\"",
        "type = \"tcp\"\nlisten = \"127.0.0.1:0\"\nmax_connections = 10\nmax_message_bytes = 4096\n\
         idle_timeout = \"3s\"\nallow = [\"127.0.0.2\", \"127.0.0.3/32\"]",
    ).replace(
        "type = \"udp\"\nlisten = \"127.0.0.1:0\"",
        "type = \"udp\"\nlisten = \"127.0.0.1:0\"\nallow = [\"127.0.0.2\"]",
    ));
    let tcp = s.addr("tcp");
    let rss_before = s.metric("sluice_resident_memory_bytes");

    // The well-behaved client (allowed address) sends throughout.
    let good = std::thread::spawn(move || {
        let mut c = connect_from("127.0.0.2", tcp).unwrap();
        for i in 0..2000 {
            writeln!(c, "<13>1 - good app - - - good {i}").unwrap();
            if i % 100 == 0 {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    });

    // A sender outside the allowlist.
    let mut outsider = TcpStream::connect(tcp).unwrap();
    let _ = outsider.write_all(b"<13>1 - evil app - - - let me in\n");
    let u = UdpSocket::bind("127.0.0.1:0").unwrap();
    u.send_to(b"<13>1 - evil app - - - udp from outside", s.addr("udp"))
        .unwrap();

    // A 1 GiB octet count, trickled: the framer skips it without buffering.
    let mut trickler = connect_from("127.0.0.3", tcp).unwrap();
    trickler
        .write_all(b"1073741824 <13>1 - evil app - - - ")
        .unwrap();
    // A trailer frame that never ends.
    let mut endless = connect_from("127.0.0.3", tcp).unwrap();
    let chunk = vec![b'z'; 64 * 1024];
    let t0 = Instant::now();
    let mut sent = 0usize;
    while t0.elapsed() < Duration::from_secs(3) {
        trickler.write_all(&chunk).unwrap();
        endless.write_all(&chunk).unwrap();
        sent += chunk.len();
    }
    assert!(sent > 10 << 20, "pushed {sent} bytes each");

    // More connections than allowed (from an allowed address).
    let mut extra = Vec::new();
    for _ in 0..30 {
        if let Ok(c) = connect_from("127.0.0.3", tcp) {
            extra.push(c);
        }
    }
    good.join().unwrap();

    let recs = wait_records(&s.path("out.ndjson"), 2000, Duration::from_secs(20));
    let good_recs: Vec<&Value> = recs
        .iter()
        .filter(|r| meta(r, "host") == Some("good"))
        .collect();
    assert_eq!(good_recs.len(), 2000, "every good record arrives");
    assert!(
        recs.iter().all(|r| meta(r, "host") != Some("evil")
            || msg(r, "message").is_some_and(|m| m.len() <= 4096))
    );
    assert!(!recs.iter().any(|r| msg(r, "message") == Some("let me in")));
    assert!(
        !recs
            .iter()
            .any(|r| msg(r, "message") == Some("udp from outside"))
    );

    let refused = |reason: &str| {
        s.metric(&format!(
            "sluice_input_connections_refused_total{{input=\"tcp\",reason=\"{reason}\"}}"
        ))
    };
    assert!(wait_until(Duration::from_secs(10), || refused(
        "not_allowed"
    ) >= 1.0));
    let udp_refused =
        || s.metric("sluice_input_connections_refused_total{input=\"udp\",reason=\"not_allowed\"}");
    assert!(wait_until(Duration::from_secs(10), || udp_refused() >= 1.0));
    assert_eq!(udp_refused(), 1.0);
    // At most 10 open at once: the trickler, the endless one (and the good
    // client while it ran) leave room for at most 8 of the 30 extra.
    // The kernel completes connections before sluice accepts them: wait
    // for the acceptor to get to all of them.
    assert!(
        wait_until(Duration::from_secs(10), || refused("max_connections")
            >= 22.0),
        "{}",
        refused("max_connections")
    );
    assert!(s.metric("sluice_input_connections{input=\"tcp\"}") <= 10.0);
    // The endless frame was cut at max_message_bytes and counted.
    assert!(s.metric("sluice_input_oversize_total{input=\"tcp\"}") >= 1.0);
    // Idle connections are closed after idle_timeout and counted.
    assert!(
        wait_until(Duration::from_secs(10), || refused("idle_timeout") >= 7.0),
        "{}",
        s.scrape()
    );

    let rss = s.metric("sluice_resident_memory_bytes");
    assert!(
        rss < rss_before + 64.0 * 1024.0 * 1024.0,
        "RSS grew from {rss_before} to {rss}"
    );
    drop(extra);
    drop(trickler);
    drop(endless);
    drop(outsider);
    assert!(s.stop().success(), "sluice stayed up and exits cleanly");
}
