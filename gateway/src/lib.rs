//! coda-mcp-gateway: MCP Streamable HTTP in front of a supervised stdio MCP server.
//!
//! # Layout
//! - [`edge`]: axum routes, status codes, headers, SSE on the wire. Knows HTTP, not processes.
//! - [`core`]: sessions, message routing, id translation, event buffers. Knows JSON-RPC, not axum.
//! - [`upstream`]: child processes, framing, stderr, exit, process groups. Knows pipes, not HTTP.
//! - [`identity`]: who is calling; handed by the edge to the core.
//!
//! [`serve`] runs the whole gateway on a listener the caller owns, until the caller's shutdown
//! future resolves; that is what makes it easy to test and to embed.

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
use crate::core::session::{short, EndReason, Limits, SessionStore};
use crate::core::spawner::{self, Spawner};
use crate::edge::origin::OriginPolicy;
use crate::identity::cache::CacheLimits;
use crate::identity::coda::CodaClient;
use crate::identity::Authenticator;
use crate::ratelimit::RateLimiter;
use crate::values::TrustedProxies;

/// Runs the gateway on `listener` until `shutdown` resolves, then drains: GET streams end,
/// in-flight calls get SHUTDOWN_GRACE_SECS, children are ended as groups.
pub async fn serve(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with(config, listener, shutdown, || {}).await
}

/// [`serve`], calling `on_ready` once the startup checks passed (the operator token is valid,
/// the shared child answers) and requests are being served.
pub async fn serve_with(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(),
) -> anyhow::Result<()> {
    serve_with_clock(config, listener, shutdown, on_ready, oauth::Clock::system()).await
}

/// [`serve_with`] with the OAuth store's clock supplied (issue 7: tests move it forward to
/// expire codes and tokens without waiting).
pub async fn serve_with_clock(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_ready: impl FnOnce(),
    oauth_clock: oauth::Clock,
) -> anyhow::Result<()> {
    config.validate()?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let audit = Audit::start(Sink::parse(&config.audit_log), &config.service_name)
        .with_context(|| format!("cannot open AUDIT_LOG {:?}", config.audit_log))?;
    let store = SessionStore::new(
        Limits {
            idle_ttl: config.idle_ttl(),
            max_lifetime: config.max_lifetime(),
            max_sessions: config.max_sessions,
        },
        session_end_hook(audit.clone()),
    );
    let spawner = Spawner::new(&config);
    let operator_credential = config
        .coda_api_token
        .clone()
        .filter(|t| !t.expose().trim().is_empty());
    let auth = match config.auth_mode {
        AuthMode::None => {
            tracing::warn!(
                "AUTH_MODE=none: every caller is admitted without a token (loopback only)"
            );
            None
        }
        AuthMode::Coda => {
            let client = CodaClient::new(&config.coda_api_base_url, config.whoami_timeout())
                .context("cannot build the HTTP client for Coda")?;
            let authenticator = Authenticator::new(
                client,
                CacheLimits {
                    positive_ttl: Duration::from_secs(config.auth_cache_ttl_secs),
                    negative_ttl: Duration::from_secs(config.auth_negative_cache_ttl_secs),
                    max_entries: config.auth_cache_max_entries,
                },
                &config.allowed_users,
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
    // OAuth authorization server (issue 7): on unless OAUTH=off or AUTH_MODE=none (issue 12).
    let oauth = oauth::OAuth::from_config(&config, oauth_clock)?;
    let minute = Duration::from_secs(60);
    let state = Arc::new(AppState {
        oauth,
        origins: OriginPolicy::from_config(&config),
        store: store.clone(),
        spawner,
        stopping: stop_rx.clone(),
        operator_credential,
        auth,
        audit: audit.clone(),
        ip_guard: RateLimiter::new(
            config.auth_rate_limit_per_min,
            minute,
            config.rate_limit_max_keys,
        ),
        discovery_limit: RateLimiter::new(
            config.discovery_rate_limit_per_min,
            minute,
            config.rate_limit_max_keys,
        ),
        identity_limit: RateLimiter::new(
            config.identity_rate_limit_per_min,
            minute,
            config.rate_limit_max_keys,
        ),
        proxies: TrustedProxies::parse(&config.trusted_proxies),
        bodies: app::body_permits(&config),
        config,
    });
    if state.config.child_scope == ChildScope::Shared {
        start_shared_child(&state).await?;
    }
    tokio::spawn(store.clone().run_reaper(stop_rx.clone()));

    let app = edge::app(state.clone());
    // Our own accept loop (issue 11): header, idle and body timeouts and a connection cap, so slow
    // clients cannot hold every file descriptor.
    let server = server::run(
        app,
        listener,
        server::ConnLimits::from_config(&state.config),
        stop_rx.clone(),
    );
    // Ready before the server task runs: connections wait in the backlog, and nothing can be
    // audited on stdout ahead of the ready line.
    on_ready();
    let mut server = tokio::spawn(server);
    tokio::select! {
        result = &mut server => {
            result.context("the HTTP server task failed")?;
        }
        _ = shutdown => {
            tracing::info!("shutting down: no new connections; in-flight calls get the grace period");
            let _ = stop_tx.send(true);
            let grace = Duration::from_secs(state.config.shutdown_grace_secs);
            if tokio::time::timeout(grace, &mut server).await.is_err() {
                tracing::warn!("grace period over; ending remaining calls");
                server.abort();
            }
        }
    }
    let _ = stop_tx.send(true);
    state.store.end_all(EndReason::Shutdown).await;
    state.spawner.end_shared().await;
    audit.flush(Duration::from_secs(2)).await;
    tracing::info!("stopped");
    Ok(())
}

/// Audit events for sessions that end (CHILD_EXIT is written where the exit is seen).
fn session_end_hook(audit: Audit) -> crate::core::session::EndHook {
    Arc::new(move |session, reason| {
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
    let timeout = Duration::from_secs(state.config.child_start_timeout_secs);
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
