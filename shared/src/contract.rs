//! One contract suite per port. Every implementation runs the same suite: the embedded ones
//! in this crate's tests, the AWS ones against an emulator.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::crypto::Sealed;
use crate::domain::events::{Event, EventKind};
use crate::domain::ids::{Alias, BotId, LinkId, ProviderName, TokenId, UserId};
use crate::domain::integrations::{Context, Integration};
use crate::domain::providers::ProviderAppInput;
use crate::domain::token::{Flow, Link, Owner, TokenRecord, TokenStatus};
use crate::ports::{Connection, Purpose, SaveOutcome, SealContext, Sealer, Spend, Store};
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
        refresh_unsettled: None,
        upkeep: Default::default(),
        due_at: None,
    }
}

/// An event about `t`, as the service writes it with a change.
fn event_for(t: &TokenRecord, kind: EventKind) -> Event {
    Event::new(
        kind,
        &t.bot_id,
        &t.alias,
        &t.provider,
        &t.owner,
        Some(&t.token_id),
        time::OffsetDateTime::now_utc(),
    )
}

/// A fresh link of `b`, stored and claimed by `claimant`; answers its key.
async fn claimed_link(store: &Arc<dyn Store>, b: &BotId, claimant: &str) -> String {
    let link = Link {
        link_id: LinkId::generate(b),
        bot_id: b.clone(),
        alias: alias("cal"),
        owner: user("u-1"),
        expires_at: 2_000,
        created_at: 1_000,
        integration: None,
    };
    store.put_link(&link).await.unwrap();
    let key = link.link_id.key();
    assert!(store
        .claim_link(b, &key, claimant, 1_100, 1_000)
        .await
        .unwrap());
    key
}

