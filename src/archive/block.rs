//! Blocks: a few hundred KB of records, stored column by column.
//!
//! [`BlockBuilder`] receives records one at a time and appends them to
//! reusable columns: a `meta` row per record (times, PRI, flaws, ids into
//! per-block dictionaries of sender addresses, input and class names, host,
//! app, procid, msgid, and the record's field-name list), and one column
//! per field name holding that field's values. Values of one field sit
//! together, so zstd finds the repetition across records. Sealing
//! compresses each section into its own zstd frame (a search for one field
//! decompresses only that column) and writes the block:
//!
//! ```text
//! magic "SLBK" | total_len u32 | version u8, 0 u8, 0 u16 | header_len u32
//! index u64 | prev leaf hash [32] | records u32 | raw_bytes u32
//! min_ts max_ts min_received max_received (i64 unix ns)
//! bloom_blocks u32 | nsections u16 | nkeys u16
//! nsections × (kind u16, compressed u32, raw u32)
//! nkeys × (len u16, field name) | bloom (bloom_blocks × 32 bytes)
//! sections (zstd frames) | xxh3-64 of everything before, u64
//! ```
//!
//! All integers little-endian. `prev` is the leaf hash of the block before
//! (zero for block 0), so changing one block breaks the link of the next.
//! The builder never allocates per record once its buffers have grown.
//! [`BlockView`] and [`Decoded`] read blocks back (the search side, which
//! may allocate per block).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bumpalo::Bump;
use hashbrown::HashTable;
use xxhash_rust::xxh3::xxh3_64;

use super::bloom::{self, KeySet};
use super::merkle::Hash;
use super::varint;
use crate::bytes::eq_bytes;
use crate::encode::Names;
use crate::encode::json::write_ip;
use crate::record::{Fields, Record};
use crate::time::Timestamp;

pub const MAGIC: &[u8; 4] = b"SLBK";
pub const VERSION: u8 = 1;
/// Bytes before the section table.
pub const FIXED_HEADER: usize = 104;
/// The checksum trailer.
pub const TRAILER: usize = 8;

/// Section kinds that are not a field column.
pub const SEC_META: u16 = 0xFFFF;
pub const SEC_DICTS: u16 = 0xFFFE;
pub const SEC_SCHEMAS: u16 = 0xFFFD;
/// Most distinct field names in one block (the rest go to the next block).
pub const MAX_KEYS: usize = 0xF000;

/// The per-block dictionaries of the meta row, in order.
pub const DICT_IP: usize = 0;
pub const DICT_INPUT: usize = 1;
pub const DICT_CLASS: usize = 2;
pub const DICT_HOST: usize = 3;
pub const DICT_APP: usize = 4;
pub const DICT_PROCID: usize = 5;
pub const DICT_MSGID: usize = 6;
pub const NDICTS: usize = 7;
/// The names the bloom filter knows the dictionary values by (as
/// `--where` writes them).
pub const DICT_NAMES: [&str; NDICTS] = [
    "meta.src_ip",
    "meta.input",
    "meta.class",
    "meta.host",
    "meta.app",
    "meta.procid",
    "meta.msgid",
];

/// Distinct byte strings, stored once in an arena, with dense ids.
#[derive(Default)]
struct Interner {
    arena: Vec<u8>,
    spans: Vec<(u32, u32)>,
    table: HashTable<u32>,
}

impl Interner {
    fn get(&self, id: u32) -> &[u8] {
        let (s, l) = self.spans[id as usize];
        &self.arena[s as usize..(s + l) as usize]
    }

    /// The id of `bytes`, and whether it is new.
    #[inline]
    fn intern(&mut self, bytes: &[u8]) -> (u32, bool) {
        let h = xxh3_64(bytes);
        let (arena, spans) = (&self.arena, &self.spans);
        let eq = |&id: &u32| {
            let (s, l) = spans[id as usize];
            eq_bytes(&arena[s as usize..(s + l) as usize], bytes)
        };
        if let Some(&id) = self.table.find(h, eq) {
            return (id, false);
        }
        let id = self.spans.len() as u32;
        self.spans
            .push((self.arena.len() as u32, bytes.len() as u32));
        self.arena.extend_from_slice(bytes);
        let (arena, spans) = (&self.arena, &self.spans);
        self.table.insert_unique(h, id, |&i| {
            let (s, l) = spans[i as usize];
            xxh3_64(&arena[s as usize..(s + l) as usize])
        });
        (id, true)
    }

    fn len(&self) -> usize {
        self.spans.len()
    }

    fn clear(&mut self) {
        self.arena.clear();
        self.spans.clear();
        self.table.clear();
    }

    /// `count`, then each entry as `len` + bytes.
    fn write(&self, out: &mut Vec<u8>) {
        varint::put(out, self.spans.len() as u64);
        for i in 0..self.spans.len() {
            let b = self.get(i as u32);
            varint::put(out, b.len() as u64);
            out.extend_from_slice(b);
        }
    }
}

/// One field's values in a block.
#[derive(Default)]
struct Column {
    name_hash: u64,
    count: u64,
    last_len: usize,
    last_rec: u32,
    recs: Vec<u8>,
    lens: Vec<u8>,
    bytes: Vec<u8>,
}

