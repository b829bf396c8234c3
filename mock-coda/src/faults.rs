//! Fault injection: make chosen requests slow, fail, throttle, return broken JSON,
//! or lose their connection, so the gateway's failure paths can be tested.
//!
//! Faults are matched in insertion order against every request outside `/_mock`.
//! All matching `latency` faults add up; then the first matching terminal fault
//! (`status`, `rate_limit`, `malformed`, `drop`) answers instead of the real handler.
//! Each firing consumes one of the fault's `times`; exhausted faults stay listed (with
//! `remaining: 0`) so a test can assert that a fault fired, until they are cleared.

use std::sync::Mutex;

use serde::{Deserialize, Serialize};

/// One fault rule. The JSON form is the body of `POST /_mock/faults`, e.g.
/// `{"route": "/apis/v1/whoami", "token": null, "kind": "rate_limit", "retry_after": 2, "times": 1}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fault {
    /// Path this fault applies to: the exact path or any path below it
    /// (`/apis/v1/docs` also matches `/apis/v1/docs/x/pages`). `None` matches all.
    #[serde(default)]
    pub route: Option<String>,
    /// Bearer token this fault applies to. `None` matches any token, or none.
    #[serde(default)]
    pub token: Option<String>,
    /// HTTP method this fault applies to (case-insensitive). `None` matches all.
    #[serde(default)]
    pub method: Option<String>,
    /// What happens to a matching request.
    #[serde(flatten)]
    pub kind: FaultKind,
    /// How many requests it fires for; `None` means until cleared.
    #[serde(default)]
    pub times: Option<u32>,
}

/// What a fault does; the JSON tag is `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultKind {
    /// Wait `ms` milliseconds, then answer normally (or apply a terminal fault).
    Latency { ms: u64 },
    /// Answer `status` (400..=599) with Coda's error body.
    Status {
        #[serde(default = "default_status")]
        status: u16,
    },
    /// Answer 429 with Coda's body and `Retry-After: retry_after` (seconds).
    RateLimit {
        #[serde(default = "default_retry_after")]
        retry_after: u64,
    },
    /// Answer 200 `application/json` whose body is not valid JSON.
    Malformed,
    /// Close the connection without sending any HTTP response.
    Drop,
}

fn default_status() -> u16 {
    500
}

fn default_retry_after() -> u64 {
    1
}

impl FaultKind {
    fn is_terminal(&self) -> bool {
        !matches!(self, FaultKind::Latency { .. })
    }

    /// The name used in the JSON `kind` field and in the request log.
    pub fn name(&self) -> &'static str {
        match self {
            FaultKind::Latency { .. } => "latency",
            FaultKind::Status { .. } => "status",
            FaultKind::RateLimit { .. } => "rate_limit",
            FaultKind::Malformed => "malformed",
            FaultKind::Drop => "drop",
        }
    }
}

impl Fault {
    /// A fault of `kind` on every route and token, until cleared.
    pub fn new(kind: FaultKind) -> Self {
        Fault {
            route: None,
            token: None,
            method: None,
            kind,
            times: None,
        }
    }

    pub fn route(mut self, route: impl Into<String>) -> Self {
        self.route = Some(route.into());
        self
    }

    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    pub fn method(mut self, method: impl Into<String>) -> Self {
        self.method = Some(method.into());
        self
    }

    pub fn times(mut self, times: u32) -> Self {
        self.times = Some(times);
        self
    }

    /// Checks what the type cannot: a `status` fault must be an error status.
    pub fn validate(&self) -> Result<(), String> {
        match self.kind {
            FaultKind::Status { status } if !(400..=599).contains(&status) => {
                Err(format!("status must be in 400..=599, got {status}"))
            }
            _ => Ok(()),
        }
    }

    fn matches(&self, method: &str, path: &str, token: Option<&str>) -> bool {
        let route_ok = self.route.as_deref().is_none_or(|route| {
            let route = route.trim_end_matches('/');
            path == route
                || (path.starts_with(route) && path[route.len()..].starts_with('/'))
                || route.is_empty()
        });
        let token_ok = self.token.as_deref().is_none_or(|t| token == Some(t));
        let method_ok = self
            .method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method));
        route_ok && token_ok && method_ok
    }
}

/// Identifies a fault; returned by `add_fault` and listed by `GET /_mock/faults`.
pub type FaultId = u64;

