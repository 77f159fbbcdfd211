//! The store on DynamoDB: one table, partition key `pk`, sort key `sk`, both strings.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | bot (key hash) | `BOT#{bot}` | `BOT` |
//! | integrations file | `BOT#{bot}` | `INTEGRATIONS` |
//! | link | `BOT#{bot}` | `LINK#{link id}` |
//! | flow | `BOT#{bot}` | `FLOW#{sha256(state)}` |
//! | connect-page session | `BOT#{bot}` | `CONNECT#{session id}` |
//! | token | `BOT#{bot}` | `TOKEN#{token id}` |
//! | owner index: one token per owner and alias | `BOT#{bot}` | `OWNER#{bot, or user:<base64url user id>}#{alias}` |
//! | provider app (operator-wide) | `PROVIDERS` | `PROVIDER#{name}` |
//!
//! The table itself is declared in `template.yaml`; the tests create it in moto from there.
//! Every request path reads by key or queries one partition; nothing scans. Links, flows and
//! connect sessions carry a `ttl` attribute (unix seconds) for DynamoDB's expiry, and their
//! expiry is also checked in code, since TTL deletes late.

use crate::domain::ids::{Alias, BotId, LinkId, ProviderName, TokenId, UserId};
use crate::domain::integrations::Integration;
use crate::domain::providers::ProviderApp;
use crate::domain::token::{ConnectSession, Flow, Link, Owner, TokenRecord, TokenStatus};
use crate::ports::{BotStore, FlowStore, ProviderStore, SaveOutcome, StoreError, TokenStore};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, ReturnValue, TransactWriteItem};
use aws_sdk_dynamodb::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::collections::{BTreeMap, HashMap};

/// The partition key attribute.
pub const PK: &str = "pk";
/// The sort key attribute.
pub const SK: &str = "sk";
/// The TTL attribute.
pub const TTL: &str = "ttl";

type Item = HashMap<String, AttributeValue>;

#[derive(Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
}

fn unavailable<E: std::error::Error + Send + Sync + 'static>(e: E) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn bot_pk(bot: &BotId) -> String {
    format!("BOT#{bot}")
}

fn owner_prefix(owner: &Owner) -> String {
    match owner {
        Owner::Bot => "OWNER#bot#".to_owned(),
        // User ids may hold any character; encoded, they cannot run into the alias.
        Owner::User(u) => format!("OWNER#user:{}#", URL_SAFE_NO_PAD.encode(u.as_str())),
    }
}

fn owner_sk(owner: &Owner, alias: &Alias) -> String {
    format!("{}{alias}", owner_prefix(owner))
}

fn key(pk: impl Into<String>, sk: impl Into<String>) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(format!("item attribute {what}"))
}

fn get_s<'a>(item: &'a Item, name: &str) -> Result<&'a str, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v),
        _ => Err(corrupt(name)),
    }
}

fn opt_s(item: &Item, name: &str) -> Option<String> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

fn get_n(item: &Item, name: &str) -> Result<i64, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| corrupt(name)),
        _ => Err(corrupt(name)),
    }
}

fn opt_n(item: &Item, name: &str) -> Result<Option<i64>, StoreError> {
    match item.get(name) {
        None | Some(AttributeValue::Null(_)) => Ok(None),
        Some(_) => get_n(item, name).map(Some),
    }
}

fn parsed<T, E>(
    f: impl FnOnce(&str) -> Result<T, E>,
    item: &Item,
    name: &str,
) -> Result<T, StoreError> {
    f(get_s(item, name)?).map_err(|_| corrupt(name))
}

fn owner_of(item: &Item) -> Result<Owner, StoreError> {
    match opt_s(item, "user_id").filter(|u| !u.is_empty()) {
        None => Ok(Owner::Bot),
        Some(u) => UserId::parse(&u)
            .map(Owner::User)
            .map_err(|_| corrupt("user_id")),
    }
}

fn put_owner(item: &mut Item, owner: &Owner) {
    item.insert(
        "user_id".into(),
        s(owner.user_id().map_or("", UserId::as_str)),
    );
}

fn is_conditional<E, R>(e: &SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    e.as_service_error()
        .and_then(|se| se.code())
        .is_some_and(|c| {
            c == "ConditionalCheckFailedException" || c == "TransactionCanceledException"
        })
}

