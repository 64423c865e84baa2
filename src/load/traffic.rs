//! The traffic `sluice load` sends: realistic messages of the kinds a
//! security team's appliance receives, and the weighted mix of them.
//!
//! Kinds: Windows security events as an agent's JSON (4624, 4625, 4634,
//! 4768; lowercase keys with string ids after RFC 3164 headers, or
//! CamelCase keys with numeric ids after RFC 5424 headers, as NXLog
//! sends), Flowmon ADS events as CEF, sshd lines (RFC 3164), firewall CEF,
//! and `perf`: the comparison workload of `perf/`, an RFC 5424 line whose
//! MSG is a Windows 4624 event of about 280 bytes of JSON.
//!
//! Messages are rendered once, before sending, with a stamp slot
//! ([`super::stamp`]) as their last field; rendering allocates freely, the
//! send loop only patches the slot.

use std::fmt;
use std::io::Write;

use super::stamp;
use crate::time::Timestamp;

/// One kind of message in the mix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Windows events, lowercase or CamelCase keys (half each).
    Windows,
    /// Windows events with lowercase keys and string event ids.
    WindowsLower,
    /// Windows events with CamelCase keys and numeric event ids.
    WindowsCamel,
    /// Flowmon ADS events as CEF.
    Flowmon,
    /// OpenSSH server lines.
    Sshd,
    /// Firewall CEF (FortiGate, Palo Alto, Check Point style).
    Cef,
    /// RFC 5424 + ~280-byte Windows JSON: the `perf/` workload.
    Perf,
}

impl Kind {
    pub const ALL: [(&'static str, Kind); 7] = [
        ("windows", Kind::Windows),
        ("windows-lower", Kind::WindowsLower),
        ("windows-camel", Kind::WindowsCamel),
        ("flowmon", Kind::Flowmon),
        ("sshd", Kind::Sshd),
        ("cef", Kind::Cef),
        ("perf", Kind::Perf),
    ];

    pub fn name(self) -> &'static str {
        Kind::ALL
            .iter()
            .find(|(_, k)| *k == self)
            .map_or("?", |(n, _)| n)
    }
}

/// Weighted kinds.
#[derive(Clone, Debug, PartialEq)]
pub struct Mix(pub Vec<(Kind, u32)>);

/// The default mix: what a domain controller, a Flowmon, Linux servers and
/// a firewall send to one appliance, roughly.
pub const DEFAULT_MIX: &str = "windows=50,flowmon=10,sshd=25,cef=15";

impl std::str::FromStr for Mix {
    type Err = String;

    /// `kind=weight,...` (a bare `kind` weighs 1).
    fn from_str(s: &str) -> Result<Mix, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, w) = match part.split_once('=') {
                Some((n, w)) => (
                    n.trim(),
                    w.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("mix: weight of `{n}` is not a number: `{w}`"))?,
                ),
                None => (part, 1),
            };
            let kind = Kind::ALL
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, k)| *k)
                .ok_or_else(|| {
                    let names: Vec<&str> = Kind::ALL.iter().map(|(n, _)| *n).collect();
                    format!("mix: unknown kind `{name}` (known: {})", names.join(", "))
                })?;
            if w > 0 {
                out.push((kind, w));
            }
        }
        if out.is_empty() {
            return Err("mix: needs at least one kind with a weight above 0".into());
        }
        Ok(Mix(out))
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, w)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}={w}", k.name())?;
        }
        Ok(())
    }
}

impl Mix {
    /// Picks a kind by weight.
    pub fn pick(&self, rng: &mut fastrand::Rng) -> Kind {
        let total: u32 = self.0.iter().map(|(_, w)| w).sum();
        let mut r = rng.u32(0..total);
        for (k, w) in &self.0 {
            if r < *w {
                return *k;
            }
            r -= w;
        }
        self.0[0].0
    }
}

