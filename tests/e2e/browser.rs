//! The pages as a person meets them: a real Chromium follows the links and clicks.

use e2e::{browse, World};
use reqwest::Method;

#[tokio::test]
async fn a_user_connects_in_a_browser_and_a_used_link_explains_itself() -> anyhow::Result<()> {
    let w = World::new().await?;
    let link = w.mint_link("demo", Some("u-1")).await?;

    let page = browse(&link, None).await?;
    assert_eq!(page.status, Some(200));
    assert_eq!(page.title, "Connected");
    assert!(page.text.contains("return to the chat"), "{}", page.text);
    assert!(page
        .url
        .starts_with(&format!("{}/oauth/callback/demo?", w.server.base)));
    assert_eq!(page.headers["cache-control"], "no-store");
    assert_eq!(page.headers["referrer-policy"], "no-referrer");
    assert_eq!(w.server.events_of("token:demo").await?.len(), 1);

    let again = browse(&link, None).await?;
    assert_eq!(again.status, Some(404));
    assert!(
        again.text.contains("ask the bot for a new link"),
        "{}",
        again.text
    );
    assert_eq!(w.provider.token_requests("authorization_code").len(), 1);
    Ok(())
}

#[tokio::test]
async fn the_bot_builder_connects_on_the_connect_page() -> anyhow::Result<()> {
    let w = World::new().await?;
    let (_, minted) = w.bot_json(Method::POST, "/connect-links").await?;
    let url = minted["url"].as_str().unwrap_or_default().to_owned();

    let page = browse(&url, None).await?;
    assert_eq!(page.title, "Connect integrations");
    assert!(
        page.text.contains("demo_bot") && page.text.contains("not connected"),
        "{}",
        page.text
    );

    let done = browse(&url, Some("Connect")).await?;
    assert_eq!(done.title, "Connected", "{}", done.text);
    let (_, tokens) = w.bot_json(Method::GET, "/tokens").await?;
    let token_id = tokens["tokens"]["demo_bot"].as_str().unwrap_or_default();
    assert!(token_id.starts_with("tok_"));
    assert_eq!(w.server.events_of("token:demo_bot").await?.len(), 1);

    let after = browse(&url, None).await?;
    assert!(
        after.text.contains("Reconnect") && !after.text.contains("not connected"),
        "{}",
        after.text
    );
    assert!(after.text.contains("Disconnect"), "{}", after.text);

    // Disconnecting deletes the token, revoking its grant at the provider.
    let gone = browse(&url, Some("Disconnect")).await?;
    assert_eq!(gone.title, "Disconnected", "{}", gone.text);
    let (_, tokens) = w.bot_json(Method::GET, "/tokens").await?;
    assert_eq!(tokens["tokens"].get("demo_bot"), None, "{tokens}");
    let deleted = w.server.events_of("token_deleted:demo_bot").await?;
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["detail"]["revoked"], "yes");
    let again = browse(&url, None).await?;
    assert!(again.text.contains("not connected"), "{}", again.text);
    Ok(())
}

#[tokio::test]
async fn a_sign_in_started_in_another_browser_is_refused_then_connects_in_its_own(
) -> anyhow::Result<()> {
    let w = World::new().await?;
    let link = w.mint_link("demo", Some("u-1")).await?;

    // Someone else's browser opens the link (a forwarded link, a link previewer) and the
    // provider's answer lands in this Chromium, which never started the sign-in.
    let to_provider = e2e::location(e2e::browser_client().get(&link).send().await?)?;
    let page = browse(&to_provider, None).await?;
    assert_eq!(page.status, Some(403));
    assert!(
        page.text.contains("started in another browser"),
        "{}",
        page.text
    );
    assert!(w.provider.token_requests("authorization_code").is_empty());
    let failed = w.server.events_of("oauth_failed:demo").await?;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["detail"]["reason"], "browser_mismatch");

    // The link is not spent: opened in Chromium from the start, it connects.
    let page = browse(&link, None).await?;
    assert_eq!(page.title, "Connected", "{}", page.text);
    assert_eq!(w.provider.token_requests("authorization_code").len(), 1);
    Ok(())
}
