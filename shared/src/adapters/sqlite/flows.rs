//! Links, flows and connect sessions, stored under the SHA-256 of their ids.

use super::*;

const FLOW_COLUMNS: &str = "state_hash, link_key, bot_id, alias, provider, user_id, sealed_verifier, redirect_uri, expires_at, created_at, scopes, nonce_hash, browser_hash";

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
                "INSERT INTO links (link_key, bot_id, alias, user_id, expires_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![l.link_id.key(), l.bot_id.as_str(), l.alias.as_str(), l.owner.user_id().map(UserId::as_str), l.expires_at, l.created_at],
            )?;
            tx.commit()
        })
        .await
    }

    async fn link(&self, id: &LinkId) -> Result<Option<Link>, StoreError> {
        let id = id.clone();
        self.run(move |c| {
            c.query_row(
                "SELECT bot_id, alias, user_id, expires_at, created_at FROM links WHERE link_key = ?1",
                [id.key()],
                |r| {
                    Ok(Link {
                        link_id: id.clone(),
                        bot_id: parse(BotId::parse, &r.get::<_, String>(0)?, "bot_id")?,
                        alias: parse(Alias::parse, &r.get::<_, String>(1)?, "alias")?,
                        owner: owner_from(r.get(2)?)?,
                        expires_at: r.get(3)?,
                        created_at: r.get(4)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn spend_link(&self, bot: &BotId, link_key: &str) -> Result<bool, StoreError> {
        let (bot, key) = (bot.to_string(), link_key.to_owned());
        self.run(move |c| {
            c.execute(
                "DELETE FROM links WHERE link_key = ?1 AND bot_id = ?2",
                [key, bot],
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
        self.run(move |c| {
            let tx = c.transaction()?;
            let counted = tx.execute(
                "UPDATE links SET flows_started = flows_started + 1 WHERE link_key = ?1 AND flows_started < ?2",
                params![key, max_flows],
            )?;
            if counted == 0 {
                return Ok(false);
            }
            tx.execute("DELETE FROM flows WHERE expires_at < ?1", [f.created_at])?;
            tx.execute(
                &format!("INSERT INTO flows ({FLOW_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"),
                params![f.state_hash, f.link_key, f.bot_id.as_str(), f.alias.as_str(), f.provider.as_str(),
                        f.owner.user_id().map(UserId::as_str), f.sealed_verifier, f.redirect_uri, f.expires_at, f.created_at,
                        scopes, f.nonce_hash, f.browser_hash],
            )?;
            tx.commit().map(|_| true)
        })
        .await
    }

    async fn take_flow(&self, bot: &BotId, state_hash: &str) -> Result<Option<Flow>, StoreError> {
        let (bot, h) = (bot.to_string(), state_hash.to_owned());
        self.run(move |c| {
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
        self.run(move |c| {
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
        self.run(move |c| {
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
}
