//! JSON output: string escaping and the record JSON shape.
//!
//! `{"meta":{received, timestamp, src_ip, input, facility, severity, host,
//! app, procid, msgid, class[, flaws]},"msg":{...fields in arrival order}}`.
//! Every msg value is a JSON string. Invalid UTF-8 in a value becomes
//! U+FFFD. Writes into a caller's reusable buffer; never allocates.

use std::net::IpAddr;

use super::Names;
use crate::record::{FACILITY_NAMES, Record, SEVERITY_NAMES, flaw};

/// Bytes that must be escaped inside a JSON string (RFC 8259 section 7).
static ESCAPE: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = true;
        i += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Appends `s` as a quoted JSON string.
pub fn write_json_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    write_json_str_body(out, s);
    out.push(b'"');
}

/// Appends `s` escaped for a JSON string, without quotes.
pub fn write_json_str_body(out: &mut Vec<u8>, s: &[u8]) {
    for chunk in s.utf8_chunks() {
        escape_valid(out, chunk.valid().as_bytes());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice("\u{FFFD}".as_bytes());
        }
    }
}

#[inline]
fn escape_valid(out: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if ESCAPE[b as usize] {
            out.extend_from_slice(&bytes[start..i]);
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                _ => {
                    out.extend_from_slice(b"\\u00");
                    out.push(HEX[(b >> 4) as usize]);
                    out.push(HEX[(b & 15) as usize]);
                }
            }
            start = i + 1;
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends an IP address in its usual text form.
pub fn write_ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            let mut b = itoa::Buffer::new();
            for (i, n) in o.iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                out.extend_from_slice(b.format(*n).as_bytes());
            }
        }
        IpAddr::V6(v6) => {
            use std::io::Write;
            let _ = write!(out, "{v6}");
        }
    }
}

/// The host a record is shown with: its own, or the sender's address when
/// it carried none (as rsyslog's `%HOSTNAME%` falls back to `fromhost`).
pub fn write_host(out: &mut Vec<u8>, rec: &Record<'_>, json: bool) {
    if rec.host.is_empty() {
        write_ip(out, rec.src.ip());
    } else if json {
        write_json_str_body(out, rec.host);
    } else {
        out.extend_from_slice(rec.host);
    }
}

/// Appends one record in the record JSON shape (no trailing newline).
pub fn write_record(out: &mut Vec<u8>, rec: &Record<'_>, names: &Names) {
    out.extend_from_slice(b"{\"meta\":{\"received\":\"");
    rec.received.write_rfc3339(out);
    out.extend_from_slice(b"\",\"timestamp\":\"");
    rec.timestamp.write_rfc3339(out);
    out.extend_from_slice(b"\",\"src_ip\":\"");
    write_ip(out, rec.src.ip());
    out.extend_from_slice(b"\",\"input\":");
    write_json_str(out, names.input(rec.input).as_bytes());
    out.extend_from_slice(b",\"facility\":\"");
    out.extend_from_slice(
        FACILITY_NAMES
            .get(rec.facility() as usize)
            .unwrap_or(&"unknown")
            .as_bytes(),
    );
    out.extend_from_slice(b"\",\"severity\":\"");
    out.extend_from_slice(SEVERITY_NAMES[rec.severity() as usize].as_bytes());
    out.extend_from_slice(b"\",\"host\":\"");
    write_host(out, rec, true);
    out.push(b'"');
    for (name, v) in [
        (&b",\"app\":"[..], rec.app),
        (b",\"procid\":", rec.procid),
        (b",\"msgid\":", rec.msgid),
    ] {
        if !v.is_empty() {
            out.extend_from_slice(name);
            write_json_str(out, v);
        }
    }
    out.extend_from_slice(b",\"class\":");
    write_json_str(out, names.class(rec.class).as_bytes());
    if rec.flaws != 0 {
        out.extend_from_slice(b",\"flaws\":[");
        let mut first = true;
        for (bit, name) in flaw::NAMES.iter().enumerate() {
            if rec.flaws & (1 << bit) != 0 {
                if !first {
                    out.push(b',');
                }
                first = false;
                out.push(b'"');
                out.extend_from_slice(name.as_bytes());
                out.push(b'"');
            }
        }
        out.push(b']');
    }
    out.extend_from_slice(b"},\"msg\":{");
    for (i, f) in rec.fields.as_slice().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json_str(out, f.key);
        out.push(b':');
        write_json_str(out, f.value);
    }
    out.extend_from_slice(b"}}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &[u8]) -> String {
        let mut v = Vec::new();
        write_json_str(&mut v, s);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn specials_and_controls_are_escaped() {
        assert_eq!(esc(b"a\"b\\c\nd\x01\te"), r#""a\"b\\c\nd\u0001\te""#);
        assert_eq!(esc("é€".as_bytes()), "\"é€\"");
    }

    #[test]
    fn invalid_utf8_becomes_replacement_character() {
        assert_eq!(esc(b"a\xffb\xe2\x82"), "\"a\u{FFFD}b\u{FFFD}\"");
    }

    #[test]
    fn ipv4_and_ipv6_addresses_print_normally() {
        let mut v = Vec::new();
        write_ip(&mut v, "192.168.1.109".parse().unwrap());
        v.push(b' ');
        write_ip(&mut v, "::ffff:10.0.0.1".parse().unwrap());
        assert_eq!(v, b"192.168.1.109 ::ffff:10.0.0.1");
    }
}
