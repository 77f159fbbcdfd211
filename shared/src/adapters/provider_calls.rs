//! What the catalog says about a provider's requests and answers, applied to the HTTP
//! calls: token answers brought to RFC 6749's shape, the user-info request, and revocation
//! as RFC 7009 or as the provider's own call.

use crate::domain::catalog::{
    fill, lookup, BodyKind, CredentialSpec, Revocation, RevokeAuth, TokenShape, UserInfoSpec,
    WhichToken,
};
use crate::domain::providers::ProviderApp;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

/// A successful token answer in RFC 6749 §5.1's shape: the entry's paths copied to the
/// standard fields (a path absent from this answer leaves the standard field as it is:
/// refresh answers are often flat), `token_type` defaulting to `bearer`, a `scope` array
/// joined, a numeric string `expires_in` read as a number and `0` read as "no expiry". An
/// answer whose `ok_field` is `false` becomes `{"error": <code>}`. `None`: not a JSON object.
pub fn reshape_token_answer(body: &[u8], shape: Option<&TokenShape>) -> Option<Vec<u8>> {
    let Ok(Value::Object(original)) = serde_json::from_slice::<Value>(body) else {
        return None;
    };
    let root = Value::Object(original);
    let mut out: Map<String, Value> = match &root {
        Value::Object(m) => m.clone(),
        _ => return None,
    };
    if let Some(shape) = shape {
        if let Some(ok) = &shape.ok_field {
            if lookup(&root, ok) == Some(&Value::Bool(false)) {
                let code = shape
                    .error_field
                    .as_deref()
                    .and_then(|f| lookup(&root, f))
                    .or_else(|| root.get("error"))
                    .and_then(Value::as_str)
                    .unwrap_or("invalid_request");
                return serde_json::to_vec(&serde_json::json!({ "error": code })).ok();
            }
        }
        for (field, path) in [
            ("access_token", &shape.access_token),
            ("refresh_token", &shape.refresh_token),
            ("expires_in", &shape.expires_in),
            ("scope", &shape.scope),
        ] {
            if let Some(v) = path.as_deref().and_then(|p| lookup(&root, p)) {
                out.insert(field.to_owned(), v.clone());
            }
        }
    }
    if out.contains_key("access_token") && !out.contains_key("token_type") {
        out.insert("token_type".to_owned(), Value::String("bearer".into()));
    }
    if let Some(Value::Array(scopes)) = out.get("scope") {
        let joined: Vec<&str> = scopes.iter().filter_map(Value::as_str).collect();
        out.insert("scope".to_owned(), Value::String(joined.join(" ")));
    }
    match out.get("expires_in") {
        Some(Value::String(s)) => match s.parse::<u64>() {
            Ok(0) | Err(_) => {
                out.remove("expires_in");
            }
            Ok(n) => {
                out.insert("expires_in".to_owned(), Value::from(n));
            }
        },
        Some(Value::Number(n)) if n.as_u64() == Some(0) => {
            out.remove("expires_in");
        }
        _ => {}
    }
    serde_json::to_vec(&out).ok()
}

/// Values a catalog template may name, for one call.
struct Template<'a> {
    app: &'a ProviderApp,
    secret: Option<&'a SecretString>,
    access_token: &'a SecretString,
    refresh_token: Option<&'a SecretString>,
}

impl Template<'_> {
    fn fill(&self, text: &str) -> String {
        fill(text, &|name| match name {
            "client_id" => Some(self.app.client_id.clone()),
            "client_secret" => self.secret.map(|s| s.expose_secret().to_owned()),
            "access_token" => Some(self.access_token.expose_secret().to_owned()),
            "refresh_token" => self.refresh_token.map(|s| s.expose_secret().to_owned()),
            other => self.app.params.get(other).cloned(),
        })
    }

    fn headers(&self, extra: &std::collections::BTreeMap<String, String>) -> HeaderMap {
        header_map(extra, |v| self.fill(v))
    }
}

