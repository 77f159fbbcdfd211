//! A bot's integrations file, the links that start flows (`oauth_link`, the connect page's
//! link), and the token lists `bot.tokens` / `user.tokens`.

use super::{Service, ServiceError};
use crate::domain::ids::{Alias, BotId, LinkId, ProviderName, TokenId, UserId};
use crate::domain::integrations::{parse_integrations, Confirm, Context, Integration};
use crate::domain::providers::catalog;
use crate::domain::token::{ConnectSession, Link, Owner};
use serde::Serialize;
use std::collections::BTreeMap;

pub const LINK_TTL_SECS: i64 = 30 * 60;
pub const CONNECT_SESSION_TTL_SECS: i64 = 15 * 60;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IntegrationView {
    #[schema(value_type = String)]
    pub alias: Alias,
    #[schema(value_type = String)]
    pub provider: ProviderName,
    pub scope: Vec<String>,
    pub context: Context,
    pub confirm: Confirm,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connected: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub token_id: Option<TokenId>,
}

impl IntegrationView {
    /// `token` is `Some` for bot-context integrations: whether, and as which token, it is
    /// connected.
    fn of(i: Integration, token: Option<Option<TokenId>>) -> Self {
        Self {
            alias: i.alias,
            provider: i.provider,
            scope: i.scope,
            context: i.context,
            confirm: i.confirm,
            connected: token.as_ref().map(Option::is_some),
            token_id: token.flatten(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MintedLink {
    pub url: String,
    /// Unix seconds.
    pub expires_at: i64,
}

impl Service {
    pub async fn put_integrations(
        &self,
        bot: &BotId,
        yaml: &str,
    ) -> Result<Vec<IntegrationView>, ServiceError> {
        // The operator's apps first: a near miss is suggested from what can connect.
        let mut known: Vec<String> = self
            .store
            .providers()
            .await?
            .iter()
            .map(|app| app.name.to_string())
            .collect();
        for e in catalog() {
            if !known.contains(&e.name) {
                known.push(e.name.clone());
            }
        }
        let list = parse_integrations(yaml, known.as_slice())
            .map_err(ServiceError::InvalidIntegrations)?;
        let before = self.store.integrations(bot).await?;
        self.store.put_integrations(bot, &list).await?;
        tracing::info!(bot_id = %bot, count = list.len(), "integrations replaced");
        self.apply_keep_fresh(bot, &before, &list).await;
        Ok(list
            .into_iter()
            .map(|i| IntegrationView::of(i, None))
            .collect())
    }

    /// Carries a changed `keep_fresh` into the connections of the aliases it changed for
    /// (a removed alias counts as not marked). Best effort: a token that cannot be updated now
    /// gets the setting at its next sign-in.
    async fn apply_keep_fresh(&self, bot: &BotId, before: &[Integration], after: &[Integration]) {
        let marked = |list: &[Integration], alias: &Alias| {
            list.iter().any(|i| &i.alias == alias && i.keep_fresh)
        };
        let changed: Vec<&Alias> = before
            .iter()
            .chain(after)
            .map(|i| &i.alias)
            .filter(|a| marked(before, a) != marked(after, a))
            .collect();
        if changed.is_empty() {
            return;
        }
        let tokens = match self.store.bot_connections(bot).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(bot_id = %bot, error = %e, "keep_fresh not carried into existing connections");
                return;
            }
        };
        let now = self.clock.unix();
        for mut read in tokens.into_iter().filter(|t| changed.contains(&&t.alias)) {
            let keep = marked(after, &read.alias);
            for _ in 0..3 {
                let mut next = read.clone();
                next.upkeep.keep_fresh = keep;
                next.schedule(now, &self.upkeep);
                match self.store.set_upkeep(&read, &next, &[]).await {
                    Ok(true) => break,
                    Ok(false) => match self.store.token(bot, &read.token_id).await {
                        Ok(Some(again)) => read = again,
                        _ => break,
                    },
                    Err(e) => {
                        tracing::warn!(token_id = %read.token_id, error = %e, "keep_fresh not carried into this connection");
                        break;
                    }
                }
            }
        }
    }

    pub async fn integrations(&self, bot: &BotId) -> Result<Vec<IntegrationView>, ServiceError> {
        let list = self.store.integrations(bot).await?;
        let bot_tokens = self.store.tokens_of(bot, &Owner::Bot).await?;
        Ok(list
            .into_iter()
            .map(|i| {
                let token = (i.context == Context::Bot).then(|| bot_tokens.get(&i.alias).cloned());
                IntegrationView::of(i, token)
            })
            .collect())
    }

    /// `oauth_link(alias)`.
    pub async fn create_link(
        &self,
        bot: &BotId,
        alias: &Alias,
        user: Option<UserId>,
    ) -> Result<MintedLink, ServiceError> {
        self.create_link_with(bot, alias, user, BTreeMap::new())
            .await
    }

    /// `oauth_link(alias)` with per-connection values (a Zendesk subdomain).
    pub async fn create_link_with(
        &self,
        bot: &BotId,
        alias: &Alias,
        user: Option<UserId>,
        params: BTreeMap<String, String>,
    ) -> Result<MintedLink, ServiceError> {
        let (link, _) = self.mint_link(bot, alias, user, params).await?;
        Ok(MintedLink {
            url: self.url(&format!("/oauth/start/{}", link.link_id)),
            expires_at: link.expires_at,
        })
    }

    /// Stores a link for `alias` after checking that the integration and its provider app
    /// exist; answers the link and the integration it starts.
    pub(super) async fn mint_link(
        &self,
        bot: &BotId,
        alias: &Alias,
        user: Option<UserId>,
        params: BTreeMap<String, String>,
    ) -> Result<(Link, Integration), ServiceError> {
        let mut integration = self
            .integration(bot, alias)
            .await?
            .ok_or_else(|| ServiceError::UnknownAlias(alias.clone()))?;
        // The file's values, then the link's; all checked, defaults filled in.
        let mut given = integration.params.clone();
        given.extend(params);
        integration.params =
            crate::domain::catalog::connection_params(integration.provider.as_str(), &given)
                .map_err(ServiceError::InvalidParams)?;
        let owner = match (integration.context, user) {
            (Context::User, Some(u)) => Owner::User(u),
            (Context::User, None) => return Err(ServiceError::UserIdRequired(alias.clone())),
            (Context::Bot, None) => Owner::Bot,
            (Context::Bot, Some(_)) => return Err(ServiceError::UserIdNotAllowed(alias.clone())),
        };
        // Entered credentials (API keys, Basic) need no registered app.
        let entered = super::credentials::entered_kind(integration.provider.as_str()).is_some();
        if !entered && self.store.provider(&integration.provider).await?.is_none() {
            return Err(ServiceError::ProviderNotConfigured(
                integration.provider.clone(),
            ));
        }
        if integration.confirm == Confirm::Redirect && self.store.confirm_url(bot).await?.is_none()
        {
            return Err(ServiceError::ConfirmUrlNotSet(alias.clone()));
        }
        let now = self.clock.unix();
        let link = Link {
            link_id: LinkId::generate(bot),
            bot_id: bot.clone(),
            alias: alias.clone(),
            owner,
            expires_at: now + LINK_TTL_SECS,
            created_at: now,
            integration: Some(integration.clone()),
        };
        self.store.put_link(&link).await?;
        tracing::info!(bot_id = %bot, %alias, "oauth link minted");
        Ok((link, integration))
    }

    pub async fn create_connect_session(&self, bot: &BotId) -> Result<MintedLink, ServiceError> {
        let session = ConnectSession {
            session_id: LinkId::generate(bot),
            bot_id: bot.clone(),
            expires_at: self.clock.unix() + CONNECT_SESSION_TTL_SECS,
        };
        self.store.put_connect_session(&session).await?;
        Ok(MintedLink {
            url: self.url(&format!("/connect/{}", session.session_id)),
            expires_at: session.expires_at,
        })
    }

    /// `bot.tokens` (`Owner::Bot`) or one user's `user.tokens`: alias -> token id.
    pub async fn tokens_of(
        &self,
        bot: &BotId,
        owner: &Owner,
    ) -> Result<BTreeMap<Alias, TokenId>, ServiceError> {
        Ok(self.store.tokens_of(bot, owner).await?)
    }
}
