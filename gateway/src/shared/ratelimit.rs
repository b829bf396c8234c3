//! The sliding-window rate limits of `crate::ratelimit`, kept in Redis so that every replica
//! counts against one budget.
//!
//! Each key is a Redis list of the instants (milliseconds) of its admitted requests in the last
//! window, oldest first, at most `budget` long; one Lua script prunes, decides and records
//! atomically, so two replicas can never both admit the last slot. The instant is an argument
//! (this replica's wall clock, which replicas share closely enough for minute windows; tests
//! drive it), never Redis TIME. Every write renews the key's TTL to one window: a key idle
//! for a window has nothing left to say and goes.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redis::Script;

use super::{Shared, SharedError, COMMAND_TIMEOUT};
use crate::ratelimit::Decision;

/// KEYS[1]: the key's log. ARGV: now (ms), window (ms), budget (>= 1), mode.
/// Modes: `check` (decide and record when admitted), `peek` (decide only), `record` (record
/// whatever the budget says, dropping the oldest instant when full). Returns {admitted, wait ms}.
/// The same steps as `RateLimiter::decide` and `RateLimiter::record`, in the same order.
const SCRIPT: &str = r#"
local key = KEYS[1]
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local budget = tonumber(ARGV[3])
local mode = ARGV[4]
if mode == 'peek' and redis.call('EXISTS', key) == 0 then
  return {1, 0}
end
while true do
  local first = redis.call('LINDEX', key, 0)
  if not first or now - tonumber(first) < window then break end
  redis.call('LPOP', key)
end
local len = redis.call('LLEN', key)
if mode == 'record' then
  while len >= budget do
    redis.call('LPOP', key)
    len = len - 1
  end
  redis.call('RPUSH', key, now)
  redis.call('PEXPIRE', key, window)
  return {1, 0}
end
if len >= budget then
  local wait = tonumber(redis.call('LINDEX', key, 0)) + window - now
  if wait < 0 then wait = 0 end
  return {0, wait}
end
if mode == 'check' then
  redis.call('RPUSH', key, now)
  redis.call('PEXPIRE', key, window)
end
return {1, 0}
"#;

/// One named budget (`ip`, `discovery`, `identity`) shared by every replica.
pub struct SharedLimiter {
    shared: Shared,
    name: &'static str,
    budget: u32,
    window: Duration,
    script: Script,
}

#[derive(Clone, Copy)]
enum Mode {
    Check,
    Peek,
    Record,
}

impl Mode {
    fn as_str(self) -> &'static str {
        match self {
            Mode::Check => "check",
            Mode::Peek => "peek",
            Mode::Record => "record",
        }
    }
}

impl SharedLimiter {
    pub fn new(shared: Shared, name: &'static str, budget: u32, window: Duration) -> SharedLimiter {
        SharedLimiter {
            shared,
            name,
            budget,
            window,
            script: Script::new(SCRIPT),
        }
    }

    /// Admits and records a request, or refuses it (now = this replica's clock).
    pub async fn check(&self, key: &str) -> Result<Decision, SharedError> {
        self.check_at(key, wall_clock_ms()).await
    }

    /// Whether a request would be admitted, without recording one.
    pub async fn peek(&self, key: &str) -> Result<Decision, SharedError> {
        self.run(key, wall_clock_ms(), Mode::Peek).await
    }

    /// Records an event (a failed authentication) whatever the budget says.
    pub async fn record(&self, key: &str) -> Result<(), SharedError> {
        self.record_at(key, wall_clock_ms()).await
    }

    /// [`SharedLimiter::check`] at a given instant (milliseconds on any clock all callers share).
    pub async fn check_at(&self, key: &str, now_ms: u64) -> Result<Decision, SharedError> {
        self.run(key, now_ms, Mode::Check).await
    }

    /// [`SharedLimiter::peek`] at a given instant.
    pub async fn peek_at(&self, key: &str, now_ms: u64) -> Result<Decision, SharedError> {
        self.run(key, now_ms, Mode::Peek).await
    }

    /// [`SharedLimiter::record`] at a given instant.
    pub async fn record_at(&self, key: &str, now_ms: u64) -> Result<(), SharedError> {
        self.run(key, now_ms, Mode::Record).await.map(|_| ())
    }

    async fn run(&self, key: &str, now_ms: u64, mode: Mode) -> Result<Decision, SharedError> {
        if self.budget == 0 {
            // Nothing is ever admitted, so nothing needs recording (and the script's "drop the
            // oldest while full" would never end).
            return Ok(match mode {
                Mode::Record => Decision::Allow,
                _ => Decision::Deny {
                    retry_after: self.window,
                },
            });
        }
        let redis_key = self.shared.key(&["rl", self.name, key]);
        let window_ms = u64::try_from(self.window.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut invocation = self.script.key(redis_key);
        invocation
            .arg(now_ms)
            .arg(window_ms)
            .arg(self.budget)
            .arg(mode.as_str());
        let mut conn = self.shared.conn();
        // EVALSHA, falling back to EVAL once when this Redis has not seen the script yet.
        let (admitted, wait_ms): (i64, i64) =
            tokio::time::timeout(COMMAND_TIMEOUT, invocation.invoke_async(&mut conn))
                .await
                .map_err(|_| SharedError::Timeout(COMMAND_TIMEOUT))??;
        Ok(if admitted == 1 {
            Decision::Allow
        } else {
            Decision::Deny {
                retry_after: Duration::from_millis(wait_ms.max(0) as u64),
            }
        })
    }
}

/// Milliseconds since the Unix epoch on this replica's clock.
fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}
