//! A parser for the Prometheus text exposition format (version 0.0.4), as
//! `/metrics` serves it.
//!
//! Receives the body of one scrape; emits its samples (name, labels,
//! value) in file order. `# HELP` / `# TYPE` lines and blank lines are
//! skipped. A line that does not parse is counted in [`Scrape::bad_lines`]
//! and skipped, never fatal: `sluice top` keeps showing what it can read
//! from a sluice that is newer or older than itself.

/// One sample line: `name{label="value",...} value [timestamp]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    /// The value of label `key`, if present.
    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// True when every `(key, value)` in `want` is among the labels.
    pub fn has(&self, want: &[(&str, &str)]) -> bool {
        want.iter().all(|(k, v)| self.label(k) == Some(v))
    }
}

/// Every sample of one scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    pub samples: Vec<Sample>,
    /// Lines that were neither comments nor samples.
    pub bad_lines: usize,
}

impl Scrape {
    /// Parses a whole exposition.
    pub fn parse(text: &str) -> Scrape {
        let mut out = Scrape::default();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match parse_line(line) {
                Some(s) => out.samples.push(s),
                None => out.bad_lines += 1,
            }
        }
        out
    }

    /// The samples of metric `name`, in file order.
    pub fn series<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| s.name == name)
    }

    /// The first sample of `name` carrying all of `labels`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.series(name).find(|s| s.has(labels)).map(|s| s.value)
    }

    /// The sum of every sample of `name` carrying all of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut any = false;
        let total = self
            .series(name)
            .filter(|s| s.has(labels))
            .inspect(|_| any = true)
            .map(|s| s.value)
            .sum();
        any.then_some(total)
    }

    /// The distinct values of label `key` on metric `name`, in first-seen
    /// order (e.g. every input name).
    pub fn label_values(&self, name: &str, key: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for s in self.series(name) {
            if let Some(v) = s.label(key)
                && !out.iter().any(|o| o == v)
            {
                out.push(v.to_string());
            }
        }
        out
    }
}

/// Metric and label names: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn name_len(s: &str) -> usize {
    s.bytes()
        .enumerate()
        .take_while(|&(i, b)| {
            b.is_ascii_alphabetic() || b == b'_' || b == b':' || (i > 0 && b.is_ascii_digit())
        })
        .count()
}

