//! The Windows-agent corpus the archive's benchmarks and `perf/archive.sh`
//! use: RFC 5424 lines whose MSG is a Windows security event as a JSON
//! object, the way domain-controller agents (NXLog, Winlogbeat in JSON
//! mode) forward them.
//!
//! Deterministic (a fixed-seed splitmix64), so every run and machine sees
//! the same bytes. The mix: 4624 logon 50%, 4634 logoff 20%, 4768
//! Kerberos TGT 15%, 4672 special privileges 10%, 4625 failed logon 5%;
//! 5,000 users, 2,000 workstations, 3 domain controllers, 100 events per
//! second of event time. Unique per event, as in real logs: record number,
//! logon id, source port, and for Kerberos logons the logon GUID. Lines
//! are 330–480 bytes.

use std::io::Write;

/// Users in the corpus: `user0` … `user4999`.
pub const USERS: u64 = 5000;

/// A fixed-seed generator of corpus lines.
pub struct Corpus {
    state: u64,
    n: u64,
    /// Event time of the first line, unix seconds.
    pub start_s: i64,
}

impl Default for Corpus {
    fn default() -> Self {
        Corpus::new(1)
    }
}

impl Corpus {
    pub fn new(seed: u64) -> Corpus {
        Corpus {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15),
            n: 0,
            // 2026-03-01T00:00:00Z
            start_s: 1_772_323_200,
        }
    }

    fn next(&mut self) -> u64 {
        // splitmix64
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A skewed pick in `0..n`: a few values are common, most are rare (as
    /// with users and workstations).
    fn skewed(&mut self, n: u64) -> u64 {
        let a = self.next() % n;
        let b = self.next() % n;
        a.min(b)
    }

    /// Appends the next line (with a trailing LF) to `out`.
    pub fn line(&mut self, out: &mut Vec<u8>) {
        let i = self.n;
        self.n += 1;
        let ms = i * 10 + self.next() % 10;
        let secs = self.start_s + (ms / 1000) as i64;
        let mut ts = Vec::with_capacity(32);
        crate::time::Timestamp {
            unix_ns: secs * 1_000_000_000 + (ms % 1000) as i64 * 1_000_000,
            offset_min: 0,
            frac_digits: 3,
        }
        .write_rfc3339(&mut ts);
        let ts = std::str::from_utf8(&ts).unwrap_or("-");
        let dc = self.next() % 3 + 1;
        let user = self.skewed(USERS);
        let ws = self.skewed(2000);
        let ip = (10u64, (ws / 250) + 1, ws % 250 + 1);
        let port = 49152 + self.next() % 16384;
        let logon_id = self.next() & 0xFFFF_FFFF;
        let kind = self.next() % 100;
        let _ = write!(
            out,
            "<14>1 {ts} dc{dc:02}.corp.example.com nxlog - - - {{\"EventTime\":\"{ts}\",\"Hostname\":\"dc{dc:02}.corp.example.com\",\"Channel\":\"Security\",\"ProviderName\":\"Microsoft-Windows-Security-Auditing\",\"RecordNumber\":{},",
            1_000_000 + i
        );
        match kind {
            0..50 => {
                let kerberos = self.next().is_multiple_of(2);
                let guid = if kerberos {
                    let (a, b) = (self.next(), self.next());
                    format!(
                        "{{{:08X}-{:04X}-{:04X}-{:04X}-{:012X}}}",
                        a >> 32,
                        (a >> 16) & 0xFFFF,
                        a & 0xFFFF,
                        b >> 48,
                        b & 0xFFFF_FFFF_FFFF
                    )
                } else {
                    "{00000000-0000-0000-0000-000000000000}".to_string()
                };
                let _ = write!(
                    out,
                    "\"EventID\":4624,\"TargetUserName\":\"user{user}\",\"TargetDomainName\":\"CORP\",\"TargetLogonId\":\"0x{logon_id:x}\",\"LogonType\":{},\"AuthenticationPackageName\":\"{}\",\"WorkstationName\":\"WS{ws:04}\",\"LogonGuid\":\"{guid}\",\"IpAddress\":\"{}.{}.{}.{}\",\"IpPort\":\"{port}\"}}",
                    if kerberos {
                        3
                    } else {
                        [2, 3, 10][(self.next() % 3) as usize]
                    },
                    if kerberos { "Kerberos" } else { "NTLM" },
                    ip.0,
                    ip.1,
                    ip.2,
                    ws % 7 + 10
                );
            }
            50..70 => {
                let _ = write!(
                    out,
                    "\"EventID\":4634,\"TargetUserName\":\"user{user}\",\"TargetDomainName\":\"CORP\",\"TargetLogonId\":\"0x{logon_id:x}\",\"LogonType\":3}}"
                );
            }
            70..85 => {
                let _ = write!(
                    out,
                    "\"EventID\":4768,\"TargetUserName\":\"user{user}\",\"TargetDomainName\":\"CORP.EXAMPLE.COM\",\"ServiceName\":\"krbtgt\",\"TicketOptions\":\"0x40810010\",\"Status\":\"0x0\",\"TicketEncryptionType\":\"0x12\",\"PreAuthType\":\"2\",\"IpAddress\":\"::ffff:{}.{}.{}.{}\",\"IpPort\":\"{port}\"}}",
                    ip.0,
                    ip.1,
                    ip.2,
                    ws % 7 + 10
                );
            }
            85..95 => {
                let _ = write!(
                    out,
                    "\"EventID\":4672,\"SubjectUserName\":\"user{user}\",\"SubjectDomainName\":\"CORP\",\"SubjectLogonId\":\"0x{logon_id:x}\",\"PrivilegeList\":\"SeSecurityPrivilege SeBackupPrivilege SeRestorePrivilege SeDebugPrivilege\"}}"
                );
            }
            _ => {
                let _ = write!(
                    out,
                    "\"EventID\":4625,\"TargetUserName\":\"user{user}\",\"TargetDomainName\":\"CORP\",\"Status\":\"0xc000006d\",\"SubStatus\":\"0xc000006a\",\"FailureReason\":\"%%2313\",\"LogonType\":3,\"WorkstationName\":\"WS{ws:04}\",\"IpAddress\":\"{}.{}.{}.{}\",\"IpPort\":\"{port}\"}}",
                    ip.0,
                    ip.1,
                    ip.2,
                    ws % 7 + 10
                );
            }
        }
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_is_deterministic_json_in_rfc5424_lines() {
        let (mut a, mut b) = (Corpus::new(1), Corpus::new(1));
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..1000 {
            a.line(&mut x);
            b.line(&mut y);
        }
        assert_eq!(x, y);
        for l in x.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            let s = std::str::from_utf8(l).unwrap();
            assert!(s.starts_with("<14>1 2026-03-01T"), "{s}");
            let j = &s[s.find('{').unwrap()..];
            let v: serde_json::Value = serde_json::from_str(j).unwrap();
            assert!(v["EventID"].is_u64());
            assert!((200..520).contains(&l.len()), "{} bytes: {s}", l.len());
        }
    }
}
