//! What the service does on its own, with the maintenance job running every second: a
//! `keep_fresh` token refreshed without any call, a grant's end announced once ahead of
//! time, the job and twenty callers sharing one refresh, and revocations that failed at a
//! delete retried until they work or give up.

use e2e::{Backend, World};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// The job every second; a warning 3 s ahead; failed revocations retried for 4 s.
fn fast_upkeep() -> Vec<(&'static str, String)> {
    vec![
        ("MAINTENANCE_INTERVAL", "1".into()),
        ("EXPIRY_WARNING", "3".into()),
        ("REVOCATION_RETRY_WINDOW", "4".into()),
    ]
}

const WITH_FRESH: &str = "\
- provider: demo
  scope: email,profile
  context: user
- provider: demo
  alias: fresh
  scope: email
  context: user
  keep_fresh: true
";

async fn world(backend: Backend) -> anyhow::Result<World> {
    let w = World::with_env(backend, fast_upkeep()).await?;
    let resp = w
        .bot(Method::PUT, "/integrations")
        .header("content-type", "application/yaml")
        .body(WITH_FRESH)
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 200, "integrations: {}", resp.text().await?);
    Ok(w)
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

pub async fn a_keep_fresh_token_is_refreshed_without_any_call(
    backend: Backend,
) -> anyhow::Result<()> {
    let w = world(backend).await?;
    // Four-second tokens: due two seconds after each refresh.
    w.provider.control(json!({"token_ttl": 4})).await?;
    let link = w.mint_link("fresh", Some("u-1")).await?;
    let token_id = w.connect_link(&link, "fresh").await?;
    // A token of an integration without keep_fresh, due just as soon, is left alone.
    let idle_id = w.connect_user("u-2").await?;
    w.provider.control(json!({"token_ttl": 3600})).await?;

    let refreshed = e2e::eventually(15, "a keep-alive refresh", || async {
        let grants = w.provider.token_requests("refresh_token");
        Ok((!grants.is_empty()).then_some(grants))
    })
    .await?;
    assert_eq!(refreshed.len(), 1, "one refresh: {refreshed:?}");
    // No access-token call was made; the stored token is the provider's new one.
    let stored = e2e::eventually(5, "the refreshed token stored", || async {
        let (_, full) = w
            .bot_json(Method::GET, &format!("/tokens/{token_id}"))
            .await?;
        Ok((full["credentials"]["token"] == refreshed[0]["access_token"]).then_some(full))
    })
    .await?;
    assert!(stored["credentials"]["expires_at"].as_i64().unwrap_or(0) > unix_now() + 3000);
    let (status, health) = w
        .bot_json(Method::GET, &format!("/tokens/{token_id}/status"))
        .await?;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["status"], "valid");
    assert_eq!(health["keep_fresh"], true);
    assert!(health["last_refresh_at"].as_i64().is_some(), "{health}");
    assert_eq!(health["last_refresh_error"], Value::Null);

    // The other token expired untouched: its refresh waits for a caller.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(w.provider.token_requests("refresh_token").len(), 1);
    let (_, idle) = w
        .bot_json(Method::GET, &format!("/tokens/{idle_id}/status"))
        .await?;
    assert_eq!(idle["keep_fresh"], false);
    assert_eq!(idle["last_refresh_at"], Value::Null);

    // Marking its integration keep_fresh applies to it at once: refreshed by the job.
    let resp = w
        .bot(Method::PUT, "/integrations")
        .header("content-type", "application/yaml")
        .body(WITH_FRESH.replacen("context: user\n", "context: user\n  keep_fresh: true\n", 1))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    e2e::eventually(15, "the newly marked token refreshed", || async {
        Ok((w.provider.token_requests("refresh_token").len() == 2).then_some(()))
    })
    .await?;
    let (_, marked) = w
        .bot_json(Method::GET, &format!("/tokens/{idle_id}/status"))
        .await?;
    assert_eq!(marked["keep_fresh"], true, "{marked}");
    Ok(())
}

pub async fn the_job_and_twenty_callers_share_one_refresh(backend: Backend) -> anyhow::Result<()> {
    let w = world(backend).await?;
    w.provider.control(json!({"token_ttl": 6})).await?;
    let link = w.mint_link("fresh", Some("u-1")).await?;
    let token_id = w.connect_link(&link, "fresh").await?;
    let (_, full) = w
        .bot_json(Method::GET, &format!("/tokens/{token_id}"))
        .await?;
    let expires_at = full["credentials"]["expires_at"].as_i64().unwrap_or(0);
    // The next token lives an hour: whoever refreshes, nobody needs to again.
    w.provider.control(json!({"token_ttl": 3600})).await?;
    // Due three seconds before it expires, when the job (every second) wants it too.
    let due_in = (expires_at - 3 - unix_now()).max(0) as u64;
    tokio::time::sleep(Duration::from_secs(due_in)).await;
    let path = format!("/tokens/{token_id}/access-token");
    let calls = (0..20).map(|_| w.bot_json(Method::GET, &path));
    let answers = futures::future::join_all(calls).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let grants = w.provider.token_requests("refresh_token");
    assert_eq!(grants.len(), 1, "one refresh for the job and 20 callers");
    for answer in answers {
        let (status, body) = answer?;
        assert_eq!(status, 200, "{body}");
        // Each caller got a token that was valid when it answered: the old one while the
        // refresh was not due yet for it, or the new one.
        assert_eq!(body["status"], "valid", "{body}");
    }
    let (_, now) = w.bot_json(Method::GET, &path).await?;
    assert_eq!(now["access_token"], grants[0]["access_token"]);
    Ok(())
}

