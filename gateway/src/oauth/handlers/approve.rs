//! `POST /oauth/authorize`: the user's decision on the page's form. Steps: open the form (sealed
//! request, expiry, CSRF cookie), read the decision, authenticate the pasted Coda token, then
//! issue the authorization code and send the browser back to the client.

use std::collections::HashMap;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::authorize::{redirect_to, Pending};
use super::{form, oauth_of, Requester, CSRF_COOKIE};
use crate::audit::EventType;
use crate::identity::{Refusal, Secret};
use crate::oauth::crypto::{self, Purpose};
use crate::oauth::page::{self, Page};
use crate::oauth::store::NewCode;
use crate::oauth::{OAuth, OAuthState, CODE_PREFIX, SCOPE};
use crate::values::{ip_key, token_shaped};

fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
}

pub async fn authorize_decision(State(state): State<OAuthState>, request: Request) -> Response {
    let who = state.requester(&request);
    let oauth = match oauth_of(&state) {
        Ok(oauth) => oauth,
        Err(e) => return e.into_response(),
    };
    let cookie = cookie_value(request.headers(), CSRF_COOKIE).map(str::to_string);
    let fields = match form(&state, request).await {
        Ok(fields) => fields,
        Err(e) => return page::message(StatusCode::BAD_REQUEST, "Invalid form", &e.description),
    };
    let pending = match open_form(&state, &oauth, &who, &fields, cookie.as_deref()) {
        Ok(pending) => pending,
        Err(response) => return response,
    };
    let reply = Reply {
        state: &state,
        who: &who,
        pending: &pending,
        handle: fields
            .get("request")
            .map(String::as_str)
            .unwrap_or_default(),
    };
    match fields.get("decision").map(String::as_str) {
        Some("approve") => {}
        Some("deny") => {
            state.audit.emit(
                who.event(EventType::AuthFailure, "oauth_access_denied")
                    .detail("clientId", pending.client_id.as_str()),
            );
            return reply.back(&[
                ("error", "access_denied"),
                ("error_description", "the user denied access"),
            ]);
        }
        _ => return reply.again(StatusCode::BAD_REQUEST, "Choose Approve or Deny."),
    }
    let secret = match pasted_token(&fields) {
        Ok(secret) => secret,
        Err(message) => return reply.again(StatusCode::BAD_REQUEST, message),
    };
    let subject = match authenticate(&reply, &secret).await {
        Ok(subject) => subject,
        Err(response) => return response,
    };
    let code = match issue_code(&oauth, &pending, &subject, &secret).await {
        Ok(code) => code,
        Err(status) => {
            return reply.again(
                status,
                "The gateway could not record the approval. Try again.",
            )
        }
    };
    state.audit.emit(
        who.event(EventType::AuthSuccess, "oauth_authorized")
            .identity(&subject)
            .token_hash(Some(&secret.fingerprint()))
            .detail("clientId", pending.client_id.as_str()),
    );
    reply.back(&[("code", &code)])
}

/// The request the page sealed into the form, if it opens, is still fresh, and the form came
/// from the browser that loaded the page (the CSRF cookie matches its nonce).
#[allow(clippy::result_large_err)]
fn open_form(
    state: &OAuthState,
    oauth: &OAuth,
    who: &Requester,
    fields: &HashMap<String, String>,
    cookie: Option<&str>,
) -> Result<Pending, Response> {
    let expired = || {
        page::message(
            StatusCode::BAD_REQUEST,
            "This sign-in page expired",
            "Start the connection again from the application.",
        )
    };
    let Some(pending) = fields
        .get("request")
        .and_then(|h| oauth.keys.open_text(Purpose::AuthorizeRequest, h))
        .and_then(|json| serde_json::from_slice::<Pending>(&json).ok())
    else {
        state
            .audit
            .emit(who.event(EventType::AuthFailure, "oauth_form_invalid"));
        return Err(expired());
    };
    if pending.expires_at <= oauth.clock.now() {
        state
            .audit
            .emit(who.event(EventType::AuthFailure, "oauth_form_expired"));
        return Err(expired());
    }
    let csrf_ok =
        cookie.is_some_and(|c| crypto::constant_time_eq(c.as_bytes(), pending.nonce.as_bytes()));
    if !csrf_ok {
        state.audit.emit(
            who.event(EventType::AuthFailure, "oauth_csrf")
                .detail("clientId", pending.client_id.as_str()),
        );
        return Err(page::message(
            StatusCode::FORBIDDEN,
            "Cannot confirm this form",
            "This form was not loaded in this browser (or cookies are off). Start the connection again from the application.",
        ));
    }
    Ok(pending)
}

/// The two ways the decision is answered once the form opened.
struct Reply<'a> {
    state: &'a OAuthState,
    who: &'a Requester,
    pending: &'a Pending,
    /// The sealed request, to render the page again with it.
    handle: &'a str,
}

