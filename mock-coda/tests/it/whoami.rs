use mock_coda::Identity;
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn default_tokens_answer_with_coda_user_shape() {
    let ctx = start().await;
    let cases = [
        (ALICE, "alice@example.com", "Alice Example", false),
        (BOB, "bob@example.com", "Bob Example", false),
        (OPERATOR, "operator@example.com", "Gateway Operator", false),
        (ALICE_SCOPED, "alice@example.com", "Alice Example", true),
    ];
    for (token, login_id, name, scoped) in cases {
        let (status, body) = ctx.get("/whoami", token).await;
        assert_eq!(status, StatusCode::OK, "{token}");
        assert_eq!(body["loginId"], login_id);
        assert_eq!(body["name"], name);
        assert_eq!(body["type"], "user");
        assert_eq!(body["scoped"], scoped);
        assert!(body["tokenName"].is_string());
        assert_eq!(body["href"], json!(ctx.api("/whoami")));
        assert_eq!(body["workspace"]["type"], "workspace");
        assert!(body["workspace"]["id"].is_string());
        assert!(body["workspace"]["browserLink"].is_string());
        assert!(body.get("user").is_none(), "not the made-up shape");
    }
}

#[tokio::test]
async fn missing_or_unknown_tokens_get_codas_401() {
    let ctx = start().await;
    let url = ctx.api("/whoami");
    let (status, body) = ctx.call(Method::GET, &url, None, None).await;
    assert_eq!(
        (status, body),
        (StatusCode::UNAUTHORIZED, unauthorized_body())
    );
    for token in ["None", "undefined", "mock-token-nobody-9999"] {
        let (status, body) = ctx.call(Method::GET, &url, Some(token), None).await;
        assert_eq!(
            (status, body),
            (StatusCode::UNAUTHORIZED, unauthorized_body()),
            "{token}"
        );
    }
    let response = ctx
        .http
        .get(&url)
        .header("Authorization", format!("Basic {ALICE}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn tokens_can_be_added_and_revoked_at_runtime() {
    let ctx = start().await;
    let state = ctx.coda.state();
    state.add_token(
        "mock-token-carol-0005",
        Identity::new("carol@example.com", "Carol"),
    );
    let (status, body) = ctx.get("/whoami", "mock-token-carol-0005").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["loginId"], "carol@example.com");
    assert!(state.remove_token(ALICE));
    assert_eq!(ctx.get("/whoami", ALICE).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn absolute_form_targets_from_a_proxy_client_are_routed_by_path() {
    let ctx = start().await;
    let proxied = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(ctx.root("")).unwrap())
        .build()
        .unwrap();
    let response = proxied
        .get("http://coda.io/apis/v1/whoami")
        .bearer_auth(BOB)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["loginId"], "bob@example.com");
}
