//! Config: the TOML file, checked once at start-up.
//!
//! `load` reads the file section by section (`[pipeline]`, `[metrics]`,
//! `[[input]]`, `[[output]]`, `[[enrich]]`, `[[classify]]`, `[identity]`)
//! so that one bad section does not hide the errors of the next, then runs
//! the checks that need the whole file. Every error names its line and key.
//! Runtime objects are built from a checked [`Config`] by the pipeline.

mod units;

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::encode::{Format, Framing};
pub use units::{ByteSize, HumanDuration};

/// The config `sluice run` uses without `--config`.
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// The whole config file.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Config {
    pub pipeline: PipelineConfig,
    pub metrics: MetricsConfig,
    pub identity: IdentityConfig,
    pub inputs: Vec<InputConfig>,
    pub outputs: Vec<OutputConfig>,
    pub enrich: Vec<EnrichConfig>,
    pub classify: Vec<ClassifyConfig>,
}

/// `[pipeline]`: threads and queues.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Input worker threads, each pinned to a core. Default: one per core.
    pub workers: usize,
    /// Most records in one batch. Default 512.
    pub batch_records: usize,
    /// Most raw bytes in one batch. Default 256 KiB.
    pub batch_bytes: ByteSize,
    /// Capacity, in batches, of each channel between stages. Default 16.
    pub queue_batches: usize,
    /// How long shutdown waits for outputs to deliver what is queued before
    /// counting the rest as dropped (reason `shutdown`). Default 30s.
    pub shutdown_timeout: HumanDuration,
    /// Pin input workers to cores. Default true.
    pub pin_workers: bool,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
            batch_records: 512,
            batch_bytes: ByteSize(256 * 1024),
            queue_batches: 16,
            shutdown_timeout: HumanDuration(Duration::from_secs(30)),
            pin_workers: true,
        }
    }
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Address serving `/metrics`. Default: none (no endpoint).
    pub listen: Option<String>,
}

/// `[identity]`: who holds which IP, learned from Windows logons.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct IdentityConfig {
    /// Learn from 4624/4768 and add `src_user`. Default true.
    pub enabled: bool,
    /// How long an entry lives after its last logon. Default 8h.
    pub ttl: HumanDuration,
    /// Most addresses remembered; the oldest go first. Default 100000.
    pub max_entries: usize,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        IdentityConfig {
            enabled: true,
            ttl: HumanDuration(Duration::from_secs(8 * 3600)),
            max_entries: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputType {
    Udp,
    Tcp,
    Tls,
}

/// `[[input]]`: a listening socket.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InputConfig {
    /// Unique name, shown in metrics and `meta.input`.
    pub name: String,
    #[serde(rename = "type")]
    pub kind: InputType,
    /// `address:port` to listen on (port 0 picks a free port).
    pub listen: String,
    /// Longest message kept whole; longer frames are cut and counted.
    /// Default 64 KiB.
    #[serde(default = "default_max_message")]
    pub max_message_bytes: ByteSize,
    /// Most open connections (TCP/TLS); more are refused and counted.
    /// Default 10000.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Kernel receive buffer asked for (UDP). Default 8 MiB.
    #[serde(default = "default_receive_buffer")]
    pub receive_buffer: ByteSize,
    /// Close a connection silent for this long. Default: never ("0s").
    #[serde(default)]
    pub idle_timeout: HumanDuration,
    /// Senders allowed (CIDRs); empty allows all. Default: all.
    #[serde(default)]
    pub allow: Vec<String>,
    /// TLS: server certificate chain (PEM).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// TLS: server private key (PEM).
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// TLS: CA bundle clients must present a certificate from; unset
    /// means no client authentication.
    #[serde(default)]
    pub tls_client_ca: Option<PathBuf>,
}

