//! One contract suite per port. Every implementation runs the same suite: the embedded ones
//! in this crate's tests, the AWS ones against an emulator.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::crypto::Sealed;
use crate::domain::ids::{Alias, BotId, LinkId, ProviderName, TokenId, UserId};
use crate::domain::integrations::{Context, Integration};
use crate::domain::providers::ProviderAppInput;
use crate::domain::token::{Flow, Link, Owner, TokenRecord, TokenStatus};
use crate::ports::{Purpose, SaveOutcome, SealContext, Sealer, Store};
use std::sync::Arc;

fn bot(id: &str) -> BotId {
    BotId::parse(id).unwrap_or_else(|e| unreachable!("{e}"))
}

fn alias(a: &str) -> Alias {
    Alias::parse(a).unwrap_or_else(|e| unreachable!("{e}"))
}

fn user(u: &str) -> Owner {
    Owner::User(UserId::parse(u).unwrap_or_else(|e| unreachable!("{e}")))
}

fn record(b: &BotId, owner: Owner, a: &str, sealed: &str) -> TokenRecord {
    TokenRecord {
        bot_id: b.clone(),
        token_id: TokenId::generate(),
        alias: alias(a),
        provider: ProviderName::parse("google").unwrap_or_else(|e| unreachable!("{e}")),
        owner,
        status: TokenStatus::Active,
        expires_at: Some(1_000),
        sealed: Sealed::from_stored(sealed.to_owned()),
        version: 0,
        created_at: 10,
        updated_at: 10,
    }
}

/// A unique bot id per run, so suites can share an emulator.
fn fresh_bot(prefix: &str) -> BotId {
    bot(&format!(
        "{prefix}-{}",
        crate::domain::ids::random_urlsafe(6)
            .to_lowercase()
            .replace(['-', '_'], "x")
    ))
}

pub async fn store_bots_and_integrations(store: Arc<dyn Store>) {
    let b = fresh_bot("bots");
    assert!(store.create_bot(&b, "hash-1", 1).await.unwrap());
    assert!(
        !store.create_bot(&b, "hash-2", 2).await.unwrap(),
        "a bot is created once"
    );
    assert_eq!(
        store.bot_key_hash(&b).await.unwrap().as_deref(),
        Some("hash-1")
    );
    assert!(store.set_bot_key(&b, "hash-3").await.unwrap());
    assert_eq!(
        store.bot_key_hash(&b).await.unwrap().as_deref(),
        Some("hash-3")
    );
    let nobody = fresh_bot("nobody");
    assert!(!store.set_bot_key(&nobody, "x").await.unwrap());
    assert_eq!(store.bot_key_hash(&nobody).await.unwrap(), None);

    assert!(store.integrations(&b).await.unwrap().is_empty());
    let list = vec![Integration {
        alias: alias("cal"),
        provider: ProviderName::parse("google").unwrap_or_else(|e| unreachable!("{e}")),
        scope: vec!["email".into()],
        context: Context::User,
        confirm: crate::domain::integrations::Confirm::Code,
    }];
    store.put_integrations(&b, &list).await.unwrap();
    assert_eq!(store.integrations(&b).await.unwrap(), list);
    store.put_integrations(&b, &[]).await.unwrap();
    assert!(store.integrations(&b).await.unwrap().is_empty());
}

pub async fn store_providers(store: Arc<dyn Store>) {
    let name = ProviderName::parse("github").unwrap_or_else(|e| unreachable!("{e}"));
    let input: ProviderAppInput =
        serde_json::from_value(serde_json::json!({"client_id": "id-1"})).unwrap();
    let app = input
        .resolve(
            &name,
            None,
            crate::domain::network::OutboundPolicy::default(),
        )
        .unwrap();
    store
        .put_provider(&app, Some(&Sealed::from_stored("sealed-secret".into())))
        .await
        .unwrap();
    let (got, secret) = store.provider(&name).await.unwrap().unwrap();
    assert_eq!(got, app);
    assert_eq!(secret.as_ref().map(|s| s.as_str()), Some("sealed-secret"));
    let mut changed = app.clone();
    changed.client_id = "id-2".into();
    store.put_provider(&changed, None).await.unwrap();
    let (got, secret) = store.provider(&name).await.unwrap().unwrap();
    assert_eq!((got.client_id.as_str(), secret), ("id-2", None));
    assert!(store
        .providers()
        .await
        .unwrap()
        .iter()
        .any(|p| p.name == name));
    let missing = ProviderName::parse("nobody_here").unwrap_or_else(|e| unreachable!("{e}"));
    assert!(store.provider(&missing).await.unwrap().is_none());
}

