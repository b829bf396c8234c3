//! Where routers come from: a dedicated child per session, or the one shared child.
//! Counts children against MAX_CHILDREN.

use std::ffi::OsString;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::channel::{BufferLimits, Channel};
use super::router::{ExitHook, Router, Sharing};
use crate::config::{ChildSettings, SseSettings, GATEWAY_SECRETS};
use crate::identity::Secret;
use crate::metrics::METRICS;
use crate::upstream::{self, ChildSpec};

#[derive(Debug, thiserror::Error)]
pub enum SpawnFailure {
    #[error("too many MCP server processes are running")]
    AtCapacity,
    #[error("the MCP server could not be started: {0}")]
    Start(String),
    #[error("the MCP server did not complete initialize: {0}")]
    Initialize(String),
}

pub struct Spawner {
    base: ChildSpec,
    /// Name of the child variable that receives the caller's credential.
    credential_env: String,
    max_children: usize,
    children: Arc<AtomicUsize>,
    shared: Mutex<Option<SharedChild>>,
    start_timeout: Duration,
    buffers: BufferLimits,
}

/// The shared child and what it answered to our own `initialize`.
#[derive(Clone)]
pub struct SharedChild {
    pub router: Arc<Router>,
    pub channel: Arc<Channel>,
    pub init_result: Value,
}

impl Spawner {
    /// Children as `config` says, their streams buffered as `sse` says.
    pub fn new(config: &ChildSettings, sse: &SseSettings) -> Spawner {
        Spawner {
            base: ChildSpec {
                argv: config.argv.clone(),
                shell: config.shell,
                env: child_env(config, std::env::vars_os()),
                credential: None,
                uid: config.uid,
                gid: config.gid,
                max_line_bytes: config.max_line_bytes,
                stderr_lines_per_sec: config.stderr_lines_per_sec,
                kill_grace: config.kill_grace,
                label: String::new(),
            },
            credential_env: config.token_env.clone(),
            max_children: config.max_children,
            children: Arc::new(AtomicUsize::new(0)),
            shared: Mutex::new(None),
            start_timeout: config.start_timeout,
            buffers: BufferLimits::new(sse),
        }
    }

    pub fn children(&self) -> usize {
        self.children.load(Ordering::Acquire)
    }

    pub fn new_channel(&self, key: u64) -> Arc<Channel> {
        Arc::new(Channel::new(key, self.buffers.clone()))
    }

    /// Starts a child for one session, with the caller's credential in its environment.
    pub fn spawn_dedicated(
        &self,
        label: &str,
        home: Arc<Channel>,
        credential: Option<&Secret>,
        on_exit: ExitHook,
    ) -> Result<Arc<Router>, SpawnFailure> {
        let mut spec = self.base.clone();
        spec.label = label.to_string();
        spec.credential = credential.map(|secret| (self.credential_env.clone(), secret.clone()));
        self.spawn(spec, Sharing::Dedicated, Some(home), on_exit)
    }

    fn spawn(
        &self,
        spec: ChildSpec,
        sharing: Sharing,
        home: Option<Arc<Channel>>,
        on_exit: ExitHook,
    ) -> Result<Arc<Router>, SpawnFailure> {
        let before = self.children.fetch_add(1, Ordering::AcqRel);
        if before >= self.max_children {
            self.children.fetch_sub(1, Ordering::AcqRel);
            return Err(SpawnFailure::AtCapacity);
        }
        let (child, lines) = match upstream::spawn(spec) {
            Ok(spawned) => spawned,
            Err(e) => {
                self.children.fetch_sub(1, Ordering::AcqRel);
                return Err(SpawnFailure::Start(e.to_string()));
            }
        };
        let children = self.children.clone();
        METRICS.children_spawned.fetch_add(1, Ordering::Relaxed);
        let hook: ExitHook = Box::new(move |report| {
            children.fetch_sub(1, Ordering::AcqRel);
            let reason = if report.reason.contains("too long") {
                "line_too_long"
            } else if report.code.is_some() {
                "exit_status"
            } else {
                "signal"
            };
            METRICS.children_exited.inc(&[("reason", reason)]);
            on_exit(report);
        });
        Ok(Router::start(child, lines, sharing, home, hook))
    }

