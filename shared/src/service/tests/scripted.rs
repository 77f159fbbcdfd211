//! The callback and refresh use cases against a provider that answers from a script.

use super::*;

/// A provider that answers from a script and records what it was asked.
#[derive(Default)]
struct Scripted {
    /// Answers of the token endpoint, in order, for code exchanges and refreshes alike.
    token_answers: Mutex<std::collections::VecDeque<Result<GrantedToken, ProviderError>>>,
    user_info: Option<Value>,
    /// How long each refresh takes, to let concurrent callers pile up.
    refresh_delay: std::time::Duration,
    calls: Mutex<Vec<String>>,
}

impl Scripted {
    fn answer(self, a: Result<GrantedToken, ProviderError>) -> Self {
        self.token_answers.lock().unwrap().push_back(a);
        self
    }

    fn calls(&self) -> Vec<String> {
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

fn granted(access: &str, refresh: Option<&str>, expires_in: Option<u64>) -> GrantedToken {
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
    ) -> Result<crate::ports::Authorization, ProviderError> {
        use secrecy::ExposeSecret;
        self.calls.lock().unwrap().push("authorize".into());
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
        Ok(self.user_info.clone())
    }

    async fn discover(
        &self,
        _: &Url,
    ) -> Result<crate::domain::providers::Discovery, ProviderError> {
        Err(ProviderError::Config("no discovery in these tests".into()))
    }
}

fn events(s: &Setup) -> Vec<Value> {
    std::fs::read_to_string(events_path(s.dir.path()))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn detail_types(s: &Setup) -> Vec<String> {
    events(s)
        .iter()
        .map(|e| e["detail-type"].as_str().unwrap().to_owned())
        .collect()
}

/// Mints a link for user `u-1`, starts its flow and answers the flow's `state`.
async fn started_flow(s: &Setup) -> SecretString {
    let alias = Alias::parse("acme_idp").unwrap();
    let user = UserId::parse("u-1").unwrap();
    let link = s
        .service
        .create_link(&s.bot, &alias, Some(user))
        .await
        .unwrap();
    let link_id = LinkId::parse(link.url.rsplit('/').next().unwrap()).unwrap();
    let url = s.service.start(&link_id).await.unwrap();
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap();
    SecretString::from(state)
}

fn callback_with(state: &SecretString, code: &str) -> CallbackParams {
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
        .callback("acme_idp", callback_with(&state, "code-1"))
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
    assert_eq!(detail_types(&s), vec!["token:acme_idp"]);
    assert_eq!(events(&s)[0]["detail"]["token_id"], id.as_str());

    // The same callback again: the flow is spent, the provider is not asked again.
    let again = s
        .service
        .callback("acme_idp", callback_with(&state, "code-1"))
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
        .callback("acme_idp", callback_with(&state, "code-1"))
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
    assert_eq!(detail_types(&s), vec!["oauth_failed:acme_idp"]);
    assert_eq!(provider.count("user_info"), 0);

    // A callback on another provider's path stops before any token request.
    let state = started_flow(&s).await;
    let result = s
        .service
        .callback("other_idp", callback_with(&state, "code-2"))
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
    assert_eq!(detail_types(&s), vec!["token_revoked:acme_idp"]);
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
    assert_eq!(s.counts.store.token(&s.bot, &id).await.unwrap(), before);
    // The next caller refreshes at once: the lease was released.
    let view = s.service.access_token(&s.bot, &id).await.unwrap();
    assert_eq!(view.access_token.as_deref(), Some("at-2"));
    assert!(detail_types(&s).is_empty());
}

#[tokio::test]
async fn delete_revokes_the_refresh_token_and_reports_it() {
    let provider = Arc::new(Scripted::default());
    let s = setup_with(provider.clone()).await;
    let id = stored_token(&s, None, Some("rt-1")).await;
    assert!(s.service.delete_token(&s.bot, &id).await.unwrap());
    assert!(!s.service.delete_token(&s.bot, &id).await.unwrap());
    assert_eq!(provider.calls(), vec!["revoke rt-1"]);
    assert_eq!(detail_types(&s), vec!["token_deleted:acme_idp"]);
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
