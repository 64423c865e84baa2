//! `sluice archive search`: streams the records of an archive that match a
//! time range, field conditions and a substring, newest or oldest first.
//!
//! Receives an archive directory and a [`Query`]; writes matching records
//! (the record JSON shape with `--json`, else a short text line) to a
//! writer as soon as they are found, in order. Blocks are skipped by their
//! time range and bloom filter without decompressing anything; a block
//! that may match has only the columns its conditions name decompressed
//! first, and the rest only if some record still matches. Candidate blocks
//! are decompressed in parallel (rayon), in chunks whose results are
//! written in order, so `--limit` stops early.

use std::io::Write;
use std::path::Path;

use rayon::prelude::*;

use super::block::{BlockView, DICT_NAMES, Decoded, Row};
use super::bloom;
use super::segment::{self, Header, Mapped, Step};
use super::{ArchiveError, Result, segments_dir};
use crate::encode::json::{write_ip, write_json_str, write_record};
use crate::matcher::{FieldRef, Meta};
use crate::record::{FACILITY_NAMES, SEVERITY_NAMES};

/// One `--where field=value`.
#[derive(Clone, Debug)]
pub struct Cond {
    pub field: FieldRef,
    pub value: Vec<u8>,
    /// The bloom key, when the filter indexes this field.
    bloom_key: Option<u64>,
}

impl Cond {
    /// Parses `field=value` (field names as in an output's `match`).
    pub fn parse(s: &str) -> std::result::Result<Cond, String> {
        let (f, v) = s
            .split_once('=')
            .ok_or_else(|| format!("--where {s}: expected field=value"))?;
        let field = FieldRef::parse(f.trim()).map_err(|e| format!("--where {s}: {e}"))?;
        let value = v.as_bytes().to_vec();
        let bloom_key = match &field {
            FieldRef::Msg(k) => Some(bloom::field_key(bloom::name_hash(k), &value)),
            FieldRef::Meta(m) => {
                let name = match m {
                    Meta::SrcIp => Some(DICT_NAMES[super::block::DICT_IP]),
                    Meta::Input => Some(DICT_NAMES[super::block::DICT_INPUT]),
                    Meta::Class => Some(DICT_NAMES[super::block::DICT_CLASS]),
                    Meta::Host => Some(DICT_NAMES[super::block::DICT_HOST]),
                    Meta::App => Some(DICT_NAMES[super::block::DICT_APP]),
                    Meta::Procid => Some(DICT_NAMES[super::block::DICT_PROCID]),
                    Meta::Msgid => Some(DICT_NAMES[super::block::DICT_MSGID]),
                    Meta::Facility | Meta::Severity => None,
                };
                // An empty host is shown as the sender's address, which the
                // filter does not index under `host`: no bloom shortcut.
                name.map(|n| bloom::field_key(bloom::name_hash(n.as_bytes()), &value))
                    .filter(|_| !(matches!(m, Meta::Host) && value.is_empty()))
            }
        };
        Ok(Cond {
            field,
            value,
            bloom_key,
        })
    }
}

/// What to look for.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// Record timestamps from (inclusive), unix ns.
    pub from: Option<i64>,
    /// ... to (inclusive).
    pub to: Option<i64>,
    pub conds: Vec<Cond>,
    /// A substring of any message field value (case-sensitive).
    pub text: Option<Vec<u8>>,
    pub limit: Option<u64>,
    pub oldest_first: bool,
    pub json: bool,
}

/// What a search did.
#[derive(Debug, Default, Clone)]
pub struct Outcome {
    pub matched: u64,
    pub blocks: u64,
    pub blocks_read: u64,
    /// Damaged blocks skipped, with the file and offset.
    pub errors: Vec<String>,
}

/// One block's matching lines and where each ends, or why it was skipped.
type BlockResult = std::result::Result<(Vec<u8>, Vec<usize>), String>;

/// A block that passed the header checks.
struct Candidate {
    seg: usize,
    offset: usize,
}

