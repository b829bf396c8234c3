//! The children that serve sessionless (2026-07-28) requests: a pool per identity.
//!
//! A modern request names no session, so it cannot have a child of its own without a spawn per
//! request. Instead each identity (a subject with one token) gets at least one child, started
//! with that caller's token exactly as a session's child is, and more under concurrency up to
//! POOL_MAX_CHILDREN_PER_IDENTITY; MAX_CHILDREN still bounds every child of the gateway. A child
//! with nothing in flight for POOL_IDLE_TTL_SECS is ended. With CHILD_SCOPE=shared the shared
//! child serves every identity, each through a channel of its own so that nothing one caller's
//! call provokes is routed to another.
//!
//! What a child says outside any call (list changes, resource updates) goes to the identity's
//! notification feed, which `subscriptions/listen` streams read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::Bytes;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::channel::Channel;
use super::router::Router;
use super::spawner::{self, SpawnFailure, Spawner};
use crate::audit::{Audit, Event, EventType};
use crate::config::{ChildEra, ChildScope, ModernSettings};
use crate::identity::{Identity, Secret};
use crate::jsonrpc;
use crate::protocol;

/// How many messages a slow listener may fall behind before it misses some.
const FEED_CAPACITY: usize = 256;

/// The era a pool child is spoken to in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Era {
    /// Initialized by the gateway (2025-x); modern requests are translated.
    Legacy,
    /// Speaks 2026-07-28 itself; requests pass through.
    Modern,
}

/// One child of a pool.
pub struct Worker {
    id: u64,
    pub router: Arc<Router>,
    /// The channel its calls are routed on (its own; or, on the shared child, the identity's).
    pub channel: Arc<Channel>,
    pub era: Era,
    /// Legacy: the child's `initialize` result. Modern: its `server/discover` result.
    pub info: Value,
    /// False on the shared child, which is not ours to end.
    owns_child: bool,
    in_flight: AtomicUsize,
    last_used: Mutex<Instant>,
}

