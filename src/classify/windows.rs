//! Windows events sent by agents as JSON: recognition and one schema.
//!
//! Agents spell the same event differently: flat lowercase (`eventid`,
//! `targetusername`), flat CamelCase (`EventID`, `TargetUserName`, already
//! lowercased by the JSON parser), EventData nested and flattened by the
//! parser (`eventdata_targetusername`, `event_eventdata_…`), Winlogbeat
//! (`winlog_event_id`, `winlog_event_data_targetusername`) or snake_case
//! (`target_user_name`, `ip_address`). A record is a Windows event when it
//! carries a numeric event id under one of [`EVENT_ID_KEYS`] and at least
//! one key that only Windows events have ([`is_windows_key`]).
//!
//! Normalising a recognised record, in place:
//! 1. the event id field is named `eventid`; EventData names lose their
//!    nesting prefix and snake_case names become schema names (a name
//!    already present is left alone);
//! 2. `ipaddress` is written as Windows itself writes it for the event:
//!    IPv4-mapped (`::ffff:a.b.c.d`) for the Kerberos events 4768-4773,
//!    plain IPv4 for all others (4624 and friends). Flowmon's identity
//!    rules depend on this; see docs/flowmon.md;
//! 3. `eventid`, `targetusername`, `targetdomainname`, `ipaddress` move to
//!    the front, in that order (Flowmon's rules read forward only), the
//!    rest keep their arrival order.
//!
//! Keys that collide once lowercased (NXLog's `ProcessID` and `ProcessId`)
//! are told apart: the later one gets `_2`. Renames re-slice keys (no
//! copy); only a rewritten address or a suffixed key is written into the
//! batch arena.

use bumpalo::Bump;

use crate::bytes::prefix8;
use crate::record::{Field, Fields};

/// Where agents put the event id, best first (normalised key names).
const EVENT_ID_KEYS: [&[u8]; 5] = [
    b"eventid",
    b"winlog_event_id",
    b"system_eventid",
    b"event_system_eventid",
    b"event_id",
];

/// Prefixes of flattened EventData names, longest first.
const DATA_PREFIXES: [&[u8]; 4] = [
    b"winlog_event_data_",
    b"event_eventdata_",
    b"eventdata_",
    b"event_data_",
];

/// snake_case spellings of the schema names that matter downstream.
const ALIASES: [(&[u8], &[u8]); 8] = [
    (b"target_user_name", b"targetusername"),
    (b"target_domain_name", b"targetdomainname"),
    (b"target_user_sid", b"targetusersid"),
    (b"subject_user_name", b"subjectusername"),
    (b"subject_domain_name", b"subjectdomainname"),
    (b"ip_address", b"ipaddress"),
    (b"ip_port", b"ipport"),
    (b"logon_type", b"logontype"),
];

/// Fields moved to the front, in this order.
const FRONT: [&[u8]; 4] = [
    b"eventid",
    b"targetusername",
    b"targetdomainname",
    b"ipaddress",
];

/// Keys only Windows events carry (System or EventData names, agent
/// envelopes). Generic names (`target`, `computer_id`) are not enough.
fn is_windows_key(k: &[u8]) -> bool {
    const EXACT: [&[u8]; 9] = [
        b"channel",
        b"providername",
        b"provider_name",
        b"sourcename",
        b"computer",
        b"computername",
        b"eventrecordid",
        b"record_number",
        b"logonprocessname",
    ];
    const PREFIXES: [&[u8]; 17] = [
        b"targetuser",
        b"targetdomain",
        b"targetlogon",
        b"targetsid",
        b"subjectuser",
        b"subjectdomain",
        b"subjectlogon",
        b"target_user",
        b"target_domain",
        b"subject_user",
        b"subject_domain",
        b"winlog_",
        b"eventdata_",
        b"event_eventdata_",
        b"event_data_",
        b"event_system_",
        b"system_",
    ];
    matches!(
        k.first(),
        Some(b'c' | b'p' | b's' | b'r' | b'l' | b't' | b'w' | b'e')
    ) && (EXACT.contains(&k) || PREFIXES.iter().any(|p| k.starts_with(p)))
}

/// A Windows event id: 1 to 5 digits.
fn is_event_id(v: &[u8]) -> bool {
    (1..=5).contains(&v.len()) && v.iter().all(u8::is_ascii_digit)
}