fn default_max_message() -> ByteSize {
    ByteSize(64 * 1024)
}
fn default_max_connections() -> usize {
    10_000
}
fn default_receive_buffer() -> ByteSize {
    ByteSize(8 * 1024 * 1024)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputType {
    File,
    Stdout,
    Syslog,
    Archive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    #[default]
    Tcp,
    Udp,
    Tls,
}

/// What an output does when its queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Wait: backpressure reaches TCP senders.
    #[default]
    Block,
    /// Drop the batch and count it.
    Drop,
    /// Spill to the disk queue.
    Disk,
}

/// A match value: one string, or a list meaning any of them.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum OneOrMany {
    One(MatchScalar),
    Many(Vec<MatchScalar>),
}

/// Match values may be written as strings, integers or booleans; they
/// compare as text (every field value is text).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum MatchScalar {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl MatchScalar {
    pub fn text(&self) -> String {
        match self {
            MatchScalar::Str(s) => s.clone(),
            MatchScalar::Int(n) => n.to_string(),
            MatchScalar::Bool(b) => b.to_string(),
        }
    }
}

impl OneOrMany {
    pub fn values(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.text()],
            OneOrMany::Many(v) => v.iter().map(MatchScalar::text).collect(),
        }
    }
}

/// `match = { field = "value" | ["a", "b"], ... }`: all keys must match.
pub type MatchConfig = BTreeMap<String, OneOrMany>;

/// `[[output]]`: where records go.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: OutputType,
    /// file, archive: the path (file) or directory (archive).
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// syslog: tcp (default), udp or tls.
    #[serde(default)]
    pub transport: Transport,
    /// syslog: `host:port` of the peer.
    #[serde(default)]
    pub target: Option<String>,
    /// syslog: v1, v2 (default) or raw; file/stdout: json (default), v1,
    /// v2 or raw.
    #[serde(default)]
    pub format: Option<Format>,
    /// syslog over a stream: lf (default) or octet_counting.
    #[serde(default)]
    pub framing: Option<Framing>,
    /// block (default), drop or disk.
    #[serde(default)]
    pub when_full: WhenFull,
    /// Queue capacity in batches. Default 64.
    #[serde(default = "default_output_queue")]
    pub queue_batches: usize,
    /// Threads encoding this output's records (order is kept). Default: 2
    /// for the JSON-based formats (json, v2) on machines with 2 or more
    /// cores, else 1.
    #[serde(default)]
    pub encode_threads: Option<usize>,
    /// Which records go here. Default: all.
    #[serde(default, rename = "match")]
    pub matches: MatchConfig,
    /// Disk queue directory (when_full = "disk"). Default: a directory
    /// named after the output beside the state directory.
    #[serde(default)]
    pub disk_queue_path: Option<PathBuf>,
    /// Disk queue size limit. Default 1 GiB.
    #[serde(default = "default_disk_queue_max")]
    pub disk_queue_max: ByteSize,
    /// TLS: CA bundle to verify the peer with.
    #[serde(default)]
    pub tls_ca: Option<PathBuf>,
    /// TLS: client certificate and key, when the peer asks for one.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// TLS: name to verify the peer's certificate against. Default: the
    /// host part of `target`.
    #[serde(default)]
    pub tls_server_name: Option<String>,
    /// archive: how long records are kept, e.g. "400d".
    #[serde(default)]
    pub retention: Option<HumanDuration>,
    /// archive: ed25519 key file for checkpoints.
    #[serde(default)]
    pub signing_key: Option<PathBuf>,
    /// archive: how often a signed checkpoint is written. Default 60s.
    #[serde(default)]
    pub checkpoint_interval: Option<HumanDuration>,
    /// archive: syslog `host:port` (TCP) to send each checkpoint to.
    #[serde(default)]
    pub checkpoint_target: Option<String>,
    /// archive: receive-time window of one segment file (retention deletes
    /// whole segments). Default 1h.
    #[serde(default)]
    pub segment_span: Option<HumanDuration>,
    /// archive: raw bytes (as received) of records per compressed block.
    /// Default 256 KiB.
    #[serde(default)]
    pub block_bytes: Option<ByteSize>,
}

