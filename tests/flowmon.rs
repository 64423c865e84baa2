//! The Flowmon integration end to end, with the real binary on the
//! shipped `examples/flowmon.toml` (only the host, ports and paths
//! changed, as an administrator would) and a real syslog-ng running the
//! shipped patterndb rules as Flowmon's collector.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;

const GUI_HOST: &str = "flowmon.lab.example";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Replaces every `from` in `text`, insisting it occurs `n` times (so a
/// change to the example breaks this test instead of going unnoticed).
fn replace_n(text: &str, from: &str, to: &str, n: usize) -> String {
    assert_eq!(
        text.matches(from).count(),
        n,
        "examples/flowmon.toml should contain {from:?} {n} time(s)"
    );
    text.replace(from, to)
}

/// `examples/flowmon.toml` as the tests run it: the Flowmon host edited
/// (the GUI host in `event_url`, the collector in `target`), listening on
/// loopback port 0, writing into the test's directory.
fn example_config(collector: SocketAddr) -> String {
    let t = read("examples/flowmon.toml");
    let t = replace_n(&t, "flowmon.example.com:514", &collector.to_string(), 1);
    let t = replace_n(
        &t,
        "https://flowmon.example.com/",
        &format!("https://{GUI_HOST}/"),
        1,
    );
    let t = replace_n(
        &t,
        "listen = \"0.0.0.0:514\"",
        "listen = \"127.0.0.1:0\"",
        2,
    );
    let t = replace_n(
        &t,
        "listen = \"127.0.0.1:9514\"",
        "listen = \"127.0.0.1:0\"",
        1,
    );
    let t = replace_n(&t, "/var/log/sluice/", "{dir}/", 1);
    format!("[pipeline]\nworkers = 2\n{t}")
}

/// A TCP listener that keeps everything sent to it.
struct Collector {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<u8>>>,
}

impl Collector {
    fn start() -> Collector {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                let g = g.clone();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        g.lock().unwrap().extend_from_slice(&buf[..n]);
                    }
                });
            }
        });
        Collector { addr, got }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.got.lock().unwrap()).into_owned()
    }
}

fn event_url(id: &str) -> String {
    format!(
        "https://{GUI_HOST}/adsplug/events/?_adsLink=tab%2AEvents.SimpleList%7CeventDetail%5B0%5D%2A{id}"
    )
}

fn flowmon_cef(id: &str, src: &str) -> String {
    format!(
        "<129>Mar  2 10:16:01 flowmon ADS: CEF:0|Flowmon Networks|Flowmon ADS|12.3.1|SSHDICT|SSH attack|8|externalId={id} src={src} dst=10.0.0.22 cs1Label=Perspective cs1=Security issues cs2Label=Detail cs2=Dictionary attack on SSH: 1523 attempts"
    )
}

fn flowmon_json(id: &str, src: &str) -> String {
    format!(
        r#"<134>1 2026-03-02T10:17:00Z flowmon ADS - - - {{"id":{id},"type":"ANOMALY","typeDesc":"Behavior anomaly","severity":"MEDIUM","source":"{src}","targets":["10.0.0.5"],"detail":"Unusual amount of transferred data","perspective":"Operational issues","netFlowSource":"Core-Router-1"}}"#
    )
}

fn by_eventid<'a>(recs: &'a [Value], id: &str) -> &'a Value {
    recs.iter()
        .find(|r| msg(r, "eventid") == Some(id) && meta(r, "class") == Some("flowmon-ads"))
        .unwrap_or_else(|| panic!("no flowmon-ads record with eventid {id}: {recs:?}"))
}

