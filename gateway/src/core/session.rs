//! Sessions: created by `initialize`, bound to an identity, ended by DELETE, idle TTL, absolute
//! lifetime, child exit or shutdown. Time is `tokio::time::Instant`, so tests pause the clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use std::time::Duration;

use rand::RngCore;
use tokio::time::Instant;

use super::channel::Channel;
use super::router::Router;
use crate::identity::Identity;

pub use super::open::{open, OpenError, Opened, Opening};

/// Why a session ended (for logs and audit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndReason {
    Deleted,
    IdleExpired,
    LifetimeExpired,
    ChildExited,
    Shutdown,
    /// Made room for a newer session of the same identity (MAX_SESSIONS_PER_IDENTITY).
    Evicted,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Deleted => "deleted",
            EndReason::IdleExpired => "idle_ttl",
            EndReason::LifetimeExpired => "max_lifetime",
            EndReason::ChildExited => "child_exited",
            EndReason::Shutdown => "shutdown",
            EndReason::Evicted => "per_identity_cap",
        }
    }
}

pub struct Session {
    pub id: String,
    pub identity: Identity,
    pub channel: Arc<Channel>,
    pub router: Arc<Router>,
    /// Session scope: this session's child ends with it.
    pub owns_child: bool,
    version: OnceLock<String>,
    created: Instant,
    last_active: Mutex<Instant>,
    in_flight: AtomicUsize,
}

impl Session {
    pub fn new(
        id: String,
        identity: Identity,
        channel: Arc<Channel>,
        router: Arc<Router>,
        owns_child: bool,
    ) -> Session {
        let now = Instant::now();
        Session {
            id,
            identity,
            channel,
            router,
            owns_child,
            version: OnceLock::new(),
            created: now,
            last_active: Mutex::new(now),
            in_flight: AtomicUsize::new(0),
        }
    }

    /// The version negotiated by `initialize`.
    pub fn version(&self) -> &str {
        self.version
            .get()
            .map(String::as_str)
            .unwrap_or(crate::protocol::DEFAULT)
    }

    pub fn set_version(&self, version: String) {
        let _ = self.version.set(version);
    }

    pub fn touch(&self) {
        *self.last_active.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn last_active(&self) -> Instant {
        *self.last_active.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts a request in flight until the guard drops; None when the per-session cap is reached.
    pub fn begin_call(self: &Arc<Self>, cap: usize) -> Option<CallGuard> {
        self.begin_calls(cap, 1)
    }

    /// Counts `count` requests (a batch's) in flight until the guard drops, all or none: None
    /// when they do not all fit under the per-session cap.
    pub fn begin_calls(self: &Arc<Self>, cap: usize, count: usize) -> Option<CallGuard> {
        self.in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                now.checked_add(count).filter(|after| *after <= cap)
            })
            .ok()?;
        Some(CallGuard {
            session: self.clone(),
            count,
        })
    }

    /// Busy sessions (calls in flight, a GET stream attached) are not idle.
    fn is_busy(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0 || self.channel.standalone_attached()
    }

    fn expiry(&self, limits: &Limits, now: Instant) -> Option<EndReason> {
        if now >= self.created + limits.max_lifetime {
            return Some(EndReason::LifetimeExpired);
        }
        if !self.is_busy() && now >= self.last_active() + limits.idle_ttl {
            return Some(EndReason::IdleExpired);
        }
        None
    }

    fn next_deadline(&self, limits: &Limits) -> Instant {
        let lifetime_end = self.created + limits.max_lifetime;
        if self.is_busy() {
            // Re-check a busy session soon; it becomes idle when its calls end.
            return lifetime_end.min(Instant::now() + limits.idle_ttl);
        }
        lifetime_end.min(self.last_active() + limits.idle_ttl)
    }
}

pub struct CallGuard {
    session: Arc<Session>,
    count: usize,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        self.session
            .in_flight
            .fetch_sub(self.count, Ordering::AcqRel);
        self.session.touch();
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub idle_ttl: Duration,
    pub max_lifetime: Duration,
    pub max_sessions: usize,
}

/// Called for every session that ends, with the reason (audit, metrics).
pub type EndHook = Arc<dyn Fn(&Session, EndReason) + Send + Sync>;

pub struct SessionStore {
    sessions: RwLock<HashMap<String, Arc<Session>>>,
    limits: Limits,
    next_key: AtomicU64,
    /// Sessions being created (counted against the cap before they are inserted).
    reserved: AtomicUsize,
    on_end: EndHook,
    wake_reaper: tokio::sync::Notify,
}

/// What looking a session up found.
pub enum Lookup {
    Found(Arc<Session>),
    /// Unknown, expired, deleted, or another identity's: all answered 404 alike.
    NotFound {
        foreign: bool,
    },
}

/// A place under the session cap, held while a session is being created.
pub struct Reservation<'a>(&'a SessionStore);

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        self.0.reserved.fetch_sub(1, Ordering::AcqRel);
    }
}

impl SessionStore {
    pub fn new(limits: Limits, on_end: EndHook) -> Arc<SessionStore> {
        Arc::new(SessionStore {
            sessions: RwLock::new(HashMap::new()),
            limits,
            next_key: AtomicU64::new(1),
            reserved: AtomicUsize::new(0),
            on_end,
            wake_reaper: tokio::sync::Notify::new(),
        })
    }