impl Column {
    fn clear(&mut self) {
        self.count = 0;
        self.last_len = 0;
        self.last_rec = 0;
        self.recs.clear();
        self.lens.clear();
        self.bytes.clear();
    }
}

/// What a sealed block holds, for the writer's bookkeeping.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sealed {
    pub records: u32,
    pub raw_bytes: u64,
    pub min_received: i64,
    pub max_received: i64,
}

/// Builds blocks from records; reused for every block of a writer.
pub struct BlockBuilder {
    dicts: [Interner; NDICTS],
    dict_seeds: [u64; NDICTS],
    keys: Interner,
    columns: Vec<Column>,
    schemas: Interner,
    schema: Vec<u8>,
    /// Key ids of the previous record's fields, and its schema id.
    prev_kids: Vec<u32>,
    prev_schema: Option<u32>,
    /// The id each dictionary gave last.
    last_dict: [Option<u32>; NDICTS],
    meta: Vec<u8>,
    keyset: KeySet,
    records: u32,
    raw_bytes: u64,
    encoded: usize,
    prev_recv: i64,
    min_ts: i64,
    max_ts: i64,
    min_recv: i64,
    max_recv: i64,
    scratch: Vec<u8>,
    section: Vec<u8>,
    compressed: Vec<u8>,
    table: Vec<u8>,
    compressor: zstd::bulk::Compressor<'static>,
}

impl BlockBuilder {
    /// A builder compressing at zstd `level`.
    pub fn new(level: i32) -> std::io::Result<BlockBuilder> {
        Ok(BlockBuilder {
            dicts: Default::default(),
            dict_seeds: DICT_NAMES.map(|n| bloom::name_hash(n.as_bytes())),
            keys: Interner::default(),
            columns: Vec::new(),
            schemas: Interner::default(),
            schema: Vec::with_capacity(256),
            prev_kids: Vec::with_capacity(64),
            prev_schema: None,
            last_dict: [None; NDICTS],
            meta: Vec::with_capacity(64 * 1024),
            keyset: KeySet::default(),
            records: 0,
            raw_bytes: 0,
            encoded: 0,
            prev_recv: 0,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            min_recv: i64::MAX,
            max_recv: i64::MIN,
            scratch: Vec::with_capacity(64),
            section: Vec::with_capacity(64 * 1024),
            compressed: Vec::with_capacity(64 * 1024),
            table: Vec::with_capacity(4096),
            compressor: zstd::bulk::Compressor::new(level)?,
        })
    }

