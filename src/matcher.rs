//! Match: `match = { field = "value" | ["a", "b"], ... }` compiled once.
//!
//! A field name is a meta field (`class`, `input`, `host`, `app`,
//! `procid`, `msgid`, `facility`, `severity`, `meta.src_ip`) or a message
//! field (any other name, or `msg.<name>`); bare `src_ip` is the message's
//! `src_ip` (the event's source), `meta.src_ip` the sender's address, which
//! also takes CIDRs. All keys must match; a list matches any of its values.
//! Compiled conditions compare ids and bytes; nothing is parsed or
//! allocated per record.

use std::net::IpAddr;

use crate::config::MatchConfig;
use crate::encode::Names;
use crate::encode::json::write_ip;
use crate::net::{Cidr, CidrSet};
use crate::record::{ClassId, FACILITY_NAMES, Record, SEVERITY_NAMES};

/// A meta field of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Meta {
    Class,
    Input,
    Host,
    App,
    Procid,
    Msgid,
    Facility,
    Severity,
    SrcIp,
}

/// Where a named value lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldRef {
    Meta(Meta),
    Msg(Box<[u8]>),
}

impl FieldRef {
    pub fn parse(name: &str) -> Result<FieldRef, String> {
        let meta = |n: &str| -> Option<Meta> {
            Some(match n {
                "class" => Meta::Class,
                "input" => Meta::Input,
                "host" => Meta::Host,
                "app" => Meta::App,
                "procid" => Meta::Procid,
                "msgid" => Meta::Msgid,
                "facility" => Meta::Facility,
                "severity" => Meta::Severity,
                "src_ip" => Meta::SrcIp,
                _ => return None,
            })
        };
        if let Some(m) = name.strip_prefix("meta.") {
            return meta(m)
                .map(FieldRef::Meta)
                .ok_or_else(|| format!("`{m}` is not a meta field"));
        }
        if let Some(m) = name.strip_prefix("msg.") {
            return msg_key(m).map(FieldRef::Msg);
        }
        match meta(name) {
            Some(Meta::SrcIp) | None => msg_key(name).map(FieldRef::Msg),
            Some(m) => Ok(FieldRef::Meta(m)),
        }
    }

    /// The value as a slice of the record itself, when it is one (message
    /// fields and the header's text fields): `Some(None)` when such a field
    /// is missing (an empty header field counts as missing), `None` when
    /// the value has to be rendered ([`FieldRef::write_value`]).
    pub fn borrow<'a>(&self, rec: &Record<'a>) -> Option<Option<&'a [u8]>> {
        let v = match self {
            FieldRef::Msg(k) => return Some(rec.fields.get(k)),
            FieldRef::Meta(Meta::Host) => rec.host,
            FieldRef::Meta(Meta::App) => rec.app,
            FieldRef::Meta(Meta::Procid) => rec.procid,
            FieldRef::Meta(Meta::Msgid) => rec.msgid,
            FieldRef::Meta(_) => return None,
        };
        Some((!v.is_empty()).then_some(v))
    }

    /// Appends the field's text to `out`; false when the record lacks it.
    pub fn write_value(&self, rec: &Record<'_>, names: &Names, out: &mut Vec<u8>) -> bool {
        let v: &[u8] = match self.borrow(rec) {
            Some(Some(v)) => v,
            Some(None) => return false,
            None => match self {
                FieldRef::Meta(Meta::Class) => names.class(rec.class).as_bytes(),
                FieldRef::Meta(Meta::Input) => names.input(rec.input).as_bytes(),
                FieldRef::Meta(Meta::Facility) => FACILITY_NAMES
                    .get(rec.facility() as usize)
                    .map_or(&b""[..], |s| s.as_bytes()),
                FieldRef::Meta(Meta::Severity) => {
                    SEVERITY_NAMES[rec.severity() as usize].as_bytes()
                }
                FieldRef::Meta(Meta::SrcIp) => {
                    write_ip(out, rec.src.ip());
                    return true;
                }
                // Borrowed above.
                FieldRef::Msg(_)
                | FieldRef::Meta(Meta::Host | Meta::App | Meta::Procid | Meta::Msgid) => {
                    return false;
                }
            },
        };
        // A rendered header field with no text is missing, as a borrowed one.
        if v.is_empty() && !matches!(self, FieldRef::Msg(_)) {
            return false;
        }
        out.extend_from_slice(v);
        true
    }
}