pub async fn store_links_and_flows(store: Arc<dyn Store>) {
    let b = fresh_bot("flows");
    assert!(store.create_bot(&b, "h", 1).await.unwrap());
    let link = Link {
        link_id: LinkId::generate(&b),
        bot_id: b.clone(),
        alias: alias("cal"),
        owner: user("u-1"),
        expires_at: 2_000,
        created_at: 1_000,
    };
    store.put_link(&link).await.unwrap();
    assert_eq!(store.link(&link.link_id).await.unwrap(), Some(link.clone()));
    let flow = |n: u32| Flow {
        state_hash: crate::domain::ids::sha256_hex(&format!("state {n}")),
        link_key: link.link_id.key(),
        bot_id: b.clone(),
        alias: alias("cal"),
        provider: ProviderName::parse("google").unwrap_or_else(|e| unreachable!("{e}")),
        owner: user("u-1"),
        scopes: vec!["email".into(), "profile".into()],
        nonce_hash: Some(crate::domain::ids::sha256_hex("nonce-1")),
        browser_hash: crate::domain::ids::sha256_hex("browser-1"),
        confirm: crate::domain::integrations::Confirm::Code,
        sealed_verifier: Some(Sealed::from_stored("sealed".into())),
        redirect_uri: "https://svc.example/oauth/callback/google".into(),
        expires_at: 1_600,
        created_at: 1_000,
    };

    // A link starts at most `max_flows` flows; a refused start writes nothing.
    for n in 0..3 {
        assert!(store.start_flow(&link.link_id, &flow(n), 3).await.unwrap());
    }
    assert!(!store.start_flow(&link.link_id, &flow(3), 3).await.unwrap());
    assert_eq!(
        store.take_flow(&b, &flow(3).state_hash).await.unwrap(),
        None
    );

    // Ten callbacks race for one state: exactly one gets the flow.
    let takers = (0..10).map(|_| {
        let store = Arc::clone(&store);
        let (h, b) = (flow(0).state_hash, b.clone());
        tokio::spawn(async move { store.take_flow(&b, &h).await.unwrap() })
    });
    let mut won = Vec::new();
    for t in takers {
        if let Some(f) = t.await.unwrap() {
            won.push(f);
        }
    }
    assert_eq!(won, vec![flow(0)]);
    assert_eq!(
        store.take_flow(&b, &flow(0).state_hash).await.unwrap(),
        None
    );
    // A flow is reached only under its own bot.
    let stranger = fresh_bot("stranger");
    assert_eq!(
        store
            .take_flow(&stranger, &flow(1).state_hash)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.take_flow(&b, &flow(1).state_hash).await.unwrap(),
        Some(flow(1))
    );

    // Flows from one link racing to complete: exactly one spends the link, under its bot.
    assert!(!store
        .spend_link(&stranger, &link.link_id.key())
        .await
        .unwrap());
    let spenders = (0..10).map(|_| {
        let store = Arc::clone(&store);
        let (k, b) = (link.link_id.key(), b.clone());
        tokio::spawn(async move { store.spend_link(&b, &k).await.unwrap() })
    });
    let mut spent = 0;
    for t in spenders {
        spent += usize::from(t.await.unwrap());
    }
    assert_eq!(spent, 1);
    assert_eq!(store.link(&link.link_id).await.unwrap(), None);
    // A spent link starts no flow.
    assert!(!store.start_flow(&link.link_id, &flow(4), 3).await.unwrap());
}

