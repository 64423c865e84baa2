//! The archive writer and the archive output thread.
//!
//! [`Archive`] receives records and appends them to the open block; a full
//! block (or one whose first record is older than [`MAX_DELAY`], or one a
//! record of a new time window would join) is sealed and written to the
//! current segment with one positioned write, so a failed write is retried
//! at the same offset and never leaves half a block in the middle of a
//! file. Written blocks become durable at the next fsync (when the queue
//! runs empty, every [`SYNC_EVERY`] or [`SYNC_BYTES`]); only then do they
//! count as sent and enter a checkpoint.
//!
//! At start-up the writer takes the archive's lock, reads its newest
//! segment, checks every block after the header, and cuts a torn tail (an
//! incomplete or damaged last block with nothing valid after it: blocks
//! that were written but not yet fsynced when the machine or sluice died).
//! Damage in the middle of the file, or fewer blocks than the latest
//! checkpoint covers, stops the writer with an error naming the file: those
//! are not crash artefacts, and appending would bury the evidence.
//!
//! [`spawn`] runs an [`Archive`] as an output: it takes shared batches from
//! the output's bounded queue (so `when_full` applies as for any output),
//! keeps the output metrics (`sent` counts durable records, `bytes` stored
//! bytes, latency is receipt → durable) and adds the archive's own through
//! `Metrics::extra`. Nothing here allocates per record.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use ed25519_dalek::SigningKey;

use super::block::{BlockBuilder, BlockView};
use super::checkpoint::{Checkpoint, Signed, load_signing_key};
use super::merkle::{Frontier, Hash, leaf_hash};
use super::segment::{self, Header, Mapped, Step};
use super::{ArchiveError, Result, checkpoints_path, now_ns, segments_dir, sync_dir};
use crate::batch::SharedBatch;
use crate::config::OutputConfig;
use crate::encode::{Names, SharedNames};
use crate::matcher::Matcher;
use crate::metrics::{LocalHist, Metrics, OutputMetrics, drop_reason, record as record_latency};
use crate::record::Record;

/// A partly filled block is sealed once its oldest record is this old, so
/// a quiet archive still makes records durable and searchable quickly.
pub const MAX_DELAY: Duration = Duration::from_secs(1);
/// fsync at least this often while data keeps coming.
pub const SYNC_EVERY: Duration = Duration::from_millis(200);
/// ... or after this many bytes written.
pub const SYNC_BYTES: u64 = 32 << 20;
/// Longest wait between retries of a failed write.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// How an archive is laid out and kept (from the output's config).
#[derive(Clone, Debug)]
pub struct Settings {
    pub dir: PathBuf,
    /// Delete segments whose newest record is older than this.
    pub retention: Option<Duration>,
    pub checkpoint_interval: Duration,
    /// Receive-time window of one segment.
    pub segment_span: Duration,
    /// Raw bytes (as received) of records per block.
    pub block_bytes: usize,
    /// Start a new segment past this many stored bytes.
    pub segment_max: u64,
    /// zstd level.
    pub level: i32,
}

impl Settings {
    pub fn new(dir: PathBuf) -> Settings {
        Settings {
            dir,
            retention: None,
            checkpoint_interval: Duration::from_secs(60),
            segment_span: Duration::from_secs(3600),
            block_bytes: 256 * 1024,
            segment_max: 1 << 30,
            level: 3,
        }
    }

    pub fn from_output(cfg: &OutputConfig) -> anyhow::Result<Settings> {
        let dir = cfg
            .path
            .clone()
            .ok_or_else(|| anyhow::anyhow!("output \"{}\": needs `path`", cfg.name))?;
        let mut s = Settings::new(dir);
        s.retention = cfg.retention.map(|r| r.0).filter(|r| !r.is_zero());
        if let Some(i) = cfg.checkpoint_interval {
            s.checkpoint_interval = i.0.max(Duration::from_millis(100));
        }
        if let Some(span) = cfg.segment_span {
            s.segment_span = span.0.max(Duration::from_secs(1));
        }
        if let Some(b) = cfg.block_bytes {
            s.block_bytes = b.as_usize().max(1024);
        }
        Ok(s)
    }
}