pub async fn a_grants_end_is_announced_ahead_and_once(backend: Backend) -> anyhow::Result<()> {
    let w = world(backend).await?;
    // Refresh tokens that end 12 s after the sign-in, however often they are refreshed.
    w.provider.control(json!({"refresh_token_ttl": 12})).await?;
    let token_id = w.connect_user("u-1").await?;
    let connected = unix_now();
    let (_, info) = w
        .bot_json(Method::GET, &format!("/tokens/{token_id}/info"))
        .await?;
    let reconnect_by = info["reconnect_by"].as_i64().unwrap_or(0);
    assert!(
        (connected + 11..=connected + 13).contains(&reconnect_by),
        "reconnect_by {reconnect_by}, connected {connected}: {info}"
    );
    let expiring = e2e::eventually(15, "token_expiring", || async {
        let events = w.events_of("token_expiring:demo").await?;
        Ok((!events.is_empty()).then_some(events))
    })
    .await?;
    let detail = &expiring[0]["detail"];
    // When the job sent it, not when it arrived here (the relay may take a while).
    let warned_at = time::OffsetDateTime::parse(
        detail["occurred_at"].as_str().unwrap_or_default(),
        &time::format_description::well_known::Rfc3339,
    )?
    .unix_timestamp();
    // First one refresh, in case it moved the end (it did not), then the warning, about
    // EXPIRY_WARNING (3 s) ahead: within two runs (1 s each) of that, and before the end.
    assert_eq!(w.provider.token_requests("refresh_token").len(), 1);
    assert!(
        (reconnect_by - 5..reconnect_by).contains(&warned_at),
        "warned at {warned_at} for {reconnect_by}"
    );
    assert_eq!(detail["token_id"], token_id.as_str());
    assert_eq!(detail["reason"], "refresh_token_expires");
    let announced = time::OffsetDateTime::parse(
        detail["expires_at"].as_str().unwrap_or_default(),
        &time::format_description::well_known::Rfc3339,
    )?;
    assert_eq!(announced.unix_timestamp(), reconnect_by);
    let (_, health) = w
        .bot_json(Method::GET, &format!("/tokens/{token_id}/status"))
        .await?;
    assert!(
        ["expiring", "expired"].contains(&health["status"].as_str().unwrap_or_default()),
        "{health}"
    );
    assert_eq!(health["reconnect_by"], reconnect_by);
    let (status, listed) = w
        .bot_json(Method::GET, "/connections?status=expiring")
        .await?;
    assert_eq!(status, 200, "{listed}");
    // Past the end, several runs later: still one warning.
    tokio::time::sleep(Duration::from_secs(
        (reconnect_by - unix_now()).max(0) as u64 + 3,
    ))
    .await;
    assert_eq!(w.events_of("token_expiring:demo").await?.len(), 1);
    let (_, expired) = w
        .bot_json(Method::GET, "/connections?status=expired")
        .await?;
    let ids: Vec<&Value> = expired["connections"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| &c["token_id"])
        .collect();
    assert_eq!(ids, [&json!(token_id)], "{expired}");
    let (status, bad) = w.bot_json(Method::GET, "/connections?status=dead").await?;
    assert_eq!(status, 400, "{bad}");
    assert_eq!(bad["error"]["code"], "invalid_request", "{bad}");
    Ok(())
}

pub async fn a_failed_revocation_is_retried_until_it_works_or_gives_up(
    backend: Backend,
) -> anyhow::Result<()> {
    let w = world(backend).await?;
    let revocations = || {
        w.provider
            .requests()
            .into_iter()
            .filter(|r| r["endpoint"] == "revoke")
            .map(|r| r["status"].as_i64().unwrap_or(0))
            .collect::<Vec<_>>()
    };

    // Fails at the delete and once more, then works.
    w.provider.control(json!({"revoke_failures": 2})).await?;
    let first = w.connect_user("u-1").await?;
    let (_, deleted) = w
        .bot_json(Method::DELETE, &format!("/tokens/{first}"))
        .await?;
    assert_eq!(deleted["deleted"], true);
    let gone = w.events_of("token_deleted:demo").await?;
    assert_eq!(gone[0]["detail"]["revoked"], "pending");
    let confirmed = e2e::eventually(15, "token_revocation_confirmed", || async {
        let e = w.events_of("token_revocation_confirmed:demo").await?;
        Ok((!e.is_empty()).then_some(e))
    })
    .await?;
    assert_eq!(confirmed[0]["detail"]["token_id"], first.as_str());
    assert_eq!(confirmed[0]["detail"]["revoked"], "yes");
    assert_eq!(revocations(), [503, 503, 200]);

    // Never works: given up once the window (4 s) has passed.
    w.provider.control(json!({"revoke": "unavailable"})).await?;
    let second = w.connect_user("u-2").await?;
    w.bot_json(Method::DELETE, &format!("/tokens/{second}"))
        .await?;
    let failed = e2e::eventually(15, "token_revocation_failed", || async {
        let e = w.events_of("token_revocation_failed:demo").await?;
        Ok((!e.is_empty()).then_some(e))
    })
    .await?;
    assert_eq!(failed[0]["detail"]["token_id"], second.as_str());
    assert_eq!(failed[0]["detail"]["revoked"], "failed");
    let tries = revocations().len() - 3;
    assert!(
        (2..=4).contains(&tries),
        "{tries} tries: {:?}",
        revocations()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(revocations().len() - 3, tries, "no try after giving up");
    assert_eq!(w.events_of("token_revocation_failed:demo").await?.len(), 1);
    assert_eq!(
        w.events_of("token_revocation_confirmed:demo").await?.len(),
        1
    );
    Ok(())
}
