//! The callback and refresh use cases against a provider that answers from a script.

use super::*;

/// A provider that answers from a script and records what it was asked.
#[derive(Default)]
pub(super) struct Scripted {
    /// Answers of the token endpoint, in order, for code exchanges and refreshes alike.
    token_answers: Mutex<std::collections::VecDeque<Result<GrantedToken, ProviderError>>>,
    user_info: Option<Value>,
    /// User-info answers that come before `user_info`, one per call.
    user_infos: Mutex<std::collections::VecDeque<Value>>,
    /// How long each refresh takes, to let concurrent callers pile up.
    refresh_delay: std::time::Duration,
    /// What discovery answers for any issuer.
    discovery: Option<crate::domain::providers::Discovery>,
    /// Discovery answers "unavailable" while this is set.
    discovery_down: std::sync::atomic::AtomicBool,
    /// What ID token validation answers: the claims, or why the token is refused.
    id_token: Option<Result<Value, String>>,
    /// The nonce of the last authorization request.
    nonce: Mutex<Option<String>>,
    calls: Mutex<Vec<String>>,
}

impl Scripted {
    pub(super) fn answer(self, a: Result<GrantedToken, ProviderError>) -> Self {
        self.token_answers.lock().unwrap().push_back(a);
        self
    }

    pub(super) fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn count(&self, prefix: &str) -> usize {
        self.calls()
            .iter()
            .filter(|c| c.starts_with(prefix))
            .count()
    }

    fn next(&self) -> Result<GrantedToken, ProviderError> {
        self.token_answers
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Err(ProviderError::Malformed("no answer scripted".into())))
    }
}

pub(super) fn granted(
    access: &str,
    refresh: Option<&str>,
    expires_in: Option<u64>,
) -> GrantedToken {
    GrantedToken {
        access_token: SecretString::from(access.to_owned()),
        refresh_token: refresh.map(|r| SecretString::from(r.to_owned())),
        token_type: "Bearer".into(),
        expires_in,
        scopes: None,
        other: Default::default(),
    }
}

#[async_trait]
impl ProviderClient for Scripted {
    fn authorize(
        &self,
        _: &ProviderApp,
        redirect_uri: &str,
        scopes: &[String],
        state: &SecretString,
        nonce: Option<&SecretString>,
    ) -> Result<crate::ports::Authorization, ProviderError> {
        use secrecy::ExposeSecret;
        self.calls.lock().unwrap().push("authorize".into());
        *self.nonce.lock().unwrap() = nonce.map(|n| n.expose_secret().to_owned());
        let mut url = Url::parse("https://idp.example/authorize").unwrap();
        url.query_pairs_mut()
            .append_pair("state", state.expose_secret())
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("scope", &scopes.join(" "));
        Ok(crate::ports::Authorization {
            url,
            pkce_verifier: Some(SecretString::from("verifier-canary-1".to_owned())),
        })
    }

    async fn exchange_code(
        &self,
        client: &RegisteredApp,
        redirect_uri: &str,
        code: &SecretString,
        verifier: Option<SecretString>,
    ) -> Result<GrantedToken, ProviderError> {
        use secrecy::ExposeSecret;
        self.calls.lock().unwrap().push(format!(
            "exchange_code code={} verifier={} secret={} redirect_uri={redirect_uri}",
            code.expose_secret(),
            verifier.as_ref().map_or("-", |v| v.expose_secret()),
            client.secret.as_ref().map_or("-", |s| s.expose_secret()),
        ));
        self.next()
    }

    async fn refresh(
        &self,
        _: &RegisteredApp,
        _: &str,
        refresh_token: &SecretString,
    ) -> Result<GrantedToken, ProviderError> {
        use secrecy::ExposeSecret;
        self.calls
            .lock()
            .unwrap()
            .push(format!("refresh {}", refresh_token.expose_secret()));
        tokio::time::sleep(self.refresh_delay).await;
        self.next()
    }

    async fn revoke(
        &self,
        _: &RegisteredApp,
        _: &SecretString,
        refresh_token: Option<&SecretString>,
    ) -> Result<(), ProviderError> {
        use secrecy::ExposeSecret;
        self.calls.lock().unwrap().push(format!(
            "revoke {}",
            refresh_token.map_or("-", |r| r.expose_secret())
        ));
        Ok(())
    }

    async fn user_info(
        &self,
        _: &ProviderApp,
        _: &SecretString,
    ) -> Result<Option<Value>, ProviderError> {
        self.calls.lock().unwrap().push("user_info".into());
        let next = self.user_infos.lock().unwrap().pop_front();
        Ok(next.or_else(|| self.user_info.clone()))
    }

    async fn verify_id_token(
        &self,
        _: &RegisteredApp,
        id_token: &str,
        nonce_hash: Option<&str>,
    ) -> Result<Value, ProviderError> {
        self.calls.lock().unwrap().push(format!(
            "verify_id_token {id_token} nonce_hash={}",
            nonce_hash.unwrap_or("-")
        ));
        match &self.id_token {
            Some(Ok(claims)) => Ok(claims.clone()),
            Some(Err(why)) => Err(ProviderError::IdToken(why.clone())),
            None => Err(ProviderError::IdToken("nothing scripted".into())),
        }
    }

