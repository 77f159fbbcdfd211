//! The embedded store: one SQLite file, schema migrations by `user_version`, one transaction
//! per state change. Blocking SQLite calls run on tokio's blocking pool.

use crate::domain::ids::{Alias, BotId, LinkId, ProviderName, TokenId, UserId};
use crate::domain::integrations::Integration;
use crate::domain::providers::ProviderApp;
use crate::domain::token::{ConnectSession, Flow, Link, Owner, TokenRecord, TokenStatus};
use crate::ports::{BotStore, FlowStore, ProviderStore, SaveOutcome, StoreError, TokenStore};
use async_trait::async_trait;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Each entry moves the schema one version up; applied in order, never edited once released.
const MIGRATIONS: &[&str] = &[r#"
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
"#];

#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

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

impl SqliteStore {
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(unavailable)?;
        Self::init(conn)
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
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn run<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let mut guard = conn
                .lock()
                .map_err(|_| StoreError::Corrupt("the connection lock was poisoned".into()))?;
            f(&mut guard).map_err(|e| match e {
                rusqlite::Error::InvalidColumnType(_, what, _) => {
                    StoreError::Corrupt(format!("unexpected value in column {what}"))
                }
                other => unavailable(other),
            })
        })
        .await
        .map_err(unavailable)?
    }
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