/// Stores `t` as the end of a sign-in from a fresh link, with its `token:` event; answers
/// the outcome and the event.
async fn connect(store: &Arc<dyn Store>, t: &TokenRecord) -> (SaveOutcome, Event) {
    let key = claimed_link(store, &t.bot_id, "flow-x").await;
    let event = event_for(t, EventKind::Token);
    let outcome = store
        .save_connected(&Connection {
            record: t,
            spend: Spend::Link {
                key: &key,
                claimant: "flow-x",
            },
            events: std::slice::from_ref(&event),
        })
        .await
        .unwrap();
    (outcome, event)
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
        params: [("subdomain".to_owned(), "acme".to_owned())].into(),
        keep_fresh: true,
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
        integration: Some(Integration {
            alias: alias("cal"),
            provider: ProviderName::parse("google").unwrap_or_else(|e| unreachable!("{e}")),
            scope: vec!["email".into()],
            context: Context::User,
            confirm: crate::domain::integrations::Confirm::Code,
            params: [("shop".to_owned(), "acme".to_owned())].into(),
            keep_fresh: false,
        }),
    };
    let app = serde_json::from_value::<ProviderAppInput>(serde_json::json!({"client_id": "id-1"}))
        .unwrap()
        .resolve(
            &ProviderName::parse("google").unwrap_or_else(|e| unreachable!("{e}")),
            None,
            crate::domain::network::OutboundPolicy::default(),
        )
        .unwrap();
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
        app: Some(app.clone()),
        sealed_client_secret: Some(Sealed::from_stored("sealed-client-secret".into())),
        keep_fresh: true,
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

    // Flows from one link racing to exchange: exactly one claims the link, under its bot.
    let key = link.link_id.key();
    assert!(!store
        .claim_link(&stranger, &key, "intruder", 1_100, 1_000)
        .await
        .unwrap());
    let claimers = (0..10).map(|n| {
        let store = Arc::clone(&store);
        let (k, b) = (key.clone(), b.clone());
        tokio::spawn(async move {
            let me = format!("flow-{n}");
            store
                .claim_link(&b, &k, &me, 1_100, 1_000)
                .await
                .unwrap()
                .then_some(me)
        })
    });
    let mut claimed = Vec::new();
    for c in claimers {
        claimed.extend(c.await.unwrap());
    }
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    let winner = claimed.remove(0);
    // A claim holds until it lapses; then another flow may claim (the first died).
    assert!(!store
        .claim_link(&b, &key, "late", 1_200, 1_099)
        .await
        .unwrap());
    assert!(store
        .claim_link(&b, &key, "late", 1_200, 1_100)
        .await
        .unwrap());

    // Storing the connection spends the link only for its claimant, with its event.
    let t = record(&b, user("u-1"), "cal", "sealed-1");
    let event = event_for(&t, EventKind::Token);
    let as_winner = Connection {
        record: &t,
        spend: Spend::Link {
            key: &key,
            claimant: &winner,
        },
        events: std::slice::from_ref(&event),
    };
    assert_eq!(
        store.save_connected(&as_winner).await.unwrap(),
        SaveOutcome::Spent,
        "the claim lapsed and passed on: the first flow stores nothing"
    );
    assert_eq!(store.token(&b, &t.token_id).await.unwrap(), None);
    assert!(!store.undelivered(&event.detail.event_id).await.unwrap());
    let as_late = Connection {
        spend: Spend::Link {
            key: &key,
            claimant: "late",
        },
        ..as_winner
    };
    assert_eq!(
        store.save_connected(&as_late).await.unwrap(),
        SaveOutcome::Saved
    );
    assert!(store.token(&b, &t.token_id).await.unwrap().is_some());
    assert!(store.undelivered(&event.detail.event_id).await.unwrap());
    assert_eq!(store.link(&link.link_id).await.unwrap(), None);
    assert_eq!(
        store.save_connected(&as_late).await.unwrap(),
        SaveOutcome::Spent,
        "a link is spent once"
    );
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
        let key = claimed_link(&store, &b, "flow-p").await;
        assert!(store.put_pending(p, &key, "flow-p").await.unwrap());
        assert!(
            !store.put_pending(p, &key, "flow-p").await.unwrap(),
            "held once: the link is spent with it"
        );
    }
    let key = claimed_link(&store, &b, "flow-p").await;
    assert!(!store.put_pending(&a1, &key, "another flow").await.unwrap());
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

    // Dropped once, by one of racing callers, with its event.
    let mut counted = a1.clone();
    counted.attempts = 5;
    let mut elsewhere = a1.clone();
    elsewhere.user_id = crate::domain::ids::UserId::parse("grace").unwrap();
    let failed = Event::new(
        EventKind::OauthFailed,
        &b,
        &alias("cal"),
        &a1.provider,
        &Owner::User(ada.clone()),
        None,
        time::OffsetDateTime::now_utc(),
    );
    assert!(!store
        .drop_pending(&elsewhere, std::slice::from_ref(&failed))
        .await
        .unwrap());
    assert!(!store.undelivered(&failed.detail.event_id).await.unwrap());
    let droppers = (0..5).map(|_| {
        let (store, p, e) = (Arc::clone(&store), counted.clone(), failed.clone());
        tokio::spawn(async move { store.drop_pending(&p, &[e]).await })
    });
    let mut dropped = 0;
    for d in droppers {
        // A loser either finds it gone or loses its transaction; none writes the event twice.
        dropped += usize::from(matches!(d.await.unwrap(), Ok(true)));
    }
    assert_eq!(dropped, 1);
    assert!(store.undelivered(&failed.detail.event_id).await.unwrap());
    assert_eq!(store.pendings_of(&b, &ada).await.unwrap(), vec![a2.clone()]);
    assert_eq!(store.count_wrong_code(&b, &ada, "p-1").await.unwrap(), None);

    // Confirming stores the token and removes the sign-in in one step, once.
    let t = record(&b, Owner::User(ada.clone()), "cal", "sealed-confirmed");
    let connected = event_for(&t, EventKind::Token);
    let confirm = Connection {
        record: &t,
        spend: Spend::Pending(&a2),
        events: std::slice::from_ref(&connected),
    };
    assert_eq!(
        store.save_connected(&confirm).await.unwrap(),
        SaveOutcome::Saved
    );
    assert!(store.pendings_of(&b, &ada).await.unwrap().is_empty());
    assert_eq!(
        store.save_connected(&confirm).await.unwrap(),
        SaveOutcome::Spent
    );

    // A sign-in waiting for the platform is found by its flow, not among the user's codes.
    let mut by_flow = pending(&ada, "p-4", 1_003);
    by_flow.confirm = crate::domain::integrations::Confirm::Redirect;
    by_flow.code_hash = crate::domain::ids::sha256_hex("flow-4");
    let key = claimed_link(&store, &b, "flow-4").await;
    assert!(store.put_pending(&by_flow, &key, "flow-4").await.unwrap());
    assert!(store.pendings_of(&b, &ada).await.unwrap().is_empty());
    assert_eq!(
        store
            .pending_by_flow(&stranger, &by_flow.code_hash)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.pending_by_flow(&b, &by_flow.code_hash).await.unwrap(),
        Some(by_flow.clone())
    );
    assert!(store.drop_pending(&by_flow, &[]).await.unwrap());
    assert_eq!(
        store.pending_by_flow(&b, &by_flow.code_hash).await.unwrap(),
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
        let (outcome, event) = connect(&store, t).await;
        assert_eq!(outcome, SaveOutcome::Saved);
        assert!(
            store.undelivered(&event.detail.event_id).await.unwrap(),
            "the event is written with the token"
        );
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
    let mut foreign = t_user.clone();
    foreign.bot_id = b.clone();
    assert!(!store.delete_token(&foreign, &[], None).await.unwrap());
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
    let (outcome, event) = connect(&store, &dup).await;
    assert_eq!(outcome, SaveOutcome::Taken(t_user.token_id.clone()));
    assert!(
        !store.undelivered(&event.detail.event_id).await.unwrap(),
        "nothing written, not even the event"
    );
    // ...and connecting onto that id replaces the credentials and keeps created_at.
    let mut again = t_user.clone();
    again.sealed = Sealed::from_stored("sealed-5".into());
    again.created_at = 99;
    again.updated_at = 50;
    assert_eq!(connect(&store, &again).await.0, SaveOutcome::Saved);
    let stored = store.token(&a, &t_user.token_id).await.unwrap().unwrap();
    assert_eq!(
        (stored.sealed.as_str(), stored.created_at, stored.updated_at),
        ("sealed-5", 10, 50)
    );
    assert!(stored.version > t_user.version);

    // A delete holds only for the version read, and writes its event with it.
    let gone = event_for(&stored, EventKind::TokenDeleted);
    assert!(!store
        .delete_token(&t_user, std::slice::from_ref(&gone), None)
        .await
        .unwrap());
    assert!(!store.undelivered(&gone.detail.event_id).await.unwrap());
    assert!(store
        .delete_token(&stored, std::slice::from_ref(&gone), None)
        .await
        .unwrap());
    assert!(store.undelivered(&gone.detail.event_id).await.unwrap());
    assert!(!store.delete_token(&stored, &[], None).await.unwrap());
    assert_eq!(store.token(&a, &t_user.token_id).await.unwrap(), None);
    assert!(store.tokens_of(&a, &user("u-1")).await.unwrap().is_empty());
}

