//! Classify: give every record a `meta.class` and its class's fields.
//!
//! Receives parsed batches from the input workers; emits them to enrich
//! with `class` set. User rules (`[[classify]]`, by sender CIDR, field
//! match or substring) are tried first, in config order; then the
//! built-in recognisers, cheapest test first:
//!
//! | class         | recognised by                                   | module          |
//! |---------------|-------------------------------------------------|-----------------|
//! | `flowmon-ads` | JSON in Flowmon's event form, or CEF from Flowmon | [`flowmon`]   |
//! | `windows`     | JSON with a Windows event id and a Windows key  | [`windows`]     |
//! | `json`        | any other JSON object                           |                 |
//! | `cef`         | MSG starting with `CEF:<digit>`                 | [`cef`]         |
//! | `linux-auth`  | APP-NAME `sshd`, `sshd-session` or `sudo`       | [`linux_auth`]  |
//! | `syslog`      | everything else                                 |                 |
//!
//! A user rule that names a built-in class also gets that class's fields
//! (CEF parsed, Windows keys normalised, ...). Rules are compiled once at
//! start-up; a recogniser looks at a prefix, the APP-NAME or the keys
//! before doing any work. Per record it never allocates outside the batch
//! arena (renamed keys are re-sliced, new values go into the arena), and
//! never drops: a malformed CEF record keeps what parsed, is flagged
//! `bad_cef` and counted.

pub mod cef;
pub mod flowmon;
pub mod linux_auth;
pub mod windows;

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bumpalo::Bump;
use memchr::memmem;

use crate::config::ClassifyConfig;
use crate::encode::Names;
use crate::matcher::Matcher;
use crate::net::CidrSet;
use crate::record::{ClassId, Fields, Record, class, flaw};

/// One compiled `[[classify]]` rule.
struct UserRule {
    class: ClassId,
    src: CidrSet,
    matcher: Matcher,
    contains: Option<memmem::Finder<'static>>,
}

impl UserRule {
    fn matches(&self, rec: &Record<'_>) -> bool {
        (self.src.is_empty() || self.src.contains(rec.src.ip()))
            && self.matcher.matches(rec)
            && self
                .contains
                .as_ref()
                .is_none_or(|f| f.find(rec.raw).is_some())
    }
}

/// The class names in use: built-ins first, then user classes in config
/// order.
pub fn class_names(cfg: &[ClassifyConfig]) -> Vec<String> {
    let mut names: Vec<String> = class::BUILTIN.iter().map(|s| s.to_string()).collect();
    for c in cfg {
        if !names.contains(&c.class) {
            names.push(c.class.clone());
        }
    }
    names
}

/// Most classes counted by name; records of classes beyond it (a config
/// with hundreds of user classes) are counted under `other`.
const COUNTED_CLASSES: usize = 256;

/// What the classify stage counted, for `/metrics`. Counters are written
/// only by the classify thread (plain load + store, no read-modify-write
/// on the hot path) and read at scrape time. They outlive reloads: class
/// ids are append-only, so a reload only adds names.
pub struct ClassifyStats {
    names: parking_lot::Mutex<Vec<String>>,
    records: Box<[AtomicU64]>,
    other: AtomicU64,
    bad_cef: AtomicU64,
}

impl ClassifyStats {
    fn new(names: &[String]) -> ClassifyStats {
        ClassifyStats {
            names: parking_lot::Mutex::new(names.to_vec()),
            records: (0..COUNTED_CLASSES).map(|_| AtomicU64::new(0)).collect(),
            other: AtomicU64::new(0),
            bad_cef: AtomicU64::new(0),
        }
    }