/// A message field name as stored: `[a-z0-9_-]+`.
pub fn msg_key(name: &str) -> Result<Box<[u8]>, String> {
    if name.is_empty() {
        return Err("empty field name".into());
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return Err(format!(
            "field names are lowercase `[a-z0-9_-]` (as records store them); try `{}`",
            name.bytes()
                .map(|b| if b.is_ascii_alphanumeric() || b == b'-' {
                    b.to_ascii_lowercase() as char
                } else {
                    '_'
                })
                .collect::<String>()
        ));
    }
    Ok(name.as_bytes().into())
}

#[derive(Clone, Debug)]
enum Cond {
    Class(Vec<ClassId>),
    Input(Vec<u16>),
    Facility(u32),
    Severity(u8),
    SrcIp(CidrSet),
    Host(Vec<Box<[u8]>>),
    App(Vec<Box<[u8]>>),
    Procid(Vec<Box<[u8]>>),
    Msgid(Vec<Box<[u8]>>),
    Msg(Box<[u8]>, Vec<Box<[u8]>>),
}

/// A compiled `match` table. Empty matches everything.
#[derive(Clone, Debug, Default)]
pub struct Matcher {
    conds: Vec<Cond>,
}

impl Matcher {
    /// Compiles a match table against the names in use. Unknown class or
    /// input names are errors (they could never match).
    pub fn compile(m: &MatchConfig, names: &Names) -> Result<Matcher, String> {
        let mut conds = Vec::new();
        for (k, v) in m {
            let values = v.values();
            let bytes = || {
                values
                    .iter()
                    .map(|s| s.as_bytes().into())
                    .collect::<Vec<Box<[u8]>>>()
            };
            let cond = match FieldRef::parse(k)? {
                FieldRef::Meta(Meta::Class) => Cond::Class(
                    values
                        .iter()
                        .map(|s| {
                            names
                                .classes()
                                .iter()
                                .position(|c| c == s)
                                .map(|i| i as ClassId)
                                .ok_or_else(|| {
                                    format!(
                                        "match `class`: no class named \"{s}\" (known: {})",
                                        names.classes().join(", ")
                                    )
                                })
                        })
                        .collect::<Result<_, _>>()?,
                ),
                FieldRef::Meta(Meta::Input) => Cond::Input(
                    values
                        .iter()
                        .map(|s| {
                            names
                                .inputs()
                                .iter()
                                .position(|c| c == s)
                                .map(|i| i as u16)
                                .ok_or_else(|| format!("match `input`: no input named \"{s}\""))
                        })
                        .collect::<Result<_, _>>()?,
                ),
                FieldRef::Meta(Meta::Facility) => {
                    let mut mask = 0u32;
                    for s in &values {
                        let i = FACILITY_NAMES
                            .iter()
                            .position(|f| f == s)
                            .or_else(|| s.parse::<usize>().ok().filter(|&n| n < 24))
                            .ok_or_else(|| format!("match `facility`: unknown facility \"{s}\""))?;
                        mask |= 1 << i;
                    }
                    Cond::Facility(mask)
                }
                FieldRef::Meta(Meta::Severity) => {
                    let mut mask = 0u8;
                    for s in &values {
                        let i = SEVERITY_NAMES
                            .iter()
                            .position(|f| f == s)
                            .or_else(|| s.parse::<usize>().ok().filter(|&n| n < 8))
                            .ok_or_else(|| format!("match `severity`: unknown severity \"{s}\""))?;
                        mask |= 1 << i;
                    }
                    Cond::Severity(mask)
                }
                FieldRef::Meta(Meta::SrcIp) => Cond::SrcIp(CidrSet(
                    values
                        .iter()
                        .map(|s| {
                            Cidr::parse(s).ok_or_else(|| {
                                format!("match `meta.src_ip`: \"{s}\" is not an address or CIDR")
                            })
                        })
                        .collect::<Result<_, _>>()?,
                )),
                FieldRef::Meta(Meta::Host) => Cond::Host(bytes()),
                FieldRef::Meta(Meta::App) => Cond::App(bytes()),
                FieldRef::Meta(Meta::Procid) => Cond::Procid(bytes()),
                FieldRef::Meta(Meta::Msgid) => Cond::Msgid(bytes()),
                FieldRef::Msg(key) => Cond::Msg(key, bytes()),
            };
            conds.push(cond);
        }
        Ok(Matcher { conds })
    }