impl Worker {
    fn load(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    fn idle_since(&self) -> Instant {
        *self.last_used.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_live(&self) -> bool {
        !self.router.is_closed()
    }
}

/// A worker in use; counted as in flight until dropped.
pub struct Lease {
    pub worker: Arc<Worker>,
}

impl Lease {
    fn new(worker: Arc<Worker>) -> Lease {
        worker.in_flight.fetch_add(1, Ordering::AcqRel);
        Lease { worker }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        *self
            .worker
            .last_used
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.worker.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One identity's children and notification feed.
pub struct Entry {
    workers: Mutex<Vec<Arc<Worker>>>,
    /// Held while a child is being started, so a burst of requests starts one, not many.
    spawn_gate: tokio::sync::Mutex<()>,
    /// Notifications the identity's children sent outside any call.
    pub feed: broadcast::Sender<Bytes>,
    /// Open `subscriptions/listen` streams.
    pub listeners: AtomicUsize,
}

impl Entry {
    fn workers(&self) -> std::sync::MutexGuard<'_, Vec<Arc<Worker>>> {
        self.workers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The least loaded live child, unless it is busy and another may still be started.
    fn pick(&self, calls_per_child: usize, max_children: usize) -> Option<Arc<Worker>> {
        let mut workers = self.workers();
        workers.retain(|w| w.is_live());
        let best = workers.iter().min_by_key(|w| w.load())?;
        (best.load() < calls_per_child || workers.len() >= max_children).then(|| best.clone())
    }
}

/// Why no child could serve a sessionless request.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error(transparent)]
    Spawn(#[from] SpawnFailure),
    #[error("the gateway is shutting down")]
    ShuttingDown,
}

pub struct Pool {
    settings: ModernSettings,
    scope: ChildScope,
    start_timeout: Duration,
    audit: Audit,
    entries: Mutex<HashMap<String, Arc<Entry>>>,
    /// The era children turned out to speak (CHILD_ERA, or what the first probe found).
    era: Mutex<Option<Era>>,
    /// Held while the first child is probed, so a burst of new identities probes once (a
    /// probe spends a legacy child) instead of once each.
    probe_gate: tokio::sync::Mutex<()>,
    next_id: AtomicU64,
}

/// The pool key of an identity: its subject and token, so a rotated token gets children of
/// its own and the old ones simply idle out.
pub fn owner_key(identity: &Identity) -> String {
    let mut hash = Sha256::new();
    hash.update(identity.subject.as_bytes());
    hash.update([0]);
    hash.update(identity.token_hash.as_deref().unwrap_or("").as_bytes());
    hex::encode(&hash.finalize()[..16])
}

impl Pool {
    pub fn new(
        settings: ModernSettings,
        scope: ChildScope,
        start_timeout: Duration,
        audit: Audit,
    ) -> Arc<Pool> {
        let era = match settings.child_era {
            ChildEra::Auto => None,
            ChildEra::Legacy => Some(Era::Legacy),
            ChildEra::Modern => Some(Era::Modern),
        };
        Arc::new(Pool {
            settings,
            scope,
            start_timeout,
            audit,
            entries: Mutex::new(HashMap::new()),
            era: Mutex::new(era),
            probe_gate: tokio::sync::Mutex::new(()),
            next_id: AtomicU64::new(1),
        })
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Entry>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The entry of the identity whose [`owner_key`] is `owner`, made on first use.
    pub fn entry(&self, owner: &str) -> Arc<Entry> {
        let mut entries = self.entries();
        if let Some(entry) = entries.get(owner) {
            return entry.clone();
        }
        entries
            .entry(owner.to_string())
            .or_insert_with(|| {
                Arc::new(Entry {
                    workers: Mutex::new(Vec::new()),
                    spawn_gate: tokio::sync::Mutex::new(()),
                    feed: broadcast::channel(FEED_CAPACITY).0,
                    listeners: AtomicUsize::new(0),
                })
            })
            .clone()
    }

    /// Children running in all pools (the shared child not counted).
    pub fn children(&self) -> usize {
        self.entries()
            .values()
            .map(|e| e.workers().iter().filter(|w| w.owns_child).count())
            .sum()
    }

    /// Identities with at least one child.
    pub fn identities(&self) -> usize {
        self.entries()
            .values()
            .filter(|e| !e.workers().is_empty())
            .count()
    }

    /// A child for one of `identity`'s requests: an idle enough one, or a new one.
    pub async fn acquire(
        self: &Arc<Self>,
        spawner: &Spawner,
        identity: &Identity,
        owner: &str,
        operator_credential: Option<&Secret>,
        stopping: bool,
    ) -> Result<Lease, PoolError> {
        let entry = self.entry(owner);
        let (per_child, max) = (
            self.settings.pool_calls_per_child,
            self.settings.pool_max_per_identity,
        );
        if let Some(worker) = entry.pick(per_child, max) {
            return Ok(Lease::new(worker));
        }
        let _gate = entry.spawn_gate.lock().await;
        if let Some(worker) = entry.pick(per_child, max) {
            return Ok(Lease::new(worker));
        }
        if stopping {
            return Err(PoolError::ShuttingDown);
        }
        let worker = match self.scope {
            ChildScope::Shared => self.shared_worker(spawner, operator_credential).await?,
            ChildScope::Session => self.start(spawner, identity, &entry).await?,
        };
        entry.workers().push(worker.clone());
        Ok(Lease::new(worker))
    }

    async fn shared_worker(
        &self,
        spawner: &Spawner,
        credential: Option<&Secret>,
    ) -> Result<Arc<Worker>, PoolError> {
        let shared = spawner.shared(credential).await?;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        Ok(Arc::new(Worker {
            id,
            router: shared.router,
            // Pool keys count down from the top so they never meet a session's channel key.
            channel: modern_channel(spawner, id),
            era: Era::Legacy,
            info: shared.init_result,
            owns_child: false,
            in_flight: AtomicUsize::new(0),
            last_used: Mutex::new(Instant::now()),
        }))
    }

    /// Starts a child for `identity` and readies it in the era the children speak.
    async fn start(
        self: &Arc<Self>,
        spawner: &Spawner,
        identity: &Identity,
        entry: &Arc<Entry>,
    ) -> Result<Arc<Worker>, PoolError> {
        let mut known = *self.era.lock().unwrap_or_else(|e| e.into_inner());
        // Until the era is known only one start probes; the others wait for its finding.
        let _probing = match known {
            Some(_) => None,
            None => {
                let gate = self.probe_gate.lock().await;
                known = *self.era.lock().unwrap_or_else(|e| e.into_inner());
                // Found meanwhile: start like any other, without holding up the rest.
                known.is_none().then_some(gate)
            }
        };
        let (router, channel, id) = self.spawn(spawner, identity, entry)?;
        let (router, channel, id, era, info) = match known {
            Some(Era::Legacy) => {
                let info = ready_legacy(spawner, &router, &channel).await?;
                (router, channel, id, Era::Legacy, info)
            }
            Some(Era::Modern) => {
                let info = discover(&router, &channel, self.start_timeout)
                    .await
                    .ok_or_else(|| {
                        SpawnFailure::Initialize(
                            "CHILD_ERA=modern, but the child did not answer server/discover with a 2026-07-28 version".into(),
                        )
                    });
                let info = match info {
                    Ok(info) => info,
                    Err(e) => {
                        router.child().terminate().await;
                        return Err(e.into());
                    }
                };
                (router, channel, id, Era::Modern, info)
            }
            None => {
                // The probe is the child's first message, so its wait includes the child's own
                // start (a Python or npx server can take seconds, more on a busy machine): it gets
                // the whole CHILD_START_TIMEOUT_SECS that `initialize` would. A shorter wait took
                // slow modern servers for legacy ones. Legacy servers answer the unknown method
                // with an error as soon as they read it, so only a silent one costs the wait.
                match discover(&router, &channel, self.start_timeout).await {
                    Some(info) => {
                        tracing::info!("the MCP server speaks 2026-07-28: sessionless requests pass through to it");
                        *self.era.lock().unwrap_or_else(|e| e.into_inner()) = Some(Era::Modern);
                        (router, channel, id, Era::Modern, info)
                    }
                    None => {
                        // A child fixes its era with the first message: this one is spent.
                        tracing::info!(
                            "the MCP server is 2025-x only: sessionless requests are translated"
                        );
                        router.child().terminate().await;
                        *self.era.lock().unwrap_or_else(|e| e.into_inner()) = Some(Era::Legacy);
                        let (router, channel, id) = self.spawn(spawner, identity, entry)?;
                        let info = ready_legacy(spawner, &router, &channel).await?;
                        (router, channel, id, Era::Legacy, info)
                    }
                }
            }
        };
        tokio::spawn(pump(channel.clone(), router.clone(), Arc::downgrade(entry)));
        Ok(Arc::new(Worker {
            id,
            router,
            channel,
            era,
            info,
            owns_child: true,
            in_flight: AtomicUsize::new(0),
            last_used: Mutex::new(Instant::now()),
        }))
    }

    fn spawn(
        self: &Arc<Self>,
        spawner: &Spawner,
        identity: &Identity,
        entry: &Arc<Entry>,
    ) -> Result<(Arc<Router>, Arc<Channel>, u64), SpawnFailure> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let channel = modern_channel(spawner, id);
        let audit = self.audit.clone();
        let subject = identity.subject.clone();
        let entry = Arc::downgrade(entry);
        let router = spawner.spawn_dedicated(
            &format!("pool-{id}"),
            channel.clone(),
            identity.credential.as_ref(),
            Box::new(move |report| {
                audit.emit(
                    Event::new(EventType::ChildExit)
                        .identity(&subject)
                        .reason(&report.reason)
                        .detail("exitCode", report.code)
                        .detail("era", "2026-07-28"),
                );
                if let Some(entry) = entry.upgrade() {
                    entry.workers().retain(|w| w.id != id);
                }
            }),
        )?;
        Ok((router, channel, id))
    }

    /// Ends children idle for POOL_IDLE_TTL_SECS and forgets identities with nothing left.
    pub async fn reap(&self) -> usize {
        let now = Instant::now();
        let ttl = self.settings.pool_idle_ttl;
        let mut ended = Vec::new();
        {
            let mut entries = self.entries();
            for entry in entries.values() {
                entry.workers().retain(|w| {
                    let idle = w.load() == 0 && now >= w.idle_since() + ttl;
                    if idle || !w.is_live() {
                        ended.push(w.clone());
                        return false;
                    }
                    true
                });
            }
            entries.retain(|_, e| {
                !e.workers().is_empty()
                    || e.listeners.load(Ordering::Acquire) > 0
                    || Arc::strong_count(e) > 1
            });
        }
        let count = ended.len();
        for worker in ended {
            if worker.owns_child {
                worker.router.child().terminate().await;
            }
        }
        count
    }

    /// Reaps every so often until `stop` fires.
    pub async fn run_reaper(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        let period = (self.settings.pool_idle_ttl / 4).max(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(period) => { self.reap().await; }
                _ = stop.changed() => return,
            }
        }
    }

    /// Ends every pool child (shutdown).
    pub async fn end_all(&self) {
        let workers: Vec<Arc<Worker>> = self
            .entries()
            .drain()
            .flat_map(|(_, e)| e.workers().drain(..).collect::<Vec<_>>())
            .collect();
        let ends = workers
            .iter()
            .filter(|w| w.owns_child)
            .map(|w| w.router.child().terminate());
        futures_util::future::join_all(ends).await;
    }
}

/// A channel for sessionless calls: keyed from the top of the range so it never meets a
/// session's key on the shared child, and counted under the modern era.
fn modern_channel(spawner: &Spawner, id: u64) -> Arc<Channel> {
    let channel = spawner.new_channel(u64::MAX - id);
    channel.mark_modern();
    channel
}

/// The gateway's own `initialize` on a legacy child (declaring sampling, elicitation and roots,
/// which it translates into MRTR).
async fn ready_legacy(
    spawner: &Spawner,
    router: &Arc<Router>,
    channel: &Arc<Channel>,
) -> Result<Value, SpawnFailure> {
    let result = spawner.initialize(router, channel).await;
    if result.is_err() {
        router.child().terminate().await;
    }
    result
}

/// `server/discover` as the first message: the result when the child answers with a version the
/// gateway serves, None otherwise (an error, silence, or only versions we do not speak).
async fn discover(
    router: &Arc<Router>,
    channel: &Arc<Channel>,
    timeout: Duration,
) -> Option<Value> {
    let params = json!({ "_meta": modern_meta() });
    let result = spawner::request(router, channel, "server/discover", params, timeout)
        .await
        .ok()?;
    let speaks = result
        .get("supportedVersions")
        .and_then(Value::as_array)
        .is_some_and(|v| {
            v.iter()
                .any(|v| v.as_str().is_some_and(protocol::is_modern))
        });
    speaks.then_some(result)
}

/// The `_meta` the gateway sends as a 2026-07-28 client of its own children.
pub fn modern_meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": protocol::MODERN[0],
        "io.modelcontextprotocol/clientCapabilities": { "sampling": {}, "elicitation": {}, "roots": {} },
        "io.modelcontextprotocol/clientInfo": { "name": "coda-mcp-gateway", "version": env!("CARGO_PKG_VERSION") },
    })
}

