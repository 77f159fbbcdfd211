//! Bots, their integrations files, and provider apps.

use super::*;

#[async_trait]
impl BotStore for DynamoStore {
    async fn create_bot(&self, bot: &BotId, key_hash: &str, now: i64) -> Result<bool, StoreError> {
        let mut item = key(bot_pk(bot), "BOT");
        item.insert("key_hash".into(), s(key_hash));
        item.insert("created_at".into(), n(now));
        let res = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn set_bot_key(&self, bot: &BotId, key_hash: &str) -> Result<bool, StoreError> {
        self.conditional_update(
            key(bot_pk(bot), "BOT"),
            "SET key_hash = :h",
            "attribute_exists(pk)",
            vec![(":h", s(key_hash))],
        )
        .await
    }

    async fn bot_key_hash(&self, bot: &BotId) -> Result<Option<String>, StoreError> {
        Ok(self
            .get(key(bot_pk(bot), "BOT"))
            .await?
            .and_then(|i| opt_s(&i, "key_hash")))
    }

    async fn set_confirm_url(&self, bot: &BotId, url: Option<&str>) -> Result<bool, StoreError> {
        match url {
            Some(u) => {
                self.conditional_update(
                    key(bot_pk(bot), "BOT"),
                    "SET confirm_url = :u",
                    "attribute_exists(pk)",
                    vec![(":u", s(u))],
                )
                .await
            }
            None => {
                self.conditional_update(
                    key(bot_pk(bot), "BOT"),
                    "REMOVE confirm_url",
                    "attribute_exists(pk)",
                    Vec::new(),
                )
                .await
            }
        }
    }

    async fn confirm_url(&self, bot: &BotId) -> Result<Option<String>, StoreError> {
        Ok(self
            .get(key(bot_pk(bot), "BOT"))
            .await?
            .and_then(|i| opt_s(&i, "confirm_url")))
    }

    async fn put_integrations(&self, bot: &BotId, list: &[Integration]) -> Result<(), StoreError> {
        let mut item = key(bot_pk(bot), "INTEGRATIONS");
        item.insert(
            "body".into(),
            s(serde_json::to_string(list).map_err(unavailable)?),
        );
        self.put(item).await
    }

    async fn integrations(&self, bot: &BotId) -> Result<Vec<Integration>, StoreError> {
        match self.get(key(bot_pk(bot), "INTEGRATIONS")).await? {
            None => Ok(Vec::new()),
            Some(i) => serde_json::from_str(get_s(&i, "body")?).map_err(|_| corrupt("body")),
        }
    }
}

#[async_trait]
impl ProviderStore for DynamoStore {
    async fn put_provider(
        &self,
        app: &ProviderApp,
        sealed_secret: Option<&Sealed>,
    ) -> Result<(), StoreError> {
        let mut item = key("PROVIDERS", format!("PROVIDER#{}", app.name));
        item.insert(
            "app".into(),
            s(serde_json::to_string(app).map_err(unavailable)?),
        );
        if let Some(secret) = sealed_secret {
            item.insert("sealed_secret".into(), s(secret.as_str()));
        }
        self.put(item).await
    }

    async fn provider(
        &self,
        name: &ProviderName,
    ) -> Result<Option<(ProviderApp, Option<Sealed>)>, StoreError> {
        let Some(item) = self
            .get(key("PROVIDERS", format!("PROVIDER#{name}")))
            .await?
        else {
            return Ok(None);
        };
        let app = serde_json::from_str(get_s(&item, "app")?).map_err(|_| corrupt("app"))?;
        Ok(Some((
            app,
            opt_s(&item, "sealed_secret").map(Sealed::from_stored),
        )))
    }

    async fn providers(&self) -> Result<Vec<ProviderApp>, StoreError> {
        self.query_prefix("PROVIDERS".into(), "PROVIDER#")
            .await?
            .iter()
            .map(|i| serde_json::from_str(get_s(i, "app")?).map_err(|_| corrupt("app")))
            .collect()
    }
}
