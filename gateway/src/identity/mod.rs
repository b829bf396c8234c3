//! Who is calling. The edge establishes it (bearer token checks live beside the edge) and hands it
//! to the core, which binds each session to the identity that created it.

pub mod backoff;
pub mod cache;
pub mod coda;

use std::collections::HashSet;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use cache::{CacheLimits, Outcome, Source, TokenCache};
use coda::{CodaClient, WhoamiError};

#[derive(Clone, PartialEq, Eq)]
pub struct Identity {
    /// A stable name for the caller (a Coda loginId), or `anonymous` when auth is off.
    pub subject: String,
    /// The first 12 hex digits of the SHA-256 of the caller's token: safe to log.
    pub token_hash: Option<String>,
    /// The caller's own upstream credential, passed to its child's environment and nowhere else.
    pub credential: Option<Secret>,
}

impl Identity {
    pub fn anonymous() -> Identity {
        Identity {
            subject: "anonymous".into(),
            token_hash: None,
            credential: None,
        }
    }
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Identity")
            .field("subject", &self.subject)
            .field("token_hash", &self.token_hash)
            .finish_non_exhaustive()
    }
}

/// Why a request was not admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer` header.
    Missing,
    /// A token was sent where tokens are refused (the query string) or in a malformed header.
    Malformed,
    /// Coda refused the token.
    InvalidToken,
    /// A valid Coda user who is not on ALLOWED_USERS.
    NotAllowed { subject: String },
    /// Coda could not be asked; retry after this many seconds.
    Unavailable { retry_after: u64 },
    /// The state replicas share (Redis) did not answer, so the token could not be checked.
    StateUnavailable { retry_after: u64 },
}

impl Refusal {
    /// The reason as audit events name it.
    pub fn reason(&self) -> &'static str {
        match self {
            Refusal::Missing => "missing_token",
            Refusal::Malformed => "malformed_token",
            Refusal::InvalidToken => "invalid_token",
            Refusal::NotAllowed { .. } => "not_allowed",
            Refusal::Unavailable { .. } => "coda_unavailable",
            Refusal::StateUnavailable { .. } => "shared_state_unavailable",
        }
    }
}

/// Checks bearer tokens against Coda through the cache and applies the allow-list.
pub struct Authenticator {
    /// When Coda last gave a definitive answer (accepted or refused a token): readiness.
    last_answer: std::sync::Mutex<Option<tokio::time::Instant>>,
    probe: tokio::sync::Mutex<()>,
    /// When readiness may ask Coda again after Coda did not answer (backing off, so that
    /// `/ready` polls do not become a stream of whoami calls).
    probe_backoff: std::sync::Mutex<backoff::Backoff>,
    client: CodaClient,
    cache: TokenCache,
    /// Lower-cased loginIds; None admits every valid Coda user.
    allowed: Option<HashSet<String>>,
}

/// Seconds to suggest in Retry-After when Coda gave no hint.
const DEFAULT_RETRY_AFTER: u64 = 5;

impl Authenticator {
    pub fn new(client: CodaClient, limits: CacheLimits, allowed: &[String]) -> Authenticator {
        // `ALLOWED_USERS=` (set but empty) arrives as one blank entry: it means "anyone".
        let allowed: HashSet<String> = allowed
            .iter()
            .map(|a| a.trim().to_ascii_lowercase())
            .filter(|a| !a.is_empty())
            .collect();
        let allowed = (!allowed.is_empty()).then_some(allowed);
        Authenticator {
            last_answer: std::sync::Mutex::new(None),
            probe: tokio::sync::Mutex::new(()),
            probe_backoff: std::sync::Mutex::new(backoff::Backoff::new(
                backoff::READY_PROBE_FIRST,
                backoff::READY_PROBE_MAX,
            )),
            client,
            cache: TokenCache::new(limits),
            allowed,
        }
    }

    pub fn has_allow_list(&self) -> bool {
        self.allowed.is_some()
    }

    /// Keeps the token cache in Redis, shared with the other replicas (REDIS_URL).
    pub fn share_cache(&mut self, shared: crate::shared::Shared) {
        self.cache.share(shared);
    }

    /// Whether Coda accepted this token recently (a fresh positive cache entry); never asks
    /// Coda. An error when the cache lives in Redis and Redis did not answer.
    pub async fn is_proven(&self, token: &Secret) -> Result<bool, crate::shared::SharedError> {
        self.cache.is_proven(token).await
    }

