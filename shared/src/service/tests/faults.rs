//! The fault table at the ports: each dependency fails at each step of connect, refresh and
//! delete, and the test shows what the caller gets, what is kept, and that the event comes
//! exactly once when the dependency is back. (`docs/faults.md` gives the table; the
//! end-to-end suite repeats the rows that need real processes.)

use super::scripted::*;
use super::*;
use crate::service::FlowError;

fn user() -> Owner {
    Owner::User(UserId::parse("u-1").unwrap())
}

async fn tokens(s: &Setup) -> BTreeMap<Alias, TokenId> {
    s.service.tokens_of(&s.bot, &user()).await.unwrap()
}

/// Lets the claim on `link` lapse at once, as the passing of LINK_CLAIM_SECS would.
async fn lapse_claim(s: &Setup, link: &LinkId) {
    assert!(s
        .counts
        .store
        .claim_link(&s.bot, &link.key(), "lapsed", 0, i64::MAX / 4)
        .await
        .unwrap());
}

/// Starts a flow from `link` and ends it with `code`, in the flow's browser.
async fn sign_in(
    s: &Setup,
    link: &LinkId,
    code: &str,
) -> Result<crate::service::Connected, FlowError> {
    let state = start_from(s, link).await;
    s.service
        .callback("acme_idp", callback_with(&state, code), Some(&browser()))
        .await
}

/// What a callback that failed at its end leaves: no token, no event, the link unspent.
async fn assert_kept_nothing(s: &Setup, link: &LinkId) {
    assert!(tokens(s).await.is_empty());
    assert!(events(s).await.is_empty());
    assert!(
        s.counts.store.link(link).await.unwrap().is_some(),
        "the link is not spent"
    );
}

/// Store down when the callback ends: the caller sees 503, nothing is kept (no token, no
/// event), and the same link connects once the store is back.
#[tokio::test]
async fn connect_store_down_at_the_end_keeps_nothing_and_the_link_works_again() {
    let provider = Arc::new(
        Scripted::default()
            .answer(Ok(granted("at-1", Some("rt-1"), Some(3600))))
            .answer(Ok(granted("at-2", Some("rt-2"), Some(3600)))),
    );
    let s = setup_with(provider.clone()).await;
    let link = minted_link(&s).await;
    s.counts.fail("save_connected", 1);
    let result = sign_in(&s, &link, "code-1").await;
    assert!(
        matches!(
            result,
            Err(FlowError::Internal(ServiceError::Store(
                StoreError::Unavailable(_)
            )))
        ),
        "{result:?}"
    );
    assert_kept_nothing(&s, &link).await;

    lapse_claim(&s, &link).await;
    sign_in(&s, &link, "code-2").await.unwrap();
    assert_eq!(tokens(&s).await.len(), 1);
    assert_eq!(detail_types(&s).await, vec!["token:acme_idp"]);
    assert_eq!(s.counts.store.link(&link).await.unwrap(), None);
}

/// Key service down when the token is sealed: the same, before anything is written.
#[tokio::test]
async fn connect_key_service_down_keeps_nothing() {
    let provider =
        Arc::new(Scripted::default().answer(Ok(granted("at-1", Some("rt-1"), Some(3600)))));
    let s = setup_with(provider.clone()).await;
    let link = minted_link(&s).await;
    s.counts.failing_seals.store(1, SeqCst);
    let result = sign_in(&s, &link, "code-1").await;
    assert!(
        matches!(
            result,
            Err(FlowError::Internal(ServiceError::Seal(
                SealError::Unavailable(_)
            )))
        ),
        "{result:?}"
    );
    assert_kept_nothing(&s, &link).await;
}

/// A failure reported after the flow was used up: its event is written on its own, and a
/// store that fails twice still gets it, once.
#[tokio::test]
async fn a_failure_event_survives_a_store_that_fails_twice() {
    let s = setup_with(Arc::new(Scripted::default())).await;
    let state = started_flow(&s).await;
    s.counts.fail("record_events", 2);
    let declined = CallbackParams {
        error: Some("access_denied".into()),
        ..callback_with(&state, "unused")
    };
    let result = s
        .service
        .callback("acme_idp", declined, Some(&browser()))
        .await;
    assert!(
        matches!(result, Err(FlowError::Declined { .. })),
        "{result:?}"
    );
    assert_eq!(detail_types(&s).await, vec!["oauth_failed:acme_idp"]);
}

