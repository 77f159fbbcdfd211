//! The strict OAuth 2.0 / OpenID Connect provider: panva's oidc-provider under Node.js
//! (`tests/strict-provider`), a process on a loopback port chosen at run time. It requires
//! PKCE (S256), rotates refresh tokens with reuse detection, revokes per RFC 7009 and writes
//! what happened to it as JSON lines (its records, never a token value), which the tests judge
//! the service by.
//!
//! Its sign-in and consent are HTML forms: [`Browser`] goes through them as a browser would,
//! following redirects by hand and keeping cookies with their paths.

use crate::process::{output_file, read_jsonl, wait_for_line};
use anyhow::{bail, Context};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::{Child, Command};
use url::Url;

/// The client id the service is registered with at the strict provider.
pub const STRICT_CLIENT_ID: &str = "strict-client";
/// The default client secret: every character that form-encoding changes (`+ / = : % &` and a
/// space), so that a client which does not encode id and secret before HTTP Basic (RFC 6749
/// §2.3.1) is refused.
pub const STRICT_CLIENT_SECRET: &str = "s3+cr/et=:%& x";
/// The provider name the strict provider is registered under in a [`crate::World`].
pub const STRICT_PROVIDER: &str = "strict";
/// The scope the `strict` integration asks for.
pub const STRICT_SCOPE: &str = "openid email profile offline_access";

/// How the strict provider is started.
#[derive(Clone, Debug)]
pub struct StrictOptions {
    /// `STRICT_ACCESS_TOKEN_TTL`, in seconds.
    pub access_token_ttl: u64,
    /// The client secret, given to the provider and registered at the service.
    pub client_secret: String,
}

impl Default for StrictOptions {
    fn default() -> Self {
        Self {
            access_token_ttl: 3600,
            client_secret: STRICT_CLIENT_SECRET.to_owned(),
        }
    }
}

/// Fails, with the way to fix it, when Node.js or the strict provider's package is missing.
fn prerequisites() -> anyhow::Result<PathBuf> {
    crate::process::node_package(
        "strict-provider",
        "oidc-provider",
        "the strict OAuth server",
    )
}

/// The strict provider process.
pub struct StrictProvider {
    _child: Child,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// Its records (`STRICT_LOG`).
    pub log_path: PathBuf,
    /// Its standard output and error.
    pub out_path: PathBuf,
}

impl StrictProvider {
    /// Starts the provider with one confidential client (`STRICT_CLIENT_ID`, the options'
    /// secret) allowed to redirect to `redirect_uris`; its files go to `dir`.
    pub async fn start(
        dir: &Path,
        redirect_uris: &[String],
        options: &StrictOptions,
    ) -> anyhow::Result<Self> {
        let pkg = prerequisites()?;
        let out_path = dir.join("strict-provider.out");
        let log_path = dir.join("strict-provider-records.jsonl");
        let (stdout, stderr) = output_file(&out_path)?;
        let mut child = Command::new("node")
            .arg(pkg.join("server.mjs"))
            .env("PROVIDER_PORT", "0")
            .env("STRICT_CLIENT_ID", STRICT_CLIENT_ID)
            .env("STRICT_CLIENT_SECRET", &options.client_secret)
            .env("STRICT_REDIRECT_URIS", redirect_uris.join(","))
            .env(
                "STRICT_ACCESS_TOKEN_TTL",
                options.access_token_ttl.to_string(),
            )
            .env("STRICT_LOG", &log_path)
            .env_remove("STRICT_AUTH_METHOD")
            .env_remove("STRICT_REFRESH_TOKEN_TTL")
            .stdout(stdout)
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start node")?;
        let line = wait_for_line(&out_path, "\"issuer\"", &mut child).await?;
        let issuer = serde_json::from_str::<Value>(&line)
            .with_context(|| format!("the strict provider printed {line}"))?["issuer"]
            .as_str()
            .context("no issuer printed")?
            .to_owned();
        Ok(Self {
            _child: child,
            issuer,
            client_id: STRICT_CLIENT_ID.to_owned(),
            client_secret: options.client_secret.clone(),
            log_path,
            out_path,
        })
    }

    /// Every record the provider wrote so far, in order.
    pub fn records(&self) -> Vec<Value> {
        read_jsonl(&self.log_path)
    }

