//! The OAuth store: one SQLite file (created on first run, numbered migrations in
//! `schema_version`) holding registered clients, authorization codes, grants (one per approval:
//! a refresh-token family) and the hashes of access and refresh tokens.
//!
//! Tokens and codes are kept only as SHA-256 hashes; the Coda token only sealed (see
//! [`super::crypto`]). Every operation takes `now` (Unix seconds) from the caller, so tests
//! choose the time. Everything is bounded: clients, grants per user, live access tokens and
//! remembered (used) refresh tokens per grant; expired rows are purged as new ones come in.
//!
//! The store is synchronous; [`super::OAuth::db`] runs it on the blocking pool.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{params, Connection, OptionalExtension, Transaction};

/// Numbered migrations; `schema_version` records the highest applied. Append, never edit.
const MIGRATIONS: &[&str] = &[
    // 1: the initial schema.
    r#"
    CREATE TABLE clients (
        client_id      TEXT PRIMARY KEY,
        kind           TEXT NOT NULL,      -- 'registered' (RFC 7591) or 'metadata_document'
        client_name    TEXT NOT NULL,
        redirect_uris  TEXT NOT NULL,      -- JSON array of exact URIs
        metadata       TEXT NOT NULL,      -- the registration response (JSON)
        created_at     INTEGER NOT NULL,
        last_used_at   INTEGER NOT NULL
    );
    CREATE TABLE codes (
        code_hash      BLOB PRIMARY KEY,
        client_id      TEXT NOT NULL,
        redirect_uri   TEXT NOT NULL,
        code_challenge TEXT NOT NULL,
        resource       TEXT NOT NULL,
        scope          TEXT NOT NULL,
        subject        TEXT NOT NULL,
        coda_token     BLOB NOT NULL,      -- sealed
        expires_at     INTEGER NOT NULL,
        used_at        INTEGER,
        grant_id       TEXT                -- the grant issued from this code
    );
    CREATE INDEX codes_expiry ON codes(expires_at);
    CREATE TABLE grants (
        grant_id       TEXT PRIMARY KEY,
        client_id      TEXT NOT NULL,
        subject        TEXT NOT NULL,
        coda_token     BLOB NOT NULL,      -- sealed
        resource       TEXT NOT NULL,
        scope          TEXT NOT NULL,
        created_at     INTEGER NOT NULL,
        expires_at     INTEGER NOT NULL,   -- when its newest refresh token expires
        revoked_at     INTEGER
    );
    CREATE INDEX grants_subject ON grants(subject);
    CREATE INDEX grants_client ON grants(client_id);
    CREATE TABLE refresh_tokens (
        token_hash     BLOB PRIMARY KEY,
        grant_id       TEXT NOT NULL REFERENCES grants(grant_id) ON DELETE CASCADE,
        created_at     INTEGER NOT NULL,
        expires_at     INTEGER NOT NULL,
        used_at        INTEGER
    );
    CREATE INDEX refresh_grant ON refresh_tokens(grant_id);
    CREATE TABLE access_tokens (
        token_hash     BLOB PRIMARY KEY,
        grant_id       TEXT NOT NULL REFERENCES grants(grant_id) ON DELETE CASCADE,
        created_at     INTEGER NOT NULL,
        expires_at     INTEGER NOT NULL
    );
    CREATE INDEX access_grant ON access_tokens(grant_id);
    CREATE INDEX access_expiry ON access_tokens(expires_at);
    "#,
];

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
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRow {
    pub client_id: String,
    pub kind: String,
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    pub metadata: String,
    pub last_used_at: i64,
}

#[derive(Clone, Debug)]
pub struct NewCode {
    pub code_hash: Vec<u8>,
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub resource: String,
    pub scope: String,
    pub subject: String,
    pub coda_token: Vec<u8>,
    pub expires_at: i64,
}

#[derive(Clone, Debug)]
pub struct CodeRow {
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub resource: String,
    pub scope: String,
    pub subject: String,
    pub coda_token: Vec<u8>,
}

/// What presenting a code found. A code is spent by being presented, whatever follows.
#[derive(Debug)]
pub enum CodeOutcome {
    Unknown,
    /// Presented before; the grant issued from it (if any) has just been revoked.
    Reused {
        revoked: Option<(String, String)>,
    },
    Expired,
    Valid(CodeRow),
}

