//! Refresh as a bot sees it: due tokens are refreshed before the answer; final refusals
//! revoke; transient faults answer 503 and change nothing.

use e2e::World;
use reqwest::Method;
use serde_json::{json, Value};

pub async fn an_expiring_token_is_refreshed_and_stored_before_the_answer(
    w: World,
) -> anyhow::Result<()> {
    let token_id = w.connect_user("u-1").await?;
    let path = format!("/tokens/{token_id}/access-token");
    let (_, first) = w.bot_json(Method::GET, &path).await?;
    assert_eq!(first["status"], "valid");

    // Connect again with a token that lives one second: same token id.
    w.provider.control(json!({"token_ttl": 1})).await?;
    assert_eq!(w.connect_user("u-1").await?, token_id);
    // Due once it has expired: a 1-second token has no margin left before that.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    w.provider.control(json!({"token_ttl": 3600})).await?;
    let (_, expiring) = w
        .bot_json(Method::GET, &format!("/tokens/{token_id}"))
        .await?;

    let (status, refreshed) = w.bot_json(Method::GET, &path).await?;
    assert_eq!(status, 200);
    let grants = w.provider.token_requests("refresh_token");
    assert_eq!(grants.len(), 1);
    assert_eq!(refreshed["status"], "valid");
    assert_eq!(refreshed["access_token"], grants[0]["access_token"]);
    assert_ne!(refreshed["access_token"], expiring["credentials"]["token"]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    assert!(refreshed["expires_at"].as_i64().unwrap_or(0) > now + 3000);

    // Warm again: no further refresh.
    let (_, again) = w.bot_json(Method::GET, &path).await?;
    assert_eq!(again["access_token"], refreshed["access_token"]);
    assert_eq!(w.provider.token_requests("refresh_token").len(), 1);
    Ok(())
}

pub async fn a_refresh_refused_for_good_revokes_the_token(w: World) -> anyhow::Result<()> {
    w.provider.control(json!({"token_ttl": 1})).await?;
    let token_id = w.connect_user("u-1").await?;
    // Due once it has expired: a 1-second token has no margin left before that.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    w.provider.control(json!({"revoke_all": true})).await?;

    let path = format!("/tokens/{token_id}/access-token");
    let (status, body) = w.bot_json(Method::GET, &path).await?;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"access_token": null, "expires_at": null, "status": "revoked"})
    );
    let revoked = w.events_of("token_revoked:demo").await?;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["detail"]["token_id"], token_id.as_str());
    // Final: no more refresh attempts.
    let (_, body) = w.bot_json(Method::GET, &path).await?;
    assert_eq!(body["status"], "revoked");
    assert_eq!(w.provider.token_requests("refresh_token").len(), 1);
    // The user connects again: the same token id works again.
    w.provider.control(json!({"token_ttl": 3600})).await?;
    assert_eq!(w.connect_user("u-1").await?, token_id);
    let (_, body) = w.bot_json(Method::GET, &path).await?;
    assert_eq!(body["status"], "valid");
    Ok(())
}

pub async fn a_provider_outage_answers_503_and_changes_nothing(w: World) -> anyhow::Result<()> {
    w.provider.control(json!({"token_ttl": 1})).await?;
    let token_id = w.connect_user("u-1").await?;
    // Due once it has expired: a 1-second token has no margin left before that.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let (_, before) = w
        .bot_json(Method::GET, &format!("/tokens/{token_id}"))
        .await?;
    w.provider
        .control(json!({"refresh": "unavailable"}))
        .await?;

    let resp = w
        .bot(Method::GET, &format!("/tokens/{token_id}/access-token"))
        .send()
        .await?;
    assert_eq!(resp.status(), 503);
    assert!(resp.headers().get("retry-after").is_some());
    let body: Value = resp.json().await?;
    assert_eq!(body["error"]["code"], "provider_unavailable");
    let (_, after) = w
        .bot_json(Method::GET, &format!("/tokens/{token_id}"))
        .await?;
    assert_eq!(before["credentials"], after["credentials"]);
    assert!(w.events_of("token_revoked:demo").await?.is_empty());

    // When the provider is back, the same refresh token still works.
    w.provider
        .control(json!({"refresh": "ok", "token_ttl": 3600}))
        .await?;
    let (status, body) = w
        .bot_json(Method::GET, &format!("/tokens/{token_id}/access-token"))
        .await?;
    assert_eq!((status, body["status"].clone()), (200, json!("valid")));
    Ok(())
}