pub async fn store_pending_connections(store: Arc<dyn Store>) {
    use crate::domain::token::PendingConnection;
    let b = fresh_bot("pending");
    assert!(store.create_bot(&b, "h", 1).await.unwrap());
    let ada = crate::domain::ids::UserId::parse("ada@example.com / 1").unwrap();
    let grace = crate::domain::ids::UserId::parse("grace").unwrap();
    let pending = |user: &crate::domain::ids::UserId, id: &str, at: i64| PendingConnection {
        pending_id: id.to_owned(),
        bot_id: b.clone(),
        user_id: user.clone(),
        confirm: crate::domain::integrations::Confirm::Code,
        alias: alias("cal"),
        provider: ProviderName::parse("google").unwrap_or_else(|e| unreachable!("{e}")),
        code_hash: crate::domain::ids::sha256_hex(id),
        attempts: 0,
        sealed: Sealed::from_stored(format!("sealed-{id}")),
        token_expires_at: Some(at + 3600),
        expires_at: at + 600,
        created_at: at,
    };
    let (a1, a2, g1) = (
        pending(&ada, "p-1", 1_000),
        pending(&ada, "p-2", 1_001),
        pending(&grace, "p-3", 1_002),
    );
    for p in [&a1, &a2, &g1] {
        store.put_pending(p).await.unwrap();
    }
    let mut of_ada = store.pendings_of(&b, &ada).await.unwrap();
    of_ada.sort_by(|x, y| x.pending_id.cmp(&y.pending_id));
    assert_eq!(of_ada, vec![a1.clone(), a2.clone()]);
    assert_eq!(
        store.pendings_of(&b, &grace).await.unwrap(),
        vec![g1.clone()]
    );
    let stranger = fresh_bot("stranger");
    assert!(store.pendings_of(&stranger, &ada).await.unwrap().is_empty());

    // Wrong codes are counted one by one, also when counted at once.
    let counters = (0..5).map(|_| {
        let store = Arc::clone(&store);
        let (b, u) = (b.clone(), ada.clone());
        tokio::spawn(async move { store.count_wrong_code(&b, &u, "p-1").await.unwrap() })
    });
    let mut seen = Vec::new();
    for c in counters {
        seen.push(c.await.unwrap().unwrap());
    }
    seen.sort_unstable();
    assert_eq!(seen, vec![1, 2, 3, 4, 5]);
    assert_eq!(
        store.count_wrong_code(&b, &ada, "nope").await.unwrap(),
        None
    );
    assert_eq!(
        store
            .count_wrong_code(&stranger, &ada, "p-1")
            .await
            .unwrap(),
        None
    );

    // Taken once, by one of racing callers, and only under its bot and user.
    assert_eq!(store.take_pending(&b, &grace, "p-1").await.unwrap(), None);
    let takers = (0..5).map(|_| {
        let store = Arc::clone(&store);
        let (b, u) = (b.clone(), ada.clone());
        tokio::spawn(async move { store.take_pending(&b, &u, "p-1").await.unwrap() })
    });
    let mut won = Vec::new();
    for t in takers {
        won.extend(t.await.unwrap());
    }
    assert_eq!(won.len(), 1);
    assert_eq!(won[0].attempts, 5);
    assert_eq!(store.pendings_of(&b, &ada).await.unwrap(), vec![a2.clone()]);
    assert_eq!(store.count_wrong_code(&b, &ada, "p-1").await.unwrap(), None);

    // A sign-in waiting for the platform is found by its flow, not among the user's codes.
    let mut by_flow = pending(&ada, "p-4", 1_003);
    by_flow.confirm = crate::domain::integrations::Confirm::Redirect;
    by_flow.code_hash = crate::domain::ids::sha256_hex("flow-4");
    store.put_pending(&by_flow).await.unwrap();
    assert_eq!(store.pendings_of(&b, &ada).await.unwrap(), vec![a2]);
    assert_eq!(
        store
            .take_pending_by_flow(&stranger, &by_flow.code_hash)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .take_pending_by_flow(&b, &by_flow.code_hash)
            .await
            .unwrap(),
        Some(by_flow.clone())
    );
    assert_eq!(
        store
            .take_pending_by_flow(&b, &by_flow.code_hash)
            .await
            .unwrap(),
        None
    );
}