/// One rendered message: the syslog message (no framing) and where its
/// stamp value starts.
pub struct Rendered {
    pub bytes: Vec<u8>,
    pub stamp_at: usize,
}

const USERS: [&str; 14] = [
    "alice",
    "bob",
    "carol",
    "dave",
    "erin",
    "frank",
    "grace",
    "heidi",
    "ivan",
    "judy",
    "mallory",
    "svc_backup",
    "WKS-0142$",
    "Administrator",
];
const DCS: [&str; 2] = ["DC01", "DC02"];
const SERVERS: [&str; 4] = ["web01", "web02", "db01", "bastion"];

/// What varies between messages of one kind.
struct Vary {
    user: &'static str,
    dc: &'static str,
    ip: [u8; 4],
    port: u16,
    logon_id: u32,
    n: u32,
}

impl Vary {
    fn new(rng: &mut fastrand::Rng) -> Vary {
        Vary {
            user: USERS[rng.usize(..USERS.len())],
            dc: DCS[rng.usize(..DCS.len())],
            ip: [10, rng.u8(0..8), rng.u8(0..=255), rng.u8(1..255)],
            port: rng.u16(49152..=65535),
            logon_id: rng.u32(0x10_0000..0xff_ffff),
            n: rng.u32(..),
        }
    }
    fn ip(&self) -> String {
        let [a, b, c, d] = self.ip;
        format!("{a}.{b}.{c}.{d}")
    }
}

/// Renders one message of `kind`. `run` and `stream` go into the stamp;
/// sequence and time are patched in when it is sent.
pub fn render(
    kind: Kind,
    rng: &mut fastrand::Rng,
    now: Timestamp,
    run: u32,
    stream: u32,
) -> Rendered {
    let v = Vary::new(rng);
    let kind = match kind {
        Kind::Windows if rng.bool() => Kind::WindowsLower,
        Kind::Windows => Kind::WindowsCamel,
        k => k,
    };
    let mut out = Vec::with_capacity(1024);
    let mut t3164 = Vec::new();
    now.write_rfc3164(&mut t3164);
    let t3164 = String::from_utf8_lossy(&t3164).into_owned();
    let mut t5424 = Vec::new();
    Timestamp {
        frac_digits: 3,
        ..now
    }
    .write_rfc3339(&mut t5424);
    let t5424 = String::from_utf8_lossy(&t5424).into_owned();
    let event = [4624, 4624, 4624, 4625, 4634, 4768, 4768][rng.usize(..7)];
    // Each writer ends just before the stamp value and says what follows it.
    let close: &[u8] = match kind {
        Kind::WindowsLower => {
            let _ = write!(
                out,
                "<110>{t3164} {dc} MSWinEventLog: {json}",
                dc = v.dc,
                json = windows_lower(event, &v)
            );
            b"\"}"
        }
        Kind::WindowsCamel | Kind::Windows => {
            let _ = write!(
                out,
                "<14>1 {t5424} {dc}.corp.example.com Microsoft-Windows-Security-Auditing 636 - - {json}",
                dc = v.dc,
                json = windows_camel(event, &v)
            );
            b"\"}"
        }
        Kind::Flowmon => {
            let _ = write!(out, "<13>{t3164} flowmon01 ADS: {}", flowmon_cef(rng, &v));
            b""
        }
        Kind::Sshd => {
            let _ = write!(
                out,
                "<38>{t3164} {host} sshd[{pid}]: {text} loadstamp=",
                host = SERVERS[rng.usize(..SERVERS.len())],
                pid = 1000 + v.n % 60000,
                text = sshd_text(rng, &v)
            );
            b""
        }
        Kind::Cef => {
            let _ = write!(out, "<134>{t3164} fw01 {}", firewall_cef(rng, &v));
            b""
        }
        Kind::Perf => {
            let _ = write!(
                out,
                "<14>1 {t5424} DC01.corp.example.com Microsoft-Windows-Security-Auditing 636 - - \
                 {{\"EventID\":4624,\"Computer\":\"DC01.corp.example.com\",\"TargetUserName\":\"{user}\",\
                 \"TargetDomainName\":\"CORP\",\"TargetLogonId\":\"0x{lid:x}\",\"LogonType\":3,\
                 \"IpAddress\":\"{ip}\",\"IpPort\":\"{port}\",\"AuthenticationPackageName\":\"Kerberos\",\
                 \"loadstamp\":\"",
                user = v.user,
                lid = v.logon_id,
                ip = v.ip(),
                port = v.port
            );
            b"\"}"
        }
    };
    let stamp_at = out.len();
    stamp::write_value(
        &mut out,
        &stamp::Stamp {
            run,
            stream,
            seq: 0,
            sent_ns: 0,
            fin_streams: None,
        },
    );
    out.extend_from_slice(close);
    Rendered {
        bytes: out,
        stamp_at,
    }
}