    pub fn records(&self) -> u32 {
        self.records
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Raw bytes (as received) of the records so far.
    pub fn raw_bytes(&self) -> u64 {
        self.raw_bytes
    }

    /// Uncompressed bytes of the columns so far.
    pub fn encoded_bytes(&self) -> usize {
        self.encoded
    }

    /// Oldest receive time in the block (`i64::MAX` when empty).
    pub fn min_received(&self) -> i64 {
        self.min_recv
    }

    /// Whether a record with `nfields` fields would overflow the key table.
    pub fn keys_full(&self, nfields: usize) -> bool {
        self.keys.len() + nfields > MAX_KEYS
    }

    #[inline]
    fn dict(&mut self, d: usize, value: &[u8]) -> u32 {
        // Consecutive records mostly share their header values: comparing
        // with the last one is cheaper than hashing.
        if let Some(last) = self.last_dict[d]
            && eq_bytes(self.dicts[d].get(last), value)
        {
            return last;
        }
        let (id, new) = self.dicts[d].intern(value);
        self.last_dict[d] = Some(id);
        if new && d != DICT_IP {
            self.keyset
                .insert(bloom::field_key(self.dict_seeds[d], value));
        }
        id
    }

    /// Appends one record; `names` gives the input and class names.
    pub fn add(&mut self, rec: &Record<'_>, names: &Names) {
        let recv = rec.received.unix_ns;
        let ts = rec.timestamp.unix_ns;
        self.min_recv = self.min_recv.min(recv);
        self.max_recv = self.max_recv.max(recv);
        self.min_ts = self.min_ts.min(ts);
        self.max_ts = self.max_ts.max(ts);
        let m0 = self.meta.len();
        varint::put_i(&mut self.meta, recv.wrapping_sub(self.prev_recv));
        self.prev_recv = recv;
        varint::put_i(&mut self.meta, ts.wrapping_sub(recv));
        let tz =
            ((rec.timestamp.offset_min as i64) << 1) ^ ((rec.timestamp.offset_min as i64) >> 63);
        varint::put(
            &mut self.meta,
            (rec.timestamp.frac_digits.min(15) as u64) | ((tz as u64) << 4),
        );
        self.meta.push(rec.pri);
        varint::put(&mut self.meta, rec.flaws as u64);

        // The sender's address: 4 or 16 bytes in the dictionary; its text
        // form goes into the bloom filter once per block.
        let mut ipb = [0u8; 16];
        let ipbytes: &[u8] = match rec.src.ip() {
            IpAddr::V4(v4) => {
                ipb[..4].copy_from_slice(&v4.octets());
                &ipb[..4]
            }
            IpAddr::V6(v6) => {
                ipb = v6.octets();
                &ipb[..]
            }
        };
        let (ip_id, new) = match self.last_dict[DICT_IP] {
            Some(last) if eq_bytes(self.dicts[DICT_IP].get(last), ipbytes) => (last, false),
            _ => self.dicts[DICT_IP].intern(ipbytes),
        };
        self.last_dict[DICT_IP] = Some(ip_id);
        if new {
            self.scratch.clear();
            write_ip(&mut self.scratch, rec.src.ip());
            self.keyset
                .insert(bloom::field_key(self.dict_seeds[DICT_IP], &self.scratch));
        }
        let ids = [
            ip_id,
            self.dict(DICT_INPUT, names.input(rec.input).as_bytes()),
            self.dict(DICT_CLASS, names.class(rec.class).as_bytes()),
            self.dict(DICT_HOST, rec.host),
            self.dict(DICT_APP, rec.app),
            self.dict(DICT_PROCID, rec.procid),
            self.dict(DICT_MSGID, rec.msgid),
        ];
        for id in ids {
            varint::put(&mut self.meta, id as u64);
        }

        let r = self.records;
        self.schema.clear();
        let fields = rec.fields.as_slice();
        // Records of one kind share their field names in order: reuse the
        // previous record's key ids (and schema) while they match.
        let mut same = fields.len() == self.prev_kids.len();
        for (i, f) in fields.iter().enumerate() {
            let prev = self.prev_kids.get(i).copied();
            let (kid, new) = match prev {
                Some(k) if eq_bytes(self.keys.get(k), f.key) => (k, false),
                _ => {
                    same = false;
                    self.keys.intern(f.key)
                }
            };
            if i < self.prev_kids.len() {
                self.prev_kids[i] = kid;
            } else {
                self.prev_kids.push(kid);
            }
            if new {
                if self.columns.len() <= kid as usize {
                    self.columns.push(Column::default());
                }
                let c = &mut self.columns[kid as usize];
                c.clear();
                c.name_hash = bloom::name_hash(f.key);
            }
            varint::put(&mut self.schema, kid as u64);
            let c = &mut self.columns[kid as usize];
            let before = c.recs.len() + c.lens.len() + c.bytes.len();
            varint::put(&mut c.recs, (r - c.last_rec) as u64);
            c.last_rec = r;
            varint::put(&mut c.lens, f.value.len() as u64);
            // A value equal to the column's previous one is in the filter.
            let repeat = c.count > 0
                && c.last_len == f.value.len()
                && eq_bytes(&c.bytes[c.bytes.len() - c.last_len..], f.value);
            c.bytes.extend_from_slice(f.value);
            c.last_len = f.value.len();
            c.count += 1;
            self.encoded += c.recs.len() + c.lens.len() + c.bytes.len() - before;
            if !repeat {
                self.keyset.insert(bloom::field_key(c.name_hash, f.value));
            }
            // Message tokens (RFC 3164/5424 free text lands in `message`);
            // other fields are indexed by whole value only.
            if f.key == b"message" {
                let ks = &mut self.keyset;
                bloom::tokens(f.value, |t| ks.insert(bloom::token_key(t)));
            }
        }
        self.prev_kids.truncate(fields.len());
        let sid = match self.prev_schema {
            Some(sid) if same => sid,
            _ => self.schemas.intern(&self.schema).0,
        };
        self.prev_schema = Some(sid);
        varint::put(&mut self.meta, sid as u64);
        self.encoded += self.meta.len() - m0;
        self.records += 1;
        self.raw_bytes += rec.raw.len() as u64;
    }

    fn compress_section(&mut self, kind: u16) -> std::io::Result<()> {
        self.compressed.clear();
        self.compressed
            .reserve(zstd::zstd_safe::compress_bound(self.section.len()));
        let n = self
            .compressor
            .compress_to_buffer(&self.section[..], &mut self.compressed)?;
        self.table.extend_from_slice(&kind.to_le_bytes());
        self.table.extend_from_slice(&(n as u32).to_le_bytes());
        self.table
            .extend_from_slice(&(self.section.len() as u32).to_le_bytes());
        Ok(())
    }

    /// Compresses the block into `out` (cleared first) as block number
    /// `index` after the block whose leaf hash is `prev`, and empties the
    /// builder.
    pub fn seal(&mut self, index: u64, prev: &Hash, out: &mut Vec<u8>) -> std::io::Result<Sealed> {
        out.clear();
        let nkeys = self.keys.len();
        let nsections = 3 + nkeys;
        // Sections are compressed into `body` first; the header goes in
        // front once their sizes are known.
        self.table.clear();
        let mut body = std::mem::take(&mut self.scratch);
        body.clear();

        self.section.clear();
        std::mem::swap(&mut self.section, &mut self.meta);
        self.compress_section(SEC_META)?;
        std::mem::swap(&mut self.section, &mut self.meta);
        body.extend_from_slice(&self.compressed);

        self.section.clear();
        for d in &self.dicts {
            d.write(&mut self.section);
        }
        self.compress_section(SEC_DICTS)?;
        body.extend_from_slice(&self.compressed);

        self.section.clear();
        self.schemas.write(&mut self.section);
        self.compress_section(SEC_SCHEMAS)?;
        body.extend_from_slice(&self.compressed);

        for k in 0..nkeys {
            self.section.clear();
            let c = &self.columns[k];
            varint::put(&mut self.section, c.count);
            varint::put(&mut self.section, c.recs.len() as u64);
            varint::put(&mut self.section, c.lens.len() as u64);
            self.section.extend_from_slice(&c.recs);
            self.section.extend_from_slice(&c.lens);
            self.section.extend_from_slice(&c.bytes);
            self.compress_section(k as u16)?;
            body.extend_from_slice(&self.compressed);
        }

        let bloom_blocks = bloom::blocks_for(self.keyset.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&0u32.to_le_bytes()); // total_len, patched below
        out.extend_from_slice(&[VERSION, 0, 0, 0]);
        out.extend_from_slice(&0u32.to_le_bytes()); // header_len, patched below
        out.extend_from_slice(&index.to_le_bytes());
        out.extend_from_slice(prev);
        out.extend_from_slice(&self.records.to_le_bytes());
        out.extend_from_slice(&(self.raw_bytes.min(u32::MAX as u64) as u32).to_le_bytes());
        for v in [self.min_ts, self.max_ts, self.min_recv, self.max_recv] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&(bloom_blocks as u32).to_le_bytes());
        out.extend_from_slice(&(nsections as u16).to_le_bytes());
        out.extend_from_slice(&(nkeys as u16).to_le_bytes());
        debug_assert_eq!(out.len(), FIXED_HEADER);
        out.extend_from_slice(&self.table);
        for k in 0..nkeys {
            let name = self.keys.get(k as u32);
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(name);
        }
        bloom::build(out, bloom_blocks, self.keyset.iter());
        let header_len = out.len() as u32;
        out[12..16].copy_from_slice(&header_len.to_le_bytes());
        out.extend_from_slice(&body);
        let total = (out.len() + TRAILER) as u32;
        out[4..8].copy_from_slice(&total.to_le_bytes());
        let sum = xxh3_64(out);
        out.extend_from_slice(&sum.to_le_bytes());
        self.scratch = body;

        let sealed = Sealed {
            records: self.records,
            raw_bytes: self.raw_bytes,
            min_received: self.min_recv,
            max_received: self.max_recv,
        };
        self.reset();
        Ok(sealed)
    }

