//! The API proxy as a bot uses it, against the test provider's small API on loopback: the
//! credential placed for each kind of provider and never handed out, a rejected token
//! refreshed once, rate limits passed on and retried when that is safe, paths that escape
//! refused before anything is sent, and large answers streamed within the limit.

use e2e::{Backend, World, ADMIN_KEY};
use reqwest::Method;
use serde_json::{json, Value};
use shared::domain::ids::sha256_hex;

/// A world whose `demo` app sends proxied calls to the test provider's API.
async fn world(backend: Backend, env: Vec<(&'static str, String)>) -> anyhow::Result<World> {
    let w = World::with_env(backend, env).await?;
    let resp = w
        .http
        .put(w.url("/v1/admin/providers/demo"))
        .bearer_auth(ADMIN_KEY)
        .json(&json!({
            "client_id": "demo-client",
            "client_secret": "canary-client-secret",
            "issuer": w.provider.issuer,
            "api_base_url": format!("{}/api", w.provider.issuer),
        }))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 200, "{}", resp.text().await?);
    Ok(w)
}

fn api_calls(w: &World) -> Vec<Value> {
    w.provider
        .requests()
        .into_iter()
        .filter(|r| r["endpoint"] == "api")
        .collect()
}

async fn access_token(w: &World, id: &str) -> anyhow::Result<String> {
    let (_, full) = w.bot_json(Method::GET, &format!("/tokens/{id}")).await?;
    Ok(full["credentials"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned())
}

pub async fn bearer_calls_go_through_and_a_rejected_token_is_refreshed_once(
    backend: Backend,
) -> anyhow::Result<()> {
    let w = world(backend, Vec::new()).await?;
    let id = w.connect_user("u-1").await?;
    let token = access_token(&w, &id).await?;
    let proxy = |path: &str| format!("/tokens/{id}/proxy/{path}");

    let resp = w
        .bot(Method::GET, &proxy("me?fields=id,name&x=%20y"))
        .header("cookie", "bot-session=1")
        .header("x-forwarded-for", "10.1.2.3")
        .header("accept", "application/json")
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-integrations-token-status"], "valid");
    assert_eq!(resp.headers()["x-ratelimit-remaining"], "42");
    assert!(resp.headers().get("set-cookie").is_none());
    let seen: Value = resp.json().await?;
    assert_eq!(seen["path"], "/api/me");
    assert_eq!(seen["query"], "?fields=id,name&x=%20y");
    assert_eq!(seen["bearer_issued"], true);
    assert_eq!(
        seen["authorization_sha256"],
        sha256_hex(&format!("Bearer {token}")),
        "the token's credential, not the bot's key"
    );
    let names: Vec<&str> = seen["header_names"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    assert!(names.contains(&"accept"), "{names:?}");
    for gone in ["cookie", "x-forwarded-for", "x-request-id"] {
        assert!(!names.contains(&gone), "{gone} passed: {names:?}");
    }

    // A body, and the provider's status as it is.
    let (status, posted) = w
        .bot_json_with(Method::POST, &proxy("items"), json!({"name": "x"}))
        .await?;
    assert_eq!(status, 200);
    assert_eq!(posted["method"], "POST");
    assert_eq!(posted["body"], r#"{"name":"x"}"#);

    // 401 once: one refresh, one replay.
    w.provider.control(json!({"api_reject": 1})).await?;
    let before = api_calls(&w).len();
    let resp = w.bot(Method::GET, &proxy("me")).send().await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-integrations-token-status"], "refreshed");
    assert_eq!(w.provider.token_requests("refresh_token").len(), 1);
    assert_eq!(api_calls(&w).len(), before + 2);
    let refreshed = access_token(&w, &id).await?;
    assert_ne!(refreshed, token);

    // 401 every time: one refresh, one replay, then the provider's 401, no loop.
    w.provider.control(json!({"api_reject": 5})).await?;
    let before = api_calls(&w).len();
    let resp = w.bot(Method::GET, &proxy("me")).send().await?;
    assert_eq!(resp.status(), 401);
    assert_eq!(w.provider.token_requests("refresh_token").len(), 2);
    assert_eq!(api_calls(&w).len(), before + 2);
    w.provider.control(json!({"api_reject": 0})).await?;

    // A redirect is the bot's to see, never followed.
    let before = api_calls(&w).len();
    let resp = w.bot(Method::GET, &proxy("redirect")).send().await?;
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], "http://127.0.0.1:9/elsewhere");
    assert_eq!(api_calls(&w).len(), before + 1);

    // A token the provider no longer honours: refused, revoked, the contract's error.
    w.provider
        .control(json!({"api_reject": 1, "revoke_all": true}))
        .await?;
    let (status, body) = w.bot_json(Method::GET, &proxy("me")).await?;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["code"], "token_revoked");
    assert_eq!(w.events_of("token_revoked:demo").await?.len(), 1);

    // No credential in what the service wrote.
    let final_token = access_token(&w, &id).await?;
    for (what, bytes) in w.written().await? {
        let text = String::from_utf8_lossy(&bytes);
        for secret in [&token, &refreshed, &final_token] {
            assert!(!text.contains(secret.as_str()), "a token in {what}");
        }
        assert!(!text.contains(&w.bot_key), "the bot key in {what}");
    }
    Ok(())
}

