//! Tokens: the record, its owner index, the lease and the fenced commit.

use super::*;

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
        sealed: Sealed::from_stored(get_s(item, "sealed")?.to_owned()),
        version: get_n(item, "version")?,
        created_at: get_n(item, "created_at")?,
        updated_at: get_n(item, "updated_at")?,
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

    async fn save_connected(&self, t: &TokenRecord) -> Result<SaveOutcome, StoreError> {
        // Conditional writes lose to a concurrent connect or delete: read the index again.
        for _ in 0..3 {
            let applied = match self.token_id_for(&t.bot_id, &t.owner, &t.alias).await? {
                Some(existing) if existing != t.token_id => {
                    return Ok(SaveOutcome::Taken(existing))
                }
                Some(_) => self.replace_credentials(t).await?,
                None => self.insert_connected(t).await?,
            };
            if applied {
                return Ok(SaveOutcome::Saved);
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
        // The item read is the item deleted: the transaction holds only while the sealed
        // credentials are still the ones read, so the caller revokes exactly what was
        // removed. A concurrent refresh or reconnect, or a transaction conflict, makes it
        // read again and retry; `None` only when the token is gone.
        let mut backoff = std::time::Duration::from_millis(20);
        for _ in 0..DELETE_ATTEMPTS {
            let Some(record) = self.token(bot, id).await? else {
                return Ok(None);
            };
            if self.delete_exactly(&record).await? {
                return Ok(Some(record));
            }
            tokio::time::sleep(backoff).await;
            backoff *= 2;
        }
        Err(StoreError::Unavailable(
            "the token kept changing while it was being deleted".into(),
        ))
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

impl DynamoStore {
    /// Replaces the credentials of an existing token and clears its lease. `false` when the
    /// token disappeared meanwhile.
    async fn replace_credentials(&self, t: &TokenRecord) -> Result<bool, StoreError> {
        let mut values = vec![
            (":provider", s(t.provider.as_str())),
            (":status", s(t.status.as_str())),
            (":sealed", s(t.sealed.as_str())),
            (":updated", n(t.updated_at)),
            (":one", n(1)),
        ];
        let (set_expiry, remove) = match t.expires_at {
            Some(at) => {
                values.push((":expires", n(at)));
                (
                    "SET expires_at = :expires, ",
                    " REMOVE lease_holder, lease_until",
                )
            }
            None => ("SET ", " REMOVE expires_at, lease_holder, lease_until"),
        };
        let update = format!(
            "{set_expiry}provider = :provider, #status = :status, sealed = :sealed, updated_at = :updated, version = version + :one{remove}"
        );
        let res = self
            .client
            .update_item()
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
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Writes a new token and its owner index in one transaction. `false` when either
    /// exists already.
    async fn insert_connected(&self, t: &TokenRecord) -> Result<bool, StoreError> {
        let mut index = key(bot_pk(&t.bot_id), owner_sk(&t.owner, &t.alias));
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
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }
}

/// How many times a delete reads and tries again when the token changed under it.
const DELETE_ATTEMPTS: usize = 6;

impl DynamoStore {
    /// Deletes the token and its owner index if the token still holds `record`'s sealed
    /// credentials; `false` when it changed, vanished or the transaction met another.
    async fn delete_exactly(&self, record: &TokenRecord) -> Result<bool, StoreError> {
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
        let res = self
            .client
            .transact_write_items()
            .transact_items(delete(
                format!("TOKEN#{id}"),
                "attribute_exists(pk) AND sealed = :sealed",
                HashMap::from([(":sealed".to_owned(), s(record.sealed.as_str()))]),
            )?)
            .transact_items(delete(
                owner_sk(&record.owner, &record.alias),
                "token_id = :id",
                HashMap::from([(":id".to_owned(), s(id.as_str()))]),
            )?)
            .send()
            .await;
        match res {
            Ok(_) => Ok(true),
            Err(e) if is_conditional(&e) => Ok(false),
            Err(e) => Err(unavailable(e)),
        }
    }
}