    #[inline]
    fn bump(c: &AtomicU64) {
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    #[inline]
    fn count(&self, class: ClassId) {
        ClassifyStats::bump(self.records.get(class as usize).unwrap_or(&self.other));
    }

    /// Records given class `name` so far.
    pub fn records(&self, name: &str) -> u64 {
        self.names
            .lock()
            .iter()
            .position(|n| n == name)
            .and_then(|i| self.records.get(i))
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// Appends the Prometheus exposition of these counters to `out`.
    pub fn render(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP sluice_classify_records_total Records classified, by class.\n\
             # TYPE sluice_classify_records_total counter"
        );
        for (n, c) in self.names.lock().iter().zip(self.records.iter()) {
            let _ = writeln!(
                out,
                "sluice_classify_records_total{{class=\"{n}\"}} {}",
                c.load(Ordering::Relaxed)
            );
        }
        let other = self.other.load(Ordering::Relaxed);
        if other > 0 {
            let _ = writeln!(
                out,
                "sluice_classify_records_total{{class=\"other\"}} {other}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP sluice_classify_parse_errors_total Records kept despite a class parser problem, by reason.\n\
             # TYPE sluice_classify_parse_errors_total counter\n\
             sluice_classify_parse_errors_total{{reason=\"bad_cef\"}} {}",
            self.bad_cef.load(Ordering::Relaxed)
        );
    }
}

/// The classify stage's compiled state.
pub struct Classifier {
    rules: Vec<UserRule>,
    stats: Arc<ClassifyStats>,
}

impl Classifier {
    pub fn new(cfg: &[ClassifyConfig], names: &Names) -> Result<Classifier, String> {
        let mut rules = Vec::new();
        for c in cfg {
            let id = names
                .classes()
                .iter()
                .position(|n| *n == c.class)
                .ok_or_else(|| format!("[[classify]]: unknown class {}", c.class))?
                as ClassId;
            let src = CidrSet::parse_all(&c.src)
                .ok_or_else(|| format!("[[classify]] \"{}\": bad `src`", c.class))?;
            let matcher = Matcher::compile(&c.matches, names)
                .map_err(|e| format!("[[classify]] \"{}\": {e}", c.class))?;
            let contains = c
                .contains
                .as_ref()
                .map(|s| memmem::Finder::new(s.as_bytes()).into_owned());
            rules.push(UserRule {
                class: id,
                src,
                matcher,
                contains,
            });
        }
        Ok(Classifier {
            rules,
            stats: Arc::new(ClassifyStats::new(names.classes())),
        })
    }

    /// The stage's counters (for `/metrics`).
    pub fn stats(&self) -> Arc<ClassifyStats> {
        self.stats.clone()
    }

    /// Takes `new`'s rules (reload), keeping this classifier's counters
    /// and adding the new class names.
    pub fn take_rules(&mut self, new: Classifier) {
        self.rules = new.rules;
        let names = new.stats.names.lock().clone();
        *self.stats.names.lock() = names;
    }

    /// Classifies one record and fills in its class's fields.
    pub fn apply<'a>(&mut self, bump: &'a Bump, rec: &mut Record<'a>) {
        let user = self.rules.iter().find(|r| r.matches(rec)).map(|r| r.class);
        let ok = match user {
            Some(c) => {
                rec.class = c;
                class_fields(bump, rec, c)
            }
            None => builtin(bump, rec),
        };
        if !ok {
            rec.flaws |= flaw::BAD_CEF;
            ClassifyStats::bump(&self.stats.bad_cef);
        }
        self.stats.count(rec.class);
    }
}

/// The built-in recognisers, in order. Sets `rec.class`; returns false
/// when a class parser found the record malformed.
fn builtin<'a>(bump: &'a Bump, rec: &mut Record<'a>) -> bool {
    if rec.json {
        rec.class = if flowmon::is_flowmon_json(&rec.fields) {
            flowmon::normalise_json(&mut rec.fields);
            class::FLOWMON_ADS
        } else if let Some(at) = windows::recognise(&rec.fields, true) {
            windows::normalise(bump, &mut rec.fields, at);
            class::WINDOWS
        } else {
            class::JSON
        };
        return true;
    }
    if let Some(at) = cef::find(rec.msg) {
        return parse_cef(bump, rec, at, None);
    }
    if linux_auth::is_auth_app(rec.app) {
        rec.class = class::LINUX_AUTH;
        linux_auth::extract(bump, rec.app, rec.msg, &mut rec.fields);
        return true;
    }
    rec.class = class::SYSLOG;
    true
}