    /// The records of `event` whose fields include every field of `fields` (a JSON object;
    /// `json!({})` matches every record of the event).
    pub fn records_of(&self, event: &str, fields: &Value) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| r["event"] == event && has_fields(r, fields))
            .collect()
    }

    /// How many records of `event` have every field of `fields`.
    pub fn count(&self, event: &str, fields: &Value) -> usize {
        self.records_of(event, fields).len()
    }

    /// The `request` records of one endpoint (`authorization`, `token`, `revocation`,
    /// `userinfo`, ...) with every field of `fields`.
    pub fn requests(&self, endpoint: &str, fields: &Value) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| r["event"] == "request" && r["endpoint"] == endpoint)
            .filter(|r| has_fields(r, fields))
            .collect()
    }

    /// Every `grant.error` and `grant.revoked` record, and every record of an error
    /// (`*.error`, `server_error`): what a well-behaved client never causes.
    pub fn trouble(&self) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| {
                let e = r["event"].as_str().unwrap_or_default();
                e.ends_with(".error") || e == "server_error" || e == "grant.revoked"
            })
            .collect()
    }

    /// The status userinfo (`GET /me` with the token as a Bearer) answers: 200 for a live
    /// access token, 401 for a dead one.
    pub async fn userinfo_status(&self, access_token: &str) -> anyhow::Result<u16> {
        let resp = reqwest::Client::new()
            .get(format!("{}/me", self.issuer))
            .bearer_auth(access_token)
            .timeout(Duration::from_secs(10))
            .send()
            .await?;
        Ok(resp.status().as_u16())
    }

    /// A whole sign-in in a new [`Browser`] from the service's `/oauth/start/{link}` URL:
    /// the provider's sign-in form, its consent form, and back to the service's callback. Fails
    /// unless the browser went through both forms of this provider.
    pub async fn sign_in(&self, start_url: &str) -> anyhow::Result<SignedIn> {
        let signed = self.sign_in_with(&mut Browser::new(), start_url).await?;
        anyhow::ensure!(
            signed.steps.iter().any(|s| {
                s.starts_with(&format!("POST {}/interaction/", self.issuer))
                    && s.contains("/login ")
            }),
            "the browser did not sign in at {}: {:#?}",
            self.issuer,
            signed.steps
        );
        Ok(signed)
    }

    /// A sign-in in `browser`, which may already have a session at the provider (and then
    /// sees only the consent form). Fails unless the browser consented at this provider.
    pub async fn sign_in_with(
        &self,
        browser: &mut Browser,
        start_url: &str,
    ) -> anyhow::Result<SignedIn> {
        let signed = browser.sign_in(start_url).await?;
        let through = |suffix: &str| {
            signed.steps.iter().any(|s| {
                s.starts_with(&format!("POST {}/interaction/", self.issuer)) && s.contains(suffix)
            })
        };
        anyhow::ensure!(
            through("/confirm "),
            "the browser did not consent at {}: {:#?}",
            self.issuer,
            signed.steps
        );
        Ok(signed)
    }
}

/// Whether `record` has every field of the object `fields` with the same value.
fn has_fields(record: &Value, fields: &Value) -> bool {
    fields
        .as_object()
        .is_none_or(|m| m.iter().all(|(k, v)| &record[k] == v))
}

/// Where a browser ended after a sign-in.
#[derive(Debug)]
pub struct SignedIn {
    /// The final page's status and body (the service's callback page).
    pub status: u16,
    pub body: String,
    /// The final page's URL (the service's callback, with `code`, `state` and `iss`).
    pub url: String,
    /// Every request, as `METHOD origin/path -> status` (no query: it may hold a code).
    pub steps: Vec<String>,
}

/// One cookie as the jar keeps it.
#[derive(Clone, Debug)]
struct Cookie {
    value: String,
    expires: Option<i64>,
}

/// A small browser: follows redirects by hand, keeps cookies per origin, name and path
/// (RFC 6265 path matching, Max-Age and Expires), and submits the forms a person would.
pub struct Browser {
    http: reqwest::Client,
    /// (origin, path, name) -> cookie.
    jar: BTreeMap<(String, String, String), Cookie>,
    /// The login name typed into sign-in forms.
    login: String,
    pub steps: Vec<String>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

/// A page as the browser got it.
struct Page {
    url: Url,
    status: u16,
    location: Option<String>,
    body: String,
}

impl Browser {
    pub fn new() -> Self {
        Self {
            http: crate::server::client(),
            jar: BTreeMap::new(),
            login: "ada@example.test".to_owned(),
            steps: Vec::new(),
        }
    }

    /// A browser whose person signs in as `login`.
    pub fn signing_in_as(login: &str) -> Self {
        Self {
            login: login.to_owned(),
            ..Self::new()
        }
    }