    fn reset(&mut self) {
        for d in &mut self.dicts {
            d.clear();
        }
        self.keys.clear();
        self.schemas.clear();
        self.prev_kids.clear();
        self.prev_schema = None;
        self.last_dict = [None; NDICTS];
        self.meta.clear();
        self.keyset.clear();
        self.records = 0;
        self.raw_bytes = 0;
        self.encoded = 0;
        self.prev_recv = 0;
        self.min_ts = i64::MAX;
        self.max_ts = i64::MIN;
        self.min_recv = i64::MAX;
        self.max_recv = i64::MIN;
    }
}

/// Why bytes are not a valid block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BadBlock {
    /// Fewer bytes than the block says it has (a torn or truncated tail).
    Short { have: usize, need: usize },
    /// Not a block header at all.
    NoMagic,
    /// The bytes are all there but their checksum does not match.
    Checksum,
    /// The checksum matches but the header contradicts itself.
    Malformed(&'static str),
}

impl std::fmt::Display for BadBlock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BadBlock::Short { have, need } => {
                write!(f, "incomplete block ({have} of {need} bytes)")
            }
            BadBlock::NoMagic => write!(f, "no block header"),
            BadBlock::Checksum => write!(f, "checksum mismatch"),
            BadBlock::Malformed(m) => write!(f, "malformed block: {m}"),
        }
    }
}

/// The length a block at the start of `bytes` claims, if its header starts
/// there.
pub fn claimed_len(bytes: &[u8]) -> Result<usize, BadBlock> {
    if bytes.len() < 8 {
        return Err(BadBlock::Short {
            have: bytes.len(),
            need: FIXED_HEADER,
        });
    }
    if &bytes[..4] != MAGIC {
        return Err(BadBlock::NoMagic);
    }
    let total = u32::from_le_bytes(bytes[4..8].try_into().expect("4")) as usize;
    if total < FIXED_HEADER + TRAILER {
        return Err(BadBlock::Malformed("length shorter than a header"));
    }
    Ok(total)
}

/// A section of a block: its kind and where its frame is.
#[derive(Clone, Copy, Debug)]
pub struct Section {
    pub kind: u16,
    pub start: usize,
    pub clen: usize,
    pub rlen: usize,
}

/// A parsed block header over the block's bytes.
pub struct BlockView<'a> {
    pub bytes: &'a [u8],
    pub index: u64,
    pub prev: Hash,
    pub records: u32,
    pub raw_bytes: u32,
    pub min_ts: i64,
    pub max_ts: i64,
    pub min_received: i64,
    pub max_received: i64,
    pub bloom: &'a [u8],
    pub sections: Vec<Section>,
    pub keys: Vec<&'a [u8]>,
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4"))
}
fn le_u64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8"))
}
fn le_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes(b[at..at + 2].try_into().expect("2"))
}

