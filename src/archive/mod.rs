//! The archive: long-term, tamper-evident storage of records with fast
//! search, on one disk, with no external database.
//!
//! Receives batches from its output queue (like any output) and stores the
//! matching records, column by column, in zstd-compressed blocks of a few
//! hundred KB (`block`), each with its time range, a checksum, a link to the
//! previous block's hash and a bloom filter (`bloom`) over field values and
//! message tokens. Blocks are appended to time-partitioned segment files
//! (`segment`); block hashes are the leaves of an RFC 6962 Merkle log
//! (`merkle`) whose root is signed with ed25519 in periodic checkpoints
//! (`checkpoint`). Retention (`retention`) deletes whole expired segments
//! and records each deletion in a signed ledger. `verify`, `search` and
//! `stats` read an archive; `cli` is the `sluice archive` command group;
//! `corpus` makes the Windows-agent corpus the benchmarks use.
//!
//! The write path (`writer`) never allocates per record: every buffer,
//! dictionary and column is reused from block to block. It never drops a
//! record silently, and a block counts as stored only once fsynced.

pub mod block;
pub mod bloom;
pub mod checkpoint;
pub mod cli;
pub mod corpus;
pub mod merkle;
pub mod retention;
pub mod search;
pub mod segment;
pub mod verify;
pub mod writer;

use std::path::{Path, PathBuf};

/// Everything that can go wrong reading or writing an archive. Every
/// message names the file.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {msg}")]
    Corrupt { path: PathBuf, msg: String },
    #[error("{0}")]
    Other(String),
}

impl ArchiveError {
    pub fn io(path: &Path, source: std::io::Error) -> ArchiveError {
        ArchiveError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
    pub fn corrupt(path: &Path, msg: impl Into<String>) -> ArchiveError {
        ArchiveError::Corrupt {
            path: path.to_path_buf(),
            msg: msg.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, ArchiveError>;

/// Where segment files live inside an archive directory.
pub fn segments_dir(dir: &Path) -> PathBuf {
    dir.join("segments")
}

/// The append-only file of signed checkpoints, one per line.
pub fn checkpoints_path(dir: &Path) -> PathBuf {
    dir.join("checkpoints")
}

/// The append-only signed ledger of retention deletions, one per line.
pub fn ledger_path(dir: &Path) -> PathBuf {
    dir.join("deletions")
}

/// Lower-case hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// Bytes from hex (either case); `None` if not hex.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    let s = s.trim();
    if !s.len().is_multiple_of(2) {
        return None;
    }
    let nib = |c: u8| -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            b'A'..=b'F' => Some(c - b'A' + 10),
            _ => None,
        }
    };
    s.as_bytes()
        .chunks(2)
        .map(|p| Some(nib(p[0])? << 4 | nib(p[1])?))
        .collect()
}

/// LEB128 varints and zigzag, for the compact columns inside blocks.
pub mod varint {
    #[inline]
    pub fn put(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    #[inline]
    pub fn put_i(out: &mut Vec<u8>, v: i64) {
        put(out, ((v << 1) ^ (v >> 63)) as u64);
    }

    /// Reads a varint at `*pos`; `None` when the bytes end first.
    #[inline]
    pub fn get(buf: &[u8], pos: &mut usize) -> Option<u64> {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let b = *buf.get(*pos)?;
            *pos += 1;
            if shift > 63 {
                return None;
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Some(v);
            }
            shift += 7;
        }
    }

    #[inline]
    pub fn get_i(buf: &[u8], pos: &mut usize) -> Option<i64> {
        let u = get(buf, pos)?;
        Some(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
}

/// Unix nanoseconds now.
pub fn now_ns() -> i64 {
    crate::time::Timestamp::now().unix_ns
}

/// RFC 3339 text of a unix-nanosecond time, UTC.
pub fn rfc3339(ns: i64) -> String {
    let mut v = Vec::with_capacity(32);
    crate::time::Timestamp {
        unix_ns: ns,
        offset_min: 0,
        frac_digits: 3,
    }
    .write_rfc3339(&mut v);
    String::from_utf8(v).unwrap_or_default()
}

/// fsyncs a directory so that files created or removed in it stay so.
pub fn sync_dir(dir: &Path) -> Result<()> {
    std::fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| ArchiveError::io(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_round_trip_signed_and_unsigned() {
        let mut v = Vec::new();
        for x in [0u64, 1, 127, 128, 300, u64::MAX] {
            varint::put(&mut v, x);
        }
        for x in [0i64, -1, 1, -64, 64, i64::MIN, i64::MAX] {
            varint::put_i(&mut v, x);
        }
        let mut p = 0;
        for x in [0u64, 1, 127, 128, 300, u64::MAX] {
            assert_eq!(varint::get(&v, &mut p), Some(x));
        }
        for x in [0i64, -1, 1, -64, 64, i64::MIN, i64::MAX] {
            assert_eq!(varint::get_i(&v, &mut p), Some(x));
        }
        assert_eq!(varint::get(&v, &mut p), None);
    }

    #[test]
    fn hex_round_trips_and_rejects_junk() {
        assert_eq!(to_hex(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(from_hex("00ABff"), Some(vec![0, 0xab, 0xff]));
        assert_eq!(from_hex("0g"), None);
        assert_eq!(from_hex("abc"), None);
    }
}
