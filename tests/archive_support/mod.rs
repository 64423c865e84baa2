//! Helpers for the archive tests: start sluice with an archive output and
//! a fresh signing key, run `sluice archive …`, and find blocks in segment
//! files by their documented layout (docs/archive.md).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::*;

/// Runs `sluice archive ARGS`.
pub fn archive(args: &[&str]) -> Output {
    let out = Command::new(bin())
        .arg("archive")
        .args(args)
        .output()
        .expect("run sluice archive");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("panicked"),
        "sluice archive {args:?} panicked:\n{err}"
    );
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Makes a key with `sluice archive keygen`; returns the public key.
pub fn keygen(path: &Path) -> String {
    let o = archive(&["keygen", "--out", path.to_str().unwrap()]);
    assert!(o.status.success(), "keygen: {}", stderr(&o));
    let pk = stdout(&o).trim().to_string();
    assert_eq!(pk.len(), 64, "public key is 64 hex digits: {pk:?}");
    pk
}

/// A running sluice with an archive output at `{dir}/arch` (beside the
/// file output `{dir}/out.ndjson` of `basic_config`).
pub struct Arch {
    pub s: Sluice,
    pub pubkey: String,
}

impl Arch {
    /// `extra` goes into the archive's `[[output]]` section.
    pub fn start(extra: &str) -> Arch {
        let dir = tempfile::tempdir().expect("tempdir");
        let pubkey = keygen(&dir.path().join("k.pem"));
        let cfg = basic_config(&format!(
            r#"
[[output]]
name = "archive"
type = "archive"
path = "{{dir}}/arch"
signing_key = "{{dir}}/k.pem"
{extra}
"#
        ))
        .replace("{dir}", dir.path().to_str().unwrap());
        let path = dir.path().join("sluice.toml");
        std::fs::write(&path, cfg).unwrap();
        Arch {
            s: Sluice::start_with(dir, path, &[]),
            pubkey,
        }
    }

    /// Starts sluice again on the same directory and config (after a stop
    /// or a kill).
    pub fn restart(&mut self) {
        let dir = std::mem::replace(&mut self.s.dir, tempfile::tempdir().unwrap());
        let cfg = self.s.config_path.clone();
        self.s = Sluice::start_with(dir, cfg, &[]);
    }

    pub fn dir(&self) -> PathBuf {
        self.s.path("arch")
    }

    pub fn durable(&self) -> f64 {
        self.s
            .metric("sluice_archive_records_total{output=\"archive\"}")
    }

    /// Waits until `n` records are durable in the archive.
    pub fn wait_durable(&self, n: usize, limit: Duration) {
        let ok = wait_until(limit, || self.durable() >= n as f64);
        assert!(ok, "archive holds {} of {n} records", self.durable());
    }
}

/// `search DIR ARGS --json`, one string per line.
pub fn search(dir: &Path, args: &[&str]) -> Vec<String> {
    let mut a = vec!["search", dir.to_str().unwrap(), "--json"];
    a.extend_from_slice(args);
    let o = archive(&a);
    assert!(o.status.success(), "search {args:?}: {}", stderr(&o));
    stdout(&o).lines().map(str::to_string).collect()
}

/// `verify DIR --pubkey K [ARGS]`: (exit code, stdout).
pub fn verify(dir: &Path, pubkey: &str, args: &[&str]) -> (i32, String) {
    let mut a = vec!["verify", dir.to_str().unwrap(), "--pubkey", pubkey];
    a.extend_from_slice(args);
    let o = archive(&a);
    (o.status.code().unwrap_or(-1), stdout(&o) + &stderr(&o))
}

/// Segment files, oldest first.
pub fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("segments"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

/// (offset, length) of every complete block in a segment file: the header
/// length is at bytes 8..12, each block starts with "SLBK" and its length.
pub fn blocks(seg: &Path) -> Vec<(usize, usize)> {
    let b = std::fs::read(seg).unwrap();
    let mut off = u32::from_le_bytes(b[8..12].try_into().unwrap()) as usize;
    let mut out = Vec::new();
    while off + 8 <= b.len() && &b[off..off + 4] == b"SLBK" {
        let len = u32::from_le_bytes(b[off + 4..off + 8].try_into().unwrap()) as usize;
        if off + len > b.len() {
            break;
        }
        out.push((off, len));
        off += len;
    }
    out
}

/// The index (position in the Merkle log) stored in a block.
pub fn block_index(seg: &Path, off: usize) -> u64 {
    let b = std::fs::read(seg).unwrap();
    u64::from_le_bytes(b[off + 16..off + 24].try_into().unwrap())
}

/// Copies an archive directory (for tampering with a copy).
pub fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst.join("segments")).unwrap();
    for e in std::fs::read_dir(src).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, dst.join(p.file_name().unwrap())).unwrap();
        }
    }
    for p in segments(src) {
        std::fs::copy(&p, dst.join("segments").join(p.file_name().unwrap())).unwrap();
    }
}

/// An RFC 5424 line carrying a Windows-agent style JSON event.
pub fn windows_event(i: usize, user: &str, ts: &str) -> String {
    format!(
        "<14>1 {ts} dc0{} agent 4{i:03} - - {{\"EventID\":4624,\"TargetUserName\":\"{user}\",\"TargetDomainName\":\"CORP\",\"IpAddress\":\"10.0.{}.{}\",\"LogonType\":3,\"Seq\":{i}}}\n",
        i % 3,
        i / 250,
        i % 250
    )
}
