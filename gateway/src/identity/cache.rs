//! A bounded cache of token checks, keyed by the SHA-256 of the token (never the token itself).
//!
//! Positive answers live for AUTH_CACHE_TTL_SECS, negative ones for less, "Coda unavailable" not
//! at all. Concurrent first requests with one token share one lookup (single flight).
//!
//! With REDIS_URL the entries live in Redis instead (`shared::whoami`), for every replica at
//! once; single flight stays per process. Redis trouble is an error, never a guess.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use tokio::time::Instant;

use super::coda::CodaUser;
use super::Secret;
use crate::shared::whoami::SharedWhoami;
use crate::shared::{Shared, SharedError};

/// The outcome of checking one token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Valid(Arc<CodaUser>),
    Invalid,
    /// Nobody could say; `retry_after` in seconds.
    Unavailable {
        retry_after: u64,
    },
}

#[derive(Clone, Copy, Debug)]
pub struct CacheLimits {
    pub positive_ttl: Duration,
    pub negative_ttl: Duration,
    pub max_entries: usize,
}

type Key = [u8; 32];

struct Entry {
    outcome: Outcome,
    until: Instant,
}

pub struct TokenCache {
    limits: CacheLimits,
    entries: Mutex<HashMap<Key, Entry>>,
    in_flight: Mutex<HashMap<Key, Arc<OnceCell<Outcome>>>>,
    /// Where entries live when replicas share them; `entries` then stays empty.
    shared: Option<SharedWhoami>,
}

/// Whether an answer came from the cache (for metrics and audit).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Cache,
    Upstream,
}

impl TokenCache {
    pub fn new(limits: CacheLimits) -> TokenCache {
        TokenCache {
            limits,
            entries: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            shared: None,
        }
    }

    /// Keeps entries in Redis, shared with the other replicas, from now on.
    pub fn share(&mut self, shared: Shared) {
        self.shared = Some(SharedWhoami::new(shared));
    }

    fn key(token: &Secret) -> Key {
        Sha256::digest(token.expose().as_bytes()).into()
    }

    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks a token: from the cache when fresh, else through `lookup`, shared with every
    /// concurrent caller asking about the same token. Fails only when the entries live in Redis
    /// and Redis did not answer.
    pub async fn check<F, Fut>(
        &self,
        token: &Secret,
        lookup: F,
    ) -> Result<(Outcome, Source), SharedError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Outcome>,
    {
        let key = Self::key(token);
        if let Some(fresh) = self.fresh(&key).await? {
            return Ok((fresh, Source::Cache));
        }
        let cell = self
            .in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(key)
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone();
        let outcome = cell.get_or_init(lookup).await.clone();
        // Store before leaving the flight, so a newcomer finds the cache rather than a new lookup.
        let stored = self.store(key, &outcome).await;
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if in_flight.get(&key).is_some_and(|c| Arc::ptr_eq(c, &cell)) {
            in_flight.remove(&key);
        }
        stored.map(|()| (outcome, Source::Upstream))
    }

    /// The fresh entry for `key`, from Redis when shared.
    async fn fresh(&self, key: &Key) -> Result<Option<Outcome>, SharedError> {
        if let Some(shared) = &self.shared {
            return shared.get(key).await;
        }
        let now = Instant::now();
        Ok(self
            .entries
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .filter(|entry| entry.until > now)
            .map(|entry| entry.outcome.clone()))
    }

    /// Whether Coda accepted this token recently (a fresh positive entry, whichever replica
    /// asked): such a token is already proven, so guessing cannot be what it is doing. Never
    /// asks Coda.
    pub async fn is_proven(&self, token: &Secret) -> Result<bool, SharedError> {
        Ok(matches!(
            self.fresh(&Self::key(token)).await?,
            Some(Outcome::Valid(_))
        ))
    }

    async fn store(&self, key: Key, outcome: &Outcome) -> Result<(), SharedError> {
        let ttl = match outcome {
            Outcome::Valid(_) => self.limits.positive_ttl,
            Outcome::Invalid => self.limits.negative_ttl,
            Outcome::Unavailable { .. } => return Ok(()),
        };
        match &self.shared {
            Some(shared) => shared.put(&key, outcome, ttl).await,
            None => {
                self.store_local(key, outcome, ttl);
                Ok(())
            }
        }
    }

