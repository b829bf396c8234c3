//! Shared helpers: a started mock plus a client that knows its URLs.

use mock_coda::{MockCoda, MockCodaConfig};
use reqwest::{Method, StatusCode};
use serde_json::Value;

pub const ALICE: &str = "mock-token-alice-0001";
pub const BOB: &str = "mock-token-bob-0002";
pub const OPERATOR: &str = "mock-token-operator-0003";
pub const ALICE_SCOPED: &str = "mock-token-alice-scoped-0004";

pub struct Ctx {
    pub coda: MockCoda,
    pub http: reqwest::Client,
}

pub async fn start() -> Ctx {
    start_with(MockCodaConfig::default()).await
}

pub async fn start_with(config: MockCodaConfig) -> Ctx {
    let coda = mock_coda::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .expect("mock starts");
    Ctx {
        coda,
        http: reqwest::Client::new(),
    }
}

impl Ctx {
    /// `path` below the API base, e.g. `/whoami`.
    pub fn api(&self, path: &str) -> String {
        format!("{}{path}", self.coda.base_url())
    }

    /// `path` below the server root, e.g. `/_mock/calls`.
    pub fn root(&self, path: &str) -> String {
        let base = self.coda.base_url();
        format!("{}{path}", base.strip_suffix("/apis/v1").unwrap())
    }

    pub async fn send(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> reqwest::Response {
        let mut request = self.http.request(method, url);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request is answered")
    }

    /// Sends and decodes a JSON answer (Null for an empty body).
    pub async fn call(
        &self,
        method: Method,
        url: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let response = self.send(method, url, token, body).await;
        let status = response.status();
        let text = response.text().await.expect("body is readable");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
        };
        (status, value)
    }

    pub async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, &self.api(path), Some(token), None)
            .await
    }
}

pub fn unauthorized_body() -> Value {
    serde_json::json!({"statusCode": 401, "statusMessage": "Unauthorized", "message": "Unauthorized"})
}
