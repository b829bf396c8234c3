//! The session directory: legacy session id -> the replica that owns it (its REPLICA_URL) and
//! the subject it belongs to, so a replica that receives a request for a session it does not hold
//! knows where to forward it.
//!
//! An entry is written before the `initialize` answer leaves (the client's next request may land
//! on any replica), refreshed every third of REPLICA_DIRECTORY_TTL_SECS while the session lives,
//! and removed when it ends. A replica that dies without cleanup stops owning its sessions when
//! the TTL runs out; the forward to it fails sooner still (connection refused), which also
//! answers 404. The 2026-07-28 era is sessionless and has no entries.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::{Shared, SharedError};
use crate::core::session::SessionStore;

/// Ended sessions waiting for their entry to be removed; past this many the entries simply
/// expire with their TTL.
const ENDED_BACKLOG: usize = 4096;

/// Entries written per Redis round trip when refreshing.
const REFRESH_BATCH: usize = 256;

/// Who owns a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The owner's REPLICA_URL.
    pub owner: String,
    /// The subject (Coda login) the session belongs to.
    pub subject: String,
}

/// Where ended sessions are announced (from the store's end hook, which is synchronous).
#[derive(Clone)]
pub struct Ended(mpsc::Sender<String>);

impl Ended {
    pub fn channel() -> (Ended, mpsc::Receiver<String>) {
        let (tx, rx) = mpsc::channel(ENDED_BACKLOG);
        (Ended(tx), rx)
    }

    /// Never blocks: a full backlog leaves the entry to its TTL.
    pub fn announce(&self, id: &str) {
        let _ = self.0.try_send(id.to_string());
    }
}

/// The directory of one deployment, seen from one replica.
#[derive(Clone)]
pub struct Directory {
    shared: Shared,
    ttl: Duration,
}

impl Directory {
    pub fn new(shared: Shared, ttl: Duration) -> Directory {
        Directory { shared, ttl }
    }

    fn key(&self, id: &str) -> String {
        self.shared.key(&["session", id])
    }

    fn entry(&self, subject: &str) -> String {
        let entry = Entry {
            owner: self.shared.replica_url.clone(),
            subject: subject.to_string(),
        };
        serde_json::to_string(&entry).unwrap_or_default()
    }

    /// This replica owns session `id` of `subject`.
    pub async fn register(&self, id: &str, subject: &str) -> Result<(), SharedError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(self.key(id))
            .arg(self.entry(subject))
            .arg("EX")
            .arg(self.ttl.as_secs());
        self.shared.run::<()>(&cmd).await
    }

    /// Who owns session `id`; None when no live replica does. An entry that does not parse
    /// (another version's, or tampered with) is treated as absent.
    pub async fn lookup(&self, id: &str) -> Result<Option<Entry>, SharedError> {
        let mut cmd = redis::cmd("GET");
        cmd.arg(self.key(id));
        let raw: Option<String> = self.shared.run(&cmd).await?;
        Ok(raw.and_then(|raw| serde_json::from_str(&raw).ok()))
    }

    /// Removes the entry of an ended session, if it is still ours.
    pub async fn remove(&self, id: &str) -> Result<(), SharedError> {
        let Some(entry) = self.lookup(id).await? else {
            return Ok(());
        };
        if entry.owner != self.shared.replica_url {
            return Ok(());
        }
        let mut cmd = redis::cmd("DEL");
        cmd.arg(self.key(id));
        self.shared.run::<()>(&cmd).await
    }

    /// Rewrites the entries of these sessions with a fresh TTL, a batch per round trip.
    pub async fn refresh(&self, sessions: &[(String, String)]) -> Result<(), SharedError> {
        for batch in sessions.chunks(REFRESH_BATCH) {
            let mut pipe = redis::pipe();
            for (id, subject) in batch {
                pipe.cmd("SET")
                    .arg(self.key(id))
                    .arg(self.entry(subject))
                    .arg("EX")
                    .arg(self.ttl.as_secs())
                    .ignore();
            }
            let mut conn = self.shared.conn();
            tokio::time::timeout(super::COMMAND_TIMEOUT, pipe.query_async::<()>(&mut conn))
                .await
                .map_err(|_| SharedError::Timeout(super::COMMAND_TIMEOUT))??;
        }
        Ok(())
    }

    /// Keeps the entries of this replica's sessions alive and removes those of ended sessions,
    /// until `stop`. Redis trouble is logged and retried at the next tick: the entries of a
    /// replica cut off from Redis for longer than the TTL expire, and its sessions answer 404
    /// elsewhere, which is the documented failure.
    pub async fn run(
        self,
        store: Arc<SessionStore>,
        mut ended: mpsc::Receiver<String>,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut tick = tokio::time::interval(self.ttl / 3);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let sessions = store.ids_and_subjects();
                    if let Err(error) = self.refresh(&sessions).await {
                        tracing::warn!(%error, sessions = sessions.len(), "could not refresh the session directory in Redis");
                    }
                }
                id = ended.recv() => {
                    let Some(id) = id else { return };
                    if let Err(error) = self.remove(&id).await {
                        tracing::warn!(%error, "could not remove an ended session from the session directory");
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }
}
