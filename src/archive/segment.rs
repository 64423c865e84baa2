//! Segments: the files blocks are appended to, one per time window
//! (`segment_span`, by receive time) or per size limit.
//!
//! A segment starts with a header that records where it sits in the
//! Merkle log (the index of its first block and the tree's frontier just
//! before it), so a writer restarts by reading only its newest segment and
//! retention can drop old segments while later roots stay computable:
//!
//! ```text
//! magic "SLSEG\0\0\x01" | header_len u32 | seq u64 | first_leaf u64
//! window_start i64 | created i64 | leaf hash of the block before [32]
//! peaks (popcount(first_leaf) × 32)
//! xxh3-64 of everything before, u64
//! ```
//!
//! File names are `{seq:08}-{window start, UTC}.seg`; the sequence number
//! orders them.

use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::xxh3_64;

use super::block::{self, BadBlock, BlockView};
use super::merkle::{Frontier, Hash};
use super::{ArchiveError, Result};

pub const MAGIC: &[u8; 8] = b"SLSEG\0\0\x01";
const FIXED: usize = 8 + 4 + 8 + 8 + 8 + 8 + 32;

/// A segment's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub seq: u64,
    pub first_leaf: u64,
    pub window_start: i64,
    pub created: i64,
    /// The leaf hash of the block before this segment's first (zero for
    /// the archive's first block).
    pub prev_leaf: Hash,
    /// The Merkle frontier before this segment's first block.
    pub peaks: Vec<Hash>,
}

impl Header {
    pub fn encode(&self) -> Vec<u8> {
        let len = FIXED + self.peaks.len() * 32 + 8;
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&(len as u32).to_le_bytes());
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.extend_from_slice(&self.first_leaf.to_le_bytes());
        out.extend_from_slice(&self.window_start.to_le_bytes());
        out.extend_from_slice(&self.created.to_le_bytes());
        out.extend_from_slice(&self.prev_leaf);
        for p in &self.peaks {
            out.extend_from_slice(p);
        }
        let sum = xxh3_64(&out);
        out.extend_from_slice(&sum.to_le_bytes());
        out
    }

    /// Parses the header at the start of a segment's bytes; returns it and
    /// its length.
    pub fn parse(bytes: &[u8]) -> std::result::Result<(Header, usize), String> {
        if bytes.len() < FIXED + 8 {
            return Err(format!("segment header incomplete ({} bytes)", bytes.len()));
        }
        if &bytes[..8] != MAGIC {
            return Err("not a sluice archive segment (bad magic)".into());
        }
        let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8"));
        let len = u32::from_le_bytes(bytes[8..12].try_into().expect("4")) as usize;
        if len < FIXED + 8 || len > bytes.len() {
            return Err(format!("segment header length {len} out of range"));
        }
        let sum = u64_at(len - 8);
        if xxh3_64(&bytes[..len - 8]) != sum {
            return Err("segment header checksum mismatch".into());
        }
        let first_leaf = u64_at(20);
        let npeaks = first_leaf.count_ones() as usize;
        if FIXED + npeaks * 32 + 8 != len {
            return Err("segment header size does not match its tree state".into());
        }
        let peaks = (0..npeaks)
            .map(|i| {
                let mut h = [0u8; 32];
                h.copy_from_slice(&bytes[FIXED + i * 32..FIXED + (i + 1) * 32]);
                h
            })
            .collect();
        let mut prev_leaf = [0u8; 32];
        prev_leaf.copy_from_slice(&bytes[44..76]);
        Ok((
            Header {
                seq: u64_at(12),
                first_leaf,
                window_start: u64_at(28) as i64,
                created: u64_at(36) as i64,
                prev_leaf,
                peaks,
            },
            len,
        ))
    }

    pub fn frontier(&self) -> Option<Frontier> {
        Frontier::from_peaks(self.first_leaf, self.peaks.clone())
    }
}

/// A segment file found in an archive.
#[derive(Clone, Debug)]
pub struct SegmentFile {
    pub seq: u64,
    pub path: PathBuf,
}

