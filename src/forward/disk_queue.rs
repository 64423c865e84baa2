//! The disk queue of an output with `when_full = "disk"`: a journal of
//! encoded records in a directory, written by the output thread and read
//! by its delivery thread, acknowledged after delivery.
//!
//! Every record such an output accepts is appended to the journal (like
//! Vector's disk buffers and syslog-ng's reliable disk buffer) so that a
//! peer's outage, a restart or a `kill -9` of sluice loses nothing that
//! reached it: on start-up the journal is replayed from the last
//! acknowledged position (at-least-once: records delivered but not yet
//! acknowledged are sent again). A torn last entry (a crash mid-write) is
//! detected by its CRC and cut. The journal is bounded by `disk_queue_max`;
//! past it the output stops taking records from its memory queue, so the
//! pipeline blocks (nothing is dropped), and the time spent full is counted.
//!
//! Layout: `NNNNNNNNNNNNNNNNNNNN.journal` segments of up to 64 MiB, each a
//! sequence of entries `[len u32 LE][crc32 u32 LE][record bytes]` (one
//! framed record each), and `ack`, holding the segment id and offset of the
//! first record not yet delivered.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// Largest segment before a new one is started.
const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;
/// Bytes of an entry's header.
pub const HEADER: usize = 8;
/// Largest entry we accept when reading (a record longer than this is
/// corruption, not data).
const MAX_ENTRY: usize = 64 * 1024 * 1024;

/// A position in the journal: segment id and byte offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub segment: u64,
    pub offset: u64,
}

struct State {
    /// Segment ids with their sizes, oldest first (includes the one being
    /// written).
    segments: VecDeque<(u64, u64)>,
    write: File,
    write_id: u64,
    /// Where the reader is (next unread entry).
    read: Pos,
    /// Records and bytes appended but not yet acknowledged.
    pending_records: u64,
    pending_bytes: u64,
    closed: bool,
}

/// Recovery findings, for the log.
#[derive(Debug, Default)]
pub struct Recovered {
    pub records: u64,
    pub bytes: u64,
    /// Bytes cut from a torn last entry.
    pub torn_bytes: u64,
}

pub struct Journal {
    dir: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
    cond: Condvar,
}

fn seg_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.journal"))
}

