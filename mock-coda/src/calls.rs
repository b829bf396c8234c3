//! Counting and logging the requests the mock receives, so tests can assert how often
//! the gateway asked `/whoami` (and with what). Control routes (`/_mock/…`) are not
//! counted. Token values are never logged, only whether a token was present.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;

use crate::faults::lock;

/// How many log entries are kept; older ones are dropped (counts are kept forever).
const LOG_CAPACITY: usize = 1000;

/// One received request, as listed by `GET /_mock/requests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RequestRecord {
    /// Sequence number, starting at 1.
    pub seq: u64,
    pub method: String,
    /// The request-target as received (absolute-form when sent through a proxy).
    pub target: String,
    pub path: String,
    /// Whether an `Authorization: Bearer …` header was present.
    pub authorization: bool,
    /// Response status; `None` while in flight or when the connection was dropped.
    pub status: Option<u16>,
    /// Fault kinds that fired for this request.
    pub faults: Vec<&'static str>,
}

/// Call counts, as returned by `GET /_mock/calls`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CallCounts {
    pub total: u64,
    /// Keyed by request path.
    pub by_route: BTreeMap<String, u64>,
}

#[derive(Debug, Default)]
pub(crate) struct CallLog {
    inner: Mutex<CallLogInner>,
}

#[derive(Debug, Default)]
struct CallLogInner {
    counts: CallCounts,
    next_seq: u64,
    log: VecDeque<RequestRecord>,
}

impl CallLog {
    /// Counts a request as it arrives (before faults or handlers run) and returns its
    /// sequence number for [`CallLog::finish`].
    pub fn record(&self, method: &str, target: &str, path: &str, authorization: bool) -> u64 {
        let mut inner = lock(&self.inner);
        inner.counts.total += 1;
        *inner.counts.by_route.entry(path.to_owned()).or_default() += 1;
        inner.next_seq += 1;
        let seq = inner.next_seq;
        if inner.log.len() == LOG_CAPACITY {
            inner.log.pop_front();
        }
        inner.log.push_back(RequestRecord {
            seq,
            method: method.to_owned(),
            target: target.to_owned(),
            path: path.to_owned(),
            authorization,
            status: None,
            faults: Vec::new(),
        });
        seq
    }

    /// Fills in what happened to request `seq`.
    pub fn finish(&self, seq: u64, status: Option<u16>, faults: Vec<&'static str>) {
        let mut inner = lock(&self.inner);
        if let Some(record) = inner.log.iter_mut().rev().find(|r| r.seq == seq) {
            record.status = status;
            record.faults = faults;
        }
    }

    pub fn counts(&self) -> CallCounts {
        lock(&self.inner).counts.clone()
    }

    /// Calls whose path starts with `prefix` (so `/apis/v1/docs` counts every doc route).
    pub fn calls(&self, prefix: &str) -> u64 {
        lock(&self.inner)
            .counts
            .by_route
            .iter()
            .filter(|(path, _)| path.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }

    pub fn total(&self) -> u64 {
        lock(&self.inner).counts.total
    }

    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.inner).log.iter().cloned().collect()
    }

    pub fn reset(&self) {
        let mut inner = lock(&self.inner);
        inner.counts = CallCounts::default();
        inner.log.clear();
    }
}
