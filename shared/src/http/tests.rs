//! Router tests without a socket: `router.oneshot(request)`.

use super::*;
use axum::body::Body;
use axum::http::{header, Method, Request};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const ADMIN: &str = "admin-key-for-router-tests-0123456789";

struct Fixture {
    _dir: tempfile::TempDir,
    db: std::path::PathBuf,
    router: Router,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(crate::wiring::embedded::DATABASE_FILE);
    let config = crate::Config {
        public_url: url::Url::parse("https://svc.example/prod").unwrap(),
        admin_key: crate::AdminKeyHash::of_key("ADMIN_KEY", ADMIN).unwrap(),
        event_source: "test".into(),
        backend: crate::Backend::Embedded {
            data_dir: dir.path().to_owned(),
        },
        webhook: None,
        outbound: Default::default(),
        upkeep: Default::default(),
        proxy: Default::default(),
    };
    let service = crate::wiring::embedded::service(dir.path(), &config).unwrap();
    Fixture {
        _dir: dir,
        db,
        router: local_router(Arc::new(service)),
    }
}

async fn call(router: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, headers, body)
}

fn json_req(method: Method, uri: &str, key: Option<&str>, body: Value) -> Request<Body> {
    let mut b = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(k) = key {
        b = b.header(header::AUTHORIZATION, format!("Bearer {k}"));
    }
    b.body(Body::from(body.to_string())).unwrap()
}

/// The routes of the contract, as (method, OpenAPI path).
const CONTRACT_ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/admin/bots"),
    ("post", "/v1/admin/bots/{bot_id}/api-key"),
    ("put", "/v1/admin/bots/{bot_id}"),
    ("put", "/v1/admin/providers/{name}"),
    ("get", "/v1/admin/providers"),
    ("get", "/v1/catalog"),
    ("put", "/v1/bots/{bot_id}/integrations"),
    ("get", "/v1/bots/{bot_id}/integrations"),
    ("post", "/v1/bots/{bot_id}/oauth-links"),
    ("post", "/v1/bots/{bot_id}/connect-links"),
    ("get", "/v1/bots/{bot_id}/tokens"),
    ("get", "/v1/bots/{bot_id}/users/{user_id}/tokens"),
    ("post", "/v1/bots/{bot_id}/users/{user_id}/confirmations"),
    ("post", "/v1/bots/{bot_id}/flows/{flow_id}/confirm"),
    ("get", "/v1/bots/{bot_id}/tokens/{token_id}/info"),
    ("get", "/v1/bots/{bot_id}/tokens/{token_id}/status"),
    ("get", "/v1/bots/{bot_id}/connections"),
    ("get", "/v1/bots/{bot_id}/tokens/{token_id}/proxy/{path}"),
    ("post", "/v1/bots/{bot_id}/tokens/{token_id}/proxy/{path}"),
    ("put", "/v1/bots/{bot_id}/tokens/{token_id}/proxy/{path}"),
    ("delete", "/v1/bots/{bot_id}/tokens/{token_id}/proxy/{path}"),
    ("get", "/v1/bots/{bot_id}/tokens/{token_id}/access-token"),
    ("get", "/v1/bots/{bot_id}/tokens/{token_id}"),
    ("delete", "/v1/bots/{bot_id}/tokens/{token_id}"),
];

