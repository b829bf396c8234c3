//! `POST /oauth/token`: the authorization code grant (PKCE S256) and refresh with rotation.
//! Steps: the client, then the grant type's own checks, then new tokens.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::{
    basic_client_id, canonical_resource, form, json_response, oauth_of, scopes_known, store_failed,
    Requester,
};
use crate::audit::{Event, EventType};
use crate::oauth::crypto;
use crate::oauth::error::OAuthError;
use crate::oauth::store::{CodeRow, Issue, Redeemed, RefreshOutcome};
use crate::oauth::{OAuth, OAuthState, ACCESS_PREFIX, CODE_PREFIX, REFRESH_PREFIX, SCOPE};

pub async fn token(State(state): State<OAuthState>, request: Request) -> Response {
    let who = state.requester(&request);
    match token_inner(&state, &who, request).await {
        Ok(response) => response,
        Err((e, event)) => {
            let event = event
                .unwrap_or_else(|| who.event(EventType::AuthFailure, "oauth_token_refused"))
                .detail("error", e.error);
            state.audit.emit(event);
            e.into_response()
        }
    }
}

/// A token answer, or the error with the audit event that names it. Large, but built at most
/// once per failed request: boxing would buy nothing.
#[allow(clippy::result_large_err)]
type TokenResult = Result<Response, (OAuthError, Option<Event>)>;

fn plain(e: OAuthError) -> (OAuthError, Option<Event>) {
    (e, None)
}

async fn token_inner(state: &OAuthState, who: &Requester, request: Request) -> TokenResult {
    let oauth = oauth_of(state).map_err(plain)?;
    let basic = basic_client_id(request.headers());
    let params = form(state, request).await.map_err(plain)?;
    let client_id = params
        .get("client_id")
        .cloned()
        .or(basic)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| plain(OAuthError::invalid_request("client_id is required")))?;
    known_client(&oauth, &client_id).await.map_err(plain)?;
    match params.get("grant_type").map(String::as_str) {
        Some("authorization_code") => exchange_code(state, &oauth, who, &client_id, &params).await,
        Some("refresh_token") => refresh(state, &oauth, who, &client_id, &params).await,
        None => Err(plain(OAuthError::invalid_request("grant_type is required"))),
        Some(_) => Err(plain(OAuthError::bad(
            "unsupported_grant_type",
            "grant_type must be authorization_code or refresh_token",
        ))),
    }
}

/// The client must be registered (public clients: its id is all it shows); it was used now.
async fn known_client(oauth: &OAuth, client_id: &str) -> Result<(), OAuthError> {
    let id = client_id.to_string();
    let client = oauth
        .db(move |s| s.client(&id))
        .await
        .map_err(store_failed)?;
    if client.is_none() {
        return Err(OAuthError::invalid_client(
            "unknown client_id; register the client first",
        ));
    }
    let now = oauth.clock.now();
    let id = client_id.to_string();
    let _ = oauth.db(move |s| s.touch_client(now, &id)).await;
    Ok(())
}

fn new_tokens(oauth: &OAuth, now: i64) -> (String, String, Issue) {
    let access = crypto::random_token(ACCESS_PREFIX);
    let refresh = crypto::random_token(REFRESH_PREFIX);
    let issue = Issue {
        access_hash: crypto::token_hash(&access),
        access_expires_at: now + oauth.settings.access_ttl,
        refresh_hash: crypto::token_hash(&refresh),
        refresh_expires_at: now + oauth.settings.refresh_ttl,
    };
    (access, refresh, issue)
}

fn token_response(oauth: &OAuth, access: &str, refresh: &str) -> Response {
    json_response(
        StatusCode::OK,
        json!({
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": oauth.settings.access_ttl,
            "refresh_token": refresh,
            "scope": SCOPE,
        }),
    )
}

/// What a code exchange claims; checked against the code's row inside the redemption's
/// transaction, so the code is taken and its grant made in one step.
struct CodeClaim {
    client_id: String,
    redirect_uri: String,
    verifier: String,
    resource: Option<String>,
}

