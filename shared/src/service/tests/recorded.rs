//! Every OAuth entry of the catalog against its recorded answers (`catalog/answers/`): a
//! fake provider on loopback answers as the provider's documentation shows; the service
//! connects, maps `uid` and `info`, refreshes where the provider refreshes, and deletes with
//! the revocation call that provider expects.

use super::*;
use crate::domain::catalog::{catalog, CatalogEntry, ClientAuth, CredentialKind};
use axum::extract::State;
use axum::http::{HeaderMap, Method as HttpMethod, StatusCode, Uri};

const CLIENT_ID: &str = "CLIENT_ID";
const CLIENT_SECRET: &str = "CLIENT-SECRET+with/odd:chars";

#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    query: String,
    headers: HeaderMap,
    body: String,
}

struct Fake {
    answers: Value,
    token_path: String,
    userinfo_path: Option<String>,
    revocation_path: Option<String>,
    seen: Mutex<Vec<Seen>>,
}

async fn answer(
    State(fake): State<Arc<Fake>>,
    method: HttpMethod,
    uri: Uri,
    headers: HeaderMap,
    body: String,
) -> (StatusCode, axum::Json<Value>) {
    let path = uri.path().to_owned();
    fake.seen.lock().unwrap().push(Seen {
        method: method.to_string(),
        path: path.clone(),
        query: uri.query().unwrap_or_default().to_owned(),
        headers,
        body: body.clone(),
    });
    let recorded = |key: &str| {
        let a = &fake.answers[key];
        let status = a["status"].as_u64().unwrap_or(200) as u16;
        (
            StatusCode::from_u16(status).unwrap(),
            axum::Json(a["body"].clone()),
        )
    };
    if fake.revocation_path.as_deref() == Some(path.as_str()) && path != fake.token_path {
        return (StatusCode::OK, axum::Json(serde_json::json!({"ok": true})));
    }
    if path == fake.token_path {
        if body.contains("grant_type=refresh_token") {
            return recorded("refresh");
        }
        return recorded("token");
    }
    if fake.userinfo_path.as_deref() == Some(path.as_str()) {
        return recorded("userinfo");
    }
    (StatusCode::NOT_FOUND, axum::Json(Value::Null))
}

/// A value for an app or connection parameter that its pattern accepts.
fn sample(pattern: &str, default: Option<&String>) -> String {
    if let Some(d) = default {
        return d.clone();
    }
    let re = regex_lite::Regex::new(pattern).unwrap();
    [
        "acme",
        "acme.example.com",
        "dev-123456.okta.com",
        "acme.us.auth0.com",
        "us1",
    ]
    .into_iter()
    .find(|c| re.is_match(c))
    .unwrap_or_else(|| panic!("no sample value fits {pattern}"))
    .to_owned()
}

/// The entry's URL on the fake provider: same path, params filled.
fn on_fake(base: &str, url: &str, params: &BTreeMap<String, String>) -> (String, String) {
    let filled = crate::domain::catalog::fill(url, &|n| params.get(n).cloned());
    let parsed = Url::parse(&filled).unwrap();
    let path = parsed.path().to_owned();
    let mut local = format!("{base}{path}");
    if let Some(q) = parsed.query() {
        local.push('?');
        local.push_str(q);
    }
    // `{client_id}` and friends stay for the service to fill at call time.
    let local = local.replace("%7B", "{").replace("%7D", "}");
    let path = path.replace("%7B", "{").replace("%7D", "}");
    (local, path.replace("{client_id}", CLIENT_ID))
}

fn answers_of(e: &CatalogEntry) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("catalog/answers")
        .join(format!("{}.yaml", e.name));
    let text = std::fs::read_to_string(&path).unwrap();
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).unwrap();
    yaml_to_json(&docs[0])
}

