//! The fault table end to end (`docs/faults.md`): real processes, with faults injected where
//! users would meet them: a process killed with SIGKILL, a webhook that is down, moto behind
//! a proxy that refuses or loses requests, and the test provider behind one that loses its
//! answers after acting on them.

use e2e::faults::{Fault, FaultProxy};
use e2e::{Backend, World, ADMIN_KEY};
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A webhook receiver that refuses everything while down and records the envelopes it takes.
struct Receiver {
    url: String,
    up: Arc<std::sync::atomic::AtomicBool>,
    refused: Arc<std::sync::atomic::AtomicUsize>,
    got: Arc<Mutex<Vec<Value>>>,
}

impl Receiver {
    async fn start() -> anyhow::Result<Self> {
        let up = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let got: Arc<Mutex<Vec<Value>>> = Arc::default();
        let app = {
            let (up, refused, got) = (up.clone(), refused.clone(), got.clone());
            axum::Router::new().route(
                "/hook",
                axum::routing::post(move |body: axum::body::Bytes| {
                    let (up, refused, got) = (up.clone(), refused.clone(), got.clone());
                    async move {
                        if !up.load(std::sync::atomic::Ordering::SeqCst) {
                            refused.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            return axum::http::StatusCode::SERVICE_UNAVAILABLE;
                        }
                        if let Ok(v) = serde_json::from_slice(&body) {
                            got.lock().unwrap().push(v);
                        }
                        axum::http::StatusCode::NO_CONTENT
                    }
                }),
            )
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/hook", listener.local_addr()?);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(Self {
            url,
            up,
            refused,
            got,
        })
    }
}