/// What redeeming a code did ([`Store::redeem_code`]).
#[derive(Debug)]
pub enum Redeemed<F> {
    Unknown,
    /// Presented before; the grant issued from it (if any) has just been revoked.
    Reused {
        revoked: Option<(String, String)>,
    },
    Expired,
    /// The caller's check refused the request; the code is spent, no grant was made.
    Refused {
        row: CodeRow,
        why: F,
    },
    /// The grant exists with its first tokens; `evicted` are the user's grants it displaced.
    Granted {
        row: CodeRow,
        evicted: Vec<String>,
    },
}

/// New tokens to record (hashes and expiry instants).
#[derive(Clone, Debug)]
pub struct Issue {
    pub access_hash: Vec<u8>,
    pub access_expires_at: i64,
    pub refresh_hash: Vec<u8>,
    pub refresh_expires_at: i64,
}

#[derive(Clone, Debug)]
pub struct GrantInfo {
    pub grant_id: String,
    pub client_id: String,
    pub subject: String,
    pub resource: String,
    pub scope: String,
}

#[derive(Debug)]
pub enum RefreshOutcome {
    Unknown,
    /// A used refresh token came back: its grant is now revoked.
    Replayed(GrantInfo),
    Expired,
    /// Issued to another client (nothing changed).
    OtherClient,
    /// `resource` differs from the grant's (nothing changed).
    OtherResource,
    Rotated(GrantInfo),
}

/// What an access token stands for.
#[derive(Clone)]
pub struct AccessRow {
    pub grant_id: String,
    pub client_id: String,
    pub subject: String,
    pub resource: String,
    pub coda_token: Vec<u8>,
}

pub struct Store {
    conn: Mutex<Connection>,
}

impl Store {
    /// Opens (creating if needed, mode 0600) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        let created = !path.exists();
        let conn = Connection::open(path)?;
        if created {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Store::init(conn)
    }

    /// A private in-memory database (tests).
    pub fn in_memory() -> Result<Store, StoreError> {
        Store::init(Connection::open_in_memory()?)
    }