/// A fault plus its bookkeeping, as listed by `GET /_mock/faults`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FaultStatus {
    pub id: FaultId,
    #[serde(flatten)]
    pub fault: Fault,
    /// How many requests it has fired for.
    pub fired: u64,
    /// Firings left; `None` means unlimited.
    pub remaining: Option<u32>,
}

/// What the edge middleware must do to one request.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct FaultPlan {
    pub delay_ms: u64,
    pub terminal: Option<FaultKind>,
    /// Kinds that fired, for the request log.
    pub fired: Vec<&'static str>,
}

/// The active fault rules.
#[derive(Debug, Default)]
pub(crate) struct FaultSet {
    inner: Mutex<FaultSetInner>,
}

#[derive(Debug, Default)]
struct FaultSetInner {
    next_id: FaultId,
    faults: Vec<FaultStatus>,
}

impl FaultSet {
    pub fn add(&self, fault: Fault) -> FaultId {
        let mut inner = lock(&self.inner);
        inner.next_id += 1;
        let id = inner.next_id;
        let remaining = fault.times;
        inner.faults.push(FaultStatus {
            id,
            fault,
            fired: 0,
            remaining,
        });
        id
    }

    pub fn clear(&self) {
        lock(&self.inner).faults.clear();
    }

    pub fn list(&self) -> Vec<FaultStatus> {
        lock(&self.inner).faults.clone()
    }

    /// Decides (and consumes) the faults that apply to one request.
    pub fn take(&self, method: &str, path: &str, token: Option<&str>) -> FaultPlan {
        let mut inner = lock(&self.inner);
        let mut plan = FaultPlan::default();
        for status in inner.faults.iter_mut() {
            if status.remaining == Some(0) || !status.fault.matches(method, path, token) {
                continue;
            }
            let terminal = status.fault.kind.is_terminal();
            if terminal && plan.terminal.is_some() {
                continue;
            }
            status.fired += 1;
            if let Some(remaining) = status.remaining.as_mut() {
                *remaining -= 1;
            }
            plan.fired.push(status.fault.kind.name());
            match &status.fault.kind {
                FaultKind::Latency { ms } => plan.delay_ms = plan.delay_ms.saturating_add(*ms),
                kind => plan.terminal = Some(kind.clone()),
            }
        }
        plan
    }
}

/// Locks a mutex, ignoring poisoning: the mock's state stays usable even if some
/// earlier holder panicked, and no request can panic because of it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_json_round_trips() {
        let fault: Fault = serde_json::from_str(
            r#"{"route": "/apis/v1/whoami", "token": null, "kind": "rate_limit", "retry_after": 3, "times": 2}"#,
        )
        .unwrap();
        assert_eq!(
            fault,
            Fault::new(FaultKind::RateLimit { retry_after: 3 })
                .route("/apis/v1/whoami")
                .times(2)
        );
        let drop: Fault = serde_json::from_str(r#"{"kind": "drop", "times": null}"#).unwrap();
        assert_eq!(drop, Fault::new(FaultKind::Drop));
        assert!(serde_json::from_str::<Fault>(r#"{"kind": "explode"}"#).is_err());
    }

    #[test]
    fn route_matches_path_and_below_only() {
        let fault = Fault::new(FaultKind::Drop).route("/apis/v1/docs");
        assert!(fault.matches("GET", "/apis/v1/docs", None));
        assert!(fault.matches("GET", "/apis/v1/docs/abc", None));
        assert!(!fault.matches("GET", "/apis/v1/docsx", None));
        assert!(!fault.matches("GET", "/apis/v1/whoami", None));
    }

    #[test]
    fn latency_adds_up_and_first_terminal_wins() {
        let set = FaultSet::default();
        set.add(Fault::new(FaultKind::Latency { ms: 5 }));
        set.add(Fault::new(FaultKind::Status { status: 503 }).times(1));
        set.add(Fault::new(FaultKind::Malformed).token("t"));
        set.add(Fault::new(FaultKind::Latency { ms: 7 }).times(1));
        let plan = set.take("GET", "/x", Some("t"));
        assert_eq!(plan.delay_ms, 12);
        assert_eq!(plan.terminal, Some(FaultKind::Status { status: 503 }));
        let plan = set.take("GET", "/x", Some("t"));
        assert_eq!(plan.delay_ms, 5);
        assert_eq!(plan.terminal, Some(FaultKind::Malformed));
        let plan = set.take("GET", "/x", None);
        assert_eq!(plan.terminal, None);
        let fired: Vec<u64> = set.list().iter().map(|f| f.fired).collect();
        assert_eq!(fired, vec![3, 1, 1, 1]);
    }
}
