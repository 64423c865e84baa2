//! Flowmon ADS events: how they are recognised and what their fields are
//! called. All recognition rules for Flowmon live here, so that they can
//! change in one place when the wire layout is better known.
//!
//! Flowmon does not publish its syslog layout; these rules are inferred
//! (see docs/flowmon.md):
//!
//! - CEF form: vendor or product names Flowmon (`Flowmon Networks`,
//!   `Progress Flowmon`, `Flowmon ADS`), or vendor INVEA-TECH (Flowmon's
//!   former maker) with product ADS. The Device Event Class ID is the
//!   event `type` (`SSHDICT`, `ANOMALY`), Name the type description
//!   (`name`), `externalId` the ADS event id (`eventid`), `src` the source
//!   (`src_ip`); labelled custom strings name themselves (`perspective`,
//!   `detail`, `targets`).
//! - JSON form: an object with `typeDesc`, `id` and one of `source`,
//!   `perspective`, `netFlowSource`, `targets`. `id` becomes `eventid`,
//!   `typeDesc` becomes `name` and `source` (or `source.ip`) becomes
//!   `src_ip`, so both forms share one schema.
//!
//! Whatever the form, the ADS event id ends up in `eventid`.

use crate::record::Fields;

/// Substrings (ASCII case-insensitive) of a CEF vendor or product that
/// mean Flowmon.
const CEF_NAMES: [&[u8]; 1] = [b"flowmon"];

/// Is this the CEF header of a Flowmon ADS event?
pub fn is_flowmon_cef(vendor: &[u8], product: &[u8]) -> bool {
    let named = |s: &[u8]| CEF_NAMES.iter().any(|n| contains_ignore_case(s, n));
    named(vendor)
        || named(product)
        || (contains_ignore_case(vendor, b"invea") && contains_ignore_case(product, b"ads"))
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    needle.len() <= hay.len()
        && hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Keys of Flowmon's JSON event form (as the JSON parser normalises them)
/// of which at least one must be present beside `typedesc` and `id`.
const JSON_MARKERS: [&[u8]; 5] = [
    b"source",
    b"source_ip",
    b"perspective",
    b"netflowsource",
    b"targets",
];

/// Is this JSON record Flowmon's event form? Cheap: one pass over the keys.
pub fn is_flowmon_json(fields: &Fields<'_>) -> bool {
    // Most JSON is not Flowmon's: one cheap pass for `typedesc` first.
    if fields.get(b"typedesc").is_none() {
        return false;
    }
    let (mut desc, mut id, mut marker) = (false, false, false);
    for f in fields.as_slice() {
        match f.key {
            b"typedesc" => desc = true,
            b"id" | b"eventid" => id = true,
            k if k.starts_with(b"perspective") || JSON_MARKERS.contains(&k) => marker = true,
            _ => {}
        }
    }
    desc && id && marker
}

/// Renames the JSON form's keys to the shared Flowmon schema (in place; no
/// allocation): `id` → `eventid`, `typedesc` → `name`, `source` or
/// `source_ip` → `src_ip`, `source_resolved` → `src_host`. A target name
/// already present is left alone.
pub fn normalise_json(fields: &mut Fields<'_>) {
    const RENAMES: [(&[u8], &[u8]); 5] = [
        (b"id", b"eventid"),
        (b"typedesc", b"name"),
        (b"source", b"src_ip"),
        (b"source_ip", b"src_ip"),
        (b"source_resolved", b"src_host"),
    ];
    for (from, to) in RENAMES {
        rename(fields, from, to);
    }
}

/// After the CEF form is parsed: when `externalId` was absent, an event id
/// carried in a labelled custom field (`Event ID`, `id`) becomes `eventid`.
pub fn finish_cef(fields: &mut Fields<'_>) {
    if fields.get(b"eventid").is_none() {
        for from in [&b"event_id"[..], b"id", b"external_id"] {
            if rename(fields, from, b"eventid") {
                return;
            }
        }
    }
}

/// Renames the field `from` to `to` unless `to` exists; true if renamed.
fn rename(fields: &mut Fields<'_>, from: &[u8], to: &'static [u8]) -> bool {
    if fields.get(to).is_some() {
        return false;
    }
    match fields.as_mut_slice().iter_mut().find(|f| f.key == from) {
        Some(f) => {
            f.key = to;
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bumpalo::Bump;

    #[test]
    fn vendor_or_product_naming_flowmon_is_flowmon() {
        assert!(is_flowmon_cef(b"Flowmon Networks", b"ADS"));
        assert!(is_flowmon_cef(b"Progress", b"Flowmon ADS"));
        assert!(is_flowmon_cef(b"INVEA-TECH", b"FlowMon ADS"));
        assert!(is_flowmon_cef(b"INVEA-TECH", b"ADS"));
        assert!(!is_flowmon_cef(b"Security", b"threatmanager"));
        assert!(!is_flowmon_cef(b"Acme", b"ADS"));
    }

    #[test]
    fn json_form_needs_type_description_id_and_a_flowmon_key() {
        let bump = Bump::new();
        let mut f = Fields::with_capacity(&bump, 8);
        f.push(&bump, b"id", b"840839");
        f.push(&bump, b"typedesc", b"SSH attack");
        assert!(!is_flowmon_json(&f));
        f.push(&bump, b"source", b"192.168.1.109");
        assert!(is_flowmon_json(&f));
        normalise_json(&mut f);
        assert_eq!(f.get(b"eventid"), Some(&b"840839"[..]));
        assert_eq!(f.get(b"name"), Some(&b"SSH attack"[..]));
        assert_eq!(f.get(b"src_ip"), Some(&b"192.168.1.109"[..]));
        assert_eq!(f.get(b"id"), None);
    }
}
