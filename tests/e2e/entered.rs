//! Integrations without a user's sign-in, in a real Chromium: API keys and HTTP Basic
//! entered on the link's form or the connect page, and an app's own token (OAuth 2.0 client
//! credentials) fetched from the connect page and renewed by asking again.

use e2e::{browse, browse_filling, World, ADMIN_KEY, INTEGRATIONS};
use reqwest::Method;

const ENTERED: &str = "\
- provider: stripe
  alias: payments
  context: user
- provider: twilio
  context: bot
";

pub async fn keys_and_basic_credentials_are_entered_and_read_back(w: World) -> anyhow::Result<()> {
    let resp = w
        .bot(Method::PUT, "/integrations")
        .header("content-type", "application/yaml")
        .body(format!("{INTEGRATIONS}{ENTERED}"))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 200, "{}", resp.text().await?);

    // A user-context key: the link opens a form; nothing is stored until it is sent.
    let link = w.mint_link("payments", Some("u-7")).await?;
    let form = browse(&link, None).await?;
    assert_eq!(form.title, "Connect Stripe", "{}", form.text);
    let (_, none) = w.bot_json(Method::GET, "/users/u-7/tokens").await?;
    assert!(none["tokens"]["payments"].is_null(), "{none}");
    let done = browse_filling(
        &link,
        &[("Stripe secret key", "sk_test_51Hx")],
        Some("Connect"),
    )
    .await?;
    assert_eq!(done.title, "Connected", "{}", done.text);
    assert!(!done.text.contains("sk_test_51Hx"));
    let (_, tokens) = w.bot_json(Method::GET, "/users/u-7/tokens").await?;
    let id = tokens["tokens"]["payments"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(id.starts_with("tok_"), "{tokens}");
    let (status, view) = w
        .bot_json(Method::GET, &format!("/tokens/{id}/access-token"))
        .await?;
    assert_eq!(status, 200);
    assert_eq!(
        view,
        serde_json::json!({"access_token": "sk_test_51Hx", "token_type": "api_key", "status": "valid", "expires_at": null})
    );
    let (_, full) = w.bot_json(Method::GET, &format!("/tokens/{id}")).await?;
    assert_eq!(
        full["credentials"]["other"]["credentials"]["api_key"],
        "sk_test_51Hx"
    );
    assert_eq!(w.events_of("token:payments").await?.len(), 1);
    // The link is spent.
    let again = browse(&link, None).await?;
    assert_eq!(again.status, Some(404), "{}", again.text);

    // A bot-context Basic credential on the connect page.
    let (_, minted) = w.bot_json(Method::POST, "/connect-links").await?;
    let url = minted["url"].as_str().unwrap_or_default().to_owned();
    let page = browse(&url, None).await?;
    assert!(page.text.contains("Twilio"), "{}", page.text);
    let saved = browse_filling(
        &url,
        &[("Account SID", "AC0123456789"), ("Auth Token", "s3cr:et")],
        Some("Save"),
    )
    .await?;
    assert_eq!(saved.title, "Connected", "{}", saved.text);
    let (_, tokens) = w.bot_json(Method::GET, "/tokens").await?;
    let id = tokens["tokens"]["twilio"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (_, view) = w
        .bot_json(Method::GET, &format!("/tokens/{id}/access-token"))
        .await?;
    use base64::Engine;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("AC0123456789:s3cr:et")
    );
    assert_eq!(view["access_token"], expected.as_str());
    assert_eq!(view["token_type"], "basic");
    assert_eq!(w.events_of("token:twilio").await?.len(), 1);

    // An empty field stores nothing.
    let link = w.mint_link("payments", Some("u-8")).await?;
    let refused = w
        .http
        .post(&link)
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("api_key=")
        .send()
        .await?;
    assert_eq!(refused.status(), 400);
    let (_, none) = w.bot_json(Method::GET, "/users/u-8/tokens").await?;
    assert!(none["tokens"]["payments"].is_null(), "{none}");

    // A key is not a grant: deleting it revokes nothing, and says so.
    let (_, deleted) = w.bot_json(Method::DELETE, &format!("/tokens/{id}")).await?;
    assert_eq!(deleted["deleted"], true);
    let gone = w.events_of("token_deleted:twilio").await?;
    assert_eq!(gone[0]["detail"]["revoked"], "unsupported", "{gone:?}");
    Ok(())
}

pub async fn an_apps_own_token_is_fetched_on_the_connect_page_and_renewed(
    w: World,
) -> anyhow::Result<()> {
    // The catalog's PayPal entry (client credentials), pointed at the test provider.
    let resp = w
        .http
        .put(w.url("/v1/admin/providers/paypal"))
        .bearer_auth(ADMIN_KEY)
        .json(&serde_json::json!({
            "client_id": "bots-app", "client_secret": "app-secret",
            "token_url": format!("{}/token", w.provider.issuer),
        }))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 200, "{}", resp.text().await?);
    let resp = w
        .bot(Method::PUT, "/integrations")
        .header("content-type", "application/yaml")
        .body(format!(
            "{INTEGRATIONS}- provider: paypal\n  context: bot\n  scope: payments\n"
        ))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 200, "{}", resp.text().await?);
    // Short-lived app tokens: due again at once.
    w.provider
        .control(serde_json::json!({"token_ttl": 2}))
        .await?;

    let (_, minted) = w.bot_json(Method::POST, "/connect-links").await?;
    let url = minted["url"].as_str().unwrap_or_default().to_owned();
    let done = browse(&url, Some("Get token")).await?;
    assert_eq!(done.title, "Connected", "{}", done.text);
    let grants = w.provider.token_requests("client_credentials");
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert!(w.provider.token_requests("authorization_code").is_empty());
    let (_, tokens) = w.bot_json(Method::GET, "/tokens").await?;
    let id = tokens["tokens"]["paypal"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (_, full) = w.bot_json(Method::GET, &format!("/tokens/{id}")).await?;
    assert_eq!(full["credentials"]["token"], grants[0]["access_token"]);
    assert!(full["credentials"]["refresh_token"].is_null());
    assert_eq!(w.events_of("token:paypal").await?.len(), 1);

    // Expired: asked for again, no refresh token needed.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, view) = w
        .bot_json(Method::GET, &format!("/tokens/{id}/access-token"))
        .await?;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["status"], "valid");
    let grants = w.provider.token_requests("client_credentials");
    assert_eq!(grants.len(), 2, "{grants:?}");
    assert_eq!(view["access_token"], grants[1]["access_token"]);
    Ok(())
}
