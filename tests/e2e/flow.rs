//! The whole life of a user token and a bot token, as a bot and its users meet it.

use e2e::{World, ADMIN_KEY};
use reqwest::Method;
use serde_json::Value;

pub async fn a_user_token_from_link_to_deletion(w: World) -> anyhow::Result<()> {
    // oauth_link("demo") → the provider → the callback.
    let link = w.mint_link("demo", Some("u-1")).await?;
    assert!(
        link.starts_with(&format!("{}/oauth/start/", w.server.base)),
        "{link}"
    );
    let start = w.http.get(&link).send().await?;
    assert_eq!(start.status(), 302);
    assert_eq!(start.headers()["cache-control"], "no-store");
    assert_eq!(start.headers()["referrer-policy"], "no-referrer");
    let authorize = url::Url::parse(start.headers()["location"].to_str()?)?;
    let q: std::collections::HashMap<_, _> = authorize.query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "demo-client");
    assert_eq!(
        q["redirect_uri"],
        format!("{}/oauth/callback/demo", w.server.base)
    );
    assert_eq!(q["scope"], "openid email profile");
    assert_eq!(q["code_challenge_method"], "S256");
    assert!(q["state"].len() >= 43, "state has fewer than 256 bits");
    let token_id = w.connect_link(&link, "demo").await?;
    assert!(token_id.starts_with("tok_") && token_id.len() >= 28);

    // The provider saw one code exchange, with the PKCE verifier and the same redirect URI.
    let exchanges = w.provider.token_requests("authorization_code");
    assert_eq!(exchanges.len(), 1);
    assert_eq!(exchanges[0]["has_code_verifier"], true);
    assert_eq!(
        exchanges[0]["redirect_uri"].as_str(),
        Some(q["redirect_uri"].as_str())
    );

    // The event carries ids only.
    let event = &w.events_of("token:demo").await?[0];
    assert_eq!(event["source"], "bot-integrations");
    assert_eq!(event["detail"]["payload"], token_id.as_str());
    assert_eq!(event["detail"]["user_id"], "u-1");
    assert_eq!(event["detail"]["context"], "user");

    // user.tokens, and nothing in bot.tokens.
    let (s, tokens) = w.bot_json(Method::GET, "/users/u-1/tokens").await?;
    assert_eq!(s, 200);
    assert_eq!(tokens["tokens"]["demo"], token_id.as_str());
    let (_, bot_tokens) = w.bot_json(Method::GET, "/tokens").await?;
    assert_eq!(bot_tokens["tokens"], serde_json::json!({}));

    // get_token_info, normalised from the provider's user info.
    let (s, info) = w
        .bot_json(Method::GET, &format!("/tokens/{token_id}/info"))
        .await?;
    assert_eq!(s, 200);
    assert_eq!(info["first_name"], "Ada");
    assert_eq!(info["last_name"], "Lovelace");
    assert_eq!(info["image"], "https://example.test/ada.png");
    assert_eq!(info["phone"], Value::Null);

    // get_access_token: the token the provider issued, with no refresh.
    let issued = w.provider.token_requests("authorization_code")[0]["access_token"].clone();
    let (s, at) = w
        .bot_json(Method::GET, &format!("/tokens/{token_id}/access-token"))
        .await?;
    assert_eq!(s, 200);
    assert_eq!(at["status"], "valid");
    assert_eq!(at["access_token"], issued);
    assert!(w.provider.token_requests("refresh_token").is_empty());

    // get_full_token, shaped like the Ueberauth struct.
    let (s, full) = w
        .bot_json(Method::GET, &format!("/tokens/{token_id}"))
        .await?;
    assert_eq!(s, 200);
    assert_eq!(full["id"], token_id.as_str());
    assert_eq!(full["uid"], "user-1");
    assert_eq!(full["credentials"]["token"], issued);
    assert_eq!(full["credentials"]["expires"], true);
    assert!(full["credentials"]["refresh_token"].as_str().is_some());
    assert_eq!(full["extra"]["raw_info"]["email"], "ada@example.test");
    assert!(full["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    // delete_token: gone here, revoked at the provider, reported; a second delete is false.
    let refresh_token = full["credentials"]["refresh_token"].clone();
    let (s, del) = w
        .bot_json(Method::DELETE, &format!("/tokens/{token_id}"))
        .await?;
    assert_eq!((s, del["deleted"].clone()), (200, Value::Bool(true)));
    let revocations: Vec<Value> = w
        .provider
        .requests()
        .into_iter()
        .filter(|r| r["endpoint"] == "revoke")
        .collect();
    assert_eq!(revocations.len(), 1);
    assert_eq!(revocations[0]["token"], refresh_token);
    assert_eq!(w.events_of("token_deleted:demo").await?.len(), 1);
    let (_, tokens) = w.bot_json(Method::GET, "/users/u-1/tokens").await?;
    assert_eq!(tokens["tokens"], serde_json::json!({}));
    let (s, _) = w
        .bot_json(Method::GET, &format!("/tokens/{token_id}/info"))
        .await?;
    assert_eq!(s, 404);
    let (s, del) = w
        .bot_json(Method::DELETE, &format!("/tokens/{token_id}"))
        .await?;
    assert_eq!((s, del["deleted"].clone()), (200, Value::Bool(false)));

    assert_no_plaintext_secrets(&w).await?;
    Ok(())
}

pub async fn reconnecting_keeps_the_token_id_and_replaces_credentials(
    w: World,
) -> anyhow::Result<()> {
    let first = w.connect_user("u-1").await?;
    let second = w.connect_user("u-1").await?;
    assert_eq!(first, second);
    let latest = w.provider.token_requests("authorization_code")[1]["access_token"].clone();
    let (_, at) = w
        .bot_json(Method::GET, &format!("/tokens/{first}/access-token"))
        .await?;
    assert_eq!(at["access_token"], latest);
    let other = w.connect_user("u-2").await?;
    assert_ne!(other, first);
    Ok(())
}

pub async fn a_bot_token_through_the_connect_page(w: World) -> anyhow::Result<()> {
    let (s, minted) = w.bot_json(Method::POST, "/connect-links").await?;
    assert_eq!(s, 201);
    let page_url = minted["url"].as_str().unwrap_or_default().to_owned();
    let page = w.http.get(&page_url).send().await?;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await?;
    assert!(
        html.contains("demo_bot") && html.contains("not connected"),
        "{html}"
    );
    assert!(!html.contains("u-1"));

    let to_provider = e2e::location(w.http.post(format!("{page_url}/demo_bot")).send().await?)?;
    assert!(to_provider.starts_with(&w.provider.issuer));
    let callback = e2e::location(w.http.get(&to_provider).send().await?)?;
    assert_eq!(w.http.get(&callback).send().await?.status(), 200);

    let event = &w.events_of("token:demo_bot").await?[0];
    assert_eq!(event["detail"]["context"], "bot");
    assert_eq!(event["detail"]["user_id"], Value::Null);
    let token_id = event["detail"]["token_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (_, tokens) = w.bot_json(Method::GET, "/tokens").await?;
    assert_eq!(tokens["tokens"]["demo_bot"], token_id.as_str());
    let (_, list) = w.bot_json(Method::GET, "/integrations").await?;
    let entry = list["integrations"]
        .as_array()
        .and_then(|l| l.iter().find(|i| i["alias"] == "demo_bot").cloned())
        .unwrap_or_default();
    assert_eq!(entry["connected"], true);
    assert_eq!(entry["token_id"], token_id.as_str());
    let user_entry = list["integrations"][0].clone();
    assert_eq!(user_entry["alias"], "demo");
    assert!(user_entry.get("connected").is_none());
    let html = w.http.get(&page_url).send().await?.text().await?;
    assert!(html.contains("Reconnect"));
    // The page shows the connection's health, as the status route does.
    let (_, health) = w
        .bot_json(Method::GET, &format!("/tokens/{token_id}/status"))
        .await?;
    assert_eq!(health["status"], "valid");
    assert_eq!(health["context"], "bot");
    assert!(
        html.contains("connected") && html.contains("Disconnect"),
        "{html}"
    );
    let (_, all) = w.bot_json(Method::GET, "/connections").await?;
    assert_eq!(all["connections"][0]["token_id"], token_id.as_str());
    Ok(())
}

pub async fn the_operator_registers_providers_without_seeing_secrets_again(
    w: World,
) -> anyhow::Result<()> {
    w.connect_user("u-1").await?;
    let resp = w
        .http
        .put(w.url("/v1/admin/providers/github"))
        .bearer_auth(ADMIN_KEY)
        .json(&serde_json::json!({"client_id": "gh-id", "client_secret": "canary-gh-secret"}))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let app: Value = resp.json().await?;
    assert_eq!(
        app["token_url"],
        "https://github.com/login/oauth/access_token"
    );
    assert_eq!(app["has_client_secret"], true);
    let list = w
        .http
        .get(w.url("/v1/admin/providers"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await?
        .text()
        .await?;
    assert!(
        list.contains("\"github\"") && list.contains("\"demo\""),
        "{list}"
    );
    assert!(
        !list.contains("canary"),
        "a client secret came back: {list}"
    );
    assert_no_plaintext_secrets(&w).await?;
    Ok(())
}

/// Security item 7: no token the provider issued, nor a client secret, in what the service
/// stored, logged or emitted.
async fn assert_no_plaintext_secrets(w: &World) -> anyhow::Result<()> {
    let mut secrets = w.provider.issued_secrets();
    secrets.push("canary-client-secret".into());
    secrets.push("canary-gh-secret".into());
    assert!(
        secrets.len() > 2,
        "the provider issued no tokens to look for"
    );
    let written = w.written().await?;
    assert!(written.len() >= 3, "nothing to search");
    for (what, bytes) in written {
        for secret in &secrets {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{what} holds a plaintext secret");
        }
    }
    Ok(())
}
