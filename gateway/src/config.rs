//! Every setting of the gateway: one flag and one environment variable each, in two stages.
//!
//! [`Flags`] is what clap parses: flat, one field per flag, plain numbers and strings.
//! [`Flags::validate`] refuses nonsense with the setting's name and produces a [`Config`] of
//! typed values (`Duration`s, parsed URLs and CIDR lists, `Secret`s) grouped by the part of the
//! gateway that uses them; each part takes its group.
//!
//! The environment names are a contract that deployment scripts and docs rely on
//! (`HOST`, `PORT`, `MCP_COMMAND`, `PUBLIC_URL`, `SERVICE_NAME`, `SERVICE_VERSION`).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::audit::Sink;
use crate::identity::Secret;
use crate::values::{Cidr, TrustedProxies};

/// Which children serve which sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ChildScope {
    /// One child per session: server-to-client requests, subscriptions and log levels stay per session.
    Session,
    /// One child for every session, started at startup; ids are remapped so sessions never collide.
    Shared,
}

/// Which era a child speaks to modern (2026-07-28) clients in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ChildEra {
    /// Ask the first child with `server/discover`; modern if it answers with a modern version.
    Auto,
    /// Initialize every pool child (2025-x) and translate.
    Legacy,
    /// Speak 2026-07-28 to every pool child directly.
    Modern,
}

/// How callers prove who they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AuthMode {
    /// Bearer Coda API tokens, checked with Coda's whoami.
    Coda,
    /// Nobody is checked: loopback development and conformance runs only.
    None,
}

/// Whether the gateway serves OAuth sign-in (on unless turned off).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OAuthMode {
    /// Sign-in is served whenever AUTH_MODE=coda (with AUTH_MODE=none nobody signs in).
    On,
    /// No OAuth endpoints and no authorization server metadata: bearer Coda tokens only.
    Off,
}

// Stage 1: the flags as clap parses them (each also an environment variable). A plain comment,
// not a doc comment, so that clap's help text stays exactly as it was.
// Debug is derived, but every secret inside is a `Secret`, whose Debug shows only a fingerprint.
#[derive(Clone, Debug, Parser)]
#[command(
    name = "coda-mcp-gateway",
    version,
    about = "Serve a stdio MCP server over MCP Streamable HTTP (POST/GET/DELETE /mcp)"
)]
pub struct Flags {
    /// Address to bind. Loopback by default; the Docker image binds all interfaces.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// TCP port to listen on (0 picks a free port; the chosen URL is printed on stdout).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,

    /// Command line of the stdio MCP server, split on whitespace (quotes honoured) and started without a shell.
    #[arg(long, env = "MCP_COMMAND")]
    pub mcp_command: String,

    /// Run MCP_COMMAND through `/bin/sh -c` instead of splitting it ourselves.
    #[arg(long, env = "MCP_COMMAND_SHELL", default_value_t = false)]
    pub mcp_command_shell: bool,

    /// `session`: one child per session (default). `shared`: one child for all sessions.
    #[arg(long, env = "CHILD_SCOPE", value_enum, default_value = "session")]
    pub child_scope: ChildScope,

    /// Environment variable through which a child receives its caller's Coda token.
    #[arg(long, env = "CHILD_TOKEN_ENV", default_value = "CODA_API_TOKEN")]
    pub child_token_env: String,

    /// Names of the gateway's environment variables that children also get (comma-separated).
    /// Children start from an empty environment plus PATH, HOME, LANG, LC_*, TZ and these.
    #[arg(long, env = "CHILD_ENV_PASSTHROUGH", value_delimiter = ',')]
    pub child_env_passthrough: Vec<String>,

    /// Variables set for every child, as comma-separated `NAME=VALUE` pairs (values cannot
    /// contain commas), e.g. `CODA_BASE_URL=https://coda.io/apis/v1,LOG_LEVEL=warn`.
    #[arg(long, env = "CHILD_ENV")]
    pub child_env: Option<String>,

    /// Numeric user id children run as; only when the gateway runs as root (needs CHILD_GID).
    #[arg(long, env = "CHILD_UID")]
    pub child_uid: Option<u32>,

    /// Numeric group id children run as (with CHILD_UID; supplementary groups are dropped).
    #[arg(long, env = "CHILD_GID")]
    pub child_gid: Option<u32>,

    /// Externally visible base URL (scheme://host[:port]); the MCP URL is this plus `/mcp`.
    #[arg(long, env = "PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Service name reported by /health and in audit events.
    #[arg(long, env = "SERVICE_NAME", default_value = "coda-mcp")]
    pub service_name: String,

    /// Service version reported by /health.
    #[arg(long, env = "SERVICE_VERSION", default_value = env!("CARGO_PKG_VERSION"))]
    pub service_version: String,

    /// Idle time after which a session and its child are ended (seconds).
    #[arg(long, env = "SESSION_IDLE_TTL_SECS", default_value_t = 1800)]
    pub session_idle_ttl_secs: u64,

    /// Absolute lifetime of a session, however busy (seconds).
    #[arg(long, env = "SESSION_MAX_LIFETIME_SECS", default_value_t = 86_400)]
    pub session_max_lifetime_secs: u64,

    /// Most sessions at once; over it `initialize` gets 503 with Retry-After.
    #[arg(long, env = "MAX_SESSIONS", default_value_t = 1000)]
    pub max_sessions: usize,

    /// Most sessions of one identity (with auth on); a new one ends that identity's least recently
    /// active idle session, or gets 503 when all are busy. Clients that never DELETE stay bounded.
    #[arg(long, env = "MAX_SESSIONS_PER_IDENTITY", default_value_t = 32)]
    pub max_sessions_per_identity: usize,

    /// Most child processes at once (session scope: one per session).
    #[arg(long, env = "MAX_CHILDREN", default_value_t = 256)]
    pub max_children: usize,

    /// Sessionless (2026-07-28) requests: most children one identity's pool grows to under load.
    #[arg(long, env = "POOL_MAX_CHILDREN_PER_IDENTITY", default_value_t = 4)]
    pub pool_max_children_per_identity: usize,

    /// Sessionless requests in flight on one pool child before the pool starts another.
    #[arg(long, env = "POOL_CALLS_PER_CHILD", default_value_t = 32)]
    pub pool_calls_per_child: usize,

    /// A pool child with nothing in flight for this long is ended (seconds).
    #[arg(long, env = "POOL_IDLE_TTL_SECS", default_value_t = 300)]
    pub pool_idle_ttl_secs: u64,

    /// The era pool children are spoken to in: auto (probe with server/discover), legacy, modern.
    #[arg(long, env = "CHILD_ERA", value_enum, default_value_t = ChildEra::Auto)]
    pub child_era: ChildEra,

    /// How long a call waiting for `inputResponses` (MRTR) is kept for the client's retry (seconds).
    #[arg(long, env = "MRTR_STATE_TTL_SECS", default_value_t = 300)]
    pub mrtr_state_ttl_secs: u64,

    /// Calls waiting for `inputResponses` one identity may have at once; the oldest is cancelled.
    #[arg(long, env = "MRTR_MAX_PENDING_PER_IDENTITY", default_value_t = 16)]
    pub mrtr_max_pending_per_identity: usize,

    /// After a child's first request to the client, how long the gateway waits for more before
    /// it answers `input_required` with all of them (milliseconds).
    #[arg(long, env = "MRTR_GATHER_MS", default_value_t = 25)]
    pub mrtr_gather_ms: u64,

    /// `ttlMs` put on cacheable results (discover, lists, resources/read) the child gave none for.
    #[arg(long, env = "CACHE_TTL_MS", default_value_t = 0)]
    pub cache_ttl_ms: u64,

    /// Subscription streams (`subscriptions/listen`) open at once per identity.
    #[arg(long, env = "MAX_LISTEN_STREAMS_PER_IDENTITY", default_value_t = 8)]
    pub max_listen_streams_per_identity: usize,

    /// Most requests in flight on one session; beyond it 503 with Retry-After.
    #[arg(long, env = "MAX_INFLIGHT_PER_SESSION", default_value_t = 256)]
    pub max_inflight_per_session: usize,

    /// Largest accepted POST body in bytes (413 beyond it).
    #[arg(long, env = "MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_body_bytes: usize,

    /// Time a client has to send a request's headers, counted from the connection's start or from
    /// the end of its previous request; slower connections are closed (seconds).
    #[arg(long, env = "HEADER_READ_TIMEOUT_SECS", default_value_t = 10)]
    pub header_read_timeout_secs: u64,

    /// Time a kept-alive connection may sit between requests before the gateway closes it (seconds).
    #[arg(long, env = "HTTP_IDLE_TIMEOUT_SECS", default_value_t = 10)]
    pub http_idle_timeout_secs: u64,