impl<'a> BlockView<'a> {
    /// Parses the block at the start of `bytes`. With `check`, the
    /// checksum is verified (a search of a trusted archive may skip it).
    pub fn parse(bytes: &'a [u8], check: bool) -> Result<BlockView<'a>, BadBlock> {
        let total = claimed_len(bytes)?;
        if bytes.len() < total {
            return Err(BadBlock::Short {
                have: bytes.len(),
                need: total,
            });
        }
        let b = &bytes[..total];
        if check {
            let sum = le_u64(b, total - TRAILER);
            if xxh3_64(&b[..total - TRAILER]) != sum {
                return Err(BadBlock::Checksum);
            }
        }
        if b[8] != VERSION {
            return Err(BadBlock::Malformed("unknown version"));
        }
        let header_len = le_u32(b, 12) as usize;
        if header_len < FIXED_HEADER || header_len > total - TRAILER {
            return Err(BadBlock::Malformed("header length out of range"));
        }
        let bloom_blocks = le_u32(b, 96) as usize;
        let nsections = le_u16(b, 100) as usize;
        let nkeys = le_u16(b, 102) as usize;
        let mut at = FIXED_HEADER;
        let mut sections = Vec::with_capacity(nsections);
        let mut data = header_len;
        for _ in 0..nsections {
            if at + 10 > header_len {
                return Err(BadBlock::Malformed("section table overruns header"));
            }
            let kind = le_u16(b, at);
            let clen = le_u32(b, at + 2) as usize;
            let rlen = le_u32(b, at + 6) as usize;
            at += 10;
            if data + clen > total - TRAILER {
                return Err(BadBlock::Malformed("section overruns block"));
            }
            sections.push(Section {
                kind,
                start: data,
                clen,
                rlen,
            });
            data += clen;
        }
        let mut keys = Vec::with_capacity(nkeys);
        for _ in 0..nkeys {
            if at + 2 > header_len {
                return Err(BadBlock::Malformed("key table overruns header"));
            }
            let l = le_u16(b, at) as usize;
            at += 2;
            if at + l > header_len {
                return Err(BadBlock::Malformed("key name overruns header"));
            }
            keys.push(&b[at..at + l]);
            at += l;
        }
        if at + bloom_blocks * 32 != header_len {
            return Err(BadBlock::Malformed("bloom filter size"));
        }
        let mut prev = [0u8; 32];
        prev.copy_from_slice(&b[24..56]);
        Ok(BlockView {
            bytes: b,
            index: le_u64(b, 16),
            prev,
            records: le_u32(b, 56),
            raw_bytes: le_u32(b, 60),
            min_ts: le_u64(b, 64) as i64,
            max_ts: le_u64(b, 72) as i64,
            min_received: le_u64(b, 80) as i64,
            max_received: le_u64(b, 88) as i64,
            bloom: &b[at..header_len],
            sections,
            keys,
        })
    }

    /// The id of the column for field `name`.
    pub fn key_id(&self, name: &[u8]) -> Option<u16> {
        self.keys.iter().position(|k| *k == name).map(|i| i as u16)
    }

    /// Decompresses section `kind` into `out`.
    pub fn section(&self, kind: u16, out: &mut Vec<u8>) -> Result<bool, String> {
        let Some(s) = self.sections.iter().find(|s| s.kind == kind) else {
            return Ok(false);
        };
        out.clear();
        out.reserve(s.rlen);
        let frame = &self.bytes[s.start..s.start + s.clen];
        // One decompression context per thread: creating one costs more
        // than decompressing a small column.
        thread_local! {
            static DCTX: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
                const { std::cell::RefCell::new(None) };
        }
        let n = DCTX
            .with(|d| {
                let mut d = d.borrow_mut();
                if d.is_none() {
                    *d = Some(zstd::bulk::Decompressor::new()?);
                }
                d.as_mut()
                    .expect("set above")
                    .decompress_to_buffer(frame, out)
            })
            .map_err(|e| format!("section {kind}: {e}"))?;
        if n != s.rlen {
            return Err(format!("section {kind}: {n} bytes, header says {}", s.rlen));
        }
        Ok(true)
    }
}

/// One record's meta row.
#[derive(Clone, Copy, Debug, Default)]
pub struct Row {
    pub received: i64,
    pub ts: i64,
    pub offset_min: i16,
    pub frac_digits: u8,
    pub pri: u8,
    pub flaws: u16,
    pub dict: [u32; NDICTS],
    pub schema: u32,
}

/// A decompressed column: `count`, the byte lengths of the two varint
/// runs, the record index of each value (delta-coded), each value's
/// length, then the values back to back. The values can be scanned as one
/// run of bytes before the index is decoded.
#[derive(Default)]
pub struct ColumnData {
    pub buf: Vec<u8>,
    count: usize,
    recs_at: usize,
    lens_at: usize,
    bytes_at: usize,
    /// Record index of each value (after [`ColumnData::index`]).
    pub recs: Vec<u32>,
    /// `(start, end)` of each value in `buf` (after [`ColumnData::index`]).
    pub spans: Vec<(u32, u32)>,
}

impl ColumnData {
    /// Reads a decompressed column section's header.
    pub fn parse(buf: Vec<u8>) -> Result<ColumnData, String> {
        let bad = || "malformed column".to_string();
        let mut p = 0;
        let count = varint::get(&buf, &mut p).ok_or_else(bad)? as usize;
        let rl = varint::get(&buf, &mut p).ok_or_else(bad)? as usize;
        let ll = varint::get(&buf, &mut p).ok_or_else(bad)? as usize;
        if count > buf.len() || p + rl + ll > buf.len() {
            return Err(bad());
        }
        Ok(ColumnData {
            count,
            recs_at: p,
            lens_at: p + rl,
            bytes_at: p + rl + ll,
            buf,
            recs: Vec::new(),
            spans: Vec::new(),
        })
    }

