//! Grants (one per approval: a refresh-token family) and the hashes of their access and refresh
//! tokens: rotation, replay detection, revocation, and the per-user and per-grant bounds.

use rusqlite::{params, OptionalExtension, Transaction};

use super::codes::CodeRow;
use super::{purge, Sqlite, StoreError, ACCESS_PER_GRANT, USED_REFRESH_KEPT};

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

impl Sqlite {
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
}

/// Creates a grant from a code just taken in the same transaction, with its first tokens. A user
/// over `max_grants_per_subject` loses their oldest grant.
#[allow(clippy::too_many_arguments)]
pub(super) fn create_grant_tx(
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

pub(super) fn revoke_grant_tx(
    tx: &Transaction<'_>,
    now: i64,
    grant_id: &str,
) -> Result<(), StoreError> {
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
