//! Who the client is: the socket peer, unless the peer is a configured trusted proxy
//! (`http.trusted_proxies`), in which case the address it forwarded in
//! `X-Forwarded-For`. A client can write any `X-Forwarded-For` it likes, so the header is
//! read only from trusted peers, and from the right: each trusted proxy appends the
//! address it received from, so the first address from the right that is not a trusted
//! proxy is the client as the outermost trusted proxy saw it.

use std::net::IpAddr;

/// A network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`, or a single address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(text: &str) -> Option<Network> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((a, p)) => (a.parse::<IpAddr>().ok()?, Some(p.parse::<u8>().ok()?)),
            None => (text.trim().parse::<IpAddr>().ok()?, None),
        };
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Network { address, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (canonical(self.address), ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) as IPv4, so one rule covers both.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Parses the configured proxies; the error names the first entry that is not a network.
pub fn parse_all(entries: &[String]) -> Result<Vec<Network>, String> {
    entries
        .iter()
        .map(|e| {
            Network::parse(e).ok_or_else(|| format!("http.trusted_proxies: {e:?} is not an address or CIDR"))
        })
        .collect()
}

/// The client's address given the socket peer and the `X-Forwarded-For` values.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[Network]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let Some(header) = forwarded_for else { return peer };
    let mut client = peer;
    for hop in header.rsplit(',') {
        // A malformed entry ends the walk: everything left of it is unverifiable.
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            break;
        };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn forwarded_addresses_count_only_from_trusted_proxies_and_from_the_right() {
        let trusted = parse_all(&["10.0.0.0/8".into(), "192.0.2.1".into()]).expect("valid");
        // An untrusted peer's header changes nothing.
        assert_eq!(
            client_ip(ip("203.0.113.5"), Some("198.51.100.1"), &trusted),
            ip("203.0.113.5")
        );
        // A trusted peer: the rightmost untrusted hop is the client, whatever the client
        // itself prepended.
        assert_eq!(
            client_ip(ip("10.1.2.3"), Some("6.6.6.6, 198.51.100.7, 192.0.2.1"), &trusted),
            ip("198.51.100.7")
        );
        // Garbage ends the walk at the last good hop.
        assert_eq!(
            client_ip(ip("10.1.2.3"), Some("nonsense, 198.51.100.9"), &trusted),
            ip("198.51.100.9")
        );
        assert_eq!(
            client_ip(ip("10.1.2.3"), Some("nonsense"), &trusted),
            ip("10.1.2.3")
        );
        assert_eq!(client_ip(ip("10.1.2.3"), None, &trusted), ip("10.1.2.3"));
        // IPv4-mapped peers match IPv4 rules.
        assert!(trusted[0].contains(ip("::ffff:10.9.9.9")));
        assert!(parse_all(&["10.0.0.0/33".into()]).is_err());
        assert!(parse_all(&["example.com".into()]).is_err());
    }
}