    async fn discover(
        &self,
        _: &Url,
    ) -> Result<crate::domain::providers::Discovery, ProviderError> {
        self.calls.lock().unwrap().push("discover".into());
        if self.discovery_down.load(SeqCst) {
            return Err(ProviderError::Transient { retry_after: None });
        }
        self.discovery
            .clone()
            .ok_or_else(|| ProviderError::Config("no discovery scripted".into()))
    }
}

pub(super) async fn events(s: &Setup) -> Vec<Value> {
    delivered_events(s).await
}

pub(super) async fn detail_types(s: &Setup) -> Vec<String> {
    events(s)
        .await
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap().to_owned())
        .collect()
}

/// The browser the scripted tests' flows start and finish in.
pub(super) fn browser() -> BrowserKey {
    BrowserKey::parse(&"b".repeat(43)).unwrap()
}

/// Mints a link for user `u-1`.
pub(super) async fn minted_link(s: &Setup) -> LinkId {
    let alias = Alias::parse("acme_idp").unwrap();
    let user = UserId::parse("u-1").unwrap();
    let link = s
        .service
        .create_link(&s.bot, &alias, Some(user))
        .await
        .unwrap();
    LinkId::parse(link.url.rsplit('/').next().unwrap()).unwrap()
}

/// Starts a flow from `link` in `browser()` and answers its `state`.
pub(super) async fn start_from(s: &Setup, link_id: &LinkId) -> SecretString {
    let url = s.service.start(link_id, &browser()).await.unwrap();
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    SecretString::from(state)
}

/// Mints a link for user `u-1`, starts its flow and answers the flow's `state`.
pub(super) async fn started_flow(s: &Setup) -> SecretString {
    let link_id = minted_link(s).await;
    start_from(s, &link_id).await
}

pub(super) fn callback_with(state: &SecretString, code: &str) -> CallbackParams {
    use secrecy::ExposeSecret;
    CallbackParams {
        code: Some(SecretString::from(code.to_owned())),
        state: Some(SecretString::from(state.expose_secret().to_owned())),
        error: None,
        iss: None,
    }
}

#[tokio::test]
async fn a_callback_exchanges_its_code_once_with_the_flows_verifier() {
    let provider = Arc::new(
        Scripted {
            user_info: Some(serde_json::json!({"sub": "idp-42", "email": "ada@example.com"})),
            ..Default::default()
        }
        .answer(Ok(granted("at-new", Some("rt-new"), Some(3600)))),
    );
    let s = setup_with(provider.clone()).await;
    let state = started_flow(&s).await;

    let done = s
        .service
        .callback(
            "acme_idp",
            callback_with(&state, "code-1"),
            Some(&browser()),
        )
        .await
        .unwrap();
    assert_eq!(done.alias.as_str(), "acme_idp");
    let exchanges: Vec<String> = provider
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("exchange_code"))
        .collect();
    assert_eq!(
        exchanges,
        vec!["exchange_code code=code-1 verifier=verifier-canary-1 secret=s redirect_uri=https://svc.example/oauth/callback/acme_idp"]
    );

    let owner = Owner::User(UserId::parse("u-1").unwrap());
    let tokens = s.service.tokens_of(&s.bot, &owner).await.unwrap();
    let id = tokens.get(&Alias::parse("acme_idp").unwrap()).unwrap();
    let full = s.service.full_token(&s.bot, id).await.unwrap();
    assert_eq!(full.credentials.token, "at-new");
    assert_eq!(full.credentials.refresh_token.as_deref(), Some("rt-new"));
    assert_eq!(full.uid.as_deref(), Some("idp-42"));
    assert_eq!(detail_types(&s).await, vec!["token:acme_idp"]);
    assert_eq!(events(&s).await[0]["detail"]["token_id"], id.as_str());

    // The same callback again: the flow is spent, the provider is not asked again.
    let again = s
        .service
        .callback(
            "acme_idp",
            callback_with(&state, "code-1"),
            Some(&browser()),
        )
        .await;
    assert!(matches!(again, Err(FlowError::UnknownState)), "{again:?}");
    assert_eq!(provider.count("exchange_code"), 1);
}