#[test]
fn flowmon_events_get_their_event_url_and_the_user_behind_their_source() {
    let collector = Collector::start();
    let mut s = Sluice::start(&example_config(collector.addr));
    let out = s.path("records.ndjson");
    let mut tcp = TcpStream::connect(s.addr("syslog-tcp")).unwrap();
    let mut send = |line: &str| {
        tcp.write_all(line.as_bytes()).unwrap();
        tcp.write_all(b"\n").unwrap();
        tcp.flush().unwrap();
    };

    // Before any logon: the link, but nobody behind the address.
    send(&flowmon_cef("840839", "192.168.1.109"));
    let recs = wait_records(&out, 1, Duration::from_secs(10));
    let first = by_eventid(&recs, "840839");
    assert_eq!(msg(first, "event_url"), Some(event_url("840839").as_str()));
    assert_eq!(msg(first, "src_ip"), Some("192.168.1.109"));
    assert_eq!(msg(first, "src_user"), None);

    // A domain controller sees alice get a Kerberos TGT from that address.
    send(
        r#"<14>1 2026-03-02T10:15:31.500Z DC01.corp.example.com Microsoft-Windows-Security-Auditing 640 - - {"EventID":4768,"Channel":"Security","TargetUserName":"alice","TargetDomainName":"CORP.EXAMPLE.COM","ServiceName":"krbtgt","Status":"0x0","IpAddress":"::ffff:192.168.1.109","IpPort":"49723"}"#,
    );
    let recs = wait_records(&out, 2, Duration::from_secs(10));
    assert_eq!(meta(&recs[1], "class"), Some("windows"));

    // Flowmon events about that address now say who was using it, in
    // both of Flowmon's forms; one about another address does not.
    send(&flowmon_cef("840840", "192.168.1.109"));
    send(&flowmon_json("840841", "::ffff:192.168.1.109"));
    send(&flowmon_cef("840842", "192.168.1.200"));
    let recs = wait_records(&out, 5, Duration::from_secs(10));
    assert_eq!(recs.len(), 5, "{recs:?}");
    for id in ["840840", "840841"] {
        let r = by_eventid(&recs, id);
        assert_eq!(msg(r, "event_url"), Some(event_url(id).as_str()));
        assert_eq!(msg(r, "src_user"), Some(r"CORP.EXAMPLE.COM\alice"), "{r}");
    }
    let other = by_eventid(&recs, "840842");
    assert_eq!(msg(other, "event_url"), Some(event_url("840842").as_str()));
    assert_eq!(msg(other, "src_user"), None);

    assert_eq!(
        s.metric("sluice_classify_records_total{class=\"flowmon-ads\"}"),
        4.0
    );
    assert_eq!(s.metric("sluice_identity_enriched_total"), 2.0);
    assert!(s.stop().success());

    // Only the logon went to the Flowmon collector.
    assert!(wait_until(Duration::from_secs(5), || collector
        .text()
        .lines()
        .count()
        == 1));
    let sent = collector.text();
    assert!(
        sent.contains(r#""eventid":"4768","targetusername":"alice""#),
        "{sent}"
    );
    assert!(!sent.contains("flowmon-ads"), "{sent}");
}

/// syslog-ng as Flowmon's collector, on its own config, pid file, control
/// socket and persist file in a temporary directory.
struct SyslogNg {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
}

impl SyslogNg {
    fn start() -> SyslogNg {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let conf = read("contrib/flowmon/test-collector.conf")
            .replace("@LISTEN_IP@", "127.0.0.1")
            .replace("@PORT@", &port.to_string())
            .replace(
                "@RULES@",
                repo("contrib/flowmon/identity-patterndb.xml")
                    .to_str()
                    .unwrap(),
            )
            .replace("@OUTPUT@", dir.path().join("pairs.txt").to_str().unwrap());
        for p in ["@LISTEN_IP@", "@PORT@", "@RULES@", "@OUTPUT@"] {
            assert!(!conf.contains(p), "{p} left in the collector config");
        }
        let conf_path = dir.path().join("syslog-ng.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let bin = ["/usr/sbin/syslog-ng", "/usr/bin/syslog-ng"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("syslog-ng is installed (scripts/deps.sh)");
        let mut child = Command::new(bin)
            .args(["-F", "-e", "--no-caps", "-f"])
            .arg(&conf_path)
            .arg("-p")
            .arg(dir.path().join("syslog-ng.pid"))
            .arg("-c")
            .arg(dir.path().join("syslog-ng.ctl"))
            .arg("-R")
            .arg(dir.path().join("syslog-ng.persist"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn syslog-ng");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let l2 = log.clone();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                eprintln!("[syslog-ng] {line}");
                l2.lock().unwrap().push(line.clone());
                let _ = tx.send(line);
            }
        });
        loop {
            match rx.recv_timeout(Duration::from_secs(15)) {
                Ok(l) if l.contains("syslog-ng starting up") => break,
                Ok(_) => {}
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "syslog-ng did not start:\n{}",
                        log.lock().unwrap().join("\n")
                    );
                }
            }
        }
        SyslogNg {
            child,
            dir,
            port,
            log,
        }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The `USERNAME ASSIGNED_IP` lines written so far, one per message
    /// received.
    fn pairs(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("pairs.txt"))
            .unwrap_or_default()
            .lines()
            .map(|l| l.trim().to_string())
            .collect()
    }
}

