//! CEF (ArcSight Common Event Format): header and extension into fields.
//!
//! `CEF:Version|Device Vendor|Device Product|Device Version|Device Event
//! Class ID|Name|Severity|Extension`. In the seven header fields `\|` and
//! `\\` are escapes. The extension is `key=value` pairs separated by
//! spaces; a value runs until the next ` key=`, so it may hold spaces; `\=`,
//! `\\`, `\n` and `\r` are escapes there and a `|` needs none. Custom
//! fields come in pairs (`cs1=value cs1Label=name`, also `cn1`, `cfp1`,
//! `c6a1`, `flexString1`, `deviceCustomString1`, ...): the value is named
//! after its label, as ArcSight does. Standard keys get readable names
//! ([`readable_key`]); other keys are normalised (`deviceExternalId` →
//! `deviceexternalid`).
//!
//! Receives the MSG bytes; pushes fields into the record's arena-backed
//! field list. Values borrow the message unless they hold an escape, in
//! which case the unescaped copy goes into the arena. Never allocates on
//! the heap and never fails: what does not parse is kept and reported.

use bumpalo::Bump;
use memchr::{memchr, memchr_iter, memchr2_iter};

use crate::bytes::prefix8;
use crate::record::{Fields, normalize_key};

/// How the fields of one vendor's CEF are named.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// Standard names ([`readable_key`]).
    Generic,
    /// Flowmon ADS: the Device Event Class ID is the event `type` and
    /// `externalId` is the ADS event id, `eventid` (see `flowmon.rs`).
    Flowmon,
}

/// Names of the seven header fields, in order.
const HEADER_NAMES: [&[u8]; 7] = [
    b"cef_version",
    b"device_vendor",
    b"device_product",
    b"device_version",
    b"event_class_id",
    b"name",
    b"severity",
];

/// The header fields found (unescaped) and how many there were.
#[derive(Debug, Default)]
pub struct Header<'a> {
    pub fields: [&'a [u8]; 7],
    pub count: usize,
}

impl<'a> Header<'a> {
    pub fn vendor(&self) -> &'a [u8] {
        self.fields[1]
    }
    pub fn product(&self) -> &'a [u8] {
        self.fields[2]
    }
    pub fn complete(&self) -> bool {
        self.count == 7
    }
}

/// Where the CEF text starts in `msg`: `CEF:` followed by a version digit,
/// at the start after optional spaces (a syslog header, if any, was taken
/// off by the parser). None when `msg` is not CEF.
#[inline]
pub fn find(msg: &[u8]) -> Option<usize> {
    let lead = msg.iter().take_while(|&&b| b == b' ').count();
    let s = &msg[lead..];
    (s.len() > 5 && s.starts_with(b"CEF:") && s[4].is_ascii_digit()).then_some(lead)
}

/// Splits the header of `cef` (which starts with `CEF:`). Returns the
/// header and the extension; the extension is None when fewer than seven
/// `|` were found (the header is then partial: what was there).
pub fn split_header<'a>(bump: &'a Bump, cef: &'a [u8]) -> (Header<'a>, Option<&'a [u8]>) {
    let s = &cef[4.min(cef.len())..];
    let mut h = Header::default();
    let mut start = 0;
    // One SIMD scan for both delimiters (a search per field costs more
    // than the field); a backslash makes the next byte plain text.
    let mut skip_to = 0;
    let mut escaped = false;
    for i in memchr2_iter(b'|', b'\\', s) {
        if i < skip_to {
            continue;
        }
        if s[i] == b'\\' {
            escaped = true;
            skip_to = i + 2;
            continue;
        }
        h.fields[h.count] = unescape_header(bump, &s[start..i], escaped);
        h.count += 1;
        start = i + 1;
        escaped = false;
        if h.count == 7 {
            return (h, Some(&s[start..]));
        }
    }
    if start < s.len() {
        h.fields[h.count] = unescape_header(bump, &s[start..], escaped);
        h.count += 1;
    }
    (h, None)
}

