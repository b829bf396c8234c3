//! `mock-coda`: an offline fake of the Coda REST API v1 for tests and demos.
//!
//! It serves Coda's `/whoami` (the gateway's token check) and the core data API
//! (docs, pages, tables, columns, rows, mutation status, page export) under
//! `http://127.0.0.1:PORT/apis/v1`, with in-memory state seeded from a fixture, plus
//! a control API under `/_mock` for fault injection and call counting.
//!
//! # Default token table
//!
//! Used when no tokens are configured ([`default_tokens`]):
//!
//! | token | loginId | name | scoped |
//! |---|---|---|---|
//! | `mock-token-alice-0001` | `alice@example.com` | Alice Example | no |
//! | `mock-token-bob-0002` | `bob@example.com` | Bob Example | no |
//! | `mock-token-operator-0003` | `operator@example.com` | Gateway Operator | no |
//! | `mock-token-alice-scoped-0004` | `alice@example.com` | Alice Example | yes |
//!
//! Any other token, or none, gets Coda's 401
//! `{"statusCode":401,"statusMessage":"Unauthorized","message":"Unauthorized"}`.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use mock_coda::{Fault, FaultKind, MockCodaConfig};
//!
//! let coda = mock_coda::start(MockCodaConfig::default(), "127.0.0.1:0".parse().unwrap()).await?;
//! let whoami = format!("{}/whoami", coda.base_url());
//! coda.add_fault(Fault::new(FaultKind::RateLimit { retry_after: 2 }).route("/apis/v1/whoami").times(1));
//! // … point the code under test at `coda.base_url()` …
//! assert_eq!(coda.calls("/apis/v1/whoami"), 0);
//! coda.shutdown().await;
//! # let _ = whoami; Ok(()) }
//! ```
//!
//! # Layout
//!
//! - `tokens`: the token table and bearer parsing.
//! - `faults`: fault rules and how a request consumes them.
//! - `calls`: call counts and the request log.
//! - `edge`: the middlewares applying counting, faults and auth.
//! - `data`: documents, fixtures, pagination, Coda's JSON shapes.
//! - `routes`: the HTTP handlers, one file per resource, plus `/_mock` control.

mod api_error;
mod calls;
mod data;
mod edge;
mod error;
mod faults;
mod routes;
mod state;
mod time;
mod tokens;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use calls::{CallCounts, RequestRecord};
pub use data::fixture::{Fixture, DEFAULT_FIXTURE_JSON};
pub use error::Error;
pub use faults::{Fault, FaultId, FaultKind, FaultStatus};
pub use routes::{router, BODY_LIMIT_BYTES};
pub use state::MockState;
pub use tokens::{
    default_tokens, load_tokens_file, parse_token_flag, parse_tokens_json, Identity,
    DEFAULT_WORKSPACE_ID,
};

/// How long [`MockCoda::shutdown`] lets in-flight requests (say, under a latency
/// fault) finish before it aborts the server.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What a mock instance starts with.
#[derive(Debug, Clone)]
pub struct MockCodaConfig {
    /// Token → user table for `/whoami` and auth. Defaults to [`default_tokens`].
    pub tokens: Vec<(String, Identity)>,
    /// Seed documents; `None` means the embedded default fixture.
    pub fixture: Option<Fixture>,
    /// Faults active from the first request.
    pub faults: Vec<Fault>,
}

impl Default for MockCodaConfig {
    fn default() -> Self {
        MockCodaConfig {
            tokens: default_tokens(),
            fixture: None,
            faults: Vec::new(),
        }
    }
}

/// A running mock, serving on a loopback port until shut down or dropped.
#[derive(Debug)]
pub struct MockCoda {
    state: Arc<MockState>,
    local_addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// Binds `addr` (use `127.0.0.1:0` for a free port) and serves the mock in the
/// background.
pub async fn start(config: MockCodaConfig, addr: SocketAddr) -> std::io::Result<MockCoda> {
    let listener = TcpListener::bind(addr).await?;
    let local_addr = listener.local_addr()?;
    let state = Arc::new(
        MockState::new(config, &base_url_for(local_addr))
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?,
    );
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    // Dropping the sender (with the handle) also resolves the receiver: no leaked server.
    let task = tokio::spawn(serve(listener, state.clone(), async {
        let _ = shutdown_rx.await;
    }));
    Ok(MockCoda {
        state,
        local_addr,
        shutdown: Some(shutdown_tx),
        task: Some(task),
    })
}

/// Serves `state` on an already bound listener until `shutdown` resolves.
/// The binary uses this; build `state` with [`base_url_for`] of the listener's address.
pub async fn serve(
    listener: TcpListener,
    state: Arc<MockState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

/// The API base URL for a bound address: `http://IP:PORT/apis/v1`. An unspecified
/// bind address (`0.0.0.0`) is reported as `127.0.0.1`, which is reachable.
pub fn base_url_for(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        ip if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/apis/v1", SocketAddr::new(ip, addr.port()))
}

impl MockCoda {
    /// `http://127.0.0.1:PORT/apis/v1`: the value for `CODA_API_BASE_URL`.
    pub fn base_url(&self) -> String {
        self.state.base_url().to_owned()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The shared state, for everything not wrapped below (tokens, request log, reset).
    pub fn state(&self) -> &Arc<MockState> {
        &self.state
    }

    /// Requests received whose path starts with `route_prefix`, e.g. `/apis/v1/whoami`.
    pub fn calls(&self, route_prefix: &str) -> u64 {
        self.state.calls(route_prefix)
    }

    pub fn total_calls(&self) -> u64 {
        self.state.total_calls()
    }

    pub fn add_fault(&self, fault: Fault) -> FaultId {
        self.state.add_fault(fault)
    }

    pub fn clear_faults(&self) {
        self.state.clear_faults();
    }

    /// Stops accepting, lets in-flight requests finish (for at most a few seconds), and
    /// waits for the server task.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}