#[tokio::test]
async fn the_openapi_document_covers_every_route_and_only_real_ones() {
    let f = fixture();
    let (status, _, body) = call(
        &f.router,
        Request::get("/openapi.json").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in CONTRACT_ROUTES {
        assert!(
            paths.get(*path).and_then(|p| p.get(*method)).is_some(),
            "{method} {path} is missing from the OpenAPI document"
        );
    }
    // Every documented operation exists in the router: without a key it answers 401,
    // never 404 or 405.
    let mut operations = 0;
    for (path, item) in paths {
        for method in ["get", "put", "post", "delete"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let uri = path
                .replace("{bot_id}", "acme")
                .replace("{token_id}", "tok_x")
                .replace("{user_id}", "u-1")
                .replace("{flow_id}", "f")
                .replace("{path}", "users/me")
                .replace("{name}", "google");
            let req = Request::builder()
                .method(method.to_uppercase().as_str())
                .uri(&uri)
                .body(Body::empty())
                .unwrap();
            let (status, headers, _) = call(&f.router, req).await;
            assert_eq!(status, 401, "{method} {uri}");
            assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
        }
    }
    assert_eq!(operations, CONTRACT_ROUTES.len());
}

#[tokio::test]
async fn the_catalog_is_listed_for_the_operator_and_for_bots() {
    let f = fixture();
    let get = |key: &str| {
        Request::get("/v1/catalog")
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap()
    };
    let (status, _, body) = call(&f.router, get(ADMIN)).await;
    assert_eq!(status, 200);
    let list: Value = serde_json::from_slice(&body).unwrap();
    let providers = list["providers"].as_array().unwrap();
    assert!(providers.len() >= 60, "{}", providers.len());
    let okta = providers.iter().find(|p| p["name"] == "okta").unwrap();
    assert_eq!(okta["kind"], "oauth2");
    assert_eq!(okta["params"][0]["name"], "domain");
    assert_eq!(okta["params"][0]["scope"], "app");
    let stripe = providers.iter().find(|p| p["name"] == "stripe").unwrap();
    assert_eq!(stripe["kind"], "api_key");
    assert_eq!(stripe["credential_fields"][0]["name"], "api_key");

    let (_, _, created) = call(
        &f.router,
        json_req(
            Method::POST,
            "/v1/admin/bots",
            Some(ADMIN),
            json!({"bot_id": "cat"}),
        ),
    )
    .await;
    let bot_key: Value = serde_json::from_slice(&created).unwrap();
    let (status, _, _) = call(&f.router, get(bot_key["api_key"].as_str().unwrap())).await;
    assert_eq!(status, 200);
    let (status, _, _) = call(&f.router, get("bk.cat.wrong")).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn errors_use_one_format_and_pages_are_html() {
    let f = fixture();
    let (status, _, body) = call(
        &f.router,
        Request::get("/v1/nothing").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "not_found");
    assert!(v["error"]["details"].is_array());

    let (status, headers, _) = call(
        &f.router,
        Request::get("/elsewhere").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));

    let (status, _, body) = call(
        &f.router,
        json_req(
            Method::POST,
            "/v1/admin/bots",
            Some(ADMIN),
            json!({"bot_id": "x".repeat(70)}),
        ),
    )
    .await;
    assert_eq!(status, 422);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "invalid_value");
    assert!(v["error"]["message"].as_str().unwrap().contains("bot_id"));
}

#[tokio::test]
async fn requests_carry_ids_and_bounded_bodies() {
    let f = fixture();
    let (_, headers, _) = call(
        &f.router,
        Request::get("/healthz").body(Body::empty()).unwrap(),
    )
    .await;
    assert!(headers["x-request-id"].len() >= 16);
    let req = Request::get("/healthz")
        .header("x-request-id", "gw-abc-123")
        .body(Body::empty())
        .unwrap();
    let (_, headers, _) = call(&f.router, req).await;
    assert_eq!(headers["x-request-id"], "gw-abc-123");
    let req = Request::get("/healthz")
        .header("x-request-id", "<script>")
        .body(Body::empty())
        .unwrap();
    let (_, headers, _) = call(&f.router, req).await;
    assert_ne!(headers["x-request-id"], "<script>");

    let huge = json!({"bot_id": "a".repeat(BODY_LIMIT + 10)});
    let (status, _, body) = call(
        &f.router,
        json_req(Method::POST, "/v1/admin/bots", Some(ADMIN), huge),
    )
    .await;
    assert_eq!(status, 413);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "payload_too_large");

    let req = Request::get("/healthz")
        .header("x-padding", "p".repeat(MAX_HEADERS_BYTES + 1))
        .body(Body::empty())
        .unwrap();
    assert_eq!(call(&f.router, req).await.0, 431);
}

#[tokio::test]
async fn a_storage_fault_is_a_generic_500_with_the_request_id() {
    let f = fixture();
    let (status, _, body) = call(
        &f.router,
        json_req(
            Method::POST,
            "/v1/admin/bots",
            Some(ADMIN),
            json!({"bot_id": "acme"}),
        ),
    )
    .await;
    assert_eq!(status, 201);
    let key = serde_json::from_slice::<Value>(&body).unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(key.len() >= 43 + 8, "at least 256 random bits");

    // Break the database under the running service.
    rusqlite::Connection::open(&f.db)
        .unwrap()
        .execute_batch("DROP TABLE tokens")
        .unwrap();
    let req = Request::get("/v1/bots/acme/tokens")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = call(&f.router, req).await;
    assert_eq!(status, 500);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "internal_error");
    assert_eq!(v["error"]["message"], "internal error");
    assert_eq!(
        v["error"]["request_id"],
        headers["x-request-id"].to_str().unwrap()
    );
    assert!(
        !String::from_utf8_lossy(&body).contains("tokens"),
        "internals leaked"
    );
}