/// `\|` → `|`, `\\` → `\` (CEF header escapes); other backslashes stay.
fn unescape_header<'a>(bump: &'a Bump, v: &'a [u8], escaped: bool) -> &'a [u8] {
    if !escaped {
        return v;
    }
    unescape(bump, v, |c| matches!(c, b'|' | b'\\').then_some(c))
}

/// `\=` → `=`, `\\` → `\`, `\n` → LF, `\r` → CR (CEF extension escapes);
/// other backslashes stay.
fn unescape_value<'a>(bump: &'a Bump, v: &'a [u8]) -> &'a [u8] {
    if memchr(b'\\', v).is_none() {
        return v;
    }
    unescape(bump, v, |c| match c {
        b'=' | b'\\' => Some(c),
        b'n' => Some(b'\n'),
        b'r' => Some(b'\r'),
        _ => None,
    })
}

fn unescape<'a>(bump: &'a Bump, v: &[u8], map: impl Fn(u8) -> Option<u8>) -> &'a [u8] {
    let out = bump.alloc_slice_fill_copy(v.len(), 0u8);
    let mut n = 0;
    let mut i = 0;
    while i < v.len() {
        let c = v[i];
        match (c, v.get(i + 1).and_then(|&next| map(next))) {
            (b'\\', Some(u)) => {
                out[n] = u;
                i += 2;
            }
            _ => {
                out[n] = c;
                i += 1;
            }
        }
        n += 1;
    }
    &out[..n]
}

/// Low/Medium/High/Very-High for a CEF severity, numeric (0-3, 4-6, 7-8,
/// 9-10) or already a word.
pub fn severity_label(sev: &[u8]) -> Option<&'static [u8]> {
    let sev = sev.trim_ascii();
    if !sev.is_empty() && sev.len() <= 2 && sev.iter().all(u8::is_ascii_digit) {
        let n = sev.iter().fold(0u32, |a, &b| a * 10 + (b - b'0') as u32);
        return match n {
            0..=3 => Some(b"Low"),
            4..=6 => Some(b"Medium"),
            7..=8 => Some(b"High"),
            9..=10 => Some(b"Very-High"),
            _ => None,
        };
    }
    const WORDS: [&[u8]; 4] = [b"Low", b"Medium", b"High", b"Very-High"];
    WORDS
        .into_iter()
        .find(|w| w.eq_ignore_ascii_case(sev))
        .or_else(|| {
            (sev.eq_ignore_ascii_case(b"very high") || sev.eq_ignore_ascii_case(b"veryhigh"))
                .then_some(b"Very-High")
        })
}