pub async fn rate_limits_are_passed_on_and_safe_calls_retried_within_the_budget(
    backend: Backend,
) -> anyhow::Result<()> {
    let w = world(backend, Vec::new()).await?;
    let id = w.connect_user("u-1").await?;
    let proxy = format!("/tokens/{id}/proxy/me");
    let limit = |n: u32| {
        w.provider
            .control(json!({"api_limit": n, "api_retry_after": 1}))
    };

    // GET: retried after Retry-After, within the budget.
    limit(1).await?;
    let before = api_calls(&w).len();
    let started = std::time::Instant::now();
    let resp = w.bot(Method::GET, &proxy).send().await?;
    assert_eq!(resp.status(), 200);
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
    assert_eq!(api_calls(&w).len(), before + 2);

    // POST without an idempotency key: never sent twice; the 429 and its Retry-After pass.
    limit(1).await?;
    let before = api_calls(&w).len();
    let resp = w.bot(Method::POST, &proxy).body("{}").send().await?;
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(api_calls(&w).len(), before + 1);

    // With an Idempotency-Key it may be.
    limit(1).await?;
    let resp = w
        .bot(Method::POST, &proxy)
        .header("idempotency-key", "k-1")
        .body("{}")
        .send()
        .await?;
    assert_eq!(resp.status(), 200);

    // The bot can lower the budget to nothing.
    limit(1).await?;
    let before = api_calls(&w).len();
    let resp = w
        .bot(Method::GET, &proxy)
        .header("x-integrations-max-retry-seconds", "0")
        .send()
        .await?;
    assert_eq!(resp.status(), 429);
    assert_eq!(api_calls(&w).len(), before + 1);
    let (status, body) = w
        .bot(Method::GET, &proxy)
        .header("x-integrations-max-retry-seconds", "soon")
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))?;
    assert_eq!(status, 400, "{:?}", body.text().await?);
    Ok(())
}

/// Sends `GET path` as raw bytes, so that no client library tidies the path first.
async fn raw_get(w: &World, path: &str) -> anyhow::Result<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = w.server.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        w.bot_key
    );
    stream.write_all(request.as_bytes()).await?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await?;
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, answer))
}

pub async fn paths_that_escape_are_refused_before_anything_is_sent(
    backend: Backend,
) -> anyhow::Result<()> {
    let w = world(backend, Vec::new()).await?;
    let id = w.connect_user("u-1").await?;
    let before = api_calls(&w).len();
    for path in [
        "..%2fadmin",
        "%2e%2e/admin",
        "me/%2E%2E/%2e%2e/token",
        "a%2Fb",
        "a%5cb",
        "/127.0.0.1:9/x",
        "https:%2f%2fevil.example/x",
    ] {
        let (status, answer) =
            raw_get(&w, &format!("/v1/bots/acme/tokens/{id}/proxy/{path}")).await?;
        assert_eq!(status, 400, "{path}: {answer}");
        assert!(answer.contains("invalid_path"), "{path}: {answer}");
    }
    assert_eq!(
        api_calls(&w).len(),
        before,
        "nothing left for a refused path"
    );
    let trace = w
        .bot(Method::TRACE, &format!("/tokens/{id}/proxy/me"))
        .send()
        .await?;
    assert_eq!(trace.status(), 405);
    assert_eq!(
        trace.headers()["allow"],
        "GET, HEAD, OPTIONS, POST, PUT, PATCH, DELETE"
    );
    assert_eq!(api_calls(&w).len(), before);
    // What looks like a host inside the path stays in the path.
    let (status, answer) = raw_get(
        &w,
        &format!("/v1/bots/acme/tokens/{id}/proxy/@evil.example/x"),
    )
    .await?;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.contains(r#""path":"/api/@evil.example/x""#),
        "{answer}"
    );
    Ok(())
}

