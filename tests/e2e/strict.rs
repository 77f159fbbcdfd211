//! The service against a strict OpenID provider (oidc-provider: PKCE required, HTTP Basic with
//! form-encoded credentials, rotating refresh tokens with reuse detection, RFC 7009
//! revocation), judged by the provider's own records. The provider is registered with
//! `client_id`, `client_secret` and `issuer` only: PKCE and the client authentication are the
//! service's defaults. The client secret holds `+ / = : % &` and a space.

use e2e::faults::Fault;
use e2e::{Backend, Browser, StrictOptions, World, STRICT_PROVIDER};
use reqwest::Method;
use serde_json::{json, Value};
use std::time::Duration;

/// A world with the strict provider issuing access tokens that live `ttl` seconds.
async fn world(backend: Backend, ttl: u64) -> anyhow::Result<World> {
    World::with_strict(
        backend,
        StrictOptions {
            access_token_ttl: ttl,
            ..StrictOptions::default()
        },
    )
    .await
}

/// The access token the service answers for `token_id`, checked `valid`.
async fn access_token(w: &World, token_id: &str) -> anyhow::Result<String> {
    let (status, body) = w
        .bot_json(Method::GET, &format!("/tokens/{token_id}/access-token"))
        .await?;
    anyhow::ensure!(
        status == 200 && body["status"] == "valid",
        "access-token: {status} {body}"
    );
    Ok(body["access_token"].as_str().unwrap_or_default().to_owned())
}

/// The access token the service holds for `token_id` and when it expires, read without
/// refreshing it.
async fn stored(w: &World, token_id: &str) -> anyhow::Result<(String, i64)> {
    let (status, full) = w
        .bot_json(Method::GET, &format!("/tokens/{token_id}"))
        .await?;
    anyhow::ensure!(status == 200, "full token: {status} {full}");
    let token = full["credentials"]["token"].as_str().unwrap_or_default();
    let expires_at = full["credentials"]["expires_at"]
        .as_i64()
        .ok_or_else(|| anyhow::anyhow!("a token without expiry: {full}"))?;
    Ok((token.to_owned(), expires_at))
}

/// Sleeps until a second after the service counts a token of `ttl` seconds expiring at
/// `expires_at` due: when what is left is at most min(120 s, half its lifetime). Anchored to
/// what the service stored, so a slow sign-in does not shift it.
async fn sleep_until_due(expires_at: i64, ttl: i64) -> anyhow::Result<()> {
    let due_ms = (expires_at - (ttl / 2).min(120) + 1) * 1000;
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    if due_ms > now_ms {
        tokio::time::sleep(Duration::from_millis((due_ms - now_ms) as u64)).await;
    }
    Ok(())
}

/// Records that tell of a rotated refresh token being presented again.
fn reuse_records(records: &[Value]) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| {
            (r["event"] == "grant.error"
                && r["error_detail"]
                    .as_str()
                    .is_some_and(|d| d.contains("already used")))
                || (r["event"] == "grant.revoked" && r["cause"] == "token")
        })
        .collect()
}