/// A delete of the version read fails (and writes nothing) when a refresh committed after
/// the read, so the caller reads again and revokes exactly the credentials it removed; of
/// racing deletes of one version, one wins.
pub async fn store_deletes_tell_the_truth(store: Arc<dyn Store>) {
    let b = fresh_bot("deletes");
    assert!(store.create_bot(&b, "h", 1).await.unwrap());
    let t = record(&b, user("u-1"), "cal", "sealed-0");
    connect(&store, &t).await;
    let read = store.token(&b, &t.token_id).await.unwrap().unwrap();
    assert!(store
        .acquire_lease(&b, &t.token_id, "r1", 10_000, 100)
        .await
        .unwrap());
    let mut next = read.clone();
    next.sealed = Sealed::from_stored("sealed-1".into());
    assert!(store
        .commit_refresh(&next, read.version, "r1", &[])
        .await
        .unwrap());
    let stale = event_for(&read, EventKind::TokenDeleted);
    assert!(!store
        .delete_token(&read, std::slice::from_ref(&stale), None)
        .await
        .unwrap());
    assert!(!store.undelivered(&stale.detail.event_id).await.unwrap());
    let current = store.token(&b, &t.token_id).await.unwrap().unwrap();
    assert_eq!(current.sealed.as_str(), "sealed-1");

    // Racing deletes of the current version: one removes it, with one event.
    let deleters = (0..8).map(|_| {
        let (store, current) = (Arc::clone(&store), current.clone());
        tokio::spawn(async move {
            let event = event_for(&current, EventKind::TokenDeleted);
            let won = store
                .delete_token(&current, std::slice::from_ref(&event), None)
                .await
                .unwrap();
            (won, event.detail.event_id)
        })
    });
    let mut removed = 0;
    for d in deleters {
        let (won, event_id) = d.await.unwrap();
        removed += usize::from(won);
        assert_eq!(store.undelivered(&event_id).await.unwrap(), won);
    }
    assert_eq!(removed, 1);
    assert_eq!(store.token(&b, &t.token_id).await.unwrap(), None);
    assert!(store.tokens_of(&b, &user("u-1")).await.unwrap().is_empty());
}