    /// Time a client has to send a whole request body, from the end of its headers; the
    /// connection is closed beyond it (seconds).
    #[arg(long, env = "BODY_READ_TIMEOUT_SECS", default_value_t = 60)]
    pub body_read_timeout_secs: u64,

    /// Most open client connections; beyond it new ones are accepted and closed at once. Never
    /// more than half the process's open-file limit, so children and Coda calls keep theirs.
    #[arg(long, env = "MAX_CONNECTIONS", default_value_t = 1024)]
    pub max_connections: usize,

    /// Most members of one 2025-03-26 batch; a larger batch is refused whole (413, -32600)
    /// before its members are parsed.
    #[arg(long, env = "MAX_BATCH_MEMBERS", default_value_t = 256)]
    pub max_batch_members: usize,

    /// Most POST bodies being read and parsed at once; beyond it 503 with Retry-After, so
    /// concurrent large bodies cannot take the memory.
    #[arg(long, env = "MAX_CONCURRENT_BODIES", default_value_t = 64)]
    pub max_concurrent_bodies: usize,

    /// Longest line the child may write on stdout in bytes; beyond it the child is treated as broken.
    #[arg(long, env = "MAX_LINE_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_line_bytes: usize,

    /// Longest time one call may take before it is answered with an error (seconds).
    #[arg(long, env = "CALL_TIMEOUT_SECS", default_value_t = 300)]
    pub call_timeout_secs: u64,

    /// Interval between SSE comment keep-alives (seconds).
    #[arg(long, env = "SSE_KEEPALIVE_SECS", default_value_t = 15)]
    pub sse_keepalive_secs: u64,

    /// Events kept per SSE stream for `Last-Event-ID` replay.
    #[arg(long, env = "SSE_REPLAY_EVENTS", default_value_t = 256)]
    pub sse_replay_events: usize,

    /// Bytes of events kept per SSE stream for replay (the newest event always stays).
    #[arg(long, env = "SSE_REPLAY_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub sse_replay_bytes: usize,

    /// Bytes of finished request streams one session keeps for `Last-Event-ID` (oldest dropped first).
    #[arg(long, env = "SSE_REPLAY_SESSION_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub sse_replay_session_bytes: usize,

    /// Bytes of finished request streams the whole gateway keeps for `Last-Event-ID` (oldest
    /// dropped first, whichever session they belong to).
    #[arg(long, env = "SSE_REPLAY_TOTAL_BYTES", default_value_t = 256 * 1024 * 1024)]
    pub sse_replay_total_bytes: usize,

    /// How long a request stream stays resumable after its response was written to a connection
    /// (seconds); then its buffer is dropped.
    #[arg(long, env = "SSE_RESUME_WINDOW_SECS", default_value_t = 60)]
    pub sse_resume_window_secs: u64,

    /// Messages for the standalone GET stream kept while no GET stream is open.
    #[arg(long, env = "SSE_PENDING_EVENTS", default_value_t = 256)]
    pub sse_pending_events: usize,

    /// Origins allowed besides loopback ones and PUBLIC_URL's (comma-separated, e.g. `https://claude.ai`).
    #[arg(long, env = "ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Time a child gets between SIGTERM and SIGKILL (milliseconds).
    #[arg(long, env = "CHILD_KILL_GRACE_MS", default_value_t = 2000)]
    pub child_kill_grace_ms: u64,

    /// Time a new child gets to answer `initialize`, or the era probe's `server/discover` (seconds);
    /// the shared child is checked at startup.
    #[arg(long, env = "CHILD_START_TIMEOUT_SECS", default_value_t = 30)]
    pub child_start_timeout_secs: u64,

    /// Child stderr lines logged per second per child; the rest are counted and dropped.
    #[arg(long, env = "CHILD_STDERR_LINES_PER_SEC", default_value_t = 50)]
    pub child_stderr_lines_per_sec: u32,

    /// Time in-flight calls get to finish on SIGTERM/SIGINT before children are ended (seconds).
    #[arg(long, env = "SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    pub shutdown_grace_secs: u64,

    /// `coda`: every /mcp request needs a Coda API token as bearer token (default).
    /// `none`: no authentication (development and conformance runs; loopback HOST only).
    #[arg(long, env = "AUTH_MODE", value_enum, default_value = "coda")]
    pub auth_mode: AuthMode,

    /// Coda's API root; whoami is `$CODA_API_BASE_URL/whoami`. Point it at mock-coda for demos and tests.
    #[arg(
        long,
        env = "CODA_API_BASE_URL",
        default_value = "https://coda.io/apis/v1"
    )]
    pub coda_api_base_url: String,

    /// The operator's Coda API token: checked at startup; the shared child's credential.
    #[arg(long, env = "CODA_API_TOKEN", hide_env_values = true)]
    pub coda_api_token: Option<Secret>,

    /// A file holding CODA_API_TOKEN (Docker secrets); a trailing newline is ignored.
    #[arg(long, env = "CODA_API_TOKEN_FILE")]
    pub coda_api_token_file: Option<PathBuf>,

    /// Longest wait for Coda's whoami (milliseconds); slower counts as "Coda unavailable" (503).
    #[arg(long, env = "WHOAMI_TIMEOUT_MS", default_value_t = 5000)]
    pub whoami_timeout_ms: u64,

    /// How long a token Coda accepted is trusted without asking again (seconds).
    #[arg(long, env = "AUTH_CACHE_TTL_SECS", default_value_t = 60)]
    pub auth_cache_ttl_secs: u64,

    /// How long a token Coda refused is refused without asking again (seconds).
    #[arg(long, env = "AUTH_NEGATIVE_CACHE_TTL_SECS", default_value_t = 10)]
    pub auth_negative_cache_ttl_secs: u64,

    /// Most token checks kept in the cache.
    #[arg(long, env = "AUTH_CACHE_MAX_ENTRIES", default_value_t = 10_000)]
    pub auth_cache_max_entries: usize,

    /// Coda loginIds (emails) allowed to use the gateway, comma-separated; empty admits any Coda user.
    #[arg(long, env = "ALLOWED_USERS", value_delimiter = ',')]
    pub allowed_users: Vec<String>,

    /// Per client IP, per minute: failed authentications (and OAuth endpoint requests). A token
    /// the gateway already accepted is never refused because of other tokens' failures.
    #[arg(long, env = "AUTH_RATE_LIMIT_PER_MIN", default_value_t = 10)]
    pub auth_rate_limit_per_min: u32,

    /// Per client IP, per minute: requests for the (static, cacheable) discovery documents, a
    /// budget of their own so that reading them never locks anyone out of /mcp.
    #[arg(long, env = "DISCOVERY_RATE_LIMIT_PER_MIN", default_value_t = 600)]
    pub discovery_rate_limit_per_min: u32,

    /// How old Coda's last answer may be before /ready asks Coda again. While Coda does not
    /// answer, /ready asks at most every 5 s, backing off to once a minute.
    #[arg(long, env = "READY_CODA_FRESHNESS_SECS", default_value_t = 30)]
    pub ready_coda_freshness_secs: u64,

    /// Per identity, per minute: authenticated requests to /mcp.
    #[arg(long, env = "IDENTITY_RATE_LIMIT_PER_MIN", default_value_t = 1200)]
    pub identity_rate_limit_per_min: u32,

    /// Most keys (IPs, identities) each rate limiter remembers; idle keys are evicted first.
    #[arg(long, env = "RATE_LIMIT_MAX_KEYS", default_value_t = 10_000)]
    pub rate_limit_max_keys: usize,

    /// Proxies whose X-Forwarded-For / X-Forwarded-Proto / X-Forwarded-Host are believed
    /// (comma-separated IPs or CIDRs, e.g. `127.0.0.1,172.16.0.0/12`).
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,

    /// Where audit events go: `stdout`, `stderr`, a file path (appended), or `off`.
    #[arg(long, env = "AUDIT_LOG", default_value = "stdout")]
    pub audit_log: String,

    /// Log format: `json` (production) or `text` (development).
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: String,

    // --- OAuth 2.1 authorization server (`crate::oauth`). On unless OAUTH=off. ---
    /// `on` (default): OAuth sign-in for hosted clients whenever AUTH_MODE=coda. `off`: no OAuth
    /// endpoints and no authorization server metadata.
    #[arg(long, env = "OAUTH", value_enum, default_value = "on")]
    pub oauth: OAuthMode,

    /// 32 bytes (64 hex digits or base64) that encrypt stored Coda tokens (`openssl rand -hex 32`).
    /// Unset: a key is generated at first start and kept beside OAUTH_DB_PATH (`<db>.key`, 0600).
    #[arg(long, env = "OAUTH_ENCRYPTION_KEY", hide_env_values = true)]
    pub oauth_encryption_key: Option<Secret>,

    /// A file holding OAUTH_ENCRYPTION_KEY (Docker secrets); a trailing newline is ignored.
    #[arg(long, env = "OAUTH_ENCRYPTION_KEY_FILE")]
    pub oauth_encryption_key_file: Option<PathBuf>,

    /// Shared state for several replicas (`redis://[:password@]host:port/db`, `rediss://` for TLS;
    /// Valkey works too). Unset: every replica keeps its own state in memory and SQLite.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<Secret>,

    /// Prefix of every Redis key this deployment writes, so deployments can share one Redis.
    #[arg(long, env = "REDIS_PREFIX", default_value = "coda-mcp-gateway")]
    pub redis_prefix: String,

    /// How the other replicas reach this one (`http://10.0.0.5:8080`), for requests of sessions it
    /// owns. Needed with REDIS_URL.
    #[arg(long, env = "REPLICA_URL")]
    pub replica_url: Option<String>,

    /// The secret replicas prove to each other when they forward requests (at least 32 characters).
    #[arg(long, env = "REPLICA_SECRET", hide_env_values = true)]
    pub replica_secret: Option<Secret>,

    /// How long a session's directory entry (session id -> owning replica) lives in Redis unless
    /// its owner refreshes it (every third of this); a replica killed without cleanup stops
    /// owning its sessions after this at most (seconds, 3 to 3600).
    #[arg(long, env = "REPLICA_DIRECTORY_TTL_SECS", default_value_t = 30)]
    pub replica_directory_ttl_secs: u64,

    /// How long a replica waits to connect to the owner of a session it forwards to; past it the
    /// owner is taken as gone and the client gets 404 (milliseconds, 100 to 60000).
    #[arg(long, env = "REPLICA_CONNECT_TIMEOUT_MS", default_value_t = 2000)]
    pub replica_connect_timeout_ms: u64,

    /// SQLite file for OAuth clients, grants and token hashes (created on first run).
    #[arg(
        long,
        env = "OAUTH_DB_PATH",
        default_value = "./coda-mcp-gateway.sqlite3"
    )]
    pub oauth_db_path: String,

    /// Whether raw Coda API tokens still work as bearer tokens on /mcp besides OAuth access tokens.
    #[arg(long, env = "OAUTH_ACCEPT_CODA_TOKENS", default_value_t = true, action = clap::ArgAction::Set)]
    pub oauth_accept_coda_tokens: bool,

    /// Lifetime of an OAuth access token (seconds).
    #[arg(long, env = "OAUTH_ACCESS_TOKEN_TTL_SECS", default_value_t = 3600)]
    pub oauth_access_token_ttl_secs: u64,

    /// Lifetime of an OAuth refresh token (seconds); each refresh issues a new one.
    #[arg(long, env = "OAUTH_REFRESH_TOKEN_TTL_SECS", default_value_t = 30 * 86_400)]
    pub oauth_refresh_token_ttl_secs: u64,

    /// Lifetime of an authorization code (seconds).
    #[arg(long, env = "OAUTH_CODE_TTL_SECS", default_value_t = 60)]
    pub oauth_code_ttl_secs: u64,

    /// Most OAuth clients kept (registered or from metadata documents); unused ones without
    /// grants make room for new ones.
    #[arg(long, env = "OAUTH_MAX_CLIENTS", default_value_t = 1000)]
    pub oauth_max_clients: usize,

    /// Dynamic client registrations per minute from one IPv4 address or one IPv6 /64.
    #[arg(long, env = "OAUTH_REGISTER_RATE_LIMIT_PER_MIN", default_value_t = 10)]
    pub oauth_register_rate_limit_per_min: u32,

    /// Most live OAuth grants (sign-ins) per user; a new one revokes the oldest.
    #[arg(long, env = "OAUTH_MAX_GRANTS_PER_USER", default_value_t = 20)]
    pub oauth_max_grants_per_user: usize,

    /// Accept https URLs as client_id (client ID metadata documents, MCP 2025-11-25).
    #[arg(long, env = "OAUTH_CLIENT_METADATA_DOCUMENTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub oauth_client_metadata_documents: bool,

    /// Testing only: also fetch client ID metadata documents over http and from loopback or
    /// private addresses (otherwise refused: SSRF).
    #[arg(long, env = "OAUTH_CLIENT_METADATA_ALLOW_HTTP", default_value_t = false, action = clap::ArgAction::Set)]
    pub oauth_client_metadata_allow_http: bool,
}

