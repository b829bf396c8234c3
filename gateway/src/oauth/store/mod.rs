//! The OAuth store: registered clients, authorization codes, grants (one per approval: a
//! refresh-token family) and the hashes of access and refresh tokens. Two backends behind the
//! same methods ([`Store`]): one SQLite file (the default; created on first run, numbered
//! migrations in `schema_version`), or Redis with REDIS_URL ([`redis_store`]), where several
//! replicas share it with the same guarantees (single-use codes, atomic rotation, replay revokes
//! the family), each multi-key step one Lua script.
//!
//! Tokens and codes are kept only as SHA-256 hashes; the Coda token only sealed (see
//! [`super::crypto`]). Every operation takes `now` (Unix seconds) from the caller, so tests
//! choose the time. Everything is bounded: clients, grants per user, live access tokens and
//! remembered (used) refresh tokens per grant; expired rows are purged as new ones come in.
//!
//! The store is synchronous; [`super::OAuth::db`] runs it on the blocking pool.
//!
//! - [`schema`]: the migrations; [`clients`]: registered clients; [`codes`]: authorization
//!   codes; [`grants`]: grants and their tokens (the SQLite backend, [`Sqlite`]).
//! - [`redis_store`]: the Redis backend ([`RedisStore`]).

mod clients;
mod codes;
mod grants;
pub mod redis_store;
mod schema;

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, Transaction};

pub use clients::ClientRow;
pub use codes::{CodeOutcome, CodeRow, NewCode, Redeemed};
pub use grants::{AccessRow, GrantInfo, Issue, RefreshOutcome};
pub use redis_store::RedisStore;
use schema::MIGRATIONS;

/// Used refresh tokens remembered per grant (a replay of one revokes the grant).
const USED_REFRESH_KEPT: i64 = 8;
/// Live access tokens per grant; older ones are dropped when a new one is issued.
const ACCESS_PER_GRANT: i64 = 4;
/// Revoked grants are remembered this long (seconds), then purged.
const REVOKED_KEPT_SECS: i64 = 86_400;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the database has schema version {found}; this build knows up to {known}")]
    TooNew { found: i64, known: i64 },
    #[error("too many registered clients")]
    Full,
    #[error("{0}")]
    Shared(#[from] crate::shared::SharedError),
    #[error("unexpected answer from Redis: {0}")]
    Reply(String),
}

/// The store: SQLite (the default) or Redis (REDIS_URL), with the same methods and guarantees.
pub enum Store {
    Sqlite(Sqlite),
    Redis(RedisStore),
}