/// An entry's extra headers, each value passed through `value` (templating), marked
/// sensitive; names or values that are not valid HTTP are left out.
fn header_map(
    extra: &std::collections::BTreeMap<String, String>,
    value: impl Fn(&str) -> String,
) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (k, v) in extra {
        if let (Ok(name), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(&value(v)),
        ) {
            headers.insert(name, sensitive(v));
        }
    }
    headers
}

/// Header values may carry a secret: never printed by the HTTP stack's debug output.
fn sensitive(mut v: HeaderValue) -> HeaderValue {
    v.set_sensitive(true);
    v
}

fn bearer(token: &SecretString) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!("Bearer {}", token.expose_secret()))
        .ok()
        .map(sensitive)
}

/// The user-info request: the entry's method, headers and body, with the access token as a
/// bearer unless one of the entry's headers carries it.
pub fn user_info_request(
    client: &reqwest::Client,
    app: &ProviderApp,
    url: &str,
    spec: Option<&UserInfoSpec>,
    access_token: &SecretString,
) -> reqwest::RequestBuilder {
    let t = Template {
        app,
        secret: None,
        access_token,
        refresh_token: None,
    };
    let method = spec.map_or(http::Method::GET, |s| s.method.as_http());
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    let carries_token =
        spec.is_some_and(|s| s.headers.values().any(|v| v.contains("{access_token}")));
    if !carries_token {
        if let Some(b) = bearer(access_token) {
            headers.insert(AUTHORIZATION, b);
        }
    }
    if let Some(s) = spec {
        headers.extend(t.headers(&s.headers));
    }
    with_body(client.request(method, url).headers(headers), spec)
}

/// The user-info request of an entered credential: the entry's method and headers, the
/// credential where the entry puts it (a header with its prefix, a query parameter, HTTP
/// Basic, or a path segment before the URL's path).
pub fn entered_user_info_request(
    client: &reqwest::Client,
    spec: &UserInfoSpec,
    credential: &CredentialSpec,
    url: &str,
    secret: &SecretString,
) -> Option<reqwest::RequestBuilder> {
    let mut url = url::Url::parse(url).ok()?;
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static("application/json"));
    headers.extend(header_map(&spec.headers, str::to_owned));
    crate::domain::proxy::injection(Some(credential), secret.expose_secret())?
        .apply(&mut url, &mut headers);
    let req = client
        .request(spec.method.as_http(), url.as_str())
        .headers(headers);
    Some(with_body(req, Some(spec)))
}

/// A `POST` user-info request carries the entry's JSON body, when it has one.
fn with_body(req: reqwest::RequestBuilder, spec: Option<&UserInfoSpec>) -> reqwest::RequestBuilder {
    match spec {
        Some(UserInfoSpec {
            method: crate::domain::catalog::Method::Post,
            body: Some(body),
            ..
        }) => req.json(body),
        _ => req,
    }
}

/// How the revocation is sent for an app: the entry's own call, or RFC 7009 (custom
/// providers with a revocation endpoint, and entries that say so).
pub fn revocation_request(
    client: &reqwest::Client,
    app: &ProviderApp,
    url: &str,
    secret: Option<&SecretString>,
    access_token: &SecretString,
    refresh_token: Option<&SecretString>,
) -> reqwest::RequestBuilder {
    let spec = app.entry().and_then(|e| e.revocation.as_ref());
    let t = Template {
        app,
        secret,
        access_token,
        refresh_token,
    };
    match spec {
        Some(Revocation::Request {
            method,
            auth,
            body,
            fields,
            query,
            headers,
            ..
        }) => {
            let mut req = client.request(method.as_http(), t.fill(url));
            let query: Vec<(&str, String)> =
                query.iter().map(|(k, v)| (k.as_str(), t.fill(v))).collect();
            if !query.is_empty() {
                req = req.query(&query);
            }
            match auth {
                RevokeAuth::ClientBasic => {
                    if let Some(s) = secret {
                        req = req.header(
                            AUTHORIZATION,
                            sensitive(basic_client(&app.client_id, s.expose_secret())),
                        );
                    }
                }
                RevokeAuth::Bearer => {
                    if let Some(b) = bearer(access_token) {
                        req = req.header(AUTHORIZATION, b);
                    }
                }
                RevokeAuth::None => {}
            }
            req = req.headers(t.headers(headers));
            let values: Map<String, Value> = fields
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(t.fill(v))))
                .collect();
            match body {
                Some(BodyKind::Json) => req.json(&values),
                Some(BodyKind::Form) => req.form(&values),
                None => req,
            }
        }
        Some(Revocation::Rfc7009 { token, .. }) => rfc7009(
            client,
            app,
            url,
            secret,
            access_token,
            refresh_token,
            *token,
        ),
        None => rfc7009(client, app, url, secret, access_token, refresh_token, None),
    }
}