    /// The shared child, started (and initialized by the gateway itself) on first use or after it died.
    pub async fn shared(&self, credential: Option<&Secret>) -> Result<SharedChild, SpawnFailure> {
        let mut slot = self.shared.lock().await;
        if let Some(shared) = slot.as_ref() {
            if !shared.router.is_closed() {
                return Ok(shared.clone());
            }
        }
        let mut spec = self.base.clone();
        spec.label = "shared".into();
        spec.credential = credential.map(|secret| (self.credential_env.clone(), secret.clone()));
        let channel = self.new_channel(0);
        let router = self.spawn(spec, Sharing::Shared, None, Box::new(|report| {
            tracing::error!(reason = %report.reason, last_stderr = ?report.last_stderr, "the shared MCP server exited; it is restarted on the next initialize");
        }))?;
        let init_result = self.initialize(&router, &channel).await.inspect_err(|_| {
            let router = router.clone();
            tokio::spawn(async move { router.child().terminate().await });
        })?;
        let shared = SharedChild {
            router,
            channel,
            init_result,
        };
        *slot = Some(shared.clone());
        Ok(shared)
    }

    /// The gateway's own `initialize` + `notifications/initialized` on a child it serves several
    /// callers through (the shared child, a sessionless pool child).
    pub async fn initialize(
        &self,
        router: &Arc<Router>,
        channel: &Arc<Channel>,
    ) -> Result<Value, SpawnFailure> {
        let params = json!({
            "protocolVersion": crate::protocol::SUPPORTED[0],
            // Declared so the child may ask; the router delivers a request only when one session
            // has calls in flight, and refuses it otherwise.
            "capabilities": { "sampling": {}, "elicitation": {}, "roots": {} },
            "clientInfo": { "name": "coda-mcp-gateway", "version": env!("CARGO_PKG_VERSION") },
        });
        let result = request(router, channel, "initialize", params, self.start_timeout).await?;
        let initialized = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        if let Value::Object(map) = initialized {
            router
                .notify_raw(map)
                .await
                .map_err(|e| SpawnFailure::Initialize(e.to_string()))?;
        }
        Ok(result)
    }

    /// Ends the shared child, if any (shutdown).
    pub async fn end_shared(&self) {
        if let Some(shared) = self.shared.lock().await.take() {
            shared.router.child().terminate().await;
        }
    }
}

/// Variables every child gets: the allow-list (PATH, HOME, LANG, LC_*, TZ) and
/// CHILD_ENV_PASSTHROUGH from the gateway's environment `vars`, then CHILD_ENV on top. Nothing
/// else is inherited: a child never sees OAUTH_ENCRYPTION_KEY, OAUTH_DB_PATH or any other
/// secret the gateway was started with. The caller's token is added per child.
pub fn child_env(
    config: &ChildSettings,
    vars: impl Iterator<Item = (OsString, OsString)>,
) -> Vec<(OsString, OsString)> {
    let passthrough: Vec<&str> = config.env_passthrough.iter().map(String::as_str).collect();
    let allowed = |name: &str| {
        !GATEWAY_SECRETS.contains(&name)
            && name != config.token_env
            && (matches!(name, "PATH" | "HOME" | "LANG" | "TZ")
                || name.starts_with("LC_")
                || passthrough.contains(&name))
    };
    let mut env: Vec<(OsString, OsString)> = vars
        .filter(|(name, _)| name.to_str().is_some_and(allowed))
        .collect();
    for (name, value) in config.env.iter().cloned() {
        env.retain(|(existing, _)| existing.to_str() != Some(name.as_str()));
        env.push((name.into(), value.into()));
    }
    env
}