#[tokio::test]
async fn links_point_at_the_public_url() {
    let f = fixture();
    let (_, _, body) = call(
        &f.router,
        json_req(
            Method::POST,
            "/v1/admin/bots",
            Some(ADMIN),
            json!({"bot_id": "acme"}),
        ),
    )
    .await;
    let key = serde_json::from_slice::<Value>(&body).unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, _) = call(
        &f.router,
        json_req(
            Method::PUT,
            "/v1/admin/providers/google",
            Some(ADMIN),
            json!({"client_id": "cid", "client_secret": "s"}),
        ),
    )
    .await;
    assert_eq!(status, 200);
    let yaml = Request::put("/v1/bots/acme/integrations")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/yaml")
        .body(Body::from(
            "- provider: google\n  scope: email\n  context: user\n",
        ))
        .unwrap();
    assert_eq!(call(&f.router, yaml).await.0, 200);
    let (status, _, body) = call(
        &f.router,
        json_req(
            Method::POST,
            "/v1/bots/acme/oauth-links",
            Some(&key),
            json!({"alias": "google", "user_id": "u 1/é"}),
        ),
    )
    .await;
    assert_eq!(status, 201);
    let v: Value = serde_json::from_slice(&body).unwrap();
    let url = v["url"].as_str().unwrap();
    assert!(
        url.starts_with("https://svc.example/prod/oauth/start/"),
        "{url}"
    );
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let expires = v["expires_at"].as_i64().unwrap();
    assert!((now + 1790..=now + 1810).contains(&expires), "30 minutes");

    // The start redirect goes to Google with the quirks Google needs.
    let path = url.trim_start_matches("https://svc.example/prod");
    let (status, headers, _) =
        call(&f.router, Request::get(path).body(Body::empty()).unwrap()).await;
    assert_eq!(status, 302);
    let to = url::Url::parse(headers[header::LOCATION].to_str().unwrap()).unwrap();
    assert_eq!(to.host_str(), Some("accounts.google.com"));
    let q: std::collections::HashMap<_, _> = to.query_pairs().into_owned().collect();
    assert_eq!(q["access_type"], "offline");
    assert_eq!(q["prompt"], "consent");
    assert_eq!(q["scope"], "openid email profile");
    assert_eq!(
        q["redirect_uri"],
        "https://svc.example/prod/oauth/callback/google"
    );
    assert!(!to.as_str().contains("client_secret"));
}

/// Creates bot `acme` and returns its key.
async fn acme(f: &Fixture) -> String {
    let (status, _, body) = call(
        &f.router,
        json_req(
            Method::POST,
            "/v1/admin/bots",
            Some(ADMIN),
            json!({"bot_id": "acme"}),
        ),
    )
    .await;
    assert_eq!(status, 201);
    serde_json::from_slice::<Value>(&body).unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn upload(key: &str, content_type: &str, body: &str) -> Request<Body> {
    Request::put("/v1/bots/acme/integrations")
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body.to_owned()))
        .unwrap()
}

