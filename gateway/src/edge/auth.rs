//! The guard in front of `/mcp`: per-IP guard (pre-auth), bearer token check, per-identity limit.
//! It hands the core a [`Caller`]; handlers never see a raw token.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::reply::{Fault, Reject};
use super::{client_ip_of, ip_key, peer_of, request_id_of, AppState};
use crate::audit::{Event, EventType};
use crate::identity::cache::Source;
use crate::identity::{Identity, Refusal, Secret};
use crate::jsonrpc;
use crate::metrics::METRICS;
use crate::ratelimit::{retry_after_secs, Decision};
use crate::values::token_shaped;

/// Who is calling and from where; inserted by [`authenticate`] for the handlers.
#[derive(Clone, Debug)]
pub struct Caller {
    pub identity: Identity,
    pub ip: Option<IpAddr>,
}

pub use crate::app::{public_base, SCOPE};

pub async fn authenticate(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let request_id = request_id_of(&request);
    let peer = peer_of(&request);
    let ip = client_ip_of(&state, &request);
    let Some(authenticator) = &state.auth else {
        request.extensions_mut().insert(Caller {
            identity: Identity::anonymous(),
            ip,
        });
        return next.run(request).await;
    };
    let ip_key = ip_key(ip);
    let base = public_base(&state, request.headers(), peer);
    // The per-IP guard stops guessing, not users. An address over its budget
    // of failed authentications may still present a token Coda already accepted (a fresh
    // positive cache entry): other tokens' failures from the same NAT or hosted client's egress
    // never lock it out. Any other token from that address waits, without reaching Coda, and
    // without counting as one more failure.
    let limited = match state.ip_guard.peek(&ip_key).await {
        Ok(Decision::Deny { retry_after }) => Some(retry_after),
        Ok(Decision::Allow) => None,
        Err(e) => return state_unavailable(&state, ip, &request_id, &e),
    };
    let locked_out = |retry_after| {
        METRICS.rate_limited.inc(&[("limiter", "ip")]);
        state.audit.emit(
            Event::new(EventType::RateLimited)
                .ip(ip)
                .request_id(&request_id)
                .reason("auth_failures_per_ip"),
        );
        too_many(
            retry_after_secs(retry_after),
            "too many failed authentications from this address",
        )
        .request_id(&request_id)
        .into_response()
    };
    let token = match (
        bearer_token(request.headers(), request.uri().query()),
        limited,
    ) {
        (Ok(token), _) => token,
        (Err(_), Some(retry_after)) => return locked_out(retry_after),
        (Err(refusal), None) => {
            return refuse(&state, refusal, ip, &ip_key, None, &request_id, &base).await
        }
    };
    let token_hash = token.fingerprint();
    // With OAuth on, a gateway-issued access token (expiry, revocation, audience) stands for the
    // Coda token it was granted with, which is checked below like a pasted one.
    let resolved = match &state.oauth {
        Some(oauth) => oauth.resolve_bearer(token, &base).await,
        None => Ok((token, None)),
    };
    let (token, issued) = match (resolved, limited) {
        (Ok(checked), _) => checked,
        (Err(_), Some(retry_after)) => return locked_out(retry_after),
        (Err(refusal), None) => {
            let hash = Some(token_hash.as_str());
            return refuse(&state, refusal, ip, &ip_key, hash, &request_id, &base).await;
        }
    };
    if let Some(retry_after) = limited {
        // Proven: a gateway-issued access token found in the OAuth store (the gateway's own
        // record; unguessable), or a Coda token Coda accepted recently.
        if issued.is_none() {
            match authenticator.is_proven(&token).await {
                Ok(true) => {}
                Ok(false) => return locked_out(retry_after),
                Err(e) => return state_unavailable(&state, ip, &request_id, &e),
            }
        }
    }
    let identity = match authenticator.authenticate(token).await {
        Ok((mut identity, source)) => {
            if let Some(issued) = issued {
                identity.token_hash = Some(issued.fingerprint);
            }
            METRICS.auth_outcomes.inc(&[("outcome", "success")]);
            let cache = if source == Source::Cache {
                "hit"
            } else {
                "miss"
            };
            METRICS.whoami_cache.inc(&[("result", cache)]);
            if source == Source::Upstream {
                state.audit.emit(
                    Event::new(EventType::AuthSuccess)
                        .ip(ip)
                        .identity(&identity.subject)
                        .token_hash(identity.token_hash.as_deref())
                        .request_id(&request_id),
                );
            }
            identity
        }
        Err(refusal) => {
            // Coda refusing the token behind a gateway-issued one ends its grant.
            if let (Some(oauth), Some(issued)) = (&state.oauth, issued) {
                oauth.coda_refused(&state.audit, issued, &refusal).await;
            }
            return refuse(
                &state,
                refusal,
                ip,
                &ip_key,
                Some(&token_hash),
                &request_id,
                &base,
            )
            .await;
        }
    };
    let decision = match state.identity_limit.check(&identity.subject).await {
        Ok(decision) => decision,
        Err(e) => return state_unavailable(&state, ip, &request_id, &e),
    };
    if let Decision::Deny { retry_after } = decision {
        METRICS.rate_limited.inc(&[("limiter", "identity")]);
        state.audit.emit(
            Event::new(EventType::RateLimited)
                .ip(ip)
                .identity(&identity.subject)
                .request_id(&request_id)
                .reason("requests_per_identity"),
        );
        return too_many(
            retry_after_secs(retry_after),
            "too many requests for this identity",
        )
        .request_id(&request_id)
        .into_response();
    }
    request.extensions_mut().insert(Caller { identity, ip });
    next.run(request).await
}

