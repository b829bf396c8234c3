//! The OAuth endpoints, one file each: dynamic client registration (RFC 7591, [`register`]),
//! the authorization endpoint's page ([`authorize`]) and its form ([`approve`]), the token
//! endpoint (authorization code with PKCE S256, refresh with rotation; [`token`]) and
//! revocation (RFC 7009, [`revoke`]). Every grant, refresh, revocation and failure is audited.
//! What they share lives here: who asked, form parsing, resource comparison.

mod approve;
mod authorize;
mod register;
mod revoke;
mod token;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

pub use approve::authorize_decision;
pub use authorize::authorize_page;
pub use register::register;
pub use revoke::revoke;
pub use token::token;

use super::error::{no_store, OAuthError};
use super::store::StoreError;
use super::{OAuth, OAuthState, PAGE_TTL, SCOPE};
use crate::audit::{Event, EventType};

/// The cookie that ties the authorize form to the browser that loaded the page (CSRF).
const CSRF_COOKIE: &str = "cgw_oauth_csrf";

/// Who asked an OAuth endpoint, for audit events, the rate limiters and the issuer URL.
pub(super) struct Requester {
    pub ip: Option<IpAddr>,
    pub request_id: String,
    /// This deployment's base URL as the request sees it (the issuer).
    pub base: String,
}

impl Requester {
    fn event(&self, kind: EventType, reason: &str) -> Event {
        Event::new(kind)
            .ip(self.ip)
            .request_id(&self.request_id)
            .reason(reason)
    }
}

fn oauth_of(state: &OAuthState) -> Result<Arc<OAuth>, OAuthError> {
    state.oauth.clone().ok_or_else(|| {
        OAuthError::new(
            StatusCode::NOT_FOUND,
            "invalid_request",
            "OAuth is not enabled on this gateway",
        )
    })
}

/// A store failure: 503 with Retry-After when the shared store (Redis) is unreachable, so
/// clients retry instead of giving up on a sign-in (fail closed, never open); 500 otherwise.
fn store_failed(e: StoreError) -> OAuthError {
    tracing::error!(error = %e, "OAuth store failed");
    match e {
        StoreError::Shared(_) => OAuthError::unavailable(),
        _ => OAuthError::server_error(),
    }
}

/// The status of a sign-in page whose store step failed (see [`store_failed`]).
fn page_status(e: &StoreError) -> StatusCode {
    match e {
        StoreError::Shared(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// How long a new client may be mid sign-in (the page's life plus the code's): it is never
/// evicted to make room for another, so a registration flood cannot break a sign-in under way.
fn sign_in_window(oauth: &OAuth) -> i64 {
    PAGE_TTL + oauth.settings.code_ttl
}

/// Key-value pairs of a query string or form body; a repeated parameter is an error (RFC 6749 §3.1).
pub(crate) fn pairs(text: &[u8]) -> Result<HashMap<String, String>, String> {
    let mut map = HashMap::new();
    for (key, value) in url::form_urlencoded::parse(text) {
        if map.insert(key.to_string(), value.to_string()).is_some() {
            return Err(format!("parameter {key:?} is repeated"));
        }
    }
    Ok(map)
}

/// A form body (`application/x-www-form-urlencoded`) as pairs.
async fn form(state: &OAuthState, request: Request) -> Result<HashMap<String, String>, OAuthError> {
    let form_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !form_type {
        return Err(OAuthError::invalid_request(
            "send the parameters as application/x-www-form-urlencoded",
        ));
    }
    let body = Bytes::from_request(request, state)
        .await
        .map_err(|_| OAuthError::invalid_request("the body is too large or unreadable"))?;
    pairs(&body).map_err(OAuthError::invalid_request)
}

/// The canonical form of a resource URI for comparison: lower-case scheme and host, default
/// port dropped, no trailing slash, no query; None if it is no absolute URI or has a fragment.
pub fn canonical_resource(text: &str) -> Option<String> {
    let url = reqwest::Url::parse(text.trim()).ok()?;
    if url.fragment().is_some() || url.cannot_be_a_base() {
        return None;
    }
    let mut out = format!("{}://{}", url.scheme(), url.host_str()?);
    if let Some(port) = url.port() {
        out.push_str(&format!(":{port}"));
    }
    out.push_str(url.path().trim_end_matches('/'));
    if let Some(query) = url.query() {
        out.push('?');
        out.push_str(query);
    }
    Some(out)
}

/// Scopes a request may name: `mcp`, and `offline_access` (refresh tokens are always issued, so
/// asking for them changes nothing). Anything else is `invalid_scope`.
fn known_scope(scope: &str) -> bool {
    scope == SCOPE || scope == "offline_access"
}

/// Whether every scope in a space-separated `scope` parameter is known.
fn scopes_known(scope: &str) -> bool {
    scope.split(' ').filter(|s| !s.is_empty()).all(known_scope)
}

fn json_response(status: StatusCode, body: Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    no_store(&mut response);
    response
}

/// A client_id from HTTP Basic (clients that authenticate as `client_id:` with no secret).
fn basic_client_id(headers: &HeaderMap) -> Option<String> {
    use base64::Engine;
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (id, _) = decoded.split_once(':')?;
    let id: String = url::form_urlencoded::parse(format!("x={id}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())?;
    (!id.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resources_compare_canonically() {
        assert_eq!(
            canonical_resource("HTTPS://Coda.Example.com:443/mcp/").as_deref(),
            Some("https://coda.example.com/mcp")
        );
        assert_eq!(
            canonical_resource("http://127.0.0.1:8080/mcp").as_deref(),
            Some("http://127.0.0.1:8080/mcp")
        );
        assert!(canonical_resource("https://x.example/mcp#frag").is_none());
        assert!(canonical_resource("not a uri").is_none());
    }

    #[test]
    fn repeated_parameters_are_refused() {
        assert!(pairs(b"a=1&b=2").is_ok());
        assert!(pairs(b"a=1&a=2").is_err());
    }

    #[test]
    fn basic_client_ids_are_read() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Basic Y2d3LWFiYzo=".parse().unwrap());
        assert_eq!(basic_client_id(&headers).as_deref(), Some("cgw-abc"));
    }
}
