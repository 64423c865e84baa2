//! Retention: deletes whole segments whose newest record was received
//! longer than `retention` ago, oldest first, never the newest segment, and
//! records each deletion in the signed ledger (`deletions`) before the file
//! goes, so `verify` can tell a retention deletion from tampering.
//!
//! A ledger entry names the segment, the blocks it held (`first..end` in
//! the Merkle log), its receive-time range, when it was deleted under which
//! retention, and the Merkle frontier at `end` (taken from the next
//! segment's header), from which later roots are still computable:
//!
//! ```text
//! sluice-deletion v=1 segment=NAME first=0 end=120 min_received=… max_received=… deleted_at=… retention_s=… peaks=<hex>,<hex> key=<hex> sig=<hex>
//! ```

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use ed25519_dalek::SigningKey;

use super::checkpoint::{Signed, sign_line};
use super::merkle::Hash;
use super::segment::{self, Header, Mapped, Step};
use super::{ArchiveError, Result, from_hex, ledger_path, segments_dir, sync_dir, to_hex};

/// One retention deletion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deletion {
    pub segment: String,
    pub first: u64,
    pub end: u64,
    pub min_received: i64,
    pub max_received: i64,
    pub deleted_at: i64,
    pub retention_s: u64,
    pub peaks: Vec<Hash>,
}

impl Deletion {
    pub fn line(&self, key: &SigningKey) -> String {
        let peaks: Vec<String> = self.peaks.iter().map(|p| to_hex(p)).collect();
        let body = format!(
            "sluice-deletion v=1 segment={} first={} end={} min_received={} max_received={} deleted_at={} retention_s={} peaks={} key={}",
            self.segment,
            self.first,
            self.end,
            self.min_received,
            self.max_received,
            self.deleted_at,
            self.retention_s,
            if peaks.is_empty() {
                "-".to_string()
            } else {
                peaks.join(",")
            },
            to_hex(&key.verifying_key().to_bytes())
        );
        sign_line(&body, key)
    }

    pub fn from_signed(s: &Signed) -> std::result::Result<Deletion, String> {
        if s.kind != "sluice-deletion" {
            return Err(format!("a `{}` line, not a deletion", s.kind));
        }
        let p = s.get("peaks")?;
        let peaks = if p == "-" {
            Vec::new()
        } else {
            p.split(',')
                .map(|h| from_hex(h).and_then(|b| b.try_into().ok()))
                .collect::<Option<Vec<Hash>>>()
                .ok_or("peaks= is not a list of hashes")?
        };
        Ok(Deletion {
            segment: s.get("segment")?.to_string(),
            first: s.get_u64("first")?,
            end: s.get_u64("end")?,
            min_received: s.get_i64("min_received")?,
            max_received: s.get_i64("max_received")?,
            deleted_at: s.get_i64("deleted_at")?,
            retention_s: s.get_u64("retention_s")?,
            peaks,
        })
    }

    /// Whether the segment was old enough when deleted.
    pub fn was_expired(&self) -> bool {
        self.max_received
            .saturating_add((self.retention_s as i64).saturating_mul(1_000_000_000))
            <= self.deleted_at
    }
}

/// The receive-time range of a segment's blocks (`None` if it has none).
fn received_range(bytes: &[u8], header_len: usize) -> Option<(i64, i64)> {
    let mut r: Option<(i64, i64)> = None;
    for step in segment::blocks(bytes, header_len, false) {
        if let Step::Block { view, .. } = step {
            let (lo, hi) = r.unwrap_or((i64::MAX, i64::MIN));
            r = Some((lo.min(view.min_received), hi.max(view.max_received)));
        }
    }
    r
}

/// The end of the ledger: the block index where the archive now starts.
pub fn ledger_end(dir: &Path) -> u64 {
    std::fs::read_to_string(ledger_path(dir))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| Signed::parse(l).ok())
        .filter_map(|s| Deletion::from_signed(&s).ok())
        .map(|d| d.end)
        .max()
        .unwrap_or(0)
}

/// Deletes every expired segment (oldest first, never the newest) and
/// returns what was deleted.
pub fn apply(
    dir: &Path,
    retention: Duration,
    now_ns: i64,
    key: &SigningKey,
) -> Result<Vec<Deletion>> {
    let segs = segment::list(&segments_dir(dir))?;
    let cutoff = now_ns.saturating_sub(retention.as_nanos().min(i64::MAX as u128) as i64);
    let already = ledger_end(dir);
    let mut done = Vec::new();
    for pair in segs.windows(2) {
        let (seg, next) = (&pair[0], &pair[1]);
        let m = Mapped::open(&seg.path)?;
        let (h, hlen) =
            Header::parse(m.bytes()).map_err(|e| ArchiveError::corrupt(&seg.path, e))?;
        let nm = Mapped::open(&next.path)?;
        let (nh, _) =
            Header::parse(nm.bytes()).map_err(|e| ArchiveError::corrupt(&next.path, e))?;
        if nh.first_leaf <= already {
            // Recorded in the ledger, but the file was not yet removed when
            // sluice last stopped: finish the deletion.
            remove(&seg.path, dir)?;
            continue;
        }
        let (lo, hi) = received_range(m.bytes(), hlen).unwrap_or((h.created, h.created));
        if hi > cutoff {
            break;
        }
        let d = Deletion {
            segment: seg.name(),
            first: h.first_leaf,
            end: nh.first_leaf,
            min_received: lo,
            max_received: hi,
            deleted_at: now_ns,
            retention_s: retention.as_secs(),
            peaks: nh.peaks.clone(),
        };
        let lp = ledger_path(dir);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&lp)
            .map_err(|e| ArchiveError::io(&lp, e))?;
        writeln!(f, "{}", d.line(key))
            .and_then(|()| f.sync_all())
            .map_err(|e| ArchiveError::io(&lp, e))?;
        drop(m);
        remove(&seg.path, dir)?;
        done.push(d);
    }
    Ok(done)
}

fn remove(path: &Path, dir: &Path) -> Result<()> {
    std::fs::remove_file(path).map_err(|e| ArchiveError::io(path, e))?;
    sync_dir(&segments_dir(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deletion_lines_round_trip_and_tell_expiry() {
        let key = SigningKey::from_bytes(&[1; 32]);
        let d = Deletion {
            segment: "00000001-20260101T000000Z.seg".into(),
            first: 0,
            end: 3,
            min_received: 10,
            max_received: 2_000_000_000,
            deleted_at: 5_000_000_000,
            retention_s: 3,
            peaks: vec![[1; 32], [2; 32]],
        };
        let s = Signed::parse(&d.line(&key)).unwrap();
        assert!(s.verifies(&key.verifying_key()));
        let back = Deletion::from_signed(&s).unwrap();
        assert_eq!(back, d);
        assert!(back.was_expired());
        assert!(
            !Deletion {
                retention_s: 4,
                ..back
            }
            .was_expired()
        );
    }
}
