//! The embedded store: one SQLite file in WAL mode, schema migrations by `user_version`, one
//! transaction per state change. One writer connection and a few reader connections (WAL
//! lets readers run beside the writer); blocking SQLite calls run on tokio's blocking pool.
//!
//! Each write says what its record is worth ([`Durability`]): tokens, bots, apps and events
//! are synced to disk before the write returns (`synchronous = FULL`); links, flows and
//! connect sessions, which live minutes and are recreated by asking again, are not
//! (`synchronous = NORMAL`: safe against a crash of the process, and synced with the next
//! durable write or checkpoint; a power loss may lose the last few).

use crate::crypto::Sealed;
use crate::domain::events::{Event, OutboxEvent};
use crate::domain::ids::{Alias, BotId, LinkId, ProviderName, TokenId, UserId};
use crate::domain::integrations::Integration;
use crate::domain::providers::ProviderApp;
use crate::domain::token::{
    ConnectSession, Flow, Link, Owner, PendingConnection, PendingRevocation, TokenRecord,
    TokenStatus,
};
use crate::ports::{
    BotStore, Connection as Connected, FlowStore, ProviderStore, SaveOutcome, Spend, StoreError,
    TokenStore,
};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

mod bots;
mod flows;
mod outbox;
mod tokens;

pub(crate) use outbox::{insert_events, outbox_rows};

impl rusqlite::ToSql for Sealed {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.as_str().to_sql()
    }
}

impl rusqlite::types::FromSql for Sealed {
    fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
        String::column_result(v).map(Sealed::from_stored)
    }
}