impl Reply<'_> {
    /// Back to the client with `params` (the CSRF cookie cleared).
    fn back(&self, params: &[(&str, &str)]) -> Response {
        let mut response = redirect_to(
            &self.pending.redirect_uri,
            params,
            self.pending.state.as_deref(),
            &self.who.base,
        );
        let clear_cookie =
            format!("{CSRF_COOKIE}=; Path=/oauth/authorize; Max-Age=0; HttpOnly; SameSite=Strict");
        if let Ok(value) = HeaderValue::from_str(&clear_cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        response
    }

    /// The page again, with `message` for the user.
    fn again(&self, status: StatusCode, message: &str) -> Response {
        let pending = self.pending;
        page::render(
            &Page {
                client_name: &pending.client_name,
                client_id: &pending.client_id,
                redirect_uri: &pending.redirect_uri,
                verified_url: pending.verified,
                resource: &pending.resource,
                service_name: self.state.service_name(),
                handle: self.handle,
                error: Some(message),
            },
            status,
        )
    }
}

/// The Coda token the user pasted, if it has a token's shape; else what to tell them.
fn pasted_token(fields: &HashMap<String, String>) -> Result<Secret, &'static str> {
    let token = fields
        .get("coda_token")
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    if token.is_empty() {
        return Err(
            "Paste your Coda API token first (create one at coda.io/account, under API settings).",
        );
    }
    if !token_shaped(&token) {
        return Err(
            "That does not look like a Coda API token: copy the whole token, without spaces.",
        );
    }
    Ok(Secret::new(token))
}

/// Asks Coda (through the authenticator: cache, whoami, allow-list) whose token it is; the
/// subject, or the page answering the refusal (audited; an invalid token counts against the
/// address like a failed `/mcp` authentication).
async fn authenticate(reply: &Reply<'_>, secret: &Secret) -> Result<String, Response> {
    let Some(authenticator) = reply.state.authenticator() else {
        return Err(page::message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Sign-in is not available",
            "This gateway does not check Coda tokens.",
        ));
    };
    let refusal = match authenticator.authenticate(secret.clone()).await {
        Ok((identity, _)) => return Ok(identity.subject),
        Err(refusal) => refusal,
    };
    let reason = match &refusal {
        Refusal::NotAllowed { .. } => "oauth_not_allowed",
        Refusal::Unavailable { .. } => "oauth_coda_unavailable",
        Refusal::StateUnavailable { .. } => "oauth_shared_state_unavailable",
        _ => "oauth_invalid_coda_token",
    };
    let mut event = reply
        .who
        .event(EventType::AuthFailure, reason)
        .token_hash(Some(&secret.fingerprint()))
        .detail("clientId", reply.pending.client_id.as_str());
    if let Refusal::NotAllowed { subject } = &refusal {
        event = event.identity(subject);
    }
    reply.state.audit.emit(event);
    Err(match refusal {
        Refusal::NotAllowed { subject } => reply.again(
            StatusCode::FORBIDDEN,
            &format!("The Coda account {subject} is not allowed to use this gateway. Ask the operator to add it to ALLOWED_USERS, or use another account's token."),
        ),
        Refusal::Unavailable { .. } => reply.again(
            StatusCode::SERVICE_UNAVAILABLE,
            "Coda could not be reached to check the token. Try again in a moment.",
        ),
        Refusal::StateUnavailable { .. } => reply.again(
            StatusCode::SERVICE_UNAVAILABLE,
            "The gateway's shared state (Redis) did not answer, so the token could not be checked. Try again in a moment.",
        ),
        _ => {
            let ip = ip_key(reply.who.ip);
            if reply.state.ip_guard().record(&ip).await.is_err() {
                // Not counted, so not answered as a failure (the guard fails closed).
                return Err(reply.again(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The gateway's shared state (Redis) did not answer. Try again in a moment.",
                ));
            }
            reply.again(
                StatusCode::UNAUTHORIZED,
                "Coda did not accept this token: it is invalid, expired or revoked. Copy the whole token from coda.io/account.",
            )
        }
    })
}

/// Records a new authorization code for the approved request; the code, or the page's status
/// when the store failed (logged; 503 when the shared store is unreachable).
async fn issue_code(
    oauth: &OAuth,
    pending: &Pending,
    subject: &str,
    secret: &Secret,
) -> Result<String, StatusCode> {
    let code = crypto::random_token(CODE_PREFIX);
    let now = oauth.clock.now();
    let new = NewCode {
        code_hash: crypto::token_hash(&code),
        client_id: pending.client_id.clone(),
        redirect_uri: pending.redirect_uri.clone(),
        code_challenge: pending.challenge.clone(),
        resource: pending.resource.clone(),
        scope: SCOPE.into(),
        subject: subject.to_string(),
        coda_token: oauth.seal_coda_token(secret),
        expires_at: now + oauth.settings.code_ttl,
    };
    match oauth.db(move |s| s.insert_code(now, &new)).await {
        Ok(()) => Ok(code),
        Err(e) => {
            tracing::error!(error = %e, "OAuth store failed");
            Err(super::page_status(&e))
        }
    }
}