fn parse_line(line: &str) -> Option<Sample> {
    let n = name_len(line);
    if n == 0 {
        return None;
    }
    let name = line[..n].to_string();
    let mut rest = &line[n..];
    let mut labels = Vec::new();
    if let Some(r) = rest.strip_prefix('{') {
        rest = parse_labels(r, &mut labels)?;
    }
    let mut fields = rest.split_ascii_whitespace();
    let value = parse_value(fields.next()?)?;
    // An optional timestamp (integer milliseconds) may follow; nothing else.
    if let Some(ts) = fields.next()
        && ts.parse::<i64>().is_err()
    {
        return None;
    }
    if fields.next().is_some() {
        return None;
    }
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Parses `k="v",...}`; returns the text after the closing brace.
fn parse_labels<'a>(mut s: &'a str, out: &mut Vec<(String, String)>) -> Option<&'a str> {
    loop {
        s = s.trim_start();
        if let Some(r) = s.strip_prefix('}') {
            return Some(r);
        }
        let n = name_len(s);
        if n == 0 {
            return None;
        }
        let key = s[..n].to_string();
        s = s[n..].trim_start().strip_prefix('=')?.trim_start();
        s = s.strip_prefix('"')?;
        // Escapes in label values: \\, \" and \n (exposition format 0.0.4).
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        out.push((key, value));
        s = s[end + 1..].trim_start();
        if let Some(r) = s.strip_prefix(',') {
            s = r;
        } else if !s.starts_with('}') {
            return None;
        }
    }
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = r#"# HELP sluice_input_records_total Records received, by input.
# TYPE sluice_input_records_total counter
sluice_input_records_total{input="udp"} 0
sluice_input_records_total{input="tcp"} 12345
# TYPE sluice_stage_latency_seconds histogram
sluice_stage_latency_seconds_bucket{stage="parse",le="0.00001"} 3
sluice_stage_latency_seconds_bucket{stage="parse",le="+Inf"} 7
sluice_uptime_seconds 12.5
"#;

    #[test]
    fn samples_come_out_with_names_labels_and_values_in_file_order() {
        let s = Scrape::parse(FIXTURE);
        assert_eq!(s.bad_lines, 0);
        assert_eq!(s.samples.len(), 5);
        assert_eq!(s.samples[1].name, "sluice_input_records_total");
        assert_eq!(s.samples[1].labels, vec![("input".into(), "tcp".into())]);
        assert_eq!(s.samples[1].value, 12345.0);
        assert_eq!(s.get("sluice_uptime_seconds", &[]), Some(12.5));
    }

    #[test]
    fn plus_inf_bucket_bound_is_a_label_and_lookup_matches_all_given_labels() {
        let s = Scrape::parse(FIXTURE);
        let b = "sluice_stage_latency_seconds_bucket";
        assert_eq!(s.get(b, &[("stage", "parse"), ("le", "+Inf")]), Some(7.0));
        assert_eq!(
            s.get(b, &[("stage", "parse"), ("le", "0.00001")]),
            Some(3.0)
        );
        assert_eq!(s.get(b, &[("stage", "enrich")]), None);
    }

    #[test]
    fn label_values_list_each_input_once_in_order() {
        let s = Scrape::parse(FIXTURE);
        assert_eq!(
            s.label_values("sluice_input_records_total", "input"),
            vec!["udp", "tcp"]
        );
    }

    #[test]
    fn escaped_quotes_backslashes_and_newlines_in_label_values_are_decoded() {
        let s = Scrape::parse("m{a=\"x\\\"y\",b=\"c\\\\d\",c=\"e\\nf\"} 1\n");
        assert_eq!(s.bad_lines, 0);
        let m = &s.samples[0];
        assert_eq!(m.label("a"), Some("x\"y"));
        assert_eq!(m.label("b"), Some("c\\d"));
        assert_eq!(m.label("c"), Some("e\nf"));
    }

    #[test]
    fn a_comma_and_spaces_inside_a_label_value_do_not_split_it() {
        let s = Scrape::parse("m{output=\"a, b}\" ,x=\"1\"} 2.5e3\n");
        assert_eq!(s.samples[0].label("output"), Some("a, b}"));
        assert_eq!(s.samples[0].value, 2500.0);
    }

    #[test]
    fn special_values_and_timestamps_parse() {
        let s = Scrape::parse("a +Inf\nb -Inf\nc NaN 1700000000000\n");
        assert_eq!(s.bad_lines, 0);
        assert_eq!(s.samples[0].value, f64::INFINITY);
        assert_eq!(s.samples[1].value, f64::NEG_INFINITY);
        assert!(s.samples[2].value.is_nan());
    }

    #[test]
    fn garbage_lines_are_counted_and_skipped_not_fatal() {
        let s = Scrape::parse(
            "ok 1\n{nope} 2\nunterminated{a=\"x 3\nnovalue\nx 1 notatimestamp\nfine{a=\"b\"} 4\n",
        );
        assert_eq!(s.bad_lines, 4);
        assert_eq!(s.samples.len(), 2);
        assert_eq!(s.get("fine", &[("a", "b")]), Some(4.0));
    }

    #[test]
    fn sum_adds_every_matching_sample() {
        let s = Scrape::parse("d{o=\"a\",r=\"x\"} 1\nd{o=\"a\",r=\"y\"} 2\nd{o=\"b\",r=\"x\"} 4\n");
        assert_eq!(s.sum("d", &[("o", "a")]), Some(3.0));
        assert_eq!(s.sum("d", &[]), Some(7.0));
        assert_eq!(s.sum("missing", &[]), None);
    }

    #[test]
    fn the_real_exposition_of_sluice_parses_without_bad_lines() {
        let m = crate::metrics::Metrics::new(&["udp".into(), "tcp".into()], &["file".into()]);
        m.inputs()[1].records.add(42);
        let s = Scrape::parse(&m.render());
        assert_eq!(s.bad_lines, 0);
        assert_eq!(
            s.get("sluice_input_records_total", &[("input", "tcp")]),
            Some(42.0)
        );
        assert_eq!(
            s.label_values("sluice_stage_records_total", "stage"),
            vec!["parse", "classify", "enrich", "forward"]
        );
    }
}
