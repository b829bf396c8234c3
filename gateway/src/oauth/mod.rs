//! The gateway as its own OAuth 2.1 authorization server, for hosted MCP clients that
//! connect only through OAuth.
//!
//! Coda API tokens are personal access tokens and Coda is no OAuth server for them, so the user
//! pastes their Coda token once into the gateway's authorize page; the gateway checks it with
//! whoami (and the allow-list), keeps it encrypted at rest, and gives the client opaque,
//! short-lived access tokens bound to this gateway's MCP URL (the audience). On `/mcp`, such a
//! token stands for the Coda token it was granted with, which goes into the caller's child as a
//! pasted one would; it never reaches the client again.
//!
//! - [`store`]: clients, codes, grants, token hashes: SQLite with migrations, or Redis with
//!   REDIS_URL (shared by the replicas).
//! - [`crypto`]: key parsing, sealing, random tokens, PKCE.
//! - [`handlers`]: `POST /oauth/register`, `GET|POST /oauth/authorize`, `POST /oauth/token`,
//!   `POST /oauth/revoke`, one file each, on their own sub-state ([`OAuthState`]); [`page`]: the authorize page; [`metadata`]: RFC 8414 metadata;
//!   [`cimd`]: client ID metadata documents.
//!
//! On by default with `AUTH_MODE=coda`; without `OAUTH_ENCRYPTION_KEY` the key is
//! generated into a file beside the database ([`keyfile`]). `OAUTH=off`: no routes, no
//! authorization server metadata, no hook.

pub mod cimd;
pub mod crypto;
mod error;
pub(crate) mod handlers;
pub mod keyfile;
pub mod metadata;
pub(crate) mod page;
pub mod store;

use std::collections::HashSet;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{DefaultBodyLimit, FromRef, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::app::{client_ip_of, peer_of, public_base, request_id_of, AppState};
use crate::audit::{Audit, Event, EventType};
use crate::config::OAuthSettings;
use crate::identity::{Authenticator, Refusal, Secret};
use crate::ratelimit::{retry_after_secs, Decision, Limiter};
use crate::values::ip_key;
use crypto::{Keys, Purpose};
use store::{Store, StoreError};

/// Prefix of gateway-issued access tokens: they are recognised without asking Coda.
pub const ACCESS_PREFIX: &str = "cgw_at_";
/// Prefix of gateway-issued refresh tokens.
pub const REFRESH_PREFIX: &str = "cgw_rt_";
/// Prefix of authorization codes.
pub const CODE_PREFIX: &str = "cgw_ac_";
/// The only scope (the same one `/mcp` challenges name).
pub const SCOPE: &str = crate::app::SCOPE;
/// Largest body accepted by the OAuth endpoints.
const BODY_LIMIT: usize = 16 * 1024;

/// The store's notion of now (Unix seconds): the system clock plus an offset tests can move.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    offset: Arc<AtomicI64>,
}

impl Clock {
    pub fn system() -> Clock {
        Clock::default()
    }
    pub fn now(&self) -> i64 {
        let secs = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        secs + self.offset.load(Ordering::Relaxed)
    }
    /// Moves this clock (and every clone of it) forward.
    pub fn advance(&self, secs: i64) {
        self.offset.fetch_add(secs, Ordering::Relaxed);
    }
}

/// The OAuth settings, read once from [`OAuthSettings`].
#[derive(Clone, Debug)]
pub struct Settings {
    pub code_ttl: i64,
    pub access_ttl: i64,
    pub refresh_ttl: i64,
    pub max_clients: usize,
    pub max_grants_per_user: usize,
    pub metadata_documents: bool,
    pub metadata_allow_http: bool,
    pub accept_coda_tokens: bool,
}

/// How long the authorize page's form stays usable (seconds).
pub const PAGE_TTL: i64 = 600;

pub struct OAuth {
    pub settings: Settings,
    keys: Keys,
    store: Arc<Store>,
    pub clock: Clock,
    cimd: cimd::Fetcher,
    /// Lower-cased loginIds from ALLOWED_USERS; None admits every Coda user.
    allowed: Option<HashSet<String>>,
    /// Registrations per IPv4 address or IPv6 /64 (OAUTH_REGISTER_RATE_LIMIT_PER_MIN).
    pub register_limit: crate::ratelimit::RateLimiter,
}

