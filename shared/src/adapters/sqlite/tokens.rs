//! Tokens: the record, the owner index, the lease and the fenced commit.

use super::*;

const TOKEN_COLUMNS: &str =
    "bot_id, token_id, alias, provider, user_id, status, expires_at, sealed, version, created_at, updated_at, refresh_unsettled, upkeep, due_at";

/// The warm path's one read, prepared once per connection.
static TOKEN_BY_ID: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    format!("SELECT {TOKEN_COLUMNS} FROM tokens WHERE bot_id = ?1 AND token_id = ?2")
});

fn token_from(r: &Row<'_>) -> rusqlite::Result<TokenRecord> {
    Ok(TokenRecord {
        bot_id: parse(BotId::parse, &r.get::<_, String>(0)?, "bot_id")?,
        token_id: parse(TokenId::parse, &r.get::<_, String>(1)?, "token_id")?,
        alias: parse(Alias::parse, &r.get::<_, String>(2)?, "alias")?,
        provider: parse(ProviderName::parse, &r.get::<_, String>(3)?, "provider")?,
        owner: owner_from(r.get(4)?)?,
        status: TokenStatus::parse(&r.get::<_, String>(5)?).ok_or_else(|| corrupt("status"))?,
        expires_at: r.get(6)?,
        sealed: r.get(7)?,
        version: r.get(8)?,
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
        refresh_unsettled: r.get(11)?,
        upkeep: serde_json::from_str(&r.get::<_, String>(12)?).map_err(|_| corrupt("upkeep"))?,
        due_at: r.get(13)?,
    })
}

fn upkeep_text(t: &TokenRecord) -> String {
    // Plain numbers, strings and booleans: serializing cannot fail.
    serde_json::to_string(&t.upkeep).unwrap_or_else(|_| "{}".to_owned())
}

const REVOCATION_COLUMNS: &str =
    "bot_id, token_id, alias, provider, user_id, sealed, attempts, due_at, give_up_at";

fn revocation_from(r: &Row<'_>) -> rusqlite::Result<PendingRevocation> {
    Ok(PendingRevocation {
        bot_id: parse(BotId::parse, &r.get::<_, String>(0)?, "bot_id")?,
        token_id: parse(TokenId::parse, &r.get::<_, String>(1)?, "token_id")?,
        alias: parse(Alias::parse, &r.get::<_, String>(2)?, "alias")?,
        provider: parse(ProviderName::parse, &r.get::<_, String>(3)?, "provider")?,
        owner: owner_from(r.get(4)?)?,
        sealed: r.get(5)?,
        attempts: r.get(6)?,
        due_at: r.get(7)?,
        give_up_at: r.get(8)?,
    })
}

#[async_trait]
impl TokenStore for SqliteStore {
    async fn token(&self, bot: &BotId, id: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        let (bot, id) = (bot.to_string(), id.to_string());
        self.read(move |c| {
            c.prepare_cached(&TOKEN_BY_ID)?
                .query_row([bot, id], token_from)
                .optional()
        })
        .await
    }

    async fn token_id_for(
        &self,
        bot: &BotId,
        owner: &Owner,
        alias: &Alias,
    ) -> Result<Option<TokenId>, StoreError> {
        let (bot, user, alias) = (
            bot.to_string(),
            owner_key(owner).to_owned(),
            alias.to_string(),
        );
        self.read(move |c| {
            let id: Option<String> = c
                .query_row(
                    "SELECT token_id FROM tokens WHERE bot_id = ?1 AND user_id = ?2 AND alias = ?3",
                    [bot, user, alias],
                    |r| r.get(0),
                )
                .optional()?;
            id.map(|i| parse(TokenId::parse, &i, "token_id"))
                .transpose()
        })
        .await
    }