/// The SQLite backend: one connection, each operation one transaction.
pub struct Sqlite {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed, mode 0600) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        Sqlite::open(path).map(Store::Sqlite)
    }

    /// A private in-memory database (tests).
    pub fn in_memory() -> Result<Store, StoreError> {
        Sqlite::in_memory().map(Store::Sqlite)
    }

    /// The schema version (SQLite); Redis keeps no schema, its layout is [`redis_store::LAYOUT`].
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        match self {
            Store::Sqlite(s) => s.schema_version(),
            Store::Redis(_) => Ok(redis_store::LAYOUT),
        }
    }

    /// Rows (SQLite) or keys (Redis) per kind (tests: everything stays bounded).
    pub fn row_counts(&self) -> Result<Vec<(&'static str, i64)>, StoreError> {
        match self {
            Store::Sqlite(s) => s.row_counts(),
            Store::Redis(r) => r.row_counts(),
        }
    }

    pub fn purge(&self, now: i64) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.purge(now),
            Store::Redis(r) => r.purge(now),
        }
    }

    /// See [`Sqlite::put_client`].
    pub fn put_client(
        &self,
        now: i64,
        client: &ClientRow,
        max_clients: usize,
        young_secs: i64,
    ) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.put_client(now, client, max_clients, young_secs),
            Store::Redis(r) => r.put_client(now, client, max_clients, young_secs),
        }
    }

    pub fn client(&self, client_id: &str) -> Result<Option<ClientRow>, StoreError> {
        match self {
            Store::Sqlite(s) => s.client(client_id),
            Store::Redis(r) => r.client(client_id),
        }
    }

    pub fn touch_client(&self, now: i64, client_id: &str) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.touch_client(now, client_id),
            Store::Redis(r) => r.touch_client(now, client_id),
        }
    }

    /// See [`Sqlite::client_has_grant`].
    pub fn client_has_grant(&self, client_id: &str) -> Result<bool, StoreError> {
        match self {
            Store::Sqlite(s) => s.client_has_grant(client_id),
            Store::Redis(r) => r.client_has_grant(client_id),
        }
    }

    pub fn client_count(&self) -> Result<usize, StoreError> {
        match self {
            Store::Sqlite(s) => s.client_count(),
            Store::Redis(r) => r.client_count(),
        }
    }

    pub fn insert_code(&self, now: i64, code: &NewCode) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(s) => s.insert_code(now, code),
            Store::Redis(r) => r.insert_code(now, code),
        }
    }

    /// See [`Sqlite::take_code`].
    pub fn take_code(&self, now: i64, code_hash: &[u8]) -> Result<CodeOutcome, StoreError> {
        match self {
            Store::Sqlite(s) => s.take_code(now, code_hash),
            Store::Redis(r) => r.take_code(now, code_hash),
        }
    }

    /// Redeems a code: spends it, runs `check` on what it was issued for, and creates its grant
    /// with the first tokens, so that a replay of the code at any moment leaves no live grant
    /// (see [`Sqlite::redeem_code`] and [`RedisStore::redeem_code`]).
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
        match self {
            Store::Sqlite(s) => s.redeem_code(
                now,
                code_hash,
                grant_id,
                issue,
                max_grants_per_subject,
                check,
            ),
            Store::Redis(r) => r.redeem_code(
                now,
                code_hash,
                grant_id,
                issue,
                max_grants_per_subject,
                check,
            ),
        }
    }

    /// See [`Sqlite::rotate_refresh`].
    pub fn rotate_refresh(
        &self,
        now: i64,
        refresh_hash: &[u8],
        client_id: &str,
        resource: Option<&str>,
        issue: &Issue,
    ) -> Result<RefreshOutcome, StoreError> {
        match self {
            Store::Sqlite(s) => s.rotate_refresh(now, refresh_hash, client_id, resource, issue),
            Store::Redis(r) => r.rotate_refresh(now, refresh_hash, client_id, resource, issue),
        }
    }

    /// See [`Sqlite::access`].
    pub fn access(&self, now: i64, access_hash: &[u8]) -> Result<Option<AccessRow>, StoreError> {
        match self {
            Store::Sqlite(s) => s.access(now, access_hash),
            Store::Redis(r) => r.access(now, access_hash),
        }
    }

    /// See [`Sqlite::revoke_token`].
    pub fn revoke_token(
        &self,
        now: i64,
        token_hash: &[u8],
        client_id: Option<&str>,
    ) -> Result<Option<GrantInfo>, StoreError> {
        match self {
            Store::Sqlite(s) => s.revoke_token(now, token_hash, client_id),
            Store::Redis(r) => r.revoke_token(now, token_hash, client_id),
        }
    }

    /// See [`Sqlite::revoke_grant`].
    pub fn revoke_grant(&self, now: i64, grant_id: &str) -> Result<Option<String>, StoreError> {
        match self {
            Store::Sqlite(s) => s.revoke_grant(now, grant_id),
            Store::Redis(r) => r.revoke_grant(now, grant_id),
        }
    }

    /// Live grants of a user (tests and metrics).
    pub fn live_grants(&self, subject: &str) -> Result<usize, StoreError> {
        match self {
            Store::Sqlite(s) => s.live_grants(subject),
            Store::Redis(r) => r.live_grants(subject),
        }
    }
}

impl Sqlite {
    /// Opens (creating if needed, mode 0600) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Sqlite, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let created = !path.exists();
        let conn = Connection::open(path)?;
        if created {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Sqlite::init(conn)
    }