/// The archive's own counters, shown through `Metrics::extra`.
#[derive(Default, Debug)]
pub struct Stats {
    pub records: AtomicU64,
    pub blocks: AtomicU64,
    pub raw_bytes: AtomicU64,
    pub stored_bytes: AtomicU64,
    pub tree_size: AtomicI64,
    pub segments: AtomicI64,
    pub fsyncs: AtomicU64,
    pub torn_tails: AtomicU64,
    pub torn_bytes: AtomicU64,
    pub checkpoints: AtomicU64,
    pub forwarded: AtomicU64,
    pub forward_failures: AtomicU64,
    pub deleted_segments: AtomicU64,
    pub deleted_blocks: AtomicU64,
    pub write_errors: AtomicU64,
}

impl Stats {
    /// Appends the Prometheus text for archive output `name`.
    pub fn render(&self, name: &str, out: &mut String) {
        let l = name.replace('\\', "\\\\").replace('"', "\\\"");
        let c = |x: &AtomicU64| x.load(Ordering::Relaxed);
        let g = |x: &AtomicI64| x.load(Ordering::Relaxed);
        let rows: [(&str, &str, &str, i128); 15] = [
            (
                "sluice_archive_records_total",
                "counter",
                "Records stored durably (fsynced).",
                c(&self.records) as i128,
            ),
            (
                "sluice_archive_blocks_total",
                "counter",
                "Blocks stored durably (fsynced).",
                c(&self.blocks) as i128,
            ),
            (
                "sluice_archive_raw_bytes_total",
                "counter",
                "Bytes, as received, of the records stored.",
                c(&self.raw_bytes) as i128,
            ),
            (
                "sluice_archive_stored_bytes_total",
                "counter",
                "Bytes written to segment files.",
                c(&self.stored_bytes) as i128,
            ),
            (
                "sluice_archive_tree_size",
                "gauge",
                "Blocks in the Merkle log that are durable.",
                g(&self.tree_size) as i128,
            ),
            (
                "sluice_archive_segments",
                "gauge",
                "Segment files in the archive.",
                g(&self.segments) as i128,
            ),
            (
                "sluice_archive_fsyncs_total",
                "counter",
                "fsync calls on segment files.",
                c(&self.fsyncs) as i128,
            ),
            (
                "sluice_archive_torn_tails_total",
                "counter",
                "Torn tails cut at start-up.",
                c(&self.torn_tails) as i128,
            ),
            (
                "sluice_archive_torn_tail_bytes_total",
                "counter",
                "Bytes of torn tails cut at start-up.",
                c(&self.torn_bytes) as i128,
            ),
            (
                "sluice_archive_checkpoints_total",
                "counter",
                "Signed checkpoints written.",
                c(&self.checkpoints) as i128,
            ),
            (
                "sluice_archive_checkpoints_forwarded_total",
                "counter",
                "Checkpoints sent to checkpoint_target.",
                c(&self.forwarded) as i128,
            ),
            (
                "sluice_archive_checkpoint_forward_failures_total",
                "counter",
                "Checkpoints that could not be sent.",
                c(&self.forward_failures) as i128,
            ),
            (
                "sluice_archive_retention_deleted_segments_total",
                "counter",
                "Segments deleted by retention.",
                c(&self.deleted_segments) as i128,
            ),
            (
                "sluice_archive_retention_deleted_blocks_total",
                "counter",
                "Blocks deleted by retention.",
                c(&self.deleted_blocks) as i128,
            ),
            (
                "sluice_archive_write_errors_total",
                "counter",
                "Failed writes or fsyncs (retried).",
                c(&self.write_errors) as i128,
            ),
        ];
        for (metric, kind, help, v) in rows {
            let _ = writeln!(
                out,
                "# HELP {metric} {help}\n# TYPE {metric} {kind}\n{metric}{{output=\"{l}\"}} {v}"
            );
        }
    }
}

struct OpenSegment {
    file: File,
    path: PathBuf,
    window_start: i64,
    size: u64,
}

/// What [`Archive::sync`] made durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Synced {
    pub blocks: u64,
    pub records: u64,
    pub bytes: u64,
}

/// An open archive being written.
pub struct Archive {
    s: Settings,
    key: SigningKey,
    pub stats: Arc<Stats>,
    _lock: File,
    seg: Option<OpenSegment>,
    next_seq: u64,
    frontier: Frontier,
    last_leaf: Hash,
    builder: BlockBuilder,
    block_window: i64,
    span_ns: i64,
    out: Vec<u8>,
    /// `out` holds a sealed block not yet written.
    pending: bool,
    pending_records: u64,
    pending_raw: u64,
    unsynced: Synced,
    unsynced_raw: u64,
    last_checkpoint: u64,
}