fn token_item(t: &TokenRecord) -> Item {
    let mut item = key(bot_pk(&t.bot_id), format!("TOKEN#{}", t.token_id));
    item.insert("token_id".into(), s(t.token_id.as_str()));
    item.insert("alias".into(), s(t.alias.as_str()));
    item.insert("provider".into(), s(t.provider.as_str()));
    put_owner(&mut item, &t.owner);
    item.insert("status".into(), s(t.status.as_str()));
    if let Some(at) = t.expires_at {
        item.insert("expires_at".into(), n(at));
    }
    item.insert("sealed".into(), s(t.sealed.as_str()));
    item.insert("version".into(), n(t.version));
    item.insert("created_at".into(), n(t.created_at));
    item.insert("updated_at".into(), n(t.updated_at));
    item
}

fn token_from(bot: &BotId, item: &Item) -> Result<TokenRecord, StoreError> {
    Ok(TokenRecord {
        bot_id: bot.clone(),
        token_id: parsed(TokenId::parse, item, "token_id")?,
        alias: parsed(Alias::parse, item, "alias")?,
        provider: parsed(ProviderName::parse, item, "provider")?,
        owner: owner_of(item)?,
        status: TokenStatus::parse(get_s(item, "status")?).ok_or_else(|| corrupt("status"))?,
        expires_at: opt_n(item, "expires_at")?,
        sealed: get_s(item, "sealed")?.to_owned(),
        version: get_n(item, "version")?,
        created_at: get_n(item, "created_at")?,
        updated_at: get_n(item, "updated_at")?,
    })
}

impl DynamoStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }

    async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.item)
    }

    async fn put(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn delete(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(out.attributes)
    }

    /// Every item of one partition whose sort key starts with `prefix`, all pages.
    async fn query_prefix(&self, pk: String, prefix: &str) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", s(pk.as_str()))
                .expression_attribute_values(":prefix", s(prefix))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(unavailable)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// Runs a conditional update; `false` when the condition did not hold.
    async fn conditional_update(
        &self,
        key: Item,
        update: &str,
        condition: &str,
        values: Vec<(&str, AttributeValue)>,
    ) -> Result<bool, StoreError> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression(update)
            .condition_expression(condition);
        for (k, v) in values {
            req = req.expression_attribute_values(k, v);
        }
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }
}

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
        sealed_secret: Option<&str>,
    ) -> Result<(), StoreError> {
        let mut item = key("PROVIDERS", format!("PROVIDER#{}", app.name));
        item.insert(
            "app".into(),
            s(serde_json::to_string(app).map_err(unavailable)?),
        );
        if let Some(secret) = sealed_secret {
            item.insert("sealed_secret".into(), s(secret));
        }
        self.put(item).await
    }

    async fn provider(
        &self,
        name: &ProviderName,
    ) -> Result<Option<(ProviderApp, Option<String>)>, StoreError> {
        let Some(item) = self
            .get(key("PROVIDERS", format!("PROVIDER#{name}")))
            .await?
        else {
            return Ok(None);
        };
        let app = serde_json::from_str(get_s(&item, "app")?).map_err(|_| corrupt("app"))?;
        Ok(Some((app, opt_s(&item, "sealed_secret"))))
    }

    async fn providers(&self) -> Result<Vec<ProviderApp>, StoreError> {
        self.query_prefix("PROVIDERS".into(), "PROVIDER#")
            .await?
            .iter()
            .map(|i| serde_json::from_str(get_s(i, "app")?).map_err(|_| corrupt("app")))
            .collect()
    }
}

#[async_trait]
impl FlowStore for DynamoStore {
    async fn put_link(&self, link: &Link) -> Result<(), StoreError> {
        let mut item = key(bot_pk(&link.bot_id), format!("LINK#{}", link.link_id));
        item.insert("link_id".into(), s(link.link_id.as_str()));
        item.insert("alias".into(), s(link.alias.as_str()));
        put_owner(&mut item, &link.owner);
        item.insert("expires_at".into(), n(link.expires_at));
        item.insert("created_at".into(), n(link.created_at));
        item.insert(TTL.into(), n(link.expires_at));
        self.put(item).await
    }

