//! A sign-in link connects only the person who opened it: the browser that started a flow
//! must be the one that finishes it, one link connects once, and a link previewer's fetch
//! spends nothing.

use e2e::{browser_client, location, World};
use reqwest::Method;

/// The provider's redirect back for a flow started from `link` in `starter`, not visited.
async fn started_in(starter: &reqwest::Client, link: &str) -> anyhow::Result<String> {
    let to_provider = location(starter.get(link).send().await?)?;
    location(e2e::client().get(&to_provider).send().await?)
}

pub async fn a_flow_finishes_only_in_the_browser_that_started_it(w: World) -> anyhow::Result<()> {
    let link = w.mint_link("demo", Some("u-1")).await?;
    // Started in one browser; the provider's answer reaches another (another cookie jar),
    // then one with no cookie at all.
    let callback = started_in(&browser_client(), &link).await?;
    let resp = w.http.get(&callback).send().await?;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await?.contains("started in another browser"));
    let callback = started_in(&browser_client(), &link).await?;
    let resp = e2e::client().get(&callback).send().await?;
    assert_eq!(resp.status(), 403);

    // No code was exchanged, nothing stored, and the bot heard why.
    assert!(w.provider.token_requests("authorization_code").is_empty());
    let (_, tokens) = w.bot_json(Method::GET, "/users/u-1/tokens").await?;
    assert_eq!(tokens["tokens"], serde_json::json!({}));
    let failed = w.events_of("oauth_failed:demo").await?;
    assert_eq!(failed.len(), 2);
    assert!(failed
        .iter()
        .all(|e| e["detail"]["reason"] == "browser_mismatch"));

    // The link is not spent by those: its owner, in one browser, connects.
    w.connect_link(&link, "demo").await?;
    assert_eq!(w.provider.token_requests("authorization_code").len(), 1);
    Ok(())
}

pub async fn two_flows_from_one_link_connect_once(w: World) -> anyhow::Result<()> {
    let link = w.mint_link("demo", Some("u-1")).await?;
    // A link previewer fetches the link first: a flow it never finishes, nothing spent.
    let previewer = browser_client();
    let preview = previewer.get(&link).send().await?;
    assert_eq!(preview.status(), 302);

    // The person opens the link twice (two tabs) and both come back.
    let first = w.authorize(&link).await?;
    let second = w.authorize(&link).await?;
    let (a, b) = tokio::join!(w.http.get(&first).send(), w.http.get(&second).send());
    let mut statuses = [a?.status().as_u16(), b?.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 410]);
    assert_eq!(w.provider.token_requests("authorization_code").len(), 1);
    assert_eq!(w.events_of("token:demo").await?.len(), 1);
    let (_, tokens) = w.bot_json(Method::GET, "/users/u-1/tokens").await?;
    assert!(tokens["tokens"]["demo"].is_string(), "{tokens}");

    // The spent link starts nothing more.
    assert_eq!(w.http.get(&link).send().await?.status(), 404);
    Ok(())
}

pub async fn a_link_requested_in_a_loop_stops_starting_flows(w: World) -> anyhow::Result<()> {
    let link = w.mint_link("demo", Some("u-1")).await?;
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(e2e::client().get(&link).send().await?.status().as_u16());
    }
    assert_eq!(statuses[..10], [302; 10]);
    assert_eq!(statuses[10..], [429, 429]);
    Ok(())
}

