//! Enrich: add fields to records by rule, and who-holds-this-IP.
//!
//! Receives batches from classify; for every record, applies each
//! `[[enrich]]` rule whose match holds (`set = { field = "template" }`,
//! `{other}` inserting another field's value, `{{`/`}}` literal braces), then
//! adds `src_user` from the identity table when the record's `src_ip` is
//! known. Rules are compiled once; rendered values go into the batch
//! arena. A template whose field is missing leaves its target unset (as
//! Vector does). Must never block on anything but its output channel, and
//! never allocate per record outside the arena.

use bumpalo::Bump;

use crate::config::EnrichConfig;
use crate::encode::Names;
use crate::identity::Identity;
use crate::matcher::{FieldRef, Matcher, msg_key};
use crate::record::Record;

/// A value with `{field}` holes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Lit(Box<[u8]>),
    Field(FieldRef),
}

impl Template {
    pub fn parse(s: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut lit = Vec::new();
        let b = s.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'{' if b.get(i + 1) == Some(&b'{') => {
                    lit.push(b'{');
                    i += 2;
                }
                b'}' if b.get(i + 1) == Some(&b'}') => {
                    lit.push(b'}');
                    i += 2;
                }
                b'{' => {
                    let end = s[i + 1..]
                        .find('}')
                        .ok_or_else(|| format!("unclosed `{{` at byte {i}"))?;
                    let name = &s[i + 1..i + 1 + end];
                    let f =
                        FieldRef::parse(name.trim()).map_err(|e| format!("`{{{name}}}`: {e}"))?;
                    if !lit.is_empty() {
                        parts.push(Part::Lit(std::mem::take(&mut lit).into()));
                    }
                    parts.push(Part::Field(f));
                    i += end + 2;
                }
                b'}' => return Err(format!("lone `}}` at byte {i} (write `}}}}` for a brace)")),
                c => {
                    lit.push(c);
                    i += 1;
                }
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(lit.into()));
        }
        Ok(Template { parts })
    }

    /// The one field the template is made of (`"{field}"`), if that is all.
    fn single_field(&self) -> Option<&FieldRef> {
        match self.parts.as_slice() {
            [Part::Field(f)] => Some(f),
            _ => None,
        }
    }

    /// The value when the template has no `{field}`.
    pub fn fixed(&self) -> Option<Vec<u8>> {
        let mut v = Vec::new();
        for p in &self.parts {
            match p {
                Part::Lit(l) => v.extend_from_slice(l),
                Part::Field(_) => return None,
            }
        }
        Some(v)
    }

    /// Renders into `out`; false when a referenced field is missing.
    pub fn render(&self, rec: &Record<'_>, names: &Names, out: &mut Vec<u8>) -> bool {
        for p in &self.parts {
            match p {
                Part::Lit(l) => out.extend_from_slice(l),
                Part::Field(f) => {
                    if !f.write_value(rec, names, out) {
                        return false;
                    }
                }
            }
        }
        true
    }
}

/// One compiled `[[enrich]]` rule.
pub struct Rule {
    matcher: Matcher,
    /// Field name, and its template (or its fixed value when the template
    /// has no `{field}`). Names and fixed values are interned for the life
    /// of the process (see [`intern`]) so that records in flight can borrow
    /// them without a copy per record, whatever reloads happen.
    set: Vec<SetField>,
}

/// Returns a `'static` copy of `bytes`, the same one for equal bytes.
/// Rule names and fixed values live as long as the process so that records
/// still in flight after a reload can keep borrowing them; interning makes
/// that cost one copy per distinct string ever configured, not one per
/// reload, so reloading the same config forever uses no more memory.
fn intern(bytes: Vec<u8>) -> &'static [u8] {
    static TABLE: std::sync::LazyLock<
        parking_lot::Mutex<std::collections::HashSet<&'static [u8]>>,
    > = std::sync::LazyLock::new(Default::default);
    let mut table = TABLE.lock();
    if let Some(s) = table.get(bytes.as_slice()) {
        return s;
    }
    let s: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    table.insert(s);
    s
}

/// One `field = "template"` of a rule.
struct SetField {
    key: &'static [u8],
    template: Template,
    fixed: Option<&'static [u8]>,
}

/// The enrich stage's compiled state.
pub struct Enricher {
    rules: Vec<Rule>,
    identity: Option<Identity>,
    names: Names,
    scratch: Vec<u8>,
}

impl Enricher {
    /// The identity table's counters, when identity enrichment is on.
    pub fn identity_stats(&self) -> Option<std::sync::Arc<crate::identity::IdentityStats>> {
        self.identity.as_ref().map(|i| i.stats.clone())
    }

