//! The conformance proxy against a tiny in-test axum server: it adds the bearer token, maps
//! `Host` only when the client addressed the proxy, passes `Origin`, streams SSE event by event,
//! streams request bodies, and answers 502 when the target is gone.

use axum::body::Body;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use futures_util::StreamExt;
use harness::conformance::AuthProxy;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Mutex};

type Events = Arc<Mutex<Option<mpsc::Receiver<String>>>>;

fn header(headers: &HeaderMap, name: &str) -> serde_json::Value {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map_or(serde_json::Value::Null, |v| v.into())
}

/// Echoes the headers it saw. `/sse` streams whatever the test pushes into the channel.
async fn start_target(events: Events) -> (url::Url, tokio::task::JoinHandle<()>) {
    let app = Router::new()
        .route(
            "/mcp",
            post(|headers: HeaderMap, body: Bytes| async move {
                axum::Json(serde_json::json!({
                    "authorization": header(&headers, "authorization"),
                    "host": header(&headers, "host"),
                    "origin": header(&headers, "origin"),
                    "connection": header(&headers, "connection"),
                    "x-custom": header(&headers, "x-custom"),
                    "body_len": body.len(),
                }))
            }),
        )
        .route(
            "/sse",
            get(move || {
                let events = events.clone();
                async move {
                    let rx = events.lock().await.take().expect("one SSE stream");
                    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
                        rx.recv()
                            .await
                            .map(|event| (Ok::<_, std::io::Error>(Bytes::from(event)), rx))
                    });
                    (
                        StatusCode::OK,
                        [
                            ("content-type", "text/event-stream"),
                            ("cache-control", "no-cache"),
                        ],
                        Body::from_stream(stream),
                    )
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (
        url::Url::parse(&format!("http://{addr}/mcp")).unwrap(),
        task,
    )
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

#[tokio::test]
async fn adds_the_token_maps_only_its_own_host_and_keeps_origin() {
    let (target, server) = start_target(Arc::new(Mutex::new(None))).await;
    let proxy = AuthProxy::start(&target, Some("tok-123")).await.unwrap();
    assert_eq!(proxy.url().path(), "/mcp");
    assert_eq!(proxy.url().host_str(), Some("127.0.0.1"));
    let target_host = format!("127.0.0.1:{}", target.port().unwrap());
    let proxy_host = format!("127.0.0.1:{}", proxy.local_addr().port());

    // Addressed to the proxy (the client's default Host): the target sees its own authority.
    let seen: serde_json::Value = client()
        .post(proxy.url().clone())
        .header("origin", format!("http://{proxy_host}"))
        .header("authorization", "Bearer client-supplied")
        .header("x-custom", "kept")
        .body("{\"jsonrpc\":\"2.0\"}")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["authorization"], "Bearer tok-123");
    assert_eq!(seen["host"], target_host.as_str());
    assert_eq!(seen["origin"], format!("http://{proxy_host}").as_str());
    assert_eq!(seen["x-custom"], "kept");
    assert_eq!(seen["body_len"], 17);

    // A foreign Host (DNS rebinding) goes through unchanged, and so does its Origin.
    let seen: serde_json::Value = client()
        .post(proxy.url().clone())
        .header("host", "evil.example.com")
        .header("origin", "http://evil.example.com")
        .body("{}")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["host"], "evil.example.com");
    assert_eq!(seen["origin"], "http://evil.example.com");
    assert_eq!(seen["authorization"], "Bearer tok-123");
    assert_eq!(proxy.foreign_hosts(), 1);

    // localhost with the proxy's port is the proxy too.
    let seen: serde_json::Value = client()
        .post(proxy.url().clone())
        .header("host", format!("localhost:{}", proxy.local_addr().port()))
        .body("{}")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["host"], target_host.as_str());
    assert_eq!(proxy.requests(), 3);
    proxy.shutdown().await;
    server.abort();
}

