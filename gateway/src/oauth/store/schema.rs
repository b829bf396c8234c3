//! The store's schema: numbered migrations; `schema_version` records the highest applied.

/// Numbered migrations; `schema_version` records the highest applied. Append, never edit.
pub(super) const MIGRATIONS: &[&str] = &[
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