    /// A private in-memory database (tests).
    pub fn in_memory() -> Result<Sqlite, StoreError> {
        Sqlite::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Sqlite, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // WAL where the file system allows it; in-memory databases answer "memory".
        let _: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        let store = Sqlite {
            conn: Mutex::new(conn),
        };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.lock();
        conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
        let current: i64 = conn.query_row(
            "SELECT COALESCE(MAX(version), 0) FROM schema_version",
            [],
            |r| r.get(0),
        )?;
        let known = MIGRATIONS.len() as i64;
        if current > known {
            return Err(StoreError::TooNew {
                found: current,
                known,
            });
        }
        for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES (?1)",
                params![index as i64 + 1],
            )?;
            tx.commit()?;
            tracing::info!(version = index + 1, "OAuth store migrated");
        }
        Ok(())
    }

    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .lock()
            .query_row("SELECT MAX(version) FROM schema_version", [], |r| r.get(0))?)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rows per table (tests: everything stays bounded).
    pub fn row_counts(&self) -> Result<Vec<(&'static str, i64)>, StoreError> {
        let conn = self.lock();
        let mut counts = Vec::new();
        for table in [
            "clients",
            "codes",
            "grants",
            "refresh_tokens",
            "access_tokens",
        ] {
            let n: i64 =
                conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
            counts.push((table, n));
        }
        Ok(counts)
    }

    pub fn purge(&self, now: i64) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        purge(&tx, now)?;
        tx.commit()?;
        Ok(())
    }
}