/// The provider took a refresh but its answer was lost (a timeout after sending, a 502): the
/// caller sees 503, the token is marked unsettled, and when the provider then refuses the
/// old refresh token, the revocation says it was our fault.
#[tokio::test]
async fn a_lost_refresh_answer_then_invalid_grant_is_reported_as_refresh_outcome_unknown() {
    let provider = Arc::new(
        Scripted::default()
            .answer(Err(ProviderError::OutcomeUnknown))
            .answer(Err(ProviderError::Final {
                code: "invalid_grant".into(),
            })),
    );
    let s = setup_with(provider.clone()).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let id = stored_token(&s, Some(now - 5), Some("rt-1")).await;
    let lost = s.service.access_token(&s.bot, &id).await;
    assert!(
        matches!(lost, Err(ServiceError::ProviderUnavailable { .. })),
        "{lost:?}"
    );
    let record = s.counts.store.token(&s.bot, &id).await.unwrap().unwrap();
    assert!(record.refresh_unsettled.is_some());
    assert_eq!(record.status, TokenStatus::Active);
    assert!(events(&s).await.is_empty());

    let view = s.service.access_token(&s.bot, &id).await.unwrap();
    assert_eq!(view.status, "revoked");
    let events = events(&s).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["detail-type"], "token_revoked:acme_idp");
    assert_eq!(events[0]["detail"]["reason"], "refresh_outcome_unknown");
    assert_eq!(provider.calls(), vec!["refresh rt-1", "refresh rt-1"]);
}

/// A refresh that is refused for good while the store is down: the token stays as it was,
/// no event; once the store is back the revocation and its event are written together, once.
#[tokio::test]
async fn a_revocation_the_store_could_not_write_is_written_once_later() {
    let refused = || {
        Err(ProviderError::Final {
            code: "invalid_grant".into(),
        })
    };
    let provider = Arc::new(Scripted::default().answer(refused()).answer(refused()));
    let s = setup_with(provider.clone()).await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let id = stored_token(&s, Some(now - 5), Some("rt-1")).await;
    s.counts.fail("commit_refresh", 1);
    let failed = s.service.access_token(&s.bot, &id).await;
    assert!(matches!(failed, Err(ServiceError::Store(_))), "{failed:?}");
    let record = s.counts.store.token(&s.bot, &id).await.unwrap().unwrap();
    assert_eq!(record.status, TokenStatus::Active);
    assert!(events(&s).await.is_empty());

    let view = s.service.access_token(&s.bot, &id).await.unwrap();
    assert_eq!(view.status, "revoked");
    let events = events(&s).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["detail"]["reason"], "provider_refused");
}

/// Store down at a delete: 503-worthy error, the token stays and no event is written; the
/// grant was revoked first (what the caller asked for), and the next delete revokes again
/// (harmless: RFC 7009 §2.2 answers 200 for a dead token), removes it and reports it once.
#[tokio::test]
async fn a_delete_that_meets_a_store_fault_keeps_the_token_and_reports_once_later() {
    let provider = Arc::new(Scripted::default());
    let s = setup_with(provider.clone()).await;
    let id = stored_token(&s, None, Some("rt-1")).await;
    s.counts.fail("delete_token", 1);
    let failed = s.service.delete_token(&s.bot, &id).await;
    assert!(matches!(failed, Err(ServiceError::Store(_))), "{failed:?}");
    assert!(s.counts.store.token(&s.bot, &id).await.unwrap().is_some());
    assert_eq!(provider.calls(), vec!["revoke rt-1"]);
    assert!(events(&s).await.is_empty());

    assert!(s.service.delete_token(&s.bot, &id).await.unwrap());
    assert_eq!(provider.calls(), vec!["revoke rt-1", "revoke rt-1"]);
    assert_eq!(detail_types(&s).await, vec!["token_deleted:acme_idp"]);
    assert!(!s.service.delete_token(&s.bot, &id).await.unwrap());
}
