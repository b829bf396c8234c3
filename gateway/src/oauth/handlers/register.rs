//! `POST /oauth/register` (RFC 7591): dynamic registration of public clients.
//! Steps: the per-address registration budget, then the metadata, then the new client.

use std::net::IpAddr;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::{json_response, oauth_of, sign_in_window, store_failed, Requester};
use crate::audit::EventType;
use crate::oauth::crypto;
use crate::oauth::error::OAuthError;
use crate::oauth::store::{ClientRow, StoreError};
use crate::oauth::{cimd, OAuth, OAuthState, SCOPE};
use crate::ratelimit::{retry_after_secs, Decision};

pub async fn register(State(state): State<OAuthState>, request: Request) -> Response {
    let who = state.requester(&request);
    if let Err(response) = within_budget(&state, &who) {
        return response;
    }
    match register_inner(&state, &who, request).await {
        Ok(response) => response,
        Err(e) => {
            state.audit.emit(
                who.event(EventType::AuthFailure, "oauth_registration_refused")
                    .detail("error", e.error),
            );
            e.into_response()
        }
    }
}

/// The per-address registration budget (OAUTH_REGISTER_RATE_LIMIT_PER_MIN): 429 when spent.
#[allow(clippy::result_large_err)]
fn within_budget(state: &OAuthState, who: &Requester) -> Result<(), Response> {
    let Some(oauth) = &state.oauth else {
        return Ok(());
    };
    let key = registration_key(who.ip);
    let Decision::Deny { retry_after } = oauth.register_limit.check(&key, Instant::now()) else {
        return Ok(());
    };
    let retry_after = retry_after_secs(retry_after);
    crate::metrics::METRICS
        .rate_limited
        .inc(&[("limiter", "oauth_register")]);
    state.audit.emit(
        who.event(EventType::RateLimited, "oauth_register_per_ip")
            .detail("key", key.as_str()),
    );
    let mut response = OAuthError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "temporarily_unavailable",
        format!("too many client registrations from this address; retry after {retry_after} s"),
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    Err(response)
}

/// The registration limiter's key: an IPv4 address, or the /64 an IPv6 address is in (one host
/// usually holds a whole /64, so per-address keys would not limit it).
fn registration_key(ip: Option<IpAddr>) -> String {
    match ip.map(|ip| ip.to_canonical()) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        None => "unknown".into(),
    }
}

/// What a registration asked for, once checked.
struct Metadata {
    client_name: String,
    redirect_uris: Vec<String>,
    /// The `token_endpoint_auth_method` asked for (audited; the answer is always `none`).
    requested_auth: String,
}

async fn register_inner(
    state: &OAuthState,
    who: &Requester,
    request: Request,
) -> Result<Response, OAuthError> {
    let oauth = oauth_of(state)?;
    let body = Bytes::from_request(request, state)
        .await
        .map_err(|_| OAuthError::invalid_request("the body is too large or unreadable"))?;
    let metadata = check_metadata(&body)?;
    let (client_id, response) = issue_client(&oauth, &metadata).await?;
    state.audit.emit(
        who.event(EventType::AuthSuccess, "oauth_client_registered")
            .detail("clientId", client_id.as_str())
            .detail("clientName", metadata.client_name.as_str())
            .detail("requestedAuthMethod", metadata.requested_auth),
    );
    Ok(json_response(StatusCode::CREATED, response))
}

fn invalid_metadata(description: impl Into<String>) -> OAuthError {
    OAuthError::bad("invalid_client_metadata", description)
}

/// A metadata member that must be an array of strings, when present.
fn strings(meta: &Value, name: &str) -> Result<Option<Vec<String>>, OAuthError> {
    match meta.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .map(Some)
            .ok_or_else(|| invalid_metadata(format!("{name} must hold strings"))),
        Some(_) => Err(invalid_metadata(format!("{name} must be an array"))),
    }
}

fn check_metadata(body: &[u8]) -> Result<Metadata, OAuthError> {
    let meta: Value = serde_json::from_slice(body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| invalid_metadata("the body must be a JSON object of client metadata"))?;
    let redirect_uris = cimd::redirect_uris(meta.get("redirect_uris"))
        .map_err(|e| OAuthError::bad("invalid_redirect_uri", e))?;
    if let Some(grants) = strings(&meta, "grant_types")? {
        if let Some(other) = grants
            .iter()
            .find(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token"))
        {
            return Err(invalid_metadata(format!(
                "grant type {other:?} is not supported (authorization_code and refresh_token are)"
            )));
        }
    }
    if let Some(types) = strings(&meta, "response_types")? {
        if types.iter().any(|t| t != "code") {
            return Err(invalid_metadata(
                "only the response type `code` is supported",
            ));
        }
    }
    let client_name = match meta.get("client_name") {
        None | Some(Value::Null) => "Unnamed client".to_string(),
        Some(Value::String(name)) if !name.trim().is_empty() && name.len() <= 200 => {
            name.trim().to_string()
        }
        Some(_) => {
            return Err(invalid_metadata(
                "client_name must be a string of at most 200 bytes",
            ))
        }
    };
    // Only public clients: a requested secret-based method is replaced by `none` (RFC 7591 §3.2.1
    // lets the server replace requested values; the client uses what the response says).
    let requested_auth = meta
        .get("token_endpoint_auth_method")
        .and_then(Value::as_str)
        .unwrap_or("none")
        .to_string();
    Ok(Metadata {
        client_name,
        redirect_uris,
        requested_auth,
    })
}

/// Stores the new client; its id and the registration response.
async fn issue_client(oauth: &OAuth, metadata: &Metadata) -> Result<(String, Value), OAuthError> {
    let now = oauth.clock.now();
    let client_id = format!("cgw-{}", crypto::random_id());
    let response = json!({
        "client_id": client_id,
        "client_id_issued_at": now,
        "client_name": metadata.client_name,
        "redirect_uris": metadata.redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "scope": SCOPE,
    });
    let row = ClientRow {
        client_id: client_id.clone(),
        kind: "registered".into(),
        client_name: metadata.client_name.clone(),
        redirect_uris: metadata.redirect_uris.clone(),
        metadata: response.to_string(),
        last_used_at: now,
    };
    let max = oauth.settings.max_clients;
    let young = sign_in_window(oauth);
    oauth
        .db(move |s| s.put_client(now, &row, max, young))
        .await
        .map_err(|e| match e {
            StoreError::Full => OAuthError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                format!(
                    "this gateway holds its maximum of {max} clients (OAUTH_MAX_CLIENTS), each signed in or registered in the last {} minutes; try again later or ask the operator",
                    young / 60
                ),
            ),
            e => store_failed(e),
        })?;
    Ok((client_id, response))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_are_keyed_per_ipv4_address_and_ipv6_slash_64() {
        let key = |text: &str| registration_key(Some(text.parse().unwrap()));
        assert_eq!(key("198.51.100.7"), "198.51.100.7");
        assert_eq!(key("::ffff:198.51.100.7"), "198.51.100.7");
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(registration_key(None), "unknown");
    }
}