/// Standard CEF extension keys (ArcSight's dictionary) and their readable
/// names. `suser`/`duser` become `src_user_name`/`dst_user_name`, leaving
/// `src_user` to identity enrichment.
const READABLE: [(&[u8], &[u8]); 60] = [
    (b"src", b"src_ip"),
    (b"dst", b"dst_ip"),
    (b"spt", b"src_port"),
    (b"dpt", b"dst_port"),
    (b"smac", b"src_mac"),
    (b"dmac", b"dst_mac"),
    (b"shost", b"src_host"),
    (b"dhost", b"dst_host"),
    (b"suser", b"src_user_name"),
    (b"duser", b"dst_user_name"),
    (b"suid", b"src_user_id"),
    (b"duid", b"dst_user_id"),
    (b"spriv", b"src_user_privileges"),
    (b"dpriv", b"dst_user_privileges"),
    (b"sntdom", b"src_nt_domain"),
    (b"dntdom", b"dst_nt_domain"),
    (b"sproc", b"src_process"),
    (b"dproc", b"dst_process"),
    (b"spid", b"src_pid"),
    (b"dpid", b"dst_pid"),
    (b"sourceTranslatedAddress", b"src_nat_ip"),
    (b"destinationTranslatedAddress", b"dst_nat_ip"),
    (b"sourceTranslatedPort", b"src_nat_port"),
    (b"destinationTranslatedPort", b"dst_nat_port"),
    (b"sourceDnsDomain", b"src_dns_domain"),
    (b"destinationDnsDomain", b"dst_dns_domain"),
    (b"sourceServiceName", b"src_service"),
    (b"destinationServiceName", b"dst_service"),
    (b"msg", b"message"),
    (b"rt", b"receipt_time"),
    (b"start", b"start_time"),
    (b"end", b"end_time"),
    (b"act", b"action"),
    (b"app", b"app_protocol"),
    (b"proto", b"protocol"),
    (b"cat", b"category"),
    (b"cnt", b"event_count"),
    (b"in", b"bytes_in"),
    (b"out", b"bytes_out"),
    (b"outcome", b"outcome"),
    (b"reason", b"reason"),
    (b"request", b"url"),
    (b"requestMethod", b"request_method"),
    (b"requestClientApplication", b"user_agent"),
    (b"externalId", b"external_id"),
    (b"fname", b"file_name"),
    (b"filePath", b"file_path"),
    (b"fsize", b"file_size"),
    (b"fileHash", b"file_hash"),
    (b"dvc", b"device_ip"),
    (b"dvchost", b"device_host"),
    (b"dvcmac", b"device_mac"),
    (b"dvcpid", b"device_pid"),
    (b"dtz", b"device_timezone"),
    (b"deviceDirection", b"direction"),
    (b"deviceExternalId", b"device_external_id"),
    (b"deviceFacility", b"device_facility"),
    (b"deviceInboundInterface", b"in_interface"),
    (b"deviceOutboundInterface", b"out_interface"),
    (b"deviceProcessName", b"device_process"),
];

/// Slot of a key prefix in [`READABLE_SLOTS`] (Fibonacci hashing).
const fn slot(p: u64) -> usize {
    (p.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 57) as usize
}

/// Open-addressed table (linear probing) of [`READABLE`] indexes + 1,
/// built at compile time: a lookup hashes the key's first eight bytes and
/// usually compares once.
static READABLE_SLOTS: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut i = 0;
    while i < READABLE.len() {
        let mut h = slot(prefix8(READABLE[i].0));
        while t[h] != 0 {
            h = (h + 1) & 127;
        }
        t[h] = (i + 1) as u8;
        i += 1;
    }
    t
};

/// The readable name of a standard CEF extension key ([`READABLE`]), or
/// None for keys kept under their own (normalised) name.
#[inline]
pub fn readable_key(key: &[u8]) -> Option<&'static [u8]> {
    let p = prefix8(key);
    let mut h = slot(p);
    loop {
        let (k, v) = READABLE[READABLE_SLOTS[h].checked_sub(1)? as usize];
        if k == key {
            return Some(v);
        }
        h = (h + 1) & 127;
    }
}

fn dialect_key(key: &[u8], dialect: Dialect) -> Option<&'static [u8]> {
    match (dialect, key) {
        (Dialect::Flowmon, b"externalId") => Some(b"eventid"),
        _ => readable_key(key),
    }
}

/// Longest label list kept per message (more are kept as plain fields).
const MAX_LABELS: usize = 16;

/// Pushes the header fields (and `severity_label`) into `fields`.
pub fn push_header<'a>(bump: &'a Bump, h: &Header<'a>, dialect: Dialect, fields: &mut Fields<'a>) {
    for (i, v) in h.fields[..h.count].iter().enumerate() {
        let key = match (i, dialect) {
            (4, Dialect::Flowmon) => b"type",
            _ => HEADER_NAMES[i],
        };
        fields.push(bump, key, v);
    }
    if h.count == 7
        && let Some(l) = severity_label(h.fields[6])
    {
        fields.push(bump, b"severity_label", l);
    }
}