pub async fn the_connect_form_accepts_only_its_own_page(w: World) -> anyhow::Result<()> {
    let (_, minted) = w.bot_json(Method::POST, "/connect-links").await?;
    let url = minted["url"].as_str().unwrap_or_default().to_owned();
    let post = |headers: &'static [(&'static str, &'static str)]| {
        let mut req = w.http.post(format!("{url}/demo_bot"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        req.send()
    };
    for cross in [
        &[("sec-fetch-site", "cross-site")][..],
        &[("sec-fetch-site", "same-site")][..],
        &[("origin", "https://evil.example")][..],
        &[("origin", "null")][..],
        &[
            ("sec-fetch-site", "same-origin"),
            ("origin", "https://evil.example"),
        ][..],
    ] {
        let resp = post(cross).await?;
        assert_eq!(resp.status(), 403, "{cross:?}");
    }
    let origin = url::Url::parse(&url)?.origin().ascii_serialization();
    let resp = w
        .http
        .post(format!("{url}/demo_bot"))
        .header("sec-fetch-site", "same-origin")
        .header("origin", origin)
        .send()
        .await?;
    assert_eq!(resp.status(), 303);
    Ok(())
}

/// An integrations file whose user-context `demo` is confirmed by code.
const CONFIRM_BY_CODE: &str = "\
- provider: demo
  context: user
  confirm: code
- provider: demo
  alias: demo_bot
  context: bot
";

/// Signs in through a new link for `user` and answers the code the page shows.
async fn sign_in_for_code(w: &World, user: &str) -> anyhow::Result<String> {
    let link = w.mint_link("demo", Some(user)).await?;
    let callback = w.authorize(&link).await?;
    let page = w.http.get(&callback).send().await?;
    anyhow::ensure!(page.status() == 200, "callback answered {}", page.status());
    let html = page.text().await?;
    anyhow::ensure!(html.contains("type this code in the chat"), "{html}");
    let code = html
        .split("<strong>")
        .nth(1)
        .and_then(|rest| rest.split("</strong>").next())
        .unwrap_or_default()
        .to_owned();
    anyhow::ensure!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "no code on the page: {html}"
    );
    Ok(code)
}

/// How many revocation requests the provider received.
fn revocations(w: &World) -> usize {
    w.provider
        .requests()
        .iter()
        .filter(|r| r["endpoint"] == "revoke")
        .count()
}

async fn confirm(w: &World, user: &str, code: &str) -> anyhow::Result<(u16, serde_json::Value)> {
    w.bot_json_with(
        Method::POST,
        &format!("/users/{user}/confirmations"),
        serde_json::json!({ "code": code }),
    )
    .await
}

pub async fn a_sign_in_confirmed_by_code_is_stored_once_the_chat_sends_it(
    w: World,
) -> anyhow::Result<()> {
    let put = w
        .bot(Method::PUT, "/integrations")
        .header("content-type", "application/yaml")
        .body(CONFIRM_BY_CODE)
        .send()
        .await?;
    assert_eq!(put.status(), 200, "{}", put.text().await?);
    let wrong = |code: &str| if code == "000000" { "000001" } else { "000000" }.to_owned();

    // The sign-in completes at the provider; the token waits for the code.
    let code = sign_in_for_code(&w, "u-1").await?;
    let (_, tokens) = w.bot_json(Method::GET, "/users/u-1/tokens").await?;
    assert_eq!(tokens["tokens"], serde_json::json!({}));
    assert!(w.events_of("token:demo").await?.is_empty());

    // A wrong code, then the right one from the right user.
    let (status, body) = confirm(&w, "u-1", &wrong(&code)).await?;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["code"], "invalid_confirmation_code");
    let (status, _) = confirm(&w, "u-2", &code).await?;
    assert_eq!(status, 422);
    let (status, done) = confirm(&w, "u-1", &code).await?;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["alias"], "demo");
    let (_, tokens) = w.bot_json(Method::GET, "/users/u-1/tokens").await?;
    assert_eq!(tokens["tokens"]["demo"], done["token_id"]);
    let events = w.events_of("token:demo").await?;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["detail"]["token_id"], done["token_id"]);
    assert_eq!(confirm(&w, "u-1", &code).await?.0, 422, "a code works once");

    // Five wrong codes drop the next sign-in and revoke its grant at the provider.
    let code = sign_in_for_code(&w, "u-3").await?;
    for _ in 0..5 {
        assert_eq!(confirm(&w, "u-3", &wrong(&code)).await?.0, 422);
    }
    assert_eq!(confirm(&w, "u-3", &code).await?.0, 422);
    assert_eq!(revocations(&w), 1);
    let failed = w.events_of("oauth_failed:demo").await?;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["detail"]["reason"], "confirmation_failed");
    assert_eq!(failed[0]["detail"]["user_id"], "u-3");
    let (_, tokens) = w.bot_json(Method::GET, "/users/u-3/tokens").await?;
    assert_eq!(tokens["tokens"], serde_json::json!({}));

    // A sign-in whose 10 minutes passed is dropped, even with its right code.
    let code = sign_in_for_code(&w, "u-4").await?;
    assert_eq!(w.age_waiting_sign_ins("u-4").await?, 1);
    assert_eq!(confirm(&w, "u-4", &code).await?.0, 422);
    let revoked = revocations(&w);
    assert_eq!(revoked, 2);
    let failed = w.events_of("oauth_failed:demo").await?;
    assert_eq!(failed.len(), 2);
    assert_eq!(failed[1]["detail"]["user_id"], "u-4");
    assert_eq!(failed[1]["detail"]["reason"], "confirmation_failed");
    Ok(())
}