async fn until<F: Fn() -> bool>(what: &str, secs: u64, done: F) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !done() {
        anyhow::ensure!(
            std::time::Instant::now() < deadline,
            "{what}: not within {secs} s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// An event whose webhook delivery is still pending when the local server is killed with
/// SIGKILL is delivered after the restart, once, and its events.jsonl line is not repeated.
#[tokio::test]
async fn a_delivery_pending_at_kill_9_happens_after_the_restart() -> anyhow::Result<()> {
    let hook = Receiver::start().await?;
    let mut w = World::with_env(
        Backend::Sqlite,
        vec![
            ("EVENTS_WEBHOOK_URL", hook.url.clone()),
            ("EVENTS_WEBHOOK_SECRET", "whsec-faults".into()),
        ],
    )
    .await?;
    let token_id = w.connect_user("u-1").await?;
    let refused = hook.refused.clone();
    until("a refused webhook delivery", 10, || {
        refused.load(std::sync::atomic::Ordering::SeqCst) >= 1
    })
    .await?;

    w.kill_and_restart().await?;
    hook.up.store(true, std::sync::atomic::Ordering::SeqCst);
    let got = hook.got.clone();
    // The stored backoff after one or two failures is a few seconds.
    until("the delivery after the restart", 20, || {
        !got.lock().unwrap().is_empty()
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let got = hook.got.lock().unwrap().clone();
    assert_eq!(got.len(), 1, "delivered once: {got:?}");
    assert_eq!(got[0]["detail-type"], "token:demo");
    assert_eq!(got[0]["detail"]["token_id"], token_id.as_str());
    let lines = w.events_of("token:demo").await?;
    assert_eq!(lines.len(), 1, "one line in events.jsonl");
    assert_eq!(lines[0]["id"], got[0]["id"], "the same event id");
    Ok(())
}

/// EventBridge refusing `PutEvents`: the connection is stored at once; the relay reports the
/// record as failed, and once the bus is back the event arrives exactly once.
#[tokio::test]
async fn a_bus_that_refuses_put_events_loses_nothing() -> anyhow::Result<()> {
    let w = World::with(Backend::Aws).await?;
    let aws = w.aws.as_ref().expect("aws");
    aws.faults.fail("AWSEvents.PutEvents", Fault::Refuse);
    let link = w.mint_link("demo", Some("u-1")).await?;
    let callback = w.authorize(&link).await?;
    assert_eq!(w.http.get(&callback).send().await?.status(), 200);
    assert!(
        aws.relay_stream().await? > 0,
        "the relay reports what the bus refused"
    );
    assert!(aws.resources.drain_queue().await?.is_empty());

    aws.faults.heal();
    let events = w.events_of("token:demo").await?;
    assert_eq!(events.len(), 1, "{events:?}");
    let event_id = events[0]["detail"]["event_id"].as_str().unwrap_or_default();
    assert!(
        !w.store()?.undelivered(event_id).await?,
        "the outbox item is marked delivered"
    );
    // Nothing is sent again later.
    assert_eq!(aws.relay_stream().await?, 0);
    assert_eq!(w.events_of("token:demo").await?.len(), 1);
    Ok(())
}

/// DynamoDB refusing writes at the end of a callback and at a delete: the callback page and
/// the delete answer 503 with Retry-After, nothing is half written and no event exists;
/// once DynamoDB is back the delete happens and its event arrives once.
#[tokio::test]
async fn a_store_that_refuses_writes_keeps_everything_whole() -> anyhow::Result<()> {
    let w = World::with(Backend::Aws).await?;
    let aws = w.aws.as_ref().expect("aws");
    let token_id = w.connect_user("u-1").await?;

    aws.faults
        .fail("DynamoDB_20120810.TransactWriteItems", Fault::Refuse);
    let link = w.mint_link("demo", Some("u-2")).await?;
    let callback = w.authorize(&link).await?;
    let page = w.http.get(&callback).send().await?;
    assert_eq!(page.status(), 503);
    assert!(page.headers().contains_key("retry-after"));
    let (_, tokens) = w.bot_json(Method::GET, "/users/u-2/tokens").await?;
    assert_eq!(tokens["tokens"], json!({}), "nothing stored for u-2");

    let (status, body) = w
        .bot_json(Method::DELETE, &format!("/tokens/{token_id}"))
        .await?;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "service_unavailable");
    let (status, _) = w
        .bot_json(Method::GET, &format!("/tokens/{token_id}"))
        .await?;
    assert_eq!(status, 200, "the token is kept");
    assert!(w.events_of("token_deleted:demo").await?.is_empty());
    assert!(w.events_of("token:demo").await?.len() == 1, "only u-1's");

    aws.faults.heal();
    let (_, deleted) = w
        .bot_json(Method::DELETE, &format!("/tokens/{token_id}"))
        .await?;
    assert_eq!(deleted["deleted"], true);
    assert_eq!(w.events_of("token_deleted:demo").await?.len(), 1);
    Ok(())
}

/// The provider rotates the refresh token but its answer is lost on the way back: the bot
/// gets 503; the next refresh sends the old refresh token, the provider refuses it, and the
/// revocation says `refresh_outcome_unknown`, so the operator knows it was not the user.
pub async fn a_lost_refresh_answer_is_reported_as_refresh_outcome_unknown(
    w: World,
) -> anyhow::Result<()> {
    let proxy = FaultProxy::start(&w.provider.issuer).await?;
    let issuer = w.provider.issuer.trim_end_matches('/');
    let resp = w
        .http
        .put(w.url("/v1/admin/providers/lossy"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({
            "client_id": "demo-client",
            "client_secret": "canary-client-secret",
            "authorize_url": format!("{issuer}/authorize"),
            "token_url": format!("{}/token", proxy.url),
            "userinfo_url": format!("{issuer}/userinfo"),
        }))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 200, "register: {}", resp.text().await?);
    let resp = w
        .bot(Method::PUT, "/integrations")
        .header("content-type", "application/yaml")
        .body(format!(
            "{}- provider: lossy\n  scope: email\n  context: user\n",
            e2e::INTEGRATIONS
        ))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 200, "integrations: {}", resp.text().await?);

    w.provider.control(json!({"token_ttl": 1})).await?;
    let link = w.mint_link("lossy", Some("u-1")).await?;
    let token_id = w.connect_link(&link, "lossy").await?;
    w.provider.control(json!({"token_ttl": 3600})).await?;
    tokio::time::sleep(Duration::from_millis(1100)).await;

    proxy.fail_times("/token", Fault::LoseAnswer, 1);
    let path = format!("/tokens/{token_id}/access-token");
    let (status, body) = w.bot_json(Method::GET, &path).await?;
    assert_eq!(status, 503, "{body}");
    assert_eq!(proxy.applied(), 1);
    let refreshes = w.provider.token_requests("refresh_token");
    assert_eq!(refreshes.len(), 1);
    assert_eq!(refreshes[0]["status"], 200, "the provider did rotate");

    let (status, view) = w.bot_json(Method::GET, &path).await?;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["status"], "revoked");
    let refreshes = w.provider.token_requests("refresh_token");
    assert_eq!(refreshes.len(), 2);
    assert_eq!(refreshes[1]["error"], "invalid_grant");
    let revoked = w.events_of("token_revoked:lossy").await?;
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["detail"]["reason"], "refresh_outcome_unknown");
    Ok(())
}