/// A setting that makes no sense; reported at startup with the setting's name.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting {name}: {reason}")]
pub struct ConfigError {
    pub name: &'static str,
    pub reason: String,
}

fn bad(name: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        name,
        reason: reason.into(),
    }
}

impl Flags {
    /// Refuses nonsense (zero TTLs, empty command, malformed URLs) with the offending setting's
    /// name; otherwise the typed settings.
    pub fn validate(&self) -> Result<Config, ConfigError> {
        self.check()?;
        self.to_config()
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.mcp_command.trim().is_empty() {
            return Err(bad("MCP_COMMAND", "must name the stdio MCP server to run"));
        }
        if !self.mcp_command_shell {
            split_command(&self.mcp_command).map_err(|e| bad("MCP_COMMAND", e))?;
        }
        let positive = [
            ("SESSION_IDLE_TTL_SECS", self.session_idle_ttl_secs),
            ("SESSION_MAX_LIFETIME_SECS", self.session_max_lifetime_secs),
            ("MAX_SESSIONS", self.max_sessions as u64),
            ("MAX_CHILDREN", self.max_children as u64),
            (
                "MAX_SESSIONS_PER_IDENTITY",
                self.max_sessions_per_identity as u64,
            ),
            (
                "MAX_INFLIGHT_PER_SESSION",
                self.max_inflight_per_session as u64,
            ),
            ("MAX_BODY_BYTES", self.max_body_bytes as u64),
            ("MAX_BATCH_MEMBERS", self.max_batch_members as u64),
            ("MAX_CONCURRENT_BODIES", self.max_concurrent_bodies as u64),
            ("MAX_LINE_BYTES", self.max_line_bytes as u64),
            ("HEADER_READ_TIMEOUT_SECS", self.header_read_timeout_secs),
            ("HTTP_IDLE_TIMEOUT_SECS", self.http_idle_timeout_secs),
            ("BODY_READ_TIMEOUT_SECS", self.body_read_timeout_secs),
            ("MAX_CONNECTIONS", self.max_connections as u64),
            (
                "SSE_REPLAY_SESSION_BYTES",
                self.sse_replay_session_bytes as u64,
            ),
            ("SSE_REPLAY_TOTAL_BYTES", self.sse_replay_total_bytes as u64),
            ("SSE_RESUME_WINDOW_SECS", self.sse_resume_window_secs),
            ("CALL_TIMEOUT_SECS", self.call_timeout_secs),
            ("SSE_KEEPALIVE_SECS", self.sse_keepalive_secs),
            ("SSE_REPLAY_EVENTS", self.sse_replay_events as u64),
            ("SSE_PENDING_EVENTS", self.sse_pending_events as u64),
            ("SSE_REPLAY_BYTES", self.sse_replay_bytes as u64),
            ("CHILD_START_TIMEOUT_SECS", self.child_start_timeout_secs),
            (
                "POOL_MAX_CHILDREN_PER_IDENTITY",
                self.pool_max_children_per_identity as u64,
            ),
            ("POOL_CALLS_PER_CHILD", self.pool_calls_per_child as u64),
            ("POOL_IDLE_TTL_SECS", self.pool_idle_ttl_secs),
            ("MRTR_STATE_TTL_SECS", self.mrtr_state_ttl_secs),
            (
                "MRTR_MAX_PENDING_PER_IDENTITY",
                self.mrtr_max_pending_per_identity as u64,
            ),
            (
                "MAX_LISTEN_STREAMS_PER_IDENTITY",
                self.max_listen_streams_per_identity as u64,
            ),
            ("READY_CODA_FRESHNESS_SECS", self.ready_coda_freshness_secs),
            (
                "CHILD_STDERR_LINES_PER_SEC",
                u64::from(self.child_stderr_lines_per_sec),
            ),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(bad(name, "must be greater than zero"));
            }
        }
        if self.session_max_lifetime_secs < self.session_idle_ttl_secs {
            return Err(bad(
                "SESSION_MAX_LIFETIME_SECS",
                "must be at least SESSION_IDLE_TTL_SECS",
            ));
        }
        if let Some(url) = &self.public_url {
            parse_origin(url).ok_or_else(|| {
                bad(
                    "PUBLIC_URL",
                    "must look like https://host[:port] (no path, query or fragment)",
                )
            })?;
        }
        for origin in &self.allowed_origins {
            parse_origin(origin)
                .ok_or_else(|| bad("ALLOWED_ORIGINS", format!("not an origin: {origin:?}")))?;
        }
        if self.auth_negative_cache_ttl_secs > self.auth_cache_ttl_secs {
            return Err(bad(
                "AUTH_NEGATIVE_CACHE_TTL_SECS",
                "must not exceed AUTH_CACHE_TTL_SECS",
            ));
        }
        self.coda_api_base_url()?;
        for proxy in &self.trusted_proxies {
            Cidr::parse(proxy)
                .ok_or_else(|| bad("TRUSTED_PROXIES", format!("not an IP or CIDR: {proxy:?}")))?;
        }
        match self.auth_mode {
            AuthMode::None if !self.host.is_loopback() => {
                return Err(bad(
                    "AUTH_MODE",
                    "`none` is only allowed with a loopback HOST",
                ));
            }
            AuthMode::Coda => {
                let token = self.coda_api_token.as_ref().map_or("", Secret::expose);
                if token.trim().is_empty() {
                    return Err(bad(
                        "CODA_API_TOKEN",
                        "is required (the operator's Coda API token, from https://coda.io/account)",
                    ));
                }
                if self.child_scope == ChildScope::Shared
                    && self.allowed_users.iter().all(|u| u.trim().is_empty())
                {
                    return Err(bad(
                        "ALLOWED_USERS",
                        "is required with CHILD_SCOPE=shared: otherwise any Coda user would act with the operator's token",
                    ));
                }
            }
            AuthMode::None => {}
        }
        // Without PUBLIC_URL the metadata and challenges name whatever `Host`
        // a request sent, so anyone who can reach a public listener (or poison a shared cache in
        // front of it) can point clients' sign-in at their own server. Loopback stays convenient.
        if self.public_url.is_none() && !self.host.is_loopback() {
            return Err(bad(
                "PUBLIC_URL",
                "is required when HOST is not a loopback address (e.g. PUBLIC_URL=https://coda.example.com): otherwise discovery metadata would follow each request's Host header",
            ));
        }
        if !matches!(self.log_format.as_str(), "json" | "text") {
            return Err(bad("LOG_FORMAT", "must be `json` or `text`"));
        }
        self.validate_children()?;
        self.validate_oauth()
    }

    /// Whether the OAuth endpoints are served: unless OAUTH=off, whenever callers sign in with
    /// Coda tokens (without OAUTH_ENCRYPTION_KEY a key file is generated).
    pub fn oauth_enabled(&self) -> bool {
        self.oauth == OAuthMode::On && self.auth_mode == AuthMode::Coda
    }

    /// The operator-set OAuth key, if any (blank counts as unset).
    pub fn oauth_key(&self) -> Option<&Secret> {
        self.oauth_encryption_key
            .as_ref()
            .filter(|k| !k.expose().trim().is_empty())
    }

    /// Replaces `CODA_API_TOKEN_FILE` and `OAUTH_ENCRYPTION_KEY_FILE` by the secrets they hold
    /// (the Docker-secrets convention). Setting a secret and its file at once is refused.
    pub fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        read_secret_file(
            &mut self.coda_api_token,
            self.coda_api_token_file.as_deref(),
            "CODA_API_TOKEN",
            "CODA_API_TOKEN_FILE",
        )?;
        read_secret_file(
            &mut self.oauth_encryption_key,
            self.oauth_encryption_key_file.as_deref(),
            "OAUTH_ENCRYPTION_KEY",
            "OAUTH_ENCRYPTION_KEY_FILE",
        )
    }

    /// `CHILD_ENV` as pairs, in order; malformed entries are refused with the setting's name.
    pub fn child_env_pairs(&self) -> Result<Vec<(String, String)>, ConfigError> {
        let Some(text) = self.child_env.as_deref() else {
            return Ok(Vec::new());
        };
        let mut pairs = Vec::new();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (name, value) = entry.split_once('=').ok_or_else(|| {
                bad(
                    "CHILD_ENV",
                    format!("entry {:?} is not NAME=VALUE", entry_name(entry)),
                )
            })?;
            let name = name.trim();
            if !is_env_name(name) {
                return Err(bad(
                    "CHILD_ENV",
                    format!("{:?} is not a variable name", entry_name(name)),
                ));
            }
            pairs.push((name.to_string(), value.to_string()));
        }
        Ok(pairs)
    }

    /// The names CHILD_ENV_PASSTHROUGH lists (blank entries ignored).
    pub fn child_env_passthrough_names(&self) -> impl Iterator<Item = &str> {
        self.child_env_passthrough
            .iter()
            .map(|n| n.trim())
            .filter(|n| !n.is_empty())
    }

    /// What children may be handed: never the gateway's own secrets, never a second copy of the
    /// caller's token variable, and another uid only from root.
    fn validate_children(&self) -> Result<(), ConfigError> {
        if !is_env_name(&self.child_token_env) {
            return Err(bad("CHILD_TOKEN_ENV", "must be a variable name"));
        }
        let reserved = |name: &str| name == self.child_token_env || GATEWAY_SECRETS.contains(&name);
        for name in self.child_env_passthrough_names() {
            if !is_env_name(name) {
                return Err(bad(
                    "CHILD_ENV_PASSTHROUGH",
                    format!("{:?} is not a variable name", entry_name(name)),
                ));
            }
            if reserved(name) {
                return Err(bad(
                    "CHILD_ENV_PASSTHROUGH",
                    format!("must not name {name}: the gateway's secrets and the caller's token variable are never passed through"),
                ));
            }
        }
        for (name, _) in self.child_env_pairs()? {
            if reserved(&name) {
                return Err(bad(
                    "CHILD_ENV",
                    format!("must not set {name}: the gateway's secrets and the caller's token variable are not settable"),
                ));
            }
        }
        match (self.child_uid, self.child_gid) {
            (None, None) => {}
            (Some(_), None) | (None, Some(_)) => {
                return Err(bad(
                    "CHILD_UID",
                    "CHILD_UID and CHILD_GID go together (a child with only one of them changed would keep root's)",
                ));
            }
            (Some(_), Some(_)) => {
                // SAFETY: geteuid(2) has no preconditions and cannot fail.
                if unsafe { libc::geteuid() } != 0 {
                    return Err(bad(
                        "CHILD_UID",
                        "needs the gateway to run as root (only root can start children as another user)",
                    ));
                }
            }
        }
        Ok(())
    }

    fn validate_oauth(&self) -> Result<(), ConfigError> {
        if let Some(key) = self.oauth_key() {
            crate::values::parse_key(key.expose()).map_err(|e| bad("OAUTH_ENCRYPTION_KEY", e))?;
            if self.auth_mode != AuthMode::Coda {
                return Err(bad(
                    "OAUTH_ENCRYPTION_KEY",
                    "OAuth needs AUTH_MODE=coda (sign-in checks Coda tokens)",
                ));
            }
        }
        if !self.oauth_enabled() {
            return Ok(());
        }
        // Replicas share the OAuth store: each must open the Coda tokens the others sealed, so
        // the key is the operator's, never one generated per replica.
        if self.redis_url.is_some() && self.oauth_key().is_none() {
            return Err(bad(
                "OAUTH_ENCRYPTION_KEY",
                "is required with REDIS_URL (or OAUTH_ENCRYPTION_KEY_FILE): all replicas share it",
            ));
        }
        if self.oauth_db_path.trim().is_empty() {
            return Err(bad("OAUTH_DB_PATH", "must name a file"));
        }
        let positive = [
            (
                "OAUTH_ACCESS_TOKEN_TTL_SECS",
                self.oauth_access_token_ttl_secs,
            ),
            (
                "OAUTH_REFRESH_TOKEN_TTL_SECS",
                self.oauth_refresh_token_ttl_secs,
            ),
            ("OAUTH_CODE_TTL_SECS", self.oauth_code_ttl_secs),
            ("OAUTH_MAX_CLIENTS", self.oauth_max_clients as u64),
            (
                "OAUTH_REGISTER_RATE_LIMIT_PER_MIN",
                u64::from(self.oauth_register_rate_limit_per_min),
            ),
            (
                "OAUTH_MAX_GRANTS_PER_USER",
                self.oauth_max_grants_per_user as u64,
            ),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(bad(name, "must be greater than zero"));
            }
        }
        if self.oauth_code_ttl_secs > 600 {
            return Err(bad(
                "OAUTH_CODE_TTL_SECS",
                "must be at most 600 (codes are short-lived)",
            ));
        }
        if self.oauth_client_metadata_allow_http && !self.host.is_loopback() {
            return Err(bad(
                "OAUTH_CLIENT_METADATA_ALLOW_HTTP",
                "is for tests only and needs a loopback HOST",
            ));
        }
        if self.oauth_refresh_token_ttl_secs < self.oauth_access_token_ttl_secs {
            return Err(bad(
                "OAUTH_REFRESH_TOKEN_TTL_SECS",
                "must be at least OAUTH_ACCESS_TOKEN_TTL_SECS",
            ));
        }
        Ok(())
    }

    /// Flags for tests and embedding: defaults everywhere but the command, and no
    /// authentication (so they validate without a Coda token).
    pub fn with_command(command: &str) -> Flags {
        Flags::parse_from([
            "coda-mcp-gateway",
            "--mcp-command",
            command,
            "--auth-mode",
            "none",
        ])
    }
    /// CODA_API_BASE_URL, parsed: an http(s) URL.
    fn coda_api_base_url(&self) -> Result<url::Url, ConfigError> {
        let wrong = || {
            bad(
                "CODA_API_BASE_URL",
                "must be an http(s) URL such as https://coda.io/apis/v1",
            )
        };
        let url = url::Url::parse(self.coda_api_base_url.trim()).map_err(|_| wrong())?;
        if !matches!(url.scheme(), "http" | "https") || !url.has_host() {
            return Err(wrong());
        }
        Ok(url)
    }

    /// Stage 2, after [`Flags::check`]: the typed, grouped settings.
    fn to_config(&self) -> Result<Config, ConfigError> {
        let secs = Duration::from_secs;
        let argv = if self.mcp_command_shell {
            vec![self.mcp_command.clone()]
        } else {
            split_command(&self.mcp_command).map_err(|e| bad("MCP_COMMAND", e))?
        };
        let log_format = match self.log_format.as_str() {
            "json" => LogFormat::Json,
            _ => LogFormat::Text,
        };
        let allowed_users: Vec<String> = self
            .allowed_users
            .iter()
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect();
        let oauth = self.oauth_enabled().then(|| OAuthSettings {
            encryption_key: self.oauth_key().cloned(),
            db_path: PathBuf::from(&self.oauth_db_path),
            accept_coda_tokens: self.oauth_accept_coda_tokens,
            access_token_ttl: secs(self.oauth_access_token_ttl_secs),
            refresh_token_ttl: secs(self.oauth_refresh_token_ttl_secs),
            code_ttl: secs(self.oauth_code_ttl_secs),
            max_clients: self.oauth_max_clients,
            register_rate_limit_per_min: self.oauth_register_rate_limit_per_min,
            max_grants_per_user: self.oauth_max_grants_per_user,
            client_metadata_documents: self.oauth_client_metadata_documents,
            client_metadata_allow_http: self.oauth_client_metadata_allow_http,
        });
        Ok(Config {
            service: ServiceSettings {
                name: self.service_name.clone(),
                version: self.service_version.clone(),
                audit_log: Sink::parse(&self.audit_log),
                log_format,
                shutdown_grace: secs(self.shutdown_grace_secs),
            },
            http: HttpSettings {
                listen: SocketAddr::new(self.host, self.port),
                public_url: self.public_url.as_deref().and_then(parse_origin),
                allowed_origins: self
                    .allowed_origins
                    .iter()
                    .filter_map(|o| parse_origin(o))
                    .collect(),
                trusted_proxies: TrustedProxies::parse(&self.trusted_proxies),
                header_read_timeout: secs(self.header_read_timeout_secs),
                idle_timeout: secs(self.http_idle_timeout_secs),
                body_read_timeout: secs(self.body_read_timeout_secs),
                max_connections: self.max_connections,
                max_body_bytes: self.max_body_bytes,
                max_batch_members: self.max_batch_members,
                max_concurrent_bodies: self.max_concurrent_bodies,
            },
            sessions: SessionSettings {
                idle_ttl: secs(self.session_idle_ttl_secs),
                max_lifetime: secs(self.session_max_lifetime_secs),
                max_sessions: self.max_sessions,
                max_per_identity: self.max_sessions_per_identity,
                max_inflight: self.max_inflight_per_session,
                call_timeout: secs(self.call_timeout_secs),
            },
            children: ChildSettings {
                argv,
                shell: self.mcp_command_shell,
                scope: self.child_scope,
                token_env: self.child_token_env.clone(),
                env_passthrough: self
                    .child_env_passthrough_names()
                    .map(str::to_string)
                    .collect(),
                env: self.child_env_pairs()?,
                uid: self.child_uid,
                gid: self.child_gid,
                max_children: self.max_children,
                max_line_bytes: self.max_line_bytes,
                kill_grace: Duration::from_millis(self.child_kill_grace_ms),
                start_timeout: secs(self.child_start_timeout_secs),
                stderr_lines_per_sec: self.child_stderr_lines_per_sec,
            },
            modern: ModernSettings {
                pool_max_per_identity: self.pool_max_children_per_identity,
                pool_calls_per_child: self.pool_calls_per_child,
                pool_idle_ttl: secs(self.pool_idle_ttl_secs),
                child_era: self.child_era,
                mrtr_state_ttl: secs(self.mrtr_state_ttl_secs),
                mrtr_max_pending: self.mrtr_max_pending_per_identity,
                mrtr_gather: Duration::from_millis(self.mrtr_gather_ms),
                cache_ttl_ms: self.cache_ttl_ms,
                max_listen_streams: self.max_listen_streams_per_identity,
            },
            sse: SseSettings {
                keepalive: secs(self.sse_keepalive_secs),
                replay_events: self.sse_replay_events,
                replay_bytes: self.sse_replay_bytes,
                replay_session_bytes: self.sse_replay_session_bytes,
                replay_total_bytes: self.sse_replay_total_bytes,
                resume_window: secs(self.sse_resume_window_secs),
                pending_events: self.sse_pending_events,
            },
            auth: AuthSettings {
                mode: self.auth_mode,
                coda_api_base_url: self.coda_api_base_url()?,
                operator_token: self
                    .coda_api_token
                    .clone()
                    .filter(|t| !t.expose().trim().is_empty()),
                whoami_timeout: Duration::from_millis(self.whoami_timeout_ms),
                cache_ttl: secs(self.auth_cache_ttl_secs),
                negative_cache_ttl: secs(self.auth_negative_cache_ttl_secs),
                cache_max_entries: self.auth_cache_max_entries,
                allowed_users,
                ready_coda_freshness: secs(self.ready_coda_freshness_secs),
            },
            rate_limits: RateLimitSettings {
                failed_auth_per_min: self.auth_rate_limit_per_min,
                discovery_per_min: self.discovery_rate_limit_per_min,
                identity_per_min: self.identity_rate_limit_per_min,
                max_keys: self.rate_limit_max_keys,
            },
            oauth,
            replicas: self.replica_settings()?,
            forwarding: self.forwarding_settings()?,
        })
    }

    /// How replicas keep the session directory and forward to a session's owner (used only with
    /// REDIS_URL; checked always, so a typo is caught before it matters).
    fn forwarding_settings(&self) -> Result<ForwardingSettings, ConfigError> {
        if !(3..=3600).contains(&self.replica_directory_ttl_secs) {
            return Err(bad("REPLICA_DIRECTORY_TTL_SECS", "must be 3 to 3600"));
        }
        if !(100..=60_000).contains(&self.replica_connect_timeout_ms) {
            return Err(bad("REPLICA_CONNECT_TIMEOUT_MS", "must be 100 to 60000"));
        }
        Ok(ForwardingSettings {
            directory_ttl: Duration::from_secs(self.replica_directory_ttl_secs),
            connect_timeout: Duration::from_millis(self.replica_connect_timeout_ms),
        })
    }

    /// REDIS_URL and what goes with it: REPLICA_URL (http or https, no path) and a REPLICA_SECRET
    /// of at least 32 characters; none of them without REDIS_URL.
    fn replica_settings(&self) -> Result<Option<ReplicaSettings>, ConfigError> {
        let Some(redis_url) = &self.redis_url else {
            if self.replica_url.is_some() || self.replica_secret.is_some() {
                return Err(bad(
                    "REDIS_URL",
                    "is required with REPLICA_URL or REPLICA_SECRET (replicas share state in Redis)",
                ));
            }
            return Ok(None);
        };
        let parsed = url::Url::parse(redis_url.expose())
            .map_err(|_| bad("REDIS_URL", "must be a redis:// or rediss:// URL"))?;
        if !matches!(parsed.scheme(), "redis" | "rediss") {
            return Err(bad("REDIS_URL", "must be a redis:// or rediss:// URL"));
        }
        let prefix = self.redis_prefix.trim();
        if prefix.is_empty() || prefix.contains(char::is_whitespace) {
            return Err(bad(
                "REDIS_PREFIX",
                "must be a non-empty word without spaces",
            ));
        }
        let replica_url = self.replica_url.as_deref().ok_or_else(|| {
            bad(
                "REPLICA_URL",
                "is required with REDIS_URL: how the other replicas reach this one",
            )
        })?;
        let parsed = url::Url::parse(replica_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| bad("REPLICA_URL", "must be an http:// or https:// URL"))?;
        if parsed.path() != "/" || parsed.query().is_some() {
            return Err(bad(
                "REPLICA_URL",
                "must be a base URL without a path (the gateway adds /mcp)",
            ));
        }
        let secret = self
            .replica_secret
            .clone()
            .ok_or_else(|| bad("REPLICA_SECRET", "is required with REDIS_URL"))?;
        if secret.expose().len() < 32 {
            return Err(bad("REPLICA_SECRET", "must be at least 32 characters"));
        }
        Ok(Some(ReplicaSettings {
            redis_url: redis_url.clone(),
            prefix: prefix.to_string(),
            replica_url: replica_url.trim_end_matches('/').to_string(),
            secret,
        }))
    }
}

