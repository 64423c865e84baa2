//! `sluice archive verify`: re-derives everything an archive claims and
//! names the first block that was modified, removed, reordered or
//! truncated relative to the checkpoints it trusts.
//!
//! Receives an archive directory, a public key (or trusts the key its
//! checkpoints name, and says so) and optionally a checkpoint kept off the
//! box. Checks, in order: the signed deletion ledger (contiguous, each
//! deletion a real retention expiry), every checkpoint's signature, every
//! segment header (its place in the log, its frontier, its link), every
//! block (checksum, index, link to the block before), and the Merkle root
//! at every checkpointed size. Emits a report: notes (facts that are not
//! tampering, such as retention deletions or a torn tail not yet cut) and
//! findings (evidence of tampering or damage). Never writes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ed25519_dalek::VerifyingKey;

use super::block::BadBlock;
use super::checkpoint::{Checkpoint, Signed};
use super::merkle::{Frontier, Hash, leaf_hash};
use super::retention::Deletion;
use super::segment::{self, Header, Mapped, Step};
use super::{ArchiveError, Result, checkpoints_path, ledger_path, rfc3339, segments_dir, to_hex};

/// What verification found.
#[derive(Debug, Default)]
pub struct Report {
    pub notes: Vec<String>,
    pub findings: Vec<String>,
    pub segments: usize,
    pub blocks: u64,
    pub records: u64,
    pub checkpoints_checked: usize,
}

