//! `GET /oauth/authorize`: checks an authorization request and shows the page where the user
//! pastes their Coda token. Steps: identify the client, match its redirect URI (until it matches
//! nothing is ever sent back), then check the request's parameters.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::{
    canonical_resource, oauth_of, pairs, scopes_known, sign_in_window, Requester, CSRF_COOKIE,
};
use crate::audit::EventType;
use crate::oauth::crypto::{self, Purpose};
use crate::oauth::page::{self, Page};
use crate::oauth::store::ClientRow;
use crate::oauth::{OAuth, OAuthState, PAGE_TTL};

/// An authorization request that passed every check, sealed into the page's hidden field.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Pending {
    pub client_id: String,
    pub client_name: String,
    pub verified: bool,
    pub redirect_uri: String,
    pub challenge: String,
    pub state: Option<String>,
    pub resource: String,
    /// CSRF nonce, also in the cookie.
    pub nonce: String,
    pub expires_at: i64,
}

/// Why an authorization request stops: on this gateway's page (the client or its redirect URI
/// cannot be trusted), or back at the client with an error.
enum Stop {
    Page(StatusCode, &'static str, String),
    Redirect(Response),
}

pub async fn authorize_page(State(state): State<OAuthState>, request: Request) -> Response {
    let who = state.requester(&request);
    let oauth = match oauth_of(&state) {
        Ok(oauth) => oauth,
        Err(e) => return e.into_response(),
    };
    let query = request.uri().query().unwrap_or("").to_string();
    let pending = match check_request(&oauth, &who, &query).await {
        Ok(pending) => pending,
        Err(stop) => {
            let reason = match &stop {
                Stop::Page(..) => "oauth_authorize_refused",
                Stop::Redirect(..) => "oauth_authorize_error_redirect",
            };
            state.audit.emit(who.event(EventType::AuthFailure, reason));
            return match stop {
                Stop::Page(status, title, text) => page::message(status, title, &text),
                Stop::Redirect(response) => response,
            };
        }
    };
    let handle = seal(&oauth, &pending);
    let mut response = page::render(
        &Page {
            client_name: &pending.client_name,
            client_id: &pending.client_id,
            redirect_uri: &pending.redirect_uri,
            verified_url: pending.verified,
            resource: &pending.resource,
            service_name: state.service_name(),
            handle: &handle,
            error: None,
        },
        StatusCode::OK,
    );
    let secure = if who.base.starts_with("https://") {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{CSRF_COOKIE}={}; Path=/oauth/authorize; Max-Age={PAGE_TTL}; HttpOnly; SameSite=Strict{secure}",
        pending.nonce
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn seal(oauth: &OAuth, pending: &Pending) -> String {
    let json = serde_json::to_vec(pending).unwrap_or_default();
    oauth.keys.seal_text(Purpose::AuthorizeRequest, &json)
}

/// The redirect back to the client with `params` (plus `state` and `iss`, RFC 9207).
pub(super) fn redirect_to(
    redirect_uri: &str,
    params: &[(&str, &str)],
    state: Option<&str>,
    iss: &str,
) -> Response {
    let Ok(mut url) = reqwest::Url::parse(redirect_uri) else {
        return page::message(
            StatusCode::BAD_REQUEST,
            "Cannot return to the application",
            "The redirect URI is not valid.",
        );
    };
    {
        let mut query = url.query_pairs_mut();
        for (key, value) in params {
            query.append_pair(key, value);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", iss);
    }
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(url.as_str()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Whether errors may be redirected to `redirect_uri` (already an exact match of one the client
/// registered) before any user approved this request. Known-good means one of:
/// - the redirect URI is on loopback (`http://127.0.0.1`, `[::1]`, `localhost`; RFC 8252 native
///   apps): the response never leaves the user's machine;
/// - the client is a metadata document (an https `client_id` fetched just now) and the redirect
///   URI has the `client_id`'s origin: the link itself names where the browser goes;
/// - a user approved this client on this gateway before (it holds a grant, live or remembered).
///
/// Anything else (say a client registered without auth a minute ago) gets the error page.
async fn known_good(
    oauth: &Arc<OAuth>,
    client_id: &str,
    verified: bool,
    redirect_uri: &str,
) -> bool {
    let Ok(url) = reqwest::Url::parse(redirect_uri) else {
        return false;
    };
    let loopback = url.scheme() == "http"
        && match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
            None => false,
        };
    if loopback {
        return true;
    }
    if verified && reqwest::Url::parse(client_id).is_ok_and(|id| id.origin() == url.origin()) {
        return true;
    }
    let id = client_id.to_string();
    oauth
        .db(move |s| s.client_has_grant(&id))
        .await
        .unwrap_or_else(|e| {
            tracing::warn!(error = %e, "OAuth store failed; treating the client as not known-good");
            false
        })
}

/// The client an authorization request names: its name, redirect URIs, and whether it is a
/// metadata document fetched just now (verified by its URL) rather than a registered client.
struct Client {
    name: String,
    redirect_uris: Vec<String>,
    verified: bool,
}

fn bad_request(title: &'static str, text: impl Into<String>) -> Stop {
    Stop::Page(StatusCode::BAD_REQUEST, title, text.into())
}

/// A metadata-document client (an https `client_id`), fetched and recorded.
async fn document_client(oauth: &OAuth, client_id: &str) -> Result<Client, Stop> {
    let document = oauth.cimd.fetch(client_id).await.map_err(|e| {
        bad_request(
            "Unknown application",
            format!("This application could not be identified: {e}."),
        )
    })?;
    let now = oauth.clock.now();
    let row = ClientRow {
        client_id: client_id.to_string(),
        kind: "metadata_document".into(),
        client_name: document.client_name.clone(),
        redirect_uris: document.redirect_uris.clone(),
        metadata: document.raw.to_string(),
        last_used_at: now,
    };
    let max = oauth.settings.max_clients;
    let young = sign_in_window(oauth);
    oauth
        .db(move |s| s.put_client(now, &row, max, young))
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "could not record a metadata-document client");
            Stop::Page(
                StatusCode::SERVICE_UNAVAILABLE,
                "Try again later",
                "The gateway cannot take new applications right now.".into(),
            )
        })?;
    Ok(Client {
        name: document.client_name,
        redirect_uris: document.redirect_uris,
        verified: true,
    })
}

/// A registered client, looked up.
async fn registered_client(oauth: &OAuth, client_id: &str) -> Result<Client, Stop> {
    let id = client_id.to_string();
    let client = oauth.db(move |s| s.client(&id)).await.map_err(|e| {
        tracing::error!(error = %e, "OAuth store failed");
        Stop::Page(
            super::page_status(&e),
            "Try again later",
            "The gateway could not look up the application.".into(),
        )
    })?;
    let Some(client) = client else {
        return Err(bad_request(
            "Unknown application",
            "This application is not registered with this gateway (unknown client_id). Start the connection again from the application.",
        ));
    };
    Ok(Client {
        name: client.client_name,
        redirect_uris: client.redirect_uris,
        verified: false,
    })
}

/// The redirect URI: one the client registered, exactly; the only one when none is named.
/// (Stop is large only in its redirect variant, which this never returns.)
#[allow(clippy::result_large_err)]
fn matched_redirect(client: &Client, asked: Option<&str>) -> Result<String, Stop> {
    match asked {
        Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => Ok(uri.to_string()),
        None if client.redirect_uris.len() == 1 => Ok(client.redirect_uris[0].clone()),
        _ => Err(bad_request(
            "Wrong return address",
            "The application asked to return to an address it did not register (redirect_uri mismatch). Nothing was sent to it.",
        )),
    }
}

async fn check_request(oauth: &Arc<OAuth>, who: &Requester, query: &str) -> Result<Pending, Stop> {
    let params = pairs(query.as_bytes()).map_err(|e| {
        bad_request(
            "Invalid sign-in request",
            format!("The application sent an invalid request: {e}."),
        )
    })?;
    let get = |name: &str| {
        params
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let Some(client_id) = get("client_id") else {
        return Err(bad_request(
            "Invalid sign-in request",
            "The application sent no client_id.",
        ));
    };
    let client = if oauth.settings.metadata_documents && oauth.cimd.is_document_url(client_id) {
        document_client(oauth, client_id).await?
    } else {
        registered_client(oauth, client_id).await?
    };
    let redirect_uri = matched_redirect(&client, get("redirect_uri"))?;
    let state = get("state").map(str::to_string);
    // RFC 9700 §4.11.2: before the user approved anything, an error goes back to the client only
    // when the client is known-good; otherwise anyone could register `https://evil.example/cb`
    // and use this gateway as an open redirector.
    let known_good = known_good(oauth, client_id, client.verified, &redirect_uri).await;
    let fail = |error: &str, description: &str| {
        if !known_good {
            return bad_request(
                "Invalid sign-in request",
                format!("The application sent an invalid request ({error}: {description}). Nothing was sent back to it; start the connection again from the application."),
            );
        }
        Stop::Redirect(redirect_to(
            &redirect_uri,
            &[("error", error), ("error_description", description)],
            state.as_deref(),
            &who.base,
        ))
    };
    if state.as_ref().is_some_and(|s| s.len() > 1024) {
        return Err(fail("invalid_request", "state is too long"));
    }
    let checked =
        check_params(&get, &who.base).map_err(|(error, description)| fail(error, description))?;
    Ok(Pending {
        client_id: client_id.to_string(),
        client_name: client.name,
        verified: client.verified,
        redirect_uri,
        challenge: checked.challenge,
        state,
        resource: checked.resource,
        nonce: crypto::random_id(),
        expires_at: oauth.clock.now() + PAGE_TTL,
    })
}

/// The parameters that passed [`check_params`].
struct Checked {
    challenge: String,
    resource: String,
}

/// The request's own parameters (response type, PKCE, resource, scope); the OAuth error code
/// and description of the first that fails.
fn check_params<'a>(
    get: &dyn Fn(&str) -> Option<&'a str>,
    base: &str,
) -> Result<Checked, (&'static str, &'static str)> {
    match get("response_type") {
        Some("code") => {}
        None => return Err(("invalid_request", "response_type is required")),
        Some(_) => {
            return Err((
                "unsupported_response_type",
                "only response_type=code is supported",
            ))
        }
    }
    let Some(challenge) = get("code_challenge") else {
        return Err((
            "invalid_request",
            "PKCE is required: send code_challenge with code_challenge_method=S256",
        ));
    };
    if get("code_challenge_method") != Some("S256") {
        return Err((
            "invalid_request",
            "code_challenge_method must be S256 (plain is not accepted)",
        ));
    }
    if !crypto::valid_pkce_text(challenge) {
        return Err(("invalid_request", "code_challenge is malformed"));
    }
    let canonical = format!("{base}/mcp");
    if let Some(resource) = get("resource") {
        if canonical_resource(resource).is_none()
            || canonical_resource(resource) != canonical_resource(&canonical)
        {
            return Err(("invalid_target", "resource must be this gateway's MCP URL"));
        }
    }
    if get("scope").is_some_and(|scope| !scopes_known(scope)) {
        return Err(("invalid_scope", "the only scope is `mcp`"));
    }
    Ok(Checked {
        challenge: challenge.to_string(),
        resource: canonical,
    })
}
