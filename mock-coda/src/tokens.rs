//! The token table: which bearer token belongs to which Coda user.
//!
//! `/whoami` is the only way the gateway learns who a token belongs to, so the table
//! is the mock's notion of "accounts". The default table is documented in the crate
//! docs and in `README.md`; tests and demos rely on those exact values.

use std::path::Path;

use axum::http::{header, HeaderMap};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// Workspace every mock user belongs to unless told otherwise.
pub const DEFAULT_WORKSPACE_ID: &str = "ws-mock0001";

/// The Coda user a token resolves to, as reported by `GET /whoami`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    /// The user's email; the gateway keys identity on it.
    pub login_id: String,
    /// Display name.
    pub name: String,
    /// The API token's own name, used by the gateway for audit.
    #[serde(default = "default_token_name")]
    pub token_name: String,
    /// Whether the token is restricted; `/whoami` still answers 200 for it.
    #[serde(default)]
    pub scoped: bool,
    /// The `workspace.id` reported by `/whoami`.
    #[serde(default = "default_workspace_id")]
    pub workspace_id: String,
}

fn default_token_name() -> String {
    "Mock API token".to_owned()
}

fn default_workspace_id() -> String {
    DEFAULT_WORKSPACE_ID.to_owned()
}

impl Identity {
    /// An unscoped identity in the default workspace.
    pub fn new(login_id: impl Into<String>, name: impl Into<String>) -> Self {
        Identity {
            login_id: login_id.into(),
            name: name.into(),
            token_name: default_token_name(),
            scoped: false,
            workspace_id: default_workspace_id(),
        }
    }

    pub fn with_token_name(mut self, token_name: impl Into<String>) -> Self {
        self.token_name = token_name.into();
        self
    }

    pub fn with_scoped(mut self, scoped: bool) -> Self {
        self.scoped = scoped;
        self
    }
}

/// The documented default table, used when no `--token`/`--tokens-file` is given.
///
/// | token | loginId | name | scoped |
/// |---|---|---|---|
/// | `mock-token-alice-0001` | `alice@example.com` | Alice Example | no |
/// | `mock-token-bob-0002` | `bob@example.com` | Bob Example | no |
/// | `mock-token-operator-0003` | `operator@example.com` | Gateway Operator | no |
/// | `mock-token-alice-scoped-0004` | `alice@example.com` | Alice Example | yes |
pub fn default_tokens() -> Vec<(String, Identity)> {
    vec![
        (
            "mock-token-alice-0001".to_owned(),
            Identity::new("alice@example.com", "Alice Example").with_token_name("Alice's token"),
        ),
        (
            "mock-token-bob-0002".to_owned(),
            Identity::new("bob@example.com", "Bob Example").with_token_name("Bob's token"),
        ),
        (
            "mock-token-operator-0003".to_owned(),
            Identity::new("operator@example.com", "Gateway Operator")
                .with_token_name("Gateway operator token"),
        ),
        (
            "mock-token-alice-scoped-0004".to_owned(),
            Identity::new("alice@example.com", "Alice Example")
                .with_token_name("Alice's scoped token")
                .with_scoped(true),
        ),
    ]
}

/// Parses a `--token TOKEN=loginId` flag; the display name defaults to the loginId.
pub fn parse_token_flag(flag: &str) -> Result<(String, Identity), Error> {
    let (token, login_id) = flag
        .split_once('=')
        .ok_or_else(|| Error::Tokens(format!("expected TOKEN=loginId, got {flag:?}")))?;
    let (token, login_id) = (token.trim(), login_id.trim());
    if token.is_empty() || login_id.is_empty() {
        return Err(Error::Tokens(format!(
            "expected TOKEN=loginId with both parts non-empty, got {flag:?}"
        )));
    }
    Ok((token.to_owned(), Identity::new(login_id, login_id)))
}

/// One entry of a tokens file: the token plus the [`Identity`] fields.
#[derive(Debug, Deserialize)]
struct TokenEntry {
    token: String,
    #[serde(flatten)]
    identity: Identity,
}

/// Parses a tokens file: a JSON array of
/// `{"token", "loginId", "name", "tokenName"?, "scoped"?, "workspaceId"?}`.
pub fn parse_tokens_json(text: &str) -> Result<Vec<(String, Identity)>, Error> {
    let entries: Vec<TokenEntry> =
        serde_json::from_str(text).map_err(|e| Error::Tokens(e.to_string()))?;
    Ok(entries
        .into_iter()
        .map(|entry| (entry.token, entry.identity))
        .collect())
}

/// Reads and parses a tokens file (see [`parse_tokens_json`]).
pub fn load_tokens_file(path: &Path) -> Result<Vec<(String, Identity)>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_tokens_json(&text)
}

/// The token of an `Authorization: Bearer <token>` header, if there is one.
///
/// `Bearer None` and `Bearer undefined` come back as tokens; they are simply not in
/// the table, which gives the 401 Coda gives.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tokens_are_long_enough_for_the_gateway() {
        for (token, _) in default_tokens() {
            assert!(token.len() >= 10, "{token}");
        }
    }

    #[test]
    fn token_flag_needs_both_parts() {
        let (token, identity) = parse_token_flag("abcdefghijk=carol@example.com").unwrap();
        assert_eq!(token, "abcdefghijk");
        assert_eq!(identity.login_id, "carol@example.com");
        assert!(parse_token_flag("nothing").is_err());
        assert!(parse_token_flag("=x@example.com").is_err());
    }

    #[test]
    fn tokens_file_fills_defaults() {
        let tokens =
            parse_tokens_json(r#"[{"token": "t-0123456789", "loginId": "c@x.io", "name": "C"}]"#)
                .unwrap();
        assert_eq!(tokens[0].1.token_name, "Mock API token");
        assert!(!tokens[0].1.scoped);
    }
}
