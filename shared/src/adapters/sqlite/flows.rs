//! Links, flows and connect sessions.

use super::*;

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
        scopes: serde_json::from_str(&r.get::<_, String>(10)?).map_err(|_| corrupt("scopes"))?,
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
        let scopes = serde_json::to_string(&f.scopes).map_err(unavailable)?;
        self.run(move |c| {
            let tx = c.transaction()?;
            tx.execute("DELETE FROM flows WHERE expires_at < ?1", [f.created_at])?;
            tx.execute(
                "INSERT INTO flows (state_hash, link_id, bot_id, alias, provider, user_id, sealed_verifier, redirect_uri, expires_at, created_at, scopes)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![f.state_hash, f.link_id.as_str(), f.bot_id.as_str(), f.alias.as_str(), f.provider.as_str(),
                        f.owner.user_id().map(UserId::as_str), f.sealed_verifier, f.redirect_uri, f.expires_at, f.created_at,
                        scopes],
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
                 RETURNING state_hash, link_id, bot_id, alias, provider, user_id, sealed_verifier, redirect_uri, expires_at, created_at, scopes",
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
