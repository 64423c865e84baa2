//! Tamper evidence: `verify` catches a flipped byte, a deleted block, two
//! swapped blocks, a truncated newest segment, an edited checkpoint (in
//! the archive or kept off the box), a removed segment and a block whose
//! checksum was recomputed, and names the place; an untouched archive and
//! one thinned by retention verify clean.
mod archive_support;
mod common;

use archive_support::*;
use common::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// One archive built through the pipeline: three segments (1 s windows)
/// of many small blocks, stopped cleanly. Shared by the tests, which each
/// tamper with their own copy.
struct Built {
    _keep: tempfile::TempDir,
    dir: PathBuf,
    pubkey: String,
    checkpoint_line: String,
}

fn built() -> &'static Built {
    static B: OnceLock<Built> = OnceLock::new();
    B.get_or_init(|| {
        let mut a = Arch::start(
            "block_bytes = \"2KiB\"\nsegment_span = \"1s\"\ncheckpoint_interval = \"1s\"",
        );
        let mut sent = 0;
        for burst in 0..3 {
            let mut buf = String::new();
            for i in 0..60 {
                let k = burst * 60 + i;
                buf.push_str(&windows_event(
                    k,
                    &format!("user{}", k % 7),
                    "2026-03-01T10:00:00Z",
                ));
            }
            tcp_send(a.s.addr("tcp"), buf.as_bytes());
            sent += 60;
            a.wait_durable(sent, Duration::from_secs(20));
            std::thread::sleep(Duration::from_millis(1100));
        }
        assert!(a.s.stop().success());
        let keep = tempfile::tempdir().unwrap();
        let dir = keep.path().join("arch");
        copy_dir(&a.dir(), &dir);
        let segs = segments(&dir);
        assert!(segs.len() >= 3, "one segment per burst: {segs:?}");
        for s in &segs {
            assert!(blocks(s).len() >= 3, "{s:?} holds several blocks");
        }
        let checkpoint_line = std::fs::read_to_string(dir.join("checkpoints"))
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .to_string();
        Built {
            _keep: keep,
            dir,
            pubkey: a.pubkey.clone(),
            checkpoint_line,
        }
    })
}

/// A fresh copy of the built archive.
fn copy() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("arch");
    copy_dir(&built().dir, &d);
    (t, d)
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

fn findings(out: &str) -> Vec<&str> {
    out.lines().filter(|l| l.starts_with("FINDING:")).collect()
}

fn expect_finding(dir: &Path, args: &[&str], must: &[&str]) -> String {
    let (code, out) = verify(dir, &built().pubkey, args);
    eprintln!("{out}");
    assert_eq!(code, 1, "verify must fail:\n{out}");
    let first = findings(&out)
        .first()
        .copied()
        .unwrap_or_default()
        .to_string();
    for m in must {
        assert!(first.contains(m), "first finding should name `{m}`:\n{out}");
    }
    out
}