#[async_trait]
impl BotStore for SqliteStore {
    async fn create_bot(&self, bot: &BotId, key_hash: &str, now: i64) -> Result<bool, StoreError> {
        let (bot, key_hash) = (bot.to_string(), key_hash.to_owned());
        self.run(move |c| {
            let n = c.execute(
                "INSERT INTO bots (bot_id, key_hash, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
                params![bot, key_hash, now],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn set_bot_key(&self, bot: &BotId, key_hash: &str) -> Result<bool, StoreError> {
        let (bot, key_hash) = (bot.to_string(), key_hash.to_owned());
        self.run(move |c| {
            let n = c.execute(
                "UPDATE bots SET key_hash = ?2 WHERE bot_id = ?1",
                params![bot, key_hash],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn bot_key_hash(&self, bot: &BotId) -> Result<Option<String>, StoreError> {
        let bot = bot.to_string();
        self.run(move |c| {
            c.query_row("SELECT key_hash FROM bots WHERE bot_id = ?1", [bot], |r| {
                r.get(0)
            })
            .optional()
        })
        .await
    }

    async fn put_integrations(&self, bot: &BotId, list: &[Integration]) -> Result<(), StoreError> {
        let body = serde_json::to_string(list).map_err(unavailable)?;
        let bot = bot.to_string();
        self.run(move |c| {
            c.execute(
                "INSERT INTO integrations (bot_id, body) VALUES (?1, ?2)
                 ON CONFLICT (bot_id) DO UPDATE SET body = excluded.body",
                params![bot, body],
            )?;
            Ok(())
        })
        .await
    }

    async fn integrations(&self, bot: &BotId) -> Result<Vec<Integration>, StoreError> {
        let bot = bot.to_string();
        let body: Option<String> = self
            .run(move |c| {
                c.query_row(
                    "SELECT body FROM integrations WHERE bot_id = ?1",
                    [bot],
                    |r| r.get(0),
                )
                .optional()
            })
            .await?;
        match body {
            None => Ok(Vec::new()),
            Some(b) => serde_json::from_str(&b)
                .map_err(|_| StoreError::Corrupt("integrations of a bot".into())),
        }
    }
}

#[async_trait]
impl ProviderStore for SqliteStore {
    async fn put_provider(
        &self,
        app: &ProviderApp,
        sealed_secret: Option<&str>,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(app).map_err(unavailable)?;
        let (name, secret) = (app.name.to_string(), sealed_secret.map(str::to_owned));
        self.run(move |c| {
            c.execute(
                "INSERT INTO providers (name, app, sealed_secret) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET app = excluded.app, sealed_secret = excluded.sealed_secret",
                params![name, body, secret],
            )?;
            Ok(())
        })
        .await
    }

    async fn provider(
        &self,
        name: &ProviderName,
    ) -> Result<Option<(ProviderApp, Option<String>)>, StoreError> {
        let name = name.to_string();
        let row: Option<(String, Option<String>)> = self
            .run(move |c| {
                c.query_row(
                    "SELECT app, sealed_secret FROM providers WHERE name = ?1",
                    [name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
            })
            .await?;
        row.map(|(app, secret)| {
            serde_json::from_str(&app)
                .map(|app| (app, secret))
                .map_err(|_| StoreError::Corrupt("provider app".into()))
        })
        .transpose()
    }

    async fn providers(&self) -> Result<Vec<ProviderApp>, StoreError> {
        let rows: Vec<String> = self
            .run(|c| {
                let mut stmt = c.prepare("SELECT app FROM providers ORDER BY name")?;
                let rows = stmt.query_map([], |r| r.get(0))?;
                rows.collect()
            })
            .await?;
        rows.iter()
            .map(|a| {
                serde_json::from_str(a).map_err(|_| StoreError::Corrupt("provider app".into()))
            })
            .collect()
    }
}

fn link_from(r: &Row<'_>) -> rusqlite::Result<Link> {
    Ok(Link {
        link_id: parse(LinkId::parse, &r.get::<_, String>(0)?, "link_id")?,
        bot_id: parse(BotId::parse, &r.get::<_, String>(1)?, "bot_id")?,
        alias: parse(Alias::parse, &r.get::<_, String>(2)?, "alias")?,
        owner: owner_from(r.get(3)?)?,
        expires_at: r.get(4)?,
        created_at: r.get(5)?,
    })
}

fn flow_from(r: &Row<'_>) -> rusqlite::Result<Flow> {
    Ok(Flow {
        state_hash: r.get(0)?,
        link_id: parse(LinkId::parse, &r.get::<_, String>(1)?, "link_id")?,
        bot_id: parse(BotId::parse, &r.get::<_, String>(2)?, "bot_id")?,
        alias: parse(Alias::parse, &r.get::<_, String>(3)?, "alias")?,
        provider: parse(ProviderName::parse, &r.get::<_, String>(4)?, "provider")?,
        owner: owner_from(r.get(5)?)?,
        sealed_verifier: r.get(6)?,
        redirect_uri: r.get(7)?,
        expires_at: r.get(8)?,
        created_at: r.get(9)?,
    })
}

#[async_trait]
impl FlowStore for SqliteStore {
    async fn put_link(&self, link: &Link) -> Result<(), StoreError> {
        let l = link.clone();
        self.run(move |c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM links WHERE expires_at < ?1", [l.created_at])?;
            tx.execute(
                "INSERT INTO links (link_id, bot_id, alias, user_id, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![l.link_id.as_str(), l.bot_id.as_str(), l.alias.as_str(), l.owner.user_id().map(UserId::as_str), l.expires_at, l.created_at],
            )?;
            tx.commit()
        })
        .await
    }

    async fn link(&self, id: &LinkId) -> Result<Option<Link>, StoreError> {
        let id = id.to_string();
        self.run(move |c| {
            c.query_row(
                "SELECT link_id, bot_id, alias, user_id, expires_at, created_at FROM links WHERE link_id = ?1",
                [id],
                link_from,
            )
            .optional()
        })
        .await
    }

    async fn delete_link(&self, id: &LinkId) -> Result<(), StoreError> {
        let id = id.to_string();
        self.run(move |c| {
            c.execute("DELETE FROM links WHERE link_id = ?1", [id])
                .map(|_| ())
        })
        .await
    }

    async fn put_flow(&self, flow: &Flow) -> Result<(), StoreError> {
        let f = flow.clone();
        self.run(move |c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM flows WHERE expires_at < ?1", [f.created_at])?;
            tx.execute(
                "INSERT INTO flows (state_hash, link_id, bot_id, alias, provider, user_id, sealed_verifier, redirect_uri, expires_at, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![f.state_hash, f.link_id.as_str(), f.bot_id.as_str(), f.alias.as_str(), f.provider.as_str(),
                        f.owner.user_id().map(UserId::as_str), f.sealed_verifier, f.redirect_uri, f.expires_at, f.created_at],
            )?;
            tx.commit()
        })
        .await
    }

    async fn take_flow(&self, bot: &BotId, state_hash: &str) -> Result<Option<Flow>, StoreError> {
        let (bot, h) = (bot.to_string(), state_hash.to_owned());
        self.run(move |c| {
            c.query_row(
                "DELETE FROM flows WHERE state_hash = ?1 AND bot_id = ?2
                 RETURNING state_hash, link_id, bot_id, alias, provider, user_id, sealed_verifier, redirect_uri, expires_at, created_at",
                [h, bot],
                flow_from,
            )
            .optional()
        })
        .await
    }

    async fn put_connect_session(&self, s: &ConnectSession) -> Result<(), StoreError> {
        let s = s.clone();
        self.run(move |c| {
            c.execute(
                "INSERT INTO connect_sessions (session_id, bot_id, expires_at) VALUES (?1, ?2, ?3)",
                params![s.session_id.as_str(), s.bot_id.as_str(), s.expires_at],
            )
            .map(|_| ())
        })
        .await
    }

    async fn connect_session(&self, id: &LinkId) -> Result<Option<ConnectSession>, StoreError> {
        let id = id.to_string();
        self.run(move |c| {
            c.query_row(
                "SELECT session_id, bot_id, expires_at FROM connect_sessions WHERE session_id = ?1",
                [id],
                |r| {
                    Ok(ConnectSession {
                        session_id: parse(LinkId::parse, &r.get::<_, String>(0)?, "session_id")?,
                        bot_id: parse(BotId::parse, &r.get::<_, String>(1)?, "bot_id")?,
                        expires_at: r.get(2)?,
                    })
                },
            )
            .optional()
        })
        .await
    }
}

const TOKEN_COLUMNS: &str =
    "bot_id, token_id, alias, provider, user_id, status, expires_at, sealed, version, created_at, updated_at";

fn token_from(r: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        bot_id: parse(BotId::parse, &r.get::<_, String>(0)?, "bot_id")?,
        token_id: parse(TokenId::parse, &r.get::<_, String>(1)?, "token_id")?,
        alias: parse(Alias::parse, &r.get::<_, String>(2)?, "alias")?,
        provider: parse(ProviderName::parse, &r.get::<_, String>(3)?, "provider")?,
        owner: owner_from(r.get(4)?)?,
        status: TokenStatus::parse(&r.get::<_, String>(5)?).ok_or_else(|| corrupt("status"))?,
        expires_at: r.get(6)?,
        sealed: r.get(7)?,
        version: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn token(&self, bot: &BotId, id: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        let (bot, id) = (bot.to_string(), id.to_string());
        self.run(move |c| {
            c.query_row(
                &format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE bot_id = ?1 AND token_id = ?2"),
                [bot, id],
                token_from,
            )
            .optional()
        })
        .await
    }

    async fn token_id_for(
        &self,
        bot: &BotId,
        owner: &Owner,
        alias: &Alias,
    ) -> Result<Option<TokenId>, StoreError> {
        let (bot, user, alias) = (
            bot.to_string(),
            owner_key(owner).to_owned(),
            alias.to_string(),
        );
        self.run(move |c| {
            let id: Option<String> = c
                .query_row(
                    "SELECT token_id FROM tokens WHERE bot_id = ?1 AND user_id = ?2 AND alias = ?3",
                    [bot, user, alias],
                    |r| r.get(0),
                )
                .optional()?;
            id.map(|i| parse(TokenId::parse, &i, "token_id"))
                .transpose()
        })
        .await
    }

    async fn tokens_of(
        &self,
        bot: &BotId,
        owner: &Owner,
    ) -> Result<BTreeMap<Alias, TokenId>, StoreError> {
        let (bot, user) = (bot.to_string(), owner_key(owner).to_owned());
        self.run(move |c| {
            let mut stmt = c.prepare(
                "SELECT alias, token_id FROM tokens WHERE bot_id = ?1 AND user_id = ?2 ORDER BY alias",
            )?;
            let rows = stmt.query_map([bot, user], |r| {
                Ok((
                    parse(Alias::parse, &r.get::<_, String>(0)?, "alias")?,
                    parse(TokenId::parse, &r.get::<_, String>(1)?, "token_id")?,
                ))
            })?;
            rows.collect()
        })
        .await
    }

    async fn save_connected(&self, record: &TokenRecord) -> Result<SaveOutcome, StoreError> {
        let t = record.clone();
        self.run(move |c| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let holder: Option<String> = tx
                .query_row(
                    "SELECT token_id FROM tokens WHERE bot_id = ?1 AND user_id = ?2 AND alias = ?3",
                    params![t.bot_id.as_str(), owner_key(&t.owner), t.alias.as_str()],
                    |r| r.get(0),
                )
                .optional()?;
            match holder {
                Some(existing) if existing != t.token_id.as_str() => {
                    return Ok(SaveOutcome::Taken(parse(TokenId::parse, &existing, "token_id")?));
                }
                Some(_) => {
                    tx.execute(
                        "UPDATE tokens SET provider = ?3, status = ?4, expires_at = ?5, sealed = ?6,
                                version = version + 1, lease_holder = NULL, lease_until = NULL, updated_at = ?7
                         WHERE bot_id = ?1 AND token_id = ?2",
                        params![t.bot_id.as_str(), t.token_id.as_str(), t.provider.as_str(), t.status.as_str(),
                                t.expires_at, t.sealed, t.updated_at],
                    )?;
                }
                None => {
                    tx.execute(
                        &format!("INSERT INTO tokens ({TOKEN_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"),
                        params![t.bot_id.as_str(), t.token_id.as_str(), t.alias.as_str(), t.provider.as_str(),
                                owner_key(&t.owner), t.status.as_str(), t.expires_at, t.sealed, t.version,
                                t.created_at, t.updated_at],
                    )?;
                }
            }
            tx.commit()?;
            Ok(SaveOutcome::Saved)
        })
        .await
    }

    async fn delete_token(
        &self,
        bot: &BotId,
        id: &TokenId,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let (bot, id) = (bot.to_string(), id.to_string());
        self.run(move |c| {
            c.query_row(
                &format!("DELETE FROM tokens WHERE bot_id = ?1 AND token_id = ?2 RETURNING {TOKEN_COLUMNS}"),
                [bot, id],
                token_from,
            )
            .optional()
        })
        .await
    }

    async fn acquire_lease(
        &self,
        bot: &BotId,
        id: &TokenId,
        holder: &str,
        until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (bot, id, holder) = (bot.to_string(), id.to_string(), holder.to_owned());
        self.run(move |c| {
            let n = c.execute(
                "UPDATE tokens SET lease_holder = ?3, lease_until = ?4
                 WHERE bot_id = ?1 AND token_id = ?2 AND (lease_until IS NULL OR lease_until <= ?5)",
                params![bot, id, holder, until, now],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn commit_refresh(
        &self,
        t: &TokenRecord,
        expected_version: i64,
        holder: &str,
    ) -> Result<bool, StoreError> {
        let (t, holder) = (t.clone(), holder.to_owned());
        self.run(move |c| {
            let n = c.execute(
                "UPDATE tokens SET status = ?3, expires_at = ?4, sealed = ?5, version = version + 1,
                        lease_holder = NULL, lease_until = NULL, updated_at = ?6
                 WHERE bot_id = ?1 AND token_id = ?2 AND version = ?7 AND lease_holder = ?8",
                params![t.bot_id.as_str(), t.token_id.as_str(), t.status.as_str(), t.expires_at, t.sealed,
                        t.updated_at, expected_version, holder],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn release_lease(
        &self,
        bot: &BotId,
        id: &TokenId,
        holder: &str,
    ) -> Result<(), StoreError> {
        let (bot, id, holder) = (bot.to_string(), id.to_string(), holder.to_owned());
        self.run(move |c| {
            c.execute(
                "UPDATE tokens SET lease_holder = NULL, lease_until = NULL
                 WHERE bot_id = ?1 AND token_id = ?2 AND lease_holder = ?3",
                params![bot, id, holder],
            )
            .map(|_| ())
        })
        .await
    }
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

    #[tokio::test]
    async fn bots_and_integrations() {
        let (_d, s) = store();
        contract::store_bots_and_integrations(s).await;
    }

    #[tokio::test]
    async fn providers() {
        let (_d, s) = store();
        contract::store_providers(s).await;
    }

    #[tokio::test]
    async fn links_and_flows() {
        let (_d, s) = store();
        contract::store_links_and_flows(s).await;
    }

    #[tokio::test]
    async fn tokens_are_isolated() {
        let (_d, s) = store();
        contract::store_tokens_are_isolated_per_bot_and_owner(s).await;
    }

    #[tokio::test]
    async fn refresh_lease() {
        let (_d, s) = store();
        contract::store_refresh_lease_and_fenced_commit(s).await;
    }

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
