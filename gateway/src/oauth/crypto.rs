//! Keys, sealing and random tokens.
//!
//! One 32-byte master key (`OAUTH_ENCRYPTION_KEY`) yields two independent subkeys: one encrypts
//! Coda tokens at rest, the other seals the authorize page's request handle. Both use
//! XChaCha20-Poly1305 with a random 24-byte nonce per message, and associated data that names
//! the purpose, so a sealed value of one kind never opens as the other.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rand::RngCore;
use sha2::{Digest, Sha256};

const NONCE: usize = 24;

/// The key's text form is a setting too, so its parser lives with the other shared values.
pub use crate::values::parse_key;

/// The two keys derived from the master key.
#[derive(Clone)]
pub struct Keys {
    at_rest: XChaCha20Poly1305,
    handles: XChaCha20Poly1305,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

fn derive(master: &[u8; 32], label: &str) -> XChaCha20Poly1305 {
    let mut hasher = Sha256::new();
    hasher.update(b"coda-mcp-gateway/oauth/");
    hasher.update(label.as_bytes());
    hasher.update([0u8]);
    hasher.update(master);
    let key: [u8; 32] = hasher.finalize().into();
    XChaCha20Poly1305::new(&key.into())
}

/// What a sealed value is for (its associated data).
#[derive(Clone, Copy)]
pub enum Purpose {
    /// A Coda token in the database.
    CodaToken,
    /// The authorize page's request handle (a hidden form field).
    AuthorizeRequest,
}

impl Purpose {
    fn aad(self) -> &'static [u8] {
        match self {
            Purpose::CodaToken => b"coda-token/v1",
            Purpose::AuthorizeRequest => b"authorize-request/v1",
        }
    }
}

impl Keys {
    pub fn new(master: &[u8; 32]) -> Keys {
        Keys {
            at_rest: derive(master, "at-rest"),
            handles: derive(master, "handles"),
        }
    }

    fn cipher(&self, purpose: Purpose) -> &XChaCha20Poly1305 {
        match purpose {
            Purpose::CodaToken => &self.at_rest,
            Purpose::AuthorizeRequest => &self.handles,
        }
    }

    /// nonce ‖ ciphertext ‖ tag
    pub fn seal(&self, purpose: Purpose, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = self
            .cipher(purpose)
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: purpose.aad(),
                },
            )
            .expect("XChaCha20-Poly1305 encryption does not fail for in-memory sizes");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        out
    }

    pub fn open(&self, purpose: Purpose, sealed: &[u8]) -> Option<Vec<u8>> {
        if sealed.len() < NONCE + 16 {
            return None;
        }
        let (nonce, body) = sealed.split_at(NONCE);
        self.cipher(purpose)
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: purpose.aad(),
                },
            )
            .ok()
    }

    /// [`Keys::seal`] as URL-safe base64 text (for form fields).
    pub fn seal_text(&self, purpose: Purpose, plaintext: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(self.seal(purpose, plaintext))
    }

    pub fn open_text(&self, purpose: Purpose, text: &str) -> Option<Vec<u8>> {
        if text.len() > 16 * 1024 {
            return None;
        }
        self.open(purpose, &URL_SAFE_NO_PAD.decode(text.trim()).ok()?)
    }
}

/// A random token with a readable prefix: 256 bits of randomness, URL-safe base64.
pub fn random_token(prefix: &str) -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// A random identifier (128 bits, URL-safe base64) for clients, grants and CSRF nonces.
pub fn random_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// What the store keeps of a token: its SHA-256.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// PKCE S256: BASE64URL(SHA256(verifier)) == challenge, in constant time.
pub fn pkce_s256_matches(verifier: &str, challenge: &str) -> bool {
    let computed = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    constant_time_eq(computed.as_bytes(), challenge.as_bytes())
}

/// A fresh PKCE pair `(verifier, S256 challenge)`, for clients and tests.
pub fn pkce_pair() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// RFC 7636: 43 to 128 characters of `[A-Za-z0-9-._~]` (verifiers and S256 challenges alike).
pub fn valid_pkce_text(text: &str) -> bool {
    (43..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// A base64 encoding used by tests and docs to show a key (`openssl rand -base64 32`).
pub fn encode_key_base64(key: &[u8; 32]) -> String {
    STANDARD.encode(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_as_hex_or_base64() {
        let key = [7u8; 32];
        assert_eq!(parse_key(&hex::encode(key)).unwrap(), key);
        assert_eq!(parse_key(&encode_key_base64(&key)).unwrap(), key);
        assert_eq!(parse_key(&URL_SAFE_NO_PAD.encode(key)).unwrap(), key);
        assert!(parse_key("abcd").is_err());
        assert!(parse_key(&STANDARD.encode([1u8; 16])).is_err());
    }

    #[test]
    fn sealed_values_open_only_for_their_purpose_and_key() {
        let keys = Keys::new(&[1u8; 32]);
        let sealed = keys.seal(Purpose::CodaToken, b"secret-coda-token");
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            keys.open(Purpose::CodaToken, &sealed).unwrap(),
            b"secret-coda-token"
        );
        assert!(keys.open(Purpose::AuthorizeRequest, &sealed).is_none());
        assert!(Keys::new(&[2u8; 32])
            .open(Purpose::CodaToken, &sealed)
            .is_none());
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert!(keys.open(Purpose::CodaToken, &tampered).is_none());
    }

    #[test]
    fn pkce_s256_follows_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_s256_matches(verifier, challenge));
        assert!(!pkce_s256_matches("x", challenge));
        assert!(valid_pkce_text(verifier));
        assert!(!valid_pkce_text("short"));
    }
}
