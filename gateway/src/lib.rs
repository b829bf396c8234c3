//! coda-mcp-gateway: MCP Streamable HTTP in front of a supervised stdio MCP server.
//!
//! # Layout
//! - [`edge`]: axum routes, status codes, headers, SSE on the wire. Knows HTTP, not processes.
//! - [`core`]: sessions, message routing, id translation, event buffers. Knows JSON-RPC, not axum.
//! - [`upstream`]: child processes, framing, stderr, exit, process groups. Knows pipes, not HTTP.
//! - [`identity`]: who is calling; handed by the edge to the core.
//!
//! [`serve`] runs the whole gateway on a listener the caller owns, with validated settings
//! ([`config::Flags::validate`]), until the caller's shutdown future resolves; tests inject a
//! clock and a readiness callback through [`Hooks`]. That is what makes it easy to test and to
//! embed.

pub mod app;
pub mod audit;
pub mod config;
pub mod core;
pub mod edge;
#[doc(hidden)]
pub mod fuzzing;
pub mod identity;
pub mod jsonrpc;
pub mod metrics;
pub mod oauth;
pub mod protocol;
pub mod ratelimit;
pub mod server;
pub mod shared;
pub mod timefmt;
pub mod upstream;
pub mod values;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::app::AppState;
use crate::audit::{Audit, Event, EventType, Sink};
use crate::config::{AuthMode, ChildScope, Config};
use crate::core::mrtr::ParkedCalls;
use crate::core::pool::Pool;
use crate::core::session::{short, EndReason, Limits, SessionStore};
use crate::core::spawner::{self, Spawner};
use crate::edge::origin::OriginPolicy;
use crate::identity::cache::CacheLimits;
use crate::identity::coda::CodaClient;
use crate::identity::Authenticator;
use crate::ratelimit::{Limiter, RateLimiter};

/// What tests and embedders inject into [`serve`]; [`Hooks::default`] is production.
pub struct Hooks {
    /// The OAuth store's clock: tests move it forward to expire codes and tokens without waiting.
    pub oauth_clock: oauth::Clock,
    /// Called once the startup checks passed (the operator token is valid, the shared child
    /// answers) and requests are being served.
    pub on_ready: Option<Box<dyn FnOnce() + Send>>,
}

impl Default for Hooks {
    fn default() -> Hooks {
        Hooks {
            oauth_clock: oauth::Clock::system(),
            on_ready: None,
        }
    }
}

impl Hooks {
    /// These hooks, calling `on_ready` once requests are being served.
    pub fn on_ready(mut self, on_ready: impl FnOnce() + Send + 'static) -> Hooks {
        self.on_ready = Some(Box::new(on_ready));
        self
    }

    /// These hooks, with the OAuth store reading `clock`.
    pub fn oauth_clock(mut self, clock: oauth::Clock) -> Hooks {
        self.oauth_clock = clock;
        self
    }
}

