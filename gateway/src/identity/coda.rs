//! Coda's `GET /whoami`: the one upstream call that tells us who a token belongs to.
//!
//! Answers are classified by who is at fault: a token Coda refuses (401/403) is the client's
//! problem; anything else (timeouts, 5xx, 429, malformed bodies) means Coda is unavailable and
//! must never be mistaken for a bad token.

use std::time::Duration;

use serde::Deserialize;

use super::Secret;

/// What Coda says about a token's owner (the fields of Coda's real `User` shape we use).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CodaUser {
    /// The user's email address: the identity sessions are bound to and allow-lists name.
    pub login_id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub token_name: Option<String>,
    #[serde(default)]
    pub scoped: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum WhoamiError {
    /// Coda refused the token (401 or 403): it is invalid, expired or revoked.
    #[error("Coda refused the token (HTTP {status})")]
    Rejected { status: u16 },
    /// Coda could not say (unreachable, slow, 5xx, 429, unreadable answer); `retry_after` in seconds.
    #[error("Coda is unavailable: {detail}")]
    Unavailable {
        detail: String,
        retry_after: Option<u64>,
    },
}

#[derive(Clone)]
pub struct CodaClient {
    http: reqwest::Client,
    whoami_url: String,
}

impl CodaClient {
    /// `base_url` is Coda's API root, e.g. `https://coda.io/apis/v1`.
    pub fn new(base_url: &str, timeout: Duration) -> Result<CodaClient, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect could carry the token to another host: never follow one.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("coda-mcp-gateway/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(CodaClient {
            http,
            whoami_url: format!("{}/whoami", base_url.trim_end_matches('/')),
        })
    }

    pub async fn whoami(&self, token: &Secret) -> Result<CodaUser, WhoamiError> {
        let response = self
            .http
            .get(&self.whoami_url)
            .bearer_auth(token.expose())
            .send()
            .await
            .map_err(|e| WhoamiError::Unavailable {
                detail: if e.is_timeout() {
                    "timed out".into()
                } else {
                    "request failed".into()
                },
                retry_after: None,
            })?;
        let status = response.status().as_u16();
        match status {
            200 => {
                let body = response
                    .bytes()
                    .await
                    .map_err(|_| WhoamiError::Unavailable {
                        detail: "body could not be read".into(),
                        retry_after: None,
                    })?;
                serde_json::from_slice::<CodaUser>(&body).map_err(|_| WhoamiError::Unavailable {
                    detail: "answer is not a whoami body".into(),
                    retry_after: None,
                })
            }
            401 | 403 => Err(WhoamiError::Rejected { status }),
            _ => {
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                Err(WhoamiError::Unavailable {
                    detail: format!("HTTP {status}"),
                    retry_after,
                })
            }
        }
    }
}