/// The index of the event id field when `fields` is a Windows event.
pub fn recognise(fields: &Fields<'_>, need_hint: bool) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    let mut hint = !need_hint;
    for (i, f) in fields.as_slice().iter().enumerate() {
        // Every event id key starts with e, w or s: one byte test spares
        // most keys the five comparisons.
        let id_rank = match f.key.first() {
            Some(b'e' | b'w' | b's') => EVENT_ID_KEYS.iter().position(|k| *k == f.key),
            _ => None,
        };
        if let Some(rank) = id_rank {
            if is_event_id(f.value) && best.is_none_or(|(r, _)| rank < r) {
                best = Some((rank, i));
            }
        } else if !hint && is_windows_key(f.key) {
            hint = true;
        }
    }
    best.filter(|_| hint).map(|(_, i)| i)
}

/// Normalises a recognised record; `id_at` is what [`recognise`] returned.
pub fn normalise<'a>(bump: &'a Bump, fields: &mut Fields<'a>, id_at: usize) {
    let id = fields.as_slice()[id_at];
    if id.key != b"eventid" {
        match fields
            .as_mut_slice()
            .iter_mut()
            .find(|f| f.key == b"eventid")
        {
            Some(f) => f.value = id.value,
            None => fields.as_mut_slice()[id_at].key = b"eventid",
        }
    }
    for i in 0..fields.len() {
        let key = fields.as_slice()[i].key;
        let Some(name) = schema_name(key) else {
            continue;
        };
        if fields.get(name).is_none() {
            fields.as_mut_slice()[i].key = name;
        }
    }
    // Renames above only take names not in use, and the parser already
    // made names unique (`Fields::dedupe_keys`), so none collide here.
    // One pass finds the fields that go to the front.
    let mut at = [usize::MAX; FRONT.len()];
    for (i, f) in fields.as_slice().iter().enumerate() {
        if !matches!(f.key.first(), Some(b'e' | b't' | b'i')) {
            continue;
        }
        if let Some(j) = FRONT.iter().position(|k| *k == f.key)
            && at[j] == usize::MAX
        {
            at[j] = i;
        }
    }
    let [id, _, _, ip] = at;
    if id != usize::MAX && ip != usize::MAX {
        let mapped = is_kerberos(fields.as_slice()[id].value);
        render_ipaddress(bump, &mut fields.as_mut_slice()[ip], mapped);
    }
    to_front(fields.as_mut_slice(), &at);
}

/// Moves the fields at `at` (in that order; `usize::MAX` = absent) to the
/// front, the others keeping their order behind them. One pass, from the
/// last moved field back.
fn to_front(s: &mut [Field<'_>], at: &[usize; FRONT.len()]) {
    let mut front = [Field::default(); FRONT.len()];
    let mut k = 0;
    let mut hi = 0;
    for &i in at.iter().filter(|&&i| i != usize::MAX) {
        front[k] = s[i];
        k += 1;
        hi = hi.max(i);
    }
    if k == 0 {
        return;
    }
    let mut w = hi + 1;
    for i in (0..=hi).rev() {
        if !at.contains(&i) {
            w -= 1;
            s[w] = s[i];
        }
    }
    s[..k].copy_from_slice(&front[..k]);
}

/// The schema name of a nested or snake_case key, if it is one.
fn schema_name(key: &[u8]) -> Option<&[u8]> {
    // Every prefix and alias has an underscore within its first ten
    // bytes; flat CamelCase-born keys (NXLog's) have none and are done
    // after one word test (SWAR zero-byte check on the first eight bytes).
    let x = prefix8(key) ^ 0x5f5f_5f5f_5f5f_5f5f;
    let underscore8 = (x.wrapping_sub(0x0101_0101_0101_0101) & !x & 0x8080_8080_8080_8080) != 0;
    if !underscore8 && !matches!(key.get(8..10), Some([b'_', _] | [_, b'_'])) {
        return None;
    }
    let bare = DATA_PREFIXES
        .iter()
        .find_map(|p| key.strip_prefix(*p))
        .filter(|b| !b.is_empty());
    let k = bare.unwrap_or(key);
    match ALIASES.iter().find(|(a, _)| *a == k) {
        Some((_, to)) => Some(to),
        None => bare,
    }
}

/// Kerberos authentication service events (4768-4773), whose IpAddress
/// Windows writes IPv4-mapped.
fn is_kerberos(eventid: &[u8]) -> bool {
    matches!(
        eventid,
        b"4768" | b"4769" | b"4770" | b"4771" | b"4772" | b"4773"
    )
}

/// Writes the `ipaddress` field `f` the way Windows does for the event
/// (see module doc).
fn render_ipaddress<'a>(bump: &'a Bump, f: &mut Field<'a>, mapped: bool) {
    let v = f.value.trim_ascii();
    let Some(plain) = plain_ipv4(v) else {
        return;
    };
    f.value = if mapped {
        if plain.len() == v.len() {
            let out = bump.alloc_slice_fill_copy(7 + plain.len(), 0u8);
            out[..7].copy_from_slice(b"::ffff:");
            out[7..].copy_from_slice(plain);
            out
        } else {
            v
        }
    } else {
        plain
    };
}