pub async fn store_tokens_are_isolated_per_bot_and_owner(store: Arc<dyn Store>) {
    let a = fresh_bot("tenant-a");
    let b = fresh_bot("tenant-b");
    for x in [&a, &b] {
        assert!(store.create_bot(x, "h", 1).await.unwrap());
    }
    let t_user = record(&a, user("u-1"), "cal", "sealed-1");
    let t_other_user = record(&a, user("u-2"), "cal", "sealed-2");
    let t_bot = record(&a, Owner::Bot, "cal", "sealed-3");
    for t in [&t_user, &t_other_user, &t_bot] {
        assert_eq!(store.save_connected(t).await.unwrap(), SaveOutcome::Saved);
    }
    assert_eq!(
        store.token(&a, &t_user.token_id).await.unwrap(),
        Some(t_user.clone())
    );
    // Another bot cannot read, list, lease or delete it.
    assert_eq!(store.token(&b, &t_user.token_id).await.unwrap(), None);
    assert!(store.tokens_of(&b, &user("u-1")).await.unwrap().is_empty());
    assert!(!store
        .acquire_lease(&b, &t_user.token_id, "x", 100, 1)
        .await
        .unwrap());
    assert_eq!(
        store.delete_token(&b, &t_user.token_id).await.unwrap(),
        None
    );
    assert!(store.token(&a, &t_user.token_id).await.unwrap().is_some());

    let mine = store.tokens_of(&a, &user("u-1")).await.unwrap();
    assert_eq!(mine.get(&alias("cal")), Some(&t_user.token_id));
    assert_eq!(mine.len(), 1);
    let bots = store.tokens_of(&a, &Owner::Bot).await.unwrap();
    assert_eq!(bots.get(&alias("cal")), Some(&t_bot.token_id));
    assert_eq!(
        store
            .token_id_for(&a, &user("u-2"), &alias("cal"))
            .await
            .unwrap(),
        Some(t_other_user.token_id.clone())
    );

    // A second token for the same owner and alias is refused with the holder's id...
    let dup = record(&a, user("u-1"), "cal", "sealed-4");
    assert_eq!(
        store.save_connected(&dup).await.unwrap(),
        SaveOutcome::Taken(t_user.token_id.clone())
    );
    // ...and connecting onto that id replaces the credentials and keeps created_at.
    let mut again = t_user.clone();
    again.sealed = Sealed::from_stored("sealed-5".into());
    again.created_at = 99;
    again.updated_at = 50;
    assert_eq!(
        store.save_connected(&again).await.unwrap(),
        SaveOutcome::Saved
    );
    let stored = store.token(&a, &t_user.token_id).await.unwrap().unwrap();
    assert_eq!(
        (stored.sealed.as_str(), stored.created_at, stored.updated_at),
        ("sealed-5", 10, 50)
    );
    assert!(stored.version > t_user.version);

    let deleted = store.delete_token(&a, &t_user.token_id).await.unwrap();
    assert_eq!(deleted.map(|d| d.token_id), Some(t_user.token_id.clone()));
    assert_eq!(
        store.delete_token(&a, &t_user.token_id).await.unwrap(),
        None
    );
    assert!(store.tokens_of(&a, &user("u-1")).await.unwrap().is_empty());
}

/// A delete answers `None` only when the token is gone, also while refreshes commit new
/// credentials under it, and it returns the credentials it removed (the ones to revoke).
pub async fn store_deletes_tell_the_truth(store: Arc<dyn Store>) {
    let b = fresh_bot("deletes");
    assert!(store.create_bot(&b, "h", 1).await.unwrap());
    let t = record(&b, user("u-1"), "cal", "sealed-0");
    store.save_connected(&t).await.unwrap();

    // Five refreshes commit one after another while a delete runs.
    let refresher = {
        let (store, b, t) = (Arc::clone(&store), b.clone(), t.clone());
        tokio::spawn(async move {
            let mut written = vec!["sealed-0".to_owned()];
            for v in 1..=5i64 {
                let holder = format!("r{v}");
                if !store
                    .acquire_lease(&b, &t.token_id, &holder, 10_000, 100)
                    .await
                    .unwrap()
                {
                    break;
                }
                let Some(current) = store.token(&b, &t.token_id).await.unwrap() else {
                    break;
                };
                let mut next = current.clone();
                next.sealed = Sealed::from_stored(format!("sealed-{v}"));
                if !store
                    .commit_refresh(&next, current.version, &holder)
                    .await
                    .unwrap()
                {
                    break;
                }
                written.push(format!("sealed-{v}"));
            }
            written
        })
    };
    tokio::task::yield_now().await;
    let deleted = store.delete_token(&b, &t.token_id).await.unwrap();
    let written = refresher.await.unwrap();
    let deleted = deleted.expect("the token existed: the delete must say so");
    assert!(
        written.contains(&deleted.sealed.as_str().to_owned()),
        "{} not among {written:?}",
        deleted.sealed.as_str()
    );
    assert_eq!(
        written.last().map(String::as_str),
        Some(deleted.sealed.as_str()),
        "the delete removed the newest credentials, the ones to revoke"
    );
    assert_eq!(store.token(&b, &t.token_id).await.unwrap(), None);
    assert!(store.tokens_of(&b, &user("u-1")).await.unwrap().is_empty());
    assert_eq!(store.delete_token(&b, &t.token_id).await.unwrap(), None);

    // Racing deletes: one removes it, the others find nothing.
    let t = record(&b, user("u-2"), "cal", "sealed-x");
    store.save_connected(&t).await.unwrap();
    let deleters = (0..8).map(|_| {
        let (store, b, id) = (Arc::clone(&store), b.clone(), t.token_id.clone());
        tokio::spawn(async move { store.delete_token(&b, &id).await.unwrap() })
    });
    let mut removed = 0;
    for d in deleters {
        removed += usize::from(d.await.unwrap().is_some());
    }
    assert_eq!(removed, 1);
}