    pub fn new(
        cfg: &[EnrichConfig],
        names: &Names,
        identity: Option<Identity>,
    ) -> Result<Enricher, String> {
        let mut rules = Vec::new();
        for (i, r) in cfg.iter().enumerate() {
            let label = r.name.clone().unwrap_or_else(|| format!("#{}", i + 1));
            let matcher = Matcher::compile(&r.matches, names)
                .map_err(|e| format!("[[enrich]] {label}: {e}"))?;
            let mut set = Vec::new();
            for (k, t) in &r.set {
                let key = msg_key(k.strip_prefix("msg.").unwrap_or(k))
                    .map_err(|e| format!("[[enrich]] {label}: set `{k}`: {e}"))?;
                let t = Template::parse(t)
                    .map_err(|e| format!("[[enrich]] {label}: set `{k}`: {e}"))?;
                let fixed: Option<&'static [u8]> = t.fixed().map(intern);
                let key: &'static [u8] = intern(key.into());
                set.push(SetField {
                    key,
                    template: t,
                    fixed,
                });
            }
            rules.push(Rule { matcher, set });
        }
        Ok(Enricher {
            rules,
            identity,
            names: names.clone(),
            scratch: Vec::with_capacity(1024),
        })
    }

    /// Takes the rules (and names) of `new`, keeping this enricher's
    /// identity table so that a reload forgets no one; applies `new`'s
    /// identity settings to it.
    pub fn take_rules(&mut self, new: Enricher, identity: &crate::config::IdentityConfig) {
        self.rules = new.rules;
        self.names = new.names;
        match (&mut self.identity, identity.enabled) {
            (Some(id), true) => id.reconfigure(identity),
            (None, true) => self.identity = new.identity,
            (_, false) => self.identity = None,
        }
    }

    /// Starts loading the identity table slot `rec` will probe (see
    /// [`crate::stage::StageWork::prefetch`]).
    pub fn prefetch(&self, rec: &Record<'_>) {
        if let Some(id) = &self.identity {
            id.prefetch(rec);
        }
    }

    /// Enriches one record.
    pub fn apply<'a>(&mut self, bump: &'a Bump, rec: &mut Record<'a>) {
        for r in &self.rules {
            if !r.matcher.matches(rec) {
                continue;
            }
            for f in &r.set {
                if let Some(v) = f.fixed {
                    rec.fields.set(bump, f.key, v);
                    continue;
                }
                // `"{field}"` alone: the record's own bytes, not a copy.
                match f.template.single_field().and_then(|r| r.borrow(rec)) {
                    Some(Some(v)) => {
                        rec.fields.set(bump, f.key, v);
                        continue;
                    }
                    Some(None) => continue,
                    None => {}
                }
                self.scratch.clear();
                if f.template.render(rec, &self.names, &mut self.scratch) {
                    let v = bump.alloc_slice_copy(&self.scratch);
                    rec.fields.set(bump, f.key, v);
                }
            }
        }
        if let Some(id) = &mut self.identity {
            id.learn(rec);
            id.enrich(bump, rec);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_parse_holes_and_escaped_braces() {
        let t = Template::parse("https://h/x%2A{eventid}?{{y}}").unwrap();
        assert_eq!(t.parts.len(), 3);
        assert!(Template::parse("{unclosed").is_err());
        assert!(Template::parse("lone } brace").is_err());
        assert!(Template::parse("{Bad Name}").is_err());
    }

    #[test]
    fn single_field_templates_borrow_with_the_same_meaning() {
        use crate::record::{Fields, UNSPECIFIED};
        use crate::time::Timestamp;
        let set = [
            ("h", "{meta.host}"),
            ("a", "{meta.app}"),
            ("u", "{user}"),
            ("e", "{empty}"),
            ("m", "{missing}"),
            ("c", "{meta.class}"),
            ("x", "<{user}>"),
        ];
        let cfg = EnrichConfig {
            name: None,
            matches: Default::default(),
            set: set
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let names = Names::new(vec!["tcp".into()], crate::classify::class_names(&[]));
        let mut e = Enricher::new(&[cfg], &names, None).unwrap();
        let bump = Bump::new();
        let mut r = Record::new(b"", Timestamp::from_unix_ns(0), UNSPECIFIED, 0);
        r.host = b"dc01";
        r.fields = Fields::with_capacity(&bump, 4);
        r.fields.push(&bump, b"user", b"alice");
        r.fields.push(&bump, b"empty", b"");
        e.apply(&bump, &mut r);
        let f = &r.fields;
        assert_eq!(f.get(b"h"), Some(&b"dc01"[..]));
        assert_eq!(f.get(b"a"), None, "an empty header field is missing");
        assert_eq!(f.get(b"u"), Some(&b"alice"[..]));
        assert_eq!(
            f.get(b"e"),
            Some(&b""[..]),
            "an empty message field is a value"
        );
        assert_eq!(f.get(b"m"), None);
        assert!(f.get(b"c").is_some());
        assert_eq!(f.get(b"x"), Some(&b"<alice>"[..]));
    }

    #[test]
    fn interned_strings_are_shared_across_compiles() {
        let a = intern(b"event_url".to_vec());
        let b = intern(b"event_url".to_vec());
        assert_eq!(a.as_ptr(), b.as_ptr());
        assert_ne!(intern(b"other".to_vec()).as_ptr(), a.as_ptr());
    }
}
