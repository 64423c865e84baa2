//! Address helpers: CIDR sets and IPv4-mapped IPv6 normalisation.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address block, `10.0.0.0/8` or `2001:db8::/32`; a bare address is a
/// block of one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let ip = normalize(addr.parse::<IpAddr>().ok()?);
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return None;
        }
        Some(Cidr {
            net: mask(ip, prefix),
            prefix,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = normalize(ip);
        ip.is_ipv4() == self.net.is_ipv4() && mask(ip, self.prefix) == self.net
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - prefix)
            };
            IpAddr::V4((u32::from(v4) & m).into())
        }
        IpAddr::V6(v6) => {
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - prefix)
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & m))
        }
    }
}

/// `::ffff:a.b.c.d` → `a.b.c.d`; other addresses unchanged.
pub fn normalize(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

/// Parses an address from field text, normalising IPv4-mapped forms.
pub fn parse_ip(text: &[u8]) -> Option<IpAddr> {
    if let Some(v4) = fast_ipv4(text) {
        return Some(IpAddr::V4(v4));
    }
    let s = std::str::from_utf8(text).ok()?.trim();
    s.parse::<IpAddr>().ok().map(normalize)
}

/// Parses an address as `std` does ([`str::parse`]) with a fast path for
/// plain dotted IPv4, the common case on the per-record path.
pub fn parse_ipv4(text: &[u8]) -> Option<Ipv4Addr> {
    fast_ipv4(text).or_else(|| std::str::from_utf8(text).ok()?.parse().ok())
}

/// Canonical dotted IPv4 (`a.b.c.d`, each 0-255 without leading zeros),
/// or None for anything else, which the caller then leaves to `std`'s
/// parser: whatever this accepts, `std` accepts with the same value.
#[inline]
fn fast_ipv4(text: &[u8]) -> Option<Ipv4Addr> {
    if !(7..=15).contains(&text.len()) {
        return None;
    }
    let digit = |i: usize| -> Option<u32> {
        let d = text.get(i)?.wrapping_sub(b'0');
        (d <= 9).then_some(d as u32)
    };
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (n, o) in octets.iter_mut().enumerate() {
        // One to three digits, no leading zero, at most 255.
        let mut v = digit(i)?;
        i += 1;
        if let Some(d) = digit(i) {
            if v == 0 {
                return None;
            }
            v = v * 10 + d;
            i += 1;
            if let Some(d) = digit(i) {
                v = v * 10 + d;
                i += 1;
            }
        }
        if v > 255 {
            return None;
        }
        *o = v as u8;
        if n < 3 {
            if text.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
    }
    (i == text.len()).then(|| Ipv4Addr::from(octets))
}

/// A list of blocks; empty contains nothing.
#[derive(Clone, Debug, Default)]
pub struct CidrSet(pub Vec<Cidr>);

impl CidrSet {
    pub fn parse_all(list: &[String]) -> Option<CidrSet> {
        list.iter()
            .map(|s| Cidr::parse(s))
            .collect::<Option<Vec<_>>>()
            .map(CidrSet)
    }
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|c| c.contains(ip))
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_ipv4_agrees_with_std() {
        for s in [
            "0.0.0.0",
            "10.1.151.142",
            "255.255.255.255",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "1..2.3",
            ".1.2.3",
            "1.2.3.",
            "1.2.3.4 ",
            "a.b.c.d",
            "1.2.3.00",
            "100.200.250.199",
            "1.2.3.0400",
        ] {
            let std: Option<Ipv4Addr> = s.parse().ok();
            if let Some(fast) = fast_ipv4(s.as_bytes()) {
                assert_eq!(Some(fast), std, "{s}");
            }
            assert_eq!(parse_ipv4(s.as_bytes()), std, "{s}");
        }
    }

    proptest::proptest! {
        #[test]
        fn fast_ipv4_never_disagrees(s in "[0-9.]{0,16}") {
            if let Some(fast) = fast_ipv4(s.as_bytes()) {
                proptest::prop_assert_eq!(Some(fast), s.parse::<Ipv4Addr>().ok());
            }
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_blocks_contain_their_addresses_and_mapped_forms() {
        let c = Cidr::parse("10.0.0.0/8").unwrap();
        assert!(c.contains(ip("10.1.2.3")));
        assert!(c.contains(ip("::ffff:10.1.2.3")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(
            Cidr::parse("192.168.1.5")
                .unwrap()
                .contains(ip("192.168.1.5"))
        );
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        assert!(
            Cidr::parse("2001:db8::/32")
                .unwrap()
                .contains(ip("2001:db8::1"))
        );
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("nonsense").is_none());
    }

    #[test]
    fn mapped_addresses_normalise_to_ipv4() {
        assert_eq!(parse_ip(b"::ffff:10.0.0.12"), Some(ip("10.0.0.12")));
        assert_eq!(parse_ip(b"-"), None);
    }
}