/// Parses the extension into `fields`. Returns false when some of it was
/// not `key=value` (that text is kept as `cef_unparsed`).
pub fn push_extension<'a>(
    bump: &'a Bump,
    ext: &'a [u8],
    dialect: Dialect,
    fields: &mut Fields<'a>,
) -> bool {
    let first = fields.len();
    let mut labels: [(&'a [u8], &'a [u8]); MAX_LABELS] = [(b"", b""); MAX_LABELS];
    let mut n_labels = 0;
    let mut ok = true;
    // Backslashes are found by one iterator over the whole extension: a
    // value is unescaped only when the next backslash falls inside it.
    let mut backslashes = memchr_iter(b'\\', ext).peekable();
    let mut emit = |fields: &mut Fields<'a>, key: &'a [u8], start: usize, end: usize| {
        let raw = trim_separator(&ext[start..end]);
        let mut value = raw;
        if backslashes.peek().is_some_and(|&b| b < end) {
            value = unescape_value(bump, raw);
            while backslashes.next_if(|&b| b < end).is_some() {}
        }
        if key.len() > 5 && key.ends_with(b"Label") && n_labels < MAX_LABELS {
            labels[n_labels] = (&key[..key.len() - 5], value);
            n_labels += 1;
            return;
        }
        let name = dialect_key(key, dialect).unwrap_or_else(|| normalize_key(bump, key));
        fields.push(bump, name, value);
    };

    let mut cur: Option<&'a [u8]> = None;
    let mut value_start = 0;
    for eq in memchr_iter(b'=', ext) {
        if is_escaped(ext, eq) {
            continue;
        }
        let ks = key_start(ext, eq);
        if ks == eq || (ks > 0 && ext[ks - 1] != b' ') {
            continue;
        }
        match cur {
            Some(k) => emit(fields, k, value_start, ks),
            None => {
                let lead = trim_separator(&ext[..ks]);
                if !lead.trim_ascii().is_empty() {
                    ok = false;
                    fields.push(bump, b"cef_unparsed", lead);
                }
            }
        }
        cur = Some(&ext[ks..eq]);
        value_start = eq + 1;
    }
    match cur {
        Some(k) => emit(fields, k, value_start, ext.len()),
        None => {
            let rest = ext.trim_ascii();
            if !rest.is_empty() {
                ok = false;
                fields.push(bump, b"cef_unparsed", rest);
            }
        }
    }
    apply_labels(bump, fields, first, &labels[..n_labels]);
    ok
}

