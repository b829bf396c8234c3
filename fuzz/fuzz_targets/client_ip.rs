//! Client-IP parsing: a CIDR contains its own address; the client address is the socket peer
//! unless the peer is a trusted proxy, and then a hop of `X-Forwarded-For` that is not trusted
//! (or the peer itself): never an address the caller could make up past a trusted hop.
#![no_main]

use std::net::{IpAddr, SocketAddr};

use gateway::fuzzing::{Cidr, TrustedProxies};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fn ip_from(bytes: &[u8]) -> IpAddr {
    let mut v6 = [0u8; 16];
    for (o, b) in v6.iter_mut().zip(bytes.iter().skip(1)) {
        *o = *b;
    }
    if bytes.first().is_some_and(|b| b & 1 == 1) {
        IpAddr::from(v6)
    } else {
        IpAddr::from([v6[0], v6[1], v6[2], v6[3]])
    }
}

fuzz_target!(|data: &[u8]| {
    // Layout: CIDR list text 0x00 X-Forwarded-For 0x00 peer bytes
    let mut parts = data.splitn(3, |&b| b == 0);
    let (Some(list), Some(xff), Some(peer)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let Ok(list) = std::str::from_utf8(list) else {
        return;
    };
    let entries: Vec<String> = list.split(',').map(str::to_string).collect();
    for entry in &entries {
        if let Some(cidr) = Cidr::parse(entry) {
            let addr = entry.trim().split('/').next().unwrap_or("");
            let ip: IpAddr = addr.parse().expect("a parsed CIDR's address parses");
            assert!(
                cidr.contains(ip),
                "{entry} does not contain its own address"
            );
        }
    }
    let proxies = TrustedProxies::parse(&entries);
    let peer_ip = ip_from(peer);
    let peer_addr = SocketAddr::new(peer_ip, 4000);
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        ip => ip,
    };
    let mut headers = HeaderMap::new();
    let hops: Option<Vec<IpAddr>> = match HeaderValue::from_bytes(xff) {
        Ok(value) => {
            let hops = value.to_str().ok().and_then(|text| {
                text.split(',')
                    .map(|h| h.trim().parse::<IpAddr>().ok().map(canonical))
                    .collect()
            });
            headers.insert("x-forwarded-for", value);
            hops
        }
        Err(_) => Some(Vec::new()),
    };
    assert_eq!(proxies.client_ip(None, &headers), None);
    let got = proxies
        .client_ip(Some(peer_addr), &headers)
        .expect("a peer gives an address");
    let peer_c = canonical(peer_ip);
    assert_eq!(
        proxies.peer_trusted(Some(peer_addr)),
        proxies.trusts(peer_c)
    );
    if !proxies.trusts(peer_c) {
        assert_eq!(got, peer_c, "an untrusted peer's own address is the client");
        return;
    }
    match hops {
        // A garbled chain is not believed.
        None => assert_eq!(got, peer_c),
        Some(hops) => {
            let want = hops
                .iter()
                .rev()
                .find(|ip| !proxies.trusts(**ip))
                .copied()
                .unwrap_or(peer_c);
            assert_eq!(got, want);
            // Everything right of the answer is a trusted proxy.
            if let Some(pos) = hops.iter().rposition(|ip| *ip == got) {
                assert!(hops[pos + 1..].iter().all(|ip| proxies.trusts(*ip)));
            }
        }
    }
});