#[tokio::test]
async fn the_integrations_file_may_be_sent_as_json_through_the_same_parser() {
    let f = fixture();
    let key = acme(&f).await;
    let yaml = "- provider: google\n  scope: email,profile\n  context: user\n\
                - provider: github\n  alias: gh\n  scope: [repo]\n  context: bot\n";
    let as_json = json!([
        {"provider": "google", "scope": "email,profile", "context": "user"},
        {"provider": "github", "alias": "gh", "scope": ["repo"], "context": "bot"}
    ]);
    let (status, _, from_yaml) = call(&f.router, upload(&key, "application/yaml", yaml)).await;
    assert_eq!(status, 200);
    for content_type in ["application/json", "Application/JSON; charset=utf-8"] {
        let (status, _, from_json) =
            call(&f.router, upload(&key, content_type, &as_json.to_string())).await;
        assert_eq!(status, 200, "{content_type}");
        assert_eq!(from_json, from_yaml, "{content_type}");
    }
    let (_, _, stored) = call(
        &f.router,
        Request::get("/v1/bots/acme/integrations")
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    let stored: Value = serde_json::from_slice(&stored).unwrap();
    assert_eq!(stored["integrations"][1]["alias"], "gh");
    assert_eq!(stored["integrations"][1]["connected"], false);

    // Problems are reported at their line and column in the JSON text, as in YAML.
    let refused = concat!(
        "[\n",
        "  {\"provider\": \"google\", \"context\": \"user\"},\n",
        "  {\"provider\": \"gitub\",\n",
        "   \"context\": \"bots\", \"scopes\": \"x\"}\n",
        "]"
    );
    let (status, _, body) = call(&f.router, upload(&key, "application/json", refused)).await;
    assert_eq!(status, 422);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "invalid_integrations");
    let details: Vec<(u64, u64, String)> = v["error"]["details"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["line"].as_u64().unwrap(),
                d["column"].as_u64().unwrap(),
                d["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let at = |line: u64, column: u64, start: &str| {
        details
            .iter()
            .any(|(l, c, m)| *l == line && *c == column && m.starts_with(start))
    };
    assert!(at(3, 16, "unknown provider 'gitub'"), "{details:?}");
    assert!(at(4, 15, "context must be 'bot' or 'user'"), "{details:?}");
    assert!(at(4, 23, "unknown key 'scopes'"), "{details:?}");
    assert_eq!(details.len(), 3, "{details:?}");

    // A syntax error: where the JSON breaks.
    let (status, _, body) = call(
        &f.router,
        upload(
            &key,
            "application/json",
            "[\n  {\"provider\": \"google\",\n   \"context\": \"user\"\n",
        ),
    )
    .await;
    assert_eq!(status, 422);
    let v: Value = serde_json::from_slice(&body).unwrap();
    let issue = &v["error"]["details"][0];
    assert_eq!(issue["line"], 4, "{v}");
    // The refused uploads changed nothing.
    let (_, _, after) = call(
        &f.router,
        Request::get("/v1/bots/acme/integrations")
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(serde_json::from_slice::<Value>(&after).unwrap(), stored);

    let (status, _, body) = call(&f.router, upload(&key, "text/plain", "[]")).await;
    assert_eq!(status, 415);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["error"]["message"],
        "expected Content-Type application/yaml or application/json"
    );
}

#[tokio::test]
async fn refusals_before_a_handler_use_the_error_format_on_v1_and_pages_elsewhere() {
    let f = fixture();
    // A known path with a method it does not have.
    let req = Request::patch("/v1/admin/providers")
        .header(header::AUTHORIZATION, format!("Bearer {ADMIN}"))
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = call(&f.router, req).await;
    assert_eq!(status, 405);
    assert_eq!(headers[header::ALLOW], "GET,HEAD");
    assert_eq!(headers[header::CONTENT_TYPE], "application/json");
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "method_not_allowed");
    assert_eq!(
        v["error"]["message"],
        "this path does not support the PATCH method"
    );
    let req = Request::delete("/connect/acme.x")
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = call(&f.router, req).await;
    assert_eq!(status, 405);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));

    // Limits on the request line and headers.
    let long = format!("/v1/bots/acme/users/{}/tokens", "u".repeat(MAX_URI_LEN));
    let (status, _, body) = call(&f.router, Request::get(long).body(Body::empty()).unwrap()).await;
    assert_eq!(status, 414);
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "uri_too_long");
    let req = Request::get("/v1/admin/providers")
        .header("x-padding", "p".repeat(MAX_HEADERS_BYTES + 1))
        .body(Body::empty())
        .unwrap();
    let (status, headers, body) = call(&f.router, req).await;
    assert_eq!(status, 431);
    assert!(headers.contains_key(REQUEST_ID_HEADER));
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["error"]["code"], "headers_too_large");
    let req = Request::get("/connect/acme.x")
        .header("x-padding", "p".repeat(MAX_HEADERS_BYTES + 1))
        .body(Body::empty())
        .unwrap();
    let (status, headers, _) = call(&f.router, req).await;
    assert_eq!(status, 431);
    assert!(headers[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));

    // A path with a value that is not UTF-8 once decoded names nothing.
    let key = acme(&f).await;
    for (method, uri) in [
        (Method::GET, "/v1/bots/acme/users/%FF/tokens"),
        (Method::GET, "/v1/bots/acme/tokens/%FF"),
        (Method::GET, "/v1/bots/acme/tokens/%FF/info"),
        (Method::DELETE, "/v1/bots/acme/tokens/%FF"),
        (Method::GET, "/v1/bots/%FF/tokens"),
    ] {
        let req = Request::builder()
            .method(method.clone())
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {key}"))
            .body(Body::empty())
            .unwrap();
        let (status, _, body) = call(&f.router, req).await;
        assert_eq!(status, 404, "{method} {uri}");
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["error"]["code"], "not_found", "{method} {uri}");
    }
    let (status, _, body) = call(
        &f.router,
        json_req(
            Method::PUT,
            "/v1/admin/providers/%FF",
            Some(ADMIN),
            json!({"client_id": "x"}),
        ),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap()["error"]["code"],
        "invalid_value"
    );
}

