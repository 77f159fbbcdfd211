//! Tokens: the record, its owner index, the lease and the fenced commit.

use super::*;
use crate::domain::upkeep::Upkeep;

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
    item.insert("upkeep".into(), s(upkeep_text(&t.upkeep)));
    if let Some(at) = t.due_at {
        item.insert(DUE.into(), s(due_partition(DUE_TOKEN, &t.token_id)));
        item.insert("due_at".into(), n(at));
    }
    item
}

/// The due-time index and its partition key attribute.
const DUE: &str = "due";
/// The index's partitions for tokens, and for pending revocations: each kind spread over
/// [`DUE_SHARDS`] partition values (`TOKEN#3`), so that the index's writes (one with every
/// refresh) never meet one partition's throughput limit, which would throttle the table.
const DUE_TOKEN: &str = "TOKEN";
const DUE_REVOCATION: &str = "REVOCATION";
const DUE_SHARDS: u32 = 8;

/// The index partition of a record: its kind and a shard from its token id.
fn due_partition(kind: &str, token: &TokenId) -> String {
    let shard = token
        .as_str()
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
        % DUE_SHARDS;
    format!("{kind}#{shard}")
}

fn upkeep_text(u: &Upkeep) -> String {
    // Plain numbers, strings and booleans: serializing cannot fail.
    serde_json::to_string(u).unwrap_or_else(|_| "{}".to_owned())
}