fn lock(dir: &Path) -> Result<File> {
    let p = dir.join("lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&p)
        .map_err(|e| ArchiveError::io(&p, e))?;
    // SAFETY: flock on a descriptor we own.
    let r = unsafe {
        libc::flock(
            std::os::fd::AsRawFd::as_raw_fd(&f),
            libc::LOCK_EX | libc::LOCK_NB,
        )
    };
    if r != 0 {
        return Err(ArchiveError::corrupt(
            &p,
            "another process is writing to this archive",
        ));
    }
    Ok(f)
}

/// The latest checkpoint in the archive's own file that `key` signed.
/// Reads only the file's tail: a year of checkpoints is hundreds of
/// thousands of lines, and the newest valid one is near the end.
fn latest_checkpoint(dir: &Path, key: &SigningKey) -> Option<Checkpoint> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = File::open(checkpoints_path(dir)).ok()?;
    let len = f.metadata().ok()?.len();
    let from = len.saturating_sub(64 * 1024);
    f.seek(SeekFrom::Start(from)).ok()?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    let vk = key.verifying_key();
    text.lines()
        .rev()
        .filter_map(|l| Signed::parse(l).ok())
        .filter(|s| s.verifies(&vk))
        .filter_map(|s| Checkpoint::from_signed(&s).ok())
        .max_by_key(|c| c.size)
}

