//! `GET /health` (liveness: status, service, version and time, the body deployment checks
//! read), `GET /ready` (readiness, with the reason when not) and `GET /metrics` (Prometheus
//! text). None needs auth.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::AppState;
use crate::metrics::{Gauges, METRICS};

pub async fn health(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "service": state.config.service.name,
        "version": state.config.service.version,
        "timestamp": crate::timefmt::now_rfc3339(),
    }))
}

/// 200 only when serving, not draining, under capacity, (with REDIS_URL) Redis answers and (with
/// auth on) Coda answered recently.
pub async fn ready(State(state): State<Arc<AppState>>) -> Response {
    let reason = not_ready_reason(&state).await;
    let body = json!({
        "status": if reason.is_none() { "ready" } else { "not_ready" },
        "reason": reason,
        "sessions": state.store.len(),
        "children": state.spawner.children(),
        "timestamp": crate::timefmt::now_rfc3339(),
    });
    match reason {
        None => (StatusCode::OK, Json(body)).into_response(),
        Some(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            Json(body),
        )
            .into_response(),
    }
}

async fn not_ready_reason(state: &AppState) -> Option<&'static str> {
    if *state.stopping.borrow() {
        return Some("draining");
    }
    if state.store.len() >= state.config.sessions.max_sessions {
        return Some("sessions_at_capacity");
    }
    if state.spawner.children() >= state.config.children.max_children {
        return Some("children_at_capacity");
    }
    // Replicas: budgets and token verdicts live in Redis, so without it nothing is admitted.
    if let Some(shared) = &state.shared {
        if !shared.ping().await {
            return Some("redis_unreachable");
        }
    }
    if let (Some(auth), Some(token)) = (&state.auth, &state.operator_credential) {
        // How old Coda's last answer may be before readiness asks again (READY_CODA_FRESHNESS_SECS).
        let freshness = state.config.auth.ready_coda_freshness;
        if !auth.coda_reachable(token, freshness).await {
            return Some("coda_unreachable");
        }
    }
    None
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let gauges = Gauges {
        sessions_active: state.store.len(),
        children_active: state.spawner.children(),
        pool_identities: state.pool.identities(),
        pool_children: state.pool.children(),
        mrtr_pending: state.parked.len(),
        draining: *state.stopping.borrow(),
    };
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        METRICS.render(&gauges),
    )
        .into_response()
}