/// A stream's last message, with a fin stamp: RFC 5424 with a small JSON
/// MSG, so that pipelines that only pass JSON (a `json-parser` that drops
/// what fails) still forward it.
pub fn render_fin(now: Timestamp, run: u32, stream: u32, streams: u32) -> Rendered {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"<13>1 ");
    now.write_rfc3339(&mut out);
    out.extend_from_slice(
        b" loadgen sluice-load - - - {\"message\":\"end of load stream\",\"loadstamp\":\"",
    );
    let stamp_at = out.len();
    stamp::write_value(
        &mut out,
        &stamp::Stamp {
            run,
            stream,
            seq: 0,
            sent_ns: 0,
            fin_streams: Some(streams),
        },
    );
    out.extend_from_slice(b"\"}");
    Rendered {
        bytes: out,
        stamp_at,
    }
}

/// Lowercase-key agent JSON (string event id), schema order, up to the
/// opening quote of the stamp value.
fn windows_lower(event: u32, v: &Vary) -> String {
    let ip = v.ip();
    let (user, dc, port, lid) = (v.user, v.dc, v.port, v.logon_id);
    let head = format!(
        "{{\"eventid\":\"{event}\",\"computer\":\"{dc}.corp.example.com\",\"channel\":\"Security\",\
         \"providername\":\"Microsoft-Windows-Security-Auditing\",\"keywords\":\"{kw}\",",
        kw = if event == 4625 {
            "Audit Failure"
        } else {
            "Audit Success"
        }
    );
    let body = match event {
        4624 => format!(
            "\"subjectusersid\":\"S-1-5-18\",\"subjectusername\":\"{dc}$\",\"subjectdomainname\":\"CORP\",\
             \"subjectlogonid\":\"0x3e7\",\"targetusersid\":\"S-1-5-21-3623811015-3361044348-30300820-1107\",\
             \"targetusername\":\"{user}\",\"targetdomainname\":\"CORP\",\"targetlogonid\":\"0x{lid:x}\",\
             \"logontype\":\"3\",\"logonprocessname\":\"Kerberos\",\"authenticationpackagename\":\"Kerberos\",\
             \"workstationname\":\"-\",\"logonguid\":\"{{5e3b8c2a-1d4f-4b7e-9a61-0c2d3e4f5a6b}}\",\
             \"transmittedservices\":\"-\",\"lmpackagename\":\"-\",\"keylength\":\"0\",\"processid\":\"0x0\",\
             \"processname\":\"-\",\"ipaddress\":\"{ip}\",\"ipport\":\"{port}\",\
             \"impersonationlevel\":\"%%1833\",",
        ),
        4625 => format!(
            "\"subjectusersid\":\"S-1-0-0\",\"subjectusername\":\"-\",\"subjectdomainname\":\"-\",\
             \"subjectlogonid\":\"0x0\",\"targetusersid\":\"S-1-0-0\",\"targetusername\":\"{user}\",\
             \"targetdomainname\":\"CORP\",\"status\":\"0xc000006d\",\"failurereason\":\"%%2313\",\
             \"substatus\":\"0xc000006a\",\"logontype\":\"3\",\"logonprocessname\":\"NtLmSsp \",\
             \"authenticationpackagename\":\"NTLM\",\"workstationname\":\"WKS-0142\",\
             \"ipaddress\":\"{ip}\",\"ipport\":\"{port}\",",
        ),
        4634 => format!(
            "\"targetusersid\":\"S-1-5-21-3623811015-3361044348-30300820-1107\",\
             \"targetusername\":\"{user}\",\"targetdomainname\":\"CORP\",\
             \"targetlogonid\":\"0x{lid:x}\",\"logontype\":\"3\",",
        ),
        _ => format!(
            "\"targetusername\":\"{user}\",\"targetdomainname\":\"CORP.EXAMPLE.COM\",\
             \"targetsid\":\"S-1-5-21-3623811015-3361044348-30300820-1107\",\"servicename\":\"krbtgt\",\
             \"servicesid\":\"S-1-5-21-3623811015-3361044348-30300820-502\",\
             \"ticketoptions\":\"0x40810010\",\"status\":\"0x0\",\"ticketencryptiontype\":\"0x12\",\
             \"preauthtype\":\"2\",\"ipaddress\":\"::ffff:{ip}\",\"ipport\":\"{port}\",",
        ),
    };
    format!("{head}{body}\"loadstamp\":\"")
}

