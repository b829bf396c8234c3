//! The OAuth store in Redis (REDIS_URL): what several replicas share, with the guarantees of the
//! SQLite backend. Every step that reads and writes several keys is one Lua script ([`lua`]),
//! atomic in Redis, so a code is spent once and a refresh token rotates once whichever replica
//! asks; nothing retries on WATCH.
//!
//! The methods are synchronous like the SQLite backend's: [`crate::oauth::OAuth::db`] runs them
//! on the blocking pool, where they wait for Redis on the runtime the store was made on. Keeping
//! one synchronous API lets `redeem_code` run its caller's check between taking the code and
//! making the grant, as in SQLite, and leaves the handlers unchanged.
//!
//! Clients get a TTL (the longer of the refresh-token lifetime and a day), renewed on every
//! token request (`touch_client`): a client that holds a usable grant made a token request
//! within the refresh-token lifetime, so it never expires under its grant; one unused that long
//! has nothing left a user could refresh, and the OAUTH_MAX_CLIENTS cap with the SQLite
//! eviction rules bounds the rest.

mod lua;
#[cfg(test)]
pub(crate) mod testing;

use std::sync::LazyLock;

use redis::{FromRedisValue, Script};
use tokio::runtime::Handle;

use super::codes::{CodeOutcome, CodeRow, NewCode, Redeemed};
use super::grants::{AccessRow, GrantInfo, Issue, RefreshOutcome};
use super::{ClientRow, StoreError, ACCESS_PER_GRANT, REVOKED_KEPT_SECS, USED_REFRESH_KEPT};
use crate::shared::{Shared, SharedError, COMMAND_TIMEOUT};

/// The key layout's version (what `schema_version` reports for Redis); it is part of the key
/// names (`oauth1`), so a future layout never reads this one's keys.
pub const LAYOUT: i64 = 1;
/// A code is remembered this long after it expires, so a late replay still revokes its grant
/// (as the SQLite purge does).
const CODE_GRACE_SECS: i64 = 600;
/// Shortest client TTL (a client registered for a sign-in lives at least this long).
const CLIENT_TTL_MIN_SECS: i64 = 86_400;
/// Grants purged per script run (a purge repeats until done, at most `PURGE_ROUNDS` times).
const PURGE_BATCH: i64 = 500;
const PURGE_ROUNDS: usize = 20;

struct Scripts {
    put_client: Script,
    touch_client: Script,
    client_has_grant: Script,
    client_count: Script,
    insert_code: Script,
    take_code: Script,
    abandon_code: Script,
    grant: Script,
    rotate: Script,
    access: Script,
    revoke_token: Script,
    revoke_grant: Script,
    live_grants: Script,
    purge: Script,
}

static SCRIPTS: LazyLock<Scripts> = LazyLock::new(|| Scripts {
    put_client: lua::script(lua::PUT_CLIENT),
    touch_client: lua::script(lua::TOUCH_CLIENT),
    client_has_grant: lua::script(lua::CLIENT_HAS_GRANT),
    client_count: lua::script(lua::CLIENT_COUNT),
    insert_code: lua::script(lua::INSERT_CODE),
    take_code: lua::script(lua::TAKE_CODE),
    abandon_code: lua::script(lua::ABANDON_CODE),
    grant: lua::script(lua::GRANT),
    rotate: lua::script(lua::ROTATE),
    access: lua::script(lua::ACCESS),
    revoke_token: lua::script(lua::REVOKE_TOKEN),
    revoke_grant: lua::script(lua::REVOKE_GRANT),
    live_grants: lua::script(lua::LIVE_GRANTS),
    purge: lua::script(lua::PURGE),
});

/// The Redis backend: the shared connection, the runtime it lives on, and the client TTL.
pub struct RedisStore {
    shared: Shared,
    runtime: Handle,
    /// `<REDIS_PREFIX>:oauth1`.
    prefix: String,
    client_ttl: i64,
}

/// One script call: the script and its arguments after the prefix.
struct Call<'a> {
    script: &'a Script,
    args: Vec<Vec<u8>>,
}