/// Reads what a pool child says outside any call: notifications go to the identity's feed; a
/// request (no call is in flight to carry it to a client) is refused at once.
async fn pump(channel: Arc<Channel>, router: Arc<Router>, entry: Weak<Entry>) {
    let stream = channel.standalone.clone();
    let mut changed = stream.subscribe();
    let mut last = 0;
    loop {
        let pending = stream.after(last);
        for event in pending.events {
            last = event.seq;
            let Ok(Value::Object(message)) = serde_json::from_slice::<Value>(&event.data) else {
                continue;
            };
            match (message.get("id"), message.get("method")) {
                (Some(id), Some(_)) => {
                    let refusal = jsonrpc::error_body(
                        Some(id),
                        jsonrpc::METHOD_NOT_FOUND,
                        "No client request is in flight to carry this request (sessionless clients answer only during a call)",
                        None,
                    );
                    if let Value::Object(refusal) = refusal {
                        let _ = router.answer(&channel, refusal, id).await;
                    }
                }
                (None, Some(_)) => {
                    let Some(entry) = entry.upgrade() else { return };
                    let _ = entry.feed.send(event.data);
                }
                _ => {}
            }
        }
        if pending.done || router.is_closed() || changed.changed().await.is_err() {
            return;
        }
    }
}

/// The capability a child-to-client request needs from the client.
pub fn capability_for(method: &str) -> Option<&'static str> {
    match method {
        "sampling/createMessage" => Some("sampling"),
        "elicitation/create" => Some("elicitation"),
        "roots/list" => Some("roots"),
        _ => None,
    }
}

/// An empty capability object, for `requiredCapabilities`.
pub fn capability_object(names: &[&str]) -> Map<String, Value> {
    names.iter().map(|n| (n.to_string(), json!({}))).collect()
}
