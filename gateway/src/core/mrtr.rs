//! Calls waiting for the client's `inputResponses` (MRTR, 2026-07-28), and the `requestState`
//! that lets the client's retry find its call again.
//!
//! A legacy child that asks the client something mid-call is still running that call: it waits
//! for the answer on stdio. The gateway answers the client `input_required` and keeps the call
//! here; the retry names it through `requestState`, an HMAC-SHA256-sealed token (a key made at
//! startup) binding the parked call to the caller (subject and token), the method and a digest of
//! the request's parameters. A tampered, foreign or mismatched state is refused; a valid state
//! whose call is no longer kept (expired, evicted, gateway restarted) is simply run again, and
//! the child's questions are then answered from the retry's `inputResponses`.
//!
//! Bounded: MRTR_STATE_TTL_SECS per call, MRTR_MAX_PENDING_PER_IDENTITY per caller (the oldest
//! is cancelled for a new one). A call let go is dropped, which cancels it on the child.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use super::modern::{InputRequest, ModernCall};

type HmacSha256 = Hmac<Sha256>;

/// A call waiting for the client.
pub struct Parked {
    pub call: ModernCall,
    /// The child's requests still unanswered.
    pub waiting: Vec<InputRequest>,
    owner: String,
    digest: [u8; 32],
    expires: Instant,
}

/// Why a `requestState` was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("requestState is malformed or its integrity check failed")]
    Tampered,
    #[error("requestState belongs to another caller")]
    Foreign,
    #[error("requestState was issued for another request (method or parameters differ)")]
    OtherRequest,
}

pub struct ParkedCalls {
    calls: Mutex<HashMap<u64, Parked>>,
    next_id: AtomicU64,
    key: [u8; 32],
    /// This process, so a state issued by another replica (same key) never names a call here.
    instance: String,
    ttl: Duration,
    max_per_owner: usize,
}

/// What identifies the request a state was issued for: the method and its parameters without
/// `_meta`, `inputResponses` and `requestState` (which legitimately change on a retry).
pub fn request_digest(method: &str, params: Option<&Map<String, Value>>) -> [u8; 32] {
    let mut hash = Sha256::new();
    hash.update(method.as_bytes());
    hash.update([0]);
    let empty = Map::new();
    canonical_members(params.unwrap_or(&empty), &VOLATILE, &mut hash);
    hash.finalize().into()
}

/// Parameters a retry legitimately changes.
const VOLATILE: [&str; 3] = ["_meta", "inputResponses", "requestState"];

/// Feeds `value` to the hash with object members in key order at every depth: clients may send
/// a retry's members in another order than the first attempt's (the Python SDK does).
fn canonical(value: &Value, hash: &mut Sha256) {
    match value {
        Value::Object(map) => canonical_members(map, &[], hash),
        Value::Array(items) => {
            hash.update(b"[");
            for item in items {
                canonical(item, hash);
                hash.update(b",");
            }
            hash.update(b"]");
        }
        scalar => hash.update(serde_json::to_vec(scalar).unwrap_or_default()),
    }
}

/// An object's members in key order, leaving out `skip` (no copy of the object is made).
fn canonical_members(map: &Map<String, Value>, skip: &[&str], hash: &mut Sha256) {
    let mut members: Vec<(&String, &Value)> = map
        .iter()
        .filter(|(key, _)| !skip.contains(&key.as_str()))
        .collect();
    members.sort_unstable_by(|a, b| a.0.cmp(b.0));
    hash.update(b"{");
    for (key, value) in members {
        hash.update(serde_json::to_vec(key).unwrap_or_default());
        hash.update(b":");
        canonical(value, hash);
        hash.update(b",");
    }
    hash.update(b"}");
}