impl Drop for SyslogNg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What an event sent into sluice must do at Flowmon's collector.
enum Reach {
    /// Arrive, and make the rules learn this `USERNAME ASSIGNED_IP` pair
    /// ("" when there is nothing to learn).
    Pair(&'static str),
    /// Not arrive at all.
    Never,
}

/// Windows logons as different agents send them, and events that must not
/// reach Flowmon, interleaved.
fn identity_traffic() -> Vec<(String, Reach)> {
    use Reach::*;
    vec![
        // Lowercase agent, eventid a number, plain address.
        (
            r#"<14>1 2026-03-02T10:15:32Z dc02 winagent - - - {"eventid":4624,"channel":"Security","targetusername":"alice","targetdomainname":"CORP","logontype":"3","ipaddress":"192.168.1.10","ipport":"50999"}"#.into(),
            Pair("alice 192.168.1.10"),
        ),
        (
            r#"<13>Mar  2 10:15:40 DC01 MSWinEventLog: {"Channel":"Security","EventID":"4625","IpAddress":"203.0.113.50","TargetUserName":"mallory","TargetDomainName":"CORP","Status":"0xc000006d","LogonType":"3"}"#.into(),
            Never,
        ),
        // NXLog CamelCase, EventID a string, IPv4-mapped address, System
        // fields first (and ProcessID beside EventData's ProcessId).
        (
            r#"<14>Mar  2 10:15:33 DC01.corp.example.com Microsoft-Windows-Security-Auditing[640]: {"EventTime":"2026-03-02 10:15:33","Hostname":"DC01.corp.example.com","EventID":"4624","SourceName":"Microsoft-Windows-Security-Auditing","ProcessID":640,"Channel":"Security","SubjectUserSid":"S-1-0-0","SubjectUserName":"-","TargetUserSid":"S-1-5-21-1-2-3-1106","TargetUserName":"bob","TargetDomainName":"CORP","TargetLogonId":"0x3e7a1b2","LogonType":"3","LogonProcessName":"Kerberos","ProcessId":"0x0","IpAddress":"::ffff:192.168.1.11","IpPort":"50123"}"#.into(),
            Pair("bob 192.168.1.11"),
        ),
        (flowmon_cef("840900", "192.168.1.11"), Never),
        // CamelCase 4768, EventID a number, IPv4-mapped address.
        (
            r#"<14>1 2026-03-02T10:15:34Z DC01 Microsoft-Windows-Security-Auditing 640 - - {"EventID":4768,"Channel":"Security","TargetUserName":"carol","TargetDomainName":"CORP.EXAMPLE.COM","ServiceName":"krbtgt","IpAddress":"::ffff:10.0.0.12","IpPort":"50211"}"#.into(),
            Pair("carol 10.0.0.12"),
        ),
        (
            "<38>Mar  2 10:21:00 web01 sshd[2211]: Accepted password for deploy from 192.168.1.50 port 50522 ssh2".into(),
            Never,
        ),
        // Lowercase 4768, eventid a string, plain IPv4 (an agent unmapped it).
        (
            r#"<14>1 2026-03-02T10:15:35Z dc02 winagent - - - {"ipaddress":"10.0.0.13","targetusername":"dave","eventid":"4768","targetdomainname":"CORP.EXAMPLE.COM","servicename":"krbtgt"}"#.into(),
            Pair("dave 10.0.0.13"),
        ),
        (
            r#"<14>Mar  2 11:02:10 DC01 Microsoft-Windows-Security-Auditing[640]: {"EventID":4634,"Channel":"Security","TargetUserName":"alice","TargetDomainName":"CORP","TargetLogonId":"0x3e7a1b2","LogonType":3}"#.into(),
            Never,
        ),
        // Winlogbeat: nested, event_id a number, address before the user.
        (
            r#"<14>1 2026-03-02T10:15:36Z dc01 winlogbeat - - - {"@timestamp":"2026-03-02T10:15:36.001Z","event":{"code":"4624","action":"logged-in"},"winlog":{"channel":"Security","event_id":4624,"event_data":{"IpAddress":"192.168.1.15","TargetUserName":"frank","TargetDomainName":"CORP","LogonType":"3"}}}"#.into(),
            Pair("frank 192.168.1.15"),
        ),
        // System and EventData nested, plain IPv4 on a 4768.
        (
            r#"<14>1 2026-03-02T10:15:37Z dc03 agent - - - {"System":{"EventID":"4768","Computer":"DC03","Channel":"Security"},"EventData":{"TargetUserName":"gina","TargetDomainName":"CORP.EXAMPLE.COM","IpAddress":"10.0.0.16","IpPort":"50212"}}"#.into(),
            Pair("gina 10.0.0.16"),
        ),
        // Keys in reverse order, and a port that ends in the other event id.
        (
            r#"<14>1 2026-03-02T10:15:38Z dc02 winagent - - - {"ipport":"54768","ipaddress":"192.168.1.17","targetusername":"henry","eventid":4624}"#.into(),
            Pair("henry 192.168.1.17"),
        ),
        // A console logon: no address, nothing to learn.
        (
            r#"<14>1 2026-03-02T10:15:39Z dc02 winagent - - - {"eventid":"4624","targetusername":"ivan","logontype":"2","ipaddress":"-","ipport":"-"}"#.into(),
            Pair(""),
        ),
        // An IPv6 logon.
        (
            r#"<14>1 2026-03-02T10:15:40Z dc02 winagent - - - {"EventID":4624,"TargetUserName":"judy","TargetDomainName":"CORP","IpAddress":"2001:db8::17","IpPort":"50000"}"#.into(),
            Pair("judy 2001:db8::17"),
        ),
        (flowmon_json("840901", "192.168.1.15"), Never),
        (
            "<34>Oct 11 22:14:15 mymachine su: 'su root' failed for lonvick on /dev/pts/8".into(),
            Never,
        ),
        // JSON with an event id that is not a Windows event.
        (
            r#"<14>1 2026-03-02T10:25:00Z app01 shop - - - {"eventid":"4624","order":"A-77"}"#.into(),
            Never,
        ),
        // The last one: when it is there, everything before it is too.
        (
            r#"<14>1 2026-03-02T10:15:41Z DC01 Microsoft-Windows-Security-Auditing 640 - - {"EventID":"4768","TargetUserName":"zoe","TargetDomainName":"CORP.EXAMPLE.COM","IpAddress":"::ffff:10.0.0.99"}"#.into(),
            Pair("zoe 10.0.0.99"),
        ),
    ]
}

#[test]
fn syslog_ng_as_flowmon_collector_learns_every_logon_and_nothing_else() {
    let ng = SyslogNg::start();
    let mut s = Sluice::start(&example_config(ng.addr()));
    let traffic = identity_traffic();
    let events: Vec<&String> = traffic.iter().map(|(e, _)| e).collect();
    let want: Vec<&str> = traffic
        .iter()
        .filter_map(|(_, r)| match r {
            Reach::Pair(p) => Some(*p),
            Reach::Never => None,
        })
        .collect();
    assert!(want.len() >= 10 && events.len() - want.len() >= 6);
    let mut tcp = TcpStream::connect(s.addr("syslog-tcp")).unwrap();
    for e in &events {
        tcp.write_all(e.as_bytes()).unwrap();
        tcp.write_all(b"\n").unwrap();
    }
    tcp.flush().unwrap();
    drop(tcp);

    let recs = wait_records(
        &s.path("records.ndjson"),
        events.len(),
        Duration::from_secs(15),
    );
    assert_eq!(recs.len(), events.len());
    let done = wait_until(Duration::from_secs(15), || {
        ng.pairs().last().map(String::as_str) == want.last().copied()
    });
    // Anything sent after the last logon would already be there too;
    // give a straggler a moment to show itself anyway.
    std::thread::sleep(Duration::from_millis(300));
    let got = ng.pairs();
    assert!(
        done,
        "syslog-ng did not get the last logon; pairs: {got:?}\nsyslog-ng log:\n{}",
        ng.log.lock().unwrap().join("\n")
    );
    assert_eq!(got, want, "pairs syslog-ng learned, one line per message");
    assert_eq!(
        s.metric_settled(
            "sluice_output_sent_total{output=\"flowmon-identity\"}",
            want.len() as f64
        ),
        want.len() as f64
    );
    assert!(s.stop().success());
}

#[test]
fn the_example_config_checks() {
    let out = Command::new(bin())
        .arg("check-config")
        .arg(repo("examples/flowmon.toml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_shipped_rules_pass_their_own_examples_in_pdbtool() {
    let out = Command::new("pdbtool")
        .arg("test")
        .arg(repo("contrib/flowmon/identity-patterndb.xml"))
        .output()
        .expect("pdbtool is installed (scripts/deps.sh)");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pdbtool test failed:\n{text}");
    assert_eq!(text.matches("Testing message").count(), 2, "{text}");
    assert!(!text.contains("Wrong match"), "{text}");
}

/// Fenced blocks of `lang` in a Markdown text.
fn blocks<'a>(md: &'a str, lang: &str) -> Vec<&'a str> {
    let open = format!("```{lang}\n");
    let mut out = Vec::new();
    let mut rest = md;
    while let Some(i) = rest.find(&open) {
        let body = &rest[i + open.len()..];
        let end = body.find("```").expect("closed block");
        out.push(&body[..end]);
        rest = &body[end..];
    }
    out
}

#[test]
fn the_guide_shows_exactly_the_shipped_config_and_rules() {
    let guide = read("docs/flowmon.md");
    let example = read("examples/flowmon.toml");
    let toml_blocks = blocks(&guide, "toml");
    assert!(toml_blocks.len() >= 3, "the guide shows its config");
    for b in toml_blocks {
        assert!(
            example.contains(b),
            "docs/flowmon.md shows config that examples/flowmon.toml lacks:\n{b}"
        );
    }
    let rules = read("contrib/flowmon/identity-patterndb.xml");
    for b in blocks(&guide, "xml") {
        assert!(
            rules.contains(b),
            "docs/flowmon.md shows rules that contrib/flowmon/identity-patterndb.xml lacks:\n{b}"
        );
    }
}