impl Archive {
    /// Opens (creating if needed) the archive in `s.dir`, recovering from a
    /// crash: a torn tail of the newest segment is cut and counted.
    pub fn open(s: Settings, key: SigningKey) -> Result<Archive> {
        let dir = s.dir.clone();
        let sdir = segments_dir(&dir);
        std::fs::create_dir_all(&sdir).map_err(|e| ArchiveError::io(&sdir, e))?;
        let lock = lock(&dir)?;
        let stats = Arc::new(Stats::default());
        let mut segs = segment::list(&sdir)?;
        let mut frontier = Frontier::new();
        let mut last_leaf = [0u8; 32];
        let mut seg = None;
        let mut next_seq = 1;
        while let Some(newest) = segs.last().cloned() {
            let m = Mapped::open(&newest.path)?;
            let bytes = m.bytes();
            let (h, hlen) = match Header::parse(bytes) {
                Ok(x) => x,
                // A segment whose header never became durable: created just
                // before a crash, holds nothing.
                Err(e) if bytes.len() < 4096 => {
                    log::warn!(
                        "archive: {}: {e}; removing the unfinished segment",
                        newest.path.display()
                    );
                    stats.torn_tails.fetch_add(1, Ordering::Relaxed);
                    stats
                        .torn_bytes
                        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
                    drop(m);
                    std::fs::remove_file(&newest.path)
                        .map_err(|e| ArchiveError::io(&newest.path, e))?;
                    sync_dir(&sdir)?;
                    segs.pop();
                    continue;
                }
                Err(e) => return Err(ArchiveError::corrupt(&newest.path, e)),
            };
            let mut f = h
                .frontier()
                .ok_or_else(|| ArchiveError::corrupt(&newest.path, "bad tree state in header"))?;
            let mut prev = h.prev_leaf;
            let mut end = hlen;
            let mut torn = None;
            for step in segment::blocks(bytes, hlen, true) {
                match step {
                    Step::Block { offset, view } => {
                        if view.index != f.size() || view.prev != prev {
                            return Err(ArchiveError::corrupt(
                                &newest.path,
                                format!(
                                    "offset {offset}: block #{} does not follow block #{} (run `sluice archive verify`); refusing to append",
                                    view.index,
                                    f.size().wrapping_sub(1)
                                ),
                            ));
                        }
                        let leaf = leaf_hash(view.bytes);
                        f.push(leaf);
                        prev = leaf;
                        end = offset + view.bytes.len();
                    }
                    Step::Bad { offset, error } => {
                        if let Some(at) = segment::valid_block_after(bytes, offset) {
                            return Err(ArchiveError::corrupt(
                                &newest.path,
                                format!(
                                    "offset {offset}: {error}, but a valid block follows at offset {at}: damage, not a torn tail (run `sluice archive verify`); refusing to append"
                                ),
                            ));
                        }
                        torn = Some((offset, error));
                        break;
                    }
                }
            }
            drop(m);
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&newest.path)
                .map_err(|e| ArchiveError::io(&newest.path, e))?;
            let len = file
                .metadata()
                .map_err(|e| ArchiveError::io(&newest.path, e))?
                .len();
            if let Some((offset, error)) = torn {
                let cut = len - offset as u64;
                log::warn!(
                    "archive: {}: torn tail at offset {offset} ({error}): cut {cut} bytes that were never fsynced; {} blocks intact",
                    newest.path.display(),
                    f.size()
                );
                file.set_len(offset as u64)
                    .and_then(|()| file.sync_all())
                    .map_err(|e| ArchiveError::io(&newest.path, e))?;
                stats.torn_tails.fetch_add(1, Ordering::Relaxed);
                stats.torn_bytes.fetch_add(cut, Ordering::Relaxed);
            }
            frontier = f;
            last_leaf = prev;
            next_seq = h.seq + 1;
            seg = Some(OpenSegment {
                file,
                path: newest.path.clone(),
                window_start: h.window_start,
                size: end as u64,
            });
            break;
        }
        if let Some(c) = latest_checkpoint(&dir, &key)
            && c.size > frontier.size()
        {
            return Err(ArchiveError::corrupt(
                &checkpoints_path(&dir),
                format!(
                    "the latest checkpoint ({}) covers {} blocks but the archive holds {}: blocks are missing (run `sluice archive verify`); refusing to append",
                    super::rfc3339(c.time_ns),
                    c.size,
                    frontier.size()
                ),
            ));
        }
        stats.segments.store(segs.len() as i64, Ordering::Relaxed);
        stats
            .tree_size
            .store(frontier.size() as i64, Ordering::Relaxed);
        let last_checkpoint = latest_checkpoint(&dir, &key).map_or(u64::MAX, |c| c.size);
        let span_ns = s.segment_span.as_nanos().clamp(1, i64::MAX as u128) as i64;
        let builder = BlockBuilder::new(s.level).map_err(|e| ArchiveError::Other(e.to_string()))?;
        Ok(Archive {
            s,
            key,
            stats,
            _lock: lock,
            seg,
            next_seq,
            frontier,
            last_leaf,
            builder,
            block_window: 0,
            span_ns,
            out: Vec::with_capacity(1 << 20),
            pending: false,
            pending_records: 0,
            pending_raw: 0,
            unsynced: Synced::default(),
            unsynced_raw: 0,
            last_checkpoint,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.s.dir
    }

    /// Blocks in the log (written, durable or not).
    pub fn tree_size(&self) -> u64 {
        self.frontier.size()
    }

    /// Whether a sealed block still waits to be written (after an error).
    pub fn has_pending(&self) -> bool {
        self.pending
    }

    /// Records in the open block.
    pub fn open_records(&self) -> u32 {
        self.builder.records()
    }

    /// Records written but not yet fsynced.
    pub fn unsynced_records(&self) -> u64 {
        self.unsynced.records
    }

    pub fn unsynced_bytes(&self) -> u64 {
        self.unsynced.bytes
    }

    /// Appends one record. May seal and write the open block first; on a
    /// write error the sealed block is kept and [`Archive::write_pending`]
    /// must succeed before the next record.
    #[inline]
    pub fn add(&mut self, rec: &Record<'_>, names: &Names) -> Result<()> {
        let window = rec.received.unix_ns.div_euclid(self.span_ns);
        if !self.builder.is_empty()
            && (self.builder.raw_bytes() + rec.raw.len() as u64 > self.s.block_bytes as u64
                || window != self.block_window
                || self.builder.keys_full(rec.fields.len()))
        {
            self.seal()?;
        }
        if self.builder.is_empty() {
            self.block_window = window;
        }
        self.builder.add(rec, names);
        Ok(())
    }

    /// Whether the open block's oldest record has waited [`MAX_DELAY`].
    pub fn open_block_due(&self, now_ns: i64) -> bool {
        !self.builder.is_empty()
            && now_ns.saturating_sub(self.builder.min_received()) >= MAX_DELAY.as_nanos() as i64
    }

    /// Seals the open block (if any) and writes it.
    pub fn seal(&mut self) -> Result<()> {
        self.write_pending()?;
        if self.builder.is_empty() {
            return Ok(());
        }
        let window_start = self.block_window.saturating_mul(self.span_ns);
        let roll = match &self.seg {
            None => true,
            Some(s) => s.window_start != window_start || s.size >= self.s.segment_max,
        };
        if roll {
            self.roll(window_start)?;
        }
        let sealed = self
            .builder
            .seal(self.frontier.size(), &self.last_leaf, &mut self.out)
            .map_err(|e| ArchiveError::Other(format!("compressing a block: {e}")))?;
        self.pending = true;
        self.pending_records = sealed.records as u64;
        self.pending_raw = sealed.raw_bytes;
        self.write_pending()
    }

    /// Writes the sealed block that an earlier error left pending.
    pub fn write_pending(&mut self) -> Result<()> {
        if !self.pending {
            return Ok(());
        }
        let seg = self
            .seg
            .as_mut()
            .expect("a segment is open once a block is sealed");
        if let Err(e) = seg.file.write_all_at(&self.out, seg.size) {
            self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
            return Err(ArchiveError::io(&seg.path, e));
        }
        seg.size += self.out.len() as u64;
        let leaf = leaf_hash(&self.out);
        self.frontier.push(leaf);
        self.last_leaf = leaf;
        self.pending = false;
        self.unsynced.blocks += 1;
        self.unsynced.records += self.pending_records;
        self.unsynced.bytes += self.out.len() as u64;
        self.unsynced_raw += self.pending_raw;
        Ok(())
    }

    fn roll(&mut self, window_start: i64) -> Result<()> {
        self.sync()?;
        let sdir = segments_dir(&self.s.dir);
        let h = Header {
            seq: self.next_seq,
            first_leaf: self.frontier.size(),
            window_start,
            created: now_ns(),
            prev_leaf: self.last_leaf,
            peaks: self.frontier.peaks().to_vec(),
        };
        let path = sdir.join(segment::file_name(h.seq, window_start));
        let bytes = h.encode();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| ArchiveError::io(&path, e))?;
        file.write_all_at(&bytes, 0)
            .and_then(|()| file.sync_all())
            .map_err(|e| ArchiveError::io(&path, e))?;
        sync_dir(&sdir)?;
        self.next_seq += 1;
        self.stats.segments.fetch_add(1, Ordering::Relaxed);
        self.stats
            .stored_bytes
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.seg = Some(OpenSegment {
            file,
            path,
            window_start,
            size: bytes.len() as u64,
        });
        Ok(())
    }