fn default_output_queue() -> usize {
    64
}
fn default_disk_queue_max() -> ByteSize {
    ByteSize(1024 * 1024 * 1024)
}

/// `[[enrich]]`: add fields to matching records.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnrichConfig {
    /// Optional name, for logs and metrics.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, rename = "match")]
    pub matches: MatchConfig,
    /// `field = "template"`; `{other}` inserts another field's value.
    pub set: BTreeMap<String, String>,
}

/// `[[classify]]`: a user rule, tried before the built-in classes.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClassifyConfig {
    /// The class records matching this rule get.
    pub class: String,
    /// Sender addresses (CIDR or single addresses).
    #[serde(default)]
    pub src: Vec<String>,
    /// Field conditions, as in outputs' `match`.
    #[serde(default, rename = "match")]
    pub matches: MatchConfig,
    /// A substring the raw message must contain.
    #[serde(default)]
    pub contains: Option<String>,
}

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub message: String,
}

/// Every problem found in a config file.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    pub file: String,
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}:{}: {}", self.file, e.line, e.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Where a section sits in the file.
struct Section<'a> {
    /// `input` for `[[input]]`, `pipeline` for `[pipeline]`, "" before the
    /// first header.
    name: &'a str,
    array: bool,
    /// 1-based line of the header.
    line: usize,
    text: &'a str,
}

fn header_of(line: &str) -> Option<(&str, bool)> {
    let t = line.trim();
    let t = match t.find('#') {
        Some(i) if !t[..i].contains('"') => t[..i].trim_end(),
        _ => t,
    };
    if let Some(inner) = t.strip_prefix("[[").and_then(|r| r.strip_suffix("]]")) {
        let n = inner.trim();
        if is_bare_key(n) {
            return Some((n, true));
        }
    } else if let Some(inner) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let n = inner.trim();
        if is_bare_key(n) {
            return Some((n, false));
        }
    }
    None
}

fn is_bare_key(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
}

fn split_sections(src: &str) -> Vec<Section<'_>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut cur: (&str, bool, usize) = ("", false, 1);
    let mut offset = 0;
    for (i, line) in src.split_inclusive('\n').enumerate() {
        if let Some((name, array)) = header_of(line) {
            out.push(Section {
                name: cur.0,
                array: cur.1,
                line: cur.2,
                text: &src[start..offset],
            });
            start = offset;
            cur = (name, array, i + 1);
        }
        offset += line.len();
    }
    out.push(Section {
        name: cur.0,
        array: cur.1,
        line: cur.2,
        text: &src[start..],
    });
    out
}

fn line_of(text: &str, byte: usize) -> usize {
    text[..byte.min(text.len())].matches('\n').count() + 1
}

/// The line of `key = ...` in a section (1-based, file lines), or the
/// section's header line.
fn key_line(sec: &Section<'_>, key: &str) -> usize {
    for (i, l) in sec.text.lines().enumerate() {
        let t = l.trim_start();
        if let Some(r) = t.strip_prefix(key)
            && r.trim_start().starts_with('=')
        {
            return sec.line + i;
        }
    }
    sec.line
}

#[derive(Deserialize)]
struct Wrap<T> {
    #[serde(alias = "pipeline", alias = "metrics", alias = "identity")]
    #[serde(
        alias = "input",
        alias = "output",
        alias = "enrich",
        alias = "classify"
    )]
    v: T,
}

#[derive(Deserialize)]
struct WrapMany<T> {
    #[serde(
        alias = "input",
        alias = "output",
        alias = "enrich",
        alias = "classify"
    )]
    v: Vec<T>,
}

