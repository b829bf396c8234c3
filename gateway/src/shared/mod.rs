//! State several replicas share, in Redis (REDIS_URL). Without it nothing here is used and
//! every replica keeps its own state, as a single gateway does.
//!
//! One multiplexed connection per process (`ConnectionManager` reconnects by itself); every key
//! this deployment writes starts with REDIS_PREFIX and has a TTL. Redis trouble is reported by
//! `/ready`, and state that decides who gets in fails closed (503 with Retry-After), never open.

pub mod ratelimit;
pub mod whoami;

use std::time::Duration;

use redis::aio::ConnectionManager;

use crate::config::ReplicaSettings;

/// How long one Redis command may take before the caller treats Redis as down.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// Retry-After (seconds) of the 503 a request gets while Redis is down: long enough for a
/// reconnect, short enough that clients come back soon after Redis does.
pub const RETRY_AFTER_SECS: u64 = 5;

/// Why shared state could not be read or written: Redis is down, slow or refusing.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
    #[error("Redis failed: {0}")]
    Redis(#[from] redis::RedisError),
}

/// The Redis connection and the key prefix of this deployment.
#[derive(Clone)]
pub struct Shared {
    conn: ConnectionManager,
    prefix: String,
    /// How other replicas reach this one.
    pub replica_url: String,
}

impl Shared {
    /// Connects (bounded by `COMMAND_TIMEOUT`); a Redis that cannot be reached at startup is an
    /// error the caller reports and exits on.
    pub async fn connect(settings: &ReplicaSettings) -> Result<Shared, SharedError> {
        let client = redis::Client::open(settings.redis_url.expose())?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT));
        let conn = tokio::time::timeout(
            COMMAND_TIMEOUT * 2,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| SharedError::Timeout(COMMAND_TIMEOUT * 2))??;
        Ok(Shared {
            conn,
            prefix: settings.prefix.clone(),
            replica_url: settings.replica_url.clone(),
        })
    }

    /// `<prefix>:<part>:<part>...`
    pub fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        key
    }

    /// A connection handle (cheap to clone; commands on it are multiplexed).
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Runs one command under `COMMAND_TIMEOUT`.
    pub async fn run<T: redis::FromRedisValue>(
        &self,
        command: &redis::Cmd,
    ) -> Result<T, SharedError> {
        let mut conn = self.conn.clone();
        tokio::time::timeout(COMMAND_TIMEOUT, command.query_async(&mut conn))
            .await
            .map_err(|_| SharedError::Timeout(COMMAND_TIMEOUT))?
            .map_err(SharedError::from)
    }

    /// Whether Redis answers PING now (for `/ready`).
    pub async fn ping(&self) -> bool {
        self.run::<String>(&redis::cmd("PING")).await.is_ok()
    }
}