/// The clauses and values that write a token's upkeep and its place in the due-time index.
fn upkeep_update(
    t: &TokenRecord,
    sets: &mut Vec<&'static str>,
    removes: &mut Vec<&'static str>,
    values: &mut Vec<(&'static str, AttributeValue)>,
) {
    sets.push("upkeep = :upkeep");
    values.push((":upkeep", s(upkeep_text(&t.upkeep))));
    match t.due_at {
        Some(at) => {
            sets.push("due = :due, due_at = :due_at");
            values.push((":due", s(due_partition(DUE_TOKEN, &t.token_id))));
            values.push((":due_at", n(at)));
        }
        None => removes.push("due, due_at"),
    }
}

fn update_expression(sets: &[&str], removes: &[&str]) -> String {
    let mut e = format!("SET {}", sets.join(", "));
    if !removes.is_empty() {
        e.push_str(" REMOVE ");
        e.push_str(&removes.join(", "));
    }
    e
}

fn revocation_item(r: &PendingRevocation) -> Item {
    let mut item = key(bot_pk(&r.bot_id), format!("REVOKE#{}", r.token_id));
    item.insert("token_id".into(), s(r.token_id.as_str()));
    item.insert("alias".into(), s(r.alias.as_str()));
    item.insert("provider".into(), s(r.provider.as_str()));
    put_owner(&mut item, &r.owner);
    item.insert("sealed".into(), s(r.sealed.as_str()));
    item.insert("attempts".into(), n(i64::from(r.attempts)));
    item.insert(DUE.into(), s(due_partition(DUE_REVOCATION, &r.token_id)));
    item.insert("due_at".into(), n(r.due_at));
    item.insert("give_up_at".into(), n(r.give_up_at));
    // A safety net: the job removes it long before.
    item.insert(TTL.into(), n(r.give_up_at + 86_400));
    item
}

fn revocation_from(item: &Item) -> Result<PendingRevocation, StoreError> {
    let pk = get_s(item, PK)?;
    let bot = pk
        .strip_prefix("BOT#")
        .and_then(|b| BotId::parse(b).ok())
        .ok_or_else(|| corrupt("revocation pk"))?;
    Ok(PendingRevocation {
        bot_id: bot,
        token_id: parsed(TokenId::parse, item, "token_id")?,
        alias: parsed(Alias::parse, item, "alias")?,
        provider: parsed(ProviderName::parse, item, "provider")?,
        owner: owner_of(item)?,
        sealed: Sealed::from_stored(get_s(item, "sealed")?.to_owned()),
        attempts: u32::try_from(get_n(item, "attempts")?).map_err(|_| corrupt("attempts"))?,
        due_at: get_n(item, "due_at")?,
        give_up_at: get_n(item, "give_up_at")?,
    })
}

fn bot_of(item: &Item) -> Result<BotId, StoreError> {
    get_s(item, PK)?
        .strip_prefix("BOT#")
        .and_then(|b| BotId::parse(b).ok())
        .ok_or_else(|| corrupt("token pk"))
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
        sealed: Sealed::from_stored(get_s(item, "sealed")?.to_owned()),
        version: get_n(item, "version")?,
        created_at: get_n(item, "created_at")?,
        updated_at: get_n(item, "updated_at")?,
        refresh_unsettled: opt_s(item, "refresh_unsettled"),
        upkeep: match opt_s(item, "upkeep") {
            Some(text) => serde_json::from_str(&text).map_err(|_| corrupt("upkeep"))?,
            None => Upkeep::default(),
        },
        due_at: opt_n(item, "due_at")?,
    })
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

    async fn save_connected(&self, c: &Connection<'_>) -> Result<SaveOutcome, StoreError> {
        let t = c.record;
        // A new connection is written without reading first: the token and its owner index
        // on condition that neither exists. When the index exists (a reconnect, or a
        // concurrent connect), it is read, and the credentials replace that token's.
        let mut holder: Option<Option<TokenId>> = None;
        let mut backoff = std::time::Duration::from_millis(20);
        for _ in 0..SAVE_ATTEMPTS {
            let mut items = vec![self.spend_item(&t.bot_id, c.spend)?];
            let inserting = match &holder {
                Some(Some(existing)) if existing != &t.token_id => {
                    return Ok(SaveOutcome::Taken(existing.clone()))
                }
                Some(Some(_)) => {
                    items.push(self.replace_item(t)?);
                    false
                }
                Some(None) | None => {
                    items.extend(self.insert_items(t)?);
                    true
                }
            };
            items.extend(self.outbox_puts(c.events)?);
            let codes = match self.transact(items).await? {
                Ok(()) => return Ok(SaveOutcome::Saved),
                Err(codes) => codes,
            };
            let failed = |i: usize| codes.get(i).is_some_and(|c| c == "ConditionalCheckFailed");
            if failed(0) {
                return Ok(SaveOutcome::Spent);
            }
            if !(inserting && failed(1)) {
                // A conflicting transaction, or the token vanished under a replace.
                tokio::time::sleep(backoff).await;
                backoff *= 2;
            }
            holder = Some(self.token_id_for(&t.bot_id, &t.owner, &t.alias).await?);
        }
        Err(StoreError::Unavailable(
            "the token kept changing while it was saved".into(),
        ))
    }

    async fn bot_connections(&self, bot: &BotId) -> Result<Vec<TokenRecord>, StoreError> {
        self.query_prefix(bot_pk(bot), "TOKEN#")
            .await?
            .iter()
            .map(|i| token_from(bot, i))
            .collect()
    }

    async fn set_upkeep(
        &self,
        read: &TokenRecord,
        next: &TokenRecord,
        events: &[Event],
    ) -> Result<bool, StoreError> {
        let (mut sets, mut removes, mut values) = (Vec::new(), Vec::new(), Vec::new());
        upkeep_update(next, &mut sets, &mut removes, &mut values);
        values.push((":v", n(read.version)));
        values.push((":old", s(upkeep_text(&read.upkeep))));
        // Records written before upkeep was kept have none: they read as the default.
        let condition = if read.upkeep == Upkeep::default() {
            "version = :v AND (attribute_not_exists(upkeep) OR upkeep = :old)"
        } else {
            "version = :v AND upkeep = :old"
        };
        let update = Update::builder()
            .table_name(&self.table)
            .set_key(Some(key(
                bot_pk(&read.bot_id),
                format!("TOKEN#{}", read.token_id),
            )))
            .update_expression(update_expression(&sets, &removes))
            .condition_expression(condition)
            .set_expression_attribute_values(Some(
                values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            ))
            .build()
            .map_err(unavailable)?;
        let mut items = vec![TransactWriteItem::builder().update(update).build()];
        items.extend(self.outbox_puts(events)?);
        Ok(self.transact(items).await?.is_ok())
    }

    async fn due_tokens(&self, now: i64, limit: u32) -> Result<Vec<TokenRecord>, StoreError> {
        self.query_due(DUE_TOKEN, now, limit)
            .await?
            .iter()
            .map(|i| token_from(&bot_of(i)?, i))
            .collect()
    }

    async fn due_revocations(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<PendingRevocation>, StoreError> {
        self.query_due(DUE_REVOCATION, now, limit)
            .await?
            .iter()
            .map(revocation_from)
            .collect()
    }

    async fn settle_revocation(
        &self,
        read: &PendingRevocation,
        next: Option<&PendingRevocation>,
        events: &[Event],
    ) -> Result<bool, StoreError> {
        let key = key(bot_pk(&read.bot_id), format!("REVOKE#{}", read.token_id));
        let item = match next {
            Some(next) => TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name(&self.table)
                        .set_key(Some(key))
                        .update_expression("SET attempts = :next, due_at = :due_at")
                        .condition_expression("attempts = :a")
                        .expression_attribute_values(":next", n(i64::from(next.attempts)))
                        .expression_attribute_values(":due_at", n(next.due_at))
                        .expression_attribute_values(":a", n(i64::from(read.attempts)))
                        .build()
                        .map_err(unavailable)?,
                )
                .build(),
            None => TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(&self.table)
                        .set_key(Some(key))
                        .condition_expression("attempts = :a")
                        .expression_attribute_values(":a", n(i64::from(read.attempts)))
                        .build()
                        .map_err(unavailable)?,
                )
                .build(),
        };
        let mut items = vec![item];
        items.extend(self.outbox_puts(events)?);
        Ok(self.transact(items).await?.is_ok())
    }

    async fn delete_token(
        &self,
        record: &TokenRecord,
        events: &[Event],
        revocation: Option<&PendingRevocation>,
    ) -> Result<bool, StoreError> {
        let pk = bot_pk(&record.bot_id);
        let delete =
            |sk: String, condition: &str, values: Item| -> Result<TransactWriteItem, StoreError> {
                Ok(TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(&self.table)
                            .set_key(Some(key(pk.as_str(), sk)))
                            .condition_expression(condition)
                            .set_expression_attribute_values(Some(values))
                            .build()
                            .map_err(unavailable)?,
                    )
                    .build())
            };
        let id = &record.token_id;
        let mut items = vec![
            delete(
                format!("TOKEN#{id}"),
                "version = :v",
                HashMap::from([(":v".to_owned(), n(record.version))]),
            )?,
            delete(
                owner_sk(&record.owner, &record.alias),
                "token_id = :id",
                HashMap::from([(":id".to_owned(), s(id.as_str()))]),
            )?,
        ];
        if let Some(r) = revocation {
            items.push(
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(&self.table)
                            .set_item(Some(revocation_item(r)))
                            .build()
                            .map_err(unavailable)?,
                    )
                    .build(),
            );
        }
        items.extend(self.outbox_puts(events)?);
        Ok(self.transact(items).await?.is_ok())
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
            "SET lease_holder = :h, lease_until = :until, refresh_unsettled = if_not_exists(refresh_unsettled, :h)",
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
        events: &[Event],
    ) -> Result<bool, StoreError> {
        let mut values = vec![
            (":status", s(t.status.as_str())),
            (":sealed", s(t.sealed.as_str())),
            (":updated", n(t.updated_at)),
            (":one", n(1)),
            (":v", n(expected_version)),
            (":h", s(holder)),
        ];
        let mut sets = vec![
            "#status = :status, sealed = :sealed, updated_at = :updated, version = version + :one",
        ];
        let mut removes = vec!["lease_holder, lease_until, refresh_unsettled"];
        match t.expires_at {
            Some(at) => {
                values.push((":expires", n(at)));
                sets.push("expires_at = :expires");
            }
            None => removes.push("expires_at"),
        }
        upkeep_update(t, &mut sets, &mut removes, &mut values);
        let update = update_expression(&sets, &removes);
        let values: Item = values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        let token_key = key(bot_pk(&t.bot_id), format!("TOKEN#{}", t.token_id));
        let condition = "version = :v AND lease_holder = :h";
        if events.is_empty() {
            let res = self
                .client
                .update_item()
                .table_name(&self.table)
                .set_key(Some(token_key))
                .update_expression(update)
                .condition_expression(condition)
                .expression_attribute_names("#status", "status")
                .set_expression_attribute_values(Some(values))
                .send()
                .await;
            return match res {
                Ok(_) => Ok(true),
                Err(e) if is_conditional(&e) => Ok(false),
                Err(e) => Err(unavailable(e)),
            };
        }
        let mut items = vec![TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(token_key))
                    .update_expression(update)
                    .condition_expression(condition)
                    .expression_attribute_names("#status", "status")
                    .set_expression_attribute_values(Some(values))
                    .build()
                    .map_err(unavailable)?,
            )
            .build()];
        items.extend(self.outbox_puts(events)?);
        Ok(self.transact(items).await?.is_ok())
    }

    async fn release_lease(
        &self,
        bot: &BotId,
        id: &TokenId,
        holder: &str,
        settled: bool,
    ) -> Result<(), StoreError> {
        let key = key(bot_pk(bot), format!("TOKEN#{id}"));
        let released = self
            .conditional_update(
                key.clone(),
                "REMOVE lease_holder, lease_until",
                "lease_holder = :h",
                vec![(":h", s(holder))],
            )
            .await?;
        if released && settled {
            // Only this holder's own mark: an earlier unsettled refresh stays noted.
            self.conditional_update(
                key,
                "REMOVE refresh_unsettled",
                "refresh_unsettled = :h",
                vec![(":h", s(holder))],
            )
            .await?;
        }
        Ok(())
    }
}