/// Deserialises one section alone; errors get file line numbers.
fn section<T: DeserializeOwned>(sec: &Section<'_>, errors: &mut Vec<ConfigError>) -> Option<T> {
    let what = if sec.array {
        format!("[[{}]]", sec.name)
    } else {
        format!("[{}]", sec.name)
    };
    let res: Result<T, toml::de::Error> = if sec.array {
        toml::from_str::<WrapMany<T>>(sec.text)
            .map(|w| w.v.into_iter().next())
            .and_then(|o| o.ok_or_else(|| serde::de::Error::custom("empty section")))
    } else {
        toml::from_str::<Wrap<T>>(sec.text).map(|w| w.v)
    };
    match res {
        Ok(v) => Some(v),
        Err(e) => {
            let line = e
                .span()
                .map_or(sec.line, |s| sec.line + line_of(sec.text, s.start) - 1);
            let msg = e.message().trim().replace('\n', " ");
            errors.push(ConfigError {
                line,
                message: format!("{what}: {msg}"),
            });
            None
        }
    }
}

/// Reads and checks a config file.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let file = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| ConfigErrors {
        file: file.clone(),
        errors: vec![ConfigError {
            line: 0,
            message: format!("cannot read: {e}"),
        }],
    })?;
    parse(&src, &file)
}

/// Parses and checks config text; `file` names it in errors.
pub fn parse(src: &str, file: &str) -> Result<Config, ConfigErrors> {
    let mut errors = Vec::new();
    // Syntax first: if the file is not TOML, section errors would mislead.
    if let Err(e) = toml::from_str::<toml::Table>(src) {
        let line = e.span().map_or(1, |s| line_of(src, s.start));
        errors.push(ConfigError {
            line,
            message: format!("TOML syntax: {}", e.message().trim().replace('\n', " ")),
        });
        return Err(ConfigErrors {
            file: file.into(),
            errors,
        });
    }
    let mut cfg = Config::default();
    let sections = split_sections(src);
    let mut lines = NameLines::default();
    for sec in &sections {
        match (sec.name, sec.array) {
            ("", _) => {
                if let Ok(t) = toml::from_str::<toml::Table>(sec.text)
                    && let Some(k) = t.keys().next()
                {
                    errors.push(ConfigError {
                        line: key_line(sec, k),
                        message: format!("unknown top-level key `{k}`; keys belong in a section such as [pipeline]"),
                    });
                }
            }
            ("pipeline", false) => {
                if let Some(v) = section(sec, &mut errors) {
                    cfg.pipeline = v;
                }
            }
            ("metrics", false) => {
                if let Some(v) = section(sec, &mut errors) {
                    cfg.metrics = v;
                }
            }
            ("identity", false) => {
                if let Some(v) = section(sec, &mut errors) {
                    cfg.identity = v;
                }
            }
            ("input", true) => {
                if let Some(v) = section::<InputConfig>(sec, &mut errors) {
                    check_input(&v, sec, &mut errors);
                    lines.inputs.push(key_line(sec, "name"));
                    cfg.inputs.push(v);
                }
            }
            ("output", true) => {
                if let Some(v) = section::<OutputConfig>(sec, &mut errors) {
                    check_output(&v, sec, &mut errors);
                    lines.outputs.push(key_line(sec, "name"));
                    cfg.outputs.push(v);
                }
            }
            ("enrich", true) => {
                if let Some(v) = section::<EnrichConfig>(sec, &mut errors) {
                    check_enrich(&v, sec, &mut errors);
                    cfg.enrich.push(v);
                }
            }
            ("classify", true) => {
                if let Some(v) = section::<ClassifyConfig>(sec, &mut errors) {
                    check_classify(&v, sec, &mut errors);
                    cfg.classify.push(v);
                }
            }
            (name, array) => {
                let hint = match name {
                    "inputs" | "outputs" => " (did you mean [[input]] / [[output]]?)",
                    "input" | "output" | "enrich" | "classify" if !array => {
                        " (write it as an array of tables: [[...]])"
                    }
                    "pipeline" | "metrics" | "identity" if array => {
                        " (write it as [..], not [[..]])"
                    }
                    _ => "",
                };
                errors.push(ConfigError {
                    line: sec.line,
                    message: format!("unknown section `{name}`{hint}"),
                });
            }
        }
    }
    check_whole(&cfg, &sections, &lines, &mut errors);
    if errors.is_empty() {
        Ok(cfg)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(ConfigErrors {
            file: file.into(),
            errors,
        })
    }
}