/// Strings around the edges of the identifier rules.
fn id_corpus() -> Vec<String> {
    let mut corpus: Vec<String> = [
        "",
        "a",
        "acme",
        "a-b_c9",
        "-a",
        "_a",
        "0",
        "A",
        "tok_",
        "tok_T2sgdGhpcyBpcyBub3RhcmVh",
        "tok_T2sgdGhpcyBpcyBub3RhcmV",
        "tok_T2sgdGhpcyBpcyBub3RhcmVhX",
        "tok_T2sgdGhpcyBpcyBub3Rhcm+h",
        "tik_T2sgdGhpcyBpcyBub3RhcmVh",
        "u 1/é",
        "a\nb",
        "a\u{7f}",
        "a\u{85}",
        "a\u{9f}b",
        "a\u{a0}b",
        "\t",
        "😀",
        "google_calendar",
        "my-idp",
        "a.b",
    ]
    .map(str::to_owned)
    .to_vec();
    for n in [62, 63, 64, 65, 255, 256, 257] {
        corpus.push("a".repeat(n));
        corpus.push("é".repeat(n));
    }
    // A small deterministic walk over an alphabet that straddles every rule.
    let alphabet: Vec<char> = "az09_-.A /\u{0}\u{1f}\u{7f}é".chars().collect();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..2000 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let len = (x >> 58) as usize;
        let s: String = (0..len)
            .map(|i| alphabet[((x >> (i % 8 * 4)) as usize + i) % alphabet.len()])
            .collect();
        corpus.push(s);
    }
    corpus
}

fn matches(pattern: &str, min: usize, max: usize, s: &str) -> bool {
    let n = s.chars().count();
    regex::Regex::new(pattern).unwrap().is_match(s) && (min..=max).contains(&n)
}

#[test]
fn the_documented_identifier_patterns_are_the_parsers_rules() {
    use crate::domain::ids::{Alias, BotId, ProviderName, TokenId, UserId};
    for s in id_corpus() {
        assert_eq!(
            matches(api::BOT_ID_PATTERN, 1, 63, &s),
            BotId::parse(&s).is_ok(),
            "bot_id {s:?}"
        );
        assert_eq!(
            matches(api::NAME_PATTERN, 1, 64, &s),
            Alias::parse(&s).is_ok(),
            "alias {s:?}"
        );
        assert_eq!(
            matches(api::NAME_PATTERN, 1, 64, &s),
            ProviderName::parse(&s).is_ok(),
            "provider {s:?}"
        );
        assert_eq!(
            matches(api::TOKEN_ID_PATTERN, 28, 28, &s),
            TokenId::parse(&s).is_ok(),
            "token_id {s:?}"
        );
        assert_eq!(
            matches(api::USER_ID_PATTERN, 1, 256, &s),
            UserId::parse(&s).is_ok(),
            "user_id {s:?}"
        );
    }
    // A scope value the pattern accepts is accepted, one it refuses is refused (within the
    // count and length limits the pattern does not carry).
    let providers = ["google".to_owned()];
    for scope in [
        "email",
        "email,profile",
        "a b\tc",
        "https://x/y?z=1",
        "",
        " , ",
        "a\"b",
        "a\\b",
        "é",
        "a\u{a0}b",
        "a\u{7f}",
        "{x}",
        "[x]",
    ] {
        let file = format!(
            "- provider: google\n  context: user\n  scope: {}\n",
            serde_json::to_string(scope).unwrap()
        );
        assert_eq!(
            matches(api::SCOPE_PATTERN, 0, usize::MAX, scope),
            crate::domain::integrations::parse_integrations(&file, providers.as_slice()).is_ok(),
            "scope {scope:?}"
        );
    }
}