/// Renames each labelled custom field (`cs1`) after its label
/// (`cs1Label=Perspective` → `perspective`). A label naming an existing
/// field leaves the custom field's own name; a label without its value
/// is dropped (it describes nothing).
fn apply_labels<'a>(
    bump: &'a Bump,
    fields: &mut Fields<'a>,
    first: usize,
    labels: &[(&[u8], &'a [u8])],
) {
    for &(base, label) in labels {
        let name = normalize_key(bump, label.trim_ascii());
        if name.is_empty() || fields.get(name).is_some() {
            continue;
        }
        if let Some(f) = fields.as_mut_slice()[first..]
            .iter_mut()
            .find(|f| f.key.eq_ignore_ascii_case(base))
        {
            f.key = name;
        }
    }
}

/// Is the byte at `i` preceded by an odd number of backslashes?
#[inline]
fn is_escaped(s: &[u8], i: usize) -> bool {
    s[..i].iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
}

/// Start of the key that ends at `eq`: letters, digits, `_`, `.`, `-`
/// (ArcSight's `ad.` keys use dots).
#[inline]
fn key_start(s: &[u8], eq: usize) -> usize {
    let n = s[..eq]
        .iter()
        .rev()
        .take_while(|&&b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        .count();
    eq - n
}

/// A value without the spaces that separate it from the next pair.
#[inline]
fn trim_separator(v: &[u8]) -> &[u8] {
    let n = v.iter().rev().take_while(|&&b| b == b' ').count();
    &v[..v.len() - n]
}

/// Parses the CEF text `cef` (starting with `CEF:`) into `fields`: the
/// header fields, `severity_label`, then the extension. Returns false when
/// the header was incomplete or part of the extension did not parse.
pub fn parse_into<'a>(
    bump: &'a Bump,
    cef: &'a [u8],
    dialect: Dialect,
    fields: &mut Fields<'a>,
) -> bool {
    let (h, ext) = split_header(bump, cef);
    push_header(bump, &h, dialect, fields);
    match ext {
        Some(ext) => push_extension(bump, ext, dialect, fields),
        None => false,
    }
}

/// A fair number of fields to reserve for `ext`: one per `=`.
pub fn field_estimate(ext: &[u8]) -> usize {
    8 + memchr_iter(b'=', ext).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> (bool, Vec<(String, String)>) {
        let bump = Bump::new();
        let mut f = Fields::with_capacity(&bump, 4);
        let ok = parse_into(
            &bump,
            bump.alloc_slice_copy(s.as_bytes()),
            Dialect::Generic,
            &mut f,
        );
        let v = f
            .as_slice()
            .iter()
            .map(|f| {
                (
                    String::from_utf8_lossy(f.key).into_owned(),
                    String::from_utf8_lossy(f.value).into_owned(),
                )
            })
            .collect();
        (ok, v)
    }

    fn get<'a>(v: &'a [(String, String)], k: &str) -> Option<&'a str> {
        v.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn escaped_pipe_in_header_and_bare_pipe_in_extension_are_text() {
        let (ok, f) = parse(
            r"CEF:0|security|threatmanager|1.0|100|detected a \| in message|10|src=10.0.0.1 act=blocked a | dst=1.1.1.1",
        );
        assert!(ok);
        assert_eq!(get(&f, "name"), Some("detected a | in message"));
        assert_eq!(get(&f, "action"), Some("blocked a |"));
        assert_eq!(get(&f, "dst_ip"), Some("1.1.1.1"));
        assert_eq!(get(&f, "severity_label"), Some("Very-High"));
    }

    #[test]
    fn escaped_backslash_and_equals_unescape_in_both_parts() {
        let (_, f) = parse(
            r"CEF:0|security|threatmanager|1.0|100|detected a \\ in packet|10|src=10.0.0.1 act=blocked a \\ dst=1.1.1.1",
        );
        assert_eq!(get(&f, "name"), Some(r"detected a \ in packet"));
        assert_eq!(get(&f, "action"), Some(r"blocked a \"));
        let (_, f) = parse(
            r"CEF:0|security|threatmanager|1.0|100|detected a = in message|10|src=10.0.0.1 act=blocked a \= dst=1.1.1.1",
        );
        assert_eq!(get(&f, "action"), Some("blocked a ="));
        assert_eq!(get(&f, "dst_ip"), Some("1.1.1.1"));
    }

    #[test]
    fn values_run_to_the_next_key_and_keep_escaped_newlines() {
        let (_, f) = parse(r"CEF:0|V|P|1|sig|n|Low|msg=line one\nline two\r x\=y  spt=80");
        assert_eq!(get(&f, "message"), Some("line one\nline two\r x=y"));
        assert_eq!(get(&f, "src_port"), Some("80"));
        assert_eq!(get(&f, "severity"), Some("Low"));
        assert_eq!(get(&f, "severity_label"), Some("Low"));
    }

    #[test]
    fn custom_fields_are_named_after_their_labels_in_either_order() {
        let (_, f) = parse(
            "CEF:0|V|P|1|sig|n|5|cs1Label=Perspective cs1=Security issues cn1=42 cn1Label=Event Count cs2=orphan deviceCustomString3=x deviceCustomString3Label=Zone",
        );
        assert_eq!(get(&f, "perspective"), Some("Security issues"));
        assert_eq!(get(&f, "event_count"), Some("42"));
        assert_eq!(get(&f, "cs2"), Some("orphan"));
        assert_eq!(get(&f, "zone"), Some("x"));
        assert_eq!(get(&f, "cs1"), None);
        assert_eq!(get(&f, "cs1label"), None);
    }

    #[test]
    fn incomplete_header_keeps_what_was_there_and_reports_it() {
        let (ok, f) = parse("CEF:0|Vendor|Prod");
        assert!(!ok);
        assert_eq!(get(&f, "device_vendor"), Some("Vendor"));
        assert_eq!(get(&f, "device_product"), Some("Prod"));
        assert_eq!(get(&f, "name"), None);
    }

    #[test]
    fn text_that_is_not_key_value_is_kept_as_unparsed() {
        let (ok, f) = parse("CEF:0|V|P|1|s|n|3|garbage here src=1.2.3.4");
        assert!(!ok);
        assert_eq!(get(&f, "cef_unparsed"), Some("garbage here"));
        assert_eq!(get(&f, "src_ip"), Some("1.2.3.4"));
        let (ok, _) = parse("CEF:0|V|P|1|s|n|3|");
        assert!(ok);
    }

    #[test]
    fn every_standard_key_finds_its_own_readable_name() {
        for (i, (k, v)) in READABLE.iter().enumerate() {
            assert_eq!(readable_key(k), Some(*v));
            assert!(READABLE[..i].iter().all(|(k2, v2)| k2 != k && v2 != v));
        }
        // Same first eight bytes, different keys.
        assert_eq!(
            readable_key(b"sourceTranslatedPort"),
            Some(&b"src_nat_port"[..])
        );
        assert_eq!(readable_key(b"sourceTranslated"), None);
        assert_eq!(readable_key(b"sr"), None);
        assert_eq!(readable_key(b"srcx"), None);
    }

    #[test]
    fn severities_map_to_labels() {
        assert_eq!(severity_label(b"0"), Some(&b"Low"[..]));
        assert_eq!(severity_label(b"6"), Some(&b"Medium"[..]));
        assert_eq!(severity_label(b"8"), Some(&b"High"[..]));
        assert_eq!(severity_label(b"very-high"), Some(&b"Very-High"[..]));
        assert_eq!(severity_label(b"11"), None);
        assert_eq!(severity_label(b"Unknown"), None);
    }

    #[test]
    fn cef_is_found_only_at_the_start_of_the_message() {
        assert_eq!(find(b"CEF:0|a"), Some(0));
        assert_eq!(find(b"  CEF:1|a"), Some(2));
        assert_eq!(find(b"xCEF:0|a"), None);
        assert_eq!(find(b"CEF:x|a"), None);
    }

    fn escape_header(s: &str) -> String {
        s.replace('\\', "\\\\").replace('|', "\\|")
    }

    fn escape_value(s: &str) -> String {
        s.replace('\\', "\\\\")
            .replace('=', "\\=")
            .replace('\n', "\\n")
            .replace('\r', "\\r")
    }

    proptest::proptest! {
        /// Whatever the header and extension hold, escaping them as the
        /// CEF spec says and parsing gives them back.
        #[test]
        fn escaped_cef_parses_back_to_its_fields(
            header in proptest::collection::vec("[a-zA-Z0-9 |\\\\=.:-]{0,12}", 6),
            pairs in proptest::collection::btree_map(
                "[a-z][a-z0-9]{0,7}",
                "[a-zA-Z0-9 |\\\\=\n\r.:/-]{0,16}[a-zA-Z0-9|\\\\=.]",
                0..6,
            ),
        ) {
            let pairs: Vec<(String, String)> = pairs
                .into_iter()
                .filter(|(k, _)| readable_key(k.as_bytes()).is_none())
                .collect();
            let mut text = String::from("CEF:0");
            for h in &header {
                text.push('|');
                text.push_str(&escape_header(h));
            }
            text.push('|');
            let ext: Vec<String> = pairs
                .iter()
                .map(|(k, v)| format!("{k}={}", escape_value(v)))
                .collect();
            text.push_str(&ext.join(" "));
            let (ok, f) = parse(&text);
            proptest::prop_assert!(ok, "{}", text);
            for (i, h) in header.iter().enumerate() {
                proptest::prop_assert_eq!(get(&f, &String::from_utf8_lossy(HEADER_NAMES[i + 1])), Some(h.as_str()));
            }
            for (k, v) in &pairs {
                proptest::prop_assert_eq!(get(&f, k), Some(v.as_str()), "{}", text);
            }
        }
    }
}
