//! Who is calling, before any token is looked at: the client's address (behind proxies the
//! operator trusts) and user agents refused outright.
//!
//! A key design decision: `X-Forwarded-For` is honoured only when the TCP peer is a trusted proxy,
//! and then read from the right: each proxy appends the address it saw, so the right-most entry
//! that is not itself a trusted proxy is the first one no trusted party vouches for: the client.
//! Whatever a client writes at the left of the header is never believed.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use crate::limit::Limits;

/// An address block such as `10.0.0.0/8` or `::1/128`; a bare address is the block of itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not an address block such as 10.0.0.0/8, 127.0.0.1 or ::1/128")]
pub struct InvalidCidr(String);

impl Cidr {
    pub fn parse(text: &str) -> Result<Self, InvalidCidr> {
        let invalid = || InvalidCidr(text.to_owned());
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix.parse::<u8>().map_err(|_| invalid())?)),
            None => (text.trim(), None),
        };
        let network = address.parse::<IpAddr>().map_err(|_| invalid())?.to_canonical();
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(bits);
        if prefix > bits {
            return Err(invalid());
        }
        Ok(Self { network, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                same_prefix(u128::from(net.to_bits()) << 96, u128::from(ip.to_bits()) << 96, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => same_prefix(net.to_bits(), ip.to_bits(), self.prefix),
            _ => false,
        }
    }
}

fn same_prefix(a: u128, b: u128, prefix: u8) -> bool {
    prefix == 0 || (a ^ b) >> (128 - u32::from(prefix)) == 0
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

/// The operator's rules for callers of the client API.
#[derive(Clone, Debug, Default)]
pub struct ClientRules {
    /// Requests per minute per client address; 0: no limit.
    pub ip_rpm: u32,
    trusted_proxies: Vec<Cidr>,
    /// Lower-cased, never empty.
    blocked_agents: Vec<String>,
}

impl ClientRules {
    pub fn new(ip_rpm: u32, trusted_proxies: Vec<Cidr>, blocked_agents: &[String]) -> Self {
        let blocked_agents =
            blocked_agents.iter().map(|a| a.trim().to_ascii_lowercase()).filter(|a| !a.is_empty()).collect();
        Self { ip_rpm, trusted_proxies, blocked_agents }
    }

    /// No rule at all: the client routes need no gate.
    pub fn is_empty(&self) -> bool {
        self.ip_rpm == 0 && self.blocked_agents.is_empty()
    }

    /// The limits of one client address, if addresses are limited.
    pub fn ip_limits(&self) -> Option<Limits> {
        (self.ip_rpm > 0).then(|| Limits { rpm: Some(self.ip_rpm), ..Limits::default() })
    }

    /// Whether a user agent contains a blocked word (ASCII case-insensitive). No agent is not blocked.
    pub fn blocks_agent(&self, user_agent: Option<&str>) -> bool {
        let Some(agent) = user_agent else { return false };
        self.blocked_agents.iter().any(|word| contains_ignore_ascii_case(agent.as_bytes(), word.as_bytes()))
    }

    /// The client's address: the TCP peer, or, when the peer is a trusted proxy, the right-most
    /// `X-Forwarded-For` entry that is not a trusted proxy. `forwarded_for` are the header's
    /// values in the order received. Reading stops at an entry that is not an address: the last
    /// trusted hop before it is the best the gateway knows.
    pub fn client_ip<'a, I>(&self, peer: IpAddr, forwarded_for: I) -> IpAddr
    where
        I: IntoIterator<Item = &'a str>,
        I::IntoIter: DoubleEndedIterator,
    {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        for hop in forwarded_for.into_iter().rev().flat_map(|value| value.rsplit(',')) {
            let Some(ip) = parse_hop(hop) else { return client };
            if !self.trusts(ip) {
                return ip;
            }
            client = ip;
        }
        client
    }

    /// Whether an address is one of the trusted proxies (whose `X-Forwarded-*` headers count).
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|cidr| cidr.contains(ip))
    }
}

/// One `X-Forwarded-For` entry: an address, or an address with a port (some proxies add one).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let ip = hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))?;
    Some(ip.to_canonical())
}