#[tokio::test]
async fn the_openapi_document_states_the_rules_and_every_answer() {
    let f = fixture();
    let (_, _, body) = call(
        &f.router,
        Request::get("/openapi.json").body(Body::empty()).unwrap(),
    )
    .await;
    let doc: Value = serde_json::from_slice(&body).unwrap();
    let param = |path: &str, method: &str, name: &str| -> Value {
        doc["paths"][path][method]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("{method} {path} has no {name}"))["schema"]
            .clone()
    };
    let token_path = "/v1/bots/{bot_id}/tokens/{token_id}/info";
    assert_eq!(
        param(token_path, "get", "bot_id")["pattern"],
        api::BOT_ID_PATTERN
    );
    assert_eq!(
        param(token_path, "get", "token_id")["pattern"],
        api::TOKEN_ID_PATTERN
    );
    assert_eq!(
        param("/v1/bots/{bot_id}/users/{user_id}/tokens", "get", "user_id")["pattern"],
        api::USER_ID_PATTERN
    );
    assert_eq!(
        param("/v1/admin/providers/{name}", "put", "name")["pattern"],
        api::NAME_PATTERN
    );
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["CreateBot"]["properties"]["bot_id"]["pattern"],
        api::BOT_ID_PATTERN
    );
    assert_eq!(
        schemas["CreateLink"]["properties"]["alias"]["pattern"],
        api::NAME_PATTERN
    );
    assert_eq!(
        schemas["CreateLink"]["properties"]["user_id"]["pattern"],
        api::USER_ID_PATTERN
    );
    assert_eq!(
        schemas["IntegrationsFile"]["items"]["$ref"],
        "#/components/schemas/IntegrationEntry"
    );
    let entry = &schemas["IntegrationEntry"];
    assert_eq!(
        entry["properties"]["provider"]["pattern"],
        api::NAME_PATTERN
    );
    assert_eq!(entry["properties"]["alias"]["pattern"], api::NAME_PATTERN);
    assert_eq!(
        entry["properties"]["context"]["$ref"],
        "#/components/schemas/Context"
    );
    assert_eq!(schemas["Context"]["enum"], json!(["bot", "user"]));
    assert_eq!(entry["additionalProperties"], false);
    let provider_input = &schemas["ProviderAppInput"]["properties"];
    assert_eq!(provider_input["scope_separator"]["pattern"], "^[ ,]$");
    assert_eq!(
        provider_input["client_secret"]["type"],
        json!(["string", "null"]),
        "the secret is a field of the request"
    );

    // The integrations file, as YAML or as JSON, with the same schema.
    let upload = &doc["paths"]["/v1/bots/{bot_id}/integrations"]["put"]["requestBody"]["content"];
    for media_type in ["application/yaml", "application/json"] {
        assert_eq!(
            upload[media_type]["schema"]["$ref"], "#/components/schemas/IntegrationsFile",
            "{media_type}"
        );
    }

    // Every error answer is documented with the error body; every operation answers 401;
    // those with a JSON body 400, 413, 415 and 422; those with a bot or token in the path 404.
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            let has = |status: &str| responses.contains_key(status);
            for (status, response) in responses {
                if !status.starts_with('2') {
                    assert_eq!(
                        response["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
                assert!(
                    !response["description"]
                        .as_str()
                        .unwrap_or_default()
                        .is_empty(),
                    "{method} {path} {status} has no description"
                );
            }
            assert!(has("401"), "{method} {path}");
            if let Some(body) = op.get("requestBody") {
                for status in ["413", "415", "422"] {
                    assert!(has(status), "{method} {path} {status}");
                }
                if body["content"].get("application/yaml").is_none() {
                    assert!(has("400"), "{method} {path} 400");
                }
            }
            if path.contains("{bot_id}") || path.contains("{token_id}") {
                assert!(has("404"), "{method} {path} 404");
            }
        }
    }
}