/// Stage 2: the validated settings, typed and grouped by the part of the gateway that uses them.
// Debug is derived; the secrets inside are `Secret`s, whose Debug shows only a fingerprint.
#[derive(Clone, Debug)]
pub struct Config {
    pub service: ServiceSettings,
    pub http: HttpSettings,
    pub sessions: SessionSettings,
    pub children: ChildSettings,
    pub modern: ModernSettings,
    pub sse: SseSettings,
    pub auth: AuthSettings,
    pub rate_limits: RateLimitSettings,
    /// None when sign-in is off (`OAUTH=off`, or `AUTH_MODE=none`).
    pub oauth: Option<OAuthSettings>,
    /// None without REDIS_URL: the embedded default, one replica.
    pub replicas: Option<ReplicaSettings>,
    /// The session directory and forwarding between replicas (with REDIS_URL).
    pub forwarding: ForwardingSettings,
}

/// REPLICA_DIRECTORY_TTL_SECS and REPLICA_CONNECT_TIMEOUT_MS.
#[derive(Clone, Copy, Debug)]
pub struct ForwardingSettings {
    /// REPLICA_DIRECTORY_TTL_SECS.
    pub directory_ttl: Duration,
    /// REPLICA_CONNECT_TIMEOUT_MS.
    pub connect_timeout: Duration,
}