pub async fn a_user_connects_with_pkce_and_basic_auth(backend: Backend) -> anyhow::Result<()> {
    let w = world(backend, 3600).await?;
    let p = w.strict()?;

    // The browser: the start link, the provider's sign-in and consent, the callback.
    let link = w.mint_link(STRICT_PROVIDER, Some("u-1")).await?;
    let page = p.sign_in(&link).await?;
    assert_eq!(page.status, 200, "{}\n{:#?}", page.body, page.steps);
    assert!(page.body.contains("return to the chat"), "{}", page.body);
    let callback = url::Url::parse(&page.url)?;
    assert_eq!(
        callback.as_str().split('?').next(),
        Some(
            w.url(&format!("/oauth/callback/{STRICT_PROVIDER}"))
                .as_str()
        )
    );
    let q: std::collections::HashMap<_, _> = callback.query_pairs().into_owned().collect();
    assert_eq!(q.get("iss"), Some(&p.issuer), "{q:?}");
    assert!(q.contains_key("code") && q.contains_key("state"), "{q:?}");

    // Stored: the token:strict event, a valid access token and a refresh token.
    let events = w.events_of(&format!("token:{STRICT_PROVIDER}")).await?;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["detail"]["user_id"], "u-1");
    let token_id = events[0]["detail"]["token_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (_, tokens) = w.bot_json(Method::GET, "/users/u-1/tokens").await?;
    assert_eq!(tokens["tokens"][STRICT_PROVIDER], token_id.as_str());
    let at = access_token(&w, &token_id).await?;
    let (s, full) = w
        .bot_json(Method::GET, &format!("/tokens/{token_id}"))
        .await?;
    assert_eq!(s, 200);
    assert_eq!(full["uid"], "strict-user-1");
    assert!(full["credentials"]["refresh_token"].is_string(), "{full}");
    assert_eq!(full["extra"]["raw_info"]["email"], "ada@example.test");

    // The provider's records: S256 on the authorization request, the code exchange with a
    // verifier and HTTP Basic, accepted; no error of any kind.
    let authorizations = p.requests("authorization", &json!({}));
    assert!(!authorizations.is_empty());
    for r in &authorizations {
        assert_eq!(r["code_challenge_method"], "S256", "{r}");
        assert_eq!(r["has_code_challenge"], true, "{r}");
        assert_eq!(r["has_state"], true, "{r}");
    }
    let successes = p.records_of("authorization.success", &json!({}));
    assert_eq!(successes.len(), 1, "{successes:?}");
    assert_eq!(successes[0]["code_challenge_method"], "S256");
    let exchanges = p.requests("token", &json!({"grant_type": "authorization_code"}));
    assert_eq!(exchanges.len(), 1, "{exchanges:?}");
    assert_eq!(exchanges[0]["client_auth"], "basic", "{}", exchanges[0]);
    assert_eq!(exchanges[0]["has_code_verifier"], true, "{}", exchanges[0]);
    assert_eq!(exchanges[0]["status"], 200, "{}", exchanges[0]);
    let granted = p.records_of(
        "grant.success",
        &json!({"grant_type": "authorization_code"}),
    );
    assert_eq!(granted.len(), 1);
    assert_eq!(
        granted[0]["issued"],
        json!(["access_token", "refresh_token", "id_token"])
    );
    assert_eq!(p.count("grant.error", &json!({})), 0, "{:?}", p.trouble());
    assert!(p.trouble().is_empty(), "{:?}", p.trouble());

    // The access token the service hands out works at the provider.
    assert_eq!(p.userinfo_status(&at).await?, 200);
    Ok(())
}

pub async fn short_lived_tokens_are_refreshed_once_for_twenty_callers(
    backend: Backend,
) -> anyhow::Result<()> {
    let w = world(backend, 8).await?;
    let p = w.strict()?;
    let token_id = w.connect_strict("u-1").await?;
    let (before, expires_at) = stored(&w, &token_id).await?;
    assert_eq!(p.userinfo_status(&before).await?, 200);

    // Due once at most min(120 s, half of 8 s) is left: about 5 s from now.
    sleep_until_due(expires_at, 8).await?;
    assert_eq!(
        p.count("grant.success", &json!({"grant_type": "refresh_token"})),
        0
    );
    let path = format!("/tokens/{token_id}/access-token");
    let calls = (0..20).map(|_| w.bot_json(Method::GET, &path));
    let answers = futures::future::join_all(calls).await;

    let refreshes = p.records_of("grant.success", &json!({"grant_type": "refresh_token"}));
    assert_eq!(refreshes.len(), 1, "{refreshes:?}");
    assert_eq!(refreshes[0]["rotated"], true);
    let requests = p.requests("token", &json!({"grant_type": "refresh_token"}));
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0]["client_auth"], "basic");
    assert_eq!(p.count("grant.revoked", &json!({})), 0, "{:?}", p.trouble());
    assert!(p.trouble().is_empty(), "{:?}", p.trouble());

    let mut fresh = None;
    for answer in answers {
        let (status, body) = answer?;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["status"], "valid", "{body}");
        let token = body["access_token"].as_str().unwrap_or_default().to_owned();
        assert_eq!(fresh.get_or_insert_with(|| token.clone()), &token);
    }
    let fresh = fresh.unwrap_or_default();
    assert_ne!(fresh, before);
    // The new token works; the previous one was revoked by the rotation, not by time.
    assert_eq!(p.userinfo_status(&fresh).await?, 200);
    assert_eq!(p.userinfo_status(&before).await?, 401);
    let rotation = p.records_of("rotation.access_tokens_revoked", &json!({}));
    assert_eq!(rotation.len(), 1);
    assert_eq!(rotation[0]["count"], 1);
    Ok(())
}