    /// Goes from the service's start link through the provider's sign-in and consent forms
    /// and back to the service; returns the page it ended on and the steps of this sign-in.
    /// Cookies stay for the next one.
    pub async fn sign_in(&mut self, start_url: &str) -> anyhow::Result<SignedIn> {
        self.steps.clear();
        let mut page = self.request(Url::parse(start_url)?, None).await?;
        for _ in 0..30 {
            if let Some(location) = page.location.clone() {
                anyhow::ensure!(
                    (300..400).contains(&page.status),
                    "Location on a {}",
                    page.status
                );
                let next = page.url.join(&location)?;
                page = self.request(next, None).await?;
                continue;
            }
            let form = (page.status == 200)
                .then(|| {
                    forms(&page.body)
                        .into_iter()
                        .find_map(|f| fill(f, &self.login))
                })
                .flatten();
            match form {
                Some((action, fields)) => {
                    let target = page.url.join(&action)?;
                    page = self.request(target, Some(fields)).await?;
                }
                None => {
                    return Ok(SignedIn {
                        status: page.status,
                        body: page.body,
                        url: page.url.to_string(),
                        steps: std::mem::take(&mut self.steps),
                    })
                }
            }
        }
        bail!("more than 30 steps: {:#?}", self.steps)
    }

    /// GET `url`, or POST `form` to it, with the cookies that apply; keeps what it sets.
    async fn request(
        &mut self,
        url: Url,
        form: Option<Vec<(String, String)>>,
    ) -> anyhow::Result<Page> {
        let method = if form.is_some() { "POST" } else { "GET" };
        let mut req = match &form {
            Some(fields) => self.http.post(url.clone()).form(fields),
            None => self.http.get(url.clone()),
        };
        let cookies = self.cookie_header(&url);
        if !cookies.is_empty() {
            req = req.header(reqwest::header::COOKIE, cookies);
        }
        let resp = req
            .header(reqwest::header::ACCEPT, "text/html")
            .send()
            .await
            .with_context(|| format!("{method} {}", without_query(&url)))?;
        let status = resp.status().as_u16();
        self.steps
            .push(format!("{method} {} -> {status}", without_query(&url)));
        for set in resp.headers().get_all(reqwest::header::SET_COOKIE) {
            if let Ok(set) = set.to_str() {
                self.store(&url, set);
            }
        }
        let location = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .map(str::to_owned);
        let body = resp.text().await.unwrap_or_default();
        Ok(Page {
            url,
            status,
            location,
            body,
        })
    }

    fn store(&mut self, url: &Url, set_cookie: &str) {
        let mut parts = set_cookie.split(';').map(str::trim);
        let Some((name, value)) = parts.next().and_then(|p| p.split_once('=')) else {
            return;
        };
        let mut path = default_path(url);
        let mut expires = None;
        let mut max_age = None;
        for attr in parts {
            let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
            match k.trim().to_ascii_lowercase().as_str() {
                "path" if v.starts_with('/') => path = v.to_owned(),
                "max-age" => max_age = v.trim().parse::<i64>().ok(),
                "expires" => expires = http_date(v.trim()),
                _ => {}
            }
        }
        // Max-Age wins over Expires (RFC 6265 §5.3 step 3).
        let expires = max_age.map(|s| now() + s).or(expires);
        let key = (origin(url), path, name.trim().to_owned());
        if expires.is_some_and(|at| at <= now()) {
            self.jar.remove(&key);
        } else {
            self.jar.insert(
                key,
                Cookie {
                    value: value.trim().to_owned(),
                    expires,
                },
            );
        }
    }

