//! Records written through the pipeline come back from `sluice archive
//! search` byte-identical to the file output's record JSON, for time,
//! field and text filters, in both orders.
mod archive_support;
mod common;

use archive_support::*;
use common::*;
use std::time::Duration;

/// Sends a mix of Windows-agent JSON events and plain RFC 3164 lines with
/// known timestamps and users; returns how many.
fn send_mix(s: &Sluice) -> usize {
    let mut buf = String::new();
    let mut n = 0;
    for i in 0..400 {
        let ts = format!("2026-03-01T10:{:02}:{:02}.{:03}Z", i / 60, i % 60, i);
        if i % 4 == 3 {
            buf.push_str(&format!(
                "<38>Mar  1 10:{:02}:{:02} web{} sshd[{i}]: Failed password for user{} from 192.0.2.{} port 22 \"quoted\" needle-{i}\n",
                i / 60,
                i % 60,
                i % 2,
                i % 5,
                i % 250
            ));
        } else {
            buf.push_str(&windows_event(i, &format!("user{}", i % 5), &ts));
        }
        n += 1;
    }
    tcp_send(s.addr("tcp"), buf.as_bytes());
    n
}

fn values(line: &str) -> Value {
    serde_json::from_str(line).unwrap()
}

#[test]
fn search_returns_the_file_outputs_records_for_every_filter() {
    let mut a = Arch::start("block_bytes = \"4KiB\"\ncheckpoint_interval = \"1s\"");
    let n = send_mix(&a.s);
    wait_records(&a.s.path("out.ndjson"), n, Duration::from_secs(20));
    a.wait_durable(n, Duration::from_secs(20));
    let file: Vec<String> = std::fs::read_to_string(a.s.path("out.ndjson"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(file.len(), n);
    assert!(a.s.stop().success());
    let dir = a.dir();

    // Many blocks, so the order across blocks is exercised too.
    let stats = stdout(&archive(&["stats", dir.to_str().unwrap()]));
    let blocks: usize = stats
        .lines()
        .find_map(|l| l.strip_prefix("blocks:"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|b| b.parse().ok())
        .unwrap_or(0);
    assert!(blocks >= 5, "expected several blocks:\n{stats}");
    assert!(
        stats.contains(&format!("records:           {n}")),
        "{stats}"
    );

    // Everything, oldest first: identical bytes, identical order.
    let all = search(&dir, &["--oldest-first"]);
    assert_eq!(all.len(), file.len());
    for (got, want) in all.iter().zip(&file) {
        assert_eq!(got, want);
    }
    // Newest first is the reverse.
    let mut rev = search(&dir, &[]);
    rev.reverse();
    assert_eq!(rev, file);

    let pick = |f: &dyn Fn(&Value) -> bool| -> Vec<String> {
        file.iter().filter(|l| f(&values(l))).cloned().collect()
    };

    // A message field.
    let want = pick(&|v| msg(v, "targetusername") == Some("user3"));
    assert!(!want.is_empty());
    assert_eq!(
        search(&dir, &["--oldest-first", "--where", "targetusername=user3"]),
        want
    );
    // A header field and a message field together.
    let want =
        pick(&|v| meta(v, "host") == Some("dc01") && msg(v, "targetusername") == Some("user1"));
    assert!(!want.is_empty());
    assert_eq!(
        search(
            &dir,
            &[
                "--oldest-first",
                "--where",
                "host=dc01",
                "--where",
                "targetusername=user1"
            ]
        ),
        want
    );
    // A value nobody has.
    assert!(search(&dir, &["--where", "targetusername=nobody"]).is_empty());

    // Time range (inclusive) on the record's timestamp.
    let (from, to) = ("2026-03-01T10:01:00Z", "2026-03-01T10:02:30Z");
    let want = pick(&|v| {
        let t = crate::common::meta(v, "timestamp").unwrap();
        let p = |s: &str| sluice::archive::search::parse_time(s, 0).unwrap();
        p(t) >= p(from) && p(t) <= p(to)
    });
    assert!(!want.is_empty() && want.len() < n);
    assert_eq!(
        search(&dir, &["--oldest-first", "--from", from, "--to", to]),
        want
    );

    // Substring of any message value, including across quoting.
    let want = pick(&|v| {
        v["msg"]
            .as_object()
            .unwrap()
            .values()
            .any(|x| x.as_str().unwrap().contains("needle-11"))
    });
    assert_eq!(want.len(), 4, "needle-11, -111, -211, -311");
    assert_eq!(
        search(&dir, &["--oldest-first", "--text", "needle-11"]),
        want
    );
    let want = pick(&|v| msg(v, "message").is_some_and(|m| m.contains("for user2 from")));
    assert!(!want.is_empty());
    assert_eq!(
        search(&dir, &["--oldest-first", "--text", "for user2 from"]),
        want
    );

    // Limit keeps the first N in the chosen order.
    assert_eq!(
        search(&dir, &["--oldest-first", "--limit", "7"]),
        file[..7].to_vec()
    );
    let newest3: Vec<String> = file.iter().rev().take(3).cloned().collect();
    assert_eq!(search(&dir, &["--limit", "3"]), newest3);

    // The archive verifies clean against its own checkpoints and key.
    let (code, out) = verify(&dir, &a.pubkey, &[]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn records_stay_searchable_across_a_restart() {
    let mut a = Arch::start("");
    tcp_send(
        a.s.addr("tcp"),
        windows_event(1, "alice", "2026-03-01T10:00:00Z").as_bytes(),
    );
    a.wait_durable(1, Duration::from_secs(10));
    assert!(a.s.stop().success());
    a.restart();
    tcp_send(
        a.s.addr("tcp"),
        windows_event(2, "bob", "2026-03-01T10:00:01Z").as_bytes(),
    );
    a.wait_durable(1, Duration::from_secs(10));
    assert!(a.s.stop().success());
    let all = search(&a.dir(), &["--oldest-first"]);
    let users: Vec<&str> = all
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| msg(&v, "targetusername").unwrap().to_string().leak() as &str)
        .collect();
    assert_eq!(users, ["alice", "bob"]);
    let (code, out) = verify(&a.dir(), &a.pubkey, &[]);
    assert_eq!(code, 0, "{out}");
}

#[test]
fn a_reload_that_changes_the_archive_hands_it_over_without_losing_records() {
    let mut a = Arch::start("checkpoint_interval = \"1s\"");
    let mut buf = String::new();
    for i in 0..100 {
        buf.push_str(&windows_event(i, "frank", "2026-03-01T10:00:00Z"));
    }
    tcp_send(a.s.addr("tcp"), buf.as_bytes());
    a.wait_durable(100, Duration::from_secs(10));
    // Change the archive's own settings: a new writer takes over the
    // directory once the old one has finished.
    let cfg = std::fs::read_to_string(&a.s.config_path).unwrap();
    std::fs::write(
        &a.s.config_path,
        cfg.replace(
            "checkpoint_interval = \"1s\"",
            "checkpoint_interval = \"2s\"",
        ),
    )
    .unwrap();
    a.s.signal(libc::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(10), || a
            .s
            .log_text()
            .contains("reloaded:")),
        "{}",
        a.s.log_text()
    );
    let mut buf = String::new();
    for i in 100..200 {
        buf.push_str(&windows_event(i, "grace", "2026-03-01T10:00:00Z"));
    }
    tcp_send(a.s.addr("tcp"), buf.as_bytes());
    assert!(
        wait_until(Duration::from_secs(15), || a.durable() >= 100.0),
        "the new writer's metrics show its records"
    );
    assert!(a.s.stop().success());
    let all = search(&a.dir(), &["--oldest-first"]);
    assert_eq!(all.len(), 200, "{}", a.s.log_text());
    let (code, out) = verify(&a.dir(), &a.pubkey, &[]);
    assert_eq!(code, 0, "{out}");
}