/// Runs the gateway on `listener` until `shutdown` resolves, then drains: GET streams end,
/// in-flight calls get SHUTDOWN_GRACE_SECS, children are ended as groups. `config` comes from
/// [`config::Flags::validate`].
pub async fn serve(
    listener: TcpListener,
    config: Config,
    hooks: Hooks,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let audit = Audit::start(config.service.audit_log.clone(), &config.service.name).with_context(
        || match &config.service.audit_log {
            Sink::File(path) => format!("cannot open AUDIT_LOG {:?}", path.display().to_string()),
            other => format!("cannot open AUDIT_LOG ({other:?})"),
        },
    )?;
    // Replicas: ended sessions leave the session directory (the receiver runs below).
    let (ended, ended_rx) = shared::directory::Ended::channel();
    let store = SessionStore::new(
        Limits {
            idle_ttl: config.sessions.idle_ttl,
            max_lifetime: config.sessions.max_lifetime,
            max_sessions: config.sessions.max_sessions,
        },
        session_end_hook(audit.clone(), config.replicas.is_some().then_some(ended)),
    );
    let spawner = Spawner::new(&config.children, &config.sse);
    let operator_credential = config.auth.operator_token.clone();
    let auth = match config.auth.mode {
        AuthMode::None => {
            tracing::warn!(
                "AUTH_MODE=none: every caller is admitted without a token (loopback only)"
            );
            None
        }
        AuthMode::Coda => {
            let settings = &config.auth;
            let client =
                CodaClient::new(settings.coda_api_base_url.as_str(), settings.whoami_timeout)
                    .context("cannot build the HTTP client for Coda")?;
            let authenticator = Authenticator::new(
                client,
                CacheLimits {
                    positive_ttl: settings.cache_ttl,
                    negative_ttl: settings.negative_cache_ttl,
                    max_entries: settings.cache_max_entries,
                },
                &settings.allowed_users,
            );
            let token = operator_credential
                .as_ref()
                .context("CODA_API_TOKEN is required")?;
            let operator = authenticator
                .check_operator_token(token)
                .await
                .map_err(|e| anyhow::anyhow!(e))?;
            tracing::info!(operator = %operator.login_id, token = %token.fingerprint(), "CODA_API_TOKEN validated with Coda");
            Some(authenticator)
        }
    };
    // Replicas: Redis must answer at startup (later trouble is reported by /ready).
    let shared = match &config.replicas {
        Some(settings) => Some(
            shared::Shared::connect(settings)
                .await
                .context("REDIS_URL: Redis did not answer")?,
        ),
        None => None,
    };
    let forwarder = match &shared {
        Some(shared) => edge::forward::Forwarder::new(&config, shared)
            .context("cannot build the HTTP client for forwarding between replicas")?,
        None => None,
    };
    // The OAuth authorization server: on unless OAUTH=off or AUTH_MODE=none; its store is in
    // Redis when replicas share state.
    let oauth = match &config.oauth {
        Some(settings) => Some(oauth::OAuth::from_settings(
            settings,
            &config.auth.allowed_users,
            config.rate_limits.max_keys,
            hooks.oauth_clock,
            shared.as_ref(),
        )?),
        None => None,
    };
    let minute = Duration::from_secs(60);
    let limits = config.rate_limits;
    // With Redis, the budgets and the token cache are the deployment's, not this process's.
    let limiter = |name, budget| match &shared {
        Some(shared) => Limiter::Shared(shared::ratelimit::SharedLimiter::new(
            shared.clone(),
            name,
            budget,
            minute,
        )),
        None => Limiter::Local(RateLimiter::new(budget, minute, limits.max_keys)),
    };
    let mut auth = auth;
    if let (Some(auth), Some(shared)) = (auth.as_mut(), &shared) {
        auth.share_cache(shared.clone());
    }
    let state = Arc::new(AppState {
        oauth,
        origins: OriginPolicy::new(&config.http),
        store: store.clone(),
        spawner,
        stopping: stop_rx.clone(),
        operator_credential,
        auth,
        audit: audit.clone(),
        ip_guard: limiter("ip", limits.failed_auth_per_min),
        discovery_limit: limiter("discovery", limits.discovery_per_min),
        identity_limit: limiter("identity", limits.identity_per_min),
        proxies: config.http.trusted_proxies.clone(),
        bodies: app::body_permits(&config.http),
        pool: Pool::new(
            config.modern.clone(),
            config.children.scope,
            config.children.start_timeout,
            audit.clone(),
        ),
        shared,
        forwarder,
        parked: Arc::new(ParkedCalls::new(
            config.modern.mrtr_state_ttl,
            config.modern.mrtr_max_pending,
            config.replicas.as_ref().map(|r| r.secret.expose()),
        )),
        config,
    });
    if state.config.children.scope == ChildScope::Shared {
        start_shared_child(&state).await?;
    }
    tokio::spawn(store.clone().run_reaper(stop_rx.clone()));
    tokio::spawn(state.pool.clone().run_reaper(stop_rx.clone()));
    tokio::spawn(sweep_parked(state.parked.clone(), stop_rx.clone()));
    if let Some(forwarder) = &state.forwarder {
        let directory = forwarder.directory.clone();
        tokio::spawn(directory.run(store.clone(), ended_rx, stop_rx.clone()));
    }

    let app = edge::app(state.clone());
    // Our own accept loop: header, idle and body timeouts and a connection cap, so slow clients
    // cannot hold every file descriptor.
    let server = server::run(
        app,
        listener,
        server::ConnLimits::new(&state.config.http),
        stop_rx.clone(),
    );
    // Ready before the server task runs: connections wait in the backlog, and nothing can be
    // audited on stdout ahead of the ready line.
    if let Some(on_ready) = hooks.on_ready {
        on_ready();
    }
    let mut server = tokio::spawn(server);
    tokio::select! {
        result = &mut server => {
            result.context("the HTTP server task failed")?;
        }
        _ = shutdown => {
            tracing::info!("shutting down: no new connections; in-flight calls get the grace period");
            let _ = stop_tx.send(true);
            let grace = state.config.service.shutdown_grace;
            if tokio::time::timeout(grace, &mut server).await.is_err() {
                tracing::warn!("grace period over; ending remaining calls");
                server.abort();
            }
        }
    }
    let _ = stop_tx.send(true);
    state.store.end_all(EndReason::Shutdown).await;
    state.parked.sweep_all();
    state.pool.end_all().await;
    state.spawner.end_shared().await;
    audit.flush(Duration::from_secs(2)).await;
    tracing::info!("stopped");
    Ok(())
}

