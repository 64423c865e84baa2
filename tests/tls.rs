//! TLS in and out (RFC 5425) with openssl as the real peer; the test makes
//! its own CA and certificates.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server certificate for 127.0.0.1/localhost, a client
/// certificate from the CA and a self-signed rogue client certificate.
fn make_pki(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=sluice test CA",
        ],
    );
    for (name, ext) in [
        ("server", "subjectAltName=IP:127.0.0.1,DNS:localhost"),
        ("client", "extendedKeyUsage=clientAuth"),
    ] {
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &format!("{name}.key"),
                "-out",
                &format!("{name}.csr"),
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.crt"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "rogue.key",
            "-out",
            "rogue.crt",
            "-days",
            "2",
            "-subj",
            "/CN=rogue",
        ],
    );
}

fn tls_input_config(dir: &Path, client_auth: bool) -> String {
    let d = dir.display();
    let ca = if client_auth {
        format!("tls_client_ca = \"{d}/ca.crt\"")
    } else {
        String::new()
    };
    basic_config("").replace(
        "[[output]]",
        &format!(
            r#"[[input]]
name = "tls"
type = "tls"
listen = "127.0.0.1:0"
tls_cert = "{d}/server.crt"
tls_key = "{d}/server.key"
{ca}

[[output]]"#
        ),
    )
}

/// Runs `openssl s_client` with `extra` args, writes `data`, keeps the
/// connection open (s_client -quiet ignores stdin EOF).
fn s_client(addr: std::net::SocketAddr, dir: &Path, extra: &[&str], data: &[u8]) -> Child {
    let mut c = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &addr.to_string(),
            "-quiet",
            "-CAfile",
            "ca.crt",
            "-verify_return_error",
        ])
        .args(extra)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_client");
    c.stdin.as_mut().unwrap().write_all(data).unwrap();
    c
}

fn octet(msg: &str) -> Vec<u8> {
    format!("{} {msg}", msg.len()).into_bytes()
}

#[test]
fn tls_input_accepts_octet_counted_messages_from_openssl() {
    let pki = tempfile::tempdir().unwrap();
    make_pki(pki.path());
    let mut s = Sluice::start(&tls_input_config(pki.path(), false));
    let mut data = octet("<13>1 - h a - - - over tls one");
    data.extend(octet("<13>1 - h a - - - over tls two"));
    let mut c = s_client(s.addr("tls"), pki.path(), &[], &data);
    let recs = wait_records(&s.path("out.ndjson"), 2, Duration::from_secs(15));
    let _ = c.kill();
    let _ = c.wait();
    assert_eq!(recs.len(), 2, "{}", s.log_text());
    assert_eq!(msg(&recs[0], "message"), Some("over tls one"));
    assert_eq!(msg(&recs[1], "message"), Some("over tls two"));
    assert_eq!(meta(&recs[0], "input"), Some("tls"));
    assert!(s.stop().success());
}

#[test]
fn with_client_auth_only_clients_with_a_certificate_from_the_ca_get_in() {
    let pki = tempfile::tempdir().unwrap();
    make_pki(pki.path());
    let mut s = Sluice::start(&tls_input_config(pki.path(), true));
    let addr = s.addr("tls");
    // No certificate, then a self-signed one: both refused and counted.
    let mut anon = s_client(addr, pki.path(), &[], &octet("<13>1 - h a - - - anonymous"));
    let mut rogue = s_client(
        addr,
        pki.path(),
        &["-cert", "rogue.crt", "-key", "rogue.key"],
        &octet("<13>1 - h a - - - rogue"),
    );
    assert!(
        wait_until(Duration::from_secs(15), || {
            s.metric(
                "sluice_input_connections_refused_total{input=\"tls\",reason=\"tls_handshake\"}",
            ) >= 2.0
        }),
        "{}",
        s.scrape()
    );
    let _ = anon.kill();
    let _ = anon.wait();
    let _ = rogue.kill();
    let _ = rogue.wait();
    let mut good = s_client(
        addr,
        pki.path(),
        &["-cert", "client.crt", "-key", "client.key"],
        &octet("<13>1 - h a - - - trusted"),
    );
    let recs = wait_records(&s.path("out.ndjson"), 1, Duration::from_secs(15));
    let _ = good.kill();
    let _ = good.wait();
    std::thread::sleep(Duration::from_millis(200));
    let recs2 = read_ndjson(&s.path("out.ndjson"));
    assert_eq!(recs.len(), 1);
    assert_eq!(
        recs2.len(),
        1,
        "only the trusted client's record: {recs2:?}"
    );
    assert_eq!(msg(&recs[0], "message"), Some("trusted"));
    assert!(s.log_text().contains("TLS handshake"));
    assert!(s.stop().success());
}

#[test]
fn tls_output_delivers_octet_counted_records_to_openssl_s_server() {
    let pki = tempfile::tempdir().unwrap();
    make_pki(pki.path());
    let port = free_port();
    let mut server = Command::new("openssl")
        .args([
            "s_server",
            "-accept",
            &format!("127.0.0.1:{port}"),
            "-cert",
            "server.crt",
            "-key",
            "server.key",
            "-quiet",
        ])
        .current_dir(pki.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl s_server");
    let got = Arc::new(Mutex::new(Vec::<u8>::new()));
    let g2 = got.clone();
    let out = server.stdout.take().unwrap();
    std::thread::spawn(move || {
        let mut r = BufReader::new(out);
        loop {
            let buf = r.fill_buf().unwrap_or(&[]);
            if buf.is_empty() {
                break;
            }
            let n = buf.len();
            g2.lock().unwrap().extend_from_slice(buf);
            r.consume(n);
        }
    });
    let d = pki.path().display();
    let mut s = Sluice::start(&basic_config(&format!(
        r#"
[[output]]
name = "tls-out"
type = "syslog"
transport = "tls"
target = "127.0.0.1:{port}"
tls_ca = "{d}/ca.crt"
format = "v2"
"#
    )));
    let mut c = std::net::TcpStream::connect(s.addr("tcp")).unwrap();
    for i in 0..50 {
        writeln!(c, "<13>1 - h a - - - secret {i}").unwrap();
    }
    let done = wait_until(Duration::from_secs(20), || {
        String::from_utf8_lossy(&got.lock().unwrap()).contains("secret 49")
    });
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        done,
        "s_server got: {}",
        String::from_utf8_lossy(&got.lock().unwrap())
    );
    // Octet-counted frames (RFC 5425 section 4.3), in order.
    let data = got.lock().unwrap().clone();
    let mut rest = &data[..];
    let mut n = 0;
    while !rest.is_empty() {
        let sp = rest.iter().position(|&b| b == b' ').unwrap();
        let len: usize = std::str::from_utf8(&rest[..sp]).unwrap().parse().unwrap();
        let frame = &rest[sp + 1..sp + 1 + len];
        assert!(String::from_utf8_lossy(frame).contains(&format!("secret {n}\"")));
        n += 1;
        rest = &rest[sp + 1 + len..];
    }
    assert_eq!(n, 50);
    assert!(s.stop().success());
}

#[test]
fn a_tls_input_with_a_missing_key_file_fails_to_start_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tls_input_config(dir.path(), false).replace("{dir}", dir.path().to_str().unwrap());
    std::fs::write(dir.path().join("c.toml"), cfg).unwrap();
    let out = Command::new(bin())
        .args(["run", "--config"])
        .arg(dir.path().join("c.toml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.crt"), "{err}");
}
