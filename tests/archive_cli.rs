//! Bad input to `sluice archive` and to an archive output's config gets a
//! clear error naming the file, never a panic; checkpoints reach
//! `checkpoint_target` as syslog and verify as the trusted copy.
mod archive_support;
mod common;

use archive_support::*;
use common::*;
use std::process::Command;
use std::time::Duration;

/// A small archive, stopped cleanly.
fn small() -> (Arch, std::path::PathBuf) {
    let mut a = Arch::start("block_bytes = \"2KiB\"");
    let mut buf = String::new();
    for i in 0..40 {
        buf.push_str(&windows_event(i, "dave", "2026-03-01T10:00:00Z"));
    }
    tcp_send(a.s.addr("tcp"), buf.as_bytes());
    a.wait_durable(40, Duration::from_secs(20));
    assert!(a.s.stop().success());
    let d = a.dir();
    (a, d)
}

#[test]
fn a_missing_directory_is_named_by_every_command() {
    for cmd in ["verify", "search", "stats"] {
        let o = archive(&[cmd, "/no/such/archive"]);
        assert_eq!(o.status.code(), Some(2), "{cmd}");
        let e = stderr(&o);
        assert!(
            e.contains("/no/such/archive") && e.contains("no such archive"),
            "{cmd}: {e}"
        );
    }
    let t = tempfile::tempdir().unwrap();
    let o = archive(&["stats", t.path().to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not a sluice archive"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_keys_are_named() {
    let (_a, d) = small();
    let ds = d.to_str().unwrap();
    let o = archive(&["verify", ds, "--pubkey", "zz12"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--pubkey zz12"), "{}", stderr(&o));
    let t = tempfile::tempdir().unwrap();
    let junk = t.path().join("junk.pub");
    std::fs::write(&junk, "not a key\n").unwrap();
    let o = archive(&["verify", ds, "--pubkey", junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("junk.pub") && stderr(&o).contains("not an ed25519 public key"),
        "{}",
        stderr(&o)
    );
    // keygen never overwrites.
    let o = archive(&["keygen", "--out", junk.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("junk.pub"), "{}", stderr(&o));
    // A key made by openssl works as the public key file too.
    let pem = t.path().join("ossl.pem");
    let ok = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "ed25519",
            "-out",
            pem.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(ok.success());
    let o = archive(&["verify", ds, "--pubkey", pem.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "another key: findings, not an error"
    );
}

#[test]
fn keygen_writes_a_key_openssl_reads_with_the_printed_public_key() {
    let t = tempfile::tempdir().unwrap();
    let k = t.path().join("k.pem");
    let pk = keygen(&k);
    let o = Command::new("openssl")
        .args([
            "pkey",
            "-in",
            k.to_str().unwrap(),
            "-pubout",
            "-outform",
            "DER",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let der = o.stdout;
    let hex: String = der[der.len() - 32..]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(hex, pk);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&k).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn a_corrupt_segment_is_named() {
    let (a, d) = small();
    let seg = segments(&d)[0].clone();
    let segname = seg.file_name().unwrap().to_string_lossy().into_owned();
    // A damaged block in the middle: search skips it and says where.
    let (off, len) = blocks(&seg)[1];
    let mut b = std::fs::read(&seg).unwrap();
    b[off + len / 2] ^= 0xff;
    std::fs::write(&seg, &b).unwrap();
    let o = archive(&["search", d.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains(&segname) && stderr(&o).contains(&format!("offset {off}")),
        "{}",
        stderr(&o)
    );
    // A destroyed header: every command names the file.
    b[..8].copy_from_slice(b"garbage!");
    std::fs::write(&seg, &b).unwrap();
    let o = archive(&["stats", d.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(&segname) && stderr(&o).contains("bad magic"),
        "{}",
        stderr(&o)
    );
    let (code, out) = verify(&d, &a.pubkey, &[]);
    assert_eq!(code, 1);
    assert!(out.contains(&segname) && out.contains("bad magic"), "{out}");
    let o = archive(&["search", d.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains(&segname), "{}", stderr(&o));
    // A checkpoint file that is not one.
    let junk = d.join("not-a-checkpoint");
    std::fs::write(&junk, "hello\n").unwrap();
    let o = archive(&[
        "verify",
        d.to_str().unwrap(),
        "--checkpoint",
        junk.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not-a-checkpoint"), "{}", stderr(&o));
}

#[test]
fn bad_search_arguments_are_explained() {
    let (_a, d) = small();
    let o = archive(&["search", d.to_str().unwrap(), "--from", "last tuesday"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("last tuesday") && stderr(&o).contains("is not a time"),
        "{}",
        stderr(&o)
    );
    let o = archive(&["search", d.to_str().unwrap(), "--where", "TargetUserName"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("field=value"), "{}", stderr(&o));
}

#[test]
fn archive_config_errors_name_the_line_or_the_key_file() {
    let t = tempfile::tempdir().unwrap();
    let cfg = t.path().join("c.toml");
    std::fs::write(
        &cfg,
        "[[input]]\nname = \"tcp\"\ntype = \"tcp\"\nlisten = \"127.0.0.1:0\"\n\n[[output]]\nname = \"a\"\ntype = \"archive\"\npath = \"/tmp/x\"\nretention = \"0s\"\n",
    )
    .unwrap();
    let o = Command::new(bin())
        .args(["check-config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains(":6:") && e.contains("needs `signing_key`"),
        "{e}"
    );
    assert!(e.contains(":10:") && e.contains("`retention`"), "{e}");

    // A signing key that does not exist stops start-up, naming the file.
    std::fs::write(
        &cfg,
        format!(
            "[[input]]\nname = \"tcp\"\ntype = \"tcp\"\nlisten = \"127.0.0.1:0\"\n\n[[output]]\nname = \"a\"\ntype = \"archive\"\npath = \"{}/arch\"\nsigning_key = \"{}/missing.pem\"\n",
            t.path().display(),
            t.path().display()
        ),
    )
    .unwrap();
    let o = Command::new(bin())
        .args(["run", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("missing.pem") && !e.contains("panicked"), "{e}");
}

/// syslog-ng (the real peer) receiving syslog over TCP on `port` and
/// writing each message's MSG to `out`; killed on drop.
struct SyslogNg(std::process::Child);

impl SyslogNg {
    fn start(dir: &std::path::Path, port: u16, out: &std::path::Path) -> SyslogNg {
        let conf = dir.join("syslog-ng.conf");
        std::fs::write(
            &conf,
            format!(
                "@version: 3.38\nsource s {{ network(ip(\"127.0.0.1\") port({port}) transport(\"tcp\") flags(syslog-protocol)); }};\ndestination d {{ file(\"{}\" template(\"${{MESSAGE}}\\n\")); }};\nlog {{ source(s); destination(d); }};\n",
                out.display()
            ),
        )
        .unwrap();
        let child = Command::new("syslog-ng")
            .arg("-F")
            .arg("-f")
            .arg(&conf)
            .arg("-R")
            .arg(dir.join("sng.persist"))
            .arg("-p")
            .arg(dir.join("sng.pid"))
            .arg("-c")
            .arg(dir.join("sng.ctl"))
            .arg("--no-caps")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("syslog-ng (scripts/deps.sh installs it)");
        let up = wait_until(Duration::from_secs(10), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "syslog-ng did not listen on {port}");
        SyslogNg(child)
    }
}

impl Drop for SyslogNg {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn checkpoints_reach_syslog_ng_and_verify_as_the_trusted_copy() {
    let t = tempfile::tempdir().unwrap();
    let port = free_port();
    let received = t.path().join("received.txt");
    let _sng = SyslogNg::start(t.path(), port, &received);
    let mut a = Arch::start(&format!(
        "checkpoint_interval = \"1s\"\ncheckpoint_target = \"127.0.0.1:{port}\""
    ));
    tcp_send(
        a.s.addr("tcp"),
        windows_event(1, "erin", "2026-03-01T10:00:00Z").as_bytes(),
    );
    let got = wait_until(Duration::from_secs(15), || {
        std::fs::read_to_string(&received).is_ok_and(|t| t.contains("size=1 "))
    });
    assert!(got, "syslog-ng received no checkpoint");
    let text = std::fs::read_to_string(&received).unwrap();
    assert!(text.starts_with("sluice-checkpoint v=1 size=1 "), "{text}");
    assert!(wait_until(Duration::from_secs(5), || {
        a.s.metric("sluice_archive_checkpoints_forwarded_total{output=\"archive\"}") == 1.0
    }));
    assert!(a.s.stop().success());
    // The copy kept off the box is what verify trusts.
    let (code, out) = verify(
        &a.dir(),
        &a.pubkey,
        &["--checkpoint", received.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("received.txt"), "{out}");
    // ... and an archive that lost its last blocks since is caught by it,
    // even after its own checkpoints file was rewritten to match.
    let seg = segments(&a.dir()).last().unwrap().clone();
    let (off, _) = *blocks(&seg).last().unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(off as u64)
        .unwrap();
    std::fs::write(a.dir().join("checkpoints"), "").unwrap();
    let (code, out) = verify(
        &a.dir(),
        &a.pubkey,
        &["--checkpoint", received.to_str().unwrap()],
    );
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("truncated"), "{out}");
}