    /// The values, back to back.
    pub fn values(&self) -> &[u8] {
        &self.buf[self.bytes_at..]
    }

    /// Where [`ColumnData::values`] starts in `buf`.
    pub fn values_start(&self) -> usize {
        self.bytes_at
    }

    /// Decodes which record each value belongs to and where it is.
    pub fn index(&mut self, records: u32) -> Result<(), String> {
        if self.recs.len() == self.count {
            return Ok(());
        }
        let bad = || "malformed column".to_string();
        let buf = &self.buf;
        let mut recs = Vec::with_capacity(self.count);
        let mut p = self.recs_at;
        let mut r = 0u64;
        for _ in 0..self.count {
            r += varint::get(&buf[..self.lens_at], &mut p).ok_or_else(bad)?;
            if r >= records as u64 {
                return Err(bad());
            }
            recs.push(r as u32);
        }
        let mut spans = Vec::with_capacity(self.count);
        let mut p = self.lens_at;
        let mut at = self.bytes_at;
        for _ in 0..self.count {
            let l = varint::get(&buf[..self.bytes_at], &mut p).ok_or_else(bad)? as usize;
            if at + l > buf.len() {
                return Err(bad());
            }
            spans.push((at as u32, (at + l) as u32));
            at += l;
        }
        self.recs = recs;
        self.spans = spans;
        Ok(())
    }

    pub fn value(&self, i: usize) -> &[u8] {
        let (s, e) = self.spans[i];
        &self.buf[s as usize..e as usize]
    }
}

/// A block decoded as far as a search needed: the meta rows and the
/// columns it asked for.
pub struct Decoded {
    pub records: u32,
    pub rows: Vec<Row>,
    dict_buf: Vec<u8>,
    dicts: [Vec<(u32, u32)>; NDICTS],
    schemas: Vec<Vec<u16>>,
    /// Input and class names of this block, for `write_record`.
    pub names: Names,
    pub columns: Vec<Option<ColumnData>>,
    meta_loaded: bool,
}

impl Decoded {
    /// Nothing decompressed yet.
    pub fn new(view: &BlockView<'_>) -> Decoded {
        Decoded {
            records: view.records,
            rows: Vec::new(),
            dict_buf: Vec::new(),
            dicts: Default::default(),
            schemas: Vec::new(),
            names: Names::default(),
            columns: (0..view.keys.len()).map(|_| None).collect(),
            meta_loaded: false,
        }
    }

    /// Decompresses the meta, dictionary and schema sections.
    pub fn meta(view: &BlockView<'_>) -> Result<Decoded, String> {
        let mut d = Decoded::new(view);
        d.load_meta(view)?;
        Ok(d)
    }

    /// Decompresses the meta, dictionary and schema sections, once.
    pub fn load_meta(&mut self, view: &BlockView<'_>) -> Result<(), String> {
        if self.meta_loaded {
            return Ok(());
        }
        let bad = |what: &str| format!("malformed {what} section");
        let mut meta = Vec::new();
        view.section(SEC_META, &mut meta)?;
        let mut dict_buf = Vec::new();
        view.section(SEC_DICTS, &mut dict_buf)?;
        let mut sch = Vec::new();
        view.section(SEC_SCHEMAS, &mut sch)?;

        let mut dicts: [Vec<(u32, u32)>; NDICTS] = Default::default();
        let mut p = 0;
        for d in dicts.iter_mut() {
            let n = varint::get(&dict_buf, &mut p).ok_or_else(|| bad("dictionary"))? as usize;
            if n > dict_buf.len() {
                return Err(bad("dictionary"));
            }
            for _ in 0..n {
                let l = varint::get(&dict_buf, &mut p).ok_or_else(|| bad("dictionary"))? as usize;
                if p + l > dict_buf.len() {
                    return Err(bad("dictionary"));
                }
                d.push((p as u32, (p + l) as u32));
                p += l;
            }
        }
        let mut schemas = Vec::new();
        let mut p = 0;
        let n = varint::get(&sch, &mut p).ok_or_else(|| bad("schema"))? as usize;
        for _ in 0..n.min(sch.len()) {
            let l = varint::get(&sch, &mut p).ok_or_else(|| bad("schema"))? as usize;
            let end = p + l;
            if end > sch.len() {
                return Err(bad("schema"));
            }
            let mut keys = Vec::new();
            while p < end {
                let k = varint::get(&sch, &mut p).ok_or_else(|| bad("schema"))?;
                if k >= view.keys.len() as u64 {
                    return Err(bad("schema"));
                }
                keys.push(k as u16);
            }
            schemas.push(keys);
        }

        let mut rows = Vec::with_capacity(view.records as usize);
        let mut p = 0;
        let mut prev = 0i64;
        for _ in 0..view.records {
            let mut r = Row::default();
            let m = |p: &mut usize| varint::get(&meta, p).ok_or_else(|| bad("meta"));
            let mi = |p: &mut usize| varint::get_i(&meta, p).ok_or_else(|| bad("meta"));
            r.received = prev.wrapping_add(mi(&mut p)?);
            prev = r.received;
            r.ts = r.received.wrapping_add(mi(&mut p)?);
            let tz = m(&mut p)?;
            r.frac_digits = (tz & 15) as u8;
            let z = tz >> 4;
            r.offset_min = (((z >> 1) as i64) ^ -((z & 1) as i64)) as i16;
            r.pri = *meta.get(p).ok_or_else(|| bad("meta"))?;
            p += 1;
            r.flaws = m(&mut p)? as u16;
            for (d, slot) in r.dict.iter_mut().enumerate() {
                let id = m(&mut p)?;
                if id >= dicts[d].len() as u64 {
                    return Err(bad("meta"));
                }
                *slot = id as u32;
            }
            let s = m(&mut p)?;
            if s >= schemas.len() as u64 {
                return Err(bad("meta"));
            }
            r.schema = s as u32;
            rows.push(r);
        }
        let text = |d: usize| -> Vec<String> {
            dicts[d]
                .iter()
                .map(|&(s, e)| {
                    String::from_utf8_lossy(&dict_buf[s as usize..e as usize]).into_owned()
                })
                .collect()
        };
        self.names = Names::new(text(DICT_INPUT), text(DICT_CLASS));
        self.rows = rows;
        self.dict_buf = dict_buf;
        self.dicts = dicts;
        self.schemas = schemas;
        self.meta_loaded = true;
        Ok(())
    }