impl ParkedCalls {
    /// `shared_secret`: REPLICA_SECRET when replicas share the work, so a state issued by one
    /// verifies on all (the retry is then run again where its call is not kept); else a key
    /// made now.
    pub fn new(ttl: Duration, max_per_owner: usize, shared_secret: Option<&str>) -> ParkedCalls {
        let key = match shared_secret {
            Some(secret) => {
                let mut hash = Sha256::new();
                hash.update(b"coda-mcp-gateway mrtr requestState\0");
                hash.update(secret.as_bytes());
                hash.finalize().into()
            }
            None => {
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                key
            }
        };
        let mut instance = [0u8; 8];
        rand::rngs::OsRng.fill_bytes(&mut instance);
        ParkedCalls {
            calls: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            key,
            instance: hex::encode(instance),
            ttl,
            max_per_owner: max_per_owner.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Parked>> {
        self.calls.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps `call` for the retry; returns the `requestState` that names it.
    pub fn park(
        &self,
        call: ModernCall,
        waiting: Vec<InputRequest>,
        owner: &str,
        method: &str,
        digest: [u8; 32],
    ) -> String {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let released = {
            let mut calls = self.lock();
            let mut released: Vec<Parked> = Vec::new();
            let expired: Vec<u64> = calls
                .iter()
                .filter(|(_, p)| p.expires <= now)
                .map(|(id, _)| *id)
                .collect();
            released.extend(expired.iter().filter_map(|id| calls.remove(id)));
            let mut mine: Vec<(u64, Instant)> = calls
                .iter()
                .filter(|(_, p)| p.owner == owner)
                .map(|(id, p)| (*id, p.expires))
                .collect();
            mine.sort_by_key(|(_, expires)| *expires);
            let over = (mine.len() + 1).saturating_sub(self.max_per_owner);
            released.extend(
                mine.iter()
                    .take(over)
                    .filter_map(|(id, _)| calls.remove(id)),
            );
            calls.insert(
                id,
                Parked {
                    call,
                    waiting,
                    owner: owner.to_string(),
                    digest,
                    expires: now + self.ttl,
                },
            );
            released
        };
        // Dropped outside the lock: each cancels its call on the child.
        drop(released);
        self.seal(id, owner, method, &digest)
    }

    /// The parked call a retry's `requestState` names, if it is still kept. `Ok(None)`: the state
    /// is genuine but its call is gone (run the request again).
    pub fn take(
        &self,
        state: &str,
        owner: &str,
        method: &str,
        digest: &[u8; 32],
    ) -> Result<Option<Parked>, StateError> {
        let Some(id) = self.open(state, owner, method, digest)? else {
            return Ok(None);
        };
        let mut calls = self.lock();
        // Only the caller's own call of this request: anything else stays where it is.
        let mine = calls
            .get(&id)
            .is_some_and(|p| p.owner == owner && &p.digest == digest);
        let parked = if mine { calls.remove(&id) } else { None };
        Ok(parked.filter(|p| p.expires > Instant::now()))
    }

    /// Takes the caller's parked calls of the same request: a fresh attempt (no `requestState`)
    /// supersedes them, and the caller cancels them before it starts, so the child is not left
    /// holding questions nobody will answer.
    pub fn supersede(&self, owner: &str, digest: &[u8; 32]) -> Vec<Parked> {
        let mut calls = self.lock();
        let same: Vec<u64> = calls
            .iter()
            .filter(|(_, p)| p.owner == owner && &p.digest == digest)
            .map(|(id, _)| *id)
            .collect();
        same.iter().filter_map(|id| calls.remove(id)).collect()
    }

    /// Lets go of expired calls (each is cancelled on its child).
    pub fn sweep(&self) -> usize {
        let now = Instant::now();
        let released: Vec<Parked> = {
            let mut calls = self.lock();
            let expired: Vec<u64> = calls
                .iter()
                .filter(|(_, p)| p.expires <= now)
                .map(|(id, _)| *id)
                .collect();
            expired.iter().filter_map(|id| calls.remove(id)).collect()
        };
        released.len()
    }

    /// Lets go of every call (shutdown).
    pub fn sweep_all(&self) {
        let released: Vec<Parked> = self.lock().drain().map(|(_, p)| p).collect();
        drop(released);
    }

    fn mac(&self, payload: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(payload);
        mac
    }

    fn seal(&self, id: u64, owner: &str, method: &str, digest: &[u8; 32]) -> String {
        let payload = json!({
            "i": id,
            "n": self.instance,
            "o": owner,
            "m": method,
            "d": hex::encode(digest),
        });
        let payload = serde_json::to_vec(&payload).unwrap_or_default();
        let tag = self.mac(&payload).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    fn open(
        &self,
        state: &str,
        owner: &str,
        method: &str,
        digest: &[u8; 32],
    ) -> Result<Option<u64>, StateError> {
        let (payload, tag) = state.split_once('.').ok_or(StateError::Tampered)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| StateError::Tampered)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| StateError::Tampered)?;
        self.mac(&payload)
            .verify_slice(&tag)
            .map_err(|_| StateError::Tampered)?;
        let payload: Value = serde_json::from_slice(&payload).map_err(|_| StateError::Tampered)?;
        if payload["o"].as_str() != Some(owner) {
            return Err(StateError::Foreign);
        }
        if payload["m"].as_str() != Some(method)
            || payload["d"].as_str() != Some(hex::encode(digest).as_str())
        {
            return Err(StateError::OtherRequest);
        }
        let id = payload["i"].as_u64().ok_or(StateError::Tampered)?;
        // Genuine, but issued by another replica: its call is not here.
        Ok((payload["n"].as_str() == Some(self.instance.as_str())).then_some(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_bind_caller_method_and_parameters() {
        let parked = ParkedCalls::new(Duration::from_secs(60), 4, None);
        let params: Map<String, Value> =
            serde_json::from_value(json!({"name": "t", "arguments": {"a": 1}})).unwrap();
        let digest = request_digest("tools/call", Some(&params));
        let state = parked.seal(7, "alice", "tools/call", &digest);
        assert_eq!(
            parked.open(&state, "alice", "tools/call", &digest),
            Ok(Some(7))
        );
        assert_eq!(
            parked.open(&state, "bob", "tools/call", &digest),
            Err(StateError::Foreign)
        );
        assert_eq!(
            parked.open(&state, "alice", "prompts/get", &digest),
            Err(StateError::OtherRequest)
        );
        let mut other: Map<String, Value> = params.clone();
        other.insert("arguments".into(), json!({"a": 2}));
        assert_eq!(
            parked.open(
                &state,
                "alice",
                "tools/call",
                &request_digest("tools/call", Some(&other))
            ),
            Err(StateError::OtherRequest)
        );
        for tampered in [
            format!("{state}-TAMPERED"),
            state.replacen('e', "f", 1),
            "garbage".into(),
            String::new(),
        ] {
            assert_eq!(
                parked.open(&tampered, "alice", "tools/call", &digest),
                Err(StateError::Tampered),
                "{tampered}"
            );
        }
        let another_process = ParkedCalls::new(Duration::from_secs(60), 4, None);
        assert_eq!(
            another_process.open(&state, "alice", "tools/call", &digest),
            Err(StateError::Tampered)
        );
    }

    /// Replicas share the key (from REPLICA_SECRET): a state from one verifies on another, which
    /// does not hold its call and so runs the request again; a replica with another secret
    /// refuses it.
    #[test]
    fn replicas_verify_each_others_states_but_hold_only_their_own_calls() {
        let secret = "a replica secret of more than thirty-two characters";
        let one = ParkedCalls::new(Duration::from_secs(60), 4, Some(secret));
        let two = ParkedCalls::new(Duration::from_secs(60), 4, Some(secret));
        let digest = request_digest("tools/call", None);
        let state = one.seal(1, "alice", "tools/call", &digest);
        assert_eq!(
            one.open(&state, "alice", "tools/call", &digest),
            Ok(Some(1))
        );
        assert_eq!(two.open(&state, "alice", "tools/call", &digest), Ok(None));
        assert_eq!(
            two.open(&state, "bob", "tools/call", &digest),
            Err(StateError::Foreign)
        );
        let stranger = ParkedCalls::new(
            Duration::from_secs(60),
            4,
            Some("another secret entirely, also long enough"),
        );
        assert_eq!(
            stranger.open(&state, "alice", "tools/call", &digest),
            Err(StateError::Tampered)
        );
    }

    #[test]
    fn a_retry_may_change_meta_and_input_responses() {
        let first: Map<String, Value> =
            serde_json::from_value(json!({"name": "t", "_meta": {"x": 1}})).unwrap();
        let retry: Map<String, Value> = serde_json::from_value(
            json!({"name": "t", "_meta": {"x": 2}, "inputResponses": {"k": {}}, "requestState": "s"}),
        )
        .unwrap();
        assert_eq!(
            request_digest("tools/call", Some(&first)),
            request_digest("tools/call", Some(&retry))
        );
    }

    /// Found by the Python SDK's retry, which puts `inputResponses` first: member order (at any
    /// depth) does not change the digest; values do.
    #[test]
    fn member_order_does_not_matter() {
        let first: Map<String, Value> = serde_json::from_str(
            r#"{"name":"t","arguments":{"a":1,"b":[{"x":1,"y":2}]},"_meta":{}}"#,
        )
        .unwrap();
        let retry: Map<String, Value> = serde_json::from_str(
            r#"{"inputResponses":{},"requestState":"s","arguments":{"b":[{"y":2,"x":1}],"a":1},"name":"t"}"#,
        )
        .unwrap();
        assert_eq!(
            request_digest("tools/call", Some(&first)),
            request_digest("tools/call", Some(&retry))
        );
        let other: Map<String, Value> =
            serde_json::from_str(r#"{"name":"t","arguments":{"a":1,"b":[{"x":2,"y":1}]}}"#)
                .unwrap();
        assert_ne!(
            request_digest("tools/call", Some(&first)),
            request_digest("tools/call", Some(&other))
        );
    }
}