/// RFC 7009: the refresh token (which ends the grant at most providers) unless the entry
/// names the access token, or there is none.
fn rfc7009(
    client: &reqwest::Client,
    app: &ProviderApp,
    url: &str,
    secret: Option<&SecretString>,
    access_token: &SecretString,
    refresh_token: Option<&SecretString>,
    which: Option<WhichToken>,
) -> reqwest::RequestBuilder {
    let (token, hint) = match (which, refresh_token) {
        (Some(WhichToken::AccessToken), _) | (_, None) => (access_token, "access_token"),
        (_, Some(rt)) => (rt, "refresh_token"),
    };
    let mut form: Vec<(&str, &str)> =
        vec![("token", token.expose_secret()), ("token_type_hint", hint)];
    let mut req = client.post(url);
    match (app.client_auth_in_body, secret) {
        (true, Some(s)) => {
            form.push(("client_id", &app.client_id));
            form.push(("client_secret", s.expose_secret()));
        }
        (false, Some(s)) => {
            req = req.header(
                AUTHORIZATION,
                sensitive(basic_client(&app.client_id, s.expose_secret())),
            );
        }
        (_, None) => form.push(("client_id", &app.client_id)),
    }
    req.form(&form)
}

/// HTTP Basic client authentication as RFC 6749 §2.3.1 defines it: id and secret are
/// form-encoded before they are joined, which is also what the `oauth2` crate sends on token
/// and refresh requests, so a secret with `+`, `:` or `%` authenticates the same everywhere.
pub fn basic_client(client_id: &str, secret: &str) -> HeaderValue {
    use base64::Engine;
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let raw = format!("{}:{}", enc(client_id), enc(secret));
    HeaderValue::from_str(&format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("Basic"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reshaped(body: Value, shape: Option<&TokenShape>) -> Value {
        serde_json::from_slice(&reshape_token_answer(body.to_string().as_bytes(), shape).unwrap())
            .unwrap()
    }

    #[test]
    fn nested_answers_are_brought_to_the_standard_shape() {
        let shape: TokenShape = serde_json::from_value(json!({
            "access_token": "authed_user.access_token",
            "refresh_token": "authed_user.refresh_token",
            "ok_field": "ok",
        }))
        .unwrap();
        let out = reshaped(
            json!({"ok": true, "authed_user": {"access_token": "xoxp", "refresh_token": "xoxe"}}),
            Some(&shape),
        );
        assert_eq!(out["access_token"], "xoxp");
        assert_eq!(out["refresh_token"], "xoxe");
        assert_eq!(out["token_type"], "bearer");
        // A flat refresh answer keeps its own fields.
        let flat = reshaped(
            json!({"ok": true, "access_token": "new", "token_type": "user"}),
            Some(&shape),
        );
        assert_eq!(flat["access_token"], "new");
        let refused = reshaped(
            json!({"ok": false, "error": "invalid_refresh_token"}),
            Some(&shape),
        );
        assert_eq!(refused, json!({"error": "invalid_refresh_token"}));
    }

    #[test]
    fn scope_arrays_and_odd_lifetimes_are_read() {
        let out = reshaped(
            json!({"access_token": "a", "scope": ["a", "b"], "expires_in": "3600"}),
            None,
        );
        assert_eq!(out["scope"], "a b");
        assert_eq!(out["expires_in"], 3600);
        let never = reshaped(json!({"access_token": "a", "expires_in": 0}), None);
        assert!(never.get("expires_in").is_none());
    }
}
