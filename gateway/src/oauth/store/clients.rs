//! Registered and metadata-document clients: bounded, least recently used evicted first, never
//! one that holds a grant or is younger than the sign-in window.

use rusqlite::{params, OptionalExtension};

use super::{Sqlite, StoreError};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientRow {
    pub client_id: String,
    pub kind: String,
    pub client_name: String,
    pub redirect_uris: Vec<String>,
    pub metadata: String,
    pub last_used_at: i64,
}

impl Sqlite {
    /// Records a client. When `max_clients` are there already, the least recently used client
    /// that holds no grant and is older than `young_secs` makes room; if none may go,
    /// [`StoreError::Full`]. A client younger than the sign-in window is never evicted: its user may be on the sign-in page right now, and a flood of registrations
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
}
