//! Links, flows and connect sessions, keyed by their bot and the SHA-256 of their ids.

use super::*;
use crate::domain::integrations::Confirm;

fn pending_prefix(user: &UserId) -> String {
    format!("PENDING#{}#", URL_SAFE_NO_PAD.encode(user.as_str()))
}

/// A JSON string attribute, `None` when absent.
fn json_attribute<T: serde::de::DeserializeOwned>(
    item: &Item,
    name: &str,
) -> Result<Option<T>, StoreError> {
    opt_s(item, name)
        .map(|text| serde_json::from_str(&text).map_err(|_| corrupt(name)))
        .transpose()
}

/// The key of a waiting sign-in: by user for `confirm: code`, by flow for `confirm: redirect`.
pub(super) fn key_of_pending(p: &PendingConnection) -> Item {
    match p.confirm {
        Confirm::Redirect => flow_pending_key(&p.bot_id, &p.code_hash),
        _ => pending_key(&p.bot_id, &p.user_id, &p.pending_id),
    }
}

fn pending_key(bot: &BotId, user: &UserId, id: &str) -> Item {
    key(bot_pk(bot), format!("{}{id}", pending_prefix(user)))
}

/// Where a `confirm: redirect` sign-in waits: found by its flow, whoever asks.
fn flow_pending_key(bot: &BotId, flow_hash: &str) -> Item {
    key(bot_pk(bot), format!("FLOWPENDING#{flow_hash}"))
}

fn pending_of(item: &Item, bot: &BotId, user: &UserId) -> Result<PendingConnection, StoreError> {
    Ok(PendingConnection {
        pending_id: get_s(item, "pending_id")?.to_owned(),
        bot_id: bot.clone(),
        user_id: user.clone(),
        confirm: match opt_s(item, "confirm").as_deref() {
            None | Some("code") => Confirm::Code,
            Some("redirect") => Confirm::Redirect,
            Some(_) => return Err(corrupt("pending confirm")),
        },
        alias: parsed(Alias::parse, item, "alias")?,
        provider: parsed(ProviderName::parse, item, "provider")?,
        code_hash: get_s(item, "code_hash")?.to_owned(),
        attempts: get_n(item, "attempts")?,
        sealed: Sealed::from_stored(get_s(item, "sealed")?.to_owned()),
        token_expires_at: opt_n(item, "token_expires_at")?,
        expires_at: get_n(item, "expires_at")?,
        created_at: get_n(item, "created_at")?,
    })
}