/// One request from the gateway itself to a child; the result, or why there is none.
pub async fn request(
    router: &Arc<Router>,
    channel: &Arc<Channel>,
    method: &str,
    params: Value,
    timeout: Duration,
) -> Result<Value, SpawnFailure> {
    let message = json!({ "jsonrpc": "2.0", "id": 0, "method": method, "params": params });
    let Value::Object(message) = message else {
        unreachable!("a json! object literal")
    };
    let stream = channel.open_stream(1);
    let mut changed = stream.subscribe();
    router
        .call(channel, message, json!(0), &stream)
        .await
        .map_err(|e| SpawnFailure::Initialize(e.to_string()))?;
    let wait = async {
        loop {
            let pending = stream.after(0);
            if let Some(last) = pending.events.iter().find(|e| e.is_final) {
                return serde_json::from_slice::<Value>(&last.data).ok();
            }
            if pending.done || changed.changed().await.is_err() {
                return None;
            }
        }
    };
    let answer = tokio::time::timeout(timeout, wait)
        .await
        .map_err(|_| {
            SpawnFailure::Initialize(format!(
                "no answer to {method} within {}s",
                timeout.as_secs()
            ))
        })?
        .ok_or_else(|| {
            SpawnFailure::Initialize(format!("the process ended before answering {method}"))
        })?;
    match (answer.get("result"), answer.get("error")) {
        (Some(result), _) => Ok(result.clone()),
        (_, Some(error)) => Err(SpawnFailure::Initialize(format!(
            "{method} failed: {error}"
        ))),
        _ => Err(SpawnFailure::Initialize(format!(
            "malformed answer to {method}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Iterator<Item = (OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v)))
            .collect::<Vec<_>>()
            .into_iter()
    }

    #[test]
    fn children_get_the_allow_list_only() {
        let mut flags = crate::config::Flags::with_command("server");
        flags.child_env_passthrough = vec!["HTTPS_PROXY".into()];
        flags.child_env = Some("CODA_BASE_URL=http://127.0.0.1:9/apis/v1,TZ=UTC".into());
        let config = flags.validate().unwrap();
        let env = child_env(
            &config.children,
            vars(&[
                ("PATH", "/bin"),
                ("HOME", "/home/gw"),
                ("LANG", "C.UTF-8"),
                ("LC_ALL", "C"),
                ("TZ", "Europe/Paris"),
                ("HTTPS_PROXY", "http://proxy"),
                ("SOME_SECRET", "s3cret"),
                ("OAUTH_ENCRYPTION_KEY", "k"),
                ("OAUTH_DB_PATH", "/data/db"),
                ("CODA_API_TOKEN", "operator"),
                ("RUST_LOG", "debug"),
            ]),
        );
        let shown: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string_lossy().into_owned(),
                    v.to_string_lossy().into_owned(),
                )
            })
            .collect();
        let names: Vec<&str> = shown.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "PATH",
                "HOME",
                "LANG",
                "LC_ALL",
                "HTTPS_PROXY",
                "CODA_BASE_URL",
                "TZ"
            ]
        );
        assert!(
            shown.contains(&("TZ".into(), "UTC".into())),
            "CHILD_ENV wins"
        );
    }

    #[test]
    fn a_spec_shows_no_credential() {
        let mut flags = crate::config::Flags::with_command("server");
        flags.child_env = Some("API_KEY=VALUE-NOT-SHOWN".into());
        let config = flags.validate().unwrap();
        let spawner = Spawner::new(&config.children, &config.sse);
        let mut spec = spawner.base.clone();
        spec.credential = Some(("CODA_API_TOKEN".into(), Secret::new("caller-TOKEN-xyz")));
        let shown = format!("{spec:?}");
        assert!(!shown.contains("caller-TOKEN") && !shown.contains("VALUE-NOT-SHOWN"));
        assert!(shown.contains("API_KEY"), "{shown}");
    }
}
