//! Integrations whose credentials are entered rather than signed in for: API keys and HTTP
//! Basic. A user-context link opens a form where the user pastes them; the connect page shows
//! the same form for bot-context ones. They are sealed and reported like OAuth tokens.

use super::flow::{Connected, NewToken};
use super::Service;
use crate::domain::catalog::{catalog_entry, CatalogEntry, CredentialKind};
use crate::domain::ids::{random_urlsafe, Alias, LinkId};
use crate::domain::integrations::Integration;
use crate::domain::token::{Link, TokenSecrets};
use crate::ports::Spend;
use crate::service::flow::LINK_CLAIM_SECS;
use crate::service::FlowError;
use std::collections::BTreeMap;

/// Longest value accepted in one field, in bytes.
pub const MAX_FIELD_LEN: usize = 4096;

/// What a page asks for: the integration and the entry's fields (name, label).
#[derive(Debug, Clone)]
pub struct CredentialForm {
    pub alias: Alias,
    pub display_name: String,
    pub fields: Vec<(String, String)>,
}

/// What opening a link leads to.
pub enum Opened {
    /// An OAuth sign-in: the provider's authorization URL.
    Redirect(url::Url),
    /// Credentials to enter on this service's page.
    Form(CredentialForm),
    /// Connected already, without a sign-in (client credentials).
    Done(Connected),
}

/// The catalog entry of a provider whose credentials are entered.
pub fn entered_kind(provider: &str) -> Option<&'static CatalogEntry> {
    catalog_entry(provider)
        .filter(|e| matches!(e.kind, CredentialKind::ApiKey | CredentialKind::Basic))
}

pub fn form_of(alias: &Alias, entry: &CatalogEntry) -> CredentialForm {
    CredentialForm {
        alias: alias.clone(),
        display_name: entry.display_name.clone(),
        fields: entry
            .credential
            .iter()
            .flat_map(|c| &c.fields)
            .map(|f| (f.name.clone(), f.label.clone()))
            .collect(),
    }
}

/// The secrets of an entered credential: `access_token` is what a request sends (the key,
/// or the `Authorization` value for Basic); the fields are kept under `other.credentials`.
fn secrets_of(
    entry: &CatalogEntry,
    mut given: BTreeMap<String, String>,
) -> Result<TokenSecrets, FlowError> {
    let spec = entry.credential.as_ref().ok_or(FlowError::NotConfigured)?;
    let mut fields = serde_json::Map::new();
    for f in &spec.fields {
        let value = given.remove(&f.name).unwrap_or_default();
        let value = value.trim();
        if value.is_empty() || value.len() > MAX_FIELD_LEN || value.chars().any(char::is_control) {
            return Err(FlowError::BadCredentials(format!(
                "{} is missing or not valid",
                f.label
            )));
        }
        fields.insert(f.name.clone(), serde_json::Value::String(value.to_owned()));
    }
    let text = |i: usize| {
        spec.fields
            .get(i)
            .and_then(|f| fields.get(&f.name))
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let (access_token, token_type) = match entry.kind {
        CredentialKind::Basic => {
            use base64::Engine;
            let pair = format!("{}:{}", text(0), text(1));
            (
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ),
                "basic",
            )
        }
        _ => (text(0), "api_key"),
    };
    let mut other = serde_json::Map::new();
    other.insert("credentials".into(), serde_json::Value::Object(fields));
    Ok(TokenSecrets {
        access_token,
        refresh_token: None,
        token_type: token_type.to_owned(),
        scopes: Vec::new(),
        other,
        uid: None,
        info: Default::default(),
        raw_info: serde_json::Value::Null,
    })
}

impl Service {
    /// Asks the provider who the entered credential belongs to, where the entry says how:
    /// a refusal (HTTP 4xx) means the credential is wrong and nothing is stored; a provider
    /// that cannot be reached leaves the credential stored without `info`, as for sign-ins.
    async fn describe_entered(
        &self,
        entry: &CatalogEntry,
        params: &BTreeMap<String, String>,
        secrets: &mut TokenSecrets,
    ) -> Result<(), FlowError> {
        use crate::ports::ProviderError;
        let (Some(spec), Some(credential)) = (&entry.userinfo, &entry.credential) else {
            return Ok(());
        };
        let url = crate::domain::catalog::fill(&spec.url, &|n| params.get(n).cloned());
        let secret = secrecy::SecretString::from(secrets.access_token.clone());
        match self
            .provider
            .entered_user_info(spec, credential, &url, &secret)
            .await
        {
            Ok(raw) => {
                let (uid, info) = crate::domain::providers::normalize_user_info(Some(spec), &raw);
                secrets.uid = uid;
                secrets.info = info;
                secrets.raw_info = raw;
                Ok(())
            }
            Err(ProviderError::Final { code }) => {
                tracing::info!(provider = %entry.name, %code, "entered credentials refused by the provider; nothing stored");
                Err(FlowError::BadCredentials(format!(
                    "{} refused these credentials",
                    entry.display_name
                )))
            }
            Err(e) => {
                tracing::warn!(provider = %entry.name, error = %e, "entered credentials could not be checked; stored without user info");
                Ok(())
            }
        }
    }
}

/// Keeps a connection's per-connection values with its secrets.
fn keep_connection(secrets: &mut TokenSecrets, params: &BTreeMap<String, String>) {
    if !params.is_empty() {
        secrets.other.insert(
            crate::domain::providers::CONNECTION_KEY.to_owned(),
            serde_json::to_value(params).unwrap_or_default(),
        );
    }
}

