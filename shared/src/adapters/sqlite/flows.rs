//! Links, flows and connect sessions, stored under the SHA-256 of their ids.

use super::*;
use crate::domain::integrations::Confirm;

const FLOW_COLUMNS: &str = "state_hash, link_key, bot_id, alias, provider, user_id, sealed_verifier, redirect_uri, expires_at, created_at, scopes, nonce_hash, browser_hash, confirm, app, sealed_client_secret, keep_fresh";

static INSERT_FLOW: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("INSERT INTO flows ({FLOW_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)")
});

/// A JSON column, `None` when NULL.
fn json_column<T: serde::de::DeserializeOwned>(
    r: &Row<'_>,
    i: usize,
    what: &str,
) -> rusqlite::Result<Option<T>> {
    r.get::<_, Option<String>>(i)?
        .map(|text| serde_json::from_str(&text).map_err(|_| corrupt(what)))
        .transpose()
}

const PENDING_COLUMNS: &str = "pending_id, bot_id, user_id, alias, provider, code_hash, attempts, sealed, token_expires_at, expires_at, created_at, confirm";

fn confirm_text(c: Confirm) -> &'static str {
    match c {
        Confirm::None => "none",
        Confirm::Code => "code",
        Confirm::Redirect => "redirect",
    }
}

fn confirm_from(raw: &str) -> rusqlite::Result<Confirm> {
    match raw {
        "none" => Ok(Confirm::None),
        "code" => Ok(Confirm::Code),
        "redirect" => Ok(Confirm::Redirect),
        _ => Err(corrupt("confirm")),
    }
}

fn pending_from(r: &Row<'_>) -> rusqlite::Result<PendingConnection> {
    Ok(PendingConnection {
        pending_id: r.get(0)?,
        bot_id: parse(BotId::parse, &r.get::<_, String>(1)?, "bot_id")?,
        user_id: parse(UserId::parse, &r.get::<_, String>(2)?, "user_id")?,
        alias: parse(Alias::parse, &r.get::<_, String>(3)?, "alias")?,
        provider: parse(ProviderName::parse, &r.get::<_, String>(4)?, "provider")?,
        code_hash: r.get(5)?,
        attempts: r.get(6)?,
        sealed: r.get(7)?,
        token_expires_at: r.get(8)?,
        expires_at: r.get(9)?,
        created_at: r.get(10)?,
        confirm: confirm_from(&r.get::<_, String>(11)?)?,
    })
}

fn flow_from(r: &Row<'_>) -> rusqlite::Result<Flow> {
    Ok(Flow {
        state_hash: r.get(0)?,
        link_key: r.get(1)?,
        bot_id: parse(BotId::parse, &r.get::<_, String>(2)?, "bot_id")?,
        alias: parse(Alias::parse, &r.get::<_, String>(3)?, "alias")?,
        provider: parse(ProviderName::parse, &r.get::<_, String>(4)?, "provider")?,
        owner: owner_from(r.get(5)?)?,
        sealed_verifier: r.get(6)?,
        redirect_uri: r.get(7)?,
        expires_at: r.get(8)?,
        created_at: r.get(9)?,
        scopes: serde_json::from_str(&r.get::<_, String>(10)?).map_err(|_| corrupt("scopes"))?,
        nonce_hash: r.get(11)?,
        browser_hash: r.get(12)?,
        confirm: confirm_from(&r.get::<_, String>(13)?)?,
        app: json_column(r, 14, "app")?,
        sealed_client_secret: r.get(15)?,
        keep_fresh: r.get(16)?,
    })
}