#[test]
fn an_untouched_archive_verifies_clean() {
    let (_t, d) = copy();
    let (code, out) = verify(&d, &built().pubkey, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(findings(&out).is_empty(), "{out}");
    assert!(out.contains(": ok"), "{out}");
    // The off-box copy of the latest checkpoint is accepted too.
    let ext = d.parent().unwrap().join("ckpt.txt");
    std::fs::write(&ext, format!("{}\n", built().checkpoint_line)).unwrap();
    let (code, out) = verify(
        &d,
        &built().pubkey,
        &["--checkpoint", ext.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_flipped_byte_in_a_block_is_named() {
    let (_t, d) = copy();
    let seg = &segments(&d)[1];
    let (off, len) = blocks(seg)[2];
    let idx = block_index(seg, off);
    let mut b = std::fs::read(seg).unwrap();
    b[off + len - 20] ^= 0x40;
    std::fs::write(seg, b).unwrap();
    expect_finding(
        &d,
        &[],
        &[&format!("block #{idx} "), &name(seg), "modified"],
    );
}

#[test]
fn a_deleted_block_is_named() {
    let (_t, d) = copy();
    let seg = &segments(&d)[1];
    let (off, len) = blocks(seg)[1];
    let idx = block_index(seg, off);
    let mut b = std::fs::read(seg).unwrap();
    b.drain(off..off + len);
    std::fs::write(seg, b).unwrap();
    expect_finding(
        &d,
        &[],
        &[&format!("block #{idx} missing"), &name(seg), "removed"],
    );
}

#[test]
fn two_swapped_blocks_are_named() {
    let (_t, d) = copy();
    let seg = &segments(&d)[0];
    let bl = blocks(seg);
    let ((o1, l1), (o2, l2)) = (bl[1], bl[2]);
    let (i1, i2) = (block_index(seg, o1), block_index(seg, o2));
    let b = std::fs::read(seg).unwrap();
    let mut t = b[..o1].to_vec();
    t.extend_from_slice(&b[o2..o2 + l2]);
    t.extend_from_slice(&b[o1..o1 + l1]);
    t.extend_from_slice(&b[o2 + l2..]);
    std::fs::write(seg, t).unwrap();
    expect_finding(
        &d,
        &[],
        &[
            &format!("holds block #{i2} where block #{i1} belongs"),
            "reordered",
            &name(seg),
        ],
    );
}

#[test]
fn a_truncated_newest_segment_is_named() {
    let (_t, d) = copy();
    let segs = segments(&d);
    let seg = segs.last().unwrap();
    let bl = blocks(seg);
    let (off, _) = bl[bl.len() - 2];
    let idx = block_index(seg, off);
    let f = std::fs::OpenOptions::new().write(true).open(seg).unwrap();
    f.set_len(off as u64 + 10).unwrap();
    drop(f);
    let out = expect_finding(
        &d,
        &[],
        &[&format!("block #{idx}"), &name(seg), "truncated"],
    );
    assert!(
        out.contains("missing") || out.contains("cut short"),
        "{out}"
    );
}

#[test]
fn an_edited_checkpoint_is_caught_in_the_archive_and_off_the_box() {
    let (_t, d) = copy();
    let p = d.join("checkpoints");
    let text = std::fs::read_to_string(&p).unwrap();
    let last = text.lines().last().unwrap().to_string();
    // Claim a different root: the signature no longer holds.
    let i = last.find("root=").unwrap() + 5;
    let mut edited = last.clone();
    let c = if &last[i..i + 1] == "a" { "b" } else { "a" };
    edited.replace_range(i..i + 1, c);
    std::fs::write(&p, text.replace(&last, &edited)).unwrap();
    let n = text.lines().count();
    expect_finding(
        &d,
        &[],
        &[&format!("checkpoints:{n}"), "signature does not verify"],
    );

    let (_t2, d2) = copy();
    let ext = d2.parent().unwrap().join("offbox.txt");
    std::fs::write(&ext, edited.replace("size=", "size=1")).unwrap();
    expect_finding(
        &d2,
        &["--checkpoint", ext.to_str().unwrap()],
        &["offbox.txt", "signature does not verify"],
    );
}

#[test]
fn a_removed_segment_is_told_from_a_retention_deletion() {
    let (_t, d) = copy();
    let segs = segments(&d);
    std::fs::remove_file(&segs[1]).unwrap();
    let first = block_index(&segs[2], blocks(&segs[2])[0].0);
    expect_finding(
        &d,
        &[],
        &[
            "missing before",
            &name(&segs[2]),
            "not recorded as a retention deletion",
            &format!("#{}", first - 1),
        ],
    );
    let (_t, d) = copy();
    std::fs::remove_file(&segments(&d)[0]).unwrap();
    expect_finding(
        &d,
        &[],
        &["blocks #0..", "no retention deletion is recorded"],
    );
}

#[test]
fn a_block_rewritten_with_a_fresh_checksum_is_caught_by_the_next_blocks_link() {
    let (_t, d) = copy();
    let seg = &segments(&d)[0];
    let (off, len) = blocks(seg)[1];
    let idx = block_index(seg, off);
    let mut b = std::fs::read(seg).unwrap();
    // Change the record count field, then recompute the block checksum.
    b[off + 56] ^= 1;
    let sum = xxhash_rust::xxh3::xxh3_64(&b[off..off + len - 8]);
    b[off + len - 8..off + len].copy_from_slice(&sum.to_le_bytes());
    std::fs::write(seg, b).unwrap();
    expect_finding(&d, &[], &[&format!("block #{idx} "), "modified", "link"]);
}

#[test]
fn a_wrong_public_key_fails_every_signature() {
    let t = tempfile::tempdir().unwrap();
    let other = keygen(&t.path().join("other.pem"));
    let (_t, d) = copy();
    let (code, out) = verify(&d, &other, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("signature does not verify"), "{out}");
}

#[test]
fn retention_deletions_verify_clean_and_forged_ones_do_not() {
    let mut a = Arch::start(
        "block_bytes = \"2KiB\"\nsegment_span = \"1s\"\ncheckpoint_interval = \"1s\"\nretention = \"2s\"",
    );
    let mut sent = 0;
    let t0 = std::time::Instant::now();
    while a
        .s
        .metric("sluice_archive_retention_deleted_segments_total{output=\"archive\"}")
        < 2.0
    {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "retention never deleted two segments"
        );
        let mut buf = String::new();
        for i in 0..20 {
            buf.push_str(&windows_event(sent + i, "carol", "2026-03-01T10:00:00Z"));
        }
        tcp_send(a.s.addr("tcp"), buf.as_bytes());
        sent += 20;
        std::thread::sleep(Duration::from_millis(600));
    }
    assert!(a.s.stop().success());
    let dir = a.dir();
    let ledger = std::fs::read_to_string(dir.join("deletions")).unwrap();
    assert!(ledger.lines().count() >= 2, "{ledger}");
    let (code, out) = verify(&dir, &a.pubkey, &[]);
    assert_eq!(code, 0, "retention deletions are not tampering:\n{out}");
    assert!(out.contains("deleted by retention"), "{out}");
    // What is left is still searchable, and less than was sent.
    let left = search(&dir, &[]).len();
    assert!(left > 0 && left < sent, "{left} of {sent}");

    // Deleting the next segment by hand is tampering.
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("arch");
    copy_dir(&dir, &d);
    std::fs::remove_file(&segments(&d)[0]).unwrap();
    let (code, out) = verify(&d, &a.pubkey, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("not recorded as a retention deletion"),
        "{out}"
    );

    // So is an edited ledger entry.
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("arch");
    copy_dir(&dir, &d);
    let edited = ledger.replacen("retention_s=2", "retention_s=1", 1);
    std::fs::write(d.join("deletions"), edited).unwrap();
    let (code, out) = verify(&d, &a.pubkey, &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("deletions:1") && out.contains("signature does not verify"),
        "{out}"
    );
}
