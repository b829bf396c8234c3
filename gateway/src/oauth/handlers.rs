//! The OAuth endpoints: dynamic client registration (RFC 7591), the authorization endpoint
//! (the page and its form), the token endpoint (authorization code with PKCE S256, refresh with
//! rotation) and revocation (RFC 7009). Every grant, refresh, revocation and failure is audited.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::crypto::{self, Purpose};
use super::error::{no_store, OAuthError};
use super::page::{self, Page};
use super::store::{ClientRow, CodeRow, Issue, NewCode, Redeemed, RefreshOutcome, StoreError};
use super::{
    base_of, cimd, client_ip, request_id, OAuth, ACCESS_PREFIX, CODE_PREFIX, PAGE_TTL,
    REFRESH_PREFIX, SCOPE,
};
use crate::audit::{Event, EventType};
use crate::edge::AppState;
use crate::identity::{Refusal, Secret};
use crate::ratelimit::{retry_after_secs, Decision};

/// The cookie that ties the authorize form to the browser that loaded the page (CSRF).
const CSRF_COOKIE: &str = "cgw_oauth_csrf";

/// Who asked, for audit events and the rate limiter.
struct Origin {
    ip: Option<std::net::IpAddr>,
    request_id: String,
    base: String,
}

impl Origin {
    fn of(state: &AppState, request: &Request) -> Origin {
        Origin {
            ip: client_ip(state, request),
            request_id: request_id(request),
            base: base_of(state, request),
        }
    }

    fn event(&self, kind: EventType, reason: &str) -> Event {
        Event::new(kind)
            .ip(self.ip)
            .request_id(&self.request_id)
            .reason(reason)
    }

    fn ip_key(&self) -> String {
        self.ip
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "unknown".into())
    }
}

fn oauth_of(state: &AppState) -> Result<Arc<OAuth>, OAuthError> {
    state.oauth.clone().ok_or_else(|| {
        OAuthError::new(
            StatusCode::NOT_FOUND,
            "invalid_request",
            "OAuth is not enabled on this gateway",
        )
    })
}

fn store_failed(e: StoreError) -> OAuthError {
    tracing::error!(error = %e, "OAuth store failed");
    OAuthError::server_error()
}

/// Key-value pairs of a query string or form body; a repeated parameter is an error (RFC 6749 §3.1).
pub(crate) fn pairs(text: &[u8]) -> Result<std::collections::HashMap<String, String>, String> {
    let mut map = std::collections::HashMap::new();
    for (key, value) in url::form_urlencoded::parse(text) {
        if map.insert(key.to_string(), value.to_string()).is_some() {
            return Err(format!("parameter {key:?} is repeated"));
        }
    }
    Ok(map)
}