/// Several replicas sharing state in Redis (REDIS_URL).
#[derive(Clone, Debug)]
pub struct ReplicaSettings {
    /// REDIS_URL (may hold a password).
    pub redis_url: Secret,
    /// REDIS_PREFIX.
    pub prefix: String,
    /// REPLICA_URL, normalized without a trailing slash.
    pub replica_url: String,
    /// REPLICA_SECRET.
    pub secret: Secret,
}

impl Config {
    /// Settings for tests and embedding: defaults everywhere but the command, and no
    /// authentication.
    pub fn with_command(command: &str) -> Config {
        Flags::with_command(command)
            .validate()
            .expect("the default settings are valid")
    }
}

/// `LOG_FORMAT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Text,
}

/// The process as a whole: what it calls itself, where its records go, how it stops.
#[derive(Clone, Debug)]
pub struct ServiceSettings {
    /// SERVICE_NAME.
    pub name: String,
    /// SERVICE_VERSION.
    pub version: String,
    /// AUDIT_LOG.
    pub audit_log: Sink,
    /// LOG_FORMAT.
    pub log_format: LogFormat,
    /// SHUTDOWN_GRACE_SECS.
    pub shutdown_grace: Duration,
}

/// The HTTP side: the listener, the addresses and origins believed, connection and body limits.
#[derive(Clone, Debug)]
pub struct HttpSettings {
    /// HOST and PORT.
    pub listen: SocketAddr,
    /// PUBLIC_URL as a normalized origin (`scheme://host[:port]`).
    pub public_url: Option<String>,
    /// ALLOWED_ORIGINS, normalized.
    pub allowed_origins: Vec<String>,
    /// TRUSTED_PROXIES.
    pub trusted_proxies: TrustedProxies,
    /// HEADER_READ_TIMEOUT_SECS.
    pub header_read_timeout: Duration,
    /// HTTP_IDLE_TIMEOUT_SECS.
    pub idle_timeout: Duration,
    /// BODY_READ_TIMEOUT_SECS.
    pub body_read_timeout: Duration,
    /// MAX_CONNECTIONS (before the open-file limit lowers it).
    pub max_connections: usize,
    /// MAX_BODY_BYTES.
    pub max_body_bytes: usize,
    /// MAX_BATCH_MEMBERS.
    pub max_batch_members: usize,
    /// MAX_CONCURRENT_BODIES.
    pub max_concurrent_bodies: usize,
}