impl std::fmt::Debug for OAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OAuth")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl OAuth {
    /// The OAuth server for `config` (present only when sign-in is on). With `shared`
    /// (REDIS_URL) the store is in Redis and OAUTH_ENCRYPTION_KEY must be set (every replica
    /// opens what the others sealed); otherwise opens (and creates or migrates) the database and,
    /// without `OAUTH_ENCRYPTION_KEY`, reads or generates the key file beside it.
    /// `allowed_users` is ALLOWED_USERS; `max_keys` is RATE_LIMIT_MAX_KEYS. Call it on the
    /// runtime (the Redis store waits on it from the blocking pool).
    pub fn from_settings(
        config: &OAuthSettings,
        allowed_users: &[String],
        max_keys: usize,
        clock: Clock,
        shared: Option<&crate::shared::Shared>,
    ) -> anyhow::Result<Arc<OAuth>> {
        let db_path = config.db_path.as_path();
        let secs = |ttl: std::time::Duration| i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX);
        let (store, key_text) = match shared {
            Some(shared) => {
                let key = config.encryption_key.clone().ok_or_else(|| {
                    anyhow::anyhow!("OAUTH_ENCRYPTION_KEY is required with REDIS_URL")
                })?;
                let runtime = tokio::runtime::Handle::current();
                let store =
                    store::RedisStore::new(shared.clone(), runtime, secs(config.refresh_token_ttl));
                tracing::info!("OAuth store in Redis (REDIS_URL)");
                (Store::Redis(store), key)
            }
            None => {
                let store = Store::open(db_path).map_err(|e| {
                    anyhow::anyhow!("cannot open OAUTH_DB_PATH {:?}: {e}", config.db_path)
                })?;
                let key = match &config.encryption_key {
                    Some(key) => key.clone(),
                    None => keyfile::load_or_create(db_path)?,
                };
                tracing::info!(path = %config.db_path.display(), "OAuth store in SQLite");
                (store, key)
            }
        };
        let key = crypto::parse_key(key_text.expose())
            .map_err(|e| anyhow::anyhow!("OAUTH_ENCRYPTION_KEY {e}"))?;
        let settings = Settings {
            code_ttl: secs(config.code_ttl),
            access_ttl: secs(config.access_token_ttl),
            refresh_ttl: secs(config.refresh_token_ttl),
            max_clients: config.max_clients,
            max_grants_per_user: config.max_grants_per_user,
            metadata_documents: config.client_metadata_documents,
            metadata_allow_http: config.client_metadata_allow_http,
            accept_coda_tokens: config.accept_coda_tokens,
        };
        let allowed: HashSet<String> = allowed_users
            .iter()
            .map(|u| u.trim().to_ascii_lowercase())
            .filter(|u| !u.is_empty())
            .collect();
        tracing::info!("OAuth sign-in enabled");
        let store = Arc::new(store);
        spawn_purger(Arc::downgrade(&store), clock.clone());
        Ok(Arc::new(OAuth {
            cimd: cimd::Fetcher::new(settings.metadata_allow_http)?,
            settings,
            keys: Keys::new(&key),
            store,
            clock,
            allowed: (!allowed.is_empty()).then_some(allowed),
            register_limit: crate::ratelimit::RateLimiter::new(
                config.register_rate_limit_per_min,
                std::time::Duration::from_secs(60),
                max_keys,
            ),
        }))
    }

    /// Runs a store operation on the blocking pool.
    async fn db<T, F>(&self, op: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.store.clone();
        match tokio::task::spawn_blocking(move || op(&store)).await {
            Ok(result) => result,
            Err(e) => Err(StoreError::Io(std::io::Error::other(e.to_string()))),
        }
    }

    /// The store itself (tests).
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn allows(&self, subject: &str) -> bool {
        self.allowed
            .as_ref()
            .is_none_or(|a| a.contains(&subject.to_ascii_lowercase()))
    }

    fn seal_coda_token(&self, token: &Secret) -> Vec<u8> {
        self.keys
            .seal(Purpose::CodaToken, token.expose().as_bytes())
    }

    fn open_coda_token(&self, sealed: &[u8]) -> Option<Secret> {
        let plain = self.keys.open(Purpose::CodaToken, sealed)?;
        String::from_utf8(plain).ok().map(Secret::new)
    }
}

