//! The gateway's outbound HTTP, against wiremock servers on 127.0.0.1:0: Coda's `GET /whoami`
//! (`identity::coda`) and client ID metadata documents (`oauth::cimd`). Each answer is classified
//! by who is at fault, and no redirect is ever followed (a redirect could carry a token, or a
//! document fetch, to another host).

use std::time::Duration;

use gateway::identity::coda::{CodaClient, WhoamiError};
use gateway::identity::Secret;
use gateway::oauth::cimd::Fetcher;
use serde_json::json;
use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const TOKEN: &str = "wiremock-token-0001";

fn coda_client(server: &MockServer, timeout: Duration) -> CodaClient {
    CodaClient::new(&format!("{}/apis/v1", server.uri()), timeout).expect("client builds")
}

async fn whoami_answer(
    template: ResponseTemplate,
) -> Result<gateway::identity::coda::CodaUser, WhoamiError> {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/apis/v1/whoami"))
        .respond_with(template)
        .expect(1)
        .mount(&server)
        .await;
    coda_client(&server, Duration::from_secs(5))
        .whoami(&Secret::new(TOKEN))
        .await
}

#[tokio::test]
async fn whoami_sends_the_bearer_token_and_reads_the_user() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/apis/v1/whoami"))
        .and(header("authorization", format!("Bearer {TOKEN}").as_str()))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "name": "Alice Example",
            "loginId": "alice@example.com",
            "type": "user",
            "tokenName": "Alice's token",
            "scoped": false
        })))
        .expect(1)
        .mount(&server)
        .await;
    let user = coda_client(&server, Duration::from_secs(5))
        .whoami(&Secret::new(TOKEN))
        .await
        .expect("whoami succeeds");
    assert_eq!(user.login_id, "alice@example.com");
    assert_eq!(user.name, "Alice Example");
    assert_eq!(user.token_name.as_deref(), Some("Alice's token"));
}

