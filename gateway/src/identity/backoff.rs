//! Exponential backoff for readiness probes of Coda, so that a down Coda is not asked on every
//! `/ready`: after a probe that got no
//! answer, the next one waits `first`, then twice as long each time, up to `max`; an answer resets it.

use std::time::Duration;

use tokio::time::Instant;

/// The wait after the first unanswered readiness probe.
pub const READY_PROBE_FIRST: Duration = Duration::from_secs(5);
/// The longest wait between readiness probes while Coda does not answer.
pub const READY_PROBE_MAX: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    /// The wait the next failure imposes.
    next_wait: Duration,
    /// No attempt before this instant (None: go ahead).
    not_before: Option<Instant>,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Backoff {
        Backoff {
            first,
            max: max.max(first),
            next_wait: first,
            not_before: None,
        }
    }

    /// Whether an attempt may be made at `now`.
    pub fn may_try(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|at| now >= at)
    }

    /// An attempt at `now` got no answer: wait before the next one, longer each time.
    pub fn failed(&mut self, now: Instant) {
        self.not_before = Some(now + self.next_wait);
        self.next_wait = (self.next_wait * 2).min(self.max);
    }

    /// An attempt was answered: the next failure starts over at `first`.
    pub fn succeeded(&mut self) {
        self.next_wait = self.first;
        self.not_before = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn waits_grow_to_the_cap_and_an_answer_resets_them() {
        let mut backoff = Backoff::new(Duration::from_secs(5), Duration::from_secs(60));
        assert!(backoff.may_try(Instant::now()));
        let mut expected = Vec::new();
        let mut seen = Vec::new();
        for wait in [5u64, 10, 20, 40, 60, 60] {
            backoff.failed(Instant::now());
            let started = Instant::now();
            // Step a second at a time until allowed again: the wait is exactly `wait` seconds.
            while !backoff.may_try(Instant::now()) {
                tokio::time::advance(Duration::from_secs(1)).await;
            }
            expected.push(wait);
            seen.push(Instant::now().duration_since(started).as_secs());
        }
        assert_eq!(seen, expected);
        backoff.succeeded();
        assert!(backoff.may_try(Instant::now()));
        backoff.failed(Instant::now());
        tokio::time::advance(Duration::from_secs(4)).await;
        assert!(!backoff.may_try(Instant::now()), "back to the first wait");
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(backoff.may_try(Instant::now()));
    }
}