/// Every [`PURGE_EVERY`], drops expired rows (writes purge too; this covers quiet periods).
/// Ends when the store is gone.
fn spawn_purger(store: std::sync::Weak<Store>, clock: Clock) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PURGE_EVERY);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(store) = store.upgrade() else { return };
            let now = clock.now();
            let result = tokio::task::spawn_blocking(move || store.purge(now)).await;
            if let Ok(Err(e)) = result {
                tracing::warn!(error = %e, "OAuth store purge failed");
            }
        }
    });
}

const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// What a bearer token on `/mcp` turned out to be (see [`OAuth::resolve_bearer`]).
#[derive(Debug)]
pub struct Issued {
    /// Fingerprint of the access token (what audit events name).
    pub fingerprint: String,
    /// The grant the access token belongs to.
    pub grant_id: String,
}

/// The `/mcp` hooks: how a bearer token is resolved before the Coda check, and what a Coda
/// refusal of a resolved token ends.
impl OAuth {
    /// A gateway-issued access token is looked up (expiry, revocation, audience ==
    /// `{base}/mcp`) and swapped for the Coda token it was granted with, which the caller then
    /// checks like a pasted one (cache, whoami, allow-list). Any other token is passed on
    /// unchanged, unless `OAUTH_ACCEPT_CODA_TOKENS=false`.
    pub async fn resolve_bearer(
        &self,
        token: Secret,
        base: &str,
    ) -> Result<(Secret, Option<Issued>), Refusal> {
        if !token.expose().starts_with(ACCESS_PREFIX) {
            return if self.settings.accept_coda_tokens {
                Ok((token, None))
            } else {
                Err(Refusal::InvalidToken)
            };
        }
        let hash = crypto::token_hash(token.expose());
        let now = self.clock.now();
        let row = match self.db(move |s| s.access(now, &hash)).await {
            Ok(row) => row,
            Err(StoreError::Shared(e)) => {
                tracing::warn!(error = %e, "the OAuth store (Redis) failed while checking an access token");
                return Err(Refusal::StateUnavailable {
                    retry_after: crate::shared::RETRY_AFTER_SECS,
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "OAuth store failed while checking an access token");
                return Err(Refusal::Unavailable { retry_after: 5 });
            }
        };
        let Some(row) = row else {
            return Err(Refusal::InvalidToken);
        };
        let audience = format!("{base}/mcp");
        if row.resource != audience {
            tracing::info!(token = %token.fingerprint(), audience = %row.resource, expected = %audience, "access token for another audience refused");
            return Err(Refusal::InvalidToken);
        }
        if !self.allows(&row.subject) {
            return Err(Refusal::NotAllowed {
                subject: row.subject,
            });
        }
        let Some(coda) = self.open_coda_token(&row.coda_token) else {
            tracing::error!(grant = %row.grant_id, "stored Coda token does not open (OAUTH_ENCRYPTION_KEY changed?)");
            return Err(Refusal::InvalidToken);
        };
        Ok((
            coda,
            Some(Issued {
                fingerprint: token.fingerprint(),
                grant_id: row.grant_id,
            }),
        ))
    }

    /// When Coda refuses the Coda token behind a gateway-issued access token (the user revoked
    /// it), the grant is revoked too, so the client's refresh fails and it asks the user to sign
    /// in again instead of looping on 401. Other refusals change nothing.
    pub async fn coda_refused(&self, audit: &Audit, issued: Issued, refusal: &Refusal) {
        if *refusal != Refusal::InvalidToken {
            return;
        }
        let now = self.clock.now();
        let grant_id = issued.grant_id.clone();
        match self.db(move |s| s.revoke_grant(now, &grant_id)).await {
            Ok(Some(subject)) => audit.emit(
                Event::new(EventType::AuthFailure)
                    .identity(&subject)
                    .token_hash(Some(&issued.fingerprint))
                    .reason("oauth_grant_revoked_coda_refused")
                    .detail("grant", issued.grant_id),
            ),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "could not revoke a grant whose Coda token was refused")
            }
        }
    }
}