/// The answer while the state replicas share (Redis) does not answer: 503 with Retry-After,
/// the gateway's fault. Whatever Redis was to decide (a budget, a cached verdict), the request
/// is not admitted without it.
pub fn state_unavailable(
    state: &AppState,
    ip: Option<IpAddr>,
    request_id: &str,
    error: &crate::shared::SharedError,
) -> Response {
    tracing::warn!(error = %error, request_id, "shared state (Redis) unavailable; request refused");
    METRICS
        .auth_outcomes
        .inc(&[("outcome", "shared_state_unavailable")]);
    state.audit.emit(
        Event::new(EventType::AuthFailure)
            .ip(ip)
            .request_id(request_id)
            .reason("shared_state_unavailable"),
    );
    refusal_reject(
        Refusal::StateUnavailable {
            retry_after: crate::shared::RETRY_AFTER_SECS,
        },
        "",
    )
    .request_id(request_id)
    .into_response()
}

fn too_many(retry_after: u64, what: &str) -> Reject {
    Reject::client(
        StatusCode::TOO_MANY_REQUESTS,
        jsonrpc::TRANSPORT_ERROR,
        format!("Too Many Requests: {what}; retry after {retry_after} s"),
    )
    .retry_after(retry_after)
}

/// The bearer token from `Authorization`; a token in the query string is refused outright.
fn bearer_token(headers: &HeaderMap, query: Option<&str>) -> Result<Secret, Refusal> {
    if let Some(query) = query {
        if query.split('&').any(|pair| {
            pair.split('=')
                .next()
                .is_some_and(|k| k.eq_ignore_ascii_case("access_token"))
        }) {
            return Err(Refusal::Malformed);
        }
    }
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(Refusal::Missing);
    };
    let value = value.to_str().map_err(|_| Refusal::Malformed)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(Refusal::Malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || !token_shaped(token) {
        return Err(Refusal::Malformed);
    }
    Ok(Secret::new(token))
}

async fn refuse(
    state: &AppState,
    refusal: Refusal,
    ip: Option<IpAddr>,
    ip_key: &str,
    token_hash: Option<&str>,
    request_id: &str,
    base: &str,
) -> Response {
    let mut event = Event::new(EventType::AuthFailure)
        .ip(ip)
        .token_hash(token_hash)
        .request_id(request_id)
        .reason(refusal.reason());
    if let Refusal::NotAllowed { subject } = &refusal {
        event = event.identity(subject);
    }
    state.audit.emit(event);
    METRICS.auth_outcomes.inc(&[("outcome", refusal.reason())]);
    if matches!(
        refusal,
        Refusal::Missing | Refusal::Malformed | Refusal::InvalidToken
    ) {
        // A failure that cannot be counted is not answered as one: the guesser would go
        // uncounted for as long as Redis is down.
        if let Err(e) = state.ip_guard.record(ip_key).await {
            return state_unavailable(state, ip, request_id, &e);
        }
    }
    refusal_reject(refusal, base)
        .request_id(request_id)
        .into_response()
}

