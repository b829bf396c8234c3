//! Every refusal the edge gives: one type that knows the HTTP status, the JSON-RPC code, who is
//! at fault and what to do, and never carries internal detail (that goes to the log with the
//! request id the client also receives).

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};

use crate::jsonrpc;

/// Who must act to fix a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The request was wrong: fix the request.
    Client,
    /// The MCP server (child) or Coda failed: retry later or tell the operator.
    Upstream,
    /// The gateway itself is at capacity or failed: retry later.
    Gateway,
}

impl Fault {
    fn as_str(self) -> &'static str {
        match self {
            Fault::Client => "client",
            Fault::Upstream => "upstream",
            Fault::Gateway => "gateway",
        }
    }
}

/// A refusal; boxed so `Result<_, Reject>` stays small on the happy path.
#[derive(Debug)]
pub struct Reject(Box<Inner>);

#[derive(Debug)]
pub struct Inner {
    pub status: StatusCode,
    pub code: i64,
    pub message: String,
    pub fault: Fault,
    /// `Some(id)` puts the member in the body (often `null`); `None` leaves it out.
    pub id: Option<Value>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub request_id: Option<String>,
    /// Members added to `error.data` beside `fault` and `requestId` (what the spec asks for,
    /// such as `supported` and `requested` for an unsupported version).
    pub data: Map<String, Value>,
}

impl Reject {
    pub fn new(status: StatusCode, code: i64, fault: Fault, message: impl Into<String>) -> Reject {
        Reject(Box::new(Inner {
            status,
            code,
            message: message.into(),
            fault,
            id: Some(Value::Null),
            headers: Vec::new(),
            request_id: None,
            data: Map::new(),
        }))
    }

    pub fn client(status: StatusCode, code: i64, message: impl Into<String>) -> Reject {
        Reject::new(status, code, Fault::Client, message)
    }

    /// Echoes the request's JSON-RPC id (the default is `null`).
    pub fn with_id(mut self, id: &Value) -> Reject {
        self.0.id = Some(id.clone());
        self
    }

    /// Adds a member to `error.data`.
    pub fn data(mut self, name: &str, value: Value) -> Reject {
        self.0.data.insert(name.to_string(), value);
        self
    }

    pub fn code(&self) -> i64 {
        self.0.code
    }

    pub fn status(&self) -> StatusCode {
        self.0.status
    }

    /// A member added to `error.data` with [`Reject::data`].
    pub fn data_of(&self, name: &str) -> Option<&Value> {
        self.0.data.get(name)
    }

    pub fn without_id(mut self) -> Reject {
        self.0.id = None;
        self
    }

    pub fn header(mut self, name: HeaderName, value: &str) -> Reject {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.0.headers.push((name, value));
        }
        self
    }

    pub fn retry_after(self, seconds: u64) -> Reject {
        self.header(header::RETRY_AFTER, &seconds.to_string())
    }

    pub fn request_id(mut self, request_id: &str) -> Reject {
        self.0.request_id = Some(request_id.to_string());
        self
    }

    pub fn session_required() -> Reject {
        Reject::client(
            StatusCode::BAD_REQUEST,
            jsonrpc::TRANSPORT_ERROR,
            "Bad Request: Mcp-Session-Id header is required (send initialize first to get one)",
        )
    }

    pub fn session_not_found() -> Reject {
        Reject::client(
            StatusCode::NOT_FOUND,
            jsonrpc::SESSION_NOT_FOUND,
            "Session not found: it expired, was deleted or never existed; send initialize without Mcp-Session-Id to start a new one",
        )
    }

    pub fn at_capacity(what: &str) -> Reject {
        Reject::new(
            StatusCode::SERVICE_UNAVAILABLE,
            jsonrpc::TRANSPORT_ERROR,
            Fault::Gateway,
            format!("Service Unavailable: {what}; retry later"),
        )
        .retry_after(5)
    }
}

impl Reject {
    /// The JSON-RPC error body alone (for an answer already streaming).
    pub fn body(self) -> bytes::Bytes {
        self.into_parts().2
    }

    fn into_parts(self) -> (StatusCode, Vec<(HeaderName, HeaderValue)>, bytes::Bytes) {
        let this = *self.0;
        let mut data = json!({ "fault": this.fault.as_str() });
        if let Some(request_id) = &this.request_id {
            data["requestId"] = json!(request_id);
        }
        for (name, value) in this.data {
            data[name] = value;
        }
        let body = jsonrpc::error_body(this.id.as_ref(), this.code, &this.message, Some(data));
        (this.status, this.headers, jsonrpc::to_bytes(&body))
    }
}

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        let (status, extra, body) = self.into_parts();
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in extra {
            headers.append(name, value);
        }
        (status, headers, body).into_response()
    }
}