#[async_trait]
impl FlowStore for SqliteStore {
    async fn put_link(&self, link: &Link) -> Result<(), StoreError> {
        let l = link.clone();
        let integration = l
            .integration
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(unavailable)?;
        self.write(Durability::Ephemeral, move |c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM links WHERE expires_at < ?1", [l.created_at])?;
            tx.execute(
                "INSERT INTO links (link_key, bot_id, alias, user_id, expires_at, created_at, integration) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![l.link_id.key(), l.bot_id.as_str(), l.alias.as_str(), l.owner.user_id().map(UserId::as_str), l.expires_at, l.created_at, integration],
            )?;
            tx.commit()
        })
        .await
    }

    async fn link(&self, id: &LinkId) -> Result<Option<Link>, StoreError> {
        let id = id.clone();
        self.read(move |c| {
            c.prepare_cached(
                "SELECT bot_id, alias, user_id, expires_at, created_at, integration FROM links WHERE link_key = ?1",
            )?
            .query_row(
                [id.key()],
                |r| {
                    Ok(Link {
                        link_id: id.clone(),
                        bot_id: parse(BotId::parse, &r.get::<_, String>(0)?, "bot_id")?,
                        alias: parse(Alias::parse, &r.get::<_, String>(1)?, "alias")?,
                        owner: owner_from(r.get(2)?)?,
                        expires_at: r.get(3)?,
                        created_at: r.get(4)?,
                        integration: json_column(r, 5, "integration")?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn claim_link(
        &self,
        bot: &BotId,
        link_key: &str,
        claimant: &str,
        until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (bot, key, claimant) = (bot.to_string(), link_key.to_owned(), claimant.to_owned());
        self.write(Durability::Ephemeral, move |c| {
            c.execute(
                "UPDATE links SET claimed_by = ?3, claimed_until = ?4
                 WHERE link_key = ?1 AND bot_id = ?2 AND (claimed_until IS NULL OR claimed_until <= ?5)",
                params![key, bot, claimant, until, now],
            )
            .map(|n| n == 1)
        })
        .await
    }

    async fn start_flow(
        &self,
        link: &LinkId,
        flow: &Flow,
        max_flows: i64,
    ) -> Result<bool, StoreError> {
        let (key, f) = (link.key(), flow.clone());
        let scopes = serde_json::to_string(&f.scopes).map_err(unavailable)?;
        let app = f
            .app
            .as_ref()
            .map(serde_json::to_string)
            .transpose()
            .map_err(unavailable)?;
        self.write(Durability::Ephemeral, move |c| {
            let tx = c.transaction()?;
            let counted = tx
                .prepare_cached(
                    "UPDATE links SET flows_started = flows_started + 1 WHERE link_key = ?1 AND flows_started < ?2",
                )?
                .execute(params![key, max_flows])?;
            if counted == 0 {
                return Ok(false);
            }
            tx.prepare_cached("DELETE FROM flows WHERE expires_at < ?1")?
                .execute([f.created_at])?;
            tx.prepare_cached(&INSERT_FLOW)?.execute(
                params![f.state_hash, f.link_key, f.bot_id.as_str(), f.alias.as_str(), f.provider.as_str(),
                        f.owner.user_id().map(UserId::as_str), f.sealed_verifier, f.redirect_uri, f.expires_at, f.created_at,
                        scopes, f.nonce_hash, f.browser_hash, confirm_text(f.confirm), app, f.sealed_client_secret, f.keep_fresh],
            )?;
            tx.commit().map(|_| true)
        })
        .await
    }

    async fn take_flow(&self, bot: &BotId, state_hash: &str) -> Result<Option<Flow>, StoreError> {
        let (bot, h) = (bot.to_string(), state_hash.to_owned());
        self.write(Durability::Ephemeral, move |c| {
            c.query_row(
                &format!(
                    "DELETE FROM flows WHERE state_hash = ?1 AND bot_id = ?2 RETURNING {FLOW_COLUMNS}"
                ),
                [h, bot],
                flow_from,
            )
            .optional()
        })
        .await
    }

    async fn put_connect_session(&self, s: &ConnectSession) -> Result<(), StoreError> {
        let s = s.clone();
        self.write(Durability::Ephemeral, move |c| {
            c.execute(
                "INSERT INTO connect_sessions (session_key, bot_id, expires_at) VALUES (?1, ?2, ?3)",
                params![s.session_id.key(), s.bot_id.as_str(), s.expires_at],
            )
            .map(|_| ())
        })
        .await
    }

    async fn connect_session(&self, id: &LinkId) -> Result<Option<ConnectSession>, StoreError> {
        let id = id.clone();
        self.read(move |c| {
            c.query_row(
                "SELECT bot_id, expires_at FROM connect_sessions WHERE session_key = ?1",
                [id.key()],
                |r| {
                    Ok(ConnectSession {
                        session_id: id.clone(),
                        bot_id: parse(BotId::parse, &r.get::<_, String>(0)?, "bot_id")?,
                        expires_at: r.get(1)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn put_pending(
        &self,
        p: &PendingConnection,
        link_key: &str,
        claimant: &str,
    ) -> Result<bool, StoreError> {
        let (p, key, claimant) = (p.clone(), link_key.to_owned(), claimant.to_owned());
        self.run(move |c| {
            let tx = c.transaction()?;
            if !spend_link(&tx, p.bot_id.as_str(), &key, &claimant)? {
                return Ok(false);
            }
            tx.execute(
                "DELETE FROM pending_connections WHERE expires_at < ?1 - 86400",
                [p.created_at],
            )?;
            tx.execute(
                &format!("INSERT INTO pending_connections ({PENDING_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)"),
                params![p.pending_id, p.bot_id.as_str(), p.user_id.as_str(), p.alias.as_str(), p.provider.as_str(),
                        p.code_hash, p.attempts, p.sealed, p.token_expires_at, p.expires_at, p.created_at,
                        confirm_text(p.confirm)],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }

    async fn pendings_of(
        &self,
        bot: &BotId,
        user: &UserId,
    ) -> Result<Vec<PendingConnection>, StoreError> {
        let (bot, user) = (bot.to_string(), user.to_string());
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {PENDING_COLUMNS} FROM pending_connections WHERE bot_id = ?1 AND user_id = ?2 AND confirm = 'code' ORDER BY created_at"
            ))?;
            let rows = stmt.query_map([bot, user], pending_from)?;
            rows.collect()
        })
        .await
    }

    async fn drop_pending(
        &self,
        p: &PendingConnection,
        events: &[Event],
    ) -> Result<bool, StoreError> {
        let p = p.clone();
        self.change_with_events(events, move |tx| spend_pending(tx, &p))
            .await
    }

    async fn pending_by_flow(
        &self,
        bot: &BotId,
        flow_hash: &str,
    ) -> Result<Option<PendingConnection>, StoreError> {
        let (bot, h) = (bot.to_string(), flow_hash.to_owned());
        self.read(move |c| {
            c.query_row(
                &format!(
                    "SELECT {PENDING_COLUMNS} FROM pending_connections WHERE bot_id = ?1 AND code_hash = ?2 AND confirm = 'redirect'"
                ),
                [bot, h],
                pending_from,
            )
            .optional()
        })
        .await
    }

    async fn count_wrong_code(
        &self,
        bot: &BotId,
        user: &UserId,
        pending_id: &str,
    ) -> Result<Option<i64>, StoreError> {
        let (bot, user, id) = (bot.to_string(), user.to_string(), pending_id.to_owned());
        self.run(move |c| {
            c.query_row(
                "UPDATE pending_connections SET attempts = attempts + 1 WHERE bot_id = ?1 AND user_id = ?2 AND pending_id = ?3 RETURNING attempts",
                [bot, user, id],
                |r| r.get(0),
            )
            .optional()
        })
        .await
    }
}

/// Removes the link if `claimant` holds its claim; `false` when it does not.
pub(super) fn spend_link(
    tx: &rusqlite::Transaction<'_>,
    bot: &str,
    key: &str,
    claimant: &str,
) -> rusqlite::Result<bool> {
    tx.execute(
        "DELETE FROM links WHERE link_key = ?1 AND bot_id = ?2 AND claimed_by = ?3",
        [key, bot, claimant],
    )
    .map(|n| n == 1)
}

/// Removes a waiting sign-in; `false` when it is gone already.
pub(super) fn spend_pending(
    tx: &rusqlite::Transaction<'_>,
    p: &PendingConnection,
) -> rusqlite::Result<bool> {
    tx.execute(
        "DELETE FROM pending_connections WHERE bot_id = ?1 AND user_id = ?2 AND pending_id = ?3",
        [p.bot_id.as_str(), p.user_id.as_str(), p.pending_id.as_str()],
    )
    .map(|n| n == 1)
}
