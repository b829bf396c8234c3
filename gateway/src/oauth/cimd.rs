//! Client ID metadata documents (MCP 2025-11-25): a `client_id` that is an https URL names a JSON
//! document at that URL describing the client. It is fetched with a time and size limit, never
//! following redirects and never from loopback or private addresses (SSRF), and checked:
//! its `client_id` equals the URL exactly, it has a `client_name` and valid `redirect_uris`.
//!
//! Also home of the redirect URI rules shared with dynamic registration.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

/// Largest document accepted.
const MAX_DOCUMENT_BYTES: usize = 64 * 1024;
/// Longest wait for a document.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Most redirect URIs one client may have.
pub const MAX_REDIRECT_URIS: usize = 10;

/// What a client document said.
#[derive(Clone, Debug)]
pub struct Document {
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    pub raw: Value,
}

pub struct Fetcher {
    http: reqwest::Client,
    allow_http: bool,
}

impl Fetcher {
    /// `allow_http` (testing only) admits http URLs and loopback or private addresses.
    pub fn new(allow_http: bool) -> anyhow::Result<Fetcher> {
        let mut builder = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .connect_timeout(FETCH_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("coda-mcp-gateway/", env!("CARGO_PKG_VERSION")))
            .no_proxy();
        if !allow_http {
            builder = builder.dns_resolver(Arc::new(PublicOnly));
        }
        Ok(Fetcher {
            http: builder.build()?,
            allow_http,
        })
    }

    /// Whether this `client_id` names a metadata document (rather than a registered client).
    pub fn is_document_url(&self, client_id: &str) -> bool {
        client_id.starts_with("https://") || (self.allow_http && client_id.starts_with("http://"))
    }

    /// Fetches and checks the document at `client_id`. The error is a fixed, user-readable text.
    pub async fn fetch(&self, client_id: &str) -> Result<Document, String> {
        let url = reqwest::Url::parse(client_id).map_err(|_| "the client_id is not a URL")?;
        let https = url.scheme() == "https";
        if !(https || (self.allow_http && url.scheme() == "http")) {
            return Err("a client_id URL must use https".into());
        }
        if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
            return Err("a client_id URL must not have a fragment or credentials".into());
        }
        if url.path() == "/" || url.path().is_empty() {
            return Err("a client_id URL must have a path".into());
        }
        if client_id.len() > 2000 {
            return Err("the client_id URL is too long".into());
        }
        if !self.allow_http {
            match url.host() {
                Some(url::Host::Ipv4(ip)) if !is_public(IpAddr::V4(ip)) => {
                    return Err("the client_id URL points to a private address".into())
                }
                Some(url::Host::Ipv6(ip)) if !is_public(IpAddr::V6(ip)) => {
                    return Err("the client_id URL points to a private address".into())
                }
                Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
                    return Err("the client_id URL points to a private address".into())
                }
                None => return Err("the client_id URL has no host".into()),
                _ => {}
            }
        }
        let mut response = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| {
                tracing::info!(client_id, error = %e, "client metadata document fetch failed");
                "the client's metadata document could not be fetched".to_string()
            })?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(format!(
                "the client's metadata document answered HTTP {}",
                response.status().as_u16()
            ));
        }
        if response
            .content_length()
            .is_some_and(|n| n as usize > MAX_DOCUMENT_BYTES)
        {
            return Err("the client's metadata document is too large".into());
        }
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    body.extend_from_slice(&chunk);
                    if body.len() > MAX_DOCUMENT_BYTES {
                        return Err("the client's metadata document is too large".into());
                    }
                }
                Ok(None) => break,
                Err(_) => return Err("the client's metadata document could not be read".into()),
            }
        }
        let raw: Value = serde_json::from_slice(&body)
            .map_err(|_| "the client's metadata document is not JSON")?;
        check_document(client_id, raw)
    }
}

