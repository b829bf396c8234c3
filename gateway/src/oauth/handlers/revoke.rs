//! `POST /oauth/revoke` (RFC 7009): ends the grant an access or refresh token belongs to.
//! Answers 200 whether or not the token was known, so it reveals nothing about tokens.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{basic_client_id, form, oauth_of, store_failed};
use crate::audit::EventType;
use crate::oauth::crypto;
use crate::oauth::error::{no_store, OAuthError};
use crate::oauth::{OAuthState, ACCESS_PREFIX, REFRESH_PREFIX};

pub async fn revoke(State(state): State<OAuthState>, request: Request) -> Response {
    let who = state.requester(&request);
    let oauth = match oauth_of(&state) {
        Ok(oauth) => oauth,
        Err(e) => return e.into_response(),
    };
    let basic = basic_client_id(request.headers());
    let params = match form(&state, request).await {
        Ok(params) => params,
        Err(e) => return e.into_response(),
    };
    let Some(token) = params.get("token").filter(|t| !t.is_empty()).cloned() else {
        state
            .audit
            .emit(who.event(EventType::AuthFailure, "oauth_revoke_refused"));
        return OAuthError::invalid_request("token is required").into_response();
    };
    let client_id = params.get("client_id").cloned().or(basic);
    let now = oauth.clock.now();
    let hash = crypto::token_hash(&token);
    let revoked = if token.starts_with(ACCESS_PREFIX) || token.starts_with(REFRESH_PREFIX) {
        let client = client_id.clone();
        match oauth
            .db(move |s| s.revoke_token(now, &hash, client.as_deref()))
            .await
        {
            Ok(revoked) => revoked,
            Err(e) => return store_failed(e).into_response(),
        }
    } else {
        None
    };
    let mut event = match &revoked {
        Some(grant) => who
            .event(EventType::AuthSuccess, "oauth_token_revoked")
            .identity(&grant.subject)
            .detail("grant", grant.grant_id.as_str()),
        None => who.event(EventType::AuthSuccess, "oauth_revoke_unknown_token"),
    };
    if let Some(client_id) = &client_id {
        event = event.detail("clientId", client_id.as_str());
    }
    state.audit.emit(event);
    // RFC 7009 §2.2: 200 whether or not the token was known.
    let mut response = StatusCode::OK.into_response();
    no_store(&mut response);
    response
}