pub async fn store_upkeep_and_pending_revocations(store: Arc<dyn Store>) {
    use crate::domain::token::PendingRevocation;
    let b = fresh_bot("upkeep");
    assert!(store.create_bot(&b, "h", 1).await.unwrap());
    let mine = |list: Vec<TokenRecord>| -> Vec<TokenId> {
        list.into_iter()
            .filter(|t| t.bot_id == b)
            .map(|t| t.token_id)
            .collect()
    };
    let mut soon = record(&b, user("u-1"), "cal", "sealed-soon");
    soon.upkeep.keep_fresh = true;

    soon.due_at = Some(500);
    let mut later = record(&b, user("u-2"), "cal", "sealed-later");
    later.due_at = Some(700);
    let never = record(&b, Owner::Bot, "cal", "sealed-never");
    for t in [&soon, &later, &never] {
        assert_eq!(connect(&store, t).await.0, SaveOutcome::Saved);
    }
    let stored = store.token(&b, &soon.token_id).await.unwrap().unwrap();
    assert_eq!(stored.upkeep, soon.upkeep);
    assert_eq!(stored.due_at, Some(500));

    // The due-time index: what is due, earliest first, and nothing else.
    assert!(mine(store.due_tokens(499, 50).await.unwrap()).is_empty());
    assert_eq!(
        mine(store.due_tokens(700, 50).await.unwrap()),
        vec![soon.token_id.clone(), later.token_id.clone()]
    );
    assert_eq!(store.bot_connections(&b).await.unwrap().len(), 3);

    // Upkeep is written on condition that nothing changed since it was read; the version
    // stays, so a refresh in flight still commits.
    let mut warned = stored.clone();
    warned.upkeep.warned_for = Some(9_000);
    warned.due_at = Some(800);
    let event = event_for(&stored, EventKind::TokenExpiring);
    assert!(store
        .set_upkeep(&stored, &warned, std::slice::from_ref(&event))
        .await
        .unwrap());
    assert!(store.undelivered(&event.detail.event_id).await.unwrap());
    let twice = event_for(&stored, EventKind::TokenExpiring);
    assert!(!store
        .set_upkeep(&stored, &warned, std::slice::from_ref(&twice))
        .await
        .unwrap());
    assert!(!store.undelivered(&twice.detail.event_id).await.unwrap());
    let now = store.token(&b, &soon.token_id).await.unwrap().unwrap();
    assert_eq!((now.version, now.due_at), (stored.version, Some(800)));
    assert_eq!(now.upkeep.warned_for, Some(9_000));
    assert!(store
        .acquire_lease(&b, &now.token_id, "r1", 10_000, 100)
        .await
        .unwrap());
    let mut refreshed = now.clone();
    refreshed.due_at = None;
    assert!(store
        .commit_refresh(&refreshed, now.version, "r1", &[])
        .await
        .unwrap());
    assert_eq!(
        mine(store.due_tokens(10_000, 50).await.unwrap()),
        vec![later.token_id.clone()],
        "a token with nothing due leaves the index"
    );

    // A delete whose revocation failed keeps it, in the same step, for the job.
    let current = store.token(&b, &later.token_id).await.unwrap().unwrap();
    let pending = PendingRevocation {
        bot_id: b.clone(),
        token_id: current.token_id.clone(),
        alias: current.alias.clone(),
        provider: current.provider.clone(),
        owner: current.owner.clone(),
        sealed: current.sealed.clone(),
        attempts: 1,
        due_at: 1_000,
        give_up_at: 5_000,
    };
    let deleted = event_for(&current, EventKind::TokenDeleted);
    assert!(store
        .delete_token(&current, std::slice::from_ref(&deleted), Some(&pending))
        .await
        .unwrap());
    let ours = |list: Vec<PendingRevocation>| -> Vec<PendingRevocation> {
        list.into_iter().filter(|r| r.bot_id == b).collect()
    };
    assert!(ours(store.due_revocations(999, 50).await.unwrap()).is_empty());
    assert_eq!(
        ours(store.due_revocations(1_000, 50).await.unwrap()),
        vec![pending.clone()]
    );
    let retry = PendingRevocation {
        attempts: 2,
        due_at: 2_000,
        ..pending.clone()
    };
    assert!(store
        .settle_revocation(&pending, Some(&retry), &[])
        .await
        .unwrap());
    assert!(
        !store.settle_revocation(&pending, None, &[]).await.unwrap(),
        "a stale read settles nothing"
    );
    assert!(ours(store.due_revocations(1_999, 50).await.unwrap()).is_empty());
    let done = event_for(&current, EventKind::TokenRevocationConfirmed);
    assert!(store
        .settle_revocation(&retry, None, std::slice::from_ref(&done))
        .await
        .unwrap());
    assert!(store.undelivered(&done.detail.event_id).await.unwrap());
    assert!(ours(store.due_revocations(10_000, 50).await.unwrap()).is_empty());
}

