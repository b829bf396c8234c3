//! Sliding-window rate limits with bounded memory.
//!
//! Each key keeps the instants of its admitted requests in the last window (at most `budget` of
//! them), so a key is never admitted more than `budget` times in any window and never refused
//! while it has fewer. Keys idle for a whole window are evicted; when the table is full of
//! active keys, the least recently active key is forgotten first.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Refused; the earliest moment a request would be admitted is this far away.
    Deny {
        retry_after: Duration,
    },
}

pub struct RateLimiter {
    budget: usize,
    window: Duration,
    max_keys: usize,
    keys: Mutex<HashMap<String, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(budget: u32, window: Duration, max_keys: usize) -> RateLimiter {
        RateLimiter {
            budget: budget as usize,
            window,
            max_keys: max_keys.max(1),
            keys: Mutex::new(HashMap::new()),
        }
    }

    pub fn window(&self) -> Duration {
        self.window
    }

    /// Admits and records a request, or refuses it.
    pub fn check(&self, key: &str, now: Instant) -> Decision {
        self.decide(key, now, true)
    }

    /// Whether a request would be admitted, without recording one.
    pub fn peek(&self, key: &str, now: Instant) -> Decision {
        self.decide(key, now, false)
    }

    /// Records an event (a failed authentication) whatever the budget says.
    pub fn record(&self, key: &str, now: Instant) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        let log = self.log_for(&mut keys, key, now);
        prune(log, now, self.window);
        if log.len() == self.budget {
            log.pop_front();
        }
        log.push_back(now);
    }

    fn decide(&self, key: &str, now: Instant, record: bool) -> Decision {
        if self.budget == 0 {
            return Decision::Deny {
                retry_after: self.window,
            };
        }
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if !record && !keys.contains_key(key) {
            return Decision::Allow;
        }
        let log = self.log_for(&mut keys, key, now);
        prune(log, now, self.window);
        if log.len() >= self.budget {
            let oldest = log.front().copied().unwrap_or(now);
            return Decision::Deny {
                retry_after: (oldest + self.window).saturating_duration_since(now),
            };
        }
        if record {
            log.push_back(now);
        }
        Decision::Allow
    }

    fn log_for<'a>(
        &self,
        keys: &'a mut HashMap<String, VecDeque<Instant>>,
        key: &str,
        now: Instant,
    ) -> &'a mut VecDeque<Instant> {
        if !keys.contains_key(key) && keys.len() >= self.max_keys {
            let window = self.window;
            keys.retain(|_, log| {
                log.back()
                    .is_some_and(|last| now.saturating_duration_since(*last) < window)
            });
            if keys.len() >= self.max_keys {
                let stalest = keys
                    .iter()
                    .min_by_key(|(_, log)| log.back().copied())
                    .map(|(k, _)| k.clone());
                if let Some(stalest) = stalest {
                    keys.remove(&stalest);
                }
            }
        }
        keys.entry(key.to_string()).or_default()
    }

    pub fn tracked_keys(&self) -> usize {
        self.keys.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

fn prune(log: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while log
        .front()
        .is_some_and(|t| now.saturating_duration_since(*t) >= window)
    {
        log.pop_front();
    }
}

/// A budget as the gateway uses it: in this process (the default), or in Redis shared by every
/// replica (REDIS_URL). Redis trouble is an error the caller answers with 503, never an
/// admission.
pub enum Limiter {
    Local(RateLimiter),
    Shared(crate::shared::ratelimit::SharedLimiter),
}

impl Limiter {
    /// Admits and records a request, or refuses it.
    pub async fn check(&self, key: &str) -> Result<Decision, crate::shared::SharedError> {
        match self {
            Limiter::Local(limiter) => Ok(limiter.check(key, Instant::now())),
            Limiter::Shared(limiter) => limiter.check(key).await,
        }
    }

    /// Whether a request would be admitted, without recording one.
    pub async fn peek(&self, key: &str) -> Result<Decision, crate::shared::SharedError> {
        match self {
            Limiter::Local(limiter) => Ok(limiter.peek(key, Instant::now())),
            Limiter::Shared(limiter) => limiter.peek(key).await,
        }
    }

    /// Records an event (a failed authentication) whatever the budget says.
    pub async fn record(&self, key: &str) -> Result<(), crate::shared::SharedError> {
        match self {
            Limiter::Local(limiter) => {
                limiter.record(key, Instant::now());
                Ok(())
            }
            Limiter::Shared(limiter) => limiter.record(key).await,
        }
    }
}

/// Seconds for a Retry-After header: rounded up, at least 1.
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// For any arrival sequence: never more than the budget admitted in any window, and never
        /// a refusal while the trailing window holds fewer than the budget.
        #[test]
        fn admits_exactly_the_budget(budget in 1u32..6, gaps in proptest::collection::vec(0u64..400, 1..80)) {
            let window = Duration::from_millis(1000);
            let limiter = RateLimiter::new(budget, window, 16);
            let start = Instant::now();
            let mut now = start;
            let mut admitted: Vec<Instant> = Vec::new();
            for gap in gaps {
                now += Duration::from_millis(gap);
                let in_window = admitted.iter().filter(|t| now.duration_since(**t) < window).count();
                let decision = limiter.check("k", now);
                if in_window < budget as usize {
                    prop_assert_eq!(decision, Decision::Allow);
                    admitted.push(now);
                } else {
                    let refused = matches!(decision, Decision::Deny { .. });
                    prop_assert!(refused);
                }
            }
            for (i, t) in admitted.iter().enumerate() {
                let count = admitted[i..].iter().filter(|u| u.duration_since(*t) < window).count();
                prop_assert!(count <= budget as usize);
            }
        }
    }

    #[test]
    fn memory_stays_bounded_and_idle_keys_go() {
        let limiter = RateLimiter::new(3, Duration::from_secs(60), 4);
        let now = Instant::now();
        for i in 0..100 {
            limiter.check(&format!("ip-{i}"), now);
        }
        assert!(limiter.tracked_keys() <= 4);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(2500)), 3);
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
    }
}