/// Sessions: how many, for how long, how busy.
#[derive(Clone, Debug)]
pub struct SessionSettings {
    /// SESSION_IDLE_TTL_SECS.
    pub idle_ttl: Duration,
    /// SESSION_MAX_LIFETIME_SECS.
    pub max_lifetime: Duration,
    /// MAX_SESSIONS.
    pub max_sessions: usize,
    /// MAX_SESSIONS_PER_IDENTITY.
    pub max_per_identity: usize,
    /// MAX_INFLIGHT_PER_SESSION.
    pub max_inflight: usize,
    /// CALL_TIMEOUT_SECS.
    pub call_timeout: Duration,
}

/// The children: what runs, with which environment and identity, and within which bounds.
#[derive(Clone, Debug)]
pub struct ChildSettings {
    /// MCP_COMMAND split into words, or the whole line when `shell`.
    pub argv: Vec<String>,
    /// MCP_COMMAND_SHELL: run `argv[0]` through `/bin/sh -c`.
    pub shell: bool,
    /// CHILD_SCOPE.
    pub scope: ChildScope,
    /// CHILD_TOKEN_ENV.
    pub token_env: String,
    /// CHILD_ENV_PASSTHROUGH (blank entries dropped).
    pub env_passthrough: Vec<String>,
    /// CHILD_ENV as pairs, in order (values may be secrets: never logged).
    pub env: Vec<(String, String)>,
    /// CHILD_UID and CHILD_GID (both or neither).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// MAX_CHILDREN.
    pub max_children: usize,
    /// MAX_LINE_BYTES.
    pub max_line_bytes: usize,
    /// CHILD_KILL_GRACE_MS.
    pub kill_grace: Duration,
    /// CHILD_START_TIMEOUT_SECS.
    pub start_timeout: Duration,
    /// CHILD_STDERR_LINES_PER_SEC.
    pub stderr_lines_per_sec: u32,
}

/// The sessionless 2026-07-28 era: the per-identity child pool, MRTR, caching hints.
#[derive(Clone, Debug)]
pub struct ModernSettings {
    /// POOL_MAX_CHILDREN_PER_IDENTITY.
    pub pool_max_per_identity: usize,
    /// POOL_CALLS_PER_CHILD.
    pub pool_calls_per_child: usize,
    /// POOL_IDLE_TTL_SECS.
    pub pool_idle_ttl: Duration,
    /// CHILD_ERA.
    pub child_era: ChildEra,
    /// MRTR_STATE_TTL_SECS.
    pub mrtr_state_ttl: Duration,
    /// MRTR_MAX_PENDING_PER_IDENTITY.
    pub mrtr_max_pending: usize,
    /// MRTR_GATHER_MS.
    pub mrtr_gather: Duration,
    /// CACHE_TTL_MS.
    pub cache_ttl_ms: u64,
    /// MAX_LISTEN_STREAMS_PER_IDENTITY.
    pub max_listen_streams: usize,
}

/// SSE streams: keep-alives and what is kept for `Last-Event-ID`.
#[derive(Clone, Debug)]
pub struct SseSettings {
    /// SSE_KEEPALIVE_SECS.
    pub keepalive: Duration,
    /// SSE_REPLAY_EVENTS.
    pub replay_events: usize,
    /// SSE_REPLAY_BYTES.
    pub replay_bytes: usize,
    /// SSE_REPLAY_SESSION_BYTES.
    pub replay_session_bytes: usize,
    /// SSE_REPLAY_TOTAL_BYTES.
    pub replay_total_bytes: usize,
    /// SSE_RESUME_WINDOW_SECS.
    pub resume_window: Duration,
    /// SSE_PENDING_EVENTS.
    pub pending_events: usize,
}

/// Who may call: the Coda token check and its cache.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// AUTH_MODE.
    pub mode: AuthMode,
    /// CODA_API_BASE_URL.
    pub coda_api_base_url: url::Url,
    /// CODA_API_TOKEN (or its file); None when unset or blank.
    pub operator_token: Option<Secret>,
    /// WHOAMI_TIMEOUT_MS.
    pub whoami_timeout: Duration,
    /// AUTH_CACHE_TTL_SECS.
    pub cache_ttl: Duration,
    /// AUTH_NEGATIVE_CACHE_TTL_SECS.
    pub negative_cache_ttl: Duration,
    /// AUTH_CACHE_MAX_ENTRIES.
    pub cache_max_entries: usize,
    /// ALLOWED_USERS (blank entries dropped); empty admits any Coda user.
    pub allowed_users: Vec<String>,
    /// READY_CODA_FRESHNESS_SECS.
    pub ready_coda_freshness: Duration,
}

