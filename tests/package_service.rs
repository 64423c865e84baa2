//! The service side of the package: sluice speaks systemd's notify
//! protocol (`Type=notify` in debian/sluice.service) on the socket named
//! by NOTIFY_SOCKET, as systemd would hand it over.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::*;

/// The next datagram on the notify socket, as text.
fn next(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 4096];
    let n = sock
        .recv(&mut buf)
        .expect("a notification within the timeout");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

fn monotonic_usec() -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as i128 * 1_000_000 + ts.tv_nsec as i128 / 1_000
}

#[test]
fn sluice_tells_the_service_manager_ready_reloading_and_stopping() {
    let sockdir = tempfile::tempdir().unwrap();
    let path = sockdir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("sluice.toml");
    let cfg = basic_config("").replace("{dir}", dir.path().to_str().unwrap());
    std::fs::write(&config_path, cfg).unwrap();
    let mut s = Sluice::start_with(
        dir,
        config_path,
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
    );

    // READY=1 comes once, after every input listens.
    let ready = next(&sock);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert!(
        ready
            .lines()
            .any(|l| l == "STATUS=receiving on 2 input(s), forwarding to 1 output(s)"),
        "{ready:?}"
    );
    std::net::TcpStream::connect(s.addr("tcp")).expect("TCP input listens once READY=1");

    // SIGHUP (systemctl reload): RELOADING=1 with the monotonic time
    // (systemd 253+ requires it), then READY=1 when the reload is done.
    let before = monotonic_usec();
    s.signal(libc::SIGHUP);
    let reloading = next(&sock);
    assert!(
        reloading.lines().any(|l| l == "RELOADING=1"),
        "{reloading:?}"
    );
    let usec: i128 = reloading
        .lines()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .expect("MONOTONIC_USEC beside RELOADING=1")
        .parse()
        .unwrap();
    assert!(
        usec >= before && usec <= monotonic_usec(),
        "MONOTONIC_USEC={usec} is not the time of the reload"
    );
    let again = next(&sock);
    assert!(again.lines().any(|l| l == "READY=1"), "{again:?}");
    assert!(
        again.lines().any(|l| l == "STATUS=config reloaded"),
        "{again:?}"
    );

    // SIGTERM (systemctl stop): STOPPING=1, then a clean exit.
    let status = s.stop();
    assert!(status.success(), "{status:?}");
    let stopping = next(&sock);
    assert!(stopping.lines().any(|l| l == "STOPPING=1"), "{stopping:?}");
}

#[test]
fn without_notify_socket_sluice_runs_and_stops_as_before() {
    let mut s = Sluice::start(&basic_config(""));
    tcp_send(s.addr("tcp"), b"<13>1 - h a - - - hello\n");
    let got = wait_records(&s.path("out.ndjson"), 1, Duration::from_secs(10));
    assert_eq!(got.len(), 1);
    assert!(s.stop().success());
    assert!(
        !s.log_text().contains("service manager"),
        "{}",
        s.log_text()
    );
}

#[test]
fn an_unreachable_notify_socket_is_logged_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("sluice.toml");
    let missing = dir.path().join("no-such-socket");
    let cfg = basic_config("").replace("{dir}", dir.path().to_str().unwrap());
    std::fs::write(&config_path, cfg).unwrap();
    let mut s = Sluice::start_with(
        dir,
        config_path,
        &[("NOTIFY_SOCKET", missing.to_str().unwrap())],
    );
    tcp_send(s.addr("tcp"), b"<13>1 - h a - - - hello\n");
    let got = wait_records(&s.path("out.ndjson"), 1, Duration::from_secs(10));
    assert_eq!(got.len(), 1, "sluice keeps working");
    assert!(s.stop().success());
    assert!(
        s.log_text()
            .contains("cannot tell the service manager ready"),
        "{}",
        s.log_text()
    );
}

#[test]
fn a_reload_of_a_broken_config_still_ends_with_ready_and_keeps_running() {
    // systemd leaves a Type=notify unit "reloading" until READY=1 comes, so
    // a refused reload must send it too, and the old config keeps working.
    let sockdir = tempfile::tempdir().unwrap();
    let path = sockdir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("sluice.toml");
    let cfg = basic_config("").replace("{dir}", dir.path().to_str().unwrap());
    std::fs::write(&config_path, cfg).unwrap();
    let mut s = Sluice::start_with(
        dir,
        config_path.clone(),
        &[("NOTIFY_SOCKET", path.to_str().unwrap())],
    );
    assert!(next(&sock).lines().any(|l| l == "READY=1"));

    std::fs::write(
        &config_path,
        "[[input]]\nname = \"x\"\ntype = \"carrier-pigeon\"\n",
    )
    .unwrap();
    s.signal(libc::SIGHUP);
    assert!(next(&sock).lines().any(|l| l == "RELOADING=1"));
    let after = next(&sock);
    assert!(after.lines().any(|l| l == "READY=1"), "{after:?}");
    assert!(
        after
            .lines()
            .any(|l| l.starts_with("STATUS=reload refused")),
        "{after:?}"
    );

    tcp_send(
        s.addr("tcp"),
        b"<13>1 - h a - - - after the refused reload\n",
    );
    let got = wait_records(&s.path("out.ndjson"), 1, Duration::from_secs(10));
    assert_eq!(got.len(), 1, "the old config keeps running");
    assert!(s.stop().success());
}
