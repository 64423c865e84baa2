//! Classify: give every record a `meta.class` and its class's fields.
//!
//! Receives parsed batches from the input workers; emits them to enrich
//! with `class` set. User rules (`[[classify]]`, by sender CIDR, field
//! match or substring) are tried first, in config order; then the
//! built-in recognisers. Rules are compiled once at start-up. Per record
//! it must never allocate outside the batch arena, and never drop.

use bumpalo::Bump;
use memchr::memmem;

use crate::config::ClassifyConfig;
use crate::encode::Names;
use crate::matcher::Matcher;
use crate::net::CidrSet;
use crate::record::{ClassId, Record, class};

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

/// The classify stage's compiled state.
pub struct Classifier {
    rules: Vec<UserRule>,
}

impl Classifier {
    pub fn new(cfg: &[ClassifyConfig], names: &Names) -> Result<Classifier, String> {
        let mut rules = Vec::new();
        for c in cfg {
            let id = names
                .classes
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
        Ok(Classifier { rules })
    }

    /// Classifies one record.
    pub fn apply<'a>(&mut self, bump: &'a Bump, rec: &mut Record<'a>) {
        let _ = bump;
        for r in &self.rules {
            if r.matches(rec) {
                rec.class = r.class;
                return;
            }
        }
        rec.class = if rec.json { class::JSON } else { class::SYSLOG };
    }
}