    /// fsyncs what was written; returns what became durable.
    pub fn sync(&mut self) -> Result<Synced> {
        if self.unsynced.blocks == 0 {
            return Ok(Synced::default());
        }
        let seg = self.seg.as_ref().expect("blocks were written to a segment");
        if let Err(e) = seg.file.sync_data() {
            self.stats.write_errors.fetch_add(1, Ordering::Relaxed);
            return Err(ArchiveError::io(&seg.path, e));
        }
        let done = std::mem::take(&mut self.unsynced);
        let raw = std::mem::take(&mut self.unsynced_raw);
        let st = &self.stats;
        st.fsyncs.fetch_add(1, Ordering::Relaxed);
        st.blocks.fetch_add(done.blocks, Ordering::Relaxed);
        st.records.fetch_add(done.records, Ordering::Relaxed);
        st.raw_bytes.fetch_add(raw, Ordering::Relaxed);
        st.stored_bytes.fetch_add(done.bytes, Ordering::Relaxed);
        st.tree_size
            .store(self.frontier.size() as i64, Ordering::Relaxed);
        Ok(done)
    }

    /// Writes a signed checkpoint of the durable log if it grew since the
    /// last one; returns its line.
    pub fn checkpoint(&mut self) -> Result<Option<String>> {
        self.sync()?;
        let size = self.frontier.size();
        if size == self.last_checkpoint || (size == 0 && self.last_checkpoint == u64::MAX) {
            return Ok(None);
        }
        let c = Checkpoint {
            size,
            root: self.frontier.root(),
            time_ns: now_ns(),
        };
        let line = c.line(&self.key);
        let p = checkpoints_path(&self.s.dir);
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(|e| ArchiveError::io(&p, e))?;
        writeln!(f, "{line}")
            .and_then(|()| f.sync_all())
            .map_err(|e| ArchiveError::io(&p, e))?;
        self.last_checkpoint = size;
        self.stats.checkpoints.fetch_add(1, Ordering::Relaxed);
        Ok(Some(line))
    }

