//! The `ip` scheme: ACL ids are an address or a CIDR range, IPv4 (`10.0.0.1`,
//! `10.0.0.0/8`) or IPv6 (`::1`, `fe80::/10`); a session's principal is its peer address.
//!
//! Parsing follows ZooKeeper's `IPAuthenticationProvider` rather than `std`'s
//! `FromStr`, because the ACL ids a client may store are decided by it: a string with
//! a `:` is IPv6 (hex groups with at most one `::`, no dotted-quad tail, no zone),
//! otherwise one with a `.` is IPv4 (four decimal parts, leading zeros allowed).
//! We are slightly stricter than Java's `Integer.parseInt` in refusing `+`/`-` signs.
//!
//! Matching compares address values, not strings: `0:0:0:0:0:0:0:1` matches `::1`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An `ip` ACL id: an address and how many of its leading bits a peer must share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IpRange {
    addr: IpAddr,
    prefix_len: u8,
}

impl IpRange {
    /// Parses `addr` or `addr/prefix_len`; `None` if ZooKeeper would call it invalid.
    pub fn parse(s: &str) -> Option<IpRange> {
        let (addr_part, prefix_part) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (s, None),
        };
        let addr = parse_addr(addr_part)?;
        let max_len = max_prefix_len(addr);
        let prefix_len = match prefix_part {
            Some(p) => u8::try_from(parse_decimal(p, u32::from(max_len))?).ok()?,
            None => max_len,
        };
        Some(IpRange { addr, prefix_len })
    }

    /// The address as written (host bits are kept; they are ignored when matching).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `peer` lies in this range. An IPv4 range never contains an IPv6 peer
    /// and vice versa, as in ZooKeeper.
    pub fn contains(&self, peer: IpAddr) -> bool {
        match (self.addr, peer) {
            (IpAddr::V4(net), IpAddr::V4(peer)) => {
                let mask = mask_bits_u32(self.prefix_len);
                u32::from(net) & mask == u32::from(peer) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(peer)) => {
                let mask = mask_bits_u128(self.prefix_len);
                u128::from(net) & mask == u128::from(peer) & mask
            }
            _ => false,
        }
    }
}

/// Parses an address by ZooKeeper's rules (see the module docs).
pub fn parse_addr(s: &str) -> Option<IpAddr> {
    if s.contains(':') {
        parse_v6(s).map(IpAddr::V6)
    } else if s.contains('.') {
        parse_v4(s).map(IpAddr::V4)
    } else {
        None
    }
}

/// The address as Java's `InetAddress.getHostAddress()` prints it, which is what a
/// ZooKeeper session's `ip` principal holds: IPv6 as eight uncompressed lowercase hex
/// groups, and IPv4-mapped IPv6 peers as plain IPv4 (Java converts those on accept).
pub fn host_address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => v6
                .segments()
                .iter()
                .map(|g| format!("{g:x}"))
                .collect::<Vec<_>>()
                .join(":"),
        },
    }
}

/// Whether a session's `ip` principal id matches an `ip` ACL id. Unparsable either
/// side never matches.
pub(crate) fn matches(principal_id: &str, acl_id: &str) -> bool {
    match (IpRange::parse(acl_id), parse_addr(principal_id)) {
        (Some(range), Some(peer)) => range.contains(peer),
        _ => false,
    }
}

pub(crate) fn is_valid_id(acl_id: &str) -> bool {
    IpRange::parse(acl_id).is_some()
}

fn max_prefix_len(addr: IpAddr) -> u8 {
    match addr {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    }
}

fn mask_bits_u32(prefix_len: u8) -> u32 {
    u32::MAX
        .checked_shl(32 - u32::from(prefix_len))
        .unwrap_or(0)
}

fn mask_bits_u128(prefix_len: u8) -> u128 {
    u128::MAX
        .checked_shl(128 - u32::from(prefix_len))
        .unwrap_or(0)
}

/// A non-empty run of ASCII digits whose value is at most `max`.
fn parse_decimal(s: &str, max: u32) -> Option<u32> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.bytes().try_fold(0u32, |acc, b| {
        let v = acc.checked_mul(10)?.checked_add(u32::from(b - b'0'))?;
        (v <= max).then_some(v)
    })
}

fn parse_v4(s: &str) -> Option<Ipv4Addr> {
    let mut octets = [0u8; 4];
    let mut parts = s.split('.');
    for octet in &mut octets {
        *octet = u8::try_from(parse_decimal(parts.next()?, 255)?).ok()?;
    }
    match parts.next() {
        Some(_) => None,
        None => Some(Ipv4Addr::from(octets)),
    }
}

fn parse_v6(s: &str) -> Option<Ipv6Addr> {
    let mut halves = s.split("::");
    let head = halves.next()?;
    let tail = halves.next();
    if halves.next().is_some() {
        return None;
    }
    let mut groups = [0u16; 8];
    match tail {
        None => {
            let parsed = parse_groups(head)?;
            if parsed.len() != 8 {
                return None;
            }
            groups.copy_from_slice(&parsed);
        }
        Some(tail) => {
            let head = parse_groups(head)?;
            let tail = parse_groups(tail)?;
            // ZooKeeper insists `::` stands for at least one zero group.
            if head.len() + tail.len() >= 8 {
                return None;
            }
            groups[..head.len()].copy_from_slice(&head);
            groups[8 - tail.len()..].copy_from_slice(&tail);
        }
    }
    Some(Ipv6Addr::from(groups))
}