    async fn link(&self, id: &LinkId) -> Result<Option<Link>, StoreError> {
        let bot = id.bot();
        let Some(item) = self.get(key(bot_pk(&bot), format!("LINK#{id}"))).await? else {
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

    async fn delete_link(&self, id: &LinkId) -> Result<(), StoreError> {
        self.delete(key(bot_pk(&id.bot()), format!("LINK#{id}")))
            .await
            .map(|_| ())
    }

    async fn put_flow(&self, f: &Flow) -> Result<(), StoreError> {
        let mut item = key(bot_pk(&f.bot_id), format!("FLOW#{}", f.state_hash));
        item.insert("state_hash".into(), s(f.state_hash.as_str()));
        item.insert("link_id".into(), s(f.link_id.as_str()));
        item.insert("alias".into(), s(f.alias.as_str()));
        item.insert("provider".into(), s(f.provider.as_str()));
        put_owner(&mut item, &f.owner);
        if let Some(v) = &f.sealed_verifier {
            item.insert("sealed_verifier".into(), s(v.as_str()));
        }
        item.insert("redirect_uri".into(), s(f.redirect_uri.as_str()));
        item.insert("expires_at".into(), n(f.expires_at));
        item.insert("created_at".into(), n(f.created_at));
        item.insert(TTL.into(), n(f.expires_at));
        self.put(item).await
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
            link_id: parsed(LinkId::parse, &item, "link_id")?,
            bot_id: bot.clone(),
            alias: parsed(Alias::parse, &item, "alias")?,
            provider: parsed(ProviderName::parse, &item, "provider")?,
            owner: owner_of(&item)?,
            sealed_verifier: opt_s(&item, "sealed_verifier"),
            redirect_uri: get_s(&item, "redirect_uri")?.to_owned(),
            expires_at: get_n(&item, "expires_at")?,
            created_at: get_n(&item, "created_at")?,
        }))
    }

    async fn put_connect_session(&self, c: &ConnectSession) -> Result<(), StoreError> {
        let mut item = key(bot_pk(&c.bot_id), format!("CONNECT#{}", c.session_id));
        item.insert("expires_at".into(), n(c.expires_at));
        item.insert(TTL.into(), n(c.expires_at));
        self.put(item).await
    }

    async fn connect_session(&self, id: &LinkId) -> Result<Option<ConnectSession>, StoreError> {
        let bot = id.bot();
        let Some(item) = self.get(key(bot_pk(&bot), format!("CONNECT#{id}"))).await? else {
            return Ok(None);
        };
        Ok(Some(ConnectSession {
            session_id: id.clone(),
            bot_id: bot,
            expires_at: get_n(&item, "expires_at")?,
        }))
    }
}

#[async_trait]
impl TokenStore for DynamoStore {
    async fn token(&self, bot: &BotId, id: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        self.get(key(bot_pk(bot), format!("TOKEN#{id}")))
            .await?
            .map(|i| token_from(bot, &i))
            .transpose()
    }

    async fn token_id_for(
        &self,
        bot: &BotId,
        owner: &Owner,
        alias: &Alias,
    ) -> Result<Option<TokenId>, StoreError> {
        self.get(key(bot_pk(bot), owner_sk(owner, alias)))
            .await?
            .map(|i| parsed(TokenId::parse, &i, "token_id"))
            .transpose()
    }

    async fn tokens_of(
        &self,
        bot: &BotId,
        owner: &Owner,
    ) -> Result<BTreeMap<Alias, TokenId>, StoreError> {
        self.query_prefix(bot_pk(bot), &owner_prefix(owner))
            .await?
            .iter()
            .map(|i| {
                Ok((
                    parsed(Alias::parse, i, "alias")?,
                    parsed(TokenId::parse, i, "token_id")?,
                ))
            })
            .collect()
    }

    async fn save_connected(&self, t: &TokenRecord) -> Result<SaveOutcome, StoreError> {
        let pk = bot_pk(&t.bot_id);
        let index_sk = owner_sk(&t.owner, &t.alias);
        for _ in 0..3 {
            match self.token_id_for(&t.bot_id, &t.owner, &t.alias).await? {
                Some(existing) if existing != t.token_id => {
                    return Ok(SaveOutcome::Taken(existing))
                }
                Some(_) => {
                    let mut values = vec![
                        (":provider", s(t.provider.as_str())),
                        (":status", s(t.status.as_str())),
                        (":sealed", s(t.sealed.as_str())),
                        (":updated", n(t.updated_at)),
                        (":one", n(1)),
                    ];
                    let expiry = match t.expires_at {
                        Some(at) => {
                            values.push((":expires", n(at)));
                            "SET expires_at = :expires, "
                        }
                        None => "SET ",
                    };
                    let remove = if t.expires_at.is_none() {
                        " REMOVE expires_at, lease_holder, lease_until"
                    } else {
                        " REMOVE lease_holder, lease_until"
                    };
                    let update = format!(
                        "{expiry}provider = :provider, #status = :status, sealed = :sealed, updated_at = :updated, version = version + :one{remove}"
                    );
                    let res = self
                        .client
                        .update_item()
                        .table_name(&self.table)
                        .set_key(Some(key(pk.as_str(), format!("TOKEN#{}", t.token_id))))
                        .update_expression(update)
                        .condition_expression("attribute_exists(pk)")
                        .expression_attribute_names("#status", "status")
                        .set_expression_attribute_values(Some(
                            values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                        ))
                        .send()
                        .await;
                    match res {
                        Ok(_) => return Ok(SaveOutcome::Saved),
                        Err(e) if is_conditional(&e) => continue,
                        Err(e) => return Err(unavailable(e)),
                    }
                }
                None => {
                    let mut index = key(pk.as_str(), index_sk.as_str());
                    index.insert("token_id".into(), s(t.token_id.as_str()));
                    index.insert("alias".into(), s(t.alias.as_str()));
                    let put = |item: Item| -> Result<TransactWriteItem, StoreError> {
                        Ok(TransactWriteItem::builder()
                            .put(
                                Put::builder()
                                    .table_name(&self.table)
                                    .set_item(Some(item))
                                    .condition_expression("attribute_not_exists(pk)")
                                    .build()
                                    .map_err(unavailable)?,
                            )
                            .build())
                    };
                    let res = self
                        .client
                        .transact_write_items()
                        .transact_items(put(index)?)
                        .transact_items(put(token_item(t))?)
                        .send()
                        .await;
                    match res {
                        Ok(_) => return Ok(SaveOutcome::Saved),
                        Err(e) if is_conditional(&e) => continue,
                        Err(e) => return Err(unavailable(e)),
                    }
                }
            }
        }
        Err(StoreError::Unavailable(
            "the token kept changing while it was saved".into(),
        ))
    }