    /// Dictionary entry `id` of dictionary `d`.
    pub fn dict(&self, d: usize, id: u32) -> &[u8] {
        let (s, e) = self.dicts[d][id as usize];
        &self.dict_buf[s as usize..e as usize]
    }

    /// Decompresses column `k` if not yet done.
    pub fn load_column(&mut self, view: &BlockView<'_>, k: u16) -> Result<&mut ColumnData, String> {
        if self.columns[k as usize].is_none() {
            let mut buf = Vec::new();
            view.section(k, &mut buf)?;
            self.columns[k as usize] = Some(ColumnData::parse(buf)?);
        }
        Ok(self.columns[k as usize].as_mut().expect("loaded above"))
    }

    /// Decompresses every column.
    pub fn load_all(&mut self, view: &BlockView<'_>) -> Result<(), String> {
        for k in 0..view.keys.len() {
            self.load_column(view, k as u16)?;
        }
        Ok(())
    }

    /// Rebuilds every record whose index `want` accepts, in order, and
    /// calls `f` with it. Loads what it needs.
    pub fn for_each_record(
        &mut self,
        view: &BlockView<'_>,
        mut want: impl FnMut(usize) -> bool,
        mut f: impl FnMut(usize, &Record<'_>, &Names),
    ) -> Result<(), String> {
        self.load_meta(view)?;
        self.load_all(view)?;
        for c in self.columns.iter_mut().flatten() {
            c.index(self.records)?;
        }
        let mut cursors = vec![0usize; self.columns.len()];
        let mut bump = Bump::new();
        for (i, row) in self.rows.iter().enumerate() {
            let keys = &self.schemas[row.schema as usize];
            let wanted = want(i);
            let mut fields = if wanted {
                Fields::with_capacity(&bump, keys.len())
            } else {
                Fields::default()
            };
            for &k in keys {
                let col = self.columns[k as usize]
                    .as_ref()
                    .ok_or("column not loaded")?;
                let c = cursors[k as usize];
                if c >= col.recs.len() || col.recs[c] as usize != i {
                    return Err(format!(
                        "column {} does not hold a value for record {i}",
                        String::from_utf8_lossy(view.keys[k as usize])
                    ));
                }
                cursors[k as usize] += 1;
                if wanted {
                    fields.push(&bump, view.keys[k as usize], col.value(c));
                }
            }
            if wanted {
                let rec = self.record(row, fields);
                f(i, &rec, &self.names);
                bump.reset();
            }
        }
        Ok(())
    }

    fn record<'a>(&'a self, row: &Row, fields: Fields<'a>) -> Record<'a> {
        let ipb = self.dict(DICT_IP, row.dict[DICT_IP]);
        let ip = match ipb.len() {
            4 => IpAddr::V4(Ipv4Addr::new(ipb[0], ipb[1], ipb[2], ipb[3])),
            16 => IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ipb).expect("16"))),
            _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        };
        let received = Timestamp {
            unix_ns: row.received,
            offset_min: 0,
            frac_digits: 6,
        };
        let mut rec = Record::new(
            b"",
            received,
            SocketAddr::new(ip, 0),
            row.dict[DICT_INPUT] as u16,
        );
        rec.timestamp = Timestamp {
            unix_ns: row.ts,
            offset_min: row.offset_min,
            frac_digits: row.frac_digits,
        };
        rec.pri = row.pri;
        rec.flaws = row.flaws;
        rec.class = row.dict[DICT_CLASS] as u16;
        rec.host = self.dict(DICT_HOST, row.dict[DICT_HOST]);
        rec.app = self.dict(DICT_APP, row.dict[DICT_APP]);
        rec.procid = self.dict(DICT_PROCID, row.dict[DICT_PROCID]);
        rec.msgid = self.dict(DICT_MSGID, row.dict[DICT_MSGID]);
        rec.fields = fields;
        rec
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::json::write_record;

    fn names() -> Names {
        Names::new(
            vec!["tcp".into(), "udp".into()],
            crate::record::class::BUILTIN
                .iter()
                .map(|s| s.to_string())
                .collect(),
        )
    }