/// Colon-separated hex groups; an empty string is no groups, an empty group is an error.
fn parse_groups(s: &str) -> Option<Vec<u16>> {
    if s.is_empty() {
        return Some(Vec::new());
    }
    s.split(':')
        .map(|g| {
            let ok = (1..=4).contains(&g.len()) && g.bytes().all(|b| b.is_ascii_hexdigit());
            if ok {
                u16::from_str_radix(g, 16).ok()
            } else {
                None
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    #[test]
    fn v4_cidr_matches_inside_and_not_outside() {
        // Goal: an IPv4 CIDR range contains exactly the addresses sharing its prefix.
        let r = IpRange::parse("10.0.0.0/8").expect("valid");
        assert!(r.contains(ip("10.1.2.3")));
        assert!(r.contains(ip("10.255.255.255")));
        assert!(!r.contains(ip("11.0.0.0")));
        let r = IpRange::parse("192.168.1.128/25").expect("valid");
        assert!(r.contains(ip("192.168.1.200")));
        assert!(!r.contains(ip("192.168.1.127")));
    }

    #[test]
    fn plain_address_is_a_full_length_range() {
        // Goal: an id without /len matches only that one address.
        let r = IpRange::parse("127.0.0.1").expect("valid");
        assert_eq!(r.prefix_len(), 32);
        assert!(r.contains(ip("127.0.0.1")));
        assert!(!r.contains(ip("127.0.0.2")));
        let r = IpRange::parse("::1").expect("valid");
        assert_eq!(r.prefix_len(), 128);
        assert!(r.contains(ip("::1")));
        assert!(!r.contains(ip("::2")));
    }

    #[test]
    fn zero_prefix_matches_whole_family_only() {
        // Goal: /0 matches every address of its family and none of the other.
        let r = IpRange::parse("0.0.0.0/0").expect("valid");
        assert!(r.contains(ip("8.8.8.8")));
        assert!(!r.contains(ip("::1")));
        let r = IpRange::parse("::/0").expect("valid");
        assert!(r.contains(ip("2001:db8::1")));
        assert!(!r.contains(ip("1.2.3.4")));
    }

    #[test]
    fn host_bits_in_acl_are_ignored() {
        // Goal: 10.1.2.3/8 is the same range as 10.0.0.0/8, as ZooKeeper masks both sides.
        let r = IpRange::parse("10.1.2.3/8").expect("valid");
        assert!(r.contains(ip("10.9.9.9")));
    }

    #[test]
    fn v6_cidr_matches_by_value() {
        // Goal: IPv6 ranges match by address value, in any textual form.
        let r = IpRange::parse("fe80::/10").expect("valid");
        assert!(r.contains(ip("fe80::1")));
        assert!(r.contains(ip("febf:ffff::1")));
        assert!(!r.contains(ip("fec0::1")));
        assert!(matches("0:0:0:0:0:0:0:1", "::1"));
        assert!(matches("fe80:0:0:0:0:0:0:5", "FE80::/64"));
        assert!(matches("2001:db8:0:0:0:0:0:1", "2001:0db8::1/128"));
        assert!(!matches("0:0:0:0:0:0:0:1", "127.0.0.1"));
    }

    #[test]
    fn bad_ranges_are_rejected() {
        // Goal: malformed addresses and out-of-range prefixes are invalid ACL ids.
        for bad in [
            "",
            "localhost",
            "10",
            "10.0.0",
            "10.0.0.0.0",
            "256.0.0.1",
            "10.0.0.-1",
            "10.0.0.+1",
            "10.0.0.0/33",
            "10.0.0.0/-1",
            "10.0.0.0/",
            "10.0.0.0/8/8",
            "10.0.0.0/a",
            "::/129",
            "1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7:8:9",
            "1::2::3",
            ":::",
            "1:::2",
            "12345::",
            "g::1",
            "::ffff:1.2.3.4",
            "fe80::1%eth0",
            "1:2:3:4::5:6:7:8",
        ] {
            assert!(!is_valid_id(bad), "{bad:?} should be invalid");
        }
        for good in [
            "0010.0.0.1",
            "::",
            "1::",
            "::1",
            "1:2:3:4:5:6:7:8",
            "1:2::7:8/64",
            "1:2:3:4:5:6:7::",
        ] {
            assert!(is_valid_id(good), "{good:?} should be valid");
        }
        assert_eq!(parse_addr("0010.0.0.1"), Some(ip("10.0.0.1")));
    }

    #[test]
    fn unparsable_principal_never_matches() {
        // Goal: a junk principal id cannot match even the widest range.
        assert!(!matches("not-an-ip", "0.0.0.0/0"));
        assert!(!matches("1.2.3.4", "junk"));
    }

    #[test]
    fn host_address_formats_like_java() {
        // Goal: principals carry Java's getHostAddress() text, uncompressed IPv6 and unmapped IPv4.
        assert_eq!(host_address(ip("127.0.0.1")), "127.0.0.1");
        assert_eq!(host_address(ip("::1")), "0:0:0:0:0:0:0:1");
        assert_eq!(host_address(ip("2001:db8::ab:c")), "2001:db8:0:0:0:0:ab:c");
        assert_eq!(host_address(ip("::ffff:10.0.0.1")), "10.0.0.1");
        for s in ["127.0.0.1", "::1", "2001:db8::ab:c"] {
            assert_eq!(parse_addr(&host_address(ip(s))), Some(ip(s)));
        }
    }
}