/// The checks on a fetched document.
pub fn check_document(client_id: &str, raw: Value) -> Result<Document, String> {
    let object = raw
        .as_object()
        .ok_or("the client's metadata document is not a JSON object")?;
    if object.get("client_id").and_then(Value::as_str) != Some(client_id) {
        return Err("the client's metadata document names another client_id".into());
    }
    let client_name = object
        .get("client_name")
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|n| !n.is_empty() && n.len() <= 200)
        .ok_or("the client's metadata document has no valid client_name")?
        .to_string();
    let redirect_uris = redirect_uris(object.get("redirect_uris"))?;
    match object.get("token_endpoint_auth_method").and_then(Value::as_str) {
        None | Some("none") => {}
        Some(_) => {
            return Err(
                "the client's metadata document asks for a token endpoint authentication this gateway does not support (only `none`)".into(),
            )
        }
    }
    Ok(Document {
        client_name,
        redirect_uris,
        raw,
    })
}

/// `redirect_uris`: a non-empty array (at most [`MAX_REDIRECT_URIS`]) of valid redirect URIs.
pub fn redirect_uris(value: Option<&Value>) -> Result<Vec<String>, String> {
    let list = value
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or("redirect_uris must be a non-empty array")?;
    if list.len() > MAX_REDIRECT_URIS {
        return Err(format!("at most {MAX_REDIRECT_URIS} redirect_uris"));
    }
    list.iter()
        .map(|uri| {
            let uri = uri.as_str().ok_or("redirect_uris must hold strings")?;
            check_redirect_uri(uri).map_err(|e| format!("redirect URI {uri:?}: {e}"))?;
            Ok(uri.to_string())
        })
        .collect()
}

/// OAuth 2.1 / RFC 8252 redirect URIs: absolute, no fragment; https anywhere, http only to a
/// loopback host, or a private-use scheme of a native app. Never `javascript:`, `data:` and the like.
pub fn check_redirect_uri(uri: &str) -> Result<(), &'static str> {
    if uri.len() > 2000 {
        return Err("too long");
    }
    let url = reqwest::Url::parse(uri).map_err(|_| "not an absolute URI")?;
    if url.fragment().is_some() || uri.contains('#') {
        return Err("must not have a fragment");
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("must not carry credentials");
    }
    match url.scheme() {
        "https" => Ok(()),
        "http" => match url.host() {
            Some(url::Host::Ipv4(ip)) if ip.is_loopback() => Ok(()),
            Some(url::Host::Ipv6(ip)) if ip.is_loopback() => Ok(()),
            Some(url::Host::Domain("localhost")) => Ok(()),
            _ => Err("http is allowed only for loopback hosts (127.0.0.1, [::1], localhost)"),
        },
        "javascript" | "data" | "file" | "vbscript" | "about" | "blob" | "ftp" | "ws" | "wss"
        | "filesystem" | "view-source" | "chrome" | "mailto" | "tel" => {
            Err("this scheme cannot receive an authorization response")
        }
        _ => Ok(()),
    }
}

/// Whether an address is globally routable: IPv4 outside every special-use
/// range; IPv6 only inside global unicast (2000::/3) and outside its special-use blocks. An IPv6
/// address that carries an IPv4 one (mapped `::ffff:0:0/96`, NAT64 `64:ff9b::/96`, 6to4
/// `2002::/16`) is judged by the IPv4 address it reaches: `64:ff9b::a9fe:a9fe` is the metadata
/// service at 169.254.169.254. Everything else (IPv4-compatible `::/96`, site-local `fec0::/10`,
/// unique-local, link-local, local-use NAT64 `64:ff9b:1::/48`, ...) is refused.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0)
                || (a == 192 && b == 88 && c == 99)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = embedded_ipv4(v6) {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            let global_unicast = (s[0] & 0xe000) == 0x2000;
            global_unicast
                // 2001::/23: IETF protocol assignments (Teredo, benchmarking, ORCHID, ...).
                && !(s[0] == 0x2001 && s[1] < 0x0200)
                // 2001:db8::/32 and 3fff::/20: documentation.
                && !(s[0] == 0x2001 && s[1] == 0x0db8)
                && !(s[0] == 0x3fff && s[1] < 0x1000)
        }
    }
}

