//! `GET /health`: liveness, with the seed's body.

use std::sync::Arc;

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};

use super::AppState;

pub async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "service": state.config.service_name,
        "version": state.config.service_version,
        "timestamp": crate::timefmt::now_rfc3339(),
    }))
}
