//! `Origin` checks (DNS-rebinding protection): an origin is allowed only when it is configured
//! or its host really is loopback (`localhost`, a 127/8 address, `::1`), never a domain that
//! merely looks like one; canonicalization is idempotent and does not change the verdict.
#![no_main]

use std::net::IpAddr;

use gateway::fuzzing::{parse_origin, Flags, OriginPolicy};
use libfuzzer_sys::fuzz_target;

fn host_of(origin: &str) -> &str {
    let rest = origin.split_once("://").map_or("", |(_, rest)| rest);
    match rest.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => rest.split(':').next().unwrap_or(""),
    }
}

fn policy() -> &'static OriginPolicy {
    static POLICY: std::sync::OnceLock<OriginPolicy> = std::sync::OnceLock::new();
    POLICY.get_or_init(|| {
        let mut flags = Flags::with_command("fuzz");
        flags.public_url = Some("https://gateway.example.com".into());
        flags.allowed_origins = vec!["https://claude.ai".into(), "http://app.test:8080".into()];
        OriginPolicy::new(&flags.validate().expect("valid settings").http)
    })
}

const CONFIGURED: [&str; 3] = [
    "https://gateway.example.com",
    "https://claude.ai",
    "http://app.test:8080",
];

fuzz_target!(|data: &[u8]| {
    let Ok(origin) = std::str::from_utf8(data) else {
        return;
    };
    let canonical = parse_origin(origin);
    if let Some(c) = &canonical {
        assert_eq!(
            parse_origin(c).as_ref(),
            Some(c),
            "canonical form is not stable"
        );
        assert!(c.starts_with("http://") || c.starts_with("https://"));
    }
    let allowed = policy().allows(origin);
    if !allowed {
        return;
    }
    let c = canonical.expect("an allowed origin parses");
    assert!(
        policy().allows(&c),
        "the canonical form of an allowed origin is refused"
    );
    if CONFIGURED.contains(&c.as_str()) {
        return;
    }
    let host = host_of(&c);
    let loopback = host == "localhost" || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    assert!(
        loopback,
        "{origin:?} allowed, but its host {host:?} is not loopback"
    );
});
