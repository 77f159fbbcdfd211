//! Each bad input of the contract gets its 4xx, in the contract's format, and changes nothing.

use e2e::{World, ADMIN_KEY, INTEGRATIONS};
use reqwest::Method;
use serde_json::{json, Value};

async fn snapshot(w: &World) -> anyhow::Result<(Value, Value, usize, usize)> {
    let (_, integrations) = w.bot_json(Method::GET, "/integrations").await?;
    let (_, tokens) = w.bot_json(Method::GET, "/users/u-1/tokens").await?;
    Ok((
        integrations,
        tokens,
        w.events().await?.len(),
        w.provider.token_requests("authorization_code").len(),
    ))
}

fn error_code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<none>")
}

pub async fn keys_are_required_and_bots_are_isolated(w: World) -> anyhow::Result<()> {
    let token_id = w.connect_user("u-1").await?;

    for key in [None, Some("wrong"), Some("bk.acme.not-the-key")] {
        let mut req = w.http.get(w.url("/v1/bots/acme/tokens"));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await?;
        assert_eq!(resp.status(), 401, "key {key:?}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer");
        assert_eq!(error_code(&resp.json().await?), "unauthorized");
    }
    let resp = w
        .http
        .post(w.url("/v1/admin/bots"))
        .bearer_auth(&w.bot_key)
        .json(&json!({"bot_id": "x"}))
        .send()
        .await?;
    assert_eq!(resp.status(), 401, "a bot key is not an admin key");

    // Bot B exists; A's key on B's paths, or on B's token, is answered as "not found".
    let other: Value = w
        .http
        .post(w.url("/v1/admin/bots"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({"bot_id": "beta"}))
        .send()
        .await?
        .json()
        .await?;
    let beta_key = other["api_key"].as_str().unwrap_or_default();
    for path in [
        "/v1/bots/beta/tokens",
        "/v1/bots/beta/integrations",
        "/v1/bots/nobody/tokens",
    ] {
        let resp = w
            .http
            .get(w.url(path))
            .bearer_auth(&w.bot_key)
            .send()
            .await?;
        assert_eq!(resp.status(), 404, "{path}");
    }
    for method in [Method::GET, Method::DELETE] {
        let resp = w
            .http
            .request(
                method.clone(),
                w.url(&format!("/v1/bots/beta/tokens/{token_id}")),
            )
            .bearer_auth(beta_key)
            .send()
            .await?;
        let status = resp.status().as_u16();
        let body: Value = resp.json().await?;
        // Beta cannot tell acme's token from a token that does not exist.
        match method {
            Method::DELETE => {
                assert_eq!((status, body["deleted"].clone()), (200, Value::Bool(false)))
            }
            _ => assert_eq!(status, 404),
        }
    }
    let (s, _) = w
        .bot_json(Method::GET, &format!("/tokens/{token_id}/info"))
        .await?;
    assert_eq!(s, 200, "acme's token survived beta's delete");

    // A rotated key replaces the old one at once.
    let rotated: Value = w
        .http
        .post(w.url("/v1/admin/bots/acme/api-key"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await?
        .json()
        .await?;
    let old = w
        .http
        .get(w.url("/v1/bots/acme/tokens"))
        .bearer_auth(&w.bot_key)
        .send()
        .await?;
    assert_eq!(old.status(), 401);
    let new = w
        .http
        .get(w.url("/v1/bots/acme/tokens"))
        .bearer_auth(rotated["api_key"].as_str().unwrap_or_default())
        .send()
        .await?;
    assert_eq!(new.status(), 200);
    Ok(())
}

pub async fn operator_inputs_are_checked(w: World) -> anyhow::Result<()> {
    let post = |body: Value| {
        w.http
            .post(w.url("/v1/admin/bots"))
            .bearer_auth(ADMIN_KEY)
            .json(&body)
            .send()
    };
    let resp = post(json!({"bot_id": "Bad Bot"})).await?;
    assert_eq!(resp.status(), 422);
    assert_eq!(error_code(&resp.json().await?), "invalid_value");
    let resp = post(json!({"bot_id": "acme"})).await?;
    assert_eq!(resp.status(), 409);
    assert_eq!(error_code(&resp.json().await?), "bot_exists");
    let resp = post(json!({"bot": "x"})).await?;
    assert_eq!(resp.status(), 422);
    let resp = w
        .http
        .post(w.url("/v1/admin/bots"))
        .bearer_auth(ADMIN_KEY)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await?;
    assert_eq!(resp.status(), 400);
    assert_eq!(error_code(&resp.json().await?), "malformed_json");
    let resp = w
        .http
        .post(w.url("/v1/admin/bots/nobody/api-key"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await?;
    assert_eq!(resp.status(), 404);

    let put = |name: &str, body: Value| {
        w.http
            .put(w.url(&format!("/v1/admin/providers/{name}")))
            .bearer_auth(ADMIN_KEY)
            .json(&body)
            .send()
    };
    let resp = put("acme_idp", json!({"client_id": "x"})).await?;
    assert_eq!(resp.status(), 422, "a custom provider without endpoints");
    let resp = put("acme_idp", json!({"client_id": "x", "authorize_url": "http://idp.example/a", "token_url": "https://idp.example/t"})).await?;
    assert_eq!(resp.status(), 422, "plain http to a remote host");
    let resp = put(
        "google",
        json!({"client_id": "x", "authorize_params": {"redirect_uri": "https://evil.example"}}),
    )
    .await?;
    assert_eq!(resp.status(), 422);
    let resp = put("google", json!({"client_id": "x", "client_sekret": "y"})).await?;
    assert_eq!(resp.status(), 422);
    let list: Value = w
        .http
        .get(w.url("/v1/admin/providers"))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await?
        .json()
        .await?;
    assert_eq!(
        list["providers"].as_array().map(Vec::len),
        Some(1),
        "only demo is registered: {list}"
    );
    Ok(())
}

pub async fn a_rejected_integrations_file_changes_nothing(w: World) -> anyhow::Result<()> {
    let before = snapshot(&w).await?;
    let put = |ct: &'static str, body: String| {
        w.bot(Method::PUT, "/integrations")
            .header("content-type", ct)
            .body(body)
            .send()
    };
    let resp = put("text/plain", INTEGRATIONS.into()).await?;
    assert_eq!(resp.status(), 415);

    let resp = put(
        "application/yaml",
        "- provider: dmeo\n  context: user\n".into(),
    )
    .await?;
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await?;
    assert_eq!(error_code(&body), "invalid_integrations");
    assert_eq!(body["error"]["details"][0]["line"], 1);
    assert_eq!(body["error"]["details"][0]["column"], 13);
    let message = body["error"]["details"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("did you mean 'demo'"), "{message}");

    let cases = [
        "- provider: demo\n  context: everyone\n",
        "- provider: demo\n  context: user\n  colour: blue\n",
        "- provider: demo\n  context: user\n- provider: demo\n  context: bot\n",
        "- provider: demo\n  context: [user\n",
        "provider: demo\ncontext: user\n",
    ];
    for case in cases {
        let resp = put("application/yaml", case.into()).await?;
        assert_eq!(resp.status(), 422, "{case}");
        let body: Value = resp.json().await?;
        assert!(
            body["error"]["details"][0]["line"].as_u64().is_some(),
            "{case}: {body}"
        );
    }
    let big = format!("# {}\n", "x".repeat(70 * 1024));
    let resp = put("application/yaml", big).await?;
    assert_eq!(resp.status(), 413);
    assert_eq!(snapshot(&w).await?, before);
    Ok(())
}

pub async fn link_requests_are_checked(w: World) -> anyhow::Result<()> {
    let before = snapshot(&w).await?;
    let cases = [
        (
            json!({"alias": "nope", "user_id": "u-1"}),
            422,
            "unknown_alias",
        ),
        (json!({"alias": "demo"}), 422, "user_id_required"),
        (
            json!({"alias": "demo_bot", "user_id": "u-1"}),
            422,
            "user_id_not_allowed",
        ),
        (
            json!({"alias": "demo", "user_id": ""}),
            422,
            "invalid_value",
        ),
        (
            json!({"alias": "demo", "user_id": "x".repeat(257)}),
            422,
            "invalid_value",
        ),
        (
            json!({"alias": "Demo!", "user_id": "u-1"}),
            422,
            "invalid_value",
        ),
        (
            json!({"alias": "demo", "user_id": "u-1", "extra": 1}),
            422,
            "invalid_body",
        ),
    ];
    for (body, status, code) in cases {
        let resp = w
            .bot(Method::POST, "/oauth-links")
            .json(&body)
            .send()
            .await?;
        assert_eq!(resp.status().as_u16(), status, "{body}");
        assert_eq!(error_code(&resp.json().await?), code, "{body}");
    }
    // A provider without a registered app cannot be linked.
    let yaml = format!("{INTEGRATIONS}- provider: github\n  context: user\n");
    let resp = w
        .bot(Method::PUT, "/integrations")
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let resp = w
        .bot(Method::POST, "/oauth-links")
        .json(&json!({"alias": "github", "user_id": "u-1"}))
        .send()
        .await?;
    assert_eq!(resp.status(), 409);
    assert_eq!(error_code(&resp.json().await?), "provider_not_configured");

    for (path, status) in [
        ("/tokens/tok_doesnotexist", 404),
        ("/tokens/../../etc", 404),
        ("/tokens/x/access-token", 404),
    ] {
        let (s, body) = w.bot_json(Method::GET, path).await?;
        assert_eq!(s, status, "{path}");
        assert!(body["error"]["code"].is_string(), "{path}: {body}");
    }
    let (s, body) = w.bot_json(Method::GET, "/no-such-route").await?;
    assert_eq!((s, error_code(&body)), (404, "not_found"));
    let (_, _, events, exchanges) = snapshot(&w).await?;
    assert_eq!((events, exchanges), (before.2, before.3));
    Ok(())
}

pub async fn browser_pages_refuse_bad_links_and_callbacks(w: World) -> anyhow::Result<()> {
    let get = |url: String| w.http.get(url).send();

    let resp = get(w.url("/oauth/start/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")).await?;
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    assert_eq!(resp.headers()["referrer-policy"], "no-referrer");
    assert!(resp.text().await?.contains("ask the bot for a new link"));

    // A callback without state, with an unknown state, or on another provider's path.
    let link = w.mint_link("demo", Some("u-1")).await?;
    let callback = w.authorize(&link).await?;
    let parsed = url::Url::parse(&callback)?;
    let state: String = parsed
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let code: String = parsed
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    for (url, status) in [
        (w.url(&format!("/oauth/callback/demo?code={code}")), 400),
        (
            w.url(&format!(
                "/oauth/callback/demo?code={code}&state=forged-state"
            )),
            400,
        ),
    ] {
        let resp = get(url).await?;
        assert_eq!(resp.status().as_u16(), status);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let html = resp.text().await?;
        assert!(
            !html.contains(&code) && !html.contains(&state),
            "the page echoed the code or state"
        );
    }
    // The real state on a foreign provider path ends the flow before any token request.
    let resp = get(w.url(&format!("/oauth/callback/github?code={code}&state={state}"))).await?;
    assert_eq!(resp.status(), 400);
    let html = resp.text().await?;
    assert!(!html.contains(&code) && !html.contains(&state));
    assert!(w.provider.token_requests("authorization_code").is_empty());
    // ...and that state is spent.
    assert_eq!(get(callback.clone()).await?.status(), 400);
    assert!(w.provider.token_requests("authorization_code").is_empty());
    let (_, tokens) = w.bot_json(Method::GET, "/users/u-1/tokens").await?;
    assert_eq!(tokens["tokens"], json!({}));

    // The user declines at the provider: a page, an oauth_failed event, no token.
    let link = w.mint_link("demo", Some("u-1")).await?;
    let callback = w.authorize(&link).await?;
    let state = url::Url::parse(&callback)?
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default();
    let resp = get(w.url(&format!(
        "/oauth/callback/demo?error=access_denied&state={state}"
    )))
    .await?;
    assert_eq!(resp.status(), 403);
    assert!(resp.text().await?.contains("declined"));
    let failed = w.events_of("oauth_failed:demo").await?;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["detail"]["token_id"], Value::Null);
    assert!(w.events_of("token:demo").await?.is_empty());
    assert!(w.provider.token_requests("authorization_code").is_empty());

    // Oversized URIs are refused before routing.
    let resp = get(w.url(&format!("/oauth/callback/demo?state={}", "s".repeat(5000)))).await?;
    assert_eq!(resp.status(), 414);
    Ok(())
}