#[tokio::test]
async fn a_refused_code_stores_nothing_and_reports_the_failure() {
    let provider = Arc::new(Scripted::default().answer(Err(ProviderError::Final {
        code: "invalid_grant".into(),
    })));
    let s = setup_with(provider.clone()).await;
    let state = started_flow(&s).await;
    let result = s
        .service
        .callback(
            "acme_idp",
            callback_with(&state, "code-1"),
            Some(&browser()),
        )
        .await;
    assert!(
        matches!(result, Err(FlowError::ProviderFailed)),
        "{result:?}"
    );
    let owner = Owner::User(UserId::parse("u-1").unwrap());
    assert!(s
        .service
        .tokens_of(&s.bot, &owner)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(detail_types(&s).await, vec!["oauth_failed:acme_idp"]);
    assert_eq!(provider.count("user_info"), 0);

    // A callback on another provider's path stops before any token request.
    let state = started_flow(&s).await;
    let result = s
        .service
        .callback(
            "other_idp",
            callback_with(&state, "code-2"),
            Some(&browser()),
        )
        .await;
    assert!(matches!(result, Err(FlowError::Mismatch)), "{result:?}");
    assert_eq!(provider.count("exchange_code"), 1);
}

#[tokio::test]
async fn a_due_token_is_refreshed_once_for_many_callers_and_the_rotation_is_kept() {
    let provider = Arc::new(
        Scripted {
            refresh_delay: std::time::Duration::from_millis(100),
            ..Default::default()
        }
        .answer(Ok(granted("at-2", Some("rt-2"), Some(3600)))),
    );
    let s = setup_with(provider.clone()).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let id = stored_token(&s, Some(now + 30), Some("rt-1")).await;

    let calls = (0..10).map(|_| s.service.access_token(&s.bot, &id));
    let views = futures::future::join_all(calls).await;
    for v in &views {
        let v = v.as_ref().unwrap();
        assert_eq!(
            (v.status, v.access_token.as_deref()),
            ("valid", Some("at-2"))
        );
    }
    assert_eq!(provider.calls(), vec!["refresh rt-1"]);
    let full = s.service.full_token(&s.bot, &id).await.unwrap();
    assert_eq!(full.credentials.refresh_token.as_deref(), Some("rt-2"));
    assert!(full.credentials.expires_at.unwrap() >= now + 3600);
}

#[tokio::test]
async fn a_refresh_without_rotation_keeps_the_old_refresh_token() {
    let provider = Arc::new(Scripted::default().answer(Ok(granted("at-2", None, Some(3600)))));
    let s = setup_with(provider.clone()).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let id = stored_token(&s, Some(now - 5), Some("rt-1")).await;
    let view = s.service.access_token(&s.bot, &id).await.unwrap();
    assert_eq!(view.access_token.as_deref(), Some("at-2"));
    let full = s.service.full_token(&s.bot, &id).await.unwrap();
    assert_eq!(full.credentials.refresh_token.as_deref(), Some("rt-1"));
}

#[tokio::test]
async fn a_refresh_refused_for_good_revokes_the_token_once() {
    let provider = Arc::new(Scripted::default().answer(Err(ProviderError::Final {
        code: "invalid_grant".into(),
    })));
    let s = setup_with(provider.clone()).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let id = stored_token(&s, Some(now - 5), Some("rt-1")).await;
    let view = s.service.access_token(&s.bot, &id).await.unwrap();
    assert_eq!((view.status, view.access_token), ("revoked", None));
    // Asked again: answered from the store, the provider is not called again.
    let view = s.service.access_token(&s.bot, &id).await.unwrap();
    assert_eq!(view.status, "revoked");
    assert_eq!(provider.calls(), vec!["refresh rt-1"]);
    assert_eq!(detail_types(&s).await, vec!["token_revoked:acme_idp"]);
}

#[tokio::test]
async fn a_transient_refresh_failure_changes_nothing_and_frees_the_lease() {
    let provider = Arc::new(
        Scripted::default()
            .answer(Err(ProviderError::Transient {
                retry_after: Some(7),
            }))
            .answer(Ok(granted("at-2", Some("rt-2"), Some(3600)))),
    );
    let s = setup_with(provider.clone()).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let id = stored_token(&s, Some(now + 30), Some("rt-1")).await;
    let before = s.counts.store.token(&s.bot, &id).await.unwrap();
    let err = s.service.access_token(&s.bot, &id).await.unwrap_err();
    assert!(
        matches!(err, ServiceError::ProviderUnavailable { retry_after: 7 }),
        "{err:?}"
    );
    // The credentials and their version are as they were; only the error is noted, for the
    // token's status.
    let after = s.counts.store.token(&s.bot, &id).await.unwrap().unwrap();
    let before = before.unwrap();
    assert_eq!(
        (&after.sealed, after.version, after.expires_at),
        (&before.sealed, before.version, before.expires_at)
    );
    assert_eq!(
        after.upkeep.last_refresh_error.as_deref(),
        Some("provider_unavailable")
    );
    // The next caller refreshes at once: the lease was released.
    let view = s.service.access_token(&s.bot, &id).await.unwrap();
    assert_eq!(view.access_token.as_deref(), Some("at-2"));
    assert!(detail_types(&s).await.is_empty());
}

#[tokio::test]
async fn delete_revokes_the_refresh_token_and_reports_it() {
    let provider = Arc::new(Scripted::default());
    let s = setup_with(provider.clone()).await;
    let id = stored_token(&s, None, Some("rt-1")).await;
    assert!(s.service.delete_token(&s.bot, &id).await.unwrap());
    assert!(!s.service.delete_token(&s.bot, &id).await.unwrap());
    assert_eq!(provider.calls(), vec!["revoke rt-1"]);
    assert_eq!(detail_types(&s).await, vec!["token_deleted:acme_idp"]);
}

#[tokio::test]
async fn twenty_callers_of_a_due_short_lived_token_share_one_refresh() {
    // A provider whose access tokens live 8 seconds and whose refresh tokens work once:
    // a second refresh with `rt-1` would find nothing scripted and fail.
    let provider = Arc::new(
        Scripted {
            refresh_delay: std::time::Duration::from_millis(100),
            ..Default::default()
        }
        .answer(Ok(granted("at-8s", Some("rt-2"), Some(8)))),
    );
    let s = setup_with(provider.clone()).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let id = stored_token(&s, Some(now + 3), Some("rt-1")).await;

    let calls = (0..20).map(|_| s.service.access_token(&s.bot, &id));
    for view in futures::future::join_all(calls).await {
        let view = view.unwrap();
        assert_eq!(
            (view.status, view.access_token.as_deref()),
            ("valid", Some("at-8s"))
        );
    }
    assert_eq!(provider.calls(), vec!["refresh rt-1"]);
    // Right after the refresh the 8-second token is not due again.
    let view = s.service.access_token(&s.bot, &id).await.unwrap();
    assert_eq!(view.access_token.as_deref(), Some("at-8s"));
    assert_eq!(provider.count("refresh"), 1);
}

/// A provider registered by `issuer` whose metadata promises `iss` on every callback.
async fn oidc_setup(provider: Arc<Scripted>) -> Setup {
    let s = setup_with(provider).await;
    let input: ProviderAppInput = serde_json::from_value(serde_json::json!({
        "client_id": "c", "client_secret": "s", "issuer": "https://idp.example"
    }))
    .unwrap();
    s.service
        .put_provider(&ProviderName::parse("oidc_idp").unwrap(), input)
        .await
        .unwrap();
    s.service
        .put_integrations(
            &s.bot,
            "- provider: oidc_idp\n  alias: acme_idp\n  context: user\n",
        )
        .await
        .unwrap();
    s
}

fn idp_metadata() -> crate::domain::providers::Discovery {
    serde_json::from_value(serde_json::json!({
        "issuer": "https://idp.example",
        "authorization_endpoint": "https://idp.example/auth",
        "token_endpoint": "https://idp.example/token",
        "authorization_response_iss_parameter_supported": true
    }))
    .unwrap()
}

#[tokio::test]
async fn a_callback_without_the_promised_iss_is_refused_before_the_exchange() {
    let provider = Arc::new(
        Scripted {
            discovery: Some(idp_metadata()),
            ..Default::default()
        }
        .answer(Ok(granted("at", Some("rt"), Some(3600)))),
    );
    let s = oidc_setup(provider.clone()).await;
    for iss in [
        None,
        Some("https://idp.example/"),
        Some("https://evil.example"),
    ] {
        let state = started_flow(&s).await;
        let mut params = callback_with(&state, "code-1");
        params.iss = iss.map(str::to_owned);
        let result = s
            .service
            .callback("oidc_idp", params, Some(&browser()))
            .await;
        assert!(
            matches!(result, Err(FlowError::Mismatch)),
            "{iss:?}: {result:?}"
        );
    }
    assert_eq!(provider.count("exchange_code"), 0);

    let state = started_flow(&s).await;
    let mut params = callback_with(&state, "code-1");
    params.iss = Some("https://idp.example".into());
    s.service
        .callback("oidc_idp", params, Some(&browser()))
        .await
        .unwrap();
    assert_eq!(provider.count("exchange_code"), 1);
}

fn with_id_token(mut g: GrantedToken, jwt: &str) -> GrantedToken {
    g.other.insert("id_token".into(), Value::String(jwt.into()));
    g
}

#[tokio::test]
async fn validated_id_token_claims_name_the_user_and_keep_email_verified() {
    let provider = Arc::new(
        Scripted {
            discovery: Some(idp_metadata()),
            id_token: Some(Ok(serde_json::json!({
                "iss": "https://idp.example", "sub": "user-7", "email": "ada@example.com",
                "email_verified": true
            }))),
            user_info: Some(serde_json::json!({"sub": "user-7", "name": "Ada"})),
            ..Default::default()
        }
        .answer(Ok(with_id_token(
            granted("at", Some("rt"), Some(3600)),
            "jwt-1",
        ))),
    );
    let s = oidc_setup(provider.clone()).await;
    let state = started_flow(&s).await;
    let mut params = callback_with(&state, "code-1");
    params.iss = Some("https://idp.example".into());
    s.service
        .callback("oidc_idp", params, Some(&browser()))
        .await
        .unwrap();

    // The nonce sent with the authorization request is the one the token must carry.
    let nonce = provider
        .nonce
        .lock()
        .unwrap()
        .clone()
        .expect("a nonce for openid");
    let expected = format!(
        "verify_id_token jwt-1 nonce_hash={}",
        crate::domain::ids::sha256_hex(&nonce)
    );
    assert!(
        provider.calls().contains(&expected),
        "{:?}",
        provider.calls()
    );

    let owner = Owner::User(UserId::parse("u-1").unwrap());
    let tokens = s.service.tokens_of(&s.bot, &owner).await.unwrap();
    let full = s
        .service
        .full_token(&s.bot, tokens.values().next().unwrap())
        .await
        .unwrap();
    assert_eq!(full.uid.as_deref(), Some("user-7"));
    assert_eq!(full.info.email.as_deref(), Some("ada@example.com"));
    assert_eq!(full.info.email_verified, Some(true));
    assert_eq!(full.info.name.as_deref(), Some("Ada"));
}

#[tokio::test]
async fn an_id_token_that_fails_validation_stores_nothing() {
    let provider = Arc::new(
        Scripted {
            discovery: Some(idp_metadata()),
            id_token: Some(Err("the nonce is not this sign-in's".into())),
            user_info: Some(serde_json::json!({"sub": "user-7"})),
            ..Default::default()
        }
        .answer(Ok(with_id_token(
            granted("at", Some("rt"), Some(3600)),
            "jwt-1",
        ))),
    );
    let s = oidc_setup(provider.clone()).await;
    let state = started_flow(&s).await;
    let mut params = callback_with(&state, "code-1");
    params.iss = Some("https://idp.example".into());
    let result = s
        .service
        .callback("oidc_idp", params, Some(&browser()))
        .await;
    assert!(
        matches!(result, Err(FlowError::IdentityRejected)),
        "{result:?}"
    );
    let owner = Owner::User(UserId::parse("u-1").unwrap());
    assert!(s
        .service
        .tokens_of(&s.bot, &owner)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(detail_types(&s).await, vec!["oauth_failed:acme_idp"]);
    assert_eq!(provider.count("user_info"), 0);
}

#[tokio::test]
async fn unverifiable_id_token_claims_are_not_used() {
    // A provider registered by endpoints has no issuer to check an ID token against.
    let provider = Arc::new(Scripted::default().answer(Ok(with_id_token(
        granted("at", Some("rt"), Some(3600)),
        "jwt-1",
    ))));
    let s = setup_with(provider.clone()).await;
    let state = started_flow(&s).await;
    s.service
        .callback(
            "acme_idp",
            callback_with(&state, "code-1"),
            Some(&browser()),
        )
        .await
        .unwrap();
    assert_eq!(provider.count("verify_id_token"), 0);
    assert!(
        provider.nonce.lock().unwrap().is_none(),
        "no openid, no nonce"
    );
    let owner = Owner::User(UserId::parse("u-1").unwrap());
    let tokens = s.service.tokens_of(&s.bot, &owner).await.unwrap();
    let full = s
        .service
        .full_token(&s.bot, tokens.values().next().unwrap())
        .await
        .unwrap();
    assert_eq!((full.uid, full.info.email_verified), (None, None));
}

#[tokio::test]
async fn a_provider_down_at_registration_is_discovered_when_first_needed() {
    let provider = Arc::new(Scripted {
        discovery: Some(idp_metadata()),
        discovery_down: true.into(),
        ..Default::default()
    });
    let s = oidc_setup(provider.clone()).await;
    let listed = s.service.providers().await.unwrap();
    let app = listed
        .iter()
        .find(|a| a.name.as_str() == "oidc_idp")
        .unwrap();
    assert!(
        app.not_ready.as_deref().unwrap().contains("discovery"),
        "{app:?}"
    );
    assert!(app.has_client_secret);

    // Still down when a user starts: the start page says so, nothing is stored.
    let alias = Alias::parse("acme_idp").unwrap();
    let user = UserId::parse("u-1").unwrap();
    let link = s
        .service
        .create_link(&s.bot, &alias, Some(user))
        .await
        .unwrap();
    let link_id = LinkId::parse(link.url.rsplit('/').next().unwrap()).unwrap();
    let started = s.service.start(&link_id, &browser()).await;
    assert!(
        matches!(started, Err(FlowError::Unavailable)),
        "{started:?}"
    );

    // The provider is back: the next start discovers it, and the app is ready from then on.
    provider.discovery_down.store(false, SeqCst);
    let url = s.service.start(&link_id, &browser()).await.unwrap();
    assert!(url.as_str().starts_with("https://idp.example/authorize"));
    let listed = s.service.providers().await.unwrap();
    let app = listed
        .iter()
        .find(|a| a.name.as_str() == "oidc_idp")
        .unwrap();
    assert_eq!(app.not_ready, None);
    assert_eq!(app.token_url, "https://idp.example/token");
    assert!(app.has_client_secret);
    let discoveries = provider.count("discover");
    s.service.start(&link_id, &browser()).await.unwrap();
    assert_eq!(provider.count("discover"), discoveries, "discovered once");
}

/// A reconnect stores the new grant over the old one; the old grant is revoked only when it
/// belonged to another account, since a provider that keeps one grant per user and client
/// would revoke the new grant with the old refresh token.
#[tokio::test]
async fn a_reconnect_revokes_the_replaced_grant_only_when_the_account_changed() {
    let provider = Arc::new(
        Scripted {
            user_infos: Mutex::new(
                [
                    serde_json::json!({"sub": "idp-1"}),
                    serde_json::json!({"sub": "idp-1"}),
                    serde_json::json!({"sub": "idp-2"}),
                ]
                .into(),
            ),
            ..Default::default()
        }
        .answer(Ok(granted("at-1", Some("rt-1"), Some(3600))))
        .answer(Ok(granted("at-2", Some("rt-2"), Some(3600))))
        .answer(Ok(granted("at-3", Some("rt-3"), Some(3600)))),
    );
    let s = setup_with(provider.clone()).await;
    let owner = Owner::User(UserId::parse("u-1").unwrap());
    let mut ids = Vec::new();
    for code in ["code-1", "code-2", "code-3"] {
        let state = started_flow(&s).await;
        s.service
            .callback("acme_idp", callback_with(&state, code), Some(&browser()))
            .await
            .unwrap();
        let tokens = s.service.tokens_of(&s.bot, &owner).await.unwrap();
        ids.push(
            tokens
                .get(&Alias::parse("acme_idp").unwrap())
                .unwrap()
                .clone(),
        );
    }
    // One token id throughout; the same account kept its grant, the other account's
    // reconnect revoked the grant it replaced, after storing its own.
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let revocations: Vec<String> = provider
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("revoke"))
        .collect();
    assert_eq!(revocations, vec!["revoke rt-2"]);
    let full = s.service.full_token(&s.bot, &ids[0]).await.unwrap();
    assert_eq!(full.credentials.refresh_token.as_deref(), Some("rt-3"));
    assert_eq!(full.uid.as_deref(), Some("idp-2"));
}

#[tokio::test]
async fn a_callback_from_another_browser_is_refused_before_the_exchange() {
    let provider = Arc::new(Scripted::default().answer(Ok(granted("at-1", Some("rt-1"), None))));
    let s = setup_with(provider.clone()).await;
    let other = BrowserKey::generate();
    for key in [Some(&other), None] {
        let state = started_flow(&s).await;
        let result = s
            .service
            .callback("acme_idp", callback_with(&state, "code-1"), key)
            .await;
        assert!(
            matches!(result, Err(FlowError::BrowserMismatch)),
            "{result:?}"
        );
        // The flow is gone: the same state from the right browser does not get through.
        let again = s
            .service
            .callback(
                "acme_idp",
                callback_with(&state, "code-1"),
                Some(&browser()),
            )
            .await;
        assert!(matches!(again, Err(FlowError::UnknownState)), "{again:?}");
    }
    assert_eq!(provider.count("exchange_code"), 0);
    let failures = events(&s).await;
    assert_eq!(failures.len(), 2);
    for e in &failures {
        assert_eq!(e["detail-type"], "oauth_failed:acme_idp");
        assert_eq!(e["detail"]["reason"], "browser_mismatch");
    }
}

#[tokio::test]
async fn two_flows_from_one_link_connect_once() {
    let provider = Arc::new(
        Scripted::default()
            .answer(Ok(granted("at-1", Some("rt-1"), None)))
            .answer(Ok(granted("at-2", Some("rt-2"), None))),
    );
    let s = setup_with(provider.clone()).await;
    let link = minted_link(&s).await;
    let first = start_from(&s, &link).await;
    let second = start_from(&s, &link).await;
    s.service
        .callback(
            "acme_idp",
            callback_with(&second, "code-2"),
            Some(&browser()),
        )
        .await
        .unwrap();
    let late = s
        .service
        .callback(
            "acme_idp",
            callback_with(&first, "code-1"),
            Some(&browser()),
        )
        .await;
    assert!(matches!(late, Err(FlowError::LinkUsed)), "{late:?}");
    assert_eq!(provider.count("exchange_code"), 1);
    assert_eq!(detail_types(&s).await, vec!["token:acme_idp"]);
    // A spent link starts nothing.
    let again = s.service.start(&link, &browser()).await;
    assert!(matches!(again, Err(FlowError::UnknownLink)), "{again:?}");
}

#[tokio::test]
async fn a_link_starts_a_bounded_number_of_flows() {
    let s = setup_with(Arc::new(Scripted::default())).await;
    let link = minted_link(&s).await;
    for _ in 0..crate::service::flow::MAX_FLOWS_PER_LINK {
        start_from(&s, &link).await;
    }
    let more = s.service.start(&link, &BrowserKey::generate()).await;
    assert!(matches!(more, Err(FlowError::LinkOverused)), "{more:?}");
}

/// The code a `confirm: code` sign-in page would show, from the callback's answer.
fn shown_code(done: &crate::service::Connected) -> String {
    use secrecy::ExposeSecret;
    done.confirmation_code
        .as_ref()
        .expect("a confirmation code")
        .expose_secret()
        .to_owned()
}

fn another_code(code: &str) -> &'static str {
    if code == "000000" {
        "000001"
    } else {
        "000000"
    }
}