pub async fn api_keys_and_basic_credentials_are_placed_as_each_provider_expects(
    backend: Backend,
) -> anyhow::Result<()> {
    let w = world(backend, Vec::new()).await?;
    for name in ["anthropic", "twilio"] {
        let resp = w
            .http
            .put(w.url(&format!("/v1/admin/providers/{name}")))
            .bearer_auth(ADMIN_KEY)
            .json(&json!({"api_base_url": format!("{}/api", w.provider.issuer)}))
            .send()
            .await?;
        anyhow::ensure!(resp.status() == 200, "{name}: {}", resp.text().await?);
    }
    let resp = w
        .bot(Method::PUT, "/integrations")
        .header("content-type", "application/yaml")
        .body(format!(
            "{}- provider: anthropic\n  context: user\n- provider: twilio\n  context: bot\n",
            e2e::INTEGRATIONS
        ))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 200, "{}", resp.text().await?);

    // A user's API key, entered on the link's form: sent as x-api-key.
    let link = w.mint_link("anthropic", Some("u-9")).await?;
    let entered = w
        .http
        .post(&link)
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("api_key=sk-ant-canary-1")
        .send()
        .await?;
    assert_eq!(entered.status(), 200);
    let (_, tokens) = w.bot_json(Method::GET, "/users/u-9/tokens").await?;
    let key_id = tokens["tokens"]["anthropic"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (status, seen) = w
        .bot_json(Method::GET, &format!("/tokens/{key_id}/proxy/v1/models"))
        .await?;
    assert_eq!(status, 200, "{seen}");
    assert_eq!(seen["path"], "/api/v1/models");
    assert_eq!(seen["x_api_key_sha256"], sha256_hex("sk-ant-canary-1"));
    assert_eq!(
        seen["authorization_sha256"],
        Value::Null,
        "the bot's key never passes"
    );

    // A key the API refuses is not refreshed: the 401 is the bot's.
    w.provider.control(json!({"api_reject": 1})).await?;
    let before = api_calls(&w).len();
    let resp = w
        .bot(Method::GET, &format!("/tokens/{key_id}/proxy/v1/models"))
        .send()
        .await?;
    assert_eq!(resp.status(), 401);
    assert_eq!(api_calls(&w).len(), before + 1);

    // The bot's Basic credential, entered on the connect page: sent as Authorization.
    let (_, minted) = w.bot_json(Method::POST, "/connect-links").await?;
    let page = minted["url"].as_str().unwrap_or_default().to_owned();
    let saved = w
        .http
        .post(format!("{page}/twilio"))
        .header("sec-fetch-site", "same-origin")
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=AC0123&password=canary-auth")
        .send()
        .await?;
    assert_eq!(saved.status(), 200);
    let (_, tokens) = w.bot_json(Method::GET, "/tokens").await?;
    let basic_id = tokens["tokens"]["twilio"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (status, seen) = w
        .bot_json(
            Method::GET,
            &format!("/tokens/{basic_id}/proxy/2010-04-01/Accounts.json"),
        )
        .await?;
    assert_eq!(status, 200, "{seen}");
    use base64::Engine;
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("AC0123:canary-auth")
    );
    assert_eq!(seen["authorization_sha256"], sha256_hex(&basic));
    Ok(())
}

pub async fn large_answers_stream_within_the_limit(backend: Backend) -> anyhow::Result<()> {
    let w = world(
        backend,
        vec![("PROXY_MAX_RESPONSE_BYTES", (8 * 1024 * 1024).to_string())],
    )
    .await?;
    let id = w.connect_user("u-1").await?;
    let bytes = |n: usize, length: bool| {
        format!(
            "/tokens/{id}/proxy/bytes?n={n}{}",
            if length { "&length=1" } else { "" }
        )
    };
    // 6 MB, streamed through.
    let resp = w.bot(Method::GET, &bytes(6_000_000, false)).send().await?;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("set-cookie").is_none());
    let body = resp.bytes().await?;
    assert_eq!(body.len(), 6_000_000);
    assert!(body.iter().all(|b| *b == b'a'));
    // Over the limit with a length: refused before any byte.
    let (status, refused) = w.bot_json(Method::GET, &bytes(9_000_000, true)).await?;
    assert_eq!(status, 502, "{refused}");
    assert_eq!(refused["error"]["code"], "response_too_large");
    // Over the limit without one: cut off with an error, never passed as whole.
    let resp = w.bot(Method::GET, &bytes(9_000_000, false)).send().await?;
    assert_eq!(resp.status(), 200);
    if let Ok(b) = resp.bytes().await {
        assert!(b.len() < 9_000_000, "{} bytes passed as whole", b.len());
    }
    // A request body over 4 MiB is refused.
    let big = vec![b'x'; 4 * 1024 * 1024 + 1];
    let resp = w
        .bot(Method::POST, &format!("/tokens/{id}/proxy/me"))
        .body(big)
        .send()
        .await?;
    assert_eq!(resp.status(), 413);
    Ok(())
}
