//! OAuth 2.1 sign-in end to end, in process: the gateway (`serve` with `Hooks::oauth_clock`, so the
//! test owns the OAuth clock) against mock-coda, driven by a scripted RFC-conformant client over
//! real HTTP (reqwest, no redirects followed, no cookie jar: every cookie is handled by hand).
//!
//! The child is a one-line `sed` MCP server that answers every request with an `initialize`
//! result whose `serverInfo.name` is the fingerprint of the token in its environment, so a test
//! sees which Coda token the child got.
//!
//! No test sleeps to let time pass: expiry is reached by moving the OAuth clock.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use gateway::config::{AuthMode, Flags, OAuthMode};
use gateway::oauth::Clock;
use mock_coda::{MockCoda, MockCodaConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

const ALICE: &str = "mock-token-alice-0001";
const BOB: &str = "mock-token-bob-0002";
const OPERATOR: &str = "mock-token-operator-0003";
const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const REDIRECT: &str = "http://127.0.0.1:9/callback";
const GUARD: Duration = Duration::from_secs(20);

/// Answers every request with an initialize result naming the fingerprint of its token.
const SED_CHILD: &str = r#"fp=$(printf %s "$CODA_API_TOKEN" | sha256sum | cut -c1-12); exec sed -un "s/^.*\"id\":\([0-9][0-9]*\).*$/{\"jsonrpc\":\"2.0\",\"id\":\1,\"result\":{\"protocolVersion\":\"2025-11-25\",\"capabilities\":{},\"serverInfo\":{\"name\":\"$fp\",\"version\":\"1\"}}}/p""#;

fn fingerprint(token: &str) -> String {
    hex::encode(&Sha256::digest(token.as_bytes())[..6])
}

fn scratch_dir() -> PathBuf {
    let mut bytes = [0u8; 8];
    rand::Rng::fill(&mut rand::thread_rng(), &mut bytes);
    let dir = std::env::temp_dir().join(format!("oauth-flow-{}", hex::encode(bytes)));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running gateway with OAuth on, and what a test needs around it.
struct Env {
    base: String,
    clock: Clock,
    http: reqwest::Client,
    dir: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    coda: MockCoda,
}

async fn mock() -> MockCoda {
    mock_coda::start(MockCodaConfig::default(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap()
}

fn config(coda: &MockCoda, dir: &std::path::Path) -> Flags {
    let mut config = Flags::with_command(SED_CHILD);
    config.mcp_command_shell = true;
    config.auth_mode = AuthMode::Coda;
    config.coda_api_base_url = coda.base_url();
    config.coda_api_token = Some(OPERATOR.into());
    config.oauth_encryption_key = Some(KEY.into());
    config.oauth_db_path = dir.join("oauth.sqlite3").to_string_lossy().into_owned();
    config.audit_log = dir.join("audit.log").to_string_lossy().into_owned();
    config.auth_rate_limit_per_min = 1_000_000;
    config.identity_rate_limit_per_min = 1_000_000;
    config.oauth_register_rate_limit_per_min = 1_000_000;
    config
}

impl Env {
    async fn start(change: impl FnOnce(&mut Flags)) -> Env {
        let coda = mock().await;
        let dir = scratch_dir();
        let mut config = config(&coda, &dir);
        change(&mut config);
        Env::start_with(coda, dir, config, Clock::system()).await
    }

    async fn start_with(coda: MockCoda, dir: PathBuf, config: Flags, clock: Clock) -> Env {
        let config = config.validate().expect("valid settings");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = oneshot::channel::<()>();
        let hooks = gateway::Hooks::default()
            .oauth_clock(clock.clone())
            .on_ready(move || {
                let _ = ready_tx.send(());
            });
        let task = tokio::spawn(gateway::serve(listener, config, hooks, async {
            let _ = stop_rx.await;
        }));
        tokio::time::timeout(GUARD, ready_rx)
            .await
            .expect("the gateway is ready in time")
            .expect("the gateway started");
        Env {
            base: format!("http://{addr}"),
            clock,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .build()
                .unwrap(),
            dir,
            stop: Some(stop_tx),
            task: Some(task),
            coda,
        }
    }

    /// Stops the gateway and hands back what a restart needs.
    async fn stop(mut self) -> (MockCoda, PathBuf) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            tokio::time::timeout(GUARD, task)
                .await
                .expect("the gateway stops in time")
                .unwrap()
                .unwrap();
        }
        let dir = std::mem::take(&mut self.dir);
        let coda = mock().await;
        let coda = std::mem::replace(&mut self.coda, coda);
        (coda, dir)
    }

    fn audit(&self) -> String {
        std::fs::read_to_string(self.dir.join("audit.log")).unwrap_or_default()
    }

    /// Waits (bounded) until the audit log has a line with `needle`.
    async fn audited(&self, needle: &str) -> String {
        let deadline = tokio::time::Instant::now() + GUARD;
        loop {
            let audit = self.audit();
            if let Some(line) = audit.lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no audit event with {needle}:\n{audit}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn register(&self, redirect: &str) -> String {
        let response = self
            .http
            .post(format!("{}/oauth/register", self.base))
            .json(&json!({
                "client_name": "Scripted <Client>",
                "redirect_uris": [redirect],
                "grant_types": ["authorization_code", "refresh_token"],
                "response_types": ["code"],
                "token_endpoint_auth_method": "none",
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["token_endpoint_auth_method"], "none");
        body["client_id"].as_str().unwrap().to_string()
    }

    async fn authorize_get(&self, params: &[(&str, &str)]) -> reqwest::Response {
        let url =
            reqwest::Url::parse_with_params(&format!("{}/oauth/authorize", self.base), params)
                .unwrap();
        self.http.get(url).send().await.unwrap()
    }

    async fn approve(&self, page: &Page, token: &str, decision: &str) -> reqwest::Response {
        let mut request = self
            .http
            .post(format!("{}/oauth/authorize", self.base))
            .form(&[
                ("request", page.handle.as_str()),
                ("coda_token", token),
                ("decision", decision),
            ]);
        if let Some(cookie) = &page.cookie {
            request = request.header("cookie", cookie);
        }
        request.send().await.unwrap()
    }

    async fn token(&self, params: &[(&str, &str)]) -> (StatusCode, Value) {
        let response = self
            .http
            .post(format!("{}/oauth/token", self.base))
            .form(params)
            .send()
            .await
            .unwrap();
        let status = response.status();
        assert_eq!(
            response.headers().get("cache-control").unwrap(),
            "no-store",
            "token answers are never cached"
        );
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn revoke(&self, client_id: &str, token: &str) -> StatusCode {
        self.http
            .post(format!("{}/oauth/revoke", self.base))
            .form(&[("token", token), ("client_id", client_id)])
            .send()
            .await
            .unwrap()
            .status()
    }

    /// `initialize` on /mcp with `bearer`: the status, the `WWW-Authenticate` header and the
    /// fingerprint the child reported (on success). It accepts JSON only, so the answer is one
    /// JSON body: these tests are about sign-in, and SSE framing has its own tests (fixtures).
    async fn initialize(&self, bearer: &str) -> (StatusCode, Option<String>, Option<String>) {
        let response = self
            .http
            .post(format!("{}/mcp", self.base))
            .bearer_auth(bearer)
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .body(
                json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                    "protocolVersion": "2025-11-25", "capabilities": {},
                    "clientInfo": {"name": "oauth-test", "version": "1"}}})
                .to_string(),
            )
            .send()
            .await
            .unwrap();
        let status = response.status();
        let challenge = response
            .headers()
            .get("www-authenticate")
            .map(|v| v.to_str().unwrap().to_string());
        let text = response.text().await.unwrap();
        let child = serde_json::from_str::<Value>(&text).ok().and_then(|v| {
            v.pointer("/result/serverInfo/name")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
        (status, challenge, child)
    }

    fn resource(&self) -> String {
        format!("{}/mcp", self.base)
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

struct Pkce {
    verifier: String,
    challenge: String,
}

fn pkce() -> Pkce {
    let mut bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::thread_rng(), &mut bytes);
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    Pkce {
        verifier,
        challenge,
    }
}

/// The authorize page as a client's browser would keep it.
struct Page {
    status: StatusCode,
    html: String,
    handle: String,
    cookie: Option<String>,
    csp: String,
}

async fn read_page(response: reqwest::Response) -> Page {
    let status = response.status();
    let csp = response
        .headers()
        .get("content-security-policy")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let cookie = response
        .headers()
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
    let html = response.text().await.unwrap();
    let handle = html
        .split(r#"name="request" value=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("")
        .to_string();
    Page {
        status,
        html,
        handle,
        cookie,
        csp,
    }
}

fn location(response: &reqwest::Response) -> (String, HashMap<String, String>) {
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "a redirect back to the client"
    );
    let location = response
        .headers()
        .get("location")
        .unwrap()
        .to_str()
        .unwrap();
    let url = reqwest::Url::parse(location).unwrap();
    let params = url.query_pairs().into_owned().collect();
    let mut bare = url.clone();
    bare.set_query(None);
    (bare.to_string(), params)
}

/// Register, open the page, approve with `token`: the client id, the PKCE pair and the code.
async fn authorize(env: &Env, token: &str) -> (String, Pkce, String) {
    let client_id = env.register(REDIRECT).await;
    let pkce = pkce();
    let resource = env.resource();
    let page = read_page(
        env.authorize_get(&[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
            ("state", "xyz-123"),
            ("resource", &resource),
            ("scope", "mcp"),
        ])
        .await,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let response = env.approve(&page, token, "approve").await;
    let (target, params) = location(&response);
    assert_eq!(target, REDIRECT);
    assert_eq!(params["state"], "xyz-123", "state is echoed");
    assert_eq!(params["iss"], env.base, "RFC 9207 iss");
    let code = params["code"].clone();
    (client_id, pkce, code)
}

async fn exchange(env: &Env, client_id: &str, pkce: &Pkce, code: &str) -> (StatusCode, Value) {
    let resource = env.resource();
    env.token(&[
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", REDIRECT),
        ("client_id", client_id),
        ("code_verifier", &pkce.verifier),
        ("resource", &resource),
    ])
    .await
}

async fn signed_in(env: &Env, token: &str) -> (String, Value) {
    let (client_id, pkce, code) = authorize(env, token).await;
    let (status, tokens) = exchange(env, &client_id, &pkce, &code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    (client_id, tokens)
}

fn field(tokens: &Value, name: &str) -> String {
    tokens[name].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_register_authorize_exchange_use_refresh_revoke() {
    let env = Env::start(|_| {}).await;
    let (client_id, pkce, code) = authorize(&env, ALICE).await;
    assert!(!code.contains(ALICE));
    let (status, tokens) = exchange(&env, &client_id, &pkce, &code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 3600);
    assert_eq!(tokens["scope"], "mcp");
    let access = field(&tokens, "access_token");
    let refresh = field(&tokens, "refresh_token");
    assert!(
        !tokens.to_string().contains(ALICE),
        "the Coda token never reaches the client"
    );

    // The gateway token works on /mcp, and the child got alice's *Coda* token.
    let (status, _, child) = env.initialize(&access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(child.as_deref(), Some(fingerprint(ALICE).as_str()));
    // A raw Coda token still works (OAUTH_ACCEPT_CODA_TOKENS defaults to true).
    let (status, _, child) = env.initialize(BOB).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(child.as_deref(), Some(fingerprint(BOB).as_str()));

    // Refresh rotates: new tokens, and the new access token works.
    let (status, rotated) = env
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &client_id),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let access2 = field(&rotated, "access_token");
    let refresh2 = field(&rotated, "refresh_token");
    assert_ne!(access2, access);
    assert_ne!(refresh2, refresh);
    assert_eq!(env.initialize(&access2).await.0, StatusCode::OK);

    // Revoking the refresh token ends the grant: every access token of it gets 401.
    assert_eq!(env.revoke(&client_id, &refresh2).await, StatusCode::OK);
    for token in [&access, &access2] {
        let (status, challenge, _) = env.initialize(token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        let challenge = challenge.unwrap();
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );
        assert!(challenge.contains("resource_metadata="), "{challenge}");
    }
    // Revoking an unknown token is still 200 (RFC 7009).
    assert_eq!(
        env.revoke(&client_id, "cgw_rt_unknown").await,
        StatusCode::OK
    );

    for event in [
        "oauth_client_registered",
        "oauth_authorized",
        "oauth_token_issued",
        "oauth_token_refreshed",
        "oauth_token_revoked",
    ] {
        let line = env.audited(event).await;
        assert!(!line.contains(ALICE), "no token in audit events: {line}");
    }
    let audit = env.audit();
    for secret in [ALICE, access.as_str(), refresh.as_str(), code.as_str()] {
        assert!(!audit.contains(secret), "a token reached the audit log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_endpoint_refuses_wrong_verifier_reused_code_and_wrong_redirect() {
    let env = Env::start(|_| {}).await;

    // Wrong verifier: invalid_grant, and the code is spent.
    let (client_id, pkce, code) = authorize(&env, ALICE).await;
    let wrong = Pkce {
        verifier: pkce::other_verifier(),
        challenge: String::new(),
    };
    let (status, body) = exchange(&env, &client_id, &wrong, &code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert!(body["error_description"].is_string());
    let (status, body) = exchange(&env, &client_id, &pkce, &code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    // Reused code: the second exchange fails and revokes what the first one issued.
    let (client_id, pkce, code) = authorize(&env, ALICE).await;
    let (status, tokens) = exchange(&env, &client_id, &pkce, &code).await;
    assert_eq!(status, StatusCode::OK);
    let access = field(&tokens, "access_token");
    assert_eq!(env.initialize(&access).await.0, StatusCode::OK);
    let (status, body) = exchange(&env, &client_id, &pkce, &code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    assert_eq!(env.initialize(&access).await.0, StatusCode::UNAUTHORIZED);
    env.audited("oauth_code_reused").await;

    // Wrong redirect URI at the token endpoint.
    let (client_id, pkce, code) = authorize(&env, ALICE).await;
    let resource = env.resource();
    let (status, body) = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:9/other"),
            ("client_id", &client_id),
            ("code_verifier", &pkce.verifier),
            ("resource", &resource),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    // Wrong resource at the token endpoint: invalid_target.
    let (client_id, pkce, code) = authorize(&env, ALICE).await;
    let (status, body) = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("client_id", &client_id),
            ("code_verifier", &pkce.verifier),
            ("resource", "https://elsewhere.example/mcp"),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_target"))
    );

    // Another client's code.
    let (_, pkce, code) = authorize(&env, ALICE).await;
    let other = env.register(REDIRECT).await;
    let (status, body) = exchange(&env, &other, &pkce, &code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );

    // Unknown client, unknown grant type, missing parameters, wrong content type.
    let (status, body) = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("client_id", "nobody"),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client"))
    );
    let (status, body) = env
        .token(&[("grant_type", "password"), ("client_id", &other)])
        .await;
    assert_eq!(body["error"], "unsupported_grant_type", "{status} {body}");
    let (status, body) = env
        .token(&[("grant_type", "authorization_code"), ("client_id", &other)])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let response = env
        .http
        .post(format!("{}/oauth/token", env.base))
        .json(&json!({"grant_type": "refresh_token"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
}

mod pkce {
    pub fn other_verifier() -> String {
        "this-is-not-the-verifier-but-is-long-enough-0123456789".into()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorize_refuses_plain_pkce_wrong_resource_and_unregistered_redirects() {
    let env = Env::start(|_| {}).await;
    let client_id = env.register(REDIRECT).await;
    let pkce = pkce();
    let resource = env.resource();
    let base = |overrides: &[(&'static str, &'static str)]| {
        let mut params: Vec<(&str, String)> = vec![
            ("response_type", "code".into()),
            ("client_id", client_id.clone()),
            ("redirect_uri", REDIRECT.into()),
            ("code_challenge", pkce.challenge.clone()),
            ("code_challenge_method", "S256".into()),
            ("state", "s1".into()),
            ("resource", resource.clone()),
        ];
        for (key, value) in overrides {
            params.retain(|(k, _)| k != key);
            if !value.is_empty() {
                params.push((key, value.to_string()));
            }
        }
        params
    };
    let get = |params: Vec<(&'static str, String)>| {
        let env = &env;
        async move {
            let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            env.authorize_get(&pairs).await
        }
    };

    // `plain` (and a missing method, which means plain) are refused, back at the client.
    for method in ["plain", ""] {
        let response = get(base(&[("code_challenge_method", method)])).await;
        let (target, params) = location(&response);
        assert_eq!(target, REDIRECT);
        assert_eq!(params["error"], "invalid_request");
        assert!(params["error_description"].contains("S256"));
        assert_eq!(params["state"], "s1");
    }
    // No PKCE at all.
    let (_, params) = location(&get(base(&[("code_challenge", "")])).await);
    assert_eq!(params["error"], "invalid_request");
    // Another resource: invalid_target (RFC 8707).
    let (_, params) = location(&get(base(&[("resource", "https://other.example/mcp")])).await);
    assert_eq!(params["error"], "invalid_target");
    // Another response type.
    let (_, params) = location(&get(base(&[("response_type", "token")])).await);
    assert_eq!(params["error"], "unsupported_response_type");
    // Another scope.
    let (_, params) = location(&get(base(&[("scope", "admin")])).await);
    assert_eq!(params["error"], "invalid_scope");

    // An unregistered redirect URI or an unknown client: a page, never a redirect.
    for params in [
        base(&[("redirect_uri", "http://127.0.0.1:9/evil")]),
        base(&[("client_id", "cgw-unknown")]),
        base(&[("client_id", "")]),
    ] {
        let response = get(params).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert!(response.headers().get("location").is_none());
        assert!(response
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
    // A repeated parameter is refused.
    let mut repeated = base(&[]);
    repeated.push(("state", "again".into()));
    assert_eq!(get(repeated).await.status(), StatusCode::BAD_REQUEST);

    // The page itself: CSP, the client's name escaped, the redirect host, a password input.
    let page = read_page(get(base(&[])).await).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.csp.contains("default-src 'none'"), "{}", page.csp);
    assert!(page.csp.contains("frame-ancestors 'none'"), "{}", page.csp);
    assert!(
        page.csp.contains("form-action 'self' http://127.0.0.1:9"),
        "{}",
        page.csp
    );
    assert!(page.html.contains("Scripted &lt;Client&gt;"));
    assert!(!page.html.contains("<Client>"));
    assert!(page.html.contains("127.0.0.1:9"));
    assert!(page.html.contains(r#"type="password""#));
    for external in [
        "<script", "<link", "src=", "<iframe", "<img", "@import", "url(",
    ] {
        assert!(
            !page.html.contains(external),
            "no external assets: {external}"
        );
    }
    assert!(page
        .cookie
        .as_deref()
        .unwrap()
        .starts_with("cgw_oauth_csrf="));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_refuses_bad_tokens_other_users_and_forged_forms() {
    let env = Env::start(|c| c.allowed_users = vec!["alice@example.com".into()]).await;
    let client_id = env.register(REDIRECT).await;
    let pkce = pkce();
    let resource = env.resource();
    let params = [
        ("response_type", "code"),
        ("client_id", client_id.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_challenge", pkce.challenge.as_str()),
        ("code_challenge_method", "S256"),
        ("state", "s2"),
        ("resource", resource.as_str()),
    ];
    let page = read_page(env.authorize_get(&params).await).await;

    // A token Coda refuses: the page again, with a clear message, and no redirect.
    let response = env.approve(&page, "not-a-coda-token-123", "approve").await;
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(response.headers().get("location").is_none());
    let html = response.text().await.unwrap();
    assert!(html.contains("Coda did not accept this token"), "{html}");
    assert!(
        html.contains(r#"type="password""#),
        "the form is offered again"
    );
    env.audited("oauth_invalid_coda_token").await;

    // A valid Coda user who is not allow-listed.
    let response = env.approve(&page, BOB, "approve").await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    let html = response.text().await.unwrap();
    assert!(html.contains("bob@example.com"), "{html}");
    assert!(html.contains("not allowed"), "{html}");
    env.audited("oauth_not_allowed").await;

    // No CSRF cookie, or another page's: refused.
    let forged = Page {
        cookie: None,
        ..read_page(env.authorize_get(&params).await).await
    };
    assert_eq!(
        env.approve(&forged, ALICE, "approve").await.status(),
        StatusCode::FORBIDDEN
    );
    let other = read_page(env.authorize_get(&params).await).await;
    let mixed = Page {
        cookie: other.cookie.clone(),
        ..read_page(env.authorize_get(&params).await).await
    };
    assert_eq!(
        env.approve(&mixed, ALICE, "approve").await.status(),
        StatusCode::FORBIDDEN
    );
    // A tampered handle.
    let tampered = Page {
        handle: format!("{}A", other.handle),
        ..read_page(env.authorize_get(&params).await).await
    };
    assert_eq!(
        env.approve(&tampered, ALICE, "approve").await.status(),
        StatusCode::BAD_REQUEST
    );

    // Deny: access_denied back at the client, with state.
    let page = read_page(env.authorize_get(&params).await).await;
    let (_, back) = location(&env.approve(&page, "", "deny").await);
    assert_eq!(back["error"], "access_denied");
    assert_eq!(back["state"], "s2");

    // The page expires (moved clock).
    let page = read_page(env.authorize_get(&params).await).await;
    env.clock.advance(601);
    assert_eq!(
        env.approve(&page, ALICE, "approve").await.status(),
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_expire_after_sixty_seconds_of_the_oauth_clock() {
    let env = Env::start(|_| {}).await;
    let (client_id, pkce, code) = authorize(&env, ALICE).await;
    env.clock.advance(61);
    let (status, body) = exchange(&env, &client_id, &pkce, &code).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "{body}"
    );
    env.audited("oauth_code_expired").await;

    // Just inside the TTL it works; access tokens expire after their hour.
    let (client_id, pkce, code) = authorize(&env, ALICE).await;
    env.clock.advance(59);
    let (status, tokens) = exchange(&env, &client_id, &pkce, &code).await;
    assert_eq!(status, StatusCode::OK);
    let access = field(&tokens, "access_token");
    assert_eq!(env.initialize(&access).await.0, StatusCode::OK);
    env.clock.advance(3600);
    assert_eq!(env.initialize(&access).await.0, StatusCode::UNAUTHORIZED);
    // The refresh token still works after the access token expired.
    let refresh = field(&tokens, "refresh_token");
    let (status, _) = env
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &client_id),
        ])
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_refresh_token_revokes_the_whole_family() {
    let env = Env::start(|_| {}).await;
    let (client_id, tokens) = signed_in(&env, ALICE).await;
    let refresh1 = field(&tokens, "refresh_token");
    let refresh = |token: String| {
        let env = &env;
        let client_id = client_id.clone();
        async move {
            env.token(&[
                ("grant_type", "refresh_token"),
                ("refresh_token", &token),
                ("client_id", &client_id),
            ])
            .await
        }
    };
    let (status, second) = refresh(refresh1.clone()).await;
    assert_eq!(status, StatusCode::OK);
    let access2 = field(&second, "access_token");
    let refresh2 = field(&second, "refresh_token");
    // An attacker replays the first refresh token.
    let (status, body) = refresh(refresh1).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    env.audited("oauth_refresh_replayed").await;
    // The whole family is gone: the newest access and refresh tokens too.
    assert_eq!(env.initialize(&access2).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = refresh(refresh2).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_survive_restarts_and_are_refused_for_another_audience() {
    let coda = mock().await;
    let dir = scratch_dir();
    let mut first = config(&coda, &dir);
    first.public_url = Some("https://a.example.com".into());
    let env = Env::start_with(coda, dir, first, Clock::system()).await;
    // The canonical resource is PUBLIC_URL + /mcp, whatever the Host header says.
    let client_id = env.register(REDIRECT).await;
    let pkce = pkce();
    let page = read_page(
        env.authorize_get(&[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
            ("resource", "https://A.example.com/mcp"),
        ])
        .await,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let (_, params) = location(&env.approve(&page, ALICE, "approve").await);
    assert_eq!(params["iss"], "https://a.example.com");
    let (status, tokens) = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &params["code"]),
            ("redirect_uri", REDIRECT),
            ("client_id", &client_id),
            ("code_verifier", &pkce.verifier),
            ("resource", "https://a.example.com/mcp"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = field(&tokens, "access_token");
    assert_eq!(env.initialize(&access).await.0, StatusCode::OK);

    // Same database and key, same audience: the registration and the token survive a restart.
    let (coda, dir) = env.stop().await;
    let mut again = config(&coda, &dir);
    again.public_url = Some("https://a.example.com".into());
    let env = Env::start_with(coda, dir, again, Clock::system()).await;
    assert_eq!(env.initialize(&access).await.0, StatusCode::OK);

    // The same token presented to a gateway with another canonical URL: 401 invalid_token.
    let (coda, dir) = env.stop().await;
    let mut other = config(&coda, &dir);
    other.public_url = Some("https://b.example.com".into());
    let env = Env::start_with(coda, dir, other, Clock::system()).await;
    let (status, challenge, _) = env.initialize(&access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.unwrap().contains(r#"error="invalid_token""#));

    // Another key cannot read what the first one stored.
    let (coda, dir) = env.stop().await;
    let mut rekeyed = config(&coda, &dir);
    rekeyed.public_url = Some("https://a.example.com".into());
    rekeyed.oauth_encryption_key = Some("ff".repeat(32).into());
    let env = Env::start_with(coda, dir, rekeyed, Clock::system()).await;
    assert_eq!(env.initialize(&access).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_coda_tokens_can_be_turned_off() {
    let env = Env::start(|c| c.oauth_accept_coda_tokens = false).await;
    let (status, challenge, _) = env.initialize(ALICE).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.unwrap().contains("invalid_token"));
    let (_, tokens) = signed_in(&env, ALICE).await;
    let (status, _, child) = env.initialize(&field(&tokens, "access_token")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(child.as_deref(), Some(fingerprint(ALICE).as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_validates_redirect_uris_and_metadata() {
    let env = Env::start(|_| {}).await;
    let register = |body: Value| {
        let env = &env;
        async move {
            let response = env
                .http
                .post(format!("{}/oauth/register", env.base))
                .json(&body)
                .send()
                .await
                .unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    for (body, error) in [
        (
            json!({"redirect_uris": ["http://example.com/cb"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["javascript:alert(1)"]}),
            "invalid_redirect_uri",
        ),
        (
            json!({"redirect_uris": ["https://x.example/cb#f"]}),
            "invalid_redirect_uri",
        ),
        (json!({"redirect_uris": []}), "invalid_redirect_uri"),
        (json!({}), "invalid_redirect_uri"),
        (
            json!({"redirect_uris": ["https://x.example/cb"], "grant_types": ["client_credentials"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://x.example/cb"], "response_types": ["token"]}),
            "invalid_client_metadata",
        ),
        (
            json!({"redirect_uris": ["https://x.example/cb"], "client_name": 7}),
            "invalid_client_metadata",
        ),
        (json!(["not an object"]), "invalid_client_metadata"),
    ] {
        let (status, answer) = register(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer["error"], error, "{body}: {answer}");
    }
    // A confidential method asked for is replaced by `none` (public clients only).
    let (status, answer) = register(json!({
        "redirect_uris": ["https://claude.ai/api/mcp/auth_callback", "http://localhost:6274/cb", "cursor://x/cb"],
        "token_endpoint_auth_method": "client_secret_post",
    }))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["token_endpoint_auth_method"], "none");
    assert!(answer.get("client_secret").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_id_metadata_documents_are_fetched_and_checked() {
    // A tiny document server on loopback (allowed only with the testing setting).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let docs = format!("http://{}", listener.local_addr().unwrap());
    let good_id = format!("{docs}/client.json");
    let liar_id = format!("{docs}/liar.json");
    let good =
        json!({"client_id": good_id, "client_name": "Doc Client", "redirect_uris": [REDIRECT]});
    let liar = json!({"client_id": "https://someone-else.example/client.json", "client_name": "Liar", "redirect_uris": [REDIRECT]});
    let app = axum::Router::new()
        .route(
            "/client.json",
            axum::routing::get(move || async move { axum::Json(good) }),
        )
        .route(
            "/liar.json",
            axum::routing::get(move || async move { axum::Json(liar) }),
        );
    tokio::spawn(async move { axum::serve(listener, app).await });

    let env = Env::start(|c| c.oauth_client_metadata_allow_http = true).await;
    let pkce = pkce();
    let resource = env.resource();
    let params = |client_id: &str| {
        vec![
            ("response_type", "code".to_string()),
            ("client_id", client_id.to_string()),
            ("redirect_uri", REDIRECT.to_string()),
            ("code_challenge", pkce.challenge.clone()),
            ("code_challenge_method", "S256".to_string()),
            ("resource", resource.clone()),
        ]
    };
    let get = |params: Vec<(&'static str, String)>| {
        let env = &env;
        async move {
            let pairs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            env.authorize_get(&pairs).await
        }
    };
    let page = read_page(get(params(&good_id)).await).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    assert!(page.html.contains("Doc Client"));
    assert!(page.html.contains(&good_id), "the page names the document");
    let (_, back) = location(&env.approve(&page, ALICE, "approve").await);
    let (status, tokens) = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &back["code"]),
            ("redirect_uri", REDIRECT),
            ("client_id", &good_id),
            ("code_verifier", &pkce.verifier),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");

    // A document that names another client_id, and one that is not there.
    for id in [liar_id, format!("{docs}/missing.json")] {
        let response = get(params(&id)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{id}");
        assert!(response.headers().get("location").is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oauth_endpoints_are_under_the_per_ip_limit() {
    let env = Env::start(|c| c.auth_rate_limit_per_min = 3).await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let response = env
            .http
            .post(format!("{}/oauth/token", env.base))
            .form(&[("grant_type", "refresh_token")])
            .send()
            .await
            .unwrap();
        statuses.push(response.status());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(response.headers().get("retry-after").is_some());
        }
    }
    assert_eq!(statuses[3], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
    env.audited("oauth_per_ip").await;
}

/// Status, selected headers and body of a metadata answer.
async fn metadata_view(env: &Env, path: &str) -> Value {
    let response = env
        .http
        .get(format!("{}{path}", env.base))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    json!({"status": status, "content-type": content_type, "body": response.json::<Value>().await.unwrap()})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_documents_snapshot() {
    let env = Env::start(|c| c.public_url = Some("https://coda.example.com".into())).await;
    insta::assert_json_snapshot!(
        "oauth_authorization_server",
        metadata_view(&env, "/.well-known/oauth-authorization-server").await
    );
    insta::assert_json_snapshot!(
        "oauth_protected_resource_mcp",
        metadata_view(&env, "/.well-known/oauth-protected-resource/mcp").await
    );
    // Every endpoint named is served (an empty POST gets an OAuth error, not a 404).
    let metadata = metadata_view(&env, "/.well-known/oauth-authorization-server").await;
    for name in [
        "registration_endpoint",
        "token_endpoint",
        "revocation_endpoint",
    ] {
        let url = metadata["body"][name].as_str().unwrap();
        let path = url.strip_prefix("https://coda.example.com").unwrap();
        let response = env
            .http
            .post(format!("{}{path}", env.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_sign_in_off_nothing_changes() {
    let env = Env::start(|c| {
        c.oauth = OAuthMode::Off;
        c.oauth_encryption_key = None;
    })
    .await;
    // No authorization server exists, so none is described or named (RFC 8414 would need a
    // non-empty response_types_supported; RFC 9728 needs only `resource`).
    let metadata = metadata_view(&env, "/.well-known/oauth-authorization-server").await;
    assert_eq!(metadata["status"], 404, "{metadata}");
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let resource = metadata_view(&env, path).await;
        assert_eq!(resource["status"], 200, "{resource}");
        assert_eq!(resource["body"]["resource"], json!(env.resource()));
        assert!(
            resource["body"].get("authorization_servers").is_none(),
            "{resource}"
        );
    }
    for path in ["/oauth/register", "/oauth/token", "/oauth/revoke"] {
        let response = env
            .http
            .post(format!("{}{path}", env.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    assert!(
        !env.dir.join("oauth.sqlite3").exists() && !env.dir.join("oauth.sqlite3.key").exists(),
        "no database and no key without OAuth"
    );
    // A gateway-looking token goes to Coda like any other, which refuses it.
    assert_eq!(
        env.initialize("cgw_at_whatever").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(env.initialize(ALICE).await.0, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_key_one_is_generated_kept_private_and_reused() {
    use std::os::unix::fs::MetadataExt;
    let coda = mock().await;
    let dir = scratch_dir();
    let mut first = config(&coda, &dir);
    first.oauth_encryption_key = None;
    // A fixed audience, so the restarted gateway (on another port) is the same resource.
    first.public_url = Some("https://a.example.com".into());
    let env = Env::start_with(coda, dir, first, Clock::system()).await;
    let key_file = env.dir.join("oauth.sqlite3.key");
    let meta = std::fs::metadata(&key_file).expect("the key file beside OAUTH_DB_PATH");
    assert_eq!(meta.mode() & 0o777, 0o600);
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(gateway::oauth::crypto::parse_key(&key).is_ok());

    let client_id = env.register(REDIRECT).await;
    let pkce = pkce();
    let page = read_page(
        env.authorize_get(&[
            ("response_type", "code"),
            ("client_id", &client_id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
            ("resource", "https://a.example.com/mcp"),
        ])
        .await,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let (_, params) = location(&env.approve(&page, ALICE, "approve").await);
    let (status, tokens) = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &params["code"]),
            ("redirect_uri", REDIRECT),
            ("client_id", &client_id),
            ("code_verifier", &pkce.verifier),
            ("resource", "https://a.example.com/mcp"),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = field(&tokens, "access_token");
    assert_eq!(env.initialize(&access).await.0, StatusCode::OK);
    let audit = env.audit();
    assert!(!audit.contains(key.trim()), "the key is never audited");

    // The next start reads the same key, so what was stored still opens.
    let (coda, dir) = env.stop().await;
    let mut again = config(&coda, &dir);
    again.oauth_encryption_key = None;
    again.public_url = Some("https://a.example.com".into());
    let env = Env::start_with(coda, dir, again, Clock::system()).await;
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);
    let (status, _, child) = env.initialize(&access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(child.as_deref(), Some(fingerprint(ALICE).as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_coda_token_revoked_at_coda_ends_its_grant() {
    // No whoami cache, so the refusal is seen at once.
    let env = Env::start(|c| {
        c.auth_cache_ttl_secs = 0;
        c.auth_negative_cache_ttl_secs = 0;
    })
    .await;
    let (client_id, tokens) = signed_in(&env, ALICE).await;
    let access = field(&tokens, "access_token");
    assert_eq!(env.initialize(&access).await.0, StatusCode::OK);
    // The user revokes their Coda token at Coda.
    env.coda.add_fault(
        mock_coda::Fault::new(mock_coda::FaultKind::Status { status: 401 })
            .route("/apis/v1/whoami")
            .token(ALICE),
    );
    let (status, challenge, _) = env.initialize(&access).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(challenge.unwrap().contains("invalid_token"));
    env.audited("oauth_grant_revoked_coda_refused").await;
    // The grant is gone: refreshing fails, so the client asks the user to sign in again.
    let (status, body) = env
        .token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", &field(&tokens, "refresh_token")),
            ("client_id", &client_id),
        ])
        .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_use_of_one_refresh_token_lets_at_most_one_win() {
    let env = Env::start(|_| {}).await;
    let (client_id, tokens) = signed_in(&env, ALICE).await;
    let refresh = field(&tokens, "refresh_token");
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let http = env.http.clone();
        let url = format!("{}/oauth/token", env.base);
        let form = vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", refresh.clone()),
            ("client_id", client_id.clone()),
        ];
        tasks.push(tokio::spawn(async move {
            let response = http.post(url).form(&form).send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }));
    }
    let mut winners = Vec::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        if status == StatusCode::OK {
            winners.push(field(&body, "access_token"));
        } else {
            assert_eq!(body["error"], "invalid_grant", "{body}");
        }
    }
    assert_eq!(winners.len(), 1, "exactly one rotation wins");
    // The others were replays of a spent token: the family is revoked, the winner's token too.
    assert_eq!(
        env.initialize(&winners[0]).await.0,
        StatusCode::UNAUTHORIZED
    );
}

/// SSRF: a client ID metadata document URL whose host is an IPv6 address reaching
/// private IPv4 space (NAT64 of 127.0.0.1) is refused before any connection is made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_documents_on_ipv6_forms_of_private_addresses_are_refused() {
    let env = Env::start(|_| {}).await;
    let pkce = pkce();
    for client_id in [
        "https://[64:ff9b::7f00:1]/client.json",
        "https://[2002:a9fe:a9fe::1]/client.json",
        "https://[fec0::1]/client.json",
        "https://[::7f00:1]/client.json",
    ] {
        let page = read_page(
            env.authorize_get(&[
                ("response_type", "code"),
                ("client_id", client_id),
                ("redirect_uri", REDIRECT),
                ("code_challenge", &pkce.challenge),
                ("code_challenge_method", "S256"),
            ])
            .await,
        )
        .await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST, "{client_id}");
        assert!(
            page.html.contains("private address"),
            "{client_id}: {}",
            page.html
        );
    }
}

/// Code replay under concurrency: the same code presented concurrently. Taking a code and creating its grant
/// are one transaction, so whichever exchange wins, the others are replays that find its grant
/// and revoke it: no interleaving leaves a live grant behind a replayed code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_redemptions_of_one_code_leave_no_live_grant() {
    let env = Env::start(|c| c.oauth_max_grants_per_user = 100).await;
    // Several rounds: before the fix, the losing interleaving showed up in most runs of a few.
    for round in 0..20 {
        let (client_id, pkce, code) = authorize(&env, ALICE).await;
        let resource = env.resource();
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let http = env.http.clone();
            let url = format!("{}/oauth/token", env.base);
            let form = vec![
                ("grant_type", "authorization_code".to_string()),
                ("code", code.clone()),
                ("redirect_uri", REDIRECT.to_string()),
                ("client_id", client_id.clone()),
                ("code_verifier", pkce.verifier.clone()),
                ("resource", resource.clone()),
            ];
            tasks.push(tokio::spawn(async move {
                let response = http.post(url).form(&form).send().await.unwrap();
                let status = response.status();
                (status, response.json::<Value>().await.unwrap())
            }));
        }
        let mut winners = Vec::new();
        for task in tasks {
            let (status, body) = task.await.unwrap();
            if status == StatusCode::OK {
                winners.push(field(&body, "access_token"));
            } else {
                assert_eq!(body["error"], "invalid_grant", "round {round}: {body}");
            }
        }
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one redemption wins"
        );
        assert_eq!(
            env.initialize(&winners[0]).await.0,
            StatusCode::UNAUTHORIZED,
            "round {round}: the replays revoked the winner's grant"
        );
    }
}

/// Open redirect (RFC 9700 §4.11.2): a client registered without auth a moment ago is not
/// known-good, so an invalid request from it shows the error page instead of redirecting to
/// its `https://evil.example/cb`; once a user approved a client, its errors go back to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_before_approval_redirect_only_to_known_good_clients() {
    let env = Env::start(|_| {}).await;
    let evil = "https://evil.example/cb";
    let client_id = env.register(evil).await;
    let pkce = pkce();
    let bad_requests: [&[(&str, &str)]; 3] = [
        &[("response_type", "token")],
        &[("response_type", "code")],
        &[
            ("response_type", "code"),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "plain"),
        ],
    ];
    for extra in bad_requests {
        let mut params = vec![
            ("client_id", client_id.as_str()),
            ("redirect_uri", evil),
            ("state", "s1"),
        ];
        params.extend_from_slice(extra);
        let response = env.authorize_get(&params).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{extra:?}");
        assert!(
            response.headers().get("location").is_none(),
            "{extra:?}: redirected to {:?}",
            response.headers().get("location")
        );
        let html = response.text().await.unwrap();
        assert!(html.contains("Nothing was sent back"), "{html}");
    }
    // Without redirect_uri (the single registered one is implied): still the page.
    let response = env
        .authorize_get(&[("client_id", &client_id), ("response_type", "token")])
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("location").is_none());

    // A user approves a client at https://app.example/cb; from then on it is known-good.
    let app = "https://app.example/cb";
    let app_id = env.register(app).await;
    let resource = env.resource();
    let page = read_page(
        env.authorize_get(&[
            ("response_type", "code"),
            ("client_id", &app_id),
            ("redirect_uri", app),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
            ("resource", &resource),
        ])
        .await,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let (target, back) = location(&env.approve(&page, ALICE, "approve").await);
    assert_eq!(target, app);
    let (status, tokens) = env
        .token(&[
            ("grant_type", "authorization_code"),
            ("code", &back["code"]),
            ("redirect_uri", app),
            ("client_id", &app_id),
            ("code_verifier", &pkce.verifier),
        ])
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let response = env
        .authorize_get(&[
            ("client_id", &app_id),
            ("redirect_uri", app),
            ("response_type", "token"),
            ("state", "s2"),
        ])
        .await;
    let (target, params) = location(&response);
    assert_eq!(target, app);
    assert_eq!(params["error"], "unsupported_response_type");
    assert_eq!(params["state"], "s2");
}

/// A registration as if from `ip` (the gateway trusts 127.0.0.1 as a proxy in these tests).
async fn register_from(env: &Env, ip: &str) -> reqwest::Response {
    env.http
        .post(format!("{}/oauth/register", env.base))
        .header("x-forwarded-for", ip)
        .json(&json!({"client_name": "Flood", "redirect_uris": [REDIRECT]}))
        .send()
        .await
        .unwrap()
}

/// Whether the authorize page still knows `client_id`.
async fn page_knows(env: &Env, client_id: &str, pkce: &Pkce) -> bool {
    let response = env
        .authorize_get(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", REDIRECT),
            ("code_challenge", &pkce.challenge),
            ("code_challenge_method", "S256"),
        ])
        .await;
    response.status() == StatusCode::OK
}

/// Registration flood: registrations are limited per IPv4 address and per IPv6 /64; a flood from
/// one address gets 429 and the client registered before it keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_is_limited_per_address_and_per_ipv6_64() {
    let env = Env::start(|c| {
        c.trusted_proxies = vec!["127.0.0.1".into()];
        c.oauth_register_rate_limit_per_min = 3;
    })
    .await;
    let pkce = pkce();
    let early = register_from(&env, "198.51.100.1").await;
    assert_eq!(early.status(), StatusCode::CREATED);
    let early: Value = early.json().await.unwrap();
    let early = early["client_id"].as_str().unwrap().to_string();
    let mut statuses = Vec::new();
    for _ in 0..20 {
        statuses.push(register_from(&env, "198.51.100.1").await.status());
    }
    assert_eq!(&statuses[..2], &[StatusCode::CREATED; 2], "{statuses:?}");
    assert!(
        statuses[2..]
            .iter()
            .all(|s| *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    let limited = register_from(&env, "198.51.100.1").await;
    assert!(limited.headers().get("retry-after").is_some());
    assert!(
        page_knows(&env, &early, &pkce).await,
        "the early client works"
    );
    // Another address has its own budget; addresses of one IPv6 /64 share one.
    assert_eq!(
        register_from(&env, "198.51.100.2").await.status(),
        StatusCode::CREATED
    );
    for host in ["1", "2", "3"] {
        let ip = format!("2001:db8:1:2::{host}");
        assert_eq!(register_from(&env, &ip).await.status(), StatusCode::CREATED);
    }
    assert_eq!(
        register_from(&env, "2001:db8:1:2:ffff::9").await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        register_from(&env, "2001:db8:1:3::1").await.status(),
        StatusCode::CREATED
    );
    env.audited("oauth_register_per_ip").await;
}

/// Registration flood from many addresses: the client cap never evicts a client younger than
/// the sign-in window; the newcomer gets a clear error instead, until old clients may make room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_cap_never_evicts_a_young_client() {
    let env = Env::start(|c| {
        c.trusted_proxies = vec!["127.0.0.1".into()];
        c.oauth_max_clients = 5;
    })
    .await;
    let pkce = pkce();
    let mut young = Vec::new();
    for n in 1..=5 {
        let response = register_from(&env, &format!("198.51.100.{n}")).await;
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        young.push(body["client_id"].as_str().unwrap().to_string());
    }
    for n in 6..=30 {
        let response = register_from(&env, &format!("198.51.100.{n}")).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{n}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .contains("OAUTH_MAX_CLIENTS"),
            "{body}"
        );
    }
    for client_id in &young {
        assert!(page_knows(&env, client_id, &pkce).await, "{client_id}");
    }
    // Past the sign-in window (page 10 min + code 60 s) the least recently used one may go.
    env.clock.advance(600 + 60);
    let response = register_from(&env, "198.51.100.99").await;
    assert_eq!(response.status(), StatusCode::CREATED);
}

/// Lockout by others' failures: a gateway-issued access token is proven by the gateway's own records, so
/// failed authentications by others from the same address never lock it out, even when the
/// Coda token behind it is no longer in the whoami cache; a raw Coda token not in the cache
/// waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_from_one_address_never_lock_out_an_issued_token() {
    let env = Env::start(|c| {
        c.auth_rate_limit_per_min = 6;
        c.auth_cache_ttl_secs = 1;
        c.auth_negative_cache_ttl_secs = 1;
    })
    .await;
    // Registration, page, approval and exchange take 4 of the 6.
    let (_, tokens) = signed_in(&env, ALICE).await;
    let access = field(&tokens, "access_token");
    for _ in 0..2 {
        assert_eq!(
            env.initialize("wrong-token-0000000").await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        env.initialize("wrong-token-0000000").await.0,
        StatusCode::TOO_MANY_REQUESTS
    );
    // Let the whoami cache forget Alice's Coda token (a condition to reach, not a time asserted).
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let (status, _, child) = env.initialize(&access).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(child, Some(fingerprint(ALICE)));
    assert_eq!(
        env.initialize(BOB).await.0,
        StatusCode::TOO_MANY_REQUESTS,
        "an unproven token from this address still waits"
    );
}