    /// Applies retention, if configured.
    pub fn retention(&mut self) -> Result<()> {
        let Some(r) = self.s.retention else {
            return Ok(());
        };
        let gone = super::retention::apply(&self.s.dir, r, now_ns(), &self.key)?;
        for d in &gone {
            log::info!(
                "archive: retention deleted {} (blocks #{}..#{}, newest record received {})",
                d.segment,
                d.first,
                d.end,
                super::rfc3339(d.max_received)
            );
            self.stats.deleted_segments.fetch_add(1, Ordering::Relaxed);
            self.stats
                .deleted_blocks
                .fetch_add(d.end - d.first, Ordering::Relaxed);
            self.stats.segments.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Seals, writes and fsyncs everything, and writes a final checkpoint.
    pub fn close(&mut self) -> Result<Option<String>> {
        self.seal()?;
        self.checkpoint()
    }
}

/// Reads back one block of the archive being written (tests and tools).
pub fn read_block<R>(path: &Path, offset: usize, f: impl FnOnce(&BlockView<'_>) -> R) -> Result<R> {
    let m = Mapped::open(path)?;
    let v = BlockView::parse(&m.bytes()[offset.min(m.bytes().len())..], true)
        .map_err(|e| ArchiveError::corrupt(path, format!("offset {offset}: {e}")))?;
    Ok(f(&v))
}

/// Sends checkpoints as RFC 5424 messages over TCP (one line each, LF
/// framed), from its own thread so a slow peer never stalls the writer.
fn spawn_forwarder(
    name: String,
    target: String,
    stats: Arc<Stats>,
) -> std::io::Result<crossbeam_channel::Sender<String>> {
    let (tx, rx) = crossbeam_channel::bounded::<String>(16);
    let host = hostname();
    std::thread::Builder::new()
        .name(format!("ckpt-{name}"))
        .spawn(move || {
            let mut conn: Option<std::net::TcpStream> = None;
            let limit = crate::logging::RateLimit::new(Duration::from_secs(60));
            for line in rx.iter() {
                // PRI 110: facility 13 (log audit), severity 6 (info),
                // RFC 5424 section 6.2.1.
                let mut ts = Vec::new();
                crate::time::Timestamp::now().write_rfc3339(&mut ts);
                let msg = format!(
                    "<110>1 {} {host} sluice - CHECKPOINT - {line}\n",
                    String::from_utf8_lossy(&ts)
                );
                let mut sent = false;
                for _ in 0..2 {
                    if conn.is_none() {
                        conn = std::net::ToSocketAddrs::to_socket_addrs(&target.as_str())
                            .ok()
                            .and_then(|mut a| a.next())
                            .and_then(|a| crate::forward::sinks::connect_tcp(a).ok());
                    }
                    let Some(c) = conn.as_mut() else { break };
                    if c.write_all(msg.as_bytes()).is_ok() {
                        sent = true;
                        break;
                    }
                    conn = None;
                }
                if sent {
                    stats.forwarded.fetch_add(1, Ordering::Relaxed);
                } else {
                    stats.forward_failures.fetch_add(1, Ordering::Relaxed);
                    crate::warn_limited!(
                        limit,
                        "archive \"{name}\": cannot send checkpoint to {target}; it is kept in the archive's checkpoints file"
                    );
                }
            }
        })?;
    Ok(tx)
}

fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr() as *mut libc::c_char, buf.len()) };
    if r != 0 {
        return "-".into();
    }
    let n = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let h = String::from_utf8_lossy(&buf[..n]).into_owned();
    if h.is_empty() { "-".into() } else { h }
}

/// The archives running in this process, for [`expose_metrics`]: each
/// with the output metrics it belongs to, so a pipeline shows only its own.
type Registered = (std::sync::Weak<OutputMetrics>, std::sync::Weak<Stats>);
static REGISTRY: parking_lot::Mutex<Vec<Registered>> = parking_lot::Mutex::new(Vec::new());

fn register(om: &Arc<OutputMetrics>, stats: &Arc<Stats>) {
    let mut r = REGISTRY.lock();
    r.retain(|(o, s)| o.strong_count() > 0 && s.strong_count() > 0);
    r.push((Arc::downgrade(om), Arc::downgrade(stats)));
}

/// Adds the archive metrics of `metrics`' archive outputs (those running
/// now and those a reload starts later) to its exposition, through
/// `Metrics::extra`.
pub fn expose_metrics(metrics: &Arc<Metrics>) {
    let weak = Arc::downgrade(metrics);
    metrics.extra.lock().push(Arc::new(move |out: &mut String| {
        let Some(m) = weak.upgrade() else { return };
        let live: Vec<(Arc<OutputMetrics>, Arc<Stats>)> = REGISTRY
            .lock()
            .iter()
            .filter_map(|(o, s)| Some((o.upgrade()?, s.upgrade()?)))
            .collect();
        for (om, stats) in live {
            if m.output(&om.name).is_some_and(|cur| Arc::ptr_eq(&cur, &om)) {
                stats.render(&om.name, out);
            }
        }
    }));
}