    async fn tokens_of(
        &self,
        bot: &BotId,
        owner: &Owner,
    ) -> Result<BTreeMap<Alias, TokenId>, StoreError> {
        let (bot, user) = (bot.to_string(), owner_key(owner).to_owned());
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT alias, token_id FROM tokens WHERE bot_id = ?1 AND user_id = ?2 ORDER BY alias",
            )?;
            let rows = stmt.query_map([bot, user], |r| {
                Ok((
                    parse(Alias::parse, &r.get::<_, String>(0)?, "alias")?,
                    parse(TokenId::parse, &r.get::<_, String>(1)?, "token_id")?,
                ))
            })?;
            rows.collect()
        })
        .await
    }

    async fn save_connected(&self, c: &Connected<'_>) -> Result<SaveOutcome, StoreError> {
        let t = c.record.clone();
        let spend = match c.spend {
            Spend::Link { key, claimant } => Err((key.to_owned(), claimant.to_owned())),
            Spend::Pending(p) => Ok(p.clone()),
        };
        let events = outbox_rows(c.events);
        let outcome = self
            .run(move |c| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let spent = match &spend {
                    Err((key, claimant)) => {
                        super::flows::spend_link(&tx, t.bot_id.as_str(), key, claimant)?
                    }
                    Ok(p) => super::flows::spend_pending(&tx, p)?,
                };
                if !spent {
                    return Ok(SaveOutcome::Spent);
                }
                let holder: Option<String> = tx
                    .query_row(
                        "SELECT token_id FROM tokens WHERE bot_id = ?1 AND user_id = ?2 AND alias = ?3",
                        params![t.bot_id.as_str(), owner_key(&t.owner), t.alias.as_str()],
                        |r| r.get(0),
                    )
                    .optional()?;
                match holder {
                    Some(existing) if existing != t.token_id.as_str() => {
                        return Ok(SaveOutcome::Taken(parse(TokenId::parse, &existing, "token_id")?));
                    }
                    Some(_) => {
                        tx.execute(
                            "UPDATE tokens SET provider = ?3, status = ?4, expires_at = ?5, sealed = ?6,
                                    version = version + 1, lease_holder = NULL, lease_until = NULL,
                                    refresh_unsettled = NULL, updated_at = ?7, upkeep = ?8, due_at = ?9
                             WHERE bot_id = ?1 AND token_id = ?2",
                            params![t.bot_id.as_str(), t.token_id.as_str(), t.provider.as_str(), t.status.as_str(),
                                    t.expires_at, t.sealed, t.updated_at, upkeep_text(&t), t.due_at],
                        )?;
                    }
                    None => {
                        tx.execute(
                            "INSERT INTO tokens (bot_id, token_id, alias, provider, user_id, status, expires_at, sealed, version, created_at, updated_at, upkeep, due_at)
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                            params![t.bot_id.as_str(), t.token_id.as_str(), t.alias.as_str(), t.provider.as_str(),
                                    owner_key(&t.owner), t.status.as_str(), t.expires_at, t.sealed, t.version,
                                    t.created_at, t.updated_at, upkeep_text(&t), t.due_at],
                        )?;
                    }
                }
                insert_events(&tx, &events)?;
                tx.commit()?;
                Ok(SaveOutcome::Saved)
            })
            .await?;
        if outcome == SaveOutcome::Saved {
            self.signal_outbox();
        }
        Ok(outcome)
    }

    async fn bot_connections(&self, bot: &BotId) -> Result<Vec<TokenRecord>, StoreError> {
        let bot = bot.to_string();
        self.read(move |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens WHERE bot_id = ?1 ORDER BY user_id, alias"
            ))?;
            let rows = stmt.query_map([bot], token_from)?;
            rows.collect()
        })
        .await
    }

    async fn delete_token(
        &self,
        record: &TokenRecord,
        events: &[Event],
        revocation: Option<&PendingRevocation>,
    ) -> Result<bool, StoreError> {
        let t = record.clone();
        let revocation = revocation.cloned();
        self.change_with_events(events, move |tx| {
            let deleted = tx.execute(
                "DELETE FROM tokens WHERE bot_id = ?1 AND token_id = ?2 AND version = ?3",
                params![t.bot_id.as_str(), t.token_id.as_str(), t.version],
            )? == 1;
            if let (true, Some(r)) = (deleted, &revocation) {
                tx.execute(
                    &format!(
                        "INSERT OR REPLACE INTO revocations ({REVOCATION_COLUMNS})
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                    ),
                    params![
                        r.bot_id.as_str(),
                        r.token_id.as_str(),
                        r.alias.as_str(),
                        r.provider.as_str(),
                        owner_key(&r.owner),
                        r.sealed,
                        r.attempts,
                        r.due_at,
                        r.give_up_at
                    ],
                )?;
            }
            Ok(deleted)
        })
        .await
    }

    async fn set_upkeep(
        &self,
        read: &TokenRecord,
        next: &TokenRecord,
        events: &[Event],
    ) -> Result<bool, StoreError> {
        let (old, new) = (upkeep_text(read), upkeep_text(next));
        let (bot, id, version, due) = (
            read.bot_id.to_string(),
            read.token_id.to_string(),
            read.version,
            next.due_at,
        );
        self.change_with_events(events, move |tx| {
            tx.execute(
                "UPDATE tokens SET upkeep = ?4, due_at = ?5
                 WHERE bot_id = ?1 AND token_id = ?2 AND version = ?3 AND upkeep = ?6",
                params![bot, id, version, new, due, old],
            )
            .map(|n| n == 1)
        })
        .await
    }

    async fn due_tokens(&self, now: i64, limit: u32) -> Result<Vec<TokenRecord>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {TOKEN_COLUMNS} FROM tokens
                 WHERE due_at IS NOT NULL AND due_at <= ?1 ORDER BY due_at LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![now, limit], token_from)?;
            rows.collect()
        })
        .await
    }

    async fn due_revocations(
        &self,
        now: i64,
        limit: u32,
    ) -> Result<Vec<PendingRevocation>, StoreError> {
        self.read(move |c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {REVOCATION_COLUMNS} FROM revocations WHERE due_at <= ?1 ORDER BY due_at LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![now, limit], revocation_from)?;
            rows.collect()
        })
        .await
    }

    async fn settle_revocation(
        &self,
        read: &PendingRevocation,
        next: Option<&PendingRevocation>,
        events: &[Event],
    ) -> Result<bool, StoreError> {
        let (r, next) = (read.clone(), next.cloned());
        self.change_with_events(events, move |tx| {
            let n = match &next {
                Some(n) => tx.execute(
                    "UPDATE revocations SET attempts = ?4, due_at = ?5
                     WHERE bot_id = ?1 AND token_id = ?2 AND attempts = ?3",
                    params![
                        r.bot_id.as_str(),
                        r.token_id.as_str(),
                        r.attempts,
                        n.attempts,
                        n.due_at
                    ],
                )?,
                None => tx.execute(
                    "DELETE FROM revocations WHERE bot_id = ?1 AND token_id = ?2 AND attempts = ?3",
                    params![r.bot_id.as_str(), r.token_id.as_str(), r.attempts],
                )?,
            };
            Ok(n == 1)
        })
        .await
    }

    async fn acquire_lease(
        &self,
        bot: &BotId,
        id: &TokenId,
        holder: &str,
        until: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let (bot, id, holder) = (bot.to_string(), id.to_string(), holder.to_owned());
        self.run(move |c| {
            let n = c.execute(
                "UPDATE tokens SET lease_holder = ?3, lease_until = ?4,
                        refresh_unsettled = COALESCE(refresh_unsettled, ?3)
                 WHERE bot_id = ?1 AND token_id = ?2 AND (lease_until IS NULL OR lease_until <= ?5)",
                params![bot, id, holder, until, now],
            )?;
            Ok(n == 1)
        })
        .await
    }

    async fn commit_refresh(
        &self,
        t: &TokenRecord,
        expected_version: i64,
        holder: &str,
        events: &[Event],
    ) -> Result<bool, StoreError> {
        let (t, holder) = (t.clone(), holder.to_owned());
        self.change_with_events(events, move |tx| {
            tx.execute(
                "UPDATE tokens SET status = ?3, expires_at = ?4, sealed = ?5, version = version + 1,
                        lease_holder = NULL, lease_until = NULL, refresh_unsettled = NULL, updated_at = ?6,
                        upkeep = ?9, due_at = ?10
                 WHERE bot_id = ?1 AND token_id = ?2 AND version = ?7 AND lease_holder = ?8",
                params![t.bot_id.as_str(), t.token_id.as_str(), t.status.as_str(), t.expires_at, t.sealed,
                        t.updated_at, expected_version, holder, upkeep_text(&t), t.due_at],
            )
            .map(|n| n == 1)
        })
        .await
    }

    async fn release_lease(
        &self,
        bot: &BotId,
        id: &TokenId,
        holder: &str,
        settled: bool,
    ) -> Result<(), StoreError> {
        let (bot, id, holder) = (bot.to_string(), id.to_string(), holder.to_owned());
        self.run(move |c| {
            c.execute(
                "UPDATE tokens SET lease_holder = NULL, lease_until = NULL,
                        refresh_unsettled = CASE WHEN ?4 AND refresh_unsettled = ?3 THEN NULL ELSE refresh_unsettled END
                 WHERE bot_id = ?1 AND token_id = ?2 AND lease_holder = ?3",
                params![bot, id, holder, settled],
            )
            .map(|_| ())
        })
        .await
    }
}
