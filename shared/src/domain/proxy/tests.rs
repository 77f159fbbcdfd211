use super::*;
use crate::domain::catalog::catalog_entry;

fn spec(name: &str) -> Option<&'static crate::domain::catalog::CredentialSpec> {
    catalog_entry(name).and_then(|e| e.credential.as_ref())
}

fn base(u: &str) -> Url {
    Url::parse(u).unwrap()
}

#[test]
fn paths_stay_under_the_base_path_of_the_base_host() {
    let b = base("https://api.example.com/v2/");
    let ok = target_url(&b, "users/me", Some("fields=id,name&x=%20")).unwrap();
    assert_eq!(
        ok.as_str(),
        "https://api.example.com/v2/users/me?fields=id,name&x=%20"
    );
    assert_eq!(
        target_url(&b, "files/a%20b.txt", None).unwrap().path(),
        "/v2/files/a%20b.txt"
    );
    for (path, err) in [
        ("../admin", PathError::Climbs),
        ("users/../../admin", PathError::Climbs),
        ("%2e%2e/admin", PathError::Climbs),
        ("users/%2E%2e", PathError::Climbs),
        ("./x", PathError::Climbs),
        ("users%2f..%2fadmin", PathError::EncodedSeparator),
        ("users%2Fme", PathError::EncodedSeparator),
        ("users\\..\\admin", PathError::EncodedSeparator),
        ("users%5cme", PathError::EncodedSeparator),
        ("/evil.example/x", PathError::Absolute),
        ("https://evil.example/x", PathError::Absolute),
        ("http:/%2f%2fevil.example", PathError::EncodedSeparator),
        ("a b", PathError::BadCharacters),
        ("a#frag", PathError::BadCharacters),
        ("a\r\nHost: evil", PathError::BadCharacters),
    ] {
        assert_eq!(target_url(&b, path, None), Err(err.clone()), "{path}");
    }
    // A base without a path: every call is under "/".
    let root = base("https://api.stripe.com");
    assert_eq!(
        target_url(&root, "v1/charges", None).unwrap().as_str(),
        "https://api.stripe.com/v1/charges"
    );
    // "@" and ":" in a path stay in the path: the host cannot change.
    let at = target_url(&root, "user@evil.example:80/x", None).unwrap();
    assert_eq!(at.host_str(), Some("api.stripe.com"));
}

#[test]
fn the_bots_key_cookies_and_hop_by_hop_headers_never_pass() {
    let mut h = HeaderMap::new();
    for (n, v) in [
        ("authorization", "Bearer bk.acme.secret"),
        ("cookie", "session=1"),
        ("connection", "close, x-custom-hop"),
        ("x-custom-hop", "1"),
        ("keep-alive", "timeout=5"),
        ("transfer-encoding", "chunked"),
        ("host", "svc.example"),
        ("content-length", "3"),
        ("x-integrations-max-retry-seconds", "2"),
        ("x-forwarded-for", "10.0.0.1"),
        ("x-amzn-trace-id", "Root=1"),
        ("x-request-id", "r1"),
        ("accept", "application/json"),
        ("content-type", "application/json"),
        ("idempotency-key", "k1"),
        ("notion-version", "2022-06-28"),
    ] {
        h.append(n, HeaderValue::from_static(v));
    }
    let out = request_headers(&h);
    let names: Vec<&str> = out.keys().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "accept",
            "content-type",
            "idempotency-key",
            "notion-version"
        ]
    );

    let mut up = HeaderMap::new();
    for (n, v) in [
        ("set-cookie", "a=b"),
        ("transfer-encoding", "chunked"),
        ("content-type", "text/plain"),
        ("retry-after", "3"),
        ("x-ratelimit-remaining", "0"),
    ] {
        up.append(n, HeaderValue::from_static(v));
    }
    let back = response_headers(&up);
    let names: Vec<&str> = back.keys().map(|k| k.as_str()).collect();
    assert_eq!(
        names,
        ["content-type", "retry-after", "x-ratelimit-remaining"]
    );
    assert_eq!(retry_after(&back), Some(3));
}

#[test]
fn credentials_go_where_each_provider_expects_them() {
    let value = |i: Option<Injection>| match i {
        Some(Injection::Header(n, v)) => (n.to_string(), v.to_str().unwrap().to_owned()),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        value(injection(spec("google"), "ya29.x")),
        ("authorization".into(), "Bearer ya29.x".into())
    );
    assert_eq!(
        value(injection(None, "custom-token")),
        ("authorization".into(), "Bearer custom-token".into())
    );
    assert_eq!(
        value(injection(spec("anthropic"), "sk-ant-1")),
        ("x-api-key".into(), "sk-ant-1".into())
    );
    assert_eq!(
        value(injection(spec("twilio"), "Basic QUM6cw==")),
        ("authorization".into(), "Basic QUM6cw==".into())
    );
    assert_eq!(
        injection(spec("telegram"), "123:abc"),
        Some(Injection::PathPrefix("bot123:abc".into()))
    );
    // Never printed.
    let printed = format!("{:?}", injection(spec("stripe"), "sk_live_canary"));
    assert!(!printed.contains("canary"), "{printed}");
    // A value that cannot be a header, or a path segment, is refused, not sent.
    assert_eq!(injection(None, "bad\r\nvalue"), None);
    assert_eq!(injection(spec("telegram"), "123/../x"), None);
    // Placed on a request.
    let mut url = Url::parse("https://api.telegram.org/getMe?x=1").unwrap();
    let mut headers = HeaderMap::new();
    injection(spec("telegram"), "123:abc")
        .unwrap()
        .apply(&mut url, &mut headers);
    assert_eq!(
        url.as_str(),
        "https://api.telegram.org/bot123:abc/getMe?x=1"
    );
    injection(spec("anthropic"), "sk-1")
        .unwrap()
        .apply(&mut url, &mut headers);
    assert_eq!(headers["x-api-key"], "sk-1");
    assert!(headers["x-api-key"].is_sensitive());
}

#[test]
fn only_idempotent_requests_are_retried() {
    let none = HeaderMap::new();
    for m in ["GET", "HEAD", "OPTIONS", "PUT", "DELETE"] {
        assert!(idempotent(&m.parse().unwrap(), &none), "{m}");
    }
    assert!(!idempotent(&http::Method::POST, &none));
    assert!(!idempotent(&http::Method::PATCH, &none));
    let mut keyed = HeaderMap::new();
    keyed.insert("idempotency-key", HeaderValue::from_static("k"));
    assert!(idempotent(&http::Method::POST, &keyed));
}