/// Starts archive output `cfg` on its own thread, fed by `rx` (the
/// output's queue). At start-up (`gate` is `None`) the archive is opened
/// here, so a bad key or a damaged archive stops sluice; a reloaded output
/// first waits for the output it replaces to finish (and release the
/// archive), then opens it.
pub fn spawn(
    cfg: &OutputConfig,
    om: Arc<OutputMetrics>,
    names: SharedNames,
    matcher: Arc<Matcher>,
    rx: Receiver<Arc<SharedBatch>>,
    shutdown_timeout: Duration,
    gate: Option<Receiver<Option<JoinHandle<()>>>>,
) -> anyhow::Result<JoinHandle<()>> {
    if cfg.when_full == crate::config::WhenFull::Disk {
        anyhow::bail!(
            "output \"{}\": when_full = \"disk\" does not apply to an archive (it is on disk already; use \"block\" or \"drop\")",
            cfg.name
        );
    }
    let s = Settings::from_output(cfg)?;
    let key_path = cfg.signing_key.clone().ok_or_else(|| {
        anyhow::anyhow!(
            "output \"{}\": type \"archive\" needs `signing_key` (make one with `sluice archive keygen --out FILE`)",
            cfg.name
        )
    })?;
    let key = load_signing_key(&key_path)
        .map_err(|e| anyhow::anyhow!("output \"{}\": signing_key {e}", cfg.name))?;
    let interval = s.checkpoint_interval;
    let target = cfg.checkpoint_target.clone();
    let mut early = match gate {
        None => Some(
            Archive::open(s.clone(), key.clone())
                .map_err(|e| anyhow::anyhow!("output \"{}\": {e}", cfg.name))?,
        ),
        Some(_) => None,
    };
    let name = cfg.name.clone();
    let thread = std::thread::Builder::new()
        .name(format!("out-{name}"))
        .spawn(move || {
            if let Some(g) = gate {
                match g.recv() {
                    Ok(Some(p)) => {
                        let _ = p.join();
                    }
                    Ok(None) => {}
                    Err(_) => return, // the reload was abandoned
                }
            }
            let mut archive = match early.take() {
                Some(a) => a,
                None => match Archive::open(s, key) {
                    Ok(a) => a,
                    Err(e) => {
                        log::error!(
                            "output \"{name}\": {e}; its records are counted as dropped (send_error)"
                        );
                        for b in rx.iter() {
                            let n = b.records(|recs| recs.iter().filter(|r| matcher.matches(r)).count());
                            om.dropped[drop_reason::SEND_ERROR].add(n as u64);
                        }
                        return;
                    }
                },
            };
            let stats = archive.stats.clone();
            register(&om, &stats);
            let forward = target.and_then(|t| {
                spawn_forwarder(name.clone(), t, stats.clone())
                    .map_err(|e| log::error!("output \"{name}\": checkpoint forwarder: {e}"))
                    .ok()
            });
            log::info!(
                "archive \"{name}\": {} open, {} blocks",
                archive.dir().display(),
                archive.tree_size()
            );
            let mut w = ArchiveLoop {
                name,
                archive: &mut archive,
                rx,
                matcher,
                names,
                m: om,
                forward,
                interval,
                shutdown_timeout,
                open_born: Vec::with_capacity(64),
                written_born: Vec::with_capacity(64),
            };
            w.run();
        })?;
    Ok(thread)
}

struct ArchiveLoop<'a> {
    name: String,
    archive: &'a mut Archive,
    rx: Receiver<Arc<SharedBatch>>,
    matcher: Arc<Matcher>,
    names: SharedNames,
    m: Arc<OutputMetrics>,
    forward: Option<crossbeam_channel::Sender<String>>,
    interval: Duration,
    shutdown_timeout: Duration,
    /// (batch born, records) still in the open block.
    open_born: Vec<(Instant, u64)>,
    /// ... written, waiting for fsync.
    written_born: Vec<(Instant, u64)>,
}

