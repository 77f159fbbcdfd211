//! The store on DynamoDB: one table, partition key `pk`, sort key `sk`, both strings.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | bot (key hash) | `BOT#{bot}` | `BOT` |
//! | integrations file | `BOT#{bot}` | `INTEGRATIONS` |
//! | link | `BOT#{bot}` | `LINK#{sha256(link id)}` |
//! | flow | `BOT#{bot}` | `FLOW#{sha256(state)}` |
//! | connect-page session | `BOT#{bot}` | `CONNECT#{sha256(session id)}` |
//! | pending connection (`confirm: code`) | `BOT#{bot}` | `PENDING#{base64url user id}#{pending id}` |
//! | token | `BOT#{bot}` | `TOKEN#{token id}` |
//! | revocation still to be done for a deleted token | `BOT#{bot}` | `REVOKE#{token id}` |
//! | owner index: one token per owner and alias | `BOT#{bot}` | `OWNER#{bot, or user:<base64url user id>}#{alias}` |
//! | provider app (operator-wide) | `PROVIDERS` | `PROVIDER#{name}` |
//! | outbox event, written with the change it reports | `OUTBOX#{event id}` | `EVENT` |
//!
//! The table itself is declared in `template.yaml`; the tests create it in moto from there.
//! Tokens with something due for the maintenance job, and pending revocations, carry `due`
//! (`TOKEN#n` or `REVOCATION#n`, n one of 8 shards by token id) and `due_at`: the keys of the sparse index `due`, which the job
//! queries. Every request path reads by key or queries one partition; nothing scans. Links, flows and
//! connect sessions carry a `ttl` attribute (unix seconds) for DynamoDB's expiry, and their
//! expiry is also checked in code, since TTL deletes late. Outbox items reach EventBridge
//! through the table's stream and the `event-relay` function, which gives each delivered one
//! a `ttl`.

use crate::crypto::Sealed;
use crate::domain::events::Event;
use crate::domain::ids::{Alias, BotId, LinkId, ProviderName, TokenId, UserId};
use crate::domain::integrations::Integration;
use crate::domain::providers::ProviderApp;
use crate::domain::token::{
    ConnectSession, Flow, Link, Owner, PendingConnection, PendingRevocation, TokenRecord,
    TokenStatus,
};
use crate::ports::{
    BotStore, Connection, FlowStore, ProviderStore, SaveOutcome, Spend, StoreError, TokenStore,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, Put, ReturnValue, TransactWriteItem, Update,
};
use aws_sdk_dynamodb::Client;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use std::collections::{BTreeMap, HashMap};

mod bots;
mod flows;
mod outbox;
mod tokens;

pub use outbox::{outbox_event_of, DELIVERED_TTL_SECS, OUTBOX_PREFIX};

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

/// Why a transaction was cancelled, one code per item in the order sent (`"None"` for items
/// that were fine); `None` when it failed for another reason.
fn cancellation_codes<R>(
    e: &SdkError<aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError, R>,
) -> Option<Vec<String>> {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
    match e.as_service_error()? {
        TransactWriteItemsError::TransactionCanceledException(c) => Some(
            c.cancellation_reasons()
                .iter()
                .map(|r| r.code().unwrap_or("None").to_owned())
                .collect(),
        ),
        _ => None,
    }
}

impl DynamoStore {
    /// Runs a transaction; `Ok(Err(codes))` when a condition (or a conflicting transaction)
    /// cancelled it, with the cancellation code of each item.
    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Result<(), Vec<String>>, StoreError> {
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(Ok(())),
            Err(e) => match cancellation_codes(&e) {
                Some(codes) => Ok(Err(codes)),
                None if is_conditional(&e) => Ok(Err(Vec::new())),
                None => Err(unavailable(e)),
            },
        }
    }

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
