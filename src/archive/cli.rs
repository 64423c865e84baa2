//! `sluice archive …`: keygen, verify, search and stats.
//!
//! Receives parsed command-line arguments; prints results on stdout and
//! problems on stderr. Exit codes: 0 clean, 1 findings (verify) or damaged
//! blocks skipped (search), 2 bad input (no archive, unreadable key, bad
//! arguments). Bad input is reported with the file it concerns, never with
//! a panic.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;

use super::checkpoint::{generate, parse_pubkey};
use super::search::{Cond, Query, parse_time, search};
use super::segment::{self, Header, Mapped, Step};
use super::{ArchiveError, now_ns, rfc3339, segments_dir, to_hex};

#[derive(Subcommand, Debug)]
pub enum ArchiveCommand {
    /// Make an ed25519 signing key for an archive's checkpoints: writes the
    /// private key (PKCS#8 PEM, mode 0600) and prints the public key.
    Keygen {
        /// Where to write the private key (never overwritten).
        #[arg(long)]
        out: PathBuf,
    },
    /// Re-derive an archive's hashes and check them against its signed
    /// checkpoints; name the first block modified, removed, reordered or
    /// truncated. Exits 1 on any finding.
    Verify {
        /// The archive directory (the output's `path`).
        dir: PathBuf,
        /// The public key (64 hex digits, or a file with them or a PEM
        /// key). Default: the key the archive's checkpoints name.
        #[arg(long)]
        pubkey: Option<String>,
        /// A checkpoint kept elsewhere (a file holding its line, e.g. the
        /// syslog message sent to `checkpoint_target`): the one to trust.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
    },
    /// Stream the records that match, newest first (or oldest first).
    Search {
        /// The archive directory.
        dir: PathBuf,
        /// Earliest record timestamp: RFC 3339, a date, `now`, or an age
        /// such as 2h or 7d.
        #[arg(long)]
        from: Option<String>,
        /// Latest record timestamp (same forms).
        #[arg(long)]
        to: Option<String>,
        /// `field=value` (names as in an output's `match`); repeat to
        /// require several.
        #[arg(long = "where", value_name = "FIELD=VALUE")]
        wheres: Vec<String>,
        /// A substring of any message field value (case-sensitive).
        #[arg(long)]
        text: Option<String>,
        /// Stop after this many records.
        #[arg(long)]
        limit: Option<u64>,
        /// Oldest first instead of newest first.
        #[arg(long)]
        oldest_first: bool,
        /// One record per line in the record JSON shape of the file output.
        #[arg(long)]
        json: bool,
    },
    /// Print segments, blocks, records, raw and stored sizes and the
    /// compression ratio.
    Stats {
        /// The archive directory.
        dir: PathBuf,
    },
    /// Print the benchmark corpus (Windows-agent JSON in RFC 5424 lines).
    #[command(hide = true)]
    Corpus {
        /// How many lines.
        #[arg(long, default_value_t = 1_000_000)]
        count: u64,
        /// Generator seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// Runs one `sluice archive` command.
pub fn run(cmd: ArchiveCommand) -> ExitCode {
    match cmd {
        ArchiveCommand::Keygen { out } => match generate(&out) {
            Ok(k) => {
                println!("{}", to_hex(&k.verifying_key().to_bytes()));
                eprintln!(
                    "private key written to {}; the line above is the public key (give it to `sluice archive verify --pubkey`)",
                    out.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
        ArchiveCommand::Verify {
            dir,
            pubkey,
            checkpoint,
        } => {
            let key = match pubkey.as_deref().map(parse_pubkey).transpose() {
                Ok(k) => k,
                Err(e) => return fail(&e),
            };
            match super::verify::verify(&dir, key, checkpoint.as_deref()) {
                Ok(r) => {
                    for n in &r.notes {
                        println!("note: {n}");
                    }
                    for f in &r.findings {
                        println!("FINDING: {f}");
                    }
                    println!(
                        "{}: {} segment(s), {} block(s), {} record(s), {} checkpoint root(s) checked: {}",
                        dir.display(),
                        r.segments,
                        r.blocks,
                        r.records,
                        r.checkpoints_checked,
                        if r.clean() {
                            "ok".to_string()
                        } else {
                            format!("{} finding(s)", r.findings.len())
                        }
                    );
                    if r.clean() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => fail(&e),
            }
        }
        ArchiveCommand::Search {
            dir,
            from,
            to,
            wheres,
            text,
            limit,
            oldest_first,
            json,
        } => {
            let now = now_ns();
            let q = (|| -> Result<Query, String> {
                Ok(Query {
                    from: from.as_deref().map(|t| parse_time(t, now)).transpose()?,
                    to: to.as_deref().map(|t| parse_time(t, now)).transpose()?,
                    conds: wheres
                        .iter()
                        .map(|w| Cond::parse(w))
                        .collect::<Result<_, _>>()?,
                    text: text.map(String::into_bytes),
                    limit,
                    oldest_first,
                    json,
                })
            })();
            let q = match q {
                Ok(q) => q,
                Err(e) => {
                    eprintln!("sluice archive search: {e}");
                    return ExitCode::from(2);
                }
            };
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
            match search(&dir, &q, &mut out) {
                Ok(o) => {
                    // A closed pipe (`| head`) is not an error.
                    let _ = out.into_inner();
                    for e in &o.errors {
                        eprintln!("sluice archive search: {e}");
                    }
                    eprintln!(
                        "{} record(s) from {} of {} block(s)",
                        o.matched, o.blocks_read, o.blocks
                    );
                    if o.errors.is_empty() {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::from(1)
                    }
                }
                Err(e) => fail(&e),
            }
        }
        ArchiveCommand::Corpus { count, seed } => {
            let mut c = super::corpus::Corpus::new(seed);
            let mut out = std::io::stdout().lock();
            let mut buf = Vec::with_capacity(1 << 20);
            for i in 0..count {
                c.line(&mut buf);
                if buf.len() >= 1 << 20 || i + 1 == count {
                    if std::io::Write::write_all(&mut out, &buf).is_err() {
                        return ExitCode::SUCCESS;
                    }
                    buf.clear();
                }
            }
            ExitCode::SUCCESS
        }
        ArchiveCommand::Stats { dir } => match stats(&dir) {
            Ok(s) => {
                print!("{s}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e),
        },
    }
}

fn fail(e: &ArchiveError) -> ExitCode {
    eprintln!("sluice archive: {e}");
    ExitCode::from(2)
}

/// The `stats` report.
pub fn stats(dir: &Path) -> Result<String, ArchiveError> {
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
    let (mut blocks, mut records, mut raw, mut stored, mut bloom) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let (mut ts_lo, mut ts_hi) = (i64::MAX, i64::MIN);
    let mut damaged = Vec::new();
    let mut first_block = None;
    for s in &segs {
        let m = Mapped::open(&s.path)?;
        let bytes = m.bytes();
        stored += bytes.len() as u64;
        let (h, hlen) = Header::parse(bytes).map_err(|e| ArchiveError::corrupt(&s.path, e))?;
        first_block.get_or_insert(h.first_leaf);
        for step in segment::blocks(bytes, hlen, false) {
            match step {
                Step::Block { view, .. } => {
                    blocks += 1;
                    records += view.records as u64;
                    raw += view.raw_bytes as u64;
                    bloom += view.bloom.len() as u64;
                    ts_lo = ts_lo.min(view.min_ts);
                    ts_hi = ts_hi.max(view.max_ts);
                }
                Step::Bad { offset, error } => {
                    damaged.push(format!("{} offset {offset}: {error}", s.path.display()))
                }
            }
        }
    }
    let mut o = String::new();
    use std::fmt::Write as _;
    let _ = writeln!(o, "archive:           {}", dir.display());
    let _ = writeln!(o, "segments:          {}", segs.len());
    match (first_block, blocks) {
        (Some(f), 1..) => {
            let _ = writeln!(o, "blocks:            {blocks} (#{f}..#{})", f + blocks - 1);
        }
        _ => {
            let _ = writeln!(o, "blocks:            0");
        }
    }
    let _ = writeln!(o, "records:           {records}");
    let _ = writeln!(o, "raw bytes:         {raw} ({})", human(raw));
    let _ = writeln!(o, "stored bytes:      {stored} ({})", human(stored));
    let _ = writeln!(o, "bloom bytes:       {bloom} ({})", human(bloom));
    let _ = writeln!(
        o,
        "compression ratio: {:.2}x",
        if stored > 0 {
            raw as f64 / stored as f64
        } else {
            0.0
        }
    );
    if blocks > 0 {
        let _ = writeln!(o, "oldest timestamp:  {}", rfc3339(ts_lo));
        let _ = writeln!(o, "newest timestamp:  {}", rfc3339(ts_hi));
    }
    for d in damaged {
        let _ = writeln!(o, "damaged:           {d}");
    }
    Ok(o)
}

fn human(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < units.len() {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", units[u])
}
