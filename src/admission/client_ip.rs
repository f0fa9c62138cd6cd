//! Who the client is, by address: the peer, or what a trusted proxy says.
//!
//! `X-Forwarded-For` is believed only from the configured proxies, and only as far
//! as the chain stays within them: walking the header from the right (the hop
//! closest to us), the first address that is not a trusted proxy is the client.
//! Anything else a client sends in that header is ignored. IPv6 clients are keyed
//! by their /64, the block one subscriber line gets.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv6Addr};

/// The per-IP limiter's key.
pub type IpKey = IpAddr;

#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        TrustedProxies(nets)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client's key, from the peer address and the `X-Forwarded-For` header
    /// values (in order of appearance).
    pub fn client<'a>(&self, peer: IpAddr, forwarded_for: impl Iterator<Item = &'a str>) -> IpKey {
        if !self.trusts(peer) {
            return key(peer);
        }
        let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !self.trusts(ip) {
                        break;
                    }
                }
                // A hop we cannot read: the last address we could vouch for stands.
                Err(_) => break,
            }
        }
        key(client)
    }
}

fn key(ip: IpAddr) -> IpKey {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|s| s.parse().unwrap()).collect())
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let p = proxies(&["10.0.0.0/8"]);
        let c = p.client(ip("203.0.113.9"), ["1.2.3.4"].into_iter());
        assert_eq!(c, ip("203.0.113.9"));
    }

    #[test]
    fn a_trusted_chain_is_walked_from_the_right() {
        let p = proxies(&["10.0.0.0/8", "192.168.1.1/32"]);
        // The client forged the first entry; the proxies appended the rest.
        let c = p.client(
            ip("10.1.1.1"),
            ["6.6.6.6, 198.51.100.7", "192.168.1.1"].into_iter(),
        );
        assert_eq!(c, ip("198.51.100.7"));
    }

    #[test]
    fn a_garbled_hop_stops_the_walk() {
        let p = proxies(&["10.0.0.0/8"]);
        let c = p.client(ip("10.0.0.2"), ["1.2.3.4, junk, 10.0.0.3"].into_iter());
        assert_eq!(c, ip("10.0.0.3"));
        let none = p.client(ip("10.0.0.2"), std::iter::empty());
        assert_eq!(none, ip("10.0.0.2"));
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let p = TrustedProxies::default();
        let a = p.client(ip("2001:db8:1:2:aaaa::1"), std::iter::empty());
        let b = p.client(ip("2001:db8:1:2:bbbb::9"), std::iter::empty());
        assert_eq!(a, b);
        let mapped = p.client(ip("::ffff:198.51.100.7"), std::iter::empty());
        assert_eq!(mapped, ip("198.51.100.7"));
    }
}
