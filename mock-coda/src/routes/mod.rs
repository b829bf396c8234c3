//! The HTTP surface: Coda's API under `/apis/v1`, export downloads under `/blobs`,
//! and the test control API under `/_mock`.

mod control;
mod docs;
mod links;
mod pages;
mod rows;
mod tables;

use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::middleware::from_fn_with_state;
use axum::routing::get;
use axum::{Extension, Json, Router};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use crate::api_error::ApiError;
use crate::edge::{edge, require_token, Caller};
use crate::state::MockState;

/// Request bodies above this size are refused with 413.
pub const BODY_LIMIT_BYTES: usize = 1024 * 1024;

pub(crate) type AppState = Arc<MockState>;

/// The whole mock as an axum router, for serving or embedding in another process.
///
/// Links in responses use `state.base_url()`, so build the state with the URL the
/// router will actually be reachable at.
pub fn router(state: Arc<MockState>) -> Router {
    let api = Router::new()
        .route("/whoami", get(whoami))
        .merge(docs::routes())
        .merge(links::routes())
        .merge(pages::routes())
        .merge(tables::routes())
        .merge(rows::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        // `layer`, not `route_layer`: unknown paths need a token too, like Coda's.
        .layer(from_fn_with_state(state.clone(), require_token));
    Router::new()
        .nest("/apis/v1", api)
        .route("/blobs/export/{export_id}", get(pages::download_export))
        .nest("/_mock", control::routes())
        .fallback(not_found)
        // Around every route and the fallback, so faults and counting see every
        // request, even one that ends in a 404.
        .layer(from_fn_with_state(state.clone(), edge))
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::status(axum::http::StatusCode::METHOD_NOT_ALLOWED)
}

/// `GET /whoami`: the caller's user, in Coda's exact shape (§3.1 of the reference).
async fn whoami(
    State(state): State<AppState>,
    Extension(Caller(who)): Extension<Caller>,
) -> Json<Value> {
    let origin = &state.urls.origin;
    Json(json!({
        "name": who.name,
        "loginId": who.login_id,
        "type": "user",
        "scoped": who.scoped,
        "tokenName": who.token_name,
        "href": format!("{}/whoami", state.base_url()),
        "pictureLink": format!("{origin}/avatars/default_avatar.png"),
        "workspace": {
            "id": who.workspace_id,
            "type": "workspace",
            "organizationId": "org-mock0001",
            "browserLink": format!("{origin}/docs?workspaceId={}", who.workspace_id),
            "name": "Mock workspace",
        },
    }))
}

/// Parses a required JSON body; errors are Coda-shaped 400s (or 413 when too large).
pub(crate) fn json_body<T: DeserializeOwned>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    let body =
        body.map_err(|rejection| ApiError::new(rejection.status(), rejection.body_text()))?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("Invalid request body: {e}")))
}

/// Like [`json_body`], but an empty body (as some clients send on POST) means default.
pub(crate) fn optional_json_body<T: DeserializeOwned + Default>(
    body: Result<Bytes, BytesRejection>,
) -> Result<T, ApiError> {
    match &body {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(T::default()),
        _ => json_body(body),
    }
}
