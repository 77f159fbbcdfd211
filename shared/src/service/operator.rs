//! The operator's use cases: bots and their keys, provider apps.

use super::auth::new_bot_key;
use super::{client_secret_ctx, Service, ServiceError};
use crate::domain::ids::{sha256_hex, BotId, ProviderName};
use crate::domain::providers::{check_endpoint, ProviderApp, ProviderAppInput};
use secrecy::ExposeSecret;
use serde::Serialize;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedBot {
    #[schema(value_type = String)]
    pub bot_id: BotId,
    pub api_key: String,
}

impl Service {
    pub async fn create_bot(&self, bot: BotId) -> Result<CreatedBot, ServiceError> {
        let key = new_bot_key(&bot);
        if !self
            .store
            .create_bot(&bot, &sha256_hex(&key), self.clock.unix())
            .await?
        {
            return Err(ServiceError::BotExists(bot));
        }
        tracing::info!(bot_id = %bot, "bot created");
        Ok(CreatedBot {
            bot_id: bot,
            api_key: key,
        })
    }

    pub async fn rotate_bot_key(&self, bot: &BotId) -> Result<String, ServiceError> {
        let key = new_bot_key(bot);
        if !self.store.set_bot_key(bot, &sha256_hex(&key)).await? {
            return Err(ServiceError::BotNotFound);
        }
        self.forget_keys_of(bot);
        tracing::info!(bot_id = %bot, "bot key rotated");
        Ok(key)
    }

    /// Registers or replaces a provider app; the same path serves the admin API and the
    /// local server's providers file.
    pub async fn put_provider(
        &self,
        name: &ProviderName,
        input: ProviderAppInput,
    ) -> Result<ProviderApp, ServiceError> {
        let discovery = match &input.issuer {
            Some(issuer) => {
                let url = check_endpoint("issuer", issuer)?;
                Some(
                    self.provider
                        .discover(&url)
                        .await
                        .map_err(ServiceError::DiscoveryFailed)?,
                )
            }
            None => None,
        };
        let app = input.resolve(name, discovery.as_ref())?;
        let sealed = match &input.client_secret {
            Some(secret) => Some(
                self.sealer
                    .seal(secret.expose_secret().as_bytes(), client_secret_ctx(name))
                    .await?,
            ),
            None => None,
        };
        self.store.put_provider(&app, sealed.as_ref()).await?;
        tracing::info!(provider = %name, custom = app.custom, "provider app registered");
        Ok(app)
    }

    pub async fn providers(&self) -> Result<Vec<ProviderApp>, ServiceError> {
        Ok(self.store.providers().await?)
    }
}