fn err(errors: &mut Vec<ConfigError>, line: usize, message: String) {
    errors.push(ConfigError { line, message });
}

fn check_addr(v: &str, sec: &Section<'_>, key: &str, what: &str, errors: &mut Vec<ConfigError>) {
    if v.parse::<SocketAddr>().is_err() && !looks_like_host_port(v) {
        err(
            errors,
            key_line(sec, key),
            format!("{what}: `{key}` = \"{v}\" is not an address:port"),
        );
    }
}

fn looks_like_host_port(v: &str) -> bool {
    match v.rsplit_once(':') {
        Some((h, p)) => !h.is_empty() && p.parse::<u16>().is_ok() && !h.contains(' '),
        None => false,
    }
}

fn check_input(i: &InputConfig, sec: &Section<'_>, errors: &mut Vec<ConfigError>) {
    let what = format!("[[input]] \"{}\"", i.name);
    if i.listen.parse::<SocketAddr>().is_err() {
        err(
            errors,
            key_line(sec, "listen"),
            format!(
                "{what}: `listen` = \"{}\" is not an ip:port address",
                i.listen
            ),
        );
    }
    if i.max_message_bytes.0 < 480 {
        err(
            errors,
            key_line(sec, "max_message_bytes"),
            format!("{what}: `max_message_bytes` must be at least 480 (RFC 5424 section 6.1)"),
        );
    }
    for a in &i.allow {
        if crate::net::Cidr::parse(a).is_none() {
            err(
                errors,
                key_line(sec, "allow"),
                format!("{what}: `allow` entry \"{a}\" is not an address or CIDR"),
            );
        }
    }
    if i.kind == InputType::Tls && (i.tls_cert.is_none() || i.tls_key.is_none()) {
        err(
            errors,
            sec.line,
            format!("{what}: type \"tls\" needs `tls_cert` and `tls_key`"),
        );
    }
    if i.kind != InputType::Tls
        && (i.tls_cert.is_some() || i.tls_key.is_some() || i.tls_client_ca.is_some())
    {
        err(
            errors,
            key_line(sec, "tls_cert").max(key_line(sec, "tls_client_ca")),
            format!("{what}: tls_* keys need type = \"tls\""),
        );
    }
}

fn check_output(o: &OutputConfig, sec: &Section<'_>, errors: &mut Vec<ConfigError>) {
    let what = format!("[[output]] \"{}\"", o.name);
    match o.kind {
        OutputType::File | OutputType::Archive => {
            if o.path.is_none() {
                err(
                    errors,
                    sec.line,
                    format!("{what}: type \"{}\" needs `path`", kind_name(o.kind)),
                );
            }
        }
        OutputType::Syslog => match &o.target {
            None => err(
                errors,
                sec.line,
                format!("{what}: type \"syslog\" needs `target`"),
            ),
            Some(t) => check_addr(t, sec, "target", &what, errors),
        },
        OutputType::Stdout => {}
    }
    if o.kind == OutputType::Archive {
        if let Some(t) = &o.checkpoint_target {
            check_addr(t, sec, "checkpoint_target", &what, errors);
        }
        check_archive(o, sec, &what, errors);
    } else {
        for (k, set) in [
            ("retention", o.retention.is_some()),
            ("signing_key", o.signing_key.is_some()),
            ("checkpoint_interval", o.checkpoint_interval.is_some()),
            ("checkpoint_target", o.checkpoint_target.is_some()),
            ("segment_span", o.segment_span.is_some()),
            ("block_bytes", o.block_bytes.is_some()),
        ] {
            if set {
                err(
                    errors,
                    key_line(sec, k),
                    format!("{what}: `{k}` applies only to type = \"archive\""),
                );
            }
        }
    }
    if o.queue_batches == 0 {
        err(
            errors,
            key_line(sec, "queue_batches"),
            format!("{what}: `queue_batches` must be at least 1"),
        );
    }
    if o.framing == Some(Framing::None) && o.transport != Transport::Udp {
        err(
            errors,
            key_line(sec, "framing"),
            format!("{what}: `framing` = \"none\" is only for UDP"),
        );
    }
    check_match(&o.matches, sec, &what, errors);
}