    fn init(conn: Connection) -> Result<Store, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // WAL where the file system allows it; in-memory databases answer "memory".
        let _: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        let store = Store {
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

    // -----------------------------------------------------------------------------------------
    // Clients
    // -----------------------------------------------------------------------------------------

    /// Records a client. When `max_clients` are there already, the least recently used client
    /// that holds no grant and is older than `young_secs` makes room; if none may go,
    /// [`StoreError::Full`]. A client younger than the sign-in window is never evicted (issue 11
    /// item 8): its user may be on the sign-in page right now, and a flood of registrations
    /// must not turn it into "unknown client_id".
    /// A metadata-document client with the same id is replaced (refetched documents).
    pub fn put_client(
        &self,
        now: i64,
        client: &ClientRow,
        max_clients: usize,
        young_secs: i64,
    ) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let exists: bool = tx
            .query_row(
                "SELECT 1 FROM clients WHERE client_id = ?1",
                params![client.client_id],
                |_| Ok(()),
            )
            .optional()?
            .is_some();
        if !exists {
            loop {
                let count: i64 = tx.query_row("SELECT COUNT(*) FROM clients", [], |r| r.get(0))?;
                if (count as usize) < max_clients {
                    break;
                }
                let evicted = tx.execute(
                    "DELETE FROM clients WHERE client_id = (
                        SELECT c.client_id FROM clients c
                        WHERE NOT EXISTS (SELECT 1 FROM grants g WHERE g.client_id = c.client_id AND g.revoked_at IS NULL)
                          AND c.created_at <= ?1
                        ORDER BY c.last_used_at ASC LIMIT 1)",
                    params![now - young_secs],
                )?;
                if evicted == 0 {
                    return Err(StoreError::Full);
                }
            }
        }
        tx.execute(
            "INSERT INTO clients (client_id, kind, client_name, redirect_uris, metadata, created_at, last_used_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)
             ON CONFLICT(client_id) DO UPDATE SET kind = ?2, client_name = ?3, redirect_uris = ?4,
                 metadata = ?5, last_used_at = ?6",
            params![
                client.client_id,
                client.kind,
                client.client_name,
                serde_json::to_string(&client.redirect_uris).unwrap_or_else(|_| "[]".into()),
                client.metadata,
                now
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    pub fn client(&self, client_id: &str) -> Result<Option<ClientRow>, StoreError> {
        let conn = self.lock();
        let row = conn
            .query_row(
                "SELECT client_id, kind, client_name, redirect_uris, metadata, last_used_at
                 FROM clients WHERE client_id = ?1",
                params![client_id],
                |r| {
                    let uris: String = r.get(3)?;
                    Ok(ClientRow {
                        client_id: r.get(0)?,
                        kind: r.get(1)?,
                        client_name: r.get(2)?,
                        redirect_uris: serde_json::from_str(&uris).unwrap_or_default(),
                        metadata: r.get(4)?,
                        last_used_at: r.get(5)?,
                    })
                },
            )
            .optional()?;
        Ok(row)
    }

    pub fn touch_client(&self, now: i64, client_id: &str) -> Result<(), StoreError> {
        self.lock().execute(
            "UPDATE clients SET last_used_at = ?2 WHERE client_id = ?1",
            params![client_id, now],
        )?;
        Ok(())
    }

    /// Whether a user approved this client here (it holds a grant, live or remembered as
    /// revoked): one of the ways a client counts as known-good for error redirects.
    pub fn client_has_grant(&self, client_id: &str) -> Result<bool, StoreError> {
        let found = self
            .lock()
            .query_row(
                "SELECT 1 FROM grants WHERE client_id = ?1 LIMIT 1",
                params![client_id],
                |_| Ok(()),
            )
            .optional()?;
        Ok(found.is_some())
    }

    pub fn client_count(&self) -> Result<usize, StoreError> {
        let count: i64 = self
            .lock()
            .query_row("SELECT COUNT(*) FROM clients", [], |r| r.get(0))?;
        Ok(count as usize)
    }

    // -----------------------------------------------------------------------------------------
    // Codes
    // -----------------------------------------------------------------------------------------

    pub fn insert_code(&self, now: i64, code: &NewCode) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        purge(&tx, now)?;
        tx.execute(
            "INSERT INTO codes (code_hash, client_id, redirect_uri, code_challenge, resource, scope,
                 subject, coda_token, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                code.code_hash,
                code.client_id,
                code.redirect_uri,
                code.code_challenge,
                code.resource,
                code.scope,
                code.subject,
                code.coda_token,
                code.expires_at
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Presents a code: spends it, and says what it was. (A token request redeems a code with
    /// [`Store::redeem_code`]; this is the same first step on its own.)
    pub fn take_code(&self, now: i64, code_hash: &[u8]) -> Result<CodeOutcome, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let outcome = take_code_tx(&tx, now, code_hash)?;
        tx.commit()?;
        Ok(outcome)
    }

    /// Redeems a code in one transaction (issue 11 item 14): spends it, runs `check` on what it
    /// was issued for (client, redirect URI, PKCE, resource), and creates its grant with the
    /// first tokens. Nobody can present the code between the taking and the grant: a replay
    /// waits for this transaction, then finds the grant and revokes it. A failed `check` still
    /// spends the code (a code is spent by being presented).
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
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let redeemed = match take_code_tx(&tx, now, code_hash)? {
            CodeOutcome::Unknown => Redeemed::Unknown,
            CodeOutcome::Expired => Redeemed::Expired,
            CodeOutcome::Reused { revoked } => Redeemed::Reused { revoked },
            CodeOutcome::Valid(row) => match check(&row) {
                Err(why) => Redeemed::Refused { row, why },
                Ok(()) => {
                    let evicted = create_grant_tx(
                        &tx,
                        now,
                        grant_id,
                        code_hash,
                        &row,
                        issue,
                        max_grants_per_subject,
                    )?;
                    Redeemed::Granted { row, evicted }
                }
            },
        };
        tx.commit()?;
        Ok(redeemed)
    }

    // -----------------------------------------------------------------------------------------
    // Grants and tokens
    // -----------------------------------------------------------------------------------------

    /// Exchanges a refresh token for new tokens (the old one is spent). A spent one coming back
    /// revokes its whole grant.
    pub fn rotate_refresh(
        &self,
        now: i64,
        refresh_hash: &[u8],
        client_id: &str,
        resource: Option<&str>,
        issue: &Issue,
    ) -> Result<RefreshOutcome, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        type Found = (GrantInfo, i64, Option<i64>, Option<i64>);
        let found: Option<Found> = tx
            .query_row(
                "SELECT g.grant_id, g.client_id, g.subject, g.resource, g.scope,
                        t.expires_at, t.used_at, g.revoked_at
                 FROM refresh_tokens t JOIN grants g ON g.grant_id = t.grant_id
                 WHERE t.token_hash = ?1",
                params![refresh_hash],
                |r| {
                    Ok((
                        GrantInfo {
                            grant_id: r.get(0)?,
                            client_id: r.get(1)?,
                            subject: r.get(2)?,
                            resource: r.get(3)?,
                            scope: r.get(4)?,
                        },
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                    ))
                },
            )
            .optional()?;
        let Some((grant, expires_at, used_at, revoked_at)) = found else {
            return Ok(RefreshOutcome::Unknown);
        };
        if revoked_at.is_some() {
            return Ok(RefreshOutcome::Unknown);
        }
        if grant.client_id != client_id {
            return Ok(RefreshOutcome::OtherClient);
        }
        if used_at.is_some() {
            revoke_grant_tx(&tx, now, &grant.grant_id)?;
            tx.commit()?;
            return Ok(RefreshOutcome::Replayed(grant));
        }
        if expires_at <= now {
            return Ok(RefreshOutcome::Expired);
        }
        if resource.is_some_and(|r| r != grant.resource) {
            return Ok(RefreshOutcome::OtherResource);
        }
        tx.execute(
            "UPDATE refresh_tokens SET used_at = ?2 WHERE token_hash = ?1",
            params![refresh_hash, now],
        )?;
        insert_tokens(&tx, now, &grant.grant_id, issue)?;
        tx.execute(
            "UPDATE grants SET expires_at = ?2 WHERE grant_id = ?1",
            params![grant.grant_id, issue.refresh_expires_at],
        )?;
        // Bounded memory of spent refresh tokens (enough to catch a replay).
        tx.execute(
            "DELETE FROM refresh_tokens WHERE grant_id = ?1 AND used_at IS NOT NULL AND token_hash NOT IN (
                 SELECT token_hash FROM refresh_tokens WHERE grant_id = ?1 AND used_at IS NOT NULL
                 ORDER BY used_at DESC, rowid DESC LIMIT ?2)",
            params![grant.grant_id, USED_REFRESH_KEPT],
        )?;
        tx.commit()?;
        Ok(RefreshOutcome::Rotated(grant))
    }