/// CamelCase agent JSON (numeric event id), as NXLog's `to_json()`.
fn windows_camel(event: u32, v: &Vary) -> String {
    let ip = v.ip();
    let (user, dc, port, lid) = (v.user, v.dc, v.port, v.logon_id);
    let head = format!(
        "{{\"EventID\":{event},\"Hostname\":\"{dc}.corp.example.com\",\"Channel\":\"Security\",\
         \"SourceName\":\"Microsoft-Windows-Security-Auditing\",\"Task\":{task},\"Severity\":\"{sev}\",",
        task = match event {
            4624 => 12544,
            4625 => 12544,
            4634 => 12545,
            _ => 14339,
        },
        sev = if event == 4625 { "ERROR" } else { "INFO" }
    );
    let body = match event {
        4624 => format!(
            "\"SubjectUserSid\":\"S-1-5-18\",\"SubjectUserName\":\"{dc}$\",\"SubjectDomainName\":\"CORP\",\
             \"SubjectLogonId\":\"0x3e7\",\"TargetUserSid\":\"S-1-5-21-3623811015-3361044348-30300820-1107\",\
             \"TargetUserName\":\"{user}\",\"TargetDomainName\":\"CORP\",\"TargetLogonId\":\"0x{lid:x}\",\
             \"LogonType\":\"3\",\"LogonProcessName\":\"Kerberos\",\"AuthenticationPackageName\":\"Kerberos\",\
             \"WorkstationName\":\"-\",\"IpAddress\":\"{ip}\",\"IpPort\":\"{port}\",\
             \"Message\":\"An account was successfully logged on.\",",
        ),
        4625 => format!(
            "\"TargetUserSid\":\"S-1-0-0\",\"TargetUserName\":\"{user}\",\"TargetDomainName\":\"CORP\",\
             \"Status\":\"0xc000006d\",\"FailureReason\":\"%%2313\",\"SubStatus\":\"0xc000006a\",\
             \"LogonType\":\"3\",\"LogonProcessName\":\"NtLmSsp \",\"AuthenticationPackageName\":\"NTLM\",\
             \"WorkstationName\":\"WKS-0142\",\"IpAddress\":\"{ip}\",\"IpPort\":\"{port}\",\
             \"Message\":\"An account failed to log on.\",",
        ),
        4634 => format!(
            "\"TargetUserSid\":\"S-1-5-21-3623811015-3361044348-30300820-1107\",\
             \"TargetUserName\":\"{user}\",\"TargetDomainName\":\"CORP\",\"TargetLogonId\":\"0x{lid:x}\",\
             \"LogonType\":3,\"Message\":\"An account was logged off.\",",
        ),
        _ => format!(
            "\"TargetUserName\":\"{user}\",\"TargetDomainName\":\"CORP.EXAMPLE.COM\",\
             \"TargetSid\":\"S-1-5-21-3623811015-3361044348-30300820-1107\",\"ServiceName\":\"krbtgt\",\
             \"TicketOptions\":\"0x40810010\",\"Status\":\"0x0\",\"TicketEncryptionType\":\"0x12\",\
             \"PreAuthType\":\"2\",\"IpAddress\":\"::ffff:{ip}\",\"IpPort\":\"{port}\",\
             \"Message\":\"A Kerberos authentication ticket (TGT) was requested.\",",
        ),
    };
    format!("{head}{body}\"loadstamp\":\"")
}