/// The archive's own keys: a signing key is required (the archive's
/// promise is tamper evidence), durations and sizes within sense.
fn check_archive(o: &OutputConfig, sec: &Section<'_>, what: &str, errors: &mut Vec<ConfigError>) {
    if o.signing_key.is_none() {
        err(
            errors,
            sec.line,
            format!(
                "{what}: type \"archive\" needs `signing_key` (make one with `sluice archive keygen --out FILE`)"
            ),
        );
    }
    if o.retention.is_some_and(|r| r.0.is_zero()) {
        err(
            errors,
            key_line(sec, "retention"),
            format!("{what}: `retention` must be longer than 0s (leave it out to keep everything)"),
        );
    }
    if o.checkpoint_interval
        .is_some_and(|c| c.0 < Duration::from_secs(1))
    {
        err(
            errors,
            key_line(sec, "checkpoint_interval"),
            format!("{what}: `checkpoint_interval` must be at least 1s"),
        );
    }
    if o.segment_span.is_some_and(|c| c.0 < Duration::from_secs(1)) {
        err(
            errors,
            key_line(sec, "segment_span"),
            format!("{what}: `segment_span` must be at least 1s"),
        );
    }
    if o.block_bytes
        .is_some_and(|b| b.0 < 1024 || b.0 > 64 * 1024 * 1024)
    {
        err(
            errors,
            key_line(sec, "block_bytes"),
            format!("{what}: `block_bytes` must be between 1KiB and 64MiB"),
        );
    }
    if o.when_full == WhenFull::Disk {
        err(
            errors,
            key_line(sec, "when_full"),
            format!(
                "{what}: when_full = \"disk\" does not apply to an archive (it is on disk already; use \"block\" or \"drop\")"
            ),
        );
    }
    if o.format.is_some() || o.framing.is_some() {
        err(
            errors,
            key_line(sec, "format").min(key_line(sec, "framing")),
            format!(
                "{what}: the archive stores records, not text: `format` and `framing` do not apply"
            ),
        );
    }
}

fn kind_name(k: OutputType) -> &'static str {
    match k {
        OutputType::File => "file",
        OutputType::Stdout => "stdout",
        OutputType::Syslog => "syslog",
        OutputType::Archive => "archive",
    }
}

fn check_match(m: &MatchConfig, sec: &Section<'_>, what: &str, errors: &mut Vec<ConfigError>) {
    for (k, v) in m {
        if let Err(e) = crate::matcher::FieldRef::parse(k) {
            err(
                errors,
                key_line(sec, "match"),
                format!("{what}: match key `{k}`: {e}"),
            );
        }
        if let OneOrMany::Many(list) = v
            && list.is_empty()
        {
            err(
                errors,
                key_line(sec, "match"),
                format!("{what}: match key `{k}` has an empty list, which never matches"),
            );
        }
    }
}

fn check_enrich(e: &EnrichConfig, sec: &Section<'_>, errors: &mut Vec<ConfigError>) {
    let what = format!("[[enrich]] {}", e.name.as_deref().unwrap_or(""));
    let what = what.trim_end();
    check_match(&e.matches, sec, what, errors);
    if e.set.is_empty() {
        err(errors, sec.line, format!("{what}: `set` is empty"));
    }
    for (k, t) in &e.set {
        if let Err(msg) = crate::enrich::Template::parse(t) {
            err(
                errors,
                key_line(sec, "set").max(key_line(sec, k)),
                format!("{what}: set `{k}`: {msg}"),
            );
        }
        if crate::matcher::FieldRef::parse(k).is_err() {
            err(
                errors,
                key_line(sec, "set"),
                format!("{what}: set `{k}`: not a field name"),
            );
        }
    }
}

