//! Property: whatever an internal error says (paths, upstream URLs, token-shaped strings, child
//! stderr), no response body or header built from it contains any of it.

use axum::response::IntoResponse;
use proptest::prelude::*;

use super::auth::refusal_reject;
use super::session::spawn_reject;
use crate::core::spawner::SpawnFailure;
use crate::identity::cache::Outcome;
use crate::identity::coda::WhoamiError;
use crate::identity::{outcome_of, Refusal};

fn secret_text() -> impl Strategy<Value = String> {
    prop_oneof![
        "/[a-z]{3,8}/[a-z_]{3,12}\\.(js|py|rs)",
        "https://[a-z]{4,10}\\.internal:[0-9]{4}/apis/v1/[a-z]{4,8}",
        "[A-Za-z0-9]{8}-[A-Za-z0-9]{4}-[A-Za-z0-9]{4}-[A-Za-z0-9]{12}",
        "secret-[a-z0-9]{16,32}",
        "Traceback: [a-zA-Z ]{10,40} at line [0-9]{2,4}",
    ]
}

async fn rendered(reject: super::reply::Reject) -> String {
    let response = reject.into_response();
    let mut text = String::new();
    for (name, value) in response.headers() {
        text.push_str(name.as_str());
        text.push_str(value.to_str().unwrap_or(""));
    }
    let body = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    text.push_str(&String::from_utf8_lossy(&body));
    text
}

proptest! {
    #[test]
    fn internal_detail_never_reaches_the_client(detail in secret_text(), retry in proptest::option::of(0u64..10_000)) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async {
            let spawn_failures = [
                SpawnFailure::Start(detail.clone()),
                SpawnFailure::Initialize(detail.clone()),
                SpawnFailure::AtCapacity,
            ];
            for failure in spawn_failures {
                let text = rendered(spawn_reject(failure)).await;
                prop_assert!(!text.contains(&detail), "spawn failure leaked: {text}");
            }
            let outcome = outcome_of(Err(WhoamiError::Unavailable { detail: detail.clone(), retry_after: retry }));
            let Outcome::Unavailable { retry_after } = outcome else {
                return Err(TestCaseError::fail("an unavailable Coda must never look like a verdict"));
            };
            let text = rendered(refusal_reject(Refusal::Unavailable { retry_after }, "https://gw.example.com")).await;
            prop_assert!(!text.contains(&detail), "whoami failure leaked: {text}");
            prop_assert!(text.contains("503") || text.contains("Service Unavailable"));
            Ok(())
        })?;
    }
}