    /// Who owns this token, if Coda says it is valid and the allow-list admits them.
    pub async fn authenticate(&self, token: Secret) -> Result<(Identity, Source), Refusal> {
        let (outcome, source) = self
            .cache
            .check(&token, || async {
                let answer = self.client.whoami(&token).await;
                self.note_answer(&answer);
                if let Err(WhoamiError::Unavailable { detail, .. }) = &answer {
                    tracing::warn!(token = %token.fingerprint(), %detail, "Coda whoami unavailable");
                }
                outcome_of(answer)
            })
            .await
            .map_err(|e| {
                tracing::warn!(token = %token.fingerprint(), error = %e, "the shared token cache (Redis) failed");
                Refusal::StateUnavailable {
                    retry_after: crate::shared::RETRY_AFTER_SECS,
                }
            })?;
        let user = match outcome {
            Outcome::Valid(user) => user,
            Outcome::Invalid => return Err(Refusal::InvalidToken),
            Outcome::Unavailable { retry_after } => {
                return Err(Refusal::Unavailable { retry_after })
            }
        };
        if let Some(allowed) = &self.allowed {
            if !allowed.contains(&user.login_id.to_ascii_lowercase()) {
                return Err(Refusal::NotAllowed {
                    subject: user.login_id.clone(),
                });
            }
        }
        let identity = Identity {
            subject: user.login_id.clone(),
            token_hash: Some(token.fingerprint()),
            credential: Some(token),
        };
        Ok((identity, source))
    }

    fn note_answer(&self, answer: &Result<coda::CodaUser, WhoamiError>) {
        if !matches!(answer, Err(WhoamiError::Unavailable { .. })) {
            *self.last_answer.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(tokio::time::Instant::now());
        }
    }

    /// Whether Coda answered within `recent`; if not, asks it now about `token` (one probe at a
    /// time) and says whether it answered. While Coda keeps not answering, it is asked at most
    /// as often as the backoff allows, so frequent readiness probes do not hammer a Coda in
    /// trouble (or a network path that is down) with a whoami each.
    pub async fn coda_reachable(&self, token: &Secret, recent: std::time::Duration) -> bool {
        let fresh = |this: &Self| {
            this.last_answer
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some_and(|at| at.elapsed() < recent)
        };
        if fresh(self) {
            return true;
        }
        let _probe = self.probe.lock().await;
        if fresh(self) {
            return true;
        }
        let backoff = || self.probe_backoff.lock().unwrap_or_else(|e| e.into_inner());
        if !backoff().may_try(tokio::time::Instant::now()) {
            return false;
        }
        let answer = self.client.whoami(token).await;
        self.note_answer(&answer);
        let now = tokio::time::Instant::now();
        if fresh(self) {
            backoff().succeeded();
            true
        } else {
            backoff().failed(now);
            false
        }
    }

    /// The startup check of the operator's token: long enough, and Coda knows it (the gateway
    /// refuses to start otherwise).
    pub async fn check_operator_token(&self, token: &Secret) -> Result<coda::CodaUser, String> {
        if token.expose().len() < 10 {
            return Err("CODA_API_TOKEN is shorter than 10 characters; copy the whole token from https://coda.io/account".into());
        }
        let answer = self.client.whoami(token).await;
        self.note_answer(&answer);
        answer.map_err(|e| match e {
            WhoamiError::Rejected { status } => format!("Coda refused CODA_API_TOKEN (HTTP {status}); create a new token at https://coda.io/account"),
            WhoamiError::Unavailable { detail, .. } => format!("could not reach Coda to check CODA_API_TOKEN ({detail}); check CODA_API_BASE_URL and the network"),
        })
    }
}

/// What a whoami answer means for the cache: details stay behind, only the verdict goes on.
pub fn outcome_of(answer: Result<coda::CodaUser, WhoamiError>) -> Outcome {
    match answer {
        Ok(user) => Outcome::Valid(Arc::new(user)),
        Err(WhoamiError::Rejected { .. }) => Outcome::Invalid,
        Err(WhoamiError::Unavailable { retry_after, .. }) => Outcome::Unavailable {
            retry_after: retry_after.unwrap_or(DEFAULT_RETRY_AFTER).clamp(1, 300),
        },
    }
}

/// A secret string whose Debug and Display never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    /// The secret itself, for the one place that needs it (a child's environment, an upstream call).
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// A short hash that names the secret in logs.
    pub fn fingerprint(&self) -> String {
        token_fingerprint(&self.0)
    }
}

/// Lets settings hold secrets directly (clap builds them from the flag's or variable's text).
impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_string())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({})", self.fingerprint())
    }
}

/// The first 12 hex digits of the SHA-256 of a token.
pub fn token_fingerprint(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    hex::encode(&digest[..6])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_print() {
        let secret = Secret::new("super-secret-token");
        assert!(!format!("{secret:?}").contains("super-secret"));
        assert_eq!(secret.fingerprint().len(), 12);
    }
}