fn check_classify(c: &ClassifyConfig, sec: &Section<'_>, errors: &mut Vec<ConfigError>) {
    let what = format!("[[classify]] \"{}\"", c.class);
    if c.class.is_empty()
        || !c
            .class
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
    {
        err(
            errors,
            key_line(sec, "class"),
            format!("{what}: class names are lowercase letters, digits, `-` and `_`"),
        );
    }
    for s in &c.src {
        if crate::net::Cidr::parse(s).is_none() {
            err(
                errors,
                key_line(sec, "src"),
                format!("{what}: `src` entry \"{s}\" is not an address or CIDR"),
            );
        }
    }
    if c.src.is_empty() && c.matches.is_empty() && c.contains.is_none() {
        err(
            errors,
            sec.line,
            format!("{what}: needs at least one of `src`, `match`, `contains`"),
        );
    }
    check_match(&c.matches, sec, &what, errors);
}

/// The line of each input's and output's `name`, in order.
#[derive(Default)]
struct NameLines {
    inputs: Vec<usize>,
    outputs: Vec<usize>,
}

/// Checks across sections: unique names, at least one input and output.
fn check_whole(
    cfg: &Config,
    sections: &[Section<'_>],
    lines: &NameLines,
    errors: &mut Vec<ConfigError>,
) {
    let mut seen = std::collections::HashSet::new();
    for (k, i) in cfg.inputs.iter().enumerate() {
        if !seen.insert(&i.name) {
            err(
                errors,
                lines.inputs[k],
                format!("[[input]]: name \"{}\" is used twice", i.name),
            );
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (k, o) in cfg.outputs.iter().enumerate() {
        if !seen.insert(&o.name) {
            err(
                errors,
                lines.outputs[k],
                format!("[[output]]: name \"{}\" is used twice", o.name),
            );
        }
    }
    let mut listens = std::collections::HashMap::new();
    for (k, i) in cfg.inputs.iter().enumerate() {
        let proto = if i.kind == InputType::Udp {
            "udp"
        } else {
            "tcp"
        };
        if !i.listen.ends_with(":0")
            && let Some(prev) = listens.insert((proto, i.listen.clone()), i.name.clone())
        {
            err(
                errors,
                lines.inputs[k],
                format!(
                    "[[input]] \"{}\": {} {} is also used by input \"{prev}\"",
                    i.name, proto, i.listen
                ),
            );
        }
    }
    if cfg.pipeline.workers == 0 {
        let l = sections
            .iter()
            .find(|s| s.name == "pipeline")
            .map_or(1, |s| key_line(s, "workers"));
        err(errors, l, "[pipeline]: `workers` must be at least 1".into());
    }
    if cfg.pipeline.batch_records == 0 || cfg.pipeline.queue_batches == 0 {
        let l = sections
            .iter()
            .find(|s| s.name == "pipeline")
            .map_or(1, |s| s.line);
        err(
            errors,
            l,
            "[pipeline]: `batch_records` and `queue_batches` must be at least 1".into(),
        );
    }
    if let Some(l) = &cfg.metrics.listen
        && l.parse::<SocketAddr>().is_err()
    {
        let line = sections
            .iter()
            .find(|s| s.name == "metrics")
            .map_or(1, |s| key_line(s, "listen"));
        err(
            errors,
            line,
            format!("[metrics]: `listen` = \"{l}\" is not an ip:port address"),
        );
    }
    if cfg.inputs.is_empty() && errors.is_empty() {
        err(
            errors,
            1,
            "no [[input]]: sluice would receive nothing".into(),
        );
    }
    if cfg.outputs.is_empty() && errors.is_empty() {
        err(
            errors,
            1,
            "no [[output]]: every record would be dropped".into(),
        );
    }
}

#[cfg(test)]
mod tests;