/// Lets go of MRTR calls whose client never came back (MRTR_STATE_TTL_SECS).
async fn sweep_parked(parked: Arc<ParkedCalls>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => { parked.sweep(); }
            _ = stop.changed() => return,
        }
    }
}

/// Audit events for sessions that end (CHILD_EXIT is written where the exit is seen).
fn session_end_hook(
    audit: Audit,
    directory: Option<shared::directory::Ended>,
) -> crate::core::session::EndHook {
    Arc::new(move |session, reason| {
        if let Some(directory) = &directory {
            directory.announce(&session.id);
        }
        let kind = match reason {
            EndReason::Deleted => EventType::SessionDeleted,
            EndReason::IdleExpired | EndReason::LifetimeExpired | EndReason::Evicted => {
                EventType::SessionExpired
            }
            EndReason::ChildExited | EndReason::Shutdown => return,
        };
        audit.emit(
            Event::new(kind)
                .identity(&session.identity.subject)
                .token_hash(session.identity.token_hash.as_deref())
                .session(short(&session.id))
                .reason(reason.as_str()),
        );
    })
}

/// Shared scope: start and initialize the child before listening, and fail fast if it cannot.
async fn start_shared_child(state: &Arc<AppState>) -> anyhow::Result<()> {
    let shared = state
        .spawner
        .shared(state.operator_credential.as_ref())
        .await
        .context("the shared MCP server (MCP_COMMAND) did not start")?;
    let timeout = state.config.children.start_timeout;
    let tools = spawner::request(
        &shared.router,
        &shared.channel,
        "tools/list",
        serde_json::json!({}),
        timeout,
    )
    .await;
    match tools {
        Ok(result) => {
            let names: Vec<&str> = result
                .get("tools")
                .and_then(|t| t.as_array())
                .map(|tools| {
                    tools
                        .iter()
                        .filter_map(|t| t.get("name").and_then(|n| n.as_str()))
                        .collect()
                })
                .unwrap_or_default();
            tracing::info!(tools = ?names, "shared MCP server ready");
        }
        Err(e) => tracing::warn!(error = %e, "the shared MCP server did not list its tools"),
    }
    Ok(())
}
