//! Single use under races: callbacks (security item 1) and refresh (security item 13).

use e2e::World;
use reqwest::Method;
use serde_json::json;

pub async fn a_callback_is_used_once_even_when_sent_twice_at_once(w: World) -> anyhow::Result<()> {
    let link = w.mint_link("demo", Some("u-1")).await?;
    let callback = w.authorize(&link).await?;
    let (a, b) = tokio::join!(w.http.get(&callback).send(), w.http.get(&callback).send());
    let mut statuses = [a?.status().as_u16(), b?.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses[0], 200);
    assert!((400..500).contains(&statuses[1]), "{statuses:?}");
    // A later replay is refused too.
    let replay = w.http.get(&callback).send().await?;
    assert_eq!(replay.status(), 400);
    assert!(replay.text().await?.contains("new link"));

    assert_eq!(w.provider.token_requests("authorization_code").len(), 1);
    assert_eq!(w.events_of("token:demo").await?.len(), 1);
    let (_, tokens) = w.bot_json(Method::GET, "/users/u-1/tokens").await?;
    assert_eq!(tokens["tokens"].as_object().map(|m| m.len()), Some(1));
    // The link is spent once a flow through it completed.
    let again = w.http.get(&link).send().await?;
    assert_eq!(again.status(), 404);
    Ok(())
}

pub async fn fifty_callers_of_an_expired_token_cause_one_refresh(w: World) -> anyhow::Result<()> {
    // Tokens that live one second: due as soon as they expire.
    w.provider.control(json!({"token_ttl": 1})).await?;
    let token_id = w.connect_user("u-1").await?;
    // Due once it has expired: a 1-second token has no margin left before that.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    w.provider.control(json!({"token_ttl": 3600})).await?;

    let path = format!("/tokens/{token_id}/access-token");
    let calls = (0..50).map(|_| w.bot_json(Method::GET, &path));
    let answers = futures::future::join_all(calls).await;
    let refreshes = w.provider.token_requests("refresh_token");
    assert_eq!(refreshes.len(), 1, "{refreshes:?}");
    let fresh = refreshes[0]["access_token"].clone();
    for answer in answers {
        let (status, body) = answer?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "valid");
        assert_eq!(body["access_token"], fresh);
    }
    // The rotated refresh token was stored: it is what the token now holds.
    let (_, full) = w
        .bot_json(Method::GET, &format!("/tokens/{token_id}"))
        .await?;
    assert_eq!(
        full["credentials"]["refresh_token"],
        refreshes[0]["refresh_token"]
    );
    Ok(())
}