/// Runs `q` over the archive in `dir`, writing matches to `out`.
pub fn search(dir: &Path, q: &Query, out: &mut dyn Write) -> Result<Outcome> {
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
    let segs = segment::list(&sdir)?;
    let mut maps = Vec::with_capacity(segs.len());
    for s in &segs {
        maps.push(Mapped::open(&s.path)?);
    }
    let tokens: Vec<u64> = q
        .text
        .as_deref()
        .map(|t| {
            bloom::inner_tokens(t)
                .into_iter()
                .map(bloom::token_key)
                .collect()
        })
        .unwrap_or_default();
    let mut o = Outcome::default();
    let mut cands = Vec::new();
    for (si, m) in maps.iter().enumerate() {
        let bytes = m.bytes();
        let hlen = match Header::parse(bytes) {
            Ok((_, l)) => l,
            Err(e) => {
                o.errors.push(format!("{}: {e}", segs[si].path.display()));
                continue;
            }
        };
        for step in segment::blocks(bytes, hlen, false) {
            match step {
                Step::Block { offset, view } => {
                    o.blocks += 1;
                    if q.from.is_some_and(|f| view.max_ts < f)
                        || q.to.is_some_and(|t| view.min_ts > t)
                    {
                        continue;
                    }
                    // Tokens are indexed for `message` only, so they rule
                    // a block out only when it holds no other field.
                    let only_message = view.keys.iter().all(|k| *k == b"message");
                    if q.conds
                        .iter()
                        .filter_map(|c| c.bloom_key)
                        .chain(tokens.iter().copied().filter(|_| only_message))
                        .any(|k| !bloom::may_contain(view.bloom, k))
                    {
                        continue;
                    }
                    cands.push(Candidate { seg: si, offset });
                }
                Step::Bad { offset, error } => {
                    // The newest segment may end in a block being written.
                    if si + 1 < maps.len() || segment::valid_block_after(bytes, offset).is_some() {
                        o.errors.push(format!(
                            "{} offset {offset}: {error}; block skipped",
                            segs[si].path.display()
                        ));
                    }
                }
            }
        }
    }
    if !q.oldest_first {
        cands.reverse();
    }
    let threads = rayon::current_num_threads().max(1);
    let mut chunk = threads;
    let mut i = 0;
    let limit = q.limit.unwrap_or(u64::MAX);
    while i < cands.len() && o.matched < limit {
        let end = (i + chunk).min(cands.len());
        let results: Vec<BlockResult> = cands[i..end]
            .par_iter()
            .map(|c| {
                let bytes = &maps[c.seg].bytes()[c.offset..];
                let view = BlockView::parse(bytes, true).map_err(|e| {
                    format!(
                        "{} offset {}: {e}; block skipped",
                        segs[c.seg].path.display(),
                        c.offset
                    )
                })?;
                scan_block(&view, q).map_err(|e| {
                    format!(
                        "{} offset {}: {e}; block skipped",
                        segs[c.seg].path.display(),
                        c.offset
                    )
                })
            })
            .collect();
        o.blocks_read += (end - i) as u64;
        for r in results {
            match r {
                Ok((buf, ends)) => {
                    let mut start = 0;
                    for e in ends {
                        if o.matched >= limit {
                            break;
                        }
                        match out.write_all(&buf[start..e]) {
                            Ok(()) => {}
                            // `search … | head`: the reader has all it wants.
                            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(o),
                            Err(e) => {
                                return Err(ArchiveError::Other(format!("writing results: {e}")));
                            }
                        }
                        start = e;
                        o.matched += 1;
                    }
                }
                Err(e) => o.errors.push(e),
            }
        }
        i = end;
        chunk = (chunk * 2).min(threads * 32);
    }
    match out.flush() {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(ArchiveError::Other(format!("writing results: {e}")))
        }
        _ => Ok(o),
    }
}