impl CodeClaim {
    fn from_params(
        client_id: &str,
        params: &HashMap<String, String>,
    ) -> Result<CodeClaim, OAuthError> {
        let required = |name: &str| {
            params
                .get(name)
                .filter(|v| !v.is_empty())
                .cloned()
                .ok_or_else(|| OAuthError::invalid_request(format!("{name} is required")))
        };
        Ok(CodeClaim {
            client_id: client_id.to_string(),
            redirect_uri: required("redirect_uri")?,
            verifier: required("code_verifier")?,
            resource: params.get("resource").cloned(),
        })
    }

    /// Whether the code was issued for this claim: the audit reason and the error if not.
    fn check(&self, row: &CodeRow) -> Result<(), (&'static str, OAuthError)> {
        if row.client_id != self.client_id {
            return Err((
                "oauth_code_other_client",
                OAuthError::invalid_grant("the authorization code was issued to another client"),
            ));
        }
        if row.redirect_uri != self.redirect_uri {
            return Err((
                "oauth_redirect_uri_mismatch",
                OAuthError::invalid_grant("redirect_uri differs from the authorization request's"),
            ));
        }
        if !crypto::valid_pkce_text(&self.verifier)
            || !crypto::pkce_s256_matches(&self.verifier, &row.code_challenge)
        {
            return Err((
                "oauth_pkce_failed",
                OAuthError::invalid_grant(
                    "PKCE verification failed (code_verifier does not match)",
                ),
            ));
        }
        let Some(resource) = &self.resource else {
            return Ok(());
        };
        if canonical_resource(resource).is_none()
            || canonical_resource(resource) != canonical_resource(&row.resource)
        {
            return Err((
                "oauth_wrong_resource",
                OAuthError::bad(
                    "invalid_target",
                    "resource differs from the authorization request's",
                ),
            ));
        }
        Ok(())
    }
}

#[allow(clippy::result_large_err)]
async fn exchange_code(
    state: &OAuthState,
    oauth: &Arc<OAuth>,
    who: &Requester,
    client_id: &str,
    params: &HashMap<String, String>,
) -> TokenResult {
    let code = params
        .get("code")
        .filter(|v| !v.is_empty())
        .cloned()
        .ok_or_else(|| plain(OAuthError::invalid_request("code is required")))?;
    let claim = CodeClaim::from_params(client_id, params).map_err(plain)?;
    let event = |reason: &str| {
        who.event(EventType::AuthFailure, reason)
            .detail("clientId", client_id)
    };
    let invalid = |reason: &str, description: &str| {
        (OAuthError::invalid_grant(description), Some(event(reason)))
    };
    if !code.starts_with(CODE_PREFIX) {
        return Err(invalid(
            "oauth_code_unknown",
            "the authorization code is invalid",
        ));
    }
    let now = oauth.clock.now();
    let code_hash = crypto::token_hash(&code);
    let (access, refresh, issue) = new_tokens(oauth, now);
    let grant_id = crypto::random_id();
    let max = oauth.settings.max_grants_per_user;
    let g = grant_id.clone();
    let outcome = oauth
        .db(move |s| s.redeem_code(now, &code_hash, &g, &issue, max, |row| claim.check(row)))
        .await
        .map_err(|e| plain(store_failed(e)))?;
    let (row, evicted) = match outcome {
        Redeemed::Granted { row, evicted } => (row, evicted),
        Redeemed::Unknown => {
            return Err(invalid(
                "oauth_code_unknown",
                "the authorization code is invalid",
            ))
        }
        Redeemed::Expired => {
            return Err(invalid(
                "oauth_code_expired",
                "the authorization code expired",
            ))
        }
        Redeemed::Reused { revoked } => {
            let mut e = event("oauth_code_reused");
            if let Some((grant, subject)) = revoked {
                e = e.identity(&subject).detail("revokedGrant", grant);
            }
            return Err((
                OAuthError::invalid_grant("the authorization code was already used"),
                Some(e),
            ));
        }
        Redeemed::Refused {
            row,
            why: (reason, error),
        } => return Err((error, Some(event(reason).identity(&row.subject)))),
    };
    for old in evicted {
        state.audit.emit(
            who.event(EventType::AuthSuccess, "oauth_grant_evicted")
                .identity(&row.subject)
                .detail("grant", old),
        );
    }
    state.audit.emit(
        who.event(EventType::AuthSuccess, "oauth_token_issued")
            .identity(&row.subject)
            .token_hash(Some(&crate::identity::token_fingerprint(&access)))
            .detail("clientId", client_id)
            .detail("grant", grant_id),
    );
    Ok(token_response(oauth, &access, &refresh))
}