    fn sample<'a>(bump: &'a Bump, i: u32) -> Record<'a> {
        let raw = bump.alloc_slice_copy(format!("<13>1 raw frame {i}").as_bytes());
        let mut r = Record::new(
            raw,
            Timestamp::from_unix_ns(1_700_000_000_000_000_000 + i as i64 * 1000),
            SocketAddr::new(
                if i.is_multiple_of(2) {
                    "10.0.0.7".parse().unwrap()
                } else {
                    "::1".parse().unwrap()
                },
                514,
            ),
            (i % 2) as u16,
        );
        r.timestamp = Timestamp {
            unix_ns: 1_699_999_000_000_000_000 + i as i64,
            offset_min: -420,
            frac_digits: 3,
        };
        r.pri = 34;
        r.flaws = if i.is_multiple_of(5) { 3 } else { 0 };
        r.class = 3;
        r.host = if i.is_multiple_of(3) {
            b""
        } else {
            b"dc01.example.com"
        };
        r.app = b"agent";
        r.msgid = b"ID47";
        let mut f = Fields::with_capacity(bump, 4);
        f.push(bump, b"eventid", b"4624");
        f.push(
            bump,
            b"targetusername",
            bump.alloc_slice_copy(format!("user{}", i % 7).as_bytes()),
        );
        if i.is_multiple_of(4) {
            f.push(bump, b"message", "quoted \" and \u{e9} \n".as_bytes());
            f.push(bump, b"eventid", b"dup");
        }
        r.fields = f;
        r
    }

    #[test]
    fn records_come_back_byte_identical_in_the_json_shape() {
        let bump = Bump::new();
        let names = names();
        let mut b = BlockBuilder::new(3).unwrap();
        let mut want = Vec::new();
        for i in 0..200 {
            let r = sample(&bump, i);
            let mut line = Vec::new();
            write_record(&mut line, &r, &names);
            want.push(line);
            b.add(&r, &names);
        }
        let mut out = Vec::new();
        let s = b.seal(7, &[9; 32], &mut out).unwrap();
        assert_eq!(s.records, 200);
        let v = BlockView::parse(&out, true).unwrap();
        assert_eq!(v.index, 7);
        assert_eq!(v.prev, [9; 32]);
        let mut d = Decoded::new(&v);
        let mut got = Vec::new();
        d.for_each_record(
            &v,
            |_| true,
            |_, r, names| {
                let mut line = Vec::new();
                write_record(&mut line, r, names);
                got.push(line);
            },
        )
        .unwrap();
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(String::from_utf8_lossy(g), String::from_utf8_lossy(w));
        }
    }

    #[test]
    fn bloom_knows_field_values_meta_values_and_tokens() {
        let bump = Bump::new();
        let names = names();
        let mut b = BlockBuilder::new(1).unwrap();
        for i in 0..50 {
            b.add(&sample(&bump, i), &names);
        }
        let mut out = Vec::new();
        b.seal(0, &[0; 32], &mut out).unwrap();
        let v = BlockView::parse(&out, true).unwrap();
        let k =
            |n: &str, val: &str| bloom::field_key(bloom::name_hash(n.as_bytes()), val.as_bytes());
        assert!(bloom::may_contain(v.bloom, k("targetusername", "user3")));
        assert!(bloom::may_contain(
            v.bloom,
            k("meta.host", "dc01.example.com")
        ));
        assert!(bloom::may_contain(v.bloom, k("meta.src_ip", "10.0.0.7")));
        assert!(bloom::may_contain(v.bloom, k("meta.class", "windows")));
        assert!(bloom::may_contain(v.bloom, bloom::token_key(b"quoted")));
        let absent = (0..100)
            .filter(|i| bloom::may_contain(v.bloom, k("targetusername", &format!("nobody{i}"))))
            .count();
        assert!(absent < 10);
    }

    #[test]
    fn a_flipped_byte_fails_the_checksum_and_a_cut_block_is_short() {
        let bump = Bump::new();
        let mut b = BlockBuilder::new(1).unwrap();
        b.add(&sample(&bump, 1), &names());
        let mut out = Vec::new();
        b.seal(0, &[0; 32], &mut out).unwrap();
        let mut bad = out.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 1;
        assert!(matches!(
            BlockView::parse(&bad, true),
            Err(BadBlock::Checksum)
        ));
        assert!(matches!(
            BlockView::parse(&out[..out.len() - 1], true),
            Err(BadBlock::Short { .. })
        ));
        assert!(matches!(
            BlockView::parse(b"nope-nope", true),
            Err(BadBlock::NoMagic)
        ));
    }

    #[test]
    fn builder_is_reusable_across_blocks() {
        let bump = Bump::new();
        let names = names();
        let mut b = BlockBuilder::new(1).unwrap();
        let mut out = Vec::new();
        for round in 0..3u32 {
            for i in 0..10 {
                b.add(&sample(&bump, round * 10 + i), &names);
            }
            b.seal(round as u64, &[0; 32], &mut out).unwrap();
            let v = BlockView::parse(&out, true).unwrap();
            assert_eq!(v.records, 10);
            let mut d = Decoded::new(&v);
            let mut n = 0;
            d.for_each_record(&v, |_| true, |_, _, _| n += 1).unwrap();
            assert_eq!(n, 10);
        }
    }
}