/// Reads one entry at the file's position; None at a clean end; Err(len of
/// garbage) when the entry is torn or corrupt.
fn read_entry(f: &mut File, buf: &mut Vec<u8>) -> io::Result<Option<Result<usize, ()>>> {
    let mut h = [0u8; HEADER];
    let mut got = 0;
    while got < HEADER {
        match f.read(&mut h[got..])? {
            0 if got == 0 => return Ok(None),
            0 => return Ok(Some(Err(()))),
            n => got += n,
        }
    }
    let len = u32::from_le_bytes(h[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(h[4..].try_into().expect("4 bytes"));
    if len > MAX_ENTRY {
        return Ok(Some(Err(())));
    }
    buf.resize(len, 0);
    if f.read_exact(buf).is_err() || crc32fast::hash(buf) != crc {
        return Ok(Some(Err(())));
    }
    Ok(Some(Ok(len)))
}

impl Journal {
    /// Opens (creating) the journal in `dir`, recovering what a previous
    /// run left.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<(Journal, Recovered)> {
        std::fs::create_dir_all(dir)?;
        let mut ids: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                name.strip_suffix(".journal")?.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        let ack = read_ack(dir)?;
        let mut rec = Recovered::default();
        let mut segments = VecDeque::new();
        let mut buf = Vec::new();
        for (k, &id) in ids.iter().enumerate() {
            let path = seg_path(dir, id);
            if id < ack.segment {
                // Fully delivered before the crash: remove.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let mut f = OpenOptions::new().read(true).write(true).open(&path)?;
            let size = f.metadata()?.len();
            // Count what is left to deliver, and cut a torn tail.
            let mut good = 0u64;
            loop {
                match read_entry(&mut f, &mut buf)? {
                    None => break,
                    Some(Ok(len)) => {
                        if id > ack.segment || good >= ack.offset {
                            rec.records += 1;
                            rec.bytes += (len + HEADER) as u64;
                        }
                        good += (len + HEADER) as u64;
                    }
                    Some(Err(())) => break,
                }
            }
            if good < size {
                if k + 1 == ids.len() {
                    rec.torn_bytes += size - good;
                    f.set_len(good)?;
                    f.sync_all()?;
                } else {
                    // A bad entry in the middle of an older segment: keep
                    // what is before it; the rest of that segment is lost
                    // and reported.
                    rec.torn_bytes += size - good;
                    f.set_len(good)?;
                }
            }
            segments.push_back((id, good));
        }
        let write_id = segments.back().map_or(ack.segment.max(1), |s| s.0);
        if segments.is_empty() {
            segments.push_back((write_id, 0));
        }
        let write = OpenOptions::new()
            .create(true)
            .append(true)
            .open(seg_path(dir, write_id))?;
        let read = if segments.front().is_some_and(|s| s.0 == ack.segment) {
            ack
        } else {
            Pos {
                segment: segments.front().map_or(write_id, |s| s.0),
                offset: 0,
            }
        };
        let j = Journal {
            dir: dir.to_path_buf(),
            max_bytes,
            state: Mutex::new(State {
                segments,
                write,
                write_id,
                read,
                pending_records: rec.records,
                pending_bytes: rec.bytes,
                closed: false,
            }),
            cond: Condvar::new(),
        };
        Ok((j, rec))
    }

    /// Records and bytes waiting for delivery.
    pub fn pending(&self) -> (u64, u64) {
        let s = self.state.lock();
        (s.pending_records, s.pending_bytes)
    }

    /// Appends the records of `buf` (ending at `ends`). Returns false,
    /// writing nothing, when the journal is at its size limit.
    pub fn append(&self, buf: &[u8], ends: &[usize], scratch: &mut Vec<u8>) -> io::Result<bool> {
        if ends.is_empty() {
            return Ok(true);
        }
        scratch.clear();
        let mut start = 0;
        for &end in ends {
            let rec = &buf[start..end];
            scratch.extend_from_slice(&(rec.len() as u32).to_le_bytes());
            scratch.extend_from_slice(&crc32fast::hash(rec).to_le_bytes());
            scratch.extend_from_slice(rec);
            start = end;
        }
        let mut s = self.state.lock();
        if s.pending_bytes > 0 && s.pending_bytes + scratch.len() as u64 > self.max_bytes {
            return Ok(false);
        }
        if s.segments.back().is_some_and(|b| b.1 >= SEGMENT_BYTES) {
            let id = s.write_id + 1;
            s.write.sync_data()?;
            s.write = OpenOptions::new()
                .create(true)
                .append(true)
                .open(seg_path(&self.dir, id))?;
            s.write_id = id;
            s.segments.push_back((id, 0));
        }
        s.write.write_all(scratch)?;
        if let Some(b) = s.segments.back_mut() {
            b.1 += scratch.len() as u64;
        }
        s.pending_records += ends.len() as u64;
        s.pending_bytes += scratch.len() as u64;
        drop(s);
        self.cond.notify_all();
        Ok(true)
    }

    /// Flushes written entries to stable storage.
    pub fn sync(&self) -> io::Result<()> {
        self.state.lock().write.sync_data()
    }

    /// Whether `close` was called.
    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    /// No more appends will come (shutdown): wakes the reader.
    pub fn close(&self) {
        self.state.lock().closed = true;
        self.cond.notify_all();
    }

    /// Reads up to `max` bytes of entries from the read position into
    /// `out` (records concatenated, `ends` their end offsets). Waits up to
    /// `wait` for data. Returns the position after what was read, or None
    /// when there was nothing (and, if closed, there will be nothing).
    pub fn read(
        &self,
        reader: &mut Reader,
        out: &mut Vec<u8>,
        ends: &mut Vec<usize>,
        max: usize,
        wait: Duration,
    ) -> io::Result<Option<Pos>> {
        let deadline = Instant::now() + wait;
        let (mut pos, limit) = {
            let mut s = self.state.lock();
            loop {
                let avail = s
                    .segments
                    .iter()
                    .find(|x| x.0 == s.read.segment)
                    .map_or(0, |x| x.1.saturating_sub(s.read.offset));
                let later = s.segments.iter().any(|x| x.0 > s.read.segment);
                if avail > 0 {
                    let seg_size = s
                        .segments
                        .iter()
                        .find(|x| x.0 == s.read.segment)
                        .map_or(0, |x| x.1);
                    break (s.read, seg_size);
                }
                if later {
                    // The current segment is finished: move on.
                    let next = s
                        .segments
                        .iter()
                        .find(|x| x.0 > s.read.segment)
                        .map(|x| x.0)
                        .expect("later exists");
                    s.read = Pos {
                        segment: next,
                        offset: 0,
                    };
                    continue;
                }
                if s.closed || Instant::now() >= deadline {
                    return Ok(None);
                }
                self.cond.wait_until(&mut s, deadline);
            }
        };
        reader.seek(&self.dir, pos)?;
        let f = reader.file.as_mut().expect("seek opened it");
        let mut entry = Vec::new();
        while pos.offset < limit && out.len() < max {
            match read_entry(f, &mut entry)? {
                Some(Ok(len)) => {
                    out.extend_from_slice(&entry);
                    ends.push(out.len());
                    pos.offset += (len + HEADER) as u64;
                }
                _ => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "disk queue {}: corrupt entry at offset {}",
                            seg_path(&self.dir, pos.segment).display(),
                            pos.offset
                        ),
                    ));
                }
            }
        }
        reader.at = Some(pos);
        self.state.lock().read = pos;
        Ok(Some(pos))
    }

    /// Acknowledges delivery of everything before `pos` (`records`
    /// records): persists the position and deletes finished segments.
    pub fn ack(&self, pos: Pos, records: u64, bytes: u64) -> io::Result<()> {
        write_ack(&self.dir, pos)?;
        let mut s = self.state.lock();
        s.pending_records = s.pending_records.saturating_sub(records);
        s.pending_bytes = s.pending_bytes.saturating_sub(bytes);
        while s.segments.len() > 1 && s.segments.front().is_some_and(|f| f.0 < pos.segment) {
            let (id, _) = s.segments.pop_front().expect("non-empty");
            let _ = std::fs::remove_file(seg_path(&self.dir, id));
        }
        Ok(())
    }
}