/// The dotted IPv4 text inside `v` (`a.b.c.d` or `::ffff:a.b.c.d`, any
/// case), or None when `v` is not an IPv4 address (hex mapped forms such
/// as `::ffff:a00:c` are left as they are).
fn plain_ipv4(v: &[u8]) -> Option<&[u8]> {
    let tail = if v.len() > 7 && v[..7].eq_ignore_ascii_case(b"::ffff:") {
        &v[7..]
    } else {
        v
    };
    crate::net::parse_ipv4(tail)?;
    Some(tail)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields<'a>(bump: &'a Bump, kv: &[(&'static str, &'static str)]) -> Fields<'a> {
        let mut f = Fields::with_capacity(bump, kv.len());
        for (k, v) in kv {
            f.push(bump, k.as_bytes(), v.as_bytes());
        }
        f
    }

    fn keys(f: &Fields<'_>) -> Vec<String> {
        f.as_slice()
            .iter()
            .map(|f| String::from_utf8_lossy(f.key).into_owned())
            .collect()
    }

    #[test]
    fn an_event_id_alone_is_not_enough_without_a_windows_key() {
        let bump = Bump::new();
        let f = fields(&bump, &[("eventid", "4624"), ("user", "x")]);
        assert_eq!(recognise(&f, true), None);
        assert_eq!(recognise(&f, false), Some(0));
        let f = fields(&bump, &[("eventid", "abc"), ("targetusername", "x")]);
        assert_eq!(recognise(&f, true), None);
        let f = fields(&bump, &[("eventid", "7"), ("target", "db1")]);
        assert_eq!(recognise(&f, true), None);
    }

    #[test]
    fn winlogbeat_keys_become_schema_names_in_flowmon_order() {
        let bump = Bump::new();
        let mut f = fields(
            &bump,
            &[
                ("winlog_channel", "Security"),
                ("winlog_event_data_ipaddress", "::ffff:10.0.0.5"),
                ("winlog_event_data_targetusername", "alice"),
                ("winlog_event_id", "4624"),
            ],
        );
        let at = recognise(&f, true).unwrap();
        normalise(&bump, &mut f, at);
        assert_eq!(
            keys(&f),
            ["eventid", "targetusername", "ipaddress", "winlog_channel"]
        );
        assert_eq!(f.get(b"ipaddress"), Some(&b"10.0.0.5"[..]));
    }

    #[test]
    fn kerberos_addresses_are_mapped_and_others_plain() {
        let bump = Bump::new();
        let mut f = fields(
            &bump,
            &[
                ("ipaddress", "10.0.0.12"),
                ("targetusername", "bob"),
                ("eventid", "4768"),
            ],
        );
        normalise(&bump, &mut f, 2);
        assert_eq!(f.get(b"ipaddress"), Some(&b"::ffff:10.0.0.12"[..]));
        let mut f = fields(&bump, &[("eventid", "4768"), ("ipaddress", "2001:db8::5")]);
        normalise(&bump, &mut f, 0);
        assert_eq!(f.get(b"ipaddress"), Some(&b"2001:db8::5"[..]));
        let mut f = fields(&bump, &[("eventid", "4624"), ("ipaddress", "-")]);
        normalise(&bump, &mut f, 0);
        assert_eq!(f.get(b"ipaddress"), Some(&b"-"[..]));
    }

    #[test]
    fn a_flat_name_wins_over_a_nested_duplicate() {
        let bump = Bump::new();
        let mut f = fields(
            &bump,
            &[
                ("eventid", "4634"),
                ("targetusername", "flat"),
                ("eventdata_targetusername", "nested"),
                ("target_domain_name", "CORP"),
            ],
        );
        normalise(&bump, &mut f, 0);
        assert_eq!(f.get(b"targetusername"), Some(&b"flat"[..]));
        assert_eq!(f.get(b"eventdata_targetusername"), Some(&b"nested"[..]));
        assert_eq!(f.get(b"targetdomainname"), Some(&b"CORP"[..]));
    }
}