    async fn delete_token(
        &self,
        bot: &BotId,
        id: &TokenId,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let Some(record) = self.token(bot, id).await? else {
            return Ok(None);
        };
        let pk = bot_pk(bot);
        let delete = |sk: String,
                      condition: &str,
                      values: Option<Item>|
         -> Result<TransactWriteItem, StoreError> {
            Ok(TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(key(pk.as_str(), sk)))
                        .condition_expression(condition)
                        .set_expression_attribute_values(values)
                        .build()
                        .map_err(unavailable)?,
                )
                .build())
        };
        let res = self
            .client
            .transact_write_items()
            .transact_items(delete(format!("TOKEN#{id}"), "attribute_exists(pk)", None)?)
            .transact_items(delete(
                owner_sk(&record.owner, &record.alias),
                "token_id = :id",
                Some(HashMap::from([(":id".to_owned(), s(id.as_str()))])),
            )?)
            .send()
            .await;
        match res {
            Ok(_) => Ok(Some(record)),
            // Deleted by someone else meanwhile.
            Err(e) if is_conditional(&e) => Ok(None),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn acquire_lease(
        &self,
        bot: &BotId,
        id: &TokenId,
        holder: &str,
        until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        self.conditional_update(
            key(bot_pk(bot), format!("TOKEN#{id}")),
            "SET lease_holder = :h, lease_until = :until",
            "attribute_exists(pk) AND (attribute_not_exists(lease_until) OR lease_until <= :now)",
            vec![(":h", s(holder)), (":until", n(until)), (":now", n(now))],
        )
        .await
    }

    async fn commit_refresh(
        &self,
        t: &TokenRecord,
        expected_version: i64,
        holder: &str,
    ) -> Result<bool, StoreError> {
        let mut values = vec![
            (":status", s(t.status.as_str())),
            (":sealed", s(t.sealed.as_str())),
            (":updated", n(t.updated_at)),
            (":one", n(1)),
            (":v", n(expected_version)),
            (":h", s(holder)),
        ];
        let update = match t.expires_at {
            Some(at) => {
                values.push((":expires", n(at)));
                "SET #status = :status, sealed = :sealed, updated_at = :updated, expires_at = :expires, version = version + :one REMOVE lease_holder, lease_until"
            }
            None => "SET #status = :status, sealed = :sealed, updated_at = :updated, version = version + :one REMOVE lease_holder, lease_until, expires_at",
        };
        let res = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(
                bot_pk(&t.bot_id),
                format!("TOKEN#{}", t.token_id),
            )))
            .update_expression(update)
            .condition_expression("version = :v AND lease_holder = :h")
            .expression_attribute_names("#status", "status")
            .set_expression_attribute_values(Some(
                values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            ))
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    async fn release_lease(
        &self,
        bot: &BotId,
        id: &TokenId,
        holder: &str,
    ) -> Result<(), StoreError> {
        self.conditional_update(
            key(bot_pk(bot), format!("TOKEN#{id}")),
            "REMOVE lease_holder, lease_until",
            "lease_holder = :h",
            vec![(":h", s(holder))],
        )
        .await
        .map(|_| ())
    }
}