/// The per-minute budgets and how many keys each limiter remembers.
#[derive(Clone, Copy, Debug)]
pub struct RateLimitSettings {
    /// AUTH_RATE_LIMIT_PER_MIN (per client IP).
    pub failed_auth_per_min: u32,
    /// DISCOVERY_RATE_LIMIT_PER_MIN (per client IP).
    pub discovery_per_min: u32,
    /// IDENTITY_RATE_LIMIT_PER_MIN.
    pub identity_per_min: u32,
    /// RATE_LIMIT_MAX_KEYS.
    pub max_keys: usize,
}

/// The OAuth authorization server, when sign-in is on.
#[derive(Clone, Debug)]
pub struct OAuthSettings {
    /// OAUTH_ENCRYPTION_KEY (or its file); None: a key file beside the database.
    pub encryption_key: Option<Secret>,
    /// OAUTH_DB_PATH.
    pub db_path: PathBuf,
    /// OAUTH_ACCEPT_CODA_TOKENS.
    pub accept_coda_tokens: bool,
    /// OAUTH_ACCESS_TOKEN_TTL_SECS.
    pub access_token_ttl: Duration,
    /// OAUTH_REFRESH_TOKEN_TTL_SECS.
    pub refresh_token_ttl: Duration,
    /// OAUTH_CODE_TTL_SECS.
    pub code_ttl: Duration,
    /// OAUTH_MAX_CLIENTS.
    pub max_clients: usize,
    /// OAUTH_REGISTER_RATE_LIMIT_PER_MIN.
    pub register_rate_limit_per_min: u32,
    /// OAUTH_MAX_GRANTS_PER_USER.
    pub max_grants_per_user: usize,
    /// OAUTH_CLIENT_METADATA_DOCUMENTS.
    pub client_metadata_documents: bool,
    /// OAUTH_CLIENT_METADATA_ALLOW_HTTP.
    pub client_metadata_allow_http: bool,
}

/// Environment variables that hold the gateway's own secrets: read once at startup, removed
/// from the gateway's environment, and never handed to a child.
pub const GATEWAY_SECRETS: [&str; 4] = [
    "CODA_API_TOKEN",
    "OAUTH_ENCRYPTION_KEY",
    "REDIS_URL",
    "REPLICA_SECRET",
];

/// `[A-Za-z_][A-Za-z0-9_]*`: what a shell (and every MCP server) can read back.
fn is_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The part of a malformed CHILD_ENV entry worth echoing: never a value (it may be a secret).
fn entry_name(entry: &str) -> String {
    entry
        .split('=')
        .next()
        .unwrap_or("")
        .chars()
        .take(64)
        .collect()
}

/// Fills `value` from `file` when only the file is set; both set is refused.
fn read_secret_file(
    value: &mut Option<Secret>,
    file: Option<&std::path::Path>,
    name: &'static str,
    file_name: &'static str,
) -> Result<(), ConfigError> {
    let Some(file) = file else {
        return Ok(());
    };
    // A blank variable counts as unset (compose files pass `${VAR:-}` through).
    if value
        .as_ref()
        .is_some_and(|v| !v.expose().trim().is_empty())
    {
        return Err(bad(
            file_name,
            format!("set {name} or {file_name}, not both"),
        ));
    }
    let text = std::fs::read_to_string(file)
        .map_err(|e| bad(file_name, format!("cannot read {}: {e}", file.display())))?;
    let secret = text.trim_end_matches(['\n', '\r']);
    if secret.trim().is_empty() {
        return Err(bad(file_name, format!("{} is empty", file.display())));
    }
    *value = Some(Secret::new(secret));
    Ok(())
}

/// `scheme://host[:port]` with a trailing slash tolerated; returns the normalized origin.
pub fn parse_origin(text: &str) -> Option<String> {
    let text = text.trim().trim_end_matches('/');
    let (scheme, rest) = text.split_once("://")?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() {
        return None;
    }
    // No whitespace or control characters inside either: a host has none, and trimming them
    // on a second pass would change the canonical form (found by fuzz/origin).
    if rest.contains(['/', '?', '#', '@'])
        || rest.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return None;
    }
    Some(format!("{}://{}", scheme, rest.to_ascii_lowercase()))
}