#[tokio::test]
async fn no_token_means_no_authorization_header() {
    let (target, server) = start_target(Arc::new(Mutex::new(None))).await;
    let proxy = AuthProxy::start(&target, None).await.unwrap();
    let seen: serde_json::Value = client()
        .post(proxy.url().clone())
        .body("{}")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["authorization"], serde_json::Value::Null);
    proxy.shutdown().await;
    server.abort();
}

/// Reads the body until `want` has arrived (bounded), returning everything read so far.
async fn read_until(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<Bytes>> + Unpin),
    buf: &mut String,
    want: &str,
) {
    tokio::time::timeout(Duration::from_secs(5), async {
        while !buf.contains(want) {
            let chunk = stream.next().await.expect("stream ended").unwrap();
            buf.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{want:?} did not arrive through the proxy; got {buf:?}"));
}

#[tokio::test]
async fn sse_streams_event_by_event() {
    let (tx, rx) = mpsc::channel::<String>(4);
    let (target, server) = start_target(Arc::new(Mutex::new(Some(rx)))).await;
    let proxy = AuthProxy::start(&target, Some("tok")).await.unwrap();
    let mut url = proxy.url().clone();
    url.set_path("/sse");
    let response = client()
        .get(url)
        .header("accept", "text/event-stream")
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream",
        "headers arrive before any event"
    );
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    // Each event is only sent once the previous one came out of the proxy: a buffering proxy
    // would never deliver the first and the read would time out.
    tx.send(": keep-alive\n\n".into()).await.unwrap();
    read_until(&mut body, &mut seen, ": keep-alive\n\n").await;
    tx.send("id: 1\ndata: {\"n\":1}\n\n".into()).await.unwrap();
    read_until(&mut body, &mut seen, "data: {\"n\":1}\n\n").await;
    assert!(!seen.contains("\"n\":2"));
    tx.send("id: 2\ndata: {\"n\":2}\n\n".into()).await.unwrap();
    read_until(&mut body, &mut seen, "data: {\"n\":2}\n\n").await;
    // The target ends the stream: so does the proxy.
    drop(tx);
    let rest = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .expect("the end of the stream came through");
    assert!(rest.is_none(), "no more data: {rest:?}");
    assert_eq!(
        seen,
        ": keep-alive\n\nid: 1\ndata: {\"n\":1}\n\nid: 2\ndata: {\"n\":2}\n\n"
    );
    proxy.shutdown().await;
    server.abort();
}

#[tokio::test]
async fn request_bodies_stream_to_the_target() {
    let (target, server) = start_target(Arc::new(Mutex::new(None))).await;
    let proxy = AuthProxy::start(&target, Some("tok")).await.unwrap();
    // A chunked body of unknown length (no Content-Length) arrives whole.
    let chunks = futures_util::stream::iter(
        (0..64).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 1024]))),
    );
    let seen: serde_json::Value = client()
        .post(proxy.url().clone())
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(seen["body_len"], 64 * 1024);
    assert_eq!(seen["connection"], serde_json::Value::Null);
    proxy.shutdown().await;
    server.abort();
}

#[tokio::test]
async fn an_unreachable_target_is_a_502() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let target = url::Url::parse(&format!("http://127.0.0.1:{port}/mcp")).unwrap();
    let proxy = AuthProxy::start(&target, Some("tok")).await.unwrap();
    let response = client()
        .post(proxy.url().clone())
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);
    let text = response.text().await.unwrap();
    assert!(
        text.starts_with("mcp-harness conformance proxy: cannot reach"),
        "{text}"
    );
    assert!(!text.contains("tok"), "{text}");
    proxy.shutdown().await;
}

#[tokio::test]
async fn bad_targets_are_refused() {
    for bad in ["ftp://example.com/mcp", "file:///tmp/x"] {
        let target = url::Url::parse(bad).unwrap();
        assert!(AuthProxy::start(&target, None).await.is_err(), "{bad}");
    }
    let target = url::Url::parse("http://127.0.0.1:1/mcp").unwrap();
    assert!(AuthProxy::start(&target, Some("bad\ntoken")).await.is_err());
}