pub async fn store_refresh_lease_and_fenced_commit(store: Arc<dyn Store>) {
    let a = fresh_bot("lease");
    assert!(store.create_bot(&a, "h", 1).await.unwrap());
    let t = record(&a, user("u-1"), "cal", "sealed-1");
    store.save_connected(&t).await.unwrap();
    let read = store.token(&a, &t.token_id).await.unwrap().unwrap();

    assert!(store
        .acquire_lease(&a, &t.token_id, "one", 130, 100)
        .await
        .unwrap());
    assert!(
        !store
            .acquire_lease(&a, &t.token_id, "two", 131, 101)
            .await
            .unwrap(),
        "lease is exclusive"
    );
    let mut next = read.clone();
    next.sealed = Sealed::from_stored("sealed-2".into());
    next.updated_at = 102;
    assert!(
        !store
            .commit_refresh(&next, read.version, "two")
            .await
            .unwrap(),
        "only the holder commits"
    );
    assert!(
        !store
            .commit_refresh(&next, read.version + 7, "one")
            .await
            .unwrap(),
        "fenced on the version"
    );
    assert!(store
        .commit_refresh(&next, read.version, "one")
        .await
        .unwrap());
    let after = store.token(&a, &t.token_id).await.unwrap().unwrap();
    assert_eq!(after.sealed.as_str(), "sealed-2");
    assert!(after.version > read.version);
    assert!(
        !store
            .commit_refresh(&next, read.version, "one")
            .await
            .unwrap(),
        "a commit is not repeated"
    );

    // The commit released the lease; an abandoned lease expires.
    assert!(store
        .acquire_lease(&a, &t.token_id, "two", 200, 150)
        .await
        .unwrap());
    assert!(!store
        .acquire_lease(&a, &t.token_id, "three", 210, 199)
        .await
        .unwrap());
    assert!(store
        .acquire_lease(&a, &t.token_id, "three", 260, 200)
        .await
        .unwrap());
    store.release_lease(&a, &t.token_id, "two").await.unwrap();
    assert!(
        !store
            .acquire_lease(&a, &t.token_id, "four", 270, 201)
            .await
            .unwrap(),
        "only the holder releases"
    );
    store.release_lease(&a, &t.token_id, "three").await.unwrap();
    assert!(store
        .acquire_lease(&a, &t.token_id, "four", 270, 201)
        .await
        .unwrap());

    // Reconnecting bumps the version, so a refresh that read before it cannot commit.
    let before_reconnect = store.token(&a, &t.token_id).await.unwrap().unwrap();
    store.save_connected(&before_reconnect).await.unwrap();
    assert!(store
        .acquire_lease(&a, &t.token_id, "five", 300, 280)
        .await
        .unwrap());
    assert!(!store
        .commit_refresh(&next, before_reconnect.version, "five")
        .await
        .unwrap());
}

fn ctx<'a>(purpose: Purpose, bot: &'a str, record: &'a str) -> SealContext<'a> {
    SealContext {
        purpose,
        bot,
        record,
    }
}

