//! Who is calling. The edge establishes it (bearer token checks live beside the edge) and hands it
//! to the core, which binds each session to the identity that created it.

use sha2::{Digest, Sha256};

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
