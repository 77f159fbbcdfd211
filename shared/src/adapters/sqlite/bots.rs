//! Bots, their integrations files, and provider apps.

use super::*;

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
        self.read(move |c| {
            c.query_row("SELECT key_hash FROM bots WHERE bot_id = ?1", [bot], |r| {
                r.get(0)
            })
            .optional()
        })
        .await
    }

    async fn set_confirm_url(&self, bot: &BotId, url: Option<&str>) -> Result<bool, StoreError> {
        let (bot, url) = (bot.to_string(), url.map(str::to_owned));
        self.run(move |c| {
            c.execute(
                "UPDATE bots SET confirm_url = ?2 WHERE bot_id = ?1",
                params![bot, url],
            )
            .map(|n| n == 1)
        })
        .await
    }

    async fn confirm_url(&self, bot: &BotId) -> Result<Option<String>, StoreError> {
        let bot = bot.to_string();
        self.read(move |c| {
            c.query_row(
                "SELECT confirm_url FROM bots WHERE bot_id = ?1",
                [bot],
                |r| r.get::<_, Option<String>>(0),
            )
            .optional()
            .map(Option::flatten)
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
            .read(move |c| {
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
        sealed_secret: Option<&Sealed>,
    ) -> Result<(), StoreError> {
        let body = serde_json::to_string(app).map_err(unavailable)?;
        let (name, secret) = (app.name.to_string(), sealed_secret.cloned());
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
    ) -> Result<Option<(ProviderApp, Option<Sealed>)>, StoreError> {
        let name = name.to_string();
        let row: Option<(String, Option<Sealed>)> = self
            .read(move |c| {
                c.prepare_cached("SELECT app, sealed_secret FROM providers WHERE name = ?1")?
                    .query_row([name], |r| Ok((r.get(0)?, r.get(1)?)))
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
            .read(|c| {
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