#[tokio::test]
async fn a_sign_in_with_confirm_code_waits_for_the_users_code() {
    let provider = Arc::new(
        Scripted::default()
            .answer(Ok(granted("at-1", Some("rt-1"), Some(3600))))
            .answer(Ok(granted("at-2", Some("rt-2"), Some(3600))))
            .answer(Ok(granted("at-3", Some("rt-3"), Some(3600)))),
    );
    let s = setup_with(provider.clone()).await;
    s.service
        .put_integrations(
            &s.bot,
            "- provider: acme_idp\n  context: user\n  confirm: code\n",
        )
        .await
        .unwrap();
    let user = UserId::parse("u-1").unwrap();
    let owner = Owner::User(user.clone());
    let invalid = |r: &Result<crate::service::Confirmed, ServiceError>| {
        matches!(r, Err(ServiceError::InvalidConfirmationCode))
    };

    // The sign-in succeeds but stores nothing yet: no token, no event.
    let state = started_flow(&s).await;
    let done = s
        .service
        .callback(
            "acme_idp",
            callback_with(&state, "code-1"),
            Some(&browser()),
        )
        .await
        .unwrap();
    let code = shown_code(&done);
    assert_eq!(code.len(), 6);
    assert!(code.bytes().all(|b| b.is_ascii_digit()));
    assert!(s
        .service
        .tokens_of(&s.bot, &owner)
        .await
        .unwrap()
        .is_empty());
    assert!(detail_types(&s).await.is_empty());

    // A wrong code (or a malformed one) is refused; the right one stores the token, once.
    for wrong in [another_code(&code), "12345", "abcdef"] {
        assert!(invalid(&s.service.confirm_code(&s.bot, &user, wrong).await));
    }
    let other_user = UserId::parse("u-2").unwrap();
    assert!(invalid(
        &s.service.confirm_code(&s.bot, &other_user, &code).await
    ));
    let confirmed = s.service.confirm_code(&s.bot, &user, &code).await.unwrap();
    assert_eq!(confirmed.alias.as_str(), "acme_idp");
    let tokens = s.service.tokens_of(&s.bot, &owner).await.unwrap();
    assert_eq!(
        tokens.values().collect::<Vec<_>>(),
        vec![&confirmed.token_id]
    );
    let full = s
        .service
        .full_token(&s.bot, &confirmed.token_id)
        .await
        .unwrap();
    assert_eq!(full.credentials.token, "at-1");
    assert_eq!(detail_types(&s).await, vec!["token:acme_idp"]);
    assert_eq!(
        events(&s).await[0]["detail"]["token_id"],
        confirmed.token_id.as_str()
    );
    assert!(invalid(&s.service.confirm_code(&s.bot, &user, &code).await));

    // Five wrong codes drop a waiting sign-in and revoke its grant at the provider.
    let state = started_flow(&s).await;
    let done = s
        .service
        .callback(
            "acme_idp",
            callback_with(&state, "code-2"),
            Some(&browser()),
        )
        .await
        .unwrap();
    let code = shown_code(&done);
    for _ in 0..crate::service::MAX_WRONG_CODES {
        let r = s
            .service
            .confirm_code(&s.bot, &user, another_code(&code))
            .await;
        assert!(invalid(&r));
    }
    assert!(invalid(&s.service.confirm_code(&s.bot, &user, &code).await));
    assert_eq!(
        provider
            .calls()
            .iter()
            .filter(|c| c.starts_with("revoke"))
            .collect::<Vec<_>>(),
        vec!["revoke rt-2"]
    );
    let last = events(&s).await.pop().unwrap();
    assert_eq!(last["detail-type"], "oauth_failed:acme_idp");
    assert_eq!(last["detail"]["reason"], "confirmation_failed");
    let full = s
        .service
        .full_token(&s.bot, &confirmed.token_id)
        .await
        .unwrap();
    assert_eq!(
        full.credentials.token, "at-1",
        "the stored token is untouched"
    );

    // A sign-in whose 10 minutes passed is dropped too, even with its right code.
    let state = started_flow(&s).await;
    let done = s
        .service
        .callback(
            "acme_idp",
            callback_with(&state, "code-3"),
            Some(&browser()),
        )
        .await
        .unwrap();
    let code = shown_code(&done);
    let waiting = s.counts.store.pendings_of(&s.bot, &user).await.unwrap();
    assert_eq!(waiting.len(), 1);
    let mut expired = waiting[0].clone();
    assert!(s.counts.store.drop_pending(&expired, &[]).await.unwrap());
    expired.expires_at = time::OffsetDateTime::now_utc().unix_timestamp() - 1;
    let key = claimed_link(&s, &Owner::User(user.clone())).await;
    assert!(s
        .counts
        .store
        .put_pending(&expired, &key, "setup")
        .await
        .unwrap());
    assert!(invalid(&s.service.confirm_code(&s.bot, &user, &code).await));
    assert!(provider.calls().contains(&"revoke rt-3".to_owned()));
    assert!(s
        .counts
        .store
        .pendings_of(&s.bot, &user)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        events(&s).await.pop().unwrap()["detail"]["reason"],
        "confirmation_failed"
    );
}