pub async fn delete_revokes_the_grant_at_the_provider(backend: Backend) -> anyhow::Result<()> {
    let w = world(backend, 3600).await?;
    let p = w.strict()?;
    let token_id = w.connect_strict("u-1").await?;
    let at = access_token(&w, &token_id).await?;
    assert_eq!(p.userinfo_status(&at).await?, 200);

    let (status, body) = w
        .bot_json(Method::DELETE, &format!("/tokens/{token_id}"))
        .await?;
    assert_eq!((status, body), (200, json!({"deleted": true})));

    let revocations = p.requests("revocation", &json!({}));
    assert_eq!(revocations.len(), 1, "{revocations:?}");
    assert_eq!(revocations[0]["client_auth"], "basic", "{}", revocations[0]);
    assert_eq!(revocations[0]["status"], 200, "{}", revocations[0]);
    let revoked = p.records_of("revocation.success", &json!({}));
    assert_eq!(revoked.len(), 1, "{:?}", p.trouble());
    assert_eq!(revoked[0]["token_type"], "refresh_token");
    assert_eq!(revoked[0]["token_type_hint"], "refresh_token");
    let grants = p.records_of("grant.revoked", &json!({}));
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0]["cause"], "revocation");
    assert_eq!(grants[0]["grant_id"], revoked[0]["grant_id"]);
    assert_eq!(p.count("revocation.error", &json!({})), 0);
    assert_eq!(p.count("grant.error", &json!({})), 0);

    // The grant is gone with every token of it.
    assert_eq!(p.userinfo_status(&at).await?, 401);
    assert_eq!(w.events_of("token_deleted:strict").await?.len(), 1);
    Ok(())
}

pub async fn a_reused_refresh_token_is_never_sent(backend: Backend) -> anyhow::Result<()> {
    const TTL: i64 = 6;
    let w = world(backend, TTL as u64).await?;
    let p = w.strict()?;
    let token_id = w.connect_strict("u-1").await?;
    let path = format!("/tokens/{token_id}/access-token");

    // Due after half of its 6 seconds; refreshed by one caller, then, due again, by ten at
    // once: each refresh must present the refresh token the previous one rotated to.
    let (connected, expires_at) = stored(&w, &token_id).await?;
    sleep_until_due(expires_at, TTL).await?;
    let first = access_token(&w, &token_id).await?;
    assert_ne!(first, connected);
    assert_eq!(
        p.count("grant.success", &json!({"grant_type": "refresh_token"})),
        1,
        "{:?}",
        p.trouble()
    );
    let (_, expires_at) = stored(&w, &token_id).await?;
    sleep_until_due(expires_at, TTL).await?;
    let answers = futures::future::join_all((0..10).map(|_| w.bot_json(Method::GET, &path))).await;
    let mut last = String::new();
    for answer in answers {
        let (status, body) = answer?;
        assert_eq!(
            (status, body["status"].clone()),
            (200, json!("valid")),
            "{body}"
        );
        assert_ne!(body["access_token"], first.as_str());
        last = body["access_token"].as_str().unwrap_or_default().to_owned();
    }

    let records = p.records();
    let reuse = reuse_records(&records);
    assert!(reuse.is_empty(), "{reuse:?}");
    let refreshes = p.records_of("grant.success", &json!({"grant_type": "refresh_token"}));
    assert_eq!(refreshes.len(), 2, "{:?}", p.trouble());
    assert!(refreshes.iter().all(|r| r["rotated"] == true));
    assert_eq!(p.count("refresh_token.consumed", &json!({})), 2);
    assert!(p.trouble().is_empty(), "{:?}", p.trouble());
    // The newest access token works: the service holds the newest refresh token.
    assert_eq!(p.userinfo_status(&last).await?, 200);
    Ok(())
}

/// The grant ids of the provider's successful code exchanges, in order.
fn code_grants(p: &e2e::StrictProvider) -> Vec<Value> {
    p.records_of(
        "grant.success",
        &json!({"grant_type": "authorization_code"}),
    )
    .into_iter()
    .map(|r| r["grant_id"].clone())
    .collect()
}

