//! DNS-rebinding protection: a browser's `Origin`, when present, must be one we trust.

use crate::config::{parse_origin, Config};

#[derive(Clone, Debug)]
pub struct OriginPolicy {
    allowed: Vec<String>,
}

impl OriginPolicy {
    pub fn from_config(config: &Config) -> OriginPolicy {
        let mut allowed: Vec<String> = config
            .allowed_origins
            .iter()
            .filter_map(|o| parse_origin(o))
            .collect();
        if let Some(public) = config.public_url.as_deref().and_then(parse_origin) {
            allowed.push(public);
        }
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
        let mut config = Config::with_command("x");
        config.public_url = Some("https://coda.example.com".into());
        config.allowed_origins = vec!["https://claude.ai".into()];
        let policy = OriginPolicy::from_config(&config);
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
            // Issue 11 item 6: four labels starting `127.` are a name, not an address.
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