    /// The live grant behind an access token: not expired, not revoked.
    pub fn access(&self, now: i64, access_hash: &[u8]) -> Result<Option<AccessRow>, StoreError> {
        let conn = self.lock();
        let row = conn
            .query_row(
                "SELECT g.grant_id, g.client_id, g.subject, g.resource, g.coda_token
                 FROM access_tokens a JOIN grants g ON g.grant_id = a.grant_id
                 WHERE a.token_hash = ?1 AND a.expires_at > ?2 AND g.revoked_at IS NULL",
                params![access_hash, now],
                |r| {
                    Ok(AccessRow {
                        grant_id: r.get(0)?,
                        client_id: r.get(1)?,
                        subject: r.get(2)?,
                        resource: r.get(3)?,
                        coda_token: r.get(4)?,
                    })
                },
            )
            .optional()?;
        Ok(row)
    }

    /// RFC 7009: revokes the grant behind an access or refresh token (all its tokens die).
    /// A token of another client (when `client_id` is given) or an unknown one changes nothing.
    pub fn revoke_token(
        &self,
        now: i64,
        token_hash: &[u8],
        client_id: Option<&str>,
    ) -> Result<Option<GrantInfo>, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let grant: Option<GrantInfo> = tx
            .query_row(
                "SELECT g.grant_id, g.client_id, g.subject, g.resource, g.scope FROM grants g
                 WHERE g.revoked_at IS NULL AND g.grant_id IN (
                     SELECT grant_id FROM access_tokens WHERE token_hash = ?1
                     UNION SELECT grant_id FROM refresh_tokens WHERE token_hash = ?1)",
                params![token_hash],
                |r| {
                    Ok(GrantInfo {
                        grant_id: r.get(0)?,
                        client_id: r.get(1)?,
                        subject: r.get(2)?,
                        resource: r.get(3)?,
                        scope: r.get(4)?,
                    })
                },
            )
            .optional()?;
        let Some(grant) = grant else {
            return Ok(None);
        };
        if client_id.is_some_and(|c| c != grant.client_id) {
            return Ok(None);
        }
        revoke_grant_tx(&tx, now, &grant.grant_id)?;
        tx.commit()?;
        Ok(Some(grant))
    }

    /// Revokes one grant; its subject if it was live.
    pub fn revoke_grant(&self, now: i64, grant_id: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let subject: Option<String> = tx
            .query_row(
                "SELECT subject FROM grants WHERE grant_id = ?1 AND revoked_at IS NULL",
                params![grant_id],
                |r| r.get(0),
            )
            .optional()?;
        if subject.is_some() {
            revoke_grant_tx(&tx, now, grant_id)?;
        }
        tx.commit()?;
        Ok(subject)
    }

    /// Live grants (tests and metrics).
    pub fn live_grants(&self, subject: &str) -> Result<usize, StoreError> {
        let count: i64 = self.lock().query_row(
            "SELECT COUNT(*) FROM grants WHERE subject = ?1 AND revoked_at IS NULL",
            params![subject],
            |r| r.get(0),
        )?;
        Ok(count as usize)
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

/// The first step of a redemption, inside the caller's transaction: spends the code, revoking
/// the grant issued from it when it was spent before.
fn take_code_tx(
    tx: &Transaction<'_>,
    now: i64,
    code_hash: &[u8],
) -> Result<CodeOutcome, StoreError> {
    type Found = (CodeRow, i64, Option<i64>, Option<String>);
    let found: Option<Found> = tx
        .query_row(
            "SELECT client_id, redirect_uri, code_challenge, resource, scope, subject, coda_token,
                    expires_at, used_at, grant_id
             FROM codes WHERE code_hash = ?1",
            params![code_hash],
            |r| {
                Ok((
                    CodeRow {
                        client_id: r.get(0)?,
                        redirect_uri: r.get(1)?,
                        code_challenge: r.get(2)?,
                        resource: r.get(3)?,
                        scope: r.get(4)?,
                        subject: r.get(5)?,
                        coda_token: r.get(6)?,
                    },
                    r.get(7)?,
                    r.get(8)?,
                    r.get(9)?,
                ))
            },
        )
        .optional()?;
    let Some((row, expires_at, used_at, grant_id)) = found else {
        return Ok(CodeOutcome::Unknown);
    };
    if used_at.is_some() {
        let revoked = match grant_id {
            Some(grant_id) => {
                revoke_grant_tx(tx, now, &grant_id)?;
                Some((grant_id, row.subject.clone()))
            }
            None => None,
        };
        return Ok(CodeOutcome::Reused { revoked });
    }
    tx.execute(
        "UPDATE codes SET used_at = ?2 WHERE code_hash = ?1",
        params![code_hash, now],
    )?;
    Ok(if expires_at <= now {
        CodeOutcome::Expired
    } else {
        CodeOutcome::Valid(row)
    })
}

/// Creates a grant from a code just taken in the same transaction, with its first tokens. A user
/// over `max_grants_per_subject` loses their oldest grant.
#[allow(clippy::too_many_arguments)]
fn create_grant_tx(
    tx: &Transaction<'_>,
    now: i64,
    grant_id: &str,
    code_hash: &[u8],
    code: &CodeRow,
    issue: &Issue,
    max_grants_per_subject: usize,
) -> Result<Vec<String>, StoreError> {
    purge(tx, now)?;
    let mut evicted = Vec::new();
    {
        let mut stmt = tx.prepare(
            "SELECT grant_id FROM grants WHERE subject = ?1 AND revoked_at IS NULL
             ORDER BY created_at DESC, rowid DESC",
        )?;
        let live: Vec<String> = stmt
            .query_map(params![code.subject], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for old in live.iter().skip(max_grants_per_subject.saturating_sub(1)) {
            evicted.push(old.clone());
        }
    }
    for old in &evicted {
        revoke_grant_tx(tx, now, old)?;
    }
    tx.execute(
        "INSERT INTO grants (grant_id, client_id, subject, coda_token, resource, scope, created_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            grant_id,
            code.client_id,
            code.subject,
            code.coda_token,
            code.resource,
            code.scope,
            now,
            issue.refresh_expires_at
        ],
    )?;
    tx.execute(
        "UPDATE codes SET grant_id = ?2 WHERE code_hash = ?1",
        params![code_hash, grant_id],
    )?;
    insert_tokens(tx, now, grant_id, issue)?;
    Ok(evicted)
}

fn insert_tokens(
    tx: &Transaction<'_>,
    now: i64,
    grant_id: &str,
    issue: &Issue,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO access_tokens (token_hash, grant_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![issue.access_hash, grant_id, now, issue.access_expires_at],
    )?;
    tx.execute(
        "DELETE FROM access_tokens WHERE grant_id = ?1 AND token_hash NOT IN (
             SELECT token_hash FROM access_tokens WHERE grant_id = ?1
             ORDER BY created_at DESC, rowid DESC LIMIT ?2)",
        params![grant_id, ACCESS_PER_GRANT],
    )?;
    tx.execute(
        "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![issue.refresh_hash, grant_id, now, issue.refresh_expires_at],
    )?;
    Ok(())
}