pub async fn a_reconnect_revokes_the_replaced_grant_of_another_account_only(
    backend: Backend,
) -> anyhow::Result<()> {
    let w = world(backend, 3600).await?;
    let p = w.strict()?;
    let mut ada = Browser::new();
    let first = w.connect_strict_with(&mut ada, "u-1").await?;
    let first_at = access_token(&w, &first).await?;

    // Ada reconnects in the same browser: the provider reuses her session's grant for the
    // new tokens. Revoking the replaced refresh token would revoke that grant, and with it
    // the new tokens; the service leaves it alone.
    let again = w.connect_strict_with(&mut ada, "u-1").await?;
    assert_eq!(again, first, "a reconnect keeps the token id");
    let grants = code_grants(p);
    assert_eq!(grants.len(), 2, "{grants:?}");
    assert_eq!(grants[0], grants[1], "the provider reused the grant");
    assert_eq!(p.count("revocation.success", &json!({})), 0);
    let second_at = access_token(&w, &first).await?;
    assert_ne!(second_at, first_at);
    assert_eq!(p.userinfo_status(&second_at).await?, 200);

    // The chat user signs in as Grace instead: a new grant of another account replaces Ada's,
    // and Ada's grant is revoked at the provider once Grace's tokens are stored.
    let mut grace = Browser::signing_in_as("grace@example.test");
    let third = w.connect_strict_with(&mut grace, "u-1").await?;
    assert_eq!(third, first);
    let grants = code_grants(p);
    assert_eq!(grants.len(), 3, "{grants:?}");
    assert_ne!(grants[2], grants[0]);
    let revoked = p.records_of("revocation.success", &json!({}));
    assert_eq!(revoked.len(), 1, "{:?}", p.trouble());
    assert_eq!(revoked[0]["grant_id"], grants[0]);
    assert_eq!(revoked[0]["token_type"], "refresh_token");
    let ended = p.records_of("grant.revoked", &json!({}));
    assert_eq!(ended.len(), 1, "{ended:?}");
    assert_eq!(ended[0]["grant_id"], grants[0]);
    assert_eq!(p.userinfo_status(&second_at).await?, 401);

    let (_, full) = w.bot_json(Method::GET, &format!("/tokens/{first}")).await?;
    assert_eq!(full["uid"], "strict-user-2");
    let grace_at = access_token(&w, &first).await?;
    assert_eq!(p.userinfo_status(&grace_at).await?, 200);
    assert_eq!(p.count("grant.error", &json!({})), 0, "{:?}", p.trouble());
    Ok(())
}

/// The strict provider rotates the refresh token, and the answer is lost on the way back (a
/// proxy in front of its token endpoint answers 502 after the provider acted): the bot gets
/// 503, the next refresh presents the rotated token, oidc-provider's reuse detection refuses
/// it and revokes the grant (its own records say so), and the service revokes the token with
/// `reason: "refresh_outcome_unknown"`.
pub async fn a_lost_refresh_answer_at_a_rotating_provider_is_reported_as_ours(
    backend: Backend,
) -> anyhow::Result<()> {
    let w = world(backend, 8).await?;
    let p = w.strict()?;
    // The strict app again, its token endpoint behind the fault proxy; discovery, ID tokens
    // and `iss` stay the provider's own.
    let discovery: Value = e2e::client()
        .get(format!(
            "{}/.well-known/openid-configuration",
            p.issuer.trim_end_matches('/')
        ))
        .send()
        .await?
        .json()
        .await?;
    let token_endpoint = url::Url::parse(discovery["token_endpoint"].as_str().unwrap_or_default())?;
    let origin = token_endpoint.origin().ascii_serialization();
    let proxy = e2e::faults::FaultProxy::start(&origin).await?;
    let resp = w
        .http
        .put(w.url(&format!("/v1/admin/providers/{STRICT_PROVIDER}")))
        .bearer_auth(e2e::ADMIN_KEY)
        .json(&json!({
            "client_id": p.client_id,
            "client_secret": p.client_secret,
            "issuer": p.issuer,
            "token_url": format!("{}{}", proxy.url, token_endpoint.path()),
        }))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 200, "re-register: {}", resp.text().await?);

    let token_id = w.connect_strict("u-1").await?;
    let (_, expires_at) = stored(&w, &token_id).await?;
    sleep_until_due(expires_at, 8).await?;
    proxy.fail_times(token_endpoint.path(), Fault::LoseAnswer, 1);
    let path = format!("/tokens/{token_id}/access-token");
    let (status, body) = w.bot_json(Method::GET, &path).await?;
    assert_eq!(status, 503, "{body}");
    assert_eq!(proxy.applied(), 1);
    let refreshes = p.records_of("grant.success", &json!({"grant_type": "refresh_token"}));
    assert_eq!(
        refreshes.len(),
        1,
        "the provider did refresh: {refreshes:?}"
    );
    assert_eq!(refreshes[0]["rotated"], true);

    let (status, view) = w.bot_json(Method::GET, &path).await?;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["status"], "revoked");
    assert!(
        !reuse_records(&p.records()).is_empty(),
        "the provider saw the rotated token again: {:?}",
        p.trouble()
    );
    let revoked = w
        .events_of(&format!("token_revoked:{STRICT_PROVIDER}"))
        .await?;
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_eq!(revoked[0]["detail"]["reason"], "refresh_outcome_unknown");
    Ok(())
}

