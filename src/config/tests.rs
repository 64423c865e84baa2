use super::*;

/// The config contract of issue 2, accepted as written.
const CONTRACT: &str = r#"
[pipeline]
workers = 2                      # input threads, pinned to cores

[metrics]
listen = "127.0.0.1:9598"

[[input]]
name = "udp"
type = "udp"
listen = "127.0.0.1:5514"

[[input]]
name = "tcp"
type = "tcp"
listen = "127.0.0.1:5514"
max_message_bytes = 65536

[[output]]
name = "archive"
type = "file"
path = "/var/lib/sluice/all.ndjson"

[[output]]
name = "siem"
type = "syslog"
transport = "tcp"
target = "127.0.0.1:6000"
format = "v2"
when_full = "block"
match = { class = "json" }
"#;

#[test]
fn the_contract_config_is_accepted_as_written() {
    let c = parse(CONTRACT, "contract.toml").unwrap();
    assert_eq!(c.pipeline.workers, 2);
    assert_eq!(c.inputs.len(), 2);
    assert_eq!(c.inputs[1].max_message_bytes, ByteSize(65536));
    assert_eq!(c.outputs[1].format, Some(Format::V2));
    assert_eq!(c.outputs[1].when_full, WhenFull::Block);
    assert_eq!(c.metrics.listen.as_deref(), Some("127.0.0.1:9598"));
}

#[test]
fn the_embedded_default_is_valid() {
    let c = parse(DEFAULT_CONFIG, "default").unwrap();
    assert_eq!(c.inputs.len(), 2);
    assert_eq!(c.outputs[0].kind, OutputType::Stdout);
}

#[test]
fn every_error_is_reported_with_its_line_and_key() {
    let src = r#"[pipeline]
workers = "two"

[[input]]
name = "tcp"
type = "tcp"
listen = "nowhere"

[[input]]
name = "u"
type = "udpp"
listen = "127.0.0.1:1"

[[output]]
name = "x"
type = "syslog"
target = "127.0.0.1:6000"
when_full = "sometimes"

[[output]]
name = "f"
type = "file"
colour = "blue"
"#;
    let e = parse(src, "bad.toml").unwrap_err();
    let lines: Vec<usize> = e.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![2, 7, 11, 18, 23], "{e}");
    let text = e.to_string();
    assert!(text.contains("bad.toml:2:"), "{text}");
    assert!(text.contains("listen"), "{text}");
    assert!(text.contains("udpp"), "{text}");
    assert!(text.contains("sometimes"), "{text}");
    assert!(text.contains("colour"), "{text}");
}

#[test]
fn syntax_errors_name_their_line() {
    let e = parse("[pipeline]\nworkers = \n", "s.toml").unwrap_err();
    assert_eq!(e.errors.len(), 1);
    assert_eq!(e.errors[0].line, 2);
}

#[test]
fn duplicate_names_and_missing_keys_are_errors() {
    let src = r#"
[[input]]
name = "a"
type = "tcp"
listen = "127.0.0.1:1"

[[input]]
name = "a"
type = "udp"
listen = "127.0.0.1:2"

[[output]]
name = "o"
type = "syslog"
"#;
    let e = parse(src, "d.toml").unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("d.toml:8:") && text.contains("used twice"),
        "{text}"
    );
    assert!(
        text.contains("d.toml:12:") && text.contains("needs `target`"),
        "{text}"
    );
}

#[test]
fn unknown_sections_and_match_keys_are_errors() {
    let src = r#"
[[inputs]]
name = "a"

[[input]]
name = "a"
type = "tcp"
listen = "127.0.0.1:1"

[[output]]
name = "o"
type = "stdout"
match = { TargetUserName = "x" }
"#;
    let e = parse(src, "u.toml").unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("u.toml:2:") && text.contains("[[input]]"),
        "{text}"
    );
    assert!(
        text.contains("u.toml:13:") && text.contains("targetusername"),
        "{text}"
    );
}
