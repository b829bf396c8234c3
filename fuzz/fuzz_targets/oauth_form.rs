//! The OAuth endpoints' inputs: form/query pairs (a repeated name is refused, otherwise every
//! pair is kept and survives re-encoding), redirect URIs (an accepted one is absolute, has no
//! fragment or credentials, and uses http only to loopback; never `javascript:` and the like),
//! resource canonicalization (idempotent), HTML escaping (nothing that can open markup
//! survives) and PKCE text.
#![no_main]

use gateway::fuzzing::{
    canonical_resource, check_redirect_uri, form_pairs, html_escape, redirect_host, redirect_uris,
    valid_pkce_text,
};
use libfuzzer_sys::fuzz_target;

const NEVER: [&str; 6] = ["javascript", "data", "file", "vbscript", "blob", "ws"];

fuzz_target!(|data: &[u8]| {
    // The form parser takes raw bytes.
    let parsed: Vec<(String, String)> = url::form_urlencoded::parse(data).into_owned().collect();
    match form_pairs(data) {
        Ok(map) => {
            assert_eq!(
                map.len(),
                parsed.len(),
                "a pair was lost or a repeat let through"
            );
            for (k, v) in &parsed {
                assert_eq!(map.get(k), Some(v));
            }
            let encoded = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(map.iter())
                .finish();
            assert_eq!(form_pairs(encoded.as_bytes()).as_ref(), Ok(&map));
        }
        Err(_) => {
            let mut names: Vec<&String> = parsed.iter().map(|(k, _)| k).collect();
            names.sort();
            names.dedup();
            assert!(
                names.len() < parsed.len(),
                "refused a form without a repeated name"
            );
        }
    }

    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if check_redirect_uri(text).is_ok() {
        let url = url::Url::parse(text).expect("an accepted redirect URI parses");
        assert!(url.fragment().is_none() && !text.contains('#'));
        assert!(url.username().is_empty() && url.password().is_none());
        assert!(!NEVER.contains(&url.scheme()), "{text}");
        if url.scheme() == "http" {
            let loopback = match url.host() {
                Some(url::Host::Domain(d)) => d == "localhost",
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                None => false,
            };
            assert!(loopback, "http redirect to a non-loopback host: {text}");
        }
        let list = serde_json::json!([text]);
        assert_eq!(redirect_uris(Some(&list)), Ok(vec![text.to_string()]));
    }
    let _ = redirect_host(text);
    if let Some(c) = canonical_resource(text) {
        assert_eq!(
            canonical_resource(&c).as_ref(),
            Some(&c),
            "canonical resource not stable: {text:?}"
        );
    }
    let escaped = html_escape(text);
    assert!(!escaped.contains(['<', '>', '"', '\'']), "{escaped}");
    assert!(!escaped.chars().any(char::is_control));
    assert!(escaped
        .split('&')
        .skip(1)
        .all(|s| ["amp;", "lt;", "gt;", "quot;", "#39;"]
            .iter()
            .any(|e| s.starts_with(e))));
    if valid_pkce_text(text) {
        assert!((43..=128).contains(&text.len()));
        assert!(text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)));
    }
});