/// Drops what can no longer be used: expired codes (after a grace period that still lets a late
/// reuse be recognised), expired access tokens, grants whose refresh tokens all expired, and
/// revoked grants after a day.
fn purge(tx: &Transaction<'_>, now: i64) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM codes WHERE expires_at <= ?1",
        params![now - 600],
    )?;
    tx.execute(
        "DELETE FROM access_tokens WHERE expires_at <= ?1",
        params![now],
    )?;
    tx.execute(
        "DELETE FROM grants WHERE (revoked_at IS NULL AND expires_at <= ?1) OR revoked_at <= ?2",
        params![now, now - REVOKED_KEPT_SECS],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store to run a test against, with what keeps it alive (dropped store first).
    struct Backend {
        store: std::sync::Arc<Store>,
        name: &'static str,
        _runtime: Option<tokio::runtime::Runtime>,
        _redis: Option<redis_store::testing::TestRedis>,
    }

    /// SQLite in memory, and Redis when `redis-server` is installed (each test its own server).
    fn backends() -> Vec<Backend> {
        let mut all = vec![Backend {
            store: std::sync::Arc::new(Store::in_memory().unwrap()),
            name: "sqlite",
            _runtime: None,
            _redis: None,
        }];
        if let Some(redis) = redis_store::testing::TestRedis::start() {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let shared = runtime.block_on(redis.shared());
            let store = RedisStore::new(shared, runtime.handle().clone(), 30 * 86_400);
            all.push(Backend {
                store: std::sync::Arc::new(Store::Redis(store)),
                name: "redis",
                _runtime: Some(runtime),
                _redis: Some(redis),
            });
        }
        all
    }

    fn code(subject: &str, expires_at: i64) -> NewCode {
        NewCode {
            code_hash: format!("code-{subject}-{expires_at}").into_bytes(),
            client_id: "client-1".into(),
            redirect_uri: "http://127.0.0.1/cb".into(),
            code_challenge: "challenge".into(),
            resource: "https://gw.example/mcp".into(),
            scope: "mcp".into(),
            subject: subject.into(),
            coda_token: b"sealed".to_vec(),
            expires_at,
        }
    }

    fn issue(tag: &str, now: i64) -> Issue {
        Issue {
            access_hash: format!("at-{tag}").into_bytes(),
            access_expires_at: now + 3600,
            refresh_hash: format!("rt-{tag}").into_bytes(),
            refresh_expires_at: now + 86_400,
        }
    }

    fn redeem(store: &Store, now: i64, subject: &str, tag: &str) -> String {
        let mut new = code(subject, now + 60);
        new.code_hash = format!("code-{tag}").into_bytes();
        store.insert_code(now, &new).unwrap();
        let grant_id = format!("grant-{tag}");
        let redeemed = store
            .redeem_code(now, &new.code_hash, &grant_id, &issue(tag, now), 3, |_| {
                Ok::<(), ()>(())
            })
            .unwrap();
        assert!(
            matches!(redeemed, Redeemed::Granted { .. }),
            "code not valid"
        );
        grant_id
    }

    #[test]
    fn migrations_apply_once_and_survive_reopen() {
        let dir =
            std::env::temp_dir().join(format!("oauth-store-{}", crate::oauth::crypto::random_id()));
        let path = dir.join("db.sqlite3");
        {
            let store = Store::open(&path).unwrap();
            assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
            let client = ClientRow {
                client_id: "c1".into(),
                kind: "registered".into(),
                client_name: "Test".into(),
                redirect_uris: vec!["http://127.0.0.1/cb".into()],
                metadata: "{}".into(),
                last_used_at: 0,
            };
            store.put_client(1, &client, 10, 0).unwrap();
        }
        let store = Store::open(&path).unwrap();
        assert_eq!(store.schema_version().unwrap(), MIGRATIONS.len() as i64);
        assert_eq!(store.client("c1").unwrap().unwrap().client_name, "Test");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn codes_are_single_use_and_expire_by_the_given_clock() {
        for backend in backends() {
            eprintln!("backend: {}", backend.name);
            let store = &*backend.store;
            let now = 1_000;
            let late = code("alice", now + 60);
            store.insert_code(now, &late).unwrap();
            assert!(matches!(
                store.take_code(now + 60, &late.code_hash).unwrap(),
                CodeOutcome::Expired
            ));
            let fresh = code("bob", now + 60);
            store.insert_code(now, &fresh).unwrap();
            assert!(matches!(
                store.take_code(now + 59, &fresh.code_hash).unwrap(),
                CodeOutcome::Valid(_)
            ));
            assert!(matches!(
                store.take_code(now + 59, &fresh.code_hash).unwrap(),
                CodeOutcome::Reused { revoked: None }
            ));
            assert!(matches!(
                store.take_code(now, b"nope").unwrap(),
                CodeOutcome::Unknown
            ));
        }
    }

    #[test]
    fn reused_code_revokes_the_grant_it_issued() {
        for backend in backends() {
            eprintln!("backend: {}", backend.name);
            let store = &*backend.store;
            let grant = redeem(store, 1_000, "alice", "a");
            assert!(store.access(1_001, b"at-a").unwrap().is_some());
            let outcome = store.take_code(1_002, b"code-a").unwrap();
            assert!(matches!(outcome, CodeOutcome::Reused { revoked: Some((g, _)) } if g == grant));
            assert!(store.access(1_003, b"at-a").unwrap().is_none());
        }
    }

    /// Regression: taking a code and creating its grant were two transactions, so a replay
    /// presented between them found the code spent but no grant yet, revoked nothing, and the
    /// first redemption then created a live grant. Now a replay that arrives while the first
    /// redemption is between its two steps waits for it, finds the grant, and revokes it.
    #[test]
    fn a_replay_during_a_redemption_revokes_the_grant_it_makes() {
        for backend in backends() {
            eprintln!("backend: {}", backend.name);
            let store = backend.store.clone();
            let now = 1_000;
            let new = code("alice", now + 60);
            store.insert_code(now, &new).unwrap();
            let (inside_tx, inside_rx) = std::sync::mpsc::channel::<()>();
            let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
            let first = {
                let store = store.clone();
                let hash = new.code_hash.clone();
                std::thread::spawn(move || {
                    store
                        .redeem_code(now, &hash, "grant-first", &issue("first", now), 3, |_| {
                            // Taken, not yet granted: let the replay in now.
                            inside_tx.send(()).unwrap();
                            go_rx.recv().unwrap();
                            Ok::<(), ()>(())
                        })
                        .unwrap()
                })
            };
            inside_rx.recv().unwrap();
            let replay = {
                let store = store.clone();
                let hash = new.code_hash.clone();
                std::thread::spawn(move || {
                    store
                        .redeem_code(now, &hash, "grant-replay", &issue("replay", now), 3, |_| {
                            Ok::<(), ()>(())
                        })
                        .unwrap()
                })
            };
            go_tx.send(()).unwrap();
            let first = first.join().unwrap();
            let replay = replay.join().unwrap();
            assert!(matches!(first, Redeemed::Granted { .. }), "{first:?}");
            assert!(
                matches!(&replay, Redeemed::Reused { revoked: Some((g, _)) } if g == "grant-first"),
                "{replay:?}"
            );
            assert!(store.access(now, b"at-first").unwrap().is_none(), "revoked");
            assert!(store.access(now, b"at-replay").unwrap().is_none());
            assert_eq!(store.live_grants("alice").unwrap(), 0);
        }
    }

    #[test]
    fn a_failed_check_spends_the_code_without_a_grant() {
        for backend in backends() {
            eprintln!("backend: {}", backend.name);
            let store = &*backend.store;
            let new = code("alice", 1_060);
            store.insert_code(1_000, &new).unwrap();
            let refused = store
                .redeem_code(1_000, &new.code_hash, "g", &issue("x", 1_000), 3, |_| {
                    Err("pkce")
                })
                .unwrap();
            assert!(matches!(refused, Redeemed::Refused { why: "pkce", .. }));
            assert_eq!(store.live_grants("alice").unwrap(), 0);
            assert!(matches!(
                store.take_code(1_001, &new.code_hash).unwrap(),
                CodeOutcome::Reused { revoked: None }
            ));
        }
    }

    #[test]
    fn refresh_rotates_and_a_replay_revokes_the_family() {
        for backend in backends() {
            eprintln!("backend: {}", backend.name);
            let store = &*backend.store;
            redeem(store, 1_000, "alice", "a");
            let next = issue("b", 1_100);
            assert!(matches!(
                store
                    .rotate_refresh(1_100, b"rt-a", "client-1", None, &next)
                    .unwrap(),
                RefreshOutcome::Rotated(_)
            ));
            assert!(store.access(1_101, b"at-b").unwrap().is_some());
            assert!(matches!(
                store
                    .rotate_refresh(1_102, b"rt-b", "other-client", None, &issue("x", 1_102))
                    .unwrap(),
                RefreshOutcome::OtherClient
            ));
            // The spent one comes back: the whole family dies, including the newest tokens.
            assert!(matches!(
                store
                    .rotate_refresh(1_200, b"rt-a", "client-1", None, &issue("c", 1_200))
                    .unwrap(),
                RefreshOutcome::Replayed(_)
            ));
            assert!(store.access(1_201, b"at-b").unwrap().is_none());
            assert!(matches!(
                store
                    .rotate_refresh(1_202, b"rt-b", "client-1", None, &issue("d", 1_202))
                    .unwrap(),
                RefreshOutcome::Unknown
            ));
        }
    }

    #[test]
    fn access_tokens_expire_and_grants_per_user_are_bounded() {
        for backend in backends() {
            eprintln!("backend: {}", backend.name);
            let store = &*backend.store;
            redeem(store, 1_000, "alice", "a");
            assert!(store.access(1_000 + 3599, b"at-a").unwrap().is_some());
            assert!(store.access(1_000 + 3600, b"at-a").unwrap().is_none());
            for tag in ["b", "c", "d", "e"] {
                redeem(store, 2_000, "alice", tag);
            }
            assert_eq!(store.live_grants("alice").unwrap(), 3);
            assert!(store.access(2_001, b"at-e").unwrap().is_some());
            assert!(store.access(2_001, b"at-b").unwrap().is_none());
        }
    }

    #[test]
    fn rotation_keeps_each_grant_bounded() {
        for backend in backends() {
            eprintln!("backend: {}", backend.name);
            let store = &*backend.store;
            redeem(store, 1_000, "alice", "r0");
            let mut current = "rt-r0".to_string();
            for i in 1..50 {
                let next = issue(&format!("r{i}"), 1_000 + i);
                let outcome = store
                    .rotate_refresh(1_000 + i, current.as_bytes(), "client-1", None, &next)
                    .unwrap();
                assert!(matches!(outcome, RefreshOutcome::Rotated(_)), "{i}");
                current = format!("rt-r{i}");
            }
            let counts: std::collections::HashMap<_, _> =
                store.row_counts().unwrap().into_iter().collect();
            assert!(
                counts["refresh_tokens"] <= USED_REFRESH_KEPT + 1,
                "{counts:?}"
            );
            assert!(counts["access_tokens"] <= ACCESS_PER_GRANT, "{counts:?}");
            // A replay of a recent spent token is still recognised.
            assert!(matches!(
                store
                    .rotate_refresh(2_000, b"rt-r48", "client-1", None, &issue("late", 2_000))
                    .unwrap(),
                RefreshOutcome::Replayed(_)
            ));
            // Everything of a revoked grant is purged after a day.
            store.purge(2_000 + REVOKED_KEPT_SECS + 1).unwrap();
            let counts: std::collections::HashMap<_, _> =
                store.row_counts().unwrap().into_iter().collect();
            assert_eq!(counts["grants"], 0, "{counts:?}");
            assert_eq!(counts["refresh_tokens"], 0, "{counts:?}");
        }
    }

    /// A flood of registrations never evicts a client younger than the
    /// sign-in window; the newcomer is refused instead, and once the window passed the least
    /// recently used old client makes room again.
    #[test]
    fn young_clients_are_never_evicted() {
        for backend in backends() {
            eprintln!("backend: {}", backend.name);
            let store = &*backend.store;
            let client = |id: &str| ClientRow {
                client_id: id.into(),
                kind: "registered".into(),
                client_name: id.into(),
                redirect_uris: vec![],
                metadata: "{}".into(),
                last_used_at: 0,
            };
            let young = 660;
            store.put_client(1_000, &client("early"), 3, young).unwrap();
            store.put_client(1_010, &client("b"), 3, young).unwrap();
            store.put_client(1_020, &client("c"), 3, young).unwrap();
            for i in 0..50 {
                assert!(matches!(
                    store.put_client(1_030 + i, &client(&format!("flood-{i}")), 3, young),
                    Err(StoreError::Full)
                ));
            }
            assert!(store.client("early").unwrap().is_some());
            store
                .put_client(1_000 + young, &client("later"), 3, young)
                .unwrap();
            assert!(store.client("early").unwrap().is_none(), "old enough now");
            assert!(store.client("b").unwrap().is_some());
        }
    }

    #[test]
    fn a_database_from_a_newer_build_is_refused() {
        let dir =
            std::env::temp_dir().join(format!("oauth-store-{}", crate::oauth::crypto::random_id()));
        let path = dir.join("db.sqlite3");
        drop(Store::open(&path).unwrap());
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute("INSERT INTO schema_version (version) VALUES (99)", [])
                .unwrap();
        }
        assert!(matches!(
            Store::open(&path),
            Err(StoreError::TooNew { found: 99, .. })
        ));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn clients_are_bounded_and_clients_with_grants_stay() {
        for backend in backends() {
            eprintln!("backend: {}", backend.name);
            let store = &*backend.store;
            redeem(store, 1_000, "alice", "a");
            let client = |id: &str| ClientRow {
                client_id: id.into(),
                kind: "registered".into(),
                client_name: id.into(),
                redirect_uris: vec![],
                metadata: "{}".into(),
                last_used_at: 0,
            };
            store.put_client(1, &client("client-1"), 2, 0).unwrap();
            store.put_client(2, &client("c2"), 2, 0).unwrap();
            store.put_client(3, &client("c3"), 2, 0).unwrap();
            assert_eq!(store.client_count().unwrap(), 2);
            assert!(store.client("client-1").unwrap().is_some(), "holds a grant");
            assert!(store.client("c2").unwrap().is_none(), "least recently used");
            // Every client holds a live grant: no room is made, the new one is refused.
            assert!(matches!(
                store.put_client(4, &client("c4"), 1, 0),
                Err(StoreError::Full)
            ));
        }
    }

    /// Two redemptions of one code at once (threads, as two replicas would race): exactly one
    /// gets the grant, the other is a reuse naming that grant, which is revoked; nothing stays
    /// live. Repeated, so both orders of the two steps come up.
    #[test]
    fn concurrent_redemptions_of_one_code_grant_once() {
        for backend in backends() {
            eprintln!("backend: {}", backend.name);
            for round in 0..20 {
                let now = 1_000;
                let mut new = code("alice", now + 60);
                new.code_hash = format!("race-{round}").into_bytes();
                backend.store.insert_code(now, &new).unwrap();
                let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
                let racers: Vec<_> = ["one", "two"]
                    .into_iter()
                    .map(|tag| {
                        let (store, barrier) = (backend.store.clone(), barrier.clone());
                        let hash = new.code_hash.clone();
                        std::thread::spawn(move || {
                            let tag = format!("{round}-{tag}");
                            barrier.wait();
                            let grant = format!("grant-{tag}");
                            let redeemed = store
                                .redeem_code(now, &hash, &grant, &issue(&tag, now), 3, |_| {
                                    Ok::<(), ()>(())
                                })
                                .unwrap();
                            (tag, grant, redeemed)
                        })
                    })
                    .collect();
                let results: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
                let winners: Vec<_> = results
                    .iter()
                    .filter(|(_, _, r)| matches!(r, Redeemed::Granted { .. }))
                    .collect();
                assert_eq!(winners.len(), 1, "{results:?}");
                let (tag, grant, _) = winners[0];
                let loser = results.iter().find(|(t, _, _)| t != tag).unwrap();
                assert!(
                    matches!(&loser.2, Redeemed::Reused { revoked: Some((g, s)) } if g == grant && s == "alice"),
                    "{results:?}"
                );
                let at = format!("at-{tag}").into_bytes();
                assert!(backend.store.access(now, &at).unwrap().is_none(), "revoked");
                assert_eq!(backend.store.live_grants("alice").unwrap(), 0);
            }
        }
    }

    /// Two refreshes with the same refresh token at once: one rotates, the other is a replay
    /// that revokes the whole family, including the tokens the winner just got.
    #[test]
    fn concurrent_refreshes_rotate_once_and_the_other_revokes_the_family() {
        for backend in backends() {
            eprintln!("backend: {}", backend.name);
            for round in 0..20 {
                let first = format!("{round}-0");
                let grant = redeem(&backend.store, 1_000, "bob", &first);
                let barrier = std::sync::Arc::new(std::sync::Barrier::new(2));
                let racers: Vec<_> = ["a", "b"]
                    .into_iter()
                    .map(|tag| {
                        let (store, barrier) = (backend.store.clone(), barrier.clone());
                        let spent = format!("rt-{first}").into_bytes();
                        std::thread::spawn(move || {
                            let tag = format!("{round}-{tag}");
                            barrier.wait();
                            let next = issue(&tag, 1_100);
                            let outcome = store
                                .rotate_refresh(1_100, &spent, "client-1", None, &next)
                                .unwrap();
                            (tag, outcome)
                        })
                    })
                    .collect();
                let results: Vec<_> = racers.into_iter().map(|r| r.join().unwrap()).collect();
                let rotated = results
                    .iter()
                    .filter(|(_, o)| matches!(o, RefreshOutcome::Rotated(g) if g.grant_id == grant))
                    .count();
                let replayed = results
                    .iter()
                    .filter(
                        |(_, o)| matches!(o, RefreshOutcome::Replayed(g) if g.grant_id == grant),
                    )
                    .count();
                assert_eq!((rotated, replayed), (1, 1), "{results:?}");
                for (tag, _) in &results {
                    let at = format!("at-{tag}").into_bytes();
                    assert!(backend.store.access(1_101, &at).unwrap().is_none(), "{tag}");
                    let rt = format!("rt-{tag}").into_bytes();
                    let again = issue(&format!("{tag}-again"), 1_102);
                    assert!(matches!(
                        backend
                            .store
                            .rotate_refresh(1_102, &rt, "client-1", None, &again)
                            .unwrap(),
                        RefreshOutcome::Unknown
                    ));
                }
                assert_eq!(backend.store.live_grants("bob").unwrap(), 0);
            }
        }
    }
}