impl<'a> Call<'a> {
    fn new(script: &'a Script) -> Call<'a> {
        Call {
            script,
            args: Vec::new(),
        }
    }
    fn arg(mut self, value: impl AsRef<[u8]>) -> Self {
        self.args.push(value.as_ref().to_vec());
        self
    }
    fn num(self, value: i64) -> Self {
        self.arg(value.to_string())
    }
}

impl RedisStore {
    /// The store in `shared`; call it from the blocking pool of `runtime` (or any thread outside
    /// the runtime). `refresh_ttl` is OAUTH_REFRESH_TOKEN_TTL_SECS.
    pub fn new(shared: Shared, runtime: Handle, refresh_ttl: i64) -> RedisStore {
        RedisStore {
            prefix: shared.key(&["oauth1"]),
            shared,
            runtime,
            client_ttl: refresh_ttl.max(CLIENT_TTL_MIN_SECS),
        }
    }

    /// Runs a script under `COMMAND_TIMEOUT`, waiting on the store's runtime.
    fn run<T: FromRedisValue>(&self, call: Call<'_>) -> Result<T, StoreError> {
        let mut invocation = call.script.prepare_invoke();
        invocation.arg(&self.prefix);
        for arg in &call.args {
            invocation.arg(arg.as_slice());
        }
        let mut conn = self.shared.conn();
        self.runtime.block_on(async {
            match tokio::time::timeout(COMMAND_TIMEOUT, invocation.invoke_async(&mut conn)).await {
                Ok(result) => result.map_err(|e| StoreError::Shared(SharedError::Redis(e))),
                Err(_) => Err(StoreError::Shared(SharedError::Timeout(COMMAND_TIMEOUT))),
            }
        })
    }

    pub fn put_client(
        &self,
        now: i64,
        client: &ClientRow,
        max_clients: usize,
        young_secs: i64,
    ) -> Result<(), StoreError> {
        let uris = serde_json::to_string(&client.redirect_uris).unwrap_or_else(|_| "[]".into());
        let answer: String = self.run(
            Call::new(&SCRIPTS.put_client)
                .arg(&client.client_id)
                .arg(&client.kind)
                .arg(&client.client_name)
                .arg(uris)
                .arg(&client.metadata)
                .num(now)
                .num(i64::try_from(max_clients).unwrap_or(i64::MAX))
                .num(young_secs)
                .num(self.client_ttl),
        )?;
        match answer.as_str() {
            "ok" => Ok(()),
            "full" => Err(StoreError::Full),
            other => Err(StoreError::Reply(format!("put_client: {other}"))),
        }
    }

    pub fn client(&self, client_id: &str) -> Result<Option<ClientRow>, StoreError> {
        let key = format!("{}:client:{client_id}", self.prefix);
        let fields: std::collections::HashMap<String, String> = self
            .runtime
            .block_on(self.shared.run(redis::cmd("HGETALL").arg(key)))?;
        if fields.is_empty() {
            return Ok(None);
        }
        let field = |name: &str| fields.get(name).cloned().unwrap_or_default();
        Ok(Some(ClientRow {
            client_id: client_id.to_string(),
            kind: field("kind"),
            client_name: field("client_name"),
            redirect_uris: serde_json::from_str(&field("redirect_uris")).unwrap_or_default(),
            metadata: field("metadata"),
            last_used_at: field("last_used_at").parse().unwrap_or(0),
        }))
    }

    pub fn touch_client(&self, now: i64, client_id: &str) -> Result<(), StoreError> {
        let _: String = self.run(
            Call::new(&SCRIPTS.touch_client)
                .arg(client_id)
                .num(now)
                .num(self.client_ttl),
        )?;
        Ok(())
    }

    pub fn client_has_grant(&self, client_id: &str) -> Result<bool, StoreError> {
        let found: i64 = self.run(Call::new(&SCRIPTS.client_has_grant).arg(client_id))?;
        Ok(found == 1)
    }