    /// A fresh session id: 128 random bits as 32 lowercase hex digits (visible ASCII only).
    pub fn new_session_id() -> String {
        let mut bytes = [0u8; 16];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        hex::encode(bytes)
    }

    /// An internal key for a new session's channel.
    pub fn next_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Session>>> {
        self.sessions.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a place under MAX_SESSIONS, or None when full.
    pub fn reserve(&self) -> Option<Reservation<'_>> {
        let taken = self.reserved.fetch_add(1, Ordering::AcqRel);
        if self.len() + taken >= self.limits.max_sessions {
            self.reserved.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Reservation(self))
    }

    /// Makes room for one more session of `subject` under `cap` by ending its least recently
    /// active idle session; false when all of its sessions are busy.
    pub async fn make_room(&self, subject: &str, cap: usize) -> bool {
        let (count, victim) = {
            let sessions = self.read();
            let mine: Vec<&Arc<Session>> = sessions
                .values()
                .filter(|s| s.identity.subject == subject)
                .collect();
            let victim = mine
                .iter()
                .filter(|s| !s.is_busy())
                .min_by_key(|s| s.last_active())
                .map(|s| s.id.clone());
            (mine.len(), victim)
        };
        if count < cap {
            return true;
        }
        match victim {
            Some(id) => {
                self.end(&id, EndReason::Evicted).await;
                true
            }
            None => false,
        }
    }

    /// Adds a session created under a reservation.
    pub fn insert(&self, session: Arc<Session>, _reservation: Reservation<'_>) {
        self.write().insert(session.id.clone(), session);
        self.wake_reaper.notify_one();
    }

    /// Whether a session with this id is here, whoever's it is (replicas: held here, it is
    /// answered here and never forwarded).
    pub fn holds(&self, id: &str) -> bool {
        self.read().contains_key(id)
    }

    /// Every session here as (id, subject), for the replicas' session directory.
    pub fn ids_and_subjects(&self) -> Vec<(String, String)> {
        self.read()
            .values()
            .map(|s| (s.id.clone(), s.identity.subject.clone()))
            .collect()
    }

    /// Finds a live session of this identity; expired ones are ended on the spot.
    pub async fn get(&self, id: &str, identity: &Identity) -> Lookup {
        let session = self.read().get(id).cloned();
        let Some(session) = session else {
            return Lookup::NotFound { foreign: false };
        };
        if session.identity.subject != identity.subject {
            return Lookup::NotFound { foreign: true };
        }
        if let Some(reason) = session.expiry(&self.limits, Instant::now()) {
            self.end(id, reason).await;
            return Lookup::NotFound { foreign: false };
        }
        session.touch();
        Lookup::Found(session)
    }

    /// Ends a session: streams closed, calls dropped, its child ended. None if it was not there.
    pub async fn end(&self, id: &str, reason: EndReason) -> Option<Arc<Session>> {
        let session = self.write().remove(id)?;
        tracing::info!(session = %short(id), reason = reason.as_str(), subject = %session.identity.subject, "session ended");
        (self.on_end)(&session, reason);
        session.channel.close();
        session.router.forget(session.channel.key);
        if session.owns_child {
            session.router.child().terminate().await;
        }
        Some(session)
    }

    /// Ends every expired session; returns how many.
    pub async fn reap(&self) -> usize {
        let now = Instant::now();
        let expired: Vec<(String, EndReason)> = self
            .read()
            .values()
            .filter_map(|s| s.expiry(&self.limits, now).map(|r| (s.id.clone(), r)))
            .collect();
        let count = expired.len();
        for (id, reason) in expired {
            self.end(&id, reason).await;
        }
        count
    }

    /// Runs until `stop` fires: wakes at the earliest deadline, so no session outlives its TTL
    /// by more than the time it takes to end it.
    pub async fn run_reaper(self: Arc<Self>, mut stop: tokio::sync::watch::Receiver<bool>) {
        loop {
            self.reap().await;
            let next = self
                .read()
                .values()
                .map(|s| s.next_deadline(&self.limits))
                .min()
                .unwrap_or_else(|| Instant::now() + self.limits.idle_ttl);
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = self.wake_reaper.notified() => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Ends every session (shutdown).
    pub async fn end_all(&self, reason: EndReason) {
        let ids: Vec<String> = self.read().keys().cloned().collect();
        let ends = ids.iter().map(|id| self.end(id, reason));
        futures_util::future::join_all(ends).await;
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }
}

/// The first 8 characters of a session id: enough to correlate logs, too few to hijack.
/// Never splits a character (ids from headers are ASCII, but this takes any text).
pub fn short(id: &str) -> &str {
    let mut end = id.len().min(8);
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    &id[..end]
}

#[cfg(test)]
mod short_tests {
    use super::short;

    /// Found by fuzz/session_id: the short form never splits a character.
    #[test]
    fn short_ids_keep_whole_characters() {
        assert_eq!(short("0123456789abcdef"), "01234567");
        assert_eq!(short("abc"), "abc");
        assert_eq!(
            short("\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}"),
            "\u{e9}\u{e9}\u{e9}\u{e9}"
        );
        assert_eq!(short("abcdefg\u{fffd}"), "abcdefg");
    }
}