impl Report {
    pub fn clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// A checkpoint to compare against, and where it came from.
#[derive(Clone, Debug)]
struct Trusted {
    c: Checkpoint,
    from: String,
}

/// Verifies the archive in `dir`. `Err` only for bad input (no archive,
/// unreadable files); everything found in a readable archive is a finding.
pub fn verify(dir: &Path, pubkey: Option<VerifyingKey>, external: Option<&Path>) -> Result<Report> {
    let sdir = segments_dir(dir);
    if !dir.is_dir() {
        return Err(ArchiveError::corrupt(dir, "no such archive directory"));
    }
    if !sdir.is_dir() {
        return Err(ArchiveError::corrupt(
            dir,
            "not a sluice archive (no segments/ directory)",
        ));
    }
    let mut r = Report::default();
    let read = |p: &Path| -> Result<String> {
        match std::fs::read_to_string(p) {
            Ok(t) => Ok(t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
            Err(e) => Err(ArchiveError::io(p, e)),
        }
    };
    let ck_path = checkpoints_path(dir);
    let ck_text = read(&ck_path)?;
    let ledger_p = ledger_path(dir);
    let ledger_text = read(&ledger_p)?;

    // The key: given, or the one the archive's oldest statement names.
    let key = match pubkey {
        Some(k) => k,
        None => {
            let first = ck_text
                .lines()
                .chain(ledger_text.lines())
                .find_map(|l| Signed::parse(l).ok());
            match first.and_then(|s| VerifyingKey::from_bytes(&s.key).ok()) {
                Some(k) => {
                    r.notes.push(format!(
                        "no --pubkey given: trusting the key the archive names ({}); give --pubkey to check it is yours",
                        to_hex(&k.to_bytes())
                    ));
                    k
                }
                None => {
                    r.notes.push(
                        "no signed checkpoint and no --pubkey: only the blocks' own consistency is checked"
                            .into(),
                    );
                    return verify_with(dir, None, external, r, ck_text, ledger_text);
                }
            }
        }
    };
    verify_with(dir, Some(key), external, r, ck_text, ledger_text)
}

fn verify_with(
    dir: &Path,
    key: Option<VerifyingKey>,
    external: Option<&Path>,
    mut r: Report,
    ck_text: String,
    ledger_text: String,
) -> Result<Report> {
    let sdir = segments_dir(dir);
    let ck_path = checkpoints_path(dir);
    let ledger_p = ledger_path(dir);
    let verifies = |s: &Signed| key.as_ref().is_some_and(|k| s.verifies(k));
    let loc = |p: &Path, line: usize| format!("{}:{}", p.display(), line);

    // The deletion ledger.
    let mut base = 0u64;
    let mut base_frontier = Frontier::new();
    let mut deleted_segments: BTreeMap<String, Deletion> = BTreeMap::new();
    let mut ledger_roots: BTreeMap<u64, Hash> = BTreeMap::new();
    for (i, line) in ledger_text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = loc(&ledger_p, i + 1);
        let s = match Signed::parse(line) {
            Ok(s) => s,
            Err(e) => {
                r.findings
                    .push(format!("{at}: unreadable deletion record ({e})"));
                continue;
            }
        };
        if !verifies(&s) {
            r.findings.push(format!(
                "{at}: deletion record's signature does not verify (edited, or signed by another key)"
            ));
            continue;
        }
        let d = match Deletion::from_signed(&s) {
            Ok(d) => d,
            Err(e) => {
                r.findings.push(format!("{at}: {e}"));
                continue;
            }
        };
        if d.first != base {
            r.findings.push(format!(
                "{at}: deletion of {} covers blocks #{}..#{} but the previous deletion ended at #{base}",
                d.segment, d.first, d.end
            ));
        }
        if !d.was_expired() {
            r.findings.push(format!(
                "{at}: {} was deleted at {} although its newest record ({}) was within retention ({} s): not a retention deletion",
                d.segment,
                rfc3339(d.deleted_at),
                rfc3339(d.max_received),
                d.retention_s
            ));
        }
        match Frontier::from_peaks(d.end, d.peaks.clone()) {
            Some(f) => {
                ledger_roots.insert(d.end, f.root());
                base_frontier = f;
            }
            None => r
                .findings
                .push(format!("{at}: tree state does not match its size")),
        }
        base = d.end;
        deleted_segments.insert(d.segment.clone(), d);
    }
    if !deleted_segments.is_empty() {
        r.notes.push(format!(
            "{} segment(s) deleted by retention (blocks #0..#{}), each recorded in the signed ledger",
            deleted_segments.len(),
            base.saturating_sub(1)
        ));
    }

    // Checkpoints.
    let mut trusted: Vec<Trusted> = Vec::new();
    for (i, line) in ck_text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = loc(&ck_path, i + 1);
        match Signed::parse(line) {
            Ok(s) if verifies(&s) => match Checkpoint::from_signed(&s) {
                Ok(c) => trusted.push(Trusted { c, from: at }),
                Err(e) => r.findings.push(format!("{at}: {e}")),
            },
            Ok(_) => r.findings.push(format!(
                "{at}: checkpoint signature does not verify (edited, or signed by another key)"
            )),
            Err(e) => r
                .findings
                .push(format!("{at}: unreadable checkpoint ({e})")),
        }
    }
    let anchor = match external {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| ArchiveError::io(p, e))?;
            let line = text
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            let s = Signed::parse(line)
                .map_err(|e| ArchiveError::corrupt(p, format!("not a sluice checkpoint: {e}")))?;
            let c = Checkpoint::from_signed(&s).map_err(|e| ArchiveError::corrupt(p, e))?;
            if verifies(&s) {
                let t = Trusted {
                    c,
                    from: p.display().to_string(),
                };
                trusted.push(t.clone());
                Some(t)
            } else {
                r.findings.push(format!(
                    "{}: checkpoint signature does not verify (edited, or signed by another key)",
                    p.display()
                ));
                None
            }
        }
        None => trusted.iter().max_by_key(|t| t.c.size).cloned(),
    };
    match &anchor {
        Some(a) => r.notes.push(format!(
            "trusted checkpoint: {} blocks at {} ({})",
            a.c.size,
            rfc3339(a.c.time_ns),
            a.from
        )),
        None if external.is_none() => r
            .notes
            .push("no valid checkpoint: nothing proves what the archive held".into()),
        None => {}
    }
    let mut by_size: BTreeMap<u64, Vec<Trusted>> = BTreeMap::new();
    for t in &trusted {
        by_size.entry(t.c.size).or_default().push(t.clone());
    }
    // Checkpoints from before the retention boundary: only one at exactly
    // the boundary can still be recomputed.
    for (size, ts) in by_size.range(..=base) {
        if let Some(root) = ledger_roots.get(size) {
            for t in ts {
                r.checkpoints_checked += 1;
                if t.c.root != *root {
                    r.findings.push(format!(
                        "{}: root of the first {size} blocks differs from the one the deletion ledger recorded",
                        t.from
                    ));
                }
            }
        }
    }
    let older = by_size.range(..base).map(|(_, v)| v.len()).sum::<usize>();
    if older > 0 {
        r.notes.push(format!(
            "{older} checkpoint(s) cover only blocks deleted by retention"
        ));
    }

    // Segments and blocks.
    let segs = segment::list(&sdir)?;
    r.segments = segs.len();
    let mut expected = base;
    let mut frontier = base_frontier;
    // Leaf hashes of the blocks seen last, by index, to check each
    // block's link to the one before it even when blocks are out of order.
    let mut leaves: BTreeMap<u64, Hash> = BTreeMap::new();
    // Indexes of blocks whose own checksum failed (a broken link after
    // them is the same finding).
    let mut damaged: std::collections::HashSet<u64> = std::collections::HashSet::new();
    let mut root_mismatches = 0usize;
    let check_root = |frontier: &Frontier, r: &mut Report, mismatches: &mut usize, place: &str| {
        if let Some(ts) = by_size.get(&frontier.size()) {
            let root = frontier.root();
            for t in ts {
                r.checkpoints_checked += 1;
                if t.c.root != root {
                    *mismatches += 1;
                    if *mismatches == 1 {
                        r.findings.push(format!(
                            "the first {} blocks (through {place}) do not hash to the root of the checkpoint at {} ({}): blocks before it were modified",
                            frontier.size(),
                            rfc3339(t.c.time_ns),
                            t.from
                        ));
                    }
                }
            }
        }
    };
    let newest = segs.len().saturating_sub(1);
    for (si, sf) in segs.iter().enumerate() {
        let name = sf.name();
        if deleted_segments.contains_key(&name) {
            r.notes.push(format!(
                "{name}: deleted by retention per the ledger but still present (deletion interrupted; sluice finishes it)"
            ));
            continue;
        }
        let m = Mapped::open(&sf.path)?;
        let bytes = m.bytes();
        let (h, hlen) = match Header::parse(bytes) {
            Ok(x) => x,
            Err(e) => {
                r.findings.push(format!("{}: {e}", sf.path.display()));
                continue;
            }
        };
        let clean_so_far = r.findings.is_empty();
        if h.first_leaf > expected {
            let why = if deleted_segments.is_empty() && expected == 0 {
                "no retention deletion is recorded"
            } else {
                "not recorded as a retention deletion"
            };
            r.findings.push(format!(
                "blocks #{expected}..#{} are missing before {name} (removed; {why})",
                h.first_leaf - 1
            ));
            // Continue from the header's own tree state, so later
            // checkpoints still say whether anything else changed.
            if let Some(f) = h.frontier() {
                frontier = f;
            }
            expected = h.first_leaf;
        } else if h.first_leaf < expected {
            r.findings.push(format!(
                "{name} starts at block #{} but blocks through #{} came before it (segments overlap or were reordered)",
                h.first_leaf,
                expected - 1
            ));
        } else if clean_so_far {
            if h.peaks[..] != *frontier.peaks() {
                r.findings.push(format!(
                    "{name}: header's tree state differs from the blocks before it (earlier blocks were modified)"
                ));
            }
            if let Some(l) = h.first_leaf.checked_sub(1).and_then(|i| leaves.get(&i))
                && *l != h.prev_leaf
            {
                r.findings.push(format!(
                    "{name}: header's link does not match block #{} (the last block before it was modified)",
                    h.first_leaf - 1
                ));
            }
            if h.first_leaf == 0 && h.prev_leaf != [0; 32] {
                r.findings
                    .push(format!("{name}: first segment links to a block before #0"));
            }
        }
        // Collect the segment's blocks first, to tell reordering (the
        // missing index shows up elsewhere) from removal.
        let steps: Vec<Step<'_>> = segment::blocks(bytes, hlen, true).collect();
        let present: std::collections::HashSet<u64> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Block { view, .. } => Some(view.index),
                _ => None,
            })
            .collect();
        for step in &steps {
            match step {
                Step::Block { offset, view } => {
                    let place = format!("{name} offset {offset}");
                    if view.index == expected {
                        expected += 1;
                    } else if present.contains(&expected) || view.index < expected {
                        r.findings.push(format!(
                            "{place}: holds block #{} where block #{expected} belongs: blocks reordered{}",
                            view.index,
                            if present.contains(&expected) { "" } else { " or duplicated" }
                        ));
                        expected += 1;
                    } else {
                        r.findings.push(format!(
                            "block #{expected}{} missing: {place} holds block #{} (removed)",
                            if view.index > expected + 1 {
                                format!("..#{}", view.index - 1)
                            } else {
                                String::new()
                            },
                            view.index
                        ));
                        expected = view.index + 1;
                    }
                    // The link to the block before, wherever that block is.
                    let want_prev = if view.index == h.first_leaf {
                        Some(h.prev_leaf)
                    } else {
                        view.index
                            .checked_sub(1)
                            .and_then(|i| leaves.get(&i).copied())
                    };
                    if let Some(p) = want_prev
                        && p != view.prev
                        && !damaged.contains(&view.index.wrapping_sub(1))
                    {
                        r.findings.push(format!(
                            "block #{} was modified: its hash no longer matches the link in block #{} ({place})",
                            view.index.wrapping_sub(1),
                            view.index
                        ));
                    }
                    let leaf = leaf_hash(view.bytes);
                    frontier.push(leaf);
                    leaves.insert(view.index, leaf);
                    while leaves.len() > 256 {
                        leaves.pop_first();
                    }
                    r.blocks += 1;
                    r.records += view.records as u64;
                    check_root(
                        &frontier,
                        &mut r,
                        &mut root_mismatches,
                        &format!("block #{}", view.index),
                    );
                }
                Step::Bad { offset, error } => {
                    let place = format!("{name} offset {offset}");
                    let tail = segment::valid_block_after(bytes, *offset).is_none();
                    let covered = anchor.as_ref().is_some_and(|a| a.c.size > expected);
                    match error {
                        BadBlock::Checksum | BadBlock::Malformed(_)
                            if !(tail && si == newest && !covered) =>
                        {
                            r.findings.push(format!(
                                "block #{expected} ({place}) was modified ({error})"
                            ));
                            damaged.insert(expected);
                            if let Ok(n) = super::block::claimed_len(&bytes[*offset..])
                                && offset + n <= bytes.len()
                            {
                                let leaf = leaf_hash(&bytes[*offset..offset + n]);
                                frontier.push(leaf);
                                leaves.insert(expected, leaf);
                                expected += 1;
                                r.blocks += 1;
                                check_root(
                                    &frontier,
                                    &mut r,
                                    &mut root_mismatches,
                                    &format!("block #{}", expected - 1),
                                );
                            }
                        }
                        _ if tail && si == newest && !covered => {
                            r.notes.push(format!(
                                "{place}: torn tail ({error}; {} bytes) after the last checkpointed block: never fsynced, sluice cuts it at start-up",
                                bytes.len() - offset
                            ));
                        }
                        _ if tail && covered => {
                            r.findings.push(format!(
                                "{place}: block #{expected} is cut short ({error}): the archive was truncated (the trusted checkpoint covers {} blocks)",
                                anchor.as_ref().map_or(0, |a| a.c.size)
                            ));
                        }
                        _ => {
                            r.findings.push(format!(
                                "{place}: {error} where block #{expected} should start (bytes removed or inserted)"
                            ));
                        }
                    }
                }
            }
        }
    }
    if root_mismatches > 1 {
        r.notes.push(format!(
            "{} later checkpoint(s) also disagree with the blocks (consequences of the first finding)",
            root_mismatches - 1
        ));
    }
    if let Some(a) = &anchor
        && a.c.size > expected
    {
        r.findings.push(format!(
            "the archive ends at block #{} but the trusted checkpoint ({}) covers {} blocks: blocks #{}..#{} are missing (truncated)",
            expected as i64 - 1,
            a.from,
            a.c.size,
            expected,
            a.c.size - 1
        ));
    }
    for t in &trusted {
        if t.c.size > expected
            && anchor.as_ref().is_none_or(|a| a.from != t.from)
            && t.c.size > anchor.as_ref().map_or(0, |a| a.c.size)
        {
            r.findings.push(format!(
                "{}: checkpoint covers {} blocks, more than the archive holds ({expected})",
                t.from, t.c.size
            ));
        }
    }
    Ok(r)
}

/// The path of `dir`'s checkpoints file, for messages.
pub fn checkpoints_file(dir: &Path) -> PathBuf {
    checkpoints_path(dir)
}
