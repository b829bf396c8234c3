//! The composition root: the state every handler shares ([`AppState`]) and the small facts about
//! a request that both the `/mcp` edge and the OAuth endpoints need (its id, the client's
//! address, this deployment's public base URL, the scope). Neither of them owns these, so
//! neither has to import the other for them.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderMap};
use tokio::sync::watch;

use crate::audit::Audit;
use crate::config::{ChildScope, Config};
use crate::core::mrtr::ParkedCalls;
use crate::core::pool::Pool;
use crate::core::session::SessionStore;
use crate::core::spawner::Spawner;
use crate::edge::origin::OriginPolicy;
use crate::identity::{Authenticator, Secret};
use crate::ratelimit::Limiter;
use crate::values::TrustedProxies;

pub use crate::values::ip_key;

/// The scope this gateway asks for in challenges and grants (its only one).
pub const SCOPE: &str = "mcp";

/// Everything a handler needs, shared by all requests.
pub struct AppState {
    pub config: Config,
    pub store: Arc<SessionStore>,
    pub spawner: Spawner,
    pub origins: OriginPolicy,
    /// Turns true when the gateway starts draining.
    pub stopping: watch::Receiver<bool>,
    /// The operator's credential for a shared child.
    pub operator_credential: Option<Secret>,
    /// None when AUTH_MODE=none.
    pub auth: Option<Authenticator>,
    pub audit: Audit,
    /// Per client IP: failed authentications (and OAuth endpoint requests).
    pub ip_guard: Limiter,
    /// Per client IP: discovery documents, under their own, much higher budget, so clients
    /// that fetch metadata often never lock themselves out of authenticating.
    pub discovery_limit: Limiter,
    /// Per identity: authenticated /mcp requests.
    pub identity_limit: Limiter,
    pub proxies: TrustedProxies,
    /// The OAuth authorization server; None when OAuth sign-in is off.
    pub oauth: Option<Arc<crate::oauth::OAuth>>,
    /// POST bodies being read and parsed (MAX_CONCURRENT_BODIES).
    pub bodies: tokio::sync::Semaphore,
    /// The children serving sessionless (2026-07-28) requests, per identity.
    pub pool: Arc<Pool>,
    /// Sessionless calls waiting for the client's `inputResponses`.
    pub parked: Arc<ParkedCalls>,
    /// State shared with other replicas (REDIS_URL); None for a single gateway.
    pub shared: Option<crate::shared::Shared>,
}

/// The permits of [`AppState::bodies`].
pub fn body_permits(config: &crate::config::HttpSettings) -> tokio::sync::Semaphore {
    tokio::sync::Semaphore::new(
        config
            .max_concurrent_bodies
            .min(tokio::sync::Semaphore::MAX_PERMITS),
    )
}

impl AppState {
    pub fn scope(&self) -> ChildScope {
        self.config.children.scope
    }
}

/// The request id every response carries (`X-Request-Id`) and every error body names.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

/// The id the request-id layer gave this request (empty outside that layer).
pub fn request_id_of(request: &Request) -> String {
    request
        .extensions()
        .get::<RequestId>()
        .map(|r| r.0.clone())
        .unwrap_or_default()
}

/// The socket peer, when the server was started with connect info.
pub fn peer_of(request: &Request) -> Option<SocketAddr> {
    request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|c| c.0)
}

/// The client's address: the peer, or what a trusted proxy forwarded.
pub fn client_ip_of(state: &AppState, request: &Request) -> Option<IpAddr> {
    state.proxies.client_ip(peer_of(request), request.headers())
}

/// The externally visible base URL: PUBLIC_URL, else what the request (or a trusted proxy) says.
pub fn public_base(state: &AppState, headers: &HeaderMap, peer: Option<SocketAddr>) -> String {
    if let Some(public) = &state.config.http.public_url {
        return public.clone();
    }
    let trusted = state.proxies.peer_trusted(peer);
    let forwarded = |name: &str| {
        trusted
            .then(|| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.split(',').next().unwrap_or("").trim().to_string())
            })
            .flatten()
    };
    let scheme = match forwarded("x-forwarded-proto").as_deref() {
        Some("https") => "https",
        _ => "http",
    };
    let host = forwarded("x-forwarded-host")
        .or_else(|| {
            headers
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        })
        .filter(|h| {
            !h.is_empty()
                && h.len() <= 255
                && h.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
        })
        .unwrap_or_else(|| "localhost".into());
    format!("{scheme}://{}", host.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// Every `.rs` file under `dir`, recursively.
    fn sources(dir: &Path) -> Vec<PathBuf> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir).expect("source directory readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                files.extend(sources(&path));
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
        files
    }

    fn mentions(path: &Path, module: &str) -> bool {
        std::fs::read_to_string(path)
            .expect("source file readable")
            .contains(module)
    }

    fn mentions_edge(path: &Path) -> bool {
        mentions(path, "crate::edge")
    }

    /// OAuth and the `/mcp` edge meet only here, in the composition root: nothing under
    /// `src/oauth/` may reach into the edge (it would make the two a cycle again).
    #[test]
    fn oauth_imports_nothing_from_the_edge() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let files = sources(&src.join("oauth"));
        assert!(files.len() > 5, "found only {files:?}");
        let offenders: Vec<_> = files.iter().filter(|f| mentions_edge(f)).collect();
        assert!(
            offenders.is_empty(),
            "these import crate::edge: {offenders:?}"
        );
    }

    /// The settings are read by every part (the core included), so they depend on none of them:
    /// shared value types live in `values.rs`.
    #[test]
    fn settings_import_no_part() {
        let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config.rs");
        assert!(!mentions_edge(&config), "src/config.rs imports crate::edge");
        // A path into the part (`crate::oauth::…`, `use crate::oauth;`), not prose naming it.
        for part in ["crate::oauth", "crate::core", "crate::upstream"] {
            for path in [format!("{part}::"), format!("{part};")] {
                assert!(!mentions(&config, &path), "src/config.rs imports {part}");
            }
        }
    }
}