impl ArchiveLoop<'_> {
    fn m(&self) -> &OutputMetrics {
        &self.m
    }

    fn run(&mut self) {
        let hist = self.m().latency.local();
        let mut last_sync = Instant::now();
        let mut last_checkpoint = Instant::now();
        let mut last_retention: Option<Instant> = None;
        let limit = crate::logging::RateLimit::new(Duration::from_secs(10));
        loop {
            let busy = self.archive.open_records() > 0 || self.archive.unsynced_records() > 0;
            let wait = if busy {
                Duration::from_millis(50)
            } else {
                Duration::from_secs(1)
            };
            match self.rx.recv_timeout(wait.min(self.interval)) {
                Ok(b) => {
                    self.m().queue_batches.set(self.rx.len() as i64);
                    self.store(&b, None);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let deadline = Instant::now() + self.shutdown_timeout;
                    self.retry(Some(deadline), |a| a.seal());
                    self.retry(Some(deadline), |a| a.sync().map(|_| ()));
                    self.account(&hist);
                    if self.archive.has_pending() || self.archive.unsynced_records() > 0 {
                        let lost = self.archive.unsynced_records() + self.archive.pending_records;
                        self.m().dropped[drop_reason::SHUTDOWN].add(lost);
                    }
                    self.checkpoint(&limit);
                    log::info!(
                        "archive \"{}\": closed at {} blocks",
                        self.name,
                        self.archive.tree_size()
                    );
                    return;
                }
            }
            let now = now_ns();
            if self.archive.open_block_due(now) {
                self.retry(None, |a| a.seal());
                self.written_born.append(&mut self.open_born);
            }
            if self.archive.unsynced_records() > 0
                && (self.rx.is_empty()
                    || last_sync.elapsed() >= SYNC_EVERY
                    || self.archive.unsynced_bytes() >= SYNC_BYTES)
            {
                self.account(&hist);
                last_sync = Instant::now();
            }
            if last_checkpoint.elapsed() >= self.interval {
                self.checkpoint(&limit);
                last_checkpoint = Instant::now();
            }
            let every = self.interval.min(Duration::from_secs(60));
            if last_retention.is_none_or(|t| t.elapsed() >= every) {
                if let Err(e) = self.archive.retention() {
                    crate::warn_limited!(limit, "archive \"{}\": retention: {e}", self.name);
                }
                last_retention = Some(Instant::now());
            }
        }
    }

    /// Stores the matching records of one batch.
    fn store(&mut self, b: &SharedBatch, deadline: Option<Instant>) {
        let mut n = 0u64;
        let blocks_before = self.archive.tree_size();
        let names = self.names.load_full();
        b.records(|recs| {
            for r in recs {
                if !self.matcher.matches(r) {
                    continue;
                }
                if self.archive.has_pending() {
                    self.retry(deadline, |a| a.write_pending());
                }
                if let Err(e) = self.archive.add(r, &names) {
                    self.write_error(&e);
                    self.retry(deadline, |a| a.write_pending());
                }
                n += 1;
            }
        });
        if self.archive.tree_size() != blocks_before {
            // A block was sealed: what was open went into it.
            self.written_born.append(&mut self.open_born);
        }
        if n > 0 {
            self.open_born.push((b.born(), n));
        }
    }

    fn write_error(&self, e: &ArchiveError) {
        self.m().failed.inc();
        log::error!("archive \"{}\": {e}; retrying", self.name);
    }

    /// Retries `f` with backoff until it succeeds or `deadline` passes.
    fn retry(&mut self, deadline: Option<Instant>, mut f: impl FnMut(&mut Archive) -> Result<()>) {
        let mut backoff = Duration::from_millis(50);
        loop {
            match f(self.archive) {
                Ok(()) => return,
                Err(e) => {
                    if backoff == Duration::from_millis(50) || backoff >= MAX_BACKOFF {
                        self.write_error(&e);
                    } else {
                        self.m().failed.inc();
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return;
                    }
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// fsyncs and counts what became durable.
    fn account(&mut self, hist: &LocalHist) {
        let mut done = Synced::default();
        self.retry(None, |a| {
            done = a.sync()?;
            Ok(())
        });
        if done.records == 0 {
            return;
        }
        let m = &self.m;
        m.sent.add(done.records);
        m.bytes.add(done.bytes);
        let mut h = hist.lock();
        for (born, n) in self.written_born.drain(..) {
            record_latency(&mut h, born.elapsed(), n);
        }
    }

    fn checkpoint(&mut self, limit: &crate::logging::RateLimit) {
        match self.archive.checkpoint() {
            Ok(Some(line)) => {
                log::info!(
                    "archive \"{}\": checkpoint size={} records_durable={}",
                    self.name,
                    self.archive.tree_size(),
                    self.archive.stats.records.load(Ordering::Relaxed)
                );
                if let Some(f) = &self.forward
                    && f.try_send(line).is_err()
                {
                    self.archive
                        .stats
                        .forward_failures
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            Ok(None) => {}
            Err(e) => crate::warn_limited!(limit, "archive \"{}\": checkpoint: {e}", self.name),
        }
    }
}