    fn store_local(&self, key: Key, outcome: &Outcome, ttl: Duration) {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= self.limits.max_entries && !entries.contains_key(&key) {
            entries.retain(|_, e| e.until > now);
            if entries.len() >= self.limits.max_entries {
                // Still full of live entries: let the one closest to expiry go.
                if let Some(oldest) = entries.iter().min_by_key(|(_, e)| e.until).map(|(k, _)| *k) {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(
            key,
            Entry {
                outcome: outcome.clone(),
                until: now + ttl,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn user() -> Arc<CodaUser> {
        Arc::new(CodaUser {
            login_id: "a@example.com".into(),
            name: "A".into(),
            token_name: None,
            scoped: false,
        })
    }

    fn limits() -> CacheLimits {
        CacheLimits {
            positive_ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(10),
            max_entries: 2,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn positive_answers_expire_after_ttl() {
        let cache = TokenCache::new(limits());
        let calls = AtomicUsize::new(0);
        let token = Secret::new("token-one-123");
        let lookup = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Outcome::Valid(user())
        };
        assert_eq!(
            cache.check(&token, lookup).await.unwrap().1,
            Source::Upstream
        );
        assert_eq!(cache.check(&token, lookup).await.unwrap().1, Source::Cache);
        tokio::time::advance(Duration::from_secs(61)).await;
        assert_eq!(
            cache.check(&token, lookup).await.unwrap().1,
            Source::Upstream
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn negative_answers_live_shorter_and_unavailable_is_not_kept() {
        let cache = TokenCache::new(limits());
        let token = Secret::new("token-bad-123");
        cache
            .check(&token, || async { Outcome::Invalid })
            .await
            .unwrap();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(
            cache
                .check(&token, || async { Outcome::Invalid })
                .await
                .unwrap()
                .1,
            Source::Cache
        );
        tokio::time::advance(Duration::from_secs(6)).await;
        assert_eq!(
            cache
                .check(&token, || async { Outcome::Invalid })
                .await
                .unwrap()
                .1,
            Source::Upstream
        );
        let other = Secret::new("token-other-123");
        cache
            .check(&other, || async { Outcome::Unavailable { retry_after: 5 } })
            .await
            .unwrap();
        assert_eq!(
            cache
                .check(&other, || async { Outcome::Invalid })
                .await
                .unwrap()
                .1,
            Source::Upstream
        );
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_first_requests_share_one_lookup() {
        let cache = Arc::new(TokenCache::new(limits()));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let cache = cache.clone();
            let calls = calls.clone();
            tasks.push(tokio::spawn(async move {
                let token = Secret::new("token-shared-123");
                cache
                    .check(&token, || async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        Outcome::Valid(user())
                    })
                    .await
                    .unwrap()
                    .0
            }));
        }
        for task in tasks {
            assert!(matches!(task.await.unwrap(), Outcome::Valid(_)));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn only_fresh_positive_answers_are_proven() {
        let cache = TokenCache::new(limits());
        let good = Secret::new("token-good-123");
        let bad = Secret::new("token-bad-123");
        assert!(!cache.is_proven(&good).await.unwrap(), "never checked");
        cache
            .check(&good, || async { Outcome::Valid(user()) })
            .await
            .unwrap();
        cache
            .check(&bad, || async { Outcome::Invalid })
            .await
            .unwrap();
        assert!(cache.is_proven(&good).await.unwrap());
        assert!(!cache.is_proven(&bad).await.unwrap());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(!cache.is_proven(&good).await.unwrap(), "expired");
    }

    #[tokio::test(start_paused = true)]
    async fn stays_bounded() {
        let cache = TokenCache::new(limits());
        for i in 0..10 {
            cache
                .check(&Secret::new(format!("token-{i}-abcdef")), || async {
                    Outcome::Invalid
                })
                .await
                .unwrap();
        }
        assert!(cache.len() <= 2);
    }
}
