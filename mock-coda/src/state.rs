//! [`MockState`]: everything one mock instance knows, shared by all requests.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, RwLock};

use crate::calls::{CallCounts, CallLog, RequestRecord};
use crate::data::fixture::Fixture;
use crate::data::render::Urls;
use crate::data::store::Store;
use crate::error::Error;
use crate::faults::{lock, Fault, FaultId, FaultSet, FaultStatus};
use crate::tokens::Identity;
use crate::MockCodaConfig;

/// The state behind [`crate::router`]: token table, faults, call log and data.
///
/// Data is one shared state for all tokens (no per-user isolation); every data route
/// still requires a token from the table.
#[derive(Debug)]
pub struct MockState {
    pub(crate) urls: Urls,
    tokens: RwLock<HashMap<String, Identity>>,
    pub(crate) faults: FaultSet,
    pub(crate) calls: CallLog,
    store: Mutex<Store>,
    /// Kept so that `POST /_mock/reset` can restore the fixture's documents.
    fixture: Fixture,
}

impl MockState {
    /// Builds the state for a mock whose API base is `base_url`
    /// (`http://127.0.0.1:PORT/apis/v1`); links in responses point there.
    pub fn new(config: MockCodaConfig, base_url: &str) -> Result<MockState, Error> {
        let fixture = match config.fixture {
            Some(fixture) => fixture,
            None => Fixture::default_fixture()?,
        };
        let faults = FaultSet::default();
        for fault in config.faults {
            faults.add(fault);
        }
        Ok(MockState {
            urls: Urls::from_base(base_url),
            tokens: RwLock::new(config.tokens.into_iter().collect()),
            faults,
            calls: CallLog::default(),
            store: Mutex::new(Store::new(&fixture)),
            fixture,
        })
    }

    /// `http://HOST:PORT/apis/v1`.
    pub fn base_url(&self) -> &str {
        &self.urls.base
    }

    /// Who `token` belongs to, if anyone.
    pub fn identity(&self, token: &str) -> Option<Identity> {
        let tokens = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        tokens.get(token).cloned()
    }

    /// Adds or replaces a token at runtime.
    pub fn add_token(&self, token: impl Into<String>, identity: Identity) {
        let mut tokens = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        tokens.insert(token.into(), identity);
    }

    /// Revokes a token: from now on it gets 401. Returns whether it existed.
    pub fn remove_token(&self, token: &str) -> bool {
        let mut tokens = self.tokens.write().unwrap_or_else(|p| p.into_inner());
        tokens.remove(token).is_some()
    }

    /// Requests received whose path starts with `route_prefix` (e.g. `/apis/v1/whoami`).
    pub fn calls(&self, route_prefix: &str) -> u64 {
        self.calls.calls(route_prefix)
    }

    pub fn total_calls(&self) -> u64 {
        self.calls.total()
    }

    pub fn call_counts(&self) -> CallCounts {
        self.calls.counts()
    }

    /// The most recent requests (up to 1000), oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.calls.requests()
    }

    pub fn reset_calls(&self) {
        self.calls.reset();
    }

    pub fn add_fault(&self, fault: Fault) -> FaultId {
        self.faults.add(fault)
    }

    pub fn clear_faults(&self) {
        self.faults.clear();
    }

    /// Every fault added since the last clear, with how often it fired.
    pub fn faults(&self) -> Vec<FaultStatus> {
        self.faults.list()
    }

    /// Restores the fixture's documents and forgets mutations and exports.
    pub fn reset_data(&self) {
        *self.store() = Store::new(&self.fixture);
    }

    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        lock(&self.store)
    }
}
