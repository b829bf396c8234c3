//! Authorization codes: single use, short-lived, redeemed in one transaction with the grant they
//! make.

use rusqlite::{params, OptionalExtension, Transaction};

use super::grants::{create_grant_tx, revoke_grant_tx, Issue};
use super::purge;
use super::{Sqlite, StoreError};

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

impl Sqlite {
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

    /// Redeems a code in one transaction: spends it, runs `check` on what it
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