    pub fn client_count(&self) -> Result<usize, StoreError> {
        let count: i64 = self.run(Call::new(&SCRIPTS.client_count))?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    pub fn insert_code(&self, now: i64, code: &NewCode) -> Result<(), StoreError> {
        let _: String = self.run(
            Call::new(&SCRIPTS.insert_code)
                .arg(hex::encode(&code.code_hash))
                .arg(&code.client_id)
                .arg(&code.redirect_uri)
                .arg(&code.code_challenge)
                .arg(&code.resource)
                .arg(&code.scope)
                .arg(&code.subject)
                .arg(&code.coda_token)
                .num(code.expires_at)
                .num(now)
                .num(CODE_GRACE_SECS),
        )?;
        Ok(())
    }

    pub fn take_code(&self, now: i64, code_hash: &[u8]) -> Result<CodeOutcome, StoreError> {
        self.take(now, code_hash, "")
    }

    fn take(&self, now: i64, code_hash: &[u8], grant_id: &str) -> Result<CodeOutcome, StoreError> {
        let reply: Vec<Vec<u8>> = self.run(
            Call::new(&SCRIPTS.take_code)
                .arg(hex::encode(code_hash))
                .num(now)
                .arg(grant_id)
                .num(REVOKED_KEPT_SECS),
        )?;
        let mut fields = reply.into_iter();
        let outcome = text(fields.next())?;
        match outcome.as_str() {
            "unknown" => Ok(CodeOutcome::Unknown),
            "expired" => Ok(CodeOutcome::Expired),
            "reused" => {
                let revoked = match (fields.next(), fields.next()) {
                    (Some(grant), Some(subject)) => {
                        Some((text(Some(grant))?, text(Some(subject))?))
                    }
                    _ => None,
                };
                Ok(CodeOutcome::Reused { revoked })
            }
            "valid" => Ok(CodeOutcome::Valid(CodeRow {
                client_id: text(fields.next())?,
                redirect_uri: text(fields.next())?,
                code_challenge: text(fields.next())?,
                resource: text(fields.next())?,
                scope: text(fields.next())?,
                subject: text(fields.next())?,
                coda_token: fields
                    .next()
                    .ok_or_else(|| StoreError::Reply("take_code: no token".into()))?,
            })),
            other => Err(StoreError::Reply(format!("take_code: {other}"))),
        }
    }

    /// Redeems a code in two atomic steps with the caller's `check` between them: the first
    /// spends the code and records the grant about to be made from it; the second makes that
    /// grant with its first tokens. A replay between the two finds the code spent with a grant
    /// on its way and marks it revoked, so the second step makes the grant already revoked: as
    /// with SQLite, one redemption gets `Granted` (with dead tokens) and the replay `Reused`
    /// naming that grant. (If `check` refuses, no grant is made; a replay in that instant is
    /// told of a revoked grant that never existed, which revokes nothing.)
    #[allow(clippy::too_many_arguments)]
    pub fn redeem_code<F>(
        &self,
        now: i64,
        code_hash: &[u8],
        grant_id: &str,
        issue: &Issue,
        max_grants_per_subject: usize,
        check: impl FnOnce(&CodeRow) -> Result<(), F>,
    ) -> Result<Redeemed<F>, StoreError> {
        let row = match self.take(now, code_hash, grant_id)? {
            CodeOutcome::Unknown => return Ok(Redeemed::Unknown),
            CodeOutcome::Expired => return Ok(Redeemed::Expired),
            CodeOutcome::Reused { revoked } => return Ok(Redeemed::Reused { revoked }),
            CodeOutcome::Valid(row) => row,
        };
        if let Err(why) = check(&row) {
            let _: String = self.run(
                Call::new(&SCRIPTS.abandon_code)
                    .arg(hex::encode(code_hash))
                    .arg(grant_id),
            )?;
            return Ok(Redeemed::Refused { row, why });
        }
        let reply: Vec<String> = self.run(
            Call::new(&SCRIPTS.grant)
                .arg(hex::encode(code_hash))
                .arg(grant_id)
                .num(now)
                .num(i64::try_from(max_grants_per_subject).unwrap_or(i64::MAX))
                .arg(hex::encode(&issue.access_hash))
                .num(issue.access_expires_at)
                .arg(hex::encode(&issue.refresh_hash))
                .num(issue.refresh_expires_at)
                .num(REVOKED_KEPT_SECS)
                .num(ACCESS_PER_GRANT),
        )?;
        let mut reply = reply.into_iter();
        match reply.next().as_deref() {
            Some("granted") => Ok(Redeemed::Granted {
                row,
                evicted: reply.collect(),
            }),
            // The code vanished (its TTL ran out) between the two steps.
            Some("lost") => Ok(Redeemed::Expired),
            other => Err(StoreError::Reply(format!("grant: {other:?}"))),
        }
    }

    pub fn rotate_refresh(
        &self,
        now: i64,
        refresh_hash: &[u8],
        client_id: &str,
        resource: Option<&str>,
        issue: &Issue,
    ) -> Result<RefreshOutcome, StoreError> {
        let reply: Vec<String> = self.run(
            Call::new(&SCRIPTS.rotate)
                .arg(hex::encode(refresh_hash))
                .arg(client_id)
                .arg(if resource.is_some() { "1" } else { "0" })
                .arg(resource.unwrap_or(""))
                .num(now)
                .arg(hex::encode(&issue.access_hash))
                .num(issue.access_expires_at)
                .arg(hex::encode(&issue.refresh_hash))
                .num(issue.refresh_expires_at)
                .num(REVOKED_KEPT_SECS)
                .num(ACCESS_PER_GRANT)
                .num(USED_REFRESH_KEPT),
        )?;
        let mut reply = reply.into_iter();
        let outcome = reply.next().unwrap_or_default();
        Ok(match outcome.as_str() {
            "unknown" => RefreshOutcome::Unknown,
            "other_client" => RefreshOutcome::OtherClient,
            "expired" => RefreshOutcome::Expired,
            "other_resource" => RefreshOutcome::OtherResource,
            "replayed" => RefreshOutcome::Replayed(grant_info(reply)?),
            "rotated" => RefreshOutcome::Rotated(grant_info(reply)?),
            other => return Err(StoreError::Reply(format!("rotate: {other}"))),
        })
    }

    pub fn access(&self, now: i64, access_hash: &[u8]) -> Result<Option<AccessRow>, StoreError> {
        let reply: Vec<Vec<u8>> = self.run(
            Call::new(&SCRIPTS.access)
                .arg(hex::encode(access_hash))
                .num(now),
        )?;
        if reply.is_empty() {
            return Ok(None);
        }
        let mut fields = reply.into_iter();
        Ok(Some(AccessRow {
            grant_id: text(fields.next())?,
            client_id: text(fields.next())?,
            subject: text(fields.next())?,
            resource: text(fields.next())?,
            coda_token: fields
                .next()
                .ok_or_else(|| StoreError::Reply("access: no token".into()))?,
        }))
    }

    pub fn revoke_token(
        &self,
        now: i64,
        token_hash: &[u8],
        client_id: Option<&str>,
    ) -> Result<Option<GrantInfo>, StoreError> {
        let reply: Vec<String> = self.run(
            Call::new(&SCRIPTS.revoke_token)
                .arg(hex::encode(token_hash))
                .arg(client_id.unwrap_or(""))
                .num(now)
                .num(REVOKED_KEPT_SECS),
        )?;
        if reply.is_empty() {
            return Ok(None);
        }
        grant_info(reply.into_iter()).map(Some)
    }

    pub fn revoke_grant(&self, now: i64, grant_id: &str) -> Result<Option<String>, StoreError> {
        let reply: Vec<String> = self.run(
            Call::new(&SCRIPTS.revoke_grant)
                .arg(grant_id)
                .num(now)
                .num(REVOKED_KEPT_SECS),
        )?;
        Ok(reply.into_iter().next())
    }

    pub fn live_grants(&self, subject: &str) -> Result<usize, StoreError> {
        let count: i64 = self.run(Call::new(&SCRIPTS.live_grants).arg(subject))?;
        Ok(usize::try_from(count).unwrap_or(0))
    }

    /// Drops grants that can no longer be used, by the store's clock (keys also expire by
    /// themselves; this keeps the indexes short and honours the caller's `now`).
    pub fn purge(&self, now: i64) -> Result<(), StoreError> {
        for _ in 0..PURGE_ROUNDS {
            let purged: i64 = self.run(Call::new(&SCRIPTS.purge).num(now).num(PURGE_BATCH))?;
            if purged < PURGE_BATCH {
                break;
            }
        }
        Ok(())
    }

    /// Keys per kind, counted with SCAN (tests: everything stays bounded).
    pub fn row_counts(&self) -> Result<Vec<(&'static str, i64)>, StoreError> {
        let mut counts = Vec::new();
        for (name, kind) in [
            ("clients", "client"),
            ("codes", "code"),
            ("grants", "grant"),
            ("refresh_tokens", "rt"),
            ("access_tokens", "at"),
        ] {
            let pattern = format!("{}:{kind}:*", glob_escape(&self.prefix));
            let mut cursor = 0u64;
            let mut count = 0i64;
            loop {
                let (next, keys): (u64, Vec<String>) = self.runtime.block_on(
                    self.shared.run(
                        redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(&pattern)
                            .arg("COUNT")
                            .arg(1000),
                    ),
                )?;
                count += keys.len() as i64;
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            counts.push((name, count));
        }
        Ok(counts)
    }
}

/// A text field of a script's reply.
fn text(field: Option<Vec<u8>>) -> Result<String, StoreError> {
    let bytes = field.ok_or_else(|| StoreError::Reply("a field is missing".into()))?;
    String::from_utf8(bytes).map_err(|_| StoreError::Reply("a field is not UTF-8".into()))
}

/// {grant, client, subject, resource, scope}.
fn grant_info(mut fields: impl Iterator<Item = String>) -> Result<GrantInfo, StoreError> {
    let mut next = || {
        fields
            .next()
            .ok_or_else(|| StoreError::Reply("grant fields missing".into()))
    };
    Ok(GrantInfo {
        grant_id: next()?,
        client_id: next()?,
        subject: next()?,
        resource: next()?,
        scope: next()?,
    })
}

/// `pattern` with Redis glob characters escaped (the prefix is the operator's).
fn glob_escape(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    for c in pattern.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every key the store writes is under the deployment prefix and has a TTL, whatever
    /// happened to it: registration, codes (spent, replayed), grants (rotated, replayed,
    /// revoked, capped) and purge.
    #[test]
    fn every_key_has_a_ttl_and_the_prefix() {
        let Some(redis) = testing::TestRedis::start() else {
            return;
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let shared = runtime.block_on(redis.shared());
        let prefix = shared.key(&[]);
        let store = RedisStore::new(shared.clone(), runtime.handle().clone(), 86_400);
        let now = 1_000;
        let client = ClientRow {
            client_id: "client-1".into(),
            kind: "registered".into(),
            client_name: "c".into(),
            redirect_uris: vec!["http://127.0.0.1/cb".into()],
            metadata: "{}".into(),
            last_used_at: 0,
        };
        store.put_client(now, &client, 10, 0).unwrap();
        store.touch_client(now, "client-1").unwrap();
        let issue = |tag: &str| Issue {
            access_hash: format!("at-{tag}").into_bytes(),
            access_expires_at: now + 3600,
            refresh_hash: format!("rt-{tag}").into_bytes(),
            refresh_expires_at: now + 86_400,
        };
        for (n, tag) in ["a", "b", "c", "f"].into_iter().enumerate() {
            if tag == "f" {
                // After the revocations below: one grant stays live, with all its keys.
                store
                    .rotate_refresh(now, b"rt-c", "client-1", None, &issue("d"))
                    .unwrap();
                store
                    .rotate_refresh(now, b"rt-d", "client-1", None, &issue("e"))
                    .unwrap();
                store.take_code(now, b"code-b").unwrap();
                store.revoke_token(now, b"at-e", None).unwrap();
            }
            let code = NewCode {
                code_hash: format!("code-{tag}").into_bytes(),
                client_id: "client-1".into(),
                redirect_uri: "http://127.0.0.1/cb".into(),
                code_challenge: "x".into(),
                resource: "https://gw.example/mcp".into(),
                scope: "mcp".into(),
                subject: "alice".into(),
                coda_token: vec![0, 1, 2, 255],
                expires_at: now + 60,
            };
            store.insert_code(now, &code).unwrap();
            let granted = store
                .redeem_code(
                    now,
                    &code.code_hash,
                    &format!("g{n}"),
                    &issue(tag),
                    2,
                    |_| Ok::<(), ()>(()),
                )
                .unwrap();
            assert!(matches!(granted, Redeemed::Granted { .. }));
        }
        let access = store.access(now, b"at-f").unwrap().expect("live");
        assert_eq!(access.coda_token, vec![0, 1, 2, 255], "binary-safe");
        assert_eq!(store.live_grants("alice").unwrap(), 1);
        store.purge(now).unwrap();
        let keys: Vec<String> = runtime
            .block_on(shared.run(redis::cmd("KEYS").arg("*")))
            .unwrap();
        for kind in [
            "client", "code", "grant", "grant_at", "grant_rt", "at", "rt", "subject",
        ] {
            let part = format!(":oauth1:{kind}:");
            assert!(keys.iter().any(|k| k.contains(&part)), "{kind}: {keys:?}");
        }
        for key in keys {
            assert!(key.starts_with(&prefix), "{key}");
            let ttl: i64 = runtime
                .block_on(shared.run(redis::cmd("TTL").arg(&key)))
                .unwrap();
            assert!(ttl > 0, "{key} has no TTL ({ttl})");
        }
    }
}
