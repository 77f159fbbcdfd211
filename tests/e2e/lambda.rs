//! The three Lambda functions, each its real binary, answering API Gateway HTTP API
//! (payload 2.0) events through the Lambda Runtime API, on DynamoDB, KMS and EventBridge in
//! moto.

use e2e::runtime_api::{http_event, Deployment, FIXTURE_ADMIN_KEY, PUBLIC_URL};
use e2e::{client, location, Provider};
use serde_json::{json, Value};

fn fixture(name: &str) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(e2e::workspace_root().join("events").join(name))?;
    Ok(serde_json::from_str(&text)?)
}

fn header<'a>(answer: &'a Value, name: &str) -> &'a str {
    answer["headers"][name].as_str().unwrap_or_default()
}

#[tokio::test]
async fn each_fixture_gets_its_answer_from_the_real_handler() -> anyhow::Result<()> {
    let f = Deployment::start().await?;

    let created = f.api.invoke(fixture("token-api.json")?).await?;
    assert_eq!(created["statusCode"], 201, "{created}");
    let body: Value = serde_json::from_str(created["body"].as_str().unwrap_or_default())?;
    assert_eq!(body["bot_id"], "acme");
    assert!(body["api_key"]
        .as_str()
        .is_some_and(|k| k.starts_with("bk.acme.")));
    let again = f.api.invoke(fixture("token-api.json")?).await?;
    assert_eq!(again["statusCode"], 409);

    let start = f.start.invoke(fixture("oauth-start.json")?).await?;
    assert_eq!(start["statusCode"], 404, "{start}");
    assert_eq!(header(&start, "cache-control"), "no-store");
    assert!(start["body"]
        .as_str()
        .unwrap_or_default()
        .contains("ask the bot for a new link"));

    let callback = f.callback.invoke(fixture("oauth-callback.json")?).await?;
    assert_eq!(callback["statusCode"], 400, "{callback}");
    assert_eq!(header(&callback, "referrer-policy"), "no-referrer");
    let page = callback["body"].as_str().unwrap_or_default();
    assert!(
        !page.contains("example-code") && !page.contains("BBBB"),
        "the page echoed code or state"
    );

    // Logs are JSON lines, as AWS_LAMBDA_LOG_FORMAT=JSON asks.
    let log = std::fs::read_to_string(&f.api.log_path)?;
    let line = log
        .lines()
        .find(|l| l.contains("bot created"))
        .expect("a log line for the new bot");
    let parsed: Value = serde_json::from_str(line)?;
    assert_eq!(parsed["level"], "INFO");
    Ok(())
}