/// Splits a command line on whitespace, honouring single and double quotes and backslash escapes.
pub fn split_command(line: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') | (None, '\\') => match chars.next() {
                Some(next) => {
                    word.push(next);
                    in_word = true;
                }
                None => return Err("ends with a lone backslash".into()),
            },
            (Some(_), c) => word.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("has an unterminated quote".into());
    }
    if in_word {
        words.push(word);
    }
    if words.is_empty() {
        return Err("is empty".into());
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_quoted_commands() {
        assert_eq!(
            split_command(r#"node "/app/my server/index.js" --flag 'a b' c\ d"#).unwrap(),
            vec!["node", "/app/my server/index.js", "--flag", "a b", "c d"]
        );
        assert!(split_command("node 'oops").is_err());
        assert!(split_command("   ").is_err());
    }

    #[test]
    fn refuses_forwarding_settings_out_of_range() {
        for (ttl, connect, name) in [
            (2, 2000, "REPLICA_DIRECTORY_TTL_SECS"),
            (3601, 2000, "REPLICA_DIRECTORY_TTL_SECS"),
            (30, 99, "REPLICA_CONNECT_TIMEOUT_MS"),
            (30, 60_001, "REPLICA_CONNECT_TIMEOUT_MS"),
        ] {
            let mut config = Flags::with_command("server");
            config.replica_directory_ttl_secs = ttl;
            config.replica_connect_timeout_ms = connect;
            assert_eq!(config.validate().unwrap_err().name, name);
        }
        let config = Flags::with_command("server").validate().expect("defaults");
        assert_eq!(config.forwarding.directory_ttl, Duration::from_secs(30));
        assert_eq!(
            config.forwarding.connect_timeout,
            Duration::from_millis(2000)
        );
    }

    #[test]
    fn refuses_zero_ttl() {
        let mut config = Flags::with_command("server");
        config.session_idle_ttl_secs = 0;
        assert_eq!(config.validate().unwrap_err().name, "SESSION_IDLE_TTL_SECS");
    }

    #[test]
    fn oauth_settings_are_checked_only_when_sign_in_is_on() {
        let mut config = Flags::with_command("server");
        config.oauth_code_ttl_secs = 0;
        assert!(config.validate().is_ok(), "AUTH_MODE=none: nobody signs in");
        assert!(!config.oauth_enabled());
        config.oauth_encryption_key = Some("ab".repeat(32).into());
        assert_eq!(
            config.validate().unwrap_err().name,
            "OAUTH_ENCRYPTION_KEY",
            "needs AUTH_MODE=coda"
        );
        config.oauth_encryption_key = None;
        config.auth_mode = AuthMode::Coda;
        config.coda_api_token = Some("operator-token-123".into());
        assert!(
            config.oauth_enabled(),
            "on by default, with or without a key"
        );
        assert_eq!(config.validate().unwrap_err().name, "OAUTH_CODE_TTL_SECS");
        config.oauth = OAuthMode::Off;
        assert!(
            config.validate().is_ok(),
            "OAUTH=off: OAuth settings unused"
        );
        assert!(!config.oauth_enabled());
        config.oauth = OAuthMode::On;
        config.oauth_code_ttl_secs = 60;
        assert!(config.validate().is_ok());
        config.oauth_encryption_key = Some("short".into());
        assert_eq!(config.validate().unwrap_err().name, "OAUTH_ENCRYPTION_KEY");
    }

    #[test]
    fn replicas_with_oauth_need_an_explicit_shared_key() {
        let mut config = Flags::with_command("server");
        config.auth_mode = AuthMode::Coda;
        config.coda_api_token = Some("operator-token-123".into());
        config.redis_url = Some("redis://127.0.0.1:6379/0".into());
        config.replica_url = Some("http://10.0.0.5:8080".into());
        config.replica_secret = Some("s".repeat(32).into());
        let refused = config.validate().unwrap_err();
        assert_eq!(refused.name, "OAUTH_ENCRYPTION_KEY");
        config.oauth_encryption_key = Some("ab".repeat(32).into());
        assert!(config.validate().is_ok());
        config.oauth_encryption_key = None;
        config.oauth = OAuthMode::Off;
        assert!(config.validate().is_ok(), "no sign-in, no key needed");
    }

    #[test]
    fn oauth_is_on_by_default_and_off_on_request() {
        let parse = |extra: &[&str]| {
            let mut args = vec![
                "gw",
                "--mcp-command",
                "s",
                "--coda-api-token",
                "tok-1234567",
            ];
            args.extend_from_slice(extra);
            Flags::parse_from(args)
        };
        assert!(parse(&[]).oauth_enabled());
        assert!(!parse(&["--oauth", "off"]).oauth_enabled());
    }

    #[test]
    fn debug_shows_no_secret() {
        let config = Flags::parse_from([
            "gw",
            "--mcp-command",
            "server",
            "--coda-api-token",
            "operator-token-VERY-SECRET-1",
            "--oauth-encryption-key",
            &"5e".repeat(32),
        ]);
        let shown = format!("{config:?}");
        assert!(!shown.contains("VERY-SECRET"), "{shown}");
        assert!(!shown.contains(&"5e".repeat(8)), "{shown}");
        assert!(
            shown.contains("mcp_command"),
            "the rest still shows: {shown}"
        );
        let pretty = format!("{config:#?}");
        assert!(!pretty.contains("VERY-SECRET") && !pretty.contains(&"5e".repeat(8)));
    }

    #[test]
    fn child_env_is_name_value_pairs() {
        let mut config = Flags::with_command("server");
        config.child_env = Some(" CODA_BASE_URL=http://x/y?a=b , EMPTY= ,".into());
        assert_eq!(
            config.child_env_pairs().unwrap(),
            vec![
                ("CODA_BASE_URL".to_string(), "http://x/y?a=b".to_string()),
                ("EMPTY".to_string(), String::new()),
            ]
        );
        assert!(config.validate().is_ok());
        for malformed in ["JUSTANAME", "1BAD=x", "=x", "A-B=x", "OK=1,BROKEN"] {
            config.child_env = Some(malformed.into());
            let err = config.validate().unwrap_err();
            assert_eq!(err.name, "CHILD_ENV", "{malformed}");
        }
        config.child_env = Some("SECRET_NAME_ONLY".into());
        assert!(config.validate().is_err());
        config.child_env = Some("OK=1,x y=hunter2".into());
        let err = config.validate().unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "values are never echoed: {err}");
        config.child_env = Some("CODA_API_TOKEN=abc".into());
        assert_eq!(config.validate().unwrap_err().name, "CHILD_ENV");
        config.child_env = None;
        config.child_env_passthrough = vec!["HTTPS_PROXY".into(), " ".into()];
        assert!(config.validate().is_ok());
        for reserved in ["OAUTH_ENCRYPTION_KEY", "CODA_API_TOKEN", "not a name"] {
            config.child_env_passthrough = vec![reserved.into()];
            assert_eq!(
                config.validate().unwrap_err().name,
                "CHILD_ENV_PASSTHROUGH",
                "{reserved}"
            );
        }
    }

    #[test]
    fn child_uid_needs_its_gid() {
        let mut config = Flags::with_command("server");
        config.child_uid = Some(65534);
        assert_eq!(config.validate().unwrap_err().name, "CHILD_UID");
        config.child_gid = Some(65534);
        // SAFETY: geteuid(2) has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        assert_eq!(config.validate().is_ok(), root, "allowed exactly as root");
    }

    #[test]
    fn secret_files_fill_secrets() {
        let dir = std::env::temp_dir().join(format!("gw-secret-files-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "operator-token-from-file\n").unwrap();
        let mut config = Flags::with_command("server");
        config.coda_api_token_file = Some(file.clone());
        config.read_secret_files().unwrap();
        assert_eq!(
            config.coda_api_token.as_ref().map(Secret::expose),
            Some("operator-token-from-file")
        );
        // Both set: refused with the file setting's name (a blank variable counts as unset).
        let mut blank = Flags::with_command("server");
        blank.coda_api_token = Some("".into());
        blank.coda_api_token_file = Some(file.clone());
        assert!(blank.read_secret_files().is_ok());
        config.coda_api_token_file = Some(file.clone());
        assert_eq!(
            config.read_secret_files().unwrap_err().name,
            "CODA_API_TOKEN_FILE"
        );
        let mut config = Flags::with_command("server");
        config.oauth_encryption_key_file = Some(dir.join("missing"));
        assert_eq!(
            config.read_secret_files().unwrap_err().name,
            "OAUTH_ENCRYPTION_KEY_FILE"
        );
        std::fs::write(&file, "\n").unwrap();
        config.oauth_encryption_key_file = Some(file);
        assert_eq!(
            config.read_secret_files().unwrap_err().name,
            "OAUTH_ENCRYPTION_KEY_FILE",
            "empty"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_public_listener_needs_public_url() {
        let mut config = Flags::with_command("server");
        config.auth_mode = AuthMode::Coda;
        config.coda_api_token = Some("operator-token-123".into());
        config.host = "0.0.0.0".parse().unwrap();
        assert_eq!(config.validate().unwrap_err().name, "PUBLIC_URL");
        config.public_url = Some("https://coda.example.com".into());
        assert!(config.validate().is_ok());
        config.public_url = None;
        config.host = "::1".parse().unwrap();
        assert!(config.validate().is_ok(), "loopback may derive from Host");
    }

    #[test]
    fn validation_gives_typed_grouped_settings() {
        let mut flags = Flags::with_command("node 'my server.js'");
        flags.whoami_timeout_ms = 1500;
        flags.child_kill_grace_ms = 250;
        flags.sse_keepalive_secs = 7;
        flags.public_url = Some("https://Coda.Example.com/".into());
        flags.allowed_origins = vec!["https://claude.ai/".into()];
        flags.trusted_proxies = vec!["10.0.0.0/8".into()];
        flags.child_env = Some("A=1,B=2".into());
        flags.child_env_passthrough = vec!["HTTPS_PROXY".into(), " ".into()];
        flags.coda_api_base_url = "http://127.0.0.1:9/apis/v1".into();
        flags.log_format = "json".into();
        let config = flags.validate().unwrap();
        assert_eq!(config.auth.whoami_timeout, Duration::from_millis(1500));
        assert_eq!(config.children.kill_grace, Duration::from_millis(250));
        assert_eq!(config.sse.keepalive, Duration::from_secs(7));
        assert_eq!(config.sessions.idle_ttl, Duration::from_secs(1800));
        assert_eq!(config.children.argv, ["node", "my server.js"]);
        assert_eq!(
            config.children.env,
            [("A".into(), "1".into()), ("B".into(), "2".into())]
        );
        assert_eq!(config.children.env_passthrough, ["HTTPS_PROXY"]);
        assert_eq!(
            config.http.public_url.as_deref(),
            Some("https://coda.example.com")
        );
        assert_eq!(config.http.allowed_origins, ["https://claude.ai"]);
        assert!(config
            .http
            .trusted_proxies
            .peer_trusted(Some("10.1.2.3:80".parse().unwrap())));
        assert_eq!(
            config.auth.coda_api_base_url.as_str(),
            "http://127.0.0.1:9/apis/v1"
        );
        assert_eq!(config.service.log_format, LogFormat::Json);
        assert!(config.oauth.is_none(), "AUTH_MODE=none: nobody signs in");
        assert_eq!(config.http.listen, "127.0.0.1:8080".parse().unwrap());

        flags.coda_api_base_url = "http://".into();
        assert_eq!(flags.validate().unwrap_err().name, "CODA_API_BASE_URL");
        flags.coda_api_base_url = "ftp://x/apis".into();
        assert_eq!(flags.validate().unwrap_err().name, "CODA_API_BASE_URL");
    }

    #[test]
    fn sign_in_settings_exist_only_when_sign_in_is_on() {
        let mut flags = Flags::with_command("server");
        flags.auth_mode = AuthMode::Coda;
        flags.coda_api_token = Some(" ".into());
        assert_eq!(flags.validate().unwrap_err().name, "CODA_API_TOKEN");
        flags.coda_api_token = Some("operator-token-123".into());
        flags.oauth_code_ttl_secs = 30;
        let config = flags.validate().unwrap();
        let oauth = config.oauth.expect("on by default with AUTH_MODE=coda");
        assert_eq!(oauth.code_ttl, Duration::from_secs(30));
        assert!(oauth.encryption_key.is_none(), "a key file will be used");
        assert_eq!(
            config.auth.operator_token.as_ref().map(Secret::expose),
            Some("operator-token-123")
        );
        flags.oauth = OAuthMode::Off;
        assert!(flags.validate().unwrap().oauth.is_none());
    }

    #[test]
    fn origins_are_normalized() {
        assert_eq!(
            parse_origin("https://Coda.Example.com/").as_deref(),
            Some("https://coda.example.com")
        );
        assert_eq!(parse_origin("https://x.com/mcp"), None);
        assert_eq!(parse_origin("ftp://x.com"), None);
        // Found by fuzz/origin: "http://a\t/" gave "http://a\t", which read again gave "http://a".
        assert_eq!(parse_origin("http://a\t/"), None);
        assert_eq!(parse_origin("http://a\u{85}b"), None);
    }
}