/// The IPv4 address an IPv6 address stands for, where the prefix says it carries one.
fn embedded_ipv4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let o = v6.octets();
    if s[..6] == [0x0064, 0xff9b, 0, 0, 0, 0] {
        return Some(std::net::Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    if s[0] == 0x2002 {
        return Some(std::net::Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

/// A resolver that only ever answers with public addresses, so a name cannot point the fetch
/// at the gateway's own network.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err("the name has no public address".into());
            }
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redirect_uris_follow_oauth_2_1() {
        for ok in [
            "https://claude.ai/api/mcp/auth_callback",
            "http://127.0.0.1:33418/callback",
            "http://localhost:6274/oauth/callback",
            "http://[::1]/cb",
            "cursor://anysphere.cursor-retrieval/oauth/user-callback",
            "com.example.app:/oauth2redirect",
        ] {
            assert!(check_redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://example.com/cb",
            "https://example.com/cb#frag",
            "javascript:alert(1)",
            "data:text/html,hi",
            "/relative",
            "https://user:pw@example.com/cb",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn documents_must_name_themselves() {
        let id = "https://app.example.com/oauth/client.json";
        let doc = json!({"client_id": id, "client_name": "App", "redirect_uris": ["https://app.example.com/cb"]});
        assert_eq!(check_document(id, doc).unwrap().client_name, "App");
        let other = json!({"client_id": "https://evil.example/x", "client_name": "App", "redirect_uris": ["https://app.example.com/cb"]});
        assert!(check_document(id, other).is_err());
        let no_uris = json!({"client_id": id, "client_name": "App", "redirect_uris": []});
        assert!(check_document(id, no_uris).is_err());
        let jwt = json!({"client_id": id, "client_name": "App", "redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "private_key_jwt"});
        assert!(check_document(id, jwt).is_err());
    }

    #[test]
    fn private_addresses_are_not_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        assert!(is_public("1.1.1.1".parse().unwrap()));
        assert!(is_public("2606:4700::1111".parse().unwrap()));
    }

    /// IPv6 prefixes that reach IPv4 or are not globally routable.
    #[test]
    fn ipv6_ranges_that_reach_private_space_are_not_public() {
        let refused = |text: &str| assert!(!is_public(text.parse().unwrap()), "{text}");
        let allowed = |text: &str| assert!(is_public(text.parse().unwrap()), "{text}");
        // NAT64 (64:ff9b::/96): judged by the embedded IPv4 address.
        refused("64:ff9b::a9fe:a9fe"); // 169.254.169.254, cloud metadata
        refused("64:ff9b::7f00:1"); // 127.0.0.1
        refused("64:ff9b::a00:1"); // 10.0.0.1
        allowed("64:ff9b::101:101"); // 1.1.1.1
        refused("64:ff9b:1::a9fe:a9fe"); // local-use NAT64, never global
                                         // IPv4-compatible (::/96), deprecated: never.
        refused("::a9fe:a9fe");
        refused("::7f00:1");
        refused("::101:101");
        // 6to4 (2002::/16): judged by the embedded IPv4 address.
        refused("2002:a9fe:a9fe::1");
        refused("2002:7f00:1::1");
        refused("2002:c0a8:101::1"); // 192.168.1.1
        allowed("2002:101:101::1");
        // Site-local (fec0::/10), deprecated: never.
        refused("fec0::1");
        refused("feff::1");
        // Other special-use blocks inside and outside 2000::/3.
        refused("2001::1"); // Teredo
        refused("2001:db8::1");
        refused("3fff::1");
        refused("100::1"); // discard-only
        refused("ff02::1");
        allowed("2a00:1450:4001::200e");
    }
}