    /// The Cookie header for `url`: live cookies of its origin whose path matches, longest
    /// path first.
    fn cookie_header(&self, url: &Url) -> String {
        let origin = origin(url);
        let mut matching: Vec<(&String, &String, &Cookie)> = self
            .jar
            .iter()
            .filter(|((o, p, _), c)| {
                *o == origin && path_matches(url.path(), p) && c.expires.is_none_or(|at| at > now())
            })
            .map(|((_, p, n), c)| (p, n, c))
            .collect();
        matching.sort_by_key(|(p, _, _)| std::cmp::Reverse(p.len()));
        matching
            .iter()
            .map(|(_, n, c)| format!("{n}={}", c.value))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

fn without_query(url: &Url) -> String {
    format!("{}{}", origin(url), url.path())
}

/// RFC 6265 §5.1.4: the directory of the request path.
fn default_path(url: &Url) -> String {
    match url.path().rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(i) => url.path()[..i].to_owned(),
    }
}

/// RFC 6265 §5.1.4 path matching.
fn path_matches(request: &str, cookie: &str) -> bool {
    request == cookie
        || (request.starts_with(cookie)
            && (cookie.ends_with('/') || request[cookie.len()..].starts_with('/')))
}

/// An HTTP date (`Thu, 01 Jan 1970 00:00:00 GMT`) as Unix seconds.
fn http_date(s: &str) -> Option<i64> {
    let mut words = s.split_whitespace().skip(1);
    let day: i64 = words.next()?.parse().ok()?;
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let month = words.next()?.to_ascii_lowercase();
    let month = MONTHS.iter().position(|m| *m == month)? as i64 + 1;
    let year: i64 = words.next()?.parse().ok()?;
    let mut hms = words.next()?.split(':').map(|p| p.parse::<i64>().ok());
    let (h, m, sec) = (hms.next()??, hms.next()??, hms.next()??);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + m * 60 + sec)
}

/// A form of a page: its action, and its inputs' names.
struct Form {
    action: String,
    method: String,
    inputs: Vec<String>,
}

/// The forms of an HTML page, read with the little care these pages need.
fn forms(html: &str) -> Vec<Form> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find("<form") {
        rest = &rest[start..];
        let end = rest.find("</form>").unwrap_or(rest.len());
        let body = &rest[..end];
        let tag = &body[..body.find('>').unwrap_or(body.len())];
        let inputs = body
            .match_indices("<input")
            .filter_map(|(i, _)| {
                let input = &body[i..];
                attribute(&input[..input.find('>').unwrap_or(input.len())], "name")
            })
            .collect();
        out.push(Form {
            action: attribute(tag, "action").unwrap_or_default(),
            method: attribute(tag, "method")
                .unwrap_or_else(|| "get".into())
                .to_ascii_lowercase(),
            inputs,
        });
        rest = &rest[end..];
    }
    out
}

/// The value of a double-quoted attribute of a tag, with numeric character references decoded.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let raw = &tag[start..start + tag[start..].find('"')?];
    let mut out = String::new();
    let mut rest = raw;
    while let Some(i) = rest.find("&#") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after
            .find(';')
            .and_then(|j| Some((j, after[..j].parse::<u32>().ok()?)))
        {
            Some((j, code)) => {
                out.extend(char::from_u32(code));
                rest = &after[j + 1..];
            }
            None => {
                out.push_str("&#");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Some(out)
}

/// What a person submits on the strict provider's pages: the sign-in form (`login` and any
/// password), then the consent form ("Allow"). Cancel and Deny are never chosen.
fn fill(form: Form, login: &str) -> Option<(String, Vec<(String, String)>)> {
    if form.method != "post" {
        return None;
    }
    let has = |n: &str| form.inputs.iter().any(|i| i == n);
    if form.action.ends_with("/login") && has("login") && has("password") {
        let fields = vec![
            ("login".to_owned(), login.to_owned()),
            ("password".to_owned(), "any password".to_owned()),
        ];
        return Some((form.action, fields));
    }
    if form.action.ends_with("/confirm") {
        return Some((form.action, Vec::new()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_follow_rfc_6265_paths_and_dates() {
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            http_date("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(1_445_412_480)
        );
        assert!(path_matches("/interaction/abc", "/interaction/abc"));
        assert!(path_matches("/interaction/abc/login", "/interaction/abc"));
        assert!(!path_matches("/interaction/abcd", "/interaction/abc"));
        assert!(path_matches("/anything", "/"));
        let url = Url::parse("http://127.0.0.1:1/auth/x").unwrap();
        assert_eq!(default_path(&url), "/auth");
    }

    #[test]
    fn forms_are_read_and_filled() {
        let html = r#"<form id="login" method="post" action="/interaction/a&#45;b/login" autocomplete="off">
  <label>Login <input type="text" name="login" required autofocus></label>
  <label>Password <input type="password" name="password" required></label>
  <button type="submit" id="sign-in">Sign in</button>
</form>
<form id="cancel" class="inline" method="post" action="/interaction/a-b/abort">
  <button type="submit" id="cancel-button">Cancel</button>
</form>"#;
        let found = forms(html);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].action, "/interaction/a-b/login");
        assert_eq!(found[0].inputs, vec!["login", "password"]);
        let chosen: Vec<_> = found
            .into_iter()
            .filter_map(|f| fill(f, "ada@example.test"))
            .collect();
        assert_eq!(chosen.len(), 1);
        assert_eq!(chosen[0].1.len(), 2);
    }
}