/// The answer to a refusal: status, challenge and a fixed message (nothing from upstream).
pub fn refusal_reject(refusal: Refusal, base: &str) -> Reject {
    let metadata = format!("{base}/.well-known/oauth-protected-resource/mcp");
    match refusal {
        Refusal::Unavailable { retry_after } => Reject::new(
            StatusCode::SERVICE_UNAVAILABLE,
            jsonrpc::TRANSPORT_ERROR,
            Fault::Upstream,
            format!("Service Unavailable: Coda could not confirm the token; retry after {retry_after} s"),
        )
        .retry_after(retry_after),
        Refusal::StateUnavailable { retry_after } => Reject::new(
            StatusCode::SERVICE_UNAVAILABLE,
            jsonrpc::TRANSPORT_ERROR,
            Fault::Gateway,
            format!("Service Unavailable: the gateway's shared state (Redis) did not answer; retry after {retry_after} s"),
        )
        .retry_after(retry_after),
        Refusal::NotAllowed { .. } => Reject::client(
            StatusCode::FORBIDDEN,
            jsonrpc::TRANSPORT_ERROR,
            "Forbidden: this Coda account is not allowed to use this gateway; ask the operator to add it to ALLOWED_USERS",
        )
        .header(
            header::WWW_AUTHENTICATE,
            &format!(r#"Bearer error="insufficient_scope", scope="{SCOPE}", resource_metadata="{metadata}""#),
        ),
        Refusal::Missing => {
            Reject::client(
                StatusCode::UNAUTHORIZED,
                jsonrpc::TRANSPORT_ERROR,
                "Unauthorized: send Authorization: Bearer <your Coda API token>",
            )
            .header(header::WWW_AUTHENTICATE, &format!(r#"Bearer resource_metadata="{metadata}", scope="{SCOPE}""#))
        }
        Refusal::Malformed | Refusal::InvalidToken => {
            Reject::client(
                StatusCode::UNAUTHORIZED,
                jsonrpc::TRANSPORT_ERROR,
                "Unauthorized: the token is invalid, expired or not sent in the Authorization header; create a Coda API token at https://coda.io/account",
            )
            .header(
                header::WWW_AUTHENTICATE,
                &format!(
                    r#"Bearer resource_metadata="{metadata}", scope="{SCOPE}", error="invalid_token", error_description="The access token is invalid or expired""#
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Redis down is the gateway's fault and says so: 503, Retry-After, Redis named, and the
    /// same answer whatever the caller sent (nothing about the token or Redis's error).
    #[tokio::test]
    async fn shared_state_trouble_is_a_503_naming_redis() {
        let reject = refusal_reject(Refusal::StateUnavailable { retry_after: 5 }, "");
        assert_eq!(reject.status(), StatusCode::SERVICE_UNAVAILABLE);
        let response = reject.into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(body["error"]["code"], jsonrpc::TRANSPORT_ERROR);
        assert_eq!(body["error"]["data"]["fault"], "gateway");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("Redis"), "{message}");
        assert_eq!(
            Refusal::StateUnavailable { retry_after: 5 }.reason(),
            "shared_state_unavailable"
        );
    }

    #[test]
    fn bearer_tokens_are_read_strictly() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers, None).unwrap_err(), Refusal::Missing);
        headers.insert(header::AUTHORIZATION, "Bearer abc-123".parse().unwrap());
        assert_eq!(bearer_token(&headers, None).unwrap().expose(), "abc-123");
        assert_eq!(
            bearer_token(&headers, Some("access_token=abc")).unwrap_err(),
            Refusal::Malformed
        );
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(
            bearer_token(&headers, None).unwrap_err(),
            Refusal::Malformed
        );
        headers.insert(header::AUTHORIZATION, "Bearer".parse().unwrap());
        assert_eq!(
            bearer_token(&headers, None).unwrap_err(),
            Refusal::Malformed
        );
    }
}
