//! The warm `access-token` path through the whole router (key check, one store read, one
//! decryption, JSON answer) on the embedded backends, as latency percentiles.
//!
//!     cargo bench -p integrations-shared --bench warm_access_token

use axum::body::Body;
use axum::http::{header, Request};
use http_body_util::BodyExt;
use shared::domain::ids::{Alias, BotId, ProviderName, TokenId, UserId};
use shared::domain::providers::UserInfo;
use shared::domain::token::{Owner, TokenRecord, TokenSecrets, TokenStatus};
use shared::ports::{FlowStore, Purpose, SealContext, Sealer, TokenStore};
use shared::wiring::embedded::Embedded;
use shared::{AdminKeyHash, Backend, Config};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

const ITERATIONS: usize = 5_000;

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config {
        public_url: url::Url::parse("https://svc.example").unwrap(),
        admin_key: AdminKeyHash::of_key("ADMIN_KEY", &"x".repeat(32)).unwrap(),
        event_source: "bench".into(),
        backend: Backend::Embedded {
            data_dir: dir.path().to_owned(),
        },
        webhook: None,
        outbound: Default::default(),
        upkeep: Default::default(),
        proxy: Default::default(),
    };
    let client = shared::wiring::webhook_client().unwrap();
    let parts = Embedded::open(dir.path(), &config, &client).unwrap();
    let (store, sealer) = (parts.store.clone(), Arc::clone(&parts.sealer));
    let bot = BotId::parse("acme").unwrap();
    let id = TokenId::generate();
    let secrets = TokenSecrets {
        access_token: "at".repeat(40),
        refresh_token: Some("rt".repeat(40)),
        token_type: "Bearer".into(),
        scopes: vec!["email".into()],
        other: Default::default(),
        uid: Some("1".into()),
        info: UserInfo::default(),
        raw_info: serde_json::json!({"sub": "1", "name": "Ada"}),
    };
    let ctx = SealContext {
        purpose: Purpose::Token,
        bot: bot.as_str(),
        record: id.as_str(),
    };
    let sealed = sealer
        .seal(&serde_json::to_vec(&secrets).unwrap(), ctx)
        .await
        .unwrap();
    let service = shared::wiring::assemble(
        &config,
        Arc::new(parts.store),
        parts.sealer,
        shared::wiring::provider_client(config.outbound).unwrap(),
    );
    let key = service.create_bot(bot.clone()).await.unwrap().api_key;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    // Stored as the end of a sign-in stores it: with the link it came from spent.
    let link = shared::domain::token::Link {
        link_id: shared::domain::ids::LinkId::generate(&bot),
        bot_id: bot.clone(),
        alias: Alias::parse("google").unwrap(),
        owner: Owner::User(UserId::parse("u-1").unwrap()),
        expires_at: now + 600,
        created_at: now,
        integration: None,
    };
    store.put_link(&link).await.unwrap();
    let link_key = link.link_id.key();
    assert!(store
        .claim_link(&bot, &link_key, "bench", now + 60, now)
        .await
        .unwrap());
    let record = TokenRecord {
        bot_id: bot.clone(),
        token_id: id.clone(),
        alias: Alias::parse("google").unwrap(),
        provider: ProviderName::parse("google").unwrap(),
        owner: Owner::User(UserId::parse("u-1").unwrap()),
        status: TokenStatus::Active,
        expires_at: Some(now + 3600),
        sealed,
        version: 0,
        created_at: now,
        updated_at: now,
        refresh_unsettled: None,
        upkeep: Default::default(),
        due_at: None,
    };
    store
        .save_connected(&shared::ports::Connection {
            record: &record,
            spend: shared::ports::Spend::Link {
                key: &link_key,
                claimant: "bench",
            },
            events: &[],
        })
        .await
        .unwrap();
    let router = shared::http::local_router(Arc::new(service));
    let uri = format!("/v1/bots/acme/tokens/{id}/access-token");
    let call = || async {
        let req = Request::get(&uri)
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap();
        let resp = router.clone().oneshot(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        resp.into_body().collect().await.unwrap();
    };
    for _ in 0..200 {
        call().await;
    }
    let mut samples: Vec<Duration> = Vec::with_capacity(ITERATIONS);
    let started = Instant::now();
    for _ in 0..ITERATIONS {
        let t = Instant::now();
        call().await;
        samples.push(t.elapsed());
    }
    let total = started.elapsed();
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "warm access-token, {ITERATIONS} calls: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}; {:.0} calls/s on one task",
        pct(0.50),
        pct(0.90),
        pct(0.99),
        samples[samples.len() - 1],
        ITERATIONS as f64 / total.as_secs_f64()
    );
}