    pub fn is_empty(&self) -> bool {
        self.conds.is_empty()
    }

    /// Does `rec` satisfy every condition?
    #[inline]
    pub fn matches(&self, rec: &Record<'_>) -> bool {
        self.conds.iter().all(|c| cond_matches(c, rec))
    }
}

fn any_eq(values: &[Box<[u8]>], v: &[u8]) -> bool {
    values.iter().any(|x| &**x == v)
}

#[inline]
fn cond_matches(c: &Cond, rec: &Record<'_>) -> bool {
    match c {
        Cond::Class(ids) => ids.contains(&rec.class),
        Cond::Input(ids) => ids.contains(&rec.input),
        Cond::Facility(mask) => mask & (1 << rec.facility().min(31)) != 0,
        Cond::Severity(mask) => mask & (1 << rec.severity()) != 0,
        Cond::SrcIp(set) => src_in(set, rec.src.ip()),
        Cond::Host(v) => any_eq(v, rec.host),
        Cond::App(v) => any_eq(v, rec.app),
        Cond::Procid(v) => any_eq(v, rec.procid),
        Cond::Msgid(v) => any_eq(v, rec.msgid),
        Cond::Msg(key, v) => rec.fields.get(key).is_some_and(|x| any_eq(v, x)),
    }
}

fn src_in(set: &CidrSet, ip: IpAddr) -> bool {
    set.contains(ip)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MatchScalar, OneOrMany};
    use crate::record::{Fields, UNSPECIFIED, class};
    use crate::time::Timestamp;
    use bumpalo::Bump;

    fn names() -> Names {
        Names::new(
            vec!["udp".into(), "tcp".into()],
            class::BUILTIN.iter().map(|s| s.to_string()).collect(),
        )
    }

    fn one(s: &str) -> OneOrMany {
        OneOrMany::One(MatchScalar::Str(s.into()))
    }

    #[test]
    fn all_keys_must_match_and_lists_mean_any_of() {
        let bump = Bump::new();
        let mut rec = Record::new(b"x", Timestamp::default(), UNSPECIFIED, 1);
        rec.class = class::WINDOWS;
        rec.fields = Fields::with_capacity(&bump, 4);
        rec.fields.push(&bump, b"eventid", b"4768");
        let mut m = MatchConfig::new();
        m.insert("class".into(), one("windows"));
        m.insert(
            "eventid".into(),
            OneOrMany::Many(vec![
                MatchScalar::Int(4624),
                MatchScalar::Str("4768".into()),
            ]),
        );
        let c = Matcher::compile(&m, &names()).unwrap();
        assert!(c.matches(&rec));
        rec.class = class::JSON;
        assert!(!c.matches(&rec));
        m.insert("input".into(), one("nope"));
        assert!(Matcher::compile(&m, &names()).is_err());
    }

    #[test]
    fn field_names_resolve_to_meta_or_msg() {
        assert_eq!(FieldRef::parse("host"), Ok(FieldRef::Meta(Meta::Host)));
        assert_eq!(
            FieldRef::parse("src_ip"),
            Ok(FieldRef::Msg((*b"src_ip").into()))
        );
        assert_eq!(
            FieldRef::parse("meta.src_ip"),
            Ok(FieldRef::Meta(Meta::SrcIp))
        );
        assert_eq!(
            FieldRef::parse("msg.host"),
            Ok(FieldRef::Msg((*b"host").into()))
        );
        assert!(FieldRef::parse("TargetUserName").is_err());
    }
}
