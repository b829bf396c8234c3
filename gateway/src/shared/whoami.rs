//! The whoami cache's entries in Redis, so a token is checked with Coda once per TTL for the
//! whole deployment. Keyed by the SHA-256 of the token (hex), never the token; the value is the
//! verdict (who, or "refused"), never anything Coda said beyond that. Redis expires entries
//! (positive and negative TTLs); "Coda unavailable" is never stored.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Shared, SharedError};
use crate::identity::cache::Outcome;
use crate::identity::coda::CodaUser;

/// A verdict as stored (a versioned shape of its own, so the cache never depends on how Coda
/// spells its fields).
#[derive(Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
enum Stored {
    Valid {
        login_id: String,
        name: String,
        token_name: Option<String>,
        scoped: bool,
    },
    Invalid,
}

#[derive(Clone)]
pub struct SharedWhoami {
    shared: Shared,
}

impl SharedWhoami {
    pub fn new(shared: Shared) -> SharedWhoami {
        SharedWhoami { shared }
    }

    fn key(&self, token_hash: &[u8; 32]) -> String {
        self.shared.key(&["whoami", &hex::encode(token_hash)])
    }

    /// The fresh verdict on this token, if any replica stored one. An entry that does not parse
    /// (written by another version) counts as none: Coda is asked again and it is overwritten.
    pub async fn get(&self, token_hash: &[u8; 32]) -> Result<Option<Outcome>, SharedError> {
        let value: Option<String> = self
            .shared
            .run(redis::cmd("GET").arg(self.key(token_hash)))
            .await?;
        Ok(value
            .and_then(|v| serde_json::from_str::<Stored>(&v).ok())
            .map(|stored| match stored {
                Stored::Valid {
                    login_id,
                    name,
                    token_name,
                    scoped,
                } => Outcome::Valid(Arc::new(CodaUser {
                    login_id,
                    name,
                    token_name,
                    scoped,
                })),
                Stored::Invalid => Outcome::Invalid,
            }))
    }

    /// Stores a verdict for `ttl` (nothing for "unavailable" or a zero TTL).
    pub async fn put(
        &self,
        token_hash: &[u8; 32],
        outcome: &Outcome,
        ttl: Duration,
    ) -> Result<(), SharedError> {
        let stored = match outcome {
            Outcome::Valid(user) => Stored::Valid {
                login_id: user.login_id.clone(),
                name: user.name.clone(),
                token_name: user.token_name.clone(),
                scoped: user.scoped,
            },
            Outcome::Invalid => Stored::Invalid,
            Outcome::Unavailable { .. } => return Ok(()),
        };
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        if ttl_ms == 0 {
            return Ok(());
        }
        let value = serde_json::to_string(&stored).unwrap_or_default();
        self.shared
            .run::<()>(
                redis::cmd("SET")
                    .arg(self.key(token_hash))
                    .arg(value)
                    .arg("PX")
                    .arg(ttl_ms),
            )
            .await
    }
}
