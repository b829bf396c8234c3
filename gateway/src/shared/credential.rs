//! The credential a replica shows when it forwards a request to the owner of a session: an
//! HMAC-SHA256 under REPLICA_SECRET over the method, the session id and the time, so the secret
//! itself never travels and a captured header is good for one method on one session for
//! `MAX_SKEW` at most. A request that carries it is never forwarded again (the loop guard).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The header that carries the credential: `<unix seconds>.<hex HMAC>`.
pub const HEADER: &str = "x-replica-credential";

/// How far the forwarder's clock may be from the owner's, either way (seconds).
pub const MAX_SKEW: u64 = 30;

/// Why a forwarded request's credential was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum CredentialError {
    #[error("the replica credential is not `<seconds>.<hex>`")]
    Malformed,
    #[error(
        "the replica credential is older or newer than {MAX_SKEW} s (clocks apart, or replayed)"
    )]
    Stale,
    #[error("the replica credential does not match (another REPLICA_SECRET, or tampered with)")]
    Mismatch,
}

fn mac(secret: &[u8], method: &str, session: &str, at: u64) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(b"coda-mcp-gateway replica forward v1\n");
    mac.update(method.as_bytes());
    mac.update(b"\n");
    mac.update(session.as_bytes());
    mac.update(b"\n");
    mac.update(at.to_string().as_bytes());
    mac
}

/// The header value for forwarding `method` on `session` at `now` (unix seconds).
pub fn sign(secret: &[u8], method: &str, session: &str, now: u64) -> String {
    let tag = mac(secret, method, session, now).finalize().into_bytes();
    format!("{now}.{}", hex::encode(tag))
}

/// Checks a header value for `method` on `session` at `now` (constant-time comparison).
pub fn verify(
    secret: &[u8],
    method: &str,
    session: &str,
    value: &str,
    now: u64,
) -> Result<(), CredentialError> {
    let (at, tag) = value.split_once('.').ok_or(CredentialError::Malformed)?;
    let at: u64 = at.parse().map_err(|_| CredentialError::Malformed)?;
    let tag = hex::decode(tag).map_err(|_| CredentialError::Malformed)?;
    if at.abs_diff(now) > MAX_SKEW {
        return Err(CredentialError::Stale);
    }
    mac(secret, method, session, at)
        .verify_slice(&tag)
        .map_err(|_| CredentialError::Mismatch)
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_signed_value_verifies_for_its_method_and_session_only() {
        let value = sign(SECRET, "POST", "abc", 1_000);
        assert_eq!(verify(SECRET, "POST", "abc", &value, 1_000), Ok(()));
        assert_eq!(
            verify(SECRET, "POST", "abc", &value, 1_000 + MAX_SKEW),
            Ok(())
        );
        assert_eq!(
            verify(SECRET, "DELETE", "abc", &value, 1_000),
            Err(CredentialError::Mismatch)
        );
        assert_eq!(
            verify(SECRET, "POST", "abd", &value, 1_000),
            Err(CredentialError::Mismatch)
        );
        assert_eq!(
            verify(
                b"another secret of enough length!!",
                "POST",
                "abc",
                &value,
                1_000
            ),
            Err(CredentialError::Mismatch)
        );
    }

    #[test]
    fn old_future_and_malformed_values_are_refused() {
        let value = sign(SECRET, "GET", "abc", 1_000);
        assert_eq!(
            verify(SECRET, "GET", "abc", &value, 1_000 + MAX_SKEW + 1),
            Err(CredentialError::Stale)
        );
        assert_eq!(
            verify(SECRET, "GET", "abc", &value, 1_000 - MAX_SKEW - 1),
            Err(CredentialError::Stale)
        );
        for bad in ["", "1000", "x.00", "1000.zz", "1000"] {
            assert_eq!(
                verify(SECRET, "GET", "abc", bad, 1_000),
                Err(CredentialError::Malformed),
                "{bad:?}"
            );
        }
        // The secret never appears in the value.
        assert!(!value.contains("0123456789abcdef"));
    }
}