/// Flowmon ADS event as CEF (the working assumption of FORMATS.md:
/// vendor `Flowmon Networks`, class id = event type, `externalId` = ADS
/// event id, labelled custom strings), up to the stamp value.
fn flowmon_cef(rng: &mut fastrand::Rng, v: &Vary) -> String {
    let (typ, desc, sev, detail) = [
        (
            "SSHDICT",
            "SSH attack",
            7,
            "Dictionary attack on SSH, 52 attempts",
        ),
        ("SCANS", "Port scanning", 5, "TCP SYN scan of 1024 ports"),
        (
            "ANOMALY",
            "Behavior anomaly",
            4,
            "Unusual volume of traffic to a new destination",
        ),
        (
            "DNSANOMALY",
            "DNS anomaly",
            6,
            "Unusually long DNS names (possible tunnel)",
        ),
        (
            "BLACKLIST",
            "Communication with blacklisted host",
            8,
            "Host on botnet C&C list",
        ),
    ][rng.usize(..5)];
    format!(
        "CEF:0|Flowmon Networks|Flowmon ADS|12.3.1|{typ}|{desc}|{sev}|externalId={id} \
         rt={rt} src={src} dst=10.0.1.{d} cs1={detail} cs1Label=detail cs2=Servers \
         cs2Label=perspective cs3=10.0.1.{d} cs3Label=targets cs4=flowmon-probe-1 \
         cs4Label=netFlowSource suser={user} loadstamp=",
        id = 800_000 + v.n % 100_000,
        rt = 1_767_225_600_000u64 + v.n as u64,
        src = v.ip(),
        d = 1 + v.n % 250,
        user = v.user,
    )
}

fn sshd_text(rng: &mut fastrand::Rng, v: &Vary) -> String {
    let ip = format!("203.0.113.{}", 1 + v.n % 254);
    let (user, port) = (v.user, v.port);
    match rng.u8(0..5) {
        0 => format!(
            "Accepted publickey for {user} from {ip} port {port} ssh2: ED25519 \
             SHA256:3q2+7w0bXk1yYp6Qm0ZbN5m0k0o9tD5s0h1mP0xkq8E"
        ),
        1 => format!("Failed password for {user} from {ip} port {port} ssh2"),
        2 => format!("Failed password for invalid user admin from {ip} port {port} ssh2"),
        3 => format!("Invalid user oracle from {ip} port {port}"),
        _ => format!("Connection closed by authenticating user root {ip} port {port} [preauth]"),
    }
}

