//! The test control API under `/_mock` (outside `/apis/v1`, no auth, never faulted
//! or counted): faults, call counts, the request log, and a reset.

use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{json, Value};

use super::{json_body, AppState};
use crate::api_error::ApiError;
use crate::calls::{CallCounts, RequestRecord};
use crate::faults::{Fault, FaultStatus};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/faults",
            get(list_faults).post(add_fault).delete(clear_faults),
        )
        .route("/calls", get(call_counts).delete(reset_calls))
        .route("/requests", get(requests))
        .route("/reset", post(reset))
}

async fn list_faults(State(state): State<AppState>) -> Json<Vec<FaultStatus>> {
    Json(state.faults())
}

async fn add_fault(
    State(state): State<AppState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let fault: Fault = json_body(body)?;
    fault.validate().map_err(ApiError::bad_request)?;
    let id = state.add_fault(fault);
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))))
}

async fn clear_faults(State(state): State<AppState>) -> StatusCode {
    state.clear_faults();
    StatusCode::NO_CONTENT
}

async fn call_counts(State(state): State<AppState>) -> Json<CallCounts> {
    Json(state.call_counts())
}

async fn reset_calls(State(state): State<AppState>) -> StatusCode {
    state.reset_calls();
    StatusCode::NO_CONTENT
}

async fn requests(State(state): State<AppState>) -> Json<Vec<RequestRecord>> {
    Json(state.requests())
}

/// Back to the fixture's documents, no faults, zero calls.
async fn reset(State(state): State<AppState>) -> StatusCode {
    state.reset_data();
    state.clear_faults();
    state.reset_calls();
    StatusCode::NO_CONTENT
}