/// What the OAuth endpoints see of the application (extracted with axum's [`FromRef`] from the
/// router's state): the OAuth server, the audit log, and a few narrow views of the rest.
#[derive(Clone)]
pub struct OAuthState {
    /// None when OAuth is off (the routes are then not mounted).
    pub oauth: Option<Arc<OAuth>>,
    pub audit: Audit,
    app: Arc<AppState>,
}

impl FromRef<Arc<AppState>> for OAuthState {
    fn from_ref(app: &Arc<AppState>) -> OAuthState {
        OAuthState {
            oauth: app.oauth.clone(),
            audit: app.audit.clone(),
            app: app.clone(),
        }
    }
}

impl OAuthState {
    /// The per-IP guard failed authentications count against.
    pub fn ip_guard(&self) -> &Limiter {
        &self.app.ip_guard
    }

    /// The Coda token checker (None with AUTH_MODE=none).
    pub fn authenticator(&self) -> Option<&Authenticator> {
        self.app.auth.as_ref()
    }

    /// The name the authorize page shows (SERVICE_NAME).
    pub fn service_name(&self) -> &str {
        &self.app.config.service.name
    }

    /// Who sent `request`: the client's address, the request id, this deployment's base URL.
    fn requester(&self, request: &Request) -> handlers::Requester {
        handlers::Requester {
            ip: client_ip_of(&self.app, request),
            request_id: request_id_of(request),
            base: public_base(&self.app, request.headers(), peer_of(request)),
        }
    }
}

/// The OAuth routes, or an empty router when OAuth is off.
pub fn routes(state: &Arc<AppState>) -> Router<Arc<AppState>> {
    if state.oauth.is_none() {
        return Router::new();
    }
    Router::new()
        .route(
            "/oauth/register",
            post(handlers::register).options(preflight),
        )
        .route(
            "/oauth/authorize",
            get(handlers::authorize_page).post(handlers::authorize_decision),
        )
        .route("/oauth/token", post(handlers::token).options(preflight))
        .route("/oauth/revoke", post(handlers::revoke).options(preflight))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .route_layer(middleware::from_fn_with_state(
            OAuthState::from_ref(state),
            guard,
        ))
}

/// CORS preflight for browser-based clients on the JSON endpoints (no cookies are involved).
async fn preflight() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("POST"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, mcp-protocol-version"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    response
}

/// The per-IP guard over every OAuth endpoint (the same budget as discovery), plus CORS for the
/// JSON endpoints (never for the authorize page).
async fn guard(State(state): State<OAuthState>, request: Request, next: Next) -> Response {
    let who = state.requester(&request);
    let (ip, request_id) = (who.ip, who.request_id);
    let key = ip_key(ip);
    let page = request.uri().path() == "/oauth/authorize";
    let mut response = match state.ip_guard().check(&key).await {
        Ok(Decision::Allow) => next.run(request).await,
        Err(e) => {
            tracing::warn!(error = %e, request_id, "shared state (Redis) unavailable; OAuth request refused");
            let retry_after = crate::shared::RETRY_AFTER_SECS;
            let mut response = error::OAuthError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                format!("the gateway's shared state (Redis) did not answer; retry after {retry_after} s"),
            )
            .into_response();
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            response
        }
        Ok(Decision::Deny { retry_after }) => {
            let retry_after = retry_after_secs(retry_after);
            crate::metrics::METRICS
                .rate_limited
                .inc(&[("limiter", "ip")]);
            state.audit.emit(
                Event::new(EventType::RateLimited)
                    .ip(ip)
                    .request_id(&request_id)
                    .reason("oauth_per_ip"),
            );
            let mut response = error::OAuthError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "temporarily_unavailable",
                format!("too many requests from this address; retry after {retry_after} s"),
            )
            .into_response();
            if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            response
        }
    };
    if !page {
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("retry-after, x-request-id, www-authenticate"),
        );
    }
    response
}