impl DynamoStore {
    /// Up to `limit` items of one kind of the due-time index, due at `now`, earliest first:
    /// one key query per shard, side by side, merged.
    async fn query_due(&self, kind: &str, now: i64, limit: u32) -> Result<Vec<Item>, StoreError> {
        let queries = (0..DUE_SHARDS).map(|shard| {
            self.client
                .query()
                .table_name(&self.table)
                .index_name(DUE)
                .key_condition_expression("due = :due AND due_at <= :now")
                .expression_attribute_values(":due", s(format!("{kind}#{shard}")))
                .expression_attribute_values(":now", n(now))
                .limit(i32::try_from(limit).unwrap_or(i32::MAX))
                .send()
        });
        let mut items: Vec<Item> = futures_util::future::try_join_all(queries)
            .await
            .map_err(unavailable)?
            .into_iter()
            .flat_map(|out| out.items.unwrap_or_default())
            .collect();
        items.sort_by_key(|i| opt_n(i, "due_at").ok().flatten().unwrap_or(i64::MAX));
        items.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        Ok(items)
    }
}

/// How many transactions a connection tries, reading the owner index between them.
const SAVE_ATTEMPTS: usize = 5;

impl DynamoStore {
    /// Replaces the credentials of an existing token; clears its lease and unsettled mark.
    fn replace_item(&self, t: &TokenRecord) -> Result<TransactWriteItem, StoreError> {
        let mut values = vec![
            (":provider", s(t.provider.as_str())),
            (":status", s(t.status.as_str())),
            (":sealed", s(t.sealed.as_str())),
            (":updated", n(t.updated_at)),
            (":one", n(1)),
        ];
        let mut sets = vec![
            "provider = :provider, #status = :status, sealed = :sealed, updated_at = :updated, version = version + :one",
        ];
        let mut removes = vec!["lease_holder, lease_until, refresh_unsettled"];
        match t.expires_at {
            Some(at) => {
                values.push((":expires", n(at)));
                sets.push("expires_at = :expires");
            }
            None => removes.push("expires_at"),
        }
        upkeep_update(t, &mut sets, &mut removes, &mut values);
        let update = update_expression(&sets, &removes);
        Ok(TransactWriteItem::builder()
            .update(
                Update::builder()
                    .table_name(&self.table)
                    .set_key(Some(key(
                        bot_pk(&t.bot_id),
                        format!("TOKEN#{}", t.token_id),
                    )))
                    .update_expression(update)
                    .condition_expression("attribute_exists(pk)")
                    .expression_attribute_names("#status", "status")
                    .set_expression_attribute_values(Some(
                        values.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
                    ))
                    .build()
                    .map_err(unavailable)?,
            )
            .build())
    }

    /// A new token and its owner index, each on condition that it does not exist yet.
    fn insert_items(&self, t: &TokenRecord) -> Result<Vec<TransactWriteItem>, StoreError> {
        let mut index = key(bot_pk(&t.bot_id), owner_sk(&t.owner, &t.alias));
        index.insert("token_id".into(), s(t.token_id.as_str()));
        index.insert("alias".into(), s(t.alias.as_str()));
        [index, token_item(t)]
            .into_iter()
            .map(|item| {
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
            })
            .collect()
    }
}