fn meta_value<'a>(
    d: &'a Decoded,
    row: &Row,
    m: Meta,
    scratch: &'a mut Vec<u8>,
) -> Option<&'a [u8]> {
    use super::block::*;
    let v: &[u8] = match m {
        Meta::Class => d.dict(DICT_CLASS, row.dict[DICT_CLASS]),
        Meta::Input => d.dict(DICT_INPUT, row.dict[DICT_INPUT]),
        Meta::Host => d.dict(DICT_HOST, row.dict[DICT_HOST]),
        Meta::App => d.dict(DICT_APP, row.dict[DICT_APP]),
        Meta::Procid => d.dict(DICT_PROCID, row.dict[DICT_PROCID]),
        Meta::Msgid => d.dict(DICT_MSGID, row.dict[DICT_MSGID]),
        Meta::Facility => FACILITY_NAMES
            .get((row.pri >> 3) as usize)
            .map_or(&b""[..], |s| s.as_bytes()),
        Meta::Severity => SEVERITY_NAMES[(row.pri & 7) as usize].as_bytes(),
        Meta::SrcIp => {
            let b = d.dict(DICT_IP, row.dict[DICT_IP]);
            scratch.clear();
            let ip = match b.len() {
                4 => std::net::IpAddr::from(<[u8; 4]>::try_from(b).ok()?),
                16 => std::net::IpAddr::from(<[u8; 16]>::try_from(b).ok()?),
                _ => return None,
            };
            write_ip(scratch, ip);
            return Some(&scratch[..]);
        }
    };
    // As in `match`: an empty header field is absent.
    (!v.is_empty()).then_some(v)
}

/// Finds the matching records of one block; returns their output lines
/// (in the requested order) and the end offset of each. Decompresses only
/// what the conditions need until some record still matches.
fn scan_block(view: &BlockView<'_>, q: &Query) -> BlockResult {
    let none = || Ok((Vec::new(), Vec::new()));
    let n = view.records as usize;
    let mut d = Decoded::new(view);
    let mut want = vec![true; n];
    if q.from.is_some_and(|f| view.min_ts < f) || q.to.is_some_and(|t| view.max_ts > t) {
        d.load_meta(view)?;
        for (w, r) in want.iter_mut().zip(&d.rows) {
            *w = q.from.is_none_or(|f| r.ts >= f) && q.to.is_none_or(|t| r.ts <= t);
        }
    }
    let mut scratch = Vec::new();
    for c in &q.conds {
        match &c.field {
            FieldRef::Msg(k) => {
                let Some(kid) = view.key_id(k) else {
                    return none();
                };
                let col = d.load_column(view, kid)?;
                // Most blocks a bloom false positive lets through do not
                // hold the value at all: one memmem says so.
                if !c.value.is_empty() && memchr::memmem::find(col.values(), &c.value).is_none() {
                    return none();
                }
                col.index(view.records)?;
                let mut hit = vec![false; n];
                for (i, &rec) in col.recs.iter().enumerate() {
                    if col.value(i) == &c.value[..] {
                        hit[rec as usize] = true;
                    }
                }
                for (w, h) in want.iter_mut().zip(hit) {
                    *w &= h;
                }
            }
            FieldRef::Meta(m) => {
                d.load_meta(view)?;
                for (i, row) in d.rows.iter().enumerate() {
                    if want[i] {
                        want[i] = meta_value(&d, row, *m, &mut scratch) == Some(&c.value[..]);
                    }
                }
            }
        }
        if !want.iter().any(|&w| w) {
            return none();
        }
    }
    if let Some(t) = &q.text {
        let finder = memchr::memmem::Finder::new(t);
        let mut hit = vec![false; n];
        let mut any = false;
        for k in 0..view.keys.len() {
            let col = d.load_column(view, k as u16)?;
            if finder.find(col.values()).is_none() {
                continue;
            }
            col.index(view.records)?;
            let vs = col.values_start();
            let mut vi = 0usize;
            for pos in finder.find_iter(col.values()) {
                let (s, e) = (pos + vs, pos + vs + t.len());
                // The value holding the hit's start; it must hold its end.
                while vi < col.spans.len() && (col.spans[vi].1 as usize) <= s {
                    vi += 1;
                }
                if vi < col.spans.len() && e <= col.spans[vi].1 as usize {
                    hit[col.recs[vi] as usize] = true;
                    any = true;
                }
            }
        }
        if !any {
            return none();
        }
        for (w, h) in want.iter_mut().zip(hit) {
            *w &= h;
        }
    }
    if !want.iter().any(|&w| w) {
        return none();
    }
    let mut buf = Vec::new();
    let mut lines: Vec<(usize, usize)> = Vec::new();
    d.for_each_record(
        view,
        |i| want[i],
        |_, rec, names| {
            let s = buf.len();
            if q.json {
                write_record(&mut buf, rec, names);
            } else {
                write_text(&mut buf, rec);
            }
            buf.push(b'\n');
            lines.push((s, buf.len()));
        },
    )?;
    if q.oldest_first {
        let ends = lines.iter().map(|l| l.1).collect();
        Ok((buf, ends))
    } else {
        let mut out = Vec::with_capacity(buf.len());
        let mut ends = Vec::with_capacity(lines.len());
        for (s, e) in lines.iter().rev() {
            out.extend_from_slice(&buf[*s..*e]);
            ends.push(out.len());
        }
        Ok((out, ends))
    }
}