impl Service {
    /// `GET /oauth/start/{link}` for any integration: an OAuth sign-in starts, an entered one
    /// shows its form (nothing is written until it is sent).
    pub async fn open_link(
        &self,
        link_id: &LinkId,
        browser: &crate::domain::ids::BrowserKey,
    ) -> Result<Opened, FlowError> {
        let (link, integration) = self.live_link(link_id).await?;
        if crate::domain::catalog::is_client_credentials(integration.provider.as_str()) {
            // An app's own token is connected by the builder, never through a user's link.
            return Err(FlowError::NotConfigured);
        }
        match entered_kind(integration.provider.as_str()) {
            Some(entry) => Ok(Opened::Form(form_of(&link.alias, entry))),
            None => self
                .begin_flow(&link, &integration, browser)
                .await
                .map(Opened::Redirect),
        }
    }

    /// `POST /oauth/start/{link}`: stores what the user entered for the link's owner.
    pub async fn enter_credentials(
        &self,
        link_id: &LinkId,
        given: BTreeMap<String, String>,
    ) -> Result<Connected, FlowError> {
        let (link, integration) = self.live_link(link_id).await?;
        self.save_entered(&link, &integration, given).await
    }

    /// `POST /connect/{session}/{alias}` for an entered bot-context integration.
    pub async fn connect_entered(
        &self,
        session: &LinkId,
        alias: &Alias,
        given: BTreeMap<String, String>,
    ) -> Result<Connected, FlowError> {
        let (link, integration) = self.connect_link(session, alias).await?;
        self.save_entered(&link, &integration, given).await
    }

    async fn save_entered(
        &self,
        link: &Link,
        integration: &Integration,
        given: BTreeMap<String, String>,
    ) -> Result<Connected, FlowError> {
        let entry = entered_kind(integration.provider.as_str()).ok_or(FlowError::NotConfigured)?;
        let mut secrets = secrets_of(entry, given)?;
        self.describe_entered(entry, &integration.params, &mut secrets)
            .await?;
        self.store_without_sign_in(link, integration, secrets, None)
            .await
    }

    /// The connect page's button for a client-credentials integration: the app asks the
    /// provider for its own token (RFC 6749 §4.4); no one signs in.
    pub(super) async fn connect_app_token(
        &self,
        link: &Link,
        integration: &Integration,
    ) -> Result<Connected, FlowError> {
        use crate::ports::ProviderError;
        use secrecy::ExposeSecret;
        let mut client = self
            .registered_app(&integration.provider)
            .await?
            .ok_or(FlowError::NotConfigured)?;
        client.app = client.app.with_connection(&integration.params);
        let granted = self
            .provider
            .client_credentials(&client, &integration.scope)
            .await
            .map_err(|e| {
                tracing::warn!(bot_id = %link.bot_id, alias = %link.alias, error = %e, "client-credentials grant failed");
                match e {
                    ProviderError::Transient { .. } | ProviderError::OutcomeUnknown => {
                        FlowError::Unavailable
                    }
                    _ => FlowError::ProviderFailed,
                }
            })?;
        let expires_at = super::tokens::expiry(&client.app, granted.expires_in, self.clock.unix());
        let mut info = crate::domain::providers::UserInfo::default();
        if let Some(e) = client.app.entry() {
            info.extra = e.kept(&granted.other);
        }
        let secrets = TokenSecrets {
            access_token: granted.access_token.expose_secret().to_owned(),
            refresh_token: None,
            token_type: granted.token_type,
            scopes: granted.scopes.unwrap_or_else(|| integration.scope.clone()),
            other: granted.other,
            uid: None,
            info,
            raw_info: serde_json::Value::Null,
        };
        self.store_without_sign_in(link, integration, secrets, expires_at)
            .await
    }

    /// Stores credentials got without a sign-in (entered, or the app's own token) for the
    /// link's owner: the link is claimed, then spent with the token and its event in one step.
    async fn store_without_sign_in(
        &self,
        link: &Link,
        integration: &Integration,
        mut secrets: TokenSecrets,
        expires_at: Option<i64>,
    ) -> Result<Connected, FlowError> {
        keep_connection(&mut secrets, &integration.params);
        let now = self.clock.unix();
        let claimant = random_urlsafe(16);
        let key = link.link_id.key();
        if !self
            .store
            .claim_link(&link.bot_id, &key, &claimant, now + LINK_CLAIM_SECS, now)
            .await?
        {
            return Err(FlowError::LinkUsed);
        }
        let new = NewToken {
            bot_id: &link.bot_id,
            owner: &link.owner,
            alias: &link.alias,
            provider: &integration.provider,
            expires_at,
            keep_fresh: integration.keep_fresh,
        };
        let spend = Spend::Link {
            key: &key,
            claimant: &claimant,
        };
        let Some(token_id) = self.store_connected(&new, secrets, spend).await? else {
            return Err(FlowError::LinkUsed);
        };
        tracing::info!(bot_id = %link.bot_id, alias = %link.alias, %token_id, "credentials stored without a sign-in");
        Ok(Connected {
            alias: link.alias.clone(),
            provider: integration.provider.clone(),
            confirmation_code: None,
            redirect_to: None,
        })
    }
}
