use mock_coda::{Fault, FaultKind};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::*;

async fn post_fault(ctx: &Ctx, fault: Value) -> (StatusCode, Value) {
    ctx.call(Method::POST, &ctx.root("/_mock/faults"), None, Some(fault))
        .await
}

async fn listed_faults(ctx: &Ctx) -> Vec<Value> {
    let (status, body) = ctx
        .call(Method::GET, &ctx.root("/_mock/faults"), None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    body.as_array().unwrap().clone()
}

#[tokio::test]
async fn status_fault_over_http_fires_the_given_number_of_times() {
    let ctx = start().await;
    let fault = json!({"route": "/apis/v1/whoami", "token": null, "kind": "status", "status": 503, "times": 1});
    let (status, body) = post_fault(&ctx, fault).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(body["id"].is_u64());

    let (status, body) = ctx.get("/whoami", ALICE).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        body,
        json!({"statusCode": 503, "statusMessage": "Service Unavailable", "message": "Service Unavailable"})
    );
    assert_eq!(ctx.get("/whoami", ALICE).await.0, StatusCode::OK);

    let faults = listed_faults(&ctx).await;
    assert_eq!(faults.len(), 1);
    assert_eq!(faults[0]["fired"], 1);
    assert_eq!(faults[0]["remaining"], 0);
}

#[tokio::test]
async fn rate_limit_fault_sends_429_with_retry_after() {
    let ctx = start().await;
    ctx.coda
        .add_fault(Fault::new(FaultKind::RateLimit { retry_after: 7 }).route("/apis/v1/whoami"));
    let response = ctx
        .send(Method::GET, &ctx.api("/whoami"), Some(ALICE), None)
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(response.headers()["retry-after"], "7");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body,
        json!({"statusCode": 429, "statusMessage": "Too Many Requests", "message": "Too Many Requests"})
    );
    // Unlimited until cleared, and an unknown token is throttled too (before auth).
    let response = ctx
        .send(
            Method::GET,
            &ctx.api("/whoami"),
            Some("nobody-at-all"),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
    ctx.coda.clear_faults();
    assert_eq!(ctx.get("/whoami", ALICE).await.0, StatusCode::OK);
}

#[tokio::test]
async fn malformed_fault_answers_broken_json() {
    let ctx = start().await;
    ctx.coda
        .add_fault(Fault::new(FaultKind::Malformed).times(1));
    let response = ctx
        .send(Method::GET, &ctx.api("/whoami"), Some(ALICE), None)
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/json");
    let text = response.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&text).is_err(), "{text}");
}

#[tokio::test]
async fn drop_fault_closes_the_connection_without_a_response() {
    let ctx = start().await;
    ctx.coda.add_fault(
        Fault::new(FaultKind::Drop)
            .route("/apis/v1/whoami")
            .times(1),
    );
    let fresh = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let result = fresh
        .get(ctx.api("/whoami"))
        .bearer_auth(ALICE)
        .send()
        .await;
    let error = result.expect_err("no HTTP response on a dropped connection");
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");
    // The request was received and counted; the log shows no status for it.
    assert_eq!(ctx.coda.calls("/apis/v1/whoami"), 1);
    let log = ctx.coda.state().requests();
    assert_eq!(log[0].status, None);
    assert_eq!(log[0].faults, vec!["drop"]);
    // The next request is served normally.
    assert_eq!(ctx.get("/whoami", ALICE).await.0, StatusCode::OK);
}

#[tokio::test]
async fn latency_fault_delays_then_answers_normally() {
    let ctx = start().await;
    ctx.coda.add_fault(
        Fault::new(FaultKind::Latency { ms: 20 })
            .route("/apis/v1/whoami")
            .times(1),
    );
    let (status, body) = ctx.get("/whoami", ALICE).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["loginId"], "alice@example.com");
    let faults = ctx.coda.state().faults();
    assert_eq!((faults[0].fired, faults[0].remaining), (1, Some(0)));
    assert_eq!(ctx.coda.state().requests()[0].faults, vec!["latency"]);
}

#[tokio::test]
async fn faults_can_target_one_token_or_a_route_prefix() {
    let ctx = start().await;
    ctx.coda
        .add_fault(Fault::new(FaultKind::Status { status: 500 }).token(BOB));
    ctx.coda
        .add_fault(Fault::new(FaultKind::Status { status: 502 }).route("/apis/v1/docs"));
    assert_eq!(ctx.get("/whoami", ALICE).await.0, StatusCode::OK);
    assert_eq!(
        ctx.get("/whoami", BOB).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        ctx.get("/docs/AbCDeFGH/pages", ALICE).await.0,
        StatusCode::BAD_GATEWAY
    );
}

#[tokio::test]
async fn control_api_refuses_bad_faults_and_clears() {
    let ctx = start().await;
    let (status, body) = post_fault(&ctx, json!({"kind": "explode"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["statusCode"], 400);
    let (status, _) = post_fault(&ctx, json!({"kind": "status", "status": 200})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = post_fault(&ctx, json!({"kind": "drop", "times": null})).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, _) = ctx
        .call(Method::DELETE, &ctx.root("/_mock/faults"), None, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(listed_faults(&ctx).await.is_empty());
    assert_eq!(ctx.get("/whoami", ALICE).await.0, StatusCode::OK);
}

#[tokio::test]
async fn drop_fault_writes_not_a_single_byte() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let ctx = start().await;
    ctx.coda.add_fault(Fault::new(FaultKind::Drop));
    let mut socket = tokio::net::TcpStream::connect(ctx.coda.local_addr())
        .await
        .unwrap();
    let request =
        format!("GET /apis/v1/whoami HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ALICE}\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    // A reset instead of a clean EOF is fine too: either way, no response.
    let _ = socket.read_to_end(&mut received).await;
    assert!(
        received.is_empty(),
        "{}",
        String::from_utf8_lossy(&received)
    );
}