impl SegmentFile {
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// The file name of segment `seq` whose window starts at `window_start`.
pub fn file_name(seq: u64, window_start: i64) -> String {
    let secs = window_start.div_euclid(1_000_000_000);
    let (y, m, d) = crate::time::civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{seq:08}-{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z.seg",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

/// The segment files of an archive, oldest first.
pub fn list(segments_dir: &Path) -> Result<Vec<SegmentFile>> {
    let rd = std::fs::read_dir(segments_dir).map_err(|e| ArchiveError::io(segments_dir, e))?;
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(|e| ArchiveError::io(segments_dir, e))?;
        let name = e.file_name();
        let name = name.to_string_lossy();
        let Some(stem) = name.strip_suffix(".seg") else {
            continue;
        };
        let Some(seq) = stem.split('-').next().and_then(|s| s.parse::<u64>().ok()) else {
            continue;
        };
        out.push(SegmentFile {
            seq,
            path: e.path(),
        });
    }
    out.sort_by_key(|s| s.seq);
    Ok(out)
}

/// A segment's bytes, memory-mapped read-only.
pub struct Mapped {
    map: Option<memmap2::Mmap>,
}

impl Mapped {
    pub fn open(path: &Path) -> Result<Mapped> {
        let f = std::fs::File::open(path).map_err(|e| ArchiveError::io(path, e))?;
        let len = f.metadata().map_err(|e| ArchiveError::io(path, e))?.len();
        if len == 0 {
            return Ok(Mapped { map: None });
        }
        // SAFETY: segments are only appended to while sluice runs (a
        // writer truncates a torn tail only at start-up, holding the
        // archive lock), so the mapped range stays valid; a file deleted
        // by retention stays mapped until dropped.
        let map = unsafe { memmap2::Mmap::map(&f) }.map_err(|e| ArchiveError::io(path, e))?;
        Ok(Mapped { map: Some(map) })
    }

    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

/// One step of walking a segment's blocks.
pub enum Step<'a> {
    Block { offset: usize, view: BlockView<'a> },
    Bad { offset: usize, error: BadBlock },
}

/// Walks the blocks after the header; after a bad block it stops, unless
/// the bad block's claimed length lands on another block (a block whose
/// contents changed but whose length did not).
pub fn blocks(bytes: &[u8], header_len: usize, check: bool) -> impl Iterator<Item = Step<'_>> {
    let mut off = header_len;
    let mut done = false;
    std::iter::from_fn(move || {
        if done || off >= bytes.len() {
            return None;
        }
        let here = off;
        match BlockView::parse(&bytes[here..], check) {
            Ok(view) => {
                off += view.bytes.len();
                Some(Step::Block { offset: here, view })
            }
            Err(error) => {
                match (&error, block::claimed_len(&bytes[here..])) {
                    (BadBlock::Checksum | BadBlock::Malformed(_), Ok(n))
                        if here + n <= bytes.len() =>
                    {
                        off += n
                    }
                    _ => done = true,
                }
                Some(Step::Bad {
                    offset: here,
                    error,
                })
            }
        }
    })
}

/// Whether a valid block starts anywhere after `from` (to tell a torn tail,
/// which has nothing valid after it, from damage in the middle).
pub fn valid_block_after(bytes: &[u8], from: usize) -> Option<usize> {
    let mut i = from + 1;
    while i + block::FIXED_HEADER <= bytes.len() {
        let j = memchr::memmem::find(&bytes[i..], block::MAGIC)?;
        let at = i + j;
        if BlockView::parse(&bytes[at..], true).is_ok() {
            return Some(at);
        }
        i = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_detects_damage() {
        let h = Header {
            seq: 3,
            first_leaf: 5,
            window_start: 1_700_000_000_000_000_000,
            created: 1_700_000_001_000_000_000,
            prev_leaf: [9; 32],
            peaks: vec![[1; 32], [2; 32]],
        };
        let b = h.encode();
        assert_eq!(Header::parse(&b).unwrap(), (h, b.len()));
        let mut bad = b.clone();
        bad[30] ^= 4;
        assert!(Header::parse(&bad).unwrap_err().contains("checksum"));
        assert!(Header::parse(&b[..20]).unwrap_err().contains("incomplete"));
    }

    #[test]
    fn file_names_sort_by_sequence_and_show_the_window() {
        assert_eq!(
            file_name(12, 1_065_910_455_003_000_000),
            "00000012-20031011T221415Z.seg"
        );
    }
}