pub async fn a_sign_in_confirmed_by_redirect_is_stored_for_the_platforms_user(
    w: World,
) -> anyhow::Result<()> {
    let yaml = CONFIRM_BY_CODE.replace("confirm: code", "confirm: redirect");
    let put = w
        .bot(Method::PUT, "/integrations")
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await?;
    assert_eq!(put.status(), 200, "{}", put.text().await?);
    // No link before the operator says where the platform confirms.
    let resp = w
        .bot(Method::POST, "/oauth-links")
        .json(&serde_json::json!({"alias": "demo", "user_id": "u-1"}))
        .send()
        .await?;
    assert_eq!(resp.status(), 409);
    let settings = w
        .http
        .put(w.url("/v1/admin/bots/acme"))
        .bearer_auth(e2e::ADMIN_KEY)
        .json(&serde_json::json!({"confirm_url": "https://chat.example/confirm"}))
        .send()
        .await?;
    assert_eq!(settings.status(), 200, "{}", settings.text().await?);

    // The callback sends the browser to the platform with a flow id, nothing else.
    let flow_after_sign_in = || async {
        let link = w.mint_link("demo", Some("u-1")).await?;
        let callback = w.authorize(&link).await?;
        let to = location(w.http.get(&callback).send().await?)?;
        let to = url::Url::parse(&to)?;
        anyhow::ensure!(
            to.as_str()
                .starts_with("https://chat.example/confirm?flow="),
            "{to}"
        );
        anyhow::ensure!(to.query_pairs().count() == 1, "{to}");
        Ok::<_, anyhow::Error>(
            to.query_pairs()
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default(),
        )
    };
    let w = &w;
    let confirm = |flow: String, user: &'static str| async move {
        w.bot_json_with(
            Method::POST,
            &format!("/flows/{flow}/confirm"),
            serde_json::json!({ "user_id": user }),
        )
        .await
    };

    // The platform's signed-in user is someone else: refused, dropped, revoked.
    let flow = flow_after_sign_in().await?;
    let (_, tokens) = w.bot_json(Method::GET, "/users/u-1/tokens").await?;
    assert_eq!(tokens["tokens"], serde_json::json!({}));
    let (status, body) = confirm(flow.clone(), "u-2").await?;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (409, "user_mismatch".into())
    );
    assert_eq!(confirm(flow, "u-1").await?.0, 404);
    let revoked = revocations(w);
    assert_eq!(revoked, 1);
    let failed = w.events_of("oauth_failed:demo").await?;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["detail"]["reason"], "confirmation_failed");

    // The link's user: stored and announced, once.
    let flow = flow_after_sign_in().await?;
    let (status, done) = confirm(flow.clone(), "u-1").await?;
    assert_eq!(status, 200, "{done}");
    let (_, tokens) = w.bot_json(Method::GET, "/users/u-1/tokens").await?;
    assert_eq!(tokens["tokens"]["demo"], done["token_id"]);
    let events = w.events_of("token:demo").await?;
    assert_eq!(events.len(), 1);
    assert_eq!(confirm(flow, "u-1").await?.0, 404);
    Ok(())
}