/// Each entry moves the schema one version up; applied in order, never edited once released.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE bots (
    bot_id     TEXT PRIMARY KEY,
    key_hash   TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE integrations (
    bot_id TEXT PRIMARY KEY REFERENCES bots(bot_id),
    body   TEXT NOT NULL
);
CREATE TABLE providers (
    name          TEXT PRIMARY KEY,
    app           TEXT NOT NULL,
    sealed_secret TEXT
);
CREATE TABLE links (
    link_id    TEXT PRIMARY KEY,
    bot_id     TEXT NOT NULL REFERENCES bots(bot_id),
    alias      TEXT NOT NULL,
    user_id    TEXT,
    expires_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX links_expiry ON links(expires_at);
CREATE TABLE flows (
    state_hash      TEXT PRIMARY KEY,
    link_id         TEXT NOT NULL,
    bot_id          TEXT NOT NULL REFERENCES bots(bot_id),
    alias           TEXT NOT NULL,
    provider        TEXT NOT NULL,
    user_id         TEXT,
    sealed_verifier TEXT,
    redirect_uri    TEXT NOT NULL,
    expires_at      INTEGER NOT NULL,
    created_at      INTEGER NOT NULL
);
CREATE INDEX flows_expiry ON flows(expires_at);
CREATE TABLE connect_sessions (
    session_id TEXT PRIMARY KEY,
    bot_id     TEXT NOT NULL REFERENCES bots(bot_id),
    expires_at INTEGER NOT NULL
);
CREATE TABLE tokens (
    bot_id       TEXT NOT NULL REFERENCES bots(bot_id),
    token_id     TEXT NOT NULL,
    alias        TEXT NOT NULL,
    provider     TEXT NOT NULL,
    -- '' for a bot-context token: user ids are never empty.
    user_id      TEXT NOT NULL,
    status       TEXT NOT NULL,
    expires_at   INTEGER,
    sealed       TEXT NOT NULL,
    version      INTEGER NOT NULL,
    lease_holder TEXT,
    lease_until  INTEGER,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (bot_id, token_id),
    UNIQUE (bot_id, user_id, alias)
);
"#,
    r#"
-- The scopes a flow asked for, as a JSON array.
ALTER TABLE flows ADD COLUMN scopes TEXT NOT NULL DEFAULT '[]';
"#,
    r#"
-- Links, flows and connect sessions live minutes: they are recreated, keyed by the SHA-256
-- of their ids, and the live ones are dropped. A link counts the flows it started; a flow
-- keeps the hashes of its OpenID Connect nonce and of the browser key that started it, and
-- whether its token waits for a confirmation code. Pending connections hold those tokens.
DROP TABLE links;
DROP TABLE flows;
DROP TABLE connect_sessions;
CREATE TABLE links (
    link_key      TEXT PRIMARY KEY,
    bot_id        TEXT NOT NULL REFERENCES bots(bot_id),
    alias         TEXT NOT NULL,
    user_id       TEXT,
    expires_at    INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    flows_started INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX links_expiry ON links(expires_at);
CREATE TABLE flows (
    state_hash      TEXT PRIMARY KEY,
    link_key        TEXT NOT NULL,
    bot_id          TEXT NOT NULL REFERENCES bots(bot_id),
    alias           TEXT NOT NULL,
    provider        TEXT NOT NULL,
    user_id         TEXT,
    sealed_verifier TEXT,
    redirect_uri    TEXT NOT NULL,
    expires_at      INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    scopes          TEXT NOT NULL,
    nonce_hash      TEXT,
    browser_hash    TEXT NOT NULL,
    confirm         TEXT NOT NULL
);
CREATE INDEX flows_expiry ON flows(expires_at);
CREATE TABLE connect_sessions (
    session_key TEXT PRIMARY KEY,
    bot_id      TEXT NOT NULL REFERENCES bots(bot_id),
    expires_at  INTEGER NOT NULL
);
ALTER TABLE bots ADD COLUMN confirm_url TEXT;
CREATE TABLE pending_connections (
    bot_id           TEXT NOT NULL REFERENCES bots(bot_id),
    user_id          TEXT NOT NULL,
    pending_id       TEXT NOT NULL,
    confirm          TEXT NOT NULL,
    alias            TEXT NOT NULL,
    provider         TEXT NOT NULL,
    code_hash        TEXT NOT NULL,
    attempts         INTEGER NOT NULL,
    sealed           TEXT NOT NULL,
    token_expires_at INTEGER,
    expires_at       INTEGER NOT NULL,
    created_at       INTEGER NOT NULL,
    PRIMARY KEY (bot_id, user_id, pending_id)
);
CREATE INDEX pending_by_flow ON pending_connections(bot_id, code_hash);
"#,
    r#"
-- A link is claimed by the flow that exchanges its code, and removed with the token that
-- flow stores. A token remembers a refresh whose outcome was never learned. Every event is
-- written to the outbox with the change it reports and delivered from there.
ALTER TABLE links ADD COLUMN claimed_by TEXT;
ALTER TABLE links ADD COLUMN claimed_until INTEGER;
ALTER TABLE tokens ADD COLUMN refresh_unsettled TEXT;
CREATE TABLE outbox (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id      TEXT NOT NULL UNIQUE,
    detail_type   TEXT NOT NULL,
    occurred_at   TEXT NOT NULL,
    detail        TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    due_at        INTEGER NOT NULL DEFAULT 0,
    claimed_until INTEGER,
    file_done     INTEGER NOT NULL DEFAULT 0,
    webhook_done  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_due ON outbox(due_at);
"#,
    r#"
-- A link keeps the integration it was minted for, a flow the provider app (and its sealed
-- client secret) it was started with, so that each step of a sign-in reads one record.
ALTER TABLE links ADD COLUMN integration TEXT;
ALTER TABLE flows ADD COLUMN app TEXT;
ALTER TABLE flows ADD COLUMN sealed_client_secret TEXT;
"#,
    r#"
-- What the service does for a token on its own (its upkeep, as JSON) and when it next has
-- something to do (indexed); revocations that failed at a delete, retried until they work
-- or a day has passed. A flow keeps whether its integration keeps its token fresh.
ALTER TABLE tokens ADD COLUMN upkeep TEXT NOT NULL DEFAULT '{}';
ALTER TABLE tokens ADD COLUMN due_at INTEGER;
CREATE INDEX tokens_due ON tokens(due_at) WHERE due_at IS NOT NULL;
ALTER TABLE flows ADD COLUMN keep_fresh INTEGER NOT NULL DEFAULT 0;
CREATE TABLE revocations (
    bot_id     TEXT NOT NULL REFERENCES bots(bot_id),
    token_id   TEXT NOT NULL,
    alias      TEXT NOT NULL,
    provider   TEXT NOT NULL,
    user_id    TEXT NOT NULL,
    sealed     TEXT NOT NULL,
    attempts   INTEGER NOT NULL,
    due_at     INTEGER NOT NULL,
    give_up_at INTEGER NOT NULL,
    PRIMARY KEY (bot_id, token_id)
);
CREATE INDEX revocations_due ON revocations(due_at);
"#,
];

#[derive(Clone)]
pub struct SqliteStore {
    writer: Arc<Mutex<Writer>>,
    /// Empty for an in-memory database, whose reads go to the writer.
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: Arc<std::sync::atomic::AtomicUsize>,
    /// Woken when events were written, so the dispatcher delivers them at once.
    outbox_written: Arc<tokio::sync::Notify>,
}

/// What a write is worth keeping through a power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Durability {
    /// Synced before the write returns.
    Durable,
    /// Minutes-lived records: synced with the next durable write.
    Ephemeral,
}

struct Writer {
    conn: Connection,
    synchronous: Durability,
}

/// Reader connections: enough for the blocking pool to serve the API's reads side by side.
const READERS: usize = 4;

fn unavailable(e: impl std::error::Error + Send + Sync + 'static) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

fn corrupt(what: &str) -> rusqlite::Error {
    rusqlite::Error::InvalidColumnType(0, what.to_owned(), rusqlite::types::Type::Text)
}

fn owner_key(owner: &Owner) -> &str {
    owner.user_id().map_or("", UserId::as_str)
}

fn owner_from(user_id: Option<String>) -> rusqlite::Result<Owner> {
    match user_id.filter(|u| !u.is_empty()) {
        None => Ok(Owner::Bot),
        Some(u) => UserId::parse(&u)
            .map(Owner::User)
            .map_err(|_| corrupt("user_id")),
    }
}

fn parse<T, E>(f: impl FnOnce(&str) -> Result<T, E>, raw: &str, what: &str) -> rusqlite::Result<T> {
    f(raw).map_err(|_| corrupt(what))
}

/// A SQLite error as the ports name it: what may pass is "unavailable", the rest "corrupt".
fn store_error(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::InvalidColumnType(_, what, _) => {
            StoreError::Corrupt(format!("unexpected value in column {what}"))
        }
        // What may pass: a lock held too long, a full disk, an I/O error.
        rusqlite::Error::SqliteFailure(ref f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
                    | rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::SystemIoFailure
                    | rusqlite::ErrorCode::CannotOpen
                    | rusqlite::ErrorCode::OutOfMemory
            ) =>
        {
            unavailable(e)
        }
        // A database that does not look as this version wrote it.
        other => StoreError::Corrupt(format!("the database failed: {other}")),
    }
}

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(unavailable)?;
        let mut store = Self::init(conn)?;
        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let r = Connection::open_with_flags(
                path,
                rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(unavailable)?;
            r.busy_timeout(std::time::Duration::from_secs(5))
                .map_err(unavailable)?;
            readers.push(Mutex::new(r));
        }
        store.readers = Arc::new(readers);
        Ok(store)
    }

    pub fn in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory().map_err(unavailable)?)
    }

    fn init(mut conn: Connection) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(unavailable)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
        )
        .map_err(unavailable)?;
        migrate(&mut conn).map_err(unavailable)?;
        Ok(Self {
            writer: Arc::new(Mutex::new(Writer {
                conn,
                synchronous: Durability::Durable,
            })),
            readers: Arc::new(Vec::new()),
            next_reader: Arc::default(),
            outbox_written: Arc::new(tokio::sync::Notify::new()),
        })
    }

    /// Resolves when events were written since the last call (or once right away when some
    /// were written before anyone waited).
    pub async fn outbox_written(&self) {
        self.outbox_written.notified().await
    }

    fn signal_outbox(&self) {
        self.outbox_written.notify_one();
    }

    /// A durable write (or a read that must see the writer's own state).
    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.write(Durability::Durable, f).await
    }

    async fn write<T, F>(&self, durability: Durability, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        // On the blocking pool: even a write that does not wait for the disk may run a WAL
        // checkpoint, which does.
        let writer = Arc::clone(&self.writer);
        tokio::task::spawn_blocking(move || {
            let mut guard = writer
                .lock()
                .map_err(|_| StoreError::Corrupt("the connection lock was poisoned".into()))?;
            write_with(&mut guard, durability, f)
        })
        .await
        .map_err(unavailable)?
    }

    /// A read on one of the reader connections (the writer's for an in-memory database).
    /// The reads are point reads and single-partition queries of pages SQLite has cached:
    /// microseconds. When a reader is free the read runs right here, sparing the request two
    /// thread hops; when all are busy it waits for one on the blocking pool.
    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        if self.readers.is_empty() {
            return self.run(move |c| f(c)).await;
        }
        let start = self
            .next_reader
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let n = self.readers.len();
        if let Some(free) = (0..n).find_map(|i| self.readers[(start + i) % n].try_lock().ok()) {
            return f(&free).map_err(store_error);
        }
        let readers = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || {
            let n = readers.len();
            // A free reader if there is one, else wait for the next in turn.
            let guard = (0..n)
                .find_map(|i| readers[(start + i) % n].try_lock().ok())
                .map_or_else(|| readers[start % n].lock(), Ok)
                .map_err(|_| StoreError::Corrupt("the connection lock was poisoned".into()))?;
            f(&guard).map_err(store_error)
        })
        .await
        .map_err(unavailable)?
    }
}

