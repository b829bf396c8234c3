//! Value types the settings, the edge and OAuth share, kept out of any of them so none depends
//! on another for them: IP networks and the trusted-proxy list (the client's address is the
//! socket peer, or what a trusted proxy says in X-Forwarded-For), the per-address limiter key,
//! the shape a bearer token must have before anyone looks it up, and the text form of the OAuth
//! encryption key (OAUTH_ENCRYPTION_KEY).

use std::net::{IpAddr, SocketAddr};

use axum::http::HeaderMap;

/// An IP network (`10.0.0.0/8`) or a single address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Option<Cidr> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (
                addr.parse::<IpAddr>().ok()?,
                Some(prefix.parse::<u8>().ok()?),
            ),
            None => (text.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        if prefix > max {
            return None;
        }
        // Addresses are compared in their IPv4 form when IPv4-mapped, so such a network is too.
        match addr {
            IpAddr::V6(v6) if prefix >= 96 => {
                if let Some(v4) = v6.to_ipv4_mapped() {
                    return Some(Cidr {
                        network: IpAddr::V4(v4),
                        prefix: prefix - 96,
                    });
                }
            }
            _ => {}
        }
        Some(Cidr {
            network: addr,
            prefix,
        })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - self.prefix)
                };
                u32::from(net) & mask == u32::from(ip) & mask
            }
            // An IPv6 network (mapped addresses included) compares IPv4 clients in mapped form.
            (IpAddr::V6(net), ip) => {
                let ip = match ip {
                    IpAddr::V6(v6) => v6,
                    IpAddr::V4(v4) => v4.to_ipv6_mapped(),
                };
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - self.prefix)
                };
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

/// IPv4-mapped IPv6 addresses count as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        ip => ip,
    }
}

/// The proxies whose X-Forwarded-* headers are believed (TRUSTED_PROXIES).
#[derive(Clone, Debug, Default)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn parse(list: &[String]) -> TrustedProxies {
        TrustedProxies(
            list.iter()
                .filter(|s| !s.trim().is_empty())
                .filter_map(|s| Cidr::parse(s))
                .collect(),
        )
    }

    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|cidr| cidr.contains(ip))
    }

    /// The client address: walking X-Forwarded-For from the right, the first hop we do not
    /// trust; only when the socket peer itself is a trusted proxy.
    pub fn client_ip(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        let peer = canonical(peer?.ip());
        if !self.trusts(peer) {
            return Some(peer);
        }
        let mut hops: Vec<IpAddr> = Vec::new();
        for value in headers.get_all("x-forwarded-for").iter() {
            let Ok(value) = value.to_str() else {
                return Some(peer);
            };
            for hop in value.split(',') {
                match hop.trim().parse::<IpAddr>() {
                    Ok(ip) => hops.push(canonical(ip)),
                    // A garbled chain cannot be believed past this point.
                    Err(_) => return Some(peer),
                }
            }
        }
        Some(
            hops.into_iter()
                .rev()
                .find(|ip| !self.trusts(*ip))
                .unwrap_or(peer),
        )
    }

    /// Whether forwarded scheme/host headers may be believed for this peer.
    pub fn peer_trusted(&self, peer: Option<SocketAddr>) -> bool {
        peer.is_some_and(|p| self.trusts(canonical(p.ip())))
    }
}

/// The per-IP limiters' key for an address (`unknown` without one).
pub fn ip_key(ip: Option<IpAddr>) -> String {
    ip.map(|ip| ip.to_string())
        .unwrap_or_else(|| "unknown".into())
}

/// Longest token (bearer or pasted Coda token) worth looking up.
pub const MAX_TOKEN_LEN: usize = 4096;

/// Whether `token` has a token's shape: not empty, at most [`MAX_TOKEN_LEN`] bytes, no
/// whitespace. Anything else is refused before a store or Coda sees it.
pub fn token_shaped(token: &str) -> bool {
    !token.is_empty() && token.len() <= MAX_TOKEN_LEN && !token.contains(char::is_whitespace)
}

/// Parses a 32-byte key written as 64 hex digits or as base64 (standard or URL-safe, padded or not).
pub fn parse_key(text: &str) -> Result<[u8; 32], String> {
    let text = text.trim();
    use base64::Engine;
    let bytes = if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
        hex::decode(text).map_err(|_| "is not valid hex".to_string())?
    } else {
        let unpadded = text.trim_end_matches('=');
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(unpadded.replace('+', "-").replace('/', "_"))
            .map_err(|_| "must be 32 bytes as 64 hex digits or base64".to_string())?
    };
    bytes.try_into().map_err(|v: Vec<u8>| {
        format!(
            "must be 32 bytes (64 hex digits or 44 base64 characters), got {} bytes",
            v.len()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", xff.parse().unwrap());
        headers
    }

    #[test]
    fn cidrs_match() {
        let net = Cidr::parse("172.16.0.0/12").unwrap();
        assert!(net.contains("172.20.1.1".parse().unwrap()));
        assert!(!net.contains("172.32.0.1".parse().unwrap()));
        assert!(Cidr::parse("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/40").is_none());
        assert!(Cidr::parse("nonsense").is_none());
    }

    /// Found by fuzz/client_ip: an IPv4-mapped IPv6 entry must match its own address (clients
    /// are compared in their IPv4 form, so the network must be too).
    #[test]
    fn mapped_ipv6_entries_match_their_address() {
        let cidr = Cidr::parse("::ffff:10.1.2.3").unwrap();
        assert!(cidr.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(cidr.contains("10.1.2.3".parse().unwrap()));
        let wide = Cidr::parse("::ffff:10.1.2.3/64").unwrap();
        assert!(wide.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(wide.contains("10.9.9.9".parse().unwrap()));
        assert!(!Cidr::parse("fd00::/8")
            .unwrap()
            .contains("10.9.9.9".parse().unwrap()));
        let net = Cidr::parse("::ffff:10.0.0.0/104").unwrap();
        assert!(net.contains("10.200.0.1".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
    }

    #[test]
    fn forwarded_for_believed_only_from_trusted_peers() {
        let proxies = TrustedProxies::parse(&["127.0.0.1".into()]);
        let via_proxy: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let direct: SocketAddr = "203.0.113.9:5000".parse().unwrap();
        assert_eq!(
            proxies.client_ip(Some(via_proxy), &headers("198.51.100.7")),
            Some("198.51.100.7".parse().unwrap())
        );
        assert_eq!(
            proxies.client_ip(Some(direct), &headers("198.51.100.7")),
            Some("203.0.113.9".parse().unwrap())
        );
        // A client cannot spoof its way in by prepending addresses: the rightmost untrusted hop wins.
        assert_eq!(
            proxies.client_ip(Some(via_proxy), &headers("1.2.3.4, 198.51.100.7")),
            Some("198.51.100.7".parse().unwrap())
        );
        assert_eq!(
            proxies.client_ip(Some(via_proxy), &headers("garbage")),
            Some("127.0.0.1".parse().unwrap())
        );
    }

    #[test]
    fn token_shapes() {
        assert!(token_shaped("abc-123"));
        assert!(!token_shaped(""));
        assert!(!token_shaped("abc 123"));
        assert!(!token_shaped(&"a".repeat(MAX_TOKEN_LEN + 1)));
        assert!(token_shaped(&"a".repeat(MAX_TOKEN_LEN)));
        assert_eq!(ip_key(None), "unknown");
        assert_eq!(ip_key(Some("10.0.0.1".parse().unwrap())), "10.0.0.1");
    }
}