pub async fn store_refresh_lease_and_fenced_commit(store: Arc<dyn Store>) {
    let a = fresh_bot("lease");
    assert!(store.create_bot(&a, "h", 1).await.unwrap());
    let t = record(&a, user("u-1"), "cal", "sealed-1");
    connect(&store, &t).await;
    let read = store.token(&a, &t.token_id).await.unwrap().unwrap();
    assert_eq!(read.refresh_unsettled, None);

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
            .commit_refresh(&next, read.version, "two", &[])
            .await
            .unwrap(),
        "only the holder commits"
    );
    assert!(
        !store
            .commit_refresh(&next, read.version + 7, "one", &[])
            .await
            .unwrap(),
        "fenced on the version"
    );
    assert_eq!(
        store
            .token(&a, &t.token_id)
            .await
            .unwrap()
            .unwrap()
            .refresh_unsettled
            .as_deref(),
        Some("one"),
        "a leased refresh is unsettled until it commits"
    );
    let revoked = event_for(&next, EventKind::TokenRevoked);
    assert!(store
        .commit_refresh(&next, read.version, "one", std::slice::from_ref(&revoked))
        .await
        .unwrap());
    assert!(store.undelivered(&revoked.detail.event_id).await.unwrap());
    let after = store.token(&a, &t.token_id).await.unwrap().unwrap();
    assert_eq!(after.sealed.as_str(), "sealed-2");
    assert_eq!(after.refresh_unsettled, None);
    assert!(after.version > read.version);
    let again = event_for(&next, EventKind::TokenRevoked);
    assert!(
        !store
            .commit_refresh(&next, read.version, "one", std::slice::from_ref(&again))
            .await
            .unwrap(),
        "a commit is not repeated"
    );
    assert!(!store.undelivered(&again.detail.event_id).await.unwrap());

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
    store
        .release_lease(&a, &t.token_id, "two", true)
        .await
        .unwrap();
    assert!(
        !store
            .acquire_lease(&a, &t.token_id, "four", 270, 201)
            .await
            .unwrap(),
        "only the holder releases"
    );
    // "two" abandoned its lease without settling: its mark stays, through later leases
    // that settle their own.
    let unsettled = |store: Arc<dyn Store>| {
        let (a, id) = (a.clone(), t.token_id.clone());
        async move {
            store
                .token(&a, &id)
                .await
                .unwrap()
                .unwrap()
                .refresh_unsettled
        }
    };
    assert_eq!(unsettled(store.clone()).await.as_deref(), Some("two"));
    store
        .release_lease(&a, &t.token_id, "three", true)
        .await
        .unwrap();
    assert_eq!(unsettled(store.clone()).await.as_deref(), Some("two"));
    assert!(store
        .acquire_lease(&a, &t.token_id, "four", 270, 201)
        .await
        .unwrap());

    // Reconnecting bumps the version, so a refresh that read before it cannot commit, and
    // settles what was unsettled.
    let before_reconnect = store.token(&a, &t.token_id).await.unwrap().unwrap();
    connect(&store, &before_reconnect).await;
    assert_eq!(unsettled(store.clone()).await, None);
    assert!(store
        .acquire_lease(&a, &t.token_id, "five", 300, 280)
        .await
        .unwrap());
    assert!(!store
        .commit_refresh(&next, before_reconnect.version, "five", &[])
        .await
        .unwrap());
    // A holder that settles releases its own mark.
    store
        .release_lease(&a, &t.token_id, "five", true)
        .await
        .unwrap();
    assert_eq!(unsettled(store.clone()).await, None);
    // One that cannot know keeps it.
    assert!(store
        .acquire_lease(&a, &t.token_id, "six", 400, 390)
        .await
        .unwrap());
    store
        .release_lease(&a, &t.token_id, "six", false)
        .await
        .unwrap();
    assert_eq!(unsettled(store.clone()).await.as_deref(), Some("six"));
}

/// Events on their own (a sign-in that failed after its flow was used up).
pub async fn store_records_events(store: Arc<dyn Store>) {
    let b = fresh_bot("events");
    let t = record(&b, user("u-1"), "cal", "sealed");
    let (one, two) = (
        event_for(&t, EventKind::OauthFailed),
        event_for(&t, EventKind::OauthFailed),
    );
    assert!(!store.undelivered(&one.detail.event_id).await.unwrap());
    store
        .record_events(&[one.clone(), two.clone()])
        .await
        .unwrap();
    assert!(store.undelivered(&one.detail.event_id).await.unwrap());
    assert!(store.undelivered(&two.detail.event_id).await.unwrap());
    assert!(
        store
            .record_events(std::slice::from_ref(&one))
            .await
            .is_err(),
        "an event id is written once"
    );
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
    publisher.publish(&[connected.to_outbox()]).await.unwrap();
    publisher.publish(&[failed.to_outbox()]).await.unwrap();
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
            events => store_records_events,
            upkeep => store_upkeep_and_pending_revocations,
        );
    };
}
pub use crate::store_contract_tests;