#[async_trait]
impl FlowStore for DynamoStore {
    async fn put_link(&self, link: &Link) -> Result<(), StoreError> {
        let mut item = key(bot_pk(&link.bot_id), format!("LINK#{}", link.link_id.key()));
        item.insert("alias".into(), s(link.alias.as_str()));
        put_owner(&mut item, &link.owner);
        item.insert("expires_at".into(), n(link.expires_at));
        item.insert("created_at".into(), n(link.created_at));
        item.insert(TTL.into(), n(link.expires_at));
        if let Some(i) = &link.integration {
            item.insert(
                "integration".into(),
                s(serde_json::to_string(i).map_err(unavailable)?),
            );
        }
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
            integration: json_attribute(&item, "integration")?,
        }))
    }

    async fn claim_link(
        &self,
        bot: &BotId,
        link_key: &str,
        claimant: &str,
        until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.conditional_update(
            key(bot_pk(bot), format!("LINK#{link_key}")),
            "SET claimed_by = :c, claimed_until = :until",
            "attribute_exists(pk) AND (attribute_not_exists(claimed_until) OR claimed_until <= :now)",
            vec![(":c", s(claimant)), (":until", n(until)), (":now", n(now))],
        )
        .await
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
        match f.confirm {
            Confirm::None => {}
            Confirm::Code => {
                item.insert("confirm".into(), s("code"));
            }
            Confirm::Redirect => {
                item.insert("confirm".into(), s("redirect"));
            }
        }
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
        if let Some(app) = &f.app {
            item.insert(
                "app".into(),
                s(serde_json::to_string(app).map_err(unavailable)?),
            );
        }
        if let Some(secret) = &f.sealed_client_secret {
            item.insert("sealed_client_secret".into(), s(secret.as_str()));
        }
        if f.keep_fresh {
            item.insert("keep_fresh".into(), AttributeValue::Bool(true));
        }
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
            confirm: match opt_s(&item, "confirm").as_deref() {
                None => Confirm::None,
                Some("code") => Confirm::Code,
                Some("redirect") => Confirm::Redirect,
                Some(_) => return Err(corrupt("flow confirm")),
            },
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
            app: json_attribute(&item, "app")?,
            sealed_client_secret: opt_s(&item, "sealed_client_secret").map(Sealed::from_stored),
            keep_fresh: matches!(item.get("keep_fresh"), Some(AttributeValue::Bool(true))),
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

    async fn put_pending(
        &self,
        p: &PendingConnection,
        link_key: &str,
        claimant: &str,
    ) -> Result<bool, StoreError> {
        let mut item = match p.confirm {
            Confirm::Redirect => {
                let mut item = flow_pending_key(&p.bot_id, &p.code_hash);
                item.insert("confirm".into(), s("redirect"));
                item.insert("user_id".into(), s(p.user_id.as_str()));
                item
            }
            _ => pending_key(&p.bot_id, &p.user_id, &p.pending_id),
        };
        item.insert("pending_id".into(), s(p.pending_id.as_str()));
        item.insert("alias".into(), s(p.alias.as_str()));
        item.insert("provider".into(), s(p.provider.as_str()));
        item.insert("code_hash".into(), s(p.code_hash.as_str()));
        item.insert("attempts".into(), n(p.attempts));
        item.insert("sealed".into(), s(p.sealed.as_str()));
        if let Some(at) = p.token_expires_at {
            item.insert("token_expires_at".into(), n(at));
        }
        item.insert("expires_at".into(), n(p.expires_at));
        item.insert("created_at".into(), n(p.created_at));
        // Kept a day past its expiry, so that the service can still revoke its grant.
        item.insert(TTL.into(), n(p.expires_at + 86_400));
        let put = TransactWriteItem::builder()
            .put(
                Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .build()
                    .map_err(unavailable)?,
            )
            .build();
        let spend = self.spend_item(
            &p.bot_id,
            Spend::Link {
                key: link_key,
                claimant,
            },
        )?;
        Ok(self.transact(vec![spend, put]).await?.is_ok())
    }

    async fn pendings_of(
        &self,
        bot: &BotId,
        user: &UserId,
    ) -> Result<Vec<PendingConnection>, StoreError> {
        self.query_prefix(bot_pk(bot), &pending_prefix(user))
            .await?
            .iter()
            .map(|item| pending_of(item, bot, user))
            .collect()
    }

    async fn drop_pending(
        &self,
        p: &PendingConnection,
        events: &[Event],
    ) -> Result<bool, StoreError> {
        let mut items = vec![self.spend_item(&p.bot_id, Spend::Pending(p))?];
        items.extend(self.outbox_puts(events)?);
        Ok(self.transact(items).await?.is_ok())
    }

    async fn pending_by_flow(
        &self,
        bot: &BotId,
        flow_hash: &str,
    ) -> Result<Option<PendingConnection>, StoreError> {
        let Some(item) = self.get(flow_pending_key(bot, flow_hash)).await? else {
            return Ok(None);
        };
        let user = parsed(UserId::parse, &item, "user_id")?;
        pending_of(&item, bot, &user).map(Some)
    }

    async fn count_wrong_code(
        &self,
        bot: &BotId,
        user: &UserId,
        pending_id: &str,
    ) -> Result<Option<i64>, StoreError> {
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(pending_key(bot, user, pending_id)))
            .update_expression("ADD attempts :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match res {
            Ok(out) => out.attributes.map(|a| get_n(&a, "attempts")).transpose(),
            Err(e) if is_conditional(&e) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }
}

impl DynamoStore {
    /// The delete of what a connection uses up, conditioned on it still being the
    /// connection's: first in every transaction that spends, so a cancellation code at index
    /// 0 means "spent".
    pub(super) fn spend_item(
        &self,
        bot: &BotId,
        spend: Spend<'_>,
    ) -> Result<TransactWriteItem, StoreError> {
        let delete = match spend {
            Spend::Link {
                key: link_key,
                claimant,
            } => Delete::builder()
                .set_key(Some(key(bot_pk(bot), format!("LINK#{link_key}"))))
                .condition_expression("claimed_by = :c")
                .expression_attribute_values(":c", s(claimant)),
            Spend::Pending(p) => Delete::builder()
                .set_key(Some(key_of_pending(p)))
                .condition_expression("attribute_exists(pk)"),
        };
        Ok(TransactWriteItem::builder()
            .delete(
                delete
                    .table_name(&self.table)
                    .build()
                    .map_err(unavailable)?,
            )
            .build())
    }
}
