mod common;
use common::*;
use std::time::Duration;

#[test]
fn a_tcp_line_reaches_the_file_output() {
    let mut s = Sluice::start(&basic_config(""));
    tcp_send(s.addr("tcp"), b"<13>Oct 11 22:14:15 host app: hello\n");
    let recs = wait_records(&s.path("out.ndjson"), 1, Duration::from_secs(10));
    assert_eq!(recs.len(), 1);
    assert_eq!(msg(&recs[0], "message"), Some("hello"));
    assert_eq!(s.metric("sluice_input_records_total{input=\"tcp\"}"), 1.0);
    assert!(s.stop().success());
}