pub async fn sealer_binds_each_blob_to_its_record(sealer: Arc<dyn Sealer>) {
    let plain = b"canary-plaintext-token";
    let here = ctx(Purpose::Token, "acme", "tok_1");
    let a = sealer.seal(plain, here).await.unwrap();
    let b = sealer.seal(plain, here).await.unwrap();
    assert_ne!(a, b, "every seal uses a fresh data key and nonce");
    assert!(!a.as_str().contains("canary"));
    assert_eq!(sealer.open(&a, here).await.unwrap().as_slice(), plain);
    for other in [
        ctx(Purpose::Token, "acme", "tok_2"),
        ctx(Purpose::Token, "beta", "tok_1"),
        ctx(Purpose::ClientSecret, "acme", "tok_1"),
    ] {
        assert!(
            sealer.open(&a, other).await.is_err(),
            "opened under {other:?}"
        );
    }
    // Any changed byte is an error, never a fallback.
    let mut tampered = a.clone().into_string().into_bytes();
    let i = tampered.len() - 5;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = Sealed::from_stored(String::from_utf8(tampered).unwrap());
    assert!(sealer.open(&tampered, here).await.is_err());
    for junk in ["v1.nope", ""] {
        let junk = Sealed::from_stored(junk.into());
        assert!(sealer.open(&junk, here).await.is_err());
    }
}

/// Publishes two events and checks what `delivered` reads back: both, in the contract's
/// envelope, in order, carrying ids only.
pub async fn publisher_delivers_envelopes<F, Fut>(
    publisher: Arc<dyn crate::ports::EventPublisher>,
    source: &str,
    delivered: F,
) where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Vec<serde_json::Value>>,
{
    use crate::domain::events::{Event, EventKind};
    let b = fresh_bot("events");
    let token = TokenId::generate();
    let provider = ProviderName::parse("google").unwrap();
    let connected = Event::new(
        EventKind::Token,
        &b,
        &alias("cal"),
        &provider,
        &user("u-1"),
        Some(&token),
        time::OffsetDateTime::now_utc(),
    );
    let failed = Event::new(
        EventKind::OauthFailed,
        &b,
        &alias("cal"),
        &provider,
        &Owner::Bot,
        None,
        time::OffsetDateTime::now_utc(),
    );
    publisher
        .publish(std::slice::from_ref(&connected))
        .await
        .unwrap();
    publisher
        .publish(std::slice::from_ref(&failed))
        .await
        .unwrap();
    let mut seen = Vec::new();
    for _ in 0..50 {
        seen.extend(
            delivered()
                .await
                .into_iter()
                .filter(|e| e["detail"]["bot_id"] == b.as_str()),
        );
        if seen.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0]["detail-type"], "token:cal");
    assert_eq!(seen[0]["source"], source);
    assert_eq!(seen[0]["detail"]["token_id"], token.as_str());
    assert_eq!(seen[0]["detail"]["payload"], token.as_str());
    assert_eq!(seen[0]["detail"]["user_id"], "u-1");
    assert_eq!(seen[0]["detail"]["context"], "user");
    assert_eq!(
        seen[0]["detail"]["event_id"],
        connected.detail.event_id.as_str()
    );
    assert_eq!(seen[1]["detail-type"], "oauth_failed:cal");
    assert_eq!(seen[1]["detail"]["token_id"], serde_json::Value::Null);
    assert_eq!(seen[1]["detail"]["user_id"], serde_json::Value::Null);
    assert_eq!(seen[1]["detail"]["context"], "bot");
}

/// One `#[tokio::test]` per store contract suite, named after the suite, so every store runs
/// every suite and the list of suites is written here only.
///
/// `$make` is an expression, evaluated afresh in each test, of a future that yields
/// `(guard, Arc<dyn Store>)`; the guard (a temporary directory, an emulator process, ...) is
/// held until the test ends. The calling crate needs `tokio` with its `macros` feature.
///
/// ```ignore
/// mod sqlite {
///     shared::contract::store_contract_tests!(async { super::store() });
/// }
/// ```
#[macro_export]
macro_rules! store_contract_tests {
    (@suites $make:expr; $($test:ident => $suite:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $test() {
                let (_guard, store) = $make.await;
                $crate::contract::$suite(store).await;
            }
        )*
    };
    ($make:expr $(,)?) => {
        $crate::store_contract_tests!(@suites $make;
            bots_and_integrations => store_bots_and_integrations,
            providers => store_providers,
            links_and_flows => store_links_and_flows,
            tokens_are_isolated => store_tokens_are_isolated_per_bot_and_owner,
            refresh_lease => store_refresh_lease_and_fenced_commit,
            pending_connections => store_pending_connections,
            deletes => store_deletes_tell_the_truth,
        );
    };
}
pub use crate::store_contract_tests;
