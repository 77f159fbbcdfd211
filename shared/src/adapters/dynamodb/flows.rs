//! Links, flows and connect sessions, keyed by their bot and the SHA-256 of their ids.

use super::*;

#[async_trait]
impl FlowStore for DynamoStore {
    async fn put_link(&self, link: &Link) -> Result<(), StoreError> {
        let mut item = key(bot_pk(&link.bot_id), format!("LINK#{}", link.link_id.key()));
        item.insert("alias".into(), s(link.alias.as_str()));
        put_owner(&mut item, &link.owner);
        item.insert("expires_at".into(), n(link.expires_at));
        item.insert("created_at".into(), n(link.created_at));
        item.insert(TTL.into(), n(link.expires_at));
        self.put(item).await
    }

    async fn link(&self, id: &LinkId) -> Result<Option<Link>, StoreError> {
        let bot = id.bot();
        let Some(item) = self
            .get(key(bot_pk(&bot), format!("LINK#{}", id.key())))
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(Link {
            link_id: id.clone(),
            bot_id: bot,
            alias: parsed(Alias::parse, &item, "alias")?,
            owner: owner_of(&item)?,
            expires_at: get_n(&item, "expires_at")?,
            created_at: get_n(&item, "created_at")?,
        }))
    }

    async fn spend_link(&self, bot: &BotId, link_key: &str) -> Result<bool, StoreError> {
        // One delete answering the old item: of two racing callers, only one gets it.
        Ok(self
            .delete(key(bot_pk(bot), format!("LINK#{link_key}")))
            .await?
            .is_some())
    }

    async fn start_flow(
        &self,
        link: &LinkId,
        f: &Flow,
        max_flows: i64,
    ) -> Result<bool, StoreError> {
        // Counted first: a refused start writes nothing. A flow whose write fails after its
        // count costs the link one of its starts.
        let counted = self
            .conditional_update(
                key(bot_pk(&link.bot()), format!("LINK#{}", link.key())),
                "SET flows_started = if_not_exists(flows_started, :zero) + :one",
                "attribute_exists(pk) AND (attribute_not_exists(flows_started) OR flows_started < :max)",
                vec![(":zero", n(0)), (":one", n(1)), (":max", n(max_flows))],
            )
            .await?;
        if !counted {
            return Ok(false);
        }
        let mut item = key(bot_pk(&f.bot_id), format!("FLOW#{}", f.state_hash));
        item.insert("state_hash".into(), s(f.state_hash.as_str()));
        item.insert("link_key".into(), s(f.link_key.as_str()));
        item.insert("browser_hash".into(), s(f.browser_hash.as_str()));
        item.insert("alias".into(), s(f.alias.as_str()));
        item.insert("provider".into(), s(f.provider.as_str()));
        put_owner(&mut item, &f.owner);
        item.insert(
            "scopes".into(),
            AttributeValue::L(f.scopes.iter().map(|x| s(x.as_str())).collect()),
        );
        if let Some(h) = &f.nonce_hash {
            item.insert("nonce_hash".into(), s(h.as_str()));
        }
        if let Some(v) = &f.sealed_verifier {
            item.insert("sealed_verifier".into(), s(v.as_str()));
        }
        item.insert("redirect_uri".into(), s(f.redirect_uri.as_str()));
        item.insert("expires_at".into(), n(f.expires_at));
        item.insert("created_at".into(), n(f.created_at));
        item.insert(TTL.into(), n(f.expires_at));
        self.put(item).await.map(|()| true)
    }

    async fn take_flow(&self, bot: &BotId, state_hash: &str) -> Result<Option<Flow>, StoreError> {
        // One conditional delete: of two racing callbacks, only one gets the old item back.
        let Some(item) = self
            .delete(key(bot_pk(bot), format!("FLOW#{state_hash}")))
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(Flow {
            state_hash: get_s(&item, "state_hash")?.to_owned(),
            link_key: get_s(&item, "link_key")?.to_owned(),
            browser_hash: get_s(&item, "browser_hash")?.to_owned(),
            bot_id: bot.clone(),
            alias: parsed(Alias::parse, &item, "alias")?,
            provider: parsed(ProviderName::parse, &item, "provider")?,
            owner: owner_of(&item)?,
            scopes: match item.get("scopes") {
                Some(AttributeValue::L(list)) => list
                    .iter()
                    .map(|v| v.as_s().cloned())
                    .collect::<Result<_, _>>()
                    .map_err(|_| StoreError::Corrupt("flow scopes".into()))?,
                _ => Vec::new(),
            },
            nonce_hash: opt_s(&item, "nonce_hash"),
            sealed_verifier: opt_s(&item, "sealed_verifier").map(Sealed::from_stored),
            redirect_uri: get_s(&item, "redirect_uri")?.to_owned(),
            expires_at: get_n(&item, "expires_at")?,
            created_at: get_n(&item, "created_at")?,
        }))
    }

    async fn put_connect_session(&self, c: &ConnectSession) -> Result<(), StoreError> {
        let mut item = key(bot_pk(&c.bot_id), format!("CONNECT#{}", c.session_id.key()));
        item.insert("expires_at".into(), n(c.expires_at));
        item.insert(TTL.into(), n(c.expires_at));
        self.put(item).await
    }

    async fn connect_session(&self, id: &LinkId) -> Result<Option<ConnectSession>, StoreError> {
        let bot = id.bot();
        let Some(item) = self
            .get(key(bot_pk(&bot), format!("CONNECT#{}", id.key())))
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(ConnectSession {
            session_id: id.clone(),
            bot_id: bot,
            expires_at: get_n(&item, "expires_at")?,
        }))
    }
}
