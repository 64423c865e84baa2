//! Encode: records into output bytes.
//!
//! Receives records; appends their wire form to an output's reusable
//! buffer: the record JSON shape (file, stdout), RFC 5424 with the record
//! as JSON (`v2`), RFC 3164 text (`v1`) or the original bytes (`raw`),
//! framed by LF or an octet count (RFC 6587 section 3.4.1). Never
//! allocates once its buffers have grown.

pub mod json;

use serde::Deserialize;

use crate::record::{ClassId, Record};

/// The names in use, swapped whole on reload. Ids only ever get added, so
/// a record classified under the old names prints right under the new.
pub type SharedNames = std::sync::Arc<arc_swap::ArcSwap<Names>>;

/// Names the encoders print for input and class ids, with each one's
/// quoted JSON form, made once ([`Names::new`]) rather than escaped again
/// for every record.
#[derive(Clone, Debug, Default)]
pub struct Names {
    // Private, so the quoted forms below always match them.
    inputs: Vec<String>,
    classes: Vec<String>,
    inputs_json: Vec<Vec<u8>>,
    classes_json: Vec<Vec<u8>>,
}

impl Names {
    pub fn new(inputs: Vec<String>, classes: Vec<String>) -> Names {
        let quoted = |v: &[String]| {
            v.iter()
                .map(|n| {
                    let mut q = Vec::with_capacity(n.len() + 2);
                    json::write_json_str(&mut q, n.as_bytes());
                    q
                })
                .collect()
        };
        Names {
            inputs_json: quoted(&inputs),
            classes_json: quoted(&classes),
            inputs,
            classes,
        }
    }
    /// Input names, by id.
    pub fn inputs(&self) -> &[String] {
        &self.inputs
    }
    /// Class names, by id.
    pub fn classes(&self) -> &[String] {
        &self.classes
    }
    /// [`Names::input`] as a quoted JSON string.
    pub fn input_json(&self, id: u16) -> &[u8] {
        self.inputs_json
            .get(id as usize)
            .map_or(b"\"?\"", Vec::as_slice)
    }
    /// [`Names::class`] as a quoted JSON string.
    pub fn class_json(&self, id: ClassId) -> &[u8] {
        self.classes_json
            .get(id as usize)
            .map_or(b"\"?\"", Vec::as_slice)
    }
    pub fn input(&self, id: u16) -> &str {
        self.inputs.get(id as usize).map_or("?", String::as_str)
    }
    pub fn class(&self, id: ClassId) -> &str {
        self.classes.get(id as usize).map_or("?", String::as_str)
    }
}

/// How a record is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// The record JSON shape, one per line.
    #[default]
    Json,
    /// RFC 3164 text: `<PRI>Mmm dd hh:mm:ss HOST APP[PROCID]: MSG`.
    V1,
    /// RFC 5424 header, then the record JSON as MSG.
    V2,
    /// The bytes as received.
    Raw,
}

/// How records are delimited on a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// A LF after each record (non-transparent framing).
    #[default]
    Lf,
    /// `LEN SP` before each record (octet counting).
    OctetCounting,
    /// Nothing (one record per datagram).
    None,
}

/// Writes records in one format and framing.
#[derive(Clone)]
pub struct Encoder {
    pub format: Format,
    pub framing: Framing,
    scratch: Vec<u8>,
}

impl Encoder {
    pub fn new(format: Format, framing: Framing) -> Encoder {
        Encoder {
            format,
            framing,
            scratch: Vec::with_capacity(4096),
        }
    }

    /// Appends one framed record to `out`.
    pub fn encode(&mut self, rec: &Record<'_>, names: &Names, out: &mut Vec<u8>) {
        match self.framing {
            Framing::OctetCounting => {
                self.scratch.clear();
                write_format(self.format, rec, names, &mut self.scratch);
                out.extend_from_slice(itoa::Buffer::new().format(self.scratch.len()).as_bytes());
                out.push(b' ');
                out.extend_from_slice(&self.scratch);
            }
            Framing::Lf => {
                write_format(self.format, rec, names, out);
                out.push(b'\n');
            }
            Framing::None => write_format(self.format, rec, names, out),
        }
    }
}

fn write_format(format: Format, rec: &Record<'_>, names: &Names, out: &mut Vec<u8>) {
    match format {
        Format::Json => json::write_record(out, rec, names),
        Format::V2 => write_v2(out, rec, names),
        Format::V1 => write_v1(out, rec),
        Format::Raw => out.extend_from_slice(rec.raw),
    }
}

fn write_pri(out: &mut Vec<u8>, pri: u8) {
    out.push(b'<');
    out.extend_from_slice(itoa::Buffer::new().format(pri).as_bytes());
    out.push(b'>');
}

/// A header field as RFC 5424 section 6 allows it: printable US-ASCII, at
/// most `max` bytes, `-` when empty.
fn write_header_field(out: &mut Vec<u8>, v: &[u8], max: usize) {
    if v.is_empty() {
        out.push(b'-');
        return;
    }
    let v = &v[..v.len().min(max)];
    // The usual field needs no replacing: one check, one copy.
    if crate::bytes::all_printable(v) {
        json::push_bytes(out, v);
        return;
    }
    out.extend(
        v.iter()
            .map(|&b| if (33..=126).contains(&b) { b } else { b'_' }),
    );
}

/// RFC 5424 header with the record JSON as MSG.
fn write_v2(out: &mut Vec<u8>, rec: &Record<'_>, names: &Names) {
    write_pri(out, rec.pri);
    out.extend_from_slice(b"1 ");
    let start = out.len();
    rec.timestamp.write_rfc3339(out);
    let ts = start..out.len();
    out.push(b' ');
    if rec.host.is_empty() {
        json::write_ip(out, rec.src.ip());
    } else {
        write_header_field(out, rec.host, 255);
    }
    out.push(b' ');
    write_header_field(out, rec.app, 48);
    out.push(b' ');
    write_header_field(out, rec.procid, 128);
    out.push(b' ');
    write_header_field(out, rec.msgid, 32);
    out.extend_from_slice(b" - ");
    json::write_record_with(out, rec, names, Some(ts));
}

/// RFC 3164 text with the original MSG.
fn write_v1(out: &mut Vec<u8>, rec: &Record<'_>) {
    write_pri(out, rec.pri);
    rec.timestamp.write_rfc3164(out);
    out.push(b' ');
    if rec.host.is_empty() {
        json::write_ip(out, rec.src.ip());
    } else {
        write_header_field(out, rec.host, 255);
    }
    out.push(b' ');
    if !rec.app.is_empty() {
        write_header_field(out, rec.app, 48);
        if !rec.procid.is_empty() {
            out.push(b'[');
            write_header_field(out, rec.procid, 128);
            out.push(b']');
        }
        out.extend_from_slice(b": ");
    }
    out.extend_from_slice(rec.msg);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_names_are_escaped_once_and_unknown_ids_print_a_question_mark() {
        let n = Names::new(
            vec!["tcp".into(), "a\"b\\c".into()],
            vec!["windows".into(), "tab\there".into()],
        );
        assert_eq!(n.input_json(0), b"\"tcp\"");
        assert_eq!(n.input_json(1), br#""a\"b\\c""#);
        assert_eq!(n.class_json(1), br#""tab\there""#);
        assert_eq!(n.input_json(7), b"\"?\"");
        assert_eq!(n.class_json(9), b"\"?\"");
        assert_eq!(n.input(1), "a\"b\\c");
    }
}