fn yaml_to_json(y: &yaml_rust2::Yaml) -> Value {
    use yaml_rust2::Yaml;
    match y {
        Yaml::Real(r) => r.parse::<f64>().map(Value::from).unwrap_or(Value::Null),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Array(a) => Value::Array(a.iter().map(yaml_to_json).collect()),
        Yaml::Hash(h) => Value::Object(
            h.iter()
                .map(|(k, v)| {
                    (
                        k.as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| format!("{k:?}")),
                        yaml_to_json(v),
                    )
                })
                .collect(),
        ),
        _ => Value::Null,
    }
}

fn header<'h>(seen: &'h Seen, name: &str) -> Option<&'h str> {
    seen.headers.get(name).and_then(|v| v.to_str().ok())
}

fn form(body: &str) -> BTreeMap<String, String> {
    url::form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

/// Connects, reads, refreshes and deletes one entry's token against its recorded answers;
/// answers what went wrong.
async fn exercise(e: &'static CatalogEntry) -> Result<(), String> {
    let answers = answers_of(e);
    let mut params = BTreeMap::new();
    for p in &e.params {
        params.insert(p.name.clone(), sample(&p.pattern, p.default.as_ref()));
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (authorize, _) = on_fake(&base, e.authorize_url.as_deref().unwrap(), &params);
    let (token, token_path) = on_fake(&base, e.token_url.as_deref().unwrap(), &params);
    let userinfo = e.userinfo.as_ref().map(|u| on_fake(&base, &u.url, &params));
    let revocation = e
        .revocation
        .as_ref()
        .map(|r| on_fake(&base, r.url(), &params));
    let fake = Arc::new(Fake {
        answers: answers.clone(),
        token_path,
        userinfo_path: userinfo.as_ref().map(|u| u.1.clone()),
        revocation_path: revocation.as_ref().map(|r| r.1.clone()),
        seen: Mutex::default(),
    });
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(Arc::clone(&fake));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let s = setup().await;
    let app_params: BTreeMap<String, String> = e
        .params
        .iter()
        .filter(|p| p.scope == crate::domain::catalog::ParamScope::App)
        .map(|p| (p.name.clone(), params[&p.name].clone()))
        .collect();
    let mut input = serde_json::json!({
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "authorize_url": authorize, "token_url": token,
        "params": app_params,
    });
    if let Some((u, _)) = &userinfo {
        input["userinfo_url"] = Value::String(u.clone());
    }
    if let Some((u, _)) = &revocation {
        input["revocation_url"] = Value::String(u.clone());
    }
    let name = ProviderName::parse(&e.name).unwrap();
    s.service
        .put_provider(&name, serde_json::from_value(input).unwrap())
        .await
        .map_err(|err| format!("registering the app: {err}"))?;
    s.service
        .put_integrations(
            &s.bot,
            &format!(
                "- provider: {}\n  context: user\n  scope: \"files.read\"\n",
                e.name
            ),
        )
        .await
        .map_err(|err| format!("the integrations file: {err}"))?;

    // The authorization request carries what the entry says.
    let alias = Alias::parse(&e.name).unwrap();
    let connection: BTreeMap<String, String> = e
        .params
        .iter()
        .filter(|p| p.scope == crate::domain::catalog::ParamScope::Connection)
        .map(|p| (p.name.clone(), params[&p.name].clone()))
        .collect();
    let link = s
        .service
        .create_link_with(
            &s.bot,
            &alias,
            Some(UserId::parse("u-1").unwrap()),
            connection,
        )
        .await
        .map_err(|err| format!("minting a link: {err}"))?;
    let link_id = LinkId::parse(link.url.rsplit('/').next().unwrap()).unwrap();
    let url = s
        .service
        .start(&link_id, &super::scripted::browser())
        .await
        .map_err(|err| format!("starting: {err:?}"))?;
    let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
    for (k, v) in &e.authorize_params {
        if q.get(k) != Some(v) {
            return Err(format!("the authorize URL lacks {k}={v}"));
        }
    }
    let scope_param = e.scope_param.as_deref().unwrap_or("scope");
    let scopes = q.get(scope_param).cloned().unwrap_or_default();
    for required in e
        .required_scopes
        .iter()
        .chain(std::iter::once(&"files.read".to_owned()))
    {
        if !scopes
            .split(e.scope_separator.as_str())
            .any(|x| x == required)
        {
            return Err(format!("{scope_param}={scopes:?} lacks {required}"));
        }
    }
    if q.contains_key("code_challenge") != e.pkce {
        return Err(format!("PKCE is {} in the authorize URL", !e.pkce));
    }
    let state = SecretString::from(q["state"].clone());

    // The callback: code exchange, user info, stored.
    s.service
        .callback(
            &e.name,
            super::scripted::callback_with(&state, "CODE-1"),
            Some(&super::scripted::browser()),
        )
        .await
        .map_err(|err| format!("the callback: {err:?}"))?;
    let owner = Owner::User(UserId::parse("u-1").unwrap());
    let id = s
        .service
        .tokens_of(&s.bot, &owner)
        .await
        .unwrap()
        .remove(&alias)
        .ok_or("no token stored")?;
    let exchange = fake
        .seen
        .lock()
        .unwrap()
        .iter()
        .find(|r| r.body.contains("grant_type=authorization_code"))
        .cloned()
        .ok_or("no code exchange")?;
    let fields = form(&exchange.body);
    match e.client_auth {
        ClientAuth::Basic
            if !header(&exchange, "authorization").is_some_and(|h| h.starts_with("Basic ")) =>
        {
            return Err("the code exchange did not authenticate with HTTP Basic".into());
        }
        ClientAuth::Body
            if fields.get("client_secret").map(String::as_str) != Some(CLIENT_SECRET) =>
        {
            return Err("the code exchange did not send client_secret in the body".into());
        }
        _ => {}
    }
    let full = s
        .service
        .full_token(&s.bot, &id)
        .await
        .map_err(|err| format!("reading: {err}"))?;
    let expect = &answers["expect"];
    if let Some(uid) = expect.get("uid").and_then(Value::as_str) {
        if full.uid.as_deref() != Some(uid) {
            return Err(format!("uid {:?}, expected {uid}", full.uid));
        }
    }
    let info = serde_json::to_value(&full.info).unwrap();
    for (k, v) in expect["info"].as_object().into_iter().flatten() {
        if &info[k] != v {
            return Err(format!("info.{k} is {}, expected {v}", info[k]));
        }
    }
    for (k, v) in expect["extra"].as_object().into_iter().flatten() {
        if &info["extra"][k] != v {
            return Err(format!("extra.{k} is {}, expected {v}", info["extra"][k]));
        }
    }
    let granted = |key: &str| -> Value {
        let raw = answers[key]["body"].to_string();
        let shaped = crate::adapters::provider_calls::reshape_token_answer(
            raw.as_bytes(),
            Some(&e.token_response),
        )
        .unwrap();
        serde_json::from_slice(&shaped).unwrap()
    };
    let mut access = granted("token")["access_token"].as_str().map(str::to_owned);
    let mut refresh = granted("token")["refresh_token"]
        .as_str()
        .map(str::to_owned);
    if Some(full.credentials.token.as_str()) != access.as_deref() {
        return Err(format!(
            "stored access token {:?}, answered {access:?}",
            full.credentials.token
        ));
    }

    // A refresh, where the provider refreshes.
    if e.refresh && answers.get("refresh").is_some() && refresh.is_some() {
        let db = rusqlite::Connection::open(s.dir.path().join("db")).unwrap();
        db.execute("UPDATE tokens SET expires_at = 1", []).unwrap();
        let view = s
            .service
            .access_token(&s.bot, &id)
            .await
            .map_err(|err| format!("refreshing: {err}"))?;
        let fresh = granted("refresh");
        let now = view.access_token.clone();
        if now.as_deref() != fresh["access_token"].as_str() {
            return Err(format!("after a refresh the access token is {now:?}"));
        }
        access = now;
        if let Some(r) = fresh["refresh_token"].as_str() {
            refresh = Some(r.to_owned());
        }
    }

    // The delete revokes as the provider expects.
    s.service
        .delete_token(&s.bot, &id)
        .await
        .map_err(|err| format!("deleting: {err}"))?;
    if let Some(expected) = answers.get("revocation") {
        let path = expected["path"]
            .as_str()
            .unwrap()
            .replace("CLIENT_ID", CLIENT_ID);
        let seen = fake
            .seen
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|r| {
                r.path == path
                    && !r.body.contains("grant_type=authorization_code")
                    && !r.body.contains("grant_type=refresh_token")
            })
            .cloned()
            .ok_or_else(|| format!("no revocation at {path}"))?;
        if seen.method != expected["method"].as_str().unwrap() {
            return Err(format!("revocation sent with {}", seen.method));
        }
        let token = match expected["token"].as_str() {
            Some("refresh_token") => refresh.clone(),
            _ => access.clone(),
        }
        .ok_or("no token to revoke")?;
        let authz = header(&seen, "authorization").unwrap_or_default();
        let auth_ok = match expected["auth"].as_str().unwrap() {
            "client_basic" => authz.starts_with("Basic "),
            "bearer" => authz == format!("Bearer {}", access.clone().unwrap_or_default()),
            "body" => {
                form(&seen.body).get("client_id").map(String::as_str) == Some(CLIENT_ID)
                    || seen.body.contains(CLIENT_ID)
            }
            _ => true,
        };
        if !auth_ok {
            return Err(format!(
                "revocation authenticated as {authz:?}, expected {}",
                expected["auth"]
            ));
        }
        let token_in = expected["token_in"].as_str().unwrap();
        let found = match token_in.split_once(':') {
            Some(("form", f)) => form(&seen.body).get(f).cloned(),
            Some(("json", f)) => serde_json::from_str::<Value>(&seen.body)
                .ok()
                .and_then(|v| v[f].as_str().map(str::to_owned)),
            Some(("query", f)) => form(&seen.query).get(f).cloned(),
            Some(("header", h)) => header(&seen, h).map(str::to_owned),
            _ => authz.strip_prefix("Bearer ").map(str::to_owned),
        };
        if found.as_deref() != Some(token.as_str()) {
            return Err(format!(
                "revocation carried {found:?} in {token_in}, expected the {}",
                expected["token"]
            ));
        }
    }
    let deleted = delivered_events(&s)
        .await
        .into_iter()
        .find(|ev| ev["detail-type"] == format!("token_deleted:{}", e.name))
        .ok_or("no token_deleted event")?;
    let said = &deleted["detail"]["revoked"];
    let expected = if e.revocation.is_some() {
        "yes"
    } else {
        "unsupported"
    };
    if said != expected {
        return Err(format!(
            "token_deleted says revoked: {said}, expected {expected}"
        ));
    }
    server.abort();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_oauth_entry_passes_its_recorded_answers() {
    let mut failures = Vec::new();
    let mut passed = 0;
    for e in catalog()
        .iter()
        .filter(|e| e.kind == CredentialKind::Oauth2)
    {
        match exercise(e).await {
            Ok(()) => passed += 1,
            Err(why) => failures.push(format!("{}: {why}", e.name)),
        }
    }
    assert!(
        failures.is_empty(),
        "{} passed; failed:\n{}",
        passed,
        failures.join("\n")
    );
    eprintln!("{passed} OAuth catalog entries passed their recorded answers");
}

/// Zendesk's subdomain given on the link reaches every call of that connection: the
/// authorization, the code exchange, the user info, the refresh and the revocation. The
/// registration here puts the placeholder in the fake provider's paths, where a test can see it.
#[tokio::test]
async fn a_links_connection_values_reach_every_call_of_that_connection() {
    let e = crate::domain::catalog::catalog_entry("zendesk").unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let fake = Arc::new(Fake {
        answers: answers_of(e),
        token_path: "/acme/oauth/tokens".into(),
        userinfo_path: Some("/acme/api/v2/users/me.json".into()),
        revocation_path: Some("/acme/api/v2/oauth/tokens/current.json".into()),
        seen: Mutex::default(),
    });
    let app = axum::Router::new()
        .fallback(answer)
        .with_state(Arc::clone(&fake));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let s = setup().await;
    let input = serde_json::json!({
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
        "authorize_url": format!("{base}/{{subdomain}}/oauth/authorizations/new"),
        "token_url": format!("{base}/{{subdomain}}/oauth/tokens"),
        "userinfo_url": format!("{base}/{{subdomain}}/api/v2/users/me.json"),
        "revocation_url": format!("{base}/{{subdomain}}/api/v2/oauth/tokens/current.json"),
    });
    let name = ProviderName::parse("zendesk").unwrap();
    s.service
        .put_provider(&name, serde_json::from_value(input).unwrap())
        .await
        .unwrap();
    s.service
        .put_integrations(
            &s.bot,
            "- provider: zendesk\n  context: user\n  scope: read\n",
        )
        .await
        .unwrap();
    let alias = Alias::parse("zendesk").unwrap();
    let user = || Some(UserId::parse("u-1").unwrap());

    // Without the subdomain, or with one that would climb out of the host, no link.
    let missing = s.service.create_link(&s.bot, &alias, user()).await;
    assert!(
        matches!(&missing, Err(ServiceError::InvalidParams(m)) if m.contains("params.subdomain is required")),
        "{missing:?}"
    );
    for bad in ["../evil", "evil.example/x", "a b", "ACME"] {
        let refused = s
            .service
            .create_link_with(
                &s.bot,
                &alias,
                user(),
                [("subdomain".to_owned(), bad.to_owned())].into(),
            )
            .await;
        assert!(
            matches!(refused, Err(ServiceError::InvalidParams(_))),
            "{bad}: {refused:?}"
        );
    }
    let unknown = s
        .service
        .create_link_with(
            &s.bot,
            &alias,
            user(),
            [("shop".to_owned(), "acme".to_owned())].into(),
        )
        .await;
    assert!(
        matches!(unknown, Err(ServiceError::InvalidParams(_))),
        "{unknown:?}"
    );

    let link = s
        .service
        .create_link_with(
            &s.bot,
            &alias,
            user(),
            [("subdomain".to_owned(), "acme".to_owned())].into(),
        )
        .await
        .unwrap();
    let link_id = LinkId::parse(link.url.rsplit('/').next().unwrap()).unwrap();
    let url = s
        .service
        .start(&link_id, &super::scripted::browser())
        .await
        .unwrap();
    assert_eq!(url.path(), "/acme/oauth/authorizations/new");
    let state = url
        .query_pairs()
        .find(|(k, _)| k == "state")
        .map(|(_, v)| SecretString::from(v.into_owned()))
        .unwrap();
    s.service
        .callback(
            "zendesk",
            super::scripted::callback_with(&state, "CODE-1"),
            Some(&super::scripted::browser()),
        )
        .await
        .unwrap();
    let owner = Owner::User(UserId::parse("u-1").unwrap());
    let id = s
        .service
        .tokens_of(&s.bot, &owner)
        .await
        .unwrap()
        .remove(&alias)
        .unwrap();
    let full = s.service.full_token(&s.bot, &id).await.unwrap();
    assert_eq!(full.credentials.other["connection"]["subdomain"], "acme");
    assert!(full.uid.is_some());

    let db = rusqlite::Connection::open(s.dir.path().join("db")).unwrap();
    db.execute("UPDATE tokens SET expires_at = 1", []).unwrap();
    let view = s.service.access_token(&s.bot, &id).await.unwrap();
    assert_eq!(view.status, "valid");
    assert!(s.service.delete_token(&s.bot, &id).await.unwrap());

    let paths: Vec<String> = fake
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(
        paths,
        vec![
            "POST /acme/oauth/tokens",
            "GET /acme/api/v2/users/me.json",
            "POST /acme/oauth/tokens",
            "DELETE /acme/api/v2/oauth/tokens/current.json",
        ]
    );
    server.abort();
}

/// Every API-key and Basic entry that can say who a credential belongs to: the credential is
/// placed on the user-info request as the entry says, the recorded answer maps onto `uid` and
/// `info`, and a credential the provider refuses is reported as refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_entered_entry_checks_its_credential_as_recorded() {
    use crate::domain::catalog::Placement;
    let provider = crate::wiring::provider_client(crate::domain::network::OutboundPolicy {
        allow_loopback: true,
    })
    .unwrap();
    let mut checked = 0;
    for e in catalog()
        .iter()
        .filter(|e| matches!(e.kind, CredentialKind::ApiKey | CredentialKind::Basic))
    {
        let (Some(spec), Some(credential)) = (&e.userinfo, &e.credential) else {
            continue;
        };
        let answers = answers_of(e);
        let secret = match e.kind {
            CredentialKind::Basic => "Basic QUMxMjM6c2VjcmV0".to_owned(),
            _ => "KEY-123".to_owned(),
        };
        let expected = secret.clone();
        let placement = credential.clone();
        let body = answers["userinfo"]["body"].clone();
        let seen = Arc::new(Mutex::new(0usize));
        let counter = Arc::clone(&seen);
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
            let (expected, placement, body, counter) = (
                expected.clone(),
                placement.clone(),
                body.clone(),
                Arc::clone(&counter),
            );
            async move {
                *counter.lock().unwrap() += 1;
                let got = match placement.placement {
                    Placement::Header => headers
                        .get(placement.header.as_deref().unwrap())
                        .and_then(|v| v.to_str().ok())
                        .map(|v| {
                            v.trim_start_matches(placement.prefix.as_deref().unwrap_or(""))
                                .to_owned()
                        }),
                    Placement::Basic => headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned),
                    Placement::Query => form(uri.query().unwrap_or_default())
                        .remove(placement.query.as_deref().unwrap()),
                    Placement::Path => None,
                };
                if got.as_deref() == Some(expected.as_str()) {
                    (StatusCode::OK, axum::Json(body))
                } else {
                    (
                        StatusCode::UNAUTHORIZED,
                        axum::Json(serde_json::json!({"error": "unauthorized"})),
                    )
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let params: BTreeMap<String, String> = e
            .params
            .iter()
            .map(|p| (p.name.clone(), sample(&p.pattern, p.default.as_ref())))
            .collect();
        let (url, _) = on_fake(&base, &spec.url, &params);

        let raw = provider
            .entered_user_info(spec, credential, &url, &SecretString::from(secret.clone()))
            .await
            .unwrap_or_else(|err| panic!("{}: {err}", e.name));
        let (uid, info) = crate::domain::providers::normalize_user_info(Some(spec), &raw);
        let expect = &answers["expect"];
        if let Some(want) = expect.get("uid").and_then(Value::as_str) {
            assert_eq!(uid.as_deref(), Some(want), "{}", e.name);
        }
        let info = serde_json::to_value(&info).unwrap();
        for (k, v) in expect["info"].as_object().into_iter().flatten() {
            assert_eq!(&info[k], v, "{}: info.{k}", e.name);
        }
        let refused = provider
            .entered_user_info(
                spec,
                credential,
                &url,
                &SecretString::from("WRONG".to_owned()),
            )
            .await;
        assert!(
            matches!(refused, Err(crate::ports::ProviderError::Final { .. })),
            "{}: {refused:?}",
            e.name
        );
        assert_eq!(*seen.lock().unwrap(), 2, "{}", e.name);
        server.abort();
        checked += 1;
    }
    assert!(checked >= 5, "{checked} entries checked");
    eprintln!("{checked} entered-credential entries checked against their recorded answers");
}