#[tokio::test]
async fn a_sign_in_confirmed_by_redirect_waits_for_the_platform() {
    let provider = Arc::new(
        Scripted::default()
            .answer(Ok(granted("at-1", Some("rt-1"), Some(3600))))
            .answer(Ok(granted("at-2", Some("rt-2"), Some(3600)))),
    );
    let s = setup_with(provider.clone()).await;
    s.service
        .put_integrations(
            &s.bot,
            "- provider: acme_idp\n  context: user\n  confirm: redirect\n",
        )
        .await
        .unwrap();
    let alias = Alias::parse("acme_idp").unwrap();
    let user = UserId::parse("u-1").unwrap();
    let owner = Owner::User(user.clone());

    // No link until the operator sets where to send the browser, and only a sound URL.
    let refused = s
        .service
        .create_link(&s.bot, &alias, Some(user.clone()))
        .await;
    assert!(
        matches!(refused, Err(ServiceError::ConfirmUrlNotSet(_))),
        "{refused:?}"
    );
    for bad in [
        "http://chat.example/confirm",
        "https://u:p@chat.example/confirm",
        "https://chat.example/confirm#x",
        "https://chat.example/confirm?flow=1",
        "javascript:alert(1)",
    ] {
        let r = s.service.set_confirm_url(&s.bot, Some(bad)).await;
        assert!(
            matches!(r, Err(ServiceError::InvalidConfirmUrl(_))),
            "{bad}: {r:?}"
        );
    }
    s.service
        .set_confirm_url(&s.bot, Some("https://chat.example/confirm?x=1"))
        .await
        .unwrap();

    let flow_of = |done: &crate::service::Connected| {
        let to = done.redirect_to.clone().expect("a redirect");
        assert!(to
            .as_str()
            .starts_with("https://chat.example/confirm?x=1&flow="));
        assert!(done.confirmation_code.is_none());
        to.query_pairs()
            .find(|(k, _)| k == "flow")
            .map(|(_, v)| v.into_owned())
            .unwrap()
    };

    // Confirmed for another user: dropped, revoked, reported.
    let state = started_flow(&s).await;
    let done = s
        .service
        .callback(
            "acme_idp",
            callback_with(&state, "code-1"),
            Some(&browser()),
        )
        .await
        .unwrap();
    let flow = flow_of(&done);
    assert!(s
        .service
        .tokens_of(&s.bot, &owner)
        .await
        .unwrap()
        .is_empty());
    assert!(detail_types(&s).await.is_empty());
    let other = UserId::parse("u-2").unwrap();
    let r = s.service.confirm_flow(&s.bot, &flow, &other).await;
    assert!(matches!(r, Err(ServiceError::UserMismatch)), "{r:?}");
    let r = s.service.confirm_flow(&s.bot, &flow, &user).await;
    assert!(matches!(r, Err(ServiceError::FlowNotFound)), "{r:?}");
    assert!(provider.calls().contains(&"revoke rt-1".to_owned()));
    let last = events(&s).await.pop().unwrap();
    assert_eq!(last["detail-type"], "oauth_failed:acme_idp");
    assert_eq!(last["detail"]["reason"], "confirmation_failed");

    // Confirmed for the link's user: stored, once.
    let state = started_flow(&s).await;
    let done = s
        .service
        .callback(
            "acme_idp",
            callback_with(&state, "code-2"),
            Some(&browser()),
        )
        .await
        .unwrap();
    let flow = flow_of(&done);
    let confirmed = s.service.confirm_flow(&s.bot, &flow, &user).await.unwrap();
    let tokens = s.service.tokens_of(&s.bot, &owner).await.unwrap();
    assert_eq!(tokens.get(&alias), Some(&confirmed.token_id));
    let full = s
        .service
        .full_token(&s.bot, &confirmed.token_id)
        .await
        .unwrap();
    assert_eq!(full.credentials.token, "at-2");
    assert_eq!(
        events(&s).await.pop().unwrap()["detail-type"],
        "token:acme_idp"
    );
    let again = s.service.confirm_flow(&s.bot, &flow, &user).await;
    assert!(
        matches!(again, Err(ServiceError::FlowNotFound)),
        "{again:?}"
    );
    let unknown = s.service.confirm_flow(&s.bot, "nope", &user).await;
    assert!(
        matches!(unknown, Err(ServiceError::FlowNotFound)),
        "{unknown:?}"
    );
}

