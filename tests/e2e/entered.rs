//! Integrations whose credentials are entered rather than signed in for (API keys, HTTP
//! Basic), in a real Chromium: a user pastes a key on the link's form, the builder enters
//! Basic credentials on the connect page; both are stored sealed and read like tokens.

use e2e::{browse, browse_filling, World, INTEGRATIONS};
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
    Ok(())
}