/// A form body (`application/x-www-form-urlencoded`) as pairs.
async fn form(
    state: &Arc<AppState>,
    request: Request,
) -> Result<std::collections::HashMap<String, String>, OAuthError> {
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

fn json_response(status: StatusCode, body: Value) -> Response {
    let mut response = (status, axum::Json(body)).into_response();
    no_store(&mut response);
    response
}

// ---------------------------------------------------------------------------------------------
// POST /oauth/register (RFC 7591)
// ---------------------------------------------------------------------------------------------

pub async fn register(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let origin = Origin::of(&state, &request);
    if let Some(oauth) = &state.oauth {
        let key = registration_key(origin.ip);
        if let Decision::Deny { retry_after } = oauth.register_limit.check(&key, Instant::now()) {
            let retry_after = retry_after_secs(retry_after);
            crate::metrics::METRICS
                .rate_limited
                .inc(&[("limiter", "oauth_register")]);
            state.audit.emit(
                origin
                    .event(EventType::RateLimited, "oauth_register_per_ip")
                    .detail("key", key.as_str()),
            );
            let mut response = OAuthError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                format!(
                    "too many client registrations from this address; retry after {retry_after} s"
                ),
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return response;
        }
    }
    match register_inner(&state, &origin, request).await {
        Ok(response) => response,
        Err(e) => {
            state.audit.emit(
                origin
                    .event(EventType::AuthFailure, "oauth_registration_refused")
                    .detail("error", e.error),
            );
            e.into_response()
        }
    }
}

/// The registration limiter's key (issue 11 item 8): an IPv4 address, or the /64 an IPv6
/// address is in (one host usually holds a whole /64, so per-address keys would not limit it).
fn registration_key(ip: Option<std::net::IpAddr>) -> String {
    match ip.map(|ip| ip.to_canonical()) {
        Some(std::net::IpAddr::V4(v4)) => v4.to_string(),
        Some(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        None => "unknown".into(),
    }
}

/// How long a new client may be mid sign-in (the page's life plus the code's): it is never
/// evicted to make room for another (issue 11 item 8).
fn sign_in_window(oauth: &OAuth) -> i64 {
    PAGE_TTL + oauth.settings.code_ttl
}

async fn register_inner(
    state: &Arc<AppState>,
    origin: &Origin,
    request: Request,
) -> Result<Response, OAuthError> {
    let oauth = oauth_of(state)?;
    let body = Bytes::from_request(request, state)
        .await
        .map_err(|_| OAuthError::invalid_request("the body is too large or unreadable"))?;
    let meta: Value = serde_json::from_slice(&body)
        .ok()
        .filter(Value::is_object)
        .ok_or_else(|| {
            OAuthError::bad(
                "invalid_client_metadata",
                "the body must be a JSON object of client metadata",
            )
        })?;
    let redirect_uris = cimd::redirect_uris(meta.get("redirect_uris"))
        .map_err(|e| OAuthError::bad("invalid_redirect_uri", e))?;
    let strings = |name: &str| -> Result<Option<Vec<String>>, OAuthError> {
        match meta.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| i.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .map(Some)
                .ok_or_else(|| {
                    OAuthError::bad(
                        "invalid_client_metadata",
                        format!("{name} must hold strings"),
                    )
                }),
            Some(_) => Err(OAuthError::bad(
                "invalid_client_metadata",
                format!("{name} must be an array"),
            )),
        }
    };
    if let Some(grants) = strings("grant_types")? {
        if let Some(other) = grants
            .iter()
            .find(|g| !matches!(g.as_str(), "authorization_code" | "refresh_token"))
        {
            return Err(OAuthError::bad(
                "invalid_client_metadata",
                format!("grant type {other:?} is not supported (authorization_code and refresh_token are)"),
            ));
        }
    }
    if let Some(types) = strings("response_types")? {
        if types.iter().any(|t| t != "code") {
            return Err(OAuthError::bad(
                "invalid_client_metadata",
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
            return Err(OAuthError::bad(
                "invalid_client_metadata",
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
    let now = oauth.clock.now();
    let client_id = format!("cgw-{}", crypto::random_id());
    let response = json!({
        "client_id": client_id,
        "client_id_issued_at": now,
        "client_name": client_name,
        "redirect_uris": redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "scope": SCOPE,
    });
    let row = ClientRow {
        client_id: client_id.clone(),
        kind: "registered".into(),
        client_name: client_name.clone(),
        redirect_uris,
        metadata: response.to_string(),
        last_used_at: now,
    };
    let max = oauth.settings.max_clients;
    let young = sign_in_window(&oauth);
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
    state.audit.emit(
        origin
            .event(EventType::AuthSuccess, "oauth_client_registered")
            .detail("clientId", client_id.as_str())
            .detail("clientName", client_name.as_str())
            .detail("requestedAuthMethod", requested_auth),
    );
    Ok(json_response(StatusCode::CREATED, response))
}

// ---------------------------------------------------------------------------------------------
// GET /oauth/authorize: the page
// ---------------------------------------------------------------------------------------------

/// An authorization request that passed every check, sealed into the page's hidden field.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    client_id: String,
    client_name: String,
    verified: bool,
    redirect_uri: String,
    challenge: String,
    state: Option<String>,
    resource: String,
    /// CSRF nonce, also in the cookie.
    nonce: String,
    expires_at: i64,
}

/// Why an authorization request stops: on this gateway's page (the client or its redirect URI
/// cannot be trusted), or back at the client with an error.
enum Stop {
    Page(StatusCode, &'static str, String),
    Redirect(Response),
}

pub async fn authorize_page(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let origin = Origin::of(&state, &request);
    let oauth = match oauth_of(&state) {
        Ok(oauth) => oauth,
        Err(e) => return e.into_response(),
    };
    let query = request.uri().query().unwrap_or("").to_string();
    let pending = match check_request(&oauth, &origin, &query).await {
        Ok(pending) => pending,
        Err(stop) => {
            let reason = match &stop {
                Stop::Page(..) => "oauth_authorize_refused",
                Stop::Redirect(..) => "oauth_authorize_error_redirect",
            };
            state
                .audit
                .emit(origin.event(EventType::AuthFailure, reason));
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
            service_name: &state.config.service.name,
            handle: &handle,
            error: None,
        },
        StatusCode::OK,
    );
    let secure = if origin.base.starts_with("https://") {
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
fn redirect_to(
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

async fn check_request(oauth: &Arc<OAuth>, origin: &Origin, query: &str) -> Result<Pending, Stop> {
    let params = pairs(query.as_bytes()).map_err(|e| {
        Stop::Page(
            StatusCode::BAD_REQUEST,
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
        return Err(Stop::Page(
            StatusCode::BAD_REQUEST,
            "Invalid sign-in request",
            "The application sent no client_id.".into(),
        ));
    };
    // Who is asking: a metadata document at the client_id URL, or a registered client.
    let (client_name, redirect_uris, verified) = if oauth.settings.metadata_documents
        && oauth.cimd.is_document_url(client_id)
    {
        let document = oauth.cimd.fetch(client_id).await.map_err(|e| {
            Stop::Page(
                StatusCode::BAD_REQUEST,
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
        (document.client_name, document.redirect_uris, true)
    } else {
        let id = client_id.to_string();
        let client = oauth.db(move |s| s.client(&id)).await.map_err(|e| {
            tracing::error!(error = %e, "OAuth store failed");
            Stop::Page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Try again later",
                "The gateway could not look up the application.".into(),
            )
        })?;
        let Some(client) = client else {
            return Err(Stop::Page(
                    StatusCode::BAD_REQUEST,
                    "Unknown application",
                    "This application is not registered with this gateway (unknown client_id). Start the connection again from the application.".into(),
                ));
        };
        (client.client_name, client.redirect_uris, false)
    };
    // The redirect URI must match a registered one exactly; until it does, never redirect.
    let redirect_uri = match get("redirect_uri") {
        Some(uri) if redirect_uris.iter().any(|r| r == uri) => uri.to_string(),
        None if redirect_uris.len() == 1 => redirect_uris[0].clone(),
        _ => {
            return Err(Stop::Page(
                StatusCode::BAD_REQUEST,
                "Wrong return address",
                "The application asked to return to an address it did not register (redirect_uri mismatch). Nothing was sent to it.".into(),
            ))
        }
    };
    let state = get("state").map(str::to_string);
    let iss = origin.base.as_str();
    // Issue 11 item 7 (RFC 9700 §4.11.2): before the user approved anything, an error goes back
    // to the client only when the client is known-good; otherwise anyone could register
    // `https://evil.example/cb` and use this gateway as an open redirector.
    let known_good = known_good(oauth, client_id, verified, &redirect_uri).await;
    let fail = |error: &str, description: &str| {
        if !known_good {
            return Stop::Page(
                StatusCode::BAD_REQUEST,
                "Invalid sign-in request",
                format!("The application sent an invalid request ({error}: {description}). Nothing was sent back to it; start the connection again from the application."),
            );
        }
        Stop::Redirect(redirect_to(
            &redirect_uri,
            &[("error", error), ("error_description", description)],
            state.as_deref(),
            iss,
        ))
    };
    if state.as_ref().is_some_and(|s| s.len() > 1024) {
        return Err(fail("invalid_request", "state is too long"));
    }
    match get("response_type") {
        Some("code") => {}
        None => return Err(fail("invalid_request", "response_type is required")),
        Some(_) => {
            return Err(fail(
                "unsupported_response_type",
                "only response_type=code is supported",
            ))
        }
    }
    let Some(challenge) = get("code_challenge") else {
        return Err(fail(
            "invalid_request",
            "PKCE is required: send code_challenge with code_challenge_method=S256",
        ));
    };
    if get("code_challenge_method") != Some("S256") {
        return Err(fail(
            "invalid_request",
            "code_challenge_method must be S256 (plain is not accepted)",
        ));
    }
    if !crypto::valid_pkce_text(challenge) {
        return Err(fail("invalid_request", "code_challenge is malformed"));
    }
    let canonical = format!("{}/mcp", origin.base);
    let resource = match get("resource") {
        None => canonical.clone(),
        Some(resource)
            if canonical_resource(resource).is_some()
                && canonical_resource(resource) == canonical_resource(&canonical) =>
        {
            canonical.clone()
        }
        Some(_) => {
            return Err(fail(
                "invalid_target",
                "resource must be this gateway's MCP URL",
            ))
        }
    };
    if let Some(scope) = get("scope") {
        if scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .any(|s| !known_scope(s))
        {
            return Err(fail("invalid_scope", "the only scope is `mcp`"));
        }
    }
    Ok(Pending {
        client_id: client_id.to_string(),
        client_name,
        verified,
        redirect_uri,
        challenge: challenge.to_string(),
        state,
        resource,
        nonce: crypto::random_id(),
        expires_at: oauth.clock.now() + PAGE_TTL,
    })
}

// ---------------------------------------------------------------------------------------------
// POST /oauth/authorize: the decision
// ---------------------------------------------------------------------------------------------

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

pub async fn authorize_decision(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let origin = Origin::of(&state, &request);
    let oauth = match oauth_of(&state) {
        Ok(oauth) => oauth,
        Err(e) => return e.into_response(),
    };
    let cookie = cookie_value(request.headers(), CSRF_COOKIE).map(str::to_string);
    let fields = match form(&state, request).await {
        Ok(fields) => fields,
        Err(e) => return page::message(StatusCode::BAD_REQUEST, "Invalid form", &e.description),
    };
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
            .emit(origin.event(EventType::AuthFailure, "oauth_form_invalid"));
        return expired();
    };
    if pending.expires_at <= oauth.clock.now() {
        state
            .audit
            .emit(origin.event(EventType::AuthFailure, "oauth_form_expired"));
        return expired();
    }
    let csrf_ok = cookie
        .as_deref()
        .is_some_and(|c| crypto::constant_time_eq(c.as_bytes(), pending.nonce.as_bytes()));
    if !csrf_ok {
        state.audit.emit(
            origin
                .event(EventType::AuthFailure, "oauth_csrf")
                .detail("clientId", pending.client_id.as_str()),
        );
        return page::message(
            StatusCode::FORBIDDEN,
            "Cannot confirm this form",
            "This form was not loaded in this browser (or cookies are off). Start the connection again from the application.",
        );
    }
    let clear_cookie =
        format!("{CSRF_COOKIE}=; Path=/oauth/authorize; Max-Age=0; HttpOnly; SameSite=Strict");
    let back = |params: &[(&str, &str)]| {
        let mut response = redirect_to(
            &pending.redirect_uri,
            params,
            pending.state.as_deref(),
            &origin.base,
        );
        if let Ok(value) = HeaderValue::from_str(&clear_cookie) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        response
    };
    let handle = fields.get("request").cloned().unwrap_or_default();
    let again = |status: StatusCode, message: &str| {
        page::render(
            &Page {
                client_name: &pending.client_name,
                client_id: &pending.client_id,
                redirect_uri: &pending.redirect_uri,
                verified_url: pending.verified,
                resource: &pending.resource,
                service_name: &state.config.service.name,
                handle: &handle,
                error: Some(message),
            },
            status,
        )
    };
    match fields.get("decision").map(String::as_str) {
        Some("approve") => {}
        Some("deny") => {
            state.audit.emit(
                origin
                    .event(EventType::AuthFailure, "oauth_access_denied")
                    .detail("clientId", pending.client_id.as_str()),
            );
            return back(&[
                ("error", "access_denied"),
                ("error_description", "the user denied access"),
            ]);
        }
        _ => return again(StatusCode::BAD_REQUEST, "Choose Approve or Deny."),
    }
    let token = fields
        .get("coda_token")
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    if token.is_empty() {
        return again(
            StatusCode::BAD_REQUEST,
            "Paste your Coda API token first (create one at coda.io/account, under API settings).",
        );
    }
    if token.len() > 4096 || token.contains(char::is_whitespace) {
        return again(
            StatusCode::BAD_REQUEST,
            "That does not look like a Coda API token: copy the whole token, without spaces.",
        );
    }
    let Some(authenticator) = &state.auth else {
        return page::message(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Sign-in is not available",
            "This gateway does not check Coda tokens.",
        );
    };
    let secret = Secret::new(token);
    let fingerprint = secret.fingerprint();
    let identity = match authenticator.authenticate(secret.clone()).await {
        Ok((identity, _)) => identity,
        Err(refusal) => {
            let reason = match &refusal {
                Refusal::NotAllowed { .. } => "oauth_not_allowed",
                Refusal::Unavailable { .. } => "oauth_coda_unavailable",
                _ => "oauth_invalid_coda_token",
            };
            let mut event = origin
                .event(EventType::AuthFailure, reason)
                .token_hash(Some(&fingerprint))
                .detail("clientId", pending.client_id.as_str());
            if let Refusal::NotAllowed { subject } = &refusal {
                event = event.identity(subject);
            }
            state.audit.emit(event);
            return match refusal {
                Refusal::NotAllowed { subject } => again(
                    StatusCode::FORBIDDEN,
                    &format!("The Coda account {subject} is not allowed to use this gateway. Ask the operator to add it to ALLOWED_USERS, or use another account's token."),
                ),
                Refusal::Unavailable { .. } => again(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Coda could not be reached to check the token. Try again in a moment.",
                ),
                _ => {
                    state.ip_guard.record(&origin.ip_key(), Instant::now());
                    again(
                        StatusCode::UNAUTHORIZED,
                        "Coda did not accept this token: it is invalid, expired or revoked. Copy the whole token from coda.io/account.",
                    )
                }
            };
        }
    };
    let code = crypto::random_token(CODE_PREFIX);
    let now = oauth.clock.now();
    let new = NewCode {
        code_hash: crypto::token_hash(&code),
        client_id: pending.client_id.clone(),
        redirect_uri: pending.redirect_uri.clone(),
        code_challenge: pending.challenge.clone(),
        resource: pending.resource.clone(),
        scope: SCOPE.into(),
        subject: identity.subject.clone(),
        coda_token: oauth.seal_coda_token(&secret),
        expires_at: now + oauth.settings.code_ttl,
    };
    if let Err(e) = oauth.db(move |s| s.insert_code(now, &new)).await {
        tracing::error!(error = %e, "OAuth store failed");
        return again(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The gateway could not record the approval. Try again.",
        );
    }
    state.audit.emit(
        origin
            .event(EventType::AuthSuccess, "oauth_authorized")
            .identity(&identity.subject)
            .token_hash(Some(&fingerprint))
            .detail("clientId", pending.client_id.as_str()),
    );
    back(&[("code", &code)])
}

// ---------------------------------------------------------------------------------------------
// POST /oauth/token
// ---------------------------------------------------------------------------------------------

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

pub async fn token(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let origin = Origin::of(&state, &request);
    match token_inner(&state, &origin, request).await {
        Ok(response) => response,
        Err((e, event)) => {
            let event = event
                .unwrap_or_else(|| origin.event(EventType::AuthFailure, "oauth_token_refused"))
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

async fn token_inner(state: &Arc<AppState>, origin: &Origin, request: Request) -> TokenResult {
    let oauth = oauth_of(state).map_err(plain)?;
    let basic = basic_client_id(request.headers());
    let params = form(state, request).await.map_err(plain)?;
    let client_id = params
        .get("client_id")
        .cloned()
        .or(basic)
        .filter(|c| !c.is_empty())
        .ok_or_else(|| plain(OAuthError::invalid_request("client_id is required")))?;
    let id = client_id.clone();
    let client = oauth
        .db(move |s| s.client(&id))
        .await
        .map_err(|e| plain(store_failed(e)))?;
    if client.is_none() {
        return Err(plain(OAuthError::invalid_client(
            "unknown client_id; register the client first",
        )));
    }
    let now = oauth.clock.now();
    let id = client_id.clone();
    let _ = oauth.db(move |s| s.touch_client(now, &id)).await;
    match params.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            exchange_code(state, &oauth, origin, &client_id, &params).await
        }
        Some("refresh_token") => refresh(state, &oauth, origin, &client_id, &params).await,
        None => Err(plain(OAuthError::invalid_request("grant_type is required"))),
        Some(_) => Err(plain(OAuthError::bad(
            "unsupported_grant_type",
            "grant_type must be authorization_code or refresh_token",
        ))),
    }
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

#[allow(clippy::result_large_err)]
async fn exchange_code(
    state: &Arc<AppState>,
    oauth: &Arc<OAuth>,
    origin: &Origin,
    client_id: &str,
    params: &std::collections::HashMap<String, String>,
) -> TokenResult {
    let required = |name: &str| {
        params
            .get(name)
            .filter(|v| !v.is_empty())
            .cloned()
            .ok_or_else(|| plain(OAuthError::invalid_request(format!("{name} is required"))))
    };
    let code = required("code")?;
    let redirect_uri = required("redirect_uri")?;
    let verifier = required("code_verifier")?;
    let event = |reason: &str| {
        origin
            .event(EventType::AuthFailure, reason)
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
    // What the code was issued for must match this request; checked inside the redemption's
    // transaction (issue 11 item 14), so the code is taken and its grant made in one step.
    let expected_client = client_id.to_string();
    let resource = params.get("resource").cloned();
    let check = move |row: &CodeRow| -> Result<(), (&'static str, OAuthError)> {
        if row.client_id != expected_client {
            return Err((
                "oauth_code_other_client",
                OAuthError::invalid_grant("the authorization code was issued to another client"),
            ));
        }
        if row.redirect_uri != redirect_uri {
            return Err((
                "oauth_redirect_uri_mismatch",
                OAuthError::invalid_grant("redirect_uri differs from the authorization request's"),
            ));
        }
        if !crypto::valid_pkce_text(&verifier)
            || !crypto::pkce_s256_matches(&verifier, &row.code_challenge)
        {
            return Err((
                "oauth_pkce_failed",
                OAuthError::invalid_grant(
                    "PKCE verification failed (code_verifier does not match)",
                ),
            ));
        }
        if let Some(resource) = &resource {
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
        }
        Ok(())
    };
    let g = grant_id.clone();
    let outcome = oauth
        .db(move |s| s.redeem_code(now, &code_hash, &g, &issue, max, check))
        .await
        .map_err(|e| plain(store_failed(e)))?;
    let (row, evicted) = match outcome {
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
        Redeemed::Granted { row, evicted } => (row, evicted),
    };
    for old in evicted {
        state.audit.emit(
            origin
                .event(EventType::AuthSuccess, "oauth_grant_evicted")
                .identity(&row.subject)
                .detail("grant", old),
        );
    }
    state.audit.emit(
        origin
            .event(EventType::AuthSuccess, "oauth_token_issued")
            .identity(&row.subject)
            .token_hash(Some(&crate::identity::token_fingerprint(&access)))
            .detail("clientId", client_id)
            .detail("grant", grant_id),
    );
    Ok(token_response(oauth, &access, &refresh))
}

async fn refresh(
    state: &Arc<AppState>,
    oauth: &Arc<OAuth>,
    origin: &Origin,
    client_id: &str,
    params: &std::collections::HashMap<String, String>,
) -> TokenResult {
    let event = |reason: &str| {
        origin
            .event(EventType::AuthFailure, reason)
            .detail("clientId", client_id)
    };
    let Some(token) = params.get("refresh_token").filter(|t| !t.is_empty()) else {
        return Err(plain(OAuthError::invalid_request(
            "refresh_token is required",
        )));
    };
    if let Some(scope) = params.get("scope") {
        if scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .any(|s| !known_scope(s))
        {
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
                origin
                    .event(EventType::AuthSuccess, "oauth_token_refreshed")
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

// ---------------------------------------------------------------------------------------------
// POST /oauth/revoke (RFC 7009)
// ---------------------------------------------------------------------------------------------

pub async fn revoke(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let origin = Origin::of(&state, &request);
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
            .emit(origin.event(EventType::AuthFailure, "oauth_revoke_refused"));
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
        Some(grant) => origin
            .event(EventType::AuthSuccess, "oauth_token_revoked")
            .identity(&grant.subject)
            .detail("grant", grant.grant_id.as_str()),
        None => origin.event(EventType::AuthSuccess, "oauth_revoke_unknown_token"),
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