/// Once the provider has answered a refresh, its old refresh token may be spent: a store
/// that fails for a moment does not lose the rotated one.
#[tokio::test]
async fn a_refresh_survives_a_store_that_fails_for_a_moment_after_the_provider_answered() {
    let provider =
        Arc::new(Scripted::default().answer(Ok(granted("at-2", Some("rt-2"), Some(3600)))));
    let s = setup_with(provider.clone()).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let id = stored_token(&s, Some(now - 5), Some("rt-1")).await;
    s.counts.fail("commit_refresh", 3);

    let view = s.service.access_token(&s.bot, &id).await.unwrap();
    assert_eq!(
        (view.status, view.access_token.as_deref()),
        ("valid", Some("at-2"))
    );
    assert_eq!(provider.calls(), vec!["refresh rt-1"]);
    assert_eq!(s.counts.still_failing("commit_refresh"), 0);
    let full = s.service.full_token(&s.bot, &id).await.unwrap();
    assert_eq!(full.credentials.refresh_token.as_deref(), Some("rt-2"));
}

/// What can fail for a dependency fails before the provider is called: with the key service
/// down, a due token's refresh token is not spent.
#[tokio::test]
async fn a_key_service_that_is_down_stops_a_refresh_before_the_provider_is_called() {
    let provider =
        Arc::new(Scripted::default().answer(Ok(granted("at-2", Some("rt-2"), Some(3600)))));
    let s = setup_with(provider.clone()).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let id = stored_token(&s, Some(now - 5), Some("rt-1")).await;
    s.counts.failing_seals.store(1, SeqCst);

    let refused = s.service.access_token(&s.bot, &id).await;
    assert!(matches!(refused, Err(ServiceError::Seal(_))), "{refused:?}");
    assert!(provider.calls().is_empty(), "{:?}", provider.calls());

    // Back up: the same refresh token refreshes.
    let view = s.service.access_token(&s.bot, &id).await.unwrap();
    assert_eq!(view.access_token.as_deref(), Some("at-2"));
    assert_eq!(provider.calls(), vec!["refresh rt-1"]);
}