/// The delivery thread's read handle.
#[derive(Default)]
pub struct Reader {
    file: Option<File>,
    at: Option<Pos>,
}

impl Reader {
    fn seek(&mut self, dir: &Path, pos: Pos) -> io::Result<()> {
        if self.at.is_some_and(|a| a == pos) && self.file.is_some() {
            return Ok(());
        }
        if self.at.is_none_or(|a| a.segment != pos.segment) || self.file.is_none() {
            self.file = Some(File::open(seg_path(dir, pos.segment))?);
        }
        self.file
            .as_mut()
            .expect("opened")
            .seek(SeekFrom::Start(pos.offset))?;
        self.at = Some(pos);
        Ok(())
    }
}

fn read_ack(dir: &Path) -> io::Result<Pos> {
    match std::fs::read(dir.join("ack")) {
        Ok(b) if b.len() == 16 => Ok(Pos {
            segment: u64::from_le_bytes(b[..8].try_into().expect("8 bytes")),
            offset: u64::from_le_bytes(b[8..].try_into().expect("8 bytes")),
        }),
        Ok(_) => Ok(Pos::default()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Pos::default()),
        Err(e) => Err(e),
    }
}

/// Writes the ack position (16 bytes, rewritten in place; a torn write of
/// 16 bytes within one page cannot happen on Linux page-cache writes, and
/// a stale ack only means resending: at-least-once).
fn write_ack(dir: &Path, pos: Pos) -> io::Result<()> {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&pos.segment.to_le_bytes());
    b[8..].copy_from_slice(&pos.offset.to_le_bytes());
    let mut f = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(dir.join("ack"))?;
    f.write_all(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(j: &Journal, recs: &[&str]) {
        let mut buf = Vec::new();
        let mut ends = Vec::new();
        for r in recs {
            buf.extend_from_slice(r.as_bytes());
            ends.push(buf.len());
        }
        assert!(j.append(&buf, &ends, &mut Vec::new()).unwrap());
    }

    fn read_all(j: &Journal, r: &mut Reader) -> (Vec<String>, Option<Pos>) {
        let mut out = Vec::new();
        let mut ends = Vec::new();
        let pos = j
            .read(r, &mut out, &mut ends, 1 << 20, Duration::from_millis(10))
            .unwrap();
        let mut v = Vec::new();
        let mut start = 0;
        for e in ends {
            v.push(String::from_utf8(out[start..e].to_vec()).unwrap());
            start = e;
        }
        (v, pos)
    }

    #[test]
    fn records_come_back_in_order_and_acked_ones_do_not_return_after_restart() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (j, _) = Journal::open(dir.path(), 1 << 30).unwrap();
            append(&j, &["a\n", "b\n"]);
            append(&j, &["c\n"]);
            let mut r = Reader::default();
            let (got, pos) = read_all(&j, &mut r);
            assert_eq!(got, ["a\n", "b\n", "c\n"]);
            // Deliver only a and b: ack the position after b.
            let after_b = Pos {
                segment: pos.unwrap().segment,
                offset: 2 * (HEADER as u64 + 2),
            };
            j.ack(after_b, 2, 2 * (HEADER as u64 + 2)).unwrap();
            append(&j, &["d\n"]);
        }
        let (j, rec) = Journal::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(rec.records, 2);
        assert_eq!(rec.torn_bytes, 0);
        let (got, _) = read_all(&j, &mut Reader::default());
        assert_eq!(got, ["c\n", "d\n"]);
    }

    #[test]
    fn a_torn_tail_is_cut_and_counted_and_earlier_records_survive() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (j, _) = Journal::open(dir.path(), 1 << 30).unwrap();
            append(&j, &["one\n", "two\n"]);
        }
        let seg = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .find(|e| e.file_name().to_string_lossy().ends_with(".journal"))
            .unwrap()
            .path();
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(&[9, 0, 0, 0, 1, 2]).unwrap(); // half a header
        drop(f);
        let (j, rec) = Journal::open(dir.path(), 1 << 30).unwrap();
        assert_eq!(rec.torn_bytes, 6);
        assert_eq!(rec.records, 2);
        let (got, _) = read_all(&j, &mut Reader::default());
        assert_eq!(got, ["one\n", "two\n"]);
    }

    #[test]
    fn the_size_limit_refuses_appends() {
        let dir = tempfile::tempdir().unwrap();
        let (j, _) = Journal::open(dir.path(), 30).unwrap();
        append(&j, &["0123456789"]);
        let buf = b"0123456789abcdefghij";
        assert!(!j.append(buf, &[buf.len()], &mut Vec::new()).unwrap());
        assert_eq!(j.pending().0, 1);
    }
}