async fn refresh(
    state: &OAuthState,
    oauth: &Arc<OAuth>,
    who: &Requester,
    client_id: &str,
    params: &HashMap<String, String>,
) -> TokenResult {
    let event = |reason: &str| {
        who.event(EventType::AuthFailure, reason)
            .detail("clientId", client_id)
    };
    let Some(token) = params.get("refresh_token").filter(|t| !t.is_empty()) else {
        return Err(plain(OAuthError::invalid_request(
            "refresh_token is required",
        )));
    };
    if let Some(scope) = params.get("scope") {
        if !scopes_known(scope) {
            return Err((
                OAuthError::bad("invalid_scope", "the only scope is `mcp`"),
                Some(event("oauth_invalid_scope")),
            ));
        }
    }
    let resource = match params.get("resource") {
        None => None,
        Some(r) => match canonical_resource(r) {
            Some(r) => Some(r),
            None => {
                return Err((
                    OAuthError::bad("invalid_target", "resource is not a valid URI"),
                    Some(event("oauth_wrong_resource")),
                ))
            }
        },
    };
    if !token.starts_with(REFRESH_PREFIX) {
        return Err((
            OAuthError::invalid_grant("the refresh token is invalid"),
            Some(event("oauth_refresh_unknown")),
        ));
    }
    let now = oauth.clock.now();
    let hash = crypto::token_hash(token);
    let (access, refresh, issue) = new_tokens(oauth, now);
    let client = client_id.to_string();
    let outcome = oauth
        .db(move |s| s.rotate_refresh(now, &hash, &client, resource.as_deref(), &issue))
        .await
        .map_err(|e| plain(store_failed(e)))?;
    match outcome {
        RefreshOutcome::Rotated(grant) => {
            state.audit.emit(
                who.event(EventType::AuthSuccess, "oauth_token_refreshed")
                    .identity(&grant.subject)
                    .token_hash(Some(&crate::identity::token_fingerprint(&access)))
                    .detail("clientId", client_id)
                    .detail("grant", grant.grant_id),
            );
            Ok(token_response(oauth, &access, &refresh))
        }
        RefreshOutcome::Replayed(grant) => Err((
            OAuthError::invalid_grant("the refresh token was already used; the grant is revoked"),
            Some(
                event("oauth_refresh_replayed")
                    .identity(&grant.subject)
                    .detail("revokedGrant", grant.grant_id),
            ),
        )),
        RefreshOutcome::Expired => Err((
            OAuthError::invalid_grant("the refresh token expired"),
            Some(event("oauth_refresh_expired")),
        )),
        RefreshOutcome::OtherClient => Err((
            OAuthError::invalid_grant("the refresh token was issued to another client"),
            Some(event("oauth_refresh_other_client")),
        )),
        RefreshOutcome::OtherResource => Err((
            OAuthError::bad("invalid_target", "resource differs from the grant's"),
            Some(event("oauth_wrong_resource")),
        )),
        RefreshOutcome::Unknown => Err((
            OAuthError::invalid_grant("the refresh token is invalid or revoked"),
            Some(event("oauth_refresh_unknown")),
        )),
    }
}
