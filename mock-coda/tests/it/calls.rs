use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::*;

#[tokio::test]
async fn calls_are_counted_by_route_and_in_total() {
    let ctx = start().await;
    for _ in 0..3 {
        ctx.get("/whoami", ALICE).await;
    }
    ctx.get("/docs", BOB).await;
    ctx.call(Method::GET, &ctx.api("/whoami"), None, None).await;

    assert_eq!(ctx.coda.calls("/apis/v1/whoami"), 4);
    assert_eq!(ctx.coda.calls("/apis/v1/docs"), 1);
    assert_eq!(ctx.coda.total_calls(), 5);

    let (status, body) = ctx
        .call(Method::GET, &ctx.root("/_mock/calls"), None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"total": 5, "by_route": {"/apis/v1/whoami": 4, "/apis/v1/docs": 1}})
    );
    // Reading the counts is not itself counted.
    assert_eq!(ctx.coda.total_calls(), 5);
}

#[tokio::test]
async fn request_log_records_auth_presence_but_never_the_token() {
    let ctx = start().await;
    ctx.get("/whoami", ALICE).await;
    ctx.call(Method::GET, &ctx.api("/whoami"), None, None).await;
    let (_, log) = ctx
        .call(Method::GET, &ctx.root("/_mock/requests"), None, None)
        .await;
    let log = log.as_array().unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0]["method"], "GET");
    assert_eq!(log[0]["path"], "/apis/v1/whoami");
    assert_eq!(log[0]["authorization"], true);
    assert_eq!(log[0]["status"], 200);
    assert_eq!(log[1]["authorization"], false);
    assert_eq!(log[1]["status"], 401);
    assert!(!serde_json::to_string(&log).unwrap().contains(ALICE));
}

#[tokio::test]
async fn counts_reset_over_http() {
    let ctx = start().await;
    ctx.get("/whoami", ALICE).await;
    let (status, _) = ctx
        .call(Method::DELETE, &ctx.root("/_mock/calls"), None, None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(ctx.coda.total_calls(), 0);
    assert!(ctx.coda.state().requests().is_empty());
}