/// Firewall traffic log as CEF, up to the stamp value.
fn firewall_cef(rng: &mut fastrand::Rng, v: &Vary) -> String {
    let src = v.ip();
    let dst = format!("93.184.{}.{}", v.n % 250, 1 + (v.n >> 8) % 250);
    let port = v.port;
    match rng.u8(0..3) {
        0 => format!(
            "CEF:0|Fortinet|FortiGate-100F|7.2.5|0000000013|traffic:forward accept|3|\
             src={src} dst={dst} spt={port} dpt=443 proto=6 act=accept \
             deviceInboundInterface=port1 deviceOutboundInterface=wan1 out=4096 in=18234 \
             app=HTTPS cs1=CORP-LAN cs1Label=srcintfrole loadstamp="
        ),
        1 => format!(
            "CEF:0|Palo Alto Networks|PAN-OS|10.2.4|end|TRAFFIC|1|rt=Mar 03 2026 10:15:00 \
             src={src} dst={dst} spt={port} dpt=53 proto=udp act=allow app=dns \
             cs1=allow-dns cs1Label=Rule suser=corp\\\\{user} loadstamp=",
            user = v.user
        ),
        _ => format!(
            "CEF:0|Check Point|VPN-1 & FireWall-1|R81.20|Drop|Drop|5|src={src} dst={dst} \
             spt={port} dpt=445 proto=6 act=Drop deviceDirection=1 \
             msg=Blocked by rule 12 (cleanup) loadstamp="
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::Batch;
    use crate::batch::BatchOwner;
    use crate::parse::Parser;
    use crate::record::{UNSPECIFIED, flaw};

    fn all_kinds() -> Vec<Rendered> {
        let mut rng = fastrand::Rng::with_seed(7);
        let now = Timestamp::now();
        let mut out = Vec::new();
        for (_, k) in Kind::ALL {
            for _ in 0..50 {
                out.push(render(k, &mut rng, now, 0xabcdef01, 3));
            }
        }
        out.push(render_fin(now, 0xabcdef01, 3, 4));
        out
    }

    #[test]
    fn mixes_parse_with_weights_and_reject_unknown_kinds() {
        let m: Mix = "windows=3, sshd ,cef=0".parse().unwrap();
        assert_eq!(m.0, vec![(Kind::Windows, 3), (Kind::Sshd, 1)]);
        assert_eq!(m.to_string(), "windows=3,sshd=1");
        assert!("nope=1".parse::<Mix>().is_err());
        assert!("cef=x".parse::<Mix>().is_err());
        assert!("cef=0".parse::<Mix>().is_err());
        assert!(DEFAULT_MIX.parse::<Mix>().is_ok());
    }

    #[test]
    fn every_kind_carries_a_readable_stamp_at_its_slot() {
        let f = stamp::Finder::new();
        for r in all_kinds() {
            let s = f.find(&r.bytes).expect("stamp");
            assert_eq!((s.run, s.stream), (0xabcdef01, 3));
            assert_eq!(
                stamp::parse_value(&r.bytes[r.stamp_at..]).map(|s| s.run),
                Some(0xabcdef01)
            );
            assert!(!r.bytes.contains(&b'\n'));
        }
    }

    #[test]
    fn every_kind_parses_cleanly_in_sluice() {
        let mut owner = BatchOwner::default();
        let rendered = all_kinds();
        for r in &rendered {
            owner.push_frame(&r.bytes, UNSPECIFIED, Timestamp::now(), 0, 0);
        }
        let batch = Batch::parse(owner, &mut Parser::new());
        batch.with_dependent(|_, recs| {
            for (r, rec) in rendered.iter().zip(recs.list.iter()) {
                let text = String::from_utf8_lossy(&r.bytes);
                assert_eq!(rec.flaws & !flaw::BAD_CEF, 0, "{text}");
                if text.contains('{') {
                    assert!(rec.json, "{text}");
                    assert!(rec.fields.get(b"loadstamp").is_some(), "{text}");
                }
            }
        });
    }

    #[test]
    fn the_perf_workload_has_a_json_payload_of_about_280_bytes() {
        let mut rng = fastrand::Rng::with_seed(1);
        for _ in 0..100 {
            let r = render(Kind::Perf, &mut rng, Timestamp::now(), 1, 0);
            let json = &r.bytes[r.bytes.iter().position(|&b| b == b'{').unwrap()..];
            assert!((260..=300).contains(&json.len()), "{}", json.len());
        }
    }
}