/// The maintenance job keeping a `keep_fresh` token fresh, and proxied calls, at a provider
/// that rotates refresh tokens and revokes a grant whose old refresh token is reused: every
/// keep-alive refresh is a clean rotation in its records, and the proxy's bearer calls work.
pub async fn the_job_and_the_proxy_keep_a_rotating_grant_working(
    backend: Backend,
) -> anyhow::Result<()> {
    let w = World::with_strict_env(
        backend,
        StrictOptions {
            access_token_ttl: 8,
            ..StrictOptions::default()
        },
        vec![("MAINTENANCE_INTERVAL", "1".into())],
    )
    .await?;
    let p = w.strict()?;
    // The same registration, with its API (the provider's own userinfo at /me).
    let resp = w
        .http
        .put(w.url(&format!("/v1/admin/providers/{STRICT_PROVIDER}")))
        .bearer_auth(e2e::ADMIN_KEY)
        .json(&json!({
            "client_id": p.client_id,
            "client_secret": p.client_secret,
            "issuer": p.issuer,
            "api_base_url": p.issuer,
        }))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 200, "{}", resp.text().await?);
    let resp = w
        .bot(Method::PUT, "/integrations")
        .header("content-type", "application/yaml")
        .body(format!(
            "{}- provider: {STRICT_PROVIDER}\n  scope: {}\n  context: user\n  keep_fresh: true\n",
            e2e::INTEGRATIONS,
            e2e::STRICT_SCOPE
        ))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 200, "{}", resp.text().await?);
    let token_id = w.connect_strict("u-1").await?;
    let (first, _) = stored(&w, &token_id).await?;

    // Two keep-alive refreshes with no access-token call: each a rotation, nothing reused.
    let refreshes = json!({"grant_type": "refresh_token"});
    e2e::eventually(20, "two keep-alive refreshes", || async {
        Ok((p.count("grant.success", &refreshes) >= 2).then_some(()))
    })
    .await?;
    let done = p.records_of("grant.success", &refreshes);
    assert!(done.iter().all(|r| r["rotated"] == true), "{done:?}");
    assert_eq!(p.count("grant.revoked", &json!({})), 0, "{:?}", p.trouble());
    assert!(p.trouble().is_empty(), "{:?}", p.trouble());

    // A proxied call carries the current token.
    let resp = w
        .bot(Method::GET, &format!("/tokens/{token_id}/proxy/me"))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("x-integrations-token-status"));
    let me: Value = resp.json().await?;
    assert!(me["sub"].is_string(), "{me}");
    let (health_status, health) = w
        .bot_json(Method::GET, &format!("/tokens/{token_id}/status"))
        .await?;
    assert_eq!(health_status, 200);
    assert_eq!(health["status"], "valid");
    assert!(health["last_refresh_at"].as_i64().is_some(), "{health}");
    assert!(p.trouble().is_empty(), "{:?}", p.trouble());
    // The first token was revoked by the rotations (this check is the provider's one 401).
    assert_eq!(p.userinfo_status(&first).await?, 401, "rotated away");
    Ok(())
}