/// Runs `f` on the writer at the sync level `durability` asks for.
fn write_with<T>(
    w: &mut Writer,
    durability: Durability,
    f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
) -> Result<T, StoreError> {
    if w.synchronous != durability {
        let level = match durability {
            Durability::Durable => "FULL",
            Durability::Ephemeral => "NORMAL",
        };
        w.conn
            .pragma_update(None, "synchronous", level)
            .map_err(store_error)?;
        w.synchronous = durability;
    }
    f(&mut w.conn).map_err(store_error)
}

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let current: usize = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current) {
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", i + 1)?;
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract;
    use crate::ports::Store;

    fn store() -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(&dir.path().join("db.sqlite3")).unwrap();
        (dir, Arc::new(s))
    }

    contract::store_contract_tests!(async { store() });

    #[tokio::test]
    async fn two_processes_share_one_file_and_migrations_run_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.sqlite3");
        let first = SqliteStore::open(&path).unwrap();
        let second = SqliteStore::open(&path).unwrap();
        let b = BotId::parse("acme").unwrap();
        assert!(first.create_bot(&b, "h", 1).await.unwrap());
        assert!(!second.create_bot(&b, "h", 1).await.unwrap());
        let version: usize = second
            .run(|c| c.query_row("PRAGMA user_version", [], |r| r.get(0)))
            .await
            .unwrap();
        assert_eq!(version, MIGRATIONS.len());
    }
}