#[tokio::test]
async fn whoami_401_and_403_are_the_tokens_fault() {
    for status in [401, 403] {
        match whoami_answer(ResponseTemplate::new(status)).await {
            Err(WhoamiError::Rejected { status: got }) => assert_eq!(got, status),
            other => panic!("HTTP {status}: expected Rejected, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn whoami_5xx_and_429_mean_coda_is_unavailable_never_a_bad_token() {
    for status in [500, 502, 503, 504] {
        match whoami_answer(ResponseTemplate::new(status)).await {
            Err(WhoamiError::Unavailable {
                detail,
                retry_after,
            }) => {
                assert_eq!(detail, format!("HTTP {status}"));
                assert_eq!(retry_after, None);
            }
            other => panic!("HTTP {status}: expected Unavailable, got {other:?}"),
        }
    }
    match whoami_answer(ResponseTemplate::new(429).insert_header("retry-after", "7")).await {
        Err(WhoamiError::Unavailable { retry_after, .. }) => assert_eq!(retry_after, Some(7)),
        other => panic!("HTTP 429: expected Unavailable, got {other:?}"),
    }
}

#[tokio::test]
async fn whoami_with_an_unreadable_body_is_unavailable() {
    for body in ["not json", r#"{"name": "no loginId"}"#] {
        match whoami_answer(ResponseTemplate::new(200).set_body_string(body)).await {
            Err(WhoamiError::Unavailable { detail, .. }) => {
                assert_eq!(detail, "answer is not a whoami body", "{body}")
            }
            other => panic!("{body:?}: expected Unavailable, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn whoami_timeout_is_unavailable_and_says_so() {
    let server = MockServer::start().await;
    // Far longer than the client's bound: the answer never arrives in time.
    Mock::given(method("GET"))
        .and(path("/apis/v1/whoami"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "loginId": "late@example.com" }))
                .set_delay(Duration::from_secs(30)),
        )
        .mount(&server)
        .await;
    match coda_client(&server, Duration::from_millis(200))
        .whoami(&Secret::new(TOKEN))
        .await
    {
        Err(WhoamiError::Unavailable { detail, .. }) => assert_eq!(detail, "timed out"),
        other => panic!("expected a timeout, got {other:?}"),
    }
}

#[tokio::test]
async fn whoami_never_follows_a_redirect_so_the_token_stays_with_coda() {
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({ "loginId": "thief@example.com" })),
        )
        .expect(0)
        .named("the redirect's target")
        .mount(&elsewhere)
        .await;
    for status in [301, 302, 307, 308] {
        let redirect = ResponseTemplate::new(status)
            .insert_header("location", format!("{}/steal", elsewhere.uri()).as_str());
        match whoami_answer(redirect).await {
            Err(WhoamiError::Unavailable { detail, .. }) => {
                assert_eq!(detail, format!("HTTP {status}"))
            }
            other => panic!("HTTP {status}: expected Unavailable, got {other:?}"),
        }
    }
    // `expect(0)` is verified when `elsewhere` drops; say it explicitly too.
    assert!(elsewhere
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty());
}

// ---------------------------------------------------------------------------------------------
// Client ID metadata documents
// ---------------------------------------------------------------------------------------------

/// A fetcher that admits http and loopback (wiremock serves plain http on 127.0.0.1); the https
/// and public-address rules have their own unit tests in `oauth::cimd`.
fn fetcher() -> Fetcher {
    Fetcher::new(true).expect("fetcher builds")
}

async fn document_server(template: ResponseTemplate) -> (MockServer, String) {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/client.json"))
        .respond_with(template)
        .expect(1)
        .mount(&server)
        .await;
    let client_id = format!("{}/client.json", server.uri());
    (server, client_id)
}

fn document(client_id: &str) -> serde_json::Value {
    json!({
        "client_id": client_id,
        "client_name": "Wiremock Client",
        "redirect_uris": ["http://127.0.0.1:33418/callback"]
    })
}

#[tokio::test]
async fn a_valid_document_is_fetched_as_json_and_checked() {
    let server = MockServer::start().await;
    let client_id = format!("{}/client.json", server.uri());
    Mock::given(method("GET"))
        .and(path("/client.json"))
        .and(header("accept", "application/json"))
        .respond_with(ResponseTemplate::new(200).set_body_json(document(&client_id)))
        .expect(1)
        .mount(&server)
        .await;
    let fetched = fetcher()
        .fetch(&client_id)
        .await
        .expect("document accepted");
    assert_eq!(fetched.client_name, "Wiremock Client");
    assert_eq!(fetched.redirect_uris, ["http://127.0.0.1:33418/callback"]);
}

#[tokio::test]
async fn a_document_redirect_is_not_followed() {
    let elsewhere = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&elsewhere)
        .await;
    let (_server, client_id) = document_server(ResponseTemplate::new(302).insert_header(
        "location",
        format!("{}/client.json", elsewhere.uri()).as_str(),
    ))
    .await;
    let error = fetcher()
        .fetch(&client_id)
        .await
        .expect_err("a redirect is refused");
    assert_eq!(error, "the client's metadata document answered HTTP 302");
    assert!(elsewhere
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty());
}

#[tokio::test]
async fn document_errors_say_what_was_wrong() {
    let (_s, client_id) = document_server(ResponseTemplate::new(404)).await;
    assert_eq!(
        fetcher().fetch(&client_id).await.unwrap_err(),
        "the client's metadata document answered HTTP 404"
    );
    let (_s, client_id) = document_server(ResponseTemplate::new(503)).await;
    assert_eq!(
        fetcher().fetch(&client_id).await.unwrap_err(),
        "the client's metadata document answered HTTP 503"
    );
    let (_s, client_id) =
        document_server(ResponseTemplate::new(200).set_body_string("<html>")).await;
    assert_eq!(
        fetcher().fetch(&client_id).await.unwrap_err(),
        "the client's metadata document is not JSON"
    );
    // 64 KiB is the limit: one byte more is refused before it is parsed.
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(64 * 1024));
    let (_s, client_id) = document_server(ResponseTemplate::new(200).set_body_string(big)).await;
    assert_eq!(
        fetcher().fetch(&client_id).await.unwrap_err(),
        "the client's metadata document is too large"
    );
    // A document that names another client is someone else's.
    let server = MockServer::start().await;
    let client_id = format!("{}/client.json", server.uri());
    Mock::given(method("GET"))
        .and(path("/client.json"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(document("https://other.example/client.json")),
        )
        .mount(&server)
        .await;
    assert_eq!(
        fetcher().fetch(&client_id).await.unwrap_err(),
        "the client's metadata document names another client_id"
    );
}