/// The short text form: `TIMESTAMP HOST APP[PROCID]: key="value" ...`
/// (`message` bare, first).
fn write_text(out: &mut Vec<u8>, rec: &crate::record::Record<'_>) {
    rec.timestamp.write_rfc3339(out);
    out.push(b' ');
    crate::encode::json::write_host(out, rec, false);
    out.push(b' ');
    if !rec.app.is_empty() {
        out.extend_from_slice(rec.app);
        if !rec.procid.is_empty() {
            out.push(b'[');
            out.extend_from_slice(rec.procid);
            out.push(b']');
        }
        out.push(b':');
    }
    if let Some(m) = rec.fields.get(b"message") {
        out.push(b' ');
        out.extend_from_slice(m);
    }
    for f in rec.fields.as_slice() {
        if f.key == b"message" {
            continue;
        }
        out.push(b' ');
        out.extend_from_slice(f.key);
        out.push(b'=');
        write_json_str(out, f.value);
    }
}

/// Parses a time for `--from`/`--to`: RFC 3339 (`2026-11-01T10:00:00Z`),
/// a date (`2026-11-01`, midnight UTC), `now`, or an age such as `15m`,
/// `2h`, `7d` (that long before now).
pub fn parse_time(s: &str, now_ns: i64) -> std::result::Result<i64, String> {
    let t = s.trim();
    if t == "now" {
        return Ok(now_ns);
    }
    if let Some((ts, n)) = crate::time::parse_rfc3339(t.as_bytes(), 0)
        && n == t.len()
    {
        return Ok(ts.unix_ns);
    }
    if t.len() == 10
        && let Some((ts, _)) = crate::time::parse_rfc3339(format!("{t}T00:00:00Z").as_bytes(), 0)
    {
        return Ok(ts.unix_ns);
    }
    let age = t.strip_suffix(" ago").unwrap_or(t).trim_start_matches('-');
    if let Some(d) = crate::config::HumanDuration::parse(age) {
        return Ok(now_ns.saturating_sub(d.0.as_nanos().min(i64::MAX as u128) as i64));
    }
    Err(format!(
        "`{s}` is not a time (use RFC 3339 such as 2026-11-01T10:00:00Z, a date 2026-11-01, `now`, or an age such as 15m, 2h, 7d)"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_every_accepted_form() {
        let now = 1_800_000_000_000_000_000;
        assert_eq!(parse_time("now", now).unwrap(), now);
        assert_eq!(parse_time("2h", now).unwrap(), now - 7_200_000_000_000);
        assert_eq!(parse_time("-15m", now).unwrap(), now - 900_000_000_000);
        assert_eq!(
            parse_time("2003-10-11T22:14:15.003Z", now).unwrap(),
            1_065_910_455_003_000_000
        );
        assert_eq!(parse_time("1970-01-02", now).unwrap(), 86_400_000_000_000);
        assert!(parse_time("yesterday-ish", now).is_err());
    }

    #[test]
    fn where_conditions_name_meta_and_message_fields() {
        let c = Cond::parse("targetusername=alice").unwrap();
        assert!(matches!(c.field, FieldRef::Msg(_)));
        assert!(c.bloom_key.is_some());
        let c = Cond::parse("host=dc01").unwrap();
        assert!(matches!(c.field, FieldRef::Meta(Meta::Host)));
        assert!(Cond::parse("severity=err").unwrap().bloom_key.is_none());
        assert!(Cond::parse("novalue").is_err());
        assert!(Cond::parse("Bad Name=x").is_err());
    }
}
