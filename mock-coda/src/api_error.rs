//! Coda's single error body shape, used by every error the mock returns under `/apis/v1`.
//!
//! The spec declares `required: [statusCode, statusMessage, message]` with
//! `additionalProperties: false`; the only extension is `codaDetail.validationErrors`
//! on some 400s. Clients branch on the status and sometimes print `message`, so both
//! must look like the real thing.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// One entry of `codaDetail.validationErrors` on a 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    pub path: String,
    pub message: String,
}

/// An error answer in Coda's shape; converts into a response with the right status.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    validation_errors: Vec<ValidationError>,
    retry_after_secs: Option<u64>,
}

impl ApiError {
    /// An error whose `message` is the same as its `statusMessage`, as Coda does for
    /// most statuses.
    pub fn status(status: StatusCode) -> Self {
        Self::new(status, status_message(status))
    }

    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            validation_errors: Vec::new(),
            retry_after_secs: None,
        }
    }

    pub fn unauthorized() -> Self {
        Self::status(StatusCode::UNAUTHORIZED)
    }

    pub fn not_found() -> Self {
        Self::status(StatusCode::NOT_FOUND)
    }

    pub fn gone() -> Self {
        Self::status(StatusCode::GONE)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// A 429 with `Retry-After`, which the real clients branch on.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        let mut error = Self::status(StatusCode::TOO_MANY_REQUESTS);
        error.retry_after_secs = Some(retry_after_secs);
        error
    }

    /// A 400 carrying `codaDetail.validationErrors`, Coda's `BadRequestWithValidationErrors`.
    pub fn validation(errors: Vec<ValidationError>) -> Self {
        let mut error = Self::status(StatusCode::BAD_REQUEST);
        error.validation_errors = errors;
        error
    }

    fn body(&self) -> Value {
        let mut body = json!({
            "statusCode": self.status.as_u16(),
            "statusMessage": status_message(self.status),
            "message": self.message,
        });
        if !self.validation_errors.is_empty() {
            let errors: Vec<Value> = self
                .validation_errors
                .iter()
                .map(|e| json!({"path": e.path, "message": e.message}))
                .collect();
            body["codaDetail"] = json!({ "validationErrors": errors });
        }
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(secs) = self.retry_after_secs {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

fn status_message(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("Error")
}
