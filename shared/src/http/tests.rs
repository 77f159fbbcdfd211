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
    ("put", "/v1/admin/providers/{name}"),
    ("get", "/v1/admin/providers"),
    ("put", "/v1/bots/{bot_id}/integrations"),
    ("get", "/v1/bots/{bot_id}/integrations"),
    ("post", "/v1/bots/{bot_id}/oauth-links"),
    ("post", "/v1/bots/{bot_id}/connect-links"),
    ("get", "/v1/bots/{bot_id}/tokens"),
    ("get", "/v1/bots/{bot_id}/users/{user_id}/tokens"),
    ("get", "/v1/bots/{bot_id}/tokens/{token_id}/info"),
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
    assert_eq!(q["scope"], "openid email");
    assert_eq!(
        q["redirect_uri"],
        "https://svc.example/prod/oauth/callback/google"
    );
    assert!(!to.as_str().contains("client_secret"));
}