#[tokio::test]
async fn a_whole_flow_through_the_three_functions() -> anyhow::Result<()> {
    let f = Deployment::start().await?;
    let dir = tempfile::tempdir()?;
    let provider = Provider::start(dir.path()).await?;
    let admin = format!("Bearer {FIXTURE_ADMIN_KEY}");
    let api = |method: &str, path: &str, auth: &str, ct: &str, body: Option<&str>| {
        http_event(
            "token-api.json",
            method,
            path,
            &[("authorization", auth), ("content-type", ct)],
            body,
        )
    };

    let registered = f
        .api
        .invoke(api(
            "PUT",
            "/v1/admin/providers/demo",
            &admin,
            "application/json",
            Some(&json!({"client_id": "demo-client", "client_secret": "canary-client-secret", "issuer": provider.issuer}).to_string()),
        )?)
        .await?;
    assert_eq!(registered["statusCode"], 200, "{registered}");
    let created = f.api.invoke(fixture("token-api.json")?).await?;
    let key = serde_json::from_str::<Value>(created["body"].as_str().unwrap_or_default())?
        ["api_key"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let bot = format!("Bearer {key}");
    let put = f
        .api
        .invoke(api(
            "PUT",
            "/v1/bots/acme/integrations",
            &bot,
            "application/yaml",
            Some(e2e::INTEGRATIONS),
        )?)
        .await?;
    assert_eq!(put["statusCode"], 200, "{put}");
    let minted = f
        .api
        .invoke(api(
            "POST",
            "/v1/bots/acme/oauth-links",
            &bot,
            "application/json",
            Some(r#"{"alias":"demo","user_id":"u-1"}"#),
        )?)
        .await?;
    assert_eq!(minted["statusCode"], 201, "{minted}");
    let link = serde_json::from_str::<Value>(minted["body"].as_str().unwrap_or_default())?["url"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        link.starts_with(&format!("{PUBLIC_URL}/oauth/start/acme.")),
        "{link}"
    );

    // The browser: start function → provider → callback function.
    let started = f
        .start
        .invoke(http_event(
            "oauth-start.json",
            "GET",
            link.trim_start_matches(PUBLIC_URL),
            &[],
            None,
        )?)
        .await?;
    assert_eq!(started["statusCode"], 302, "{started}");
    let authorize = header(&started, "location").to_owned();
    assert!(authorize.starts_with(&provider.issuer));
    assert!(authorize.contains(&format!(
        "redirect_uri={}",
        url::form_urlencoded::byte_serialize(
            format!("{PUBLIC_URL}/oauth/callback/demo").as_bytes()
        )
        .collect::<String>()
    )));
    // The browser key: a `__Host-` cookie over https, sent back with the callback (API
    // Gateway passes request cookies in `cookies`, and answers them from `cookies` too).
    let set_cookie = started["cookies"][0]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        set_cookie.starts_with("__Host-integrations-browser="),
        "{started}"
    );
    for attribute in [
        "Path=/",
        "HttpOnly",
        "SameSite=Lax",
        "Secure",
        "Max-Age=600",
    ] {
        assert!(
            set_cookie.split("; ").any(|a| a == attribute),
            "{set_cookie}"
        );
    }
    let cookie = set_cookie.split(';').next().unwrap_or_default().to_owned();
    let back = location(client().get(&authorize).send().await?)?;
    let back = back.trim_start_matches(PUBLIC_URL);
    assert!(back.starts_with("/oauth/callback/demo?"), "{back}");
    let mut event = http_event("oauth-callback.json", "GET", back, &[], None)?;
    event["cookies"] = serde_json::json!([cookie]);
    let done = f.callback.invoke(event).await?;
    assert_eq!(done["statusCode"], 200, "{done}");
    assert!(done["body"]
        .as_str()
        .unwrap_or_default()
        .contains("return to the chat"));

    let events = f.aws.events().await?;
    let token_event = events
        .iter()
        .find(|e| e["detail-type"] == "token:demo")
        .expect("token:demo on the bus");
    let token_id = token_event["detail"]["token_id"]
        .as_str()
        .unwrap_or_default();
    let tokens = f
        .api
        .invoke(api(
            "GET",
            "/v1/bots/acme/users/u-1/tokens",
            &bot,
            "application/json",
            None,
        )?)
        .await?;
    let tokens: Value = serde_json::from_str(tokens["body"].as_str().unwrap_or_default())?;
    assert_eq!(tokens["tokens"]["demo"], token_id);
    let access = f
        .api
        .invoke(api(
            "GET",
            &format!("/v1/bots/acme/tokens/{token_id}/access-token"),
            &bot,
            "application/json",
            None,
        )?)
        .await?;
    let access: Value = serde_json::from_str(access["body"].as_str().unwrap_or_default())?;
    assert_eq!(access["status"], "valid");
    assert_eq!(
        access["access_token"],
        provider.token_requests("authorization_code")[0]["access_token"]
    );

    // The functions ran at TRACE: their logs hold none of the secrets they handled.
    let query: std::collections::HashMap<String, String> =
        url::Url::parse(&format!("{PUBLIC_URL}{back}"))?
            .query_pairs()
            .into_owned()
            .collect();
    let browser_value = cookie.split_once('=').map_or("", |(_, v)| v);
    let mut canaries = vec![
        FIXTURE_ADMIN_KEY.to_owned(),
        key.clone(),
        "canary-client-secret".to_owned(),
        query["code"].clone(),
        query["state"].clone(),
        browser_value.to_owned(),
    ];
    canaries.extend(provider.issued_secrets());
    let mut lines = 0;
    for function in [&f.start, &f.callback, &f.api] {
        let log = std::fs::read_to_string(&function.log_path)?;
        lines += log.lines().count();
        for canary in &canaries {
            assert!(
                canary.len() >= 6 && !log.contains(canary.as_str()),
                "{} logged a secret (or a canary is too short to tell): {canary}",
                function.name
            );
        }
    }
    assert!(
        lines > 10,
        "the functions logged almost nothing ({lines} lines)"
    );
    Ok(())
}