fn revoke_grant_tx(tx: &Transaction<'_>, now: i64, grant_id: &str) -> Result<(), StoreError> {
    tx.execute(
        "UPDATE grants SET revoked_at = ?2 WHERE grant_id = ?1 AND revoked_at IS NULL",
        params![grant_id, now],
    )?;
    tx.execute(
        "DELETE FROM access_tokens WHERE grant_id = ?1",
        params![grant_id],
    )?;
    tx.execute(
        "DELETE FROM refresh_tokens WHERE grant_id = ?1",
        params![grant_id],
    )?;
    Ok(())
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
        let store = Store::in_memory().unwrap();
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

    #[test]
    fn reused_code_revokes_the_grant_it_issued() {
        let store = Store::in_memory().unwrap();
        let grant = redeem(&store, 1_000, "alice", "a");
        assert!(store.access(1_001, b"at-a").unwrap().is_some());
        let outcome = store.take_code(1_002, b"code-a").unwrap();
        assert!(matches!(outcome, CodeOutcome::Reused { revoked: Some((g, _)) } if g == grant));
        assert!(store.access(1_003, b"at-a").unwrap().is_none());
    }

    /// Issue 11 item 14: taking a code and creating its grant were two transactions, so a replay
    /// presented between them found the code spent but no grant yet, revoked nothing, and the
    /// first redemption then created a live grant. Now a replay that arrives while the first
    /// redemption is between its two steps waits for it, finds the grant, and revokes it.
    #[test]
    fn a_replay_during_a_redemption_revokes_the_grant_it_makes() {
        let store = std::sync::Arc::new(Store::in_memory().unwrap());
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

    #[test]
    fn a_failed_check_spends_the_code_without_a_grant() {
        let store = Store::in_memory().unwrap();
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

    #[test]
    fn refresh_rotates_and_a_replay_revokes_the_family() {
        let store = Store::in_memory().unwrap();
        redeem(&store, 1_000, "alice", "a");
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

    #[test]
    fn access_tokens_expire_and_grants_per_user_are_bounded() {
        let store = Store::in_memory().unwrap();
        redeem(&store, 1_000, "alice", "a");
        assert!(store.access(1_000 + 3599, b"at-a").unwrap().is_some());
        assert!(store.access(1_000 + 3600, b"at-a").unwrap().is_none());
        for tag in ["b", "c", "d", "e"] {
            redeem(&store, 2_000, "alice", tag);
        }
        assert_eq!(store.live_grants("alice").unwrap(), 3);
        assert!(store.access(2_001, b"at-e").unwrap().is_some());
        assert!(store.access(2_001, b"at-b").unwrap().is_none());
    }

    #[test]
    fn rotation_keeps_each_grant_bounded() {
        let store = Store::in_memory().unwrap();
        redeem(&store, 1_000, "alice", "r0");
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

    /// Issue 11 item 8: a flood of registrations never evicts a client younger than the
    /// sign-in window; the newcomer is refused instead, and once the window passed the least
    /// recently used old client makes room again.
    #[test]
    fn young_clients_are_never_evicted() {
        let store = Store::in_memory().unwrap();
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
        let store = Store::in_memory().unwrap();
        redeem(&store, 1_000, "alice", "a");
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
