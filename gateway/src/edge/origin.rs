//! DNS-rebinding protection: a browser's `Origin`, when present, must be one we trust.

use crate::config::{parse_origin, HttpSettings};

#[derive(Clone, Debug)]
pub struct OriginPolicy {
    allowed: Vec<String>,
}

impl OriginPolicy {
    /// ALLOWED_ORIGINS and PUBLIC_URL's origin (both normalized by validation).
    pub fn new(http: &HttpSettings) -> OriginPolicy {
        let mut allowed = http.allowed_origins.clone();
        allowed.extend(http.public_url.iter().cloned());
        OriginPolicy { allowed }
    }

    /// Loopback origins (any port) are always allowed; others only when configured. Loopback
    /// means an IP literal that is a loopback address, or exactly the name `localhost`: a name
    /// that merely looks like an address (`127.evil.example.com`) resolves wherever its owner
    /// wants, so it is a name like any other.
    pub fn allows(&self, origin: &str) -> bool {
        let Some(origin) = parse_origin(origin) else {
            return false;
        };
        if self.allowed.contains(&origin) {
            return true;
        }
        let host_port = origin.split_once("://").map(|(_, rest)| rest).unwrap_or("");
        let host = match host_port.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => host_port.split(':').next().unwrap_or(""),
        };
        // An address that parses, not a name that looks like one (`127.evil.example.com`).
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.to_canonical().is_loopback())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_configured_origins_pass() {
        let mut flags = crate::config::Flags::with_command("x");
        flags.public_url = Some("https://coda.example.com".into());
        flags.allowed_origins = vec!["https://claude.ai".into()];
        let policy = OriginPolicy::new(&flags.validate().unwrap().http);
        for ok in [
            "http://localhost:6274",
            "http://127.0.0.1:9",
            "http://127.8.9.10",
            "http://[::1]:80",
            "http://[::ffff:127.0.0.1]:80",
            "https://coda.example.com",
            "https://claude.ai",
        ] {
            assert!(policy.allows(ok), "{ok}");
        }
        for bad in [
            "http://evil.example.com",
            "null",
            "http://localhost.evil.com",
            "http://127.0.0.1.evil.com",
            // Four labels starting `127.` are a name, not an address: its owner resolves it anywhere.
            "http://127.evil.example.com",
            "http://127.0.0.evil",
            "http://127.0.0.1x:80",
            "http://[::2]:80",
            "https://claude.ai.evil.com",
            // Found by fuzz/origin: domains that merely start like a loopback address.
            "http://127.1.2.com:80",
        ] {
            assert!(!policy.allows(bad), "{bad}");
        }
    }
}