/// The fields of built-in class `c` for a record a user rule put in it.
fn class_fields<'a>(bump: &'a Bump, rec: &mut Record<'a>, c: ClassId) -> bool {
    match c {
        class::FLOWMON_ADS if rec.json => flowmon::normalise_json(&mut rec.fields),
        class::CEF | class::FLOWMON_ADS => {
            if let Some(at) = cef::find(rec.msg) {
                return parse_cef(bump, rec, at, Some(c));
            }
        }
        class::WINDOWS if rec.json => {
            if let Some(at) = windows::recognise(&rec.fields, false) {
                windows::normalise(bump, &mut rec.fields, at);
            }
        }
        class::LINUX_AUTH => {
            // Values cut from the MSG text: see `Record::clean_json`.
            rec.clean_json = (0, 0);
            linux_auth::extract(bump, rec.app, rec.msg, &mut rec.fields)
        }
        _ => {}
    }
    true
}

/// Parses the CEF text at `rec.msg[at..]`: its fields replace the
/// `message` field (the CEF text itself; `raw` still has it), after any
/// structured-data fields. The class is `forced`, or Flowmon/CEF by the
/// header. Returns false when the CEF was malformed; an incomplete header
/// also keeps `message`.
fn parse_cef<'a>(bump: &'a Bump, rec: &mut Record<'a>, at: usize, forced: Option<ClassId>) -> bool {
    // (`cef::find` needs MSG to start with `CEF:`, so a JSON record, whose
    // clean range would cover its MSG, never gets here.)
    let text = &rec.msg[at..];
    let (h, ext) = cef::split_header(bump, text);
    let class = forced.unwrap_or_else(|| {
        if flowmon::is_flowmon_cef(h.vendor(), h.product()) {
            class::FLOWMON_ADS
        } else {
            class::CEF
        }
    });
    let dialect = if class == class::FLOWMON_ADS {
        cef::Dialect::Flowmon
    } else {
        cef::Dialect::Generic
    };
    let old = std::mem::take(&mut rec.fields);
    let mut f = Fields::with_capacity(bump, old.len() + ext.map_or(8, cef::field_estimate));
    for x in old.as_slice().iter().filter(|x| x.key != b"message") {
        f.push(bump, x.key, x.value);
    }
    cef::push_header(bump, &h, dialect, &mut f);
    let ok = match ext {
        Some(ext) => cef::push_extension(bump, ext, dialect, &mut f),
        None => {
            f.push(bump, b"message", rec.msg);
            false
        }
    };
    if class == class::FLOWMON_ADS {
        flowmon::finish_cef(&mut f);
    }
    rec.fields = f;
    rec.class = class;
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MatchConfig, MatchScalar, OneOrMany};
    use crate::parse::Parser;
    use crate::time::Timestamp;
    use std::net::SocketAddr;

    fn names(extra: &[&str]) -> Names {
        let mut classes: Vec<String> = class::BUILTIN.iter().map(|s| s.to_string()).collect();
        classes.extend(extra.iter().map(|s| s.to_string()));
        Names::new(vec!["tcp".into()], classes)
    }

    fn rule(class: &str, src: &[&str], contains: Option<&str>) -> ClassifyConfig {
        ClassifyConfig {
            class: class.into(),
            src: src.iter().map(|s| s.to_string()).collect(),
            matches: MatchConfig::new(),
            contains: contains.map(str::to_string),
        }
    }

    fn classify<'a>(c: &mut Classifier, bump: &'a Bump, raw: &str, from: &str) -> Record<'a> {
        let src: SocketAddr = from.parse().unwrap();
        let raw = bump.alloc_slice_copy(raw.as_bytes());
        let mut rec = Record::new(raw, Timestamp::from_unix_ns(0), src, 0);
        Parser::with_offset(0).parse(bump, &mut rec);
        c.apply(bump, &mut rec);
        rec
    }

    #[test]
    fn user_rules_come_before_the_built_in_classes() {
        let n = names(&["firewall"]);
        let mut c = Classifier::new(&[rule("firewall", &["10.9.0.0/16"], None)], &n).unwrap();
        let bump = Bump::new();
        let cef = "<134>1 2026-03-02T10:23:00Z fw - - - - CEF:0|Acme|FW|1|d|n|1|src=1.2.3.4";
        let r = classify(&mut c, &bump, cef, "10.9.1.1:514");
        assert_eq!(n.class(r.class), "firewall");
        assert_eq!(r.fields.get(b"src_ip"), None);
        let r = classify(&mut c, &bump, cef, "10.8.1.1:514");
        assert_eq!(r.class, class::CEF);
        assert_eq!(r.fields.get(b"src_ip"), Some(&b"1.2.3.4"[..]));
    }

    #[test]
    fn a_reload_keeps_the_counters_and_adds_class_names() {
        let mut c = Classifier::new(&[], &names(&[])).unwrap();
        let stats = c.stats();
        let bump = Bump::new();
        classify(
            &mut c,
            &bump,
            "<13>Oct 11 22:14:15 h app: x",
            "10.0.0.1:514",
        );
        let n = names(&["firewall"]);
        let new = Classifier::new(&[rule("firewall", &["10.9.0.0/16"], None)], &n).unwrap();
        c.take_rules(new);
        let r = classify(
            &mut c,
            &bump,
            "<13>Oct 11 22:14:15 h app: y",
            "10.9.0.1:514",
        );
        assert_eq!(n.class(r.class), "firewall");
        assert_eq!(stats.records("syslog"), 1);
        assert_eq!(stats.records("firewall"), 1);
        let mut text = String::new();
        stats.render(&mut text);
        assert!(text.contains("sluice_classify_records_total{class=\"firewall\"} 1"));
    }

    #[test]
    fn a_user_rule_naming_a_built_in_class_gets_its_fields() {
        let n = names(&[]);
        let mut m = MatchConfig::new();
        m.insert(
            "app".into(),
            OneOrMany::One(MatchScalar::Str("netflow-ads".into())),
        );
        let by_app = ClassifyConfig {
            matches: m,
            ..rule("flowmon-ads", &[], None)
        };
        let mut c = Classifier::new(&[by_app], &n).unwrap();
        let bump = Bump::new();
        let r = classify(
            &mut c,
            &bump,
            "<129>1 2026-03-02T10:23:00Z fm netflow-ads - - - CEF:0|Acme|Probe|1|SCAN|Scan|5|externalId=12 src=10.0.0.1",
            "10.0.0.2:514",
        );
        assert_eq!(r.class, class::FLOWMON_ADS);
        assert_eq!(r.fields.get(b"eventid"), Some(&b"12"[..]));
        assert_eq!(r.fields.get(b"type"), Some(&b"SCAN"[..]));
    }

    #[test]
    fn text_cut_from_a_json_message_parsed_in_place_is_escaped() {
        // A batch parses a clean JSON MSG where it lies in the frame, so
        // the frame's JSON text is inside the record's clean range; a rule
        // forcing linux-auth on such a record cuts values (here from a
        // sudo line) with quotes in them out of that text, and they must
        // not be taken for clean JSON strings. (CEF parsing needs MSG to
        // start with `CEF:`, so it never runs on a JSON record.)
        use crate::batch::{Batch, BatchOwner};
        use crate::encode::json::write_record;
        let n = names(&[]);
        {
            let class = "linux-auth";
            let mut c = Classifier::new(&[rule(class, &[], None)], &n).unwrap();
            let mut owner = BatchOwner::default();
            for raw in [
                &br#"<14>1 - h sudo - - - {"u":"alice : TTY=pts/0 ; PWD=/ ; USER=root ; COMMAND=/bin/ls","x":"y"}"#[..],
                br#"<14>1 - h sshd - - - {"m":"Accepted password for a from 10.0.0.1 port 1","u":"b"}"#,
            ] {
                owner.push_frame(raw, "10.0.0.2:514".parse().unwrap(), Timestamp::from_unix_ns(0), 0, 0);
            }
            let mut batch = Batch::parse(owner, &mut Parser::with_offset(0));
            crate::stage::process(&mut c, &mut batch);
            batch.with_dependent(|_, recs| {
                for r in recs.list.iter() {
                    assert!(r.json);
                    let mut out = Vec::new();
                    write_record(&mut out, r, &n);
                    let v: serde_json::Value = serde_json::from_slice(&out).unwrap_or_else(|e| {
                        panic!("{class}: {e}: {}", String::from_utf8_lossy(&out))
                    });
                    assert!(v["msg"].is_object());
                }
            });
        }
    }
}