fn contains_ignore_ascii_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> Cidr {
        Cidr::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn behind(trusted: &[&str]) -> ClientRules {
        ClientRules::new(60, trusted.iter().map(|t| cidr(t)).collect(), &[])
    }

    #[test]
    fn address_blocks_parse_and_match_by_prefix() {
        assert!(cidr("10.0.0.0/8").contains(ip("10.200.3.4")));
        assert!(!cidr("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(cidr("127.0.0.1").contains(ip("127.0.0.1")) && !cidr("127.0.0.1").contains(ip("127.0.0.2")));
        assert!(cidr("0.0.0.0/0").contains(ip("203.0.113.9")));
        assert!(cidr("fd00::/8").contains(ip("fd12::1")) && !cidr("fd00::/8").contains(ip("fe80::1")));
        assert!(cidr("127.0.0.1/32").contains(ip("::ffff:127.0.0.1")), "IPv4-mapped peers are IPv4");
        assert!(!cidr("::/0").contains(ip("1.2.3.4")));
        assert_eq!(cidr(" 192.168.1.77/24 ").to_string(), "192.168.1.77/24");
        for bad in ["", "10.0.0.0/33", "::1/129", "10.0.0/8", "10.0.0.0/x", "host/8"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn forwarded_for_is_ignored_from_a_peer_that_is_not_trusted() {
        let rules = behind(&["10.0.0.0/8"]);
        assert_eq!(rules.client_ip(ip("203.0.113.7"), ["198.51.100.1"]), ip("203.0.113.7"));
        assert_eq!(behind(&[]).client_ip(ip("127.0.0.1"), ["198.51.100.1"]), ip("127.0.0.1"));
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_entry_is_the_client() {
        let rules = behind(&["127.0.0.1/32", "10.0.0.0/8"]);
        assert_eq!(rules.client_ip(ip("127.0.0.1"), ["198.51.100.1"]), ip("198.51.100.1"));
        assert_eq!(rules.client_ip(ip("127.0.0.1"), ["6.6.6.6, 198.51.100.1, 10.1.1.1"]), ip("198.51.100.1"));
        assert_eq!(rules.client_ip(ip("127.0.0.1"), ["6.6.6.6", "198.51.100.1 , 10.1.1.1"]), ip("198.51.100.1"));
        assert_eq!(rules.client_ip(ip("127.0.0.1"), ["198.51.100.1:4711"]), ip("198.51.100.1"));
        assert_eq!(rules.client_ip(ip("127.0.0.1"), ["[2001:db8::1]:443"]), ip("2001:db8::1"));
    }

    #[test]
    fn a_chain_of_trusted_hops_or_garbage_stops_at_the_last_trusted_hop() {
        let rules = behind(&["127.0.0.1/32", "10.0.0.0/8"]);
        assert_eq!(rules.client_ip(ip("127.0.0.1"), std::iter::empty()), ip("127.0.0.1"));
        assert_eq!(rules.client_ip(ip("127.0.0.1"), ["10.0.0.9"]), ip("10.0.0.9"));
        assert_eq!(rules.client_ip(ip("127.0.0.1"), ["6.6.6.6, unknown, 10.0.0.9"]), ip("10.0.0.9"));
    }

    #[test]
    fn blocked_agents_match_any_case_as_substrings() {
        let rules = ClientRules::new(0, Vec::new(), &["curl".into(), "Python-Requests".into(), " ".into()]);
        assert!(rules.blocks_agent(Some("curl/8.5.0")));
        assert!(rules.blocks_agent(Some("python-requests/2.31")));
        assert!(rules.blocks_agent(Some("My CURL wrapper")));
        assert!(!rules.blocks_agent(Some("Mozilla/5.0")));
        assert!(!rules.blocks_agent(None));
        assert!(!ClientRules::default().blocks_agent(Some("curl/8")));
        assert_eq!(rules.ip_limits(), None);
        assert_eq!(behind(&[]).ip_limits().and_then(|l| l.rpm), Some(60));
        assert!(ClientRules::default().is_empty() && !rules.is_empty() && !behind(&[]).is_empty());
    }
}
